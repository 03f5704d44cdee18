"""torch.ops.solsa.spatial_error == reference.spatial_error_ref and a hand computation."""
from __future__ import annotations

import pytest
import torch

import solsa_ext.ops  # noqa: F401
from solsa_ext.reference import LayerParams, spatial_error_ref
from solsa_ext.rule import RuleFlags

TOL = {torch.float64: 1e-12, torch.float32: 2e-6}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("with_gain", [True, False])
@pytest.mark.parametrize("B,n_up,n_low", [(1, 1, 1), (3, 4, 9), (16, 11, 100), (2, 100, 3)])
def test_spatial_error_matches_reference(B, n_up, n_low, with_gain, dtype):
    gen = torch.Generator().manual_seed(B + 7 * n_up + 31 * n_low)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    mu, w, gain, sg = r(B, n_up), r(n_up, n_low), r(n_up, n_low), r(B, n_low).abs()
    rule = RuleFlags(filter=with_gain, adaptive=False)
    want = spatial_error_ref(mu, LayerParams(w, None, gain), sg, rule)
    got = torch.ops.solsa.spatial_error(mu, w, gain if with_gain else None, sg)
    assert got.shape == (B, n_low) and got.dtype == dtype
    assert (got - want).abs().max().item() <= TOL[dtype] * max(1.0, want.abs().max().item())


def test_spatial_error_by_hand():
    d = torch.float64
    mu = torch.tensor([[1.0, 2.0]], dtype=d)            # (1, 2) upper
    w = torch.tensor([[1.0, -1.0, 0.5], [2.0, 0.0, 1.0]], dtype=d)
    gain = torch.tensor([[2.0, 1.0, 1.0], [0.5, 3.0, 2.0]], dtype=d)
    sg = torch.tensor([[0.5, 1.0, 2.0]], dtype=d)
    got = torch.ops.solsa.spatial_error(mu, w, gain, sg)
    # j=0: (1*1*2 + 2*2*0.5) * 0.5 = 2 ; j=1: (1*-1*1 + 0) * 1 = -1 ; j=2: (0.5 + 2*1*2) * 2 = 9
    assert got.tolist() == [[2.0, -1.0, 9.0]]
    assert torch.ops.solsa.spatial_error(mu, w, None, sg).tolist() == [[(1 + 4) * 0.5, -1.0, (0.5 + 2) * 2]]
