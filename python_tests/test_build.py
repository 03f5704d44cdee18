"""Tests of the raw, torch-free native module solsa_ext._C.

Buffers are numpy arrays passed by address (arr.ctypes.data); the expected values are
the header semantics (csrc/*/*_params.h) written out in numpy, in the same dtype.
"""

import itertools
import math

import numpy as np
import pytest

try:
    from solsa_ext import _C
except ImportError as exc:  # a missing build must fail loudly, not skip
    raise ImportError(
        "solsa_ext._C is not built: run `pip install -e .` (or "
        "`python setup.py build_ext --inplace`) first") from exc

DT = {np.float32: 0, np.float64: 1}
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def ptr(a):
    return 0 if a is None else a.ctypes.data


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- module facts


def test_module_facts():
    assert isinstance(_C.has_cuda(), bool)
    assert isinstance(_C.openmp(), bool)
    assert isinstance(_C.cuda_archs(), str)
    n = _C.cuda_device_count()
    assert isinstance(n, int) and n >= 0
    if _C.has_cuda():
        assert _C.cuda_archs() != ""
    else:
        assert _C.cuda_archs() == ""
        with pytest.raises(RuntimeError, match="without CUDA"):
            _C.step_cuda(_C.StepParams(), 0)
        with pytest.raises(RuntimeError, match="without CUDA"):
            _C.learn_cuda(_C.LearnParams(), 0)
        with pytest.raises(RuntimeError, match="without CUDA"):
            _C.spatial_error_cuda(_C.SpatialErrorParams(), 0)


def test_params_properties():
    p = _C.StepParams()
    assert (p.batch, p.n_out, p.n_in) == (0, 0, 0)
    assert p.dtype == _C.DType.float32 and int(p.dtype) == 0
    assert p.x == 0 and p.F_prev == 0
    assert p.filter is True and p.reset_in_trace is True
    assert (p.lam, p.vth, p.sigma) == (0.0, 1.0, 1.0)
    p.dtype = 1
    assert p.dtype == _C.DType.float64
    p.dtype = _C.DType.float32
    assert int(p.dtype) == 0
    with pytest.raises((ValueError, TypeError)):
        p.dtype = 7
    big = (1 << 63) + 16
    p.x = big
    assert p.x == big
    p.x = 0
    assert p.x == 0
    lp = _C.LearnParams()
    assert lp.coef == 1.0 and lp.presyn is False and lp.gdecay == 0
    sp = _C.SpatialErrorParams()
    assert sp.gain == 0 and sp.out == 0


def test_empty_is_noop():
    for B, NO, NI in [(0, 3, 4), (2, 0, 4), (0, 0, 0)]:
        p = _C.StepParams()
        p.batch, p.n_out, p.n_in = B, NO, NI
        _C.step_cpu(p, 2)  # null pointers, nothing to touch
        lp = _C.LearnParams()
        lp.batch, lp.n_out, lp.n_in = B, NO, NI
        _C.learn_cpu(lp, 2)
        sp = _C.SpatialErrorParams()
        sp.batch, sp.n_out, sp.n_in = B, NO, 0
        _C.spatial_error_cpu(sp, 2)


def test_null_required_pointer_raises():
    p = _C.StepParams()
    p.batch, p.n_out, p.n_in = 1, 1, 1
    with pytest.raises(ValueError):
        _C.step_cpu(p, 1)


# ---------------------------------------------------------------- step

def step_ref(s, x, w, decay, gain, lam, vth, sigma, filt, reset, want_fprev):
    """Header semantics of step_params.h on copies of the state dict s."""
    t = x.dtype.type
    lam, vth, sigma = t(lam), t(vth), t(sigma)
    s = {k: v.copy() for k, v in s.items()}
    presyn = not filt and not reset
    k = (lam - vth * s["sg"]) if reset else np.full_like(s["sg"], lam)
    if filt:
        fprev = s["F"].copy()
        fn = decay[None] * s["F"] + gain[None] * x[:, None, :]
        s["F"] = fn
        if want_fprev:
            s["F_prev"] = fprev
    else:
        fn = np.broadcast_to(x[:, None, :], s["V"].shape + (x.shape[1],))
    if presyn:
        s["e"] = lam * s["e"] + x
    else:
        s["e"] = k[..., None] * s["e"] + fn
    syn = (w[None] * fn).sum(-1)
    v = (lam * s["V"] + syn) - vth * s["O"]
    s["V"] = v
    s["O"] = (v >= vth).astype(x.dtype)
    d = v - vth
    s["sg"] = np.exp(-(d * d) / (t(2) * sigma * sigma)) / (sigma * t(math.sqrt(2 * math.pi)))
    return s


