"""NAdam (PyTorch's update rule): Adam with Nesterov momentum, the momentum warmed up by momentum_decay.

    g = -grad if maximize else grad
    g = g + weight_decay * p   |   p = p * (1 - lr * weight_decay)  (decoupled_weight_decay)
    mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay));  mu_product = mu_1 * ... * mu_t
    m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
    denom = sqrt(v / (1 - beta2**t)) + eps
    p = p - lr * (1 - mu_t) / (1 - mu_product) * g / denom
          - lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * m / denom
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from ..dtypes import get_default_dtype
from .optimizer import (
    Optimizer, blocks, check_betas, check_non_negative, effective_grad, params_with_grad, update_moments_,
    weight_decay_terms, zeros_state,
)


class NAdam(Optimizer):
    """Nesterov-accelerated Adam (Dozat), optionally with decoupled weight decay (NAdamW).

    The state holds PyTorch's entries: step, mu_product (a number, like step), exp_avg and
    exp_avg_sq. `foreach` and `capturable` are accepted for PyTorch compatibility and ignored;
    the same array code runs on NumPy and CuPy.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr", "eps", "weight_decay", "momentum_decay"):
            check_non_negative(self, group, name)
        check_betas(self, group)

    def _step_group(self, group):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        param_scale, grad_decay = weight_decay_terms(group)
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                self._init_state(p, state)
            state["step"] = step = state["step"] + 1
            mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * group["momentum_decay"])))
            mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * group["momentum_decay"])))
            state["mu_product"] = mu_product = scalar_state_product(state["mu_product"], mu)
            hyper = dict(beta1=beta1, beta2=beta2, eps=eps, bias_correction2=1 - beta2**step,
                         grad_weight=-lr * (1.0 - mu) / (1.0 - mu_product),
                         avg_weight=(-lr * mu_next) / (1.0 - mu_product * mu_next),
                         grad_decay=grad_decay, param_scale=param_scale, maximize=group["maximize"])
            for block in blocks(p.data, grad, state["exp_avg"].data, state["exp_avg_sq"].data):
                self._update(*block, **hyper)
            p._bump_version()

    def _update(self, param, grad, exp_avg, exp_avg_sq, *, beta1, beta2, eps, bias_correction2, grad_weight,
                avg_weight, grad_decay, param_scale, maximize):
        xp = array_module(param)
        g = effective_grad(self, param, grad, grad_decay, maximize)
        if param_scale != 1.0:
            xp.multiply(param, param_scale, out=param)
        work = self._scratch(param)
        update_moments_(xp, g, exp_avg, exp_avg_sq, beta1, beta2, work)
        denom = xp.divide(exp_avg_sq, bias_correction2, out=self._scratch(param, slot=2))
        xp.add(xp.sqrt(denom, out=denom), eps, out=denom)
        for source, weight in ((g, grad_weight), (exp_avg, avg_weight)):  # PyTorch's two addcdiv_ calls
            xp.multiply(source, weight, out=work)
            xp.add(param, xp.divide(work, denom, out=work), out=param)

    @staticmethod
    def _init_state(p, state):
        state["step"] = 0
        state["mu_product"] = 1.0
        state["exp_avg"] = zeros_state(p)
        state["exp_avg_sq"] = zeros_state(p)


def scalar_state_product(a: float, b: float) -> float:
    """a * b rounded as PyTorch rounds its scalar state tensors (mu_product): in float32 arithmetic,
    unless the default dtype is float64. The rounding compounds over steps, so it is kept to match."""
    if get_default_dtype() == np.float64:
        return a * b
    return float(np.float32(a) * np.float32(b))
