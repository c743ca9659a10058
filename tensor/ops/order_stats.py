"""Order statistics beyond median and mode: aminmax, cummax / cummin, kthvalue, nanmedian, quantile and
nanquantile.

As in ranking.py, each finds its indices on raw arrays (no autograd), then takes the values with
gather (quantile: sort, gather and lerp), so each value's gradient goes back to the element it came
from, and a second derivative comes for free. Index choices on ties follow PyTorch's CPU kernels:
cummax/cummin report the latest of equal extremes, nanmedian the stable-sorted order (and on an
all-NaN line the NaN libstdc++'s nth_element leaves first); kthvalue takes the stable-sorted order
(PyTorch leaves that choice open).
"""
from __future__ import annotations

import functools
import numbers
from collections import namedtuple

import numpy as np

from ..errors import DTypeError, ShapeError
from ..tensor import Tensor, _wrap
from ._util import normalize_dim
from .gather import gather
from .pointwise import lerp
from .ranking import _along_dim, _median_index, _require_nonempty_dim, _require_tensor, median_of_nothing
from .reduce import _require_nonempty, amax, amin, reduction_dims
from .shape import movedim, reshape, squeeze
from .sort import _argsort_ascending, sort

# torch.return_types.*: tuples that also name their fields.
aminmax_result = namedtuple("aminmax", ["min", "max"])
cummax_result = namedtuple("cummax", ["values", "indices"])
cummin_result = namedtuple("cummin", ["values", "indices"])
kthvalue_result = namedtuple("kthvalue", ["values", "indices"])
nanmedian_result = namedtuple("nanmedian", ["values", "indices"])


def _stable_argsort(xp, data, axis):
    """Ascending, equal values in their original order, NaN last."""
    return _argsort_ascending(xp, data, axis, stable=True)


# ------------------------------------------------------------------------------------------ aminmax
def aminmax(x, *, dim=None, keepdim=False):
    """(min, max) over `dim` (an int) or over all elements; gradients as amin's and amax's."""
    _require_tensor("aminmax", x)
    if dim is not None and not isinstance(dim, int):
        raise TypeError(f"aminmax: dim must be an int or None, got {dim!r}")
    dims = reduction_dims(x, dim, "aminmax")
    _require_nonempty(x, dims, "aminmax")
    return aminmax_result(amin(x, dims, keepdim), amax(x, dims, keepdim))


# ---------------------------------------------------------------------------------- cummax, cummin
def _scan(xp, ufunc, data, axis):
    """ufunc.accumulate along `axis`. CuPy's ufuncs have no accumulate: a Hillis-Steele scan there,
    log2(n) passes, each combining every element with the one `step` before it."""
    if xp is np:
        return ufunc.accumulate(data, axis=axis)
    out, n, step = data.copy(), data.shape[axis], 1
    lead = (slice(None),) * axis
    while step < n:
        out[lead + (slice(step, n),)] = ufunc(out[lead + (slice(step, n),)], out[lead + (slice(0, n - step),)])
        step *= 2
    return out


def _running_extreme(x, dim, op, pick, result):
    _require_tensor(op, x)
    dim = normalize_dim(dim, x.ndim, op)
    xp, data = x.xp, x.data
    if x.ndim == 0:
        return result(x.clone(), _wrap(xp.zeros((), np.int64)))
    running = _scan(xp, getattr(xp, pick), data, dim)
    # The index is that of the latest element equal to the running extreme (PyTorch's `>=`), or of
    # the latest NaN once one has been seen (NaN propagates; later numbers never equal it).
    hit = running == data
    if data.dtype.kind == "f":
        hit |= xp.isnan(data)
    positions = xp.arange(data.shape[dim], dtype=np.int64).reshape((-1,) + (1,) * (data.ndim - dim - 1))
    index = _scan(xp, xp.maximum, xp.where(hit, positions, -1), dim)
    index = _wrap(index)
    return result(gather(x, dim, index), index)


def cummax(x, dim):
    """(values, indices): the running maximum along `dim` and where each came from."""
    return _running_extreme(x, dim, "cummax", "maximum", cummax_result)


