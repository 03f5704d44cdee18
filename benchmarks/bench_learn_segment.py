"""One ``torch.ops.solsa.learn_segment`` call on one layer, timed alone (a kernel microbenchmark).

    python benchmarks/bench_learn_segment.py [--rule eprop] [--n-in 200] [--n-out 200] [--batch 32]
        [--seg 10] [--density 0.16] [--threads N] [--dtype float32] [--calls 300] [--json OUT]

What docs/PERFORMANCE.md uses to look inside the segment path: the EMG net's 200x200 layer
under e-prop, fed spikes of the density the layer below produces (16%). The inputs are
random: spikes of ``--density`` (or N(0, 1.5^2) currents with ``--density 0``), surrogates
in [0, 1), errors N(0, 0.1^2); the layer's states are updated in place on every call, as in
training (the timing does not depend on their values). Input checks are off, as the Trainer
runs. Reports the median of 5 blocks of ``--calls`` calls, in microseconds per call.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: an explicit one wins

import torch

from benchmarks import common


def parse_args(argv=None) -> argparse.Namespace:
    from solsa_ext.rule import RULES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pos = common.positive_int
    ap.add_argument("--rule", default="eprop", choices=sorted(RULES), help="learning rule (solsa_ext.rule.RULES)")
    ap.add_argument("--n-in", type=pos, default=200, help="inputs of the layer (>= 1)")
    ap.add_argument("--n-out", type=pos, default=200, help="neurons of the layer (>= 1)")
    ap.add_argument("--batch", type=pos, default=32, help="batch size (>= 1)")
    ap.add_argument("--seg", type=pos, default=10, help="steps per call (>= 1)")
    ap.add_argument("--density", type=float, default=0.16,
                    help="spike density of the input in [0, 1]; 0 = real-valued currents (default 0.16)")
    ap.add_argument("--threads", type=pos, default=None, help="torch.set_num_threads (>= 1; default: torch's)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--calls", type=pos, default=300, help="calls per timed block (>= 1)")
    ap.add_argument("--json", default=None, help="write the result here (default: print it)")
    a = ap.parse_args(argv)
    if not 0.0 <= a.density <= 1.0:
        ap.error(f"argument --density: must lie in [0, 1], got {a.density}")
    common.check_outputs(ap, json=a.json)
    return a


def main(argv=None) -> dict[str, Any]:
    a = parse_args(argv)
    import solsa_ext.ops as ops
    from solsa_ext.neuron import NeuronConfig
    from solsa_ext.rule import RULES

    if a.threads:
        torch.set_num_threads(a.threads)
    rule, n = RULES[a.rule], NeuronConfig()
    dt = torch.float32 if a.dtype == "float32" else torch.float64
    g = torch.Generator().manual_seed(0)
    S, B, NO, NI = a.seg, a.batch, a.n_out, a.n_in
    if a.density > 0:
        x = (torch.rand(S, B, NI, generator=g) < a.density).to(dt)
    else:
        x = (torch.randn(S, B, NI, generator=g) * 1.5).to(dt)
    w = (torch.randn(NO, NI, generator=g) * 0.1).to(dt)
    decay = torch.full((NO, NI), 0.5, dtype=dt) if rule.filter else None
    gain = torch.full((NO, NI), 0.5, dtype=dt) if rule.filter else None
    F = torch.zeros(B, NO, NI, dtype=dt) if rule.filter else None
    e = torch.zeros(B, NI, dtype=dt) if rule.presyn else torch.randn(B, NO, NI, generator=g).to(dt)
    sg0 = torch.rand(B, NO, generator=g).to(dt)
    sgs = torch.rand(S, B, NO, generator=g).to(dt)
    mus = (torch.randn(S, B, NO, generator=g) * 0.1).to(dt)
    gw = torch.zeros(NO, NI, dtype=dt)
    gd = torch.zeros(NO, NI, dtype=dt) if rule.adaptive else None
    gg = torch.zeros(NO, NI, dtype=dt) if rule.adaptive else None
    coef = [1.0] * S

    def call() -> None:
        torch.ops.solsa.learn_segment(x, w, decay, gain, F, e, sg0, sgs, mus, gw, gd, gg, coef,
                                      n.lam, n.vth, rule.reset_in_trace)

    blocks = []
    with ops.input_checks(False), torch.no_grad():
        for _ in range(5):
            call()
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(a.calls):
                call()
            blocks.append((time.perf_counter() - t0) / a.calls)
    us = common.median(blocks) * 1e6
    res = common.header("cpu")
    res.update(config=vars(a), us_per_call=us, us_per_call_blocks=[b * 1e6 for b in blocks],
               input="spikes, density %g" % a.density if a.density > 0 else "currents N(0, 1.5^2)",
               threads=torch.get_num_threads())
    print(f"learn_segment {a.rule} {NI}->{NO} B={B} S={S} {res['input']}: {us:.0f} us/call "
          f"({torch.get_num_threads()} threads)")
    if a.json:
        common.write_json(a.json, res)
    return res


if __name__ == "__main__":
    main()
