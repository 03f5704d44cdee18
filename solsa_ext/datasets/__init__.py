"""Datasets of the SOLSA experiments as dense ``(N, C, T)`` tensors.

>>> from solsa_ext.datasets import load_dataset
>>> ds = load_dataset("BasicMotions")          # doctest: +SKIP
>>> ds.x_train.shape, ds.classes               # doctest: +SKIP
(torch.Size([40, 6, 100]), ['Standing', 'Running', 'Walking', 'Badminton'])

See docs/DATASETS.md for where each loader looks for its data and how it is prepared.
"""

from .base import (
    DATA_DIR_ENV,
    DatasetFormatError,
    DatasetSpec,
    SequenceDataset,
    apply_normalization,
    fit_normalization,
    pad_sequences,
)
from .dvs import load_dvs_gesture, read_aedat31
from .emg import delta_encode, load_emg_action, load_emg_gesture, threshold_encode
from .registry import DATASETS, get_spec, load_dataset
from .uea import load_uea

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "DatasetFormatError",
    "DatasetSpec",
    "SequenceDataset",
    "apply_normalization",
    "delta_encode",
    "fit_normalization",
    "get_spec",
    "load_dataset",
    "load_dvs_gesture",
    "load_emg_action",
    "load_emg_gesture",
    "load_uea",
    "pad_sequences",
    "read_aedat31",
    "threshold_encode",
]
