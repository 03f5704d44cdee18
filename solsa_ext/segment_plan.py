"""SegmentPlan: the segment-kernel calls of an :class:`~solsa_ext.engine.OnlineEngine`,
with their params structs and buffers built once per ``reset()``.

A chunk of the segment path (``OnlineEngine.run_segment``) is one ``forward_segment`` and one
``learn_segment`` call per layer plus the spatial errors' matmuls. Through
``torch.ops.solsa`` each call costs tens of microseconds of dispatch, argument checks, params
construction and output allocation, which on the small networks of the paper is a quarter of
the chunk's time (docs/PERFORMANCE.md). Here the per-layer buffers of a chunk (spikes and
surrogates of every step, the surrogate before the chunk, the spatial errors, the ``coef``
sequence) are allocated once for the longest chunk, the structs point into them, and per
chunk only the segment length, the input pointer, the top layer's error pointer and the
``coef`` values are set before the kernels of ``solsa_ext._C`` are called directly.

Same kernels, same arguments, same results as the ``torch.ops.solsa`` path (tested
bitwise: python_tests/test_segment_plan.py). Used under the same conditions as
:class:`~solsa_ext.step_plan.StepPlan`: CPU, input checks off, parameters unchanged since
the plan was built (:meth:`SegmentPlan.matches`).

Shape legend: Smax = ``SEGMENT_CHUNK``, S <= Smax the chunk's steps, B batch, N[l] layer
``l``'s neurons, C the input size. Buffers: ``O_seq[l]``, ``sg_seq[l]``, ``mu[l]``
(Smax, B, N[l]); ``sg0[l]`` (B, N[l]); ``coef`` (Smax,) float64.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import torch

from .neuron import decay_gain_coef
from .step_plan import param_signature

if TYPE_CHECKING:  # pragma: no cover
    from .engine import OnlineEngine


class SegmentPlan:
    """Prebuilt ``forward_segment`` / ``learn_segment`` calls for one engine after one reset."""

    def __init__(self, engine: "OnlineEngine", max_seg: int) -> None:
        from . import ops  # noqa: F401  (checks the compiled module is there)
        from .ops._lib import _C, dtype_code

        n, r = engine.neuron, engine.rule
        layers = engine._fused
        B = engine._batch
        w0 = engine.params[0].w
        dt = dtype_code(w0.dtype)
        z = lambda *s: torch.zeros(*s, dtype=w0.dtype)  # noqa: E731
        self.signature = param_signature(engine)
        self.max_seg = max_seg
        self.O_seq = [z(max_seg, B, p.n_out) for p in engine.params]
        self.sg_seq = [z(max_seg, B, p.n_out) for p in engine.params]
        self.mu = [z(max_seg, B, p.n_out) for p in engine.params]
        self.sg0 = [z(B, p.n_out) for p in engine.params]
        self.coef = torch.zeros(max_seg, dtype=torch.float64)
        self._keep = (engine.params, engine._grads, layers)  # the structs point into these
        self.fwd, self.lrn = [], []
        for l, (p, s, g) in enumerate(zip(engine.params, layers, engine._grads)):
            fp = _C.ForwardSegmentParams()
            fp.batch, fp.n_out, fp.n_in, fp.dtype = B, p.n_out, p.n_in, dt
            fp.w = p.w.data_ptr()
            fp.decay = p.decay.data_ptr() if r.filter else 0
            fp.gain = p.gain.data_ptr() if r.filter else 0
            fp.F = s.F.data_ptr() if r.filter else 0
            fp.V, fp.O, fp.sg = s.V.data_ptr(), s.O.data_ptr(), s.sg.data_ptr()
            fp.O_seq, fp.sg_seq = self.O_seq[l].data_ptr(), self.sg_seq[l].data_ptr()
            fp.lam, fp.vth, fp.sigma = float(n.lam), float(n.vth), float(n.sigma)
            fp.filter = bool(r.filter)
            lp = _C.LearnSegmentParams()
            lp.batch, lp.n_out, lp.n_in, lp.dtype = B, p.n_out, p.n_in, dt
            lp.w = p.w.data_ptr()
            lp.decay, lp.gain = fp.decay, fp.gain
            lp.F, lp.e = fp.F, s.e.data_ptr()
            lp.sg0, lp.sg_seq, lp.mu_seq = self.sg0[l].data_ptr(), fp.sg_seq, self.mu[l].data_ptr()
            lp.coef = self.coef.data_ptr()
            lp.gw = g.w.data_ptr()
            lp.gdecay = g.decay.data_ptr() if g.decay is not None else 0
            lp.ggain = g.gain.data_ptr() if g.gain is not None else 0
            lp.lam, lp.vth = float(n.lam), float(n.vth)
            lp.filter = bool(r.filter)
            lp.reset_in_trace = bool(r.reset_in_trace)
            if l > 0:
                # the layer's input is the lower layer's spike buffer (S, B, N[l-1]), contiguous
                lower = self.O_seq[l - 1]
                for q in (fp, lp):
                    q.x = lower.data_ptr()
                    q.x_stride_t, q.x_stride_b, q.x_stride_j = lower.stride()
            self.fwd.append(fp)
            self.lrn.append(lp)
        self._adaptive = bool(r.adaptive)
        self._gamma = r.gamma
        self._forward = _C.forward_segment_cpu
        self._learn = _C.learn_segment_cpu

    def matches(self, engine: "OnlineEngine") -> bool:
        return param_signature(engine) == self.signature

    def run(
        self,
        engine: "OnlineEngine",
        xc: torch.Tensor,
        top_error: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """One chunk on ``xc`` (S, B, C) (checked by the engine); ``top_error(O_top, sg_top)``
        returns the top layer's mu (S, B, N_top). Returns a copy of the top spikes (S, B, N_top)."""
        S = xc.shape[0]
        if S > self.max_seg:
            raise ValueError(f"SegmentPlan: chunk of {S} steps > {self.max_seg}")
        nt = torch.get_num_threads()
        L = len(self.fwd)
        f0, l0 = self.fwd[0], self.lrn[0]
        ptr, strides = xc.data_ptr(), xc.stride()
        for q in (f0, l0):
            q.x = ptr
            q.x_stride_t, q.x_stride_b, q.x_stride_j = strides
        for l in range(L):
            self.sg0[l].copy_(engine._fused[l].sg)
            fp = self.fwd[l]
            fp.seg = S
            self._forward(fp, nt)
        t0 = engine._t
        engine._t = t0 + S
        O_top = self.O_seq[-1][:S].clone()
        mu = top_error(O_top, self.sg_seq[-1][:S])
        if self._adaptive:
            g = self._gamma
            # one copy of S Python floats (a per-element tensor store costs microseconds each)
            self.coef[:S] = torch.tensor([decay_gain_coef(t0 + k, g) for k in range(S)], dtype=torch.float64)
        mu_ptr: Optional[int] = mu.data_ptr()
        for l in range(L - 1, -1, -1):
            lp = self.lrn[l]
            lp.seg = S
            if mu_ptr is not None:  # the top layer's error comes from top_error, the others from mu[l]
                lp.mu_seq = mu_ptr
            self._learn(lp, nt)
            if l > 0:
                p = engine.params[l]
                wg = p.w.detach() * p.gain.detach() if engine.rule.filter else p.w.detach()
                below = self.mu[l - 1][:S]
                torch.matmul(mu if mu_ptr is not None else self.mu[l][:S], wg, out=below)
                below.mul_(self.sg_seq[l - 1][:S])
            mu_ptr = None
        self.lrn[-1].mu_seq = self.mu[-1].data_ptr()
        engine._fused[0].x = xc[-1]
        for l in range(1, L):  # a copy: the buffer is overwritten by the next chunk
            engine._fused[l].x = self.O_seq[l - 1][S - 1].clone()
        return O_top
