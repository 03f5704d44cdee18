"""solsa_ext.nn.PSPLIF against the eager reference of the math contract."""
from __future__ import annotations

import pytest
import torch

from conftest import BACKENDS
from solsa_ext.neuron import NeuronConfig, decay_gain_coef
from solsa_ext.nn import PSPLIF
from solsa_ext.reference import LayerGrads, LayerParams, LayerState, layer_step_ref, learn_ref, spatial_error_ref
from solsa_ext.rule import RULES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule_name", ["solsa", "variant1", "eprop", "ottt"])
def test_layer_matches_reference(rule_name, backend):
    rule = RULES[rule_name]
    g = torch.Generator().manual_seed(1)
    layer = PSPLIF(5, 4, filter=rule.filter, adaptive=rule.adaptive, reset_in_trace=rule.reset_in_trace,
                   backend=backend, generator=g, w_scale=3.0, dtype=torch.float64)
    with torch.no_grad():
        layer.decay.uniform_(0.2, 0.9, generator=g)
        layer.gain.uniform_(0.3, 1.2, generator=g)
    p = LayerParams(layer.w.detach().clone(), layer.decay.detach().clone(), layer.gain.detach().clone())
    nc = NeuronConfig(0.9, 1.0, 0.5)
    B, T = 3, 15
    x = torch.rand(B, 5, T, generator=g, dtype=torch.float64) * 2
    dEdO = torch.randn(B, 4, T, generator=g, dtype=torch.float64)
    sg_low = torch.rand(B, 5, generator=g, dtype=torch.float64)
    s = LayerState.zeros(B, 4, 5, torch.float64, torch.device("cpu"))
    ref_g = LayerGrads(torch.zeros(4, 5, dtype=torch.float64), torch.zeros(4, 5, dtype=torch.float64),
                       torch.zeros(4, 5, dtype=torch.float64))
    layer.reset_state(B)
    for t in range(T):
        s = layer_step_ref(x[:, :, t], p, s, nc, rule)
        O = layer(x[:, :, t])
        assert torch.equal(O, s.O)
        torch.testing.assert_close(layer.V, s.V)
        torch.testing.assert_close(layer.sg, s.sg)
        mu = layer.error(dEdO[:, :, t])
        torch.testing.assert_close(mu, dEdO[:, :, t] * s.sg)
        coef = decay_gain_coef(t, 0.9)
        layer.accumulate(mu, coef)
        learn_ref(mu, p, s, ref_g, coef, rule)
        torch.testing.assert_close(layer.backprop(mu, sg_low), spatial_error_ref(mu, p, sg_low, rule))
    torch.testing.assert_close(layer.w.grad, ref_g.w)
    if rule.adaptive:
        torch.testing.assert_close(layer.decay.grad, ref_g.decay)
        torch.testing.assert_close(layer.gain.grad, ref_g.gain)
    else:
        assert layer.decay.grad is None


def test_clamp_and_errors():
    layer = PSPLIF(3, 2, decay_max=0.8, gain_range=(0.1, 1.0), backend="reference")
    with torch.no_grad():
        layer.decay.fill_(2.0)
        layer.gain.fill_(-3.0)
    layer.clamp_()
    assert torch.all(layer.decay == 0.8) and torch.all(layer.gain == 0.1)
    with pytest.raises(RuntimeError, match="reset_state"):
        layer(torch.rand(2, 3))
    layer.reset_state(2)
    with pytest.raises(ValueError, match="x_t"):
        layer(torch.rand(2, 4))
    with pytest.raises(ValueError, match="adaptive"):
        PSPLIF(3, 2, filter=False, adaptive=True)
    with pytest.raises(ValueError, match="decay_max"):
        PSPLIF(3, 2, decay_max=1.0)


def test_is_a_module_with_parameters():
    layer = PSPLIF(3, 2, backend="reference")
    names = dict(layer.named_parameters())
    assert set(names) == {"w", "decay", "gain"} and names["w"].shape == (2, 3)
    assert "n_in=3" in repr(layer)


@pytest.mark.parametrize("kwargs,name", [
    (dict(decay_init=1.5), "decay_init"),            # above decay_max: the filter would grow without bound
    (dict(decay_init=-0.1), "decay_init"),
    (dict(decay_init=float("nan")), "decay_init"),
    (dict(gain_init=-1.0), "gain_init"),              # outside gain_range
    (dict(gain_init=3.0), "gain_init"),
    (dict(gain_range=(0.0, float("inf"))), "gain_range"),
    (dict(gain_range=(1.0, 0.5)), "gain_range"),
    (dict(w_scale=float("nan")), "w_scale"),
    (dict(w_scale=0.0), "w_scale"),
    (dict(decay_max=float("nan")), "decay_max"),
    (dict(lam=float("nan")), "lam"),
])
def test_constructor_rejects_values_the_trainer_config_rejects(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PSPLIF(3, 4, backend="reference", **kwargs)


def test_bad_calls_name_the_argument():
    with pytest.raises(ValueError, match="n_in"):
        PSPLIF(0, 4)
    with pytest.raises(TypeError, match="dtype"):
        PSPLIF(3, 4, dtype=torch.int32)
    layer = PSPLIF(3, 4, backend="reference")
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch"):
            layer.reset_state(bad)
    layer.reset_state(2)
    with pytest.raises(TypeError, match="float64"):
        layer(torch.rand(2, 3, dtype=torch.float64))      # no silent cast to float32
    o = layer(torch.ones(2, 3, dtype=torch.bool))          # spikes as bool are converted
    assert o.dtype == torch.float32
    with pytest.raises(ValueError, match="dEdO"):
        layer.error(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="mask"):
        layer.error(torch.zeros(2, 4), mask=torch.ones(3))
    mu = layer.error(torch.ones(2, 4), mask=torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(mu, layer.sg * torch.tensor([[1.0], [0.0]]))
