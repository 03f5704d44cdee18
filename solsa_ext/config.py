"""Dataclass configurations of a training run.

A run is fully described by five small dataclasses (all JSON-serialisable through
:func:`config_to_dict` / :func:`config_from_dict`, and stored in checkpoints and in the
CLI's ``results.json``):

- :class:`NetworkConfig`   layer sizes, neuron constants, initial decay/gain and clamps
- :class:`AlgorithmConfig` which learning algorithm (SOLSA, its variants, e-prop, OTTT,
  BPTT, TBPTT), its update points and its early stop
- :class:`OptimizerConfig` any ``torch.optim`` class and its keyword arguments
- :class:`LossConfig`      the per-step loss and the prediction rule
- :class:`TrainConfig`     batch size, epochs, seed, device, dtype

Every default here is the value chosen on a validation split of BasicMotions' train
data (docs/TRAINER.md, "Hyperparameter search").
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from .rule import RULES, RuleFlags

#: Online algorithms (one fused engine, flags from :data:`solsa_ext.rule.RULES`).
ONLINE_ALGORITHMS: tuple[str, ...] = tuple(RULES)
#: Autograd baselines (plain ``loss.backward()`` through :func:`solsa_ext.bptt.snn_forward`).
AUTOGRAD_ALGORITHMS: tuple[str, ...] = ("bptt", "tbptt")
ALGORITHMS: tuple[str, ...] = ONLINE_ALGORITHMS + AUTOGRAD_ALGORITHMS

#: Section 7 of SOLSA_MATH.md: update points ("K" = scheduled, "end" = once at the end,
#: "every" = every step, "truncate" = every ``truncation`` steps) and early stop.
ALGORITHM_TABLE: dict[str, dict[str, Any]] = {
    "solsa": {"points": "K", "early_stop": True},
    "variant1": {"points": "K", "early_stop": False},
    "variant2": {"points": "K", "early_stop": False},
    "variant3": {"points": "K", "early_stop": True},
    "unscheduled": {"points": "end", "early_stop": False},
    "eprop": {"points": "end", "early_stop": False},
    "ottt": {"points": "every", "early_stop": False},
    "bptt": {"points": "end", "early_stop": False},
    "tbptt": {"points": "truncate", "early_stop": False},
}

PLACEMENTS = ("even", "late")
LOSSES = ("rate_mse", "step_ce", "count_ce")
PREDICTIONS = ("count", "count_first")
#: Largest ``LossConfig.scale`` (softmax logits ``scale * O`` far beyond it only saturate).
MAX_LOSS_SCALE = 1000.0


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class NetworkConfig:
    """The PSP-LIF network (SOLSA_MATH.md sections 1 and 4).

    sizes:      layer sizes including the input, e.g. ``(6, 100, 100, 4)``; ``None`` lets the
                trainer take the dataset's paper network (or infer input/output sizes).
    lam, vth, sigma: membrane leak, threshold, surrogate width (:class:`~solsa_ext.neuron.NeuronConfig`).
    decay_init, gain_init: initial synapse-filter coefficients (every synapse equal).
    decay_max:  after every optimizer step ``decay`` is clamped to ``[0, decay_max]``,
                ``decay_max < 1`` keeps the filter stable (its gain ``1/(1-decay)`` bounded).
    gain_min, gain_max: after every optimizer step ``gain`` is clamped to ``[gain_min, gain_max]``;
                ``gain >= 0`` keeps the sign of a synapse in ``w`` alone.
    w_scale:    weights start ``U(-a, a)`` with ``a = w_scale * sqrt(3 / n_in) * (1 - decay_init) / gain_init``,
                i.e. unit variance of ``sum_j w_ij F_ij`` for unit-variance inputs at the
                filter's steady state, times ``w_scale``.
    w_bias:     added to the initial weights of every layer (a small positive value
                makes silent networks fire at the start).
    """

    sizes: Optional[tuple[int, ...]] = None
    lam: float = 0.9
    vth: float = 1.0
    sigma: float = 0.5
    decay_init: float = 0.5
    gain_init: float = 0.5
    decay_max: float = 0.99
    gain_min: float = 0.0
    gain_max: float = 2.0
    w_scale: float = 1.0
    w_bias: float = 0.0

    def __post_init__(self) -> None:
        if self.sizes is not None:
            self.sizes = tuple(int(s) for s in self.sizes)
            _check(len(self.sizes) >= 2, f"NetworkConfig.sizes needs >= 2 entries (input, ..., output), got {self.sizes}")
            _check(all(s > 0 for s in self.sizes), f"NetworkConfig.sizes must be positive, got {self.sizes}")
        _check(0.0 <= self.lam <= 1.0, f"NetworkConfig.lam must lie in [0, 1], got {self.lam}")
        _check(math.isfinite(self.vth) and self.vth > 0, f"NetworkConfig.vth must be > 0, got {self.vth}")
        _check(math.isfinite(self.sigma) and self.sigma > 0, f"NetworkConfig.sigma must be > 0, got {self.sigma}")
        _check(0.0 < self.decay_max < 1.0, f"NetworkConfig.decay_max must lie in (0, 1), got {self.decay_max}")
        _check(0.0 <= self.decay_init <= self.decay_max,
               f"NetworkConfig.decay_init must lie in [0, decay_max={self.decay_max}], got {self.decay_init}")
        _check(math.isfinite(self.gain_min), f"NetworkConfig.gain_min must be finite, got {self.gain_min}")
        _check(math.isfinite(self.gain_max) and self.gain_max > 0 and self.gain_max >= self.gain_min,
               f"NetworkConfig.gain_max must be finite, > 0 and >= gain_min={self.gain_min}, got {self.gain_max}")
        _check(self.gain_min <= self.gain_init <= self.gain_max and self.gain_init > 0,
               f"NetworkConfig.gain_init must be > 0 and lie in [gain_min={self.gain_min}, gain_max={self.gain_max}], "
               f"got {self.gain_init}")
        _check(math.isfinite(self.w_scale) and self.w_scale > 0, f"NetworkConfig.w_scale must be > 0, got {self.w_scale}")
        _check(math.isfinite(self.w_bias), f"NetworkConfig.w_bias must be finite, got {self.w_bias}")


@dataclass
class AlgorithmConfig:
    """Which learning algorithm, and when it updates.

    name:           one of :data:`ALGORITHMS` (``solsa``, ``variant1``, ``variant2``,
                    ``variant3``, ``unscheduled``, ``eprop``, ``ottt``, ``bptt``, ``tbptt``).
    update_points:  K, used by the scheduled algorithms (solsa, variant1-3); the others
                    follow the table of SOLSA_MATH.md section 7 (1 at the end, every step,
                    or every ``truncation`` steps) unless ``override_schedule`` is set.
    placement:      where the K points go in a sequence of (valid) length T, see
                    :func:`solsa_ext.schedule.update_points`: ``"even"`` (default: the
                    sequence cut in K equal segments, an update at the end of each) or
                    ``"late"`` (K points evenly over the second half); or explicit step
                    indices in ``points`` (0-based steps after which the optimizer steps).
    early_stop:     ``None`` = the algorithm's default (on for solsa and variant3 only).
    early_stop_threshold: a sample's counter grows at an update point when its
                    label's spike share ``A(t)`` exceeds this (section 6).
    truncation:     TBPTT's truncation length (it updates at the same points).
    gamma:          growth of the decay/gain gradient weight (section 4).
    backend:        engine backend of the online algorithms: ``"fused"`` (torch.ops.solsa
                    kernels) or ``"reference"`` (eager PyTorch); ``"auto"`` picks fused when
                    the compiled extension imports.
    override_schedule: apply ``update_points``/``placement`` to every algorithm.
    """

    name: str = "solsa"
    update_points: int = 4
    placement: str = "even"
    points: Optional[tuple[int, ...]] = None
    early_stop: Optional[bool] = None
    early_stop_threshold: float = 0.6
    truncation: int = 20
    gamma: float = 0.9
    backend: str = "auto"
    override_schedule: bool = False

    def __post_init__(self) -> None:
        self.name = str(self.name).lower()
        if self.name not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.name!r}; choose one of {', '.join(ALGORITHMS)}")
        _check(int(self.update_points) >= 1, f"AlgorithmConfig.update_points must be >= 1, got {self.update_points}")
        self.update_points = int(self.update_points)
        if self.placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {self.placement!r}; choose one of {', '.join(PLACEMENTS)}")
        if self.points is not None:
            self.points = tuple(int(p) for p in self.points)
            _check(len(self.points) > 0 and all(p >= 0 for p in self.points), "AlgorithmConfig.points must be non-negative step indices")
        _check(0.0 <= self.early_stop_threshold <= 1.0,
               f"AlgorithmConfig.early_stop_threshold must lie in [0, 1], got {self.early_stop_threshold}")
        _check(int(self.truncation) >= 1, f"AlgorithmConfig.truncation must be >= 1, got {self.truncation}")
        _check(0.0 <= self.gamma <= 1.0, f"AlgorithmConfig.gamma must lie in [0, 1], got {self.gamma}")
        if self.backend not in ("auto", "fused", "reference"):
            raise ValueError(f"unknown backend {self.backend!r}; choose auto, fused or reference")

    @property
    def online(self) -> bool:
        return self.name in ONLINE_ALGORITHMS

    @property
    def rule(self) -> RuleFlags:
        """Engine flags of an online algorithm (with this config's gamma)."""
        if not self.online:
            raise ValueError(f"{self.name} is an autograd baseline, it has no engine flags")
        return dataclasses.replace(RULES[self.name], gamma=self.gamma)

    @property
    def filter(self) -> bool:
        return RULES[self.name].filter if self.online else True

    @property
    def adaptive(self) -> bool:
        return RULES[self.name].adaptive if self.online else True

    @property
    def uses_early_stop(self) -> bool:
        if self.early_stop is not None:
            return bool(self.early_stop)
        return bool(ALGORITHM_TABLE[self.name]["early_stop"])


def _fusable(params: list) -> bool:
    """torch's fused optimizers take real floating-point tensors on CPU or CUDA (it checks
    the dtype only at the first step, too late to fall back)."""
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return bool(tensors) and all(
        t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors if hasattr(t, "is_floating_point"))


def _numbers(val: Any) -> list[float]:
    """The numbers in an optimizer argument (a number, a numpy or torch scalar or array, or a
    tuple/list of them; bools and other objects hold none); one too large for a float is inf."""
    import numpy as np
    import torch

    if isinstance(val, (tuple, list)):
        return [x for v in val for x in _numbers(v)]
    if isinstance(val, bool) or val is None:
        return []
    if isinstance(val, torch.Tensor):
        return val.detach().double().cpu().flatten().tolist()
    if isinstance(val, np.ndarray):
        return [float(x) for x in val.ravel()] if val.dtype.kind in "iuf" else []
    if isinstance(val, numbers.Real):
        try:
            return [float(val)]
        except OverflowError:
            return [math.inf]
    return []


@dataclass
class OptimizerConfig:
    """A ``torch.optim`` class by name (``"Adam"``, ``"SGD"``, ...; not L-BFGS, whose step needs
    a closure) and its kwargs (numbers must be finite, ``weight_decay`` >= 0).

    Adam and AdamW are built with torch's fused implementation (``fused=True``: one kernel
    for all tensors) unless ``kwargs`` sets ``fused`` or ``foreach``, or torch refuses it
    for these parameters (then the default implementation). The online algorithms step the
    optimizer at every update point (K per sequence, every step for OTTT), where the
    default per-tensor loop costs several small ops per parameter tensor: on the
    6-100-100-4 network one Adam step over its 9 tensors took 549 us with the loop and 159
    us fused (torch 2.13 CPU, 1 thread). Fused Adam differs from the loop by round-off
    (1 ulp per step seen), not in the update rule; like any round-off the difference grows
    over training. ``Trainer.optimizer_impl`` says which implementation a run used.
    """

    name: str = "Adam"
    lr: float = 3e-3
    kwargs: dict[str, Any] = field(default_factory=dict)

    #: optimizers built with ``fused=True`` by default
    FUSED_BY_DEFAULT = ("Adam", "AdamW")

    def __post_init__(self) -> None:
        _check(math.isfinite(self.lr) and self.lr > 0, f"OptimizerConfig.lr must be > 0, got {self.lr}")
        self.optimizer_class()
        _check(isinstance(self.kwargs, dict), f"OptimizerConfig.kwargs must be a dict, got {self.kwargs!r}")
        _check("lr" not in self.kwargs and "params" not in self.kwargs,
               f"OptimizerConfig.kwargs must not set lr or params (lr is OptimizerConfig.lr), got {sorted(self.kwargs)}")
        for key, val in self.kwargs.items():
            # a NaN or infinite hyperparameter (weight_decay=inf, ...) turns every weight into
            # NaN at the first step, and torch accepts it without a word
            _check(all(math.isfinite(v) for v in _numbers(val)), f"OptimizerConfig.kwargs {key} must be finite, got {val!r}")
        if "weight_decay" in self.kwargs:
            wd = self.kwargs["weight_decay"]
            nums = _numbers(wd)
            _check(len(nums) == 1 and not isinstance(wd, (tuple, list)) and nums[0] >= 0,
                   f"OptimizerConfig.kwargs weight_decay must be a finite number >= 0, got {wd!r}")

    def optimizer_class(self) -> type:
        """The ``torch.optim`` class named by ``name``; ``ValueError`` for an unknown name or an
        optimizer whose ``step`` needs a closure (L-BFGS: the Trainer steps without one)."""
        import inspect

        import torch

        cls = getattr(torch.optim, str(self.name), None)
        if (cls is None or not isinstance(cls, type) or not issubclass(cls, torch.optim.Optimizer)
                or cls is torch.optim.Optimizer):
            raise ValueError(f"OptimizerConfig.name {self.name!r} is not a torch.optim.Optimizer class")
        closure = inspect.signature(cls.step).parameters.get("closure")
        if closure is not None and closure.default is inspect.Parameter.empty:
            raise ValueError(f"OptimizerConfig.name {self.name!r}: its step() needs a closure, which the Trainer "
                             "does not pass (it steps at update points inside a sequence); choose another optimizer")
        return cls

    def build(self, params) -> Any:
        cls = self.optimizer_class()
        params = list(params)
        if (self.name in self.FUSED_BY_DEFAULT and "fused" not in self.kwargs and "foreach" not in self.kwargs
                and _fusable(params)):
            try:
                return cls(params, lr=self.lr, fused=True, **self.kwargs)
            except (RuntimeError, ValueError, TypeError):
                pass  # a device/dtype (or torch) without the fused kernel: the default implementation
        return cls(params, lr=self.lr, **self.kwargs)


@dataclass
class LossConfig:
    """The per-step loss E[t](O[t]) and the prediction rule (docs/TRAINER.md, "Loss").

    name:  ``"rate_mse"``  E[t] = 1/2 sum_k (O_k[t] - r_k)^2, r = ``target_rate`` for the
                           label, ``off_rate`` otherwise; dE/dO = O - r.
           ``"step_ce"``   E[t] = CE(softmax(scale * O[t]), y); dE/dO = scale * (softmax - onehot).
           ``"count_ce"``  E[t] = CE(softmax(scale * c[t] / (t+1)), y), c[t] the spike
                           count so far; the online rule uses its direct derivative
                           dE/dO[t] = scale / (t+1) * (softmax - onehot).
    prediction: ``"count"`` argmax of the output spike count over the valid steps (ties:
           the lowest index); ``"count_first"`` ties broken by the earliest first spike.

    Ranges (checked, a ``ValueError`` names the field): ``target_rate`` and ``off_rate`` are
    spike rates per step, ``0 <= off_rate < target_rate <= 1``; ``0 < scale <= 1000``
    (:data:`MAX_LOSS_SCALE`).
    """

    name: str = "rate_mse"
    target_rate: float = 1.0
    off_rate: float = 0.0
    scale: float = 1.0
    prediction: str = "count_first"

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r}; choose one of {', '.join(LOSSES)}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction rule {self.prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        _check(0.0 < self.target_rate <= 1.0,
               f"LossConfig.target_rate must lie in (0, 1] (a spike rate above off_rate), got {self.target_rate}")
        _check(0.0 <= self.off_rate < self.target_rate,
               f"LossConfig.off_rate must lie in [0, target_rate={self.target_rate}), got {self.off_rate}")
        _check(0.0 < self.scale <= MAX_LOSS_SCALE, f"LossConfig.scale must lie in (0, {MAX_LOSS_SCALE:g}], got {self.scale}")


@dataclass
class TrainConfig:
    """batch_size, epochs, seed, device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``), dtype.

    shuffle:        reshuffle the training samples every epoch (seeded; resumable).
    eval_every:     evaluate the ``val`` data of ``fit`` every this many epochs.
    flush_denormal: call ``torch.set_flush_denormal(True)`` (process-wide) when the
                    trainer is built: decaying traces and far-from-threshold surrogates
                    produce subnormal floats, which made CPU training up to 30x slower.
    """

    batch_size: int = 16
    epochs: int = 15
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    shuffle: bool = True
    eval_every: int = 1
    flush_denormal: bool = True

    def __post_init__(self) -> None:
        _check(int(self.batch_size) >= 1, f"TrainConfig.batch_size must be >= 1, got {self.batch_size}")
        _check(int(self.epochs) >= 0, f"TrainConfig.epochs must be >= 0, got {self.epochs}")
        _check(int(self.eval_every) >= 1, f"TrainConfig.eval_every must be >= 1, got {self.eval_every}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"TrainConfig.dtype must be float32 or float64, got {self.dtype!r}")
        check_device(self.device, "TrainConfig.device")


def check_device(device: Any, name: str = "device", available: bool = False) -> None:
    """``ValueError`` naming ``name`` unless ``device`` is "auto" or a device string torch parses
    ("cpu", "cuda", "cuda:1", ...); with ``available``, also unless a CUDA device is there
    (else that is checked when the trainer is built)."""
    import torch

    if device == "auto" or isinstance(device, torch.device):
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} must be cpu, cuda, cuda:N or auto, got {device!r}") from None
    if available and dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {device!r} requested but CUDA is not available (use cpu or auto)")


ConfigT = Union[NetworkConfig, AlgorithmConfig, OptimizerConfig, LossConfig, TrainConfig]
CONFIG_CLASSES: dict[str, type] = {
    "network": NetworkConfig,
    "algorithm": AlgorithmConfig,
    "optimizer": OptimizerConfig,
    "loss": LossConfig,
    "train": TrainConfig,
}


def config_to_dict(cfg: ConfigT) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    for k, v in d.items():
        if isinstance(v, tuple):
            d[k] = list(v)
    return d


def config_from_dict(kind: str, d: dict[str, Any]) -> ConfigT:
    cls = CONFIG_CLASSES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {kind} config fields: {sorted(unknown)}")
    d = {k: (tuple(v) if isinstance(v, list) and k in ("sizes", "points") else v) for k, v in d.items()}
    return cls(**d)

