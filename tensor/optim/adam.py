"""Adam and AdamW (PyTorch's update rules; AdamW is Adam with decoupled weight decay).

    g = -grad if maximize else grad
    Adam:  g = g + weight_decay * p            AdamW:  p = p * (1 - lr * weight_decay)
    m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
    v_hat = max(v_max, v) (amsgrad, kept in v_max)  |  v
    p = p - lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)
"""
from __future__ import annotations

import numpy as np

from .optimizer import (
    Optimizer, blocks, check_betas, check_non_negative, effective_grad, params_with_grad, update_moments_,
    weight_decay_terms, zeros_state,
)


class Adam(Optimizer):
    """Adam (Kingma & Ba), with AMSGrad and either L2 (default) or decoupled weight decay.

    `foreach`, `fused` and `capturable` are accepted for PyTorch compatibility and ignored: on the
    GPU every update is one fused kernel already.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False, foreach=None, fused=None, capturable=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr", "eps", "weight_decay"):
            check_non_negative(self, group, name)
        check_betas(self, group)

    def _step_group(self, group):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        amsgrad, maximize = group["amsgrad"], group["maximize"]
        param_scale, grad_decay = weight_decay_terms(group)
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                self._init_state(p, state, amsgrad)
            state["step"] = step = state["step"] + 1
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            moments = (state["exp_avg"].data, state["exp_avg_sq"].data,
                       state["max_exp_avg_sq"].data if amsgrad else None)
            hyper = dict(beta1=beta1, beta2=beta2, eps=eps, step_size=lr / bias_correction1,
                         bias_correction2_sqrt=bias_correction2**0.5, grad_decay=grad_decay,
                         param_scale=param_scale, maximize=maximize)
            if type(p.data) is np.ndarray:
                for block in blocks(p.data, grad, *moments):
                    self._update_numpy(*block, **hyper)
            else:
                from . import _kernels

                _kernels.adam_(p.data, grad, *moments, **hyper)
            p._bump_version()

    @staticmethod
    def _init_state(p, state, amsgrad):
        state["step"] = 0
        state["exp_avg"] = zeros_state(p)
        state["exp_avg_sq"] = zeros_state(p)
        if amsgrad:
            state["max_exp_avg_sq"] = zeros_state(p)

    def _update_numpy(self, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, beta1, beta2, eps, step_size,
                      bias_correction2_sqrt, grad_decay, param_scale, maximize):
        g = effective_grad(self, param, grad, grad_decay, maximize)
        if param_scale != 1.0:
            np.multiply(param, param_scale, out=param)
        work = self._scratch(param)
        update_moments_(np, g, exp_avg, exp_avg_sq, beta1, beta2, work)
        second_moment = exp_avg_sq
        if max_exp_avg_sq is not None:
            second_moment = np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        # m / (sqrt(v) / c + eps) == c * m / (sqrt(v) + eps * c), c = bias_correction2_sqrt: the same update
        # (to rounding) with one pass over the arrays fewer than PyTorch's order of operations.
        denom = np.sqrt(second_moment, out=work)
        np.add(denom, eps * bias_correction2_sqrt, out=denom)
        update = np.divide(exp_avg, denom, out=work)
        np.multiply(update, -step_size * bias_correction2_sqrt, out=update)
        np.add(param, update, out=param)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): the decay shrinks the weights directly."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, fused=None, capturable=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

