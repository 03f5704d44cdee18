"""One full SOLSA training sequence: fused kernels vs the eager reference, and the roofline.

    python benchmarks/bench_step.py --json OUT.json [--device cpu|cuda] [--batch 32] [--T 200]
        [--sizes 8,200,200,10] [--threads N] [--dtype float32] [--algo solsa] [--segment N]

Every count (--batch, --T, --repeats, --eager-repeats, --eager-steps, --segment,
--triad-mb, --threads) must be a positive integer, --spike-density in (0, 1]; bad values
and an unwritable --json are rejected before anything is timed (exit 2).

Measured in one process, interleaved (fused, eager, fused, eager, ...), medians reported:

- ``fused``: ``OnlineEngine(backend="fused")`` (torch.ops.solsa.step/learn/spatial_error)
  running T steps of forward + traces + gradients of every layer, with a per-step loss
  derivative ``dEdO = O_top - target``; input checks off, as the Trainer runs it.
- ``segment``: ``OnlineEngine.run_segment`` (torch.ops.solsa.forward_segment/learn_segment):
  the same T steps in segments of --segment steps (the steps between two update points;
  --segment must be >= 1; omitted, it is max(1, T//4), i.e. the Trainer's default K=4),
  each per-synapse row kept in cache across a segment's steps. This is the path the
  Trainer trains with (main checks that its timed runs processed all T steps).
- ``eager``: the same driver with ``OnlineEngine(backend="reference")``, i.e. the eager
  PyTorch functions of ``solsa_ext.reference`` (layer_step_ref / learn_ref /
  spatial_error_ref, the bodies of ``solsa_ref``'s loop) on the same inputs.
- ``kernel_only``: the same T steps calling ``solsa_ext._C`` directly with prebuilt
  params structs (no torch.library dispatch, no Python checks): the kernels' own time;
  ``fused - kernel_only`` is the Python/dispatch overhead.
- the memory bandwidth reference: CPU, a STREAM-like triad ``a = b + s*c`` with torch ops
  (3 arrays of --triad-mb MB, best of 7); CUDA, a device-to-device ``copy_`` (and the triad).
- ``bytes_per_step``: what the kernels must move per step, from their contracts
  (benchmarks/common.py BYTES_FORMULA, also written into the JSON).

No optimizer step is taken here (run.py's suite includes the updates).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: an explicit one wins

import torch

from benchmarks import common


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pos = common.positive_int
    ap.add_argument("--json", default=None, help="write the results here (default: print them); checked before "
                    "any timing: its parent must be (or be creatable as) a writable directory")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--batch", type=pos, default=32, help="batch size (>= 1)")
    ap.add_argument("--T", type=pos, default=200, help="sequence length, steps (>= 1)")
    ap.add_argument("--sizes", type=common.parse_sizes, default="8,200,200,10",
                    help="layer sizes incl. input, >= 2 positive integers separated by ',' (EMG-action network)")
    ap.add_argument("--threads", type=pos, default=None, help="torch.set_num_threads (>= 1; default: torch's)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--algo", default="solsa", help="a key of solsa_ext.rule.RULES")
    ap.add_argument("--segment", type=pos, default=None,
                    help="segment length (>= 1) of the run_segment path; omitted: max(1, T//4), i.e. the "
                    "Trainer's default K=4 update points")
    ap.add_argument("--repeats", type=pos, default=5, help="timed repetitions of the fused sequence (>= 1)")
    ap.add_argument("--eager-repeats", type=pos, default=3, help="timed repetitions of the eager sequence (>= 1)")
    ap.add_argument("--eager-steps", type=pos, default=None,
                    help="time only the first N >= 1 steps of the eager reference (capped at T; default: all T)")
    ap.add_argument("--no-eager", action="store_true", help="skip the eager reference")
    ap.add_argument("--triad-mb", type=pos, default=256, help="MB per triad array (>= 1)")
    ap.add_argument("--layout", choices=("tbc", "bct"), default="tbc",
                    help="input storage: time-major (x[:, :, t] contiguous) or (B, C, T) contiguous")
    ap.add_argument("--spike-density", type=common.density, default=None,
                    help="Bernoulli spike input of this density, in (0, 1] (default: currents)")
    args = ap.parse_args(argv)
    from solsa_ext.rule import RULES

    if args.algo not in RULES:
        ap.error(f"argument --algo: invalid choice: {args.algo!r} (choose from {sorted(RULES)})")
    common.check_outputs(ap, json=args.json)
    return args


def _engine_sequence(eng, x: torch.Tensor, target: torch.Tensor, steps: int) -> Callable[[], None]:
    from solsa_ext import ops

    B = x.shape[0]

    def run() -> None:
        done = 0
        with ops.input_checks(False):
            eng.reset(B)
            for t in range(steps):
                o = eng.forward(x[:, :, t])
                eng.backward(o - target)
                done += 1
        run.steps_done = done  # type: ignore[attr-defined]

    run.steps_done = 0  # type: ignore[attr-defined]
    return run


def _segment_sequence(eng, x: torch.Tensor, target: torch.Tensor, steps: int, seg: int) -> Callable[[], None]:
    """``steps`` steps in segments of ``seg``; the returned function records the steps its
    last call processed in ``run.steps_done`` (main checks it: no figure from zero work)."""
    from solsa_ext import ops

    if seg < 1 or steps < 1 or steps > x.shape[2]:
        raise ValueError(f"segment run: need 1 <= steps <= T={x.shape[2]} and seg >= 1, got steps={steps}, seg={seg}")
    B = x.shape[0]

    def run() -> None:
        done = 0
        with ops.input_checks(False):
            eng.reset(B)
            for t0 in range(0, steps, seg):
                xs = x[:, :, t0:min(steps, t0 + seg)]
                eng.run_segment(xs, lambda o: o - target)
                done += xs.shape[2]
        run.steps_done = done  # type: ignore[attr-defined]

    run.steps_done = 0  # type: ignore[attr-defined]
    return run


def _checked_sequence(eng, x, target, steps) -> Callable[[], None]:
    B = x.shape[0]

    def run() -> None:
        eng.reset(B)
        for t in range(steps):
            o = eng.forward(x[:, :, t])
            eng.backward(o - target)

    return run


def kernel_only_loop(eng, x: torch.Tensor, steps: int) -> Callable[[], None]:
    """The same kernels for ``steps`` steps, called on ``solsa_ext._C`` with prebuilt params."""
    from solsa_ext import _C  # type: ignore[attr-defined]

    st = importlib.import_module("solsa_ext.ops.step")
    ln = importlib.import_module("solsa_ext.ops.learn")
    se = importlib.import_module("solsa_ext.ops.spatial_error")
    n, r = eng.neuron, eng.rule
    dev = x.device
    B = x.shape[0]
    eng.reset(B)
    eng._ensure_f_prev()  # what the first per-step forward() allocates
    layers = eng._fused
    params = eng.params
    mus = [torch.zeros(B, p.n_out, dtype=x.dtype, device=dev) for p in params]
    grads = eng.grads()
    calls = []
    inp = x[:, :, 0]
    for p, s in zip(params, layers):
        d = p.decay.detach() if r.filter else None
        g = p.gain.detach() if r.filter else None
        calls.append(("step", st._params(inp, p.w.detach(), d, g, s.F, s.F_prev, s.e, s.V, s.O, s.sg,
                                          n.lam, n.vth, n.sigma, r.reset_in_trace)))
        s.x = inp
        inp = s.O
    for l in range(len(params) - 1, -1, -1):
        p, s, gr = params[l], layers[l], grads[l]
        calls.append(("learn", ln._params(mus[l], s.e, gr.w, s.x if r.adaptive else None,
                                          p.w.detach() if r.adaptive else None, s.F_prev, gr.decay, gr.gain, 0.5)))
        if l > 0:
            g = p.gain.detach() if r.filter else None
            calls.append(("spatial_error", se._params(mus[l], p.w.detach(), g, layers[l - 1].sg, mus[l - 1])))
    if dev.type == "cuda":
        stream = torch.cuda.current_stream(dev).cuda_stream
        fns = [(getattr(_C, f"{k}_cuda"), pp, stream) for k, pp in calls]
    else:
        nt = torch.get_num_threads()
        fns = [(getattr(_C, f"{k}_cpu"), pp, nt) for k, pp in calls]

    keep = (eng, mus, x)  # the params structs hold raw pointers into these: keep them alive

    def run() -> None:
        assert keep
        for _ in range(steps):
            for f, pp, a in fns:
                f(pp, a)

    return run


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    dtype = common.parse_dtype(args.dtype)
    sizes = list(args.sizes)

    from solsa_ext.engine import OnlineEngine
    from solsa_ext.neuron import NeuronConfig
    from solsa_ext.rule import RULES

    if args.algo not in RULES:
        raise SystemExit(f"--algo {args.algo!r}: choose one of {sorted(RULES)}")
    rule = RULES[args.algo]
    neuron = NeuronConfig()
    B, T = args.batch, args.T
    elem = torch.empty((), dtype=dtype).element_size()

    result: dict[str, Any] = common.header(device)
    result["config"] = {
        "algo": args.algo, "rule": vars(rule) if hasattr(rule, "__dict__") else str(rule),
        "sizes": sizes, "batch": B, "T": T, "dtype": args.dtype, "device": str(device),
        "threads": torch.get_num_threads(), "neuron": vars(neuron),
        "loss": "per-step dEdO = O_top - target (one-hot target); gradients accumulated, no optimizer step",
        "eager_impl": "OnlineEngine(backend='reference'): solsa_ext.reference.layer_step_ref/learn_ref/"
                      "spatial_error_ref, same driver loop as the fused run",
        "input": "spikes, density %g" % args.spike_density if args.spike_density is not None else "currents N(0, 1.5^2)",
        "input_layout": args.layout,
    }

    # bandwidth reference first (needs 3 x triad_mb free), then again at the end: best of both
    bw = {"triad": common.triad_bandwidth(device, args.triad_mb)}
    if device.type == "cuda":
        bw["copy"] = common.copy_bandwidth(device)

    params = common.make_params(sizes, device, dtype)
    x, target = common.make_data(B, sizes[0], T, sizes[-1], device, dtype, args.spike_density, layout=args.layout)
    fused = OnlineEngine(params, neuron, rule, backend="fused")
    fused_run = _engine_sequence(fused, x, target, T)
    seg = args.segment if args.segment is not None else max(1, T // 4)
    fns = {"fused": fused_run,
           "segment": _segment_sequence(OnlineEngine(params, neuron, rule, backend="fused"), x, target, T, seg)}
    eager_steps = min(T, args.eager_steps) if args.eager_steps is not None else T
    if not args.no_eager:
        eager = OnlineEngine(params, neuron, rule, backend="reference")
        fns["eager"] = _engine_sequence(eager, x, target, eager_steps)

    # warm up, then interleave
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(max(args.repeats, args.eager_repeats)):
        if i < args.repeats:
            times["fused"].append(common.time_once(fns["fused"], device))
            times["segment"].append(common.time_once(fns["segment"], device))
        if "eager" in fns and i < args.eager_repeats:
            times["eager"].append(common.time_once(fns["eager"], device))

    # kernels alone, and the fused run with the per-call input checks on (the op's default)
    kern_eng = OnlineEngine(params, neuron, rule, backend="fused")
    kern = kernel_only_loop(kern_eng, x, T)
    kern()
    checked = _checked_sequence(OnlineEngine(params, neuron, rule, backend="fused"), x, target, T)
    checked()
    k_times, c_times = [], []
    for _ in range(max(1, args.repeats)):
        k_times.append(common.time_once(kern, device))
        times["fused"].append(common.time_once(fns["fused"], device))
    for _ in range(max(1, min(3, args.repeats))):
        c_times.append(common.time_once(checked, device))

    bw["triad_end"] = common.triad_bandwidth(device, args.triad_mb)
    triad_GBps = max(bw["triad"]["GBps"], bw["triad_end"]["GBps"])
    ref_GBps = max(bw["copy"]["GBps"], triad_GBps) if device.type == "cuda" else triad_GBps

    fused_s = common.median(times["fused"]) / T
    kern_s = common.median(k_times) / T
    nbytes = common.bytes_per_step(sizes, B, rule, elem)
    bps = nbytes["bytes_per_step"]
    result.update({
        "fused_s_per_step": fused_s,
        "fused_s_per_step_all": [t / T for t in times["fused"]],
        "kernel_only_s_per_step": kern_s,
        "python_overhead_s_per_step": max(0.0, fused_s - kern_s),
        "fused_checked_s_per_step": common.median(c_times) / T,
        "bytes_per_step": bps,
        "bytes_detail": nbytes,
        "bytes_formula": nbytes["formula"],
        "per_synapse_state_bytes": common.per_synapse_state_bytes(sizes, B, rule, elem),
        "triad_GBps": triad_GBps,
        "bandwidth_reference_GBps": ref_GBps,
        "bandwidth_reference": "device copy_ (or triad, whichever higher)" if device.type == "cuda" else "triad",
        "bandwidth": bw,
        "achieved_GBps": bps / fused_s / 1e9,
        "bandwidth_fraction": bps / fused_s / 1e9 / ref_GBps,
        "kernel_only_bandwidth_fraction": bps / kern_s / 1e9 / ref_GBps,
        "sample_steps_per_s": B / fused_s,
        "loadavg_at_end": list(os.getloadavg()),
    })
    # the headline figure (speedup_vs_eager) comes from these runs: never from zero work
    expect = {"fused": T, "segment": T, "eager": eager_steps}
    for k, fn in fns.items():
        done = getattr(fn, "steps_done", None)
        if done != expect[k] or not times[k]:
            raise RuntimeError(f"bench_step: the {k} run processed {done} of {expect[k]} steps "
                               f"({len(times[k])} timed runs): refusing to report a figure from it")
    seg_s = common.median(times["segment"]) / T
    result.update({
        "segment_length": seg,
        "segment_s_per_step": seg_s,
        "segment_s_per_step_all": [t / T for t in times["segment"]],
        "segment_sample_steps_per_s": B / seg_s,
        "segment_speedup_vs_per_step_ops": fused_s / seg_s,
    })
    if "eager" in times:
        eager_s = common.median(times["eager"]) / eager_steps
        ratios = [e / eager_steps / (f / T) for e, f in zip(times["eager"], times["segment"])]
        result.update({
            "eager_s_per_step": eager_s,
            "eager_s_per_step_all": [t / eager_steps for t in times["eager"]],
            "eager_timed_steps": eager_steps,
            # the Trainer's path (run_segment) against the eager reference
            "speedup_vs_eager": eager_s / seg_s,
            "speedup_vs_eager_paired_median": common.median(ratios),
            "speedup_vs_eager_per_step_ops": eager_s / fused_s,
        })
    targets = {"bandwidth_fraction >= 0.5": result["bandwidth_fraction"] >= 0.5}
    if "speedup_vs_eager" in result:
        targets["speedup_vs_eager >= 10"] = result["speedup_vs_eager"] >= 10
    result["targets_met"] = targets
    result["notes"] = (
        "Medians of interleaved repetitions in one process. The per-synapse state "
        f"({common.human_bytes(result['per_synapse_state_bytes'])}) is compared with the last-level cache "
        f"({result['machine'].get('caches', {}).get('L3 cache', '?')}): when it fits, the 'must move' bytes are "
        "served partly from cache and bandwidth_fraction can exceed 1."
    )
    common.write_json(args.json, result)
    if args.json not in (None, "-"):
        summary = {k: result.get(k) for k in ("fused_s_per_step", "kernel_only_s_per_step", "segment_s_per_step",
                                             "eager_s_per_step",
                                             "speedup_vs_eager", "bytes_per_step", "triad_GBps",
                                             "achieved_GBps", "bandwidth_fraction", "targets_met")}
        print(" ".join(f"{k}={common.fmt(v) if not isinstance(v, dict) else v}" for k, v in summary.items()))
    return result


if __name__ == "__main__":
    main()
