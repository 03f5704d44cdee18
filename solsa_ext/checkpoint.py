"""Checkpoints: everything needed to predict with, or resume, a training run.

A checkpoint is one ``torch.save`` file holding a dict:

    format        "solsa_ext.checkpoint/1"
    configs       network / algorithm / optimizer / loss / train configs (plain dicts)
    params        per layer {"w", "decay", "gain"} tensors (CPU)
    optimizer     the optimizer's ``state_dict()``
    classes       the label map (list of class names, index = class id) or None
    norm_mean, norm_std   normalisation statistics of the train split (C,) or None
    input_kind    "current" or "spikes"
    epoch, updates, history   progress so far
    shuffle_rng   state of the generator that shuffles batches (resume = same order)
    versions      torch / numpy / solsa_ext versions that wrote it

It is written atomically: to a temporary file in the same folder, flushed and fsynced,
then moved over the destination with ``os.replace`` (a crash leaves either the old or
the new checkpoint, never a truncated one).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

from .atomic import atomic_torch_save
from .config import config_from_dict

if TYPE_CHECKING:
    from .trainer import Trainer

FORMAT = "solsa_ext.checkpoint/1"


def versions() -> dict[str, str]:
    from . import __version__

    return {"solsa_ext": __version__, "torch": torch.__version__, "numpy": np.__version__}


def checkpoint_dict(tr: "Trainer") -> dict[str, Any]:
    if not tr.params:
        raise RuntimeError("nothing to save: the network is not built yet")
    return {
        "format": FORMAT,
        "configs": tr.configs(),
        "params": [{k: v.cpu() for k, v in d.items()} for d in tr.state_tensors()],
        "optimizer": tr.optimizer.state_dict(),
        "classes": tr.classes,
        "norm_mean": tr.norm_mean,
        "norm_std": tr.norm_std,
        "input_kind": tr.input_kind,
        "epoch": tr.epoch,
        "updates": tr.updates,
        "history": list(tr.history),
        "shuffle_rng": tr.shuffle_gen.get_state(),
        "versions": versions(),
    }


def save_checkpoint(tr: "Trainer", path: str) -> None:
    atomic_torch_save(checkpoint_dict(tr), path)


def load_checkpoint(path: str, device: Optional[str] = None) -> "Trainer":
    from .trainer import Trainer

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a checkpoint file (give the checkpoint.pt inside it)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except OSError:
        raise  # missing or unreadable: FileNotFoundError / PermissionError say which
    except Exception as exc:  # noqa: BLE001 - torch.load on a non-checkpoint fails in many ways
        raise ValueError(f"{path} is not a solsa_ext checkpoint (format {FORMAT}): cannot unpickle it "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path} is not a solsa_ext checkpoint (format {FORMAT})")
    cfg = {k: config_from_dict(k, v) for k, v in ck["configs"].items()}
    if device is not None:
        cfg["train"].device = device
    tr = Trainer(cfg["network"], cfg["algorithm"], cfg["optimizer"], cfg["loss"], cfg["train"],
                 classes=ck["classes"], norm_mean=ck["norm_mean"], norm_std=ck["norm_std"],
                 input_kind=ck["input_kind"])
    if len(ck["params"]) != len(tr.params):
        raise ValueError(f"{path}: {len(ck['params'])} layers stored, network config has {len(tr.params)}")
    with torch.no_grad():
        for p, d in zip(tr.params, ck["params"]):
            p.w.copy_(d["w"])
            p.decay.copy_(d["decay"])
            p.gain.copy_(d["gain"])
    tr.optimizer.load_state_dict(ck["optimizer"])
    tr.epoch = int(ck["epoch"])
    tr.updates = int(ck["updates"])
    tr.history = list(ck["history"])
    tr.shuffle_gen.set_state(ck["shuffle_rng"])
    return tr
