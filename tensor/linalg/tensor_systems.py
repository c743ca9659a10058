"""tensorinv and tensorsolve: inv and solve on tensors reshaped into one square matrix.

Compositions of reshape / movedim with inv and solve, so the gradients are theirs.
"""
from __future__ import annotations

import math
import operator

from ..errors import ShapeError
from ._common import require_float
from .solve import inv, solve


def tensorinv(A, ind=2):
    """torch.linalg.tensorinv: the tensor X (shape A.shape[ind:] + A.shape[:ind]) with
    tensordot(X, A, ind) the identity, for prod(A.shape[:ind]) == prod(A.shape[ind:])."""
    op = "linalg.tensorinv"
    ind = operator.index(ind)
    require_float(op, A)
    if not 0 < ind <= A.ndim:
        raise ValueError(f"{op}: ind must be between 1 and A.ndim ({A.ndim}), got {ind}")
    rows, cols = tuple(A.shape[:ind]), tuple(A.shape[ind:])
    if math.prod(rows) != math.prod(cols):
        raise ShapeError(f"{op}: the product of A's first {ind} dims {rows} ({math.prod(rows)}) must equal that of "
                         f"the rest {cols} ({math.prod(cols)}) to form a square matrix; choose another ind")
    return inv(A.reshape(math.prod(rows), math.prod(cols))).reshape(*cols, *rows)


def tensorsolve(A, B, dims=None):
    """torch.linalg.tensorsolve: X (shape A.shape[B.ndim:]) with tensordot(A, X, X.ndim) == B; A's `dims`
    are first moved to its end. Needs A.shape[:B.ndim] == B.shape and prod(B.shape) == prod(X.shape)."""
    op = "linalg.tensorsolve"
    require_float(op, A, B)
    if dims is not None:
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        A = A.movedim(dims, tuple(range(A.ndim - len(dims), A.ndim)))
    lead, rest = tuple(A.shape[:B.ndim]), tuple(A.shape[B.ndim:])
    if lead != tuple(B.shape):
        raise ShapeError(f"{op}: A's leading dims {lead} (shape {tuple(A.shape)}) must equal B's shape "
                         f"{tuple(B.shape)}")
    if math.prod(lead) != math.prod(rest):
        raise ShapeError(f"{op}: A {tuple(A.shape)} does not form a square system: prod{lead} = {math.prod(lead)} "
                         f"equations but prod{rest} = {math.prod(rest)} unknowns")
    return solve(A.reshape(math.prod(lead), math.prod(rest)), B.reshape(-1)).reshape(*rest)
