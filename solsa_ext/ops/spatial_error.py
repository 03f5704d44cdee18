"""torch.ops.solsa.spatial_error: propagate the spatial error down one layer.

``mu_low = (mu_up @ (w_up * gain_up)) * sg_low`` (gain 1 without the filter).
Shapes: mu_up (B, n_up); w_up, gain_up (n_up, n_low); sg_low (B, n_low) -> (B, n_low).

A pure function (no argument is written), so it has an autograd formula: with
``A = w_up * gain_up`` and ``g = grad_out * sg_low``, ``d mu_up = g @ A^T``,
``d w_up = (mu_up^T @ g) * gain_up``, ``d gain_up = (mu_up^T @ g) * w_up``,
``d sg_low = grad_out * (mu_up @ A)`` (tested with gradcheck in float64).
"""
from __future__ import annotations

from typing import Optional

import torch

from ._lib import LIB, _C, check_batch, check_dims, check_tensor, cuda_stream, dtype_code, num_threads, ptr, require_cuda_build

OP = "spatial_error"

LIB.define("spatial_error(Tensor mu_up, Tensor w_up, Tensor? gain_up, Tensor sg_low) -> Tensor")


def _check(mu_up, w_up, gain_up, sg_low) -> None:
    check_dims(OP, "mu_up", mu_up, 2, "(B, n_up)")
    check_dims(OP, "w_up", w_up, 2, "(n_up, n_low)")
    # the layer's size comes from its weights, the batch from mu_up: a mu_up of the wrong
    # width is then reported as mu_up's error, not w_up's
    n_up, n_low = w_up.shape
    B = mu_up.shape[0]
    check_batch(OP, B)
    check_tensor(OP, "w_up", w_up, (n_up, n_low), w_up, finite=True)
    check_tensor(OP, "mu_up", mu_up, (B, n_up), w_up, finite=True)
    check_tensor(OP, "gain_up", gain_up, (n_up, n_low), w_up, required=False, finite=True)
    check_tensor(OP, "sg_low", sg_low, (B, n_low), w_up, finite=True, sizes_from="B from mu_up, n_low from w_up")


def _params(mu_up, w_up, gain_up, sg_low, out):
    p = _C.SpatialErrorParams()
    p.batch, p.n_out = mu_up.shape
    p.n_in = w_up.shape[1]
    p.dtype = dtype_code(w_up.dtype)
    p.mu_up, p.w, p.gain, p.sg, p.out = ptr(mu_up), ptr(w_up), ptr(gain_up), ptr(sg_low), ptr(out)
    return p


def _spatial_error_cpu(mu_up, w_up, gain_up, sg_low) -> torch.Tensor:
    _check(mu_up, w_up, gain_up, sg_low)
    out = torch.empty_like(sg_low)
    _C.spatial_error_cpu(_params(mu_up, w_up, gain_up, sg_low, out), num_threads())
    return out


def _spatial_error_cuda(mu_up, w_up, gain_up, sg_low) -> torch.Tensor:
    _check(mu_up, w_up, gain_up, sg_low)
    require_cuda_build(OP)
    out = torch.empty_like(sg_low)
    with torch.cuda.device(w_up.device):
        _C.spatial_error_cuda(_params(mu_up, w_up, gain_up, sg_low, out), cuda_stream(w_up.device))
    return out


LIB.impl(OP, _spatial_error_cpu, "CPU")
LIB.impl(OP, _spatial_error_cuda, "CUDA")


@torch.library.register_fake("solsa::spatial_error", lib=LIB)
def _spatial_error_fake(mu_up, w_up, gain_up, sg_low) -> torch.Tensor:
    _check(mu_up, w_up, gain_up, sg_low)
    return torch.empty_like(sg_low)


def spatial_error(mu_up: torch.Tensor, w_up: torch.Tensor, gain_up: Optional[torch.Tensor], sg_low: torch.Tensor) -> torch.Tensor:
    """Python-friendly alias of ``torch.ops.solsa.spatial_error``."""
    return torch.ops.solsa.spatial_error(mu_up, w_up, gain_up, sg_low)


def _setup_context(ctx, inputs, output) -> None:
    mu_up, w_up, gain_up, sg_low = inputs
    ctx.save_for_backward(mu_up, w_up, gain_up, sg_low)
    ctx.has_gain = gain_up is not None


def _backward(ctx, grad_out):
    mu_up, w_up, gain_up, sg_low = ctx.saved_tensors
    A = w_up * gain_up if ctx.has_gain else w_up
    g = grad_out * sg_low
    need = ctx.needs_input_grad
    d_mu = g @ A.t() if need[0] else None
    outer = mu_up.t() @ g if (need[1] or need[2]) else None
    d_w = outer * gain_up if need[1] and ctx.has_gain else (outer if need[1] else None)
    d_gain = outer * w_up if ctx.has_gain and need[2] else None
    d_sg = grad_out * (mu_up @ A) if need[3] else None
    return d_mu, d_w, d_gain, d_sg


torch.library.register_autograd("solsa::spatial_error", _backward, setup_context=_setup_context, lib=LIB)

