"""index_add, index_copy, index_fill, index_put (with accumulate), take, put, masked_select, masked_scatter.

Most are the indexing ops of index.py with another index: index_copy and index_fill are index_put
at (:, ..., index), take is x.flatten()[index], put is index_put on x.flatten(), masked_select is
x[mask] and masked_scatter an index_put at the mask (after broadcasting x and mask). Only
accumulation needs a Function of its own, PutAdd: x[index] += values with repeated positions adding
up (index_add, index_put(accumulate=True), put(accumulate=True)).

Index dtypes follow PyTorch: index_add (and index_reduce, scatter_reduce) take int32 or int64,
index_copy, index_fill, take and put only int64. Negative indices count from the end only where
PyTorch allows them: index_fill, take, put and index_put.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..errors import DeviceError, DTypeError, ShapeError
from ..tensor import Tensor
from . import compare, shape, views
from ._util import normalize_dim
from .gather import _index_tensor, add_at, check_range
from .index import _fold_to, explain_index_error, getitem, index_put as _index_put, normalize_index

# ------------------------------------------------------------------------------------- helpers


def index_arg(op, index, x, wide=False):
    """`index` as an integer Tensor on x's device: int64, or with `wide` int32 too (as PyTorch checks)."""
    index = _index_tensor(op, index, x)
    dtype = index.data.dtype
    if dtype != np.int64 and not (wide and dtype == np.int32):
        allowed = "int32 or int64" if wide else "int64"
        raise DTypeError(f"{op}: index must be {allowed}, got {index.dtype}; convert it with .long()")
    if index.device != x.device:
        raise DeviceError(f"{op}: index is on {index.device} but the tensor is on {x.device}; "
                          f"move the index with .to({str(x.device)!r})")
    return index


def vector_index(op, index, x, dim, wide=False):
    """A 0-d or 1-D index along `dim` as a 1-D Tensor."""
    index = index_arg(op, index, x, wide)
    if index.ndim > 1:
        raise ShapeError(f"{op}: index must be 0-d or 1-D, got shape {tuple(index.shape)}")
    return index if index.ndim else shape.reshape(index, 1)


def along(dim, index):
    """The index that reaches x[:, ..., index] with `index` at `dim`."""
    return (slice(None),) * dim + (index,)


def same_dtype(op, value, x, name="source"):
    """Refuse a value that is not a Tensor of x's dtype (PyTorch casts none of these implicitly)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")
    if value.dtype != x.dtype:
        raise DTypeError(f"{op}: {name} dtype {value.dtype} differs from the tensor's dtype {x.dtype}; "
                         f"convert it with .to({x.dtype})")


def check_source(op, source, x, dim, count, scalar_index):
    """`source` for an index op along `dim`: x's dtype, and x's shape with `count` at `dim` (a 0-d
    index takes a source without that dim, as in PyTorch). Returns it with the dim in place."""
    same_dtype(op, source, x)
    if scalar_index and source.ndim == x.ndim - 1:
        source = shape.unsqueeze(source, dim)
    expected = x.shape[:dim] + (count,) + x.shape[dim + 1:]
    if tuple(source.shape) != tuple(expected):
        raise ShapeError(f"{op}: source of shape {tuple(source.shape)} must have shape {tuple(expected)}: the "
                         f"tensor's shape {tuple(x.shape)} with the {count} indexed entries at dim {dim}")
    return source


def as_vector(x):
    """A 0-d tensor viewed as 1-D: PyTorch's index ops treat it as a vector of one element."""
    return shape.reshape(x, 1) if isinstance(x, Tensor) and x.ndim == 0 else x


# -------------------------------------------------------------------------------------- PutAdd


class PutAdd(Function):
    """x with `values` added at `index` (a normalized index), repeated positions adding up."""

    @staticmethod
    def forward(ctx, x, index, values):
        ctx.index, ctx.value_shape = index, values.shape
        out = x.copy()
        if ctx.xp is not np:  # cupyx.scatter_add takes values of the indexed region's shape
            values = ctx.xp.broadcast_to(values, out[index].shape)
        add_at(ctx.xp, out, index, values)
        return out

    @staticmethod
    def backward(ctx, grad):
        gv = _fold_to(grad[ctx.index], ctx.value_shape) if ctx.needs_input_grad[2] else None
        return grad, None, gv

    @staticmethod
    def backward_graph(ctx, grad):
        gv = _fold_to(getitem(grad, ctx.index), ctx.value_shape) if ctx.needs_input_grad[2] else None
        return grad, None, gv


def put_add(op, x, index, values):
    try:
        return PutAdd.apply(x, index, values)
    except IndexError as exc:
        raise explain_index_error(op, x, index, exc) from None
    except ValueError as exc:
        raise ShapeError(f"{op}: values of shape {tuple(values.shape)} do not broadcast to the indexed region of a "
                         f"tensor of shape {tuple(x.shape)}: {exc}") from None


# ------------------------------------------------------------------------------- along one dim


