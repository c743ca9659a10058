"""LU with partial pivoting: lu_factor, lu_factor_ex, lu, lu_solve (A = P L U), batched.

NumPy has no LU and CuPy's (cupyx.scipy.linalg.lu_factor) takes one matrix at a time, so the
factorization is written here on the array module, for the whole batch at once: LAPACK getrf's
right-looking blocked algorithm (panels of 32 columns factored column by column, the pivot the
first entry of largest magnitude; then U12 = L11^-1 A12 by forward substitution and the trailing
update A22 -= L21 U12 as one matmul). It runs the same on NumPy and CuPy, never leaving the device.
Pivots follow LAPACK and PyTorch: 1-based int32, row i swapped with row pivots[i], in order.

Gradients (k = min(m, n); L1, U1 the k x k blocks, L2, U2 the rest):
  lu, lu_factor:  N = tril(L1^T gL1 - gU2 U2^T, -1) + triu(gU1 U1^T - L2^T gL2), then
                  gA = P [[L1^-T N U1^-T, L1^-T gU2], [gL2 U1^-T, 0]]  (PyTorch's formulas)
  lu_solve:       as solve's for A = P L U, gA then mapped to gL = tril(P^T gA U^T, -1), gU = triu(L^T P^T gA)
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..errors import ShapeError
from ..ops._util import sum_to
from ..tensor import Tensor
from ._common import (
    LinAlgError, broadcast_batch, float_matrix, lu_factor_ex_result, lu_factor_result, lu_result, mT,
    require_float, require_matrix, tril, triu,
)
from .triangular import tri_solve

BLOCK = 32


# ---------------------------------------------------------------------------- the factorization
def lu_packed(xp, a):
    """(LU, pivots, info) of a (..., m, n): L below the diagonal (unit diagonal implied) and U on and
    above it in one (..., m, n) array; pivots (..., k) 1-based int32; info (...) int32, the 1-based
    index of the first zero pivot (U singular) or 0. Arrays."""
    batch, (m, n) = a.shape[:-2], a.shape[-2:]
    k = min(m, n)
    lu = a.reshape((math.prod(batch), m, n)).astype(a.dtype, copy=True)
    piv = xp.zeros((lu.shape[0], k), dtype=np.int32)
    for j0 in range(0, k, BLOCK):
        j1 = min(j0 + BLOCK, k)
        for j in range(j0, j1):
            _eliminate(xp, lu, piv, j, j1)
        for i in range(j0 + 1, j1):  # U12 = L11^-1 A12, row by row
            lu[:, i, j1:] -= (lu[:, i, None, j0:i] @ lu[:, j0:i, j1:])[:, 0]
        lu[:, j1:, j1:] -= lu[:, j1:, j0:j1] @ lu[:, j0:j1, j1:]
    diagonal = xp.diagonal(lu, axis1=-2, axis2=-1)[:, :k]
    zero = diagonal == 0
    first = xp.argmax(zero.astype(np.int8), axis=-1) + 1 if k else 0
    info = xp.where(zero.any(-1), first, 0).astype(np.int32)
    return lu.reshape(batch + (m, n)), (piv + 1).reshape(batch + (k,)), info.reshape(batch)


def _eliminate(xp, lu, piv, j, j1):
    """Column j of the panel ending at column j1: pick the pivot, swap whole rows, scale the column
    below it, and update the panel's columns j+1..j1 (the rest waits for the blocked update)."""
    rows = xp.arange(lu.shape[0])
    p = j + xp.argmax(abs(lu[:, j:, j]), axis=1)
    piv[:, j] = p
    top = lu[rows, j, :].copy()
    lu[rows, j, :] = lu[rows, p, :]
    lu[rows, p, :] = top
    pivot = lu[:, j, j]
    lu[:, j + 1:, j] /= xp.where(pivot == 0, 1, pivot)[:, None]  # a zero pivot: its column is all zero
    lu[:, j + 1:, j + 1:j1] -= lu[:, j + 1:, j, None] * lu[:, j, None, j + 1:j1]


def permutation(xp, pivots, m):
    """perm (..., m) with (P^T A)[i] = A[perm[i]]: the row swaps of 1-based `pivots` applied in order."""
    batch = pivots.shape[:-1]
    piv = pivots.reshape((math.prod(batch), pivots.shape[-1])).astype(np.int64) - 1
    perm = xp.broadcast_to(xp.arange(m), (piv.shape[0], m)).copy()
    rows = xp.arange(piv.shape[0])
    for j in range(piv.shape[1]):
        p = piv[:, j]
        top = perm[:, j].copy()
        perm[:, j] = perm[rows, p]
        perm[rows, p] = top
    return perm.reshape(batch + (m,))


