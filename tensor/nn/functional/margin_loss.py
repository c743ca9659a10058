"""Margin and embedding losses: margin_ranking, hinge_embedding, cosine_embedding, triplet_margin,
soft_margin, multilabel_soft_margin, multi_margin and multilabel_margin.

Each is composed from differentiable Tensor ops, mostly in the order PyTorch's ATen composes it, so
values and gradients (ties at a hinge included: clamp passes the gradient where x == min, as
PyTorch's clamp_min does) match PyTorch's. Targets of +1 / -1 select the similar / dissimilar term.
multilabel_soft_margin reuses the stable BCE-with-logits Function; multilabel_margin weighs a dense
(C, C) grid of hinges by target counts built on the raw labels, which carry no gradient.
"""
from __future__ import annotations

import numpy as np

from ...creation import arange
from ...errors import DTypeError, ShapeError
from ...ops._util import promote
from ...ops.compare import where
from ...tensor import _wrap
from ._reduction import check_reduction, legacy_reduction
from .distance import pairwise_distance
from .pointwise_loss import binary_cross_entropy_with_logits

_COSINE_EPSILON = 1e-12  # PyTorch's: keeps the cosine finite for a zero vector


def reduce_loss(loss, reduction):
    """Tensor-level reduction: the elementwise (or per-sample) loss, its mean, or its sum."""
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _reduction(size_average, reduce, reduction, op):
    return check_reduction(legacy_reduction(size_average, reduce, reduction), op)


def _shapes(*tensors):
    return ", ".join(str(tuple(t.shape)) for t in tensors)


def _check_broadcast(op, *tensors):
    try:
        np.broadcast_shapes(*(tuple(t.shape) for t in tensors))
    except ValueError:
        raise ShapeError(f"{op}: shapes {_shapes(*tensors)} do not broadcast; give the inputs and target "
                         "matching shapes") from None


def _check_class_target(op, target):
    if target.dtype.kind not in "iu":
        raise DTypeError(f"{op}: target must hold integer class indices, got {target.dtype}; call .long() on it")


# ------------------------------------------------------------------------------ pairwise margins


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -target * (input1 - input2) + margin): target 1 wants input1 ranked higher, -1 lower.

    input1, input2, target: the same number of dims (they broadcast), e.g. (N,) each.
    """
    reduction = _reduction(size_average, reduce, reduction, "margin_ranking_loss")
    if not input1.ndim == input2.ndim == target.ndim:
        raise ShapeError(f"margin_ranking_loss: input1, input2 and target need the same number of dims, got shapes "
                         f"{_shapes(input1, input2, target)}; reshape them to match, e.g. all (N,)")
    _check_broadcast("margin_ranking_loss", input1, input2, target)
    loss = (-target * (input1 - input2) + margin).clamp(min=0)
    return reduce_loss(loss, reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """input where target == 1, max(0, margin - input) where target == -1 (input: distances, any shape).

    Other target values get both terms, as in PyTorch.
    """
    reduction = _reduction(size_average, reduce, reduction, "hinge_embedding_loss")
    _check_broadcast("hinge_embedding_loss", input, target)
    below_margin = (margin - input).clamp(min=0)
    loss = where(target != 1, below_margin, 0.0) + where(target != -1, input, 0.0)
    return reduce_loss(loss, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-target * input)) elementwise, for targets of 1 / -1 (softplus keeps it finite)."""
    reduction = _reduction(size_average, reduce, reduction, "soft_margin_loss")
    _check_broadcast("soft_margin_loss", input, target)
    input, target = promote(input, target)
    return reduce_loss((-target * input).softplus(), reduction)


# ------------------------------------------------------------------------------ embedding losses


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(input1, input2) where target == 1, max(0, cos - margin) where target == -1.

    input1, input2: (N, D) with target (N,), or (D,) with a 0-d target. Other target values give 0.
    """
    reduction = _reduction(size_average, reduce, reduction, "cosine_embedding_loss")
    if target.ndim > 1:
        raise ShapeError(f"cosine_embedding_loss: target must be 0-d or 1-d, got shape {tuple(target.shape)}")
    wanted = target.ndim + 1
    if input1.ndim != wanted or input2.ndim != wanted:
        raise ShapeError(f"cosine_embedding_loss: a {target.ndim}-d target needs {wanted}-d inputs, got shapes "
                         f"{_shapes(input1, input2)}")
    dim = target.ndim  # the feature dim
    dot = (input1 * input2).sum(dim)
    square1 = (input1 * input1).sum(dim) + _COSINE_EPSILON
    square2 = (input2 * input2).sum(dim) + _COSINE_EPSILON
    cos = dot / (square1 * square2).sqrt()
    loss = where(target == 1, 1 - cos, 0.0) + where(target == -1, (cos - margin).clamp(min=0), 0.0)
    return reduce_loss(loss, reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(0, d(a, p) - d(a, n) + margin) with d the p-norm pairwise_distance along the last dim.

    anchor, positive, negative: (N, D) or (D,). swap=True uses min(d(a, n), d(p, n)) as the negative distance.
    """
    reduction = _reduction(size_average, reduce, reduction, "triplet_margin_loss")
    if margin <= 0:
        raise ValueError(f"triplet_margin_loss: margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise ShapeError(f"triplet_margin_loss: anchor, positive and negative need the same number of dims, got "
                         f"shapes {_shapes(anchor, positive, negative)}")
    distance_positive = pairwise_distance(anchor, positive, p, eps)
    distance_negative = pairwise_distance(anchor, negative, p, eps)
    if swap:
        distance_negative = distance_negative.minimum(pairwise_distance(positive, negative, p, eps))
    loss = (margin + distance_positive - distance_negative).clamp(min=0)
    return reduce_loss(loss, reduction)


