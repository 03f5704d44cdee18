"""Tests of the reproduction command (solsa_ext.experiments): tiny runs, < 90 s in all."""
from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from solsa_ext.experiments import cli as rcli
from solsa_ext.experiments import memory, runner, tables
from solsa_ext.experiments.report import write_memory_report


# ---------------------------------------------------------------- pure helpers
def test_run_id_is_stable_and_ignores_threads():
    p = tables.QUICK
    a = tables.final_spec(p, "BasicMotions", "solsa", 0, 1e-3, threads=1)
    b = tables.final_spec(p, "BasicMotions", "solsa", 0, 1e-3, threads=4)
    c = tables.final_spec(p, "BasicMotions", "solsa", 1, 1e-3)
    assert runner.run_id(a) == runner.run_id(b)
    assert runner.run_id(a) != runner.run_id(c)
    assert runner.run_id(a).startswith("final-BasicMotions-solsa-seed0-")
    full = tables.final_spec(tables.FULL, "BasicMotions", "solsa", 0, 1e-3)
    assert runner.run_id(full) != runner.run_id(a)  # quick and full never share a file


def test_stratified_split_disjoint_and_per_class():
    y = torch.tensor([0] * 10 + [1] * 10 + [2] * 4)
    tr, va = runner.stratified_split(y, 0.25, seed=0)
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(24))
    assert [int((y[va] == c).sum()) for c in range(3)] == [2, 2, 1]  # round(2.5)=2, round(1.0)=1
    tr2, va2 = runner.stratified_split(y, 0.25, seed=0)
    assert torch.equal(va, va2)


def test_select_lr_rule():
    def run(lr, accs, losses):
        return {"lr": lr, "history": [{"val_accuracy": a, "val_loss": l} for a, l in zip(accs, losses)]}

    rs = [run(1e-3, [0.9, 0.5, 0.5], [1, 1, 1]), run(1e-2, [0.1, 0.7, 0.7], [1, 1, 1]),
          run(3e-3, [0.1, 0.7, 0.7], [1, 0.5, 0.5])]
    ch = runner.select_lr(rs, last=2)
    assert ch["lr"] == 3e-3  # tie on accuracy (0.7), lower val loss wins
    assert len(ch["candidates"]) == 3
    rs = [run(1e-2, [0.6, 0.6], [1, 1]), run(1e-3, [0.6, 0.6], [1, 1])]
    assert runner.select_lr(rs, last=2)["lr"] == 1e-3  # full tie: smaller rate


def test_select_config_carries_the_winning_settings():
    def run(lr, kw, accs, losses):
        spec = {"algorithm_kwargs": kw} if kw else {}
        return {"lr": lr, "spec": spec, "history": [{"val_accuracy": a, "val_loss": l} for a, l in zip(accs, losses)]}

    rs = [run(1e-3, {}, [0.5, 0.8], [1, 1]), run(1e-3, {"update_points": 8}, [0.5, 0.9], [1, 1]),
          run(3e-3, {"update_points": 2}, [0.9, 0.9], [1, 1])]
    ch = runner.select_config(rs, last=1)
    assert ch["lr"] == 1e-3 and ch["algorithm_kwargs"] == {"update_points": 8}  # last epoch only: 0.9 ties, loss ties, lr wins
    ch = runner.select_config(rs, last=2)
    assert ch["lr"] == 3e-3 and ch["algorithm_kwargs"] == {"update_points": 2}  # mean 0.9 vs 0.7
    # a full tie goes to the earlier grid point
    tie = [run(1e-3, {"update_points": 2}, [0.7], [1]), run(1e-3, {}, [0.7], [1])]
    assert runner.select_config(tie, last=1)["algorithm_kwargs"] == {"update_points": 2}


def test_algo_grid_values_are_typed_and_deduplicated():
    g = tables.normalize_algo_grid({"solsa": {"update_points": ["2", "2.0", 8, "8"], "early_stop_threshold": ["0.6", 0.60]},
                                    "tbptt": {"truncation": ["10"]}})
    assert g == {"solsa": {"update_points": (2, 8), "early_stop_threshold": (0.6,)}, "tbptt": {"truncation": (10,)}}
    assert type(g["solsa"]["update_points"][0]) is int
    # an int and an equal float make the same run (same spec hash)
    p = tables.dataclasses.replace(tables.FULL, algo_grid=g)
    assert tables.grid_points(p, "solsa") == [{"update_points": 2}, {"update_points": 8}]


