"""Runs of the reproduction: one run = one JSON file, written atomically when it finishes.

A run is a small JSON-serialisable dict (its *spec*, built in :mod:`.tables`). Its file is
``<out>/runs/<kind>-<dataset>-<algorithm>[-...]-<hash>.json`` where the hash covers every
field of the spec except ``threads``; a rerun of the same command finds the file and does
not repeat the run (resume), a changed spec (other epochs, learning rate, quick vs full)
gets a new file. The file is written to a temporary name and moved into place with
``os.replace`` only after the run finished, so an interrupted run leaves nothing that a
resume would take for a result.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import time
import traceback
from typing import Any, Callable, Optional, Sequence

from ..atomic import atomic_write

#: not part of a run's identity: threads (speed only) and the memory budget (a skipped
#: run is retried when the budget grows, see :func:`is_done`).
HASH_EXCLUDE = ("threads", "budget_bytes")


# ----------------------------------------------------------------- files
def spec_hash(spec: dict[str, Any]) -> str:
    core = {k: v for k, v in spec.items() if k not in HASH_EXCLUDE}
    return hashlib.sha1(json.dumps(core, sort_keys=True).encode()).hexdigest()[:10]


def run_id(spec: dict[str, Any]) -> str:
    parts = [spec["kind"], spec.get("dataset", "x"), spec["algorithm"]]
    if spec["kind"] == "search":
        parts.append(f"lr{spec['lr']:g}")
    if spec.get("algorithm_kwargs"):
        from .tables import describe_kwargs

        parts.append(describe_kwargs(spec["algorithm_kwargs"]))
    if spec["kind"] in ("search", "final"):
        parts.append(f"seed{spec['seed']}")
    if spec["kind"] == "memory":
        parts += [f"T{spec['T']}", f"B{spec['batch']}"]
    return "-".join(str(p) for p in parts) + "-" + spec_hash(spec)


def run_path(out: str, spec: dict[str, Any]) -> str:
    return os.path.join(out, "runs", run_id(spec) + ".json")


def write_json_atomic(obj: Any, path: str) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=1, default=_json_default), binary=False)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def load_result(out: str, spec: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The finished run's JSON, or None (missing or unreadable: the run is redone)."""
    path = run_path(out, spec)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_done(result: Optional[dict[str, Any]], spec: dict[str, Any]) -> bool:
    """A stored result counts as done, except a memory run that failed, or that was skipped
    for a budget now large enough for its prediction."""
    if result is None:
        return False
    if spec.get("kind") == "memory":
        st = result.get("status")
        if st == "failed":
            return False
        if st == "skipped":
            from .memory import default_budget_bytes

            budget = spec.get("budget_bytes") or default_budget_bytes()
            return result.get("predicted_bytes", 0) > budget
    return True


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:  # GB = 1e9 bytes, as the benchmarks write it (reports before 2026-12-04 wrote GiB here)
        info["mem_total_GB"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (OSError, ValueError, AttributeError):
        try:
            with open("/proc/meminfo") as f:  # MemTotal is in KiB
                info["mem_total_GB"] = round(int(f.readline().split()[1]) * 1024 / 1e9, 1)
        except (OSError, ValueError, IndexError):
            pass
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    return info


# --------------------------------------------------------- training runs
def stratified_split(y, fraction: float, seed: int):
    """Indices (train_part, val_part): ``round(fraction * n_c)`` (at least 1) of every class to val."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    tr_idx, va_idx = [], []
    for c in sorted(set(y.tolist())):
        idx = (y == c).nonzero()[:, 0]
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        k = max(1, int(round(fraction * idx.numel()))) if idx.numel() > 1 else 0
        va_idx.append(idx[:k])
        tr_idx.append(idx[k:])
    return torch.sort(torch.cat(tr_idx)).values, torch.sort(torch.cat(va_idx)).values


@functools.lru_cache(maxsize=4)
def _load(dataset: str, normalize: bool):
    """Datasets are read once per process (runs only slice them, never write into them)."""
    from ..datasets import load_dataset

    return load_dataset(dataset, normalize=normalize)


def train_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Execute a ``search`` or ``final`` run (see :mod:`.tables` for the protocol)."""
    import torch

    threads_before = torch.get_num_threads()
    try:
        return _train_run(spec, torch)
    finally:  # an auto choice of this run does not carry over to the next run of this process
        torch.set_num_threads(threads_before)


def _train_run(spec: dict[str, Any], torch) -> dict[str, Any]:
    from ..cli import auto_threads
    from ..config import AlgorithmConfig, OptimizerConfig, TrainConfig
    from ..trainer import Trainer

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    t0 = time.perf_counter()
    search = spec["kind"] == "search"
    alg_kw = dict(spec.get("algorithm_kwargs") or {})
    train_cfg = TrainConfig(batch_size=int(spec["batch_size"]), epochs=int(spec["epochs"]), seed=int(spec["seed"]))
    if search:
        from ..datasets.base import apply_normalization, fit_normalization

        ds = _load(spec["dataset"], normalize=False)
        tr_idx, va_idx = stratified_split(ds.y_train, float(spec["val_fraction"]), int(spec["split_seed"]))
        x_raw, l_all, y_all = ds.x_train, ds.len_train, ds.y_train
        if ds.input_kind == "current":
            mean, std = fit_normalization(x_raw[tr_idx], l_all[tr_idx])
            x_all = apply_normalization(x_raw, l_all, mean, std)
        else:
            mean = std = None
            x_all = x_raw
        fit_data = (x_all[tr_idx], y_all[tr_idx], l_all[tr_idx])
        val = (x_all[va_idx], y_all[va_idx], l_all[va_idx])
        tr = Trainer.for_dataset(ds, algorithm=AlgorithmConfig(spec["algorithm"], **alg_kw),
                                 optimizer=OptimizerConfig(lr=float(spec["lr"])), train=train_cfg)
        tr.norm_mean, tr.norm_std = mean, std
    else:
        ds = _load(spec["dataset"], normalize=True)
        fit_data = (ds.x_train, ds.y_train, ds.len_train)
        val = None
        tr = Trainer.for_dataset(ds, algorithm=AlgorithmConfig(spec["algorithm"], **alg_kw),
                                 optimizer=OptimizerConfig(lr=float(spec["lr"])), train=train_cfg)
    if not spec.get("threads") and (n := auto_threads(tr)) is not None:
        torch.set_num_threads(n)
    threads_used = torch.get_num_threads()
    t_fit = time.perf_counter()
    tr.fit(*fit_data, epochs=int(spec["epochs"]), val=val)
    fit_s = time.perf_counter() - t_fit
    res: dict[str, Any] = {
        "spec": spec,
        "run_id": run_id(spec),
        "dataset": ds.name,
        "algorithm": spec["algorithm"],
        "backend": tr.backend,
        "seed": int(spec["seed"]),
        "lr": float(spec["lr"]),
        "epochs": tr.epoch,
        "updates": tr.updates,
        "history": tr.history,
        "n_fit": int(fit_data[0].shape[0]),
        "sequence_length": int(ds.x_train.shape[2]),
        "configs": tr.configs(),
        "optimizer_impl": tr.optimizer_impl,
    }
    if search:
        res["n_val"] = int(val[0].shape[0])
        res["val_accuracy_final"] = tr.history[-1]["val_accuracy"] if tr.history else None
    else:
        ev = tr.evaluate(ds.x_test, ds.y_test, ds.len_test)
        res.update(test_accuracy=ev["accuracy"], test_loss=ev["loss"], test_confusion=ev["confusion"],
                   n_test=ev["n"], train_accuracy=tr.evaluate(*fit_data)["accuracy"])
    res.update(fit_time_s=fit_s, wall_time_s=time.perf_counter() - t0, torch_threads=threads_used,
               threads_rule="given" if spec.get("threads") else "auto",
               machine=machine_info(), finished_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        from ..checkpoint import versions

        res["versions"] = versions()
    except Exception:  # noqa: BLE001
        pass
    return res


def select_config(search_results: Sequence[dict[str, Any]], last: int = 5) -> dict[str, Any]:
    """Pick the learning rate and algorithm settings from search runs: best mean validation
    accuracy over the last ``last`` epochs, then lowest mean validation loss over them, then
    the smaller rate, then the earlier run in ``search_results`` (grid order).

    Returns ``{"lr", "algorithm_kwargs", "score", "candidates", "rule"}``."""
    scored = []
    for i, r in enumerate(search_results):
        h = [e for e in r["history"] if "val_accuracy" in e][-last:]
        if not h:
            continue
        acc = sum(e["val_accuracy"] for e in h) / len(h)
        loss = sum(e["val_loss"] for e in h) / len(h)
        if not math.isfinite(loss):
            loss = float("inf")
        kw = dict((r.get("spec") or {}).get("algorithm_kwargs") or {})
        scored.append({"lr": r["lr"], "algorithm_kwargs": kw, "val_accuracy": acc, "val_loss": loss,
                       "run_id": r.get("run_id"), "order": i})
    if not scored:
        raise ValueError("no search run has validation results")
    best = sorted(scored, key=lambda s: (-round(s["val_accuracy"], 9), s["val_loss"], s["lr"], s["order"]))[0]
    return {"lr": best["lr"], "algorithm_kwargs": best["algorithm_kwargs"], "score": best, "candidates": scored,
            "rule": f"mean val accuracy over the last {last} epochs"}


#: The learning-rate-only name of :func:`select_config` (kept for callers of the first protocol).
select_lr = select_config


def execute(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one spec (any kind) in this process and return its result dict."""
    if spec["kind"] in ("search", "final"):
        return train_run(spec)
    if spec["kind"] == "memory":
        from .memory import measure

        t0 = time.perf_counter()
        child = {k: v for k, v in spec.items() if k not in ("kind", "series", "budget_bytes")}
        res = measure(child, budget_bytes=spec.get("budget_bytes"))
        return {"spec": spec, "run_id": run_id(spec), **res, "machine": machine_info(),
                "wall_time_s": time.perf_counter() - t0, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    raise ValueError(f"unknown run kind {spec['kind']!r}")


def _execute_to_file(out: str, spec: dict[str, Any]) -> dict[str, Any]:
    res = execute(spec)
    write_json_atomic(res, run_path(out, spec))
    return res


def _worker_init(threads: Optional[int]) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


class Progress:
    """A tqdm bar over runs (done / total, elapsed, remaining) shared by the phases of a table.

    Runs found on disk count as done but not in the rate (``initial`` grows with them and
    ``smoothing=0`` makes tqdm's rate ``(n - initial) / elapsed``), so the time estimate
    comes from the runs actually executed in this invocation.
    """

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self.bar = None
        self.enabled = enabled
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True, smoothing=0)

    def skip(self, n: int = 1) -> None:
        """``n`` runs were already in the output folder."""
        if self.bar is not None and n:
            self.bar.initial += n
            self.bar.update(n)
            self.bar.refresh()

    def done(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name[:60])
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_specs(specs: Sequence[dict[str, Any]], out: str, jobs: int = 1, progress: Optional[Progress] = None,
              log: Callable[[str], None] = lambda s: None,
              stats: Optional[dict[str, int]] = None) -> list[dict[str, Any]]:
    """Run the specs not yet in ``out`` (``jobs`` worker processes for training runs; memory
    runs are always one at a time, each in its own child); return every result, in order.
    ``stats["executed"]`` (if given) grows by the number of runs started here."""
    results: list[Optional[dict[str, Any]]] = [None] * len(specs)
    todo = []
    for i, s in enumerate(specs):
        r = load_result(out, s)
        if is_done(r, s):
            results[i] = r
        else:
            todo.append(i)
    if progress is not None:
        progress.skip(len(specs) - len(todo))
    if stats is not None:
        stats["executed"] = stats.get("executed", 0) + len(todo)
    parallel = jobs > 1 and len(todo) > 1 and all(specs[i]["kind"] != "memory" for i in todo)
    if not parallel:
        for i in todo:
            try:
                results[i] = _execute_to_file(out, specs[i])
            except Exception:  # noqa: BLE001
                log(f"run {run_id(specs[i])} failed:\n{traceback.format_exc()}")
                raise
            if progress is not None:
                progress.done(run_id(specs[i]))
        return results  # type: ignore[return-value]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = specs[todo[0]].get("threads")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads,)) as ex:
        futs = {ex.submit(_execute_to_file, out, specs[i]): i for i in todo}
        for f in as_completed(futs):
            i = futs[f]
            results[i] = f.result()
            if progress is not None:
                progress.done(run_id(specs[i]))
    return results  # type: ignore[return-value]
