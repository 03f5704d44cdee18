"""Building blocks for custom models: a PSP-LIF layer with online learning.

:class:`PSPLIF` holds the parameters ``w``, ``decay``, ``gain`` (``nn.Parameter``, each
(n_out, n_in)) and the per-sample states of one layer (``F``, ``F_prev``, ``e``, ``V``,
``O``, ``sg``). One call of :meth:`PSPLIF.forward` runs one time step
(``torch.ops.solsa.step``, or the eager reference when ``backend="reference"``); the
learning step is explicit: compute the layer's error ``mu = dE/dO * sg`` (or receive it
from the layer above through :meth:`PSPLIF.backprop`), then :meth:`PSPLIF.accumulate`
adds the batch-summed gradients to ``.grad`` and any ``torch.optim`` optimizer applies
them; :meth:`PSPLIF.clamp_` keeps the filter stable afterwards.

Shapes: x_t (B, n_in); O, V, sg, mu (B, n_out); F, F_prev, e (B, n_out, n_in) (e is
(B, n_in) for the presynaptic trace when both ``filter`` and ``reset_in_trace`` are off).

>>> layer = PSPLIF(6, 32)                                    # doctest: +SKIP
>>> layer.reset_state(batch=8)                               # doctest: +SKIP
>>> for t in range(T):                                       # doctest: +SKIP
...     o = layer(x[:, :, t])
...     mu = layer.error(dEdO(o))
...     layer.accumulate(mu, coef=decay_gain_coef(t, 0.9))
>>> opt.step(); opt.zero_grad(); layer.clamp_()             # doctest: +SKIP
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .neuron import NeuronConfig, surrogate

__all__ = ["PSPLIF"]


def _check_range(name: str, v: float, lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False,
                 hi_name: Optional[str] = None) -> None:
    """Raise a ValueError naming ``name`` unless ``v`` is a finite number in the interval."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
    if not ok:
        bounds = f"{'(' if open_lo else '['}{lo:g}, {hi_name + '=' if hi_name else ''}{hi:g}{')' if open_hi else ']'}"
        raise ValueError(f"PSPLIF: {name} must lie in {bounds}, got {v!r}")


