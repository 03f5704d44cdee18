"""solsa_ext.optim.fast_step == optimizer.step(), bitwise, and its fallbacks."""
from __future__ import annotations

import copy

import pytest
import torch

from solsa_ext import optim as O

SHAPES = [(100, 6), (100, 6), (3, 100), (100,), (7, 5)]


def _setup(cls, dtype=torch.float32, **kw):
    gen = torch.Generator().manual_seed(3)
    ps = [torch.nn.Parameter(torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)) for s in SHAPES]
    opt = cls(ps, lr=kw.pop("lr", 1e-2), fused=True, **kw)
    return ps, opt


def _grads(ps, k):
    gen = torch.Generator().manual_seed(100 + k)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)


def _run(cls, stepper, steps=6, dtype=torch.float32, **kw):
    ps, opt = _setup(cls, dtype, **kw)
    for k in range(steps):
        _grads(ps, k)
        stepper(opt)
    return ps, opt


def _same(a_ps, a_opt, b_ps, b_opt):
    for p, q in zip(a_ps, b_ps):
        assert torch.equal(p, q) and torch.equal(p.signbit(), q.signbit())
        sa, sb = a_opt.state[p], b_opt.state[q]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW], ids=["Adam", "AdamW"])
@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.1}, {"amsgrad": True}, {"maximize": True},
                                {"betas": (0.8, 0.95), "eps": 1e-6, "lr": 3e-3}],
                         ids=["default", "wd", "amsgrad", "maximize", "betas"])
def test_fast_step_equals_step_bitwise(cls, kw, dtype):
    ps, opt = _setup(cls, dtype, **copy.deepcopy(kw))
    _grads(ps, 0)
    opt.step()
    _grads(ps, 1)
    assert O._fast_args(opt) is not None, "the case must take the direct path"
    ref = _run(cls, lambda o: o.step(), dtype=dtype, **copy.deepcopy(kw))
    got = _run(cls, O.fast_step, dtype=dtype, **copy.deepcopy(kw))
    _same(*ref, *got)
    # and the parameters did move (the steps were not no-ops)
    ps0, _ = _setup(cls, dtype, **copy.deepcopy(kw))
    assert not torch.equal(ps0[0], got[0][0])


def test_fast_step_takes_the_direct_path_after_the_first_step(monkeypatch):
    ps, opt = _setup(torch.optim.Adam)
    _grads(ps, 0)
    assert O._fast_args(opt) is None  # no state yet: opt.step() creates it
    O.fast_step(opt)
    _grads(ps, 1)
    assert O._fast_args(opt) is not None
    calls = []
    monkeypatch.setattr(opt, "step", lambda *a, **k: calls.append(1))
    O.fast_step(opt)
    assert calls == []  # the wrapper was not called
    assert int(opt.state[ps[0]]["step"]) == 2


def _fallback_cases():
    def no_grad(ps, opt):
        ps[2].grad = None

    def pre_hook(ps, opt):
        opt.register_step_pre_hook(lambda o, a, k: None)

    def post_hook(ps, opt):
        opt.register_step_post_hook(lambda o, a, k: None)

    def two_groups(ps, opt):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))]})

    def tensor_lr(ps, opt):
        opt.param_groups[0]["lr"] = torch.tensor(1e-2)

    def scaler(ps, opt):
        opt.grad_scale = torch.ones(())

    def not_fused(ps, opt):
        opt.param_groups[0]["fused"] = False

    return [no_grad, pre_hook, post_hook, two_groups, tensor_lr, scaler, not_fused]


@pytest.mark.parametrize("case", _fallback_cases(), ids=lambda f: f.__name__)
def test_fast_step_falls_back_to_step(case, monkeypatch):
    ps, opt = _setup(torch.optim.Adam)
    _grads(ps, 0)
    opt.step()
    _grads(ps, 1)
    case(ps, opt)
    assert O._fast_args(opt) is None
    calls = []
    monkeypatch.setattr(opt, "step", lambda *a, **k: calls.append(1))
    O.fast_step(opt)
    assert calls == [1]


def test_fast_step_falls_back_for_other_optimizers_and_global_hooks(monkeypatch):
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    sgd = torch.optim.SGD([p], lr=0.1)
    O.fast_step(sgd)
    assert torch.equal(p.detach(), torch.full((3,), 0.9))
    ps, opt = _setup(torch.optim.Adam)
    _grads(ps, 0)
    opt.step()
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    h = register_optimizer_step_pre_hook(lambda o, a, k: None)
    try:
        assert O._fast_args(opt) is None
    finally:
        h.remove()
    assert O._fast_args(opt) is not None


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", ["solsa", "eprop", "bptt"])
def test_trainer_with_fast_step_equals_trainer_with_step(name, spike_task, monkeypatch):
    """End to end: a Trainer run with fast_step and one with plain opt.step() end bitwise equal."""
    from solsa_ext import AlgorithmConfig, NetworkConfig, OptimizerConfig, TrainConfig, Trainer
    from solsa_ext import trainer as trainer_mod

    xtr, ytr, xte, _ = spike_task

    def make():
        backend = "auto" if name == "bptt" else "fused"
        return Trainer(NetworkConfig(sizes=(12, 10, 3)), AlgorithmConfig(name, backend=backend, update_points=3),
                       OptimizerConfig("Adam", lr=5e-3), train=TrainConfig(batch_size=8, epochs=2, seed=5),
                       classes=["x", "y", "z"])

    fast = make()
    wrapped = []
    real_step = fast.optimizer.step
    monkeypatch.setattr(fast.optimizer, "step", lambda *a, **k: (wrapped.append(1), real_step(*a, **k))[1])
    fast.fit(xtr[:24], ytr[:24])
    assert fast.updates > 1 and len(wrapped) == 1  # only the first update (no Adam state yet) went through step()

    monkeypatch.setattr(trainer_mod, "fast_step", lambda opt: opt.step())
    plain = make()
    plain.fit(xtr[:24], ytr[:24])
    assert plain.updates == fast.updates
    for p, q in zip(fast.params, plain.params):
        assert torch.equal(p.w, q.w) and torch.equal(p.decay, q.decay) and torch.equal(p.gain, q.gain)
    assert not torch.equal(fast.params[0].w, make().params[0].w)  # it did learn
    assert torch.equal(fast.predict(xte), plain.predict(xte))
