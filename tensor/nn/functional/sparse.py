"""embedding (row lookup with a scatter-add backward); one_hot is the engine's (tensor.one_hot)."""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...errors import AutogradError, DTypeError, ShapeError
from ...graph_backward import linear_backward_graph
from ...ops.gather import one_hot  # noqa: F401 - re-exported as F.one_hot
from ...runtime import check_deterministic


class Embedding(Function):
    """weight[indices]; the gradient adds each output row back into its weight row (divided by how often
    the row was looked up in this batch, with scale_grad_by_freq)."""

    @staticmethod
    def forward(ctx, indices, weight, padding_idx, scale_grad_by_freq=False):
        ctx.args = (indices, weight.shape, padding_idx, scale_grad_by_freq)
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):
        indices, shape, padding_idx, scale_grad_by_freq = ctx.args
        xp = ctx.xp
        result = xp.zeros(shape, grad.dtype)
        rows = grad.reshape(indices.size, shape[1])  # one row per lookup (not -1: the rows may be empty)
        flat = indices.reshape(-1)
        if xp.__name__ == "numpy":
            _add_rows_sorted(result, flat, rows)
        else:
            import cupyx

            check_deterministic("embedding backward (cupyx.scatter_add)")
            cupyx.scatter_add(result, flat, rows)
        if scale_grad_by_freq:
            result /= xp.maximum(xp.bincount(flat, minlength=shape[0]), 1)[:, None].astype(result.dtype)
        if padding_idx is not None:
            result[padding_idx] = 0  # the padding row is never trained
        return None, result, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        indices, _, padding_idx, scale_grad_by_freq = ctx.args
        if scale_grad_by_freq:
            raise AutogradError("embedding: higher-order gradients with scale_grad_by_freq are not supported")
        if padding_idx is not None:
            # The padding row's gradient is forced to zero, which the lookup (this backward's own
            # derivative) does not know about.
            raise AutogradError("embedding: higher-order gradients with padding_idx are not supported")
        return linear_backward_graph(ctx, grad, (indices, None, False), position=1)


def _add_rows_sorted(result, indices, rows):
    """result[indices[k]] += rows[k] with repeats adding up: sort, sum each run with one reduceat.

    Several times faster than np.add.at, which handles one row at a time.
    """
    if indices.size == 0:
        return
    order = indices.argsort(kind="stable")
    ordered = indices[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    result[ordered[starts]] = np.add.reduceat(rows[order], starts, axis=0)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of weight (num_embeddings, dim) at integer indices (*) -> (*, dim).

    max_norm: first rescale, in place, each looked-up row whose norm_type-norm exceeds max_norm to that
    norm (as torch does, so `weight` changes). scale_grad_by_freq: each row's gradient is divided by the
    number of times input looks it up."""
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported; use sparse=False (dense "
                                  "gradients, trained by Adam / Adagrad / SGD instead of SparseAdam)")
    if input.dtype.kind not in "iu":
        raise DTypeError(f"embedding: indices must be integers (use .long()), got {input.dtype}")
    if weight.dim() != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {tuple(weight.shape)}")
    padding_idx = _normalize_padding_idx(padding_idx, weight.shape[0])
    data = input.data
    if data.size and type(data).__module__ == "numpy":  # on cuda a range check would sync every step
        low, high = int(data.min()), int(data.max())
        if low < 0 or high >= weight.shape[0]:
            bad = low if low < 0 else high
            raise IndexError(f"embedding: index {bad} is out of range for {weight.shape[0]} embeddings")
    if max_norm is not None:
        embedding_renorm_(weight, input, max_norm, norm_type)
    return Embedding.apply(input, weight, padding_idx, bool(scale_grad_by_freq))


def embedding_renorm_(weight, input, max_norm, norm_type=2.0):
    """torch.embedding_renorm_: scale the rows of weight that `input` indexes to norms <= max_norm."""
    from ...autograd import no_grad

    with no_grad():
        rows = input.flatten().unique()
        picked = weight[rows]
        norms = picked.norm(p=norm_type, dim=1, keepdim=True)
        # torch's rule: rows over the limit are multiplied by max_norm / (norm + 1e-7)
        weight[rows] = picked * (max_norm / (norms + 1e-7)).where(norms > max_norm, 1.0)
    return weight


def _normalize_padding_idx(padding_idx, count):
    if padding_idx is None:
        return None
    if not -count <= padding_idx < count:
        raise ValueError(f"padding_idx {padding_idx} must be within [-{count}, {count - 1}] for {count} embeddings")
    return padding_idx % count
