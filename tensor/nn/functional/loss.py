"""Classification losses: cross_entropy and nll_loss, each one Function with an analytic backward.

Layout follows PyTorch: logits (N, C, d1, ...) with the classes on dim 1, class-index targets
(N, d1, ...), or unbatched logits (C,) with a 0-d target. Cross-entropy never builds the
log-softmax as a graph: forward keeps the softmax, backward is (softmax - onehot) scaled.
On CUDA, (N, C) and (C,) logits with class-index targets take FusedCrossEntropy: one kernel each
way (tensor/kernels/cross_entropy.py), which keeps per-row statistics instead of the softmax.
"""
from __future__ import annotations

import math

import numpy as np

from ... import kernels
from ...autograd import Function
from ...errors import DTypeError, ShapeError
from ...graph_backward import saved_in_graph
from ...ops.index import IndexGradient
from ...tensor import Tensor, _wrap
from ._reduction import check_reduction, grad_of_reduction, legacy_reduction

# ----------------------------------------------------------------------------------- helpers


def _class_index(xp, target):
    """Fancy index picking element [n, target[n, ...], ...] of a (N, C, *d) array."""
    lead = [xp.arange(n).reshape((-1,) + (1,) * (target.ndim - 1 - i)) for i, n in enumerate(target.shape)]
    return (lead[0], target, *lead[1:])


def _class_axis(array, ndim):
    """array (N, *d) -> (N, 1, *d), to broadcast per-element values across the class dim (0-d passes)."""
    if ndim <= 1 or getattr(array, "ndim", 0) == 0:
        return array
    return array.reshape(array.shape[:1] + (1,) + array.shape[1:])


def _element_weights(xp, target, weight, ignore_index, dtype, may_ignore):
    """(safe target, valid mask, per-element weight): weight[target] (or 1), 0 where target == ignore_index.

    Without a class weight and with no target equal to ignore_index, mask and weights are None:
    every element counts once, which keeps the common case to a few array passes.
    """
    if weight is None and not may_ignore:
        return target, None, None
    valid = target != ignore_index
    safe = xp.where(valid, target, 0)
    weights = valid.astype(dtype)
    if weight is not None:
        weights *= weight[safe]
    return safe, valid, weights


def _reduce_weighted(loss, weights, reduction):
    """mean = sum(loss) / sum(weights), as PyTorch normalises weighted and ignored elements."""
    if reduction == "none":
        return loss, None
    total = loss.sum()
    if reduction == "sum":
        return total, None
    denominator = loss.size if weights is None else weights.sum()
    if not loss.size:  # an empty batch averages to NaN, as PyTorch's 0/0, here without NumPy's warning
        denominator = math.nan  # (tested on the host size: a CuPy weights.sum() would sync the device)
    with np.errstate(divide="ignore", invalid="ignore"):  # every target ignored: 0/0, NaN, silent as in PyTorch
        return total / denominator, denominator


def _per_element_grad(grad, reduction, denominator):
    if reduction != "mean":
        return grad
    with np.errstate(divide="ignore"):  # every target ignored: each element's share is 0 (see _where_valid)
        return grad / denominator


def _times(array, factor):
    return array if factor is None else array * factor


def _where_valid(xp, array, valid):
    """array, with 0 where the target is ignored (even where array is NaN: a mean over no targets)."""
    return array if valid is None else xp.where(valid, array, xp.zeros((), dtype=array.dtype))


# ---------------------------------------------------------------------------- cross-entropy


