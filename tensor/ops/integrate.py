"""The trapezoidal rule along one dim: trapezoid (alias trapz) and cumulative_trapezoid.

Both are compositions of slicing, arithmetic and sum/cumsum, written as PyTorch writes them, so
results, dtypes (integer samples give floats) and gradients for y and x follow from those ops.
"""
from __future__ import annotations

import numbers

from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._util import normalize_dim
from .reduce import cumsum, sum
from .shape import reshape
from .views import narrow, select


def trapezoid(y, x=None, *, dx=None, dim=-1):
    """The integral of samples y along `dim`: spaced by the sample points x (1-D of that dim's size,
    or broadcastable after differencing), or evenly by dx (1 by default). Empty dims give 0."""
    dim, spacing, dx = _check("trapezoid", y, x, dx, dim)
    n = y.shape[dim]
    if n == 0:
        return y.new_zeros(y.shape[:dim] + y.shape[dim + 1:])
    if spacing is None:  # dx * (sum(y) - (y_first + y_last) / 2)
        ends = select(y, dim, 0) + select(y, dim, n - 1)
        return (sum(y, dim) - ends * 0.5) * dx
    left, right = narrow(y, dim, 0, n - 1), narrow(y, dim, 1, n - 1)
    return sum((left + right) * spacing, dim) / 2.0


def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    """The running trapezoidal integral along `dim`: one value per interval (that dim shrinks by one)."""
    dim, spacing, dx = _check("cumulative_trapezoid", y, x, dx, dim)
    n = y.shape[dim]
    pairs = narrow(y, dim, 0, max(n - 1, 0)) + narrow(y, dim, min(1, n), max(n - 1, 0))
    if spacing is None:
        return cumsum(pairs * (dx / 2.0), dim)
    return cumsum(pairs * spacing, dim) / 2.0


def _check(op, y, x, dx, dim):
    """(dim as a non-negative int, the spacing along it as a Tensor or None, the even spacing dx)."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{op}: y must be a Tensor, got {type(y).__name__}")
    if y.ndim == 0:
        raise ShapeError(f"{op}: y must have at least one dim, got a 0-d tensor")
    dim = normalize_dim(dim, y.ndim, op)
    if y.dtype.kind == "b":
        raise DTypeError(f"{op}: bool samples are not supported; convert y with .float() first")
    if x is not None and dx is not None:
        raise TypeError(f"{op}: pass either the sample points x or the even spacing dx, not both")
    if x is None:
        if dx is not None and (isinstance(dx, bool) or not isinstance(dx, numbers.Real)):
            raise TypeError(f"{op}: dx must be a real number, got {dx!r}")
        return dim, None, 1 if dx is None else dx
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: x must be a Tensor of sample points, got {type(x).__name__}; use dx= for a constant "
                        "spacing")
    if x.dtype.kind == "b":
        raise DTypeError(f"{op}: bool sample points are not supported; convert x with .float() first")
    if x.ndim == 1:
        if x.shape[0] != y.shape[dim]:
            raise ShapeError(f"{op}: x has {x.shape[0]} sample points but y has {y.shape[dim]} samples along dim "
                             f"{dim}; give one x value per sample")
        x = reshape(x, tuple(x.shape[0] if d == dim else 1 for d in range(y.ndim)))
    elif x.ndim < y.ndim:
        x = reshape(x, (1,) * (y.ndim - x.ndim) + tuple(x.shape))
    n = x.shape[dim]
    spacing = narrow(x, dim, min(1, n), max(n - 1, 0)) - narrow(x, dim, 0, max(n - 1, 0))
    return dim, spacing, None
