"""embedding (row lookup with a scatter-add backward) and one_hot."""
from __future__ import annotations

from ...autograd import Function
from ...errors import DTypeError, ShapeError
from ...tensor import Tensor, _wrap


class Embedding(Function):
    """weight[indices]; the gradient adds each output row back into its weight row."""

    @staticmethod
    def forward(ctx, indices, weight, padding_idx):
        ctx.args = (indices, weight.shape, padding_idx)
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):
        indices, shape, padding_idx = ctx.args
        xp = ctx.xp
        result = xp.zeros(shape, grad.dtype)
        rows = grad.reshape(-1, shape[1])
        flat = indices.reshape(-1)
        if xp.__name__ == "numpy":
            xp.add.at(result, flat, rows)  # unbuffered: repeated indices add up
        else:
            import cupyx

            cupyx.scatter_add(result, flat, rows)
        if padding_idx is not None:
            result[padding_idx] = 0  # the padding row is never trained
        return None, result, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of weight (num_embeddings, dim) at integer indices (*) -> (*, dim)."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
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
    return Embedding.apply(input, weight, padding_idx)


def _normalize_padding_idx(padding_idx, count):
    if padding_idx is None:
        return None
    if not -count <= padding_idx < count:
        raise ValueError(f"padding_idx {padding_idx} must be within [-{count}, {count - 1}] for {count} embeddings")
    return padding_idx % count


def one_hot(tensor, num_classes=-1):
    """int64 (*, num_classes) with a 1 at each index; num_classes=-1 uses max + 1."""
    if not isinstance(tensor, Tensor) or tensor.dtype.kind not in "iu":
        raise DTypeError(f"one_hot: expects an integer Tensor of class indices, got {getattr(tensor, 'dtype', tensor)}")
    data = tensor.data
    xp = tensor.xp
    if num_classes == -1:
        if data.size == 0:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes")
        num_classes = int(data.max()) + 1
    if data.size and (int(data.min()) < 0 or int(data.max()) >= num_classes):
        raise IndexError(f"one_hot: class values must be in [0, {num_classes - 1}], got {int(data.min())}.."
                         f"{int(data.max())}")
    return _wrap((data[..., None] == xp.arange(num_classes)).astype(xp.int64))
