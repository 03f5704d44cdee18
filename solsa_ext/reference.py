"""Eager PyTorch reference of the SOLSA engine: a literal time loop of SOLSA_MATH.md.

This module is the executable form of the math contract. Tests compare the fused
kernels against it, benchmarks time it as the "eager" baseline, and users may import
it to check their own models. It favours clarity over speed: every per-synapse
quantity is materialised, even where the fused engine keeps less (OTTT's trace).

Shape legend
------------
    B        batch size
    T        number of time steps
    L        number of layers
    N[l]     size of layer l's output; N[-1] (= C) is the input size
    x        (B, C, T)             input currents or spikes
    w, decay, gain of layer l      (N[l], N[l-1])
    F, F_prev, e of layer l        (B, N[l], N[l-1])   synapse filter, its previous value, trace
    V, O, sg of layer l            (B, N[l])           membrane, spikes, surrogate derivative
    mu of layer l                  (B, N[l])           spatial error
    dEdO(t, O_top)                 (B, N[L-1])         derivative of the step-t loss w.r.t. O_top[t]
    mask                           (B, T)              multiplies the top error (padding, early stop)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch

from .neuron import NeuronConfig, decay_gain_coef, surrogate
from .rule import RuleFlags


@dataclass
class LayerParams:
    """Parameters of one layer: each (n_out, n_in). ``decay``/``gain`` unused without the filter."""

    w: torch.Tensor
    decay: Optional[torch.Tensor] = None
    gain: Optional[torch.Tensor] = None

    @property
    def n_out(self) -> int:
        return self.w.shape[0]

    @property
    def n_in(self) -> int:
        return self.w.shape[1]


@dataclass
class LayerState:
    """Per-sample state of one layer after a step (all start at zero)."""

    F: torch.Tensor        # (B, n_out, n_in)  F[t]
    F_prev: torch.Tensor   # (B, n_out, n_in)  F[t-1]
    e: torch.Tensor        # (B, n_out, n_in)  e[t]
    V: torch.Tensor        # (B, n_out)
    O: torch.Tensor        # (B, n_out)
    sg: torch.Tensor       # (B, n_out)
    x: torch.Tensor        # (B, n_in)  the input x[t] of this step

    @staticmethod
    def zeros(batch: int, n_out: int, n_in: int, dtype: torch.dtype, device: torch.device) -> "LayerState":
        syn = lambda: torch.zeros(batch, n_out, n_in, dtype=dtype, device=device)  # noqa: E731
        neu = lambda: torch.zeros(batch, n_out, dtype=dtype, device=device)  # noqa: E731
        return LayerState(syn(), syn(), syn(), neu(), neu(), neu(), torch.zeros(batch, n_in, dtype=dtype, device=device))


@dataclass
class LayerGrads:
    """Batch-summed gradients of one layer, each (n_out, n_in); decay/gain None unless adaptive."""

    w: torch.Tensor
    decay: Optional[torch.Tensor] = None
    gain: Optional[torch.Tensor] = None


@dataclass
class RefResult:
    grads: list[LayerGrads]
    spikes: torch.Tensor                  # (B, N[L-1], T) output spikes
    states: list[LayerState] = field(default_factory=list)   # states after the last step


def layer_step_ref(x: torch.Tensor, p: LayerParams, s: LayerState, neuron: NeuronConfig, rule: RuleFlags) -> LayerState:
    """One step of one layer: SOLSA_MATH.md sections 1 and 2. ``x`` is (B, n_in)."""
    lam, vth = neuron.lam, neuron.vth
    B = x.shape[0]
    x_syn = x[:, None, :].expand(B, p.n_out, p.n_in)
    if rule.filter:
        F = p.decay * s.F + p.gain * x_syn
    else:
        F = x_syn
    k = lam - vth * s.sg if rule.reset_in_trace else torch.full_like(s.sg, lam)
    e = k[:, :, None] * s.e + F
    V = lam * s.V + (p.w * F).sum(-1) - vth * s.O
    O = (V >= vth).to(V.dtype)
    sg = surrogate(V, vth, neuron.sigma)
    return LayerState(F=F, F_prev=s.F, e=e, V=V, O=O, sg=sg, x=x)


def learn_ref(mu: torch.Tensor, p: LayerParams, s: LayerState, g: LayerGrads, coef: float, rule: RuleFlags) -> None:
    """Add one step's gradients to ``g`` (SOLSA_MATH.md sections 2 and 4). ``mu`` is (B, n_out)."""
    g.w += (mu[:, :, None] * s.e).sum(0)
    if rule.adaptive:
        g.decay += coef * (mu[:, :, None] * p.w * s.F_prev).sum(0)
        g.gain += coef * (mu[:, :, None] * p.w * s.x[:, None, :]).sum(0)


def spatial_error_ref(mu_up: torch.Tensor, p_up: LayerParams, sg: torch.Tensor, rule: RuleFlags) -> torch.Tensor:
    """mu^l = (sum_k mu^{l+1}_k w^{l+1}_kj gain^{l+1}_kj) * sg^l (section 3); gain is 1 without the filter."""
    wg = p_up.w * p_up.gain if rule.filter else p_up.w
    return (mu_up[:, :, None] * wg[None]).sum(1) * sg


DEdO = Union[Callable[[int, torch.Tensor], torch.Tensor], torch.Tensor]


def solsa_ref(
    x: torch.Tensor,
    params: Sequence[LayerParams],
    neuron: NeuronConfig,
    rule: RuleFlags,
    dEdO: DEdO,
    mask: Optional[torch.Tensor] = None,
) -> RefResult:
    """Run the online rule over a whole sequence and return the accumulated gradients.

    ``dEdO`` is either a callable ``(t, O_top[t]) -> dE[t]/dO_top[t]`` of shape (B, N[L-1])
    or a tensor (B, N[L-1], T) of fixed derivatives. Gradients are summed over the batch
    and over all steps (one update point at the end); no optimizer step is taken.
    """
    B, C, T = x.shape
    dtype, device = x.dtype, x.device
    states = [LayerState.zeros(B, p.n_out, p.n_in, dtype, device) for p in params]
    grads = [
        LayerGrads(
            torch.zeros_like(p.w),
            torch.zeros_like(p.w) if rule.adaptive else None,
            torch.zeros_like(p.w) if rule.adaptive else None,
        )
        for p in params
    ]
    spikes = []
    for t in range(T):
        # forward, bottom-up, all layers respond in the same step (no synaptic delay)
        inp = x[:, :, t]
        for l, p in enumerate(params):
            states[l] = layer_step_ref(inp, p, states[l], neuron, rule)
            inp = states[l].O
        spikes.append(inp)
        # backward, top-down, inside the same step
        d = dEdO(t, inp) if callable(dEdO) else dEdO[:, :, t]
        mu = d * states[-1].sg
        if mask is not None:
            mu = mu * mask[:, t, None]
        coef = decay_gain_coef(t, rule.gamma)
        for l in range(len(params) - 1, -1, -1):
            learn_ref(mu, params[l], states[l], grads[l], coef, rule)
            if l > 0:
                mu = spatial_error_ref(mu, params[l], states[l - 1].sg, rule)
    return RefResult(grads=grads, spikes=torch.stack(spikes, -1), states=states)
