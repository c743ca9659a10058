"""Fused CuPy kernels for the optimizer updates and the loss scaler: one launch per parameter.

Done with CuPy ufuncs, an Adam update is about ten kernel launches, each reading and writing
the whole parameter; fused, it reads param, grad and the moments once and writes them once.
The arithmetic follows PyTorch's single-tensor updates term by term. Half-precision values are
computed in float32 and float64 values in float64 (the "compute type" below).

CuPy is imported only when a kernel is first built, so the NumPy path never touches it. Each
kernel is built once per (compute type, variant) and then served from the cache.
"""
from __future__ import annotations

import functools

import numpy as np

from ..backend import cupy_module


def _compute_type(dtype) -> tuple[str, str]:
    """(NumPy name for the scalar arguments, C type for the arithmetic)."""
    return ("float64", "double") if dtype == np.float64 else ("float32", "float")


# ---------------------------------------------------------------------------------------------- SGD

_SGD_BODY = """
    {c} g = ({c})grad;
    if (maximize) g = -g;
    {c} p = ({c})param;
    g += weight_decay * p;
    {momentum_update}
    param = (T)(p - lr * g);
"""

_MOMENTUM_UPDATE = """
    {c} b = first ? g : momentum * ({c})buf + grad_weight * g;  // grad_weight = 1 - dampening
    buf = (T)b;
    g = nesterov ? g + momentum * b : b;
"""


@functools.lru_cache(maxsize=None)
def _sgd_kernel(scalar: str, c: str, with_momentum: bool):
    cp = cupy_module()
    scalars = ", ".join(f"{scalar} {name}" for name in ("lr", "weight_decay", "momentum", "grad_weight"))
    momentum_update = _MOMENTUM_UPDATE.format(c=c) if with_momentum else ""
    return cp.ElementwiseKernel(
        f"T grad, {scalars}, int32 nesterov, int32 maximize, int32 first",
        "T param, T buf" if with_momentum else "T param",
        _SGD_BODY.format(c=c, momentum_update=momentum_update),
        f"raygrad_sgd_{c}_{'momentum' if with_momentum else 'plain'}",
    )


def sgd_(param, grad, buf, *, lr, weight_decay, momentum, dampening, nesterov, maximize, first):
    """SGD on CuPy arrays in place; `buf` is the momentum buffer (None without momentum), `first` seeds it."""
    kernel = _sgd_kernel(*_compute_type(param.dtype), buf is not None)
    args = (grad, lr, weight_decay, momentum, 1 - dampening, int(nesterov), int(maximize), int(first), param)
    kernel(*args, buf) if buf is not None else kernel(*args)


# --------------------------------------------------------------------------------------------- Adam

_ADAM_BODY = """
    {c} g = ({c})grad;
    if (maximize) g = -g;
    {c} p = ({c})param;
    g += grad_decay * p;          // Adam's L2 penalty (0 for AdamW)
    p *= param_scale;             // AdamW's decoupled decay, 1 - lr * weight_decay (1 for Adam)
    {c} m = ({c})exp_avg;
    m = avg_weight < 0.5 ? m + avg_weight * (g - m) : g - (g - m) * (1 - avg_weight);  // m.lerp_(g, 1 - beta1)
    {c} v = beta2 * ({c})exp_avg_sq + sq_weight * g * g;  // sq_weight = 1 - beta2
    exp_avg = (T)m;
    exp_avg_sq = (T)v;
    {amsgrad}
    param = (T)(p - step_size * (m / (sqrt(v) / bias_correction2_sqrt + eps)));
"""

_AMSGRAD = """
    v = max(({c})max_exp_avg_sq, v);
    max_exp_avg_sq = (T)v;
"""


@functools.lru_cache(maxsize=None)
def _adam_kernel(scalar: str, c: str, amsgrad: bool):
    cp = cupy_module()
    names = ("avg_weight", "beta2", "sq_weight", "eps", "step_size", "bias_correction2_sqrt", "grad_decay", "param_scale")
    scalars = ", ".join(f"{scalar} {name}" for name in names)
    outputs = "T param, T exp_avg, T exp_avg_sq" + (", T max_exp_avg_sq" if amsgrad else "")
    return cp.ElementwiseKernel(
        f"T grad, {scalars}, int32 maximize",
        outputs,
        _ADAM_BODY.format(c=c, amsgrad=_AMSGRAD.format(c=c) if amsgrad else ""),
        f"raygrad_adam_{c}_{'amsgrad' if amsgrad else 'plain'}",
    )


def adam_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, beta1, beta2, eps, step_size,
          bias_correction2_sqrt, grad_decay, param_scale, maximize):
    """One Adam/AdamW step on CuPy arrays in place (`max_exp_avg_sq` is None unless amsgrad)."""
    kernel = _adam_kernel(*_compute_type(param.dtype), max_exp_avg_sq is not None)
    # The weights are computed here in double precision, as PyTorch computes its Python-scalar arguments.
    args = (grad, 1 - beta1, beta2, 1 - beta2, eps, step_size, bias_correction2_sqrt, grad_decay, param_scale,
            int(maximize),
            param, exp_avg, exp_avg_sq)
    kernel(*args, max_exp_avg_sq) if max_exp_avg_sq is not None else kernel(*args)


# ---------------------------------------------------------------------------------------- GradScaler


@functools.lru_cache(maxsize=None)
def _unscale_kernel(scalar: str, c: str):
    cp = cupy_module()
    # The gradient's type is spelled out (float32 or float64: GradScaler refuses float16 gradients), as
    # no input array could stand for a type placeholder.
    return cp.ElementwiseKernel(
        f"{scalar} inv_scale",
        f"{scalar} grad, raw int32 found_inf",  # an output: CuPy makes raw inputs const
        "if (!isfinite(grad)) found_inf[0] = 1;  // every writer stores 1: the race is harmless\n"
        "grad = grad * inv_scale;",
        f"raygrad_unscale_{c}",
    )


def unscale_(grad, inv_scale, found_inf):
    """grad *= inv_scale in place on a float32/float64 CuPy array; sets found_inf[0] = 1 on any inf or NaN."""
    _unscale_kernel(*_compute_type(grad.dtype))(inv_scale, grad, found_inf)
