"""Shared plumbing of the benchmarks: timing, the STREAM-like triad, the roofline byte
count of the fused kernels, machine/version info, peak-memory probes, JSON/Markdown writers.

Nothing here asserts a speed: scripts record what they measured and the targets they were
held to, and say which were met.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import torch

from solsa_ext.cli import int_at_least, positive_float  # noqa: F401  (argparse types, re-exported)

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- devices
def adam(params, lr: float) -> torch.optim.Optimizer:
    """The optimizer of every contender: Adam as the Trainer builds it (torch's fused
    kernel where torch has one, see ``solsa_ext.OptimizerConfig``), so that no contender
    pays a slower optimizer than the others."""
    from solsa_ext.config import OptimizerConfig

    return OptimizerConfig(lr=lr).build(params)


def adam_step(opt: torch.optim.Optimizer) -> None:
    """The optimizer step of every contender, as the Trainer takes it
    (``solsa_ext.optim.fast_step``: ``opt.step()``'s arithmetic, bitwise, without the
    wrapper's per-call Python), so that no contender pays a slower step than the others."""
    from solsa_ext.optim import fast_step

    fast_step(opt)


def sync(device: torch.device | str) -> None:
    """Wait for queued work (CUDA); no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def parse_dtype(name: str) -> torch.dtype:
    table = {"float32": torch.float32, "fp32": torch.float32, "float64": torch.float64, "fp64": torch.float64}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}: choose float32 or float64")
    return table[name]


def parse_sizes(text: str) -> list[int]:
    """Layer sizes, input first: positive integers separated by ',' (also 'x', blanks, or
    '-' between two digits, as in "8-200-200-10"), at least two of them. Anything else
    (a negative or zero size, a non-integer, an empty entry) raises
    ``argparse.ArgumentTypeError`` (argparse: "argument --sizes: ...", exit 2)."""
    src = str(text).strip()
    tokens = re.split(r"\s*[,x]\s*|\s+|(?<=\d)-(?=\d)", src)
    sizes = []
    for tok in tokens:
        if not re.fullmatch(r"\d+", tok):
            what = "an empty entry" if tok == "" else repr(tok)
            raise argparse.ArgumentTypeError(
                f"{what} is not a positive integer: give >= 2 positive layer sizes (input,...,output), got {src!r}")
        sizes.append(int(tok))
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"needs >= 2 positive layer sizes (input,...,output), got {src!r}")
    return sizes


# --------------------------------------------------------------------------- argument types
# (int_at_least and positive_float are the package's own, solsa_ext.cli: the benchmarks and
# the train command accept and word the same things)

#: argparse type: an integer >= 1 (counts, sizes, steps, repetitions).
positive_int = int_at_least(1)


def density(text: str) -> float:
    """argparse type: a probability in (0, 1]."""
    try:
        v = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}") from None
    if not (0.0 < v <= 1.0):
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return v


def output_path_problem(path: Optional[str]) -> Optional[str]:
    """Why ``path`` cannot be written as an output file (None: it can, or it is stdout '-').

    Checked before any timing, so that a typo does not cost a whole run: the file must not
    be a directory, and its parent must be a directory or creatable (the nearest existing
    ancestor is a writable directory, not a file)."""
    if path is None or path == "-":
        return None
    if str(path).strip() == "":
        return "empty path"
    p = Path(path)
    if p.is_dir():
        return f"{str(p)!r} is a directory"
    if p.exists():
        return None if os.access(p, os.W_OK) else f"{str(p)!r} is not writable"
    anc = p.parent
    while not anc.exists() and not anc.is_symlink() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        return f"{str(anc)!r} (on the path to {str(p)!r}) is not a directory"
    if not os.access(anc, os.W_OK | os.X_OK):
        return f"directory {str(anc)!r} is not writable"
    return None


def check_outputs(ap: argparse.ArgumentParser, **flags: Optional[str]) -> None:
    """``ap.error`` (exit 2) naming the flag when an output path cannot be written;
    ``flags`` maps flag names without dashes (json, md) to paths."""
    for flag, path in flags.items():
        why = output_path_problem(path)
        if why:
            ap.error(f"argument --{flag}: cannot write {path!r}: {why}")


# --------------------------------------------------------------------------- timing
def time_once(fn: Callable[[], Any], device: torch.device | str = "cpu") -> float:
    """Wall seconds of one call of ``fn`` (synchronised before and after on CUDA)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device | str = "cpu",
                warmup: int = 1) -> dict[str, list[float]]:
    """Time every function ``repeats`` times, round robin (a, b, c, a, b, c, ...).

    Interleaving spreads the machine's background noise evenly over the contenders, so
    ratios of medians measured in one process are meaningful on a shared machine.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            out[k].append(time_once(fn, device))
    return out


# --------------------------------------------------------------------------- bandwidth
def triad_bandwidth(device: torch.device | str = "cpu", mb_per_array: int = 256, repeats: int = 7,
                    dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """STREAM-like triad ``a = b + s * c`` with torch ops in place, best of ``repeats``.

    Bytes counted: 3 arrays x size (read b, read c, write a; write-allocate traffic not
    counted, as in STREAM). Uses torch.get_num_threads() threads on CPU.
    """
    device = torch.device(device)
    n = mb_per_array * (1 << 20) // torch.empty((), dtype=dtype).element_size()
    a = torch.empty(n, dtype=dtype, device=device)
    b = torch.rand(n, dtype=dtype, device=device)
    c = torch.rand(n, dtype=dtype, device=device)
    a.zero_()
    s = 3.0
    nbytes = 3 * n * a.element_size()
    times = []
    for _ in range(repeats + 1):
        times.append(time_once(lambda: torch.add(b, c, alpha=s, out=a), device))
    times = times[1:]  # first call pays page faults on some systems
    best = min(times)
    return {
        "kernel": "a = b + s*c (torch.add(b, c, alpha=s, out=a))",
        "array_MB": mb_per_array,
        "dtype": str(dtype).replace("torch.", ""),
        "bytes_counted": nbytes,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "repeats": repeats,
        "best_s": best,
        "median_s": median(times),
        "GBps": nbytes / best / 1e9,
        "median_GBps": nbytes / median(times) / 1e9,
    }


def copy_bandwidth(device: torch.device | str = "cuda", mb: int = 512, repeats: int = 10) -> dict[str, Any]:
    """Device-to-device copy ``dst.copy_(src)``: 2 x bytes (read + write), best of ``repeats``."""
    device = torch.device(device)
    n = mb * (1 << 20) // 4
    src = torch.rand(n, device=device)
    dst = torch.empty(n, device=device)
    times = [time_once(lambda: dst.copy_(src), device) for _ in range(repeats + 1)][1:]
    nbytes = 2 * n * 4
    return {"kernel": "dst.copy_(src)", "MB": mb, "bytes_counted": nbytes, "best_s": min(times),
            "GBps": nbytes / min(times) / 1e9, "median_GBps": nbytes / median(times) / 1e9}


# --------------------------------------------------------------------------- roofline
BYTES_FORMULA = (
    "bytes/step = sum over layers of [ B*S*s*(per-synapse words) + S*s*(parameter words) "
    "+ B*s*(per-neuron words) ], S = n_out*n_in synapses, s = bytes per element, B = batch. "
    "Per-synapse words per sample (compulsory DRAM traffic of the per-synapse state): "
    "step reads F,e and writes F,e (4), writes F_prev when adaptive (+1); learn reads e (1) "
    "and F_prev when adaptive (+1): SOLSA 7, filter without adaptive kernel 5, e-prop (no "
    "filter: F = x is not stored) 3, OTTT (presynaptic trace, no per-synapse state) 0. "
    "Parameter words per layer, once per op call (batch-shared, kept in cache across the "
    "batch): step reads w (+decay, gain with the filter); learn reads+writes gw (+reads w, "
    "reads+writes gdecay, ggain when adaptive); spatial_error (layers above the first) reads "
    "w (+gain with the filter). Per-neuron words: step reads x and reads+writes V, O, sg; "
    "learn reads mu (+x when adaptive); spatial_error reads mu_up, sg_low, writes mu_low; "
    "OTTT's trace e (B, n_in) is read+written by step and read by learn."
)


def rule_words(filter: bool, adaptive: bool, reset_in_trace: bool) -> dict[str, int]:
    """Words moved per synapse per sample, and per synapse per call (parameters)."""
    presyn = not filter and not reset_in_trace
    if presyn:
        syn = 0
    elif filter:
        syn = 4 + 1 + (2 if adaptive else 0)  # F r/w, e r/w, learn reads e; F_prev w + r
    else:
        syn = 2 + 1  # e r/w, learn reads e
    step_p = 3 if filter else 1
    learn_p = 2 + (1 + 4 if adaptive else 0)
    se_p = 2 if filter else 1
    return {"per_synapse_sample": syn, "step_params": step_p, "learn_params": learn_p, "spatial_params": se_p,
            "presyn": presyn}


def bytes_per_step(sizes: Sequence[int], batch: int, rule: Any, elem: int = 4) -> dict[str, Any]:
    """Bytes the fused kernels must move for one step of every layer (forward + learn).

    ``rule`` is a :class:`solsa_ext.rule.RuleFlags` (or anything with filter/adaptive/
    reset_in_trace). See :data:`BYTES_FORMULA`.
    """
    wd = rule_words(rule.filter, rule.adaptive, rule.reset_in_trace)
    total_syn = total_par = total_neu = 0
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        S = n_in * n_out
        total_syn += batch * S * wd["per_synapse_sample"] * elem
        par = wd["step_params"] + wd["learn_params"] + (wd["spatial_params"] if l > 0 else 0)
        total_par += S * par * elem
        neu = batch * (n_in + 6 * n_out)            # step: x, V/O/sg r+w
        neu += batch * (n_out + (n_in if rule.adaptive else 0))   # learn: mu (+x)
        if l > 0:
            neu += batch * (n_out + 2 * n_in)       # spatial_error: mu_up, sg_low, out
        if wd["presyn"]:
            neu += batch * n_in * 3                 # trace r/w in step, read in learn
        total_neu += neu * elem
    return {
        "bytes_per_step": total_syn + total_par + total_neu,
        "per_synapse_bytes": total_syn,
        "parameter_bytes": total_par,
        "per_neuron_bytes": total_neu,
        "words_per_synapse_per_sample": wd["per_synapse_sample"],
        "formula": BYTES_FORMULA,
    }


def per_synapse_state_bytes(sizes: Sequence[int], batch: int, rule: Any, elem: int = 4) -> int:
    """Resident per-synapse state (F, F_prev, e as allocated by OnlineEngine)."""
    S = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n = (1 if rule.filter else 0) + (1 if rule.adaptive else 0)
    n_e = 0 if (not rule.filter and not rule.reset_in_trace) else 1
    return batch * S * (n + n_e) * elem


# --------------------------------------------------------------------------- memory
def _status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRSS:
    """Peak resident memory of this process above a baseline (CPU, Linux).

    ``start()`` records VmRSS and resets the high-water mark (``/proc/self/clear_refs``
    "5"); ``peak_bytes()`` is VmHWM minus that baseline. Where the reset is not allowed,
    the high-water mark since process start is used (``reset`` False in the result).
    """

    def __init__(self) -> None:
        self.base_kb = 0
        self.reset = False

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.reset = True
        except OSError:
            self.reset = False
        self.base_kb = _status_kb("VmRSS") or 0

    def peak_bytes(self) -> int:
        hwm = _status_kb("VmHWM") or 0
        return max(0, hwm - self.base_kb) * 1024


class PeakCUDA:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0
        self.reset = True

    def start(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.base = torch.cuda.memory_allocated(self.device)

    def peak_bytes(self) -> int:
        torch.cuda.synchronize(self.device)
        return max(0, torch.cuda.max_memory_allocated(self.device) - self.base)


def peak_probe(device: torch.device | str):
    device = torch.device(device)
    return PeakCUDA(device) if device.type == "cuda" else PeakRSS()


# --------------------------------------------------------------------------- machine
def _run(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
    except Exception:
        return ""


def git_info() -> dict[str, Any]:
    commit = _run(["git", "rev-parse", "--verify", "-q", "HEAD"]) or "none (no commit yet)"
    dirty = bool(_run(["git", "status", "--porcelain", "--untracked-files=no"])) if commit[:4] != "none" else None
    return {"commit": commit, "dirty": dirty}


def _pkg_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    device = torch.device(device)
    cpu = platform.processor() or ""
    caches = {}
    lscpu = _run(["lscpu"])
    for line in lscpu.splitlines():
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k == "Model name":
            cpu = v
        elif k in ("L1d cache", "L2 cache", "L3 cache"):
            caches[k] = v
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "caches": caches,
        "mem_total_GB": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "loadavg_at_start": list(os.getloadavg()),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info["gpu"] = p.name
        info["gpu_memory_GB"] = round(p.total_memory / 1e9, 1)
        info["gpu_sm_count"] = p.multi_processor_count
        info["cuda"] = torch.version.cuda
    return info


def versions() -> dict[str, Any]:
    v = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": _pkg_version("numpy"),
        "solsa_ext": _pkg_version("solsa-ext"),
        "snntorch": _pkg_version("snntorch"),
        "spikingjelly": _pkg_version("spikingjelly"),
    }
    try:
        from solsa_ext import _C  # type: ignore[attr-defined]

        v["solsa_ext_C"] = getattr(_C, "__file__", "?")
        v["solsa_ext_cuda_kernels"] = bool(_C.has_cuda())
    except Exception as exc:  # pragma: no cover
        v["solsa_ext_C"] = f"unavailable: {exc}"
    return v


def header(device: torch.device | str = "cpu") -> dict[str, Any]:
    return {"machine": machine_info(device), "versions": versions(), "git": git_info(),
            "argv": sys.argv, "time": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


# --------------------------------------------------------------------------- writers
def _clean(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, torch.dtype):
        return str(o).replace("torch.", "")
    if isinstance(o, Path):
        return str(o)
    return o


def write_json(path: Optional[str], data: dict[str, Any]) -> None:
    text = json.dumps(_clean(data), indent=2, sort_keys=False)
    if path in (None, "-"):
        print(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n")


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(c) for c in r) + " |")
    return "\n".join(out)


def human_bytes(n: Optional[float]) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


# --------------------------------------------------------------------------- networks
def make_params(sizes: Sequence[int], device: torch.device | str, dtype: torch.dtype, seed: int = 0,
                decay: float = 0.5, gain: float = 0.5, requires_grad: bool = False):
    """Layers of a PSP-LIF network: w ~ U(-a, a), a = sqrt(3/n_in)*(1-decay)/gain (the
    package's default init, NetworkConfig.w_scale = 1); decay and gain start constant."""
    from solsa_ext.reference import LayerParams

    gen = torch.Generator().manual_seed(seed)
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        a = (3.0 / n_in) ** 0.5 * (1 - decay) / gain
        w = ((torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) * 2 - 1) * a).to(device=device, dtype=dtype)
        d = torch.full((n_out, n_in), decay, dtype=dtype, device=device)
        g = torch.full((n_out, n_in), gain, dtype=dtype, device=device)
        if requires_grad:
            w, d, g = (torch.nn.Parameter(t) for t in (w, d, g))
        out.append(LayerParams(w, d, g))
    return out


