"""solsa_ext.atomic: all-or-nothing writes with the permissions of a plain open()."""
from __future__ import annotations

import os

import pytest

from solsa_ext.atomic import atomic_write


def test_new_file_gets_umask_mode_and_existing_file_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        p = tmp_path / "sub" / "a.json"
        atomic_write(p, lambda f: f.write("1"), binary=False)
        assert p.read_text() == "1" and p.stat().st_mode & 0o777 == 0o640
        os.chmod(p, 0o600)
        atomic_write(p, lambda f: f.write(b"2"))
        assert p.read_text() == "2" and p.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")

    def boom(f):
        f.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(p, boom, binary=False)
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_long_file_name(tmp_path):
    # the temporary name does not grow with the target's (255 bytes is the usual limit)
    p = tmp_path / ("x" * 250 + ".json")
    atomic_write(p, lambda f: f.write("{}"), binary=False)
    assert p.read_text() == "{}" and len(os.listdir(tmp_path)) == 1
