"""The kernels' own exp (csrc/common/neuron.h, ``solsa_exp``) against an exact exp.

Every kernel evaluates the surrogate's exp with this function (multiplies, adds and bit
operations only, so that it vectorises and gives the same bits in every build). Here it
is checked element-wise through ``_C.kernel_exp``: float32 against float64 ``torch.exp``
(exact to 2^-53, far below a float32 ulp), float64 against mpmath at 120 bits. The bound,
2 ulp of the correctly rounded result, is what the header promises; measured: 1.21 ulp
(float32, 2e6 points) and 1.0 ulp (float64).
"""
from __future__ import annotations

import math

import pytest
import torch

from solsa_ext import _C


def kernel_exp(x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous()
    out = torch.empty_like(x)
    _C.kernel_exp(x.data_ptr(), out.data_ptr(), x.numel(), 0 if x.dtype == torch.float32 else 1)
    return out


def _ulp(ref_rounded: torch.Tensor) -> torch.Tensor:
    """Spacing of the floating-point grid at each (rounded) reference value."""
    up = torch.nextafter(ref_rounded, torch.full_like(ref_rounded, math.inf))
    return (up - ref_rounded).double()


def test_float32_within_2_ulp_over_the_whole_normal_range():
    g = torch.Generator().manual_seed(0)
    lo, hi = -87.3, 88.7  # exp of these is a normal float32
    x = (torch.rand(400_000, generator=g, dtype=torch.float64) * (hi - lo) + lo).float()
    x = torch.cat([x, torch.linspace(-1.0, 1.0, 20001), torch.tensor([0.0, -0.0, 1e-30, -1e-30])])
    y = kernel_exp(x)
    ref = torch.exp(x.double())
    err_ulp = (y.double() - ref).abs() / _ulp(ref.float())
    assert err_ulp.max().item() <= 2.0, f"max error {err_ulp.max().item():.3f} ulp at x={x[err_ulp.argmax()].item()}"
    assert y[-4].item() == 1.0 and y[-3].item() == 1.0


def test_float64_within_2_ulp():
    mpmath = pytest.importorskip("mpmath")
    g = torch.Generator().manual_seed(1)
    lo, hi = -708.0, 709.7
    x = torch.cat([torch.rand(3000, generator=g, dtype=torch.float64) * (hi - lo) + lo,
                   torch.rand(1000, generator=g, dtype=torch.float64) * 2 - 1])
    y = kernel_exp(x)
    with mpmath.workprec(120):
        for xv, yv in zip(x.tolist(), y.tolist()):
            exact = mpmath.exp(mpmath.mpf(xv))
            r = torch.tensor(float(exact), dtype=torch.float64)
            ulp = _ulp(r).item()
            err = abs(mpmath.mpf(yv) - exact) / ulp
            assert err <= 2.0, f"x={xv!r}: {float(err):.3f} ulp"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_edges_of_the_range(dtype):
    """Every normal result is computed up to ln(max) and down to ln(min normal); beyond, +inf
    and (below the cut) 0."""
    fi = torch.finfo(dtype)
    ln_max, ln_min = math.log(fi.max), math.log(fi.tiny)
    x = torch.cat([torch.linspace(ln_max - 0.01, ln_max, 2001, dtype=torch.float64),
                   torch.linspace(ln_min, ln_min + 0.01, 2001, dtype=torch.float64)]).to(dtype)
    x = x[(x.double() <= ln_max) & (x.double() >= ln_min)]
    y = kernel_exp(x)
    ref = torch.exp(x.double())
    assert torch.isfinite(y).all() and (y > 0).all(), "a finite normal result came out inf or 0"
    if dtype == torch.float32:
        err_ulp = (y.double() - ref).abs() / _ulp(ref.float())
        assert err_ulp.max().item() <= 2.0
    else:
        rel = ((y - ref) / ref).abs()
        assert rel.max().item() <= 4 * fi.eps  # 2 ulp, measured against exp in double itself
    above = torch.tensor([math.nextafter(ln_max, math.inf) + 1e-3 * abs(ln_max)], dtype=dtype)
    assert kernel_exp(above).item() == math.inf


@pytest.mark.parametrize("dtype,tiny,huge", [(torch.float32, -88.0, 89.0), (torch.float64, -709.0, 710.0)])
def test_special_values(dtype, tiny, huge):
    x = torch.tensor([math.nan, -math.inf, math.inf, tiny, -1e4, huge, 1e4], dtype=dtype)
    y = kernel_exp(x)
    assert math.isnan(y[0].item())
    # below the normal range the kernels flush to 0 anyway (FTZ/DAZ); above it, +inf
    assert y[1].item() == 0.0 and y[3].item() == 0.0 and y[4].item() == 0.0
    assert y[2].item() == math.inf and y[5].item() == math.inf and y[6].item() == math.inf


def test_monotone_on_a_fine_grid():
    """Non-decreasing (an exp that steps backwards would bend the surrogate's shape)."""
    x = torch.linspace(-20.0, 20.0, 400_001, dtype=torch.float32)
    y = kernel_exp(x)
    assert (y[1:] >= y[:-1]).all()