def test_grid_points_keep_the_default_point_spec():
    """The default setting's search spec is the one of the learning-rate-only protocol (same file)."""
    pts = tables.grid_points(tables.FULL, "solsa")
    assert len(pts) == 3 * 2 and {} in pts and {"update_points": 8, "early_stop_threshold": 0.9} in pts
    assert tables.grid_points(tables.FULL, "bptt") == [{}]
    assert tables.grid_points(tables.QUICK, "solsa") == [{}]
    plain = tables.search_spec(tables.FULL, "BasicMotions", "solsa", 1e-3)
    assert "algorithm_kwargs" not in plain
    k8 = tables.search_spec(tables.FULL, "BasicMotions", "solsa", 1e-3, algorithm_kwargs={"update_points": 8})
    assert runner.run_id(k8).startswith("search-BasicMotions-solsa-lr0.001-K8-seed0-")
    assert runner.spec_hash(k8) != runner.spec_hash(plain)
    # what an ablation variant inherits from SOLSA's choice
    kw = {"update_points": 8, "early_stop_threshold": 0.9}
    assert tables.inherit_kwargs("variant1", kw) == {"update_points": 8}
    assert tables.inherit_kwargs("variant3", kw) == kw
    assert tables.inherit_kwargs("unscheduled", kw) == {}
    # settings that define a configuration are never passed on
    assert tables.inherit_kwargs("variant1", {"early_stop": True, "override_schedule": True, "gamma": 0.5}) == {}
    assert tables.inherit_kwargs("variant2", {"gamma": 0.5}) == {"gamma": 0.5}


@pytest.mark.parametrize("items, msg", [
    (["solsa"], "ALGO:SETTING"), (["solsa:update_points"], "at least one value"),
    (["nope:update_points=2"], "unknown algorithm 'nope'"), (["solsa:K=2"], "'K' is not a searchable"),
    (["solsa:update_points=0"], "update_points must be >= 1"),
    (["solsa:update_points=2.5"], r"\['update_points'\]: '2.5' is not a whole number"),
    (["solsa:update_points=inf"], r"\['update_points'\]: 'inf' is not finite"),
    (["solsa:early_stop_threshold=abc"], r"\['early_stop_threshold'\]: 'abc' is not a number"),
    (["solsa:early_stop=false"], "'early_stop' is not a searchable"),
    (["variant1:override_schedule=1"], "'override_schedule' is not a searchable"),
    (["bptt:update_points=2,8"], "'update_points' has no effect on bptt"),
    (["variant1:early_stop_threshold=0.9"], "has no effect on variant1"),
    (["solsa:update_points=2", "solsa:update_points=8"], "given twice"),
    (["solsa:update_points=2", "solsa:none"], "contradicts"),
])
def test_algo_grid_errors_name_the_entry(items, msg, tmp_path):
    with pytest.raises(ValueError, match=msg):
        rcli.reproduce("accuracy", str(tmp_path), quick=True, algo_grid=rcli.parse_algo_grid(items),
                       progress=False, log=lambda s: None)


def test_predict_bytes_bptt_grows_online_does_not():
    net = tables.EMG_NET
    sol = [memory.predict_bytes("solsa", net, 32, T) for T in (100, 4000)]
    bp = [memory.predict_bytes("bptt", net, 32, T) for T in (100, 1000, 4000)]
    assert sol[0] == sol[1]
    assert bp[0] < bp[1] < bp[2]
    assert bp[2] > 20 * 1024 ** 3  # BPTT at T=4000, B=32 does not fit 24 GiB: it must be skipped


def test_measure_skips_over_budget_without_starting_a_child():
    spec = {"algorithm": "bptt", "sizes": [8, 200, 200, 10], "batch": 32, "T": 4000}
    r = memory.measure(spec, budget_bytes=1024 ** 3)
    assert r["status"] == "skipped"
    assert r["reason"].startswith("skipped: would need") and "GiB" in r["reason"]
    assert "peak_bytes" not in r


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    spec = tables.final_spec(tables.QUICK, "BasicMotions", "solsa", 0, 1e-3)

    def boom(s):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(runner, "execute", boom)
    with pytest.raises(RuntimeError):
        runner.run_specs([spec], str(tmp_path))
    assert not os.path.exists(runner.run_path(str(tmp_path), spec))
    assert not [f for f in os.listdir(tmp_path / "runs")] if (tmp_path / "runs").exists() else True