class CrossEntropy(Function):
    """cross_entropy with class-index targets; label smoothing mixes in the uniform target."""


    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, smoothing, reduction, may_ignore):
        xp = ctx.xp
        ctx.unbatched = logits.ndim == 1
        if ctx.unbatched:
            logits, target = logits[None], target[None]
        classes = logits.shape[1]
        safe, valid, weights = _element_weights(xp, target, weight, ignore_index, logits.dtype, may_ignore)
        index = _class_index(xp, safe)
        shifted = logits - logits.max(axis=1, keepdims=True)
        picked = shifted[index]
        smooth = _smoothing_term(shifted, weight, logits.ndim) if smoothing else None
        probs = xp.exp(shifted, out=shifted)  # shifted is ours: reuse its memory
        sums = probs.sum(axis=1)
        log_sums = xp.log(sums)
        loss = _times(log_sums - picked, weights)
        if smoothing:
            total_weight = classes if weight is None else weight.sum()
            loss *= 1 - smoothing
            loss += _times((smoothing / classes) * (log_sums * total_weight - smooth), valid)
        probs /= _class_axis(sums, logits.ndim)
        out, denominator = _reduce_weighted(loss, weights, reduction)
        ctx.save_for_backward(probs)
        ctx.args = (index, valid, weights, weight, smoothing, reduction, denominator)
        return out[0] if ctx.unbatched and reduction == "none" else out

    @staticmethod
    def backward(ctx, grad):
        (probs,) = ctx.saved_tensors
        index, valid, weights, weight, smoothing, reduction, denominator = ctx.args
        if ctx.unbatched and reduction == "none":
            grad = grad[None]
        scale = _where_valid(ctx.xp, _per_element_grad(grad, reduction, denominator), valid)  # 0 where ignored
        hit = _times(scale, weights)  # the one-hot part of the target
        row = hit
        if smoothing:
            classes = probs.shape[1]
            hit = hit * (1 - smoothing)
            spread = scale * (smoothing / classes)  # the uniform part, spread over the classes
            row = hit + spread * (classes if weight is None else weight.sum())
        result = probs * _class_axis(row, probs.ndim)
        result[index] -= hit
        if smoothing:
            per_class = 1 if weight is None else weight.reshape((1, -1) + (1,) * (probs.ndim - 2))
            result -= _class_axis(spread, probs.ndim) * per_class
        return (result[0] if ctx.unbatched else result), None, None, None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .loss_graph import cross_entropy_backward_graph  # it builds on this module's helpers

        return cross_entropy_backward_graph(ctx, grad)


def _smoothing_term(shifted, weight, ndim):
    """sum_c w_c * shifted_c per element: the logit part of the uniform target's cross-entropy."""
    if weight is None:
        return shifted.sum(axis=1)
    return (shifted * weight.reshape((1, -1) + (1,) * (ndim - 2))).sum(axis=1)


