"""OnlineEngine's per-step fast path (solsa_ext.step_plan.StepPlan) against the ops path.

With input checks off the fused CPU engine calls the kernels through a StepPlan (params
structs built once); with them on it goes through torch.ops.solsa. Both must give the same
bits, for every flag case, with a sample mask, a strided input, after a parameter update in
place (seen by the plan) and after a parameter is replaced (the plan is rebuilt).
"""
from __future__ import annotations

import pytest
import torch

from solsa_ext import ops
from solsa_ext.engine import OnlineEngine

from _netutil import FLAG_CASES, NEURON, draw_case
from _netutil import assert_same as _same


def _drive(eng, x, C, mask, checks, hook=None):
    B, _, T = x.shape
    eng.reset(B)
    outs = []
    with ops.input_checks(checks):
        for t in range(T):
            if hook is not None:
                hook(t)
            O = eng.forward(x[:, :, t])
            outs.append(O.clone())
            eng.backward(C[:, :, t] + O, mask[:, t])
    states = [(s.F, s.F_prev, s.e, s.V, s.O, s.sg) for s in eng._fused]
    return outs, states, eng.grads()


@pytest.mark.parametrize("rule_name", sorted(FLAG_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_plan_equals_ops_path(rule_name, dtype):
    rule = FLAG_CASES[rule_name]
    sizes, B, T = (5, 7, 3), 4, 9
    params, x, gen = draw_case(sizes, B, T, dtype, rule, seed=3)
    # strided input: a (B, C, T) view of a (T, C, B) buffer
    x = x.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    assert not x[:, :, 0].is_contiguous()
    C = torch.randn(B, sizes[-1], T, generator=gen, dtype=torch.float64).to(dtype)
    mask = (torch.rand(B, T, generator=gen) < 0.7).to(dtype)

    planned = OnlineEngine(params, NEURON, rule, backend="fused")
    plain = OnlineEngine(params, NEURON, rule, backend="fused")
    o1, s1, g1 = _drive(planned, x, C, mask, checks=False)
    assert planned._plan is not None, "checks off on CPU: the plan path must be taken"
    o2, s2, g2 = _drive(plain, x, C, mask, checks=True)
    assert plain._plan is None
    for t, (a, b) in enumerate(zip(o1, o2)):
        _same(a, b, f"spikes at t={t}")
    for l, (a, b) in enumerate(zip(s1, s2)):
        for name, u, v in zip(("F", "F_prev", "e", "V", "O", "sg"), a, b):
            _same(u, v, f"layer {l} {name}")
    for l, (a, b) in enumerate(zip(g1, g2)):
        _same(a.w, b.w, f"layer {l} grad w")
        _same(a.decay, b.decay, f"layer {l} grad decay")
        _same(a.gain, b.gain, f"layer {l} grad gain")
    assert any(g.w.abs().sum() > 0 for g in g1), "the test must exercise nonzero gradients"


def test_plan_sees_in_place_updates_and_rebuilds_on_replaced_params():
    rule = FLAG_CASES["solsa"]
    sizes, B, T = (4, 6, 3), 3, 8
    params, x, gen = draw_case(sizes, B, T, torch.float64, rule, seed=5)
    C = torch.randn(B, sizes[-1], T, generator=gen, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.float64)
    runs = []
    for checks in (False, True):
        ps = [type(p)(p.w.clone(), p.decay.clone(), p.gain.clone()) for p in params]
        eng = OnlineEngine(ps, NEURON, rule, backend="fused")
        plans = []

        def hook(t, ps=ps, eng=eng, plans=plans):
            if t == 3:
                ps[1].w.mul_(0.5)  # in place: same pointer, the kernels read the new values
            if t == 5:
                ps[0].gain = ps[0].gain * 1.1  # a new tensor: the plan must be rebuilt
            plans.append(eng._plan)

        runs.append((_drive(eng, x, C, mask, checks, hook), plans))
    (o1, s1, g1), plans = runs[0]
    (o2, s2, g2), _ = runs[1]
    assert plans[4] is plans[3] and plans[6] is not plans[5], "rebuilt exactly when a parameter was replaced"
    for a, b in zip(o1, o2):
        _same(a, b, "spikes")
    for a, b in zip(g1, g2):
        _same(a.w, b.w, "grad w")
        _same(a.decay, b.decay, "grad decay")


def test_plan_path_rejects_wrong_input_dtype_and_device():
    rule = FLAG_CASES["solsa"]
    params, x, _ = draw_case((3, 4, 2), 2, 3, torch.float32, rule, seed=1)
    eng = OnlineEngine(params, NEURON, rule, backend="fused")
    eng.reset(2)
    with ops.input_checks(False):
        with pytest.raises(ValueError, match="x_t must be torch.float32"):
            eng.forward(x[:, :, 0].double())
        if torch.cuda.is_available():
            with pytest.raises(ValueError, match="x_t must be"):
                eng.forward(x[:, :, 0].cuda())


def test_segment_path_allocates_no_f_prev():
    """F_prev is only for the per-step backward: run_segment must not allocate it."""
    rule = FLAG_CASES["solsa"]
    params, x, _ = draw_case((3, 4, 2), 2, 6, torch.float32, rule, seed=2)
    eng = OnlineEngine(params, NEURON, rule, backend="fused")
    eng.reset(2)
    with ops.input_checks(False):
        eng.run_segment(x, lambda O: O)
    assert all(s.F_prev is None for s in eng._fused)
    with ops.input_checks(False):
        eng.forward(x[:, :, 0])
    assert all(s.F_prev is not None and s.F_prev.shape == s.F.shape for s in eng._fused)
