"""Registration of torch.ops.solsa.*: opcheck, torch.compile, determinism, bad inputs."""
from __future__ import annotations

import pytest
import torch

import solsa_ext.ops  # noqa: F401
from solsa_ext import ops

from _netutil import FLAG_CASES, NEURON, draw_case, linear_quadratic_loss, run_engine

D = torch.float64


def _layer(B=3, n_out=4, n_in=5, dtype=D, presyn=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(
        x=r(B, n_in), w=r(n_out, n_in), decay=r(n_out, n_in).abs() * 0.5, gain=r(n_out, n_in).abs(),
        F=r(B, n_out, n_in), F_prev=torch.zeros(B, n_out, n_in, dtype=dtype),
        e=r(B, n_in) if presyn else r(B, n_out, n_in),
        V=r(B, n_out), O=(r(B, n_out) > 0).to(dtype), sg=r(B, n_out).abs(),
    )


def _step_args(a, filt=True, adaptive=True, reset=True):
    return (a["x"], a["w"], a["decay"] if filt else None, a["gain"] if filt else None,
            a["F"] if filt else None, a["F_prev"] if adaptive else None, a["e"], a["V"], a["O"], a["sg"],
            NEURON.lam, NEURON.vth, NEURON.sigma, reset)


@pytest.mark.parametrize("rule_name", list(FLAG_CASES))
def test_opcheck_step(rule_name):
    r = FLAG_CASES[rule_name]
    a = _layer(presyn=r.presyn)
    torch.library.opcheck(torch.ops.solsa.step.default, _step_args(a, r.filter, r.adaptive, r.reset_in_trace))


@pytest.mark.parametrize("presyn,adaptive", [(False, True), (False, False), (True, False)])
def test_opcheck_learn(presyn, adaptive):
    a = _layer(presyn=presyn)
    gw, gd, gg = (torch.zeros_like(a["w"]) for _ in range(3))
    args = (a["sg"], a["e"], gw, a["x"] if adaptive else None, a["w"] if adaptive else None,
            a["F_prev"] if adaptive else None, gd if adaptive else None, gg if adaptive else None, 0.7)
    torch.library.opcheck(torch.ops.solsa.learn.default, args)


@pytest.mark.parametrize("with_gain", [True, False])
def test_opcheck_spatial_error(with_gain):
    a = _layer()
    mu_up = torch.randn(3, 4, dtype=D)
    sg_low = torch.rand(3, 5, dtype=D)
    torch.library.opcheck(torch.ops.solsa.spatial_error.default, (mu_up, a["w"], a["gain"] if with_gain else None, sg_low))


@pytest.mark.parametrize("with_gain", [True, False])
def test_spatial_error_autograd_matches_gradcheck(with_gain):
    """spatial_error is pure: its registered backward must give the derivatives of
    (mu_up @ (w_up * gain_up)) * sg_low (numerical gradcheck, float64), also through opcheck."""
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(3, 4, generator=g, dtype=D).requires_grad_()
    w = torch.randn(4, 5, generator=g, dtype=D).requires_grad_()
    gain = (torch.rand(4, 5, generator=g, dtype=D) + 0.5).requires_grad_() if with_gain else None
    sg = torch.rand(3, 5, generator=g, dtype=D).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: torch.ops.solsa.spatial_error(*a), (mu, w, gain, sg))
    torch.library.opcheck(torch.ops.solsa.spatial_error.default, (mu, w, gain, sg))
    # and against autograd through the plain formula
    out = torch.ops.solsa.spatial_error(mu, w, gain, sg)
    ref = (mu @ (w * gain if with_gain else w)) * sg
    go = torch.randn(3, 5, generator=g, dtype=D)
    got = torch.autograd.grad(out, [t for t in (mu, w, gain, sg) if t is not None], go)
    want = torch.autograd.grad(ref, [t for t in (mu, w, gain, sg) if t is not None], go)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _mutating_calls(a):
    gw = torch.zeros_like(a["w"])
    S = 2
    seq = lambda n: torch.zeros(S, 3, n, dtype=D)  # noqa: E731
    return {
        "step": (torch.ops.solsa.step, list(_step_args(a)), 1),                    # w
        "learn": (torch.ops.solsa.learn, [a["sg"], a["e"], gw, None, None, None, None, None, 0.7], 0),  # mu
        "forward_segment": (torch.ops.solsa.forward_segment,
                            [torch.randn(S, 3, 5, dtype=D), a["w"], a["decay"], a["gain"], a["F"], a["V"], a["O"],
                             a["sg"], seq(4), seq(4), NEURON.lam, NEURON.vth, NEURON.sigma], 1),  # w
        "learn_segment": (torch.ops.solsa.learn_segment,
                          [torch.randn(S, 3, 5, dtype=D), a["w"], None, None, None, a["e"], a["sg"], seq(4),
                           seq(4), gw, None, None, [1.0] * S, NEURON.lam, NEURON.vth, True], 8),  # mu_seq
    }


