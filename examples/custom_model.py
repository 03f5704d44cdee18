"""A custom spiking model trained online: a PSPLIF layer feeding a user-written readout.

The hidden layer is :class:`solsa_ext.nn.PSPLIF` (per-synapse PSP filter with learned
decay/gain). The readout is written here by hand: a layer of LIF neurons without the
synapse filter, whose states live in plain tensors and whose step, gradient and error
are computed by calling the fused ops directly:

    torch.ops.solsa.step(x, w, None, None, None, None, e, V, O, sg, lam, vth, sigma, True)
    torch.ops.solsa.learn(mu, e, grad_w, None, None, None, None, None, 1.0)
    torch.ops.solsa.spatial_error(mu, w, None, sg_hidden)       # error sent to the hidden layer

Toy task: two classes of Poisson spike trains over 16 channels; class 0 fires on the
first half of the channels early in the sequence, class 1 fires on the second half late.
Loss: per-step rate MSE, dE/dO = O - target (target 1 for the label's neuron); the
prediction is the readout neuron that fired most. The optimizer steps once per batch, at
the end of the sequences.

Run:  python examples/custom_model.py            (needs the compiled ops: pip install -e .)
      python examples/custom_model.py --eager    (same model, eager PyTorch instead of the ops)
Prints one JSON line: {"accuracy_before": ..., "accuracy_after": ..., ...}.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from solsa_ext.neuron import decay_gain_coef, surrogate
from solsa_ext.nn import PSPLIF


def make_task(n: int, T: int = 40, C: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    rate = torch.full((n, C, T), 0.03)
    half, mid = C // 2, T // 2
    for b in range(n):
        if y[b] == 0:
            rate[b, :half, :mid] = 0.4
        else:
            rate[b, half:, mid:] = 0.4
    return (torch.rand(n, C, T, generator=g) < rate).float(), y


class Readout:
    """A user-written LIF readout without synapse filter: states are plain tensors."""

    def __init__(self, n_in: int, n_out: int, lam: float = 0.9, vth: float = 1.0, sigma: float = 0.5,
                 eager: bool = False, generator: torch.Generator | None = None) -> None:
        a = math.sqrt(3.0 / n_in)
        self.w = torch.nn.Parameter((torch.rand(n_out, n_in, generator=generator) * 2 - 1) * a)
        self.lam, self.vth, self.sigma, self.eager = lam, vth, sigma, eager

    def reset(self, batch: int) -> None:
        n_out, n_in = self.w.shape
        self.e = torch.zeros(batch, n_out, n_in)
        self.V, self.O, self.sg = (torch.zeros(batch, n_out) for _ in range(3))

    @torch.no_grad()
    def step(self, x: torch.Tensor) -> torch.Tensor:
        if not self.eager:
            torch.ops.solsa.step(x, self.w.detach(), None, None, None, None, self.e, self.V, self.O, self.sg,
                                 self.lam, self.vth, self.sigma, True)
            return self.O
        k = self.lam - self.vth * self.sg                       # reset is part of the trace
        self.e.mul_(k[:, :, None]).add_(x[:, None, :])
        self.V.copy_(self.lam * self.V + x @ self.w.detach().t() - self.vth * self.O)
        self.O.copy_((self.V >= self.vth).float())
        self.sg.copy_(surrogate(self.V, self.vth, self.sigma))
        return self.O

    @torch.no_grad()
    def learn(self, mu: torch.Tensor, sg_hidden: torch.Tensor) -> torch.Tensor:
        """Accumulate grad w from mu = dE/dO * sg; return the hidden layer's error."""
        if self.w.grad is None:
            self.w.grad = torch.zeros_like(self.w)
        if not self.eager:
            torch.ops.solsa.learn(mu, self.e, self.w.grad, None, None, None, None, None, 1.0)
            return torch.ops.solsa.spatial_error(mu, self.w.detach(), None, sg_hidden)
        self.w.grad += (mu[:, :, None] * self.e).sum(0)
        return (mu @ self.w.detach()) * sg_hidden


def accuracy(hidden: PSPLIF, readout: Readout, x: torch.Tensor, y: torch.Tensor) -> float:
    hidden.reset_state(x.shape[0])
    readout.reset(x.shape[0])
    counts = torch.zeros(x.shape[0], 2)
    for t in range(x.shape[2]):
        counts += readout.step(hidden(x[:, :, t]))
    return float((counts.argmax(1) == y).float().mean())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eager", action="store_true", help="eager PyTorch instead of torch.ops.solsa")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.eager:
        try:
            import solsa_ext.ops  # noqa: F401  (registers torch.ops.solsa.*)
        except ImportError as exc:
            sys.exit(f"the compiled ops are missing ({exc}); build them (pip install -e .) or run with --eager")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    xtr, ytr = make_task(96, seed=args.seed)
    xte, yte = make_task(64, seed=args.seed + 1)
    hidden = PSPLIF(16, 32, backend="reference" if args.eager else "fused", generator=gen, w_scale=2.0)
    readout = Readout(32, 2, eager=args.eager, generator=gen)
    opt = torch.optim.Adam([hidden.w, hidden.decay, hidden.gain, readout.w], lr=1e-2)
    before = accuracy(hidden, readout, xte, yte)
    t0 = time.perf_counter()
    B, T, gamma = 16, xtr.shape[2], 0.9
    for epoch in range(args.epochs):
        perm = torch.randperm(xtr.shape[0], generator=gen)
        for s in range(0, xtr.shape[0], B):
            idx = perm[s:s + B]
            x, y = xtr[idx], ytr[idx]
            target = torch.nn.functional.one_hot(y, 2).float()
            hidden.reset_state(len(idx))
            readout.reset(len(idx))
            for t in range(T):
                O = readout.step(hidden(x[:, :, t]))
                mu_out = ((O - target) * readout.sg).contiguous()      # rate MSE: dE/dO = O - target
                mu_hidden = readout.learn(mu_out, hidden.sg)
                hidden.accumulate(mu_hidden, coef=decay_gain_coef(t, gamma))
            for p in (hidden.w, hidden.decay, hidden.gain, readout.w):   # the loss is a batch mean
                p.grad /= len(idx)
            opt.step()
            opt.zero_grad()
            hidden.clamp_()
    after = accuracy(hidden, readout, xte, yte)
    res = {"accuracy_before": before, "accuracy_after": after, "epochs": args.epochs,
           "ops": "eager" if args.eager else "torch.ops.solsa", "train_s": round(time.perf_counter() - t0, 2)}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
