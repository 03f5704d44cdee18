"""Command line: ``python -m solsa_ext train --dataset BasicMotions --algo solsa --out DIR``.

``train`` loads a dataset, builds the paper's network for it (``paper_net``) unless
``--hidden`` is given, trains with a tqdm progress bar over epochs and batches, then
writes into ``--out``:

- ``results.json``: test_accuracy, train_accuracy, per-epoch history, wall time, peak
  memory (``ru_maxrss`` on CPU, ``torch.cuda.max_memory_allocated`` on CUDA), configs,
  versions, seed, label map, dataset facts;
- ``learning_curve.png``: loss and accuracies per epoch;
- ``checkpoint.pt``: the final checkpoint (``--resume`` continues from one).

``list`` prints the datasets and algorithms.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import resource
import shlex
import sys
import time
from typing import Any, Optional, Sequence

from .atomic import atomic_write
from .config import (ALGORITHMS, CONFIG_CLASSES, LOSSES, MAX_LOSS_SCALE, PLACEMENTS, PREDICTIONS, AlgorithmConfig,
                     LossConfig, NetworkConfig, OptimizerConfig, TrainConfig, check_device)


#: Below this many per-step synapse states (batch x sum of n_out x n_in) --threads 0 uses one thread.
AUTO_THREADS_SYNAPSES = 1_000_000


#: ``--optimizer-impl`` -> optimizer kwargs (``auto``: OptimizerConfig's choice).
IMPL_KWARGS: dict[str, dict[str, bool]] = {"auto": {}, "fused": {"fused": True}, "foreach": {"foreach": True},
                                           "loop": {"foreach": False}}

#: ``train`` flags (argparse dest) that set a config field: (config kind, field). A config's
#: error about the field is reported under the flag; with ``--resume`` the checkpoint's
#: configs win and these flags are ignored (with a warning when given and different).
FLAG_FIELDS: dict[str, tuple[str, str]] = {
    "algo": ("algorithm", "name"), "backend": ("algorithm", "backend"),
    "update_points": ("algorithm", "update_points"), "placement": ("algorithm", "placement"),
    "override_schedule": ("algorithm", "override_schedule"), "truncation": ("algorithm", "truncation"),
    "early_stop": ("algorithm", "early_stop"), "early_stop_threshold": ("algorithm", "early_stop_threshold"),
    "gamma": ("algorithm", "gamma"),
    "optimizer": ("optimizer", "name"), "lr": ("optimizer", "lr"), "weight_decay": ("optimizer", "kwargs"),
    "optimizer_impl": ("optimizer", "kwargs"),
    "loss": ("loss", "name"), "target_rate": ("loss", "target_rate"), "loss_scale": ("loss", "scale"),
    "prediction": ("loss", "prediction"),
    "hidden": ("network", "sizes"), "lam": ("network", "lam"), "vth": ("network", "vth"),
    "sigma": ("network", "sigma"), "decay_init": ("network", "decay_init"), "gain_init": ("network", "gain_init"),
    "decay_max": ("network", "decay_max"), "gain_max": ("network", "gain_max"), "w_scale": ("network", "w_scale"),
    "batch_size": ("train", "batch_size"), "seed": ("train", "seed"), "dtype": ("train", "dtype"),
}


def auto_threads(tr: Any) -> Optional[int]:
    """The ``--threads 0`` rule (also reproduce's default): 1 torch thread on CPU when the
    per-step state is small (batch x synapses < :data:`AUTO_THREADS_SYNAPSES`), else None
    (torch's default)."""
    if tr.device.type != "cpu":
        return None
    syn = tr.train_config.batch_size * sum(p.n_out * p.n_in for p in tr.params)
    return 1 if syn < AUTO_THREADS_SYNAPSES else None


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to the help, except for a ``None`` default: the help says what it means."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def int_at_least(lo: int) -> Any:
    """argparse type: an integer ``>= lo`` (the error names the flag)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    return parse


def positive_float(text: str) -> float:
    """argparse type: a finite number ``> 0``."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return v


def _val_fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1) (0: no validation split), got {text!r}")
    return v


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m solsa_ext", description="Train spiking networks online with SOLSA.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one algorithm on one dataset", formatter_class=_HelpFormatter)
    net, alg, tc = NetworkConfig(), AlgorithmConfig(), TrainConfig()
    opt, loss = OptimizerConfig(), LossConfig()
    t.add_argument("--dataset", required=True, help="dataset name (python -m solsa_ext list)")
    t.add_argument("--algo", default=alg.name, choices=ALGORITHMS, help="learning algorithm")
    t.add_argument("--out", default=None, help="output folder (default: runs/<dataset>-<algo>-seed<seed>; with --resume, "
                                                  "the checkpoint's algo and seed)")
    t.add_argument("--data-dir", default=None, help="folder with the user's copy of the data")
    t.add_argument("--dataset-option", "-O", action="append", default=[], metavar="KEY=VALUE",
                   help="a loader option (docs/DATASETS.md), e.g. -O n_steps=50 -O binary=false, converted to the "
                        "option's type (booleans: true/false, yes/no, on/off, 1/0); repeatable")
    t.add_argument("--epochs", type=int_at_least(0), default=tc.epochs,
                   help="training epochs (with --resume: epochs more)")
    t.add_argument("--batch-size", type=int_at_least(1), default=tc.batch_size, help="samples per batch")
    t.add_argument("--seed", type=int_at_least(0), default=tc.seed,
                   help="seed of the weight initialisation and of the batch shuffling")
    t.add_argument("--device", default=tc.device, help="cpu, cuda, cuda:N or auto")
    t.add_argument("--dtype", default=tc.dtype, choices=("float32", "float64"), help="floating-point type")
    t.add_argument("--threads", type=int_at_least(0), default=0,
                   help="torch threads; 0 = auto: 1 when the per-step state is small (batch x synapses "
                        f"< {AUTO_THREADS_SYNAPSES:,}, where thread overhead outweighs the work), else torch's default")
    t.add_argument("--backend", default=alg.backend, choices=("auto", "fused", "reference"), help="online engine backend")
    t.add_argument("--update-points", "-K", type=int, default=alg.update_points, help="K update points per sequence (scheduled algorithms)")
    t.add_argument("--placement", default=alg.placement, choices=PLACEMENTS, help="where the K update points go")
    t.add_argument("--override-schedule", action="store_true", help="use K/placement for every algorithm")
    t.add_argument("--truncation", type=int, default=alg.truncation, help="TBPTT truncation length")
    es = t.add_mutually_exclusive_group()
    es.add_argument("--early-stop", dest="early_stop", action="store_true", default=None,
                    help="force early stop on (default: the algorithm's own: on for solsa and variant3 only)")
    es.add_argument("--no-early-stop", dest="early_stop", action="store_false", default=None,
                    help="force early stop off")
    t.add_argument("--early-stop-threshold", type=float, default=alg.early_stop_threshold,
                   help="early stop: spike share of the label, in [0, 1]")
    t.add_argument("--gamma", type=float, default=alg.gamma, help="growth of the decay/gain gradient weight, in [0, 1]")
    t.add_argument("--optimizer", default=opt.name, help="a torch.optim class name")
    t.add_argument("--lr", type=float, default=opt.lr, help="learning rate (> 0)")
    t.add_argument("--weight-decay", type=float, default=None, help="the optimizer's weight_decay (default: its own)")
    t.add_argument("--optimizer-impl", default="auto", choices=("auto", "fused", "foreach", "loop"),
                   help="implementation of the optimizer step: auto = fused for Adam/AdamW (OptimizerConfig), "
                        "loop = torch's per-tensor loop (the runs of docs/RESULTS.md)")
    t.add_argument("--loss", default=loss.name, choices=LOSSES, help="per-step loss (docs/TRAINER.md)")
    t.add_argument("--target-rate", type=float, default=loss.target_rate,
                   help="rate_mse: target spike rate of the label's output, in (0, 1]")
    t.add_argument("--loss-scale", type=float, default=loss.scale,
                   help=f"step_ce/count_ce: softmax scale, in (0, {MAX_LOSS_SCALE:g}]")
    t.add_argument("--prediction", default=loss.prediction, choices=PREDICTIONS, help="prediction rule")
    t.add_argument("--hidden", type=int_at_least(1), nargs="*", default=None,
                   help="hidden layer sizes (default: the paper's network for the dataset)")
    t.add_argument("--lam", type=float, default=net.lam, help="membrane leak, in [0, 1]")
    t.add_argument("--vth", type=float, default=net.vth, help="firing threshold (> 0)")
    t.add_argument("--sigma", type=float, default=net.sigma, help="surrogate width (> 0)")
    t.add_argument("--decay-init", type=float, default=net.decay_init, help="initial synapse decay, in [0, decay-max]")
    t.add_argument("--gain-init", type=float, default=net.gain_init, help="initial synapse gain, in (0, gain-max]")
    t.add_argument("--decay-max", type=float, default=net.decay_max, help="decay clamp, in (0, 1)")
    t.add_argument("--gain-max", type=float, default=net.gain_max, help="upper gain clamp (>= gain-init)")
    t.add_argument("--w-scale", type=float, default=net.w_scale, help="scale of the initial weights (> 0)")
    t.add_argument("--no-normalize", action="store_true", help="do not z-score current inputs")
    t.add_argument("--eval-test-every", type=int_at_least(0), default=1,
                   help="evaluate the test split every N epochs for the learning curve (0: only at the end); "
                        "it is never used to pick anything")
    t.add_argument("--val-split", type=_val_fraction, default=0.0,
                   help="hold out this fraction of every class of the TRAIN split as validation data "
                        "(for tuning; val_accuracy per epoch goes into the history); in [0, 1), 0 = none")
    t.add_argument("--resume", default=None,
                   help="a checkpoint.pt to continue from: its configs win, the flags that set configs "
                        "(--algo, --lr, --hidden, ...) are ignored with a warning when they differ")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    sub.add_parser("list", help="list datasets and algorithms")
    from .experiments.cli import add_reproduce_parser

    add_reproduce_parser(sub)
    return p


def _peak_memory(device: Any) -> dict[str, Any]:
    import torch

    if device.type == "cuda":
        return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)),
                "peak_memory_kind": "torch.cuda.max_memory_allocated"}
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    scale = 1 if sys.platform == "darwin" else 1024
    return {"peak_memory_bytes": int(kb * scale), "peak_memory_kind": "resource.getrusage(RUSAGE_SELF).ru_maxrss"}


