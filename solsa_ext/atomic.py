"""Atomic file writes: readers see either the old file or the complete new one.

The content goes to a new temporary file in the destination's folder (created with mode
0666 minus the umask, as a plain ``open()`` would create it; an existing destination's mode
is kept), is flushed to disk, and is then moved over the destination with ``os.replace``.
On any failure the temporary file is removed and the destination is left as it was.
"""
from __future__ import annotations

import os
import secrets
from typing import IO, Any, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Callable[[IO[Any]], None], binary: bool = True) -> None:
    """Call ``write(f)`` on a temporary file, then move it to ``path`` (folders are created)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        keep_mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        keep_mode = None
    # O_EXCL on a random name, like mkstemp, but with the umask applied by the kernel
    # (mkstemp makes 0600 files, and reading the umask means changing it process-wide)
    while True:
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if keep_mode is not None:
            os.chmod(tmp, keep_mode)
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
