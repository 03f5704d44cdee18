"""The AVX-512, AVX2 and baseline (SSE2) builds of the CPU kernels give the same bits.

Every CPU kernel is compiled for SSE2 and AVX2, the segment kernels for AVX-512 too
(csrc/common/cpu_isa.h); the best copy the processor can run is used, SOLSA_CPU_ISA=avx2
caps it at AVX2 and SOLSA_CPU_ISA=baseline forces the SSE2 copies. All are built with
-ffp-contract=off and sum in an order that does not depend on the vector width, so a
network run through every kernel (per-step ops through the engine's plan, and the segment
ops) must come out bitwise equal in a child process forced to the baseline build.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from solsa_ext import _C

HERE = Path(__file__).resolve().parent

CHILD = r"""
import sys, torch
sys.path.insert(0, {tests!r})
from solsa_ext import _C, ops
from solsa_ext.engine import OnlineEngine
from _netutil import FLAG_CASES, NEURON, draw_case
out = {{"isa": _C.cpu_isa()}}
for dtype in (torch.float32, torch.float64):
    for name in ("solsa", "eprop", "ottt", "filter_noreset"):
        rule = FLAG_CASES[name]
        params, x, gen = draw_case((13, 37, 19, 5), 3, 11, dtype, rule, seed=7)
        C = torch.randn(3, 5, 11, generator=gen, dtype=torch.float64).to(dtype)
        res = []
        with ops.input_checks(False):
            eng = OnlineEngine(params, NEURON, rule, backend="fused")
            eng.reset(3)
            for t in range(11):
                O = eng.forward(x[:, :, t])
                eng.backward(C[:, :, t] + O)
            res += [g.w for g in eng.grads()] + [s.V for s in eng._fused] + [s.e for s in eng._fused]
            seg = OnlineEngine(params, NEURON, rule, backend="fused")
            seg.reset(3)
            seg.run_segment(x, lambda O: O - 0.5)
            res += [g.w for g in seg.grads()] + [s.V for s in seg._fused]
        out[(str(dtype), name)] = res
torch.save(out, sys.argv[1])
"""


def _run(tmp_path: Path, env_isa: str | None) -> dict:
    f = tmp_path / f"out_{env_isa}.pt"
    env = dict(os.environ)
    env.pop("SOLSA_CPU_ISA", None)
    if env_isa:
        env["SOLSA_CPU_ISA"] = env_isa
    code = CHILD.format(tests=str(HERE))
    subprocess.run([sys.executable, "-c", code, str(f)], check=True, env=env, timeout=300)
    return torch.load(f)


def test_cpu_isa_reports_a_build():
    assert _C.cpu_isa() in ("avx512", "avx2", "baseline")
    if os.environ.get("SOLSA_CPU_ISA") == "baseline":
        assert _C.cpu_isa() == "baseline"


def _cpu_flag(flag: str) -> bool:
    try:
        return f" {flag} " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
    except OSError:
        return False


def _assert_same_bits(a_run: dict, b_run: dict) -> None:
    keys = [k for k in a_run if k != "isa"]
    assert len(keys) == 8
    for k in keys:
        for i, (a, b) in enumerate(zip(a_run[k], b_run[k])):
            assert torch.equal(a, b), f"{k} tensor {i}: max diff {(a - b).abs().max().item()}"
        assert any(a.abs().sum() > 0 for a in a_run[k]), f"{k}: all zero, the test would prove nothing"


@pytest.mark.skipif(not _cpu_flag("avx2"), reason="the CPU has no AVX2: only the baseline build can run")
def test_avx2_and_baseline_builds_agree_bitwise(tmp_path):
    fast = _run(tmp_path, "avx2")  # capped at AVX2, whatever else the CPU has
    base = _run(tmp_path, "baseline")
    if fast["isa"] != "avx2":
        pytest.skip("this build has no AVX2 copy of the kernels (non-GCC or non-x86-64 build)")
    assert base["isa"] == "baseline"
    _assert_same_bits(fast, base)


@pytest.mark.skipif(not _cpu_flag("avx512f"), reason="the CPU has no AVX-512")
def test_avx512_and_baseline_builds_agree_bitwise(tmp_path):
    fast = _run(tmp_path, None)
    base = _run(tmp_path, "baseline")
    if fast["isa"] != "avx512":
        pytest.skip("this build has no AVX-512 copy of the kernels (non-GCC or non-x86-64 build)")
    assert base["isa"] == "baseline"
    _assert_same_bits(fast, base)


def test_unknown_isa_setting_warns():
    import subprocess
    import sys

    env = dict(os.environ, SOLSA_CPU_ISA="avx9000")
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", "import solsa_ext.ops"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "SOLSA_CPU_ISA='avx9000' is not one of" in r.stderr
    env["SOLSA_CPU_ISA"] = "avx2"
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", "import solsa_ext.ops"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
