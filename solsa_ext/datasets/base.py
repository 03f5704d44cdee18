"""Common types and helpers of the dataset loaders.

Every loader returns a :class:`SequenceDataset`: train and test tensors of shape
``(N, C, T)`` (float32, zero-padded to the longest sample), int64 class indices, int64
valid lengths, the label map and the statistics used to normalise the data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "DATA_DIR_ENV",
    "DatasetFormatError",
    "DatasetSpec",
    "SequenceDataset",
    "apply_normalization",
    "fit_normalization",
    "not_text_error",
    "pad_sequences",
    "resolve_data_dir",
    "valid_mask",
]

#: Environment variable read when ``data_dir`` is not given.
DATA_DIR_ENV = "SOLSA_DATA_DIR"

#: Standard deviations below this are treated as 1 (constant channels stay finite).
MIN_STD = 1e-8


class DatasetFormatError(ValueError):
    """A data file does not have the expected format.

    The message names the file and, for text formats, the 1-based line number
    (``line`` attribute; ``None`` for binary formats or when unknown).
    """

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def not_text_error(path: str | os.PathLike, what: str = "a text file") -> DatasetFormatError:
    """The :class:`DatasetFormatError` for a file that is not UTF-8 text.

    Names the line and column of the first byte that is not UTF-8 (call it after a
    ``UnicodeDecodeError``; ``what`` says what the file should be, e.g. ``"a .ts file"``).
    """
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        head = data[: err.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        column = len(head) - (head.rfind(b"\n") + 1) + 1
        return DatasetFormatError(
            path,
            f"byte 0x{data[err.start]:02x} at column {column} is not UTF-8 text "
            f"({what} is plain text: binary, compressed or wrongly encoded file?)",
            head.count(b"\n") + 1,
        )
    return DatasetFormatError(path, f"not UTF-8 text ({what} is plain text)")


@dataclass
class SequenceDataset:
    """A classification dataset as dense, zero-padded sequence tensors.

    Shapes: ``x_*`` is ``(N, C, T)`` float32 (steps ``>= len_*[i]`` of sample ``i`` are
    exactly 0), ``y_*`` is ``(N,)`` int64 in ``[0, n_classes)``, ``len_*`` is ``(N,)``
    int64 in ``[1, T]``. ``norm_mean``/``norm_std`` are ``(C,)`` float32 statistics fitted
    on the valid steps of the train split (``None`` when the data was not normalised).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    len_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    len_test: torch.Tensor
    classes: list[str]
    input_kind: str
    paper_net: tuple[int, ...]
    norm_mean: torch.Tensor | None = None
    norm_std: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_kind not in ("current", "spikes"):
            raise ValueError(f"input_kind must be 'current' or 'spikes', got {self.input_kind!r}")
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            lengths = getattr(self, f"len_{split}")
            if x.dim() != 3 or x.dtype != torch.float32:
                raise ValueError(f"x_{split} must be a (N, C, T) float32 tensor, got {tuple(x.shape)} {x.dtype}")
            if y.shape != (x.shape[0],) or y.dtype != torch.int64:
                raise ValueError(f"y_{split} must be a (N,) int64 tensor matching x_{split}")
            if lengths.shape != (x.shape[0],) or lengths.dtype != torch.int64:
                raise ValueError(f"len_{split} must be a (N,) int64 tensor matching x_{split}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"train and test shapes differ: {tuple(self.x_train.shape[1:])} vs {tuple(self.x_test.shape[1:])}"
            )

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def n_channels(self) -> int:
        """Input size C."""
        return int(self.x_train.shape[1])

    @property
    def n_steps(self) -> int:
        """Padded sequence length T."""
        return int(self.x_train.shape[2])

    def __repr__(self) -> str:
        return (
            f"SequenceDataset(name={self.name!r}, train={tuple(self.x_train.shape)}, "
            f"test={tuple(self.x_test.shape)}, classes={self.n_classes}, input_kind={self.input_kind!r}, "
            f"paper_net={self.paper_net})"
        )


@dataclass(frozen=True)
class DatasetSpec:
    """Registry entry: how to load one named dataset and what the paper used it with."""

    name: str
    loader: Callable[..., SequenceDataset]
    paper_net: tuple[int, ...]
    input_kind: str
    description: str


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """Return ``data_dir`` as a path, else ``$SOLSA_DATA_DIR``, else ``None``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return None


def valid_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``(N, T)`` bool mask, True on the first ``lengths[i]`` steps of sample ``i``."""
    return torch.arange(n_steps).unsqueeze(0) < lengths.unsqueeze(1)


def pad_sequences(
    series: Sequence[np.ndarray], n_steps: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(C, T_i)`` arrays into a zero-padded ``(N, C, T)`` float32 tensor.

    ``T = n_steps`` if given (must be ``>= max T_i``), else ``max T_i``. Returns the
    tensor and the ``(N,)`` int64 lengths ``T_i``.
    """
    if len(series) == 0:
        raise ValueError("cannot pad an empty list of series")
    n_channels = series[0].shape[0]
    lengths = [int(s.shape[1]) for s in series]
    max_len = max(lengths)
    if n_steps is None:
        n_steps = max_len
    elif n_steps < max_len:
        raise ValueError(f"n_steps={n_steps} is shorter than the longest series ({max_len})")
    out = np.zeros((len(series), n_channels, n_steps), dtype=np.float32)
    for i, s in enumerate(series):
        if s.shape[0] != n_channels:
            raise ValueError(f"series {i} has {s.shape[0]} channels, expected {n_channels}")
        out[i, :, : s.shape[1]] = s
    return torch.from_numpy(out), torch.tensor(lengths, dtype=torch.int64)


def fit_normalization(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population, ddof=0) std over the valid steps of ``x``.

    ``x``: ``(N, C, T)``; ``lengths``: ``(N,)``. Padding steps are excluded. Channels with
    std below 1e-8 get std 1. Returns two ``(C,)`` float32 tensors. Computed in float64.
    """
    mask = valid_mask(lengths, x.shape[2]).unsqueeze(1).to(torch.float64)  # (N, 1, T)
    xd = x.to(torch.float64)
    count = mask.sum() if mask.numel() else torch.tensor(0.0, dtype=torch.float64)
    if count <= 0:
        raise ValueError("cannot fit normalisation statistics on an empty split")
    mean = (xd * mask).sum(dim=(0, 2)) / count
    var = (((xd - mean.view(1, -1, 1)) * mask) ** 2).sum(dim=(0, 2)) / count
    std = var.sqrt()
    std = torch.where(std < MIN_STD, torch.ones_like(std), std)
    return mean.to(torch.float32), std.to(torch.float32)


def apply_normalization(
    x: torch.Tensor, lengths: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Return ``(x - mean) / std`` per channel on valid steps, with padding kept exactly 0."""
    mask = valid_mask(lengths, x.shape[2]).unsqueeze(1)
    z = (x.to(torch.float64) - mean.to(torch.float64).view(1, -1, 1)) / std.to(torch.float64).view(1, -1, 1)
    return torch.where(mask, z, torch.zeros((), dtype=torch.float64)).to(torch.float32)
