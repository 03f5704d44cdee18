"""Smoke tests of the benchmark scripts on tiny sizes: they run, their JSON has the keys,
the values are positive. No timing assertions (the machine is shared and noisy)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from benchmarks import bench_step, common, peers, run  # noqa: E402
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
