"""Trainer: learning, gradients of every algorithm vs independent computations, padding, clamp, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as Fn

from conftest import BACKENDS, needs_cuda
from solsa_ext import ALGORITHMS, AlgorithmConfig, LossConfig, NetworkConfig, OptimizerConfig, TrainConfig, Trainer
from solsa_ext.bptt import snn_forward
from solsa_ext.neuron import NeuronConfig
from solsa_ext.reference import LayerParams, solsa_ref
from solsa_ext.rule import RULES
from solsa_ext.trainer import resolve_device

pytestmark = pytest.mark.usefixtures("one_thread")

ONLINE = [a for a in ALGORITHMS if a not in ("bptt", "tbptt")]
NET = NetworkConfig(sizes=(5, 6, 3), w_scale=2.0, w_bias=0.2)


def _trainer(name: str, backend: str = "reference", loss: str = "rate_mse", **algo) -> Trainer:
    return Trainer(NET, AlgorithmConfig(name, backend=backend, **algo), OptimizerConfig("Adam", lr=1e-2),
                   LossConfig(name=loss, scale=2.0), TrainConfig(batch_size=4, dtype="float64", seed=3))


def _copy_params(tr: Trainer) -> list[LayerParams]:
    return [LayerParams(p.w.detach().clone(), p.decay.detach().clone(), p.gain.detach().clone()) for p in tr.params]


def _dEdO(loss: str, y: torch.Tensor, n: int, scale: float = 2.0):
    """Independent per-step loss derivatives (written out, not taken from solsa_ext.losses)."""
    onehot = Fn.one_hot(y, n).double()
    counts = {}

    def f(t: int, O: torch.Tensor) -> torch.Tensor:
        if loss == "rate_mse":
            return O - onehot
        if loss == "step_ce":
            return scale * (torch.softmax(scale * O, 1) - onehot)
        c = counts.get(t - 1, torch.zeros_like(O)) + O
        counts[t] = c
        return scale / (t + 1) * (torch.softmax(scale * c / (t + 1), 1) - onehot)

    return f


def _valid(lengths: torch.Tensor, T: int) -> torch.Tensor:
    return (torch.arange(T)[None, :] < lengths[:, None]).double()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ONLINE)
def test_online_gradients_match_reference(name, backend, small_x):
    """At the first update point, the trainer's gradients equal solsa_ref's with the same dE/dO and mask."""
    x, y, lengths = small_x
    tr = _trainer(name, backend, update_points=3)
    params = _copy_params(tr)
    got = tr.sequence_gradients(x, y, lengths)
    first = {"solsa": 3, "variant1": 3, "variant2": 3, "variant3": 3, "unscheduled": 11, "eprop": 11, "ottt": 0}[name]
    want = solsa_ref(x[:, :, : first + 1], params, NeuronConfig(NET.lam, NET.vth, NET.sigma), RULES[name],
                     _dEdO("rate_mse", y, 3), mask=_valid(lengths, 12)[:, : first + 1]).grads
    assert any(float(g.w.abs().max()) > 0 for g in want), "degenerate test: no gradient"
    for g, w in zip(got, want):
        torch.testing.assert_close(g.w, w.w, atol=1e-9, rtol=1e-7)
        if RULES[name].adaptive:
            torch.testing.assert_close(g.decay, w.decay, atol=1e-9, rtol=1e-7)
            torch.testing.assert_close(g.gain, w.gain, atol=1e-9, rtol=1e-7)
        else:
            assert g.decay is None


@pytest.mark.parametrize("loss", ["step_ce", "count_ce"])
def test_online_losses_match_reference(loss, small_x):
    x, y, lengths = small_x
    tr = _trainer("unscheduled", loss=loss)
    params = _copy_params(tr)
    got = tr.sequence_gradients(x, y, lengths)
    want = solsa_ref(x, params, NeuronConfig(NET.lam, NET.vth, NET.sigma), RULES["unscheduled"],
                     _dEdO(loss, y, 3), mask=_valid(lengths, 12)).grads
    for g, w in zip(got, want):
        torch.testing.assert_close(g.w, w.w, atol=1e-9, rtol=1e-7)


def _autograd_grads(x, y, lengths, params, steps: int):
    """Autograd gradient of sum_t sum_b E_b[t] (rate_mse, valid steps only) over the first ``steps`` steps."""
    leaves = [LayerParams(p.w.clone().requires_grad_(), p.decay.clone().requires_grad_(), p.gain.clone().requires_grad_())
              for p in params]
    out = snn_forward(x[:, :, :steps], leaves, NeuronConfig(NET.lam, NET.vth, NET.sigma), filter=True)
    target = Fn.one_hot(y, 3).double()[:, :, None]
    E = (0.5 * ((out - target) ** 2).sum(1) * _valid(lengths, x.shape[2])[:, :steps]).sum()
    E.backward()
    return leaves


@pytest.mark.parametrize("name,steps", [("bptt", 12), ("tbptt", 5)])
def test_autograd_baselines_match_autograd(name, steps, small_x):
    x, y, lengths = small_x
    tr = _trainer(name, truncation=5)
    params = _copy_params(tr)
    got = tr.sequence_gradients(x, y, lengths)
    want = _autograd_grads(x, y, lengths, params, steps)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.w, w.w.grad, atol=1e-9, rtol=1e-7)
        torch.testing.assert_close(g.decay, w.decay.grad, atol=1e-9, rtol=1e-7)
        torch.testing.assert_close(g.gain, w.gain.grad, atol=1e-9, rtol=1e-7)


def test_tbptt_segments_match_truncated_snn_forward(small_x):
    """Carried-and-detached segments give the same spikes and gradients as snn_forward(truncate=n)."""
    from solsa_ext.baselines import CarriedState, forward_segment

    x, y, _ = small_x
    tr = _trainer("tbptt")
    nc = NeuronConfig(NET.lam, NET.vth, NET.sigma)
    ref = snn_forward(x, tr.params, nc, truncate=4)
    (ref * torch.arange(1.0, 13.0, dtype=torch.float64)).sum().backward()
    want = [p.w.grad.clone() for p in tr.params]
    for p in tr.params:
        p.w.grad = None
    state, outs = CarriedState.zeros(x, tr.params, True), []
    for s in range(0, 12, 4):
        seg, state = forward_segment(x[:, :, s:s + 4], tr.params, nc, state)
        state = state.detach()
        outs.append(seg)
    got = torch.cat(outs, -1)
    assert torch.equal(got, ref)
    (got * torch.arange(1.0, 13.0, dtype=torch.float64)).sum().backward()
    for p, w in zip(tr.params, want):
        torch.testing.assert_close(p.w.grad, w)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_every_algorithm_runs_end_to_end(name, spike_task):
    xtr, ytr, xte, yte = spike_task
    tr = Trainer(NetworkConfig(sizes=(12, 16, 3)), AlgorithmConfig(name, backend="reference", truncation=10),
                 OptimizerConfig(lr=1e-2), train=TrainConfig(batch_size=16, epochs=2))
    hist = tr.fit(xtr[:32], ytr[:32])
    assert len(hist) == 2 and all(np.isfinite(h["train_loss"]) for h in hist)
    ev = tr.evaluate(xte, yte)
    assert 0.0 <= ev["accuracy"] <= 1.0 and sum(map(sum, ev["confusion"])) == xte.shape[0]
    for p in tr.params:
        assert torch.isfinite(p.w).all()


@pytest.mark.parametrize("name", ["solsa", "bptt"])
def test_learns_synthetic_spike_task(name, spike_task):
    xtr, ytr, xte, yte = spike_task
    tr = Trainer(NetworkConfig(sizes=(12, 20, 3)), AlgorithmConfig(name, backend="auto"),
                 OptimizerConfig(lr=1e-2), train=TrainConfig(batch_size=8, epochs=8, seed=0))
    before = tr.evaluate(xte, yte)["accuracy"]
    tr.fit(xtr, ytr)
    after = tr.evaluate(xte, yte)["accuracy"]
    assert after >= 0.85, (before, after)     # chance is 1/3


def test_learns_basic_motions_short(basic_motions):
    ds = basic_motions
    tr = Trainer.for_dataset(ds, train=TrainConfig(epochs=6, seed=0))
    tr.fit(ds.x_train, ds.y_train, ds.len_train)
    assert tr.evaluate(ds.x_test, ds.y_test, ds.len_test)["accuracy"] >= 0.7   # chance 0.25


@pytest.mark.parametrize("name", ["solsa", "eprop", "bptt"])
def test_padding_invariance(name, small_x):
    """A zero-padded sample gives the prediction and gradient it gives alone, unpadded."""
    x, y, lengths = small_x
    tr = _trainer(name, update_points=1)
    # (the padded batch has one update point at its longest valid length: compare K=1 sums)
    g_batch = tr.sequence_gradients(x, y, lengths)
    g_alone = [tr.sequence_gradients(x[b:b + 1, :, : lengths[b]], y[b:b + 1]) for b in range(3)]
    for l, g in enumerate(g_batch):
        torch.testing.assert_close(g.w, sum(ga[l].w for ga in g_alone), atol=1e-10, rtol=1e-8)
    # more padding than the batch needs changes nothing either
    xp = torch.cat([x, torch.zeros(3, 5, 7, dtype=x.dtype)], -1)
    g_more = tr.sequence_gradients(xp, y, lengths)
    for g, gm in zip(g_batch, g_more):
        torch.testing.assert_close(g.w, gm.w, atol=0, rtol=0)
    pred = tr.predict(xp, lengths)
    counts = tr.spike_counts(xp, lengths)
    for b in range(3):
        alone = x[b:b + 1, :, : lengths[b]]
        assert tr.predict(alone).item() == pred[b].item()
        assert torch.equal(tr.spike_counts(alone)[0], counts[b])


def test_clamp_after_optimizer_step():
    torch.manual_seed(0)
    net = NetworkConfig(sizes=(4, 5, 2), decay_max=0.9, gain_min=0.1, gain_max=1.5, w_scale=3.0, w_bias=0.5)
    tr = Trainer(net, AlgorithmConfig("solsa", backend="reference", update_points=2),
                 OptimizerConfig("SGD", lr=1e4), train=TrainConfig(batch_size=4, epochs=2, dtype="float64"))
    x = torch.rand(8, 4, 10, dtype=torch.float64) * 3
    tr.fit(x, torch.tensor([0, 1] * 4))
    for p in tr.params:
        assert float(p.decay.detach().min()) >= 0.0 and float(p.decay.detach().max()) <= 0.9
        assert float(p.gain.detach().min()) >= 0.1 and float(p.gain.detach().max()) <= 1.5
    hit = sum(int(((p.decay == 0) | (p.decay == 0.9) | (p.gain == 0.1) | (p.gain == 1.5)).sum()) for p in tr.params)
    assert hit > 0, "the huge learning rate must have pushed some coefficients to a bound"
    # and the bound is the one of the config: clamp_ itself
    with torch.no_grad():
        tr.params[0].decay.fill_(3.0)
        tr.params[0].gain.fill_(-1.0)
    tr.clamp_()
    assert float(tr.params[0].decay.detach().max()) == 0.9 and float(tr.params[0].gain.detach().min()) == 0.1


def test_decay_max_must_be_below_one():
    with pytest.raises(ValueError, match="decay_max"):
        NetworkConfig(decay_max=1.0)


@pytest.mark.parametrize("kwargs, field", [
    (dict(target_rate=float("nan")), "LossConfig.target_rate"), (dict(target_rate=-5.0), "LossConfig.target_rate"),
    (dict(target_rate=1.5), "LossConfig.target_rate"), (dict(off_rate=float("nan")), "LossConfig.off_rate"),
    (dict(off_rate=1.0), "LossConfig.off_rate"), (dict(name="step_ce", scale=float("nan")), "LossConfig.scale"),
    (dict(scale=float("inf")), "LossConfig.scale"), (dict(scale=0.0), "LossConfig.scale"),
    (dict(scale=-1.0), "LossConfig.scale"),
])
def test_loss_config_rejects_values_that_train_to_nan(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LossConfig(**kwargs)
    LossConfig(target_rate=0.8, off_rate=0.1, scale=5.0)  # in range


def test_config_errors_name_the_bad_field():
    with pytest.raises(ValueError, match="NetworkConfig.gain_max .*got nan"):
        NetworkConfig(gain_max=float("nan"))
    with pytest.raises(ValueError, match="NetworkConfig.gain_min"):
        NetworkConfig(gain_min=float("nan"))
    with pytest.raises(ValueError, match="NetworkConfig.w_bias"):
        NetworkConfig(w_bias=float("inf"))
    with pytest.raises(ValueError, match="AlgorithmConfig.early_stop_threshold"):
        AlgorithmConfig(early_stop_threshold=2.0)
    with pytest.raises(ValueError, match="TrainConfig.device must be cpu, cuda, cuda:N or auto, got 'gpu'"):
        TrainConfig(device="gpu")
    with pytest.raises(ValueError, match="TrainConfig.eval_every"):
        TrainConfig(eval_every=0)
    TrainConfig(device="cuda:1"), TrainConfig(device="auto")  # valid strings (CUDA is checked when built)
    with pytest.raises(ValueError, match="device must be cpu, cuda, cuda:N or auto"):
        resolve_device("gpu")


def test_same_init_for_every_algorithm():
    ws = [Trainer(NetworkConfig(sizes=(4, 5, 2)), AlgorithmConfig(a, backend="reference")).params[0].w for a in ALGORITHMS]
    assert all(torch.equal(ws[0], w) for w in ws[1:])


def test_numpy_and_dataloader_inputs(spike_task):
    xtr, ytr, xte, yte = spike_task
    kw = dict(network=NetworkConfig(sizes=(12, 8, 3)), algorithm=AlgorithmConfig("solsa", backend="reference"),
              train=TrainConfig(batch_size=16, epochs=1, shuffle=False))
    a = Trainer(**kw)
    a.fit(xtr.numpy(), ytr.numpy())
    b = Trainer(**kw)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xtr, ytr), batch_size=16, shuffle=False)
    b.fit(dl)
    for p, q in zip(a.params, b.params):
        assert torch.equal(p.w, q.w)
    assert torch.equal(a.predict(xte.numpy()), b.predict(xte))
    # string labels through the label map
    c = Trainer(classes=["a", "b", "c"], **kw)
    c.fit(xtr, np.array(["a", "b", "c"])[ytr.numpy()])
    assert torch.equal(c.params[0].w, a.params[0].w)
    assert c.predict(xte[:3], return_labels=True)[0] in ("a", "b", "c")


def test_sizes_inferred_from_data(spike_task):
    xtr, ytr, _, _ = spike_task
    tr = Trainer(algorithm=AlgorithmConfig("solsa", backend="reference"), train=TrainConfig(epochs=1, batch_size=48))
    tr.fit(xtr, ytr)
    assert tr.sizes == (12, 100, 100, 3)


def test_bad_inputs():
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig("solsa", backend="reference"))
    x, y = torch.rand(4, 3, 6), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="shape"):
        tr.fit(torch.rand(4, 6), y)
    with pytest.raises(ValueError, match="channels"):
        tr.fit(torch.rand(4, 5, 6), y)
    with pytest.raises(ValueError, match="y must have shape"):
        tr.fit(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class indices"):
        tr.fit(x, torch.tensor([0, 1, 2, 0]))
    bad = x.clone()
    bad[2, 1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tr.fit(bad, y)
    with pytest.raises(ValueError, match="NaN"):
        tr.predict(bad)
    with pytest.raises(ValueError, match="lengths"):
        tr.fit(x, y, lengths=torch.tensor([6, 7, 1, 1]))
    with pytest.raises(ValueError, match="lengths"):
        tr.fit(x, y, lengths=torch.tensor([6, 0, 1, 1]))
    with pytest.raises(ValueError, match="unknown algorithm"):
        AlgorithmConfig("backprop")
    with pytest.raises(ValueError, match="unknown algorithm"):
        Trainer(algorithm="sols")
    with pytest.raises(ValueError, match="not a torch.optim.Optimizer class"):
        OptimizerConfig("Adamm")
    with pytest.raises(ValueError, match="unknown loss"):
        LossConfig("hinge")
    with pytest.raises(RuntimeError, match="not built"):
        Trainer(algorithm=AlgorithmConfig(backend="reference")).predict(x)


def test_unknown_dataset():
    from solsa_ext import load_dataset

    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("NoSuchData")


@needs_cuda
@pytest.mark.parametrize("name", ["solsa", "bptt"])
def test_cuda_matches_cpu(name, small_x):
    x, y, lengths = small_x
    cpu = _trainer(name, update_points=1)
    gpu = Trainer(NET, AlgorithmConfig(name, backend="auto", update_points=1), OptimizerConfig("Adam", lr=1e-2),
                  LossConfig(scale=2.0), TrainConfig(batch_size=4, dtype="float64", seed=3, device="cuda"))
    gc, gg = cpu.sequence_gradients(x, y, lengths), gpu.sequence_gradients(x, y, lengths)
    for a, b in zip(gc, gg):
        torch.testing.assert_close(a.w, b.w.cpu(), atol=1e-8, rtol=1e-6)
    gpu.fit(x, y, lengths, epochs=1)
    assert gpu.params[0].w.device.type == "cuda"


def test_import_without_compiled_extension():
    """import solsa_ext and a Trainer work when solsa_ext._C is missing (reference backend)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys; sys.modules['solsa_ext._C'] = None\n"
            "import solsa_ext, torch\n"
            "from solsa_ext import Trainer, NetworkConfig\n"
            "tr = Trainer(NetworkConfig(sizes=(3, 4, 2)))\n"
            "tr.fit(torch.rand(2, 3, 5), torch.tensor([0, 1]), epochs=1)\n"
            "print(tr.backend)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": root})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "reference"
    assert "RuntimeWarning" in r.stderr and "could not be imported" in r.stderr, "the fallback must be announced"


