"""torch.ops.solsa.learn == reference.learn_ref, including hand-computed sums."""
from __future__ import annotations

import pytest
import torch

import solsa_ext.ops  # noqa: F401
from solsa_ext.reference import LayerGrads, LayerParams, LayerState, learn_ref
from solsa_ext.rule import RuleFlags

TOL = {torch.float64: 1e-12, torch.float32: 2e-6}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("presyn,adaptive", [(False, True), (False, False), (True, False)])
@pytest.mark.parametrize("B,n_out,n_in", [(1, 1, 1), (3, 7, 13), (16, 10, 100), (5, 1, 33)])
def test_learn_matches_reference(B, n_out, n_in, presyn, adaptive, dtype):
    gen = torch.Generator().manual_seed(B + 10 * n_out + 100 * n_in)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    rule = RuleFlags(filter=not presyn, adaptive=adaptive, reset_in_trace=not presyn)
    mu, w = r(B, n_out), r(n_out, n_in)
    e = r(B, 1, n_in).expand(B, n_out, n_in) if presyn else r(B, n_out, n_in)
    F_prev = r(B, n_out, n_in)
    x = r(n_in, B).t()                      # strided (1, B)
    coef = 2.71
    g0 = [r(n_out, n_in) for _ in range(3)]  # non-zero accumulators: learn adds
    want = LayerGrads(g0[0].clone(), g0[1].clone(), g0[2].clone())
    st = LayerState(F=F_prev, F_prev=F_prev, e=e, V=mu, O=mu, sg=mu, x=x)
    learn_ref(mu, LayerParams(w), st, want, coef, rule)

    gw, gd, gg = (g.clone() for g in g0)
    e_arg = e[:, 0, :].contiguous() if presyn else e
    torch.ops.solsa.learn(mu, e_arg, gw, x if adaptive else None, w if adaptive else None,
                          F_prev if adaptive else None, gd if adaptive else None, gg if adaptive else None, coef)
    scale = max(1.0, want.w.abs().max().item())
    assert (gw - want.w).abs().max().item() <= TOL[dtype] * scale
    if adaptive:
        for got, exp in ((gd, want.decay), (gg, want.gain)):
            assert (got - exp).abs().max().item() <= TOL[dtype] * max(1.0, exp.abs().max().item())
    else:
        assert torch.equal(gd, g0[1]) and torch.equal(gg, g0[2]), "accumulators not passed must stay untouched"


def test_learn_by_hand():
    """B=2, one output, two inputs: every sum written out."""
    d = torch.float64
    mu = torch.tensor([[2.0], [-1.0]], dtype=d)
    e = torch.tensor([[[1.0, 3.0]], [[4.0, 0.5]]], dtype=d)
    F_prev = torch.tensor([[[0.5, 1.0]], [[1.0, 2.0]]], dtype=d)
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=d)
    w = torch.tensor([[3.0, -2.0]], dtype=d)
    gw, gd, gg = (torch.zeros(1, 2, dtype=d) for _ in range(3))
    torch.ops.solsa.learn(mu, e, gw, x, w, F_prev, gd, gg, 0.5)
    assert gw.tolist() == [[2 * 1 - 1 * 4, 2 * 3 - 1 * 0.5]]
    assert gd.tolist() == [[0.5 * 3 * (2 * 0.5 - 1 * 1.0), 0.5 * -2 * (2 * 1.0 - 1 * 2.0)]]
    assert gg.tolist() == [[0.5 * 3 * (2 * 1 - 1 * 1), 0.5 * -2 * (2 * 0 - 1 * 1)]]
