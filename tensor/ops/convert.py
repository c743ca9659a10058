"""Moving between dtypes and devices, and copying: to(), clone(), contiguous(), float(), ..."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..backend import device_of, to_device_array
from ..errors import DTypeError


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

    @staticmethod
    def backward_graph(ctx, grad):
        device, dtype = ctx.source
        return to(grad, device, dtype), None, None


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

    backward_graph = backward


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


def type_as(x, other):
    """x cast to other's dtype."""
    return to(x, dtype=other.dtype)


# ------------------------------------------------------------------------- new_* (x's dtype and device)
def _like(x, dtype, device):
    return (x.dtype if dtype is None else dtype), (x.device if device is None else device)


def new_zeros(x, *size, dtype=None, device=None, requires_grad=False):
    """Zeros of `size` with x's dtype and device unless given."""
    from ..creation import zeros

    dtype, device = _like(x, dtype, device)
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_ones(x, *size, dtype=None, device=None, requires_grad=False):
    from ..creation import ones

    dtype, device = _like(x, dtype, device)
    return ones(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_empty(x, *size, dtype=None, device=None, requires_grad=False):
    from ..creation import empty

    dtype, device = _like(x, dtype, device)
    return empty(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_full(x, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    from ..creation import full

    dtype, device = _like(x, dtype, device)
    return full(size, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def new_tensor(x, data, *, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data`, with x's dtype and device unless given (never part of a graph)."""
    from ..creation import tensor

    dtype, device = _like(x, dtype, device)
    if hasattr(data, "detach"):
        data = data.detach()
    return tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


# ------------------------------------------------------------------------------------- finfo, iinfo
def finfo(type=None):  # noqa: A002 - torch's argument name
    """Machine limits of a floating dtype (eps, max, min, tiny, resolution, bits), as numpy.finfo."""
    dtype = dtypes.get_default_dtype() if type is None else dtypes.as_dtype(type)
    if dtype.kind != "f":
        raise DTypeError(f"finfo: {dtype} is not a floating-point dtype; use iinfo for integers")
    return np.finfo(dtype)


def iinfo(type):  # noqa: A002
    """Limits of an integer dtype (min, max, bits), as numpy.iinfo."""
    dtype = dtypes.as_dtype(type)
    if dtype.kind not in "iu":
        raise DTypeError(f"iinfo: {dtype} is not an integer dtype; use finfo for floating point")
    return np.iinfo(dtype)
