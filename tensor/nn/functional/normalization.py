"""layer_norm, batch_norm, group_norm, rms_norm: each one Function with an analytic backward.

All four normalise x to xhat = (x - mean) * rstd over some axes (rms_norm: x * rrms), then
scale and shift per feature. The backward of that normalisation is the same formula for all:
    dx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))      over the normalised axes
where gxhat = grad * weight. Only the axes and the affine parameters' layout differ.
On CUDA, layer_norm is fused (tensor/kernels/layer_norm.py): one kernel forward, saving the
per-row mean and rstd instead of xhat, and two backward (the input's, and the parameters').
"""
from __future__ import annotations

import math

import numpy as np

from ... import kernels
from ...autograd import Function
from ...errors import ShapeError
from ...tensor import Tensor


def _sum_of_products(a, b, axes, keepdims):
    """sum(a * b) over `axes`.

    On NumPy, when the axes are the trailing or the leading ones of two C-contiguous float32/64
    arrays of one shape (layer_norm's rows and its parameter gradients; group_norm's groups),
    this is one einsum pass with no (a * b) temporary, about twice as fast as multiply-then-sum.
    """
    ndim, count = a.ndim, len(axes)
    trailing, leading = axes == tuple(range(ndim - count, ndim)), axes == tuple(range(count))
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype
            and a.dtype.char in "fd" and (trailing or leading) and a.flags.c_contiguous and b.flags.c_contiguous
            and 0 < count < ndim and a.size):
        if trailing:  # rows of the reduced size: (kept, reduced)
            matrix, subscripts = (-1, _size(a.shape[ndim - count:])), "ij,ij->i"
            shape = a.shape[: ndim - count] + ((1,) * count if keepdims else ())
        else:  # (reduced, kept)
            matrix, subscripts = (_size(a.shape[:count]), -1), "ij,ij->j"
            shape = ((1,) * count if keepdims else ()) + a.shape[count:]
        return np.einsum(subscripts, a.reshape(matrix), b.reshape(matrix)).reshape(shape)
    return (a * b).sum(axis=axes, keepdims=keepdims)


def _size(shape):
    size = 1
    for n in shape:
        size *= n
    return size


def _standardize(xp, x, axes, eps):
    """(xhat, rstd, mean, var) over `axes` (biased variance, as normalisation layers use)."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = _sum_of_products(centered, centered, axes, keepdims=True)
    var /= _size(x.shape[a] for a in axes)
    rstd = 1.0 / xp.sqrt(var + eps)
    centered *= rstd
    return centered, rstd, mean, var


def _normalization_backward(gxhat, xhat, rstd, axes):
    mean_g = gxhat.mean(axis=axes, keepdims=True)
    mean_gx = _sum_of_products(gxhat, xhat, axes, keepdims=True)
    mean_gx /= _size(xhat.shape[a] for a in axes)
    result = gxhat - mean_g
    result -= xhat * mean_gx
    result *= rstd
    return result


def _affine(xhat, weight, bias, shape):
    """xhat * weight + bias, with the parameters reshaped to broadcast (None skips either)."""
    out = xhat * weight.reshape(shape) if weight is not None else xhat.copy()
    if bias is not None:
        out += bias.reshape(shape)
    return out


def _affine_grads(ctx, grad, xhat, reduce_axes, weight_index):
    """(grad weight, grad bias) summed over the non-feature axes, when the inputs need them."""
    needs = ctx.needs_input_grad
    grad_weight = _sum_of_products(grad, xhat, reduce_axes, keepdims=False) if needs[weight_index] else None
    grad_bias = grad.sum(axis=reduce_axes) if len(needs) > weight_index + 1 and needs[weight_index + 1] else None
    return grad_weight, grad_bias


# ----------------------------------------------------------------------------------- layer_norm


class LayerNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, count, eps):
        axes = tuple(range(x.ndim - count, x.ndim))
        ctx.axes, ctx.fused, ctx.eps = axes, kernels.layer_norm_fits(x, weight, bias), eps
        if ctx.fused:
            out, mean, rstd = kernels.layer_norm_forward(x, weight, bias, count, eps)
            ctx.save_for_backward(x, mean, rstd, weight)
            return out
        xhat, rstd, _, _ = _standardize(ctx.xp, x, axes, eps)
        ctx.save_for_backward(xhat, rstd, weight)
        return _affine(xhat, weight, bias, x.shape[x.ndim - count:])

    @staticmethod
    def backward(ctx, grad):
        if ctx.fused:
            x, mean, rstd, weight = ctx.saved_tensors
            needs = ctx.needs_input_grad
            return (*kernels.layer_norm_backward(grad, x, mean, rstd, weight, len(ctx.axes), needs[1], needs[2]),
                    None, None)
        xhat, rstd, weight = ctx.saved_tensors
        gxhat = grad * weight if weight is not None else grad
        grad_x = _normalization_backward(gxhat, xhat, rstd, ctx.axes) if ctx.needs_input_grad[0] else None
        leading = tuple(range(grad.ndim - len(ctx.axes)))
        grad_weight, grad_bias = _affine_grads(ctx, grad, xhat, leading, 1)
        return grad_x, grad_weight, grad_bias, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .normalization_graph import layer_norm_backward_graph  # it builds on this module's helpers

        return layer_norm_backward_graph(ctx, grad)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing dims `normalized_shape`; weight and bias have that shape."""
    shape = _trailing_shape(input, normalized_shape, "layer_norm")
    _check_param(weight, shape, "layer_norm", "weight")
    _check_param(bias, shape, "layer_norm", "bias")
    return LayerNorm.apply(input, weight, bias, len(shape), float(eps))


