"""The benchmark suite: solsa-ext's online learners vs its eager reference, its BPTT and
the peers (snnTorch, SpikingJelly) on the paper's networks.

    python benchmarks/run.py --suite cpu --json bench.json --md bench.md [--quick]
        [--workloads BasicMotions,EMG] [--contenders solsa_fused,snntorch_leaky_bptt]
        [--steps N] [--bptt-steps N] [--peer-steps N] [--eager-steps N] [--repeats R] [--K 10]

One worker process per workload times every contender there, interleaved (a, b, c, a, b,
c, ...) so ratios are measured under the same background load; medians are reported.
Peak memory is measured separately: on CPU each contender trains one sequence in its
own child process and reports VmHWM minus its VmRSS after imports and after building the
model and the data (the high-water mark is reset first through /proc/self/clear_refs);
on CUDA, ``torch.cuda.max_memory_allocated`` above the allocation before the run.

Training = forward + learning + the optimizer (Adam; for every contender built and stepped
as the Trainer does it: torch's fused Adam, ``common.adam``, stepped by
``solsa_ext.optim.fast_step``, ``common.adam_step``) at the update points: the online
learners and SpikingJelly's OTTT step at K evenly spaced points of the ``--steps`` window
(a contender timed on a shorter window, the eager reference, at K scaled to it: the same
number of optimizer steps per time step for every online learner), the BPTT contenders
once at the end. The per-step loss is ``0.5*sum((O_top - target)^2)``
(ours: ``dEdO = O_top - target``). Online learners cost the same per step at any T, so
they are timed over the first ``--steps`` steps; BPTT's memory grows with T, so it is
timed on a sequence of ``--bptt-steps`` / ``--peer-steps`` steps, and the table says how
many steps every number comes from.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: an explicit one wins

import torch

from benchmarks import common, peers
from benchmarks.peers import Runner

#: the paper's networks: layer sizes (input first) and sequence length
WORKLOADS: dict[str, dict[str, Any]] = {
    "BasicMotions": {"sizes": [6, 100, 100, 4], "T": 100},
    "SelfRegulationSCP1": {"sizes": [6, 100, 100, 2], "T": 896},
    "EMG": {"sizes": [8, 200, 200, 10], "T": 1000},
    "DVS128": {"sizes": [4096, 100, 100, 11], "T": 100, "spike_density": 0.05},
}
PAPER_WORKLOADS = tuple(WORKLOADS)
#: not in the default list: a few-second smoke workload (python_tests/test_benchmarks.py)
WORKLOADS["tiny"] = {"sizes": [4, 8, 3], "T": 8}

OURS = ("solsa_fused", "eprop_fused", "ottt_fused", "solsa_eager", "ours_bptt")
CONTENDERS = OURS + peers.PEERS
PEER_BPTT = ("snntorch_synaptic_bptt", "snntorch_leaky_bptt", "sj_lif_bptt")

DESCRIPTION = {
    "solsa_fused": "ours: SOLSA, fused kernels (per-synapse filter, learned decay/gain, reset in trace)",
    "eprop_fused": "ours: e-prop, fused kernels (no filter, per-synapse trace)",
    "ottt_fused": "ours: OTTT, fused kernels (no filter, presynaptic trace)",
    "solsa_eager": "ours: SOLSA, eager reference (solsa_ext.reference via OnlineEngine backend='reference')",
    "ours_bptt": "ours: BPTT, autograd through bptt.snn_forward (per-synapse filter), Adam at the end",
    "snntorch_synaptic_bptt": "snnTorch Synaptic (per-neuron synaptic current), BPTT",
    "snntorch_leaky_bptt": "snnTorch Leaky + nn.Linear (no synaptic filter), BPTT",
    "sj_lif_bptt": "SpikingJelly LIFNode(step_mode='m') multi-step, BPTT",
    "sj_ottt": "SpikingJelly OTTTLIFNode + OTTTSequential, online (OTTT)",
}

ALGO = {"solsa_fused": "solsa", "eprop_fused": "eprop", "ottt_fused": "ottt", "solsa_eager": "solsa"}
BPTT_SAVED_WORDS = 8  # per synapse per sample per step kept by autograd in ours_bptt (estimate for the step cap)


# --------------------------------------------------------------------------- settings
def timed_steps(name: str, wl: dict[str, Any], a: argparse.Namespace) -> int:
    """How many steps of the sequence a contender is timed on (see the module doc)."""
    T = wl["T"]
    if name in ("solsa_fused", "eprop_fused", "ottt_fused", "sj_ottt"):
        return min(T, a.steps or T)
    if name == "solsa_eager":
        return min(T, a.eager_steps)
    if name == "ours_bptt":
        S = sum(i * o for i, o in zip(wl["sizes"][:-1], wl["sizes"][1:]))
        cap = int(a.bptt_mem_gb * 1e9 // max(1, BPTT_SAVED_WORDS * a.batch * S * 4))
        return max(2, min(T, a.bptt_steps or T, cap))
    return min(T, a.peer_steps or T)


def update_count(wl: dict[str, Any], steps: int, a: argparse.Namespace) -> int:
    """Update points of an online contender timed on ``steps`` steps: ``--K`` per window of
    the fused contenders (``--steps``), scaled to the contender's own window, so every online
    learner steps its optimizer equally often per time step. (The eager reference, timed on
    fewer steps, used to take --K updates in its short window: an optimizer step at every
    step, 10x the fused path's optimizer work per step.)"""
    ref = timed_steps("solsa_fused", wl, a)
    return max(1, round(a.K * steps / ref))


def build(name: str, wl: dict[str, Any], a: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> Runner:
    sizes, T = wl["sizes"], wl["T"]
    steps = timed_steps(name, wl, a)
    K = update_count(wl, steps, a)
    x, target = common.make_data(a.batch, sizes[0], T, sizes[-1], device, dtype, wl.get("spike_density"),
                                 layout=a.layout)
    if name not in OURS:
        return peers.build(name, sizes, x, target, steps, K)

    from solsa_ext import ops
    from solsa_ext.bptt import snn_forward
    from solsa_ext.engine import OnlineEngine
    from solsa_ext.neuron import NeuronConfig
    from solsa_ext.rule import RULES

    neuron = NeuronConfig()
    params = common.make_params(sizes, device, dtype, requires_grad=True)

    def clamp() -> None:
        with torch.no_grad():
            for p in params:
                p.decay.clamp_(0.0, 0.99)
                p.gain.clamp_(0.0, 2.0)

    if name == "ours_bptt":
        opt = common.adam([t for p in params for t in (p.w, p.decay, p.gain)], lr=1e-3)
        xs = x[:, :, :steps]

        def run_bptt() -> None:
            opt.zero_grad(set_to_none=True)
            out = snn_forward(xs, params, neuron, filter=True)       # (B, N_top, steps)
            loss = 0.5 * ((out - target[:, :, None]) ** 2).sum()
            loss.backward()
            common.adam_step(opt)
            clamp()

        note = "" if steps == T else f" (sequence cut to {steps} of T={T} steps: autograd keeps every step)"
        return Runner(name, run_bptt, steps, "per-synapse filter, Gaussian surrogate, BPTT, Adam once at the end" + note)

    rule = RULES[ALGO[name]]
    backend = "reference" if name == "solsa_eager" else "fused"
    eng = OnlineEngine(params, neuron, rule, backend=backend)
    tensors = [t for p in params for t in ((p.w, p.decay, p.gain) if rule.adaptive else (p.w,))]
    opt = common.adam(tensors, lr=1e-3)
    pts = common.update_points(steps, K)
    B = a.batch

    def update() -> None:
        for p, g in zip(params, eng.grads()):
            p.w.grad = g.w
            if rule.adaptive:
                p.decay.grad, p.gain.grad = g.decay, g.gain
        common.adam_step(opt)
        eng.zero_grads()
        if rule.adaptive:
            clamp()

    def run_online() -> None:
        with ops.input_checks(False):
            eng.reset(B)
            for t in range(steps):
                o = eng.forward(x[:, :, t])
                eng.backward(o - target)
                if t in pts:
                    update()

    ends = sorted(p + 1 for p in pts if p < steps)
    if not ends or ends[-1] != steps:
        ends.append(steps)

    def run_segments() -> None:
        # the Trainer's path: the steps between two update points as one time-blocked segment
        with ops.input_checks(False):
            eng.reset(B)
            t0 = 0
            for t1 in ends:
                eng.run_segment(x[:, :, t0:t1], lambda o: o - target)
                if t1 - 1 in pts:
                    update()
                t0 = t1

    if backend == "fused":
        return Runner(name, run_segments, steps, f"OnlineEngine.run_segment (fused), RULES[{ALGO[name]!r}], Adam at "
                      f"K={len(pts)} evenly spaced points (a segment per update interval)", {"rule": ALGO[name]})
    return Runner(name, run_online, steps, f"OnlineEngine({backend!r}), RULES[{ALGO[name]!r}], Adam at K={len(pts)} "
                  "evenly spaced points", {"rule": ALGO[name]})


# --------------------------------------------------------------------------- worker
def worker(a: argparse.Namespace) -> dict[str, Any]:
    """Time every contender of one workload in this process (interleaved)."""
    device = torch.device(a.device)
    dtype = common.parse_dtype(a.dtype)
    wl = WORKLOADS[a.workload]
    runners: dict[str, Runner] = {}
    results: dict[str, dict[str, Any]] = {}
    for name in a.contenders:
        res: dict[str, Any] = {"description": DESCRIPTION[name]}
        why = peers.available(name) if name in peers.PEERS else None
        if why:
            res["skipped"] = why
        else:
            try:
                r = build(name, wl, a, device, dtype)
                r.run()                                   # warm-up (allocator, lazy init)
                runners[name] = r
                res.update({"timed_steps": r.timed_steps, "notes": r.notes})
            except Exception as exc:
                res["error"] = f"{type(exc).__name__}: {exc}"
                res["traceback"] = traceback.format_exc(limit=3)
        results[name] = res
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(a.repeats):
        for k, r in runners.items():
            try:
                times[k].append(common.time_once(r.run, device))
            except Exception as exc:
                results[k]["error"] = f"{type(exc).__name__}: {exc}"
    for k, r in runners.items():
        ts = times[k]
        if not ts:
            continue
        med = common.median(ts)
        results[k].update({
            "times_s": ts, "median_s": med, "s_per_step": med / r.timed_steps,
            "sample_steps_per_s": a.batch * r.timed_steps / med,
        })
    if device.type == "cuda" and not a.no_memory:
        for k, r in runners.items():
            probe = common.PeakCUDA(device)
            probe.start()
            r.run()
            results[k]["peak_memory_bytes"] = probe.peak_bytes()
            results[k]["peak_memory_method"] = "torch.cuda.max_memory_allocated - allocated before the run"
    return {"workload": a.workload, "contenders": results, "loadavg": list(os.getloadavg())}


def mem_child(a: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of one contender training one sequence (run in its own process)."""
    device = torch.device(a.device)
    r = build(a.contenders[0], WORKLOADS[a.workload], a, device, common.parse_dtype(a.dtype))
    probe = common.PeakRSS()
    probe.start()
    r.run()
    return {"peak_memory_bytes": probe.peak_bytes(), "hwm_reset": probe.reset,
            "peak_memory_method": "VmHWM - VmRSS after imports and model/data build (child process)"}


# --------------------------------------------------------------------------- parent
def _child_args(a: argparse.Namespace, workload: str, contenders: list[str]) -> list[str]:
    out = ["--workload", workload, "--contenders", ",".join(contenders), "--device", a.device, "--dtype", a.dtype,
           "--batch", str(a.batch), "--repeats", str(a.repeats), "--K", str(a.K), "--eager-steps", str(a.eager_steps),
           "--bptt-mem-gb", str(a.bptt_mem_gb), "--layout", a.layout]
    for flag, v in (("--steps", a.steps), ("--bptt-steps", a.bptt_steps), ("--peer-steps", a.peer_steps),
                    ("--threads", a.threads)):
        if v:
            out += [flag, str(v)]
    if a.no_memory:
        out.append("--no-memory")
    return out


def _spawn(mode: str, a: argparse.Namespace, workload: str, contenders: list[str], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "out.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), mode, "--out", str(out)] + _child_args(a, workload, contenders)
        env = dict(os.environ)
        env["PYTHONPATH"] = (env["PYTHONPATH"] + os.pathsep if env.get("PYTHONPATH") else "") + str(common.ROOT)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if p.returncode != 0 or not out.exists():
            tail = (p.stderr or p.stdout)[-1500:]
            return {"error": f"exit {p.returncode}" + (" (killed: out of memory?)" if p.returncode < 0 else ""),
                    "stderr_tail": tail}
        return json.loads(out.read_text())


def _derive(res: dict[str, Any]) -> None:
    """(Re)compute the bandwidth figures and the targets of a suite result."""
    from solsa_ext.rule import RULES

    ref_GBps = res["bandwidth"]["GBps"]
    B = res["config"]["batch"]
    elem = torch.empty((), dtype=common.parse_dtype(res["config"]["dtype"])).element_size()
    for wname, wr in res["workloads"].items():
        if "contenders" not in wr:
            continue
        for k, r in wr["contenders"].items():
            if k in ALGO and k != "solsa_eager" and r.get("s_per_step"):
                nb = common.bytes_per_step(WORKLOADS[wname]["sizes"], B, RULES[ALGO[k]], elem)
                r["bytes_per_step"] = nb["bytes_per_step"]
                r["achieved_GBps"] = nb["bytes_per_step"] / r["s_per_step"] / 1e9
                r["bandwidth_fraction"] = r["achieved_GBps"] / ref_GBps
                # the most this contender can do at 100% of the bandwidth reference
                r["roofline_sample_steps_per_s"] = B * ref_GBps * 1e9 / nb["bytes_per_step"]
        wr["targets"] = targets(wr)


def targets(wl_res: dict[str, Any]) -> list[dict[str, Any]]:
    c = wl_res["contenders"]
    sps = lambda k: c.get(k, {}).get("sample_steps_per_s")  # noqa: E731
    out = []
    peer_bptt = {k: sps(k) for k in PEER_BPTT if sps(k)}
    all_peers = {k: sps(k) for k in peers.PEERS if sps(k)}
    if sps("solsa_fused") and peer_bptt:
        best = max(peer_bptt, key=peer_bptt.get)
        r = sps("solsa_fused") / peer_bptt[best]
        out.append({"target": "solsa_fused >= fastest peer BPTT", "ratio": r, "need": 1.0, "met": r >= 1.0,
                    "vs": best})
    if all_peers:
        best = max(all_peers, key=all_peers.get)
        for k in ("ottt_fused", "eprop_fused"):
            if sps(k):
                r = sps(k) / all_peers[best]
                out.append({"target": f"{k} >= 3x fastest peer", "ratio": r, "need": 3.0, "met": r >= 3.0, "vs": best})
    if sps("solsa_fused") and sps("solsa_eager"):
        r = sps("solsa_fused") / sps("solsa_eager")
        out.append({"target": "solsa_fused >= 10x solsa_eager", "ratio": r, "need": 10.0, "met": r >= 10.0,
                    "vs": "solsa_eager"})
    for k in ("solsa_fused", "eprop_fused"):
        f = c.get(k, {}).get("bandwidth_fraction")
        if f is not None:
            out.append({"target": f"{k} >= 50% of measured bandwidth", "ratio": f, "need": 0.5, "met": f >= 0.5,
                        "vs": "bandwidth reference"})
    return out


def markdown(res: dict[str, Any]) -> str:
    m, v, g = res["machine"], res["versions"], res["git"]
    lines = [f"# solsa-ext benchmark suite ({res['suite']})" + (" — partial (still running or interrupted)"
                                                              if res.get("partial") else ""), ""]
    lines.append(f"- machine: {m.get('cpu')} ({m.get('logical_cpus')} logical CPUs, {m.get('mem_total_GB')} GB"
                 + (f", {m['gpu']}" if m.get("gpu") else "") + f"), torch threads {m.get('torch_threads')}, "
                 f"caches {m.get('caches')}, load average at start {m.get('loadavg_at_start')}")
    lines.append(f"- versions: torch {v['torch']}, snntorch {v['snntorch']}, spikingjelly {v['spikingjelly']}, "
                 f"python {v['python']}; git {g['commit']}" + (" (dirty)" if g.get("dirty") else ""))
    bw = res["bandwidth"]
    lines.append(f"- bandwidth reference: {bw['reference']} = {bw['GBps']:.1f} GB/s")
    cfg = res["config"]
    lines.append(f"- batch {cfg['batch']}, {cfg['dtype']}, K={cfg['K']} update points per --steps window for online "
                 f"learners (scaled to shorter windows), "
                 f"{cfg['repeats']} interleaved repetitions (median), input layout {cfg['layout']}"
                 f"{', quick mode' if cfg['quick'] else ''}")
    lines.append(f"- command: `{' '.join(res['argv'])}`")
    lines.append("")
    for wname, wr in res["workloads"].items():
        wl = WORKLOADS[wname]
        lines.append(f"## {wname}: {'-'.join(map(str, wl['sizes']))}, T={wl['T']}"
                     + (f", spike input density {wl['spike_density']}" if wl.get("spike_density") else ""))
        lines.append("")
        if "error" in wr:
            lines.append(f"worker failed: {wr['error']}")
            lines.append("")
            continue
        c = wr["contenders"]
        ref = c.get("solsa_fused", {}).get("sample_steps_per_s")
        rows = []
        for k, r in c.items():
            if "skipped" in r or "error" in r:
                rows.append([k, r.get("skipped") or r.get("error"), None, None, None, None, None, None])
                continue
            sps = r.get("sample_steps_per_s")
            rows.append([k, r.get("notes", ""), f"{r.get('timed_steps')}/{wl['T']}", sps,
                         (sps / ref) if (sps and ref) else None,
                         common.human_bytes(r.get("peak_memory_bytes")) if r.get("peak_memory_bytes") is not None
                         else r.get("memory_error", "—"),
                         r.get("bandwidth_fraction"), r.get("roofline_sample_steps_per_s")])
        lines.append(common.md_table(["contender", "configuration / what differs", "timed steps / T",
                                      "sample-steps/s", "vs solsa_fused", "peak memory", "BW fraction",
                                      "roofline sample-steps/s"], rows))
        lines.append("")
        tg = wr.get("targets", [])
        if tg:
            lines.append(common.md_table(["target", "measured", "needed", "met", "against"],
                                         [[t["target"], t["ratio"], t["need"], t["met"], t["vs"]] for t in tg]))
            lines.append("")
    lines.append("Notes: " + res["notes"])
    return "\n".join(lines) + "\n"


def parse(argv=None) -> argparse.Namespace:
    """The command line. Bad values (a count below 1, an unknown dtype/workload/contender,
    an empty --workloads, an output path that cannot be written, --render without an
    output) are rejected here, before anything is timed: exit 2, a message naming the flag."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pos, posf = common.positive_int, common.positive_float
    ap.add_argument("--suite", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--json", default=None, help="write the results here (checked before any timing)")
    ap.add_argument("--md", default=None, help="write the Markdown report here (checked before any timing)")
    ap.add_argument("--quick", action="store_true", help="few steps, one repetition (smoke run)")
    ap.add_argument("--workloads", default=",".join(PAPER_WORKLOADS),
                    help=f"comma-separated, at least one of {list(WORKLOADS)}")
    ap.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, at least one")
    ap.add_argument("--batch", type=pos, default=32, help="batch size (>= 1)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--threads", type=pos, default=None, help="torch.set_num_threads (>= 1; default: torch's)")
    ap.add_argument("--K", type=pos, default=10, help="update points of the online learners (>= 1)")
    ap.add_argument("--steps", type=pos, default=None,
                    help="steps (>= 1) timed for online learners (omitted: 200, quick 10)")
    ap.add_argument("--eager-steps", type=pos, default=None,
                    help="steps (>= 1) timed for the eager reference (omitted: 10, quick 3)")
    ap.add_argument("--bptt-steps", type=pos, default=None, help="sequence length (>= 1) for ours_bptt "
                    "(omitted: T, quick 10; capped by --bptt-mem-gb)")
    ap.add_argument("--bptt-mem-gb", type=posf, default=3.0, help="memory budget (> 0) that caps ours_bptt's sequence")
    ap.add_argument("--peer-steps", type=pos, default=None,
                    help="sequence length (>= 1) for the peers' BPTT (omitted: T, quick 10)")
    ap.add_argument("--repeats", type=pos, default=None,
                    help="interleaved repetitions (>= 1; omitted: 3, quick 1)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--layout", choices=("tbc", "bct"), default="tbc",
                    help="storage of the (B, C, T) input: time-major (default; each step's slice contiguous, "
                    "as the peers' (T, B, C)) or batch-major (step slices strided by T)")
    ap.add_argument("--timeout", type=posf, default=1800, help="seconds (> 0) per worker process")
    ap.add_argument("--in-process", action="store_true",
                    help="time and measure memory in this process instead of child processes (smoke tests)")
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="only rewrite --md (and derived fields of --json) from a suite JSON written before; "
                    "needs --md and/or --json")
    # internal
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mem-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workload", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--device", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.device = a.device or ("cuda" if a.suite == "gpu" else "cpu")
    if a.quick:
        for k, v in (("steps", 10), ("eager_steps", 3), ("bptt_steps", 10), ("peer_steps", 10), ("repeats", 1)):
            if getattr(a, k) is None:
                setattr(a, k, v)
    a.steps = 200 if a.steps is None else a.steps
    a.eager_steps = 10 if a.eager_steps is None else a.eager_steps
    a.repeats = 3 if a.repeats is None else a.repeats
    a.contenders = [c.strip() for c in a.contenders.split(",") if c.strip()]
    if not a.contenders:
        ap.error(f"argument --contenders: no contender given; choose from {list(CONTENDERS)}")
    bad = [c for c in a.contenders if c not in CONTENDERS]
    if bad:
        ap.error(f"argument --contenders: unknown {bad}; choose from {list(CONTENDERS)}")
    a.workloads_list = [w.strip() for w in a.workloads.split(",") if w.strip()]
    if not a.workloads_list and not a.render:
        ap.error(f"argument --workloads: no workload given; choose from {list(WORKLOADS)}")
    bad = [w for w in a.workloads_list if w not in WORKLOADS]
    if bad:
        ap.error(f"argument --workloads: unknown {bad}; choose from {list(WORKLOADS)}")
    if a.worker or a.mem_child:
        if a.workload not in WORKLOADS or not a.out:
            ap.error("--worker/--mem-child need --workload (a known workload) and --out")
        return a
    if a.render is not None and not (a.md or a.json):
        ap.error("argument --render: nothing to write: give --md and/or --json")
    common.check_outputs(ap, json=a.json, md=a.md)
    if a.render is not None:
        a.render_data = _load_suite(ap, a.render)
    return a


#: top-level keys of a suite JSON that --render needs
SUITE_KEYS = ("suite", "machine", "versions", "git", "argv", "bandwidth", "config", "workloads")


def _load_suite(ap: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """Read and check a suite JSON for --render (``ap.error``, exit 2, when it is not one):
    the derived fields and the Markdown are computed here, so a bad file fails before
    anything is written."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        ap.error(f"argument --render: cannot read {path!r}: {exc.strerror if isinstance(exc, OSError) else exc}")
    try:
        res = json.loads(text)
    except json.JSONDecodeError as exc:
        ap.error(f"argument --render: {path!r} is not JSON ({exc})")
    if not isinstance(res, dict):
        ap.error(f"argument --render: {path!r} is not a suite JSON written by run.py (top level is not an object)")
    missing = [k for k in SUITE_KEYS if k not in res]
    if missing:
        ap.error(f"argument --render: {path!r} is not a suite JSON written by run.py (missing {missing})")
    if not isinstance(res["workloads"], dict) or any(w not in WORKLOADS for w in res["workloads"]):
        ap.error(f"argument --render: {path!r}: 'workloads' must map known workloads {list(WORKLOADS)} to results")
    try:
        _derive(res)
        res.setdefault("notes", "")
        markdown(res)
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
        ap.error(f"argument --render: {path!r} is not a well-formed suite JSON ({type(exc).__name__}: {exc})")
    return res


def main(argv=None) -> dict[str, Any]:
    a = parse(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.worker or a.mem_child:
        res = worker(a) if a.worker else mem_child(a)
        Path(a.out).write_text(json.dumps(common._clean(res)))
        return res

    if a.render is not None:
        res = a.render_data  # read, checked and derived by parse()
        if a.md:
            Path(a.md).parent.mkdir(parents=True, exist_ok=True)
            Path(a.md).write_text(markdown(res))
        if a.json:
            common.write_json(a.json, res)
        return res
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--suite gpu: no CUDA device visible to torch")
    t0 = time.time()
    res: dict[str, Any] = {"suite": a.suite, **common.header(device)}
    res["config"] = {"batch": a.batch, "dtype": a.dtype, "K": a.K, "repeats": a.repeats, "quick": a.quick,
                     "steps": a.steps, "eager_steps": a.eager_steps, "bptt_steps": a.bptt_steps,
                     "bptt_mem_gb": a.bptt_mem_gb, "peer_steps": a.peer_steps, "contenders": a.contenders,
                     "layout": a.layout}
    triad_mb = 64 if a.quick else 256
    if device.type == "cuda":
        cp = common.copy_bandwidth(device, mb=256 if a.quick else 1024)
        tr = common.triad_bandwidth(device, triad_mb)
        res["bandwidth"] = {"reference": "device-to-device copy_", "GBps": cp["GBps"], "copy": cp, "triad": tr}
    else:
        tr = common.triad_bandwidth(device, triad_mb)
        res["bandwidth"] = {"reference": "STREAM-like triad (torch.add(b, c, alpha=s, out=a))", "GBps": tr["GBps"],
                            "triad": tr}
    res["workloads"] = {}
    for wname in a.workloads_list:
        print(f"[run.py] {wname}: timing {len(a.contenders)} contenders ...", flush=True)
        if a.in_process:
            wa = parse(_child_args(a, wname, a.contenders))
            wr = json.loads(json.dumps(common._clean(worker(wa))))
        else:
            wr = _spawn("--worker", a, wname, a.contenders, a.timeout)
        if "contenders" in wr:
            if device.type == "cpu" and not a.no_memory:
                for k, r in wr["contenders"].items():
                    if "skipped" in r or "error" in r:
                        continue
                    if a.in_process:  # peak of this process: less exact (allocator caches), for smoke tests
                        m = mem_child(parse(_child_args(a, wname, [k])))
                    else:
                        m = _spawn("--mem-child", a, wname, [k], a.timeout)
                    if "peak_memory_bytes" in m:
                        r.update(m)
                    else:
                        r["memory_error"] = m.get("error")
        res["workloads"][wname] = wr
        _derive(res)
        _write(a, res, partial=True)  # results so far survive an interrupted suite
        for t in wr.get("targets", []):
            print(f"[run.py]   {t['target']}: {t['ratio']:.3g} (need {t['need']}) -> {'met' if t['met'] else 'MISSED'}",
                  flush=True)
    res["wall_s"] = time.time() - t0
    _write(a, res, partial=False)
    print(f"[run.py] done in {res['wall_s']:.0f} s", flush=True)
    return res


def _write(a: argparse.Namespace, res: dict[str, Any], partial: bool) -> None:
    res["partial"] = partial
    res["bytes_formula"] = common.BYTES_FORMULA
    res["notes"] = (
        "sample-steps/s = batch x timed steps / median wall time of one training sequence (forward, learning, "
        "optimizer). Online learners are timed on the first N steps (their per-step cost does not depend on T); "
        "BPTT contenders on a sequence of the stated length (their memory grows with it). BW fraction = bytes the "
        "fused kernels must move per step (bytes_formula) / time per step / bandwidth reference; OTTT moves almost "
        "no per-synapse bytes, so only SOLSA and e-prop are held to the bandwidth target. CPU peak memory: child "
        "process, VmHWM above the RSS after imports and model/data build. Timings on a shared machine are noisy: "
        "ratios come from one worker process per workload with interleaved repetitions."
    )
    if partial and a.json in (None, "-"):
        return
    common.write_json(a.json, res)
    if a.md:
        Path(a.md).parent.mkdir(parents=True, exist_ok=True)
        Path(a.md).write_text(markdown(res))


if __name__ == "__main__":
    main()
