"""Measured peak training memory, one dedicated child process per run.

The parent (:func:`measure`) first *predicts* what the run needs (:func:`predict_bytes`)
and skips it, with the reason recorded, when the prediction exceeds the memory budget
(default: half of the machine's ``MemAvailable`` at that moment). Otherwise it starts

    python -m solsa_ext.experiments.memory '<spec as JSON>'

and watches the child's resident memory; a child that grows past the hard limit
(1.5 x budget) is killed and the run recorded as ``killed``. The child:

1. imports torch and solsa_ext, creates the input batch (synthetic ``(B, C, T)`` currents
   or ``B`` real samples of a dataset) and builds the trainer (parameters, optimizer);
2. warms the libraries up on a throw-away 2-2-2 network (autograd engine, OpenMP pool,
   kernel registration) so that one-off library allocations are not charged to the run;
3. takes the **baseline**: on CPU it resets the resident-set high-water mark
   (``/proc/self/clear_refs`` "5") and reads ``VmRSS``; on CUDA it resets the peak
   statistics and reads ``torch.cuda.memory_allocated``;
   (the child runs with ``MALLOC_MMAP_THRESHOLD_=65536``, see :data:`DEFAULT_MMAP_THRESHOLD`);
4. trains on the one batch: one full sequence of T steps with learning and the optimizer
   steps at the algorithm's update points (``Trainer.train_batch`` when the trainer has
   it, else its internal per-batch step);
5. reports ``peak - baseline``: ``VmHWM - VmRSS(baseline)`` on CPU (falls back to
   ``ru_maxrss`` when the high-water mark could not be reset, flagged ``hwm_reset: false``),
   ``torch.cuda.max_memory_allocated - memory_allocated(baseline)`` on CUDA.

What is counted: everything the training step allocates (engine states and traces,
autograd's saved activations, gradients, Adam's moments, temporaries). What is not:
the input batch and the parameters themselves (created before the baseline).
"""
from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

GB = 1024 ** 3
MB = 1024 ** 2

#: Bytes BPTT keeps per step, per sample and per synapse, in units of the element size:
#: autograd saves the filtered PSP F[t] (B, n_out, n_in) of every layer at every step
#: (w * F[t] needs it); the backward pass adds temporaries of the same shape. Calibrated
#: on this machine (8-200-200-10, B=32, T=100 and 300 with the fixed mmap threshold:
#: 1.05-1.1 words); 1.5 leaves margin.
BPTT_WORDS_PER_SYNAPSE_STEP = 1.5

#: glibc's *dynamic* mmap threshold keeps freed multi-MB temporaries resident in the heap
#: in an order-dependent way: the same BPTT run (8-200-200-10, B=32, T=100) peaked at
#: 577 MB in one child and 1318 MB in another, T=300 at 1671 MB and 3820 MB. Children
#: therefore run with ``MALLOC_MMAP_THRESHOLD_`` fixed at 64 KiB (every block >= 64 KiB is
#: its own mapping and goes back to the OS when freed), which makes the high-water mark
#: the peak of *live* memory: 579 MB and 1705 MB for those runs, in every repeat.
#: ``malloc_mmap_threshold: None`` in a spec measures with glibc's defaults.
DEFAULT_MMAP_THRESHOLD = 65536


