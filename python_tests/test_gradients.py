"""The fused engine's gradients equal their definitions (SOLSA_MATH.md sections 2-4).

Independent computations: autograd through solsa_ext.bptt.snn_forward (a separate,
differentiable implementation of the same forward pass), and the section 4 formulas
written out by hand below.
"""
from __future__ import annotations

import math

import pytest
import torch

from solsa_ext.bptt import snn_forward
from solsa_ext.reference import LayerParams
from solsa_ext.rule import RuleFlags

from _netutil import NEURON, draw_case, linear_quadratic_loss, run_engine

F64 = torch.float64
RULES = {
    "solsa": RuleFlags(filter=True, adaptive=True, reset_in_trace=True),
    "eprop": RuleFlags(filter=False, adaptive=False, reset_in_trace=True),
    "ottt": RuleFlags(filter=False, adaptive=False, reset_in_trace=False),
}


def _autograd_w_grads(x, params, rule, E, detach_carried):
    qs = [LayerParams(p.w.clone().requires_grad_(), p.decay.clone(), p.gain.clone()) for p in params]
    out = snn_forward(x, qs, NEURON, filter=rule.filter, detach_carried=detach_carried,
                      detach_reset=not rule.reset_in_trace)
    E(out).backward()
    return [q.w.grad for q in qs]


@pytest.mark.parametrize("rule_name", list(RULES))
def test_single_layer_equals_bptt(rule_name):
    """Section 2: one layer, per-step loss: SOLSA's weight gradient is BPTT's (OTTT: with the reset detached)."""
    rule = RULES[rule_name]
    params, x, gen = draw_case((5, 4), 3, 40, F64, rule, seed=1, margin=1e-6)
    E, dEdO = linear_quadratic_loss(torch.randn(3, 4, 40, generator=gen, dtype=F64))
    eng, _ = run_engine(x, params, rule, dEdO)
    want = _autograd_w_grads(x, params, rule, E, detach_carried=())
    assert want[0].abs().max() > 1e-3, "degenerate case: no gradient"
    assert torch.allclose(eng.grads()[0].w, want[0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("rule_name", list(RULES))
@pytest.mark.parametrize("sizes", [(6, 5, 3), (7, 6, 5, 4)])
def test_multilayer_equals_detached_autograd(sizes, rule_name):
    """Section 3: top layer == full BPTT; layer l == autograd with the carried states above l detached."""
    rule = RULES[rule_name]
    params, x, gen = draw_case(sizes, 3, 30, F64, rule, seed=2, margin=1e-6)
    E, dEdO = linear_quadratic_loss(torch.randn(3, sizes[-1], 30, generator=gen, dtype=F64))
    eng, _ = run_engine(x, params, rule, dEdO)
    L = len(params)
    full = _autograd_w_grads(x, params, rule, E, detach_carried=())
    assert torch.allclose(eng.grads()[-1].w, full[-1], rtol=0, atol=1e-9), "top layer != full BPTT"
    for l in range(L - 1):
        want = _autograd_w_grads(x, params, rule, E, detach_carried=range(l + 1, L))[l]
        assert want.abs().max() > 1e-6, f"degenerate case: layer {l} got no gradient"
        assert torch.allclose(eng.grads()[l].w, want, rtol=0, atol=1e-9), f"layer {l}"


def test_decay_gain_gradients_by_hand():
    """Section 4, written out with explicit loops over t, b, i, j for a 2-layer net."""
    rule = RuleFlags(filter=True, adaptive=True, reset_in_trace=True, gamma=0.8)
    B, T, sizes = 2, 9, (3, 4, 2)
    params, x, gen = draw_case(sizes, B, T, F64, rule, seed=3, margin=1e-6)
    _, dEdO = linear_quadratic_loss(torch.randn(B, 2, T, generator=gen, dtype=F64))
    eng, _ = run_engine(x, params, rule, dEdO)

    lam, vth, sig = NEURON.lam, NEURON.vth, NEURON.sigma
    n0, n1, n2 = sizes
    W = [p.w.tolist() for p in params]
    D = [p.decay.tolist() for p in params]
    G = [p.gain.tolist() for p in params]
    gd = [[[0.0] * sizes[l] for _ in range(sizes[l + 1])] for l in range(2)]
    gg = [[[0.0] * sizes[l] for _ in range(sizes[l + 1])] for l in range(2)]
    for b in range(B):
        F = [[[0.0] * sizes[l] for _ in range(sizes[l + 1])] for l in range(2)]
        V = [[0.0] * sizes[l + 1] for l in range(2)]
        O = [[0.0] * sizes[l + 1] for l in range(2)]
        for t in range(T):
            c = (1 - 0.8 ** (t + 1)) / (1 - 0.8)
            inp = [x[b, j, t].item() for j in range(n0)]
            Fp, xin, sgs = [], [], []
            for l in range(2):
                Fp.append([row[:] for row in F[l]])
                xin.append(inp)
                newO, sg = [], []
                for i in range(sizes[l + 1]):
                    cur = 0.0
                    for j in range(sizes[l]):
                        F[l][i][j] = D[l][i][j] * F[l][i][j] + G[l][i][j] * inp[j]
                        cur += W[l][i][j] * F[l][i][j]
                    V[l][i] = lam * V[l][i] + cur - vth * O[l][i]
                    newO.append(1.0 if V[l][i] >= vth else 0.0)
                    sg.append(math.exp(-((V[l][i] - vth) ** 2) / (2 * sig * sig)) / (sig * math.sqrt(2 * math.pi)))
                O[l] = newO
                sgs.append(sg)
                inp = newO
            dE = dEdO(t, torch.tensor([O[1]], dtype=F64).expand(B, n2))[b].tolist()
            mu = [[0.0] * n1, [dE[k] * sgs[1][k] for k in range(n2)]]
            mu[0] = [sum(mu[1][k] * W[1][k][j] * G[1][k][j] for k in range(n2)) * sgs[0][j] for j in range(n1)]
            for l in range(2):
                for i in range(sizes[l + 1]):
                    for j in range(sizes[l]):
                        gd[l][i][j] += c * mu[l][i] * W[l][i][j] * Fp[l][i][j]
                        gg[l][i][j] += c * mu[l][i] * W[l][i][j] * xin[l][j]
    for l in range(2):
        assert torch.tensor(gd[l], dtype=F64).abs().max() > 1e-4
        assert torch.allclose(eng.grads()[l].decay, torch.tensor(gd[l], dtype=F64), rtol=0, atol=1e-10)
        assert torch.allclose(eng.grads()[l].gain, torch.tensor(gg[l], dtype=F64), rtol=0, atol=1e-10)