def unpack(xp, lu, pivots):
    """P (..., m, m), L (..., m, k), U (..., k, n) from the packed factors."""
    m, n = lu.shape[-2:]
    k = min(m, n)
    low = tril(xp, lu[..., :, :k], -1) + xp.eye(m, k, dtype=lu.dtype)
    up = triu(xp, lu[..., :k, :])
    perm = permutation(xp, pivots, m)
    p = (perm[..., None, :] == xp.arange(m)[:, None]).astype(lu.dtype)  # P[perm[i], i] = 1
    return p, low, up


def _gather_rows(xp, b, perm):
    """b[..., perm, :] per batch element (perm and b broadcast over the batch)."""
    batch = np.broadcast_shapes(b.shape[:-2], perm.shape[:-1])
    b = xp.broadcast_to(b, batch + b.shape[-2:])
    return xp.take_along_axis(b, xp.broadcast_to(perm[..., :, None], batch + b.shape[-2:]), axis=-2)


# ------------------------------------------------------------------------------------ gradients
def lu_grad(xp, p, low, up, grad_l, grad_u):
    """The gradient of A = P L U (any m, n) from those of L and U; arrays."""
    k = up.shape[-2]
    l1, l2, gl1, gl2 = low[..., :k, :], low[..., k:, :], grad_l[..., :k, :], grad_l[..., k:, :]
    u1, u2, gu1, gu2 = up[..., :k], up[..., k:], grad_u[..., :k], grad_u[..., k:]
    inner = tril(xp, mT(l1) @ gl1 - gu2 @ mT(u2), -1) + triu(xp, gu1 @ mT(u1) - mT(l2) @ gl2)
    top = _solve_lt(xp, l1, mT(_solve_u(xp, u1, mT(inner))))
    right = _solve_lt(xp, l1, gu2)
    bottom = mT(_solve_u(xp, u1, mT(gl2)))
    grad = xp.concatenate([xp.concatenate([top, right], -1),
                           xp.concatenate([bottom, xp.zeros(bottom.shape[:-1] + right.shape[-1:], top.dtype)], -1)], -2)
    return p @ grad


def _solve_u(xp, u, b):
    return tri_solve(xp, u, b, True, op="linalg.lu")


def _solve_lt(xp, low, b):
    """L^-T b for unit lower-triangular L: L^T is unit upper-triangular."""
    return tri_solve(xp, mT(low), b, True, True, op="linalg.lu")


class LUFactor(Function):
    """(LU, pivots, info) of a; differentiable in LU (as L and U)."""

    @staticmethod
    def forward(ctx, a):
        lu, pivots, info = lu_packed(ctx.xp, a)
        ctx.save_for_backward(lu, pivots)
        return lu, pivots, info

    @staticmethod
    def backward(ctx, grad_lu, *_):
        lu, pivots = ctx.saved_tensors
        xp = ctx.xp
        k = min(lu.shape[-2:])
        p, low, up = unpack(xp, lu, pivots)
        return lu_grad(xp, p, low, up, tril(xp, grad_lu[..., :, :k], -1), triu(xp, grad_lu[..., :k, :]))


class LU(Function):
    @staticmethod
    def forward(ctx, a):
        xp = ctx.xp
        p, low, up = unpack(xp, *lu_packed(xp, a)[:2])
        ctx.save_for_backward(p, low, up)
        ctx.mark_non_differentiable(p)
        return p, low, up

    @staticmethod
    def backward(ctx, grad_p, grad_l, grad_u):
        return lu_grad(ctx.xp, *ctx.saved_tensors, grad_l, grad_u)


# ------------------------------------------------------------------------------- public functions
def lu_factor_ex(A, *, pivot=True, check_errors=False):
    """torch.linalg.lu_factor_ex: (LU (..., m, n), pivots (..., k) int32 1-based, info (...) int32), info
    the 1-based index of U's first zero diagonal entry (A singular) or 0; check_errors=True raises then."""
    op = "linalg.lu_factor_ex"
    _pivot(op, pivot)
    float_matrix(op, A)
    lu, pivots, info = LUFactor.apply(A)
    if check_errors:
        _raise_singular(op, A, info)
    return lu_factor_ex_result(lu, pivots, info)


def lu_factor(A, *, pivot=True):
    """torch.linalg.lu_factor: (LU, pivots) of A (..., m, n); raises LinAlgError for a singular A (as
    PyTorch: lu_solve would divide by zero); use lu_factor_ex or lu to factor singular matrices."""
    lu, pivots, info = lu_factor_ex(A, pivot=pivot)
    _raise_singular("linalg.lu_factor", A, info)
    return lu_factor_result(lu, pivots)


def lu(A, *, pivot=True):
    """torch.linalg.lu: P (..., m, m), L (..., m, k) unit lower-triangular, U (..., k, n) with A = P L U."""
    _pivot("linalg.lu", pivot)
    float_matrix("linalg.lu", A)
    return lu_result(*LU.apply(A))


def _pivot(op, pivot):
    if not pivot:
        raise ValueError(f"{op}: pivot=False (LU without pivoting) is only implemented on CUDA in PyTorch "
                         "and not here; use pivot=True")


