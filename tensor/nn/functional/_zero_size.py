"""Which empty dims the window ops (pooling, padding, unfold, interpolate) accept, as PyTorch decides.

PyTorch runs these ops on an empty batch, (0, C, ...) -> (0, C, ...), but refuses an input whose
channels or spatial sizes are 0. The callers test `not x.data.size` first (one attribute read),
so a non-empty input never reaches these functions.
"""
from __future__ import annotations

from ...errors import ShapeError


def refuse_empty_dims(op, x, first, what="only the batch dim (0) may be"):
    """Raise ShapeError when the empty tensor x has a 0 in a dim from `first` on.

    first: the first dim that must be non-empty (1 for a batched input, 0 for an unbatched one,
    whose every dim counts)."""
    shape = tuple(x.shape)
    empty = [d for d in range(first, len(shape)) if shape[d] == 0]
    if empty:
        raise ShapeError(f"{op}: input of shape {shape} has size 0 in dim {empty[0]}; {what} empty, as in "
                         "PyTorch: give that dim at least one element, or skip the call for an empty input")


def refuse_empty_channels(op, x, what="channels"):
    """Raise ShapeError when the empty batched tensor x has 0 channels (dim 1)."""
    if x.shape[1] == 0:
        raise ShapeError(f"{op}: input of shape {tuple(x.shape)} has 0 {what} (dim 1); PyTorch refuses an "
                         f"empty dim other than the batch: give it at least one, or skip the call")
