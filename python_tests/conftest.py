"""Shared fixtures of the trainer-layer tests (trainer, schedule, early stop, checkpoint, CLI, nn)."""
from __future__ import annotations

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a longer run (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "cuda: needs a CUDA device")


def _fused_ok() -> bool:
    try:
        import solsa_ext.ops  # noqa: F401
    except Exception:
        return False
    return True


FUSED = _fused_ok()
#: engine backends to test: the eager reference always, the fused kernels when built.
BACKENDS = ["reference"] + (["fused"] if FUSED else [])
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
needs_fused = pytest.mark.skipif(not FUSED, reason="compiled extension solsa_ext._C not built")


def make_spike_task(n_per_class: int = 16, n_classes: int = 3, channels: int = 12, T: int = 30,
                    hi: float = 0.5, lo: float = 0.05, seed: int = 0):
    """Poisson spike trains: class c fires at rate ``hi`` on its own block of channels, ``lo`` elsewhere.

    Returns x (N, C, T) float32 in {0, 1} and y (N,) int64, shuffled.
    """
    g = torch.Generator().manual_seed(seed)
    block = channels // n_classes
    xs, ys = [], []
    for c in range(n_classes):
        rate = torch.full((channels,), lo)
        rate[c * block:(c + 1) * block] = hi
        xs.append((torch.rand(n_per_class, channels, T, generator=g) < rate[None, :, None]).float())
        ys.append(torch.full((n_per_class,), c, dtype=torch.int64))
    x, y = torch.cat(xs), torch.cat(ys)
    perm = torch.randperm(x.shape[0], generator=g)
    return x[perm], y[perm]


@pytest.fixture(scope="session")
def spike_task():
    xtr, ytr = make_spike_task(seed=0)
    xte, yte = make_spike_task(n_per_class=10, seed=1)
    return xtr, ytr, xte, yte


@pytest.fixture(scope="session")
def basic_motions():
    pytest.importorskip("aeon")
    from solsa_ext import load_dataset

    return load_dataset("BasicMotions")


@pytest.fixture
def small_x():
    """(B=3, C=5, T=12) float64 currents with unequal lengths 12, 9, 7 (zero-padded)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 5, 12, generator=g, dtype=torch.float64) * 1.5 + 0.5
    lengths = torch.tensor([12, 9, 7])
    for b, L in enumerate(lengths.tolist()):
        x[b, :, L:] = 0
    y = torch.tensor([0, 2, 1])
    return x, y, lengths


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (the tensors are small; on a loaded 2-core machine
    intra-op threads cost far more than they give). Restores the previous count and turns
    flush-to-zero off again."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
    torch.set_flush_denormal(False)   # the Trainer turns it on (process-wide); leave others the default
