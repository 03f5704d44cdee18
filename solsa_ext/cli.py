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
import json
import os
import resource
import sys
import time
from typing import Any, Optional, Sequence

from .config import ALGORITHMS, LOSSES, PLACEMENTS, PREDICTIONS, AlgorithmConfig, LossConfig, NetworkConfig, OptimizerConfig, TrainConfig


#: Below this many per-step synapse states (batch x sum of n_out x n_in) --threads 0 uses one thread.
AUTO_THREADS_SYNAPSES = 1_000_000


#: ``--optimizer-impl`` -> optimizer kwargs (``auto``: OptimizerConfig's choice).
IMPL_KWARGS: dict[str, dict[str, bool]] = {"auto": {}, "fused": {"fused": True}, "foreach": {"foreach": True},
                                           "loop": {"foreach": False}}

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m solsa_ext", description="Train spiking networks online with SOLSA.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one algorithm on one dataset", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    net, alg, tc = NetworkConfig(), AlgorithmConfig(), TrainConfig()
    opt, loss = OptimizerConfig(), LossConfig()
    t.add_argument("--dataset", required=True, help="dataset name (python -m solsa_ext list)")
    t.add_argument("--algo", default=alg.name, choices=ALGORITHMS, help="learning algorithm")
    t.add_argument("--out", default=None, help="output folder (default runs/<dataset>-<algo>-seed<seed>)")
    t.add_argument("--data-dir", default=None, help="folder with the user's copy of the data")
    t.add_argument("--dataset-option", "-O", action="append", default=[], metavar="KEY=VALUE",
                   help="a loader option (docs/DATASETS.md), e.g. -O n_steps=50 -O binary=false; repeatable")
    t.add_argument("--epochs", type=int, default=tc.epochs)
    t.add_argument("--batch-size", type=int, default=tc.batch_size)
    t.add_argument("--seed", type=int, default=tc.seed)
    t.add_argument("--device", default=tc.device, help="cpu, cuda, cuda:N or auto")
    t.add_argument("--dtype", default=tc.dtype, choices=("float32", "float64"))
    t.add_argument("--threads", type=int, default=0,
                   help="torch threads; 0 = auto: 1 when the per-step state is small (batch x synapses "
                        f"< {AUTO_THREADS_SYNAPSES:,}, where thread overhead outweighs the work), else torch's default")
    t.add_argument("--backend", default=alg.backend, choices=("auto", "fused", "reference"), help="online engine backend")
    t.add_argument("--update-points", "-K", type=int, default=alg.update_points, help="K update points per sequence (scheduled algorithms)")
    t.add_argument("--placement", default=alg.placement, choices=PLACEMENTS)
    t.add_argument("--override-schedule", action="store_true", help="use K/placement for every algorithm")
    t.add_argument("--truncation", type=int, default=alg.truncation, help="TBPTT truncation length")
    es = t.add_mutually_exclusive_group()
    es.add_argument("--early-stop", dest="early_stop", action="store_true", default=None, help="force early stop on")
    es.add_argument("--no-early-stop", dest="early_stop", action="store_false", help="force early stop off")
    t.add_argument("--early-stop-threshold", type=float, default=alg.early_stop_threshold)
    t.add_argument("--gamma", type=float, default=alg.gamma)
    t.add_argument("--optimizer", default=opt.name, help="a torch.optim class name")
    t.add_argument("--lr", type=float, default=opt.lr)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--optimizer-impl", default="auto", choices=("auto", "fused", "foreach", "loop"),
                   help="implementation of the optimizer step: auto = fused for Adam/AdamW (OptimizerConfig), "
                        "loop = torch's per-tensor loop (the runs of docs/RESULTS.md)")
    t.add_argument("--loss", default=loss.name, choices=LOSSES)
    t.add_argument("--target-rate", type=float, default=loss.target_rate)
    t.add_argument("--loss-scale", type=float, default=loss.scale)
    t.add_argument("--prediction", default=loss.prediction, choices=PREDICTIONS)
    t.add_argument("--hidden", type=int, nargs="*", default=None, help="hidden layer sizes (default: the paper's)")
    t.add_argument("--lam", type=float, default=net.lam)
    t.add_argument("--vth", type=float, default=net.vth)
    t.add_argument("--sigma", type=float, default=net.sigma)
    t.add_argument("--decay-init", type=float, default=net.decay_init)
    t.add_argument("--gain-init", type=float, default=net.gain_init)
    t.add_argument("--decay-max", type=float, default=net.decay_max)
    t.add_argument("--gain-max", type=float, default=net.gain_max)
    t.add_argument("--w-scale", type=float, default=net.w_scale)
    t.add_argument("--no-normalize", action="store_true", help="do not z-score current inputs")
    t.add_argument("--eval-test-every", type=int, default=1,
                   help="evaluate the test split every N epochs for the learning curve (0: only at the end); "
                        "it is never used to pick anything")
    t.add_argument("--val-split", type=float, default=0.0,
                   help="hold out this fraction of every class of the TRAIN split as validation data "
                        "(for tuning; val_accuracy per epoch goes into the history)")
    t.add_argument("--resume", default=None, help="a checkpoint.pt to continue from (its configs win)")
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
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _write_json(obj: Any, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["n_steps=50", "binary=false", "test_subjects=[3,4]"]`` -> keyword arguments of a loader.

    Values are read as Python/JSON literals (numbers, true/false, lists); anything else
    stays a string.
    """
    import ast

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ValueError(f"--dataset-option expects KEY=VALUE, got {item!r}")
        text = {"true": "True", "false": "False", "null": "None", "none": "None"}.get(raw.strip().lower(), raw.strip())
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = raw.strip()
    return out


def train_command(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    from .checkpoint import versions
    from .datasets import load_dataset
    from .trainer import Trainer

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    ds = load_dataset(a.dataset, data_dir=a.data_dir, normalize=not a.no_normalize, **parse_options(a.dataset_option))
    out = a.out or os.path.join("runs", f"{ds.name}-{a.algo}-seed{a.seed}")
    os.makedirs(out, exist_ok=True)
    if a.resume:
        tr = Trainer.load(a.resume, device=None if a.device == TrainConfig().device else a.device)
        if tr.classes is not None and list(tr.classes) != list(ds.classes):
            raise ValueError(f"checkpoint label map {tr.classes} does not match dataset {ds.classes}")
    else:
        sizes = None if a.hidden is None else (ds.x_train.shape[1], *a.hidden, len(ds.classes))
        kw = {} if a.weight_decay is None else {"weight_decay": a.weight_decay}
        kw.update(IMPL_KWARGS[a.optimizer_impl])
        tr = Trainer.for_dataset(
            ds,
            network=NetworkConfig(sizes=sizes, lam=a.lam, vth=a.vth, sigma=a.sigma, decay_init=a.decay_init,
                                  gain_init=a.gain_init, decay_max=a.decay_max, gain_max=a.gain_max, w_scale=a.w_scale),
            algorithm=AlgorithmConfig(name=a.algo, update_points=a.update_points, placement=a.placement,
                                      early_stop=a.early_stop, early_stop_threshold=a.early_stop_threshold,
                                      truncation=a.truncation, gamma=a.gamma, backend=a.backend,
                                      override_schedule=a.override_schedule),
            optimizer=OptimizerConfig(name=a.optimizer, lr=a.lr, kwargs=kw),
            loss=LossConfig(name=a.loss, target_rate=a.target_rate, scale=a.loss_scale, prediction=a.prediction),
            train=TrainConfig(batch_size=a.batch_size, epochs=a.epochs, seed=a.seed, device=a.device, dtype=a.dtype),
        )
    if a.threads == 0 and tr.device.type == "cpu":
        syn = tr.train_config.batch_size * sum(p.n_out * p.n_in for p in tr.params)
        if syn < AUTO_THREADS_SYNAPSES:
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
        "dataset_options": parse_options(a.dataset_option),
        "n_train": int(x_fit.shape[0]),
        "n_val": 0 if val is None else int(val[0].shape[0]),
        "n_test": int(ds.x_test.shape[0]),
        "sequence_length": int(ds.x_train.shape[2]),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
    }
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
