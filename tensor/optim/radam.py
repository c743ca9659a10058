"""RAdam (PyTorch's update rule): Adam whose adaptive step is switched on, and rectified, once the
variance of the adaptive learning rate is tractable.

    g = -grad if maximize else grad
    g = g + weight_decay * p   |   p = p * (1 - lr * weight_decay)  (decoupled_weight_decay)
    m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
    rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
    rho_t > 5:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                p = p - lr * m / (1 - beta1**t) * sqrt(1 - beta2**t) / (sqrt(v) + eps) * r
    else:       p = p - lr * m / (1 - beta1**t)
"""
from __future__ import annotations

from ..backend import array_module
from .optimizer import (
    Optimizer, blocks, check_betas, check_non_negative, effective_grad, params_with_grad, update_moments_,
    weight_decay_terms, zeros_state,
)


class RAdam(Optimizer):
    """Rectified Adam (Liu et al.), optionally with decoupled weight decay (RAdamW).

    `foreach` and `capturable` are accepted for PyTorch compatibility and ignored; the same
    array code runs on NumPy and CuPy.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(self, group, name)
        check_betas(self, group)

    def _step_group(self, group):
        lr, (beta1, beta2) = group["lr"], group["betas"]
        param_scale, grad_decay = weight_decay_terms(group)
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                self._init_state(p, state)
            state["step"] = step = state["step"] + 1
            bias_correction2 = 1 - beta2**step
            hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"], bias_correction1=1 - beta1**step,
                         bias_correction2=bias_correction2, rect=_rectification(beta2, step, bias_correction2),
                         grad_decay=grad_decay, param_scale=param_scale, maximize=group["maximize"])
            for block in blocks(p.data, grad, state["exp_avg"].data, state["exp_avg_sq"].data):
                self._update(*block, **hyper)
            p._bump_version()

    def _update(self, param, grad, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, bias_correction1,
                bias_correction2, rect, grad_decay, param_scale, maximize):
        xp = array_module(param)
        g = effective_grad(self, param, grad, grad_decay, maximize)
        if param_scale != 1.0:
            xp.multiply(param, param_scale, out=param)
        work = self._scratch(param)
        update_moments_(xp, g, exp_avg, exp_avg_sq, beta1, beta2, work)
        update = xp.divide(exp_avg, bias_correction1, out=work)
        xp.multiply(update, lr, out=update)
        if rect is not None:  # the adaptive step, in PyTorch's order of operations
            adaptive = xp.sqrt(exp_avg_sq, out=self._scratch(param, slot=2))
            xp.add(adaptive, eps, out=adaptive)
            xp.divide(bias_correction2**0.5, adaptive, out=adaptive)
            xp.multiply(update, adaptive, out=update)
            xp.multiply(update, rect, out=update)
        xp.subtract(param, update, out=param)

    @staticmethod
    def _init_state(p, state):
        state["step"] = 0
        state["exp_avg"] = zeros_state(p)
        state["exp_avg_sq"] = zeros_state(p)


def _rectification(beta2, step, bias_correction2):
    """The variance rectification term r_t, or None while rho_t <= 5 (the adaptive step is off then)."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
    if rho_t <= 5.0:
        return None
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
