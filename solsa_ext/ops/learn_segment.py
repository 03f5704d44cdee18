"""torch.ops.solsa.learn_segment: the learning pass of one layer over S steps, time-blocked.

Semantics: csrc/learn_segment/learn_segment_params.h. Shapes:
    x (S, B, n_in) any strides; w, decay, gain (n_out, n_in);
    F (B, n_out, n_in) in/out (segment start in, segment end out) or None (no filter);
    e (B, n_out, n_in) in/out, or (B, n_in) (presynaptic trace: no filter, no reset term);
    sg0 (B, n_out) sg before the segment; sg_seq, mu_seq (S, B, n_out);
    gw, gdecay, ggain (n_out, n_in) added to; coef: S floats (decay/gain weight of each step).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

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

OP = "learn_segment"

LIB.define(
    "learn_segment(Tensor x, Tensor w, Tensor? decay, Tensor? gain, Tensor(a!)? F, Tensor(b!) e, "
    "Tensor sg0, Tensor sg_seq, Tensor mu_seq, Tensor(c!) gw, Tensor(d!)? gdecay, Tensor(e!)? ggain, "
    "float[] coef, float lam, float vth, bool reset_in_trace) -> ()"
)


def _check(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef, lam, vth, reset_in_trace) -> bool:
    """Validate every argument; return ``presyn`` (the trace is (B, n_in))."""
    check_no_autograd(OP, x=x, w=w, decay=decay, gain=gain, F=F, e=e, sg0=sg0, sg_seq=sg_seq, mu_seq=mu_seq,
                      gw=gw, gdecay=gdecay, ggain=ggain)
    check_dims(OP, "x", x, 3, "(S, B, n_in)")
    check_dims(OP, "w", w, 2, "(n_out, n_in)")
    S, B, n_in = x.shape
    n_out = w.shape[0]
    if S == 0:
        raise ValueError(f"solsa.{OP}: the segment is empty (S = 0 steps in 'x')")
    check_batch(OP, B)
    check_tensor(OP, "w", w, (n_out, n_in), w, finite=True)
    check_tensor(OP, "x", x, (S, B, n_in), w, contiguous=False, finite=True)
    filt = F is not None
    if filt:
        for name, t in (("decay", decay), ("gain", gain)):
            if t is None:
                raise ValueError(f"solsa.{OP}: '{name}' is required when the synapse filter is on (F given)")
            check_tensor(OP, name, t, (n_out, n_in), w, finite=True)
        check_tensor(OP, "F", F, (B, n_out, n_in), w)
    else:
        for name, t in (("gdecay", gdecay), ("ggain", ggain)):
            if t is not None:
                raise ValueError(f"solsa.{OP}: '{name}' needs the synapse filter (pass F as well)")
    presyn = not filt and not reset_in_trace
    if presyn:
        if isinstance(e, torch.Tensor) and e.dim() != 2:
            raise ValueError(
                f"solsa.{OP}: without the filter and without the reset in the trace the trace is "
                f"presynaptic: 'e' must have shape {(B, n_in)}, got {tuple(e.shape)}"
            )
        check_tensor(OP, "e", e, (B, n_in), w)
    else:
        check_tensor(OP, "e", e, (B, n_out, n_in), w)
    check_tensor(OP, "sg0", sg0, (B, n_out), w)
    check_tensor(OP, "sg_seq", sg_seq, (S, B, n_out), w)
    check_tensor(OP, "mu_seq", mu_seq, (S, B, n_out), w, finite=True)
    check_tensor(OP, "gw", gw, (n_out, n_in), w)
    check_tensor(OP, "gdecay", gdecay, (n_out, n_in), w, required=False)
    check_tensor(OP, "ggain", ggain, (n_out, n_in), w, required=False)
    if len(coef) != S:
        raise ValueError(f"solsa.{OP}: argument 'coef' must have one value per step ({S}), got {len(coef)}")
    for c in coef:
        if not math.isfinite(c):
            raise ValueError(f"solsa.{OP}: argument 'coef' must be finite, got {c}")
    check_scalars(OP, lam=lam, vth=vth)
    check_no_overlap(OP, dict(F=F, e=e, gw=gw, gdecay=gdecay, ggain=ggain),
                     dict(x=x, w=w, decay=decay, gain=gain, sg0=sg0, sg_seq=sg_seq, mu_seq=mu_seq))
    return presyn


def _params(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef_t, lam, vth, reset_in_trace):
    p = _C.LearnSegmentParams()
    p.seg, p.batch, p.n_in = x.shape
    p.n_out = w.shape[0]
    p.dtype = dtype_code(w.dtype)
    p.x = ptr(x)
    p.x_stride_t, p.x_stride_b, p.x_stride_j = x.stride()
    p.w, p.decay, p.gain = ptr(w), ptr(decay), ptr(gain)
    p.F, p.e = ptr(F), ptr(e)
    p.sg0, p.sg_seq, p.mu_seq = ptr(sg0), ptr(sg_seq), ptr(mu_seq)
    p.coef = ptr(coef_t)
    p.gw, p.gdecay, p.ggain = ptr(gw), ptr(gdecay), ptr(ggain)
    p.lam, p.vth = float(lam), float(vth)
    p.filter = F is not None
    p.reset_in_trace = bool(reset_in_trace)
    return p


def _learn_segment_cpu(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef, lam, vth,
                       reset_in_trace) -> None:
    _check(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef, lam, vth, reset_in_trace)
    coef_t = torch.tensor([float(c) for c in coef], dtype=torch.float64)
    _C.learn_segment_cpu(
        _params(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef_t, lam, vth, reset_in_trace),
        num_threads(),
    )


def _learn_segment_cuda(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef, lam, vth,
                        reset_in_trace) -> None:
    _check(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef, lam, vth, reset_in_trace)
    require_cuda_build(OP)
    with torch.cuda.device(w.device):
        coef_t = torch.tensor([float(c) for c in coef], dtype=torch.float64).to(w.device, non_blocking=True)
        _C.learn_segment_cuda(
            _params(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef_t, lam, vth, reset_in_trace),
            cuda_stream(w.device),
        )


LIB.impl(OP, _learn_segment_cpu, "CPU")
LIB.impl(OP, _learn_segment_cuda, "CUDA")


@torch.library.register_fake("solsa::learn_segment", lib=LIB)
def _learn_segment_fake(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef, lam, vth,
                        reset_in_trace) -> None:
    _check(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain, coef, lam, vth, reset_in_trace)
    return None


def learn_segment(
    x: torch.Tensor,
    w: torch.Tensor,
    decay: Optional[torch.Tensor],
    gain: Optional[torch.Tensor],
    F: Optional[torch.Tensor],
    e: torch.Tensor,
    sg0: torch.Tensor,
    sg_seq: torch.Tensor,
    mu_seq: torch.Tensor,
    gw: torch.Tensor,
    gdecay: Optional[torch.Tensor],
    ggain: Optional[torch.Tensor],
    coef: Sequence[float],
    lam: float,
    vth: float,
    reset_in_trace: bool = True,
) -> None:
    """Python-friendly alias of ``torch.ops.solsa.learn_segment``."""
    torch.ops.solsa.learn_segment(x, w, decay, gain, F, e, sg0, sg_seq, mu_seq, gw, gdecay, ggain,
                                  [float(c) for c in coef], lam, vth, reset_in_trace)
