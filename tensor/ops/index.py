"""Indexing: x[index], index_put (x[index] = value, out of place), gather, scatter, scatter_add,
index_select, take_along_dim and one_hot.

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

from .. import dtypes
from ..autograd import Function
from ..backend import array_module
from ..errors import AutogradError, DeviceError, DTypeError, ShapeError
from ..tensor import Tensor, _wrap
from . import convert
from ._util import normalize_dim, sum_to

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
        if all(type(item) in _BASIC for item in index):
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
    if isinstance(item, Tensor):
        item = item.data
        if type(item) is not type(x.data) or (type(item) is not np.ndarray and item.device != x.data.device):
            raise DeviceError(
                f"index: the index tensor is on {_device_name(item)} but the indexed tensor is on {x.device}; "
                f"move the index with .to({str(x.device)!r})"
            )
    elif isinstance(item, np.integer):
        return int(item)
    elif isinstance(item, (list, tuple, np.ndarray, np.bool_)):
        item = np.asarray(item)
        if item.size == 0 and item.dtype.kind == "f":  # x[[]]: an empty list selects nothing
            item = item.astype(np.int64)
        if type(x.data) is not np.ndarray:
            item = x.xp.asarray(item)
    elif hasattr(item, "__cuda_array_interface__"):
        raise DeviceError(f"index: a cuda array cannot index a tensor on {x.device}; wrap it in a tensor on one device")
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


def check_range(op, index, dim, size, allow_negative=False):
    """Raise IndexError naming the first bad value if an index array leaves [0, size) (or [-size, size))."""
    if index.size == 0:
        return
    if type(index) is np.ndarray:
        lo, hi = int(index.min()), int(index.max())
    else:  # one device sync for both bounds
        lo, hi = (int(v) for v in array_module(index).stack((index.min(), index.max())).get())
    low = -size if allow_negative else 0
    if lo < low or hi >= size:
        raise _range_error(op, lo if lo < low else hi, dim, size, low)


def _range_error(op, value, dim, size, low):
    return IndexError(f"{op}: index {value} is out of range for dim {dim} with size {size} (valid: {low}..{size - 1})")


def _explain(op, x, index, exc):
    """A clearer IndexError than NumPy's, naming the bad index value, the dim and its size."""
    for item, dim in _indexed_dims(index, x.ndim):
        if dim >= x.ndim:
            break
        size = x.shape[dim]
        if type(item) is int and not -size <= item < size:
            return _range_error(op, item, dim, size, -size)
        if hasattr(item, "dtype") and item.dtype.kind in "iu":
            try:
                check_range(op, item, dim, size, allow_negative=True)
            except IndexError as clearer:
                return clearer
    return IndexError(f"{op}: {exc} (tensor of shape {tuple(x.shape)})")


def _scatter_add(xp, target, index, values):
    """target[index] += values, accumulating repeated indices (plain += keeps only one of them)."""
    if xp is np:
        np.add.at(target, index, values)
        return
    import cupyx

    if type(index) is tuple and any(getattr(i, "dtype", None) == np.bool_ for i in index):
        # cupyx takes a mask alone; mixed with integer arrays, spell the mask out as its positions
        index = tuple(p for i in index for p in (i.nonzero() if getattr(i, "dtype", None) == np.bool_ else (i,)))
    cupyx.scatter_add(target, index, values)


# ------------------------------------------------------------------------------------ x[index]


class BasicIndex(Function):
    """x[ints, slices, None, ...]: a view of x; the gradient is placed back into zeros."""

    view_of = 0

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.index = x.shape, index
        out = x[index]
        if type(out) is not type(x):  # NumPy returns a scalar copy when ints pick one element
            out = x[index + (Ellipsis,) if type(index) is tuple else (index, Ellipsis)]
        return out

    @staticmethod
    def backward(ctx, grad):
        g = ctx.xp.zeros(ctx.shape, grad.dtype)
        g[ctx.index] = grad
        return g, None


class AdvancedIndex(Function):
    """x[arrays]: a copy; the gradient scatter-adds back, so repeated indices accumulate."""

    @staticmethod
    def forward(ctx, x, index, repeats):
        ctx.shape, ctx.index, ctx.repeats = x.shape, index, repeats
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        g = ctx.xp.zeros(ctx.shape, grad.dtype)
        if ctx.repeats:
            _scatter_add(ctx.xp, g, ctx.index, grad)
        else:  # bool masks select each element at most once
            g[ctx.index] = grad
        return g, None, None


def getitem(x, index):
    """x[index] with PyTorch/NumPy semantics (Tensor.__getitem__)."""
    index, kind = _normalize(index, x)
    try:
        if kind == 0:
            return BasicIndex.apply(x, index)
        return AdvancedIndex.apply(x, index, kind == 2)
    except IndexError as exc:
        raise _explain("getitem", x, index, exc) from None


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


