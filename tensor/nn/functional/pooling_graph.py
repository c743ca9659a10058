"""max_pool2d's backward as an op of its own, for create_graph=True (MAML's convolutional nets pool).

The backward routes each output's gradient to its window's maximum: linear in the gradient, so its
own derivative gathers from those same positions. max_pool2d keeps its maxima in three layouts
(fused CUDA taps, tiled two-stage arguments, per-window tap numbers); rather than read each, the
gather asks the backward itself where every output goes: routed through it, the output numbers
1..M land on the positions that receive them. That needs windows that never share an input
(stride >= dilated kernel, the usual 2x2 pool); overlapping windows are refused.
"""
from __future__ import annotations

import math

from ...autograd import Function
from ...errors import AutogradError


class MaxPoolGradient(Function):
    """grad (the pooled output's shape) -> the input's gradient, as MaxPool2d.backward routes it."""

    @staticmethod
    def forward(ctx, grad, pool):
        ctx.pool, ctx.out_shape = pool, grad.shape
        return type(pool).backward(pool, grad)[0]

    @staticmethod
    def backward(ctx, gg):
        pool, xp = ctx.pool, ctx.xp
        count = math.prod(ctx.out_shape)
        numbers = xp.arange(1, count + 1, dtype=xp.float64).reshape(ctx.out_shape)  # exact up to 2**53
        owner = type(pool).backward(pool, numbers)[0]  # input-shaped: which output each position feeds, or 0
        fed = owner > 0
        gathered = xp.zeros(count, dtype=gg.dtype)
        gathered[(owner[fed] - 1).astype(xp.int64)] = gg[fed]
        return gathered.reshape(ctx.out_shape), None


def max_pool_backward_graph(ctx, grad):
    if not (ctx.rows.disjoint and ctx.cols.disjoint):
        raise AutogradError(
            "max_pool2d: higher-order gradients need windows that do not overlap (stride >= dilation * "
            f"(kernel_size - 1) + 1; got kernel {(ctx.rows.k, ctx.cols.k)}, stride {(ctx.rows.s, ctx.cols.s)})"
        )
    return MaxPoolGradient.apply(grad, ctx), None, None, None
