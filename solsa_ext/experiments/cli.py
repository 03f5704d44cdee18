"""``python -m solsa_ext reproduce``: run the experiments of one table and write its report.

    python -m solsa_ext reproduce --table accuracy [--datasets ...] [--seeds 0 1 2] [--quick] --out DIR

writes ``DIR/runs/*.json`` (one per run, atomically, only when finished; a rerun skips
what is there), ``DIR/<table>.md``, ``DIR/<table>.json`` and ``DIR/<table>.png``. See
docs/RESULTS.md for the protocol and the results.

Wiring (cli.py belongs to the trainer's CLI)::

    from .experiments.cli import add_reproduce_parser, main_reproduce
    add_reproduce_parser(sub)                     # in _parser(), after the "list" parser
    ...
    elif args.command == "reproduce": main_reproduce(args)

It also runs on its own: ``python -m solsa_ext.experiments ...`` (same arguments).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence

from ..cli import AUTO_THREADS_SYNAPSES, _HelpFormatter, command_line, int_at_least, make_out, positive_float
from ..config import check_device
from . import tables
from .tables import PRESETS, TABLES


def add_reproduce_parser(subparsers: Any) -> argparse.ArgumentParser:
    r = subparsers.add_parser(
        "reproduce", help="run the experiments of a results table (accuracy, ablation, memory)",
        description="Run the experiments of one or more tables, resumable; writes one JSON per run, "
                    "<table>.md, <table>.json and <table>.png into --out.",
        formatter_class=_HelpFormatter)
    _add_arguments(r)
    return r


def _add_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--table", nargs="+", required=True, choices=TABLES + ("all",), help="which table(s)")
    r.add_argument("--out", required=True, help="output folder (runs/ inside; reruns resume)")
    r.add_argument("--quick", action="store_true",
                   help="reduced version for CI smoke tests: 2 datasets, 1 seed, 4 epochs, 2 learning rates; "
                        "memory: T in {100, 400}, BasicMotions only")
    r.add_argument("--datasets", nargs="+", default=None, help="datasets (default: the preset's)")
    r.add_argument("--seeds", nargs="+", type=int_at_least(0), default=None,
                   help="seeds of the final runs (default: 0 1 2; quick: 0)")
    r.add_argument("--epochs", type=int_at_least(1), default=None, help="override the preset's epochs (search and final runs)")
    r.add_argument("--lr-grid", nargs="+", type=positive_float, default=None,
                   help="learning rates searched on the validation split")
    r.add_argument("--algorithms", nargs="+", default=None,
                   help="restrict the table's algorithms (accuracy: " + " ".join(tables.ACCURACY_ALGOS)
                        + "; ablation: " + " ".join(tables.ABLATION_ALGOS) + "; memory: " + " ".join(tables.MEMORY_ALGOS)
                        + ")")
    r.add_argument("--algo-grid", nargs="+", default=None, metavar="ALGO:SETTING=V1,V2|ALGO:none",
                   help="replace the preset's search grid of an algorithm's own settings (AlgorithmConfig fields), "
                        "e.g. solsa:update_points=2,4,8 solsa:early_stop_threshold=0.6,0.9; 'solsa:none' searches "
                        "the learning rate only (full preset default: " + _grid_help() + ")")
    r.add_argument("--jobs", type=int_at_least(1), default=1, help="training runs in parallel (worker processes)")
    r.add_argument("--threads", type=int_at_least(1), default=None,
                   help="torch threads per run (default: 1 per worker with --jobs > 1; with --jobs 1 the train "
                        "command's auto rule per run: 1 thread when batch x synapses < "
                        f"{AUTO_THREADS_SYNAPSES:,}, else torch's default; each run's JSON records the count "
                        "used as torch_threads; the thread count is not part of a run's identity)")
    r.add_argument("--T", dest="memory_T", nargs="+", type=int_at_least(1), default=None,
                   help="memory table: sequence lengths")
    r.add_argument("--memory-datasets", nargs="*", default=None, help="memory table: datasets at their own T")
    r.add_argument("--memory-budget-gb", type=positive_float, default=None,
                   help="memory table: skip runs predicted above this (default: half of MemAvailable at each run)")
    r.add_argument("--device", default="cpu", help="memory table: cpu or cuda")
    r.add_argument("--malloc-default", action="store_true",
                   help="memory table: measure with glibc's default (dynamic) mmap threshold instead of "
                        "MALLOC_MMAP_THRESHOLD_=65536 (peaks then include freed blocks the heap kept)")
    r.add_argument("--report-only", action="store_true", help="only rebuild the reports from the runs in --out")
    r.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def _grid_help() -> str:
    g = tables.FULL.algo_grid
    return " ".join(f"{a}:{k}={','.join(str(v) for v in vals)}" for a, kv in g.items() for k, vals in kv.items()) or "none"


def parse_algo_grid(items: Optional[Sequence[str]]) -> Optional[dict[str, dict[str, list[str]]]]:
    """``["solsa:update_points=2,4", "solsa:early_stop_threshold=0.6"]`` -> nested dict of the
    value strings (typed and checked by :func:`tables.normalize_algo_grid`); ``ALGO:none`` ->
    ``{ALGO: {}}``. A setting given twice, or ``none`` next to settings, is an error."""
    if not items:
        return None
    grid: dict[str, dict[str, list[str]]] = {}
    cleared: set[str] = set()
    for item in items:
        algo, sep, rest = item.partition(":")
        if not sep or not algo or not rest:
            raise ValueError(f"argument --algo-grid: expected ALGO:SETTING=V1,V2 or ALGO:none, got {item!r}")
        algo = algo.lower()
        if rest.lower() == "none":
            if grid.get(algo):
                raise ValueError(f"argument --algo-grid: {item!r} contradicts the settings given for {algo}")
            cleared.add(algo)
            grid[algo] = {}
            continue
        key, eq, vals = rest.partition("=")
        values = [v.strip() for v in vals.split(",") if v.strip()]
        if not eq or not key or not values:
            raise ValueError(f"argument --algo-grid: expected ALGO:SETTING=V1,V2 with at least one value, got {item!r}")
        if algo in cleared:
            raise ValueError(f"argument --algo-grid: {item!r} contradicts {algo}:none")
        if key in grid.get(algo, {}):
            raise ValueError(f"argument --algo-grid: {algo}:{key} given twice; list all its values once: {algo}:{key}=V1,V2")
        grid.setdefault(algo, {})[key] = values
    return grid


def check_algorithms(table: str, algorithms: Optional[Sequence[str]]) -> None:
    """``ValueError`` listing the table's algorithms unless every one of ``algorithms`` is among them."""
    valid = tables.algorithms_for(table)
    bad = [a for a in algorithms or () if a not in valid]
    if bad:
        raise ValueError(f"algorithms {', '.join(map(repr, bad))} not in the {table} table; "
                         f"choose from {', '.join(valid)}")


