"""BLAS-style updates PyTorch names after their BLAS routines: baddbmm, addbmm, addmv, addr
(addmm lives with the other fused formulas in pointwise.py).

Each is `beta * input + alpha * product`, composed from matmul/outer/sum and arithmetic, so the backward
comes from those ops. As in PyTorch, beta=0 ignores input's values (NaN in input does not leak).
"""
from __future__ import annotations

from ..errors import ShapeError
from ..tensor import Tensor
from . import linalg, reduce
from .pointwise import _scaled, beta_x_plus


def _require_shape(op, name, value, ndim, hint):
    if not isinstance(value, Tensor) or value.ndim != ndim:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ShapeError(f"{op}: {name} must be a {ndim}-D tensor {hint}, got {got}")


def _batch_pair(op, batch1, batch2):
    _require_shape(op, "batch1", batch1, 3, "(b, n, m)")
    _require_shape(op, "batch2", batch2, 3, "(b, m, p)")
    b1, b2 = tuple(batch1.shape), tuple(batch2.shape)
    if b1[0] != b2[0] or b1[2] != b2[1]:
        raise ShapeError(f"{op}: batch1 {b1} and batch2 {b2} do not chain: they need (b, n, m) and (b, m, p)")


def baddbmm(x, batch1, batch2, *, beta=1, alpha=1):
    """beta * x + alpha * (batch1 @ batch2), batch by batch; x broadcasts to (b, n, p)."""
    _batch_pair("baddbmm", batch1, batch2)
    return beta_x_plus(x, beta, _scaled(linalg.matmul(batch1, batch2), alpha))


def addbmm(x, batch1, batch2, *, beta=1, alpha=1):
    """beta * x + alpha * sum over b of batch1[b] @ batch2[b]; x broadcasts to (n, p)."""
    _batch_pair("addbmm", batch1, batch2)
    return beta_x_plus(x, beta, _scaled(reduce.sum(linalg.matmul(batch1, batch2), 0), alpha))


def addmv(x, mat, vec, *, beta=1, alpha=1):
    """beta * x + alpha * (mat @ vec); mat (n, m), vec (m,), x broadcasts to (n,)."""
    _require_shape("addmv", "mat", mat, 2, "(n, m)")
    _require_shape("addmv", "vec", vec, 1, "(m,)")
    if mat.shape[1] != vec.shape[0]:
        raise ShapeError(f"addmv: mat {tuple(mat.shape)} and vec {tuple(vec.shape)}: sizes {mat.shape[1]} and "
                         f"{vec.shape[0]} differ")
    return beta_x_plus(x, beta, _scaled(linalg.matmul(mat, vec), alpha))


def addr(x, vec1, vec2, *, beta=1, alpha=1):
    """beta * x + alpha * outer(vec1, vec2); x broadcasts to (len(vec1), len(vec2))."""
    _require_shape("addr", "vec1", vec1, 1, "(n,)")
    _require_shape("addr", "vec2", vec2, 1, "(m,)")
    return beta_x_plus(x, beta, _scaled(linalg.outer(vec1, vec2), alpha))
