"""1-d pooling (max_pool1d, avg_pool1d, adaptive_avg_pool1d, adaptive_max_pool1d): the 2-d ops of
pooling.py on (..., 1, L), the unit row squeezed away again."""
from __future__ import annotations

from ...errors import ShapeError
from ...tensor import Tensor
from .adaptive_pooling import adaptive_avg_pool2d, adaptive_max_pool2d
from .pooling import avg_pool2d, max_pool2d
from ._zero_size import refuse_empty_dims


def _single(value, op, name):
    """An int or a 1-tuple -> int (validated by the 2-d op)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{op}: {name} must be an int or a 1-tuple, got {value!r}")
        value = value[0]
    return value


def _check_input_1d(op, x, first=None):
    """first: the first dim that must not be empty, by default the channels (only a batch may be empty)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3):
        raise ShapeError(f"{op}: expected a 3-d (N, C, L) or 2-d unbatched (C, L) input, got shape {tuple(x.shape)}; "
                         "give a single signal its channel dim with .unsqueeze(0)")
    if not x.data.size:
        refuse_empty_dims(op, x, x.ndim - 2 if first is None else first)


def _squeeze_rows(result):
    if isinstance(result, tuple):
        return tuple(r.squeeze(-2) for r in result)
    return result.squeeze(-2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """(N, C, L) -> (N, C, Lo) window maxima; with return_indices also each maximum's index in L."""
    _check_input_1d("max_pool1d", input)
    k = _single(kernel_size, "max_pool1d", "kernel_size")
    s = k if stride is None or stride in ((), []) else _single(stride, "max_pool1d", "stride")
    p, d = _single(padding, "max_pool1d", "padding"), _single(dilation, "max_pool1d", "dilation")
    return _squeeze_rows(max_pool2d(input.unsqueeze(-2), (1, k), (1, s), (0, p), (1, d), ceil_mode, return_indices))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):  # noqa: A002
    """(N, C, L) -> (N, C, Lo) window means; count_include_pad counts the zero padding in the divisor."""
    _check_input_1d("avg_pool1d", input)
    k = _single(kernel_size, "avg_pool1d", "kernel_size")
    s = k if stride is None or stride in ((), []) else _single(stride, "avg_pool1d", "stride")
    p = _single(padding, "avg_pool1d", "padding")
    return avg_pool2d(input.unsqueeze(-2), (1, k), (1, s), (0, p), ceil_mode, count_include_pad).squeeze(-2)


def adaptive_avg_pool1d(input, output_size):  # noqa: A002
    """(N, C, L) -> (N, C, output_size) bin means (bins as adaptive_avg_pool2d's)."""
    _check_input_1d("adaptive_avg_pool1d", input, first=input.ndim)  # empty dims: adaptive_avg_pool2d decides
    return adaptive_avg_pool2d(input.unsqueeze(-2), (1, _single(output_size, "adaptive_avg_pool1d", "output_size")))\
        .squeeze(-2)


def adaptive_max_pool1d(input, output_size, return_indices=False):  # noqa: A002
    """(N, C, L) -> (N, C, output_size) bin maxima; with return_indices also each maximum's index in L."""
    _check_input_1d("adaptive_max_pool1d", input, first=1)  # PyTorch lets dim 0 be empty, batched or not
    size = _single(output_size, "adaptive_max_pool1d", "output_size")
    return _squeeze_rows(adaptive_max_pool2d(input.unsqueeze(-2), (1, size), return_indices))
