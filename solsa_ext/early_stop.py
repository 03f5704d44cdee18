"""Per-sample early stop inside a batch (SOLSA_MATH.md section 6).

At every update point t, for each sample b with label y_b:

    A_b(t) = sum_{i<=t} O_{b,y_b}[i] / sum_k sum_{i<=t} O_{b,k}[i]     (0 while silent)

``counter_b`` grows by one when ``A_b(t) > threshold``. Once ``counter_b`` reaches 50% of
the K update points of the sequence (``2 * counter_b >= K``) the sample stops contributing
gradients for the rest of the sequence: its entry of :attr:`EarlyStop.mask` becomes 0 and
the trainer multiplies the top-layer error by it. The check happens after the update at
t, so the gradient of step t itself still counts. Only update points inside a sample's
valid length are counted for it (padding never counts as a success).
"""
from __future__ import annotations

from typing import Optional

import torch


def label_share(counts: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A(t) of every sample: the label's share of the output spikes so far, (B,)."""
    total = counts.sum(1)
    own = counts.gather(1, y[:, None])[:, 0]
    return torch.where(total > 0, own / total.clamp_min(1e-30), torch.zeros_like(total))


class EarlyStop:
    """Counter and gradient mask of every sample of a batch, for one sequence."""

    def __init__(self, batch: int, n_points: int, threshold: float, enabled: bool = True,
                 device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> None:
        if n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        self.n_points = int(n_points)
        self.threshold = float(threshold)
        self.enabled = enabled
        self.counter = torch.zeros(batch, dtype=torch.int64, device=device)
        self.mask = torch.ones(batch, dtype=dtype, device=device)

    def update(self, counts: torch.Tensor, y: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Register an update point; ``counts`` (B, N) spike counts so far, ``valid`` (B,) bool.

        Returns the new mask (B,) (1 = still learning, 0 = stopped).
        """
        if not self.enabled:
            return self.mask
        hit = label_share(counts, y) > self.threshold
        if valid is not None:
            hit = hit & valid.bool()
        self.counter += hit.to(torch.int64)
        stopped = 2 * self.counter >= self.n_points
        self.mask = torch.where(stopped, torch.zeros_like(self.mask), self.mask)
        return self.mask

    @property
    def stopped(self) -> torch.Tensor:
        return self.mask == 0
