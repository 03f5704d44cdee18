"""Which runs make up each table of the reproduction (``python -m solsa_ext reproduce``).

Three tables:

- ``accuracy``: SOLSA, BPTT, TBPTT(20), e-prop and OTTT on the four wheel-shipped UEA
  problems with the paper's networks, several seeds, next to the paper's SOLSA numbers.
- ``ablation``: unscheduled, variant 1-3 and SOLSA (SOLSA_MATH.md section 7) on the same data.
- ``memory``: measured peak training memory vs sequence length T on the EMG-action
  network 8-200-200-10 (batch 32, synthetic input), plus the four datasets at their own T.

Protocol of the two accuracy-type tables (docs/RESULTS.md, "Protocol"):

1. **search** runs (seed :attr:`Preset.search_seed`): for every dataset and algorithm and
   every learning rate of :attr:`Preset.lr_grid`, train on a stratified
   ``1 - val_fraction`` part of the train split (normalised with that part's statistics)
   and evaluate the held-out ``val_fraction`` after every epoch. The test split is not
   loaded into these runs' decisions.
2. the learning rate with the best mean validation accuracy over the last
   :attr:`Preset.select_last` epochs wins (ties: lower mean validation loss, then the
   smaller learning rate); see :func:`solsa_ext.experiments.runner.select_lr`.
3. **final** runs: every seed trains on the whole train split with the chosen learning
   rate for the same number of epochs; test accuracy is measured once, at the end.

The ablation variants use SOLSA's chosen learning rate (same search runs), so the table
isolates the components (adaptive kernel, schedule, early stop), not their tuning.
Everything else is the package default (``solsa_ext.config``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

#: The four datasets shipped in PyPI wheels (docs/DATASETS.md), in the paper's order.
DATASETS4: tuple[str, ...] = ("BasicMotions", "JapaneseVowels", "FingerMovements", "SelfRegulationSCP1")

#: The paper's SOLSA test accuracies (the only paper numbers we compare against).
PAPER_SOLSA: dict[str, float] = {
    "BasicMotions": 1.00,
    "JapaneseVowels": 0.981,
    "FingerMovements": 0.64,
    "SelfRegulationSCP1": 0.897,
}

ACCURACY_ALGOS: tuple[str, ...] = ("solsa", "bptt", "tbptt", "eprop", "ottt")
ABLATION_ALGOS: tuple[str, ...] = ("unscheduled", "variant1", "variant2", "variant3", "solsa")
MEMORY_ALGOS: tuple[str, ...] = ("solsa", "bptt", "eprop", "ottt")
ALGO_LABEL: dict[str, str] = {
    "solsa": "SOLSA", "bptt": "BPTT", "tbptt": "TBPTT(20)", "eprop": "e-prop", "ottt": "OTTT",
    "unscheduled": "unscheduled", "variant1": "variant 1", "variant2": "variant 2", "variant3": "variant 3",
}

#: The EMG-action network of the paper and the memory table's batch.
EMG_NET: tuple[int, ...] = (8, 200, 200, 10)
MEMORY_BATCH = 32
#: BPTT is also measured at this smaller batch over every T (the B=32 series is cut
#: where its predicted memory exceeds the budget).
MEMORY_SMALL_BATCH = 4

TABLES = ("accuracy", "ablation", "memory")


@dataclass(frozen=True)
class Preset:
    """Sizes of one reproduction (``FULL``: the documented results; ``QUICK``: CI smoke)."""

    name: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: dict[str, int]
    lr_grid: tuple[float, ...]
    val_fraction: float = 0.25
    search_seed: int = 0
    split_seed: int = 0
    select_last: int = 5
    batch_size: int = 8
    memory_T: tuple[int, ...] = (100, 500, 1000, 2000, 4000)
    memory_datasets: tuple[str, ...] = DATASETS4
    memory_algos: tuple[str, ...] = MEMORY_ALGOS
    memory_small_batch: Optional[int] = MEMORY_SMALL_BATCH

    def epochs_for(self, dataset: str) -> int:
        return int(self.epochs.get(dataset, self.epochs.get("*", 30)))


FULL = Preset(
    name="full",
    datasets=DATASETS4,
    seeds=(0, 1, 2),
    epochs={"*": 30},
    lr_grid=(1e-3, 3e-3, 1e-2),
)

QUICK = Preset(
    name="quick",
    datasets=("BasicMotions", "JapaneseVowels"),
    seeds=(0,),
    epochs={"*": 4},
    lr_grid=(1e-3, 1e-2),
    select_last=2,
    memory_T=(100, 400),
    memory_datasets=("BasicMotions",),
    memory_small_batch=None,
)

PRESETS = {"full": FULL, "quick": QUICK}


def algorithms_for(table: str) -> tuple[str, ...]:
    if table == "accuracy":
        return ACCURACY_ALGOS
    if table == "ablation":
        return ABLATION_ALGOS
    if table == "memory":
        return MEMORY_ALGOS
    raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")


def search_algorithm(table: str, algorithm: str) -> str:
    """Whose learning-rate search an algorithm's final runs use (ablation: SOLSA's)."""
    return "solsa" if table == "ablation" else algorithm


def search_spec(preset: Preset, dataset: str, algorithm: str, lr: float, threads: Optional[int] = None) -> dict:
    return {
        "kind": "search", "dataset": dataset, "algorithm": algorithm, "seed": preset.search_seed,
        "lr": float(lr), "epochs": preset.epochs_for(dataset), "batch_size": preset.batch_size,
        "val_fraction": preset.val_fraction, "split_seed": preset.split_seed, "threads": threads,
    }


def final_spec(preset: Preset, dataset: str, algorithm: str, seed: int, lr: float,
               threads: Optional[int] = None, chosen_by: Optional[str] = None) -> dict:
    return {
        "kind": "final", "dataset": dataset, "algorithm": algorithm, "seed": int(seed), "lr": float(lr),
        "epochs": preset.epochs_for(dataset), "batch_size": preset.batch_size, "threads": threads,
        "chosen_by": chosen_by,
    }


def memory_specs(preset: Preset, T_values: Optional[Sequence[int]] = None, datasets: Optional[Sequence[str]] = None,
                 algos: Optional[Sequence[str]] = None, sizes: Sequence[int] = EMG_NET, batch: int = MEMORY_BATCH,
                 small_batch: Optional[int] = -1, device: str = "cpu", threads: Optional[int] = 1,
                 malloc_mmap_threshold: Optional[int] = 65536) -> list[dict]:
    """The memory table's runs: the T sweep (synthetic input), BPTT at a small batch, the real datasets."""
    from ..datasets import DATASETS

    T_values = tuple(T_values or preset.memory_T)
    datasets = preset.memory_datasets if datasets is None else tuple(datasets)
    algos = tuple(algos or preset.memory_algos)
    small = preset.memory_small_batch if small_batch == -1 else small_batch
    specs = []
    for algo in algos:
        for T in T_values:
            specs.append({"kind": "memory", "series": "sweep", "dataset": "synthetic", "algorithm": algo,
                          "sizes": list(sizes), "batch": batch, "T": int(T), "device": device, "threads": threads,
                          "malloc_mmap_threshold": malloc_mmap_threshold})
    if small and "bptt" in algos:
        for T in T_values:
            specs.append({"kind": "memory", "series": "sweep_small_batch", "dataset": "synthetic", "algorithm": "bptt",
                          "sizes": list(sizes), "batch": int(small), "T": int(T), "device": device, "threads": threads,
                          "malloc_mmap_threshold": malloc_mmap_threshold})
    for name in datasets:
        net = list(DATASETS[name].paper_net)
        for algo in algos:
            specs.append({"kind": "memory", "series": "dataset", "dataset": name, "algorithm": algo,
                          "sizes": net, "batch": batch, "T": dataset_T(name), "device": device, "threads": threads,
                          "malloc_mmap_threshold": malloc_mmap_threshold})
    return specs


#: Longest sequence of each wheel-shipped dataset (the T a batch of it runs for).
_KNOWN_T = {"BasicMotions": 100, "JapaneseVowels": 29, "FingerMovements": 50, "SelfRegulationSCP1": 896}


def dataset_T(name: str) -> int:
    if name in _KNOWN_T:
        return _KNOWN_T[name]
    from ..datasets import load_dataset

    return int(load_dataset(name).x_train.shape[2])
