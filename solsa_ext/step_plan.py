"""StepPlan: the per-step kernel calls of an :class:`~solsa_ext.engine.OnlineEngine`, with
their params structs built once.

One step of the engine's per-step path is eight kernel calls on the EMG network (a ``step``
per layer, a ``learn`` per layer, a ``spatial_error`` per layer boundary). Through
``torch.ops.solsa`` each call costs about 25 us of dispatch, argument checks and params
construction, i.e. a quarter of a 2 ms step (measured: docs/PERFORMANCE.md). Every pointer
but the input's is the same from one step to the next (the engine owns the states, the
gradient accumulators and the error buffers; the optimizer updates the parameters in place),
so the plan builds the structs once and, per step, only sets the input pointer and the
sequence weight ``coef`` before calling the kernels of ``solsa_ext._C`` directly.

Same kernels, same arguments, same results as the ``torch.ops.solsa`` path (tested
bitwise). The engine uses a plan only where that is safe without the ops' checks:

- CPU tensors (the CUDA path keeps the ops: it has to read the current stream per call);
- input checks off (``solsa_ext.ops.input_checks(False)``, as the Trainer runs): the ops'
  per-call NaN/Inf scans are what checks-on asks for;
- parameters unchanged: :meth:`StepPlan.matches` compares the parameters' data pointers,
  shapes and dtypes with those the plan was built for, and the engine rebuilds the plan when
  they differ (for example after ``param.data = new_tensor``).

Shape legend: B batch, N[l] layer sizes, N[-1] = input size C; the buffers ``mu[l]`` are
(B, N[l]).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .engine import OnlineEngine


def param_signature(engine: "OnlineEngine") -> tuple:
    """What the plan's raw pointers depend on: every parameter and gradient tensor's address,
    shape and dtype (cheap: no data is read)."""
    sig = []
    for p, g in zip(engine.params, engine._grads):
        for t in (p.w, p.decay, p.gain, g.w, g.decay, g.gain):
            sig.append(None if t is None else (t.data_ptr(), t.shape, t.dtype, t.is_contiguous()))
    return tuple(sig)


class StepPlan:
    """Prebuilt ``step`` / ``learn`` / ``spatial_error`` calls for one engine after one reset."""

    def __init__(self, engine: "OnlineEngine") -> None:
        from . import ops  # noqa: F401  (checks the compiled module is there)
        from .ops._lib import _C, dtype_code

        n, r = engine.neuron, engine.rule
        layers = engine._fused
        B = engine._batch
        dt = dtype_code(engine.params[0].w.dtype)
        self.signature = param_signature(engine)
        self.mu = [torch.zeros(B, p.n_out, dtype=p.w.dtype) for p in engine.params]
        self._keep = (engine.params, engine._grads, layers, self.mu)  # the structs point into these
        self.step_params = []
        self.learn_params = []
        self.se_params: list[Optional[object]] = []
        for l, (p, s, g) in enumerate(zip(engine.params, layers, engine._grads)):
            sp = _C.StepParams()
            sp.batch, sp.n_out, sp.n_in, sp.dtype = B, p.n_out, p.n_in, dt
            sp.w = p.w.data_ptr()
            sp.decay = p.decay.data_ptr() if r.filter else 0
            sp.gain = p.gain.data_ptr() if r.filter else 0
            sp.F = s.F.data_ptr() if s.F is not None else 0
            sp.F_prev = s.F_prev.data_ptr() if s.F_prev is not None else 0
            sp.e, sp.V, sp.O, sp.sg = s.e.data_ptr(), s.V.data_ptr(), s.O.data_ptr(), s.sg.data_ptr()
            sp.lam, sp.vth, sp.sigma = float(n.lam), float(n.vth), float(n.sigma)
            sp.filter = bool(r.filter)
            sp.reset_in_trace = bool(r.reset_in_trace)
            lp = _C.LearnParams()
            lp.batch, lp.n_out, lp.n_in, lp.dtype = B, p.n_out, p.n_in, dt
            lp.mu, lp.e, lp.gw = self.mu[l].data_ptr(), s.e.data_ptr(), g.w.data_ptr()
            if r.adaptive:
                lp.w, lp.F_prev = p.w.data_ptr(), s.F_prev.data_ptr()
                lp.gdecay, lp.ggain = g.decay.data_ptr(), g.gain.data_ptr()
            lp.presyn = s.e.dim() == 2
            if l > 0:
                # the layer's input is the lower layer's spikes: a fixed, contiguous buffer
                lower = layers[l - 1].O
                sp.x = lower.data_ptr()
                sp.x_stride_b, sp.x_stride_j = lower.stride()
                if r.adaptive:
                    lp.x = lower.data_ptr()
                    lp.x_stride_b, lp.x_stride_j = lower.stride()
                ep = _C.SpatialErrorParams()
                ep.batch, ep.n_out, ep.n_in, ep.dtype = B, p.n_out, p.n_in, dt
                ep.mu_up, ep.w = self.mu[l].data_ptr(), p.w.data_ptr()
                ep.gain = p.gain.data_ptr() if r.filter else 0
                ep.sg, ep.out = layers[l - 1].sg.data_ptr(), self.mu[l - 1].data_ptr()
                self.se_params.append(ep)
            else:
                self.se_params.append(None)
            self.step_params.append(sp)
            self.learn_params.append(lp)
        self._adaptive = bool(r.adaptive)
        self._step = _C.step_cpu
        self._learn = _C.learn_cpu
        self._se = _C.spatial_error_cpu

    def matches(self, engine: "OnlineEngine") -> bool:
        return param_signature(engine) == self.signature

    def forward(self, x_t: torch.Tensor) -> None:
        """Step every layer on ``x_t`` (B, C), already checked by the engine (shape, dtype, device)."""
        nt = torch.get_num_threads()
        sp0, lp0 = self.step_params[0], self.learn_params[0]
        ptr, (sb, sj) = x_t.data_ptr(), x_t.stride()
        sp0.x, sp0.x_stride_b, sp0.x_stride_j = ptr, sb, sj
        if self._adaptive:
            lp0.x, lp0.x_stride_b, lp0.x_stride_j = ptr, sb, sj
        for sp in self.step_params:
            self._step(sp, nt)

    def backward(self, coef: float) -> None:
        """Accumulate the step's gradients from ``mu[-1]`` (filled by the caller), top-down."""
        nt = torch.get_num_threads()
        for l in range(len(self.step_params) - 1, -1, -1):
            lp = self.learn_params[l]
            lp.coef = coef
            self._learn(lp, nt)
            ep = self.se_params[l]
            if ep is not None:
                self._se(ep, nt)
