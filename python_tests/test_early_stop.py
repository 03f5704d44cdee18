"""Per-sample early stop (SOLSA_MATH.md section 6) from hand-made output spike trains."""
from __future__ import annotations

import pytest
import torch

from solsa_ext import AlgorithmConfig, NetworkConfig, OptimizerConfig, TrainConfig, Trainer
from solsa_ext.early_stop import EarlyStop, label_share
from solsa_ext.neuron import NeuronConfig
from solsa_ext.reference import LayerParams, solsa_ref
from solsa_ext.rule import RULES

pytestmark = pytest.mark.usefixtures("one_thread")


def test_label_share_by_hand():
    counts = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0]])
    y = torch.tensor([0, 2, 2])
    assert torch.allclose(label_share(counts, y), torch.tensor([0.75, 0.0, 0.5]))


def test_mask_from_hand_made_spike_trains():
    # 3 samples, 2 output neurons, 8 steps, K = 4 update points at t = 1, 3, 5, 7; threshold 0.6.
    O = torch.zeros(3, 2, 8)
    y = torch.tensor([0, 1, 0])
    O[0, 0, :] = 1                      # sample 0: only its label fires: A = 1, 1, 1, 1
    O[1, 1, 4:] = 1                     # sample 1: silent until t=4, then its label: A = 0, 0, 1, 1
    O[2, 0, ::2] = 1                    # sample 2: both neurons fire equally: A = 1/2 at every point
    O[2, 1, ::2] = 1
    points = [1, 3, 5, 7]
    # A(t) by hand at the points, and the resulting counters and masks after each point
    expected_A = [[1.0, 0.0, 0.5], [1.0, 0.0, 0.5], [1.0, 1.0, 0.5], [1.0, 1.0, 0.5]]
    expected_mask = [[1, 1, 1], [0, 1, 1], [0, 1, 1], [0, 0, 1]]   # stop when counter >= 4/2 = 2
    es = EarlyStop(3, n_points=4, threshold=0.6)
    counts = torch.zeros(3, 2)
    k = 0
    for t in range(8):
        counts += O[:, :, t]
        if t in points:
            assert torch.allclose(label_share(counts, y), torch.tensor(expected_A[k]))
            es.update(counts, y)
            assert es.mask.tolist() == expected_mask[k], (t, es.mask)
            k += 1
    assert es.counter.tolist() == [4, 2, 0]


def test_odd_number_of_points_and_validity():
    es = EarlyStop(2, n_points=3, threshold=0.5)          # 50% of 3 = 1.5: stops at 2 hits
    counts = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([0, 0])
    es.update(counts, y, valid=torch.tensor([True, False]))   # sample 1 is past its length: no hit
    assert es.mask.tolist() == [1, 1] and es.counter.tolist() == [1, 0]
    es.update(counts, y)
    assert es.mask.tolist() == [0, 1]
    off = EarlyStop(1, n_points=1, threshold=0.0, enabled=False)
    off.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert off.mask.tolist() == [1]


def _hand_mask(spikes: torch.Tensor, y: torch.Tensor, points: list[int], thr: float) -> torch.Tensor:
    """(B, T) gradient mask of section 6, computed with plain Python loops."""
    B, N, T = spikes.shape
    mask = torch.ones(B, T, dtype=spikes.dtype)
    for b in range(B):
        hits, stopped = 0, False
        for t in range(T):
            mask[b, t] = 0.0 if stopped else 1.0
            if t in points:
                total = float(spikes[b, :, : t + 1].sum())
                a = float(spikes[b, y[b], : t + 1].sum()) / total if total > 0 else 0.0
                hits += a > thr
                stopped = stopped or 2 * hits >= len(points)
    return mask


def test_trainer_masks_stopped_samples():
    """The gradient of each segment equals the reference's with the hand-computed mask."""
    torch.manual_seed(0)
    B, C, T = 4, 5, 16
    x = torch.rand(B, C, T, dtype=torch.float64) * 2.5
    y = torch.tensor([0, 1, 0, 1])
    net = NetworkConfig(sizes=(C, 6, 2), w_scale=2.0, w_bias=0.3)
    # A vanishing learning rate: the weights stay what they were (the gradient of each segment is compared).
    tr = Trainer(net, AlgorithmConfig("solsa", update_points=4, early_stop_threshold=0.5, backend="reference"),
                 OptimizerConfig("SGD", lr=1e-300), train=TrainConfig(batch_size=B, dtype="float64", shuffle=False))
    seen: list[torch.Tensor] = []
    tr.update_hook = lambda _tr, t, g: seen.append(g[0].w.clone())
    params = [LayerParams(p.w.detach().clone(), p.decay.detach().clone(), p.gain.detach().clone()) for p in tr.params]
    tr.fit(x, y, epochs=1)
    nc = NeuronConfig(net.lam, net.vth, net.sigma)
    rule = RULES["solsa"]
    spikes = solsa_ref(x, params, nc, rule, torch.zeros(B, 2, T, dtype=torch.float64)).spikes
    points = [3, 7, 11, 15]
    mask = _hand_mask(spikes, y, points, 0.5)
    assert (mask[:, -1] == 0).any(), "the test needs at least one early-stopped sample"
    assert (mask[:, -1] == 1).any()

    def dEdO(t, O):  # rate_mse: O - onehot(y)
        return O - torch.nn.functional.one_hot(y, 2).to(O.dtype)

    prev = torch.zeros_like(params[0].w)
    for k, p in enumerate(points):
        cum = solsa_ref(x[:, :, : p + 1], params, nc, rule, dEdO, mask=mask[:, : p + 1]).grads[0].w
        assert torch.allclose(seen[k], cum - prev, atol=1e-10), k
        prev = cum
