"""OnlineEngine's segment fast path (solsa_ext.segment_plan.SegmentPlan) against the ops path.

With input checks off the fused CPU engine runs each chunk of ``run_segment`` through a
SegmentPlan (params structs and buffers built once per reset); with them on it goes through
torch.ops.solsa.forward_segment / learn_segment. Both must give the same bits: spikes,
states and gradients, for every flag case, with a sample mask, a strided input, segments
longer than one chunk, an in-place parameter update between segments (seen by the plan)
and a replaced parameter (the plan is rebuilt).
"""
from __future__ import annotations

import pytest
import torch

from solsa_ext import ops
from solsa_ext.engine import SEGMENT_CHUNK, OnlineEngine

from _netutil import FLAG_CASES, NEURON, draw_case
from _netutil import assert_same as _same


def _drive(eng, x, C, mask, checks, bounds, hook=None):
    B, _, T = x.shape
    eng.reset(B)
    outs, plans = [], []
    with ops.input_checks(checks):
        for k, (t0, t1) in enumerate(bounds):
            if hook is not None:
                hook(k)
            # a per-step loss whose derivative uses O[s] and the step's own target only
            O = eng.run_segment(x[:, :, t0:t1], lambda O, t0=t0: O - C[:, :, t0:t0 + O.shape[0]].permute(2, 0, 1),
                                mask[t0:t1])
            outs.append(O)
            plans.append(eng._seg_plan)
    states = [(s.F, s.e, s.V, s.O, s.sg) for s in eng._fused]
    return outs, states, [(g.w.clone(), None if g.decay is None else g.decay.clone(),
                           None if g.gain is None else g.gain.clone()) for g in eng.grads()], plans


