"""torch.ops.solsa.learn: accumulate one step's batch-summed gradients of one layer.

Semantics: csrc/learn/learn_params.h and docs/OPS.md. Shapes:
    mu (B, n_out); e (B, n_out, n_in) or (B, n_in) (presynaptic trace);
    x (B, n_in) any strides; w, F_prev (n_out, n_in), (B, n_out, n_in);
    gw, gdecay, gain (n_out, n_in), added to in place.
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

OP = "learn"

LIB.define(
    "learn(Tensor mu, Tensor e, Tensor(a!) gw, Tensor? x=None, Tensor? w=None, Tensor? F_prev=None, "
    "Tensor(b!)? gdecay=None, Tensor(c!)? ggain=None, float coef=1.0) -> ()"
)


def _check(mu, e, gw, x, w, F_prev, gdecay, ggain, coef) -> None:
    check_no_autograd(OP, mu=mu, e=e, gw=gw, x=x, w=w, F_prev=F_prev, gdecay=gdecay, ggain=ggain)
    check_dims(OP, "mu", mu, 2, "(B, n_out)")
    check_dims(OP, "gw", gw, 2, "(n_out, n_in)")
    # the layer's size comes from its gradient accumulator, the batch from mu: a mu of the
    # wrong width is then reported as mu's error, not gw's
    n_out, n_in = gw.shape
    B = mu.shape[0]
    check_batch(OP, B)
    check_tensor(OP, "gw", gw, (n_out, n_in), gw)
    check_tensor(OP, "mu", mu, (B, n_out), gw, finite=True)
    if not isinstance(e, torch.Tensor) or e.dim() not in (2, 3):
        raise ValueError(f"solsa.{OP}: 'e' must be (B, n_out, n_in) or, for the presynaptic trace, (B, n_in)")
    check_tensor(OP, "e", e, (B, n_in) if e.dim() == 2 else (B, n_out, n_in), gw,
                 sizes_from="B from mu, n_in from gw" if e.dim() == 2 else "B from mu, n_out and n_in from gw")
    check_tensor(OP, "gdecay", gdecay, (n_out, n_in), gw, required=False)
    check_tensor(OP, "ggain", ggain, (n_out, n_in), gw, required=False)
    need_w = gdecay is not None or ggain is not None
    check_tensor(OP, "w", w, (n_out, n_in), gw, required=need_w, finite=True)
    check_tensor(OP, "F_prev", F_prev, (B, n_out, n_in), gw, required=gdecay is not None,
                 sizes_from="B from mu, n_out and n_in from gw")
    check_tensor(OP, "x", x, (B, n_in), gw, contiguous=False, required=ggain is not None, finite=True,
                 sizes_from="B from mu, n_in from gw")
    check_scalars(OP, coef=coef)
    check_no_overlap(OP, dict(gw=gw, gdecay=gdecay, ggain=ggain), dict(mu=mu, e=e, x=x, w=w, F_prev=F_prev))


def _params(mu, e, gw, x, w, F_prev, gdecay, ggain, coef):
    p = _C.LearnParams()
    p.batch, p.n_out = mu.shape
    p.n_in = gw.shape[1]
    p.dtype = dtype_code(gw.dtype)
    p.mu, p.e, p.gw = ptr(mu), ptr(e), ptr(gw)
    p.x = ptr(x)
    if x is not None:
        p.x_stride_b, p.x_stride_j = x.stride()
    p.w, p.F_prev = ptr(w), ptr(F_prev)
    p.gdecay, p.ggain = ptr(gdecay), ptr(ggain)
    p.coef = float(coef)
    p.presyn = e.dim() == 2
    return p


def _learn_cpu(mu, e, gw, x=None, w=None, F_prev=None, gdecay=None, ggain=None, coef=1.0) -> None:
    args = (mu, e, gw, x, w, F_prev, gdecay, ggain, coef)
    _check(*args)
    _C.learn_cpu(_params(*args), num_threads())


def _learn_cuda(mu, e, gw, x=None, w=None, F_prev=None, gdecay=None, ggain=None, coef=1.0) -> None:
    args = (mu, e, gw, x, w, F_prev, gdecay, ggain, coef)
    _check(*args)
    require_cuda_build(OP)
    with torch.cuda.device(gw.device):
        _C.learn_cuda(_params(*args), cuda_stream(gw.device))


LIB.impl(OP, _learn_cpu, "CPU")
LIB.impl(OP, _learn_cuda, "CUDA")


@torch.library.register_fake("solsa::learn", lib=LIB)
def _learn_fake(mu, e, gw, x=None, w=None, F_prev=None, gdecay=None, ggain=None, coef=1.0) -> None:
    _check(mu, e, gw, x, w, F_prev, gdecay, ggain, coef)
    return None


def learn(
    mu: torch.Tensor,
    e: torch.Tensor,
    gw: torch.Tensor,
    x: Optional[torch.Tensor] = None,
    w: Optional[torch.Tensor] = None,
    F_prev: Optional[torch.Tensor] = None,
    gdecay: Optional[torch.Tensor] = None,
    ggain: Optional[torch.Tensor] = None,
    coef: float = 1.0,
) -> None:
    """Python-friendly alias of ``torch.ops.solsa.learn``."""
    torch.ops.solsa.learn(mu, e, gw, x, w, F_prev, gdecay, ggain, coef)