def test_stratified_split():
    from solsa_ext.trainer import stratified_split

    y = torch.tensor([0] * 10 + [1] * 6 + [2] * 2)
    tr, va = stratified_split(y, 0.3, seed=1)
    assert sorted(tr.tolist() + va.tolist()) == list(range(18))
    assert [int((y[va] == c).sum()) for c in range(3)] == [3, 2, 1]
    assert torch.equal(stratified_split(y, 0.3, seed=1)[1], va)


def test_train_batch_steps_the_optimizer():
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig("solsa", update_points=3, backend="reference"))
    w0 = tr.params[0].w.detach().clone()
    out = tr.train_batch(torch.rand(4, 3, 9) * 3, [0, 1, 0, 1])
    assert tr.updates == 3 and not torch.equal(w0, tr.params[0].w.detach())
    assert set(out) == {"loss", "accuracy", "early_stopped"} and 0.0 <= out["accuracy"] <= 1.0


def test_input_finiteness_check_is_blockwise_and_exact():
    """The Trainer checks its input a block of steps at a time (bounded temporaries, so its
    memory does not grow with T); it must still find a NaN/inf anywhere."""
    from solsa_ext.trainer import _all_finite

    x = torch.randn(3, 5, 1000)
    assert _all_finite(x) and _all_finite(x, max_elems=7)
    for t, bad in ((0, float("nan")), (999, float("inf")), (517, float("-inf"))):
        y = x.clone()
        y[2, 4, t] = bad
        assert not _all_finite(y, max_elems=16), (t, bad)
        assert not _all_finite(y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_is_fused_by_default_and_takes_adams_step(dtype):
    """OptimizerConfig builds Adam with torch's fused kernel unless told otherwise; its first
    step is Adam's by hand: p - lr * g / (|g| + eps) (bias-corrected m = g, v = g^2)."""
    p = torch.randn(7, 5, dtype=dtype, requires_grad=True)
    g = torch.randn(7, 5, dtype=dtype)
    p0 = p.detach().clone()
    opt = OptimizerConfig(lr=1e-2).build([p])
    assert opt.param_groups[0]["fused"] is True
    p.grad = g.clone()
    opt.step()
    expect = p0 - 1e-2 * g / (g.abs() + 1e-8)
    tol = 1e-15 if dtype == torch.float64 else 1e-7
    torch.testing.assert_close(p.detach(), expect, rtol=0, atol=tol)
    # an explicit choice is kept
    for kw in ({"foreach": False}, {"fused": False}):
        assert not OptimizerConfig(lr=1e-2, kwargs=kw).build([p]).param_groups[0]["fused"]
    assert "fused" not in OptimizerConfig("SGD", lr=1e-2).build([p]).defaults or \
        not OptimizerConfig("SGD", lr=1e-2).build([p]).param_groups[0].get("fused")


def test_trainer_uses_the_fused_adam():
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig("solsa", update_points=3))
    assert tr.optimizer.param_groups[0]["fused"] is True