class FusedCrossEntropy(Function):
    """CrossEntropy on CUDA for (N, C) or (C,) logits: one kernel forward, one backward."""

    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, smoothing, reduction):
        ctx.unbatched = logits.ndim == 1
        ctx.save_for_backward(logits, target)  # as given (backward_graph needs the input itself)
        if ctx.unbatched:
            logits, target = logits[None], target.reshape(1)
        rows = kernels.cross_entropy_forward(logits, target, weight, ignore_index, smoothing)
        denominator = rows.weight.sum() if reduction == "mean" else None
        if reduction == "none":
            out = rows.loss[0] if ctx.unbatched else rows.loss
        else:
            out = rows.loss.sum() if reduction == "sum" else rows.loss.sum() / denominator
        ctx.args = (weight, rows, ignore_index, smoothing, reduction, denominator)
        return out.astype(logits.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        logits, target = ctx.saved_tensors
        if ctx.unbatched:
            logits, target = logits[None], target.reshape(1)
        weight, rows, ignore_index, smoothing, reduction, denominator = ctx.args
        scale = grad / denominator if reduction == "mean" else grad  # per row ('none') or for all
        grad_logits = kernels.cross_entropy_backward(logits, target, weight, rows, scale, ignore_index, smoothing)
        return (grad_logits[0] if ctx.unbatched else grad_logits), None, None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .loss_graph import fused_cross_entropy_backward_graph

        return fused_cross_entropy_backward_graph(ctx, grad)


class CrossEntropyProbs(Function):
    """cross_entropy with class-probability targets of the logits' shape (soft labels)."""

    @staticmethod
    def forward(ctx, logits, target, weight, smoothing, reduction):
        xp = ctx.xp
        axis = 0 if logits.ndim == 1 else 1
        classes = logits.shape[axis]
        try:
            shifted = logits - logits.max(axis=axis, keepdims=True)
        except ValueError as error:  # the error path: no classes (NumPy has no max of nothing)
            return _no_classes(ctx, logits, target, reduction, axis, error)
        log_probs = shifted
        log_probs -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        coeffs = target * (1 - smoothing) + smoothing / classes if smoothing else target
        per_class = None
        if weight is not None:
            per_class = weight.reshape((-1,) + (1,) * (logits.ndim - axis - 1))
            coeffs = coeffs * per_class
        loss = -(coeffs * log_probs).sum(axis=axis)
        count = loss.size or math.nan  # an empty batch averages to NaN (0/0), here without NumPy's warning
        out = loss if reduction == "none" else (loss.sum() / count if reduction == "mean" else loss.sum())
        ctx.save_for_backward(log_probs, coeffs)
        ctx.args = (axis, per_class, smoothing, reduction, count)
        return out

    @staticmethod
    def backward(ctx, grad):
        log_probs, coeffs = ctx.saved_tensors
        axis, per_class, smoothing, reduction, count = ctx.args
        xp = ctx.xp
        scale = grad_of_reduction(grad, reduction, count)
        scale = xp.expand_dims(scale, axis) if scale.ndim else scale
        need_logits, need_target = ctx.needs_input_grad[:2]
        grad_logits = grad_target = None
        if need_logits:
            grad_logits = (xp.exp(log_probs) * coeffs.sum(axis=axis, keepdims=True) - coeffs) * scale
        if need_target:
            grad_target = -(1 - smoothing) * log_probs * scale
            if per_class is not None:
                grad_target = grad_target * per_class
        return grad_logits, grad_target, None, None, None


def _no_classes(ctx, logits, target, reduction, axis, error):
    """CrossEntropyProbs.forward for C = 0, as PyTorch: each element's loss is an empty sum (0), and the
    mean divides by numel / C = 0 / 0 (NaN); the gradients are empty."""
    if logits.shape[axis]:
        raise error
    loss = ctx.xp.zeros(logits.shape[:axis] + logits.shape[axis + 1:], dtype=logits.dtype)
    ctx.save_for_backward(logits.copy(), target)
    ctx.args = (axis, None, 0.0, reduction, math.nan)
    if reduction == "none":
        return loss
    return loss.sum() / math.nan if reduction == "mean" else loss.sum()


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits (N, C, *d) and class indices (N, *d) or probabilities (N, C, *d).

    'mean' divides by the summed weights of the non-ignored elements (PyTorch's rule); with
    probability targets it divides by the number of elements N * d1 * ...
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    _check_logits(input, weight, "cross_entropy")
    if target.dtype.kind == "f":
        if tuple(target.shape) != tuple(input.shape):
            raise ShapeError(
                f"cross_entropy: a float target holds class probabilities and must have the input's shape "
                f"{tuple(input.shape)}, got {tuple(target.shape)}; class-index targets must be integers (use .long())"
            )
        if ignore_index >= 0:
            raise ValueError("cross_entropy: ignore_index is not supported with probability targets")
        target = target.to(dtype=input.dtype)
        return CrossEntropyProbs.apply(input, target, weight, float(label_smoothing), reduction)
    may_ignore = _check_class_targets(input, target, ignore_index, "cross_entropy")
    if kernels.cross_entropy_fits(input.data, target.data):
        return FusedCrossEntropy.apply(input, target, weight, ignore_index, float(label_smoothing), reduction)
    try:
        return CrossEntropy.apply(input, target, weight, ignore_index, float(label_smoothing), reduction, may_ignore)
    except ValueError as error:  # the error path: NumPy has no max over 0 classes
        return _no_class_cross_entropy(input, reduction, error)


def _no_class_cross_entropy(input, reduction, error):
    """cross_entropy with class indices and C = 0 classes, where every target is ignored (or there are
    none; anything else failed the target check): as PyTorch, each element's loss is 0 and their mean
    0 / 0, NaN. Built from the input so that its gradient is zeros of its shape."""
    class_dim = 0 if input.dim() == 1 else 1
    if input.shape[class_dim]:
        raise error
    per_element = input.sum(class_dim)  # zeros (N, *d), connected to the input
    if reduction == "none":
        return per_element
    total = per_element.sum()
    return total * math.nan if reduction == "mean" else total


# ------------------------------------------------------------------------------------ nll_loss


class NLLLoss(Function):
    """Negative log-likelihood of log-probabilities (N, C, *d) at class indices (N, *d)."""

    @staticmethod
    def forward(ctx, log_probs, target, weight, ignore_index, reduction):
        xp = ctx.xp
        ctx.unbatched = log_probs.ndim == 1
        if ctx.unbatched:
            log_probs, target = log_probs[None], target[None]
        safe, valid, weights = _element_weights(xp, target, weight, ignore_index, log_probs.dtype, True)
        index = _class_index(xp, safe)
        loss = -log_probs[index] * weights
        out, denominator = _reduce_weighted(loss, weights, reduction)
        ctx.save_for_backward(weights)
        ctx.args = (log_probs.shape, log_probs.dtype, index, valid, reduction, denominator)
        return out[0] if ctx.unbatched and reduction == "none" else out

    @staticmethod
    def backward(ctx, grad):
        (weights,) = ctx.saved_tensors
        shape, dtype, index, valid, reduction, denominator = ctx.args
        if ctx.unbatched and reduction == "none":
            grad = grad[None]
        result = ctx.xp.zeros(shape, dtype)
        result[index] = _where_valid(ctx.xp, -_per_element_grad(grad, reduction, denominator), valid) * weights
        return (result[0] if ctx.unbatched else result), None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        (weights,) = saved_in_graph(ctx)  # from the targets and the class weights: constants
        shape, dtype, index, _, reduction, denominator = ctx.args
        if ctx.unbatched and reduction == "none":
            grad = grad.unsqueeze(0)
        if reduction == "mean":
            grad = grad / _wrap(ctx.xp.asarray(denominator, dtype))
        result = IndexGradient.apply(-grad * weights, shape, index, False)  # one element per row: a put
        return (result[0] if ctx.unbatched else result), None, None, None, None


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """-input[n, target[n]] (weighted), for log-probabilities such as log_softmax's output."""
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), "nll_loss")
    _check_logits(input, weight, "nll_loss")
    _check_class_targets(input, target, ignore_index, "nll_loss")
    return NLLLoss.apply(input, target, weight, ignore_index, reduction)