def _status_kb(key: str, pid: str = "self") -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def mem_available_bytes() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def n_synapses(sizes: Sequence[int]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def predict_bytes(algorithm: str, sizes: Sequence[int], batch: int, T: int, elem: int = 4) -> int:
    """A conservative prediction of a run's peak training memory (bytes above baseline).

    BPTT/TBPTT: ``words * elem * B * synapses * T_kept`` (TBPTT keeps 20 steps) plus the
    online states; online algorithms: their states, independent of T (about 8 words per
    synapse and sample with everything on, see SOLSA_MATH.md section 8), plus 64 MiB for
    the allocator and temporaries.
    """
    syn = n_synapses(sizes)
    state = 8 * elem * batch * syn + 64 * MB
    if algorithm == "bptt":
        return int(BPTT_WORDS_PER_SYNAPSE_STEP * elem * batch * syn * T) + state
    if algorithm == "tbptt":
        return int(BPTT_WORDS_PER_SYNAPSE_STEP * elem * batch * syn * min(T, 20)) + state
    return state


def default_budget_bytes() -> int:
    """Half of the memory available right now (other programs keep theirs)."""
    avail = mem_available_bytes()
    return int(0.5 * avail) if avail else 4 * GB


# ------------------------------------------------------------------ child side
def _make_input(spec: dict[str, Any]):
    import torch

    B = int(spec["batch"])
    if spec.get("dataset") in (None, "synthetic"):
        sizes = spec["sizes"]
        g = torch.Generator().manual_seed(int(spec.get("seed", 0)))
        x = torch.randn(B, sizes[0], int(spec["T"]), generator=g)
        y = torch.randint(0, sizes[-1], (B,), generator=g)
        lengths = torch.full((B,), int(spec["T"]), dtype=torch.int64)
        return x, y, lengths, None
    from ..datasets import load_dataset

    ds = load_dataset(spec["dataset"])
    n = ds.x_train.shape[0]
    idx = torch.arange(B) % n  # B samples (repeated when the split is smaller than B)
    x = ds.x_train[idx].contiguous()
    return x, ds.y_train[idx].clone(), ds.len_train[idx].clone(), ds


def _train_one_batch(tr: Any, x, y, lengths) -> None:
    if hasattr(tr, "train_batch"):  # public API, if the trainer grows one
        tr.train_batch(x, y, lengths)
        return
    from ..trainer import Batch

    tr._run(Batch(x, y, lengths), learn=True)


def _warm_up(algorithm: str, device: str) -> None:
    import torch

    from ..config import AlgorithmConfig, NetworkConfig, TrainConfig
    from ..trainer import Trainer

    tr = Trainer(network=NetworkConfig(sizes=(2, 2, 2)), algorithm=AlgorithmConfig(algorithm),
                 train=TrainConfig(batch_size=1, device=device))
    x = torch.randn(1, 2, 3)
    _train_one_batch(tr, tr._check_x(x), torch.zeros(1, dtype=torch.int64), torch.full((1,), 3, dtype=torch.int64))
    del tr, x
    gc.collect()


def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs inside the child process; returns the measurement as a dict."""
    t0 = time.perf_counter()
    import torch

    from ..config import AlgorithmConfig, NetworkConfig, TrainConfig
    from ..trainer import Trainer

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = spec.get("device", "cpu")
    x, y, lengths, ds = _make_input(spec)
    sizes = tuple(spec["sizes"])
    alg = AlgorithmConfig(spec["algorithm"], **spec.get("algorithm_kwargs", {}))
    tr = Trainer(network=NetworkConfig(sizes=sizes), algorithm=alg,
                 train=TrainConfig(batch_size=int(spec["batch"]), seed=int(spec.get("seed", 0)), device=device))
    x = tr._check_x(x)
    if tr.device.type == "cuda":
        x, y, lengths = x.to(tr.device), y.to(tr.device), lengths.to(tr.device)
    _warm_up(spec["algorithm"], device)
    gc.collect()
    cuda = tr.device.type == "cuda"
    hwm_reset = True
    if cuda:
        torch.cuda.synchronize(tr.device)
        torch.cuda.reset_peak_memory_stats(tr.device)
        base = torch.cuda.memory_allocated(tr.device)
        kind = "torch.cuda.max_memory_allocated - memory_allocated(baseline)"
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            hwm_reset = False
        base = (_status_kb("VmRSS") or 0) * 1024
        kind = "VmHWM - VmRSS(baseline) of the child process" if hwm_reset else "ru_maxrss - VmRSS(baseline)"
    t1 = time.perf_counter()
    _train_one_batch(tr, x, y, lengths)
    if cuda:
        torch.cuda.synchronize(tr.device)
        peak = torch.cuda.max_memory_allocated(tr.device)
    elif hwm_reset:
        peak = (_status_kb("VmHWM") or 0) * 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t2 = time.perf_counter()
    return {
        "status": "measured",
        "peak_bytes": int(max(0, peak - base)),
        "baseline_bytes": int(base),
        "peak_total_bytes": int(peak),
        "measure": kind,
        "hwm_reset": hwm_reset,
        "device": str(tr.device),
        "backend": tr.backend,
        "updates": tr.updates,
        "train_time_s": t2 - t1,
        "child_time_s": t2 - t0,
        "T_run": int(lengths.max()),
        "torch_threads": torch.get_num_threads(),
    }


# ----------------------------------------------------------------- parent side
def measure(spec: dict[str, Any], budget_bytes: Optional[int] = None, timeout_s: float = 3600.0,
            poll_s: float = 0.05) -> dict[str, Any]:
    """Predict, then measure ``spec`` in a child process (or record why it was skipped).

    spec: ``algorithm``, ``sizes``, ``batch``, ``T``, optional ``dataset`` (``"synthetic"``
    or a dataset name), ``seed``, ``device``, ``threads``, ``algorithm_kwargs``,
    ``malloc_mmap_threshold`` (bytes, for glibc's ``MALLOC_MMAP_THRESHOLD_``; see
    :data:`DEFAULT_MMAP_THRESHOLD`).
    """
    budget = int(budget_bytes) if budget_bytes else default_budget_bytes()
    pred = predict_bytes(spec["algorithm"], spec["sizes"], int(spec["batch"]), int(spec["T"]))
    out: dict[str, Any] = {"predicted_bytes": pred, "budget_bytes": budget}
    if pred > budget:
        out.update(status="skipped", reason=f"skipped: would need {pred / GB:.1f} GiB (predicted), "
                                            f"budget {budget / GB:.1f} GiB")
        return out
    hard = int(1.5 * budget)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if spec.get("malloc_mmap_threshold") is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(int(spec["malloc_mmap_threshold"]))
    out["malloc_mmap_threshold"] = env.get("MALLOC_MMAP_THRESHOLD_")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "solsa_ext.experiments.memory", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        return _watch(proc, out, hard, timeout_s, poll_s, t0)
    finally:
        if proc.poll() is None:  # interrupted (Ctrl-C): never leave a child behind
            proc.kill()
            proc.wait()


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except Exception:  # noqa: BLE001
        pass


def _watch(proc: subprocess.Popen, out: dict[str, Any], hard: int, timeout_s: float, poll_s: float,
           t0: float) -> dict[str, Any]:
    max_rss = 0
    killed = None
    while proc.poll() is None:
        rss = (_status_kb("VmRSS", str(proc.pid)) or 0) * 1024
        max_rss = max(max_rss, rss)
        if rss > hard:
            killed = f"killed: resident memory {rss / GB:.1f} GiB passed the hard limit {hard / GB:.1f} GiB"
        elif time.perf_counter() - t0 > timeout_s:
            killed = f"killed: ran longer than {timeout_s:.0f} s"
        if killed:
            proc.kill()
            break
        time.sleep(poll_s)
    stdout, stderr = proc.communicate()
    out["wall_time_s"] = time.perf_counter() - t0
    if killed:
        out.update(status="killed", reason=killed)
        return out
    if proc.returncode != 0:
        out.update(status="failed", reason=f"child exited with {proc.returncode}: {stderr.strip()[-2000:]}")
        return out
    lines = [ln for ln in stdout.strip().splitlines() if ln.startswith("{")]
    out.update(json.loads(lines[-1]))
    out["parent_observed_max_rss_bytes"] = max_rss
    return out


if __name__ == "__main__":
    res = child_main(json.loads(sys.argv[1]))
    sys.stdout.write("\n" + json.dumps(res) + "\n")
    sys.stdout.flush()
