"""Shared helpers of the kernel tests: random layers and margin-checked inputs."""
from __future__ import annotations

from typing import Sequence

import torch

from solsa_ext.neuron import NeuronConfig
from solsa_ext.reference import LayerParams, solsa_ref
from solsa_ext.rule import RuleFlags

NEURON = NeuronConfig(lam=0.8, vth=1.0, sigma=0.5)

#: distinct flag combinations of the engine (section 7 plus filter-without-reset)
FLAG_CASES = {
    "solsa": RuleFlags(filter=True, adaptive=True, reset_in_trace=True, gamma=0.9),
    "variant1": RuleFlags(filter=True, adaptive=False, reset_in_trace=True),
    "filter_noreset": RuleFlags(filter=True, adaptive=True, reset_in_trace=False, gamma=0.7),
    "eprop": RuleFlags(filter=False, adaptive=False, reset_in_trace=True),
    "ottt": RuleFlags(filter=False, adaptive=False, reset_in_trace=False),
}


def make_params(sizes: Sequence[int], dtype: torch.dtype, gen: torch.Generator) -> list[LayerParams]:
    ps = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        w = torch.randn(b, a, generator=gen, dtype=torch.float64) * (2.0 / a**0.5)
        decay = torch.rand(b, a, generator=gen, dtype=torch.float64) * 0.9
        gain = torch.rand(b, a, generator=gen, dtype=torch.float64) + 0.5
        ps.append(LayerParams(w.to(dtype), decay.to(dtype), gain.to(dtype)))
    return ps


def make_inputs(B: int, C: int, T: int, dtype: torch.dtype, gen: torch.Generator, spikes: bool = False) -> torch.Tensor:
    if spikes:
        return (torch.rand(B, C, T, generator=gen, dtype=torch.float64) < 0.3).to(dtype)
    return (torch.randn(B, C, T, generator=gen, dtype=torch.float64) * 1.5).to(dtype)


def min_margin(x: torch.Tensor, params: Sequence[LayerParams], rule: RuleFlags) -> float:
    """Smallest |V - vth| over every neuron and step of a float64 reference run."""
    from solsa_ext.reference import LayerState, layer_step_ref

    x64 = x.double()
    ps = [LayerParams(p.w.double(), p.decay.double(), p.gain.double()) for p in params]
    B, C, T = x.shape
    states = [LayerState.zeros(B, p.n_out, p.n_in, torch.float64, x.device) for p in ps]
    m = float("inf")
    for t in range(T):
        inp = x64[:, :, t]
        for l, p in enumerate(ps):
            states[l] = layer_step_ref(inp, p, states[l], NEURON, rule)
            m = min(m, (states[l].V - NEURON.vth).abs().min().item())
            inp = states[l].O
    return m


def draw_case(sizes, B, T, dtype, rule, seed, margin=1e-4, spikes=False):
    """Draw params and inputs whose run keeps every V at least ``margin`` from threshold.

    Float rounding may legitimately flip a spike whose membrane sits within rounding
    distance of the threshold; such draws are rejected so comparisons can be exact on
    the spikes and tight on everything else.
    """
    for k in range(50):
        gen = torch.Generator().manual_seed(1000 * seed + k)
        params = make_params(sizes, dtype, gen)
        x = make_inputs(B, sizes[0], T, dtype, gen, spikes=spikes)
        if min_margin(x, params, rule) > margin:
            return params, x, gen
    raise RuntimeError("could not draw a case away from the threshold")


def linear_quadratic_loss(C: torch.Tensor):
    """E = sum_t sum(C[t] * O[t] + 0.5 * O[t]^2); returns (E(spikes), dE/dO callable)."""

    def E(spikes: torch.Tensor) -> torch.Tensor:
        return (C * spikes).sum() + 0.5 * (spikes**2).sum()

    def dEdO(t: int, O: torch.Tensor) -> torch.Tensor:
        return C[:, :, t] + O

    return E, dEdO


def run_engine(x, params, rule, dEdO, backend="fused", mask=None):
    """Drive OnlineEngine over a whole sequence the same way solsa_ref does."""
    from solsa_ext.engine import OnlineEngine

    eng = OnlineEngine(params, NEURON, rule, backend=backend)
    B, C, T = x.shape
    eng.reset(B)
    spikes = []
    for t in range(T):
        O = eng.forward(x[:, :, t])
        spikes.append(O.clone())
        eng.backward(dEdO(t, O), None if mask is None else mask[:, t])
    return eng, torch.stack(spikes, -1)


def reference(x, params, rule, dEdO, mask=None):
    return solsa_ref(x, params, NEURON, rule, dEdO, mask)


def assert_same(a, b, what):
    """Both None, or bitwise equal tensors (the message gives the largest difference)."""
    if a is None or b is None:
        assert a is None and b is None, what
        return
    assert torch.equal(a, b), f"{what}: max diff {(a - b).abs().max().item()}"
