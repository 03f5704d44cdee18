"""OnlineEngine: drives a stack of PSP-LIF layers through time and learns online.

One call of :meth:`OnlineEngine.forward` runs step ``t`` of every layer bottom-up; one
call of :meth:`OnlineEngine.backward` then sends the step's error top-down and adds the
step's gradients to the accumulators (SOLSA_MATH.md sections 1-4). Nothing about past
steps is stored: memory does not depend on the sequence length.

Backends: ``"fused"`` calls the torch.ops.solsa kernels (CPU/OpenMP or CUDA);
``"reference"`` calls the eager functions of :mod:`solsa_ext.reference`. Both give the
same numbers (to round-off); tests check it.

Shape legend: B batch, C input size, N[l] layer sizes; x_t (B, C); dEdO (B, N[L-1]).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .neuron import NeuronConfig, decay_gain_coef
from .reference import LayerGrads, LayerParams, LayerState, layer_step_ref, learn_ref, spatial_error_ref
from .rule import RuleFlags

BACKENDS = ("fused", "reference")


class _FusedLayer:
    """States of one layer for the fused kernels (only what the rule needs is allocated)."""

    def __init__(self, p: LayerParams, batch: int, rule: RuleFlags) -> None:
        w = p.w
        z = lambda *shape: torch.zeros(*shape, dtype=w.dtype, device=w.device)  # noqa: E731
        syn = (batch, p.n_out, p.n_in)
        self.F = z(*syn) if rule.filter else None
        self.F_prev = z(*syn) if rule.adaptive else None
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
        w = self.params[0].w
        if self.backend == "fused":
            self._fused = [_FusedLayer(p, batch_size, self.rule) for p in self.params]
        else:
            self._ref = [LayerState.zeros(batch_size, p.n_out, p.n_in, w.dtype, w.device) for p in self.params]

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
        return inp

    @torch.no_grad()
    def backward(self, dEdO: torch.Tensor, sample_mask: Optional[torch.Tensor] = None) -> None:
        """Accumulate the current step's gradients from the top error ``dEdO`` (B, N_top).

        ``sample_mask`` (B,) multiplies each sample's error (0 = no gradient from it: padding
        or early stop). Gradients are batch sums of dE/dparam.
        """
        if self._t == 0:
            raise RuntimeError("OnlineEngine.backward: call forward() for this step first")
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

    def grads(self) -> list[LayerGrads]:
        """Gradients accumulated since :meth:`zero_grads` (one :class:`LayerGrads` a layer)."""
        return self._grads

    def zero_grads(self) -> None:
        for g in self._grads:
            g.w.zero_()
            if g.decay is not None:
                g.decay.zero_()
                g.gain.zero_()
