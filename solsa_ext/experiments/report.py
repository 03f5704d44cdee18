"""Markdown tables, summary JSON and PNG plots of the reproduction (from the run JSONs)."""
from __future__ import annotations

import os
import statistics
from typing import Any, Optional, Sequence

from ..atomic import atomic_write
from .runner import write_json_atomic
from .tables import ALGO_LABEL, PAPER_SOLSA, describe_kwargs

MB = 1024 ** 2
GB = 1024 ** 3


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    m = statistics.fmean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return m, s


def _fmt_acc(cell: Optional[dict[str, Any]]) -> str:
    if not cell:
        return "—"
    s = f"{cell['mean']:.3f}"
    if cell["n"] > 1:
        s += f" ± {cell['std']:.3f}"
    return s + f" (n={cell['n']})"


def _md(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt_setting(lr: float, kwargs: Optional[dict[str, Any]], show: Sequence[str] = ()) -> str:
    extra = describe_kwargs(kwargs, show=tuple(show))
    return f"{lr:g}" + (f" {extra}" if extra else "")


def _fmt_time(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


# ------------------------------------------------------------- accuracy-type tables
def summarize_accuracy(finals: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{dataset: {algorithm: {mean, std, n, seeds, accuracies, lr, epochs, wall_time_s}}}."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in finals:
        groups.setdefault((r["dataset"], r["algorithm"]), []).append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (d, a), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        accs = [float(r["test_accuracy"]) for r in rs]
        m, s = _mean_std(accs)
        out.setdefault(d, {})[a] = {
            "mean": m, "std": s, "n": len(accs), "seeds": [r["seed"] for r in rs], "accuracies": accs,
            "train_accuracy_mean": statistics.fmean(float(r["train_accuracy"]) for r in rs),
            "lr": rs[0]["lr"], "epochs": rs[0]["epochs"], "wall_time_s": sum(r["wall_time_s"] for r in rs),
            "algorithm_kwargs": dict((rs[0].get("spec") or {}).get("algorithm_kwargs") or {}),
        }
    return out


def relative_claims(summary: dict[str, dict[str, dict[str, Any]]], datasets: Sequence[str]) -> list[dict[str, Any]]:
    """The paper's relative claims, checked on the datasets where both algorithms have results."""
    claims = []
    for other in ("bptt", "eprop", "ottt", "tbptt"):
        ds = [d for d in datasets if "solsa" in summary.get(d, {}) and other in summary.get(d, {})]
        if not ds:
            continue
        s = statistics.fmean(summary[d]["solsa"]["mean"] for d in ds)
        o = statistics.fmean(summary[d][other]["mean"] for d in ds)
        wins = sum(summary[d]["solsa"]["mean"] > summary[d][other]["mean"] for d in ds)
        claims.append({"vs": other, "datasets": ds, "solsa_mean": s, "other_mean": o, "solsa_above": s > o,
                       "solsa_wins": wins, "claimed_in_paper": other in ("bptt", "eprop", "ottt")})
    return claims


def write_accuracy_report(table: str, out: str, algos: Sequence[str], datasets: Sequence[str],
                          finals: Sequence[dict[str, Any]], choices: dict[str, dict[str, Any]],
                          meta: dict[str, Any]) -> dict[str, Any]:
    summary = summarize_accuracy(finals)
    headers = ["dataset", "paper SOLSA"] + [ALGO_LABEL.get(a, a) for a in algos]
    rows = []
    for d in datasets:
        rows.append([d, f"{PAPER_SOLSA[d]:.3f}" if d in PAPER_SOLSA else "—"]
                    + [_fmt_acc(summary.get(d, {}).get(a)) for a in algos])
    means = []
    for a in algos:
        ds = [d for d in datasets if a in summary.get(d, {})]
        means.append(f"{statistics.fmean(summary[d][a]['mean'] for d in ds):.3f} ({len(ds)} ds)" if ds else "—")
    rows.append(["**mean over datasets run**", "—"] + means)
    lines = [f"# {table.capitalize()} table ({meta.get('preset')} preset)", "",
             "Test accuracy, mean ± sample std over seeds (n = number of seeds run). "
             "Learning rate (and, where searched, the algorithm's own settings) chosen on a validation "
             "split of the train data (never on test); see the selection table below.", "", _md(headers, rows), ""]
    if table == "accuracy":
        lines += ["## The paper's relative claims, on our runs", ""]
        for c in relative_claims(summary, datasets):
            verdict = "holds" if c["solsa_above"] else "does NOT hold"
            lines.append(f"- SOLSA vs {ALGO_LABEL[c['vs']]} (datasets: {', '.join(c['datasets'])}): mean "
                         f"{c['solsa_mean']:.3f} vs {c['other_mean']:.3f}; SOLSA higher on {c['solsa_wins']}/"
                         f"{len(c['datasets'])} datasets -> '{'SOLSA above' if c['claimed_in_paper'] else 'SOLSA vs'} "
                         f"{ALGO_LABEL[c['vs']]}' {verdict} here.")
        lines.append("")
    grid = meta.get("algo_grid") or {}
    who = ("The ablation's columns all use SOLSA's choice (a variant takes its learning rate and the "
           "settings it has); SOLSA searches the learning rates " if table == "ablation"
           else "Every algorithm searches the learning rates ")
    lines += ["## Hyperparameter selection (validation split of train)", "",
              who + ", ".join(f"{x:g}" for x in meta.get("lr_grid", []))
              + (("; in addition " + "; ".join(f"{ALGO_LABEL.get(a, a)} searches "
                                                + ", ".join(f"{k} in {{{', '.join(str(v) for v in vals)}}}"
                                                            for k, vals in g.items())
                                                for a, g in grid.items()) + " (all combinations)") if grid else "")
              + ". Candidates: setting: mean validation accuracy (K = update points, thr = early-stop threshold).",
              "",
              _md(["dataset", "algorithm", "chosen", "val acc (mean of last epochs)", "candidates"],
                  [[d, ALGO_LABEL.get(sa, sa), _fmt_setting(c["lr"], c.get("algorithm_kwargs"), grid.get(sa, ())),
                    f"{c['score']['val_accuracy']:.3f}",
                    ", ".join(f"{_fmt_setting(x['lr'], x.get('algorithm_kwargs'), grid.get(sa, ()))}: "
                              f"{x['val_accuracy']:.3f}"
                              for x in sorted(c["candidates"], key=lambda x: (x["lr"], x.get("order", 0))))]
                   for key, c in sorted(choices.items()) for d, sa in [key.split("/")]]), ""]
    lines += ["## Runs", "",
              _md(["dataset", "algorithm", "seeds", "epochs", "lr", "settings", "train acc (mean)",
                   "wall time (all seeds)"],
                  [[d, ALGO_LABEL.get(a, a), ",".join(map(str, c["seeds"])), c["epochs"], f"{c['lr']:g}",
                    describe_kwargs(c.get("algorithm_kwargs")) or "defaults",
                    f"{c['train_accuracy_mean']:.3f}", _fmt_time(c["wall_time_s"])]
                   for d in datasets for a in algos if (c := summary.get(d, {}).get(a))]), ""]
    impls: dict[str, int] = {}
    for r in finals:  # runs written before the Trainer recorded it all used torch's per-tensor loop
        k = r.get("optimizer_impl", "loop")
        impls[k] = impls.get(k, 0) + 1
    if impls:
        lines += ["Optimizer step implementation of the final runs: "
                  + ", ".join(f"{k} ({n} runs)" for k, n in sorted(impls.items()))
                  + (" (mixed: results differ by round-off between the two, see docs/TRAINER.md)" if len(impls) > 1
                     else ""), ""]
    missing = [f"{d}/{a}" for d in datasets for a in algos if a not in summary.get(d, {})]
    if missing:
        lines += ["Missing (not run): " + ", ".join(missing), ""]
    final_s = meta.get("final_time_s", 0.0)
    search_s = meta.get("search_time_s", 0.0)
    lines += _invocation_lines(meta, f"Run time of these results (summed over the run files): "
                                     f"{_fmt_time(final_s + search_s)} = {_fmt_time(final_s)} (final runs) + "
                                     f"{_fmt_time(search_s)} (search runs).")
    md = "\n".join(lines) + "\n"
    _write_text(os.path.join(out, f"{table}.md"), md)
    data = {"table": table, "summary": summary, "choices": choices, "paper_solsa": PAPER_SOLSA,
            "claims": relative_claims(summary, datasets) if table == "accuracy" else None, "meta": meta}
    write_json_atomic(data, os.path.join(out, f"{table}.json"))
    _plot_accuracy(os.path.join(out, f"{table}.png"), table, algos, datasets, summary)
    return data


def _plot_accuracy(path: str, table: str, algos: Sequence[str], datasets: Sequence[str], summary: dict) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(datasets) + 2), 4))
    w = 0.8 / max(len(algos), 1)
    for i, a in enumerate(algos):
        xs, ms, ss = [], [], []
        for j, d in enumerate(datasets):
            c = summary.get(d, {}).get(a)
            if c:
                xs.append(j + (i - (len(algos) - 1) / 2) * w)
                ms.append(c["mean"])
                ss.append(c["std"])
        if xs:
            ax.bar(xs, ms, w, yerr=ss, capsize=2, label=ALGO_LABEL.get(a, a))
    i_s = list(algos).index("solsa") if "solsa" in algos else (len(algos) - 1) / 2
    px = [j + (i_s - (len(algos) - 1) / 2) * w for j, d in enumerate(datasets) if d in PAPER_SOLSA]
    py = [PAPER_SOLSA[d] for d in datasets if d in PAPER_SOLSA]
    if px:
        ax.hlines(py, [x - w / 2 for x in px], [x + w / 2 for x in px], colors="k", linewidth=2.5, zorder=5,
                  label="paper SOLSA")
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{table} table")
    ax.legend(fontsize=7, ncol=len(algos) + 1, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    _save(fig, path)


# -------------------------------------------------------------------- memory table
def _cell(r: Optional[dict[str, Any]]) -> str:
    if r is None:
        return "—"
    if r.get("status") == "measured":
        return f"{r['peak_bytes'] / MB:.1f} MiB"
    if r.get("status") == "skipped" and r.get("predicted_bytes") and r.get("budget_bytes"):
        return f"skipped: would need {r['predicted_bytes'] / GB:.1f} GiB (predicted), budget {r['budget_bytes'] / GB:.1f} GiB"
    return str(r.get("reason", r.get("status")))


def _growth(series: dict[int, dict[str, Any]]) -> Optional[dict[str, Any]]:
    meas = {T: r for T, r in series.items() if r.get("status") == "measured" and r.get("peak_bytes", 0) > 0}
    if len(meas) < 2:
        return None
    lo, hi = min(meas), max(meas)
    return {"ratio": meas[hi]["peak_bytes"] / meas[lo]["peak_bytes"], "T_min": lo, "T_max": hi,
            "complete": hi == max(series) and lo == min(series)}


def write_memory_report(out: str, results: Sequence[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    sweep: dict[str, dict[int, dict[str, Any]]] = {}
    small: dict[int, dict[str, Any]] = {}
    dsets: dict[str, dict[str, dict[str, Any]]] = {}
    T_values: list[int] = sorted({r["spec"]["T"] for r in results if r["spec"]["series"] != "dataset"})
    algos: list[str] = []
    batch = small_b = None
    for r in results:
        s = r["spec"]
        if s["algorithm"] not in algos:
            algos.append(s["algorithm"])
        slim = {k: r.get(k) for k in ("status", "peak_bytes", "predicted_bytes", "reason", "train_time_s", "T_run",
                                      "budget_bytes", "measure", "hwm_reset", "device")}
        if s["series"] == "sweep":
            sweep.setdefault(s["algorithm"], {})[s["T"]] = slim
            batch = s["batch"]
        elif s["series"] == "sweep_small_batch":
            small[s["T"]] = slim
            small_b = s["batch"]
        else:
            slim["T"] = s["T"]
            slim["sizes"] = s["sizes"]
            dsets.setdefault(s["dataset"], {})[s["algorithm"]] = slim
    growth = {a: _growth(sr) for a, sr in sweep.items()}
    data: dict[str, Any] = {
        "solsa_growth": growth["solsa"]["ratio"] if growth.get("solsa") else None,
        "bptt_growth": growth["bptt"]["ratio"] if growth.get("bptt") else None,
        "growth": growth,
        "bptt_small_batch_growth": _growth(small) if small else None,
        "T_values": T_values, "batch": batch, "small_batch": small_b,
        "network": list(results[0]["spec"]["sizes"]) if results else None,
        "sweep": {a: {str(T): v for T, v in sr.items()} for a, sr in sweep.items()},
        "sweep_small_batch": {str(T): v for T, v in small.items()},
        "datasets": dsets,
        "target": "solsa_growth <= 1.05 while BPTT grows with T",
        "meta": meta,
    }
    if data["solsa_growth"] is not None:
        data["solsa_growth_ok"] = data["solsa_growth"] <= 1.05
    write_json_atomic(data, os.path.join(out, "memory.json"))
    net = "-".join(map(str, data["network"] or []))
    lines = [f"# Memory table ({meta.get('preset')} preset)", "",
             f"Peak training memory, measured: {meta.get('measure_note', '')}", "",
             f"## Sequence length sweep: network {net}, batch {batch}, synthetic current input", "",
             _md(["algorithm"] + [f"T={T}" for T in T_values],
                 [[f"{ALGO_LABEL.get(a, a)} (B={batch})"] + [_cell(sweep[a].get(T)) for T in T_values] for a in sweep]
                 + ([[f"BPTT (B={small_b})"] + [_cell(small.get(T)) for T in T_values]] if small else [])), ""]
    gl = []
    for a, g in growth.items():
        if g:
            gl.append(f"- {ALGO_LABEL.get(a, a)}: peak(T={g['T_max']}) / peak(T={g['T_min']}) = **{g['ratio']:.3f}**"
                      + ("" if g["complete"] else " (largest T not measured: see the table)"))
    if data["bptt_small_batch_growth"]:
        g = data["bptt_small_batch_growth"]
        gl.append(f"- BPTT at B={small_b}: peak(T={g['T_max']}) / peak(T={g['T_min']}) = **{g['ratio']:.3f}**")
    lines += ["Growth (peak at the largest measured T over the peak at the smallest):", ""] + gl + [""]
    if data["solsa_growth"] is not None:
        lines += [f"Target solsa_growth <= 1.05: {'met' if data['solsa_growth_ok'] else 'NOT met'} "
                  f"({data['solsa_growth']:.3f}).", ""]
    if dsets:
        al = [a for a in algos if any(a in v for v in dsets.values())]
        lines += [f"## The datasets at their own T (paper networks, batch {batch}, real samples)", "",
                  _md(["dataset", "net", "T"] + [ALGO_LABEL.get(a, a) for a in al],
                      [[d, "-".join(map(str, next(iter(v.values()))["sizes"])), next(iter(v.values()))["T"]]
                       + [_cell(v.get(a)) for a in al] for d, v in dsets.items()]), ""]
    lines += _invocation_lines(meta, f"Run time of these results (summed over the {len(results)} run files; "
                                     f"child start, warm-up and training): "
                                     f"{_fmt_time(sum(r.get('wall_time_s', 0.0) for r in results))}.")
    _write_text(os.path.join(out, "memory.md"), "\n".join(lines) + "\n")
    _plot_memory(os.path.join(out, "memory.png"), sweep, small, small_b, batch, net)
    return data


def _plot_memory(path: str, sweep: dict, small: dict, small_b: Optional[int], batch: Optional[int], net: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    series = [(f"{ALGO_LABEL.get(a, a)} (B={batch})", sr) for a, sr in sweep.items()]
    if small:
        series.append((f"BPTT (B={small_b})", small))
    for label, sr in series:
        Ts = sorted(sr)
        mT = [T for T in Ts if sr[T].get("status") == "measured"]
        line = ax.plot(mT, [max(sr[T]["peak_bytes"], 1) / MB for T in mT], marker="o", label=label)
        sk = [T for T in Ts if sr[T].get("status") in ("skipped", "killed")]
        if sk:
            ax.plot(sk, [sr[T]["predicted_bytes"] / MB for T in sk], marker="x", ls=":", color=line[0].get_color(),
                    label=f"{label}: predicted, skipped")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("measured peak training memory (MiB)")
    ax.set_title(f"peak memory vs T, {net}")
    # Below the axes: inside, the legend covered the flat online curves (they sit at the top on
    # a log scale when BPTT is not in the run).
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)


# ------------------------------------------------------------------------ helpers
def _invocation_lines(meta: dict[str, Any], run_time: str) -> list[str]:
    """Command, machine and times: ``run_time`` (the summed run time of the run files: how long
    the results took), then the invocation that ran the runs (kept from the stored report by an
    invocation that ran none, see ``cli._record_invocation``), then the rebuild, if this was one."""
    cmd = meta.get("command")
    lines = [f"Command: `{cmd}`" if cmd else "Command: not recorded (this invocation ran no run and found no "
                                             "earlier report of this table in the output folder; each run file "
                                             "records when it finished)",
             "", f"Machine: {meta.get('machine', {})}", "", run_time]
    wall = meta.get("wall_time_s")
    if wall is not None:
        info = [f"started {meta['started_at']}"] if meta.get("started_at") else []
        if meta.get("runs_executed") is not None:
            info.append(f"{meta['runs_executed']} runs executed")
        lines[-1] += (f" Wall time of the invocation that ran the runs: {_fmt_time(wall)}"
                      + (f" ({', '.join(info)})" if info else "") + ".")
    rb = meta.get("report_rebuilt")
    if rb:
        lines += ["", f"Report rebuilt at {rb.get('at')} in {rb.get('wall_time_s', 0.0):.2f} s by "
                      f"`{rb.get('command', '')}` (no run executed)."]
    return lines


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    plt = _pyplot()
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)


def _write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), binary=False)
