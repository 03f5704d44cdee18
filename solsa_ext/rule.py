"""Learning-rule flags of the fused engine (SOLSA_MATH.md, section 7).

Every online configuration (SOLSA, its ablation variants, e-prop, OTTT) is one engine
with three switches; the schedule and the early stop live in the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleFlags:
    """Switches of the online learning rule.

    filter:          per-synapse PSP filter ``F = decay * F + gain * x`` (off: ``F = x``).
    adaptive:        learn ``decay`` and ``gain`` (section 4); needs ``filter``.
    reset_in_trace:  the trace decays with ``lam - vth * sg[t-1]`` (off: with ``lam``).
    gamma:           growth of the decay/gain gradient weight over the sequence.

    With neither the filter nor the reset term the trace is the same for every
    post-synaptic neuron, so the engine keeps one value per presynaptic neuron
    (OTTT's presynaptic trace): see :attr:`presyn`.
    """

    filter: bool = True
    adaptive: bool = True
    reset_in_trace: bool = True
    gamma: float = 0.9

    def __post_init__(self) -> None:
        if self.adaptive and not self.filter:
            raise ValueError("RuleFlags: adaptive=True needs filter=True (decay/gain only exist with the filter)")
        if not (0.0 <= self.gamma <= 1.0):
            raise ValueError(f"RuleFlags.gamma must lie in [0, 1], got {self.gamma}")

    @property
    def presyn(self) -> bool:
        """True when the eligibility trace is presynaptic only (shape (B, n_in))."""
        return not self.filter and not self.reset_in_trace


#: Engine flags of each online configuration of the math contract's section 7.
RULES: dict[str, RuleFlags] = {
    "solsa": RuleFlags(filter=True, adaptive=True, reset_in_trace=True),
    "variant1": RuleFlags(filter=True, adaptive=False, reset_in_trace=True),
    "variant2": RuleFlags(filter=True, adaptive=True, reset_in_trace=True),
    "variant3": RuleFlags(filter=True, adaptive=False, reset_in_trace=True),
    "unscheduled": RuleFlags(filter=True, adaptive=False, reset_in_trace=True),
    "eprop": RuleFlags(filter=False, adaptive=False, reset_in_trace=True),
    "ottt": RuleFlags(filter=False, adaptive=False, reset_in_trace=False),
}
