"""BPTT and truncated BPTT training steps: plain autograd over the same PSP-LIF network.

BPTT runs :func:`solsa_ext.bptt.snn_forward` over the whole (valid) sequence and steps
the optimizer once at the end. TBPTT(n) runs the sequence in segments of ``n`` steps,
carrying the states across segments but detaching them (so no gradient crosses a
segment boundary), and steps the optimizer at the end of every segment, so later
segments run with the updated weights. ``bptt.snn_forward`` has no initial-state
argument, so the segments use :func:`forward_segment`, the same equations with carried
states (tests check it against ``snn_forward`` step for step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .config import LossConfig
from .losses import sequence_loss
from .neuron import NeuronConfig, spike
from .reference import LayerParams


@dataclass
class CarriedState:
    """States carried into the next step: F (B, n_out, n_in) or None, V and O (B, n_out)."""

    F: list[Optional[torch.Tensor]]
    V: list[torch.Tensor]
    O: list[torch.Tensor]

    @staticmethod
    def zeros(x: torch.Tensor, params: Sequence[LayerParams], filter: bool) -> "CarriedState":
        B = x.shape[0]
        return CarriedState(
            F=[x.new_zeros(B, p.n_out, p.n_in) if filter else None for p in params],
            V=[x.new_zeros(B, p.n_out) for p in params],
            O=[x.new_zeros(B, p.n_out) for p in params],
        )

    def detach(self) -> "CarriedState":
        return CarriedState(
            F=[f.detach() if f is not None else None for f in self.F],
            V=[v.detach() for v in self.V],
            O=[o.detach() for o in self.O],
        )


def forward_segment(
    x: torch.Tensor, params: Sequence[LayerParams], neuron: NeuronConfig, state: CarriedState, filter: bool = True
) -> tuple[torch.Tensor, CarriedState]:
    """Differentiable forward of ``x`` (B, C, S) from ``state``; returns top spikes (B, N, S) and the new state."""
    lam, vth, sigma = neuron.lam, neuron.vth, neuron.sigma
    F, V, O = list(state.F), list(state.V), list(state.O)
    outs = []
    for t in range(x.shape[2]):
        inp = x[:, :, t]
        for l, p in enumerate(params):
            if filter:
                F[l] = p.decay * F[l] + p.gain * inp[:, None, :]
                current = (p.w * F[l]).sum(-1)
            else:
                current = inp @ p.w.t()
            V[l] = lam * V[l] + current - vth * O[l]
            O[l] = spike(V[l], vth, sigma)
            inp = O[l]
        outs.append(inp)
    return torch.stack(outs, -1), CarriedState(F, V, O)


def autograd_sequence(
    x: torch.Tensor,
    y: torch.Tensor,
    valid: torch.Tensor,
    params: Sequence[LayerParams],
    neuron: NeuronConfig,
    loss_cfg: LossConfig,
    points: Sequence[int],
    on_update: Callable[[int], None],
    truncated: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train on one batch with BPTT (``points == [T-1]``) or TBPTT (segments end at ``points``).

    ``on_update(step)`` is called after ``loss.backward()`` of each segment with the index of
    the segment's last step (it divides nothing: the loss is already the batch mean) and must
    step the optimizer and clamp.
    Returns the per-sample summed loss (B,) and the top spikes (B, N, T) (detached).
    """
    from .bptt import snn_forward

    B, C, T = x.shape
    if not truncated:
        spikes = snn_forward(x, params, neuron, filter=True)
        per = sequence_loss(loss_cfg, spikes, y, valid)
        (per.sum() / B).backward()
        on_update(T - 1)
        return per.detach(), spikes.detach()
    state = CarriedState.zeros(x, params, True)
    counts = x.new_zeros(B, params[-1].n_out)
    start = 0
    pers, outs = [], []
    for end in points:
        seg, state = forward_segment(x[:, :, start:end + 1], params, neuron, state, True)
        per = sequence_loss(loss_cfg, seg, y, valid[:, start:end + 1], t0=start, counts0=counts)
        (per.sum() / B).backward()
        on_update(end)
        counts = counts + (seg.detach() * valid[:, None, start:end + 1].to(seg.dtype)).sum(-1)
        state = state.detach()
        pers.append(per.detach())
        outs.append(seg.detach())
        start = end + 1
    return torch.stack(pers, 0).sum(0), torch.cat(outs, -1)
