"""Counting and membership: count_nonzero, bincount, isin, unique_consecutive, histogram.

Their results are counts, positions and truth values: no gradient, as in PyTorch.
"""
from __future__ import annotations

import math
import numbers
from collections import namedtuple

import numpy as np

from ..errors import DTypeError, ShapeError
from ..runtime import check_deterministic
from ..tensor import Tensor, _wrap
from ._util import normalize_dim
from .compare import ne
from .ranking import _require_tensor
from .reduce import reduction_dims, sum

# torch.return_types.histogram
histogram_result = namedtuple("histogram", ["hist", "bin_edges"])


def count_nonzero(x, dim=None):
    """The number of nonzero elements over `dim` (an int or a tuple; all dims when None), as int64."""
    _require_tensor("count_nonzero", x)
    return sum(ne(x, 0), reduction_dims(x, dim, "count_nonzero"))


def bincount(x, weights=None, minlength=0):
    """How often each value 0..max(x) occurs in the 1-D non-negative integer tensor x (at least
    `minlength` bins): int64 counts, or the sums of `weights` per value (float32 for float32 weights,
    float64 otherwise)."""
    _require_tensor("bincount", x)
    if x.ndim != 1 or x.dtype.kind not in "iub":
        raise ShapeError(f"bincount: needs a 1-D tensor of non-negative integers, got a {x._describe()}")
    minlength = int(minlength)
    if minlength < 0:
        raise ValueError(f"bincount: minlength must be >= 0, got {minlength}")
    data = x.data.astype(np.int64, copy=False)
    if data.size and int(data.min()) < 0:
        raise ValueError(f"bincount: values must be non-negative, got {int(data.min())}")
    xp = x.xp
    if weights is not None:
        _require_tensor("bincount", weights)
        if weights.shape != x.shape:
            raise ShapeError(f"bincount: weights must be 1-D with one weight per input element ({x.shape[0]}), got "
                             f"shape {tuple(weights.shape)}")
    dtype = np.int64 if weights is None else np.float32 if weights.dtype == np.float32 else np.float64
    if data.size == 0:  # (CuPy's bincount takes the max of its input first, which fails on none)
        return _wrap(xp.zeros(minlength, np.int64))  # int64 even with weights, as PyTorch gives it
    if weights is None:
        return _wrap(xp.bincount(data, minlength=minlength).astype(dtype, copy=False))
    if xp is not np:  # CuPy sums the weights with float atomics
        check_deterministic("bincount with weights (atomicAdd)")
    counts = xp.bincount(data, weights=weights.data.astype(np.float64), minlength=minlength)
    return _wrap(counts.astype(dtype, copy=False))


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """A bool tensor shaped like `elements`: True where an element equals any of `test_elements`
    (either may be a number). invert=True gives the opposite; assume_unique is only a speed hint."""
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise TypeError(f"isin: elements or test_elements must be a Tensor, got {type(elements).__name__} and "
                        f"{type(test_elements).__name__}")
    xp = (elements if isinstance(elements, Tensor) else test_elements).xp
    left = elements.data if isinstance(elements, Tensor) else xp.asarray(elements)
    right = test_elements.data if isinstance(test_elements, Tensor) else xp.asarray(test_elements)
    found = xp.isin(left, right.reshape(-1), assume_unique=assume_unique, invert=invert)
    return _wrap(xp.asarray(found, dtype=np.bool_))