@pytest.mark.parametrize("op", ["step", "learn", "forward_segment", "learn_segment"])
def test_mutating_ops_refuse_arguments_that_require_grad(op):
    """They have no autograd formula: an argument that requires grad (grad mode on) is an
    error naming it, never a silently missing gradient; under no_grad the call runs."""
    fn, args, k = _mutating_calls(_layer())[op]
    args[k] = args[k].clone().requires_grad_()
    names = {"step": "w", "learn": "mu", "forward_segment": "w", "learn_segment": "mu_seq"}
    with pytest.raises(ValueError, match=rf"'{names[op]}' requires grad.*no autograd formula"):
        fn(*args)
    with torch.no_grad():
        fn(*args)


def test_shape_errors_name_the_argument_that_is_wrong():
    a = _layer()
    gw = torch.zeros_like(a["w"])  # (4, 5)
    with pytest.raises(ValueError, match=r"'mu' must have shape \(3, 4\), got \(3, 6\)"):
        torch.ops.solsa.learn(torch.zeros(3, 6, dtype=D), a["e"], gw, None, None, None, None, None, 1.0)
    with pytest.raises(ValueError, match=r"'mu_up' must have shape \(3, 4\), got \(3, 6\)"):
        torch.ops.solsa.spatial_error(torch.zeros(3, 6, dtype=D), a["w"], None, torch.rand(3, 5, dtype=D))


class TwoLayerOnline(torch.nn.Module):
    """A small model that runs T steps of two layers and one learning pass per step."""

    def __init__(self, w1, d1, g1, w2, d2, g2):
        super().__init__()
        self.w1, self.d1, self.g1 = w1, d1, g1
        self.w2, self.d2, self.g2 = w2, d2, g2

    def forward(self, x, target):
        B, C, T = x.shape
        z = lambda *s: torch.zeros(*s, dtype=x.dtype)  # noqa: E731
        n1, n2 = self.w1.shape[0], self.w2.shape[0]
        F1, P1, e1, V1, O1, s1 = z(B, n1, C), z(B, n1, C), z(B, n1, C), z(B, n1), z(B, n1), z(B, n1)
        F2, P2, e2, V2, O2, s2 = z(B, n2, n1), z(B, n2, n1), z(B, n2, n1), z(B, n2), z(B, n2), z(B, n2)
        gw1, gd1, gg1, gw2, gd2, gg2 = z(n1, C), z(n1, C), z(n1, C), z(n2, n1), z(n2, n1), z(n2, n1)
        count = z(B, n2)
        for t in range(T):
            xt = x[:, :, t]
            torch.ops.solsa.step(xt, self.w1, self.d1, self.g1, F1, P1, e1, V1, O1, s1, 0.8, 1.0, 0.5, True)
            torch.ops.solsa.step(O1, self.w2, self.d2, self.g2, F2, P2, e2, V2, O2, s2, 0.8, 1.0, 0.5, True)
            count = count + O2
            mu2 = (O2 - target) * s2
            torch.ops.solsa.learn(mu2, e2, gw2, O1, self.w2, P2, gd2, gg2, 1.0 + t)
            mu1 = torch.ops.solsa.spatial_error(mu2, self.w2, self.g2, s1)
            torch.ops.solsa.learn(mu1, e1, gw1, xt, self.w1, P1, gd1, gg1, 1.0 + t)
        return count, gw1, gd1, gg1, gw2, gd2, gg2


def test_torch_compile_fullgraph_matches_eager():
    g = torch.Generator().manual_seed(5)
    r = lambda *s: torch.randn(*s, generator=g, dtype=D)  # noqa: E731
    m = TwoLayerOnline(r(6, 4), r(6, 4).abs() * 0.5, r(6, 4).abs(), r(3, 6), r(3, 6).abs() * 0.5, r(3, 6).abs())
    x = r(2, 4, 7) * 2
    target = (r(2, 3) > 0).to(D)
    want = m(x, target)
    got = torch.compile(m, fullgraph=True, backend="aot_eager")(x, target)
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert want[1].abs().max() > 0, "degenerate: no gradient reached layer 1"