def _plot(history: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a1.set_xlabel("epoch"), a1.set_ylabel("mean per-step loss"), a1.legend()
    a2.plot(ep, [h["train_accuracy"] for h in history], label="train (online)")
    va = [(h["epoch"], h["val_accuracy"]) for h in history if "val_accuracy" in h]
    if va:
        a2.plot(*zip(*va), marker=".", label="validation")
    te = [(h["epoch"], h["test_accuracy"]) for h in history if "test_accuracy" in h]
    if te:
        a2.plot(*zip(*te), marker=".", label="test")
    a2.set_xlabel("epoch"), a2.set_ylabel("accuracy"), a2.set_ylim(-0.02, 1.02), a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def _finite_json(obj: Any) -> Any:
    """``obj`` with every NaN/inf float replaced by None (strict JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_json(v) for v in obj]
    return obj


def _write_json(obj: Any, path: str) -> None:
    atomic_write(path, lambda f: json.dump(_finite_json(obj), f, indent=2, allow_nan=False), binary=False)


_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _literal(text: str) -> Any:
    import ast

    text = {"true": "True", "false": "False", "null": "None", "none": "None"}.get(text.lower(), text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _option_types(dataset: str) -> tuple[str, dict[str, tuple[Optional[str], bool]]]:
    """The dataset's name and, per loader option, (``"bool"``/``"int"``/``"float"``/``"str"`` or
    None when the annotation says otherwise, whether None is accepted)."""
    from .datasets.registry import get_spec

    spec = get_spec(dataset)
    out: dict[str, tuple[Optional[str], bool]] = {}
    for name, prm in inspect.signature(spec.loader).parameters.items():
        if name in ("data_dir", "normalize"):
            continue
        ann = prm.annotation if isinstance(prm.annotation, str) else getattr(prm.annotation, "__name__", str(prm.annotation))
        parts = {x.strip() for x in str(ann).split("|")}
        kind = next((k for k in ("bool", "int", "float", "str") if k in parts), None)
        out[name] = (kind, "None" in parts or prm.default is None)
    return spec.name, out


def parse_options(items: Sequence[str], dataset: Optional[str] = None) -> dict[str, Any]:
    """``["n_steps=50", "binary=false", "test_subjects=[3,4]"]`` -> keyword arguments of a loader.

    Without ``dataset`` values are read as Python/JSON literals (numbers, true/false, lists);
    anything else stays a string. With ``dataset`` every value is converted to the type of
    its loader's parameter: booleans from true/false, yes/no, on/off, 1/0 (any case),
    integers, finite numbers, strings as given, ``none`` where None is allowed; a value that
    does not convert, or an option the loader does not take, raises ``ValueError`` naming it.
    """
    types = _option_types(dataset) if dataset is not None else None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ValueError(f"argument -O/--dataset-option: expected KEY=VALUE, got {item!r}")
        text = raw.strip()
        if types is None:
            out[key] = _literal(text)
            continue
        name, kinds = types
        if key not in kinds:
            raise ValueError(f"argument -O/--dataset-option: dataset {name} does not take option {key!r}; "
                             f"it accepts {', '.join(kinds) or 'none'}")
        kind, nullable = kinds[key]
        where = f"argument -O/--dataset-option: {key}"
        low = text.lower()
        if nullable and low in ("none", "null"):
            out[key] = None
        elif kind == "bool":
            if low not in _BOOLS:
                raise ValueError(f"{where} expects a boolean (true/false, yes/no, on/off, 1/0), got {text!r}")
            out[key] = _BOOLS[low]
        elif kind == "int":
            try:
                out[key] = int(text)
            except ValueError:
                raise ValueError(f"{where} expects an integer, got {text!r}") from None
        elif kind == "float":
            try:
                v = float(text)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise ValueError(f"{where} expects a finite number, got {text!r}")
            out[key] = v
        elif kind == "str":
            out[key] = text
        else:
            out[key] = _literal(text)
    return out


def _configs(a: argparse.Namespace) -> dict[str, Any]:
    """The configs of a new run from the flags (network sizes None: set once the data is
    loaded); a value a config rejects raises ``ValueError`` naming its flag."""
    kw = {} if a.weight_decay is None else {"weight_decay": a.weight_decay}
    kw.update(IMPL_KWARGS[a.optimizer_impl])
    try:
        return dict(
            network=NetworkConfig(lam=a.lam, vth=a.vth, sigma=a.sigma, decay_init=a.decay_init,
                                  gain_init=a.gain_init, decay_max=a.decay_max, gain_max=a.gain_max, w_scale=a.w_scale),
            algorithm=AlgorithmConfig(name=a.algo, update_points=a.update_points, placement=a.placement,
                                      early_stop=a.early_stop, early_stop_threshold=a.early_stop_threshold,
                                      truncation=a.truncation, gamma=a.gamma, backend=a.backend,
                                      override_schedule=a.override_schedule),
            optimizer=OptimizerConfig(name=a.optimizer, lr=a.lr, kwargs=kw),
            loss=LossConfig(name=a.loss, target_rate=a.target_rate, scale=a.loss_scale, prediction=a.prediction),
            train=TrainConfig(batch_size=a.batch_size, epochs=a.epochs, seed=a.seed, device=a.device, dtype=a.dtype),
        )
    except ValueError as exc:
        msg = str(exc)
        for dest, (kind, fld) in FLAG_FIELDS.items():
            if msg.startswith(f"{CONFIG_CLASSES[kind].__name__}.{fld} "):
                raise ValueError(f"argument {_flag(dest)}: {msg}") from None
        raise


def command_line(argv: Sequence[str]) -> str:
    """The command that reproduces a run: ``python -m solsa_ext`` and the arguments ``main``
    parsed, shell-quoted (not ``sys.argv``, which is the host's when ``main`` is called from
    Python)."""
    return "python -m solsa_ext " + shlex.join(list(argv))


def make_out(out: str) -> list[str]:
    """Create the output folder ``out`` (an error names ``--out`` when it cannot be used);
    returns the folders it created, outermost first."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"argument --out: {out!r} exists and is not a folder")
    created, d = [], os.path.abspath(out)
    while not os.path.exists(d):
        created.insert(0, d)
        d = os.path.dirname(d)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"argument --out: cannot create the folder {out!r}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"argument --out: the folder {out!r} is not writable")
    return created


