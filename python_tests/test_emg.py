"""EMG loaders: encoders, windowing, class-0 dropping, subject/time splits, format errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from solsa_ext.datasets import DatasetFormatError, delta_encode, load_dataset, threshold_encode
from solsa_ext.datasets.emg import ACTION_SETS, class_runs, read_numeric_table, split_subjects, window_starts

GESTURE_RUNS = [(0, 30), (1, 250), (0, 20), (2, 100), (7, 99), (3, 120)]  # (class, rows): 619 rows
HEADER = "time\t" + "\t".join(f"channel{i}" for i in range(1, 9)) + "\tclass\n"


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLSA_DATA_DIR", raising=False)


def write_gesture_file(path: Path, seed: int) -> np.ndarray:
    """A recording in the UCI format; returns the (rows, 10) table written."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, c) for c, n in GESTURE_RUNS])
    signal = rng.integers(-60, 61, size=(labels.size, 8)) * 1e-5
    table = np.column_stack([np.arange(1, labels.size + 1), signal, labels])
    lines = [HEADER] + ["\t".join([str(int(r[0]))] + [f"{v:.5f}" for v in r[1:9]] + [str(int(r[9]))]) + "\n" for r in table]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    return np.column_stack([table[:, :1], np.round(signal, 5), labels])


@pytest.fixture(scope="module")
def gesture_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    base = tmp_path_factory.mktemp("emg_gestures")
    root = base / "EMG_data_for_gestures-master"
    tables = {}
    for k, subject in enumerate(["01", "02", "03", "04"]):
        tables[subject] = write_gesture_file(root / subject / f"1_raw_data_{subject}.txt", seed=k)
    return base, tables


def reference_delta(z: np.ndarray, theta: float) -> np.ndarray:
    """Plain-loop delta modulation of one (C, T) window -> (2C, T)."""
    c, t_steps = z.shape
    out = np.zeros((2 * c, t_steps), dtype=np.float32)
    for ch in range(c):
        ref = z[ch, 0]
        for t in range(1, t_steps):
            if z[ch, t] - ref >= theta:
                out[ch, t], ref = 1.0, z[ch, t]
            elif z[ch, t] - ref <= -theta:
                out[c + ch, t], ref = 1.0, z[ch, t]
    return out


def test_delta_encode_hand_computed() -> None:
    x = torch.tensor([[[0.0, 0.3, 0.6, 0.2, -0.5, -0.5, 0.1], [0.0, -1.2, -1.2, 0.0, 0.0, 0.0, 0.0]]])
    spikes = delta_encode(x, threshold=0.5)
    assert spikes.shape == (1, 4, 7) and spikes.dtype == torch.float32
    # ch0: ref 0 -> +0.6 at t2 (up, ref 0.6) -> -0.5 at t4 (down, ref -0.5) -> 0.1 at t6 (up)
    assert spikes[0, 0].tolist() == [0, 0, 1, 0, 0, 0, 1]
    assert spikes[0, 2].tolist() == [0, 0, 0, 0, 1, 0, 0]
    # ch1: -1.2 at t1 (down, ref -1.2), 0.0 at t3 (up, ref 0)
    assert spikes[0, 1].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert spikes[0, 3].tolist() == [0, 1, 0, 0, 0, 0, 0]


def test_threshold_encode() -> None:
    x = torch.tensor([[[0.5, -1.0, 1.5, -0.99]]])
    assert threshold_encode(x, 1.0).tolist() == [[[0.0, 1.0, 1.0, 0.0]]]


def test_windowing_counts_and_runs() -> None:
    assert window_starts(250, 100, 100) == [0, 100]
    assert window_starts(250, 100, 50) == [0, 50, 100, 150]  # floor((250 - 100) / 50) + 1
    assert window_starts(99, 100, 100) == []
    assert class_runs(np.array([0, 0, 1, 1, 1, 0, 2])) == [(0, 2, 0), (2, 5, 1), (5, 6, 0), (6, 7, 2)]
    assert split_subjects([f"{i:02d}" for i in range(1, 37)], 0.25)[1] == [f"{i:02d}" for i in range(28, 37)]