def make_step(dtype, B, NO, NI, filt, reset, seed=0):
    r = rng(seed)
    f = lambda *sh: r.standard_normal(sh).astype(dtype)  # noqa: E731
    presyn = not filt and not reset
    s = {
        "V": f(B, NO) * 0.5 + 0.8,
        "O": (r.random((B, NO)) < 0.5).astype(dtype),
        "sg": r.random((B, NO)).astype(dtype),
        "e": f(B, NI) if presyn else f(B, NO, NI),
    }
    if filt:
        s["F"] = f(B, NO, NI)
        s["F_prev"] = np.zeros((B, NO, NI), dtype)
    x = (r.random((B, NI)) < 0.4).astype(dtype) + f(B, NI) * 0.1
    w = f(NO, NI) * 0.5
    decay = r.random((NO, NI)).astype(dtype)
    gain = (r.random((NO, NI)) + 0.5).astype(dtype)
    return s, x, w, decay, gain


def run_step(s, x, w, decay, gain, lam, vth, sigma, filt, reset, want_fprev, nt,
             x_buf=None, sxb=None, sxj=1):
    p = _C.StepParams()
    B, NI = x.shape
    NO = w.shape[0]
    p.batch, p.n_out, p.n_in = B, NO, NI
    p.dtype = DT[x.dtype.type]
    if x_buf is None:
        x_buf, sxb = x, NI
    p.x, p.x_stride_b, p.x_stride_j = ptr(x_buf), sxb, sxj
    p.w = ptr(w)
    p.lam, p.vth, p.sigma = lam, vth, sigma
    p.filter, p.reset_in_trace = filt, reset
    if filt:
        p.decay, p.gain, p.F = ptr(decay), ptr(gain), ptr(s["F"])
        p.F_prev = ptr(s["F_prev"]) if want_fprev else 0
    p.e, p.V, p.O, p.sg = ptr(s["e"]), ptr(s["V"]), ptr(s["O"]), ptr(s["sg"])
    _C.step_cpu(p, nt)
    return s


STEP_CASES = [(f, r, fp) for f, r in itertools.product([True, False], [True, False])
              for fp in ([True, False] if f else [False])]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("filt,reset,want_fprev", STEP_CASES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 37)])
