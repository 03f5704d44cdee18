"""Atomic file writes: readers see either the old file or the complete new one.

The content goes to a temporary file in the destination's folder, is flushed to disk, gets
the permissions a plain ``open()`` would have given it (``tempfile.mkstemp`` creates files
readable by their owner only), and is then moved over the destination with ``os.replace``.
On any failure the temporary file is removed and the destination is left as it was.
"""
from __future__ import annotations

import os
import tempfile
from typing import IO, Any, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, write: Callable[[IO[Any]], None], binary: bool = True) -> None:
    """Call ``write(f)`` on a temporary file, then move it to ``path`` (folders are created)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + ".", dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save(obj)`` to ``path``, atomically."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))
