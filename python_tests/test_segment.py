"""Time-blocked segment ops (torch.ops.solsa.forward_segment / learn_segment) and
OnlineEngine.run_segment == the per-step ops, the per-step engine and the eager reference.

The segment ops evaluate the step op's expressions in the step op's order, so spikes and
states (V, O, sg, F, e) are compared bitwise with S per-step calls; the gradients are
summed in another order (b outer, t inner) and compared to the tolerances of
docs/OPS.md (float64 1e-10, float32 2e-5, relative to max(1, |reference|)). One state is
the exception, by design: e-prop's trace e, which learn_segment advances over the whole
segment at once (unrolled recurrence, docs/OPS.md), is compared to those tolerances too.
"""
from __future__ import annotations

import zlib

import pytest
import torch

import solsa_ext.ops  # noqa: F401
from solsa_ext.engine import SEGMENT_CHUNK, OnlineEngine
from solsa_ext.neuron import decay_gain_coef
from solsa_ext.reference import LayerGrads, LayerParams, LayerState, layer_step_ref, learn_ref

from _netutil import FLAG_CASES, NEURON, draw_case

TOL = {torch.float64: 1e-10, torch.float32: 2e-5}
LAM, VTH, SIG = NEURON.lam, NEURON.vth, NEURON.sigma
WARM = 3  # per-step calls before the segment, so it starts from non-zero states


def _close(a, b, dtype, what):
    scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
    err = (a.double() - b.double()).abs().max().item() if b.numel() else 0.0
    assert err <= TOL[dtype] * scale, f"{what}: max abs err {err:.3e} > {TOL[dtype]:.0e} * {scale:.3g}"


def _same_state(a, b, name, rule, dtype, what):
    """Bitwise, except e-prop's trace (advanced by an unrolled recurrence: round-off)."""
    if name == "e" and not rule.filter and rule.reset_in_trace:
        _close(a, b, dtype, what)
    else:
        assert torch.equal(a, b), what


def _strided(x_sbn: torch.Tensor) -> torch.Tensor:
    """The same (S, B, n) values stored as (n, B, S): no dimension has unit stride."""
    return x_sbn.permute(2, 1, 0).contiguous().permute(2, 1, 0)


class _Layer:
    """States of one layer for the ops, in the engine's layout."""

    def __init__(self, B, n_out, n_in, dtype, rule):
        z = lambda *s: torch.zeros(*s, dtype=dtype)  # noqa: E731
        self.F = z(B, n_out, n_in) if rule.filter else None
        self.Fp = z(B, n_out, n_in) if rule.adaptive else None
        self.e = z(B, n_in) if rule.presyn else z(B, n_out, n_in)
        self.V, self.O, self.sg = z(B, n_out), z(B, n_out), z(B, n_out)

    def clone(self):
        c = object.__new__(_Layer)
        for k, v in vars(self).items():
            setattr(c, k, None if v is None else v.clone())
        return c


def _grads(p, rule):
    z = lambda: torch.zeros_like(p.w)  # noqa: E731
    return LayerGrads(z(), z() if rule.adaptive else None, z() if rule.adaptive else None)


def _step(x_t, p, s, rule):
    filt = rule.filter
    torch.ops.solsa.step(x_t, p.w, p.decay if filt else None, p.gain if filt else None, s.F, s.Fp, s.e,
                         s.V, s.O, s.sg, LAM, VTH, SIG, rule.reset_in_trace)


