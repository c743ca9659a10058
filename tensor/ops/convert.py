"""Moving between dtypes and devices, and copying: to(), clone(), contiguous(), float(), ..."""
from __future__ import annotations

import numbers

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


class memory_format:  # noqa: N801 - torch.memory_format
    """torch.memory_format: the order of a tensor's elements in memory, never its shape or values.

    channels_last lays a 4-d (N, C, H, W) tensor out as N, H, W, C (channels_last_3d: a 5-d one as
    N, D, H, W, C). NumPy and CuPy ops accept any strides, so the format only changes speed."""

    def __init__(self, name, order=None):
        self.name, self.order = name, order

    def __repr__(self):
        return f"tensor.{self.name}"

    def __reduce__(self):
        return self.name  # pickles as the module-level constant of this name

    def matches(self, array):
        """Whether `array`'s memory is densely laid out in this format."""
        if self.order is None:
            return array.flags.c_contiguous  # a Python bool (this module's `bool` is the Tensor method)
        return array.ndim == len(self.order) and array.transpose(self.order).flags.c_contiguous


contiguous_format = memory_format("contiguous_format")
preserve_format = memory_format("preserve_format")
channels_last = memory_format("channels_last", (0, 2, 3, 1))
channels_last_3d = memory_format("channels_last_3d", (0, 2, 3, 4, 1))


class ToMemoryFormat(Function):
    """A copy of x whose memory runs in `order` (its shape stays); the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, x, order):
        inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
        return ctx.xp.ascontiguousarray(x.transpose(order)).transpose(inverse)

    @staticmethod
    def backward(ctx, grad):
        return grad, None

    backward_graph = backward


def _in_format(x, fmt, op):
    """x laid out in memory_format `fmt` (x itself when it already is)."""
    if not isinstance(fmt, memory_format):
        raise TypeError(f"{op}: memory_format must be one of tensor.contiguous_format, channels_last, "
                        f"channels_last_3d, preserve_format; got {fmt!r}")
    if fmt is preserve_format or fmt.matches(x.data):
        return x
    if fmt.order is None:
        return Clone.apply(x)
    if x.data.ndim != len(fmt.order):
        raise ValueError(f"{op}: {fmt!r} needs a {len(fmt.order)}-d tensor, got shape {tuple(x.data.shape)}; "
                         "use it on (N, C, H, W) images (channels_last_3d on (N, C, D, H, W) volumes)")
    return ToMemoryFormat.apply(x, fmt.order)


def clone(x, memory_format=None):
    """A copy of x, in C order; memory_format (e.g. tensor.channels_last) sets the copy's layout instead
    (preserve_format, torch's default, is the plain copy here)."""
    if memory_format is None or memory_format is preserve_format:
        return Clone.apply(x)
    out = _in_format(x, memory_format, "clone")
    return Clone.apply(out) if out is x else out


def contiguous(x, memory_format=None):
    """x with C-ordered memory, or laid out in `memory_format` (tensor.channels_last: N, H, W, C)."""
    if memory_format is not None:
        return _in_format(x, memory_format, "contiguous")
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


def new_zeros(x, *sizes, size=None, dtype=None, device=None, requires_grad=False):
    """Zeros of `size` with x's dtype and device unless given."""
    from ..creation import zeros

    dtype, device = _like(x, dtype, device)
    return zeros(*sizes, size=size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_ones(x, *sizes, size=None, dtype=None, device=None, requires_grad=False):
    from ..creation import ones

    dtype, device = _like(x, dtype, device)
    return ones(*sizes, size=size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_empty(x, *sizes, size=None, dtype=None, device=None, requires_grad=False):
    from ..creation import empty

    dtype, device = _like(x, dtype, device)
    return empty(*sizes, size=size, dtype=dtype, device=device, requires_grad=requires_grad)


def new_empty_strided(x, size, stride, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor of `size` with element strides `stride`, x's dtype and device by default."""
    from ..runtime import empty_strided

    dtype, device = _like(x, dtype, device)
    return empty_strided(size, stride, dtype=dtype, device=device, requires_grad=requires_grad)


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


def new(x, *args, device=None):
    """PyTorch's legacy constructor, with x's dtype and device (unless `device` is given):
    x.new(*sizes) or x.new(Size) is uninitialised (x.new() is empty, shape (0,)); x.new(data) copies a
    sequence or array; x.new(other) is the Tensor `other` itself, detached, which must have x's dtype."""
    from ..tensor import Size, Tensor

    if len(args) == 1 and isinstance(args[0], Tensor):
        other = args[0]
        if other.dtype != x.dtype:
            raise DTypeError(f"new: expected a {x.dtype} tensor, got {other.dtype}; "
                             f"use x.new_tensor(other) to copy it into {x.dtype}")
        return other.detach() if device is None else other.detach().to(device)
    if len(args) == 1 and not isinstance(args[0], (numbers.Integral, Size)):  # int is shadowed here
        return new_tensor(x, args[0], device=device)
    return new_empty(x, *(args or (0,)), device=device)


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
