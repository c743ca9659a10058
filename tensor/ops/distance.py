"""Pairwise distances: cdist.

p = 2 with more than 25 rows on either side goes through matrix products (|a|^2 + |b|^2 - 2 a.b,
as PyTorch's default compute_mode does): memory in P x R rather than P x R x M, and its backward
is two more products. Other cases use the explicit P x R x M differences, which are exact for
near-equal rows. As in PyTorch, a zero distance passes no gradient.
"""
from __future__ import annotations

import math

from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._util import sum_to
from .arithmetic import sub
from .statistics import norm


def _safe_reciprocal(xp, d):
    """1 / d where d > 0, else 0 (a zero distance has no direction)."""
    positive = d > 0
    return xp.where(positive, 1 / xp.where(positive, d, 1), 0)


class EuclideanDistance(Function):
    @staticmethod
    def forward(ctx, x1, x2):
        xp = ctx.xp
        squares = (x1 * x1).sum(-1)[..., :, None] + (x2 * x2).sum(-1)[..., None, :] - 2 * (x1 @ x2.swapaxes(-1, -2))
        out = xp.sqrt(xp.maximum(squares, 0))
        ctx.save_for_backward(x1, x2, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x1, x2, out = ctx.saved_tensors
        need1, need2 = ctx.needs_input_grad
        weight = grad * _safe_reciprocal(ctx.xp, out)  # dd/dx1 = (x1 - x2) / d
        g1 = g2 = None
        if need1:
            g1 = sum_to(weight.sum(-1)[..., None] * x1 - weight @ x2, x1.shape)
        if need2:
            g2 = sum_to(weight.sum(-2)[..., None] * x2 - weight.swapaxes(-1, -2) @ x1, x2.shape)
        return g1, g2


class MinkowskiDistance(Function):
    """(sum |x1 - x2|^p)^(1/p) for p in [0, inf] (p = 0 counts differing coordinates)."""

    @staticmethod
    def forward(ctx, x1, x2, p):
        xp = ctx.xp
        diff = x1[..., :, None, :] - x2[..., None, :, :]
        size = xp.abs(diff)
        if p == 0:
            out = (size != 0).sum(-1).astype(x1.dtype)
        elif p == math.inf:
            out = size.max(-1) if size.shape[-1] else size.sum(-1)
        else:
            out = (size ** p).sum(-1) ** (1 / p)
        ctx.save_for_backward(x1, x2, out)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx, grad):
        x1, x2, out = ctx.saved_tensors
        xp, p = ctx.xp, ctx.p
        need1, need2 = ctx.needs_input_grad[:2]
        diff = x1[..., :, None, :] - x2[..., None, :, :]
        dist = out[..., None]
        if p == 0:
            local = xp.zeros_like(diff)
        elif p == math.inf:  # the gradient goes to the coordinates that reach the maximum
            local = xp.sign(diff) * (xp.abs(diff) == dist)
        elif p == 1:
            local = xp.sign(diff)
        else:  # d dist / d diff = sign(diff) |diff|^(p-1) / dist^(p-1)
            local = xp.sign(diff) * xp.abs(diff) ** (p - 1) * _safe_reciprocal(xp, dist) ** (p - 1)
        local = local * grad[..., None] * (dist > 0)
        g1 = sum_to(local.sum(-2), x1.shape) if need1 else None
        g2 = sum_to(-local.sum(-3), x2.shape) if need2 else None
        return g1, g2, None


def cdist(x1, x2, p=2.0, compute_mode=None):
    """Distances between each row of x1 (..., P, M) and each row of x2 (..., R, M): (..., P, R), the
    p-norm of their difference. Leading (batch) dims broadcast. compute_mode has
    PyTorch's meaning (see the module docstring)."""
    for name, x in (("x1", x1), ("x2", x2)):
        if not isinstance(x, Tensor):
            raise TypeError(f"cdist: {name} must be a Tensor, got {type(x).__name__}")
        if x.ndim < 2:
            raise ShapeError(f"cdist: {name} must have at least 2 dims (..., rows, features), "
                             f"got shape {tuple(x.shape)}")
    if x1.shape[-1] != x2.shape[-1]:
        raise ShapeError(f"cdist: x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must have the same number of "
                         f"features (last dim): {x1.shape[-1]} != {x2.shape[-1]}")
    p = float(p)
    if not p >= 0:
        raise ValueError(f"cdist: p must be non-negative, got {p}")
    if x1.dtype.kind != "f" or x2.dtype.kind != "f":
        raise DTypeError(f"cdist: needs floating-point tensors, got {x1.dtype} and {x2.dtype}; convert with .float()")
    if x1.dtype != x2.dtype:
        raise DTypeError(f"cdist: x1 and x2 must have the same dtype, got {x1.dtype} and {x2.dtype}")
    if p == 2 and _use_matmul(compute_mode, x1.shape[-2], x2.shape[-2]):
        return EuclideanDistance.apply(x1, x2)
    return MinkowskiDistance.apply(x1, x2, p)


_COMPUTE_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist")


def _use_matmul(compute_mode, rows1, rows2):
    if compute_mode is None or compute_mode == _COMPUTE_MODES[0]:
        return rows1 > 25 or rows2 > 25
    if compute_mode not in _COMPUTE_MODES:
        raise ValueError(f"cdist: compute_mode must be None or one of {_COMPUTE_MODES}, got {compute_mode!r}")
    return compute_mode == _COMPUTE_MODES[1]


def dist(x, other, p=2):
    """The p-norm of x - other (they broadcast), a 0-d tensor: torch.dist."""
    return norm(sub(x, other), p)
