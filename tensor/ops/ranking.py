"""Order statistics and value sets: median, mode, unique, searchsorted, bucketize, histc.

median and mode find their indices without autograd, then take the values with gather, whose
backward sends each value's gradient to the position it came from (as PyTorch's do). unique,
searchsorted, bucketize and histc return counts and positions: no gradient, as in PyTorch.
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..errors import DTypeError, ShapeError
from ..tensor import Tensor, _wrap
from ._util import normalize_dim
from .gather import add_at, gather
from .shape import reshape, squeeze

# torch.return_types.median / .mode: tuples that also name their fields.
median_result = namedtuple("median", ["values", "indices"])
mode_result = namedtuple("mode", ["values", "indices"])


def _require_tensor(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__} {x!r}; make one with tensor.tensor(...)")


def _require_nonempty_dim(op, x, dim):
    if x.ndim and x.shape[dim] == 0:
        raise ShapeError(f"{op}: cannot take the {op} over dim {dim} of size 0 (shape {tuple(x.shape)})")


# ------------------------------------------------------------------------------------------ median
def _median_index(xp, data, axis):
    """Index of the lower median along `axis` (keepdims), or of the first NaN where a line has one
    (PyTorch's median propagates NaN)."""
    n = data.shape[axis]
    order = xp.argsort(data, axis=axis, kind="stable") if xp is np else data.argsort(axis=axis)
    index = order[(slice(None),) * axis + (slice((n - 1) // 2, (n + 1) // 2),)]
    if data.dtype.kind == "f":
        nan = xp.isnan(data)
        has_nan = nan.any(axis=axis, keepdims=True)
        index = xp.where(has_nan, nan.argmax(axis=axis, keepdims=True), index)
    return index.astype(np.int64, copy=False)


def median(x, dim=None, keepdim=False):
    """median(): the lower median of all elements (a 0-d tensor); median(dim): (values, indices)
    along `dim`. For an even count the smaller of the two middle values, as in PyTorch."""
    _require_tensor("median", x)
    if dim is None:
        if x.numel() == 0:
            return median_of_nothing(x)
        flat = reshape(x, (-1,))
        return reshape(gather(flat, 0, _wrap(_median_index(x.xp, flat.data, 0))), ())
    return _along_dim(x, dim, keepdim, "median", _median_index, median_result)


def median_of_nothing(x):
    """median() of an empty tensor, as PyTorch gives it: NaN in x's dtype (for integers, what the cast
    of NaN gives), on x's graph so that backward hands x its (empty) gradient."""
    if x.dtype.kind == "f":
        return x.sum() + math.nan
    with np.errstate(invalid="ignore"):  # NumPy warns about the cast
        return _wrap(x.xp.asarray(math.nan).astype(x.dtype))


def _along_dim(x, dim, keepdim, op, find_index, result):
    dim = normalize_dim(dim, x.ndim, op)
    _require_nonempty_dim(op, x, dim)
    if x.ndim == 0:
        return result(x.clone(), _wrap(x.xp.zeros((), np.int64)))
    index = _wrap(find_index(x.xp, x.data, dim))
    values = gather(x, dim, index)
    if not keepdim:
        values, index = squeeze(values, dim), squeeze(index, dim)
    return result(values, index)


# -------------------------------------------------------------------------------------------- mode
def _mode_index(xp, data, axis):
    """Index (keepdims) of the most frequent value along `axis`: the smallest such value on a tie,
    at its last position, as PyTorch's CPU kernel returns it."""
    moved = xp.moveaxis(data, axis, -1)
    lines = moved.reshape(-1, moved.shape[-1])
    rows, n = lines.shape
    order = xp.argsort(lines, axis=1, kind="stable") if xp is np else lines.argsort(axis=1)
    ordered = xp.take_along_axis(lines, order, axis=1)
    starts = xp.ones((rows, n), dtype=np.bool_)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = xp.cumsum(starts, axis=1) - 1  # which run of equal values each sorted position is in
    counts = xp.zeros((rows, n), dtype=np.int64)
    add_at(xp, counts, (xp.arange(rows)[:, None], run), 1)
    best = counts.argmax(axis=1)[:, None]  # the first (smallest) of the most frequent values
    index = xp.where(run == best, order, -1).max(axis=1)
    return xp.moveaxis(index.reshape(moved.shape[:-1] + (1,)), -1, axis)


def mode(x, dim=-1, keepdim=False):
    """(values, indices): the most frequent value along `dim` (the smallest on a tie) and an index of it."""
    _require_tensor("mode", x)
    return _along_dim(x, dim, keepdim, "mode", _mode_index, mode_result)


# ------------------------------------------------------------------------------------------ unique
def unique(x, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002 - torch's name
    """The distinct values of x, ascending (PyTorch sorts whatever `sorted` says, and so do we), and
    optionally each element's index into them (shaped like x) and each value's count. No gradient.
    With `dim`, the distinct slices along dim in lexicographic order; inverse then has shape (x.shape[dim],)."""
    _require_tensor("unique", x)
    if dim is not None:
        values, inverse, counts = _unique_slices(x, normalize_dim(dim, x.ndim, "unique"))
    else:
        values, inverse, counts = x.xp.unique(x.data.reshape(-1), return_inverse=True, return_counts=True)
        inverse = inverse.reshape(x.shape)
    out = [_wrap(values)]
    if return_inverse:
        out.append(_wrap(inverse.astype(np.int64, copy=False)))
    if return_counts:
        out.append(_wrap(counts.astype(np.int64, copy=False)))
    return out[0] if len(out) == 1 else tuple(out)


def _unique_slices(x, dim):
    """(values, inverse, counts) of the distinct slices of x along dim: rows sorted by lexsort (last key
    primary, so the columns go in reversed), a new group wherever a row differs from the one before."""
    xp = x.xp
    if x.numel() == 0:
        _check_unique_of_empty(x, dim)
    moved = xp.moveaxis(x.data, dim, 0)
    rows = moved.reshape(moved.shape[0], math.prod(moved.shape[1:]))  # (no -1: it is ambiguous when empty)
    keys = rows.astype(np.uint8) if rows.dtype == np.bool_ else rows  # bool keys: not every sort backend takes them
    order = xp.lexsort(keys.T[::-1]) if rows.shape[1] else xp.arange(rows.shape[0])
    ordered = rows[order]
    starts = xp.ones(rows.shape[0], dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group = xp.cumsum(starts) - 1
    inverse = xp.empty_like(group)
    inverse[order] = group
    values = ordered[starts].reshape((-1,) + moved.shape[1:])
    return xp.moveaxis(values, 0, dim), inverse, xp.bincount(group, minlength=int(starts.sum()))


def _check_unique_of_empty(x, dim):
    """PyTorch takes the distinct slices of an empty tensor only along its one dim of size 0: slices
    that hold no elements are all equal, and it will not say how many distinct ones that makes."""
    empty_dims = [d for d, n in enumerate(x.shape) if n == 0]
    if empty_dims != [dim]:
        raise ShapeError(f"unique: cannot take the distinct slices along dim {dim} of a tensor of shape "
                         f"{tuple(x.shape)}: only its single dim of size 0 can be the one selected")


# ------------------------------------------------------------------------------ searchsorted/bucketize
def searchsorted(sorted_sequence, values, *, out_int32=False, right=False, side=None, sorter=None):
    """For each value, the index where it would be inserted into `sorted_sequence` (ascending along
    its last dim) to keep it sorted: before equal entries, or after them with right=True / side="right".
    An N-D sequence is searched line by line; its leading dims must match those of `values`."""
    _require_tensor("searchsorted", sorted_sequence)
    side = _side(right, side)
    seq = sorted_sequence.data
    xp = sorted_sequence.xp
    if sorter is not None:
        seq = xp.take_along_axis(seq, sorter.data.astype(np.int64, copy=False), axis=-1)
    scalar = not isinstance(values, Tensor)
    vals = xp.asarray(values, dtype=seq.dtype) if scalar else values.data
    if seq.ndim <= 1:
        out = xp.searchsorted(seq.reshape(-1), vals, side=side)
    else:
        if vals.ndim != seq.ndim or vals.shape[:-1] != seq.shape[:-1]:
            raise ShapeError(f"searchsorted: values of shape {tuple(vals.shape)} do not match the leading dims of "
                             f"sorted_sequence {tuple(seq.shape)}; use a 1-D sequence, or give values the same "
                             "leading dims")
        lines, queries = seq.reshape(-1, seq.shape[-1]), vals.reshape(-1, vals.shape[-1])
        out = xp.stack([xp.searchsorted(line, q, side=side) for line, q in zip(lines, queries)]).reshape(vals.shape)
    return _wrap(out.astype(np.int32 if out_int32 else np.int64, copy=False))


def _side(right, side):
    if side is None:
        return "right" if right else "left"
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    if right and side == "left":
        raise ValueError("searchsorted: right=True contradicts side='left'; give one of them")
    return side


def bucketize(input, boundaries, *, out_int32=False, right=False):  # noqa: A002 - torch's name
    """The bucket of each element given 1-D ascending `boundaries`: i with boundaries[i-1] < v <= boundaries[i]
    (right=False), or boundaries[i-1] <= v < boundaries[i] (right=True)."""
    _require_tensor("bucketize", boundaries)
    if boundaries.ndim != 1:
        raise ShapeError(f"bucketize: boundaries must be 1-D, got shape {tuple(boundaries.shape)}")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


# ------------------------------------------------------------------------------------------- histc
def histc(x, bins=100, min=0, max=0):  # noqa: A002 - torch's names
    """Counts of x's elements in `bins` equal-width bins over [min, max] (x's own range when min == max);
    elements outside are ignored. A float tensor of x's dtype, without gradient."""
    _require_tensor("histc", x)
    if x.dtype.kind != "f":
        raise DTypeError(f"histc: needs a floating-point tensor, got dtype {x.dtype}; convert with .float() first")
    bins = int(bins)
    if bins <= 0:
        raise ValueError(f"histc: bins must be positive, got {bins}")
    xp, data = x.xp, x.data.reshape(-1)
    lo, hi = float(min), float(max)
    if lo == hi and data.size:
        lo, hi = float(data.min()), float(data.max())
    if lo == hi:  # a single value: PyTorch widens the range by 1 on each side
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise ValueError(f"histc: min ({min}) must not exceed max ({max})")
    inside = data[(data >= lo) & (data <= hi)]
    position = ((inside - lo) * bins / (hi - lo)).astype(np.int64)
    position = xp.minimum(position, bins - 1)  # x == max falls in the last bin
    return _wrap(xp.bincount(position, minlength=bins).astype(x.dtype))

