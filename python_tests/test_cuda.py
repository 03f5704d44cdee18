"""CUDA kernels == eager reference, and launches on the current (side) stream. Skipped without a GPU."""
from __future__ import annotations

import pytest
import torch

import solsa_ext.ops  # noqa: F401
from solsa_ext.ops._lib import _C
from solsa_ext.reference import LayerParams

from _netutil import FLAG_CASES, draw_case, linear_quadratic_loss, reference, run_engine

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and _C.has_cuda()), reason="needs a CUDA GPU and a CUDA build of solsa_ext"
)
TOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def _to(params, device):
    return [LayerParams(p.w.to(device), p.decay.to(device), p.gain.to(device)) for p in params]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule_name", list(FLAG_CASES))
@pytest.mark.parametrize("sizes", [(1, 5, 3), (13, 17, 1, 9), (70, 129, 7)], ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("B,T", [(1, 31), (3, 7), (16, 2), (16, 1)])
def test_cuda_engine_matches_reference(B, T, sizes, rule_name, dtype):
    rule = FLAG_CASES[rule_name]
    params, x, gen = draw_case(sizes, B, T, dtype, rule, seed=B + T)
    C = torch.randn(B, sizes[-1], T, generator=gen, dtype=torch.float64).to(dtype)
    _, dEdO = linear_quadratic_loss(C)
    ref = reference(x.double(), _to(params, "cpu"), rule, lambda t, O: dEdO(t, O.to(dtype)).double())
    Cd = C.cuda()
    eng, spikes = run_engine(x.cuda(), _to(params, "cuda"), rule, lambda t, O: Cd[:, :, t] + O)
    assert torch.equal(spikes.cpu().double(), ref.spikes)
    for g, r in zip(eng.grads(), ref.grads):
        scale = max(1.0, r.w.abs().max().item())
        assert (g.w.cpu().double() - r.w).abs().max().item() <= TOL[dtype] * scale
        if rule.adaptive:
            for a, b in ((g.decay, r.decay), (g.gain, r.gain)):
                assert (a.cpu().double() - b).abs().max().item() <= TOL[dtype] * max(1.0, b.abs().max().item())


def test_cuda_side_stream():
    """Ops queued on a side stream behind a long kernel must wait for it (they use the current stream)."""
    rule = FLAG_CASES["solsa"]
    params, x, gen = draw_case((32, 256, 10), 8, 5, torch.float32, rule, seed=3)
    C = torch.randn(8, 10, 5, generator=gen)
    _, dEdO = linear_quadratic_loss(C)
    eng_ref, spikes_ref = run_engine(x.cuda(), _to(params, "cuda"), rule, lambda t, O: C.cuda()[:, :, t] + O)
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        big = torch.randn(4096, 4096, device="cuda")
        for _ in range(10):
            big = big @ big / 64.0          # keeps the side stream busy
        xs = x.cuda() + 0 * big[0, 0]        # x depends on the busy work
        Cs = C.cuda()
        eng, spikes = run_engine(xs, _to(params, "cuda"), rule, lambda t, O: Cs[:, :, t] + O)
    s.synchronize()
    assert torch.equal(spikes, spikes_ref)
    for a, b in zip(eng.grads(), eng_ref.grads()):
        assert torch.equal(a.w, b.w)
