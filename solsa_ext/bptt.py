"""Differentiable forward pass of the same PSP-LIF network, for autograd baselines.

BPTT and truncated BPTT train with ``loss.backward()`` through this function; tests
use it as the independent definition of the gradients that SOLSA must reproduce.

Shape legend: x (B, C, T); w, decay, gain of layer l (N[l], N[l-1]); the returned
spikes are (B, N[L-1], T). The synapse filter is per synapse, as in the online engine.
"""
from __future__ import annotations

from typing import Collection, Optional, Sequence

import torch

from .neuron import NeuronConfig, spike
from .reference import LayerParams


def snn_forward(
    x: torch.Tensor,
    params: Sequence[LayerParams],
    neuron: NeuronConfig,
    filter: bool = True,
    detach_carried: Collection[int] = (),
    truncate: Optional[int] = None,
    return_all: bool = False,
    detach_reset: bool = False,
):
    """Run the network with autograd and return the top layer's spikes (B, N[L-1], T).

    detach_carried: indices of layers whose carried states F[t-1], V[t-1], O[t-1] are
        detached at every step (their temporal gradient paths are cut).
    truncate: if given, every layer's carried states are detached every ``truncate``
        steps (truncated BPTT; the caller steps the optimizer at the same points).
    return_all: also return the per-layer spike trains (list of (B, N[l], T)).
    detach_reset: treat the reset term ``vth * O[t-1]`` as a constant (OTTT's choice).
    """
    B, C, T = x.shape
    lam, vth, sigma = neuron.lam, neuron.vth, neuron.sigma
    F = [x.new_zeros(B, p.n_out, p.n_in) if filter else None for p in params]
    V = [x.new_zeros(B, p.n_out) for p in params]
    O = [x.new_zeros(B, p.n_out) for p in params]
    outs: list[list[torch.Tensor]] = [[] for _ in params]
    for t in range(T):
        cut = truncate is not None and t > 0 and t % truncate == 0
        inp = x[:, :, t]
        for l, p in enumerate(params):
            det = cut or l in detach_carried
            F_prev = F[l].detach() if (det and filter) else F[l]
            V_prev = V[l].detach() if det else V[l]
            O_prev = O[l].detach() if det else O[l]
            if filter:
                F[l] = p.decay * F_prev + p.gain * inp[:, None, :]
                current = (p.w * F[l]).sum(-1)
            else:
                current = inp @ p.w.t()
            V[l] = lam * V_prev + current - vth * (O_prev.detach() if detach_reset else O_prev)
            O[l] = spike(V[l], vth, sigma)
            outs[l].append(O[l])
            inp = O[l]
    top = torch.stack(outs[-1], -1)
    if return_all:
        return top, [torch.stack(o, -1) for o in outs]
    return top
