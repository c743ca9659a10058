"""Adamax (PyTorch's update rule): Adam with the infinity norm in place of the second moment.

    g = -grad if maximize else grad;  g = g + weight_decay * p
    m = lerp(m, g, 1 - beta1);  u = max(beta2 * u, |g| + eps)
    p = p - lr / (1 - beta1**t) * m / u
"""
from __future__ import annotations

from ..backend import array_module
from .optimizer import (
    Optimizer, blocks, check_betas, check_non_negative, effective_grad, lerp_, params_with_grad, zeros_state,
)


class Adamax(Optimizer):
    """Adamax (Kingma & Ba, section 7). State: step, exp_avg and exp_inf, as in PyTorch.

    `foreach` and `capturable` are accepted for PyTorch compatibility and ignored; the same
    array code runs on NumPy and CuPy.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, foreach=None, *,
                 maximize=False, capturable=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(self, group, name)
        check_betas(self, group)

    def _step_group(self, group):
        beta1, beta2 = group["betas"]
        hyper = dict(beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                     maximize=group["maximize"])
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                self._init_state(p, state)
            state["step"] = step = state["step"] + 1
            clr = group["lr"] / (1 - beta1**step)
            for block in blocks(p.data, grad, state["exp_avg"].data, state["exp_inf"].data):
                self._update(*block, clr=clr, **hyper)
            p._bump_version()

    def _update(self, param, grad, exp_avg, exp_inf, *, clr, beta1, beta2, eps, weight_decay, maximize):
        xp = array_module(param)
        g = effective_grad(self, param, grad, weight_decay, maximize)
        work = self._scratch(param)
        lerp_(xp, exp_avg, g, 1 - beta1, work)
        xp.multiply(exp_inf, beta2, out=exp_inf)
        xp.add(xp.abs(g, out=work), eps, out=work)
        xp.maximum(exp_inf, work, out=exp_inf)
        update = xp.multiply(exp_avg, -clr, out=work)
        xp.add(param, xp.divide(update, exp_inf, out=update), out=param)

    @staticmethod
    def _init_state(p, state):
        state["step"] = 0
        state["exp_avg"] = zeros_state(p)
        state["exp_inf"] = zeros_state(p)
