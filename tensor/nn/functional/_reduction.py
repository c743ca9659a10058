"""The `reduction=` argument every loss takes, on raw arrays (forward) and their gradients (backward)."""
from __future__ import annotations

import math
import warnings

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction, op, allowed=REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}")
    return reduction


def legacy_reduction(size_average, reduce, reduction):
    """Map PyTorch's deprecated size_average/reduce flags onto `reduction` (so old scripts still port)."""
    if size_average is None and reduce is None:
        return reduction
    warnings.warn("size_average and reduce are deprecated; use reduction='mean'|'sum'|'none'", stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def reduce_elementwise(xp, loss, reduction):
    """Sum or average an elementwise loss array (reduction 'none' returns it as is)."""
    if reduction == "none":
        return loss
    total = loss.sum()
    return total / (loss.size or math.nan) if reduction == "mean" else total  # see grad_of_reduction


def grad_of_reduction(grad, reduction, count):
    """The upstream gradient as seen by each element: grad / count for 'mean', else grad itself.

    For 'mean'/'sum' grad is 0-d and broadcasts; for 'none' it already has the elementwise shape.
    An empty loss (count 0) averages to NaN, as PyTorch's 0/0, but by dividing by NaN: NumPy would
    warn about 0/0 on every empty batch.
    """
    return grad / (count or math.nan) if reduction == "mean" else grad
