"""Per-step losses E[t](O[t]) on the output spikes, and the prediction rule.

The online engine needs ``dE[t]/dO[t]`` at every step (:func:`step_grad`); the autograd
baselines need the same loss as a differentiable function of the whole spike train
(:func:`sequence_loss`). Both sum the per-step losses over the valid steps of every sample
and average over the batch: ``E = (1/B) sum_b sum_{t < len_b} E_b[t]``.

Shapes: ``O`` (B, N) spikes of one step; ``spikes`` (B, N, T); ``y`` (B,) int64;
``valid`` (B, T) bool (step t of sample b is real data); ``counts`` (B, N) spike counts up
to and including the current step.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as Fn

from .config import LossConfig


def _target(cfg: LossConfig, y: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    r = torch.full((y.shape[0], n), cfg.off_rate, dtype=like.dtype, device=like.device)
    r.scatter_(1, y[:, None], cfg.target_rate)
    return r


def step_loss_and_grad(
    cfg: LossConfig, t: int, O: torch.Tensor, counts: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample loss E_b[t] (B,) and its derivative dE[t]/dO[t] (B, N) for the online rule.

    ``count_ce``'s derivative is its direct part: the loss at step t depends on O[t]
    through the running count only (earlier steps' spikes are constants here).
    """
    n = O.shape[1]
    if cfg.name == "rate_mse":
        diff = O - _target(cfg, y, n, O)
        return 0.5 * (diff * diff).sum(1), diff
    if cfg.name == "step_ce":
        z = cfg.scale * O
    else:  # count_ce
        z = cfg.scale * counts / float(t + 1)
    logp = torch.log_softmax(z, dim=1)
    loss = -logp.gather(1, y[:, None])[:, 0]
    g = logp.exp()
    g.scatter_add_(1, y[:, None], -torch.ones_like(g[:, :1]))
    dz = cfg.scale if cfg.name == "step_ce" else cfg.scale / float(t + 1)
    return loss, g * dz


def sequence_loss(
    cfg: LossConfig,
    spikes: torch.Tensor,
    y: torch.Tensor,
    valid: torch.Tensor,
    t0: int = 0,
    counts0: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Per-sample summed loss (B,) over the valid steps of a (segment of a) spike train.

    ``t0`` is the index of the segment's first step in the sequence and ``counts0`` (B, N)
    the spike counts before it (used by ``count_ce`` under truncated BPTT).
    """
    B, n, T = spikes.shape
    vm = valid.to(spikes.dtype)
    if cfg.name == "rate_mse":
        diff = spikes - _target(cfg, y, n, spikes)[:, :, None]
        per = 0.5 * (diff * diff).sum(1)
    else:
        if cfg.name == "step_ce":
            z = cfg.scale * spikes
        else:
            c = torch.cumsum(spikes, dim=2)
            if counts0 is not None:
                c = c + counts0[:, :, None]
            steps = torch.arange(t0 + 1, t0 + T + 1, dtype=spikes.dtype, device=spikes.device)
            z = cfg.scale * c / steps
        per = Fn.cross_entropy(z, y[:, None].expand(B, T), reduction="none")
    return (per * vm).sum(1)


def first_spike(spikes_valid: torch.Tensor) -> torch.Tensor:
    """Index of the first spike along the last axis (T when silent), (B, N)."""
    T = spikes_valid.shape[-1]
    idx = torch.arange(T, device=spikes_valid.device).expand_as(spikes_valid)
    big = torch.full_like(idx, T)
    return torch.where(spikes_valid > 0, idx, big).min(-1).values


def prediction_scores(counts: torch.Tensor, first: torch.Tensor, rule: str, horizon: int) -> torch.Tensor:
    """Scores whose argmax is the predicted class (B, N).

    ``count``: the output spike count. ``count_first``: the count, ties broken by the
    earliest first spike (``first`` = step of the first spike, ``horizon`` if silent).
    The scores are exact integers in float64, so argmax is deterministic.
    """
    c = counts.to(torch.float64)
    if rule == "count":
        return c
    return c * float(horizon + 1) + (float(horizon) - first.to(torch.float64))


def predict_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """argmax with ties going to the lowest class index."""
    return scores.argmax(dim=1)
