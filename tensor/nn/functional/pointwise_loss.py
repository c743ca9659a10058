"""Elementwise losses: mse, l1, smooth_l1, huber, binary cross-entropy (on probabilities and on
logits) and kl_div. Each is one Function: forward computes the elementwise loss and reduces it;
backward multiplies the analytic derivative by the (per-element) upstream gradient.

Input and target broadcast against each other, as in PyTorch; gradients are summed back to each
operand's shape. Targets get gradients too when they require them.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ...autograd import Function
from ...errors import ShapeError
from ...graph_backward import SavedVjp, derived_in_graph, saved_in_graph
from ...ops._util import promote, sum_to
from ...tensor import _wrap
from ._reduction import check_reduction, grad_of_reduction, legacy_reduction, reduce_elementwise


def _grads(ctx, grad, d_input, d_target, shapes):
    """Scale the local derivatives by grad and fold broadcasting; None where no grad is needed."""
    need_input, need_target = ctx.needs_input_grad[:2]
    grad = grad_of_reduction(grad, ctx.reduction, ctx.count)
    grad_input = sum_to(d_input() * grad, shapes[0]) if need_input else None
    grad_target = sum_to(d_target() * grad, shapes[1]) if need_target else None
    return grad_input, grad_target


def _start(ctx, x, y, reduction):
    ctx.reduction = reduction
    ctx.shapes = (x.shape, y.shape)
    return x - y


def _finish(ctx, xp, loss, reduction):
    ctx.count = loss.size
    return reduce_elementwise(xp, loss, reduction)


class MSELoss(SavedVjp):
    @staticmethod
    def forward(ctx, x, y, reduction):
        diff = _start(ctx, x, y, reduction)
        ctx.save_for_backward(x, y)  # the operands, not diff: backward_graph needs them in the graph
        return _finish(ctx, ctx.xp, diff * diff, reduction)

    @staticmethod
    def vjp(ctx, grad, x, y):
        """The input gradients, on arrays (backward) or on Tensors (backward_graph)."""
        diff = x - y
        return (*_grads(ctx, grad, lambda: 2.0 * diff, lambda: -2.0 * diff, ctx.shapes), None)


class L1Loss(Function):
    @staticmethod
    def forward(ctx, x, y, reduction):
        diff = _start(ctx, x, y, reduction)
        ctx.save_for_backward(diff)
        return _finish(ctx, ctx.xp, ctx.xp.abs(diff), reduction)

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        sign = ctx.xp.sign(diff)
        return (*_grads(ctx, grad, lambda: sign, lambda: -sign, ctx.shapes), None)

    @staticmethod
    def backward_graph(ctx, grad):
        sign = _wrap(ctx.xp.sign(ctx.saved_tensors[0]))  # piecewise constant: no history needed
        return (*_grads(ctx, grad, lambda: sign, lambda: -sign, ctx.shapes), None)


class SmoothL1Loss(Function):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; huber is beta * smooth_l1 with beta=delta."""

    @staticmethod
    def forward(ctx, x, y, reduction, beta, scale):
        xp = ctx.xp
        diff = _start(ctx, x, y, reduction)
        size = xp.abs(diff)
        quadratic = size < beta
        loss = xp.where(quadratic, (0.5 / beta) * diff * diff if beta else 0.0, size - 0.5 * beta) * scale
        ctx.save_for_backward(diff)
        ctx.beta, ctx.scale = beta, scale
        return _finish(ctx, xp, loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        xp = ctx.xp
        beta = ctx.beta
        local = (xp.clip(diff, -beta, beta) / beta if beta else xp.sign(diff)) * ctx.scale
        return (*_grads(ctx, grad, lambda: local, lambda: -local, ctx.shapes), None, None, None)

    @staticmethod
    def backward_graph(ctx, grad):
        (diff_array,) = ctx.saved_tensors
        beta = ctx.beta
        if beta:
            diff = derived_in_graph(ctx, diff_array, (0, 1), Difference, shapes=ctx.shapes)
            local = diff.clamp(-beta, beta) * (ctx.scale / beta)
        else:
            local = _wrap(ctx.xp.sign(diff_array) * ctx.scale)
        return (*_grads(ctx, grad, lambda: local, lambda: -local, ctx.shapes), None, None, None)


class BinaryCrossEntropy(Function):
    """-w [t log x + (1 - t) log(1 - x)], each log clamped at -100 so x = 0 or 1 stays finite."""

    @staticmethod
    def forward(ctx, x, t, weight, reduction):
        xp = ctx.xp
        _start(ctx, x, t, reduction)
        with np.errstate(divide="ignore"):  # log(0) = -inf is expected here and clamped (cupy never warns)
            log_x = xp.maximum(xp.log(x), -100.0)
            log_1mx = xp.maximum(xp.log1p(-x), -100.0)
        loss = -(t * log_x + (1 - t) * log_1mx)
        if weight is not None:
            loss *= weight
        ctx.save_for_backward(x, t, weight)
        ctx.logs = (log_x, log_1mx)
        return _finish(ctx, xp, loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        x, t, weight = ctx.saved_tensors
        xp = ctx.xp
        w = 1.0 if weight is None else weight
        log_x, log_1mx = ctx.logs

        def d_input():  # PyTorch's formula, its 1e-12 floor keeps x = 0 or 1 finite
            return w * (x - t) / xp.maximum((1 - x) * x, 1e-12)

        return (*_grads(ctx, grad, d_input, lambda: w * (log_1mx - log_x), ctx.shapes), None, None)

    @staticmethod
    def backward_graph(ctx, grad):
        from ...ops.compare import maximum

        x, t, weight = saved_in_graph(ctx)
        w = 1.0 if weight is None else weight
        log_x, log_1mx = maximum(x.log(), -100.0), maximum((-x).log1p(), -100.0)
        return (*_grads(ctx, grad, lambda: w * (x - t) / maximum((1 - x) * x, 1e-12),
                        lambda: w * (log_1mx - log_x), ctx.shapes), None, None)


class BinaryCrossEntropyWithLogits(Function):
    """BCE on sigmoid(x) without forming it: log sigmoid(x) = -softplus(-x), never overflowing."""

    @staticmethod
    def forward(ctx, x, t, weight, pos_weight, reduction):
        xp = ctx.xp
        _start(ctx, x, t, reduction)
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)  # softplus(-x) = -log sigmoid(x)
        log_weight = 1.0 if pos_weight is None else (pos_weight - 1) * t + 1
        loss = (1 - t) * x + log_weight * softplus_neg
        if weight is not None:
            loss *= weight
        ctx.save_for_backward(x, t, weight, pos_weight)
        ctx.softplus_neg = softplus_neg
        return _finish(ctx, xp, loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        x, t, weight, pos_weight = ctx.saved_tensors
        xp = ctx.xp
        w = 1.0 if weight is None else weight
        softplus_neg = ctx.softplus_neg

        def d_input():
            sigmoid = xp.exp(-softplus_neg)
            if pos_weight is None:
                return w * (sigmoid - t)
            return w * (sigmoid * ((pos_weight - 1) * t + 1) - pos_weight * t)

        def d_target():
            pw = 1.0 if pos_weight is None else pos_weight
            return w * ((pw - 1) * softplus_neg - x)

        return (*_grads(ctx, grad, d_input, d_target, ctx.shapes), None, None, None)

    @staticmethod
    def backward_graph(ctx, grad):
        x, t, weight, pos_weight = saved_in_graph(ctx)
        w = 1.0 if weight is None else weight
        softplus_neg = (-x).softplus()
        sigmoid = x.sigmoid()
        if pos_weight is None:
            d_input = w * (sigmoid - t)
        else:
            d_input = w * (sigmoid * ((pos_weight - 1) * t + 1) - pos_weight * t)
        pw = 1.0 if pos_weight is None else pos_weight
        return (*_grads(ctx, grad, lambda: d_input, lambda: w * ((pw - 1) * softplus_neg - x), ctx.shapes),
                None, None, None)


class KLDiv(Function):
    """target * (log target - input) for log-probability inputs; 0 where target == 0."""

    @staticmethod
    def forward(ctx, x, t, reduction, log_target):
        xp = ctx.xp
        _start(ctx, x, t, reduction)
        if log_target:
            loss = xp.exp(t) * (t - x)
        else:
            positive = t > 0
            loss = xp.where(positive, t * xp.log(xp.where(positive, t, 1)), 0) - t * x
        ctx.save_for_backward(x, t)
        ctx.log_target = log_target
        if reduction == "batchmean":
            ctx.count = x.shape[0] if x.ndim else 1
            ctx.reduction = "mean"
            return loss.sum() / (ctx.count or math.nan)  # an empty batch: NaN, as PyTorch, without a warning
        return _finish(ctx, xp, loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved_tensors
        xp = ctx.xp
        if ctx.log_target:
            return (*_grads(ctx, grad, lambda: -xp.exp(t), lambda: xp.exp(t) * (t - x + 1), ctx.shapes), None, None)
        return (*_grads(ctx, grad, lambda: -t, lambda: xp.log(t) + 1 - x, ctx.shapes), None, None)

    @staticmethod
    def backward_graph(ctx, grad):
        x, t = saved_in_graph(ctx)
        if ctx.log_target:
            return (*_grads(ctx, grad, lambda: -t.exp(), lambda: t.exp() * (t - x + 1), ctx.shapes), None, None)
        return (*_grads(ctx, grad, lambda: -t, lambda: t.log() + 1 - x, ctx.shapes), None, None)


class Difference(Function):
    """The node behind a saved x - y (broadcast): its gradient goes to x, and negated to y."""

    arguments = 2

    @staticmethod
    def backward(ctx, grad):
        need_x, need_y = ctx.needs_input_grad
        shape_x, shape_y = ctx.shapes
        return (sum_to(grad, shape_x) if need_x else None), (sum_to(-grad, shape_y) if need_y else None)


# ------------------------------------------------------------------------------------ functions


def _pair(input, target, op):
    input, target = promote(input, target)
    if tuple(input.shape) != tuple(target.shape):
        try:
            input.xp.broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise ShapeError(f"{op}: input shape {tuple(input.shape)} and target shape {tuple(target.shape)} "
                             "do not broadcast") from None
        warnings.warn(f"{op}: target size {tuple(target.shape)} differs from input size {tuple(input.shape)}; they "
                      "will be broadcast, which is likely not what you want", stacklevel=3)
    return input, target


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "mse_loss")
    input, target = _pair(input, target, "mse_loss")
    return MSELoss.apply(input, target, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "l1_loss")
    input, target = _pair(input, target, "l1_loss")
    return L1Loss.apply(input, target, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    input, target = _pair(input, target, "smooth_l1_loss")
    return SmoothL1Loss.apply(input, target, reduction, float(beta), 1.0)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): delta * smooth_l1 with beta = delta."""
    check_reduction(reduction, "huber_loss")
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    input, target = _pair(input, target, "huber_loss")
    return SmoothL1Loss.apply(input, target, reduction, float(delta), float(delta))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """BCE of probabilities in [0, 1] (use binary_cross_entropy_with_logits on raw scores)."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "binary_cross_entropy")
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(f"binary_cross_entropy: target shape {tuple(target.shape)} must equal input shape "
                         f"{tuple(input.shape)}")
    input, target = promote(input, target)
    data = input.data
    if type(data).__module__ == "numpy" and data.size and (data.min() < 0 or data.max() > 1):
        raise ValueError("binary_cross_entropy: all input values must be between 0 and 1 (apply sigmoid first, "
                         "or use binary_cross_entropy_with_logits)")
    return BinaryCrossEntropy.apply(input, target, weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """BCE of sigmoid(input), computed stably from the logits; pos_weight (C,) weighs positives."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction),
                                "binary_cross_entropy_with_logits")
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(f"binary_cross_entropy_with_logits: target shape {tuple(target.shape)} must equal input "
                         f"shape {tuple(input.shape)}")
    input, target = promote(input, target)
    return BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise, for log-probability inputs; 'batchmean' divides by N."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction, "kl_div", ("none", "mean", "sum", "batchmean"))
    if reduction == "mean":
        warnings.warn("kl_div: reduction='mean' divides by the number of elements, not the batch size; "
                      "'batchmean' gives the true KL divergence", stacklevel=2)
    input, target = _pair(input, target, "kl_div")
    return KLDiv.apply(input, target, reduction, bool(log_target))
