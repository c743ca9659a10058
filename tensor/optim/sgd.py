"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (PyTorch's update rule).

    g = -grad if maximize else grad
    g = g + weight_decay * p
    buf = g (first step)  |  buf = momentum * buf + (1 - dampening) * g
    g = g + momentum * buf (nesterov)  |  g = buf
    p = p - lr * g
"""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, blocks, check_non_negative, effective_grad, params_with_grad, zeros_state


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    `foreach` and `fused` are accepted for PyTorch compatibility and ignored: on the GPU every
    update is one fused kernel already.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False, foreach=None, fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group):
        for name in ("lr", "momentum", "weight_decay"):
            check_non_negative(self, group, name)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _step_group(self, group):
        hyper = {k: group[k] for k in ("lr", "weight_decay", "momentum", "dampening", "nesterov", "maximize")}
        for p, grad in params_with_grad(group):
            state = self.state[p]
            first = hyper["momentum"] != 0 and "momentum_buffer" not in state
            if first:
                state["momentum_buffer"] = zeros_state(p)
            buf = state["momentum_buffer"].data if hyper["momentum"] != 0 else None
            if type(p.data) is np.ndarray:
                for block in blocks(p.data, grad, buf):
                    self._update_numpy(*block, first, **hyper)
            else:
                from . import _kernels

                _kernels.sgd_(p.data, grad, buf, first=first, **hyper)
            p._bump_version()

    def _update_numpy(self, param, grad, buf, first, *, lr, weight_decay, momentum, dampening, nesterov, maximize):
        g = effective_grad(self, param, grad, weight_decay, maximize)
        if buf is not None:
            if first:
                np.copyto(buf, g)
            else:
                work = self._scratch(param)
                np.multiply(buf, momentum, out=buf)
                np.multiply(g, 1 - dampening, out=work)
                np.add(buf, work, out=buf)
            if nesterov:
                work = self._scratch(param)
                np.multiply(buf, momentum, out=work)
                g = np.add(g, work, out=work)
            else:
                g = buf
        step = self._scratch(param)
        np.multiply(g, -lr, out=step)
        np.add(param, step, out=param)