def test_deterministic_across_thread_counts():
    rule = FLAG_CASES["solsa"]
    params, x, gen = draw_case((20, 64, 48, 5), 16, 12, torch.float32, rule, seed=9)
    _, dEdO = linear_quadratic_loss(torch.randn(16, 5, 12, generator=gen))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        e1, s1 = run_engine(x, params, rule, dEdO)
        torch.set_num_threads(2)
        e2, s2 = run_engine(x, params, rule, dEdO)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(s1, s2)
    for a, b in zip(e1.grads(), e2.grads()):
        assert torch.equal(a.w, b.w) and torch.equal(a.decay, b.decay) and torch.equal(a.gain, b.gain)


# ------------------------------------------------------------------ bad inputs
def _call_step(**over):
    a = _layer()
    a.update(over)
    torch.ops.solsa.step(*_step_args(a))


@pytest.mark.parametrize(
    "over,match",
    [
        (dict(x=torch.randn(3, 5, dtype=torch.float32)), "'x' has dtype torch.float32"),
        (dict(x=torch.randn(3, 5, dtype=torch.float16)), "'x' must be float32 or float64"),
        (dict(x=torch.randn(3, 6, dtype=D)), "'x' must have shape"),
        (dict(V=torch.zeros(3, 5, dtype=D)), "'V' must have shape"),
        (dict(x=torch.randn(3, 5, 1, dtype=D)), "'x' must be 2-D"),
        (dict(x=torch.tensor([[float("nan")] * 5] * 3, dtype=D)), "'x' contains NaN or Inf"),
        (dict(w=torch.full((4, 5), float("inf"), dtype=D)), "'w' contains NaN or Inf"),
        (dict(F=torch.zeros(3, 5, 4, dtype=D).transpose(1, 2)), "'F' must be contiguous"),
        (dict(e=torch.zeros(3, 4, 5, device="meta", dtype=D)), "'e' is on meta"),
        (dict(x=torch.zeros(0, 5, dtype=D)), "batch is empty"),
    ],
)
def test_step_bad_inputs(over, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _call_step(**over)


def test_step_bad_flags():
    a = _layer(presyn=False)
    with pytest.raises(ValueError, match="trace is presynaptic"):
        torch.ops.solsa.step(*_step_args(a, filt=False, adaptive=False, reset=False))
    with pytest.raises(ValueError, match="'decay' is required"):
        args = list(_step_args(a))
        args[2] = None
        torch.ops.solsa.step(*args)
    with pytest.raises(ValueError, match="'sigma' must be > 0"):
        args = list(_step_args(a))
        args[12] = 0.0
        torch.ops.solsa.step(*args)


def test_learn_and_spatial_error_bad_inputs():
    a = _layer()
    gw = torch.zeros(4, 5, dtype=D)
    with pytest.raises(ValueError, match="'F_prev' is required"):
        torch.ops.solsa.learn(a["sg"], a["e"], gw, a["x"], a["w"], None, torch.zeros_like(gw), None, 1.0)
    with pytest.raises(ValueError, match="'mu' contains NaN"):
        torch.ops.solsa.learn(torch.full((3, 4), float("nan"), dtype=D), a["e"], gw)
    with pytest.raises(ValueError, match=r"'e' must have shape \(3, 4, 5\) \(B from mu, n_out and n_in from gw\)"):
        torch.ops.solsa.learn(a["sg"], torch.zeros(3, 4, 6, dtype=D), gw)
    # a batch mismatch names where the expected batch came from
    with pytest.raises(ValueError, match=r"'e' must have shape \(2, 4, 5\) \(B from mu"):
        torch.ops.solsa.learn(a["sg"][:2], torch.zeros(3, 4, 5, dtype=D), gw)
    with pytest.raises(ValueError, match=r"'sg_low' must have shape \(3, 5\) \(B from mu_up, n_low from w_up\)"):
        torch.ops.solsa.spatial_error(torch.zeros(3, 4, dtype=D), a["w"], None, torch.zeros(3, 4, dtype=D))
    with pytest.raises(ValueError, match="batch is empty"):
        torch.ops.solsa.spatial_error(torch.zeros(0, 4, dtype=D), a["w"], None, torch.zeros(0, 5, dtype=D))


def test_input_checks_can_be_switched_off():
    a = _layer()
    a["x"] = torch.full((3, 5), float("nan"), dtype=D)
    with ops.input_checks(False):
        torch.ops.solsa.step(*_step_args(a))     # scans skipped: NaN propagates, no exception
    assert torch.isnan(a["V"]).all()
    assert ops.input_checks_enabled()