def index_add(input, dim, index, source, *, alpha=1):  # noqa: A002 - torch's argument names
    """input with alpha * source added at `index` along `dim`; repeated indices accumulate.

    index: 1-D (or 0-d), int32/int64, in [0, size); source: input's shape with len(index) at dim."""
    x = input
    if x.ndim == 0:
        return shape.reshape(index_add(as_vector(x), dim, index, as_vector(source), alpha=alpha), ())
    dim = normalize_dim(dim, x.ndim, "index_add")
    scalar_index = isinstance(index, Tensor) and index.ndim == 0
    index = vector_index("index_add", index, x, dim, wide=True)
    source = check_source("index_add", source, x, dim, index.shape[0], scalar_index)
    check_range("index_add", index.data, dim, x.shape[dim])
    if alpha != 1:
        source = source * (alpha if x.dtype.kind in "fc" else int(alpha))  # as PyTorch: alpha in x's dtype
    return PutAdd.apply(x, along(dim, index.data), source)


def index_copy(input, dim, index, source):  # noqa: A002
    """input with source's slices written at `index` along `dim` (index: 1-D int64 in [0, size)).

    With a repeated index one of the writes wins (on cpu the last one); source's gradient is grad
    at the index for every slice, as in PyTorch."""
    x = input
    if x.ndim == 0:
        return shape.reshape(index_copy(as_vector(x), dim, index, as_vector(source)), ())
    dim = normalize_dim(dim, x.ndim, "index_copy")
    scalar_index = isinstance(index, Tensor) and index.ndim == 0
    index = vector_index("index_copy", index, x, dim)
    source = check_source("index_copy", source, x, dim, index.shape[0], scalar_index)
    check_range("index_copy", index.data, dim, x.shape[dim])
    return _index_put(x, along(dim, index.data), source)


def index_fill(input, dim, index, value):  # noqa: A002
    """input with `value` (a number, or a 0-d tensor, which gets a gradient) at `index` along `dim`;
    index: 1-D int64 in [-size, size)."""
    x = input
    if x.ndim == 0:
        return shape.reshape(index_fill(as_vector(x), dim, index, value), ())
    dim = normalize_dim(dim, x.ndim, "index_fill")
    index = vector_index("index_fill", index, x, dim)
    check_range("index_fill", index.data, dim, x.shape[dim], allow_negative=True)
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ShapeError(f"index_fill: value must be a number or a 0-d tensor, got shape {tuple(value.shape)}")
    else:
        value = x.dtype.type(value)  # as PyTorch: 2.7 into an int tensor is 2
    # Each filled slice counts once in value's gradient, a repeated index too (PyTorch's formula).
    xp = x.xp
    unique = xp.unique(xp.where(index.data < 0, index.data + x.shape[dim], index.data))
    return _index_put(x, along(dim, unique), value)


# ---------------------------------------------------------------------------------- index_put


def index_put(input, indices, values, accumulate=False):  # noqa: A002
    """input with input[indices] = values (or += with accumulate, repeats adding up), out of place.

    indices: a tuple of index tensors (int64/int32 or bool), one per leading dim indexed; values: a
    tensor of input's dtype, broadcast to the indexed region."""
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"index_put: indices must be a tuple of tensors, got {type(indices).__name__}; "
                        "write (index,) for one index")
    same_dtype("index_put", values, input, "values")
    if not accumulate:
        return _index_put(input, tuple(indices), values)
    index = normalize_index(tuple(indices), input)
    return put_add("index_put", input, index, values)


# ------------------------------------------------------------------------------ flat: take, put


def take(input, index):  # noqa: A002
    """input.flatten()[index]: a tensor of index's shape (index: int64 in [-numel, numel))."""
    index = index_arg("take", index, input)
    check_range("take", index.data, 0, input.numel(), allow_negative=True)
    return getitem(shape.reshape(input, -1), index)


def put(input, index, source, accumulate=False):  # noqa: A002
    """input with source's elements written (accumulate: added) at the flat positions `index`.

    index: int64 in [-numel, numel), any shape; source: as many elements as index, input's dtype."""
    x = input
    index = index_arg("put", index, x)
    same_dtype("put", source, x)
    if source.numel() != index.numel():
        raise ShapeError(f"put: source has {source.numel()} elements but index has {index.numel()}; "
                         "they must have the same number")
    check_range("put", index.data, 0, x.numel(), allow_negative=True)
    flat, positions, values = shape.reshape(x, -1), index.data.reshape(-1), shape.reshape(source, -1)
    out = PutAdd.apply(flat, positions, values) if accumulate else _index_put(flat, positions, values)
    return shape.reshape(out, tuple(x.shape))


# -------------------------------------------------------------------------------------- masked


def _broadcast_with_mask(op, x, mask):
    compare._check_bool(op, "mask", mask)
    target = views.broadcast_shapes(x.shape, mask.shape)
    x = x if tuple(x.shape) == target else views.broadcast_to(x, target)
    mask = mask if tuple(mask.shape) == target else views.broadcast_to(mask, target)
    return x, mask


def masked_select(input, mask):  # noqa: A002
    """The elements of input where the bool `mask` is True (the two broadcast together), as a 1-D tensor."""
    x, mask = _broadcast_with_mask("masked_select", input, mask)
    return getitem(x, mask)


def masked_scatter(input, mask, source):  # noqa: A002
    """input (broadcast with the bool mask) with source's first elements, in order, where mask is True.

    source: input's dtype, at least as many elements as mask has True values."""
    same_dtype("masked_scatter", source, input)
    x, mask = _broadcast_with_mask("masked_scatter", input, mask)
    count = int(mask.data.sum())
    if source.numel() < count:
        raise ShapeError(f"masked_scatter: source has {source.numel()} elements but the mask selects {count}; "
                         "it needs at least as many")
    return _index_put(x, mask, getitem(shape.reshape(source, -1), slice(0, count)))
