"""Packaging guards: what `pip install .` and its extras may pull in.

A loose torch requirement, or a package whose metadata asks for torchvision/torchaudio,
makes pip replace the installed (CPU) torch with a multi-GB CUDA build. These checks read
pyproject.toml; they need tomllib (Python >= 3.11) and are skipped without it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
# Packages whose own metadata requires torchvision/torchaudio (SpikingJelly 2.0), or those two.
PULLS_CUDA_TORCH = {"spikingjelly", "torchvision", "torchaudio"}


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_build_needs_no_torch(project):
    names = {_name(r) for r in project["build-system"]["requires"]}
    assert "torch" not in names and "pybind11" in names


def test_runtime_torch_is_a_floor_only(project):
    torch_reqs = [r for r in project["project"]["dependencies"] if _name(r) == "torch"]
    assert torch_reqs == ["torch>=2.4"]


def test_no_extra_pulls_a_cuda_torch(project):
    extras = project["project"]["optional-dependencies"]
    assert {"test", "data", "bench"} <= set(extras)
    for extra, reqs in extras.items():
        bad = {_name(r) for r in reqs} & PULLS_CUDA_TORCH
        assert not bad, f"extra {extra!r} lists {sorted(bad)}; install those with --no-deps instead"
        assert all(_name(r) != "torch" for r in reqs), f"extra {extra!r} must not re-specify torch"


def test_bench_extra_brings_what_spikingjelly_imports(project):
    # benchmarks/README.md installs SpikingJelly with --no-deps on top of this extra.
    names = {_name(r) for r in project["project"]["optional-dependencies"]["bench"]}
    assert {"snntorch", "loguru", "packaging", "scipy", "matplotlib", "tqdm"} <= names
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    assert "pip install --no-deps spikingjelly" in readme
