"""Indexing: x[index] and index_put (x[index] = value, out of place). The ops along one dim
(gather, scatter, scatter_add, index_select, take_along_dim) and one_hot live in gather.py and
are re-exported here, where the Tensor methods table looks for them.

Basic indexing (ints, slices, None, Ellipsis) returns a view sharing memory and the version
counter with its base. An index holding arrays (integer or bool, from Tensors, lists or NumPy
arrays) is advanced indexing and copies; its gradient is a scatter-add, so repeated indices
accumulate (np.add.at / cupyx.scatter_add).

Index values are checked on both devices. NumPy raises for an out-of-range index itself (we only
reword its message, off the hot path); CuPy wraps it silently, so on cuda the bounds are checked
explicitly, at the cost of one device sync, because a wrapped index gives wrong numbers quietly.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..errors import DeviceError, DTypeError, ShapeError
from ..tensor import Tensor
from . import convert
from ._util import sum_to
from .gather import (  # noqa: F401 - gather & co. are re-exported for tensor/methods.py
    add_at, check_range, gather, index_select, one_hot, range_error, scatter, scatter_add, take_along_dim,
)

_BASIC = frozenset({int, slice, type(None), type(Ellipsis)})

# ------------------------------------------------------------------------------ index normalization


def normalize_index(index, x):
    """`index` ready for `x.data[index]`: Tensors become their arrays, lists become arrays on x's
    device (NumPy arrays are host data, moved like lists). Raises for index tensors on another
    device and for index dtypes other than integer or bool."""
    return _normalize(index, x)[0]


def _normalize(index, x):
    """(index, kind): kind 0 for basic indexing, 1 for bool masks only, 2 with integer arrays."""
    if type(index) in _BASIC:
        return index, 0
    if type(index) is tuple:
        if _BASIC.issuperset(map(type, index)):
            return index, 0
        index = tuple(_index_item(item, x) for item in index)
        items = index
    else:
        index = _index_item(index, x)
        items = (index,)
    kind = 0
    for item in items:
        if hasattr(item, "dtype"):  # an array, or a NumPy bool scalar
            kind = max(kind, 1 if item.dtype.kind == "b" else 2)
        elif type(item) is bool:
            kind = max(kind, 1)
    if kind == 2 and type(x.data) is not np.ndarray:
        _check_bounds_on_device(x, index)
    return index, kind


def _index_item(item, x):
    if type(item) in _BASIC or type(item) is bool:
        return item
    if isinstance(item, Tensor) or hasattr(item, "__cuda_array_interface__"):  # a Tensor or a raw CuPy array
        item = item.data if isinstance(item, Tensor) else item
        if type(item) is np.ndarray and type(x.data) is not np.ndarray:
            with x.data.device:  # a CPU index into a GPU tensor is copied to that GPU, as in PyTorch
                item = x.xp.asarray(item)
        elif type(item) is not type(x.data) or (type(item) is not np.ndarray and item.device != x.data.device):
            raise DeviceError(
                f"index: the index tensor is on {_device_name(item)} but the indexed tensor is on {x.device}; "
                f"move the index with .to({str(x.device)!r})"
            )
    elif isinstance(item, np.integer):
        return int(item)
    elif isinstance(item, (list, tuple, range, np.ndarray, np.bool_)):  # range: x[range(B), actions]
        item = np.asarray(item)
        if item.size == 0 and item.dtype.kind == "f":  # x[[]]: an empty list selects nothing
            item = item.astype(np.int64)
        if type(x.data) is not np.ndarray:
            item = x.xp.asarray(item)
    else:
        try:
            return item.__index__()
        except (AttributeError, TypeError):
            raise TypeError(
                f"index: {type(item).__name__} is not a valid index; use ints, slices, None, ..., "
                "or integer/bool tensors, arrays or lists"
            ) from None
    _check_index_dtype(item.dtype, "index")
    return item


def _check_index_dtype(dtype, op):
    if dtype.kind == "u" and dtype.itemsize == 1:
        raise DTypeError(
            f"{op}: a uint8 index is ambiguous (a mask in PyTorch, integers in NumPy); convert it with "
            ".bool() or .long()"
        )
    if dtype.kind not in "iub":
        raise DTypeError(f"{op}: index tensors must have an integer or bool dtype, got {dtype}; convert with .long()")


def _device_name(array):
    return "cpu" if type(array) is np.ndarray else f"cuda:{array.device.id}"


def _indexed_dims(index, ndim):
    """(item, dim) for each item of a normalized index: the first dim of x it applies to."""
    items = index if type(index) is tuple else (index,)
    widths = [_width(item) for item in items]
    dim, result = 0, []
    for item, width in zip(items, widths):
        if item is Ellipsis:
            dim += ndim - sum(widths)
            continue
        result.append((item, dim))
        dim += width
    return result


def _width(item):
    """How many dims of x an index item consumes."""
    if item is None or item is Ellipsis or type(item) is bool:
        return 0
    if hasattr(item, "dtype") and item.dtype.kind == "b":
        return item.ndim
    return 1


def _check_bounds_on_device(x, index):
    for item, dim in _indexed_dims(index, x.ndim):
        if hasattr(item, "dtype") and item.dtype.kind != "b" and dim < x.ndim:
            check_range("index", item, dim, x.shape[dim], allow_negative=True)


def explain_index_error(op, x, index, exc):
    """A clearer IndexError than NumPy's, naming the bad index value, the dim and its size."""
    for item, dim in _indexed_dims(index, x.ndim):
        if dim >= x.ndim:
            break
        size = x.shape[dim]
        if type(item) is int and not -size <= item < size:
            return range_error(op, item, dim, size, -size)
        if hasattr(item, "dtype") and item.dtype.kind in "iu":
            try:
                check_range(op, item, dim, size, allow_negative=True)
            except IndexError as clearer:
                return clearer
    return IndexError(f"{op}: {exc} (tensor of shape {tuple(x.shape)})")


