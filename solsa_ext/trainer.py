"""The Trainer: fit / evaluate / predict a PSP-LIF network with SOLSA or a baseline.

>>> from solsa_ext import Trainer, AlgorithmConfig
>>> tr = Trainer(algorithm=AlgorithmConfig("solsa"))          # doctest: +SKIP
>>> tr.fit(x_train, y_train, lengths=len_train)               # doctest: +SKIP
>>> tr.evaluate(x_test, y_test, lengths=len_test)["accuracy"]  # doctest: +SKIP

Data: ``x`` is (N, C, T) (torch tensor or numpy array; real-valued currents or {0,1}
spikes), ``y`` (N,) class indices, ``lengths`` (N,) valid lengths of zero-padded samples
(default: all T). Steps at or past a sample's length give neither gradient nor
prediction. A ``torch.utils.data.DataLoader`` yielding ``(x, y)`` or ``(x, y, lengths)``
batches works in place of ``x``.

See docs/TRAINER.md for the algorithms, schedules, early stop, loss and defaults.
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .config import (
    AlgorithmConfig,
    LossConfig,
    NetworkConfig,
    OptimizerConfig,
    TrainConfig,
    check_device,
    config_to_dict,
)
from .early_stop import EarlyStop
from .engine import SEGMENT_CHUNK
from .losses import first_spike, prediction_scores, predict_from_scores, sequence_loss, step_loss_and_grad
from .neuron import NeuronConfig
from .optim import fast_step
from .reference import LayerGrads, LayerParams
from .schedule import schedule_for

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence]
DEFAULT_HIDDEN = (100, 100)


def fused_available() -> bool:
    """True when the compiled kernels import (``torch.ops.solsa`` is registered)."""
    try:
        from . import ops  # noqa: F401
    except Exception:  # ImportError, or a broken build
        return False
    return True


def flush_denormals() -> None:
    """Flush subnormal floats to zero on this thread (CPU speed; see TrainConfig.flush_denormal)."""
    for t in (np.float32, np.float64):  # numpy caches its limits: compute them before FTZ is on
        np.finfo(t).smallest_subnormal
    torch.set_flush_denormal(True)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device, "device")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return dev


def stratified_split(y: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) holding out ``fraction`` of every class (at least one sample of a
    class with two or more), at random with ``seed``. Used to tune on train data only."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    tr: list[int] = []
    va: list[int] = []
    for c in torch.unique(y):
        idx = (y == c).nonzero()[:, 0]
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        va += idx[:k].tolist()
        tr += idx[k:].tolist()
    return torch.tensor(sorted(tr)), torch.tensor(sorted(va))


@dataclass
class Batch:
    x: torch.Tensor        # (B, C, T)
    y: torch.Tensor        # (B,) int64
    lengths: torch.Tensor  # (B,) int64 in [1, T]



def _all_finite(x: torch.Tensor, max_elems: int = 1 << 18) -> bool:
    """Whether the (N, C, T) tensor holds no NaN/inf, checked a block of time steps at a time,
    so the check's temporaries stay bounded (a whole-tensor ``isfinite`` made temporaries the
    size of the input: extra training memory that grew with T)."""
    N, C, T = x.shape
    step = max(1, max_elems // max(1, N * C))
    return all(bool(torch.isfinite(x[:, :, t0:t0 + step]).all()) for t0 in range(0, T, step))


def _segment_ends(points: Sequence[int], T: int) -> Iterator[int]:
    """Ends (exclusive) of the segments between increasing update ``points``, the last one ``T``.

    A generator, so an every-step schedule (a ``range``) costs no memory that grows with T."""
    last = 0
    for p in points:
        if p < T:
            last = p + 1
            yield last
    if last != T:
        yield T

class Trainer:
    """Builds a network from configs and trains it with one of the algorithms.

    Attributes after construction (or after the first ``fit`` when ``network.sizes`` is
    None and must be inferred from the data): ``params`` (list of
    :class:`~solsa_ext.reference.LayerParams` of ``nn.Parameter``), ``optimizer``,
    ``history`` (one dict per epoch).
    """

    def __init__(
        self,
        network: Optional[NetworkConfig] = None,
        algorithm: Optional[Union[AlgorithmConfig, str]] = None,
        optimizer: Optional[OptimizerConfig] = None,
        loss: Optional[LossConfig] = None,
        train: Optional[TrainConfig] = None,
        *,
        classes: Optional[Sequence[str]] = None,
        norm_mean: Optional[torch.Tensor] = None,
        norm_std: Optional[torch.Tensor] = None,
        input_kind: str = "current",
    ) -> None:
        self.network = dataclasses.replace(network) if network is not None else NetworkConfig()
        if isinstance(algorithm, str):
            algorithm = AlgorithmConfig(name=algorithm)
        self.algorithm = dataclasses.replace(algorithm) if algorithm is not None else AlgorithmConfig()
        self.optim_config = dataclasses.replace(optimizer) if optimizer is not None else OptimizerConfig()
        self.loss = dataclasses.replace(loss) if loss is not None else LossConfig()
        self.train_config = dataclasses.replace(train) if train is not None else TrainConfig()
        if input_kind not in ("current", "spikes"):
            raise ValueError(f"input_kind must be 'current' or 'spikes', got {input_kind!r}")
        self.classes = list(classes) if classes is not None else None
        self.norm_mean = None if norm_mean is None else torch.as_tensor(norm_mean, dtype=torch.float32)
        self.norm_std = None if norm_std is None else torch.as_tensor(norm_std, dtype=torch.float32)
        self.input_kind = input_kind
        self.device = resolve_device(self.train_config.device)
        self.dtype = getattr(torch, self.train_config.dtype)
        if self.train_config.flush_denormal:
            flush_denormals()
        self.neuron = NeuronConfig(self.network.lam, self.network.vth, self.network.sigma)
        self.backend = self._pick_backend()
        self.params: list[LayerParams] = []
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self._engine = None
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.updates = 0
        self.shuffle_gen = torch.Generator().manual_seed(self.train_config.seed + 1)
        #: called as ``hook(trainer, step, grads)`` at every update point before the optimizer step.
        self.update_hook: Optional[Callable[["Trainer", int, list[LayerGrads]], None]] = None
        #: where the output count came from: "sizes", "classes", "labels" or "first batch"
        self._n_classes_from = "sizes"
        if self.network.sizes is not None:
            self.build(self.network.sizes)

    # ------------------------------------------------------------------ setup
    def _pick_backend(self) -> str:
        b = self.algorithm.backend
        if not self.algorithm.online:
            return "autograd"
        if b == "auto":
            if fused_available():
                return "fused"
            import warnings

            warnings.warn(
                "solsa_ext: the compiled kernels (solsa_ext._C) could not be imported, so training uses the "
                "much slower eager reference backend. Build them with `pip install -e .` (or `pip install .` "
                "and run outside the source checkout, whose solsa_ext/ folder shadows the installed package).",
                RuntimeWarning,
                stacklevel=3,
            )
            return "reference"
        if b == "fused" and not fused_available():
            raise RuntimeError("backend 'fused' needs the compiled extension (pip install -e .); use backend='reference'")
        return b

    @classmethod
    def for_dataset(cls, ds: Any, **kwargs: Any) -> "Trainer":
        """A trainer for a :class:`~solsa_ext.datasets.SequenceDataset`: its paper network
        (unless ``network.sizes`` is given), label map, normalisation statistics and input kind."""
        net = kwargs.pop("network", None) or NetworkConfig()
        if net.sizes is None:
            net = dataclasses.replace(net, sizes=tuple(ds.paper_net))
        if net.sizes[0] != ds.x_train.shape[1] or net.sizes[-1] != len(ds.classes):
            raise ValueError(
                f"network sizes {net.sizes} do not fit dataset {ds.name}: {ds.x_train.shape[1]} inputs, {len(ds.classes)} classes"
            )
        return cls(network=net, classes=ds.classes, norm_mean=ds.norm_mean, norm_std=ds.norm_std,
                   input_kind=ds.input_kind, **kwargs)

    def build(self, sizes: Sequence[int]) -> None:
        """Create the parameters (seeded by ``train.seed``; identical for every algorithm) and the optimizer."""
        sizes = tuple(int(s) for s in sizes)
        self.network.sizes = sizes
        net = self.network
        gen = torch.Generator().manual_seed(self.train_config.seed)
        self.params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            a = net.w_scale * math.sqrt(3.0 / n_in) * (1.0 - net.decay_init) / net.gain_init
            w = (torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * a + net.w_bias
            full = lambda v: torch.full((n_out, n_in), v, dtype=self.dtype, device=self.device)  # noqa: E731
            self.params.append(LayerParams(
                nn.Parameter(w.to(self.dtype).to(self.device)),
                nn.Parameter(full(net.decay_init)),
                nn.Parameter(full(net.gain_init)),
            ))
        trainable: list[torch.Tensor] = [p.w for p in self.params]
        if self.algorithm.adaptive:
            trainable += [p.decay for p in self.params] + [p.gain for p in self.params]
        for p in self.params:
            if not self.algorithm.adaptive:
                p.decay.requires_grad_(False)
                p.gain.requires_grad_(False)
        self.optimizer = self.optim_config.build(trainable)
        self._engine = None
        if self.algorithm.online:
            from .engine import OnlineEngine

            self._engine = OnlineEngine(self.params, self.neuron, self.algorithm.rule, backend=self.backend)

    @property
    def sizes(self) -> Optional[tuple[int, ...]]:
        return self.network.sizes

    @property
    def n_classes(self) -> int:
        return self.network.sizes[-1]

    def state_tensors(self) -> list[dict[str, torch.Tensor]]:
        """Detached copies of every layer's ``w``, ``decay``, ``gain``."""
        return [{"w": p.w.detach().clone(), "decay": p.decay.detach().clone(), "gain": p.gain.detach().clone()}
                for p in self.params]

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the synapse filter stable: decay in [0, decay_max], gain in [gain_min, gain_max]."""
        for p in self.params:
            p.decay.clamp_(0.0, self.network.decay_max)
            p.gain.clamp_(self.network.gain_min, self.network.gain_max)

    # ------------------------------------------------------------------- data
    def _check_x(self, x: ArrayLike, what: str = "x") -> torch.Tensor:
        if isinstance(x, np.ndarray):
            if x.dtype == object:
                raise TypeError(f"{what} is a ragged/object array; pad it to (N, C, T) and pass lengths")
            x = torch.from_numpy(np.ascontiguousarray(x))
        elif not isinstance(x, torch.Tensor):
            try:
                x = torch.as_tensor(np.asarray(x, dtype=np.float64))
            except Exception as exc:  # noqa: BLE001
                raise TypeError(f"{what} must be a (N, C, T) tensor or array, got {type(x).__name__}") from exc
        if x.dim() != 3:
            raise ValueError(f"{what} must have shape (N, C, T), got {tuple(x.shape)}")
        if not (x.is_floating_point() or x.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
            raise TypeError(f"{what} must be real-valued, got dtype {x.dtype}")
        x = x.to(self.dtype)
        if not _all_finite(x):
            bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero()[:5, 0].tolist()
            raise ValueError(f"{what} contains NaN or inf values (samples {bad}...)")
        if self.sizes is not None and x.shape[1] != self.sizes[0]:
            raise ValueError(f"{what} has {x.shape[1]} channels but the network takes {self.sizes[0]} inputs")
        if x.shape[2] < 1 or x.shape[0] < 1:
            raise ValueError(f"{what} is empty: shape {tuple(x.shape)}")
        return x

    def _check_y(self, y: ArrayLike, n: int) -> torch.Tensor:
        if isinstance(y, np.ndarray) and y.dtype.kind in "USO" or (isinstance(y, (list, tuple)) and y and isinstance(y[0], str)):
            if self.classes is None:
                raise ValueError("string labels need a label map: pass classes=[...] to the Trainer")
            index = {c: i for i, c in enumerate(self.classes)}
            try:
                y = [index[str(v)] for v in np.asarray(y).tolist()]
            except KeyError as exc:
                raise ValueError(f"label {exc.args[0]!r} is not in the label map {self.classes}") from None
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        if y.dim() != 1 or y.shape[0] != n:
            raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
        if y.is_floating_point():
            if not torch.equal(y, y.round()):
                raise ValueError("y must hold integer class indices")
        y = y.to(torch.int64)
        if n == 0:
            return y
        if self.sizes is not None:
            hi, where = self.n_classes, ""
            if self._n_classes_from == "first batch":
                where = (" (the class count was taken from the first DataLoader batch: pass classes=[...] or "
                         "NetworkConfig(sizes=...) when one batch may not hold every class)")
        elif self.classes is not None:
            hi, where = len(self.classes), f" (the label map classes={self.classes})"
        else:
            hi, where = None, ""
        if int(y.min()) < 0 or (hi is not None and int(y.max()) >= hi):
            rng = f"[0, {hi})" if hi is not None else ">= 0"
            raise ValueError(f"class indices must lie in {rng}{where}, got [{int(y.min())}, {int(y.max())}]")
        return y

    def _check_lengths(self, lengths: Optional[ArrayLike], n: int, T: int) -> torch.Tensor:
        if lengths is None:
            return torch.full((n,), T, dtype=torch.int64)
        raw = torch.as_tensor(np.asarray(lengths) if not isinstance(lengths, torch.Tensor) else lengths)
        if raw.is_floating_point() and not bool(torch.isfinite(raw).all()):
            raise ValueError("lengths must be finite whole numbers of steps, got NaN or inf")
        if raw.is_floating_point() and not bool((raw == raw.round()).all()):
            raise ValueError("lengths must be whole numbers of steps, got fractional values")
        ln = raw.to(torch.int64)
        if ln.shape != (n,):
            raise ValueError(f"lengths must have shape ({n},), got {tuple(ln.shape)}")
        if ln.min() < 1 or ln.max() > T:
            raise ValueError(f"lengths must lie in [1, T={T}], got [{int(ln.min())}, {int(ln.max())}]")
        return ln

    def _prepare(self, x: ArrayLike, y: Optional[ArrayLike], lengths: Optional[ArrayLike]) -> Batch:
        xt = self._check_x(x)
        n, _, T = xt.shape
        yt = self._check_y(y, n) if y is not None else torch.zeros(n, dtype=torch.int64)
        return Batch(xt, yt, self._check_lengths(lengths, n, T))

    def _ensure_built(self, C: int, y: Optional[torch.Tensor], source: str = "labels") -> None:
        if self.params:
            return
        if y is None:
            raise RuntimeError("the network is not built: call fit first or give NetworkConfig.sizes")
        n_cls = len(self.classes) if self.classes is not None else int(y.max()) + 1
        self._n_classes_from = "classes" if self.classes is not None else source
        if n_cls < 2:
            warnings.warn(f"the training labels hold a single class ({int(y.max())}): the network gets {n_cls} "
                          "output neuron(s) and every prediction will be that class", stacklevel=3)
        self.build((C, *DEFAULT_HIDDEN, n_cls))

    def _batches(self, data: Union[Batch, Iterable], batch_size: int, shuffle: bool) -> Iterator[Batch]:
        if isinstance(data, Batch):
            n = data.x.shape[0]
            order = torch.randperm(n, generator=self.shuffle_gen) if shuffle else torch.arange(n)
            for s in range(0, n, batch_size):
                idx = order[s:s + batch_size]
                yield Batch(data.x[idx], data.y[idx], data.lengths[idx])
            return
        for item in data:
            if isinstance(item, dict):
                xb, yb, lb = item["x"], item.get("y"), item.get("lengths")
            elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
                xb, yb = item[0], item[1]
                lb = item[2] if len(item) == 3 else None
            else:
                raise TypeError("a DataLoader must yield (x, y) or (x, y, lengths) batches")
            b = self._prepare(xb, yb, lb)
            self._ensure_built(b.x.shape[1], b.y, source="first batch")
            yield b

    def _as_data(self, x: Any, y: Optional[ArrayLike], lengths: Optional[ArrayLike],
                 what: Optional[str] = None) -> Union[Batch, Iterable]:
        if isinstance(x, (str, bytes)):
            raise TypeError(f"x must be a tensor/array (N, C, T) or a DataLoader, got {type(x).__name__}")
        if isinstance(x, torch.utils.data.DataLoader) or (not isinstance(x, (torch.Tensor, np.ndarray, list, tuple)) and hasattr(x, "__iter__")):
            if y is not None or lengths is not None:
                raise ValueError("with a DataLoader, labels and lengths come from its batches")
            return x
        if y is None and what is not None:
            # without labels every sample would be scored/trained as class 0
            raise ValueError(f"Trainer.{what} needs the labels y for tensor/array input "
                             f"(predict(x) gives predictions without labels)")
        b = self._prepare(x, y, lengths)
        self._ensure_built(b.x.shape[1], b.y if y is not None else None)
        return b

    def preprocess(self, x: ArrayLike) -> torch.Tensor:
        """Apply the stored normalisation (train-split statistics) to raw ``x`` (N, C, T)."""
        xt = torch.as_tensor(x, dtype=torch.float32)
        if self.norm_mean is None:
            return xt
        return (xt - self.norm_mean[None, :, None]) / self.norm_std[None, :, None]

    # --------------------------------------------------------------- training
    def _apply_update(self, step: int, batch: int) -> None:
        grads = self._engine.grads()
        if self.update_hook is not None:
            self.update_hook(self, step, grads)
        for p, g in zip(self.params, grads):
            p.w.grad = g.w / batch
            if self.algorithm.adaptive:
                p.decay.grad = g.decay / batch
                p.gain.grad = g.gain / batch
        fast_step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.clamp_()
        self._engine.zero_grads()
        self.updates += 1

    def _run_online(self, b: Batch, learn: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """One batch through the engine; returns per-sample loss sum (B,), counts (B, N), first spikes (B, N), stopped fraction."""
        if learn and self.backend == "fused":
            return self._run_online_segments(b)
        x = b.x.to(self.device)
        y = b.y.to(self.device)
        ln = b.lengths.to(self.device)
        B, _, T = x.shape
        Tv = int(b.lengths.max())
        eng = self._engine
        eng.reset(B)
        eng.zero_grads()
        N = self.n_classes
        counts = x.new_zeros(B, N)
        first = torch.full((B, N), Tv, dtype=torch.int64, device=self.device)
        loss_sum = x.new_zeros(B)
        points = schedule_for(self.algorithm, Tv) if learn else ()
        if not isinstance(points, range):
            points = set(points)
        es = EarlyStop(B, max(len(points), 1), self.algorithm.early_stop_threshold,
                       enabled=learn and self.algorithm.uses_early_stop, device=self.device, dtype=x.dtype)
        for t in range(Tv):
            O = eng.forward(x[:, :, t])
            vm = ln > t
            vf = vm.to(x.dtype)
            counts += O * vf[:, None]
            first = torch.where((O > 0) & vm[:, None] & (first == Tv), torch.full_like(first, t), first)
            l_t, dEdO = step_loss_and_grad(self.loss, t, O, counts, y)
            loss_sum += l_t * vf
            if learn:
                eng.backward(dEdO, vf * es.mask)
                if t in points:
                    self._apply_update(t, B)
                    es.update(counts, y, vm)
        stopped = float(es.stopped.to(torch.float64).mean()) if es.enabled else 0.0
        return loss_sum, counts, first, stopped

    def _run_online_segments(self, b: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Training pass of one batch with the time-blocked segment ops (same results as the step loop).

        The steps between two update points run as one :meth:`OnlineEngine.run_segment` call:
        each layer's forward over the segment, then its learning pass, with every per-synapse
        row kept in cache across the segment's steps. The loss derivative is evaluated for
        the whole chunk of steps at once; it depends on each step's own spikes (and the
        running count) only, exactly as in the step loop.
        """
        x = b.x.to(self.device)
        y = b.y.to(self.device)
        ln = b.lengths.to(self.device)
        B = x.shape[0]
        Tv = int(b.lengths.max())
        eng = self._engine
        eng.reset(B)
        eng.zero_grads()
        N = self.n_classes
        counts = x.new_zeros(B, N)
        first = torch.full((B, N), Tv, dtype=torch.int64, device=self.device)
        loss_sum = x.new_zeros(B)
        points = schedule_for(self.algorithm, Tv)  # increasing; a range (O(1) memory) for every-step rules
        if not isinstance(points, range):
            points = sorted(set(p for p in points if p < Tv))
        es = EarlyStop(B, max(len(points), 1), self.algorithm.early_stop_threshold,
                       enabled=self.algorithm.uses_early_stop, device=self.device, dtype=x.dtype)
        t0 = 0
        for t1 in _segment_ends(points, Tv):
            # blocks of at most SEGMENT_CHUNK steps: every buffer here is bounded, whatever T is
            for c0 in range(t0, t1, SEGMENT_CHUNK):
                c1 = min(t1, c0 + SEGMENT_CHUNK)
                valid = ln[None, :] > torch.arange(c0, c1, device=self.device)[:, None]   # (S, B)
                validf = valid.to(x.dtype)

                def dEdO_fn(O_seq: torch.Tensor) -> torch.Tensor:
                    nonlocal counts, first, loss_sum
                    out = torch.empty_like(O_seq)
                    for s in range(O_seq.shape[0]):
                        t = c0 + s
                        O, vm, vf = O_seq[s], valid[s], validf[s]
                        counts += O * vf[:, None]
                        first = torch.where((O > 0) & vm[:, None] & (first == Tv), torch.full_like(first, t), first)
                        l_t, out[s] = step_loss_and_grad(self.loss, t, O, counts, y)
                        loss_sum += l_t * vf
                    return out

                # time-major copy of the block: each step's (B, C) slice contiguous for the kernels
                xb = x[:, :, c0:c1].permute(2, 0, 1).contiguous().permute(1, 2, 0)
                eng.run_segment(xb, dEdO_fn, validf * es.mask[None, :])
            if t1 - 1 in points:
                self._apply_update(t1 - 1, B)
                es.update(counts, y, ln > t1 - 1)
            t0 = t1
        stopped = float(es.stopped.to(torch.float64).mean()) if es.enabled else 0.0
        return loss_sum, counts, first, stopped

    def _run_autograd(self, b: Batch, learn: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        from .baselines import autograd_sequence
        from .bptt import snn_forward

        Tv = int(b.lengths.max())
        x = b.x[:, :, :Tv].to(self.device)
        y = b.y.to(self.device)
        valid = torch.arange(Tv, device=self.device)[None, :] < b.lengths.to(self.device)[:, None]
        if learn:
            points = schedule_for(self.algorithm, Tv)

            def on_update(step: int) -> None:
                if self.update_hook is not None:
                    grads = [LayerGrads(p.w.grad * x.shape[0], p.decay.grad * x.shape[0], p.gain.grad * x.shape[0])
                             for p in self.params]
                    self.update_hook(self, step, grads)
                fast_step(self.optimizer)
                self.optimizer.zero_grad(set_to_none=True)
                self.clamp_()
                self.updates += 1

            per, spikes = autograd_sequence(x, y, valid, self.params, self.neuron, self.loss, points, on_update,
                                            truncated=self.algorithm.name == "tbptt")
        else:
            with torch.no_grad():
                spikes = snn_forward(x, self.params, self.neuron, filter=True)
                per = sequence_loss(self.loss, spikes, y, valid)
        sv = spikes * valid[:, None, :].to(spikes.dtype)
        return per, sv.sum(-1), first_spike(sv), 0.0

    def _run(self, b: Batch, learn: bool):
        if not self.algorithm.online:
            return self._run_autograd(b, learn)
        if self.backend == "fused":
            # the data was validated once (finite, shapes) in _prepare: skip the ops' per-call NaN scans
            from .ops import input_checks

            with input_checks(False):
                return self._run_online(b, learn)
        return self._run_online(b, learn)

    def train_batch(self, x: ArrayLike, y: ArrayLike, lengths: Optional[ArrayLike] = None) -> dict[str, float]:
        """Learn from one batch (its update points included); returns its mean per-step loss and accuracy."""
        b = self._prepare(x, y, lengths)
        self._ensure_built(b.x.shape[1], b.y)
        per, counts, first, stopped = self._run(b, learn=True)
        pred = predict_from_scores(self._scores(counts, first, b.lengths)).cpu()
        return {"loss": float((per.cpu().to(torch.float64) / b.lengths).mean()),
                "accuracy": float((pred == b.y).to(torch.float64).mean()), "early_stopped": stopped}

    def _scores(self, counts: torch.Tensor, first: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return prediction_scores(counts, first, self.loss.prediction, int(lengths.max()))

    def fit(
        self,
        x: Any,
        y: Optional[ArrayLike] = None,
        lengths: Optional[ArrayLike] = None,
        *,
        epochs: Optional[int] = None,
        val: Optional[tuple] = None,
        progress: bool = False,
        callback: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> list[dict[str, Any]]:
        """Train for ``epochs`` more epochs (default ``train.epochs``); returns ``history``.

        ``val``: optional ``(x, y)`` or ``(x, y, lengths)`` evaluated after every epoch.
        Each history entry: epoch, train_loss (mean per-step loss), train_accuracy (of the
        predictions made while training), [val_loss, val_accuracy], updates, early_stopped
        (fraction of samples that early-stopped), params_finite (False once a weight, decay
        or gain is NaN/inf: the run diverged; a ``RuntimeWarning`` says which), time_s.
        """
        if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0):
            raise ValueError(f"Trainer.fit: epochs must be an int >= 0, got {epochs!r}")
        data = self._as_data(x, y, lengths, what="fit")
        if val is not None:
            if not isinstance(val, (tuple, list)) or not 1 <= len(val) <= 3:
                raise ValueError("Trainer.fit: val must be (x, y), (x, y, lengths) or (loader,), as evaluate() takes")
            if self.params and isinstance(val[0], (torch.Tensor, np.ndarray)):
                # tensor data is checked now, not after the first epoch (a network built from
                # the first DataLoader batch is checked at the first evaluation instead)
                self._check_val(lambda: self._prepare(*(*val, None, None)[:3]))
        n_epochs = self.train_config.epochs if epochs is None else int(epochs)
        bs = self.train_config.batch_size
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_epochs, desc=f"{self.algorithm.name}", unit="epoch")
        diverged = False
        for _ in range(n_epochs):
            t0 = time.perf_counter()
            tot_loss = correct = seen = stopped = 0.0
            inner = self._batches(data, bs, self.train_config.shuffle)
            if progress:
                from tqdm.auto import tqdm

                n_b = math.ceil(data.x.shape[0] / bs) if isinstance(data, Batch) else None
                inner = tqdm(inner, total=n_b, desc=f"epoch {self.epoch + 1}", unit="batch", leave=False)
            for b in inner:
                per, counts, first, st = self._run(b, learn=True)
                pred = predict_from_scores(self._scores(counts, first, b.lengths)).cpu()
                tot_loss += float((per.cpu().to(torch.float64) / b.lengths).sum())
                correct += int((pred == b.y).sum())
                seen += b.x.shape[0]
                stopped += st * b.x.shape[0]
                if progress:
                    inner.set_postfix(loss=f"{tot_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
            self.epoch += 1
            bad = self.nonfinite_params()
            if bad and not diverged:
                diverged = True  # one warning per fit call
                # a run that diverged can look calm: non-finite weights silence the network, so
                # the loss settles at the silent value and nothing else flags it
                warnings.warn(f"Trainer.fit: after epoch {self.epoch} the parameters {', '.join(bad)} are not finite "
                              "(NaN/inf): the run diverged; lower the learning rate", RuntimeWarning, stacklevel=2)
            rec: dict[str, Any] = {
                "epoch": self.epoch,
                "train_loss": tot_loss / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "updates": self.updates,
                "early_stopped": stopped / max(seen, 1),
                "params_finite": not bad,
            }
            if val is not None and (self.epoch % self.train_config.eval_every == 0 or _ == n_epochs - 1):
                ev = self._check_val(lambda: self.evaluate(*val))
                rec["val_loss"], rec["val_accuracy"] = ev["loss"], ev["accuracy"]
            rec["time_s"] = time.perf_counter() - t0
            self.history.append(rec)
            if callback is not None:
                callback(rec)
            if bar is not None:
                post = {"loss": f"{rec['train_loss']:.4f}", "acc": f"{rec['train_accuracy']:.3f}"}
                if "val_accuracy" in rec:
                    post["val"] = f"{rec['val_accuracy']:.3f}"
                bar.set_postfix(post)
                bar.update(1)
        if bar is not None:
            bar.close()
        return self.history

    @staticmethod
    def _check_val(fn: Callable[[], Any]) -> Any:
        """``fn()``, with a ValueError/TypeError about its data named as the validation data's."""
        try:
            return fn()
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"Trainer.fit: val: {exc}") from None

    def nonfinite_params(self) -> list[str]:
        """Names (``layer1.w``, ...) of the parameters holding a NaN or inf."""
        bad = []
        for l, p in enumerate(self.params):
            for name in ("w", "decay", "gain"):
                if not bool(torch.isfinite(getattr(p, name).detach()).all()):
                    bad.append(f"layer{l}.{name}")
        return bad

    # ------------------------------------------------------------- inference
    def _infer(self, x: Any, y: Optional[ArrayLike], lengths: Optional[ArrayLike], what: Optional[str] = None):
        data = self._as_data(x, y, lengths, what)
        bs = max(self.train_config.batch_size, 64)
        preds, ys, losses, scores = [], [], [], []
        for b in self._batches(data, bs, shuffle=False):
            with torch.no_grad():
                per, counts, first, _ = self._run(b, learn=False)
            sc = self._scores(counts, first, b.lengths).cpu()
            scores.append(counts.cpu())
            preds.append(predict_from_scores(sc))
            ys.append(b.y)
            losses.append(per.cpu().to(torch.float64) / b.lengths)
        return torch.cat(preds), torch.cat(ys), torch.cat(losses), torch.cat(scores)

    def predict(self, x: Any, lengths: Optional[ArrayLike] = None, *, return_labels: bool = False):
        """Predicted class index (N,) (or label names with ``return_labels``): argmax of the
        output spike counts over the valid steps (ties: earliest first spike, see LossConfig)."""
        if not self.params:
            raise RuntimeError("the network is not built: call fit first or give NetworkConfig.sizes")
        pred = self._infer(x, None, lengths)[0]
        if return_labels:
            if self.classes is None:
                raise ValueError("no label map: pass classes=[...] to the Trainer")
            return [self.classes[i] for i in pred.tolist()]
        return pred

    def spike_counts(self, x: Any, lengths: Optional[ArrayLike] = None) -> torch.Tensor:
        """Output spike counts over the valid steps (N, n_classes)."""
        return self._infer(x, None, lengths)[3]

    def evaluate(self, x: Any, y: Optional[ArrayLike] = None, lengths: Optional[ArrayLike] = None) -> dict[str, Any]:
        """``{"accuracy", "loss" (mean per-step loss), "n", "confusion" (n_classes x n_classes)}``."""
        if not self.params:
            raise RuntimeError("the network is not built: call fit first or give NetworkConfig.sizes")
        pred, ys, losses, _ = self._infer(x, y, lengths, what="evaluate")
        k = self.n_classes
        conf = torch.zeros(k, k, dtype=torch.int64)
        conf.index_put_((ys, pred), torch.ones_like(ys), accumulate=True)
        return {
            "accuracy": float((pred == ys).to(torch.float64).mean()),
            "loss": float(losses.mean()),
            "n": int(ys.shape[0]),
            "confusion": conf.tolist(),
        }

    def sequence_gradients(self, x: ArrayLike, y: ArrayLike, lengths: Optional[ArrayLike] = None) -> list[LayerGrads]:
        """Gradients (batch sums, as the engine accumulates them) at the first update point
        of one batch, without stepping the optimizer. For tests and diagnostics."""
        b = self._prepare(x, y, lengths)
        self._ensure_built(b.x.shape[1], b.y)
        captured: list[list[LayerGrads]] = []

        class _Stop(Exception):
            pass

        def hook(tr: "Trainer", step: int, grads: list[LayerGrads]) -> None:
            captured.append([LayerGrads(g.w.clone(), None if g.decay is None else g.decay.clone(),
                                        None if g.gain is None else g.gain.clone()) for g in grads])
            raise _Stop

        old = self.update_hook
        self.update_hook = hook
        try:
            self._run(b, learn=True)
        except _Stop:
            pass
        finally:
            self.update_hook = old
            for p in self.params:
                for t in (p.w, p.decay, p.gain):
                    t.grad = None
        return captured[0]

    # ------------------------------------------------------------ checkpoint
    @property
    def optimizer_impl(self) -> str:
        """How the optimizer steps: ``"fused"``, ``"foreach"`` or ``"loop"`` (per-tensor loop;
        also torch's default where it picks one itself); ``"none"`` before it is built."""
        if self.optimizer is None or not self.optimizer.param_groups:
            return "none"
        g = self.optimizer.param_groups[0]
        if g.get("fused"):
            return "fused"
        if g.get("foreach"):
            return "foreach"
        return "loop" if g.get("foreach") is False or self.device.type == "cpu" else "default"

    def configs(self) -> dict[str, dict[str, Any]]:
        return {
            "network": config_to_dict(self.network),
            "algorithm": config_to_dict(self.algorithm),
            "optimizer": config_to_dict(self.optim_config),
            "loss": config_to_dict(self.loss),
            "train": config_to_dict(self.train_config),
        }

    def save(self, path: str) -> None:
        """Write a checkpoint atomically (see :mod:`solsa_ext.checkpoint`)."""
        from .checkpoint import save_checkpoint

        save_checkpoint(self, path)

    @classmethod
    def load(cls, path: str, device: Optional[str] = None) -> "Trainer":
        """Rebuild a trainer from a checkpoint (weights, optimizer, RNG, history): training resumes exactly."""
        from .checkpoint import load_checkpoint

        return load_checkpoint(path, device=device)
