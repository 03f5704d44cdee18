"""torch.ops.solsa.forward_segment: the forward pass of one layer over S steps, time-blocked.

Semantics: csrc/forward_segment/forward_segment_params.h. Shapes:
    x (S, B, n_in) any strides; w, decay, gain (n_out, n_in);
    F (B, n_out, n_in) read only (segment-start filter state; None = no filter);
    V, O, sg (B, n_out) updated in place (segment end);
    O_seq, sg_seq (S, B, n_out) written: spikes and surrogates of every step.
On CUDA one kernel call takes at most ``_C.MAX_SEGMENT`` (64) steps; longer segments are
split here into consecutive calls (same results). The CPU kernel takes any S.
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

OP = "forward_segment"
MAX_SEGMENT = int(_C.MAX_SEGMENT)

LIB.define(
    "forward_segment(Tensor x, Tensor w, Tensor? decay, Tensor? gain, Tensor? F, Tensor(a!) V, "
    "Tensor(b!) O, Tensor(c!) sg, Tensor(d!) O_seq, Tensor(e!) sg_seq, float lam, float vth, "
    "float sigma) -> ()"
)


def _check(x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma) -> None:
    check_no_autograd(OP, x=x, w=w, decay=decay, gain=gain, F=F, V=V, O=O, sg=sg, O_seq=O_seq, sg_seq=sg_seq)
    check_dims(OP, "x", x, 3, "(S, B, n_in)")
    check_dims(OP, "w", w, 2, "(n_out, n_in)")
    S, B, n_in = x.shape
    n_out = w.shape[0]
    if S == 0:
        raise ValueError(f"solsa.{OP}: the segment is empty (S = 0 steps in 'x')")
    check_batch(OP, B)
    check_tensor(OP, "w", w, (n_out, n_in), w, finite=True)
    check_tensor(OP, "x", x, (S, B, n_in), w, contiguous=False, finite=True)
    if F is not None:
        for name, t in (("decay", decay), ("gain", gain)):
            if t is None:
                raise ValueError(f"solsa.{OP}: '{name}' is required when the synapse filter is on (F given)")
            check_tensor(OP, name, t, (n_out, n_in), w, finite=True)
        check_tensor(OP, "F", F, (B, n_out, n_in), w)
    for name, t in (("V", V), ("O", O), ("sg", sg)):
        check_tensor(OP, name, t, (B, n_out), w)
    for name, t in (("O_seq", O_seq), ("sg_seq", sg_seq)):
        check_tensor(OP, name, t, (S, B, n_out), w)
    check_scalars(OP, lam=lam, vth=vth, sigma=sigma)
    if sigma <= 0:
        raise ValueError(f"solsa.{OP}: 'sigma' must be > 0, got {sigma}")
    check_no_overlap(OP, dict(V=V, O=O, sg=sg, O_seq=O_seq, sg_seq=sg_seq),
                     dict(x=x, w=w, decay=decay, gain=gain, F=F))


def _params(x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma):
    p = _C.ForwardSegmentParams()
    p.seg, p.batch, p.n_in = x.shape
    p.n_out = w.shape[0]
    p.dtype = dtype_code(w.dtype)
    p.x = ptr(x)
    p.x_stride_t, p.x_stride_b, p.x_stride_j = x.stride()
    p.w, p.decay, p.gain, p.F = ptr(w), ptr(decay), ptr(gain), ptr(F)
    p.V, p.O, p.sg = ptr(V), ptr(O), ptr(sg)
    p.O_seq, p.sg_seq = ptr(O_seq), ptr(sg_seq)
    p.lam, p.vth, p.sigma = float(lam), float(vth), float(sigma)
    p.filter = F is not None
    return p


def _forward_segment_cpu(x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma) -> None:
    args = (x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma)
    _check(*args)
    _C.forward_segment_cpu(_params(*args), num_threads())


def _forward_segment_cuda(x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma) -> None:
    args = (x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma)
    _check(*args)
    require_cuda_build(OP)
    S = x.shape[0]
    if S > MAX_SEGMENT and F is not None:
        # the kernel does not advance F, so a later chunk would need the filter state in
        # the middle of the segment: advance a private copy between chunks instead.
        F = F.clone()
    with torch.cuda.device(w.device):
        stream = cuda_stream(w.device)
        for s0 in range(0, S, MAX_SEGMENT):
            s1 = min(S, s0 + MAX_SEGMENT)
            _C.forward_segment_cuda(
                _params(x[s0:s1], w, decay, gain, F, V, O, sg, O_seq[s0:s1], sg_seq[s0:s1], lam, vth, sigma), stream
            )
            if s1 < S and F is not None:
                for t in range(s0, s1):
                    F.mul_(decay).add_(gain * x[t][:, None, :])


LIB.impl(OP, _forward_segment_cpu, "CPU")
LIB.impl(OP, _forward_segment_cuda, "CUDA")


@torch.library.register_fake("solsa::forward_segment", lib=LIB)
def _forward_segment_fake(x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma) -> None:
    _check(x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma)
    return None


def forward_segment(
    x: torch.Tensor,
    w: torch.Tensor,
    decay: Optional[torch.Tensor],
    gain: Optional[torch.Tensor],
    F: Optional[torch.Tensor],
    V: torch.Tensor,
    O: torch.Tensor,
    sg: torch.Tensor,
    O_seq: torch.Tensor,
    sg_seq: torch.Tensor,
    lam: float,
    vth: float,
    sigma: float,
) -> None:
    """Python-friendly alias of ``torch.ops.solsa.forward_segment``."""
    torch.ops.solsa.forward_segment(x, w, decay, gain, F, V, O, sg, O_seq, sg_seq, lam, vth, sigma)
