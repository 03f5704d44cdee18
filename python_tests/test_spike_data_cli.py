"""Training smoke runs through the CLI on fixture-sized DVS128 Gesture, EMG gesture and EMG action data.

The fixtures are written in the real formats by the writers of test_dvs.py / test_emg.py.
Each run must finish, learn nothing silly (finite loss) and record what it trained on.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from solsa_ext.cli import main, parse_options

from test_dvs import _npy_layout
from test_emg import write_action_root, write_gesture_file


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLSA_DATA_DIR", raising=False)


def _train(tmp_path: Path, dataset: str, data_dir: Path, *extra: str) -> dict:
    out = tmp_path / f"run-{dataset}"
    rc = main(["train", "--dataset", dataset, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "1",
               "--batch-size", "4", "--hidden", "12", "--no-progress", "--threads", "1", *extra])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert (out / "learning_curve.png").stat().st_size > 0
    assert 0.0 <= res["test_accuracy"] <= 1.0 and math.isfinite(res["train_loss"])
    return res


def test_dvs_gesture_cli(tmp_path: Path) -> None:
    root = tmp_path / "dvs"
    _npy_layout(root)
    res = _train(tmp_path, "DVSGesture", root)
    assert res["input_kind"] == "spikes"
    assert res["configs"]["network"]["sizes"] == [4096, 12, 11]
    assert res["n_train"] == 3 and res["n_test"] == 1 and res["sequence_length"] == 100


def test_emg_gesture_cli(tmp_path: Path) -> None:
    root = tmp_path / "emg_gestures" / "EMG_data_for_gestures-master"
    for k, subject in enumerate(["01", "02", "03", "04"]):
        write_gesture_file(root / subject / f"1_raw_data_{subject}.txt", seed=k)
    res = _train(tmp_path, "EMGGesture", tmp_path / "emg_gestures")
    assert res["input_kind"] == "spikes"
    assert res["configs"]["network"]["sizes"] == [16, 12, 7]   # delta code: up/down channel per electrode
    assert res["sequence_length"] == 100


def test_emg_action_cli(tmp_path: Path) -> None:
    base = tmp_path / "emg_action"
    write_action_root(base)
    res = _train(tmp_path, "EMGAction", base, "-O", "n_steps=50")
    assert res["input_kind"] == "current" and res["dataset_options"] == {"n_steps": 50}
    assert res["configs"]["network"]["sizes"] == [8, 12, 10]
    assert res["n_train"] == 140 and res["sequence_length"] == 50


def test_parse_options() -> None:
    assert parse_options(["n_steps=50", "binary=false", "test_subjects=[3, 4]", "split=subject"]) == {
        "n_steps": 50, "binary": False, "test_subjects": [3, 4], "split": "subject"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["n_steps"])


def test_bad_dataset_option_is_a_clear_error(tmp_path: Path, capsys) -> None:
    base = tmp_path / "emg_action"
    write_action_root(base, rows=120)
    rc = main(["train", "--dataset", "EMGAction", "--data-dir", str(base), "--out", str(tmp_path / "o"),
               "-O", "no_such_option=1", "--no-progress"])
    assert rc == 2
    assert "no_such_option" in capsys.readouterr().err
