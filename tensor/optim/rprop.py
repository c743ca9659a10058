"""Rprop (PyTorch's update rule): per-coordinate step sizes driven by the sign of the gradient only.

    g = -grad if maximize else grad;  s = sign(g * prev)
    step_size = clamp(step_size * (etaplus if s > 0, etaminus if s < 0, else 1), *step_sizes)
    g = 0 where s < 0  (a sign change: skip this coordinate once)
    p = p - sign(g) * step_size;  prev = g
"""
from __future__ import annotations

from ..backend import array_module
from .optimizer import Optimizer, check_non_negative, params_with_grad, zeros_state


class Rprop(Optimizer):
    """Resilient backpropagation (Riedmiller & Braun): full-batch training with sign-based steps.

    `foreach`, `capturable` and `differentiable` are accepted for PyTorch compatibility and ignored.
    """

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
                 maximize=False, differentiable=False):
        defaults = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        check_non_negative(self, group, "lr")
        etas, step_sizes = group["etas"], group["step_sizes"]
        if len(etas) != 2 or not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Rprop: etas must be (etaminus, etaplus) with 0 < etaminus < 1 < etaplus, got {etas!r}")
        if len(step_sizes) != 2 or not 0.0 <= step_sizes[0] <= step_sizes[1]:
            raise ValueError(f"Rprop: step_sizes must be (min, max) with 0 <= min <= max, got {step_sizes!r}")

    def _step_group(self, group):
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["prev"] = zeros_state(p)
                state["step_size"] = zeros_state(p, group["lr"])
            state["step"] += 1
            self._update(p.data, grad, state["prev"].data, state["step_size"].data, group)
            p._bump_version()

    @staticmethod
    def _update(param, grad, prev, step_size, group):
        xp = array_module(param)
        (etaminus, etaplus), (step_min, step_max) = group["etas"], group["step_sizes"]
        g = -grad if group["maximize"] else grad
        sign = xp.sign(g * prev)
        factor = xp.where(sign > 0, etaplus, xp.where(sign < 0, etaminus, 1.0)).astype(step_size.dtype)
        xp.multiply(step_size, factor, out=step_size)
        xp.clip(step_size, step_min, step_max, out=step_size)
        g = xp.where(sign < 0, 0, g).astype(param.dtype)  # the sign flipped: the last step overshot
        param -= xp.sign(g) * step_size
        prev[...] = g