def test_parser_extension_point():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    rcli.add_reproduce_parser(sub)
    a = p.parse_args(["reproduce", "--table", "accuracy", "memory", "--seeds", "0", "1", "--quick", "--out", "D"])
    assert a.command == "reproduce" and a.table == ["accuracy", "memory"] and a.seeds == [0, 1] and a.quick
    with pytest.raises(SystemExit):
        p.parse_args(["reproduce", "--table", "nope", "--out", "D"])


@pytest.mark.parametrize("args, msg", [
    (["--table", "accuracy", "--algorithms", "bogus", "--epochs", "1"],
     "argument --algorithms: algorithms 'bogus' not in the accuracy table; choose from solsa, bptt, tbptt, eprop, ottt"),
    (["--table", "all", "--algorithms", "tbptt"], "argument --algorithms: algorithms 'tbptt' not in the ablation table"),
    (["--table", "memory", "--T", "-5"], "argument --T: must be >= 1"),
    (["--table", "memory", "--T", "0"], "argument --T: must be >= 1"),
    (["--table", "accuracy", "--epochs", "0"], "argument --epochs: must be >= 1"),
    (["--table", "accuracy", "--seeds", "0", "-1"], "argument --seeds: must be >= 0"),
    (["--table", "accuracy", "--jobs", "0"], "argument --jobs: must be >= 1"),
    (["--table", "accuracy", "--threads", "-1"], "argument --threads: must be >= 1"),
    (["--table", "accuracy", "--lr-grid", "1e-3", "nan"], "argument --lr-grid: must be a finite number > 0"),
    (["--table", "accuracy", "--lr-grid", "0"], "argument --lr-grid: must be a finite number > 0"),
    (["--table", "memory", "--memory-budget-gb", "inf"], "argument --memory-budget-gb"),
    (["--table", "accuracy", "--datasets", "Nope"], "argument --datasets: unknown dataset 'Nope'"),
    (["--table", "memory", "--memory-datasets", "Nope"], "argument --memory-datasets: unknown dataset 'Nope'"),
    (["--table", "memory", "--device", "gpu"], "argument --device: must be cpu, cuda, cuda:N or auto"),
    (["--table", "accuracy", "--algo-grid", "solsa:bogus=1"],
     "argument --algo-grid: algo_grid['solsa']: 'bogus' is not a searchable AlgorithmConfig setting"),
    (["--table", "accuracy", "--algo-grid", "solsa"], "argument --algo-grid: expected ALGO:SETTING=V1,V2 or ALGO:none"),
] + ([] if torch.cuda.is_available() else [
    (["--table", "memory", "--device", "cuda"], "argument --device: 'cuda' requested but CUDA is not available"),
]))
def test_reproduce_checks_arguments_before_running(args, msg, tmp_path, capsys, monkeypatch):
    from solsa_ext.cli import main

    def no_runs(*a, **k):
        raise AssertionError("a run started")

    monkeypatch.setattr(runner, "run_specs", no_runs)
    out = tmp_path / "D"
    try:
        rc = main(["reproduce", *args, "--out", str(out), "--no-progress"])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err, err
    assert not out.exists()


