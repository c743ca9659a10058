"""Ops along one dim: gather, scatter, scatter_add, index_select, take_along_dim; and one_hot.

The Tensor methods table finds them in tensor/ops/index.py, which re-exports them; the helpers
here (along_dim, add_at, check_range) are shared with x[index] and with sort.

Indices must lie in [0, size) along the dim, as in PyTorch. They are checked on both devices:
NumPy would wrap a negative index and CuPy wraps any, giving wrong numbers quietly.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import dtypes
from ..autograd import Function, is_grad_enabled
from ..errors import AutogradError, DTypeError, ShapeError
from ..creation import tensor as new_tensor
from ..graph_backward import linear_backward_graph
from ..runtime import check_deterministic
from ..tensor import Tensor, _wrap
from . import convert
from ._util import normalize_dim, sum_to

# ------------------------------------------------------------------------------------- helpers


def add_at(xp, target, index, values):
    """target[index] += values, accumulating repeated indices (plain += keeps only one of them)."""
    if xp is np:
        np.add.at(target, index, values)
        return
    import cupyx

    if target.dtype.kind == "f":  # float atomics add in a varying order; integer ones are exact
        check_deterministic("scatter_add (cupyx.scatter_add)")
    if type(index) is tuple and any(getattr(i, "dtype", None) == np.bool_ for i in index):
        # cupyx takes a mask alone; mixed with integer arrays, spell the mask out as its positions
        index = tuple(p for i in index for p in (i.nonzero() if getattr(i, "dtype", None) == np.bool_ else (i,)))
    cupyx.scatter_add(target, index, values)


_UNSIGNED = {np.dtype(f"int{bits}"): np.dtype(f"uint{bits}") for bits in (8, 16, 32, 64)}


def check_range(op, index, dim, size, allow_negative=False):
    """Raise IndexError naming a bad value if an index array leaves [0, size) (or [-size, size))."""
    if index.size == 0:
        return
    low = -size if allow_negative else 0
    shifted = index - low if allow_negative else index
    # Seen as unsigned, a negative value is huge: one max() checks both bounds (one sync on cuda).
    if int(shifted.view(_UNSIGNED.get(shifted.dtype, shifted.dtype)).max()) < size - low:
        return
    lo, hi = int(index.min()), int(index.max())
    raise range_error(op, lo if lo < low else hi, dim, size, low)


def range_error(op, value, dim, size, low):
    return IndexError(f"{op}: index {value} is out of range for dim {dim} with size {size} (valid: {low}..{size - 1})")


def along_dim(xp, index, dim):
    """The advanced index that reaches x[i, j, index[i, j, k], ...]: index at `dim`, an arange
    broadcast along every other dim (what take_along_axis does, spelled out so it can scatter)."""
    ndim = index.ndim
    arange = _host_arange if xp is np else _device_arange
    return tuple(index if d == dim else arange(xp, n, d, ndim) for d, n in enumerate(index.shape))


@functools.lru_cache(maxsize=256)
def _host_arange(xp, n, d, ndim):
    """arange(n) laid along dim d of ndim; cached, as the same shapes come back every step."""
    grid = _device_arange(np, n, d, ndim)
    grid.flags.writeable = False
    return grid


def _device_arange(xp, n, d, ndim):
    return xp.arange(n).reshape((1,) * d + (n,) + (1,) * (ndim - d - 1))


def _dim(dim, ndim, op):
    return dim if 0 <= dim < ndim else normalize_dim(dim, ndim, op)


def _leading(shape):
    """The slice that cuts an array down to `shape` from the start of every dim."""
    return tuple(slice(0, n) for n in shape)


# ---------------------------------------------------------------------------------- the ops


class Gather(Function):
    """out[i][j] = x[index[i][j]][j] (dim 0); index may be smaller than x off `dim`."""

    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        return x[along_dim(ctx.xp, index, dim)]  # (faster than take_along_axis, and index may be smaller)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        xp, dim = ctx.xp, ctx.dim
        g = xp.zeros(ctx.shape, grad.dtype)
        positions = along_dim(xp, index, dim)
        if index.shape[dim] == 1:  # one pick per line along dim: no position repeats
            g[positions] = grad
        else:
            add_at(xp, g, positions, grad)
        return g, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        (index,) = ctx.saved_tensors
        return linear_backward_graph(ctx, grad, (index, ctx.dim))


def gather(x, dim, index):
    """Values of x along `dim` at `index` (same ndim as x; sizes off `dim` at most x's)."""
    dim = _dim(dim, x.ndim, "gather")
    index = _index_tensor("gather", index, x)
    if not _fits(index, x, dim):
        if index.data.size == 0:  # PyTorch checks no shapes for an empty index: nothing to gather
            return x.reshape(-1)[:0].reshape(index.shape)  # (on x's graph: x gets its zero gradient)
        raise _misfit("gather", index, x, dim, "input")
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
            add_at(xp, out, positions, src)
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

    reduce=None writes (with repeated positions the last write wins on cpu, as in NumPy; on cuda
    which one wins is unspecified, as in PyTorch); 'add' and
    'multiply' combine with x. The gradient to x is zero where a write replaced it; the gradient
    to src is grad at the positions it went to. reduce='multiply' has no gradient.
    """
    if src is None and value is None:
        raise TypeError("scatter: pass src (a tensor) or value (a number)")
    if not isinstance(src, Tensor) and src is not None:
        src, value = None, src  # scatter(dim, index, 2.0): the number is the value
    if reduce not in (None, "add", "multiply"):
        raise ValueError(f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r}")
    dim = _dim(dim, x.ndim, "scatter")
    index = _index_tensor("scatter", index, x)
    if not _fits(index, x, dim):
        if index.data.size == 0:  # PyTorch checks no shapes for an empty index: nothing to write
            return x.clone()
        raise _misfit("scatter", index, x, dim, "self")
    if src is not None:
        if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
            if index.data.size == 0:
                return x.clone()
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
        add_at(ctx.xp, g, (slice(None),) * ctx.dim + (index,), grad)
        return g, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        (index,) = ctx.saved_tensors
        return linear_backward_graph(ctx, grad, (index, ctx.dim))


def index_select(x, dim, index):
    """x's slices at the 1-D `index` along `dim` (repeats allowed)."""
    dim = _dim(dim, x.ndim, "index_select")
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
            add_at(xp, g, index.reshape(-1), grad)
            return g.reshape(shape), None, None
        broadcast = grad.shape[:dim] + (shape[dim],) + grad.shape[dim + 1:]  # x broadcast off dim
        g = xp.zeros(broadcast, grad.dtype)
        add_at(xp, g, along_dim(xp, xp.broadcast_to(index, grad.shape), dim), grad)
        return sum_to(g, shape), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        (index,) = ctx.saved_tensors
        return linear_backward_graph(ctx, grad, (index, ctx.dim))


def take_along_dim(x, indices, dim=None):
    """Values of x at `indices` along `dim` (x and indices broadcast off dim); dim=None: of x.flatten()."""
    indices = _index_tensor("take_along_dim", indices, x)
    if dim is None:
        check_range("take_along_dim", indices.data, 0, x.numel())
        return TakeAlongDim.apply(x, indices, None)
    dim = _dim(dim, x.ndim, "take_along_dim")
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
        index = new_tensor(index, device=x.device)
    if index.data.dtype.kind not in "iu":
        raise DTypeError(f"{op}: index must be an integer tensor, got dtype {index.dtype}; convert with .long()")
    return index


def _fits(index, x, dim):
    """Whether index has x's number of dims and is no larger than x off `dim` (the same size there, the
    usual case, is checked first)."""
    ishape, xshape = index.data.shape, x.data.shape
    if ishape[:dim] == xshape[:dim] and ishape[dim + 1:] == xshape[dim + 1:]:
        return True
    return len(ishape) == len(xshape) and all(i <= s for d, (i, s) in enumerate(zip(ishape, xshape)) if d != dim)


def _misfit(op, index, x, dim, name):
    return ShapeError(
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
        if num_classes <= 0:  # torch refuses 0 here too (a (..., 0) result), with its can-not-infer error
            raise ValueError(f"one_hot: num_classes={num_classes} for an empty tensor, which has no class values "
                             "to infer it from; pass num_classes >= 1")
    else:
        lo, hi = int(data.min()), int(data.max())
        if lo < 0:
            raise ValueError(f"one_hot: class value {lo} is negative; class values must be in [0, num_classes)")
        if num_classes == -1:  # only -1 infers: torch refuses -2 as too small for the class values
            num_classes = hi + 1
        elif hi >= num_classes:
            raise ValueError(
                f"one_hot: class value {hi} is out of range for num_classes={num_classes}; "
                f"pass num_classes > {hi}"
            )
    xp = tensor.xp
    return _wrap((data[..., None] == xp.arange(num_classes)).astype(dtypes.int64))
