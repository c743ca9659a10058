"""Adagrad (PyTorch's update rule): per-coordinate steps shrinking with the sum of squared gradients.

    g = -grad if maximize else grad;  g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    sum = sum + g * g;  p = p - clr * g / (sqrt(sum) + eps)
"""
from __future__ import annotations

from ..backend import array_module
from .optimizer import Optimizer, blocks, check_non_negative, effective_grad, params_with_grad, zeros_state


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.). State is created at construction, as in PyTorch, so a fresh
    optimizer's state_dict already holds every parameter's accumulator.

    The same array code runs on NumPy and CuPy (no fused GPU kernel yet).
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 foreach=None, *, maximize=False, fused=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, self.state[p], group)

    def _check_group(self, group):
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_non_negative(self, group, name)

    def _step_group(self, group):
        hyper = {k: group[k] for k in ("eps", "weight_decay", "maximize")}
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:  # a parameter added later with add_param_group
                self._init_state(p, state, group)
            state["step"] = step = state["step"] + 1
            clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
            for block in blocks(p.data, grad, state["sum"].data):
                self._update(*block, clr=clr, **hyper)
            p._bump_version()

    def _update(self, param, grad, total, *, clr, eps, weight_decay, maximize):
        xp = array_module(param)
        g = effective_grad(self, param, grad, weight_decay, maximize)
        work = self._scratch(param)
        xp.add(total, xp.multiply(g, g, out=work), out=total)
        std = xp.add(xp.sqrt(total, out=work), eps, out=work)
        update = xp.multiply(xp.divide(g, std, out=work), -clr, out=work)
        xp.add(param, update, out=param)

    @staticmethod
    def _init_state(p, state, group):
        state["step"] = 0
        state["sum"] = zeros_state(p, group["initial_accumulator_value"])
