"""RMSprop (PyTorch's update rule), with momentum and the centered variant.

    g = -grad if maximize else grad;  g = g + weight_decay * p
    v = alpha * v + (1 - alpha) * g * g
    centered: a = lerp(a, g, 1 - alpha);  avg = sqrt(v - a * a) + eps     else avg = sqrt(v) + eps
    momentum > 0: buf = momentum * buf + g / avg;  p = p - lr * buf     else p = p - lr * g / avg
"""
from __future__ import annotations

from ..backend import array_module
from .optimizer import (
    Optimizer, blocks, check_non_negative, effective_grad, lerp_, params_with_grad, zeros_state,
)


class RMSprop(Optimizer):
    """Divide the gradient by a running root-mean-square of recent gradients (Hinton's RMSprop).

    The same array code runs on NumPy and CuPy (no fused GPU kernel yet).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False, foreach=None, capturable=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            check_non_negative(self, group, name)

    def _step_group(self, group):
        hyper = {k: group[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum", "maximize")}
        centered = group["centered"]
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                self._init_state(p, state, group)
            state["step"] += 1
            arrays = (p.data, grad, state["square_avg"].data, state["grad_avg"].data if centered else None,
                      state["momentum_buffer"].data if hyper["momentum"] > 0 else None)
            for block in blocks(*arrays):
                self._update(*block, **hyper)
            p._bump_version()

    def _update(self, param, grad, square_avg, grad_avg, buf, *, lr, alpha, eps, weight_decay, momentum, maximize):
        xp = array_module(param)
        g = effective_grad(self, param, grad, weight_decay, maximize)
        work = self._scratch(param)
        xp.multiply(square_avg, alpha, out=square_avg)
        xp.multiply(g, 1 - alpha, out=work)
        xp.multiply(work, g, out=work)
        xp.add(square_avg, work, out=square_avg)
        if grad_avg is None:
            avg = xp.sqrt(square_avg, out=work)
        else:  # centered: subtract the squared running mean of the gradient
            lerp_(xp, grad_avg, g, 1 - alpha, work)
            xp.multiply(grad_avg, grad_avg, out=work)
            avg = xp.sqrt(xp.subtract(square_avg, work, out=work), out=work)
        xp.add(avg, eps, out=avg)
        if buf is not None:
            xp.multiply(buf, momentum, out=buf)
            xp.add(buf, xp.divide(g, avg, out=avg), out=buf)
            update = xp.multiply(buf, -lr, out=avg)
        else:
            update = xp.multiply(xp.divide(g, avg, out=avg), -lr, out=avg)
        xp.add(param, update, out=param)

    @staticmethod
    def _init_state(p, state, group):
        state["step"] = 0
        state["square_avg"] = zeros_state(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = zeros_state(p)
        if group["centered"]:
            state["grad_avg"] = zeros_state(p)

