"""examples/custom_model.py runs and learns its toy task."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import FUSED

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_custom_model_learns():
    # With the compiled ops the example calls torch.ops.solsa.* directly; without them it
    # runs its eager twin (--eager), so this test runs on every machine.
    cmd = [sys.executable, os.path.join(ROOT, "examples", "custom_model.py"), "--epochs", "12"]
    if not FUSED:
        cmd.append("--eager")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["ops"] == ("torch.ops.solsa" if FUSED else "eager")
    assert res["accuracy_after"] >= 0.9 and res["accuracy_after"] > res["accuracy_before"] + 0.2, res