@pytest.mark.parametrize("rule_name", sorted(FLAG_CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_segment_plan_equals_ops_path(rule_name, dtype):
    rule = FLAG_CASES[rule_name]
    sizes, B, T = (5, 7, 1, 3), 4, 2 * SEGMENT_CHUNK + 9
    params, x, gen = draw_case(sizes, B, T, dtype, rule, seed=7)
    x = x.permute(2, 1, 0).contiguous().permute(2, 1, 0)  # strided input
    C = torch.rand(B, sizes[-1], T, generator=gen, dtype=torch.float64).round().to(dtype)
    mask = (torch.rand(T, B, generator=gen) < 0.8).to(dtype)
    bounds = [(0, 1), (1, 6), (6, 6 + SEGMENT_CHUNK + 3), (6 + SEGMENT_CHUNK + 3, T)]  # 1 step, short, > a chunk

    planned = OnlineEngine(params, NEURON, rule, backend="fused")
    plain = OnlineEngine(params, NEURON, rule, backend="fused")
    o1, s1, g1, p1 = _drive(planned, x, C, mask, False, bounds)
    o2, s2, g2, p2 = _drive(plain, x, C, mask, True, bounds)
    assert all(p is not None for p in p1) and len({id(p) for p in p1}) == 1, "one plan per reset"
    assert all(p is None for p in p2)
    for k, (a, b) in enumerate(zip(o1, o2)):
        _same(a, b, f"spikes of segment {k}")
    for l, (a, b) in enumerate(zip(s1, s2)):
        for name, u, v in zip(("F", "e", "V", "O", "sg"), a, b):
            _same(u, v, f"layer {l} {name}")
    for l, (a, b) in enumerate(zip(g1, g2)):
        for name, u, v in zip(("w", "decay", "gain"), a, b):
            _same(u, v, f"layer {l} grad {name}")
    assert any(g[0].abs().sum() > 0 for g in g1), "the test must exercise nonzero gradients"
    assert sum(o.sum() for o in o1) > 0, "the test must exercise spikes"


def test_segment_plan_sees_in_place_updates_and_rebuilds_on_replaced_params():
    rule = FLAG_CASES["solsa"]
    sizes, B, T = (4, 6, 3), 3, 24
    params, x, gen = draw_case(sizes, B, T, torch.float64, rule, seed=5)
    C = torch.rand(B, sizes[-1], T, generator=gen, dtype=torch.float64).round()
    mask = torch.ones(T, B, dtype=torch.float64)
    bounds = [(0, 6), (6, 12), (12, 18), (18, 24)]
    runs = []
    for checks in (False, True):
        ps = [type(p)(p.w.clone(), p.decay.clone(), p.gain.clone()) for p in params]
        eng = OnlineEngine(ps, NEURON, rule, backend="fused")

        def hook(k, ps=ps):
            if k == 1:
                ps[1].w.mul_(0.5)  # in place: same pointer, the kernels read the new values
            if k == 2:
                ps[0].gain = ps[0].gain * 1.1  # a new tensor: the plan must be rebuilt

        runs.append(_drive(eng, x, C, mask, checks, bounds, hook))
    o1, s1, g1, plans = runs[0]
    o2, s2, g2, _ = runs[1]
    assert plans[1] is plans[0] and plans[2] is not plans[1] and plans[3] is plans[2]
    for a, b in zip(o1, o2):
        _same(a, b, "spikes")
    for a, b in zip(g1, g2):
        for u, v in zip(a, b):
            _same(u, v, "grad")


def test_segment_plan_returns_spikes_that_later_chunks_do_not_overwrite():
    rule = FLAG_CASES["ottt"]
    params, x, gen = draw_case((3, 5, 2), 2, 3 * SEGMENT_CHUNK, torch.float32, rule, seed=4)
    eng = OnlineEngine(params, NEURON, rule, backend="fused")
    eng.reset(2)
    with ops.input_checks(False):
        first = eng.run_segment(x[:, :, :SEGMENT_CHUNK], lambda O: O)
        kept = first.clone()
        eng.run_segment(x[:, :, SEGMENT_CHUNK:], lambda O: O)
    assert torch.equal(first, kept)


def test_run_segment_rejects_wrong_dtype_and_device():
    rule = FLAG_CASES["solsa"]
    params, x, _ = draw_case((3, 4, 2), 2, 5, torch.float32, rule, seed=1)
    eng = OnlineEngine(params, NEURON, rule, backend="fused")
    eng.reset(2)
    for checks in (False, True):
        with ops.input_checks(checks):
            with pytest.raises(ValueError, match="x_seg must be torch.float32"):
                eng.run_segment(x.double(), lambda O: O)


def _fresh(rule_name, dtype=torch.float64, sizes=(5, 4, 3)):
    rule = FLAG_CASES[rule_name]
    params, x, _ = draw_case(sizes, 2, 10, dtype, rule, seed=9)
    return rule, params, x


@pytest.mark.parametrize("path", ["segment", "step"])
@pytest.mark.parametrize("rule_name", ["solsa", "eprop", "ottt"])
def test_plans_refuse_parameters_the_states_were_not_made_for(rule_name, path):
    """With checks off no op validates the parameters: the plans must, before they hand
    raw pointers to the kernels (a wrong shape or dtype corrupted memory, a non-contiguous
    view gave wrong answers)."""
    def run(eng, x):
        with ops.input_checks(False):
            if path == "segment":
                eng.run_segment(x, lambda O: O - 0.3)
            else:
                eng.forward(x[:, :, 0])

    # non-contiguous from the start
    rule, params, x = _fresh(rule_name)
    params[0].w = params[0].w.t().contiguous().t()
    eng = OnlineEngine(params, NEURON, rule, backend="fused")
    eng.reset(2)
    with pytest.raises(ValueError, match="layer 0 'w' must be contiguous"):
        run(eng, x)
    # replaced between segments: another shape, another dtype, a non-contiguous view
    for l, change, msg in [(1, lambda p: torch.zeros(3, 7, dtype=p.w.dtype), r"layer 1 'w' is torch.float64 \(3, 7\)"),
                           (1, lambda p: p.w.float(), "layer 1 'w' is torch.float32"),
                           (0, lambda p: p.w.t().contiguous().t(), "layer 0 'w' must be contiguous")]:
        rule, params, x = _fresh(rule_name)
        eng = OnlineEngine(params, NEURON, rule, backend="fused")
        eng.reset(2)
        run(eng, x)
        params[l].w = change(params[l])
        with pytest.raises(ValueError, match=msg):
            run(eng, x)


def test_engine_refuses_mixed_dtypes_and_shapes():
    rule, params, _ = _fresh("solsa")
    params[1].w = params[1].w.float()
    with pytest.raises(TypeError, match="layer 1 'w' is torch.float32"):
        OnlineEngine(params, NEURON, rule, backend="fused")
    rule, params, _ = _fresh("solsa")
    params[1].gain = params[1].gain.float()
    with pytest.raises(TypeError, match="layer 1 'gain'"):
        OnlineEngine(params, NEURON, rule, backend="fused")
    rule, params, _ = _fresh("solsa")
    params[0].decay = params[0].decay[:, :2]
    with pytest.raises(ValueError, match="layer 0 'decay' has shape"):
        OnlineEngine(params, NEURON, rule, backend="fused")


def _sequence(eng, x, C, per_step):
    """One sequence from reset: spikes, states (copies) and gradients (copies)."""
    B, _, T = x.shape
    eng.reset(B)
    eng.zero_grads()
    with ops.input_checks(False):
        if per_step:
            outs = []
            for t in range(T):
                O = eng.forward(x[:, :, t])
                outs.append(O.clone())
                eng.backward(O - C[:, :, t])
            O = torch.stack(outs)
        else:
            O = eng.run_segment(x, lambda O: O - C[:, :, :O.shape[0]].permute(2, 0, 1))
    states = [tuple(None if t is None else t.clone() for t in (s.F, s.e, s.V, s.O, s.sg)) for s in eng._fused]
    grads = [tuple(None if t is None else t.clone() for t in (g.w, g.decay, g.gain)) for g in eng.grads()]
    return O, states, grads


@pytest.mark.parametrize("rule_name", ["solsa", "eprop", "ottt"])
@pytest.mark.parametrize("per_step", [False, True])
def test_reset_reuses_states_in_place_and_equals_a_fresh_engine(rule_name, per_step):
    """reset() with the same batch zeroes the states in place and keeps the plans; the next
    sequence must give the bits of a fresh engine. Another batch or other neuron constants
    must allocate anew (the plans hold the constants)."""
    from solsa_ext.neuron import NeuronConfig

    rule = FLAG_CASES[rule_name]
    sizes, B, T = (5, 7, 3), 3, SEGMENT_CHUNK + 5
    params, x1, gen = draw_case(sizes, B, T, torch.float64, rule, seed=11)
    x2 = torch.randn(B, sizes[0], T, generator=gen, dtype=torch.float64) * 1.5
    C = torch.rand(B, sizes[-1], T, generator=gen, dtype=torch.float64).round()

    eng = OnlineEngine(params, NEURON, rule, backend="fused")
    _sequence(eng, x1, C, per_step)
    e_ptr = eng._fused[1].e.data_ptr()
    plan = eng._seg_plan if not per_step else eng._plan
    assert plan is not None
    got = _sequence(eng, x2, C, per_step)
    assert eng._fused[1].e.data_ptr() == e_ptr, "same batch: the states are reused"
    assert (eng._seg_plan if not per_step else eng._plan) is plan, "and so are the plans"
    want = _sequence(OnlineEngine(params, NEURON, rule, backend="fused"), x2, C, per_step)
    _same(got[0], want[0], "spikes")
    for l, (a, b) in enumerate(zip(got[1] + got[2], want[1] + want[2])):
        for u, v in zip(a, b):
            if u is not None:
                _same(u, v, f"state/grad {l}")
    assert got[0].sum() > 0 and got[2][0][0].abs().sum() > 0

    # another batch: new states
    _sequence(eng, x2[:2], C[:2], per_step)
    assert eng._fused[1].e.shape[0] == 2 and eng._fused[1].e.data_ptr() != e_ptr
    # other neuron constants: new states and plans, and the new constants are used
    other = NeuronConfig(lam=0.7, vth=0.9, sigma=0.4)
    eng.neuron = other
    got = _sequence(eng, x2[:2], C[:2], per_step)
    want = _sequence(OnlineEngine(params, other, rule, backend="fused"), x2[:2], C[:2], per_step)
    _same(got[0], want[0], "spikes with the new neuron constants")
    for a, b in zip(got[2], want[2]):
        _same(a[0], b[0], "grad w with the new neuron constants")


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_backward_needs_its_own_forward(backend):
    """Each forward() takes one backward(): a second one for the same step, or one after
    reset() or run_segment(), would add a gradient from stale traces; it is refused."""
    rule = FLAG_CASES["solsa"]
    params, x, gen = draw_case((4, 5, 3), 2, 8, torch.float64, rule, seed=2)
    eng = OnlineEngine(params, NEURON, rule, backend=backend)
    eng.reset(2)
    d = torch.ones(2, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="call forward"):
        eng.backward(d)                                   # right after reset
    eng.forward(x[:, :, 0])
    eng.backward(d)
    before = eng.grads()[0].w.clone()
    with pytest.raises(RuntimeError, match="call forward"):
        eng.backward(d)                                   # a second backward for step 0
    eng.run_segment(x[:, :, 1:6], lambda O: O)
    g_seg = eng.grads()[0].w.clone()
    assert not torch.equal(g_seg, before)
    with pytest.raises(RuntimeError, match="call forward"):
        eng.backward(d)                                   # after run_segment
    assert torch.equal(eng.grads()[0].w, g_seg), "a refused backward adds nothing"
    eng.forward(x[:, :, 6])
    with pytest.raises(ValueError, match="dEdO"):
        eng.backward(torch.ones(2, 4, dtype=torch.float64))
    eng.backward(d)                                       # a bad call does not use up the step