class PSPLIF(nn.Module):
    """One fully connected layer of PSP-LIF neurons with its online-learning states."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        lam: float = 0.9,
        vth: float = 1.0,
        sigma: float = 0.5,
        filter: bool = True,
        adaptive: bool = True,
        reset_in_trace: bool = True,
        decay_init: float = 0.5,
        gain_init: float = 0.5,
        w_scale: float = 1.0,
        decay_max: float = 0.99,
        gain_range: tuple[float, float] = (0.0, 2.0),
        backend: str = "auto",
        generator: Optional[torch.Generator] = None,
        dtype: torch.dtype = torch.float32,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        for name, v in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"PSPLIF: {name} must be an int >= 1, got {v!r}")
        if adaptive and not filter:
            raise ValueError("PSPLIF: adaptive=True needs filter=True")
        _check_range("decay_max", decay_max, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_range("decay_init", decay_init, 0.0, decay_max, hi_name="decay_max")
        if len(tuple(gain_range)) != 2:
            raise ValueError(f"PSPLIF: gain_range must be (low, high), got {gain_range!r}")
        g_lo, g_hi = (float(v) for v in gain_range)
        if not (math.isfinite(g_lo) and math.isfinite(g_hi) and 0.0 <= g_lo <= g_hi):
            raise ValueError(f"PSPLIF: gain_range must be finite with 0 <= low <= high, got {tuple(gain_range)}")
        _check_range("gain_init", gain_init, g_lo, g_hi, hi_name="gain_range[1]")
        if gain_init <= 0:
            raise ValueError(f"PSPLIF: gain_init must be > 0 (the weights' scale divides by it), got {gain_init}")
        if not (isinstance(w_scale, (int, float)) and math.isfinite(w_scale) and w_scale > 0):
            raise ValueError(f"PSPLIF: w_scale must be finite and > 0, got {w_scale!r}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"PSPLIF: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.neuron = NeuronConfig(lam, vth, sigma)
        self.n_in, self.n_out = n_in, n_out
        self.filter, self.adaptive, self.reset_in_trace = filter, adaptive, reset_in_trace
        self.decay_max, self.gain_range = decay_max, tuple(gain_range)
        if backend == "auto":
            from .trainer import fused_available

            backend = "fused" if fused_available() else "reference"
        if backend not in ("fused", "reference"):
            raise ValueError(f"unknown backend {backend!r}")
        if backend == "fused":
            from . import ops  # noqa: F401
        self.backend = backend
        a = w_scale * math.sqrt(3.0 / n_in) * (1.0 - decay_init) / gain_init
        w = (torch.rand(n_out, n_in, generator=generator, dtype=torch.float64) * 2 - 1) * a
        self.w = nn.Parameter(w.to(dtype=dtype, device=device))
        self.decay = nn.Parameter(torch.full((n_out, n_in), decay_init, dtype=dtype, device=device),
                                  requires_grad=adaptive)
        self.gain = nn.Parameter(torch.full((n_out, n_in), gain_init, dtype=dtype, device=device),
                                 requires_grad=adaptive)
        self.F = self.F_prev = self.e = self.V = self.O = self.sg = self.x = None
        self.t = 0

    @property
    def presyn(self) -> bool:
        return not self.filter and not self.reset_in_trace

    def reset_state(self, batch: int) -> None:
        """Zero every state for ``batch`` new sequences (step counter t = 0)."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"PSPLIF.reset_state: batch must be an int >= 1, got {batch!r}")
        z = lambda *s: torch.zeros(*s, dtype=self.w.dtype, device=self.w.device)  # noqa: E731
        syn = (batch, self.n_out, self.n_in)
        self.F = z(*syn) if self.filter else None
        self.F_prev = z(*syn) if self.adaptive else None
        self.e = z(batch, self.n_in) if self.presyn else z(*syn)
        self.V, self.O, self.sg = z(batch, self.n_out), z(batch, self.n_out), z(batch, self.n_out)
        self.x = None
        self.t = 0

    @torch.no_grad()
    def forward(self, x_t: torch.Tensor) -> torch.Tensor:
        """One time step on input ``x_t`` (B, n_in); returns the spikes O[t] (B, n_out)."""
        if self.V is None:
            raise RuntimeError("PSPLIF: call reset_state(batch) before the first step")
        if x_t.dim() != 2 or x_t.shape[1] != self.n_in or x_t.shape[0] != self.V.shape[0]:
            raise ValueError(f"PSPLIF: x_t must be ({self.V.shape[0]}, {self.n_in}), got {tuple(x_t.shape)}")
        if x_t.device != self.w.device:
            raise ValueError(f"PSPLIF: x_t is on {x_t.device} but the layer is on {self.w.device}")
        if x_t.is_floating_point() and x_t.dtype != self.w.dtype:
            # bool/int spikes are converted; a float of another precision is refused, not cast silently
            raise TypeError(f"PSPLIF: x_t is {x_t.dtype} but the layer is {self.w.dtype}; convert one of them first")
        x_t = x_t.to(self.w.dtype)
        n = self.neuron
        if self.backend == "fused":
            torch.ops.solsa.step(
                x_t, self.w.detach(), self.decay.detach() if self.filter else None,
                self.gain.detach() if self.filter else None, self.F, self.F_prev, self.e,
                self.V, self.O, self.sg, n.lam, n.vth, n.sigma, self.reset_in_trace,
            )
        else:
            self._step_eager(x_t)
        self.x = x_t
        self.t += 1
        return self.O

    def _step_eager(self, x: torch.Tensor) -> None:
        n = self.neuron
        k = n.lam - n.vth * self.sg if self.reset_in_trace else torch.full_like(self.sg, n.lam)
        if self.filter:
            if self.F_prev is not None:
                self.F_prev.copy_(self.F)
            self.F.mul_(self.decay.detach()).add_(self.gain.detach() * x[:, None, :])
            Fn = self.F
        else:
            Fn = x[:, None, :].expand(-1, self.n_out, -1)
        if self.presyn:
            self.e.mul_(n.lam).add_(x)
        else:
            self.e.mul_(k[:, :, None]).add_(Fn)
        V = n.lam * self.V + (self.w.detach() * Fn).sum(-1) - n.vth * self.O
        self.V.copy_(V)
        self.O.copy_((V >= n.vth).to(V.dtype))
        self.sg.copy_(surrogate(V, n.vth, n.sigma))

    def error(self, dEdO: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """This layer's error mu = dE/dO * sg (B, n_out), times an optional per-sample mask (B,)."""
        if self.sg is None:
            raise RuntimeError("PSPLIF.error: call reset_state(batch) and a forward step first")
        if tuple(dEdO.shape) != tuple(self.sg.shape):
            raise ValueError(f"PSPLIF.error: dEdO must have shape {tuple(self.sg.shape)} (B, n_out), got {tuple(dEdO.shape)}")
        if mask is not None and tuple(mask.shape) != (self.sg.shape[0],):
            raise ValueError(f"PSPLIF.error: mask must have shape ({self.sg.shape[0]},) (one value per sample), "
                             f"got {tuple(mask.shape)}")
        mu = dEdO.to(self.sg.dtype) * self.sg
        return mu if mask is None else mu * mask.to(mu.dtype)[:, None]

    @torch.no_grad()
    def backprop(self, mu: torch.Tensor, sg_low: torch.Tensor) -> torch.Tensor:
        """Spatial error of the layer below: (sum_k mu_k w_kj gain_kj) * sg_low (B, n_in)."""
        mu = mu.contiguous()
        gain = self.gain.detach() if self.filter else None
        if self.backend == "fused":
            return torch.ops.solsa.spatial_error(mu, self.w.detach(), gain, sg_low.contiguous())
        wg = self.w.detach() * gain if gain is not None else self.w.detach()
        return (mu @ wg) * sg_low

    @torch.no_grad()
    def accumulate(self, mu: torch.Tensor, coef: float = 1.0) -> None:
        """Add this step's batch-summed gradients to ``w.grad`` (and ``decay.grad``/``gain.grad``
        when adaptive, weighted by ``coef``, SOLSA_MATH.md section 4)."""
        for p in (self.w, self.decay, self.gain):
            if p.grad is None and p.requires_grad:
                p.grad = torch.zeros_like(p)
        mu = mu.to(self.w.dtype).contiguous()
        gd = self.decay.grad if self.adaptive else None
        gg = self.gain.grad if self.adaptive else None
        if self.backend == "fused":
            torch.ops.solsa.learn(
                mu, self.e, self.w.grad, self.x if self.adaptive else None,
                self.w.detach() if self.adaptive else None, self.F_prev, gd, gg, float(coef),
            )
            return
        if self.presyn:
            self.w.grad += mu.t() @ self.e
        else:
            self.w.grad += (mu[:, :, None] * self.e).sum(0)
        if self.adaptive:
            gd += coef * self.w.detach() * (mu[:, :, None] * self.F_prev).sum(0)
            gg += coef * self.w.detach() * (mu.t() @ self.x)

    @torch.no_grad()
    def clamp_(self) -> None:
        """decay to [0, decay_max], gain to gain_range (call after every optimizer step)."""
        self.decay.clamp_(0.0, self.decay_max)
        self.gain.clamp_(*self.gain_range)

    def extra_repr(self) -> str:
        return (f"n_in={self.n_in}, n_out={self.n_out}, filter={self.filter}, adaptive={self.adaptive}, "
                f"reset_in_trace={self.reset_in_trace}, backend={self.backend!r}")
