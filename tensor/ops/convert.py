"""Moving between dtypes and devices, and copying: to(), clone(), contiguous(), float(), ..."""
from __future__ import annotations

from .. import dtypes
from ..autograd import Function
from ..backend import device_of, to_device_array


class ToCopy(Function):
    """Cast and/or transfer; the gradient goes back to the source dtype and device."""

    @staticmethod
    def forward(ctx, x, device, dtype):
        ctx.source = (device_of(x), x.dtype)
        out = x if device is None else to_device_array(x, device)
        if dtype is not None and out.dtype != dtype:
            out = out.astype(dtype)
        return out.copy() if out is x else out

    @staticmethod
    def backward(ctx, grad):
        device, dtype = ctx.source
        g = to_device_array(grad, device)
        return (g.astype(dtype, copy=False) if g.dtype != dtype else g), None, None


def to(x, device=None, dtype=None, copy=False):
    """x on `device` with `dtype`; returns x itself when nothing changes (unless copy=True)."""
    same_device = device is None or device == x.device
    same_dtype = dtype is None or dtype == x.dtype
    if same_device and same_dtype and not copy:
        return x
    if x.requires_grad and dtype is not None and dtype.kind != "f":
        return ToCopy.apply(x.detach(), device, dtype)  # integer results carry no gradient
    return ToCopy.apply(x, device, dtype)


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


def clone(x):
    return Clone.apply(x)


def contiguous(x):
    return x if x.data.flags.c_contiguous else Clone.apply(x)


def float(x):  # noqa: A001 - the Tensor method names
    return to(x, dtype=dtypes.float32)


def double(x):
    return to(x, dtype=dtypes.float64)


def half(x):
    return to(x, dtype=dtypes.float16)


def long(x):
    return to(x, dtype=dtypes.int64)


def int(x):  # noqa: A001
    return to(x, dtype=dtypes.int32)


def bool(x):  # noqa: A001
    return to(x, dtype=dtypes.bool)
