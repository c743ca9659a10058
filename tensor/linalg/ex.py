"""The *_ex variants: cholesky_ex, inv_ex, solve_ex return (result, info) instead of raising.

info is int32 with the batch shape: 0 where the matrix factored, else LAPACK's 1-based index (the
order of the first leading minor that is not positive-definite for cholesky; the first zero pivot of
the LU for inv and solve). check_errors=True raises LinAlgError instead, as the plain op does.

The batch goes to the plain op first; only if that fails are the failing matrices found (by LU,
or by bisecting over leading minors for cholesky) and replaced by the identity, so the others still
get their results and gradients. The failing matrices' results are NaN (PyTorch leaves whatever the
partial factorization wrote there) and get no gradient. (lu_factor_ex lives with lu in lu.py.)
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import _wrap
from ._common import LinAlgError, cholesky_ex_result, float_matrix, inv_ex_result, raising, solve_ex_result
from .lu import first_singular, lu_packed
from .solve import cholesky, inv, solve


def _ok(xp, batch):
    return _wrap(xp.zeros(batch, dtype=np.int32))


def _replace_failing(A, info):
    """A with each matrix whose info is nonzero replaced by the identity (a Tensor op, so the others
    keep their gradient), and the mask of those that were not replaced."""
    xp = A.xp
    good = _wrap(info == 0)
    eye = _wrap(xp.eye(A.shape[-1], dtype=A.data.dtype))
    return A.where(good.unsqueeze(-1).unsqueeze(-1), eye), good


def _singular_info(A):
    """info (an int32 array) where A is singular, None where none of its matrices is. On the GPU it
    always comes from our LU: cuBLAS's batched inverse can return an exactly singular matrix's
    inverse (huge, finite) without reporting its zero pivot, where LAPACK reports it."""
    if type(A.data) is np.ndarray:
        return None
    info = lu_packed(A.xp, A.data)[2]
    return info if bool(info.any()) else None


def _raise_if_singular(op, A):
    """check_errors=True on the GPU: the LinAlgError that cuBLAS's batched LU may not give."""
    info = _singular_info(A)
    if info is not None:
        index, k = first_singular(info)
        raise LinAlgError(f"{op}: the input of shape {tuple(A.shape)} holds a singular matrix (batch element "
                          f"{index}: the diagonal element {k} of its LU is zero)")


def inverse_or_identity(A):
    """(inv of A with failing matrices replaced by I, info as an int32 array): for inv_ex and cond."""
    info = _singular_info(A)
    if info is None:
        try:
            return inv(A), A.xp.zeros(A.shape[:-2], dtype=np.int32)
        except LinAlgError:
            info = lu_packed(A.xp, A.data)[2]
    safe, _ = _replace_failing(A, info)
    return inv(safe), info


def inv_ex(A, *, check_errors=False):
    """torch.linalg.inv_ex: (inverse, info) of square A (..., n, n); info the 1-based index of U's first
    zero diagonal entry in A's LU (A singular), else 0; a singular matrix's inverse is NaN."""
    float_matrix("linalg.inv_ex", A, square=True)
    if check_errors:
        _raise_if_singular("linalg.inv_ex", A)
        return inv_ex_result(inv(A), _ok(A.xp, A.shape[:-2]))
    inverse, info = inverse_or_identity(A)
    good = _wrap(info == 0)
    return inv_ex_result(inverse.where(good.unsqueeze(-1).unsqueeze(-1), math.nan), _wrap(info))


def solve_ex(A, B, *, left=True, check_errors=False):
    """torch.linalg.solve_ex: (result, info), result as linalg.solve gives it (NaN for a singular A)
    and info (A's batch shape) as for inv_ex."""
    if check_errors:
        _raise_if_singular("linalg.solve_ex", A)
    info = None if check_errors else _singular_info(A)
    if info is None:
        try:
            return solve_ex_result(solve(A, B, left=left), _ok(A.xp, A.shape[:-2]))
        except LinAlgError:
            if check_errors:
                raise
        info = lu_packed(A.xp, A.data)[2]
    safe, good = _replace_failing(A, info)
    result = solve(safe, B, left=left)
    vector = left and (B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1])))
    mask = good.unsqueeze(-1) if vector else good.unsqueeze(-1).unsqueeze(-1)
    return solve_ex_result(result.where(mask, math.nan), _wrap(info))


def cholesky_ex(A, *, upper=False, check_errors=False):
    """torch.linalg.cholesky_ex: (L, info) for symmetric A (..., n, n); info the order of the first
    leading minor that is not positive-definite (1-based), else 0; that matrix's L is NaN."""
    try:
        return cholesky_ex_result(cholesky(A, upper=upper), _ok(A.xp, A.shape[:-2]))
    except LinAlgError:
        if check_errors:
            raise
    info = _cholesky_info(A.xp, A.data)
    safe, good = _replace_failing(A, info)
    low = cholesky(safe, upper=upper)
    return cholesky_ex_result(low.where(good.unsqueeze(-1).unsqueeze(-1), math.nan), _wrap(info))


def _cholesky_info(xp, a):
    """Per matrix, the smallest order i whose leading minor a[:i, :i] Cholesky refuses (0 if none):
    bisection, since every larger leading minor then fails too."""
    info = np.zeros(a.shape[:-2], dtype=np.int32)
    for index in np.ndindex(*a.shape[:-2]):
        if _factors(xp, a[index]):
            continue
        low, high = 0, a.shape[-1]  # the minor of order `low` factors, that of order `high` does not
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if _factors(xp, a[index][:mid, :mid]) else (low, mid)
        info[index] = high
    return xp.asarray(info)


def _factors(xp, a):
    try:
        with raising(a):
            xp.linalg.cholesky(a)
        return True
    except np.linalg.LinAlgError:
        return False
