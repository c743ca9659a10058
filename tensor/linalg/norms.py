"""vector_norm, matrix_norm and norm, with PyTorch's ord / dim / keepdim / dtype; cond.

Vector norms are tensor.norm's (ops/statistics.py). Matrix norms are compositions whose gradient
comes from their parts: 'fro' a vector 2-norm, 'nuc' / 2 / -2 the sum / max / min of svdvals,
1 / -1 / inf / -inf the max / min of absolute column (1) or row (inf) sums.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..ops import statistics
from ..ops._util import normalize_dim
from ..tensor import _wrap
from ._common import require_float
from .decomp import svdvals
from .ex import inverse_or_identity

_MATRIX_ORDS = ("fro", "nuc", 2, -2, 1, -1, math.inf, -math.inf)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):  # noqa: A002 - torch's argument name
    """torch.linalg.vector_norm: (sum |x|^ord)^(1/ord) over `dim` (all dims by default); ord may be
    any number, inf, -inf or 0 (the count of nonzeros)."""
    if isinstance(ord, str) or not isinstance(ord, numbers.Number):
        raise TypeError(f"linalg.vector_norm: ord must be a number, got {ord!r}; use matrix_norm for 'fro' and 'nuc'")
    if isinstance(dim, list):
        dim = tuple(dim)
    return statistics.norm(x, ord, dim, keepdim, dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):  # noqa: A002
    """torch.linalg.matrix_norm: the `ord` norm of the matrices over the two dims `dim`."""
    op = "linalg.matrix_norm"
    if ord not in _MATRIX_ORDS:
        raise ValueError(f"{op}: ord {ord!r} is not supported; use one of 'fro', 'nuc', 2, -2, 1, -1, inf, -inf")
    if A.ndim < 2:
        raise ShapeError(f"{op}: A must have at least 2 dimensions, got shape {tuple(A.shape)}")
    if dtype is not None:
        target = dtypes.as_dtype(dtype)
        if np.promote_types(A.dtype, target) != target:  # a narrowing cast, refused as torch does
            raise DTypeError(f"{op}: the input's dtype {A.dtype} does not convert to dtype={target} without "
                             "narrowing; convert the input itself first")
        A = A.to(dtype=target)
    require_float(op, A)
    if not isinstance(dim, (tuple, list)) or len(dim) != 2:
        raise ValueError(f"{op}: dim must be a pair of dims, got {dim!r}")
    rows, cols = (normalize_dim(d, A.ndim, op) for d in dim)
    if rows == cols:
        raise ValueError(f"{op}: dims must be different, got {tuple(dim)}")
    if ord == "fro":
        return statistics.norm(A, 2, (rows, cols), keepdim)
    if A.data.size == 0 and ord in ("nuc", 2, 1, math.inf):
        # The largest (or summed) magnitude of no entries: PyTorch gives 0 for the positive ords (the
        # negative ones reduce an empty dim with min, which has no identity, and raise below).
        return A.abs().sum((rows, cols), keepdim=keepdim)
    if ord in ("nuc", 2, -2):
        values = svdvals(A.movedim((rows, cols), (-2, -1)))
        out = values.sum(-1) if ord == "nuc" else values.amax(-1) if ord == 2 else values.amin(-1)
        for d in sorted((rows, cols)) if keepdim else ():
            out = out.unsqueeze(d)
        return out
    # ord 1: the largest absolute column sum (summed over the rows); inf: the largest row sum
    summed, other = (rows, cols) if ord in (1, -1) else (cols, rows)
    sums = A.abs().sum(summed, keepdim=True)
    out = sums.amax(other, keepdim=True) if ord > 0 else sums.amin(other, keepdim=True)
    return out if keepdim else out.squeeze((rows, cols))


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):  # noqa: A002
    """torch.linalg.norm: a vector norm over one dim (or all, when ord and dim are None), a matrix norm
    over two; with ord but no dim, A must be 1-D (vector norm) or 2-D (matrix norm)."""
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) == 1:
            return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)
        if len(dims) == 2:
            return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
        raise ValueError(f"linalg.norm: dim must be an int or a tuple of 1 or 2 dims, got {dim!r}")
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 2 or isinstance(ord, str):
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    raise ShapeError(f"linalg.norm: with ord={ord!r} and no dim, A must be 1-D or 2-D, got shape {tuple(A.shape)}; "
                     "pass dim")


def cond(A, p=None):
    """torch.linalg.cond: the condition number of each matrix in A (..., m, n).

    p None or 2: the ratio of the largest to the smallest singular value (svdvals; any m, n), -2 its
    inverse; 'nuc': sum(s) * sum(1 / s) (square A); 'fro', inf, -inf, 1, -1: matrix_norm(A, p) *
    matrix_norm(inv(A), p) for square A, inf where A is singular. All as PyTorch computes them;
    differentiable through svdvals, inv and the norms.
    """
    op = "linalg.cond"
    if p not in (None,) + _MATRIX_ORDS:
        raise ValueError(f"{op}: p {p!r} is not supported; use None, 2, -2, 'fro', 'nuc', inf, -inf, 1 or -1")
    require_float(op, A)
    if A.ndim < 2:
        raise ShapeError(f"{op}: A must have at least 2 dimensions, got shape {tuple(A.shape)}")
    if A.data.size == 0 and (p not in ("fro", "nuc") or A.shape[-1] == A.shape[-2]):
        # PyTorch: 0 for each empty matrix, an empty result for no matrices ('fro' and 'nuc' still
        # insist on square ones)
        return A.abs().sum((-2, -1))
    if p in (None, 2, -2):
        values = svdvals(A)
        largest, smallest = values[..., 0], values[..., -1]
        return smallest / largest if p == -2 else largest / smallest
    if A.shape[-1] != A.shape[-2]:
        raise ShapeError(f"{op}: p={p!r} needs square matrices (it inverts A), got shape {tuple(A.shape)}; use "
                         "p=None or 2 (singular values) for rectangular ones")
    if p == "nuc":
        values = svdvals(A)
        return values.sum(-1) * (1 / values).sum(-1)
    inverse, info = inverse_or_identity(A)
    value = matrix_norm(A, p) * matrix_norm(inverse, p)
    return value.where(_wrap(info == 0), math.inf)