def first_singular(info):
    """(batch index, 1-based index of the zero pivot) of the first matrix whose LU `info` (an array) is
    nonzero, or None where every matrix factored."""
    bad = info != 0
    if not bool(bad.any()):
        return None
    index = tuple(int(i) for i in np.argwhere(bad.get() if hasattr(bad, "get") else bad)[0])
    return index, int(info[index])


def _raise_singular(op, A, info):
    found = first_singular(info.data)
    if found is not None:
        index, k = found
        where = f" (batch element {index})" if index else ""
        raise LinAlgError(f"{op}: U[{k}, {k}] is zero{where}: the matrix of shape "
                          f"{tuple(A.shape[-2:])} is singular and lu_solve would divide by zero; use "
                          "linalg.lu_factor_ex or linalg.lu to factor it anyway")


# ----------------------------------------------------------------------------------------- lu_solve
def solve_with_lu(xp, lu, perm, b, adjoint):
    """A^-1 b (A^-T b for adjoint) for A = P L U packed in lu (..., n, n), perm as from permutation()."""
    if not adjoint:  # X = U^-1 L^-1 P^T B
        y = tri_solve(xp, lu, _gather_rows(xp, b, perm), False, True, op="linalg.lu_solve")
        return tri_solve(xp, lu, y, True, op="linalg.lu_solve")
    # X = P L^-T U^-T B: the rows of Y scattered back to perm's places
    y = tri_solve(xp, mT(lu), b, False, op="linalg.lu_solve")
    y = tri_solve(xp, mT(lu), y, True, True, op="linalg.lu_solve")
    return _gather_rows(xp, y, xp.argsort(perm, axis=-1))


class LUSolve(Function):
    """X with A X = B (adjoint: A^T X = B), left side; lu_solve transposes for left=False."""

    @staticmethod
    def forward(ctx, lu, pivots, b, adjoint):
        xp = ctx.xp
        perm = permutation(xp, pivots, lu.shape[-1])
        x = solve_with_lu(xp, lu, perm, b, adjoint)
        ctx.save_for_backward(lu, perm, x)
        ctx.meta = (adjoint, lu.shape, b.shape)
        return x

    @staticmethod
    def backward(ctx, grad):
        lu, perm, x = ctx.saved_tensors
        adjoint, lu_shape, b_shape = ctx.meta
        xp = ctx.xp
        need_lu, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        grad_b = solve_with_lu(xp, lu, perm, grad, not adjoint)
        grad_lu = None
        if need_lu:
            grad_a = -(x @ mT(grad_b)) if adjoint else -(grad_b @ mT(x))
            pt_grad_a = _gather_rows(xp, grad_a, perm)
            low, up = tril(xp, lu, -1) + xp.eye(lu.shape[-1], dtype=lu.dtype), triu(xp, lu)
            grad_lu = sum_to(tril(xp, pt_grad_a @ mT(up), -1) + triu(xp, mT(low) @ pt_grad_a), lu_shape)
        return grad_lu, None, (sum_to(grad_b, b_shape) if need_b else None), None


def lu_solve(LU, pivots, B, *, left=True, adjoint=False):
    """torch.linalg.lu_solve: X with A X = B for A = P L U given by lu_factor (LU (..., n, n), pivots
    (..., n)); left=False solves X A = B, adjoint=True uses A^T. B is (..., n, k) ((..., k, n) for
    left=False); batch dims broadcast. Differentiable in LU and B."""
    op = "linalg.lu_solve"
    require_float(op, LU, B)
    require_matrix(op, LU, square=True, name="LU")
    if not isinstance(pivots, Tensor) or pivots.data.dtype.kind not in "iu":
        raise TypeError(f"{op}: pivots must be an integer Tensor (as lu_factor returns), got "
                        f"{getattr(pivots, 'dtype', type(pivots).__name__)}")
    n = LU.shape[-1]
    if tuple(pivots.shape[-1:]) != (n,) or tuple(pivots.shape[:-1]) != tuple(LU.shape[:-2]):
        raise ShapeError(f"{op}: pivots must have shape {tuple(LU.shape[:-1])} for LU of shape {tuple(LU.shape)}, "
                         f"got {tuple(pivots.shape)}")
    require_matrix(op, B, name="B")
    if (B.shape[-2] if left else B.shape[-1]) != n:
        want = f"(..., {n}, k)" if left else f"(..., k, {n})"
        raise ShapeError(f"{op}: B of shape {tuple(B.shape)} does not fit LU {tuple(LU.shape)}: it must be {want}")
    xp = LU.xp
    broadcast_batch(xp, op, LU.data, B.data)  # refuses batch dims that do not broadcast, naming them
    if left:
        return LUSolve.apply(LU, pivots, B, bool(adjoint))
    return LUSolve.apply(LU, pivots, B.mT, not adjoint).mT


__all__ = ["lu", "lu_factor", "lu_factor_ex", "lu_solve"]
