"""DVS128 Gesture: event binning, the .npy layout, the AEDAT 3.1 reader, the cache."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from solsa_ext.datasets import DatasetFormatError, load_dataset
from solsa_ext.datasets import dvs
from solsa_ext.datasets.dvs import FrameOptions, events_to_counts, read_aedat31, read_gesture_labels

# (x, y, p, t_ms); first event at t = 100 ms, last at 140 ms
EVENTS_A = np.array(
    [
        [0, 0, 1, 100.0],  # pixel (0,0) -> ch 0; bin floor(0 * 4 / 40) = 0
        [1, 1, 0, 110.0],  # pooled (0,0) -> ch 0; bin floor(10 * 4 / 40) = 1
        [5, 2, 0, 125.0],  # pooled row 1, col 2 -> ch 1*64+2 = 66; bin floor(25 * 4 / 40) = 2
        [4, 3, 1, 125.0],  # pooled row 1, col 2 -> ch 66; bin 2 (count 2 in total)
        [127, 127, 1, 140.0],  # ch 63*64+63 = 4095; bin 4 -> clipped to the last bin 3
    ]
)
EXPECTED_A = {(0, 0): 1, (0, 1): 1, (66, 2): 2, (4095, 3): 1}

EVENTS_B = np.array([[10, 20, 1, 0.0], [11, 21, 0, 0.0]])  # zero span: everything in bin 0
EXPECTED_B = {(10 * 64 + 5, 0): 2}


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLSA_DATA_DIR", raising=False)


def _dense(expected: dict[tuple[int, int], int], steps: int = 4) -> torch.Tensor:
    x = torch.zeros(4096, steps)
    for (ch, b), count in expected.items():
        x[ch, b] = count
    return x


def _npy_layout(root: Path) -> None:
    (root / "ibmGestureTrain" / "user01_fluorescent").mkdir(parents=True)
    (root / "ibmGestureTrain" / "user02_led").mkdir(parents=True)
    (root / "ibmGestureTest" / "user24_natural").mkdir(parents=True)
    np.save(root / "ibmGestureTrain" / "user01_fluorescent" / "3.npy", EVENTS_A)
    np.save(root / "ibmGestureTrain" / "user01_fluorescent" / "10.npy", EVENTS_B)
    np.save(root / "ibmGestureTrain" / "user02_led" / "0.npy", EVENTS_B)
    np.save(root / "ibmGestureTest" / "user24_natural" / "7.npy", EVENTS_A)


def test_events_to_counts_hand_computed() -> None:
    counts = events_to_counts(EVENTS_A, FrameOptions(n_steps=4))
    assert counts.shape == (4096, 4) and counts.dtype == np.int32
    assert torch.equal(torch.from_numpy(counts).float(), _dense(EXPECTED_A))
    # fixed window: 20 ms over 4 bins = 5 ms bins from the first event; events at +25, +40 ms dropped
    counts = events_to_counts(EVENTS_A, FrameOptions(n_steps=4, window_ms=20.0))
    assert torch.equal(torch.from_numpy(counts).float(), _dense({(0, 0): 1, (0, 2): 1}))
    # no pooling: 128x128 channels, (y, x) = (3, 4) -> 3*128+4
    counts = events_to_counts(EVENTS_A, FrameOptions(n_steps=4, downsample=1))
    assert counts.shape == (16384, 4) and counts[3 * 128 + 4, 2] == 1 and counts[2 * 128 + 5, 2] == 1


def test_events_out_of_sensor_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="outside the 128x128 sensor"):
        events_to_counts(np.array([[128, 0, 1, 0.0]]), FrameOptions(), tmp_path / "e.npy")


def test_npy_layout_frames(tmp_path: Path) -> None:
    _npy_layout(tmp_path)
    ds = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, binary=False, progress=False)
    assert ds.x_train.shape == (3, 4096, 4) and ds.x_test.shape == (1, 4096, 4)
    assert ds.meta["train_ids"] == ["user01_fluorescent/3", "user01_fluorescent/10", "user02_led/0"]
    assert ds.y_train.tolist() == [3, 10, 0] and ds.y_test.tolist() == [7]
    assert torch.equal(ds.x_train[0], _dense(EXPECTED_A))
    assert torch.equal(ds.x_train[1], _dense(EXPECTED_B))
    assert torch.equal(ds.x_test[0], _dense(EXPECTED_A))
    assert ds.input_kind == "spikes" and ds.norm_mean is None and ds.norm_std is None
    assert ds.classes[3] == "right_arm_clockwise" and ds.n_classes == 11
    assert ds.paper_net == (4096, 100, 100, 11)
    assert (ds.len_train == 4).all()
    binary = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, binary=True, progress=False)
    assert torch.equal(binary.x_train[0], (_dense(EXPECTED_A) > 0).float())
    assert binary.meta["cache_hit"]  # counts are cached; binary is applied on load


def _packet(event_type: int, payload: bytes, size: int, number: int, overflow: int = 0) -> bytes:
    return struct.pack("<hhiiiiii", event_type, 1, size, 4, overflow, number, number, number) + payload


def _polarity(events: list[tuple[int, int, int, int, int]]) -> bytes:
    """(x, y, p, ts_us, valid) -> 8-byte polarity events."""
    out = b""
    for x, y, p, ts, valid in events:
        out += struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | valid, ts)
    return out


def write_aedat(path: Path, packets: list[bytes]) -> None:
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
    path.write_bytes(header + b"".join(packets))


def test_aedat31_roundtrip(tmp_path: Path) -> None:
    first = [(0, 0, 1, 1000, 1), (127, 5, 0, 1500, 1), (3, 3, 1, 1600, 0)]  # last one invalid
    special = struct.pack("<Ii", 0, 1700) * 2  # type 0 (special events): skipped
    second = [(64, 127, 1, 10, 1)]  # overflow 1 -> t = 2**31 + 10
    path = tmp_path / "user01_fluorescent.aedat"
    write_aedat(path, [_packet(1, _polarity(first), 8, 3), _packet(0, special, 8, 2), _packet(1, _polarity(second), 8, 1, overflow=1)])
    events = read_aedat31(path)
    expected = np.array([[0, 0, 1, 1000], [127, 5, 0, 1500], [64, 127, 1, 2**31 + 10]], dtype=np.int64)
    assert events.dtype == np.int64
    np.testing.assert_array_equal(events, expected)


def test_aedat_truncated_and_wrong_version(tmp_path: Path) -> None:
    good = _packet(1, _polarity([(1, 1, 1, 10, 1), (2, 2, 0, 20, 1)]), 8, 2)
    path = tmp_path / "cut.aedat"
    write_aedat(path, [good[:-3]])  # payload cut short
    with pytest.raises(DatasetFormatError, match=r"cut\.aedat: truncated file: packet at offset 61"):
        read_aedat31(path)
    write_aedat(path, [good, good[:20]])  # second packet header cut short
    with pytest.raises(DatasetFormatError, match="less than a 28-byte packet header"):
        read_aedat31(path)
    old = tmp_path / "old.aedat"
    old.write_bytes(b"#!AER-DAT2.0\r\n" + b"\x00" * 16)
    with pytest.raises(DatasetFormatError, match="unsupported AEDAT version"):
        read_aedat31(old)


def test_labels_csv(tmp_path: Path) -> None:
    path = tmp_path / "user01_led_labels.csv"
    path.write_text("class,startTime_usec,endTime_usec\n1,100,200\n11,300,450\n")
    assert read_gesture_labels(path) == [(0, 100, 200), (10, 300, 450)]
    path.write_text("class,startTime_usec,endTime_usec\n1,100,200\n3,300\n")
    with pytest.raises(DatasetFormatError, match=r"labels\.csv, line 3: expected 3 columns"):
        read_gesture_labels(path)
    path.write_text("class,startTime_usec,endTime_usec\n12,100,200\n")
    with pytest.raises(DatasetFormatError, match=r"line 2: class 12 outside 1\.\.11"):
        read_gesture_labels(path)


def test_labels_csv_and_trial_list_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "user01_led_labels.csv"
    path.write_bytes(b"class,startTime_usec,endTime_usec\n1,100,200\n\x83\xff\x00\x01,300,450\n")
    with pytest.raises(DatasetFormatError, match=r"user01_led_labels\.csv, line 3: byte 0x83 at column 1 is not UTF-8"):
        read_gesture_labels(path)
    # the same through the loader, for the IBM trial lists
    ev = [(0, 0, 1, 1_000, 1), (2, 2, 0, 41_000, 1)]
    write_aedat(tmp_path / "user01_fluorescent.aedat", [_packet(1, _polarity(ev), 8, len(ev))])
    (tmp_path / "user01_fluorescent_labels.csv").write_text("class,startTime_usec,endTime_usec\n2,0,45000\n")
    (tmp_path / "trials_to_train.txt").write_bytes(b"user01_fluorescent.aedat\n\xfe\xff\n")
    (tmp_path / "trials_to_test.txt").write_text("user24_led.aedat\n")
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, progress=False, cache=False)
    assert info.value.line == 2 and "trials_to_train.txt, line 2: byte 0xfe" in str(info.value)


def test_aedat_layout_segments_and_user_split(tmp_path: Path) -> None:
    # user01 (train): two gestures; user24 (test): one gesture
    ev1 = [(0, 0, 1, 1_000, 1), (2, 2, 0, 41_000, 1), (9, 0, 1, 50_000, 1), (8, 0, 1, 60_000, 1), (127, 127, 0, 81_000, 1)]
    write_aedat(tmp_path / "user01_fluorescent.aedat", [_packet(1, _polarity(ev1), 8, len(ev1))])
    (tmp_path / "user01_fluorescent_labels.csv").write_text("class,startTime_usec,endTime_usec\n2,0,45000\n5,50000,90000\n")
    ev2 = [(4, 6, 1, 5_000, 1), (5, 7, 0, 6_000, 1)]
    write_aedat(tmp_path / "user24_led.aedat", [_packet(1, _polarity(ev2), 8, len(ev2))])
    (tmp_path / "user24_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n11,0,10000\n")
    ds = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, binary=False, progress=False)
    assert ds.meta["layout"] == "aedat"
    assert ds.y_train.tolist() == [1, 4] and ds.y_test.tolist() == [10]
    # segment 1: events at 1, 41 ms (t relative to start 0): span 40 ms -> bins 0 and 3
    assert torch.equal(ds.x_train[0], _dense({(0, 0): 1, (65, 3): 1}))
    # segment 2: events at 50, 60, 81 ms (start 50 ms -> 0, 10, 31): span 31 -> bins 0, floor(40/31)=1, 3
    assert torch.equal(ds.x_train[1], _dense({(4, 0): 1, (4, 1): 1, (4095, 3): 1}))
    # both test events fall on pooled pixel (3, 2): ch 3*64+2; span 1 ms -> bins 0 and 3
    assert torch.equal(ds.x_test[0], _dense({(194, 0): 1, (194, 3): 1}))
    # trials_to_train/test lists override the user-number rule
    (tmp_path / "trials_to_train.txt").write_text("user24_led.aedat\n")
    (tmp_path / "trials_to_test.txt").write_text("user01_fluorescent.aedat\n")
    swapped = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, binary=False, progress=False)
    assert swapped.y_train.tolist() == [10] and swapped.y_test.tolist() == [1, 4]


def test_cache_reused_on_second_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _npy_layout(tmp_path)
    first = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, progress=False)
    cache_file = Path(first.meta["cache_file"])
    assert not first.meta["cache_hit"] and cache_file.is_file()
    assert cache_file.parent == tmp_path / ".solsa_cache"

    def fail(*args, **kwargs):
        raise AssertionError("converter called although the cache is valid")

    monkeypatch.setattr(dvs, "convert_events", fail)
    second = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, progress=False)
    assert second.meta["cache_hit"]
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    # other frame options are another cache entry
    with pytest.raises(AssertionError, match="converter called"):
        load_dataset("DVSGesture", data_dir=tmp_path, n_steps=5, progress=False)


def test_interrupted_cache_write_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _npy_layout(tmp_path)
    real_save = torch.save

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(dvs.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, progress=False)
    cache = tmp_path / ".solsa_cache"
    assert list(cache.iterdir()) == []  # neither a cache file nor a temporary left behind
    monkeypatch.setattr(dvs.torch, "save", real_save)
    again = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, progress=False)
    assert not again.meta["cache_hit"]
    assert torch.equal(again.x_test[0], (_dense(EXPECTED_A) > 0).float())


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    _npy_layout(tmp_path)
    first = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, progress=False)
    Path(first.meta["cache_file"]).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = load_dataset("DVSGesture", data_dir=tmp_path, n_steps=4, progress=False)
    assert torch.equal(first.x_train, again.x_train)


def test_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ibmGestureTrain/user01_fluorescent/0.npy"):
        load_dataset("DVSGesture", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        load_dataset("DVSGesture")
    _npy_layout(tmp_path)
    np.save(tmp_path / "ibmGestureTest" / "user24_natural" / "clap.npy", EVENTS_A)
    with pytest.raises(DatasetFormatError, match=r"clap\.npy: file stem must be the class index"):
        load_dataset("DVSGesture", data_dir=tmp_path, progress=False, cache=False)
    (tmp_path / "ibmGestureTest" / "user24_natural" / "clap.npy").unlink()
    np.save(tmp_path / "ibmGestureTest" / "user24_natural" / "2.npy", EVENTS_A[:, :3])
    with pytest.raises(DatasetFormatError, match=r"2\.npy: expected an \(n, 4\) event array"):
        load_dataset("DVSGesture", data_dir=tmp_path, progress=False, cache=False)


def test_unreadable_npy(tmp_path: Path) -> None:
    _npy_layout(tmp_path)
    (tmp_path / "ibmGestureTest" / "user24_natural" / "4.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetFormatError, match=r"4\.npy: unreadable \.npy file"):
        load_dataset("DVSGesture", data_dir=tmp_path, progress=False, cache=False)


def test_train_no_progress_hides_the_conversion_bar(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from solsa_ext.cli import main

    _npy_layout(tmp_path / "data")
    argv = ["train", "--dataset", "DVSGesture", "--data-dir", str(tmp_path / "data"), "-O", "n_steps=4",
            "--epochs", "1", "--hidden", "4", "--out", str(tmp_path / "run")]
    assert main(argv + ["--no-progress", "-O", "cache=false"]) == 0
    assert "converting" not in capsys.readouterr().err
    assert main(argv + ["-O", "cache=false"]) == 0
    assert "DVSGesture: converting .npy" in capsys.readouterr().err  # shown without --no-progress
