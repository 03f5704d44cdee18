"""torch.ops.solsa.step (and the fused engine built on all three ops) == eager reference.

Grid: T in {1, 2, 7, 31}, batch in {1, 3, 16}, layer sizes with 1 and sizes that are no
multiple of any vector width, every flag combination, float32 and float64, strided
inputs. float64 must agree to 1e-10; float32 to the tolerance documented in docs/OPS.md
(relative 2e-5 of the largest magnitude of the compared quantity).
"""
from __future__ import annotations

import math
import zlib

import pytest
import torch

import solsa_ext.ops  # noqa: F401
from solsa_ext.reference import LayerParams, LayerState, layer_step_ref

from _netutil import FLAG_CASES, NEURON, draw_case, linear_quadratic_loss, reference, run_engine

TOL = {torch.float64: 1e-10, torch.float32: 2e-5}
NETS = [(1, 5, 3), (13, 17, 1, 9), (8, 33, 7)]


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
    err = (a.double() - b.double()).abs().max().item() if b.numel() else 0.0
    assert err <= TOL[dtype] * scale, f"{what}: max abs err {err:.3e} > {TOL[dtype]:.0e} * {scale:.3g}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule_name", list(FLAG_CASES))
@pytest.mark.parametrize("sizes", NETS, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("B,T", [(1, 31), (3, 7), (16, 2), (3, 1), (16, 31), (1, 2)])
def test_engine_matches_reference(B, T, sizes, rule_name, dtype):
    rule = FLAG_CASES[rule_name]
    seed = zlib.crc32(repr((B, T, sizes, rule_name)).encode()) % 997
    params, x, gen = draw_case(sizes, B, T, dtype, rule, seed)
    C = torch.randn(B, sizes[-1], T, generator=gen, dtype=torch.float64).to(dtype)
    _, dEdO = linear_quadratic_loss(C)
    # a strided input: x is a (T, C, B) buffer seen as (B, C, T), so x[:, :, t] has strides (1, B)
    x = x.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    if B > 1 and sizes[0] > 1:
        assert not x[:, :, 0].is_contiguous()
    mask = (torch.rand(B, T, generator=gen) > 0.2).to(dtype)

    ref = reference(x.double(), [LayerParams(p.w.double(), p.decay.double(), p.gain.double()) for p in params],
                    rule, lambda t, O: dEdO(t, O.to(dtype)).double(), mask.double())
    eng, spikes = run_engine(x, params, rule, dEdO, mask=mask)

    assert torch.equal(spikes.double(), ref.spikes), "output spikes differ"
    for l, (g, r) in enumerate(zip(eng.grads(), ref.grads)):
        _close(g.w, r.w, dtype, f"layer {l} grad w")
        if rule.adaptive:
            _close(g.decay, r.decay, dtype, f"layer {l} grad decay")
            _close(g.gain, r.gain, dtype, f"layer {l} grad gain")
    for l, (s, r) in enumerate(zip(eng._fused, ref.states)):
        _close(s.V, r.V, dtype, f"layer {l} V")
        assert torch.equal(s.O.double(), r.O)
        _close(s.sg, r.sg, dtype, f"layer {l} sg")
        e_ref = r.e[:, 0, :] if rule.presyn else r.e
        _close(s.e, e_ref, dtype, f"layer {l} e")
        if rule.filter:
            _close(s.F, r.F, dtype, f"layer {l} F")


def _one_step_case(B, n_out, n_in, dtype, rule, gen):
    """Random (non-zero) states of one layer and a strided input, for a single op call."""
    r64 = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    p = LayerParams(r64(n_out, n_in).to(dtype), torch.rand(n_out, n_in, generator=gen, dtype=torch.float64).to(dtype),
                    (torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) + 0.5).to(dtype))
    e_shape = (B, 1, n_in) if rule.presyn else (B, n_out, n_in)
    e = r64(*e_shape).expand(B, n_out, n_in).to(dtype)
    s = LayerState(F=r64(B, n_out, n_in).to(dtype), F_prev=torch.zeros(B, n_out, n_in, dtype=dtype), e=e,
                   V=(r64(B, n_out) * 0.5 + 0.4).to(dtype), O=(torch.rand(B, n_out, generator=gen) < 0.5).to(dtype),
                   sg=torch.rand(B, n_out, generator=gen, dtype=torch.float64).to(dtype),
                   x=torch.zeros(B, n_in, dtype=dtype))
    xbuf = r64(n_in, 2 * B).to(dtype)
    x = xbuf.t()[::2]            # (B, n_in) with strides (2, 2B): neither dimension unit-stride
    return p, s, x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule_name", list(FLAG_CASES))
