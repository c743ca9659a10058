"""Helpers about dims and shapes: atleast_1d / 2d / 3d, sum_to_size, unravel_index.

atleast_* add size-1 dims the way NumPy places them; sum_to_size undoes broadcasting (a recorded
sum, so it differentiates); unravel_index is PyTorch's floor-divide-and-remainder formula, so it
wraps out-of-range indices the same way.
"""
from __future__ import annotations

import itertools
import operator

import numpy as np

from ..errors import DTypeError, ShapeError
from ..tensor import Size, Tensor, _wrap
from .shape import reshape, sizes_arg


# ------------------------------------------------------------------------------------ atleast_nd
def _atleast(tensors, op, shape_for):
    """One tensor in, one out; several (or one list of them) in, a tuple out."""
    single = len(tensors) == 1 and isinstance(tensors[0], Tensor)
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    out = []
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected tensors, argument {i} is a {type(t).__name__}")
        target = shape_for(tuple(t.shape))
        out.append(t if target == tuple(t.shape) else reshape(t, target))
    return out[0] if single else tuple(out)


def atleast_1d(*tensors):
    """Each tensor with at least one dim (a 0-d one becomes shape (1,)); views."""
    return _atleast(tensors, "atleast_1d", lambda s: s or (1,))


def atleast_2d(*tensors):
    """Each tensor with at least two dims: 0-d -> (1, 1), (n,) -> (1, n)."""
    return _atleast(tensors, "atleast_2d", lambda s: (1,) * (2 - len(s)) + s if len(s) < 2 else s)


def atleast_3d(*tensors):
    """Each tensor with at least three dims: 0-d -> (1, 1, 1), (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    shapes = {0: lambda s: (1, 1, 1), 1: lambda s: (1,) + s + (1,), 2: lambda s: s + (1,)}
    return _atleast(tensors, "atleast_3d", lambda s: shapes[len(s)](s) if len(s) < 3 else s)


# ------------------------------------------------------------------------------------- sum_to_size
def sum_to_size(x, *size):
    """x summed down to `size`, which must broadcast to x's shape (x itself when it is already that size)."""
    size = tuple(sizes_arg(size, "sum_to_size"))
    shape = tuple(x.shape)
    lead = len(shape) - len(size)
    if lead < 0 or any(n not in (1, m) for n, m in zip(size, shape[lead:])):
        raise ShapeError(f"sum_to_size: size {size} does not broadcast to the tensor's shape {shape}; every size "
                         "must be 1 or equal to the tensor's, counting from the last dim")
    if lead == 0 and size == shape:
        return x
    axes = tuple(range(lead)) + tuple(lead + d for d, n in enumerate(size) if n == 1 and shape[lead + d] != 1)
    return reshape(x.sum(axes, keepdim=True), size) if axes else reshape(x, size)


# ----------------------------------------------------------------------------------- unravel_index
def unravel_index(indices, shape):
    """The coordinates in a tensor of `shape` of each flat (row-major) index: a tuple with one int64
    tensor per dim of `shape`, each shaped like `indices`."""
    if not isinstance(indices, Tensor):
        raise TypeError(f"unravel_index: indices must be a Tensor, got {type(indices).__name__}; wrap it with "
                        "tensor.tensor(...)")
    if indices.dtype.kind not in "iu":
        raise DTypeError(f"unravel_index: indices must have an integer dtype, got {indices.dtype}")
    shape = (operator.index(shape),) if not isinstance(shape, (tuple, list, Size)) else tuple(map(operator.index, shape))
    if any(n < 0 for n in shape):
        raise ValueError(f"unravel_index: shape cannot have negative sizes, got {shape}")
    # Row-major strides; floor division and remainder wrap negative and too-large indices (PyTorch).
    strides = list(itertools.accumulate(reversed(shape[1:] + (1,)), operator.mul))[::-1]
    xp, flat = indices.xp, indices.data.astype(np.int64)
    with np.errstate(divide="ignore"):  # a size-0 dim: NumPy's 0 (and a warning) for n // 0 and n % 0
        return tuple(_wrap(xp.floor_divide(flat, stride) % n) for stride, n in zip(strides, shape))