def make_data(batch: int, C: int, T: int, n_out: int, device: torch.device | str, dtype: torch.dtype,
              spike_density: Optional[float] = None, seed: int = 0, layout: str = "tbc"):
    """Random inputs (B, C, T) and a per-step target (B, n_out) (one-hot of a random label).

    ``spike_density``: Bernoulli spikes of that density (DVS-like); else N(0, 1.5^2) currents.
    ``layout``: "tbc" stores the data time-major (a (T, B, C) contiguous tensor viewed as
    (B, C, T), so each step's ``x[:, :, t]`` is contiguous, as the peers' (T, B, C) input);
    "bct" stores (B, C, T) contiguous (``x[:, :, t]`` has stride T along C).
    """
    gen = torch.Generator().manual_seed(seed)
    if spike_density is not None:
        x = (torch.rand(batch, C, T, generator=gen) < spike_density).to(dtype)
    else:
        x = (torch.randn(batch, C, T, generator=gen) * 1.5).to(dtype)
    if layout == "tbc":
        x = x.permute(2, 0, 1).contiguous().permute(1, 2, 0)
    elif layout != "bct":
        raise ValueError(f"layout must be 'tbc' or 'bct', got {layout!r}")
    y = torch.randint(0, n_out, (batch,), generator=gen)
    target = torch.nn.functional.one_hot(y, n_out).to(dtype)
    return x.to(device), target.to(device)


def update_points(steps: int, K: int) -> set[int]:
    """K evenly spaced update points (0-based step indices, the last is steps-1)."""
    K = max(1, min(K, steps))
    return {round((k + 1) * steps / K) - 1 for k in range(K)}