def test_reproduce_out_must_be_a_usable_folder(tmp_path, capsys, monkeypatch):
    from solsa_ext.cli import main

    def no_runs(*a, **k):
        raise AssertionError("a run started")

    monkeypatch.setattr(runner, "run_specs", no_runs)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, msg in ((str(afile), "exists and is not a folder"), (str(afile / "sub"), "cannot create the folder"),
                     ("", "must not be empty")):
        rc = main(["reproduce", "--table", "accuracy", "--out", out, "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and "argument --out: " in err and msg in err and "Traceback" not in err, err


def test_reproduce_api_checks_algorithms(tmp_path):
    with pytest.raises(ValueError, match="'bogus' not in the memory table; choose from solsa, bptt, eprop, ottt"):
        rcli.reproduce("memory", str(tmp_path), quick=True, algorithms=["solsa", "bogus"], progress=False)
    with pytest.raises(ValueError, match="memory_T"):
        rcli.reproduce("memory", str(tmp_path), quick=True, memory_T=[100, 0], progress=False)


# ----------------------------------------------------------------- tiny runs
def test_accuracy_table_runs_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("aeon")
    out = str(tmp_path / "acc")
    kw = dict(quick=True, datasets=["BasicMotions"], seeds=[0], epochs=1, lr_grid=[1e-2],
              algorithms=["solsa", "eprop"], progress=False, threads=1, log=lambda s: None)
    data = rcli.reproduce("accuracy", out, **kw)
    runs = sorted(os.listdir(os.path.join(out, "runs")))
    assert len(runs) == 4  # 2 search + 2 final
    assert not [r for r in runs if not r.endswith(".json") or r.startswith(".tmp")]
    cell = data["summary"]["BasicMotions"]["solsa"]
    assert cell["n"] == 1 and 0.0 <= cell["mean"] <= 1.0
    md = open(os.path.join(out, "accuracy.md")).read()
    assert "| BasicMotions | 1.000 |" in md and "SOLSA vs e-prop" in md
    assert os.path.getsize(os.path.join(out, "accuracy.png")) > 1000
    final = json.load(open(os.path.join(out, "runs", [r for r in runs if r.startswith("final-BasicMotions-solsa")][0])))
    assert final["spec"]["lr"] == 1e-2 and "test_accuracy" in final and final["epochs"] == 1
    search = json.load(open(os.path.join(out, "runs", [r for r in runs if r.startswith("search-")][0])))
    assert "val_accuracy" in search["history"][-1] and "test_accuracy" not in search
    assert search["n_fit"] + search["n_val"] == 40

    # resume: nothing is run again, the report is rebuilt from the files
    def no_run(spec):
        raise AssertionError(f"run repeated: {spec}")

    monkeypatch.setattr(runner, "execute", no_run)
    again = rcli.reproduce("accuracy", out, **kw)
    assert again["summary"]["BasicMotions"]["solsa"]["accuracies"] == cell["accuracies"]
    # the ablation table reuses SOLSA's search and final runs (same specs, same files)
    monkeypatch.undo()
    rcli.reproduce("ablation", out, **{**kw, "algorithms": ["solsa"]})
    assert sorted(os.listdir(os.path.join(out, "runs"))) == runs
    assert os.path.exists(os.path.join(out, "ablation.md"))


def test_algo_grid_choice_reaches_final_and_ablation_runs(tmp_path):
    """SOLSA's chosen K and threshold go into its final runs and, where a variant has them,
    into the ablation variants' runs; the trainer really updates K times per sequence."""
    pytest.importorskip("aeon")
    out = str(tmp_path / "grid")
    kw = dict(quick=True, datasets=["BasicMotions"], seeds=[0], epochs=1, lr_grid=[1e-2], progress=False, threads=1,
              algo_grid=rcli.parse_algo_grid(["solsa:update_points=2", "solsa:early_stop_threshold=0.9"]),
              log=lambda s: None)
    data = rcli.reproduce("ablation", out, algorithms=["solsa", "variant1", "unscheduled"], **kw)
    assert data["choices"]["BasicMotions/solsa"]["algorithm_kwargs"] == {"update_points": 2, "early_stop_threshold": 0.9}
    runs = {f.split("-seed")[0]: json.load(open(os.path.join(out, "runs", f)))
            for f in os.listdir(os.path.join(out, "runs"))}
    assert sorted(runs) == ["final-BasicMotions-solsa-K2-thr0.9", "final-BasicMotions-unscheduled",
                            "final-BasicMotions-variant1-K2", "search-BasicMotions-solsa-lr0.01-K2-thr0.9"]
    n_batches = 40 // tables.QUICK.batch_size  # BasicMotions: 40 train sequences, all of length 100
    for name, K, thr in [("final-BasicMotions-solsa-K2-thr0.9", 2, 0.9), ("final-BasicMotions-variant1-K2", 2, 0.6),
                         ("final-BasicMotions-unscheduled", 1, 0.6)]:
        alg = runs[name]["configs"]["algorithm"]
        assert alg["early_stop_threshold"] == thr
        assert runs[name]["updates"] == n_batches * K, name
    md = open(os.path.join(out, "ablation.md")).read()
    assert "0.01 K2-thr0.9" in md and "update_points in {2}" in md and "SOLSA searches" in md

    # --report-only without the grid rebuilds the same report from the grids stored with it
    again = rcli.reproduce("ablation", out, algorithms=["solsa", "variant1", "unscheduled"], report_only=True,
                           **{k: v for k, v in kw.items() if k not in ("algo_grid", "lr_grid")})
    assert again["summary"] == data["summary"] and again["choices"].keys() == data["choices"].keys()


def test_memory_table_tiny(tmp_path):
    """Two real child-process measurements (SOLSA and BPTT) on a tiny net; report files."""
    out = str(tmp_path / "mem")
    data = rcli.reproduce("memory", out, quick=True, memory_T=[12], memory_datasets=[], algorithms=["solsa", "bptt"],
                          memory_sizes=(4, 16, 3), memory_batch=2, memory_small_batch=None, progress=False,
                          log=lambda s: None)
    m = json.load(open(os.path.join(out, "memory.json")))
    assert "solsa_growth" in m and "bptt_growth" in m  # None here: one T only
    for a in ("solsa", "bptt"):
        r = m["sweep"][a]["12"]
        assert r["status"] == "measured" and r["peak_bytes"] >= 0 and r["hwm_reset"] in (True, False)
    assert os.path.getsize(os.path.join(out, "memory.png")) > 1000
    assert "T=12" in open(os.path.join(out, "memory.md")).read()
    assert len(os.listdir(os.path.join(out, "runs"))) == 2
    assert data["T_values"] == [12]


def _mem_result(algo, T, peak=None, series="sweep", batch=32, reason=None):
    spec = {"kind": "memory", "series": series, "dataset": "synthetic", "algorithm": algo,
            "sizes": [8, 200, 200, 10], "batch": batch, "T": T}
    if peak is None:
        return {"spec": spec, "status": "skipped", "predicted_bytes": 30 * 1024 ** 3, "budget_bytes": 10 * 1024 ** 3,
                "reason": reason}
    return {"spec": spec, "status": "measured", "peak_bytes": peak, "predicted_bytes": peak}


def test_memory_report_growth_and_skips(tmp_path):
    MB = 1024 ** 2
    res = [_mem_result("solsa", 100, 17 * MB), _mem_result("solsa", 4000, int(17.5 * MB)),
           _mem_result("bptt", 100, 600 * MB), _mem_result("bptt", 1000, 5600 * MB),
           _mem_result("bptt", 4000, reason="skipped: would need 30.0 GB (predicted), budget 10.0 GB"),
           _mem_result("bptt", 100, 80 * MB, "sweep_small_batch", 4), _mem_result("bptt", 4000, 2900 * MB, "sweep_small_batch", 4)]
    data = write_memory_report(str(tmp_path), res, {"preset": "test"})
    assert data["solsa_growth"] == pytest.approx(17.5 / 17)
    assert data["solsa_growth_ok"] is True
    assert data["bptt_growth"] == pytest.approx(5600 / 600)
    assert data["growth"]["bptt"]["T_max"] == 1000 and data["growth"]["bptt"]["complete"] is False
    assert data["bptt_small_batch_growth"]["ratio"] == pytest.approx(2900 / 80)
    md = open(tmp_path / "memory.md").read()
    assert "skipped: would need 30.0 GiB (predicted), budget 10.0 GiB" in md and "BPTT (B=4)" in md and "largest T not measured" in md
    assert json.load(open(tmp_path / "memory.json"))["bptt_growth"] == pytest.approx(5600 / 600)


def test_report_only_keeps_the_preset_grid_of_algorithms_the_stored_report_did_not_run(tmp_path):
    """A stored report of the baselines only says nothing about SOLSA's grid: rebuilding the
    SOLSA report must use the preset's grid (a report written before grids existed, by
    contrast, searched the learning rate only)."""
    out = tmp_path / "r"
    out.mkdir()
    # one (fake) search run on disk: --report-only on a folder without runs is an error
    fake = tables.search_spec(tables.FULL, "BasicMotions", "solsa", 1e-3)
    runner.write_json_atomic({"spec": fake, "wall_time_s": 1.0}, runner.run_path(str(out), fake))
    meta = {"lr_grid": [1e-3, 3e-3, 1e-2], "algorithms": ["bptt"], "algo_grid": {}}
    (out / "accuracy.json").write_text(json.dumps({"meta": meta}))
    kw = dict(datasets=["BasicMotions"], report_only=True, progress=False, log=lambda s: None)
    data = rcli.reproduce("accuracy", str(out), algorithms=["solsa"], **kw)
    assert data["meta"]["algo_grid"] == {"solsa": {k: list(v) for k, v in tables.SOLSA_GRID.items()}}
    old = {"lr_grid": [1e-3, 3e-3, 1e-2], "algorithms": ["solsa", "bptt"]}  # no algo_grid key: lr only
    (out / "accuracy.json").write_text(json.dumps({"meta": old}))
    data = rcli.reproduce("accuracy", str(out), algorithms=["solsa"], **kw)
    assert data["meta"]["algo_grid"] == {}


def test_reproduce_help_states_each_default_once(capsys):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    helps = [rcli.add_reproduce_parser(sub).format_help()]
    with pytest.raises(SystemExit):
        rcli.main(["--help"])
    helps.append(capsys.readouterr().out)
    for h in helps:
        flat = " ".join(h.split())
        assert "(default: None)" not in flat
        assert "(default: 0 1 2; quick: 0)" in flat and "--jobs JOBS training runs in parallel (worker processes) (default: 1)" in flat
        assert "torch_threads" in flat and "1,000,000" in flat  # --threads tells the auto rule


def test_machine_info_mem_total_is_GB_like_the_benchmarks():
    gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    assert runner.machine_info()["mem_total_GB"] == pytest.approx(gb, abs=0.051)


@pytest.mark.parametrize("table", ["accuracy", "memory"])
@pytest.mark.parametrize("runs_folder", [False, True])
def test_report_only_without_runs_is_an_error_naming_out(table, runs_folder, tmp_path, capsys):
    from solsa_ext.cli import main

    out = tmp_path / "D"
    if runs_folder:
        (out / "runs").mkdir(parents=True)
    rc = main(["reproduce", "--quick", "--table", table, "--datasets", "BasicMotions", "--out", str(out),
               "--report-only", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "argument --out: --report-only found no runs" in err and "Traceback" not in err, err
    assert os.listdir(out) == ["runs"] if runs_folder else not out.exists()


def test_rebuilt_report_keeps_the_invocation_that_ran_the_runs(tmp_path, monkeypatch):
    """A resume that runs nothing and --report-only keep the command, start and wall time of the
    invocation that ran the runs and add a line of their own; runs without --threads (--jobs 1)
    use the train CLI's auto rule (1 thread for these small networks), recorded per run."""
    pytest.importorskip("aeon")
    out = str(tmp_path / "acc")
    kw = dict(quick=True, datasets=["BasicMotions"], seeds=[0], epochs=1, lr_grid=[1e-2], algorithms=["solsa"],
              progress=False, log=lambda s: None)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = rcli.reproduce("accuracy", out, command="cmd-run", **kw)
        assert torch.get_num_threads() == 2  # the auto choice does not leak out of a run
    finally:
        torch.set_num_threads(before)
    for f in os.listdir(os.path.join(out, "runs")):
        r = json.load(open(os.path.join(out, "runs", f)))
        assert r["torch_threads"] == 1 and r["threads_rule"] == "auto" and r["spec"]["threads"] is None, f
        # the thread count is not part of the run's identity
        assert runner.run_id(r["spec"]) == runner.run_id({**r["spec"], "threads": 4}) == r["run_id"]
    m0 = data["meta"]
    assert m0["command"] == "cmd-run" and m0["runs_executed"] == 2 and "report_rebuilt" not in m0
    assert m0["wall_time_s"] >= m0["final_time_s"] > 0 and m0["threads"] == "auto"
    md = open(os.path.join(out, "accuracy.md")).read()
    assert "Command: `cmd-run`" in md and "Run time of these results (summed over the run files)" in md
    assert "2 runs executed" in md and "Report rebuilt" not in md

    def no_run(spec):
        raise AssertionError(f"run repeated: {spec}")

    monkeypatch.setattr(runner, "execute", no_run)
    for cmd, extra in (("cmd-resume", {}), ("cmd-report", {"report_only": True})):
        m = rcli.reproduce("accuracy", out, command=cmd, **kw, **extra)["meta"]
        stored = json.load(open(os.path.join(out, "accuracy.json")))["meta"]
        for k in ("command", "started_at", "wall_time_s", "runs_executed", "machine"):
            assert m[k] == stored[k] == m0[k], (cmd, k)
        assert m["report_rebuilt"]["command"] == cmd and m["report_rebuilt"]["wall_time_s"] < m0["wall_time_s"]
        assert m["final_time_s"] == m0["final_time_s"] and m["search_time_s"] == m0["search_time_s"]
        md = open(os.path.join(out, "accuracy.md")).read()
        assert "Command: `cmd-run`" in md and f"by `{cmd}` (no run executed)" in md, md
        assert "Report rebuilt at " in md and "2 runs executed" in md
