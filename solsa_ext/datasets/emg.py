"""EMG datasets from the UCI repository: hand gestures (Myo, spikes) and physical actions.

EMGGesture -- UCI "EMG data for gestures" (https://archive.ics.uci.edu/dataset/481):
``<root>/<NN>/*.txt`` (one folder per subject, 36 subjects, two recordings each), rows
``time ch1 .. ch8 class`` (whitespace separated, header line optional). Class 0
(unmarked) is dropped; classes 1..7 map to indices 0..6. Each recording is cut into runs
of one class, each run into windows of ``n_steps`` rows (default 100, non-overlapping);
windows never cross a class change. Whole subjects are held out for the test split.
Windows are z-scored per channel with train statistics, then spike-encoded (``delta``:
16 up/down channels, or ``threshold``: 8 channels).

EMGAction -- UCI "EMG Physical Action" (https://archive.ics.uci.edu/dataset/213):
``<root>/sub<k>/{Aggressive,Normal}/txt/<Action>.txt``, 8 columns at 1 kHz, about 10000
rows. One action set (10 classes, default the aggressive actions) is cut into
``n_steps``-row windows (default 1000); split by recording time (last windows of every
recording to test) or by subject. Current input, z-scored with train statistics.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
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
    resolve_data_dir,
)

__all__ = [
    "ACTION_SETS",
    "EMG_DATASETS",
    "GESTURE_CLASSES",
    "class_runs",
    "delta_encode",
    "load_emg_action",
    "load_emg_gesture",
    "read_numeric_table",
    "split_subjects",
    "threshold_encode",
    "window_starts",
]

GESTURE_URL = "https://archive.ics.uci.edu/dataset/481/emg+data+for+gestures"
ACTION_URL = "https://archive.ics.uci.edu/dataset/213/emg+physical+action+data+set"

#: EMGGesture class names; index i is the UCI class id i + 1 (class 0 = unmarked, dropped).
GESTURE_CLASSES: list[str] = [
    "hand_at_rest",
    "hand_clenched_in_fist",
    "wrist_flexion",
    "wrist_extension",
    "radial_deviation",
    "ulnar_deviation",
    "extended_palm",
]

#: EMGAction class names per action set; the file stem is matched case-insensitively
#: (the UCI release spells one file ``Hamering.txt``; ``Hammering.txt`` is accepted too).
ACTION_SETS: dict[str, list[str]] = {
    "aggressive": [
        "Elbowing",
        "Frontkicking",
        "Hamering",
        "Headering",
        "Kneeing",
        "Pulling",
        "Punching",
        "Pushing",
        "Sidekicking",
        "Slapping",
    ],
    "normal": [
        "Bowing",
        "Clapping",
        "Handshaking",
        "Hugging",
        "Jumping",
        "Running",
        "Seating",
        "Standing",
        "Walking",
        "Waving",
    ],
}
_ACTION_ALIASES = {"hamering": ("hamering", "hammering")}
_ACTION_FOLDERS = {"aggressive": "Aggressive", "normal": "Normal"}

DEFAULT_THRESHOLDS = {"delta": 0.5, "threshold": 1.0}


# ----------------------------------------------------------------------------- text tables


def _is_float(token: str) -> bool:
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


def _find_bad_row(path: Path, n_columns: int, delimiter: str | None, first_line: int) -> tuple[int, str] | None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if number < first_line or not raw.strip():
                continue
            fields = [f for f in raw.strip().split(delimiter)] if delimiter else raw.split()
            if len(fields) != n_columns:
                return number, f"expected {n_columns} columns, found {len(fields)}"
            for index, field in enumerate(fields, start=1):
                if not _is_float(field.strip()):
                    return number, f"column {index}: {field.strip()[:30]!r} is not a finite number"
    return None


def _line_of_row(path: Path, first_line: int, row: int) -> int:
    """1-based line number of data row ``row`` (0-based, blank lines skipped)."""
    seen = -1
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if number >= first_line and raw.strip():
                seen += 1
                if seen == row:
                    return number
    return first_line + row


def read_numeric_table(path: str | os.PathLike, n_columns: int) -> tuple[np.ndarray, int]:
    """Read a whitespace- (or comma-) separated numeric text file.

    A first line that does not start with a number is taken as a header. Returns the
    ``(rows, n_columns)`` float64 array and the 1-based line number of its first row
    (blank lines are skipped).
    A missing column, an extra column or a non-number raises
    :class:`DatasetFormatError` naming the file and line.
    """
    path = Path(path)
    first_line = 0
    delimiter: str | None = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                first_line = number
                token = re.split(r"[\s,]+", raw.strip())[0]
                if not _is_float(token):
                    first_line = number + 1
                    continue
                delimiter = "," if "," in raw else None
                break
    if first_line == 0:
        raise DatasetFormatError(path, "empty file")
    bad = None
    data = None
    try:
        data = np.loadtxt(path, delimiter=delimiter, skiprows=first_line - 1, ndmin=2, dtype=np.float64, comments=None)
    except ValueError:
        bad = _find_bad_row(path, n_columns, delimiter, first_line)
        if bad is None:
            raise DatasetFormatError(path, "could not parse the numeric table") from None
    if data is not None and (data.shape[1] != n_columns or not np.isfinite(data).all()):
        bad = _find_bad_row(path, n_columns, delimiter, first_line)
    if bad is not None:
        raise DatasetFormatError(path, bad[1], bad[0])
    if data is None or data.shape[0] == 0:
        raise DatasetFormatError(path, "no data rows")
    return data, first_line


# ----------------------------------------------------------------------------- windows


def class_runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of equal labels as ``(start, stop, label)`` (stop exclusive)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [labels.size]])
    return [(int(a), int(b), int(labels[a])) for a, b in zip(starts, stops)]


def window_starts(length: int, n_steps: int, stride: int) -> list[int]:
    """Starts of the windows ``[s, s + n_steps)`` that fit in ``length`` rows:
    ``0, stride, 2 * stride, ...`` (``floor((length - n_steps) / stride) + 1`` of them)."""
    if length < n_steps:
        return []
    return list(range(0, length - n_steps + 1, stride))


def split_subjects(subjects: Sequence[str], test_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic subject split: the last ``max(1, round(n * test_fraction))`` subjects
    (in the given order) are the test subjects."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    if len(subjects) < 2:
        raise ValueError(f"need at least 2 subjects for a subject split, found {len(subjects)}")
    n_test = min(len(subjects) - 1, max(1, int(math.floor(len(subjects) * test_fraction + 0.5))))
    return list(subjects[: len(subjects) - n_test]), list(subjects[len(subjects) - n_test :])


# ----------------------------------------------------------------------------- encoders


def delta_encode(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Delta-modulation (send-on-delta) spike encoder with up and down channels.

    ``x``: ``(N, C, T)``. Per sample and channel a reference starts at ``x[..., 0]``; at
    step ``t >= 1`` an *up* spike fires if ``x[t] - ref >= threshold``, a *down* spike if
    ``x[t] - ref <= -threshold``, and on a spike the reference resets to ``x[t]``. No
    spike at ``t = 0``. Returns ``(N, 2C, T)`` float32 0/1: channels ``0..C-1`` are the
    up spikes of channels ``0..C-1``, channels ``C..2C-1`` their down spikes.
    """
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    n, c, t_steps = x.shape
    x = x.to(torch.float64)
    up = torch.zeros(n, c, t_steps, dtype=torch.float32)
    down = torch.zeros(n, c, t_steps, dtype=torch.float32)
    ref = x[..., 0].clone()
    for t in range(1, t_steps):
        diff = x[..., t] - ref
        fire_up = diff >= threshold
        fire_down = diff <= -threshold
        up[..., t] = fire_up.to(torch.float32)
        down[..., t] = fire_down.to(torch.float32)
        ref = torch.where(fire_up | fire_down, x[..., t], ref)
    return torch.cat([up, down], dim=1)


