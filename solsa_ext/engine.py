"""OnlineEngine: drives a stack of PSP-LIF layers through time and learns online.

One call of :meth:`OnlineEngine.forward` runs step ``t`` of every layer bottom-up; one
call of :meth:`OnlineEngine.backward` then sends the step's error top-down and adds the
step's gradients to the accumulators (SOLSA_MATH.md sections 1-4). Nothing about past
steps is stored: memory does not depend on the sequence length.

Backends: ``"fused"`` calls the torch.ops.solsa kernels (CPU/OpenMP or CUDA);
``"reference"`` calls the eager functions of :mod:`solsa_ext.reference`. Both give the
same numbers (to round-off); tests check it.

:meth:`OnlineEngine.run_segment` runs S steps at once (the steps between two update
points): for the fused backend with the time-blocked ops ``torch.ops.solsa.forward_segment``
and ``torch.ops.solsa.learn_segment``, which keep each row's synapse state in cache for
all S steps; the states and gradients equal those of S forward/backward calls.

Shape legend: B batch, C input size, N[l] layer sizes; x_t (B, C); dEdO (B, N[L-1]).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from .neuron import NeuronConfig, decay_gain_coef
from .reference import LayerGrads, LayerParams, LayerState, layer_step_ref, learn_ref, spatial_error_ref
from .rule import RuleFlags
from .segment_plan import SegmentPlan
from .step_plan import StepPlan

BACKENDS = ("fused", "reference")

#: steps per chunk of :meth:`OnlineEngine.run_segment`. The chunk's per-neuron buffers
#: (spikes, surrogates, errors: chunk x B x N per layer) are the only memory that grows with
#: the segment, so a fixed small chunk keeps the training footprint the same for every
#: sequence length (measured: docs/RESULTS.md, memory table). 16 steps already keep each
#: per-synapse row in cache for long enough: 50-step chunks were only ~20% faster on the
#: EMG network. The CUDA segment kernel allows at most 64 (MAX_SEGMENT).
SEGMENT_CHUNK = 16


class _FusedLayer:
    """States of one layer for the fused kernels (only what the rule needs is allocated)."""

    def __init__(self, p: LayerParams, batch: int, rule: RuleFlags) -> None:
        w = p.w
        z = lambda *shape: torch.zeros(*shape, dtype=w.dtype, device=w.device)  # noqa: E731
        syn = (batch, p.n_out, p.n_in)
        self.F = z(*syn) if rule.filter else None
        # F[t-1], read by the per-step learn of the adaptive kernel only: allocated by the first
        # per-step forward(), so the segment path (the Trainer's) never holds it
        self.F_prev: Optional[torch.Tensor] = None
        self.e = z(batch, p.n_in) if rule.presyn else z(*syn)
        self.V, self.O, self.sg = z(batch, p.n_out), z(batch, p.n_out), z(batch, p.n_out)
        self.x: Optional[torch.Tensor] = None


class OnlineEngine:
    """Online learner over layers ``params`` (tensors read in place; optimizer updates are seen)."""

    def __init__(
        self,
        params: Sequence[LayerParams],
        neuron: NeuronConfig,
        rule: RuleFlags,
        backend: str = "fused",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"OnlineEngine: unknown backend {backend!r}; choose one of {BACKENDS}")
        if not params:
            raise ValueError("OnlineEngine: needs at least one layer")
        for l in range(1, len(params)):
            if params[l].n_in != params[l - 1].n_out:
                raise ValueError(
                    f"OnlineEngine: layer {l} takes {params[l].n_in} inputs but layer {l - 1} has "
                    f"{params[l - 1].n_out} neurons"
                )
        if rule.filter and any(p.decay is None or p.gain is None for p in params):
            raise ValueError("OnlineEngine: the synapse filter needs decay and gain for every layer")
        dt, dev = params[0].w.dtype, params[0].w.device
        if dt not in (torch.float32, torch.float64):
            raise TypeError(f"OnlineEngine: parameters must be float32 or float64, layer 0 'w' is {dt}")
        for l, p in enumerate(params):
            for name in ("w", "decay", "gain"):
                t = getattr(p, name)
                if t is None:
                    continue
                if t.dtype != dt or t.device != dev:
                    raise TypeError(
                        f"OnlineEngine: layer {l} '{name}' is {t.dtype} on {t.device} but layer 0 'w' is {dt} on "
                        f"{dev}: all parameters must share one dtype and device"
                    )
                if tuple(t.shape) != tuple(p.w.shape):
                    raise ValueError(
                        f"OnlineEngine: layer {l} '{name}' has shape {tuple(t.shape)}, expected {tuple(p.w.shape)} "
                        f"(n_out, n_in) like 'w'"
                    )
        if backend == "fused":
            from . import ops  # noqa: F401  (registers torch.ops.solsa)
        self.params = list(params)
        self.neuron = neuron
        self.rule = rule
        self.backend = backend
        self._t = 0
        self._batch = 0
        self._fused: list[_FusedLayer] = []
        self._ref: list[LayerState] = []
        self._plan: Optional[StepPlan] = None
        self._planned_step = False  # whether the last forward() ran through self._plan
        self._backward_due = False  # a forward() whose step has not had its backward() yet
        self._seg_plan: Optional[SegmentPlan] = None
        self._state_sig: tuple = ()
        self._grads = [self._new_grads(p) for p in self.params]

    # ----------------------------------------------------------------- helpers
    def _new_grads(self, p: LayerParams) -> LayerGrads:
        z = lambda: torch.zeros_like(p.w, memory_format=torch.contiguous_format).detach()  # noqa: E731
        return LayerGrads(z(), z() if self.rule.adaptive else None, z() if self.rule.adaptive else None)

    @staticmethod
    def _d(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if t is None else t.detach()

    @property
    def t(self) -> int:
        """Number of steps run since :meth:`reset` (the next step's index)."""
        return self._t

    @property
    def top_sg(self) -> torch.Tensor:
        """(B, N_top) surrogate derivative of the top layer at the current step."""
        return self._fused[-1].sg if self.backend == "fused" else self._ref[-1].sg

    def spikes(self, layer: int = -1) -> torch.Tensor:
        """(B, N[layer]) spikes of a layer at the current step."""
        return self._fused[layer].O if self.backend == "fused" else self._ref[layer].O

    # -------------------------------------------------------------------- API
    def reset(self, batch_size: int) -> None:
        """Start new sequences: zero every state and set the step counter to 0."""
        if batch_size <= 0:
            raise ValueError(f"OnlineEngine.reset: batch_size must be > 0, got {batch_size}")
        self._batch = batch_size
        self._t = 0
        self._planned_step = False
        self._backward_due = False
        w = self.params[0].w
        if self.backend == "fused":
            sig = self._state_signature(batch_size)
            if self._fused and self._state_sig == sig:
                # Same batch, shapes, neuron and rule: zero the states in place and keep the
                # plans (their raw pointers point into these tensors; they still re-check the
                # parameters' addresses before every use) instead of allocating the per-synapse
                # state afresh for every sequence (docs/PERFORMANCE.md: reset).
                for s in self._fused:
                    for t in (s.F, s.F_prev, s.e, s.V, s.O, s.sg):
                        if t is not None:
                            t.zero_()
                    s.x = None
            else:
                self._plan = None
                self._seg_plan = None
                self._fused = [_FusedLayer(p, batch_size, self.rule) for p in self.params]
                self._state_sig = sig
        else:
            self._ref = [LayerState.zeros(batch_size, p.n_out, p.n_in, w.dtype, w.device) for p in self.params]

    def _state_signature(self, batch_size: int) -> tuple:
        """What the fused states and the plans built on them depend on: the batch, every
        parameter's shape, dtype and device (the states are sized and typed from them), and the
        neuron constants and rule (the plans' structs hold them)."""
        shapes = tuple((tuple(p.w.shape), p.w.dtype, p.w.device) for p in self.params)
        return (batch_size, self.neuron, self.rule) + shapes

    def _ensure_f_prev(self) -> None:
        """Allocate the per-step path's F[t-1] buffers (adaptive kernel only) if not there yet."""
        if self.rule.adaptive and self._fused and self._fused[0].F_prev is None:
            for s in self._fused:
                s.F_prev = torch.zeros_like(s.F)

    def _check_plan_params(self) -> None:
        """Before a plan hands raw pointers to the kernels (checks off, no op in between):
        every parameter must still be what the states and gradients were allocated for."""
        for l, (p, g) in enumerate(zip(self.params, self._grads)):
            want_shape, want_dtype = tuple(g.w.shape), g.w.dtype
            names = ("w", "decay", "gain") if self.rule.filter else ("w",)
            for name in names:
                t = getattr(p, name)
                if not isinstance(t, torch.Tensor):
                    raise TypeError(f"OnlineEngine: layer {l} '{name}' must be a tensor, got {type(t).__name__}")
                if tuple(t.shape) != want_shape or t.dtype != want_dtype or t.device.type != "cpu":
                    raise ValueError(
                        f"OnlineEngine: layer {l} '{name}' is {t.dtype} {tuple(t.shape)} on {t.device}, but this "
                        f"engine's states and gradients are {want_dtype} {want_shape} on cpu; a parameter of "
                        "another shape, dtype or device needs a new OnlineEngine"
                    )
                if not t.is_contiguous():
                    raise ValueError(f"OnlineEngine: layer {l} '{name}' must be contiguous (call .contiguous())")

    def _plans_allowed(self) -> bool:
        """The plans bypass the ops: only on CPU and with the ops' input checks off."""
        from .ops import input_checks_enabled

        return not input_checks_enabled() and self.params[0].w.device.type == "cpu"

    def _use_plan(self) -> bool:
        """Whether this step may call the kernels through a :class:`StepPlan` (see its docstring)."""
        if not self._plans_allowed():
            return False
        if self._plan is None or not self._plan.matches(self):
            self._check_plan_params()
            self._plan = StepPlan(self)
        return True

    def _use_seg_plan(self) -> bool:
        """Whether a chunk may call the segment kernels through a :class:`SegmentPlan`."""
        if not self._plans_allowed():
            return False
        if self._seg_plan is None or not self._seg_plan.matches(self):
            self._check_plan_params()
            self._seg_plan = SegmentPlan(self, SEGMENT_CHUNK)
        return True

    @torch.no_grad()
    def forward(self, x_t: torch.Tensor) -> torch.Tensor:
        """Run step ``t`` of every layer on input ``x_t`` (B, C); return the top spikes (B, N_top)."""
        if self._batch == 0:
            raise RuntimeError("OnlineEngine.forward: call reset(batch_size) first")
        if x_t.dim() != 2 or x_t.shape[0] != self._batch or x_t.shape[1] != self.params[0].n_in:
            raise ValueError(
                f"OnlineEngine.forward: x_t must have shape ({self._batch}, {self.params[0].n_in}), got {tuple(x_t.shape)}"
            )
        n, r = self.neuron, self.rule
        inp = x_t
        if self.backend == "fused":
            w0 = self.params[0].w
            if x_t.dtype != w0.dtype or x_t.device != w0.device:
                raise ValueError(
                    f"OnlineEngine.forward: x_t must be {w0.dtype} on {w0.device} like the parameters, "
                    f"got {x_t.dtype} on {x_t.device}"
                )
            self._ensure_f_prev()
            self._planned_step = self._use_plan()
            if self._planned_step:
                self._plan.forward(x_t)
                for s in self._fused:
                    s.x = inp
                    inp = s.O
                self._t += 1
                self._backward_due = True
                return inp
            for p, s in zip(self.params, self._fused):
                torch.ops.solsa.step(
                    inp, p.w.detach(), self._d(p.decay) if r.filter else None, self._d(p.gain) if r.filter else None,
                    s.F, s.F_prev, s.e, s.V, s.O, s.sg, n.lam, n.vth, n.sigma, r.reset_in_trace,
                )
                s.x = inp
                inp = s.O
        else:
            for l, p in enumerate(self.params):
                q = LayerParams(p.w.detach(), self._d(p.decay), self._d(p.gain))
                self._ref[l] = layer_step_ref(inp, q, self._ref[l], n, r)
                inp = self._ref[l].O
        self._t += 1
        self._backward_due = True
        return inp

    @torch.no_grad()
    def backward(self, dEdO: torch.Tensor, sample_mask: Optional[torch.Tensor] = None) -> None:
        """Accumulate the current step's gradients from the top error ``dEdO`` (B, N_top).

        ``sample_mask`` (B,) multiplies each sample's error (0 = no gradient from it: padding
        or early stop). Gradients are batch sums of dE/dparam.
        """
        if not self._backward_due:
            # the traces and surrogates are those of the last forward() step; a second
            # backward() for it, or one after run_segment() or reset(), would add a wrong gradient
            raise RuntimeError(
                "OnlineEngine.backward: no forward() step is waiting for its backward() (each forward() takes "
                "one backward(); run_segment() does both for its steps): call forward(x_t) for this step first"
            )
        top = self.params[-1].n_out
        if dEdO.shape != (self._batch, top):
            raise ValueError(f"OnlineEngine.backward: dEdO must have shape ({self._batch}, {top}), got {tuple(dEdO.shape)}")
        r = self.rule
        coef = decay_gain_coef(self._t - 1, r.gamma)
        mu = dEdO.to(self.top_sg.dtype) * self.top_sg
        if sample_mask is not None:
            if sample_mask.shape != (self._batch,):
                raise ValueError(
                    f"OnlineEngine.backward: sample_mask must have shape ({self._batch},), got {tuple(sample_mask.shape)}"
                )
            mu = mu * sample_mask.to(mu.dtype)[:, None]
        self._backward_due = False  # arguments checked: this step's backward is done
        if self.backend == "fused" and self._planned_step:
            # forward() ran through the plan: so does this step's backward (same buffers)
            self._plan.mu[-1].copy_(mu)
            self._plan.backward(coef)
            return
        mu = mu.contiguous()
        for l in range(len(self.params) - 1, -1, -1):
            p, g = self.params[l], self._grads[l]
            if self.backend == "fused":
                s = self._fused[l]
                torch.ops.solsa.learn(
                    mu, s.e, g.w, s.x if r.adaptive else None, p.w.detach() if r.adaptive else None,
                    s.F_prev, g.decay, g.gain, coef,
                )
                if l > 0:
                    gain = p.gain.detach() if r.filter else None
                    mu = torch.ops.solsa.spatial_error(mu, p.w.detach(), gain, self._fused[l - 1].sg)
            else:
                q = LayerParams(p.w.detach(), self._d(p.decay), self._d(p.gain))
                learn_ref(mu, q, self._ref[l], g, coef, r)
                if l > 0:
                    mu = spatial_error_ref(mu, q, self._ref[l - 1].sg, r)

    @torch.no_grad()
    def run_segment(
        self,
        x_seg: torch.Tensor,
        dEdO_fn: Callable[[torch.Tensor], torch.Tensor],
        mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Run S steps (forward and gradient accumulation) on ``x_seg`` (B, C, S); return the
        top spikes of every step, (S, B, N_top).

        Equivalent to ``for s in range(S): O = forward(x_seg[:, :, s]); backward(dEdO(O), mask[s])``:
        the states (F, e, V, O, sg), the spikes and the step counter come out the same (the
        fused backend: bitwise for the states and spikes, except e-prop's per-synapse trace
        ``e``, which the CPU kernel advances over the whole segment at once; that trace and
        the gradients agree to round-off, since they are summed in another order). The
        segment is processed in chunks of at most ``SEGMENT_CHUNK`` (16) steps.
        ``dEdO_fn`` is called once per chunk with the chunk's top spikes ``O`` (S_c, B, N_top) and must return dE[t]/dO_top[t] for each of its steps,
        (S_c, B, N_top); it must use ``O[s]`` only for the derivative of step s (true of the
        per-step losses). While it runs, :attr:`t` is the index of the step after the chunk,
        so the chunk holds steps ``t - S_c .. t - 1``. ``mask`` (S, B) multiplies each
        sample's error at each step (like ``sample_mask`` of :meth:`backward`).

        Fused backend: ``F_prev`` (kept only for :meth:`backward`) is not maintained by this
        method; call :meth:`forward` before the next :meth:`backward`, as usual.
        """
        if self._batch == 0:
            raise RuntimeError("OnlineEngine.run_segment: call reset(batch_size) first")
        C = self.params[0].n_in
        if x_seg.dim() != 3 or x_seg.shape[0] != self._batch or x_seg.shape[1] != C:
            raise ValueError(
                f"OnlineEngine.run_segment: x_seg must have shape ({self._batch}, {C}, S), got {tuple(x_seg.shape)}"
            )
        w0 = self.params[0].w
        if x_seg.dtype != w0.dtype or x_seg.device != w0.device:
            raise ValueError(
                f"OnlineEngine.run_segment: x_seg must be {w0.dtype} on {w0.device} like the parameters, "
                f"got {x_seg.dtype} on {x_seg.device}"
            )
        S = x_seg.shape[2]
        if mask is not None and tuple(mask.shape) != (S, self._batch):
            raise ValueError(
                f"OnlineEngine.run_segment: mask must have shape ({S}, {self._batch}), got {tuple(mask.shape)}"
            )
        top = self.params[-1].n_out
        if S == 0:
            return x_seg.new_zeros(0, self._batch, top)
        self._backward_due = False  # the segment's steps get their gradients here
        outs = []
        for s0 in range(0, S, SEGMENT_CHUNK):
            s1 = min(S, s0 + SEGMENT_CHUNK)
            xc = x_seg[:, :, s0:s1].permute(2, 0, 1)  # (S_c, B, C) view
            mc = None if mask is None else mask[s0:s1]
            if self.backend == "fused":
                outs.append(self._segment_fused(xc, dEdO_fn, mc))
            else:
                outs.append(self._segment_ref(xc, dEdO_fn, mc))
        return outs[0] if len(outs) == 1 else torch.cat(outs, 0)

    def _top_error(self, dEdO_fn, O_seq: torch.Tensor, sg_seq: torch.Tensor, mask) -> torch.Tensor:
        d = dEdO_fn(O_seq)
        if tuple(d.shape) != tuple(O_seq.shape):
            raise ValueError(
                f"OnlineEngine.run_segment: dEdO_fn must return shape {tuple(O_seq.shape)}, got {tuple(d.shape)}"
            )
        mu = d.to(sg_seq.dtype) * sg_seq
        if mask is not None:
            mu = mu * mask.to(mu.dtype)[:, :, None]
        return mu.contiguous()

    def _segment_fused(self, xc: torch.Tensor, dEdO_fn, mask) -> torch.Tensor:
        if xc.shape[0] <= SEGMENT_CHUNK and self._use_seg_plan():
            return self._seg_plan.run(self, xc, lambda O, sg: self._top_error(dEdO_fn, O, sg, mask))
        n, r = self.neuron, self.rule
        Sc, B = xc.shape[0], xc.shape[1]
        inps, sg0s, sgseqs = [], [], []
        inp = xc
        for p, s in zip(self.params, self._fused):
            sg0s.append(s.sg.clone())
            O_seq = s.sg.new_empty(Sc, B, p.n_out)
            sg_seq = s.sg.new_empty(Sc, B, p.n_out)
            torch.ops.solsa.forward_segment(
                inp, p.w.detach(), self._d(p.decay) if r.filter else None, self._d(p.gain) if r.filter else None,
                s.F, s.V, s.O, s.sg, O_seq, sg_seq, n.lam, n.vth, n.sigma,
            )
            inps.append(inp)
            sgseqs.append(sg_seq)
            inp = O_seq
        t0 = self._t
        self._t = t0 + Sc
        O_top = inp
        mu = self._top_error(dEdO_fn, O_top, sgseqs[-1], mask)
        coef = [decay_gain_coef(t0 + k, r.gamma) for k in range(Sc)]
        for l in range(len(self.params) - 1, -1, -1):
            p, g, s = self.params[l], self._grads[l], self._fused[l]
            torch.ops.solsa.learn_segment(
                inps[l], p.w.detach(), self._d(p.decay) if r.filter else None, self._d(p.gain) if r.filter else None,
                s.F, s.e, sg0s[l], sgseqs[l], mu, g.w, g.decay, g.gain, coef, n.lam, n.vth, r.reset_in_trace,
            )
            s.x = inps[l][-1]
            if l > 0:
                # all steps of the chunk at once: one (Sc*B, n_l) @ (n_l, n_{l-1}) matmul
                wg = p.w.detach() * p.gain.detach() if r.filter else p.w.detach()
                mu = torch.matmul(mu, wg).mul_(sgseqs[l - 1])
        return O_top

    def _segment_ref(self, xc: torch.Tensor, dEdO_fn, mask) -> torch.Tensor:
        # The eager reference keeps no per-step history, so run the chunk's forward once to
        # get its spikes for dEdO_fn, rewind (the reference states are immutable objects),
        # then run forward/backward step by step.
        saved, t0 = list(self._ref), self._t
        Sc = xc.shape[0]
        O_top = torch.stack([self.forward(xc[k]).clone() for k in range(Sc)])
        d = dEdO_fn(O_top)
        if tuple(d.shape) != tuple(O_top.shape):
            raise ValueError(
                f"OnlineEngine.run_segment: dEdO_fn must return shape {tuple(O_top.shape)}, got {tuple(d.shape)}"
            )
        self._ref, self._t = saved, t0
        for k in range(Sc):
            self.forward(xc[k])
            self.backward(d[k], None if mask is None else mask[k])
        return O_top

    def grads(self) -> list[LayerGrads]:
        """Gradients accumulated since :meth:`zero_grads` (one :class:`LayerGrads` a layer)."""
        return self._grads

    def zero_grads(self) -> None:
        for g in self._grads:
            g.w.zero_()
            if g.decay is not None:
                g.decay.zero_()
                g.gain.zero_()