def unique_consecutive(x, return_inverse=False, return_counts=False, dim=None):
    """x with each run of equal consecutive elements (or slices along `dim`) collapsed to one;
    optionally each element's (slice's) run number and each run's length, both int64."""
    _require_tensor("unique_consecutive", x)
    xp = x.xp
    if dim is not None and x.ndim == 0:
        raise ShapeError(f"unique_consecutive: dim={dim} needs a tensor with dims, got a 0-d tensor; use dim=None")
    if dim is None:
        lines = x.data.reshape(-1, 1)
    else:
        dim = normalize_dim(dim, x.ndim, "unique_consecutive")
        moved = xp.moveaxis(x.data, dim, 0)
        lines = moved.reshape(moved.shape[0], math.prod(moved.shape[1:]))
    n = lines.shape[0]
    starts = xp.ones(n, dtype=np.bool_)
    if n > 1:
        starts[1:] = (lines[1:] != lines[:-1]).any(axis=1)
    first = xp.nonzero(starts)[0]
    if dim is None:
        values = x.data.reshape(-1)[first]
    else:
        values = xp.moveaxis(xp.take(xp.moveaxis(x.data, dim, 0), first, axis=0), 0, dim)
    out = [_wrap(values)]
    if return_inverse:
        inverse = xp.cumsum(starts) - 1
        out.append(_wrap(inverse.reshape(x.shape if dim is None else (n,)).astype(np.int64, copy=False)))
    if return_counts:
        out.append(_wrap(xp.diff(xp.append(first, n)).astype(np.int64, copy=False)))
    return out[0] if len(out) == 1 else tuple(out)


def histogram(x, bins=100, *, range=None, weight=None, density=False):  # noqa: A002 - torch's names
    """(hist, bin_edges) of x's elements: `bins` equal bins over `range` (x's own min..max by default),
    or the given increasing edges (a 1-D tensor). Each bin holds edges[i] <= v < edges[i+1], the last
    one its right edge too; hist counts (or sums `weight`, or with density a probability density),
    in x's dtype."""
    _require_tensor("histogram", x)
    if x.dtype.kind != "f":
        raise DTypeError(f"histogram: needs a floating-point input, got dtype {x.dtype}; convert with .float() first")
    xp, data = x.xp, x.data.reshape(-1)
    edges = _edges(x, data, bins, range)
    if weight is not None:
        _require_tensor("histogram", weight)
        if weight.shape != x.shape or weight.dtype != x.dtype:
            raise ShapeError(f"histogram: weight must have the input's shape {tuple(x.shape)} and dtype {x.dtype}, "
                             f"got shape {tuple(weight.shape)} and dtype {weight.dtype}")
    if weight is not None and xp is not np:  # CuPy sums the weights with float atomics
        check_deterministic("histogram with weight (atomicAdd)")
    hist, _ = xp.histogram(data, bins=edges, weights=None if weight is None else weight.data.reshape(-1))
    hist = hist.astype(x.dtype)
    if density:
        hist = hist / (hist.sum() * xp.diff(edges))
    return histogram_result(_wrap(hist.astype(x.dtype, copy=False)), _wrap(edges))


def _edges(x, data, bins, range):  # noqa: A002
    """The bin edges in x's dtype: the given tensor, or PyTorch's linspace over the range."""
    xp = x.xp
    if isinstance(bins, Tensor):
        if bins.ndim != 1 or bins.dtype != x.dtype:
            raise ShapeError(f"histogram: bins must be an int or a 1-D tensor of edges in the input's dtype "
                             f"({x.dtype}), got a {bins._describe()}")
        return bins.data
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins <= 0:
        raise ValueError(f"histogram: bins must be a positive int or a tensor of edges, got {bins!r}")
    if range is not None:
        low, high = (float(v) for v in range)
        if low > high:
            raise ValueError(f"histogram: range must be (min, max) with min <= max, got {tuple(range)}")
    elif data.size:
        low, high = float(data.min()), float(data.max())
    else:
        low, high = 0.0, 1.0
    if low == high:  # one value: a unit-wide range around it, as in PyTorch and NumPy
        low, high = low - 0.5, high + 0.5
    # torch.linspace's rule: from the start for the first half, from the end for the second
    steps = xp.arange(bins + 1, dtype=x.dtype)
    step = x.dtype.type((high - low) / bins)
    low, high = x.dtype.type(low), x.dtype.type(high)
    return xp.where(steps < (bins + 1) // 2, low + steps * step, high - (bins - steps) * step).astype(x.dtype)
