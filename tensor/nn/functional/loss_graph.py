"""cross_entropy's backward as Tensor ops, for create_graph=True (MAML's inner step differentiates
through the loss's gradient).

The NumPy path saves softmax(logits), not the logits: `derived_in_graph` puts the probabilities
back in the graph as the output of a Softmax node on the logits. The CUDA path saves the logits,
so there the probabilities are computed again on the graph. The gradient is then CrossEntropy's
backward formula on Tensors: probs * row weight, minus the (smoothed) one-hot target.
"""
from __future__ import annotations

from ...graph_backward import derived_in_graph, saved_in_graph
from ...ops.index import IndexGradient
from ...tensor import _wrap
from .activation import Softmax, softmax
from .loss import _class_axis, _class_index, _element_weights


def cross_entropy_backward_graph(ctx, grad):
    """CrossEntropy (NumPy) on Tensors."""
    (probs,) = ctx.saved_tensors
    index, valid, weights, weight, smoothing, reduction, denominator = ctx.args
    rows = probs[0] if ctx.unbatched else probs
    probs_t = derived_in_graph(ctx, rows, 0, Softmax, _saved=(rows,), dim=1 if rows.ndim > 1 else 0, fused=False)
    if ctx.unbatched:
        probs_t = probs_t.unsqueeze(0)
    grad_logits = _gradient(ctx.xp, probs_t, grad, index, valid, weights, weight, smoothing, reduction, denominator,
                            ctx.unbatched)
    return (grad_logits,) + (None,) * 6


def fused_cross_entropy_backward_graph(ctx, grad):
    """FusedCrossEntropy (CUDA) on Tensors: the logits are saved, the probabilities recomputed."""
    logits = saved_in_graph(ctx)[0]
    target = ctx.saved_tensors[1]
    weight, _, ignore_index, smoothing, reduction, denominator = ctx.args
    rows = logits.unsqueeze(0) if ctx.unbatched else logits
    xp = ctx.xp
    safe, valid, weights = _element_weights(xp, target.reshape(-1), weight, ignore_index, logits.dtype, True)
    grad_logits = _gradient(xp, softmax(rows, 1), grad, _class_index(xp, safe), valid, weights, weight, smoothing,
                            reduction, denominator, ctx.unbatched)
    return (grad_logits,) + (None,) * 5


def _gradient(xp, probs, grad, index, valid, weights, weight, smoothing, reduction, denominator, unbatched):
    """CrossEntropy.backward's formula with probs and grad as Tensors (the other values constants)."""
    if unbatched and reduction == "none":
        grad = grad.unsqueeze(0)
    scale = grad / _wrap(xp.asarray(denominator, probs.dtype)) if reduction == "mean" else grad
    if valid is not None:
        scale = scale * _wrap(valid)
    hit = scale * _wrap(weights) if weights is not None else scale
    row = hit
    classes = probs.shape[1]
    if smoothing:
        hit = hit * (1 - smoothing)
        spread = scale * (smoothing / classes)
        row = hit + spread * (classes if weight is None else float(weight.sum()))
    result = probs * _class_axis(row, probs.ndim)
    target_shape = tuple(index[1].shape)
    result = result - IndexGradient.apply(hit.expand(target_shape), tuple(probs.shape), index, False)
    if smoothing:
        per_class = 1.0 if weight is None else _wrap(weight.reshape((1, -1) + (1,) * (probs.ndim - 2)))
        result = result - _class_axis(spread, probs.ndim) * per_class
    return result[0] if unbatched else result