def test_gesture_loader_windows_and_spikes(gesture_root) -> None:
    base, tables = gesture_root
    ds = load_dataset("EMGGesture", data_dir=base, progress=False)
    # per recording: class 1 run of 250 -> 2 windows, class 2 (100) -> 1, class 7 (99) -> 0, class 3 (120) -> 1
    assert ds.x_train.shape == (12, 16, 100) and ds.x_test.shape == (4, 16, 100)
    assert ds.y_train.tolist() == [0, 0, 1, 2] * 3 and ds.y_test.tolist() == [0, 0, 1, 2]
    assert ds.meta["dropped_unmarked_rows"] == 4 * 50  # class 0 rows are never used
    assert ds.meta["train_subjects"] == ["01", "02", "03"] and ds.meta["test_subjects"] == ["04"]
    assert ds.input_kind == "spikes" and ds.norm_mean is None
    assert ds.paper_net == (16, 150, 150, 7) and len(ds.classes) == 7 and ds.classes[0] == "hand_at_rest"
    assert set(torch.unique(ds.x_train).tolist()) == {0.0, 1.0}
    # hand computation: windows start at rows 30, 130 (class 1), 300 (class 2), 499 (class 3)
    starts = [30, 130, 300, 499]
    windows = {s: np.stack([tables[s][a : a + 100, 1:9].T for a in starts]) for s in tables}
    train = np.concatenate([windows[s] for s in ("01", "02", "03")])
    mean, std = train.mean(axis=(0, 2)), train.std(axis=(0, 2))
    np.testing.assert_allclose(ds.meta["encoder_mean"], mean, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(ds.meta["encoder_std"], std, rtol=1e-5)
    z_test = (windows["04"] - mean[None, :, None]) / std[None, :, None]
    for i in range(4):
        np.testing.assert_array_equal(ds.x_test[i].numpy(), reference_delta(z_test[i], 0.5))
    z_train = (train[5] - mean[:, None]) / std[:, None]
    np.testing.assert_array_equal(ds.x_train[5].numpy(), reference_delta(z_train, 0.5))


def test_gesture_threshold_encoding_and_split_determinism(gesture_root) -> None:
    base, _ = gesture_root
    a = load_dataset("EMGGesture", data_dir=base, progress=False, encoding="threshold")
    b = load_dataset("EMGGesture", data_dir=base, progress=False, encoding="threshold")
    assert a.x_train.shape == (12, 8, 100) and a.paper_net == (8, 150, 150, 7)
    assert torch.equal(a.x_train, b.x_train) and a.meta["test_windows"] == b.meta["test_windows"]
    c = load_dataset("EMGGesture", data_dir=base, progress=False, test_subjects=["01"], stride=50)
    assert c.meta["train_subjects"] == ["02", "03", "04"]
    # stride 50: class 1 run of 250 -> 4 windows, class 2 -> 1, class 3 run of 120 -> 1
    assert c.y_test.tolist() == [0, 0, 0, 0, 1, 2]
    train_subjects = {w.split("/")[0] for w in c.meta["train_windows"]}
    test_subjects = {w.split("/")[0] for w in c.meta["test_windows"]}
    assert train_subjects == {"02", "03", "04"} and test_subjects == {"01"}


def test_gesture_format_errors(tmp_path: Path) -> None:
    path = tmp_path / "01" / "1_raw.txt"
    write_gesture_file(path, seed=0)
    write_gesture_file(tmp_path / "02" / "1_raw.txt", seed=1)
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = "\t".join(lines[4].split("\t")[:9]) + "\n"  # line 5: class column missing
    path.write_text("".join(lines))
    with pytest.raises(DatasetFormatError, match=r"1_raw\.txt, line 5: expected 10 columns, found 9") as info:
        load_dataset("EMGGesture", data_dir=tmp_path, progress=False)
    assert info.value.line == 5
    lines[4] = "4\tabc" + lines[5][lines[5].index("\t", 2) :]
    path.write_text("".join(lines))
    with pytest.raises(DatasetFormatError, match=r"line 5: column 2: 'abc' is not a finite number"):
        read_numeric_table(path, 10)
    lines[4] = lines[5].rsplit("\t", 1)[0] + "\t9\n"  # class 9 does not exist
    path.write_text("".join(lines))
    with pytest.raises(DatasetFormatError, match=r"line 5: class 9 is not an integer 0\.\.7"):
        load_dataset("EMGGesture", data_dir=tmp_path, progress=False)


def test_gesture_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="archive.ics.uci.edu/dataset/481") as info:
        load_dataset("EMGGesture", data_dir=tmp_path)
    assert "time ch1..ch8 class" in str(info.value) and "--data-dir" in str(info.value)