def _stored_meta(out: str, table: str) -> Optional[dict[str, Any]]:
    import json

    try:
        with open(os.path.join(out, f"{table}.json")) as f:
            return json.load(f).get("meta") or {}
    except (OSError, ValueError):
        return None


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def reproduce(table: str, out: str, quick: bool = False, datasets: Optional[Sequence[str]] = None,
              seeds: Optional[Sequence[int]] = None, epochs: Optional[int] = None,
              lr_grid: Optional[Sequence[float]] = None, algorithms: Optional[Sequence[str]] = None,
              algo_grid: Optional[dict[str, dict[str, Sequence[Any]]]] = None, jobs: int = 1,
              threads: Optional[int] = None, memory_T: Optional[Sequence[int]] = None,
              memory_datasets: Optional[Sequence[str]] = None, memory_budget_gb: Optional[float] = None,
              device: str = "cpu", progress: bool = True, report_only: bool = False,
              command: Optional[str] = None, log: Callable[[str], None] = _log,
              memory_sizes: Sequence[int] = tables.EMG_NET, memory_batch: int = tables.MEMORY_BATCH,
              memory_small_batch: Optional[int] = -1, malloc_default: bool = False) -> dict[str, Any]:
    """Run (or resume) one table and write its report; returns the report's data."""
    from .runner import machine_info

    preset = PRESETS["quick" if quick else "full"]
    check_algorithms(table, algorithms)
    if memory_T is not None and not all(int(T) >= 1 for T in memory_T):
        raise ValueError(f"memory_T: sequence lengths must be >= 1, got {list(memory_T)}")
    if epochs is not None:
        preset = dataclasses.replace(preset, epochs={"*": int(epochs)})
    if report_only and not os.path.isdir(os.path.join(out, "runs")):
        raise FileNotFoundError(f"argument --out: --report-only found no runs of the {table} table in {out} "
                                f"(no folder {os.path.join(out, 'runs')}); run the table first, without --report-only")
    if report_only and table != "memory" and (stored := _stored_meta(out, table)) is not None:
        # rebuild the report over the grids of the invocation that ran the runs, unless given
        if not lr_grid and stored.get("lr_grid"):
            lr_grid = stored["lr_grid"]
            log(f"--report-only: learning rates of the runs in {out}: {lr_grid}")
        if algo_grid is None and "lr_grid" in stored:
            # the grids of the algorithms that invocation searched (a report written before
            # grids existed has none: learning rate only); the others keep the preset's
            searched = {tables.search_algorithm(table, a) for a in stored.get("algorithms", [])}
            algo_grid = {a: g for a, g in stored.get("algo_grid", {}).items()}
            algo_grid.update({a: {} for a in preset.algo_grid if a in searched and a not in algo_grid})
            log(f"--report-only: algorithm settings searched by the runs in {out}: "
                f"{ {a: g for a, g in algo_grid.items() if g} or 'none'}")
    if lr_grid:
        preset = dataclasses.replace(preset, lr_grid=tuple(dict.fromkeys(float(x) for x in lr_grid)))
    user_grid: tuple[str, ...] = ()
    if algo_grid is not None:
        norm = tables.normalize_algo_grid(algo_grid)
        user_grid = tuple(a for a, g in norm.items() if g)
        merged = {**preset.algo_grid, **norm}
        preset = dataclasses.replace(preset, algo_grid={a: g for a, g in merged.items() if g})
    if datasets:
        from ..datasets.registry import get_spec

        datasets = tuple(get_spec(d).name for d in datasets)
    if not report_only:
        os.makedirs(out, exist_ok=True)
    if threads is None and jobs > 1:
        threads = 1
    meta: dict[str, Any] = {"preset": preset.name, "command": command or "", "machine": machine_info(),
                            "jobs": jobs, "threads": threads or (1 if table == "memory" else "auto"),
                            "started_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    t0 = time.perf_counter()
    if table == "memory":
        return _memory(preset, out, meta, t0, datasets=memory_datasets if memory_datasets is not None else datasets,
                       memory_T=memory_T, algorithms=algorithms, budget_gb=memory_budget_gb, device=device,
                       progress=progress, report_only=report_only, log=log, sizes=memory_sizes, batch=memory_batch,
                       small_batch=memory_small_batch, threads=threads, malloc_default=malloc_default)
    return _accuracy(table, preset, out, meta, t0, datasets=datasets, seeds=seeds, algorithms=algorithms,
                     jobs=jobs, threads=threads, progress=progress, report_only=report_only, log=log,
                     user_grid=user_grid)


def _accuracy(table: str, preset, out: str, meta: dict, t0: float, datasets, seeds, algorithms, jobs, threads,
              progress: bool, report_only: bool, log, user_grid: Sequence[str] = ()) -> dict[str, Any]:
    from .report import write_accuracy_report
    from .runner import Progress, load_result, run_specs, select_config

    algos = tuple(algorithms) if algorithms else tables.algorithms_for(table)
    datasets = tuple(datasets or preset.datasets)
    seeds = tuple(seeds if seeds is not None else preset.seeds)
    search_algos = list(dict.fromkeys(tables.search_algorithm(table, a) for a in algos))
    for a in user_grid:
        if a not in search_algos:
            who = "only SOLSA's search runs are used" if table == "ablation" else f"it is not among {list(algos)}"
            log(f"warning: --algo-grid for {a} has no effect on the {table} table ({who})")
    points = {sa: tables.grid_points(preset, sa) for sa in search_algos}
    phase1 = [tables.search_spec(preset, d, sa, lr, threads, kw) for d in datasets for sa in search_algos
              for lr in preset.lr_grid for kw in points[sa]]
    n_final = len(datasets) * len(algos) * len(seeds)
    bar = Progress(len(phase1) + n_final, f"{table} ({preset.name})", enabled=progress and not report_only)
    try:
        stats = {"executed": 0}
        if report_only:
            search = [load_result(out, s) for s in phase1]
        else:
            search = run_specs(phase1, out, jobs=jobs, progress=bar, log=log, stats=stats)
        choices: dict[str, dict[str, Any]] = {}
        for d in datasets:
            for sa in search_algos:
                rs = [r for r, s in zip(search, phase1) if r is not None and s["dataset"] == d and s["algorithm"] == sa]
                if len(rs) == len(preset.lr_grid) * len(points[sa]):
                    choices[f"{d}/{sa}"] = select_config(rs, preset.select_last)
        phase2 = []
        for d in datasets:
            for a in algos:
                key = f"{d}/{tables.search_algorithm(table, a)}"
                if key not in choices:
                    continue
                kw = tables.inherit_kwargs(a, choices[key]["algorithm_kwargs"])
                for s in seeds:
                    phase2.append(tables.final_spec(preset, d, a, s, choices[key]["lr"], threads, chosen_by=key,
                                                    algorithm_kwargs=kw))
        if report_only:
            finals = [r for r in (load_result(out, s) for s in phase2) if r is not None]
        else:
            finals = run_specs(phase2, out, jobs=jobs, progress=bar, log=log, stats=stats)
    finally:
        bar.close()
    if report_only and not finals and not any(r is not None for r in search):
        raise ValueError(f"argument --out: --report-only found no runs of the {table} table in {out} for "
                         f"datasets {', '.join(datasets)}, algorithms {', '.join(algos)} ({preset.name} preset)")
    meta["search_time_s"] = sum(r["wall_time_s"] for r in search if r is not None)
    meta["final_time_s"] = sum(r["wall_time_s"] for r in finals)
    _record_invocation(out, table, meta, t0, stats["executed"])
    meta.update(datasets=list(datasets), seeds=list(seeds), algorithms=list(algos), lr_grid=list(preset.lr_grid),
                algo_grid={a: {k: list(v) for k, v in g.items()}
                           for a, g in preset.algo_grid.items() if a in search_algos},
                epochs={d: preset.epochs_for(d) for d in datasets}, val_fraction=preset.val_fraction,
                batch_size=preset.batch_size, select_last=preset.select_last)
    data = write_accuracy_report(table, out, algos, datasets, finals, choices, meta)
    log(f"wrote {os.path.join(out, table + '.md')}")
    return data


def _memory(preset, out: str, meta: dict, t0: float, datasets, memory_T, algorithms, budget_gb, device,
            progress: bool, report_only: bool, log, sizes, batch, small_batch, threads,
            malloc_default: bool = False) -> dict[str, Any]:
    from .memory import GB
    from .report import write_memory_report
    from .runner import Progress, load_result, run_specs

    specs = tables.memory_specs(preset, T_values=memory_T, datasets=datasets, algos=algorithms, sizes=sizes,
                                batch=batch, small_batch=small_batch, device=device, threads=threads or 1,
                                malloc_mmap_threshold=None if malloc_default else 65536)
    budget = int(budget_gb * GB) if budget_gb else None
    for s in specs:
        s["budget_bytes"] = budget
    bar = Progress(len(specs), f"memory ({preset.name})", enabled=progress and not report_only)
    stats = {"executed": 0}
    try:
        if report_only:
            results = [r for r in (load_result(out, s) for s in specs) if r is not None]
        else:
            results = run_specs(specs, out, jobs=1, progress=bar, log=log, stats=stats)
    finally:
        bar.close()
    if report_only and not results:
        raise ValueError(f"argument --out: --report-only found no runs of the memory table in {out} "
                         f"({preset.name} preset)")
    meta["run_time_s"] = sum(r.get("wall_time_s", 0.0) for r in results)
    _record_invocation(out, "memory", meta, t0, stats["executed"])
    meta["measure_note"] = (
        "on CPU, the peak resident memory (VmHWM) of a dedicated child process per run minus its resident memory "
        "after imports, data creation, model building and a library warm-up (high-water mark reset through "
        "/proc/self/clear_refs); on CUDA, torch.cuda.max_memory_allocated minus the allocation at that point. "
        "Children run with MALLOC_MMAP_THRESHOLD_=65536 unless --malloc-default (glibc's dynamic threshold "
        "made the same BPTT run peak anywhere between 0.6 and 1.3 GB). One training batch: one full sequence of T steps with learning and the optimizer steps at the algorithm's "
        "update points. Runs whose predicted memory exceeds the budget are skipped with the prediction recorded.")
    data = write_memory_report(out, results, meta)
    log(f"wrote {os.path.join(out, 'memory.md')}; solsa_growth={data['solsa_growth']}, bptt_growth={data['bptt_growth']}")
    return data


#: What a report records of the invocation that ran (the last of) its runs; an invocation that
#: runs nothing (--report-only, or a resume with every run on disk) carries them over.
INVOCATION_KEYS = ("command", "started_at", "wall_time_s", "runs_executed", "machine", "jobs", "threads")


def _record_invocation(out: str, table: str, meta: dict[str, Any], t0: float, executed: int) -> None:
    """Set this invocation's wall time and run count in ``meta``. When it ran no run, keep the
    record of the invocation that did (from the stored ``<table>.json``; None where that is
    missing) and describe this one under ``report_rebuilt``."""
    meta["wall_time_s"] = time.perf_counter() - t0
    meta["runs_executed"] = int(executed)
    if executed:
        return
    this = {"command": meta["command"], "at": meta["started_at"], "wall_time_s": meta["wall_time_s"]}
    prev = _stored_meta(out, table) or {}
    for k in INVOCATION_KEYS:
        if k in prev:
            meta[k] = prev[k]
        elif k in ("command", "started_at", "wall_time_s", "runs_executed"):
            meta[k] = None  # not recorded: the report that ran the runs is gone
    meta["report_rebuilt"] = this
    meta["report_rebuilt_by"] = this["command"]


def main_reproduce(args: argparse.Namespace) -> int:
    which = list(TABLES) if "all" in args.table else list(dict.fromkeys(args.table))
    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    if "reproduce" in argv:
        argv = argv[argv.index("reproduce") + 1:]
    command = command_line(["reproduce", *argv])
    # check what can be checked before the first (possibly hours long) table runs
    for t in which:
        try:
            check_algorithms(t, args.algorithms)
        except ValueError as exc:
            raise ValueError(f"argument --algorithms: {exc}") from None
    from ..datasets.registry import get_spec

    for flag, names in (("--datasets", args.datasets), ("--memory-datasets", args.memory_datasets)):
        for name in names or ():
            try:
                get_spec(name)
            except ValueError as exc:
                raise ValueError(f"argument {flag}: {exc}") from None
    check_device(args.device, "argument --device:", available=True)
    grid = parse_algo_grid(args.algo_grid)
    if grid is not None:
        try:
            tables.normalize_algo_grid(grid)
        except ValueError as exc:
            raise ValueError(f"argument --algo-grid: {exc}") from None
    if not args.out.strip():
        raise ValueError("argument --out: must not be empty")
    if args.report_only:
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f"argument --out: {args.out!r} exists and is not a folder")
    else:
        make_out(args.out)
    for t in which:
        reproduce(t, args.out, quick=args.quick, datasets=args.datasets, seeds=args.seeds, epochs=args.epochs,
                  lr_grid=args.lr_grid, algorithms=args.algorithms, algo_grid=grid,
                  jobs=args.jobs, threads=args.threads,
                  memory_T=args.memory_T, memory_datasets=args.memory_datasets,
                  memory_budget_gb=args.memory_budget_gb, device=args.device, progress=not args.no_progress,
                  report_only=args.report_only, command=command, malloc_default=args.malloc_default)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m solsa_ext.experiments", formatter_class=_HelpFormatter,
                                description="Run the experiments of one or more tables, resumable; writes one JSON "
                                            "per run, <table>.md, <table>.json and <table>.png into --out.")
    _add_arguments(p)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return main_reproduce(args)
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
