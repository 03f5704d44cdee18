"""solsa-ext: online training of spiking neural networks with SOLSA.

Public API (imports are light: the compiled kernels load lazily, on first use of the
fused engine, so ``import solsa_ext`` works without them):

- :class:`Trainer` and its configs :class:`NetworkConfig`, :class:`AlgorithmConfig`,
  :class:`OptimizerConfig`, :class:`LossConfig`, :class:`TrainConfig`
- :func:`load_dataset` (re-exported from :mod:`solsa_ext.datasets`)
- :mod:`solsa_ext.nn` (``PSPLIF``: a layer for custom models)
"""
from __future__ import annotations

__version__ = "0.1.0"

from .config import (  # noqa: E402
    ALGORITHMS,
    AlgorithmConfig,
    LossConfig,
    NetworkConfig,
    OptimizerConfig,
    TrainConfig,
)
from .trainer import Trainer  # noqa: E402


def load_dataset(name, data_dir=None, normalize=True, **options):
    """Load a dataset as a SequenceDataset; see :func:`solsa_ext.datasets.load_dataset`."""
    from .datasets import load_dataset as _load

    return _load(name, data_dir=data_dir, normalize=normalize, **options)


def __getattr__(name: str):
    if name == "nn":
        import importlib

        return importlib.import_module(".nn", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALGORITHMS",
    "AlgorithmConfig",
    "LossConfig",
    "NetworkConfig",
    "OptimizerConfig",
    "TrainConfig",
    "Trainer",
    "load_dataset",
    "nn",
    "__version__",
]
