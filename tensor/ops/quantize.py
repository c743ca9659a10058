"""fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine: quantisation-aware training's
round trip x -> int -> x, computed as PyTorch computes it.

    q = round_half_even(x * (1 / scale)) + zero_point
    y = (clamp(q, quant_min, quant_max) - zero_point) * scale

in x's dtype (the reciprocal multiplied, not a division: the same rounding as PyTorch's kernels). The
gradient is the straight-through estimator: grad where q lies in [quant_min, quant_max], else 0.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor


class FakeQuantize(Function):
    @staticmethod
    def forward(ctx, x, scale, zero_point, quant_min, quant_max):
        xp = ctx.xp
        inverse = (1 / scale).astype(x.dtype)
        q = xp.rint(x * inverse) + zero_point
        ctx.inside = (q >= quant_min) & (q <= quant_max)
        return ((xp.clip(q, quant_min, quant_max) - zero_point) * scale).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return ctx.xp.where(ctx.inside, grad, 0).astype(grad.dtype, copy=False), None, None, None, None


def fake_quantize_per_tensor_affine(input, scale, zero_point, quant_min, quant_max):  # noqa: A002
    """input quantised to integers in [quant_min, quant_max] with one scale and zero point (numbers or
    1-element tensors) and back: torch.fake_quantize_per_tensor_affine."""
    _check(input, quant_min, quant_max, "fake_quantize_per_tensor_affine")
    scale, zero_point = _number(scale, "scale", float), _number(zero_point, "zero_point", int)
    _check_zero_point(np.array(zero_point), quant_min, quant_max, "fake_quantize_per_tensor_affine")
    xp, dtype = input.xp, input.data.dtype
    return FakeQuantize.apply(input, xp.asarray(scale, dtype=dtype), zero_point, quant_min, quant_max)


def fake_quantize_per_channel_affine(input, scale, zero_point, axis, quant_min, quant_max):  # noqa: A002
    """As fake_quantize_per_tensor_affine with a scale and zero point per slice along `axis` (1-D tensors
    of input.shape[axis] elements): torch.fake_quantize_per_channel_affine."""
    op = "fake_quantize_per_channel_affine"
    _check(input, quant_min, quant_max, op)
    if not 0 <= axis < input.ndim:  # (PyTorch refuses a negative axis too)
        raise ShapeError(f"{op}: axis {axis} must be between 0 and {input.ndim - 1} for a {input.ndim}-d input")
    channels = input.shape[axis]
    scale, zero_point = _per_channel(scale, "scale", channels, op), _per_channel(zero_point, "zero_point", channels, op)
    _check_zero_point(zero_point, quant_min, quant_max, op)
    along = (channels,) + (1,) * (input.ndim - axis - 1)  # broadcasts against input along `axis`
    xp, dtype = input.xp, input.data.dtype
    return FakeQuantize.apply(input, xp.asarray(scale.reshape(along), dtype=dtype),
                              xp.asarray(zero_point.reshape(along).astype(np.int64)), quant_min, quant_max)


def _check(input, quant_min, quant_max, op):  # noqa: A002
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise DTypeError(f"{op}: input must be floating point, got {input.dtype}; convert it with .float()")
    if quant_min > quant_max:
        raise ValueError(f"{op}: quant_min {quant_min} must be <= quant_max {quant_max}")


def _check_zero_point(zero_point, quant_min, quant_max, op):
    if ((zero_point < quant_min) | (zero_point > quant_max)).any():
        raise ValueError(f"{op}: zero_point {zero_point.tolist()} must lie between quant_min {quant_min} and "
                         f"quant_max {quant_max}")


def _number(value, name, kind):
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ShapeError(f"fake_quantize_per_tensor_affine: {name} must hold one value, got shape "
                             f"{tuple(value.shape)}; use fake_quantize_per_channel_affine for one per channel")
        value = value.item()
    return kind(value)


def _per_channel(value, name, channels, op):
    array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
    if array.shape != (channels,):
        raise ShapeError(f"{op}: {name} must be 1-d with one value per channel ({channels}), got shape {array.shape}")
    return array