def test_fused_default_skips_params_torch_cannot_fuse():
    """Complex parameters: torch accepts fused=True at construction and fails at the first
    step, so the config must not ask for it."""
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.complex64))
    opt = OptimizerConfig(lr=0.1).build([p])
    assert not opt.param_groups[0]["fused"]
    p.grad = torch.ones_like(p)
    opt.step()
    # torch's Adam treats a complex number as two reals: each part moves by lr * g / |g|
    # (the gradient 1 + 0j moves the real part only)
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.9 + 0j, dtype=torch.complex64))


def test_optimizer_impl_is_reported():
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig("solsa"))
    assert tr.optimizer_impl == "fused"
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig("solsa"), OptimizerConfig(kwargs={"foreach": False}))
    assert tr.optimizer_impl == "loop"


def test_labels_are_required_for_fit_and_evaluate_of_tensors():
    """Without y every sample used to be trained/scored as class 0 (a meaningless accuracy)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 7, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    tr = _trainer("solsa")
    with pytest.raises(ValueError, match="needs the labels y"):
        tr.fit(x, epochs=1)
    tr.fit(x, y, epochs=1)
    with pytest.raises(ValueError, match="needs the labels y"):
        tr.evaluate(x)
    assert tr.predict(x).shape == (6,)          # predictions alone need no labels
    with pytest.raises(ValueError, match="epochs"):
        tr.fit(x, y, epochs=-1)
    with pytest.raises(ValueError, match="whole numbers"):
        tr.evaluate(x, y, lengths=torch.tensor([7.0, 6.5, 7.0, 7.0, 7.0, 7.0]))
    r = tr.evaluate(x, y, lengths=torch.tensor([7.0, 6.0, 7.0, 7.0, 7.0, 7.0]))   # integral floats are fine
    assert r["n"] == 6


def test_single_class_training_labels_warn():
    tr = Trainer(NetworkConfig(sizes=None), AlgorithmConfig("solsa", backend="reference"),
                 train=TrainConfig(batch_size=4, dtype="float64"))
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    with pytest.warns(UserWarning, match="single class"):
        tr.fit(x, torch.zeros(4, dtype=torch.int64), epochs=1)


@pytest.mark.parametrize("algo,want", [("bptt", [6]), ("tbptt", [2, 5, 6])])
def test_update_hook_gets_the_step_index_for_the_autograd_baselines(algo, want):
    """BPTT updates at the last step, TBPTT at the end of each truncation window (it used to get -1)."""
    steps = []
    tr = _trainer(algo, **({"truncation": 3} if algo == "tbptt" else {}))
    tr.update_hook = lambda t, step, grads: steps.append(step)
    x = torch.randn(4, 5, 7, dtype=torch.float64)
    tr.fit(x, torch.tensor([0, 1, 2, 0]), epochs=1)
    assert steps == want


# ------------------------------------------------------- found by a fresh-user review
@pytest.mark.parametrize("kwargs, msg", [
    ({"weight_decay": float("inf")}, "kwargs weight_decay must be finite"),
    ({"weight_decay": float("nan")}, "kwargs weight_decay must be finite"),
    ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0"),
    ({"betas": (float("nan"), 0.9)}, "kwargs betas must be finite"),
    ({"eps": float("inf")}, "kwargs eps must be finite"),
    ({"weight_decay": torch.tensor(float("inf"))}, "kwargs weight_decay must be finite"),
    ({"weight_decay": np.float32(-1)}, "weight_decay must be a finite number >= 0"),
    ({"weight_decay": torch.tensor(-1.0)}, "weight_decay must be a finite number >= 0"),
    ({"weight_decay": None}, "weight_decay must be a finite number >= 0"),
    ({"weight_decay": 10 ** 400}, "kwargs weight_decay must be finite"),
    ({"betas": np.array([0.9, float("nan")])}, "kwargs betas must be finite"),
    ({"betas": (torch.tensor(0.9), torch.tensor(float("nan")))}, "kwargs betas must be finite"),
    ({"lr": 0.1}, "must not set lr or params"),
])
def test_optimizer_config_rejects_non_finite_hyperparameters(kwargs, msg):
    # weight_decay=inf used to be accepted and turned every weight into NaN at the first step
    with pytest.raises(ValueError, match=msg):
        OptimizerConfig(kwargs=kwargs)
    OptimizerConfig(kwargs={"weight_decay": 0, "amsgrad": True, "betas": (0.8, 0.9)})  # fine


def test_optimizer_config_rejects_closure_optimizers():
    with pytest.raises(ValueError, match="LBFGS.*needs a closure"):
        OptimizerConfig("LBFGS")
    with pytest.raises(ValueError, match="'Optimizer' is not a torch.optim.Optimizer class"):
        OptimizerConfig("Optimizer")  # the abstract base
    assert OptimizerConfig("SGD").optimizer_class() is torch.optim.SGD


def test_unbuilt_trainer_checks_label_range():
    x = torch.randn(8, 3, 10)
    with pytest.raises(ValueError, match=r"class indices must lie in >= 0, got \[-1, 1\]"):
        Trainer(train=TrainConfig(epochs=1)).fit(x, torch.tensor([0, 1, 0, 1, 0, 1, 0, -1]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\) \(the label map classes=\['a', 'b'\]\), got \[0, 2\]"):
        Trainer(classes=["a", "b"], train=TrainConfig(epochs=1)).fit(x, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))


def test_dataloader_class_count_error_says_where_it_came_from():
    x = torch.randn(8, 3, 12)
    y = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])  # the first batch of 4 has no class 2
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    with pytest.raises(ValueError, match="taken from the first DataLoader batch"):
        Trainer(algorithm=AlgorithmConfig(backend="reference"), train=TrainConfig(epochs=1)).fit(dl)
    tr = Trainer(algorithm=AlgorithmConfig(backend="reference"), train=TrainConfig(epochs=1), classes=["a", "b", "c"])
    tr.fit(dl)
    assert tr.n_classes == 3 and tr.history[-1]["params_finite"]


def test_fit_flags_non_finite_parameters():
    x, y = torch.randn(8, 3, 10), torch.tensor([0, 1] * 4)
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig(backend="reference"), train=TrainConfig(epochs=1))
    tr.fit(x, y)
    assert tr.history[-1]["params_finite"] and tr.nonfinite_params() == []
    with torch.no_grad():
        tr.params[1].w[0, 0] = float("nan")  # what a diverged update leaves behind
    assert tr.nonfinite_params() == ["layer1.w"]
    with pytest.warns(RuntimeWarning, match=r"after epoch 2 the parameters .*layer1\.w.* are not finite.*diverged"):
        tr.fit(x, y)  # (the NaN spreads to the other parameters through the gradients)
    assert tr.history[-1]["params_finite"] is False and "layer1.w" in tr.nonfinite_params()


def test_odd_inputs_get_errors_that_say_what_is_wrong():
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig(backend="reference"), train=TrainConfig(epochs=1))
    x, y = torch.randn(4, 3, 10), torch.tensor([0, 1, 0, 1])
    with pytest.raises(TypeError, match="x must be a tensor/array .* got str"):
        tr.fit("abc", y)
    with pytest.raises(ValueError, match="lengths must be finite whole numbers of steps, got NaN or inf"):
        tr.fit(x, y, lengths=torch.tensor([10.0, float("nan"), 5.0, 5.0]))
    with pytest.raises(ValueError, match="got fractional values"):
        tr.fit(x, y, lengths=torch.tensor([10.0, 2.5, 5.0, 5.0]))
    with pytest.raises(ValueError, match=r"Trainer.fit: val: x has 4 channels"):
        tr.fit(x, y, val=(torch.randn(2, 4, 10), torch.tensor([0, 1])))
    with pytest.raises(ValueError, match=r"val must be \(x, y\), \(x, y, lengths\) or \(loader,\)"):
        tr.fit(x, y, val=torch.randn(2, 3, 10))
    assert tr.epoch == 0  # nothing trained before the checks
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2)
    tr.fit(x, y, val=(dl,))  # a DataLoader as validation data, as evaluate() takes it
    assert tr.history[-1]["val_accuracy"] == tr.evaluate(dl)["accuracy"]
    # a network built from the first DataLoader batch: the bad val is named at the first evaluation
    lazy = Trainer(algorithm=AlgorithmConfig(backend="reference"), train=TrainConfig(epochs=1))
    with pytest.raises(ValueError, match=r"Trainer.fit: val: x has 5 channels"):
        lazy.fit(dl, val=(torch.randn(2, 5, 10), torch.tensor([0, 1])))
