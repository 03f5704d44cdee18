"""The dataset registry and :func:`load_dataset`."""

from __future__ import annotations

import inspect
import os

from .base import DatasetSpec, SequenceDataset
from .dvs import DVS_DATASETS
from .emg import EMG_DATASETS
from .uea import UEA_DATASETS

__all__ = ["DATASETS", "get_spec", "load_dataset"]

#: Every dataset of the paper, by name: loader, paper network, input kind, description.
DATASETS: dict[str, DatasetSpec] = {**UEA_DATASETS, **DVS_DATASETS, **EMG_DATASETS}


def get_spec(name: str) -> DatasetSpec:
    """Registry entry of ``name`` (exact, else case-insensitive match).

    Raises ``ValueError`` listing the known names.
    """
    if name in DATASETS:
        return DATASETS[name]
    folded = {key.lower(): key for key in DATASETS}
    if isinstance(name, str) and name.lower() in folded:
        return DATASETS[folded[name.lower()]]
    raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, normalize: bool = True, **options: object
) -> SequenceDataset:
    """Load dataset ``name`` as a :class:`SequenceDataset`.

    ``data_dir``: the folder holding the user's copy of the data (default
    ``$SOLSA_DATA_DIR``; the wheel-shipped UEA problems need none). ``normalize``:
    z-score current inputs with train statistics (spike datasets are never
    normalised). ``options`` are passed to the dataset's loader (see docs/DATASETS.md);
    an option the loader does not take raises ``TypeError`` listing those it does.
    """
    spec = get_spec(name)
    accepted = [p for p in inspect.signature(spec.loader).parameters if p not in ("data_dir", "normalize")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"dataset {spec.name} does not take option(s) {unknown}; it accepts {accepted}")
    return spec.loader(data_dir=data_dir, normalize=normalize, **options)
