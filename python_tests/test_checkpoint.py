"""Checkpoints: round trip, exact resume, atomic writes."""
from __future__ import annotations

import os

import pytest
import torch

from solsa_ext import AlgorithmConfig, NetworkConfig, OptimizerConfig, TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def _make(name: str = "solsa") -> Trainer:
    return Trainer(NetworkConfig(sizes=(12, 10, 3)), AlgorithmConfig(name, backend="reference", update_points=3),
                   OptimizerConfig("Adam", lr=5e-3), train=TrainConfig(batch_size=8, epochs=1, seed=11),
                   classes=["x", "y", "z"], norm_mean=torch.arange(12.0), norm_std=torch.ones(12) * 2)


@pytest.mark.parametrize("name", ["solsa", "bptt"])
def test_resume_equals_uninterrupted(name, spike_task, tmp_path):
    xtr, ytr, xte, _ = spike_task
    xtr, ytr = xtr[:24], ytr[:24]
    straight = _make(name)
    straight.fit(xtr, ytr, epochs=2)

    first = _make(name)
    first.fit(xtr, ytr, epochs=1)
    path = tmp_path / "ck.pt"
    first.save(str(path))
    del first
    resumed = Trainer.load(str(path))
    resumed.fit(xtr, ytr, epochs=1)

    assert resumed.epoch == straight.epoch == 2 and resumed.updates == straight.updates
    for p, q in zip(straight.params, resumed.params):
        assert torch.equal(p.w, q.w) and torch.equal(p.decay, q.decay) and torch.equal(p.gain, q.gain)
    for a, b in zip(straight.optimizer.state.values(), resumed.optimizer.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]
    assert torch.equal(straight.predict(xte), resumed.predict(xte))


def test_checkpoint_contents(spike_task, tmp_path):
    xtr, ytr, _, _ = spike_task
    tr = _make()
    tr.fit(xtr[:16], ytr[:16])
    path = tmp_path / "sub" / "ck.pt"
    tr.save(str(path))
    ck = torch.load(path, weights_only=False)
    assert ck["classes"] == ["x", "y", "z"]
    assert torch.equal(ck["norm_mean"], torch.arange(12.0)) and torch.equal(ck["norm_std"], torch.ones(12) * 2)
    assert ck["configs"]["algorithm"]["name"] == "solsa" and ck["configs"]["network"]["sizes"] == [12, 10, 3]
    assert ck["configs"]["optimizer"]["name"] == "Adam" and ck["configs"]["train"]["seed"] == 11
    assert torch.equal(ck["params"][1]["w"], tr.params[1].w.detach())
    assert torch.equal(ck["params"][0]["decay"], tr.params[0].decay.detach())
    assert len(ck["optimizer"]["state"]) == 6          # w, decay, gain of 2 layers (adaptive)
    assert ck["epoch"] == 1 and len(ck["history"]) == 1
    assert os.listdir(path.parent) == ["ck.pt"]         # no temporary file left behind
    back = Trainer.load(str(path))
    assert back.classes == ["x", "y", "z"] and torch.equal(back.norm_mean, tr.norm_mean)
    raw = torch.rand(2, 12, 5)
    torch.testing.assert_close(back.preprocess(raw), (raw - torch.arange(12.0)[None, :, None]) / 2)


def test_atomic_write_keeps_old_file_on_failure(spike_task, tmp_path, monkeypatch):
    tr = _make()
    path = tmp_path / "ck.pt"
    tr.save(str(path))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        tr.save(str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.pt"]


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"hello": 1}, p)
    with pytest.raises(ValueError, match="not a solsa_ext checkpoint"):
        Trainer.load(str(p))


def test_unreadable_checkpoints_are_value_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match="notes.txt is not a solsa_ext checkpoint"):
        Trainer.load(str(text))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pt is not a solsa_ext checkpoint"):
        Trainer.load(str(empty))
    with pytest.raises(ValueError, match="is a folder, not a checkpoint file"):
        Trainer.load(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        Trainer.load(str(tmp_path / "missing.pt"))
