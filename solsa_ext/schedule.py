"""Update points: the steps of a sequence after which the optimizer steps (SOLSA_MATH.md s.5).

An update point ``p`` is a 0-based step index: after the forward and backward of step
``p`` the optimizer applies the gradient accumulated since the previous update point and
the accumulators are zeroed. Neuron/synapse states and traces carry on.

Placement of K points in a sequence of (valid) length T:

- ``"even"`` (default): the sequence is cut into K segments of (nearly) equal length and
  the update is at the last step of each: ``p_k = ceil((k + 1) * T / K) - 1`` for
  ``k = 0 .. K-1``. The last point is always ``T - 1``; ``K = 1`` is "at the end only";
  ``K >= T`` is "every step".
- ``"late"``: K points spread the same way over the second half ``[floor(T/2), T)``; the
  network has seen more of the sample before its first update.
- explicit: a sorted list of step indices; indices ``>= T`` are dropped (a gradient
  accumulated after the last point is discarded when the next sequence starts).

For a padded batch T is the longest valid length in the batch (steps past a sample's own
length carry no gradient: its error is masked there).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from .config import ALGORITHM_TABLE, AlgorithmConfig, PLACEMENTS


def update_points(T: int, K: int, placement: str = "even", points: Optional[Sequence[int]] = None) -> list[int]:
    """Sorted, distinct 0-based update steps for a sequence of length ``T``."""
    if T < 1:
        raise ValueError(f"sequence length must be >= 1, got {T}")
    if points is not None:
        pts = sorted({int(p) for p in points if 0 <= int(p) < T})
        if not pts:
            raise ValueError(f"no explicit update point lies inside a sequence of length {T}: {list(points)}")
        return pts
    if K < 1:
        raise ValueError(f"the number of update points must be >= 1, got {K}")
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}")
    start = 0 if placement == "even" else T // 2
    span = T - start
    K = min(K, span)
    return sorted({start + math.ceil((k + 1) * span / K) - 1 for k in range(K)})


def schedule_for(algo: AlgorithmConfig, T: int) -> Sequence[int]:
    """The update points of ``algo`` for a sequence of length ``T`` (the table of section 7),
    increasing. "Every step" is a ``range`` (constant memory whatever ``T``), the others lists."""
    kind = "K" if algo.override_schedule else ALGORITHM_TABLE[algo.name]["points"]
    if kind == "K":
        return update_points(T, algo.update_points, algo.placement, algo.points)
    if kind == "end":
        return [T - 1]
    if kind == "every":
        return range(T)
    if kind == "truncate":
        n = algo.truncation
        return sorted(set(range(n - 1, T, n)) | {T - 1})
    raise AssertionError(kind)
