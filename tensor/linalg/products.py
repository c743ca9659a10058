"""Products: cross (one Function), and matrix_power, multi_dot, vecdot, matmul, diagonal built on
matmul, inv and reductions (their gradients are those ops')."""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..creation import eye
from ..errors import ShapeError
from ..ops import views
from ..ops._util import normalize_dim, promote
from ..ops.linalg import matmul
from ..tensor import Tensor
from ._common import require_matrix
from .solve import inv


class Cross(Function):
    """a x b along `dim`, on operands already broadcast to one shape."""

    @staticmethod
    def forward(ctx, a, b, dim):
        ctx.save_for_backward(a, b)
        ctx.dim = dim
        return ctx.xp.cross(a, b, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad[:2]
        xp, dim = ctx.xp, ctx.dim
        # <g, a x b> = <a, b x g> = <b, g x a>
        return (xp.cross(b, grad, axis=dim) if need_a else None), (xp.cross(grad, a, axis=dim) if need_b else None), None


def cross(input, other, *, dim=-1):  # noqa: A002 - torch's argument name
    """torch.linalg.cross: the cross product of 3-vectors along `dim`; batch dims broadcast."""
    return cross_along("linalg.cross", input, other, dim)


def cross_along(op, a, b, dim):
    for t in (a, b):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected Tensors, got {type(t).__name__}")
    if a.ndim != b.ndim:
        raise ShapeError(f"{op}: input and other must have the same number of dimensions, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a, b = promote(a, b)
    a, b = views.broadcast_tensors(a, b)
    d = normalize_dim(dim, a.ndim, op)
    if a.shape[d] != 3:
        raise ShapeError(f"{op}: dimension {dim} must have length 3, got shapes {tuple(a.shape)} (after broadcasting)")
    return Cross.apply(a, b, d)


def matrix_power(A, n):
    """torch.linalg.matrix_power: A^n for square A (..., m, m) and an int n; n < 0 inverts A first,
    n = 0 gives identity matrices."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"linalg.matrix_power: n must be an int, got {type(n).__name__}")
    require_matrix("linalg.matrix_power", A, square=True)
    if n == 0:
        identity = eye(A.shape[-1], dtype=A.dtype, device=A.device)
        return identity.expand(*A.shape).contiguous()
    base, n = (inv(A), -int(n)) if n < 0 else (A, int(n))
    result = None
    while n:  # square-and-multiply: about log2(n) products
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return result


def multi_dot(tensors):
    """torch.linalg.multi_dot: the product of a list of matrices; the first may be a row vector (1-D) and
    the last a column vector (1-D), those dims dropped from the result. Multiplied left to right."""
    tensors = list(tensors)
    if len(tensors) < 2:
        raise ValueError(f"linalg.multi_dot: expected at least 2 tensors, got {len(tensors)}")
    for i, t in enumerate(tensors):
        allowed = (1, 2) if i in (0, len(tensors) - 1) else (2,)
        if not isinstance(t, Tensor) or t.ndim not in allowed:
            got = f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            where = "first and last tensors must be 1-D or 2-D" if len(allowed) == 2 else "middle tensors must be 2-D"
            raise ShapeError(f"linalg.multi_dot: the {where}; tensor {i} has {got}")
    result = tensors[0]
    for t in tensors[1:]:
        result = matmul(result, t)
    return result


def vecdot(x, y, *, dim=-1):
    """torch.linalg.vecdot: sum(x * y) along `dim` (real tensors), batch dims broadcast."""
    return (x * y).sum(dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """torch.linalg.diagonal: Tensor.diagonal with the last two dims as default."""
    return views.diagonal(A, offset, dim1, dim2)


__all__ = ["cross", "matrix_power", "multi_dot", "vecdot", "matmul", "diagonal"]