def write_action_root(base: Path, rows: int = 500) -> dict[tuple[str, str], np.ndarray]:
    tables = {}
    for k, subject in enumerate(["sub1", "sub2"]):
        for j, action in enumerate(ACTION_SETS["aggressive"]):
            rng = np.random.default_rng(100 * k + j)
            data = np.round(rng.normal(size=(rows, 8)) * (j + 1), 3)
            name = "Hammering" if action == "Hamering" and subject == "sub2" else action
            path = base / subject / "Aggressive" / "txt" / f"{name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join("\t".join(f"{v:.3f}" for v in r) + "\n" for r in data))
            tables[(subject, action)] = data
    return tables


@pytest.fixture(scope="module")
def action_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str], np.ndarray]]:
    base = tmp_path_factory.mktemp("emg_action")
    return base, write_action_root(base)


def test_action_time_split_and_stats(action_root) -> None:
    base, tables = action_root
    ds = load_dataset("EMGAction", data_dir=base, n_steps=50, progress=False)
    # 500 rows -> 10 windows per recording: 7 train, last 3 test (test_fraction 0.3)
    assert ds.x_train.shape == (2 * 10 * 7, 8, 50) and ds.x_test.shape == (2 * 10 * 3, 8, 50)
    assert ds.classes == ACTION_SETS["aggressive"] and ds.paper_net == (8, 200, 200, 10)
    assert ds.input_kind == "current"
    assert ds.y_train.bincount().tolist() == [14] * 10 and ds.y_test.bincount().tolist() == [6] * 10
    assert ds.meta["test_windows"][:3] == ["sub1/Elbowing.txt:350", "sub1/Elbowing.txt:400", "sub1/Elbowing.txt:450"]
    train_rows = np.concatenate([t[:350] for t in tables.values()])
    mean, std = train_rows.mean(axis=0), train_rows.std(axis=0)
    np.testing.assert_allclose(ds.norm_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.norm_std.numpy(), std, rtol=1e-5)
    expected = (tables[("sub2", "Hamering")][400:450] - mean) / std
    index = ds.meta["test_windows"].index("sub2/Hammering.txt:400")
    np.testing.assert_allclose(ds.x_test[index].numpy(), expected.T, rtol=1e-5, atol=1e-5)


def test_action_overlapping_windows_never_straddle_split(action_root) -> None:
    base, _ = action_root
    ds = load_dataset("EMGAction", data_dir=base, n_steps=50, stride=25, progress=False)
    # 19 windows per recording; last 6 (starts 325..450) test; train windows end by row 325
    train = [int(w.rsplit(":", 1)[1]) for w in ds.meta["train_windows"] if w.startswith("sub1/Elbowing")]
    test = [int(w.rsplit(":", 1)[1]) for w in ds.meta["test_windows"] if w.startswith("sub1/Elbowing")]
    assert test == [325, 350, 375, 400, 425, 450]
    assert train == list(range(0, 276, 25))


def test_action_subject_split_and_missing(action_root, tmp_path: Path) -> None:
    base, _ = action_root
    ds = load_dataset("EMGAction", data_dir=base, n_steps=50, split="subject", progress=False)
    assert ds.meta["test_subjects"] == ["sub2"] and ds.x_train.shape[0] == ds.x_test.shape[0] == 100
    assert all(w.startswith("sub2/") for w in ds.meta["test_windows"])
    with pytest.raises(FileNotFoundError, match="archive.ics.uci.edu/dataset/213"):
        load_dataset("EMGAction", data_dir=tmp_path)
    write_action_root(tmp_path, rows=120)
    (tmp_path / "sub1" / "Aggressive" / "txt" / "Kneeing.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"sub1/Aggressive/txt/Kneeing\.txt"):
        load_dataset("EMGAction", data_dir=tmp_path, n_steps=50, progress=False)
