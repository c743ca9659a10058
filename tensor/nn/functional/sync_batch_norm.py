"""Batch normalisation over the batches of every rank of a data-parallel job: SyncBatchNorm's Function.

A group is any object with `world_size` and `allreduce(array, op="sum")` working in place (dist's
Communicators; the engine knows nothing of Ray). Forward all-reduces one packed float64 array per
step: per channel the sum and the sum of squares, and the element count (a rank's shard may be
smaller, or empty). Backward all-reduces the two per-channel sums the input gradient needs, of g and
of g * xhat. The weight and bias gradients stay local: DDP averages them like every other parameter's.
Every rank must run the same SyncBatchNorm layers in the same order, as with any collective.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from .normalization import _affine, _affine_grads, _update_running_stats


class SyncBatchNorm(Function):
    @staticmethod
    def forward(ctx, x, running_mean, running_var, weight, bias, momentum, eps, group):
        xp, channels = ctx.xp, x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        wide = x if x.dtype.itemsize >= 4 else x.astype(np.float32)  # float16 squares overflow past 256
        stats = xp.empty(2 * channels + 1, dtype=np.float64)
        stats[:channels] = wide.sum(axis=axes, dtype=np.float64)
        stats[channels:-1] = (wide * wide).sum(axis=axes, dtype=np.float64)
        stats[-1] = x.size // channels if channels else 0
        group.allreduce(stats, op="sum")
        count = int(stats[-1])
        if count <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks when training, "
                             f"got {count}; use larger batches, or eval()")
        mean = stats[:channels] / count
        var = xp.maximum(stats[channels:-1] / count - mean * mean, 0.0)  # biased, as normalisation uses
        rstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype).reshape(shape)
        xhat = (x - mean.astype(x.dtype).reshape(shape)) * rstd
        if running_mean is not None:
            _update_running_stats(mean, var, count, running_mean, running_var, momentum)
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.args = (axes, shape, count, group)
        return _affine(xhat, weight, bias, shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, rstd, weight = ctx.saved_tensors
        axes, shape, count, group = ctx.args
        grad_x = None
        if ctx.needs_input_grad[0]:
            gxhat = grad * weight.reshape(shape) if weight is not None else grad
            channels = xhat.shape[1]
            sums = ctx.xp.empty(2 * channels, dtype=np.float64)
            sums[:channels] = gxhat.sum(axis=axes, dtype=np.float64)
            sums[channels:] = (gxhat * xhat).sum(axis=axes, dtype=np.float64)
            group.allreduce(sums, op="sum")
            sums /= count
            mean_g = sums[:channels].astype(xhat.dtype).reshape(shape)
            mean_gx = sums[channels:].astype(xhat.dtype).reshape(shape)
            grad_x = (gxhat - mean_g - xhat * mean_gx) * rstd
        grad_weight, grad_bias = _affine_grads(ctx, grad, xhat, axes, 3)
        return grad_x, None, None, grad_weight, grad_bias, None, None, None


def sync_batch_norm(input, running_mean, running_var, weight, bias, momentum, eps, group):
    """Training-mode batch_norm of (N, C, *) with statistics over all ranks of `group` (see the module doc);
    running stats, when given, are updated in place with the global statistics."""
    raw = [None if t is None else t.data for t in (running_mean, running_var)]
    out = SyncBatchNorm.apply(input, *raw, weight, bias, float(momentum), float(eps), group)
    for t in (running_mean, running_var):
        if t is not None:
            t._bump_version()
    return out