def threshold_encode(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Spike where the magnitude reaches the threshold: ``(|x| >= threshold)`` as float32,
    shape ``(N, C, T)`` unchanged."""
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    return (x.abs() >= threshold).to(torch.float32)


# ----------------------------------------------------------------------------- gestures


def _first_existing(data_dir: Path, subfolders: Sequence[str], test) -> Path | None:
    for root in [data_dir] + [data_dir / s for s in subfolders]:
        if root.is_dir() and test(root):
            return root
    return None


def _gesture_subjects(root: Path) -> list[Path]:
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit() and any(p.glob("*.txt"))]
    return sorted(dirs, key=lambda p: (int(p.name), p.name))


def _require_dir(data_dir: str | os.PathLike | None, what: str, layout: str, url: str) -> Path:
    base = resolve_data_dir(data_dir)
    if base is None:
        raise FileNotFoundError(
            f"{what} needs your copy of the data: download it from {url}, unpack it and pass data_dir=<root> "
            f"(CLI: --data-dir, or set {DATA_DIR_ENV}). Expected layout: {layout}."
        )
    return base


@dataclass
class _Windows:
    x: list[np.ndarray]
    y: list[int]
    origin: list[str]


def _gesture_windows(path: Path, n_steps: int, stride: int, out: _Windows) -> dict[int, int]:
    """Append the windows of one recording; returns the row count per class id."""
    table, first_line = read_numeric_table(path, 10)
    labels = table[:, 9]
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0) | (labels > len(GESTURE_CLASSES)))
    if bad.size:
        row = int(bad[0])
        raise DatasetFormatError(
            path, f"class {labels[row]:g} is not an integer 0..{len(GESTURE_CLASSES)}", _line_of_row(path, first_line, row)
        )
    labels = labels.astype(np.int64)
    signal = table[:, 1:9]
    rows: dict[int, int] = {}
    for start, stop, cls in class_runs(labels):
        rows[cls] = rows.get(cls, 0) + stop - start
        if cls == 0:
            continue
        for s in window_starts(stop - start, n_steps, stride):
            a = start + s
            out.x.append(signal[a : a + n_steps].T)
            out.y.append(cls - 1)
            out.origin.append(f"{path.parent.name}/{path.name}:{a}")
    return rows


def _stack(windows: _Windows, n_channels: int, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not windows.x:
        return torch.zeros(0, n_channels, n_steps), torch.zeros(0, dtype=torch.int64)
    x = torch.from_numpy(np.stack(windows.x).astype(np.float64))
    return x, torch.tensor(windows.y, dtype=torch.int64)


def load_emg_gesture(
    data_dir: str | os.PathLike | None = None,
    normalize: bool = True,
    n_steps: int = 100,
    stride: int | None = None,
    encoding: str = "delta",
    threshold: float | None = None,
    test_fraction: float = 0.25,
    test_subjects: Sequence[str] | None = None,
    progress: bool = True,
) -> SequenceDataset:
    """Load UCI "EMG data for gestures" as spike trains.

    Returns ``x_*``: ``(N, 16, n_steps)`` (``encoding="delta"``: up spikes of ch1..ch8
    then down spikes) or ``(N, 8, n_steps)`` (``encoding="threshold"``), float32 0/1.
    ``stride`` defaults to ``n_steps`` (non-overlapping windows). ``threshold`` is in
    units of the channel's train std (defaults: 0.5 for delta, 1.0 for threshold).
    Test subjects: ``test_subjects`` (folder names) or the last ``test_fraction`` of the
    subject folders in numeric order. ``normalize`` is ignored: the z-scoring before the
    encoder always uses train statistics (recorded in ``meta``), and spikes are not
    normalised.
    """
    del normalize
    from tqdm.auto import tqdm

    if encoding not in DEFAULT_THRESHOLDS:
        raise ValueError(f"encoding must be 'delta' or 'threshold', got {encoding!r}")
    stride = n_steps if stride is None else stride
    if n_steps <= 0 or stride <= 0:
        raise ValueError("n_steps and stride must be positive")
    theta = DEFAULT_THRESHOLDS[encoding] if threshold is None else float(threshold)
    layout = "<root>/01/1_raw_data_<...>.txt ... <root>/36/*.txt, columns time ch1..ch8 class"
    base = _require_dir(data_dir, "EMGGesture", layout, GESTURE_URL)
    root = _first_existing(base, ("EMG_data_for_gestures-master", "EMGGesture", "EMG_data_for_gestures"), lambda r: bool(_gesture_subjects(r)))
    if root is None:
        raise FileNotFoundError(
            f"EMGGesture: no subject folders with .txt recordings under {base} (or its EMG_data_for_gestures-master/). "
            f"Expected layout: {layout}. Download: {GESTURE_URL}; pass data_dir=<root> (CLI: --data-dir)."
        )
    subjects = [p.name for p in _gesture_subjects(root)]
    if test_subjects is not None:
        test_set = [str(s) for s in test_subjects]
        unknown = sorted(set(test_set) - set(subjects))
        if unknown:
            raise ValueError(f"test_subjects {unknown} not found under {root}; subjects: {subjects}")
        train_set = [s for s in subjects if s not in test_set]
    else:
        train_set, test_set = split_subjects(subjects, test_fraction)
    windows = {"train": _Windows([], [], []), "test": _Windows([], [], [])}
    dropped_rows = 0
    files = [(s, f) for s in subjects for f in sorted((root / s).glob("*.txt"))]
    for subject, path in tqdm(files, desc="EMGGesture: reading", unit="file", disable=not progress):
        split = "test" if subject in test_set else "train"
        rows = _gesture_windows(path, n_steps, stride, windows[split])
        dropped_rows += rows.get(0, 0)
    x_train, y_train = _stack(windows["train"], 8, n_steps)
    x_test, y_test = _stack(windows["test"], 8, n_steps)
    if x_train.shape[0] == 0 or x_test.shape[0] == 0:
        raise ValueError(f"EMGGesture: windowing left {x_train.shape[0]} train / {x_test.shape[0]} test windows (n_steps={n_steps})")
    full_train = torch.full((x_train.shape[0],), n_steps, dtype=torch.int64)
    full_test = torch.full((x_test.shape[0],), n_steps, dtype=torch.int64)
    mean, std = fit_normalization(x_train, full_train)
    z_train = apply_normalization(x_train, full_train, mean, std)
    z_test = apply_normalization(x_test, full_test, mean, std)
    encode = delta_encode if encoding == "delta" else threshold_encode
    s_train, s_test = encode(z_train, theta), encode(z_test, theta)
    n_inputs = s_train.shape[1]
    meta: dict[str, Any] = {
        "source": str(root),
        "url": GESTURE_URL,
        "class_ids": "UCI class c in 1..7 -> index c-1; class 0 (unmarked) dropped",
        "dropped_unmarked_rows": dropped_rows,
        "window": {"n_steps": n_steps, "stride": stride, "crosses_class_change": False},
        "encoding": encoding,
        "threshold": theta,
        "encoder_input": "per-channel z-score with train statistics (encoder_mean/encoder_std)",
        "encoder_mean": mean.tolist(),
        "encoder_std": std.tolist(),
        "channel_order": "up ch1..ch8, down ch1..ch8" if encoding == "delta" else "ch1..ch8",
        "split": "by subject",
        "train_subjects": train_set,
        "test_subjects": test_set,
        "train_windows": windows["train"].origin,
        "test_windows": windows["test"].origin,
    }
    return SequenceDataset(
        name="EMGGesture",
        x_train=s_train,
        y_train=y_train,
        len_train=full_train,
        x_test=s_test,
        y_test=y_test,
        len_test=full_test,
        classes=list(GESTURE_CLASSES),
        input_kind="spikes",
        paper_net=(n_inputs, 150, 150, len(GESTURE_CLASSES)),
        norm_mean=None,
        norm_std=None,
        meta=meta,
    )


# ----------------------------------------------------------------------------- actions


def _action_subjects(root: Path) -> list[Path]:
    dirs = [p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"sub\d+", p.name, re.IGNORECASE)]
    return sorted(dirs, key=lambda p: int(p.name[3:]))


def _child(folder: Path, name: str) -> Path | None:
    wanted = name.lower()
    if not folder.is_dir():
        return None
    for p in folder.iterdir():
        if p.name.lower() == wanted:
            return p
    return None


def _action_file(subject: Path, action_set: str, action: str) -> Path:
    folder = _child(subject, _ACTION_FOLDERS[action_set])
    txt = _child(folder, "txt") if folder is not None else None
    if txt is not None:
        for alias in _ACTION_ALIASES.get(action.lower(), (action.lower(),)):
            found = _child(txt, alias + ".txt")
            if found is not None:
                return found
    raise FileNotFoundError(
        f"EMGAction: missing recording {subject / _ACTION_FOLDERS[action_set] / 'txt' / (action + '.txt')} "
        f"(download: {ACTION_URL})"
    )


def load_emg_action(
    data_dir: str | os.PathLike | None = None,
    normalize: bool = True,
    n_steps: int = 1000,
    stride: int | None = None,
    action_set: str = "aggressive",
    split: str = "time",
    test_fraction: float = 0.3,
    test_subjects: Sequence[str] | None = None,
    progress: bool = True,
) -> SequenceDataset:
    """Load UCI "EMG Physical Action" as ``(N, 8, n_steps)`` float32 current input.

    ``action_set``: ``"aggressive"`` (default) or ``"normal"`` -- 10 classes, in the
    order of :data:`ACTION_SETS`. Windows of ``n_steps`` rows every ``stride`` rows
    (default ``n_steps``). ``split="time"``: of every recording's windows (in time
    order) the last ``max(1, round(n * test_fraction))`` go to test; ``split="subject"``:
    ``test_subjects`` (e.g. ``["sub4"]``) or the last ``test_fraction`` of the subjects.
    ``normalize``: z-score per channel with the train windows' statistics.
    """
    from tqdm.auto import tqdm

    if action_set not in ACTION_SETS:
        raise ValueError(f"action_set must be one of {sorted(ACTION_SETS)}, got {action_set!r}")
    if split not in ("time", "subject"):
        raise ValueError(f"split must be 'time' or 'subject', got {split!r}")
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    stride = n_steps if stride is None else stride
    if n_steps <= 0 or stride <= 0:
        raise ValueError("n_steps and stride must be positive")
    layout = "<root>/sub1/Aggressive/txt/Elbowing.txt ... <root>/sub4/Normal/txt/Waving.txt, 8 columns"
    base = _require_dir(data_dir, "EMGAction", layout, ACTION_URL)
    subfolders = ("EMG Physical Action Data Set", "EMG_Physical_Action_Data_Set", "EMGAction", "emg_physical_action")
    root = _first_existing(base, subfolders, lambda r: bool(_action_subjects(r)))
    if root is None:
        raise FileNotFoundError(
            f"EMGAction: no sub<k> folders under {base} (or {', '.join(subfolders)}). Expected layout: {layout}. "
            f"Download: {ACTION_URL}; pass data_dir=<root> (CLI: --data-dir)."
        )
    subjects = [p.name for p in _action_subjects(root)]
    if split == "subject":
        if test_subjects is not None:
            test_set = [str(s) for s in test_subjects]
            unknown = sorted(set(test_set) - set(subjects))
            if unknown:
                raise ValueError(f"test_subjects {unknown} not found under {root}; subjects: {subjects}")
            train_set = [s for s in subjects if s not in test_set]
        else:
            train_set, test_set = split_subjects(subjects, test_fraction)
    else:
        train_set, test_set = list(subjects), list(subjects)
    actions = ACTION_SETS[action_set]
    windows = {"train": _Windows([], [], []), "test": _Windows([], [], [])}
    jobs = [(s, i, a) for s in subjects for i, a in enumerate(actions)]
    for subject, label, action in tqdm(jobs, desc="EMGAction: reading", unit="file", disable=not progress):
        path = _action_file(root / subject, action_set, action)
        table, _ = read_numeric_table(path, 8)
        starts = window_starts(table.shape[0], n_steps, stride)
        if split == "time":
            if len(starts) < 2:
                raise ValueError(f"{path}: {table.shape[0]} rows give {len(starts)} windows, need 2 for a time split")
            n_test = min(len(starts) - 1, max(1, int(math.floor(len(starts) * test_fraction + 0.5))))
            sides = ["train"] * (len(starts) - n_test) + ["test"] * n_test
            if stride < n_steps and n_test < len(starts):
                # drop train windows overlapping the first test window: no shared rows
                first_test = starts[len(starts) - n_test]
                sides = [side if side == "test" or s + n_steps <= first_test else "drop" for s, side in zip(starts, sides)]
        else:
            sides = ["test" if subject in test_set else "train"] * len(starts)
        for s, side in zip(starts, sides):
            if side == "drop":
                continue
            windows[side].x.append(table[s : s + n_steps].T)
            windows[side].y.append(label)
            windows[side].origin.append(f"{subject}/{path.name}:{s}")
    x_train, y_train = _stack(windows["train"], 8, n_steps)
    x_test, y_test = _stack(windows["test"], 8, n_steps)
    if x_train.shape[0] == 0 or x_test.shape[0] == 0:
        raise ValueError(f"EMGAction: windowing left {x_train.shape[0]} train / {x_test.shape[0]} test windows")
    len_train = torch.full((x_train.shape[0],), n_steps, dtype=torch.int64)
    len_test = torch.full((x_test.shape[0],), n_steps, dtype=torch.int64)
    mean = std = None
    if normalize:
        mean, std = fit_normalization(x_train, len_train)
        x_train = apply_normalization(x_train, len_train, mean, std)
        x_test = apply_normalization(x_test, len_test, mean, std)
    else:
        x_train, x_test = x_train.to(torch.float32), x_test.to(torch.float32)
    meta: dict[str, Any] = {
        "source": str(root),
        "url": ACTION_URL,
        "action_set": action_set,
        "window": {"n_steps": n_steps, "stride": stride},
        "split": "by recording time: last windows of each recording to test"
        if split == "time"
        else "by subject",
        "test_fraction": test_fraction,
        "train_subjects": train_set,
        "test_subjects": test_set,
        "normalization": "per-channel z-score, train split, population std" if normalize else None,
        "train_windows": windows["train"].origin,
        "test_windows": windows["test"].origin,
    }
    return SequenceDataset(
        name="EMGAction",
        x_train=x_train,
        y_train=y_train,
        len_train=len_train,
        x_test=x_test,
        y_test=y_test,
        len_test=len_test,
        classes=list(actions),
        input_kind="current",
        paper_net=(8, 200, 200, len(actions)),
        norm_mean=mean,
        norm_std=std,
        meta=meta,
    )


EMG_DATASETS: dict[str, DatasetSpec] = {
    "EMGGesture": DatasetSpec(
        "EMGGesture",
        load_emg_gesture,
        (16, 150, 150, 7),
        "spikes",
        "UCI EMG data for gestures (Myo, 8 ch), 100-step windows, delta-modulated to 16 up/down spike channels, 7 classes",
    ),
    "EMGAction": DatasetSpec(
        "EMGAction",
        load_emg_action,
        (8, 200, 200, 10),
        "current",
        "UCI EMG Physical Action (8 ch, 1 kHz), 1000-step windows, 10 aggressive actions",
    ),
}