def test_step_matches_header(dtype, filt, reset, want_fprev, shape):
    B, NO, NI = shape
    lam, vth, sigma = 0.9, 1.0, 0.4
    s, x, w, decay, gain = make_step(dtype, B, NO, NI, filt, reset)
    exp = step_ref(s, x, w, decay, gain, lam, vth, sigma, filt, reset, want_fprev)
    got = run_step({k: v.copy() for k, v in s.items()}, x, w, decay, gain, lam, vth, sigma,
                   filt, reset, want_fprev, nt=2)
    for k in exp:
        if k == "F_prev" and not want_fprev:
            assert not got[k].any(), "F_prev must stay untouched when not wanted"
            continue
        np.testing.assert_allclose(got[k], exp[k], err_msg=k, **TOL[dtype])
        assert got[k].dtype == dtype
    # O is exactly 0/1 and consistent with the kernel's own V
    assert set(np.unique(got["O"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(got["O"], (got["V"] >= dtype(vth)).astype(dtype))


def test_step_hand_computed():
    # B=1, n_out=1, n_in=2, filter on, reset in trace; every number by hand.
    d = np.float64
    x = np.array([[1.0, 0.0]], d)
    w = np.array([[2.0, 3.0]], d)
    decay = np.array([[0.5, 0.5]], d)
    gain = np.array([[1.0, 2.0]], d)
    s = {"F": np.array([[[1.0, 2.0]]], d), "F_prev": np.zeros((1, 1, 2), d),
         "e": np.array([[[1.0, 1.0]]], d), "V": np.array([[0.5]], d),
         "O": np.array([[1.0]], d), "sg": np.array([[0.25]], d)}
    run_step(s, x, w, decay, gain, 0.5, 1.0, 1.0, True, True, True, nt=1)
    # Fn = [0.5*1 + 1*1, 0.5*2 + 2*0] = [1.5, 1.0];  k = 0.5 - 1*0.25 = 0.25
    np.testing.assert_array_equal(s["F"], [[[1.5, 1.0]]])
    np.testing.assert_array_equal(s["F_prev"], [[[1.0, 2.0]]])
    np.testing.assert_array_equal(s["e"], [[[0.25 + 1.5, 0.25 + 1.0]]])
    # V = 0.5*0.5 + (2*1.5 + 3*1.0) - 1*1 = 5.25 -> O = 1
    np.testing.assert_array_equal(s["V"], [[5.25]])
    np.testing.assert_array_equal(s["O"], [[1.0]])
    np.testing.assert_allclose(s["sg"], [[math.exp(-4.25 ** 2 / 2) / math.sqrt(2 * math.pi)]],
                               rtol=1e-15)


def test_step_spike_at_threshold_and_float32_surrogate():
    # V lands exactly on vth -> O = 1 (>=); sg computed in float32 math.
    f = np.float32
    x = np.array([[1.0]], f)
    s = {"e": np.zeros((1, 1, 1), f), "V": np.zeros((1, 1), f), "O": np.zeros((1, 1), f),
         "sg": np.zeros((1, 1), f)}
    run_step(s, x, np.array([[0.75]], f), None, None, 0.5, 0.75, 0.3, False, True, False, 1)
    assert s["V"][0, 0] == f(0.75) and s["O"][0, 0] == 1.0
    assert s["sg"][0, 0] == f(1) / (f(0.3) * f(math.sqrt(2 * math.pi)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("filt,reset,want_fprev", STEP_CASES)
def test_step_threads_bitwise(dtype, filt, reset, want_fprev):
    B, NO, NI = 4, 33, 301
    s, x, w, decay, gain = make_step(dtype, B, NO, NI, filt, reset, seed=3)
    outs = []
    for nt in (1, 2, 0):
        outs.append(run_step({k: v.copy() for k, v in s.items()}, x, w, decay, gain,
                             0.9, 1.0, 0.5, filt, reset, want_fprev, nt))
    for o in outs[1:]:
        for k in o:
            np.testing.assert_array_equal(o[k], outs[0][k], err_msg=k)


@pytest.mark.parametrize("filt,reset", [(True, True), (False, True), (False, False)])
def test_step_strided_x(filt, reset):
    dtype = np.float64
    B, NO, NI = 3, 4, 7
    s, x, w, decay, gain = make_step(dtype, B, NO, NI, filt, reset, seed=5)
    # stride_j = 2 (every other element of a wider row), stride_b = 0 (same row for all b)
    row = np.zeros(2 * NI, dtype)
    row[::2] = x[0]
    xb = np.broadcast_to(x[0], (B, NI)).copy()
    exp = step_ref(s, xb, w, decay, gain, 0.8, 1.0, 0.5, filt, reset, filt)
    got = run_step({k: v.copy() for k, v in s.items()}, xb, w, decay, gain, 0.8, 1.0, 0.5,
                   filt, reset, filt, 2, x_buf=row, sxb=0, sxj=2)
    for k in exp:
        np.testing.assert_allclose(got[k], exp[k], err_msg=k, **TOL[dtype])


def test_step_several_steps_presyn_keeps_trace_per_input():
    # OTTT: the trace is (B, n_in) and equals sum_s lam^(t-s) x[s]
    d = np.float64
    B, NO, NI, lam = 2, 3, 4, 0.7
    r = rng(9)
    s = {"e": np.zeros((B, NI), d), "V": np.zeros((B, NO), d), "O": np.zeros((B, NO), d),
         "sg": np.zeros((B, NO), d)}
    w = r.standard_normal((NO, NI))
    acc = np.zeros((B, NI))
    for t in range(5):
        x = (r.random((B, NI)) < 0.5).astype(d)
        ref = step_ref(s, x, w, None, None, lam, 1.0, 0.5, False, False, False)
        run_step(s, x, w, None, None, lam, 1.0, 0.5, False, False, False, 2)
        acc = lam * acc + x
        for k in s:
            np.testing.assert_allclose(s[k], ref[k], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(s["e"], acc, rtol=1e-12)


# ---------------------------------------------------------------- learn

def learn_ref(mu, x, w, e, fprev, gw, gd, gg, coef, presyn):
    t = mu.dtype.type
    coef = t(coef)
    gw, gd, gg = gw.copy(), None if gd is None else gd.copy(), None if gg is None else gg.copy()
    if presyn:
        gw += np.einsum("bi,bj->ij", mu, e)
    else:
        gw += (mu[..., None] * e).sum(0)
    if gd is not None:
        gd += (coef * w) * (mu[..., None] * fprev).sum(0)
    if gg is not None:
        gg += (coef * w) * np.einsum("bi,bj->ij", mu, x)
    return gw, gd, gg


def run_learn(mu, x, w, e, fprev, gw, gd, gg, coef, presyn, nt, x_buf=None, sxb=None, sxj=1):
    p = _C.LearnParams()
    B, NO = mu.shape
    NI = gw.shape[1]
    p.batch, p.n_out, p.n_in = B, NO, NI
    p.dtype = DT[mu.dtype.type]
    if x_buf is None:
        x_buf, sxb = x, NI
    p.mu, p.e, p.gw = ptr(mu), ptr(e), ptr(gw)
    p.x, p.x_stride_b, p.x_stride_j = (ptr(x_buf), sxb, sxj) if gg is not None else (0, 0, 0)
    p.w = ptr(w) if (gd is not None or gg is not None) else 0
    p.F_prev = ptr(fprev) if gd is not None else 0
    p.gdecay, p.ggain = ptr(gd), ptr(gg)
    p.coef, p.presyn = coef, presyn
    _C.learn_cpu(p, nt)
    return gw, gd, gg


def make_learn(dtype, B, NO, NI, presyn, seed=0):
    r = rng(seed)
    f = lambda *sh: r.standard_normal(sh).astype(dtype)  # noqa: E731
    return dict(mu=f(B, NO), x=f(B, NI), w=f(NO, NI), e=f(B, NI) if presyn else f(B, NO, NI),
                fprev=f(B, NO, NI), gw=f(NO, NI), gd=f(NO, NI), gg=f(NO, NI))


LEARN_CASES = list(itertools.product([False, True], [False, True], [False, True]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_gd,with_gg,presyn", LEARN_CASES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (5, 3, 700)])
def test_learn_matches_header(dtype, with_gd, with_gg, presyn, shape):
    a = make_learn(dtype, *shape, presyn)
    gd = a["gd"] if with_gd else None
    gg = a["gg"] if with_gg else None
    coef = 1.7
    exp = learn_ref(a["mu"], a["x"], a["w"], a["e"], a["fprev"], a["gw"], gd, gg, coef, presyn)
    got = run_learn(a["mu"], a["x"], a["w"], a["e"], a["fprev"], a["gw"].copy(),
                    None if gd is None else gd.copy(), None if gg is None else gg.copy(),
                    coef, presyn, 2)
    for g, ex in zip(got, exp):
        if ex is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, ex, **TOL[dtype])


def test_learn_batch_order_is_sum_then_add():
    # gw += sum_b(mu*e): the batch sum is formed first (increasing b), then added.
    d = np.float32
    mu = np.ones((3, 1), d)
    e = np.array([[[1e8]], [[1.0]], [[-1e8]]], d)
    gw = np.array([[1.0]], d)
    run_learn(mu, None, None, e, None, gw, None, None, 1.0, False, 1)
    s = (d(1e8) + d(1.0)) + d(-1e8)  # = 0 in float32
    assert gw[0, 0] == d(1.0) + s


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("presyn", [False, True])
def test_learn_threads_bitwise(dtype, presyn):
    a = make_learn(dtype, 6, 17, 1100, presyn, seed=4)
    outs = [run_learn(a["mu"], a["x"], a["w"], a["e"], a["fprev"], a["gw"].copy(),
                      a["gd"].copy(), a["gg"].copy(), 0.3, presyn, nt) for nt in (1, 2, 0)]
    for o in outs[1:]:
        for g, g0 in zip(o, outs[0]):
            np.testing.assert_array_equal(g, g0)


def test_learn_strided_x():
    d = np.float64
    B, NO, NI = 3, 4, 9
    a = make_learn(d, B, NO, NI, False, seed=6)
    row = np.zeros(2 * NI, d)
    row[::2] = a["x"][0]
    xb = np.broadcast_to(a["x"][0], (B, NI)).copy()
    exp = learn_ref(a["mu"], xb, a["w"], a["e"], a["fprev"], a["gw"], a["gd"], a["gg"], 2.0, False)
    got = run_learn(a["mu"], xb, a["w"], a["e"], a["fprev"], a["gw"].copy(), a["gd"].copy(),
                    a["gg"].copy(), 2.0, False, 2, x_buf=row, sxb=0, sxj=2)
    for g, ex in zip(got, exp):
        np.testing.assert_allclose(g, ex, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- spatial_error

def se_ref(mu, w, gain, sg):
    m = w if gain is None else w * gain
    return sg * (mu @ m)


def run_se(mu, w, gain, sg, nt):
    B, NO = mu.shape
    NI = w.shape[1]
    out = np.full((B, NI), np.nan, mu.dtype)
    p = _C.SpatialErrorParams()
    p.batch, p.n_out, p.n_in = B, NO, NI
    p.dtype = DT[mu.dtype.type]
    p.mu_up, p.w, p.gain, p.sg, p.out = ptr(mu), ptr(w), ptr(gain), ptr(sg), ptr(out)
    _C.spatial_error_cpu(p, nt)
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_gain", [True, False])
@pytest.mark.parametrize("shape", [(3, 4, 5), (4, 7, 1030)])
def test_spatial_error_matches_header(dtype, with_gain, shape):
    B, NO, NI = shape
    r = rng(7)
    f = lambda *sh: r.standard_normal(sh).astype(dtype)  # noqa: E731
    mu, w, gain, sg = f(B, NO), f(NO, NI), f(NO, NI), r.random((B, NI)).astype(dtype)
    g = gain if with_gain else None
    got = run_se(mu, w, g, sg, 2)
    np.testing.assert_allclose(got, se_ref(mu, w, g, sg), **TOL[dtype])
    for nt in (1, 0):
        np.testing.assert_array_equal(run_se(mu, w, g, sg, nt), got)


def test_spatial_error_hand_computed():
    d = np.float64
    mu = np.array([[1.0, 2.0]], d)  # B=1, upper n=2
    w = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], d)
    gain = np.array([[1.0, 0.5, 0.0], [2.0, 1.0, 1.0]], d)
    sg = np.array([[1.0, 0.5, 2.0]], d)
    # sums: [1*1*1 + 2*4*2, 1*2*0.5 + 2*5*1, 0 + 2*6*1] = [17, 11, 12]
    np.testing.assert_array_equal(run_se(mu, w, gain, sg, 1), [[17.0, 5.5, 24.0]])
    np.testing.assert_array_equal(run_se(mu, w, None, sg, 1), [[9.0, 6.0, 30.0]])


def test_spatial_error_zero_upper():
    d = np.float64
    sg = np.ones((2, 3), d)
    out = run_se(np.zeros((2, 0), d), np.zeros((0, 3), d), None, sg, 1)
    np.testing.assert_array_equal(out, np.zeros((2, 3)))
