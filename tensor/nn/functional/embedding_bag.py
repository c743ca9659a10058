"""embedding_bag: sums, means or maxima of bags of embedding rows, without the (bags, dim) loop.

Bags of varying length (a flat input cut at `offsets`) are laid out as one padded (bags, longest)
grid of indices plus a mask of the real entries; one embedding lookup then fetches every row and a
masked sum / mean / max over the grid's second dim gives each bag. The grid is built on the host
from the offsets (their lengths decide the shapes anyway), and every step after it is an existing
differentiable op, so the weight's gradient (and per_sample_weights') comes out of autograd.
"""
from __future__ import annotations

import numpy as np

from ...creation import tensor
from ...errors import DTypeError, ShapeError
from ...ops.compare import where
from .sparse import _normalize_padding_idx, embedding

MODES = ("sum", "mean", "max")


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Reduce bags of rows of weight (num_embeddings, dim) -> (bags, dim).

    input (B, L): B bags of L indices (offsets None). input (n,) with offsets (B,): bag b is
    input[offsets[b]:offsets[b + 1]] (with include_last_offset, offsets has B + 1 entries, the last
    n). mode 'sum' | 'mean' | 'max'; per_sample_weights (shaped like input) scale rows, 'sum' only.
    Entries equal to padding_idx are left out (and out of a mean's count); an empty bag gives zeros.
    """
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding_bag: max_norm, scale_grad_by_freq and sparse are not supported")
    if not _check_arguments(input, weight, offsets, mode, per_sample_weights):
        return _empty_input_bags(input, weight, offsets, include_last_offset, per_sample_weights)
    padding_idx = _normalize_padding_idx(padding_idx, weight.shape[0])
    positions, valid = _bag_grid(input, offsets, include_last_offset)
    indices = input.reshape(-1)[_on(positions, input)]
    keep = _on(valid, input)
    if padding_idx is not None:
        keep = keep & (indices != padding_idx)
    rows = embedding(indices, weight)  # (bags, longest, dim)
    if mode == "max":
        masked = where(keep.unsqueeze(-1), rows, float("-inf")).amax(dim=1)
        return where(keep.any(dim=1, keepdim=True), masked, 0.0)  # an empty bag is zeros, not -inf
    scale = keep.to(rows.dtype)
    if per_sample_weights is not None:
        scale = scale * per_sample_weights.reshape(-1)[_on(positions, input)]
    total = (rows * scale.unsqueeze(-1)).sum(dim=1)
    if mode == "sum":
        return total
    count = keep.sum(dim=1, keepdim=True).clamp(min=1)  # an empty bag divides 0 by 1
    return total / count.to(total.dtype)


def _bag_grid(input, offsets, include_last_offset):
    """(positions, valid): host arrays (bags, longest) of flat input positions and which are real entries."""
    if input.dim() == 2:
        bags, length = input.shape
        positions = np.arange(bags * length, dtype=np.int64).reshape(bags, length)
        return positions, np.ones((bags, length), dtype=bool)
    starts = np.asarray(offsets.detach().cpu().numpy(), dtype=np.int64)
    count = input.shape[0]
    bounds = starts if include_last_offset else np.append(starts, count)
    _check_offsets(bounds, count, include_last_offset)
    lengths = np.diff(bounds)
    steps = np.arange(max(int(lengths.max(initial=0)), 1), dtype=np.int64)
    valid = steps[None, :] < lengths[:, None]
    positions = np.where(valid, bounds[:-1, None] + steps[None, :], 0)
    return positions, valid


def _empty_input_bags(input, weight, offsets, include_last_offset, per_sample_weights):
    """Every bag of an empty input is empty, in any mode: zeros (bags, dim), as PyTorch gives them, still
    connected to weight (and per_sample_weights) so that their gradients are zeros of their shapes."""
    if input.dim() == 2:
        bags = input.shape[0]
    else:
        starts = np.asarray(offsets.detach().cpu().numpy(), dtype=np.int64)
        bounds = starts if include_last_offset else np.append(starts, 0)
        _check_offsets(bounds, 0, include_last_offset)
        bags = bounds.size - 1
    none = _on(np.zeros((bags, 0), dtype=np.int64), input)  # (bags, 0): no entry in any bag
    rows = embedding(input.reshape(-1)[none], weight)  # (bags, 0, dim)
    if per_sample_weights is not None:
        rows = rows * per_sample_weights.reshape(-1)[none].unsqueeze(-1)
    return rows.sum(dim=1)


def _on(array, like):
    """A host array as a tensor on `like`'s device."""
    return tensor(array, device=like.device)


def _check_offsets(bounds, count, include_last_offset):
    if bounds.size == 0 or bounds[0] != 0:
        raise ValueError(f"embedding_bag: offsets must start at 0 (the first bag begins the input), got "
                         f"{bounds[:1].tolist() or 'no offsets'}")
    if (np.diff(bounds) < 0).any() or bounds[-1] > count:
        what = "its last entry" if include_last_offset else "every entry"
        raise ValueError(f"embedding_bag: offsets {bounds.tolist()} must not decrease, and {what} must be <= the "
                         f"input's length {count}")


def _check_arguments(input, weight, offsets, mode, per_sample_weights) -> bool:
    """Validate the arguments; return whether the input holds any index."""
    if mode not in MODES:
        raise ValueError(f"embedding_bag: mode must be one of {MODES}, got {mode!r}")
    if input.dtype.kind not in "iu":
        raise DTypeError(f"embedding_bag: input must hold integer indices (use .long()), got {input.dtype}")
    if weight.dim() != 2:
        raise ShapeError(f"embedding_bag: weight must be 2-D (num_embeddings, dim), got shape {tuple(weight.shape)}")
    if input.dim() == 2 and offsets is not None:
        raise ValueError("embedding_bag: offsets must be None for 2-D input (each row is a bag); flatten the input "
                         "to 1-D to cut it at offsets")
    if input.dim() == 1 and (offsets is None or offsets.dim() != 1):
        got = "None" if offsets is None else f"shape {tuple(offsets.shape)}"
        raise ValueError(f"embedding_bag: 1-D input needs 1-D offsets (where each bag starts), got {got}")
    if input.dim() not in (1, 2):
        raise ShapeError(f"embedding_bag: input must be 1-D (with offsets) or 2-D (bags, length), got shape "
                         f"{tuple(input.shape)}")
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(f"embedding_bag: per_sample_weights only work with mode='sum', got "
                                      f"mode={mode!r}")
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise ShapeError(f"embedding_bag: per_sample_weights must have the input's shape {tuple(input.shape)}, "
                             f"got {tuple(per_sample_weights.shape)}")
    if input.numel():
        data = input.detach().cpu().numpy()
        low, high = int(data.min()), int(data.max())
        if low < 0 or high >= weight.shape[0]:
            raise IndexError(f"embedding_bag: index {low if low < 0 else high} is out of range for "
                             f"{weight.shape[0]} embeddings")
        return True
    return False