# ------------------------------------------------------------------------------------- rms_norm


class RMSNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, count, eps):
        axes = tuple(range(x.ndim - count, x.ndim))
        rrms = 1.0 / ctx.xp.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
        xhat = x * rrms
        ctx.save_for_backward(xhat, rrms, weight)
        ctx.axes = axes
        return xhat * weight if weight is not None else xhat.copy()

    @staticmethod
    def backward(ctx, grad):
        xhat, rrms, weight = ctx.saved_tensors
        gxhat = grad * weight if weight is not None else grad
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = gxhat - xhat * (gxhat * xhat).mean(axis=ctx.axes, keepdims=True)
            grad_x *= rrms
        leading = tuple(range(grad.ndim - len(ctx.axes)))
        grad_weight = (grad * xhat).sum(axis=leading) if ctx.needs_input_grad[1] else None
        return grad_x, grad_weight, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .normalization_graph import rms_norm_backward_graph

        return rms_norm_backward_graph(ctx, grad)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) * weight over the trailing dims; eps=None uses the dtype's epsilon."""
    shape = _trailing_shape(input, normalized_shape, "rms_norm")
    _check_param(weight, shape, "rms_norm", "weight")
    eps = float(np.finfo(input.dtype).eps) if eps is None else float(eps)
    return RMSNorm.apply(input, weight, len(shape), eps)


# ----------------------------------------------------------------------------------- batch_norm


class BatchNorm(Function):
    """Per-channel normalisation of (N, C, *d): batch statistics in training, running ones in eval."""

    @staticmethod
    def forward(ctx, x, running_mean, running_var, weight, bias, training, momentum, eps):
        xp = ctx.xp
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if training:
            xhat, rstd, mean, var = _standardize(xp, x, axes, eps)
            if running_mean is not None:
                count = x.size // x.shape[1]
                _update_running_stats(mean, var, count, running_mean, running_var, momentum)
        else:
            rstd = 1.0 / xp.sqrt(running_var.reshape(shape) + eps)
            xhat = (x - running_mean.reshape(shape)) * rstd
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.args = (axes, shape, training)
        return _affine(xhat, weight, bias, shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, rstd, weight = ctx.saved_tensors
        axes, shape, training = ctx.args
        gxhat = grad * weight.reshape(shape) if weight is not None else grad
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _normalization_backward(gxhat, xhat, rstd, axes) if training else gxhat * rstd
        grad_weight, grad_bias = _affine_grads(ctx, grad, xhat, axes, 3)
        return grad_x, None, None, grad_weight, grad_bias, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .normalization_graph import batch_norm_backward_graph

        return batch_norm_backward_graph(ctx, grad)


def _update_running_stats(mean, var, count, running_mean, running_var, momentum):
    """running = (1 - momentum) * running + momentum * batch, in place; the variance unbiased."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean.reshape(-1)
    running_var *= 1 - momentum
    running_var += (momentum * count / max(count - 1, 1)) * var.reshape(-1)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) of (N, C, *d); in training also update the running stats in place."""
    if input.dim() < 2:
        raise ShapeError(f"batch_norm: input must be (N, C, *), got shape {tuple(input.shape)}")
    channels = input.shape[1]
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
        _check_param(value, (channels,), "batch_norm", name)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    if training:
        if input.numel() < (2 * channels or 1):  # under 2 values per channel, or an empty input
            if not input.numel():
                return empty_normalization(input, weight, bias)
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input of shape "
                f"{tuple(input.shape)}; use a batch of 2 or more, or eval()"
            )
    elif running_mean is None:
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and running_var")
    out = BatchNorm.apply(input, _raw(running_mean), _raw(running_var), weight, bias, bool(training),
                          float(momentum or 0.0), float(eps))
    if training and running_mean is not None:
        running_mean._bump_version()
        running_var._bump_version()
    return out