def _load_resume(a: argparse.Namespace) -> Any:
    from .trainer import Trainer

    try:
        return Trainer.load(a.resume, device=None if a.device == TrainConfig().device else a.device)
    except OSError as exc:
        raise ValueError(f"argument --resume: cannot read {a.resume!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"argument --resume: {exc}") from None


def _ignored_on_resume(a: argparse.Namespace, tr: Any) -> list[str]:
    """The config flags given on the command line whose value differs from the checkpoint's."""
    defaults = vars(_parser().parse_args(["train", "--dataset", a.dataset]))
    argv = getattr(a, "argv", None) or []
    cfg = tr.configs()
    out = []
    for dest, (kind, fld) in FLAG_FIELDS.items():
        val = getattr(a, dest)
        flags = [_flag(dest)] + (["-K"] if dest == "update_points" else [])
        given = val != defaults[dest] or any(x == f or x.startswith(f + "=") for x in argv for f in flags)
        if not given:
            continue
        if dest == "hidden":
            sizes = cfg["network"]["sizes"]
            ck: Any = None if sizes is None else list(sizes[1:-1])
            val = None if val is None else list(val)
        elif dest == "weight_decay":
            ck = cfg["optimizer"]["kwargs"].get("weight_decay")
        elif dest == "optimizer_impl":
            ck = tr.optimizer_impl
            if val == "auto":
                continue
        else:
            ck = cfg[kind][fld]
        if val != ck:
            shown = " ".join(map(str, val)) if isinstance(val, list) else val
            out.append(f"{_flag(dest)} {shown} (checkpoint: {ck})")
    return out


def train_command(a: argparse.Namespace) -> dict[str, Any]:
    if a.out is not None and not a.out.strip():
        raise ValueError("argument --out: must not be empty (omit it for runs/<dataset>-<algo>-seed<seed>)")
    created: list[str] = []
    try:
        return _train(a, created)
    except BaseException:
        # a run that failed leaves none of the (still empty) output folders it created
        for d in reversed(created):
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
        raise


def _train(a: argparse.Namespace, created: list[str]) -> dict[str, Any]:
    import torch

    from .checkpoint import versions
    from .datasets import load_dataset
    from .trainer import Trainer

    # every flag is checked before the (possibly long) data loading and training
    check_device(a.device, "argument --device:", available=True)
    cfgs = None if a.resume else _configs(a)
    options = parse_options(a.dataset_option, a.dataset)
    if a.out:
        created += make_out(a.out)
    tr = None
    if a.resume:
        tr = _load_resume(a)
        ignored = _ignored_on_resume(a, tr)
        if ignored:
            print(f"warning: --resume continues with the checkpoint's configs; ignoring {', '.join(ignored)}",
                  file=sys.stderr)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    quiet = a.no_progress and "progress" in _option_types(a.dataset)[1] and "progress" not in options
    # --no-progress silences the loaders' conversion bars too (not recorded as a dataset option)
    ds = load_dataset(a.dataset, data_dir=a.data_dir, normalize=not a.no_normalize,
                      **({**options, "progress": False} if quiet else options))
    if tr is not None and tr.classes is not None and list(tr.classes) != list(ds.classes):
        raise ValueError(f"argument --resume: checkpoint label map {tr.classes} does not match dataset {ds.classes}")
    # the default folder is named after the run's own algorithm and seed: the checkpoint's
    # when resuming, not the flags' defaults, which may name another run's folder
    algo, seed = (a.algo, a.seed) if tr is None else (tr.algorithm.name, tr.train_config.seed)
    out = a.out or os.path.join("runs", f"{ds.name}-{algo}-seed{seed}")
    if not a.out:  # a given --out was made (and checked) before the data was loaded
        created += make_out(out)
    if tr is None:
        sizes = None if a.hidden is None else (ds.x_train.shape[1], *a.hidden, len(ds.classes))
        cfgs["network"] = dataclasses.replace(cfgs["network"], sizes=sizes)
        tr = Trainer.for_dataset(ds, **cfgs)
    if a.threads == 0 and auto_threads(tr) is not None:
        torch.set_num_threads(1)
    if tr.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(tr.device)
    test = (ds.x_test, ds.y_test, ds.len_test)

    def on_epoch(rec: dict[str, Any]) -> None:
        every = a.eval_test_every
        if every and rec["epoch"] % every == 0:
            rec["test_accuracy"] = tr.evaluate(*test)["accuracy"]

    x_fit, y_fit, len_fit, val = ds.x_train, ds.y_train, ds.len_train, None
    if a.val_split > 0:
        from .trainer import stratified_split

        i_tr, i_va = stratified_split(ds.y_train, a.val_split, seed=tr.train_config.seed)
        x_fit, y_fit, len_fit = ds.x_train[i_tr], ds.y_train[i_tr], ds.len_train[i_tr]
        val = (ds.x_train[i_va], ds.y_train[i_va], ds.len_train[i_va])
    t_fit = time.perf_counter()
    tr.fit(x_fit, y_fit, len_fit, epochs=a.epochs, val=val, progress=not a.no_progress, callback=on_epoch)
    fit_s = time.perf_counter() - t_fit
    ev_test = tr.evaluate(*test)
    ev_train = tr.evaluate(x_fit, y_fit, len_fit)
    tr.save(os.path.join(out, "checkpoint.pt"))
    wall = time.perf_counter() - t_start
    results = {
        "dataset": ds.name,
        "algorithm": tr.algorithm.name,
        "backend": tr.backend,
        "device": str(tr.device),
        "seed": tr.train_config.seed,
        "test_accuracy": ev_test["accuracy"],
        "test_loss": ev_test["loss"],
        "test_confusion": ev_test["confusion"],
        "train_accuracy": ev_train["accuracy"],
        "train_loss": ev_train["loss"],
        "epochs": tr.epoch,
        "updates": tr.updates,
        "history": tr.history,
        "wall_time_s": wall,
        "fit_time_s": fit_s,
        **_peak_memory(tr.device),
        "configs": tr.configs(),
        "optimizer_impl": tr.optimizer_impl,
        "label_map": {i: c for i, c in enumerate(ds.classes)},
        "classes": list(ds.classes),
        "input_kind": ds.input_kind,
        "dataset_options": options,
        "n_train": int(x_fit.shape[0]),
        "n_val": 0 if val is None else int(val[0].shape[0]),
        "n_test": int(ds.x_test.shape[0]),
        "sequence_length": int(ds.x_train.shape[2]),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "command": command_line(a.argv),
    }
    losses = [h.get("train_loss") for h in tr.history] + [ev_test["loss"], ev_train["loss"]]
    loss_diverged = any(isinstance(v, float) and not math.isfinite(v) for v in losses)
    if loss_diverged:
        print("warning: the loss is not finite (NaN/inf): the run diverged; results.json records it as null",
              file=sys.stderr)
    bad = tr.nonfinite_params()
    results["diverged"] = bool(bad) or loss_diverged
    if bad:
        print(f"warning: the parameters {', '.join(bad)} are not finite (NaN/inf): the run diverged "
              "(results.json: \"diverged\": true); lower --lr", file=sys.stderr)
    _write_json(results, os.path.join(out, "results.json"))
    _plot(tr.history, os.path.join(out, "learning_curve.png"), f"{ds.name} / {tr.algorithm.name}")
    print(f"{ds.name} {tr.algorithm.name}: test accuracy {ev_test['accuracy']:.4f}, train accuracy "
          f"{ev_train['accuracy']:.4f}, {wall:.1f} s; results in {out}")
    return results


def list_command() -> None:
    from .datasets import DATASETS

    print("datasets:")
    for name, spec in DATASETS.items():
        print(f"  {name:20s} net {'-'.join(map(str, spec.paper_net))}  {spec.input_kind}")
    print("algorithms:", ", ".join(ALGORITHMS))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "train":
            train_command(args)
        elif args.command == "reproduce":
            from .experiments.cli import main_reproduce

            return main_reproduce(args)
        else:
            list_command()
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