# --------------------------------------------------------------------------------- validation


def _check_logits(input, weight, op):
    if not isinstance(input, Tensor) or input.dtype.kind != "f":
        raise DTypeError(f"{op}: input must be a floating-point Tensor, got {_describe(input)}")
    if input.dim() == 0:
        raise ShapeError(f"{op}: input must have a class dimension, got a 0-d tensor")
    if weight is not None:
        classes = input.shape[0 if input.dim() == 1 else 1]
        if tuple(weight.shape) != (classes,):
            raise ShapeError(f"{op}: weight must have shape ({classes},), one per class, got {tuple(weight.shape)}")


def _check_class_targets(input, target, ignore_index, op) -> bool:
    """Validate class-index targets; True when some may equal ignore_index (always, on cuda)."""
    if target.dtype.kind not in "iu":
        raise DTypeError(f"{op}: class-index targets must be integers (use .long()), got {target.dtype}")
    expected = () if input.dim() == 1 else tuple(input.shape[:1] + input.shape[2:])
    if tuple(target.shape) != expected:
        raise ShapeError(
            f"{op}: input of shape {tuple(input.shape)} needs class-index targets of shape {expected}, "
            f"got {tuple(target.shape)}"
        )
    data = target.data
    if not isinstance(data, np.ndarray):
        return True  # on cuda a check would cost a device sync per step
    if data.size == 0:
        return False
    classes = input.shape[0 if input.dim() == 1 else 1]
    low, high = data.min(), data.max()
    if 0 <= low and high < classes:
        return low <= ignore_index <= high  # the common case, in two reductions
    bad = data[(data != ignore_index) & ((data < 0) | (data >= classes))]
    if bad.size:
        raise IndexError(
            f"{op}: target {int(bad[0])} is out of bounds for {classes} classes (expected 0..{classes - 1}, "
            f"or ignore_index={ignore_index})"
        )
    return True


def _describe(x):
    return f"{type(x).__name__} of dtype {x.dtype}" if hasattr(x, "dtype") else type(x).__name__