@pytest.mark.parametrize("B,n_out,n_in", [(1, 1, 1), (3, 5, 17), (16, 9, 64), (2, 31, 3)])
def test_single_step_op(B, n_out, n_in, rule_name, dtype):
    rule = FLAG_CASES[rule_name]
    gen = torch.Generator().manual_seed(B * 1000 + n_out * 10 + n_in)
    p, s, x = _one_step_case(B, n_out, n_in, dtype, rule, gen)
    want = layer_step_ref(x, p, s, NEURON, rule)

    F = s.F.clone() if rule.filter else None
    F_prev = torch.full_like(s.F, 7.0) if rule.adaptive else None
    e = (s.e[:, 0, :] if rule.presyn else s.e).clone().contiguous()
    V, O, sg = s.V.clone(), s.O.clone(), s.sg.clone()
    torch.ops.solsa.step(x, p.w, p.decay if rule.filter else None, p.gain if rule.filter else None,
                         F, F_prev, e, V, O, sg, NEURON.lam, NEURON.vth, NEURON.sigma, rule.reset_in_trace)
    _close(V, want.V, dtype, "V")
    near = (want.V - NEURON.vth).abs() < 1e-4
    assert torch.equal(O[~near], want.O[~near])
    _close(sg, want.sg, dtype, "sg")
    _close(e, want.e[:, 0, :] if rule.presyn else want.e, dtype, "e")
    if rule.filter:
        _close(F, want.F, dtype, "F")
    if rule.adaptive:
        assert torch.equal(F_prev, s.F), "F_prev must receive F[t-1] exactly"


def test_step_zero_state_by_hand():
    """Two steps of a 1x2 layer computed by hand (float64)."""
    w = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    decay = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
    gain = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    F = torch.zeros(1, 1, 2, dtype=torch.float64)
    e = torch.zeros(1, 1, 2, dtype=torch.float64)
    V, O, sg = (torch.zeros(1, 1, dtype=torch.float64) for _ in range(3))
    lam, vth, sigma = 0.5, 1.0, 1.0
    x1 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    torch.ops.solsa.step(x1, w, decay, gain, F, None, e, V, O, sg, lam, vth, sigma, True)
    # F = (1, 1); V = 0.5*1 + 2*1 = 2.5 -> spike; e = F; sg = N(1.5; 0, 1)
    assert F.flatten().tolist() == [1.0, 1.0]
    assert V.item() == 2.5 and O.item() == 1.0
    assert e.flatten().tolist() == [1.0, 1.0]
    sg1 = math.exp(-(1.5**2) / 2) / math.sqrt(2 * math.pi)
    assert abs(sg.item() - sg1) < 1e-15
    x2 = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    torch.ops.solsa.step(x2, w, decay, gain, F, None, e, V, O, sg, lam, vth, sigma, True)
    # F = (0.5, 0.25 + 2) ; V = 0.5*2.5 + 0.25 + 4.5 - 1 = 5.0 ; e = (0.5 - sg1) * 1 + F
    assert F.flatten().tolist() == [0.5, 2.25]
    assert abs(V.item() - 5.0) < 1e-15 and O.item() == 1.0
    k = 0.5 - 1.0 * sg1
    assert torch.allclose(e.flatten(), torch.tensor([k + 0.5, k + 2.25], dtype=torch.float64), atol=1e-15, rtol=0)
