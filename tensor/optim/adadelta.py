"""Adadelta (PyTorch's update rule): steps scaled by the ratio of running RMS of updates and of gradients.

    g = -grad if maximize else grad;  g = g + weight_decay * p
    v = rho * v + (1 - rho) * g * g
    delta = sqrt(u + eps) / sqrt(v + eps) * g;  u = rho * u + (1 - rho) * delta * delta
    p = p - lr * delta
"""
from __future__ import annotations

from ..backend import array_module
from .optimizer import Optimizer, blocks, check_non_negative, effective_grad, params_with_grad, zeros_state


class Adadelta(Optimizer):
    """Adadelta (Zeiler). State: step, square_avg (v) and acc_delta (u), as in PyTorch.

    `foreach` and `capturable` are accepted for PyTorch compatibility and ignored; the same
    array code runs on NumPy and CuPy.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, foreach=None, *, capturable=False,
                 maximize=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(self, group, name)
        rho = group["rho"]
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: rho must be in [0, 1] (the running averages' decay), got rho={rho!r}")

    def _step_group(self, group):
        hyper = {k: group[k] for k in ("lr", "rho", "eps", "weight_decay", "maximize")}
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                self._init_state(p, state)
            state["step"] += 1
            for block in blocks(p.data, grad, state["square_avg"].data, state["acc_delta"].data):
                self._update(*block, **hyper)
            p._bump_version()

    def _update(self, param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize):
        xp = array_module(param)
        g = effective_grad(self, param, grad, weight_decay, maximize)
        work, std = self._scratch(param), self._scratch(param, slot=2)
        xp.multiply(square_avg, rho, out=square_avg)
        xp.multiply(g, 1 - rho, out=work)
        xp.multiply(work, g, out=work)
        xp.add(square_avg, work, out=square_avg)
        xp.sqrt(xp.add(square_avg, eps, out=std), out=std)
        delta = xp.sqrt(xp.add(acc_delta, eps, out=work), out=work)
        xp.multiply(xp.divide(delta, std, out=delta), g, out=delta)
        xp.multiply(acc_delta, rho, out=acc_delta)
        xp.multiply(delta, 1 - rho, out=std)
        xp.add(acc_delta, xp.multiply(std, delta, out=std), out=acc_delta)
        xp.add(param, xp.multiply(delta, -lr, out=delta), out=param)

    @staticmethod
    def _init_state(p, state):
        state["step"] = 0
        state["square_avg"] = zeros_state(p)
        state["acc_delta"] = zeros_state(p)