def cummin(x, dim):
    """(values, indices): the running minimum along `dim` and where each came from."""
    return _running_extreme(x, dim, "cummin", "minimum", cummin_result)


# ----------------------------------------------------------------------------------------- kthvalue
def kthvalue(x, k, dim=-1, keepdim=False):
    """(values, indices): the k-th smallest element (k counts from 1) along `dim`; NaN counts as the largest."""
    _require_tensor("kthvalue", x)
    dim = normalize_dim(dim, x.ndim, "kthvalue")
    _require_nonempty_dim("kthvalue", x, dim)
    size = x.shape[dim] if x.ndim else 1
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= size:
        raise IndexError(f"kthvalue: k={k!r} is out of range for dim {dim} of size {size}; k counts from 1, so it "
                         f"must be in 1..{size}")
    return _along_dim(x, dim, keepdim, "kthvalue", lambda xp, data, axis: _kth_index(xp, data, axis, int(k) - 1),
                      kthvalue_result)


def _kth_index(xp, data, axis, k):
    """Index (keepdims) of the k-th (from 0) smallest value along `axis`. Among equal values the stable
    order decides (PyTorch guarantees no particular one: its CPU quickselect and CUDA sort differ)."""
    order = _stable_argsort(xp, data, axis)
    return order[(slice(None),) * axis + (slice(k, k + 1),)]


