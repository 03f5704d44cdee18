"""DVS128 Gesture (IBM): event streams binned into spike frames.

Two on-disk layouts are read (``layout="auto"`` picks whichever is present):

* ``npy``: the common preprocessed layout
  ``<root>/ibmGestureTrain|ibmGestureTest/user<NN>_<lighting>/<label>.npy``, each file an
  ``(n, 4)`` array of events ``(x, y, p, t_ms)``; ``label`` (the file stem) is the 0-based
  class index.
* ``aedat``: the original IBM release, ``<root>/user<NN>_<lighting>.aedat`` (AEDAT 3.1)
  with ``<root>/user<NN>_<lighting>_labels.csv`` (``class,startTime_usec,endTime_usec``,
  classes 1..11). Train trials are those listed in ``trials_to_train.txt`` /
  ``trials_to_test.txt`` when present, else users 1-23 train and 24-29 test (the IBM
  convention).

Each sample becomes a ``(C, T)`` frame: pixels pooled ``downsample x downsample`` (128x128
-> 64x64 by default), both polarities merged, channel ``(y // d) * (128 // d) + x // d``;
``T`` bins spread evenly from the sample's first to its last event (or fixed bins of
``window_ms / T`` from the first event when ``window_ms`` is given, later events
dropped). ``binary=True`` gives 1 where a bin has any event, else the event counts.
Converted counts are cached atomically under ``<data_dir>/.solsa_cache/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_torch_save
from .base import DATA_DIR_ENV, DatasetFormatError, DatasetSpec, SequenceDataset, not_text_error, resolve_data_dir

__all__ = [
    "DVS_CLASSES",
    "DVS_DATASETS",
    "FrameOptions",
    "events_to_counts",
    "load_dvs_gesture",
    "read_aedat31",
    "read_gesture_labels",
]

#: IBM class names; index = class id in the labels csv minus 1 (= the .npy file stem).
DVS_CLASSES: list[str] = [
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
]

SENSOR_SIZE = 128
IBM_URL = "https://research.ibm.com/interactive/dvsgesture/"
CACHE_VERSION = 1
TRAIN_USERS = range(1, 24)  # users 1-23 train, 24-29 test (IBM trials_to_train/test)

_POLARITY_EVENT = 1
_PACKET_HEADER = np.dtype(
    [
        ("eventType", "<i2"),
        ("eventSource", "<i2"),
        ("eventSize", "<i4"),
        ("eventTSOffset", "<i4"),
        ("eventTSOverflow", "<i4"),
        ("eventCapacity", "<i4"),
        ("eventNumber", "<i4"),
        ("eventValid", "<i4"),
    ]
)
_TRIAL_RE = re.compile(r"^user(\d+)_(.+)\.aedat$")


@dataclass(frozen=True)
class FrameOptions:
    """How events become frames (these options key the cache).

    ``n_steps``: bins T; ``window_ms``: None = T bins over the sample's first-to-last
    event span, else bins of ``window_ms / T`` ms from the first event; ``downsample``:
    pooling factor d (input size ``(128 // d) ** 2``).
    """

    n_steps: int = 100
    window_ms: float | None = None
    downsample: int = 2

    def __post_init__(self) -> None:
        if self.n_steps <= 0:
            raise ValueError("n_steps must be positive")
        if self.window_ms is not None and self.window_ms <= 0:
            raise ValueError("window_ms must be positive")
        if self.downsample <= 0 or SENSOR_SIZE % self.downsample:
            raise ValueError(f"downsample must divide {SENSOR_SIZE}")

    @property
    def side(self) -> int:
        return SENSOR_SIZE // self.downsample

    @property
    def n_inputs(self) -> int:
        return self.side * self.side


def events_to_counts(events: np.ndarray, options: FrameOptions, source: str | os.PathLike = "<events>") -> np.ndarray:
    """Bin ``(n, 4)`` events ``(x, y, p, t_ms)`` into a ``(C, T)`` int32 count frame.

    Channel of an event: ``(y // d) * (128 // d) + x // d`` (polarity ignored). Bin:
    ``floor((t - t_first) * T / (t_last - t_first))`` with the last event in bin T-1
    (all in bin 0 if the span is 0), or ``floor((t - t_first) * T / window_ms)`` with
    events at bin >= T dropped when ``window_ms`` is set.
    """
    events = np.asarray(events)
    if events.ndim != 2 or events.shape[1] != 4:
        raise DatasetFormatError(source, f"expected an (n, 4) event array (x, y, p, t_ms), got shape {events.shape}")
    n_steps = options.n_steps
    counts = np.zeros((options.n_inputs, n_steps), dtype=np.int32)
    if events.shape[0] == 0:
        return counts
    x = events[:, 0].astype(np.int64)
    y = events[:, 1].astype(np.int64)
    t = events[:, 3].astype(np.float64)
    if (x < 0).any() or (x >= SENSOR_SIZE).any() or (y < 0).any() or (y >= SENSOR_SIZE).any():
        raise DatasetFormatError(source, f"event coordinates outside the {SENSOR_SIZE}x{SENSOR_SIZE} sensor")
    if not np.isfinite(t).all():
        raise DatasetFormatError(source, "non-finite event timestamps")
    t0 = t.min()
    if options.window_ms is None:
        span = t.max() - t0
        if span > 0:
            bins = np.floor((t - t0) * n_steps / span).astype(np.int64)
            np.minimum(bins, n_steps - 1, out=bins)
        else:
            bins = np.zeros(t.shape, dtype=np.int64)
    else:
        bins = np.floor((t - t0) * n_steps / options.window_ms).astype(np.int64)
        keep = bins < n_steps
        x, y, bins = x[keep], y[keep], bins[keep]
    d = options.downsample
    channel = (y // d) * options.side + x // d
    flat = channel * n_steps + bins
    counts += np.bincount(flat, minlength=options.n_inputs * n_steps).reshape(options.n_inputs, n_steps).astype(np.int32)
    return counts


# ----------------------------------------------------------------------------- AEDAT 3.1


def _aedat_header_end(buf: bytes, path: Path) -> int:
    if not buf.startswith(b"#!AER-DAT"):
        raise DatasetFormatError(path, "not an AEDAT file (first line must start with '#!AER-DAT3.1')")
    first = buf.split(b"\n", 1)[0].strip()
    if not first.startswith(b"#!AER-DAT3"):
        raise DatasetFormatError(path, f"unsupported AEDAT version {first.decode(errors='replace')!r} (need 3.1)")
    pos = 0
    while pos < len(buf) and buf[pos : pos + 1] == b"#":
        end = buf.find(b"\n", pos)
        if end < 0:
            raise DatasetFormatError(path, "truncated header (no end of line)")
        line = buf[pos:end].strip()
        pos = end + 1
        if line == b"#!END-HEADER":
            return pos
    return pos


def read_aedat31(path: str | os.PathLike) -> np.ndarray:
    """Read the polarity events of an AEDAT 3.1 file.

    Returns an ``(n, 4)`` int64 array of valid events ``(x, y, p, t_us)`` in file order;
    ``t_us`` includes the packet's timestamp overflow (``overflow << 31 | ts``). Other
    event types are skipped. Truncated or inconsistent packets raise
    :class:`DatasetFormatError` with the byte offset.
    """
    path = Path(path)
    buf = path.read_bytes()
    pos = _aedat_header_end(buf, path)
    chunks: list[np.ndarray] = []
    size = len(buf)
    while pos < size:
        if size - pos < _PACKET_HEADER.itemsize:
            raise DatasetFormatError(
                path, f"truncated file: {size - pos} bytes at offset {pos}, less than a 28-byte packet header"
            )
        head = np.frombuffer(buf, dtype=_PACKET_HEADER, count=1, offset=pos)[0]
        ev_type, ev_size = int(head["eventType"]), int(head["eventSize"])
        capacity, number = int(head["eventCapacity"]), int(head["eventNumber"])
        if ev_size <= 0 or capacity < 0 or number < 0 or number > capacity:
            raise DatasetFormatError(
                path, f"corrupt packet header at offset {pos} (size={ev_size}, capacity={capacity}, number={number})"
            )
        payload = ev_size * capacity
        start = pos + _PACKET_HEADER.itemsize
        if start + payload > size:
            raise DatasetFormatError(
                path,
                f"truncated file: packet at offset {pos} declares {payload} bytes of events, "
                f"only {size - start} remain",
            )
        if ev_type == _POLARITY_EVENT and number > 0:
            if ev_size < 8:
                raise DatasetFormatError(path, f"polarity packet at offset {pos} has event size {ev_size} < 8")
            raw = np.frombuffer(buf, dtype=np.uint8, count=number * ev_size, offset=start).reshape(number, ev_size)
            data = np.ascontiguousarray(raw[:, 0:4]).view("<u4").ravel().astype(np.int64)
            ts = np.ascontiguousarray(raw[:, 4:8]).view("<i4").ravel().astype(np.int64)
            valid = (data & 1) == 1
            ts = ts + (int(head["eventTSOverflow"]) << 31)
            events = np.stack([(data >> 17) & 0x7FFF, (data >> 2) & 0x7FFF, (data >> 1) & 1, ts], axis=1)
            chunks.append(events[valid])
        pos = start + payload
    if not chunks:
        return np.zeros((0, 4), dtype=np.int64)
    return np.concatenate(chunks, axis=0)


def read_gesture_labels(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """Read an IBM ``*_labels.csv``: rows ``(class 0..10, start_us, end_us)``.

    The header line ``class,startTime_usec,endTime_usec`` is optional. Malformed rows
    raise :class:`DatasetFormatError` with the line number.
    """
    path = Path(path)
    try:
        return _read_gesture_labels(path)
    except UnicodeDecodeError as err:
        raise not_text_error(path, "a labels .csv") from err


def _read_gesture_labels(path: Path) -> list[tuple[int, int, int]]:
    rows: list[tuple[int, int, int]] = []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            fields = [f.strip() for f in line.split(",")]
            if number == 1 and not fields[0].lstrip("-").isdigit():
                continue  # header
            if len(fields) != 3:
                raise DatasetFormatError(path, f"expected 3 columns class,startTime_usec,endTime_usec, got {len(fields)}", number)
            try:
                label, start, end = (int(f) for f in fields)
            except ValueError:
                raise DatasetFormatError(path, f"non-integer field in {line!r}", number) from None
            if not 1 <= label <= len(DVS_CLASSES):
                raise DatasetFormatError(path, f"class {label} outside 1..{len(DVS_CLASSES)}", number)
            if end <= start:
                raise DatasetFormatError(path, f"endTime {end} <= startTime {start}", number)
            rows.append((label - 1, start, end))
    return rows


# ----------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class _Sample:
    split: str  # "train" | "test"
    sample_id: str
    label: int


def _roots(data_dir: Path) -> list[Path]:
    return [data_dir] + [data_dir / sub for sub in ("DVSGesture", "DvsGesture", "dvs_gesture", "DVS128Gesture")]


def _detect(data_dir: Path, layout: str) -> tuple[str, Path]:
    for root in _roots(data_dir):
        if layout in ("auto", "npy") and (root / "ibmGestureTrain").is_dir() and (root / "ibmGestureTest").is_dir():
            return "npy", root
        if layout in ("auto", "aedat") and root.is_dir() and any(root.glob("user*_*.aedat")):
            return "aedat", root
    looked = ", ".join(str(r) for r in _roots(data_dir))
    raise FileNotFoundError(
        f"DVS128 Gesture ({layout} layout) not found; looked in {looked}. Provide either the preprocessed layout "
        f"<root>/ibmGestureTrain/user01_fluorescent/0.npy (and ibmGestureTest/...), rows (x, y, p, t_ms), "
        f"or the IBM release (DvsGesture.tar.gz from {IBM_URL}: user01_fluorescent.aedat + "
        f"user01_fluorescent_labels.csv) and pass data_dir=<root> (CLI: --data-dir, or set {DATA_DIR_ENV})."
    )


def _npy_files(root: Path) -> list[tuple[_Sample, Path]]:
    items: list[tuple[_Sample, Path]] = []
    for split, folder in (("train", "ibmGestureTrain"), ("test", "ibmGestureTest")):
        for trial in sorted(p for p in (root / folder).iterdir() if p.is_dir()):
            files = []
            for f in trial.glob("*.npy"):
                stem = f.stem.split("_")[0]
                if not stem.isdigit() or not 0 <= int(stem) < len(DVS_CLASSES):
                    raise DatasetFormatError(f, f"file stem must be the class index 0..{len(DVS_CLASSES) - 1}")
                files.append((int(stem), f.stem, f))
            for label, stem, f in sorted(files):
                items.append((_Sample(split, f"{trial.name}/{stem}", label), f))
        if not any(s.split == split for s, _ in items):
            raise FileNotFoundError(f"no <user>/<label>.npy files under {root / folder}")
    return items


def _read_trial_list(path: Path) -> set[str]:
    names = set()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise not_text_error(path, "a trial list") from err
    for line in text.splitlines():
        line = line.strip()
        if line:
            names.add(Path(line).name)
    return names


def _aedat_trials(root: Path) -> list[tuple[str, Path, Path]]:
    """(split, aedat, labels csv) for every trial, sorted by file name."""
    train_list, test_list = root / "trials_to_train.txt", root / "trials_to_test.txt"
    lists = (_read_trial_list(train_list), _read_trial_list(test_list)) if train_list.is_file() and test_list.is_file() else None
    trials = []
    for aedat in sorted(root.glob("user*_*.aedat")):
        match = _TRIAL_RE.match(aedat.name)
        if match is None:
            continue
        if lists is not None:
            if aedat.name in lists[0]:
                split = "train"
            elif aedat.name in lists[1]:
                split = "test"
            else:
                continue
        else:
            split = "train" if int(match.group(1)) in TRAIN_USERS else "test"
        labels = aedat.with_name(aedat.stem + "_labels.csv")
        if not labels.is_file():
            raise FileNotFoundError(f"{aedat} has no labels file {labels.name}")
        trials.append((split, aedat, labels))
    return trials


def _segment(events: np.ndarray, start: int, end: int) -> np.ndarray:
    """Events with ``start <= t_us < end`` as ``(x, y, p, t_ms)`` float64, t from ``start``.

    ``events`` must be sorted by time (column 3).
    """
    t = events[:, 3]
    lo, hi = np.searchsorted(t, start, side="left"), np.searchsorted(t, end, side="left")
    seg = events[lo:hi].astype(np.float64)
    seg[:, 3] = (seg[:, 3] - start) / 1000.0
    return seg


def _iter_samples(layout: str, root: Path, progress: bool) -> Iterator[tuple[_Sample, np.ndarray, Path]]:
    from tqdm.auto import tqdm

    if layout == "npy":
        files = _npy_files(root)
        for sample, path in tqdm(files, desc="DVSGesture: converting .npy", unit="sample", disable=not progress):
            try:
                events = np.load(path, allow_pickle=False)
            except FileNotFoundError:
                raise
            except (ValueError, EOFError, OSError) as err:
                raise DatasetFormatError(path, f"unreadable .npy file: {err}") from err
            yield sample, events, path
    else:
        for split, aedat, csv in tqdm(_aedat_trials(root), desc="DVSGesture: converting .aedat", unit="trial", disable=not progress):
            events = read_aedat31(aedat)
            if len(events) > 1 and (np.diff(events[:, 3]) < 0).any():
                events = events[np.argsort(events[:, 3], kind="stable")]
            for row, (label, start, end) in enumerate(read_gesture_labels(csv)):
                yield _Sample(split, f"{aedat.stem}#{row}", label), _segment(events, start, end), aedat


def _source_files(layout: str, root: Path) -> list[Path]:
    if layout == "npy":
        return sorted(p for folder in ("ibmGestureTrain", "ibmGestureTest") for p in (root / folder).rglob("*.npy"))
    files = sorted(root.glob("user*_*.aedat")) + sorted(root.glob("user*_*_labels.csv"))
    return files + [p for p in (root / "trials_to_train.txt", root / "trials_to_test.txt") if p.is_file()]


def _cache_key(layout: str, root: Path, options: FrameOptions) -> str:
    listing = []
    for path in _source_files(layout, root):
        stat = path.stat()
        listing.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    blob = json.dumps(
        {"version": CACHE_VERSION, "layout": layout, "root": str(root.resolve()), "options": asdict(options), "files": listing},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def convert_events(layout: str, root: Path, options: FrameOptions, progress: bool = True) -> dict[str, Any]:
    """Convert every sample to sparse counts: per split ``offsets`` (N+1,), ``flat``
    (nnz,) int32 indices ``channel * T + bin``, ``counts`` (nnz,) int32, ``labels`` (N,),
    ``ids`` (list of str)."""
    parts: dict[str, dict[str, list]] = {s: {"flat": [], "counts": [], "labels": [], "ids": []} for s in ("train", "test")}
    for sample, events, path in _iter_samples(layout, root, progress):
        frame = events_to_counts(events, options, path).ravel()
        nz = np.flatnonzero(frame)
        part = parts[sample.split]
        part["flat"].append(nz.astype(np.int32))
        part["counts"].append(frame[nz].astype(np.int32))
        part["labels"].append(sample.label)
        part["ids"].append(sample.sample_id)
    out: dict[str, Any] = {"version": CACHE_VERSION, "options": asdict(options), "layout": layout}
    for split, part in parts.items():
        if not part["labels"]:
            raise FileNotFoundError(f"DVS128 Gesture under {root}: no {split} samples found")
        sizes = np.array([len(f) for f in part["flat"]], dtype=np.int64)
        out[split] = {
            "offsets": torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)),
            "flat": torch.from_numpy(np.concatenate(part["flat"])),
            "counts": torch.from_numpy(np.concatenate(part["counts"])),
            "labels": torch.tensor(part["labels"], dtype=torch.int64),
            "ids": list(part["ids"]),
        }
    return out


def _dense(part: dict[str, Any], options: FrameOptions, binary: bool) -> torch.Tensor:
    n = len(part["labels"])
    offsets = part["offsets"]
    x = torch.zeros(n, options.n_inputs * options.n_steps, dtype=torch.float32)
    flat, counts = part["flat"], part["counts"]
    for i in range(n):  # per sample: no (nnz,) int64 temporaries for the whole split
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        values = counts[lo:hi].to(torch.float32)
        x[i, flat[lo:hi].to(torch.int64)] = (values > 0).to(torch.float32) if binary else values
    return x.view(n, options.n_inputs, options.n_steps)


def load_dvs_gesture(
    data_dir: str | os.PathLike | None = None,
    normalize: bool = True,
    n_steps: int = 100,
    window_ms: float | None = None,
    binary: bool = True,
    downsample: int = 2,
    layout: str = "auto",
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> SequenceDataset:
    """Load DVS128 Gesture as spike frames ``x_*``: ``(N, (128/d)^2, T)`` float32.

    ``binary=True``: 0/1 spikes; ``binary=False``: event counts per pooled pixel and bin
    (still ``input_kind='spikes'``). ``normalize`` is ignored (spike data is never
    normalised). ``layout``: ``"auto"``, ``"npy"`` or ``"aedat"``. Converted counts are
    cached in ``cache_dir`` (default ``<data_dir>/.solsa_cache``) keyed by the frame
    options and the source files' names, sizes and mtimes.
    """
    del normalize  # spikes are not normalised
    if layout not in ("auto", "npy", "aedat"):
        raise ValueError(f"layout must be 'auto', 'npy' or 'aedat', got {layout!r}")
    base = resolve_data_dir(data_dir)
    if base is None:
        raise FileNotFoundError(
            f"DVS128 Gesture needs your copy of the data: pass data_dir=<root> (CLI: --data-dir) or set "
            f"{DATA_DIR_ENV}. Layout: <root>/ibmGestureTrain/user01_fluorescent/0.npy ... or the IBM release "
            f"(user01_fluorescent.aedat + user01_fluorescent_labels.csv) from {IBM_URL}."
        )
    options = FrameOptions(n_steps=n_steps, window_ms=window_ms, downsample=downsample)
    found_layout, root = _detect(base, layout)
    cache_path: Path | None = None
    converted: dict[str, Any] | None = None
    if cache:
        folder = Path(cache_dir).expanduser() if cache_dir is not None else base / ".solsa_cache"
        cache_path = folder / f"dvsgesture-{_cache_key(found_layout, root, options)}.pt"
        if cache_path.is_file():
            try:
                converted = torch.load(cache_path, weights_only=True)
            except Exception as err:  # unreadable cache: rebuild it
                warnings.warn(f"ignoring unreadable cache {cache_path}: {err}", stacklevel=2)
                converted = None
    cache_hit = converted is not None
    if converted is None:
        converted = convert_events(found_layout, root, options, progress)
        if cache_path is not None:
            try:
                atomic_torch_save(converted, cache_path)
            except OSError as err:
                warnings.warn(f"could not write the cache {cache_path}: {err}", stacklevel=2)
    train, test = converted["train"], converted["test"]
    x_train, x_test = _dense(train, options, binary), _dense(test, options, binary)
    meta: dict[str, Any] = {
        "source": str(root),
        "layout": found_layout,
        "frame_options": asdict(options),
        "binary": binary,
        "channel_order": f"(y // {downsample}) * {options.side} + x // {downsample}, polarities merged",
        "time_bins": "evenly over first-to-last event" if window_ms is None else f"{window_ms / n_steps} ms bins from first event",
        "split": "ibmGestureTrain / ibmGestureTest folders"
        if found_layout == "npy"
        else "trials_to_train/test.txt if present, else users 1-23 train, 24-29 test",
        "cache_file": str(cache_path) if cache_path is not None else None,
        "cache_hit": cache_hit,
        "train_ids": train["ids"],
        "test_ids": test["ids"],
    }
    return SequenceDataset(
        name="DVSGesture",
        x_train=x_train,
        y_train=train["labels"].clone(),
        len_train=torch.full((x_train.shape[0],), n_steps, dtype=torch.int64),
        x_test=x_test,
        y_test=test["labels"].clone(),
        len_test=torch.full((x_test.shape[0],), n_steps, dtype=torch.int64),
        classes=list(DVS_CLASSES),
        input_kind="spikes",
        paper_net=(options.n_inputs, 100, 100, len(DVS_CLASSES)),
        norm_mean=None,
        norm_std=None,
        meta=meta,
    )


DVS_DATASETS: dict[str, DatasetSpec] = {
    "DVSGesture": DatasetSpec(
        "DVSGesture",
        load_dvs_gesture,
        (4096, 100, 100, 11),
        "spikes",
        "IBM DVS128 Gesture, 128x128 events pooled to 64x64, polarities merged, 11 classes (user copy)",
    )
}
