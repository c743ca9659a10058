"""ASGD, averaged stochastic gradient descent (PyTorch's update rule).

    g = -grad if maximize else grad;  g = g + weight_decay * p;  t = t + 1
    p = p * (1 - lambd * eta) - eta * g
    ax = p if mu == 1 else ax + mu * (p - ax)          (the running average of the iterates)
    eta = lr / (1 + lambd * lr * t) ** alpha;  mu = 1 / max(1, t - t0)
"""
from __future__ import annotations

import numpy as np

from ..dtypes import get_default_dtype
from ..tensor import Tensor
from .optimizer import Optimizer, check_non_negative, effective_grad, params_with_grad, zeros_state


def _scalar_state(value) -> float:
    """eta and mu rounded to the default float dtype: PyTorch keeps them as 0-d tensors of that dtype."""
    if isinstance(value, Tensor):
        value = value.item()
    return float(np.asarray(value, dtype=get_default_dtype()))


class ASGD(Optimizer):
    """Averaged SGD (Polyak & Juditsky): SGD with a decaying rate, plus the average of the iterates in
    state["ax"] (averaging starts after step t0); evaluate with ax for the averaged model.

    `foreach`, `differentiable` and `capturable` are accepted for PyTorch compatibility and ignored.
    """

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr", "weight_decay"):
            check_non_negative(self, group, name)

    def _step_group(self, group):
        lr, lambd, alpha, t0 = group["lr"], group["lambd"], group["alpha"], group["t0"]
        for p, grad in params_with_grad(group):
            state = self.state[p]
            if not state:
                state.update(step=0, eta=_scalar_state(lr), mu=1.0, ax=zeros_state(p))
            state["step"] = step = state["step"] + 1
            self._update(p.data, grad, state["ax"].data, state["eta"], state["mu"], group)
            state["eta"] = _scalar_state(lr / ((1 + lambd * lr * step) ** alpha))
            state["mu"] = _scalar_state(1 / max(1, step - t0))
            p._bump_version()

    def _update(self, param, grad, ax, eta, mu, group):
        g = effective_grad(self, param, grad, group["weight_decay"], group["maximize"])
        param *= 1 - group["lambd"] * eta
        param -= eta * g
        if mu != 1:
            ax += (param - ax) * mu
        else:
            ax[...] = param

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for state in self.state.values():
            for name in ("eta", "mu"):
                if name in state:
                    state[name] = _scalar_state(state[name])
