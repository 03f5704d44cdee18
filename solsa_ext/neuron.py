"""The PSP-LIF neuron model shared by every backend (SOLSA_MATH.md, section 1).

Notation: ``decay`` multiplies the synapse filter's previous value ``F[t-1]`` and
``gain`` multiplies the input ``x[t]`` (the paper's slides call these beta/alpha in
places; the package names them by role).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NeuronConfig:
    """Constants of the LIF membrane and of its surrogate derivative.

    lam:   membrane leak, ``V[t] = lam * V[t-1] + I[t] - vth * O[t-1]``.
    vth:   firing threshold; a spike is ``O = 1`` when ``V >= vth`` (reset by subtraction).
    sigma: width of the Gaussian surrogate ``sg = N(V - vth; 0, sigma^2)``.
    """

    lam: float = 0.9
    vth: float = 1.0
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lam) and 0.0 <= self.lam <= 1.0):
            raise ValueError(f"NeuronConfig.lam must lie in [0, 1], got {self.lam}")
        if not (math.isfinite(self.vth) and self.vth > 0.0):
            raise ValueError(f"NeuronConfig.vth must be finite and > 0, got {self.vth}")
        if not (math.isfinite(self.sigma) and self.sigma > 0.0):
            raise ValueError(f"NeuronConfig.sigma must be finite and > 0, got {self.sigma}")


def surrogate(v: torch.Tensor, vth: float, sigma: float) -> torch.Tensor:
    """d/dV P(V + z > vth) for z ~ N(0, sigma^2): the Gaussian density at ``V - vth``."""
    return torch.exp(-((v - vth) ** 2) / (2.0 * sigma * sigma)) / (sigma * math.sqrt(2.0 * math.pi))


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward, Gaussian surrogate backward (used by the autograd baselines)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, vth: float, sigma: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        ctx.vth, ctx.sigma = vth, sigma
        return (v >= vth).to(v.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad_out * surrogate(v, ctx.vth, ctx.sigma), None, None


def spike(v: torch.Tensor, vth: float, sigma: float) -> torch.Tensor:
    """``O = H(v - vth)`` whose autograd derivative is :func:`surrogate`."""
    return _SpikeFn.apply(v, vth, sigma)


def decay_gain_coef(t: int, gamma: float) -> float:
    """Weight of step ``t`` (0-based) in the decay/gain gradient: (1 - gamma^(t+1)) / (1 - gamma).

    For ``gamma == 1`` the limit ``t + 1`` is used.
    """
    if gamma == 1.0:
        return float(t + 1)
    return (1.0 - gamma ** (t + 1)) / (1.0 - gamma)
