"""Negative log-likelihood losses of a distribution's parameters: poisson_nll_loss and gaussian_nll_loss.

Composed from differentiable Tensor ops, as PyTorch composes them, so input, target and var all get
gradients; only gaussian_nll_loss's variance floor is a Function of its own (see _FloorVariance).
"""
from __future__ import annotations

import math

from ...autograd import Function
from ...errors import ShapeError
from ._reduction import check_reduction, legacy_reduction
from .margin_loss import reduce_loss


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """Poisson NLL of target counts given rate exp(input) (log_input=True) or input (log_input=False).

    exp(input) - target * input, or input - target * log(input + eps); full=True adds the Stirling
    approximation of log(target!) where target > 1. Any shapes that broadcast.
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "poisson_nll_loss")
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        # log(target!) ~ t log t - t + 0.5 log(2 pi t), 0 for t <= 1; clamping first keeps log away from t <= 0
        counts = target.clamp(min=1)
        stirling = counts * counts.log() - counts + 0.5 * (2 * math.pi * counts).log()
        loss = loss + stirling.masked_fill(target <= 1, 0.0)
    return reduce_loss(loss, reduction)


class _FloorVariance(Function):
    """max(var, eps) whose gradient passes straight through, as PyTorch clamps var under no_grad."""

    @staticmethod
    def forward(ctx, var, eps):
        return ctx.xp.maximum(var, eps)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def _variance_shape(input, var):
    """var as PyTorch broadcasts it: input's shape, input's shape less the last dim, or one mismatched dim of 1."""
    in_shape, var_shape = tuple(input.shape), tuple(var.shape)
    if var_shape == in_shape:
        return var
    if var_shape == in_shape[:-1]:
        return var.unsqueeze(-1)  # one variance per sample, shared by its last dim
    if len(var_shape) == len(in_shape) and sum(v for i, v in zip(in_shape, var_shape) if i != v) == 1:
        return var
    raise ShapeError(f"gaussian_nll_loss: var shape {var_shape} does not fit input shape {in_shape}; give var the "
                     f"input's shape, {in_shape[:-1]}, or the input's shape with one dim set to 1")


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """0.5 (log max(var, eps) + (input - target)^2 / max(var, eps)) for predicted means and variances.

    var: a number, or a tensor of input's shape, of input's shape less its last dim, or with one dim of 1.
    full=True adds the constant 0.5 log(2 pi).
    """
    check_reduction(reduction, "gaussian_nll_loss")
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError(f"gaussian_nll_loss: var must be non-negative, got {var}")
        var = input.new_full(tuple(input.shape), float(var))
    else:
        if bool((var.data < 0).any()):
            raise ValueError("gaussian_nll_loss: var has negative entries; pass variances (>= 0), e.g. softplus "
                             "of a raw output")
        var = _variance_shape(input, var)
    var = _FloorVariance.apply(var, eps)
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce_loss(loss, reduction)
