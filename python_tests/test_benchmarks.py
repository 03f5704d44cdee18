"""Smoke tests of the benchmark scripts on tiny sizes: they run, their JSON has the keys,
the values are positive. No timing assertions (the machine is shared and noisy)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks import bench_learn_segment, bench_step, common, peers, run  # noqa: E402
from solsa_ext.rule import RULES  # noqa: E402


def test_bytes_per_step_formula():
    # one layer 3 -> 2, batch 5, float32: SOLSA moves 7 words per synapse per sample
    b = common.bytes_per_step([3, 2], 5, RULES["solsa"], 4)
    assert b["per_synapse_bytes"] == 5 * 6 * 7 * 4
    assert b["parameter_bytes"] == 6 * (3 + 7) * 4          # step w,decay,gain; learn w, gw/gdecay/ggain r+w
    assert b["bytes_per_step"] == b["per_synapse_bytes"] + b["parameter_bytes"] + b["per_neuron_bytes"]
    assert common.bytes_per_step([3, 2], 5, RULES["eprop"], 4)["per_synapse_bytes"] == 5 * 6 * 3 * 4
    assert common.bytes_per_step([3, 2], 5, RULES["ottt"], 4)["per_synapse_bytes"] == 0
    assert common.update_points(10, 3) == {2, 6, 9}
    assert common.update_points(2, 10) == {0, 1}


def test_triad_and_peak_probe():
    t = common.triad_bandwidth("cpu", mb_per_array=4, repeats=2)
    assert t["GBps"] > 0 and t["bytes_counted"] == 3 * 4 * (1 << 20)
    probe = common.PeakRSS()
    probe.start()
    x = torch.ones(4 << 20)  # 16 MiB
    x += 1
    assert probe.peak_bytes() > 0
    del x


def test_bench_step_json(tmp_path):
    out = tmp_path / "step.json"
    res = bench_step.main(["--T", "4", "--sizes", "4,6,3", "--batch", "2", "--repeats", "1",
                           "--eager-repeats", "1", "--triad-mb", "4", "--json", str(out)])
    data = json.loads(out.read_text())
    for k in ("speedup_vs_eager", "bandwidth_fraction", "fused_s_per_step", "eager_s_per_step", "bytes_per_step",
              "triad_GBps", "kernel_only_s_per_step", "bytes_formula", "machine", "versions", "git", "targets_met"):
        assert k in data, k
    for k in ("speedup_vs_eager", "bandwidth_fraction", "fused_s_per_step", "eager_s_per_step", "bytes_per_step",
              "triad_GBps", "kernel_only_s_per_step"):
        assert data[k] > 0, k
    assert data["bytes_per_step"] == common.bytes_per_step([4, 6, 3], 2, RULES["solsa"], 4)["bytes_per_step"]
    assert res["config"]["algo"] == "solsa"


@pytest.mark.parametrize("algo", ["eprop", "ottt"])
def test_bench_step_other_rules(tmp_path, algo):
    res = bench_step.main(["--T", "3", "--sizes", "4,6,3", "--batch", "2", "--repeats", "1", "--no-eager",
                           "--triad-mb", "4", "--algo", algo, "--json", str(tmp_path / "s.json")])
    assert res["fused_s_per_step"] > 0 and res["kernel_only_s_per_step"] > 0


def test_every_contender_builds_and_trains():
    a = run.parse(["--quick", "--workloads", "tiny", "--steps", "3", "--eager-steps", "2"])
    for name in run.CONTENDERS:
        if name in peers.PEERS and peers.available(name):
            continue  # peer library not installed here
        r = run.build(name, run.WORKLOADS["tiny"], a, torch.device("cpu"), torch.float32)
        r.run()
        assert r.timed_steps > 0


def test_online_contenders_update_equally_often_per_step():
    """The eager reference is timed on fewer steps than the fused path; its optimizer must
    still step once per steps/K time steps, not K times in its short window."""
    a = run.parse(["--steps", "100", "--eager-steps", "10", "--K", "10"])
    wl = {"sizes": [4, 6, 3], "T": 200}
    assert run.update_count(wl, run.timed_steps("solsa_fused", wl, a), a) == 10
    assert run.update_count(wl, run.timed_steps("solsa_eager", wl, a), a) == 1
    assert run.update_count(wl, run.timed_steps("sj_ottt", wl, a), a) == 10
    assert run.update_count(wl, 3, a) == 1  # never below one update
    assert "Adam at K=1 " in run.build("solsa_eager", wl, a, torch.device("cpu"), torch.float32).notes


def test_suite_json_and_markdown(tmp_path):
    js, md = tmp_path / "suite.json", tmp_path / "suite.md"
    run.main(["--suite", "cpu", "--quick", "--in-process", "--workloads", "tiny", "--contenders",
              "solsa_fused,solsa_eager", "--json", str(js), "--md", str(md)])
    data = json.loads(js.read_text())
    for k in ("machine", "versions", "git", "bandwidth", "workloads", "config"):
        assert k in data, k
    c = data["workloads"]["tiny"]["contenders"]
    for k in ("solsa_fused", "solsa_eager"):
        assert "error" not in c[k], c[k]
        assert c[k]["sample_steps_per_s"] > 0
        assert c[k]["peak_memory_bytes"] >= 0
    assert c["solsa_fused"]["bandwidth_fraction"] > 0
    assert any(t["target"].startswith("solsa_fused >= 10x") for t in data["workloads"]["tiny"]["targets"])
    text = md.read_text()
    assert "| contender |" in text and "solsa_fused" in text
    # --render rewrites the Markdown from the JSON alone
    md2 = tmp_path / "again" / "suite.md"
    run.main(["--render", str(js), "--md", str(md2)])
    assert md2.read_text() == text


# --------------------------------------------------------------------------- input validation
def _usage_error(capsys, fn, argv, flag):
    """``fn(argv)`` must exit 2 (argparse style) before any work, naming ``flag``."""
    with pytest.raises(SystemExit) as e:
        fn(argv)
    assert e.value.code == 2, e.value.code
    err = capsys.readouterr().err
    assert flag in err, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def no_timing(monkeypatch):
    """Fail loudly if anything is measured: bad arguments must be rejected first."""
    def boom(*a, **k):
        raise AssertionError("timing started before the arguments were checked")
    monkeypatch.setattr(common, "triad_bandwidth", boom)
    monkeypatch.setattr(common, "copy_bandwidth", boom)
    monkeypatch.setattr(common, "time_once", boom)


@pytest.mark.parametrize("flag,value", [
    ("--segment", "-2"), ("--segment", "0"), ("--eager-steps", "-1"), ("--eager-steps", "0"), ("--T", "0"),
    ("--T", "-3"), ("--batch", "0"), ("--triad-mb", "0"), ("--repeats", "0"), ("--eager-repeats", "0"),
    ("--threads", "0"), ("--spike-density", "2"), ("--spike-density", "0"), ("--spike-density", "x"),
    ("--sizes", "4,-8,3"), ("--sizes", "4,a,3"), ("--sizes", "4"), ("--sizes", "4,0,3"), ("--sizes", "4,,3"),
    ("--dtype", "float16"), ("--algo", "bogus"),
])
def test_bench_step_rejects_bad_values(capsys, no_timing, flag, value):
    base = ["--sizes", "4,8,3", "--T", "5", "--batch", "2", "--triad-mb", "4"]
    _usage_error(capsys, bench_step.main, base + [flag, value], flag)


def test_parse_sizes_strict():
    assert common.parse_sizes("8,200,200,10") == [8, 200, 200, 10]
    assert common.parse_sizes("8-200-200-10") == [8, 200, 200, 10]
    assert common.parse_sizes(" 4, 8 ,3 ") == [4, 8, 3]
    for bad in ("4,-8,3", "-4,8", "4,a,3", "4", "", "4,0,3", "4--8", "4,,3", "4.5,3"):
        with pytest.raises(argparse.ArgumentTypeError):
            common.parse_sizes(bad)


def test_output_paths_checked_before_timing(tmp_path, capsys, no_timing):
    afile = tmp_path / "x.md"
    afile.write_text("a file, not a folder\n")
    _usage_error(capsys, bench_step.main, ["--sizes", "4,8,3", "--T", "5", "--batch", "2",
                                           "--json", str(afile / "x.json")], "--json")
    _usage_error(capsys, bench_step.main, ["--T", "5", "--json", str(tmp_path)], "--json")
    q = ["--workloads", "tiny", "--quick", "--no-memory", "--in-process"]
    _usage_error(capsys, run.main, q + ["--json", str(afile / "x.json")], "--json")
    _usage_error(capsys, run.main, q + ["--md", str(afile / "sub" / "x.md")], "--md")
    _usage_error(capsys, run.main, q + ["--md", str(tmp_path)], "--md")
    # a parent that does not exist yet is fine (it is created when writing)
    assert common.output_path_problem(str(tmp_path / "new" / "dir" / "x.json")) is None
    assert common.output_path_problem("-") is None


def test_bench_step_segment_runs_all_steps(tmp_path, monkeypatch):
    res = bench_step.main(["--T", "5", "--sizes", "4,6,3", "--batch", "2", "--repeats", "1", "--eager-repeats", "1",
                           "--triad-mb", "4", "--segment", "2", "--json", str(tmp_path / "s.json")])
    assert res["segment_length"] == 2 and res["segment_s_per_step"] > 0
    assert bench_step.parse_args(["--T", "9"]).segment is None  # omitted: T//4 in main
    x = torch.zeros(2, 4, 5)
    with pytest.raises(ValueError):
        bench_step._segment_sequence(None, x, None, 5, 0)
    # a segment run that does no work must not yield a headline figure
    real = bench_step._segment_sequence

    def lazy(eng, x, target, steps, seg):
        real(eng, x, target, steps, seg)  # its argument checks

        def run():
            run.steps_done = 0  # processes nothing
        run.steps_done = 0
        return run
    monkeypatch.setattr(bench_step, "_segment_sequence", lazy)
    with pytest.raises(RuntimeError, match="segment run processed 0 of 5"):
        bench_step.main(["--T", "5", "--sizes", "4,6,3", "--batch", "2", "--repeats", "1", "--eager-repeats", "1",
                         "--triad-mb", "4", "--json", str(tmp_path / "t.json")])


@pytest.mark.parametrize("argv,flag", [
    (["--steps", "-1"], "--steps"), (["--steps", "0"], "--steps"), (["--batch", "0"], "--batch"),
    (["--repeats", "0"], "--repeats"), (["--eager-steps", "0"], "--eager-steps"), (["--K", "0"], "--K"),
    (["--bptt-steps", "-2"], "--bptt-steps"), (["--peer-steps", "0"], "--peer-steps"),
    (["--threads", "0"], "--threads"), (["--bptt-mem-gb", "0"], "--bptt-mem-gb"), (["--timeout", "-1"], "--timeout"),
    (["--dtype", "float16"], "--dtype"), (["--workloads", ""], "--workloads"), (["--workloads", ","], "--workloads"),
    (["--workloads", "nope"], "--workloads"), (["--contenders", ""], "--contenders"),
    (["--contenders", "nope"], "--contenders"),
])
def test_run_rejects_bad_values(capsys, no_timing, argv, flag):
    base = ["--workloads", "tiny", "--quick", "--no-memory", "--in-process"]
    _usage_error(capsys, run.main, base + argv, flag)


def test_run_quick_defaults_only_when_omitted():
    a = run.parse(["--quick", "--steps", "7", "--repeats", "2"])
    assert (a.steps, a.repeats, a.eager_steps) == (7, 2, 3)
    a = run.parse([])
    assert (a.steps, a.repeats, a.eager_steps) == (200, 3, 10)


def test_render_errors(tmp_path, capsys):
    md = str(tmp_path / "r.md")
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"a": 1}\n')
    notjson = tmp_path / "n.txt"
    notjson.write_text("not json\n")
    lst = tmp_path / "l.json"
    lst.write_text("[1, 2]\n")
    for src in (bogus, notjson, lst, tmp_path / "missing.json", tmp_path):
        _usage_error(capsys, run.main, ["--render", str(src), "--md", md], "--render")
    _usage_error(capsys, run.main, ["--render", str(bogus)], "--render")  # no output asked for
    assert not Path(md).exists()


@pytest.mark.parametrize("rule", ["eprop", "solsa", "ottt"])
def test_bench_learn_segment_times_real_calls(rule, tmp_path):
    out = tmp_path / "b.json"
    res = bench_learn_segment.main(["--rule", rule, "--n-in", "5", "--n-out", "3", "--batch", "2", "--seg", "3",
                                    "--calls", "2", "--json", str(out)])
    assert res["us_per_call"] > 0 and len(res["us_per_call_blocks"]) == 5
    assert json.loads(out.read_text())["config"]["rule"] == rule


@pytest.mark.parametrize("flag,value", [("--n-in", "0"), ("--seg", "-1"), ("--density", "2"), ("--rule", "bogus"),
                                        ("--calls", "0")])
def test_bench_learn_segment_rejects_bad_values(capsys, flag, value):
    _usage_error(capsys, bench_learn_segment.main, [flag, value], flag)