def empty_normalization(input, weight, bias):
    """batch_norm (and instance_norm) of an empty input, as PyTorch answers it: an empty output still
    connected to the input and the affine parameters (whose gradients are then zeros), and the running
    statistics left as they are: there is nothing to average."""
    shape = (1, -1) + (1,) * (input.dim() - 2)
    out = input * weight.reshape(shape) if weight is not None else input.clone()
    return out + bias.reshape(shape) if bias is not None else out


def _raw(t):
    """Running stats go in as raw arrays: they are updated in place and never differentiated."""
    return t.data if isinstance(t, Tensor) else t


# ----------------------------------------------------------------------------------- group_norm


class GroupNorm(Function):
    @staticmethod
    def forward(ctx, x, groups, weight, bias, eps):
        grouped = x.reshape(x.shape[0], groups, math.prod(x.shape[1:]) // groups)  # not -1: N may be 0
        xhat, rstd, _, _ = _standardize(ctx.xp, grouped, (2,), eps)
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.shapes = (x.shape, (1, -1) + (1,) * (x.ndim - 2))
        return _affine(xhat.reshape(x.shape), weight, bias, ctx.shapes[1])

    @staticmethod
    def backward(ctx, grad):
        xhat, rstd, weight = ctx.saved_tensors
        shape, param_shape = ctx.shapes
        gxhat = grad * weight.reshape(param_shape) if weight is not None else grad
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _normalization_backward(gxhat.reshape(xhat.shape), xhat, rstd, (2,)).reshape(shape)
        reduce_axes = (0,) + tuple(range(2, grad.ndim))
        grad_weight, grad_bias = _affine_grads(ctx, grad, xhat.reshape(shape), reduce_axes, 2)
        return grad_x, None, grad_weight, grad_bias, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .normalization_graph import group_norm_backward_graph

        return group_norm_backward_graph(ctx, grad)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Split the C channels of (N, C, *d) into num_groups groups and normalise each per sample."""
    if input.dim() < 2:
        raise ShapeError(f"group_norm: input must be (N, C, *), got shape {tuple(input.shape)}")
    channels = input.shape[1]
    if num_groups <= 0 or channels % num_groups:
        raise ValueError(f"group_norm: {channels} channels cannot be split into {num_groups} equal groups")
    _check_param(weight, (channels,), "group_norm", "weight")
    _check_param(bias, (channels,), "group_norm", "bias")
    return GroupNorm.apply(input, int(num_groups), weight, bias, float(eps))


# ----------------------------------------------------------------------------------- validation


def _trailing_shape(input, normalized_shape, op):
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.dim() - len(shape):]) != shape or len(shape) > input.dim():
        raise ShapeError(
            f"{op}: normalized_shape {shape} must match the last dims of the input, got input shape "
            f"{tuple(input.shape)}"
        )
    return shape


def _check_param(value, shape, op, name):
    if value is not None and tuple(value.shape) != tuple(shape):
        raise ShapeError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
