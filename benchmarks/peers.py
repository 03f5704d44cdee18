"""Peer libraries' training workloads (snnTorch, SpikingJelly), configured as close to
solsa-ext's network as their APIs allow.

Every builder returns a :class:`Runner`: ``run()`` trains one sequence of ``steps`` steps
of a batch (forward, loss, backward, optimizer step(s)), the same unit that run.py times
for solsa-ext's own contenders. The per-step loss is the same everywhere:
``0.5 * sum((O_top[t] - target)^2)`` (ours: ``dEdO = O_top - target``).

What differs from ours (recorded in each runner's ``notes``):

- snnTorch ``Synaptic``: a per-*neuron* synaptic current ``I = alpha*I + W x`` (ours: a
  per-*synapse* filter F_ij with learned decay/gain), fast-sigmoid surrogate, BPTT.
- snnTorch ``Leaky``: no synaptic filter at all (current = W x), BPTT.
- SpikingJelly ``LIFNode(step_mode='m')``: multi-step LIF over the whole sequence at
  once, ``v = v*(1-1/tau) + W x`` (``decay_input=False``, tau = 1/(1-lam)), soft reset,
  sigmoid surrogate, BPTT. SpikingJelly >= 0.0.0.0.15 chose its kernel itself (CPU: its
  torch loop; CUDA: triton if present); older versions take ``backend=``: 'cupy' on CUDA
  when cupy is importable, else 'torch'.
- SpikingJelly OTTT: ``layer.OTTTSequential`` of ``nn.Linear`` + ``neuron.OTTTLIFNode``,
  its documented online loop (``loss.backward()`` every step, states detached), the
  optimizer stepped at the same K points as ours (the documented loop steps every step
  with ``online=True`` or once at the end with ``online=False``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn

from benchmarks import common

PEERS = ("snntorch_synaptic_bptt", "snntorch_leaky_bptt", "sj_lif_bptt", "sj_ottt")


@dataclass
class Runner:
    name: str
    run: Callable[[], None]
    timed_steps: int
    notes: str = ""
    extra: dict = field(default_factory=dict)


def available(name: str) -> Optional[str]:
    """None if the peer can run here, else why not."""
    try:
        if name.startswith("snntorch"):
            import snntorch  # noqa: F401
        else:
            from spikingjelly.activation_based import functional, layer, neuron  # noqa: F401
    except Exception as exc:  # ImportError, or a missing dependency of theirs
        return f"{type(exc).__name__}: {exc}"
    return None


def _update_points(steps: int, K: int) -> set[int]:
    K = max(1, min(K, steps))
    return {round((k + 1) * steps / K) - 1 for k in range(K)}


def _linears(sizes: Sequence[int], device, dtype, gen: torch.Generator) -> list[nn.Linear]:
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        lin = nn.Linear(n_in, n_out, bias=False).to(device=device, dtype=dtype)
        with torch.no_grad():
            a = (3.0 / n_in) ** 0.5
            lin.weight.copy_((torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) * 2 - 1) * a)
        out.append(lin)
    return out


def build(name: str, sizes: Sequence[int], x_bct: torch.Tensor, target: torch.Tensor, steps: int, K: int,
          lam: float = 0.9, vth: float = 1.0, syn_alpha: float = 0.5, lr: float = 1e-3) -> Runner:
    """A peer's training of one sequence of ``steps`` steps on ``x_bct`` (B, C, T)."""
    device, dtype = x_bct.device, x_bct.dtype
    gen = torch.Generator().manual_seed(1)
    x_tbc = x_bct[:, :, :steps].permute(2, 0, 1).contiguous()  # (T, B, C): their layout
    tgt = target.to(dtype)

    if name in ("snntorch_synaptic_bptt", "snntorch_leaky_bptt"):
        import snntorch as snn

        fcs = nn.ModuleList(_linears(sizes, device, dtype, gen))
        if name == "snntorch_synaptic_bptt":
            lifs = nn.ModuleList(
                [snn.Synaptic(alpha=syn_alpha, beta=lam, threshold=vth, reset_mechanism="subtract") for _ in fcs]
            )
            notes = ("snnTorch Synaptic: per-neuron synaptic current I=alpha*I+Wx (ours: per-synapse filter, "
                     "learned decay/gain); fast-sigmoid surrogate; BPTT, Adam once at the end")
        else:
            lifs = nn.ModuleList([snn.Leaky(beta=lam, threshold=vth, reset_mechanism="subtract") for _ in fcs])
            notes = ("snnTorch Leaky + nn.Linear: no synaptic filter (current = Wx); fast-sigmoid surrogate; "
                     "BPTT, Adam once at the end")
        lifs.to(device)
        opt = common.adam(fcs.parameters(), lr=lr)
        syn_mode = name == "snntorch_synaptic_bptt"

        def run() -> None:
            opt.zero_grad(set_to_none=True)
            states = [lif.init_synaptic() if syn_mode else lif.init_leaky() for lif in lifs]
            loss = x_tbc.new_zeros(())
            for t in range(steps):
                h = x_tbc[t]
                for l, (fc, lif) in enumerate(zip(fcs, lifs)):
                    cur = fc(h)
                    if syn_mode:
                        syn, mem = states[l]
                        h, syn, mem = lif(cur, syn, mem)
                        states[l] = (syn, mem)
                    else:
                        h, mem = lif(cur, states[l])
                        states[l] = mem
                loss = loss + 0.5 * ((h - tgt) ** 2).sum()
            loss.backward()
            common.adam_step(opt)

        return Runner(name, run, steps, notes)

    from spikingjelly.activation_based import functional, layer, neuron

    tau = 1.0 / (1.0 - lam) if lam < 1 else 1e9

    if name == "sj_lif_bptt":
        kw = dict(tau=float(tau), decay_input=False, v_threshold=vth, v_reset=None, detach_reset=False, step_mode="m")
        backend = None
        if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters:
            backend = "torch"
            if device.type == "cuda":
                try:
                    import cupy  # noqa: F401

                    backend = "cupy"
                except Exception:
                    pass
            kw["backend"] = backend
        mods: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            lin = layer.Linear(n_in, n_out, bias=False, step_mode="m").to(device=device, dtype=dtype)
            with torch.no_grad():
                a = (3.0 / n_in) ** 0.5
                lin.weight.copy_((torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) * 2 - 1) * a)
            mods += [lin, neuron.LIFNode(**kw)]
        net = nn.Sequential(*mods).to(device)
        opt = common.adam(net.parameters(), lr=lr)

        def run() -> None:
            functional.reset_net(net)
            opt.zero_grad(set_to_none=True)
            out = net(x_tbc)                                   # (T, B, N_top)
            loss = 0.5 * ((out - tgt) ** 2).sum()
            loss.backward()
            common.adam_step(opt)

        return Runner(name, run, steps,
                      "SpikingJelly LIFNode(step_mode='m') + layer.Linear: no synaptic filter, decay_input=False, "
                      f"tau={tau:g}, soft reset, sigmoid surrogate; BPTT, Adam once at the end; backend="
                      f"{backend or 'library default'}", {"backend": backend})

    if name == "sj_ottt":
        OTTT = neuron.OTTTLIFNode
        mods = []
        for lin in _linears(sizes, device, dtype, gen):
            mods += [lin, OTTT(tau=float(tau), decay_input=False, v_threshold=vth, v_reset=None)]
        net = layer.OTTTSequential(*mods).to(device)
        opt = common.adam(net.parameters(), lr=lr)
        pts = _update_points(steps, K)

        def run() -> None:
            functional.reset_net(net)
            opt.zero_grad(set_to_none=True)
            for t in range(steps):
                y = net(x_tbc[t])
                if isinstance(y, (list, tuple)):
                    y = y[0]
                loss = 0.5 * ((y - tgt) ** 2).sum()
                loss.backward()
                functional.detach_net(net)
                if t in pts:
                    common.adam_step(opt)
                    opt.zero_grad(set_to_none=True)

        return Runner(name, run, steps,
                      "SpikingJelly OTTT (OTTTSequential + OTTTLIFNode): no synaptic filter, presynaptic trace, "
                      f"backward every step, Adam at K={len(pts)} evenly spaced points")

    raise ValueError(f"unknown peer {name!r}; choose one of {PEERS}")