def index_put(x, index, value):
    """x with x[index] = value, out of place; value is broadcast and cast to x's dtype.

    With repeated advanced indices the last write wins, as in NumPy, yet value's gradient holds
    grad[index] for every write (as PyTorch's index_put): exact only without repeats.
    """
    index = _normalize(index, x)[0]
    if isinstance(value, Tensor) and value.dtype != x.dtype:
        value = convert.to(value, dtype=x.dtype)
    try:
        return IndexPut.apply(x, index, value)
    except IndexError as exc:
        raise _explain("index_put", x, index, exc) from None
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


# --------------------------------------------------------------------------- ops along one dim


def along_dim(xp, index, dim):
    """The advanced index that reaches x[i, j, index[i, j, k], ...]: index at `dim`, an arange
    broadcast along every other dim (what take_along_axis does, spelled out so it can scatter)."""
    ndim = index.ndim
    grid = []
    for d, n in enumerate(index.shape):
        grid.append(index if d == dim else xp.arange(n).reshape((1,) * d + (n,) + (1,) * (ndim - d - 1)))
    return tuple(grid)


def _leading(shape):
    """The slice that cuts an array down to `shape` from the start of every dim."""
    return tuple(slice(0, n) for n in shape)


class Gather(Function):
    """out[i][j] = x[index[i][j]][j] (dim 0); index may be smaller than x off `dim`."""

    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        if index.shape[:dim] + index.shape[dim + 1:] != x.shape[:dim] + x.shape[dim + 1:]:
            x = x[_leading(index.shape[:dim]) + (slice(None),) + _leading(index.shape[dim + 1:])]
        return ctx.xp.take_along_axis(x, index, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        xp, dim = ctx.xp, ctx.dim
        g = xp.zeros(ctx.shape, grad.dtype)
        positions = along_dim(xp, index, dim)
        if index.shape[dim] == 1:  # one pick per line along dim: no position repeats
            g[positions] = grad
        else:
            _scatter_add(xp, g, positions, grad)
        return g, None, None


def gather(x, dim, index):
    """Values of x along `dim` at `index` (same ndim as x; sizes off `dim` at most x's)."""
    dim = normalize_dim(dim, x.ndim, "gather")
    index = _index_tensor("gather", index, x)
    _check_fits("gather", index, x, dim, "input")
    check_range("gather", index.data, dim, x.shape[dim])
    return Gather.apply(x, index, dim)


class Scatter(Function):
    """x with src written (reduce=None), added ('add') or multiplied ('multiply') at `index` along dim."""

    @staticmethod
    def forward(ctx, x, index, src, dim, reduce):
        ctx.dim, ctx.reduce, ctx.src_shape = dim, reduce, getattr(src, "shape", None)
        ctx.save_for_backward(index)
        xp = ctx.xp
        positions = along_dim(xp, index, dim)
        if ctx.src_shape is not None and ctx.src_shape != index.shape:
            src = src[_leading(index.shape)]
        out = x.copy()
        if reduce is None:
            out[positions] = src
        elif reduce == "add":
            _scatter_add(xp, out, positions, src)
        else:
            xp.multiply.at(out, positions, src)
        return out

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        need_x, _, need_src, _, _ = ctx.needs_input_grad
        positions = along_dim(ctx.xp, index, ctx.dim)
        gx = gsrc = None
        if need_x:
            gx = grad
            if ctx.reduce is None:  # overwritten positions no longer depend on x
                gx = grad.copy()
                gx[positions] = 0
        if need_src:
            gsrc = grad[positions]
            if ctx.src_shape != index.shape:
                padded = ctx.xp.zeros(ctx.src_shape, grad.dtype)
                padded[_leading(index.shape)] = gsrc
                gsrc = padded
        return gx, None, gsrc, None, None


def scatter(x, dim, index, src=None, value=None, reduce=None):
    """Out-of-place scatter: x with `src` (a tensor, or a scalar `value`) at `index` along `dim`.

    reduce=None writes (with repeated positions the last write wins, as in NumPy); 'add' and
    'multiply' combine with x. The gradient to x is zero where a write replaced it; the gradient
    to src is grad at the positions it went to. reduce='multiply' has no gradient.
    """
    if src is None and value is None:
        raise TypeError("scatter: pass src (a tensor) or value (a number)")
    if not isinstance(src, Tensor) and src is not None:
        src, value = None, src  # scatter(dim, index, 2.0): the number is the value
    if reduce not in (None, "add", "multiply"):
        raise ValueError(f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r}")
    dim = normalize_dim(dim, x.ndim, "scatter")
    index = _index_tensor("scatter", index, x)
    _check_fits("scatter", index, x, dim, "self")
    if src is not None:
        if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
            raise ShapeError(
                f"scatter: index of shape {tuple(index.shape)} must not be larger than src of shape "
                f"{tuple(src.shape)} in any dim"
            )
        if src.dtype != x.dtype:
            src = convert.to(src, dtype=x.dtype)
    if reduce == "multiply":
        _check_multiply(x, src)
    check_range("scatter", index.data, dim, x.shape[dim])
    return Scatter.apply(x, index, src if src is not None else value, dim, reduce)


def _check_multiply(x, src):
    from ..autograd import is_grad_enabled

    if is_grad_enabled() and (x.requires_grad or (src is not None and src.requires_grad)):
        raise AutogradError("scatter: reduce='multiply' has no gradient; use it under no_grad() or on detached tensors")
    if type(x.data) is not np.ndarray:
        raise NotImplementedError("scatter: reduce='multiply' runs on cpu only (CuPy has no multiply.at); use .cpu()")


def scatter_add(x, dim, index, src):
    """x with src added at `index` along `dim`; repeated positions accumulate."""
    return scatter(x, dim, index, src, reduce="add")


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        return ctx.xp.take(x, index, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        g = ctx.xp.zeros(ctx.shape, grad.dtype)
        _scatter_add(ctx.xp, g, (slice(None),) * ctx.dim + (index,), grad)
        return g, None, None


def index_select(x, dim, index):
    """x's slices at the 1-D `index` along `dim` (repeats allowed)."""
    dim = normalize_dim(dim, x.ndim, "index_select")
    index = _index_tensor("index_select", index, x)
    if index.ndim > 1:
        raise ShapeError(f"index_select: index must be 1-D, got shape {tuple(index.shape)}")
    if index.ndim == 0:
        index = _wrap(index.data.reshape(1))
    check_range("index_select", index.data, dim, x.shape[dim] if x.ndim else 1)
    return IndexSelect.apply(x, index, dim)


class TakeAlongDim(Function):
    """take_along_axis with broadcasting of x and index off `dim`; dim None works on the flat x."""

    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        if dim is None:
            return ctx.xp.take_along_axis(x.reshape(-1), index.reshape(-1), axis=0)
        return ctx.xp.take_along_axis(x, index, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        xp, dim, shape = ctx.xp, ctx.dim, ctx.shape
        if dim is None:
            g = xp.zeros(int(np.prod(shape)), grad.dtype)
            _scatter_add(xp, g, index.reshape(-1), grad)
            return g.reshape(shape), None, None
        broadcast = grad.shape[:dim] + (shape[dim],) + grad.shape[dim + 1:]  # x broadcast off dim
        g = xp.zeros(broadcast, grad.dtype)
        _scatter_add(xp, g, along_dim(xp, xp.broadcast_to(index, grad.shape), dim), grad)
        return sum_to(g, shape), None, None


def take_along_dim(x, indices, dim=None):
    """Values of x at `indices` along `dim` (x and indices broadcast off dim); dim=None: of x.flatten()."""
    indices = _index_tensor("take_along_dim", indices, x)
    if dim is None:
        check_range("take_along_dim", indices.data, 0, x.numel())
        return TakeAlongDim.apply(x, indices, None)
    dim = normalize_dim(dim, x.ndim, "take_along_dim")
    if indices.ndim != x.ndim:
        raise ShapeError(
            f"take_along_dim: indices of shape {tuple(indices.shape)} and input of shape {tuple(x.shape)} "
            "must have the same number of dims"
        )
    check_range("take_along_dim", indices.data, dim, x.shape[dim])
    try:
        return TakeAlongDim.apply(x, indices, dim)
    except ValueError as exc:
        raise ShapeError(
            f"take_along_dim: indices of shape {tuple(indices.shape)} and input of shape {tuple(x.shape)} do not "
            f"broadcast off dim {dim}: {exc}"
        ) from None


def _index_tensor(op, index, x):
    """`index` as an integer Tensor (lists and arrays are placed on x's device)."""
    if not isinstance(index, Tensor):
        index = Tensor(index, device=x.device)
    if index.data.dtype.kind not in "iu":
        raise DTypeError(f"{op}: index must be an integer tensor, got dtype {index.dtype}; convert with .long()")
    return index


def _check_fits(op, index, x, dim, name):
    if index.ndim != x.ndim or any(i > s for d, (i, s) in enumerate(zip(index.shape, x.shape)) if d != dim):
        raise ShapeError(
            f"{op}: index of shape {tuple(index.shape)} must have the same number of dims as {name} of shape "
            f"{tuple(x.shape)} and be no larger off dim {dim}"
        )


# --------------------------------------------------------------------------------------- one_hot


def one_hot(tensor, num_classes=-1):
    """int64 tensor of shape (*tensor.shape, num_classes) with a 1 at each class value.

    num_classes=-1 uses max + 1. Class values must lie in [0, num_classes).
    """
    data = tensor.data
    if data.dtype.kind not in "iu":
        raise DTypeError(f"one_hot: class values must be an integer tensor, got dtype {data.dtype}; use .long()")
    if data.size == 0:
        if num_classes < 0:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes")
    else:
        lo, hi = int(data.min()), int(data.max())
        if lo < 0:
            raise ValueError(f"one_hot: class value {lo} is negative; class values must be in [0, num_classes)")
        if num_classes < 0:
            num_classes = hi + 1
        elif hi >= num_classes:
            raise ValueError(
                f"one_hot: class value {hi} is out of range for num_classes={num_classes}; "
                f"pass num_classes > {hi}"
            )
    xp = tensor.xp
    return _wrap((data[..., None] == xp.arange(num_classes)).astype(dtypes.int64))
