"""Shared plumbing of the torch.ops.solsa.* registrations.

The compiled module ``solsa_ext._C`` is torch-free: it takes params structs of raw
pointers, sizes and strides. This file holds the ``torch.library`` handle, the
argument checks every op runs at its boundary, and the helpers that turn tensors into
pointers and pick the CPU thread count or the current CUDA stream.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator, Optional, Sequence

import torch

try:
    from .. import _C  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "solsa_ext._C (the compiled kernels) could not be imported. Build and install the "
        "package with `pip install .` (or `pip install -e .` for development) first. "
        f"Original error: {exc}"
    ) from exc

# SOLSA_CPU_ISA caps the instruction set of the CPU kernels (read by the C++ core, which
# ignores values it does not know): say so instead of silently running the best build.
_ISA_CAPS = ("baseline", "avx2", "avx512")
if os.environ.get("SOLSA_CPU_ISA", "") not in ("",) + _ISA_CAPS:
    warnings.warn(
        f"SOLSA_CPU_ISA={os.environ['SOLSA_CPU_ISA']!r} is not one of {_ISA_CAPS}: ignored, the CPU "
        f"kernels run their {_C.cpu_isa()!r} build",
        RuntimeWarning,
        stacklevel=2,
    )

LIB = torch.library.Library("solsa", "DEF")

_FLOATS = (torch.float32, torch.float64)
_checks_enabled = True


def input_checks_enabled() -> bool:
    return _checks_enabled


@contextlib.contextmanager
def input_checks(enabled: bool) -> Iterator[None]:
    """Turn the per-call NaN/Inf scans of the ops' inputs on or off inside a block.

    The ops' shape, dtype, device, layout and overlap checks always run (and the engine's
    plans, which bypass the ops with checks off, validate the parameters when they are
    built). The finiteness scans cost one
    pass over each read-only input, and on CUDA a device synchronisation, so callers
    that validated their data once up front (the Trainer does) may switch them off.
    """
    global _checks_enabled
    old = _checks_enabled
    _checks_enabled = enabled
    try:
        yield
    finally:
        _checks_enabled = old


def _is_fake(t: torch.Tensor) -> bool:
    """Tensors without data (meta, or fake tensors while torch.compile traces): no value scans."""
    from torch._subclasses.fake_tensor import FakeTensor

    return t.device.type == "meta" or isinstance(t, FakeTensor)


def dtype_code(dtype: torch.dtype) -> int:
    return 0 if dtype == torch.float32 else 1


def ptr(t: Optional[torch.Tensor]) -> int:
    return 0 if t is None else t.data_ptr()


def check_tensor(
    op: str,
    name: str,
    t: Optional[torch.Tensor],
    shape: Sequence[int],
    ref: torch.Tensor,
    *,
    contiguous: bool = True,
    finite: bool = False,
    required: bool = True,
    sizes_from: str = "",
) -> None:
    """Raise a clear error naming ``op`` and ``name`` when ``t`` does not fit. ``sizes_from``
    says which arguments the expected shape was read from (so a mismatch between two
    arguments names both), e.g. ``"B from mu, n_in from gw"``."""
    if t is None:
        if required:
            raise ValueError(f"solsa.{op}: argument '{name}' is required here but was None")
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"solsa.{op}: argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOATS:
        raise TypeError(f"solsa.{op}: argument '{name}' must be float32 or float64, got {t.dtype}")
    if t.dtype != ref.dtype:
        raise TypeError(f"solsa.{op}: argument '{name}' has dtype {t.dtype} but the other arguments are {ref.dtype}")
    if t.device != ref.device:
        raise ValueError(f"solsa.{op}: argument '{name}' is on {t.device} but the other arguments are on {ref.device}")
    if tuple(t.shape) != tuple(shape):
        src = f" ({sizes_from})" if sizes_from else ""
        raise ValueError(f"solsa.{op}: argument '{name}' must have shape {tuple(shape)}{src}, got {tuple(t.shape)}")
    if contiguous and not t.is_contiguous():
        raise ValueError(
            f"solsa.{op}: argument '{name}' must be contiguous (it is read or written in place by the kernel); "
            "call .contiguous() on it first"
        )
    if finite and _checks_enabled and t.numel() and not _is_fake(t) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"solsa.{op}: argument '{name}' contains NaN or Inf")


def _byte_span(t: torch.Tensor) -> tuple[int, int]:
    """[first, last + 1) bytes the tensor's elements occupy (any strides)."""
    if t.numel() == 0:
        return (0, 0)
    lo = hi = t.data_ptr()
    for size, stride in zip(t.shape, t.stride()):
        ext = (size - 1) * stride * t.element_size()
        if ext < 0:
            lo += ext
        else:
            hi += ext
    return (lo, hi + t.element_size())


def check_no_overlap(op: str, written: dict, read: dict) -> None:
    """Every tensor the kernel writes must share no memory with any other argument (the
    kernels read and write through raw pointers: an output aliasing an input or another
    output gives wrong results)."""
    items = [(n, t) for n, t in {**read, **written}.items() if isinstance(t, torch.Tensor)]
    if any(_is_fake(t) for _, t in items):
        return
    spans = {n: _byte_span(t) for n, t in items}
    for wn, wt in written.items():
        if not isinstance(wt, torch.Tensor) or wt.numel() == 0:
            continue
        a0, a1 = spans[wn]
        for n, _ in items:
            if n == wn or spans[n][0] == spans[n][1]:
                continue
            b0, b1 = spans[n]
            if a0 < b1 and b0 < a1:
                raise ValueError(
                    f"solsa.{op}: argument '{wn}' (written by the kernel) overlaps argument '{n}' in memory; "
                    "pass separate tensors"
                )


def check_no_autograd(op: str, **tensors: Optional[torch.Tensor]) -> None:
    """The ops that write their outputs in place (step, learn and their segment forms) have
    no autograd formula: they are the online rule's own gradient machinery. An argument
    that requires grad while grad mode is on would get no gradient (torch only warns), so
    refuse it, naming the argument."""
    if not torch.is_grad_enabled():
        return
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.requires_grad:
            raise ValueError(
                f"solsa.{op}: argument '{name}' requires grad, but this op has no autograd formula (it writes "
                "its outputs in place; the online rule computes the gradients itself, see docs/OPS.md): pass "
                f"{name}.detach() or call it under torch.no_grad()"
            )


def check_dims(op: str, name: str, t: torch.Tensor, ndim: int, legend: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"solsa.{op}: argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"solsa.{op}: argument '{name}' must be {ndim}-D {legend}, got shape {tuple(t.shape)}")


def check_batch(op: str, batch: int) -> None:
    if batch == 0:
        raise ValueError(f"solsa.{op}: the batch is empty (batch size 0)")


def check_scalars(op: str, **values: float) -> None:
    import math

    for name, v in values.items():
        if not math.isfinite(v):
            raise ValueError(f"solsa.{op}: argument '{name}' must be finite, got {v}")


def num_threads() -> int:
    return torch.get_num_threads()


def cuda_stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


def require_cuda_build(op: str) -> None:
    if not _C.has_cuda():
        raise RuntimeError(
            f"solsa.{op}: got CUDA tensors but solsa_ext was built without CUDA kernels. Rebuild on a "
            "machine with nvcc (SOLSA_BUILD_CUDA=1 pip install .)"
        )
