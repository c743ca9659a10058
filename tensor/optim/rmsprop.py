"""RMSprop (PyTorch's update rule), with momentum and the centered variant.

    g = -grad if maximize else grad;  g = g + weight_decay * p
    v = alpha * v + (1 - alpha) * g * g
    centered: a = lerp(a, g, 1 - alpha);  avg = sqrt(v - a * a) + eps     else avg = sqrt(v) + eps
    momentum > 0: buf = momentum * buf + g / avg;  p = p - lr * buf     else p = p - lr * g / avg
"""
from __future__ import annotations

from ..backend import array_module
from .optimizer import Optimizer, check_non_negative, effective_grad, params_with_grad, zeros_state


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
        lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                self._init_state(p, state, group)
            state["step"] += 1
            param = p.data
            xp = array_module(param)
            g = effective_grad(self, param, grad, group["weight_decay"], group["maximize"])
            work = self._scratch(param)
            square_avg = state["square_avg"].data
            xp.multiply(square_avg, alpha, out=square_avg)
            xp.multiply(g, 1 - alpha, out=work)
            xp.multiply(work, g, out=work)
            xp.add(square_avg, work, out=square_avg)
            avg = self._root_mean_square(xp, state, g, alpha, group["centered"], work)
            xp.add(avg, eps, out=avg)
            if momentum > 0:
                buf = state["momentum_buffer"].data
                xp.multiply(buf, momentum, out=buf)
                xp.add(buf, xp.divide(g, avg, out=avg), out=buf)
                update = xp.multiply(buf, -lr, out=avg)
            else:
                update = xp.multiply(xp.divide(g, avg, out=avg), -lr, out=avg)
            xp.add(param, update, out=param)
            p._bump_version()

    @staticmethod
    def _root_mean_square(xp, state, g, alpha, centered, work):
        """sqrt(E[g^2]) or, centered, sqrt(E[g^2] - E[g]^2), into `work`."""
        square_avg = state["square_avg"].data
        if not centered:
            return xp.sqrt(square_avg, out=work)
        grad_avg = state["grad_avg"].data
        xp.subtract(g, grad_avg, out=work)  # grad_avg.lerp_(g, 1 - alpha), with PyTorch's formula choice
        if 1 - alpha < 0.5:
            xp.add(grad_avg, xp.multiply(work, 1 - alpha, out=work), out=grad_avg)
        else:
            xp.subtract(g, xp.multiply(work, alpha, out=work), out=grad_avg)
        xp.multiply(grad_avg, grad_avg, out=work)
        xp.subtract(square_avg, work, out=work)
        return xp.sqrt(work, out=work)

    @staticmethod
    def _init_state(p, state, group):
        state["step"] = 0
        state["square_avg"] = zeros_state(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = zeros_state(p)
        if group["centered"]:
            state["grad_avg"] = zeros_state(p)
