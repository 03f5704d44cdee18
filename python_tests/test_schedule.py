"""Update points: how many, where, and that the trainer steps the optimizer exactly there."""
from __future__ import annotations

import pytest
import torch

from solsa_ext import AlgorithmConfig, NetworkConfig, OptimizerConfig, TrainConfig, Trainer
from solsa_ext.schedule import schedule_for, update_points

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "T,K,expected",
    [
        (100, 4, [24, 49, 74, 99]),      # four equal segments of 25 steps
        (100, 1, [99]),                  # K = 1: the end only
        (10, 3, [3, 6, 9]),              # ceil(10/3)=4, ceil(20/3)=7, 10 -> minus one
        (5, 5, [0, 1, 2, 3, 4]),         # K = T: every step
        (5, 9, [0, 1, 2, 3, 4]),         # K > T is clipped to every step
        (7, 2, [3, 6]),
    ],
)
def test_even_points(T, K, expected):
    assert update_points(T, K) == expected


def test_even_segments_have_equal_length():
    for T in range(1, 60):
        for K in range(1, T + 1):
            pts = update_points(T, K)
            assert len(pts) == K and pts[-1] == T - 1
            seg = [b - a for a, b in zip([-1] + pts[:-1], pts)]
            assert max(seg) - min(seg) <= 1


def test_late_and_explicit_points():
    assert update_points(100, 2, "late") == [74, 99]       # second half [50, 100) in 2 segments
    assert update_points(10, 1, points=[3, 7, 42]) == [3, 7]
    with pytest.raises(ValueError):
        update_points(10, 1, points=[12])
    with pytest.raises(ValueError):
        update_points(10, 2, "middle")
    with pytest.raises(ValueError):
        update_points(0, 2)


@pytest.mark.parametrize(
    "name,T,expected",
    [
        ("solsa", 20, [4, 9, 14, 19]),
        ("variant1", 20, [4, 9, 14, 19]),
        ("variant2", 20, [4, 9, 14, 19]),
        ("variant3", 20, [4, 9, 14, 19]),
        ("unscheduled", 20, [19]),
        ("eprop", 20, [19]),
        ("ottt", 6, [0, 1, 2, 3, 4, 5]),
        ("bptt", 20, [19]),
        ("tbptt", 50, [19, 39, 49]),
    ],
)
def test_algorithm_table(name, T, expected):
    assert list(schedule_for(AlgorithmConfig(name, update_points=4), T)) == expected


def _count_updates(name: str, T: int, K: int = 4, **kw) -> list[int]:
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig(name, update_points=K, backend="reference", **kw),
                 train=TrainConfig(batch_size=2, epochs=1, seed=0))
    steps: list[int] = []
    tr.update_hook = lambda _tr, t, _g: steps.append(t)
    x = torch.rand(2, 3, T)
    tr.fit(x, torch.tensor([0, 1]))
    return steps


def test_trainer_steps_at_the_points():
    assert _count_updates("solsa", 12, K=3) == [3, 7, 11]
    assert _count_updates("unscheduled", 12) == [11]             # K=1: once, at the end
    assert _count_updates("solsa", 12, K=1) == [11]
    assert _count_updates("ottt", 5) == [0, 1, 2, 3, 4]
    assert _count_updates("solsa", 12, K=2, placement="late") == [8, 11]
    assert _count_updates("eprop", 12, K=3, override_schedule=True) == [3, 7, 11]


def test_optimizer_steps_once_per_point():
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig("solsa", update_points=5, backend="reference"),
                 optimizer=OptimizerConfig("SGD", lr=0.1), train=TrainConfig(batch_size=4, epochs=1))
    x = torch.rand(8, 3, 10)
    tr.fit(x, torch.tensor([0, 1] * 4))
    assert tr.updates == 2 * 5          # 2 batches x 5 points


def test_padded_batch_uses_its_longest_valid_length():
    tr = Trainer(NetworkConfig(sizes=(3, 4, 2)), AlgorithmConfig("solsa", update_points=2, backend="reference"),
                 train=TrainConfig(batch_size=2, epochs=1, shuffle=False))
    steps: list[int] = []
    tr.update_hook = lambda _tr, t, _g: steps.append(t)
    x = torch.rand(2, 3, 30)
    x[:, :, 10:] = 0
    tr.fit(x, torch.tensor([0, 1]), lengths=torch.tensor([10, 8]))
    assert steps == [4, 9]