# ------------------------------------------------------------------------------------ x[index]


def _basic_take(x, index):
    out = x[index]
    if type(out) is not type(x):  # NumPy returns a scalar copy when ints pick one element
        out = x[index + (Ellipsis,) if type(index) is tuple else (index, Ellipsis)]
    return out


def _advanced_take(xp, x, index, repeats):
    if type(index) is not tuple and repeats:  # rows by one integer array (embeddings): take is faster
        return xp.take(x, index, axis=0)
    return x[index]


class BasicIndex(Function):
    """x[ints, slices, None, ...]: a view of x; the gradient is placed back into zeros."""

    view_of = 0

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        return _basic_take(x, index)

    @staticmethod
    def backward(ctx, grad):
        g = ctx.xp.zeros(ctx.shape, grad.dtype)
        g[ctx.index] = grad
        return g, None

    @staticmethod
    def backward_graph(ctx, grad):
        return IndexGradient.apply(grad, ctx.shape, ctx.index, None), None


class AdvancedIndex(Function):
    """x[arrays]: a copy; the gradient scatter-adds back, so repeated indices accumulate."""

    @staticmethod
    def forward(ctx, x, index, repeats):
        ctx.shape, ctx.index, ctx.repeats = x.shape, index, repeats
        return _advanced_take(ctx.xp, x, index, repeats)

    @staticmethod
    def backward(ctx, grad):
        g = ctx.xp.zeros(ctx.shape, grad.dtype)
        if ctx.repeats:
            add_at(ctx.xp, g, ctx.index, grad)
        else:  # bool masks select each element at most once
            g[ctx.index] = grad
        return g, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        return IndexGradient.apply(grad, ctx.shape, ctx.index, ctx.repeats), None, None


class IndexGradient(Function):
    """The gradient of x[index] as an op of its own, for create_graph: `grad` put (repeats: added)
    into zeros of x's shape. Its gradient is the indexing again, so x[index] differentiates any
    number of times. repeats=None marks a basic index (ints, slices), which puts like a mask."""

    @staticmethod
    def forward(ctx, grad, shape, index, repeats):
        ctx.index, ctx.repeats = index, repeats
        g = ctx.xp.zeros(shape, grad.dtype)
        if repeats:
            add_at(ctx.xp, g, index, grad)
        else:
            g[index] = grad
        return g

    @staticmethod
    def backward(ctx, gg):
        if ctx.repeats is None:
            return _basic_take(gg, ctx.index), None, None, None
        return _advanced_take(ctx.xp, gg, ctx.index, ctx.repeats), None, None, None

    @staticmethod
    def backward_graph(ctx, gg):
        if ctx.repeats is None:
            return BasicIndex.apply(gg, ctx.index), None, None, None
        return AdvancedIndex.apply(gg, ctx.index, ctx.repeats), None, None, None


def getitem(x, index):
    """x[index] with PyTorch/NumPy semantics (Tensor.__getitem__)."""
    index, kind = _normalize(index, x)
    try:
        if kind == 0:
            return BasicIndex.apply(x, index)
        return AdvancedIndex.apply(x, index, kind == 2)
    except IndexError as exc:
        raise explain_index_error("getitem", x, index, exc) from None


class IndexPut(Function):
    """x with x[index] = value, out of place (value broadcast to the indexed region)."""

    @staticmethod
    def forward(ctx, x, index, value):
        ctx.index, ctx.value_shape = index, getattr(value, "shape", None)
        out = x.copy()
        out[index] = value
        return out

    @staticmethod
    def backward(ctx, grad):
        need_x, _, need_value = ctx.needs_input_grad
        gx = gv = None
        if need_x:  # the overwritten region no longer depends on x
            gx = grad.copy()
            gx[ctx.index] = 0
        if need_value:
            gv = _fold_to(grad[ctx.index], ctx.value_shape)
        return gx, None, gv

    @staticmethod
    def backward_graph(ctx, grad):
        """backward on Tensors, recorded: both gradients are linear in grad (x's is grad with the
        region written as 0, itself an IndexPut; value's is grad at the index, folded)."""
        need_x, _, need_value = ctx.needs_input_grad
        gx = IndexPut.apply(grad, ctx.index, 0) if need_x else None
        gv = _fold_to(getitem(grad, ctx.index), ctx.value_shape) if need_value else None
        return gx, None, gv


def index_put(x, index, value):
    """x with x[index] = value, out of place; value is broadcast and cast to x's dtype.

    With repeated advanced indices the last write wins, as in NumPy (on cuda which one wins is
    unspecified, as in PyTorch), yet value's gradient holds grad[index] for every write, as
    PyTorch's index_put does: it is exact only without repeats.
    """
    index = _normalize(index, x)[0]
    if isinstance(value, Tensor) and value.dtype != x.dtype:
        value = convert.to(value, dtype=x.dtype)
    try:
        return IndexPut.apply(x, index, value)
    except IndexError as exc:
        raise explain_index_error("index_put", x, index, exc) from None
    except ValueError as exc:
        raise ShapeError(
            f"index_put: a value of shape {tuple(getattr(value, 'shape', ()))} does not broadcast to the "
            f"indexed region of a tensor of shape {tuple(x.shape)}: {exc}"
        ) from None


def _fold_to(grad, shape):
    """sum_to for assignment broadcasting, which also lets value have extra leading 1-dims."""
    if shape is None:
        return None
    if grad.ndim < len(shape):
        grad = grad.reshape((1,) * (len(shape) - grad.ndim) + grad.shape)
    return sum_to(grad, shape)