# (S, B, n_out, n_in, strided x)
OP_CASES = [
    (1, 1, 1, 1, True), (2, 3, 5, 17, True), (7, 16, 9, 64, False), (64, 3, 31, 3, True),
    (70, 1, 2, 33, False), (7, 16, 1, 13, True), (2, 1, 17, 1, False), (64, 16, 4, 20, True),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule_name", list(FLAG_CASES))
@pytest.mark.parametrize("S,B,n_out,n_in,strided", OP_CASES)
def test_segment_ops_match_per_step_and_reference(S, B, n_out, n_in, strided, rule_name, dtype):
    rule = FLAG_CASES[rule_name]
    seed = zlib.crc32(repr((S, B, n_out, n_in, rule_name)).encode()) % 997
    (p,), x, gen = draw_case((n_in, n_out), B, WARM + S, dtype, rule, seed)  # margin-checked
    xs = x.permute(2, 0, 1)                      # (T, B, n_in) view
    mu = torch.randn(S, B, n_out, generator=gen, dtype=torch.float64).to(dtype)
    mu = mu * (torch.rand(S, B, 1, generator=gen) > 0.2).to(dtype)
    coef = [decay_gain_coef(WARM + k, rule.gamma) for k in range(S)]

    s = _Layer(B, n_out, n_in, dtype, rule)
    for t in range(WARM):
        _step(xs[t], p, s, rule)
    seg = s.clone()

    # per-step ops
    g1 = _grads(p, rule)
    O1, sg1 = [], []
    for k in range(S):
        _step(xs[WARM + k], p, s, rule)
        O1.append(s.O.clone())
        sg1.append(s.sg.clone())
        torch.ops.solsa.learn(mu[k], s.e, g1.w, xs[WARM + k] if rule.adaptive else None,
                              p.w if rule.adaptive else None, s.Fp, g1.decay, g1.gain, coef[k])
    O1, sg1 = torch.stack(O1), torch.stack(sg1)

    # segment ops
    xseg = xs[WARM:]
    xseg = _strided(xseg) if strided else xseg.contiguous()
    if strided and B > 1 and n_in > 1:
        assert xseg.stride(2) != 1
    filt = rule.filter
    g2 = _grads(p, rule)
    O2 = torch.full((S, B, n_out), 7.0, dtype=dtype)
    sg2 = torch.full((S, B, n_out), 7.0, dtype=dtype)
    sg0 = seg.sg.clone()
    F_before = None if seg.F is None else seg.F.clone()
    torch.ops.solsa.forward_segment(xseg, p.w, p.decay if filt else None, p.gain if filt else None, seg.F,
                                    seg.V, seg.O, seg.sg, O2, sg2, LAM, VTH, SIG)
    if filt:
        assert torch.equal(seg.F, F_before), "forward_segment must not write F"
    torch.ops.solsa.learn_segment(xseg, p.w, p.decay if filt else None, p.gain if filt else None, seg.F, seg.e,
                                  sg0, sg2, mu, g2.w, g2.decay, g2.gain, coef, LAM, VTH, rule.reset_in_trace)

    assert torch.equal(O2, O1), "spikes differ from the per-step op"
    for name in ("V", "O", "sg", "e", "F"):
        a, b = getattr(seg, name), getattr(s, name)
        if b is not None:
            _same_state(a, b, name, rule, dtype, f"{name} differs from the per-step op")
    assert torch.equal(sg2, sg1)
    for name in ("w", "decay", "gain"):
        a, b = getattr(g2, name), getattr(g1, name)
        if b is not None:
            _close(a, b, dtype, f"grad {name} vs per-step ops")

    # float64 eager reference of the same run
    p64 = LayerParams(p.w.double(), p.decay.double(), p.gain.double())
    st = LayerState.zeros(B, n_out, n_in, torch.float64, x.device)
    gr = _grads(p64, rule)
    for t in range(WARM + S):
        st = layer_step_ref(xs[t].double(), p64, st, NEURON, rule)
        if t >= WARM:
            k = t - WARM
            assert torch.equal(O2[k].double(), st.O), f"spikes of step {k} differ from the reference"
            _close(sg2[k], st.sg, dtype, f"sg of step {k}")
            learn_ref(mu[k].double(), p64, st, gr, coef[k], rule)
    _close(seg.V, st.V, dtype, "V vs reference")
    _close(seg.e, st.e[:, 0, :] if rule.presyn else st.e, dtype, "e vs reference")
    if filt:
        _close(seg.F, st.F, dtype, "F vs reference")
    for name in ("w", "decay", "gain"):
        a, b = getattr(g2, name), getattr(gr, name)
        if a is not None:
            _close(a, b, dtype, f"grad {name} vs reference")


# ------------------------------------------------------------------ engine.run_segment
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule_name", list(FLAG_CASES))
@pytest.mark.parametrize("sizes,B,T,seg", [((13, 17, 1, 9), 3, 70, 70), ((8, 33, 7), 16, 23, 7),
                                           ((5, 4), 1, 131, 131)], ids=["split70", "seg7", "split131"])
def test_run_segment_matches_per_step_engine(sizes, B, T, seg, rule_name, dtype):
    rule = FLAG_CASES[rule_name]
    seed = zlib.crc32(repr((sizes, B, T, rule_name)).encode()) % 997
    params, x, gen = draw_case(sizes, B, T, dtype, rule, seed)
    C = torch.randn(B, sizes[-1], T, generator=gen, dtype=torch.float64).to(dtype)
    mask = (torch.rand(T, B, generator=gen) > 0.2).to(dtype)

    e1 = OnlineEngine(params, NEURON, rule)
    e1.reset(B)
    sp = []
    for t in range(T):
        O = e1.forward(x[:, :, t])
        sp.append(O.clone())
        e1.backward(C[:, :, t] + O, mask[t])
    sp = torch.stack(sp)

    def run_seg(eng):
        eng.reset(B)
        calls = []

        def dEdO(O):
            t1 = eng.t
            t0 = t1 - O.shape[0]
            calls.append(O.shape[0])
            return C[:, :, t0:t1].permute(2, 0, 1) + O

        outs = [eng.run_segment(x[:, :, s0:s0 + seg], dEdO, mask[s0:s0 + seg]) for s0 in range(0, T, seg)]
        assert max(calls) <= SEGMENT_CHUNK
        return torch.cat(outs)

    e2 = OnlineEngine(params, NEURON, rule)
    sp2 = run_seg(e2)
    assert e2.t == e1.t == T
    assert torch.equal(sp2, sp), "spikes differ"
    for l, (a, b) in enumerate(zip(e2._fused, e1._fused)):
        for name in ("F", "e", "V", "O", "sg"):
            if getattr(b, name) is not None:
                _same_state(getattr(a, name), getattr(b, name), name, rule, dtype, f"layer {l} {name} differs")
    for l, (a, b) in enumerate(zip(e2.grads(), e1.grads())):
        for name in ("w", "decay", "gain"):
            if getattr(b, name) is not None:
                _close(getattr(a, name), getattr(b, name), dtype, f"layer {l} grad {name}")

    if dtype == torch.float64 and seg != 131:
        # the reference backend's run_segment == the fused one
        e3 = OnlineEngine(params, NEURON, rule, backend="reference")
        sp3 = run_seg(e3)
        assert torch.equal(sp3, sp)
        for l, (a, b) in enumerate(zip(e3.grads(), e1.grads())):
            _close(a.w, b.w, dtype, f"reference layer {l} grad w")
        for l, (a, b) in enumerate(zip(e3._ref, e1._fused)):
            _close(a.V, b.V, dtype, f"reference layer {l} V")


def test_run_segment_bad_inputs():
    (p,), x, _ = draw_case((3, 2), 2, 5, torch.float64, FLAG_CASES["solsa"], 1)
    eng = OnlineEngine([p], NEURON, FLAG_CASES["solsa"])
    with pytest.raises(RuntimeError, match="reset"):
        eng.run_segment(x, lambda O: O)
    eng.reset(2)
    with pytest.raises(ValueError, match="x_seg"):
        eng.run_segment(x[:1], lambda O: O)
    with pytest.raises(ValueError, match="mask"):
        eng.run_segment(x, lambda O: O, torch.ones(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="dEdO_fn"):
        eng.run_segment(x, lambda O: O[0])
    assert eng.run_segment(x[:, :, :0], lambda O: O).shape == (0, 2, 2)


# ------------------------------------------------------------------ determinism, registration
def _op_args(rule, S=20, B=8, n_out=50, n_in=64, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    x = r(S, B, n_in)
    w = r(n_out, n_in) * 0.3
    decay = torch.rand(n_out, n_in, generator=gen, dtype=torch.float64).to(dtype) if rule.filter else None
    gain = torch.rand(n_out, n_in, generator=gen, dtype=torch.float64).to(dtype) + 0.5 if rule.filter else None
    F = r(B, n_out, n_in) if rule.filter else None
    e = r(B, n_in) if rule.presyn else r(B, n_out, n_in)
    V, O, sg = r(B, n_out), (r(B, n_out) > 0).to(dtype), r(B, n_out).abs()
    mu = r(S, B, n_out)
    sg_seq = r(S, B, n_out).abs()
    gw = torch.zeros(n_out, n_in, dtype=dtype)
    gd = torch.zeros_like(gw) if rule.adaptive else None
    gg = torch.zeros_like(gw) if rule.adaptive else None
    fwd = (x, w, decay, gain, F, V, O, sg, torch.zeros(S, B, n_out, dtype=dtype),
           torch.zeros(S, B, n_out, dtype=dtype), LAM, VTH, SIG)
    learn = (x, w, decay, gain, None if F is None else F.clone(), e, sg.clone(), sg_seq, mu, gw, gd, gg,
             [1.0 + 0.1 * k for k in range(S)], LAM, VTH, rule.reset_in_trace)
    return fwd, learn


def _cloned(args):
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def _assert_same_bits_at_1_and_2_threads(fwd, learn):
    """Run forward_segment + learn_segment on copies at 1 and at 2 threads: every tensor
    argument (inputs, states, outputs, gradients) must come out bitwise the same."""
    old = torch.get_num_threads()
    out = []
    try:
        for nt in (1, 2):
            torch.set_num_threads(nt)
            f, l = _cloned(fwd), _cloned(learn)
            torch.ops.solsa.forward_segment(*f)
            torch.ops.solsa.learn_segment(*l)
            out.append([a for a in f + l if isinstance(a, torch.Tensor)])
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*out):
        assert torch.equal(a, b)


@pytest.mark.parametrize("rule_name", list(FLAG_CASES))
def test_segment_ops_deterministic_across_threads(rule_name):
    fwd, learn = _op_args(FLAG_CASES[rule_name], S=20, B=8, n_out=50, n_in=67)
    _assert_same_bits_at_1_and_2_threads(fwd, learn)


@pytest.mark.parametrize("rule_name", ["eprop", "ottt"])
def test_segment_ops_mixed_sparsity_deterministic_across_threads(rule_name):
    """Spike input where some samples are sparse (the kernels' list-of-nonzeros path) and
    others busy (the dense path), large enough that the nonzero lists are built in
    parallel: 1 and 2 threads give the same bits."""
    rule = FLAG_CASES[rule_name]
    S, B, n_out, n_in = 20, 8, 30, 256
    fwd, learn = _op_args(rule, S=S, B=B, n_out=n_out, n_in=n_in)
    gen = torch.Generator().manual_seed(5)
    dens = torch.tensor([0.02 if b % 2 == 0 else 0.5 for b in range(B)])[None, :, None]
    x = (torch.rand(S, B, n_in, generator=gen) < dens).float()
    x[:, 2] = 0.0  # one sample without any spike
    assert 16 * x[:, 0].sum() < S * n_in < 16 * x[:, 1].sum()  # both paths are taken
    _assert_same_bits_at_1_and_2_threads((x,) + fwd[1:], (x,) + learn[1:])


NARROW_CASES = [(6, 100, 32, 10), (15, 37, 3, 7), (1, 5, 2, 3), (5, 10, 40, 30)]


def _narrow_vs_padded(n_in, n_out, B, S, dtype, threads, *, filt, reset, grads="none", density=None):
    """Layers with fewer than 16 inputs take the kernels' narrow paths (vectorised over the
    neurons); padded with dead inputs (x = 0, F = e = 0) to 16 or 21 inputs the same layer
    takes the row-wise ones. Every output of the real inputs must be bitwise the same: the
    narrow paths run each element's expressions in the row-wise order, and a dead input adds
    +0 to its lane of the j sum."""
    gen = torch.Generator().manual_seed(n_in * 1000 + n_out)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    x = r(S, B, n_in) if density is None else (torch.rand(S, B, n_in, generator=gen) < density).to(dtype)
    w = r(n_out, n_in) * 0.6
    decay = torch.rand(n_out, n_in, generator=gen, dtype=torch.float64).to(dtype)
    gain = (torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    F, e = r(B, n_out, n_in), r(B, n_out, n_in)
    V, O, sg = r(B, n_out), (r(B, n_out) > 0).to(dtype), r(B, n_out).abs()
    mu, coef = r(S, B, n_out), [1.0 + 0.1 * k for k in range(S)]

    def run(width):
        pad = lambda t: torch.nn.functional.pad(t, (0, width - n_in))  # noqa: E731
        Fw = pad(F) if filt else None
        ew = pad(e)
        Vw, Ow, sgw = V.clone(), O.clone(), sg.clone()
        O_seq, sg_seq = torch.zeros(S, B, n_out, dtype=dtype), torch.zeros(S, B, n_out, dtype=dtype)
        gw = torch.full((n_out, width), 0.25, dtype=dtype)
        gd = torch.full_like(gw, -0.5) if grads in ("both", "decay") else None
        gg = torch.full_like(gw, 0.75) if grads in ("both", "gain") else None
        xw, ww = pad(x), pad(w)
        dw, gnw = (pad(decay), pad(gain)) if filt else (None, None)
        torch.ops.solsa.forward_segment(xw, ww, dw, gnw, Fw, Vw, Ow, sgw, O_seq, sg_seq, LAM, VTH, SIG)
        torch.ops.solsa.learn_segment(xw, ww, dw, gnw, Fw, ew, sg.clone(), sg_seq, mu, gw, gd, gg, coef,
                                      LAM, VTH, reset)
        out = [Vw, Ow, sgw, O_seq, sg_seq] + [t[..., :n_in] for t in (Fw, ew, gw, gd, gg) if t is not None]
        return out

    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        narrow = run(n_in)
        for width in (16, 21):
            wide = run(width)
            for k, (a, b) in enumerate(zip(narrow, wide)):
                assert torch.equal(a, b) and torch.equal(a.signbit(), b.signbit()), \
                    f"output {k} of the {n_in}-input layer differs from its {width}-input padding"
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("grads", ["both", "decay", "gain", "none"])
@pytest.mark.parametrize("reset", [True, False], ids=["reset", "noreset"])
@pytest.mark.parametrize("n_in,n_out,B,S", NARROW_CASES)
def test_narrow_filter_layer_equals_the_wide_one(n_in, n_out, B, S, reset, grads, dtype, threads):
    """SOLSA's filter path (the last case, 10 neurons at 2 threads, splits one block's inputs
    between the threads)."""
    _narrow_vs_padded(n_in, n_out, B, S, dtype, threads, filt=True, reset=reset, grads=grads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("density", [None, 0.4, 0.03], ids=["currents", "spikes40", "spikes3"])
@pytest.mark.parametrize("n_in,n_out,B,S", NARROW_CASES)
def test_narrow_eprop_layer_equals_the_wide_one(n_in, n_out, B, S, density, dtype, threads):
    """e-prop (no filter, the unrolled per-synapse trace; forward without the filter): dense
    samples (the register tiles) and sparse ones (zero inputs skipped)."""
    _narrow_vs_padded(n_in, n_out, B, S, dtype, threads, filt=False, reset=True, density=density)


@pytest.mark.parametrize("rule_name", ["solsa", "eprop", "ottt"])
def test_opcheck_segment_ops(rule_name):
    rule = FLAG_CASES[rule_name]
    fwd, learn = _op_args(rule, S=3, B=2, n_out=3, n_in=4, dtype=torch.float64)
    torch.library.opcheck(torch.ops.solsa.forward_segment.default, fwd)
    torch.library.opcheck(torch.ops.solsa.learn_segment.default, learn)


def test_segment_ops_bad_inputs():
    rule = FLAG_CASES["solsa"]
    fwd, learn = _op_args(rule, S=3, B=2, n_out=3, n_in=4, dtype=torch.float64)
    fs, ls = torch.ops.solsa.forward_segment, torch.ops.solsa.learn_segment

    def with_(args, i, v):
        a = list(args)
        a[i] = v
        return a

    with pytest.raises(ValueError, match=r"forward_segment: argument 'x' must be 3-D"):
        fs(*with_(fwd, 0, fwd[0][0]))
    with pytest.raises(TypeError, match=r"forward_segment: argument 'x' has dtype"):
        fs(*with_(fwd, 0, fwd[0].float()))
    bad = fwd[0].clone()
    bad[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match=r"forward_segment: argument 'x' contains NaN"):
        fs(*with_(fwd, 0, bad))
    with pytest.raises(ValueError, match=r"forward_segment: argument 'O_seq' must have shape"):
        fs(*with_(fwd, 8, fwd[8][:2]))
    with pytest.raises(ValueError, match=r"forward_segment: the batch is empty"):
        fs(fwd[0][:, :0], *fwd[1:4], fwd[4][:0], fwd[5][:0], fwd[6][:0], fwd[7][:0], fwd[8][:, :0],
           fwd[9][:, :0], *fwd[10:])
    with pytest.raises(ValueError, match=r"forward_segment: 'decay' is required"):
        fs(*with_(fwd, 2, None))
    with pytest.raises(ValueError, match=r"forward_segment: 'sigma' must be > 0"):
        fs(*with_(fwd, 12, 0.0))
    with pytest.raises(ValueError, match=r"learn_segment: argument 'coef' must have one value per step"):
        ls(*with_(learn, 12, [1.0]))
    with pytest.raises(ValueError, match=r"learn_segment: argument 'mu_seq' contains NaN"):
        ls(*with_(learn, 8, torch.full_like(learn[8], float("nan"))))
    with pytest.raises(ValueError, match=r"learn_segment: argument 'e' must have shape"):
        ls(*with_(learn, 5, learn[5][:, 0]))
    with pytest.raises(ValueError, match=r"learn_segment: argument 'sg0' must have shape"):
        ls(*with_(learn, 6, learn[6][:1]))
    with pytest.raises(ValueError, match=r"learn_segment: 'gdecay' needs the synapse filter"):
        ls(*with_(learn, 4, None))
    _, lo = _op_args(FLAG_CASES["ottt"], S=3, B=2, n_out=3, n_in=4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"learn_segment: .* the trace is presynaptic"):
        ls(*with_(lo, 5, torch.zeros(2, 3, 4, dtype=torch.float64)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("rule_name", list(FLAG_CASES))
@pytest.mark.parametrize("S", [1, 7, 64, 70])
def test_segment_ops_cuda_match_cpu(rule_name, S):
    rule = FLAG_CASES[rule_name]
    fwd, learn = _op_args(rule, S=S, B=5, n_out=37, n_in=45, dtype=torch.float64, seed=S)
    f_cpu, l_cpu = _cloned(fwd), _cloned(learn)
    torch.ops.solsa.forward_segment(*f_cpu)
    torch.ops.solsa.learn_segment(*l_cpu)
    dev = lambda args: tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in args)  # noqa: E731
    f_gpu, l_gpu = dev(fwd), dev(learn)
    torch.ops.solsa.forward_segment(*f_gpu)
    torch.ops.solsa.learn_segment(*l_gpu)
    for a, b in zip(f_gpu + l_gpu, f_cpu + l_cpu):
        if isinstance(a, torch.Tensor):
            _close(a.cpu(), b, torch.float64, "cuda vs cpu")


@pytest.mark.parametrize("density", [0.15, 0.03])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("rule_name", ["eprop", "ottt"])
def test_segment_ops_skip_zero_inputs_exactly(rule_name, dtype, density):
    """Without the filter the CPU kernels skip inputs that are 0 (spikes): spike input with
    +0 and -0 entries (and a row with no spike at all) must still give the per-step op's
    states bitwise (e-prop's trace: to the tolerance, see the module doc) and its gradients
    to the tolerance."""
    rule = FLAG_CASES[rule_name]
    S, B, n_out, n_in = 9, 5, 19, 37
    gen = torch.Generator().manual_seed(11)
    w = (torch.randn(n_out, n_in, generator=gen, dtype=torch.float64) * 0.8).to(dtype)
    spikes = (torch.rand(WARM + S, B, n_in, generator=gen) < density).to(dtype)
    spikes[:, 1] = (torch.rand(WARM + S, n_in, generator=gen) < 0.5).to(dtype)  # one busy sample (dense path)
    neg0 = torch.rand(WARM + S, B, n_in, generator=gen) < 0.3
    xs = torch.where(neg0 & (spikes == 0), torch.tensor(-0.0, dtype=dtype), spikes)
    xs[:, 0] = 0.0  # sample 0 never spikes
    assert (torch.signbit(xs) & (xs == 0)).any()
    mu = torch.randn(S, B, n_out, generator=gen, dtype=torch.float64).to(dtype)
    p = LayerParams(w, torch.zeros_like(w), torch.zeros_like(w))

    s = _Layer(B, n_out, n_in, dtype, rule)
    for t in range(WARM):
        _step(xs[t], p, s, rule)
    seg = s.clone()
    g1 = _grads(p, rule)
    O1 = []
    for k in range(S):
        _step(xs[WARM + k], p, s, rule)
        O1.append(s.O.clone())
        torch.ops.solsa.learn(mu[k], s.e, g1.w, None, None, None, None, None, 1.0)
    g2 = _grads(p, rule)
    O2 = torch.empty(S, B, n_out, dtype=dtype)
    sg2 = torch.empty(S, B, n_out, dtype=dtype)
    sg0 = seg.sg.clone()
    xseg = xs[WARM:].contiguous()
    torch.ops.solsa.forward_segment(xseg, w, None, None, None, seg.V, seg.O, seg.sg, O2, sg2, LAM, VTH, SIG)
    torch.ops.solsa.learn_segment(xseg, w, None, None, None, seg.e, sg0, sg2, mu, g2.w, None, None,
                                  [1.0] * S, LAM, VTH, rule.reset_in_trace)
    assert torch.equal(O2, torch.stack(O1))
    assert O2.sum() > 0, "the test needs spikes"
    for name in ("V", "O", "sg", "e"):
        _same_state(getattr(seg, name), getattr(s, name), name, rule, dtype, f"{name} differs from the per-step op")
    _close(g2.w, g1.w, dtype, "grad w vs per-step ops")


def test_ops_refuse_outputs_that_alias_other_arguments():
    """The kernels write through raw pointers: an output sharing memory with another
    argument must be refused (it ran silently before)."""
    rule = FLAG_CASES["solsa"]
    S, B, n_out, n_in = 3, 2, 4, 5
    (p,), x, gen = draw_case((n_in, n_out), B, S, torch.float64, rule, seed=2)
    xs = x.permute(2, 0, 1).contiguous()
    s = _Layer(B, n_out, n_in, torch.float64, rule)
    O_seq = torch.zeros(S, B, n_out, dtype=torch.float64)
    sg_seq = torch.zeros_like(O_seq)
    with pytest.raises(ValueError, match="'V' \\(written by the kernel\\) overlaps argument 'O'"):
        torch.ops.solsa.forward_segment(xs, p.w, p.decay, p.gain, s.F, s.V, s.V, s.sg, O_seq, sg_seq, LAM, VTH, SIG)
    with pytest.raises(ValueError, match="'O_seq' \\(written by the kernel\\) overlaps argument 'sg_seq'"):
        torch.ops.solsa.forward_segment(xs, p.w, p.decay, p.gain, s.F, s.V, s.O, s.sg, O_seq, O_seq, LAM, VTH, SIG)
    big = torch.zeros(2 * B * n_out, dtype=torch.float64)
    V, O = big[: B * n_out].view(B, n_out), big[B * n_out - 1: 2 * B * n_out - 1].view(B, n_out)  # one element shared
    with pytest.raises(ValueError, match="overlaps"):
        torch.ops.solsa.step(xs[0], p.w, p.decay, p.gain, s.F, None, s.e, V, O, s.sg, LAM, VTH, SIG, True)
    g = _grads(p, rule)
    with pytest.raises(ValueError, match="'gw' \\(written by the kernel\\) overlaps argument 'e'"):
        torch.ops.solsa.learn(torch.zeros(B, n_out, dtype=torch.float64), s.e, s.e[1], None, None, None, None, None, 1.0)
    with pytest.raises(ValueError, match="'gw' \\(written by the kernel\\) overlaps argument 'w'"):
        torch.ops.solsa.learn_segment(xs, p.w, p.decay, p.gain, s.F, s.e, s.sg, O_seq, O_seq, p.w, g.decay, g.gain,
                                      [1.0] * S, LAM, VTH, True)
    # separate tensors still run
    torch.ops.solsa.forward_segment(xs, p.w, p.decay, p.gain, s.F, s.V, s.O, s.sg, O_seq, sg_seq, LAM, VTH, SIG)