# ------------------------------------------------------------------------------ multi-class margins


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Per-sample mean over the C classes of the logistic loss: input (N, C) logits, target (N, C) in {0, 1}.

    weight (C,) scales each class. Returns (N,) for reduction='none'.
    """
    reduction = _reduction(size_average, reduce, reduction, "multilabel_soft_margin_loss")
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(f"multilabel_soft_margin_loss: target shape {tuple(target.shape)} must equal input shape "
                         f"{tuple(input.shape)}")
    # -(t log sigmoid(x) + (1 - t) log sigmoid(-x)) is BCE on logits: one stable Function
    per_class = binary_cross_entropy_with_logits(input, target, weight, reduction="none")
    per_sample = per_class.sum(-1) / input.shape[-1]
    return reduce_loss(per_sample, reduction)


def _check_multiclass_input(op, input, target, target_shape):
    if input.ndim not in (1, 2) or input.shape[-1] == 0:  # as PyTorch: the batch N alone may be 0
        raise ShapeError(f"{op}: input must be a non-empty (C,) or (N, C) (the batch N may be 0, the classes C "
                         f"may not), got shape {tuple(input.shape)}")
    _check_class_target(op, target)
    if tuple(target.shape) != target_shape:
        raise ShapeError(f"{op}: target shape {tuple(target.shape)} does not fit input shape {tuple(input.shape)}; "
                         f"expected {target_shape}")


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """sum over i != y of max(0, margin - x[y] + x[i])^p * weight[y], / C: input (N, C) or (C,), target (N,) or ().

    p is 1 or 2; weight (C,) weighs each sample by its target class. Returns (N,) for reduction='none'.
    """
    reduction = _reduction(size_average, reduce, reduction, "multi_margin_loss")
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 are supported, got p={p}")
    num_classes = input.shape[-1] if input.ndim else 0
    _check_multiclass_input("multi_margin_loss", input, target, tuple(input.shape[:-1]))
    if weight is not None and tuple(weight.shape) != (num_classes,):
        raise ShapeError(f"multi_margin_loss: weight must have shape ({num_classes},), one per class, got "
                         f"{tuple(weight.shape)}")
    index = target.unsqueeze(-1)
    target_score = input.gather(-1, index)  # range-checked: a bad class index raises here
    hinge = (margin - target_score + input).clamp(min=0)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * weight[target].unsqueeze(-1)
    is_target_class = index == arange(num_classes, device=input.device)
    per_sample = hinge.masked_fill(is_target_class, 0.0).sum(-1) / num_classes
    return reduce_loss(per_sample, reduction)


def _target_counts(xp, labels, num_classes):
    """(.., C) how often each class appears among a row's targets: the indices before the first negative one."""
    valid = xp.cumprod(labels >= 0, axis=-1).astype(bool)
    if bool(((labels >= num_classes) & valid).any()):
        raise IndexError(f"multilabel_margin_loss: target holds a class index >= {num_classes} (the number of "
                         "classes); use indices in [0, C) and pad with -1")
    matches = (labels[..., :, None] == xp.arange(num_classes)) & valid[..., :, None]  # (.., K, C)
    return matches.sum(-2)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """sum over targets j and non-targets i of max(0, 1 - (x[j] - x[i])), / C.

    input (N, C) or (C,); target the same shape, holding class indices padded with -1 after the last one.
    Returns (N,) for reduction='none'.
    """
    reduction = _reduction(size_average, reduce, reduction, "multilabel_margin_loss")
    _check_multiclass_input("multilabel_margin_loss", input, target, tuple(input.shape))
    num_classes = input.shape[-1]
    counts = _target_counts(target.xp, target.data, num_classes)  # PyTorch counts a repeated target twice
    # pair (j, i) weighs count(j) where i is no target: (.., C_j, C_i)
    pair_weight = _wrap((counts[..., :, None] * (counts == 0)[..., None, :]).astype(input.data.dtype))
    hinge = (1 - input.unsqueeze(-1) + input.unsqueeze(-2)).clamp(min=0)
    per_sample = (hinge * pair_weight).sum((-2, -1)) / num_classes
    return reduce_loss(per_sample, reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean"):
    """max(0, d(a, p) - d(a, n) + margin) for any distance d(x, y) -> per-sample tensor (default:
    pairwise_distance). swap=True uses min(d(a, n), d(p, n)) as the negative distance."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise ShapeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                         f"dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative "
                         f"{negative.ndim}D inputs")
    distance = pairwise_distance if distance_function is None else distance_function
    distance_positive = distance(anchor, positive)
    distance_negative = distance(anchor, negative)
    if swap:
        distance_negative = distance_negative.minimum(distance(positive, negative))
    return reduce_loss((margin + distance_positive - distance_negative).clamp(min=0), reduction)