# ---------------------------------------------------------------------------------------- nanmedian
def _nanmedian_index(xp, data, axis):
    """Index (keepdims) of the lower median of the non-NaN values along `axis`: the stable-sorted order
    that PyTorch's nth_element comparator defines (equal values by position, NaN last)."""
    if data.dtype.kind != "f":
        return _median_index(xp, data, axis)
    order = _stable_argsort(xp, data, axis)
    count = (~xp.isnan(data)).sum(axis=axis, keepdims=True)
    index = xp.take_along_axis(order, xp.maximum((count - 1) // 2, 0), axis=axis).astype(np.int64, copy=False)
    return xp.where(count == 0, _all_nan_index(data.shape[axis]), index)


@functools.lru_cache(maxsize=64)
def _all_nan_index(n):
    """The index PyTorch's CPU nanmedian reports for a line of n NaNs, which its comparator finds all
    equivalent: the element libstdc++'s nth_element (introselect) leaves first. With every comparison
    false, each round swaps the middle element to the front and partitions the rest by swapping from
    both ends, until at most 3 elements remain before the cut (insertion sort then moves nothing)."""
    order, last = list(range(n)), n
    while last > 3:
        order[0], order[last // 2] = order[last // 2], order[0]
        lo, hi = 1, last
        while True:
            hi -= 1
            if lo >= hi:
                break
            order[lo], order[hi] = order[hi], order[lo]
            lo += 1
        last = lo
    return order[0]


def nanmedian(x, dim=None, keepdim=False):
    """median that ignores NaN: the lower median of the other values (NaN where a line is all NaN).
    nanmedian(): a 0-d tensor; nanmedian(dim): (values, indices)."""
    _require_tensor("nanmedian", x)
    if dim is not None:
        return _along_dim(x, dim, keepdim, "nanmedian", _nanmedian_index, nanmedian_result)
    if x.numel() == 0:
        return median_of_nothing(x)
    flat = reshape(x, (-1,))
    return reshape(gather(flat, 0, _wrap(_nanmedian_index(x.xp, flat.data, 0))), ())


# ----------------------------------------------------------------------------------------- quantile
_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def quantile(x, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The q-th quantiles of x along `dim` (of all elements when None), q a number or a 1-D tensor in
    [0, 1]; with a 1-D q the result has a leading dim of len(q). A NaN in a line makes its result NaN.
    interpolation: how to pick between the two nearest order statistics."""
    return _quantile("quantile", x, q, dim, keepdim, interpolation, ignore_nan=False)


def nanquantile(x, q, dim=None, keepdim=False, *, interpolation="linear"):
    """quantile ignoring NaN: the quantiles of each line's other values (NaN where a line is all NaN)."""
    return _quantile("nanquantile", x, q, dim, keepdim, interpolation, ignore_nan=True)


def _quantile(op, x, q, dim, keepdim, interpolation, ignore_nan):
    _require_tensor(op, x)
    if x.dtype.kind != "f":
        raise DTypeError(f"{op}: needs a floating-point input, got dtype {x.dtype}; convert with .float() first")
    if x.numel() == 0:
        raise ShapeError(f"{op}: the input is empty (shape {tuple(x.shape)}); there is nothing to take a quantile of")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"{op}: interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {interpolation!r}")
    qs, q_dim = _quantile_levels(op, x, q)
    if dim is None:
        lines, kept = reshape(x, (-1,)), (1,) * x.ndim
    else:
        dim = normalize_dim(dim, x.ndim, op)
        lines = movedim(x, dim, -1) if x.ndim else reshape(x, (1,))
        kept = tuple(1 if d == dim else n for d, n in enumerate(x.shape))
    ordered = sort(lines, dim=-1).values  # NaN last
    values = _interpolate(ordered, qs, interpolation, ignore_nan)  # (*lines, len(q))
    values = movedim(values, -1, 0) if q_dim else squeeze(values, -1)
    if keepdim:
        values = reshape(values, (len(qs),) * q_dim + kept)
    return values


def _quantile_levels(op, x, q):
    """q as a 1-D array of levels on x's device, and whether the result keeps a dim for them."""
    if isinstance(q, Tensor):
        if q.ndim > 1:
            raise ShapeError(f"{op}: q must be a number or a 0-d or 1-D tensor, got shape {tuple(q.shape)}")
        if q.dtype != x.dtype:
            raise DTypeError(f"{op}: q has dtype {q.dtype} but the input has {x.dtype}; give q the input's dtype")
        levels, q_dim = q.data.reshape(-1), q.ndim == 1
    elif isinstance(q, numbers.Real) and not isinstance(q, bool):
        levels, q_dim = x.xp.asarray([q], dtype=x.dtype), False
    else:
        raise TypeError(f"{op}: q must be a number or a tensor of levels in [0, 1], got {type(q).__name__}")
    if levels.size:
        low, high = float(levels.min()), float(levels.max())
        if not (0 <= low and high <= 1):  # NaN fails too
            bad = low if not 0 <= low <= 1 else high
            raise ValueError(f"{op}: q must be in [0, 1], got {bad}")
    return levels, q_dim


def _interpolate(ordered, qs, interpolation, ignore_nan):
    """The quantiles of each sorted line: (*lines, len(qs)), by PyTorch's rule (ranks, then lerp)."""
    xp, data = ordered.xp, ordered.data
    n = data.shape[-1]
    if ignore_nan:  # ranks among the non-NaN values; an all-NaN line takes rank 0, which is NaN
        count = (~xp.isnan(data)).sum(axis=-1, keepdims=True)
        ranks = xp.maximum(qs * (count - 1).astype(data.dtype), 0)
    else:  # a line holding NaN takes the last rank, which is NaN
        has_nan = xp.isnan(data).any(axis=-1, keepdims=True)
        ranks = xp.where(has_nan, n - 1, qs * (n - 1)).astype(data.dtype)
    ranks = xp.broadcast_to(ranks, data.shape[:-1] + (qs.size,))
    if interpolation in ("lower", "higher", "nearest"):
        ranks = {"lower": xp.floor, "higher": xp.ceil, "nearest": xp.round}[interpolation](ranks)
    below = ranks.astype(np.int64)
    values = gather(ordered, -1, _wrap(below))
    if interpolation not in ("linear", "midpoint"):
        return values
    above = gather(ordered, -1, _wrap(xp.ceil(ranks).astype(np.int64)))
    weight = xp.full_like(ranks, 0.5) if interpolation == "midpoint" else ranks - below
    return lerp(values, above, _wrap(weight.astype(data.dtype, copy=False)))

