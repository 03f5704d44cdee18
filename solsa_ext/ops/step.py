"""torch.ops.solsa.step: one time step of one PSP-LIF layer (forward and traces).

Semantics: csrc/step/step_params.h and docs/OPS.md. Shapes:
    x (B, n_in) any strides; w, decay, gain (n_out, n_in);
    F, F_prev, e (B, n_out, n_in) — or e (B, n_in) for the presynaptic trace;
    V, O, sg (B, n_out). States are updated in place.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._lib import (
    LIB,
    _C,
    check_batch,
    check_dims,
    check_no_autograd,
    check_no_overlap,
    check_scalars,
    check_tensor,
    cuda_stream,
    dtype_code,
    num_threads,
    ptr,
    require_cuda_build,
)

OP = "step"

LIB.define(
    "step(Tensor x, Tensor w, Tensor? decay, Tensor? gain, Tensor(a!)? F, Tensor(b!)? F_prev, "
    "Tensor(c!) e, Tensor(d!) V, Tensor(e!) O, Tensor(f!) sg, float lam, float vth, float sigma, "
    "bool reset_in_trace) -> ()"
)


def _check(x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace) -> bool:
    """Validate every argument; return ``presyn`` (the trace is (B, n_in))."""
    check_no_autograd(OP, x=x, w=w, decay=decay, gain=gain, F=F, F_prev=F_prev, e=e, V=V, O=O, sg=sg)
    check_dims(OP, "x", x, 2, "(B, n_in)")
    check_dims(OP, "w", w, 2, "(n_out, n_in)")
    B = x.shape[0]
    n_out, n_in = w.shape
    check_batch(OP, B)
    check_tensor(OP, "w", w, (n_out, n_in), w, finite=True)
    check_tensor(OP, "x", x, (B, n_in), w, contiguous=False, finite=True)
    filt = F is not None
    if filt:
        for name, t in (("decay", decay), ("gain", gain)):
            if t is None:
                raise ValueError(f"solsa.{OP}: '{name}' is required when the synapse filter is on (F given)")
            check_tensor(OP, name, t, (n_out, n_in), w, finite=True)
        check_tensor(OP, "F", F, (B, n_out, n_in), w)
    else:
        if F_prev is not None:
            raise ValueError(f"solsa.{OP}: 'F_prev' needs the synapse filter (pass F as well)")
    check_tensor(OP, "F_prev", F_prev, (B, n_out, n_in), w, required=False)
    presyn = not filt and not reset_in_trace
    if presyn:
        if e is not None and e.dim() != 2:
            raise ValueError(
                f"solsa.{OP}: without the filter and without the reset in the trace the trace is "
                f"presynaptic: 'e' must have shape {(B, n_in)}, got {tuple(e.shape)}"
            )
        check_tensor(OP, "e", e, (B, n_in), w)
    else:
        check_tensor(OP, "e", e, (B, n_out, n_in), w)
    for name, t in (("V", V), ("O", O), ("sg", sg)):
        check_tensor(OP, name, t, (B, n_out), w)
    check_scalars(OP, lam=lam, vth=vth, sigma=sigma)
    if sigma <= 0:
        raise ValueError(f"solsa.{OP}: 'sigma' must be > 0, got {sigma}")
    check_no_overlap(OP, dict(F=F, F_prev=F_prev, e=e, V=V, O=O, sg=sg), dict(x=x, w=w, decay=decay, gain=gain))
    return presyn


def _params(x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace):
    p = _C.StepParams()
    p.batch, p.n_in = x.shape
    p.n_out = w.shape[0]
    p.dtype = dtype_code(w.dtype)
    p.x = ptr(x)
    p.x_stride_b, p.x_stride_j = x.stride()
    p.w, p.decay, p.gain = ptr(w), ptr(decay), ptr(gain)
    p.F, p.F_prev, p.e = ptr(F), ptr(F_prev), ptr(e)
    p.V, p.O, p.sg = ptr(V), ptr(O), ptr(sg)
    p.lam, p.vth, p.sigma = float(lam), float(vth), float(sigma)
    p.filter = F is not None
    p.reset_in_trace = bool(reset_in_trace)
    return p


def _step_cpu(x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace) -> None:
    args = (x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace)
    _check(*args)
    _C.step_cpu(_params(*args), num_threads())


def _step_cuda(x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace) -> None:
    args = (x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace)
    _check(*args)
    require_cuda_build(OP)
    with torch.cuda.device(w.device):
        _C.step_cuda(_params(*args), cuda_stream(w.device))


LIB.impl(OP, _step_cpu, "CPU")
LIB.impl(OP, _step_cuda, "CUDA")


@torch.library.register_fake("solsa::step", lib=LIB)
def _step_fake(x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace) -> None:
    _check(x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace)
    return None


def step(
    x: torch.Tensor,
    w: torch.Tensor,
    decay: Optional[torch.Tensor],
    gain: Optional[torch.Tensor],
    F: Optional[torch.Tensor],
    F_prev: Optional[torch.Tensor],
    e: torch.Tensor,
    V: torch.Tensor,
    O: torch.Tensor,
    sg: torch.Tensor,
    lam: float,
    vth: float,
    sigma: float,
    reset_in_trace: bool = True,
) -> None:
    """Python-friendly alias of ``torch.ops.solsa.step`` (same arguments, same in-place updates)."""
    torch.ops.solsa.step(x, w, decay, gain, F, F_prev, e, V, O, sg, lam, vth, sigma, reset_in_trace)
