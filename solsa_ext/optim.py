"""The optimizer step of the online algorithms, without ``torch.optim.Optimizer.step``'s
per-call Python.

The online algorithms step the optimizer K times per batch on small networks (the paper's
have 1-50 k parameters), so the fixed cost of ``Optimizer.step`` around torch's fused Adam
kernel (profiler scope, hook checks, ``_init_group``, grouping the tensors by device and
dtype) is a measurable share of training: 157-165 us per step on the BasicMotions network
in a training run (2 threads), about 11% of the benchmark's training time. :func:`fast_step`
makes the same two calls that ``torch.optim.Adam(fused=True).step()`` makes after its
bookkeeping (``torch._foreach_add_`` on the step counters, then ``torch._fused_adam_`` or
``torch._fused_adamw_``) with the same arguments, so parameters and optimizer state come out
bitwise the same (``python_tests/test_optim.py``). Anything it does not cover exactly goes to
``optimizer.step()``: other optimizers, several parameter groups, the first step (the state
is created there), a parameter without a gradient, sparse or mismatched gradients, tensor
hyperparameters, capturable or differentiable mode, step hooks (the optimizer's or global
ones), a gradient scaler's ``grad_scale`` / ``found_inf``, and ``torch.compile`` tracing.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["fast_step"]


def _global_hooks() -> bool:
    from torch.optim import optimizer as _opt

    return bool(getattr(_opt, "_global_optimizer_pre_hooks", None)) or bool(
        getattr(_opt, "_global_optimizer_post_hooks", None))


def _fast_args(opt: torch.optim.Optimizer) -> Any:
    """(kernel, tensor lists, keyword arguments) for the direct call, or None."""
    if type(opt) not in (torch.optim.Adam, torch.optim.AdamW) or len(opt.param_groups) != 1:
        return None
    if opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks or _global_hooks():
        return None
    if getattr(opt, "grad_scale", None) is not None or getattr(opt, "found_inf", None) is not None:
        return None
    g = opt.param_groups[0]
    if not g.get("fused") or g.get("capturable") or g.get("differentiable"):
        return None
    lr, (beta1, beta2) = g["lr"], g["betas"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in (lr, beta1, beta2, g["eps"], g["weight_decay"])):
        return None  # a tensor learning rate or betas (torch moves those between devices)
    amsgrad = bool(g["amsgrad"])
    params, grads, avgs, sqs, maxs, steps = [], [], [], [], [], []
    dev, dt = None, None
    for p in g["params"]:
        gr = p.grad
        st = opt.state.get(p)
        if gr is None or gr.is_sparse or not st or "step" not in st:
            return None
        if dev is None:
            dev, dt = p.device, p.dtype
        if p.device != dev or p.dtype != dt or gr.device != dev or gr.dtype != dt or gr.shape != p.shape:
            return None
        step = st["step"]
        if not isinstance(step, torch.Tensor) or step.device != dev:
            return None
        params.append(p)
        grads.append(gr)
        avgs.append(st["exp_avg"])
        sqs.append(st["exp_avg_sq"])
        if amsgrad:
            maxs.append(st["max_exp_avg_sq"])
        steps.append(step)
    decoupled = type(opt) is torch.optim.AdamW or bool(g.get("decoupled_weight_decay", False))
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    kwargs = dict(amsgrad=amsgrad, lr=lr, beta1=beta1, beta2=beta2, weight_decay=g["weight_decay"],
                  eps=g["eps"], maximize=bool(g["maximize"]), grad_scale=None, found_inf=None)
    return kernel, (params, grads, avgs, sqs, maxs, steps), kwargs


def fast_step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()``, bitwise, for a fused Adam/AdamW without the wrapper's per-call cost
    (module docstring); every other case is ``opt.step()`` itself."""
    if torch.compiler.is_compiling():
        opt.step()
        return
    fast = _fast_args(opt)
    if fast is None:
        opt.step()
        return
    kernel, (params, grads, avgs, sqs, maxs, steps), kwargs = fast
    with torch.no_grad():
        torch._foreach_add_(steps, 1)
        kernel(params, grads, avgs, sqs, maxs, steps, **kwargs)
