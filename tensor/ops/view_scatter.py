"""The out-of-place scatters into views PyTorch names: slice_scatter, select_scatter, diagonal_scatter.

Each returns a copy of `input` with `src` written into one view of it (a slice along a dim, one index
along a dim, or a diagonal): a clone, then the view's in-place copy_, so the gradient reaches `input`
outside the view and `src` inside it through the engine's in-place rules.
"""
from __future__ import annotations

from ..errors import DeviceError, ShapeError
from ..tensor import Tensor
from ._util import normalize_dim
from .convert import clone
from .views import diagonal, select


def _written(input, view_of, src, op):
    if not isinstance(src, Tensor):
        raise TypeError(f"{op}: src must be a Tensor, got {type(src).__name__}")
    if src.device != input.device:  # copy_ would move src silently
        raise DeviceError(f"{op}: input is on {input.device} but src is on {src.device}; move src with "
                          f".to({str(input.device)!r}) first")
    out = clone(input)
    view = view_of(out)
    if tuple(view.shape) != tuple(src.shape):
        raise ShapeError(f"{op}: src has shape {tuple(src.shape)} but the view it fills has shape "
                         f"{tuple(view.shape)}; make src that shape")
    view.copy_(src)
    return out


def slice_scatter(input, src, dim=0, start=None, end=None, step=1):  # noqa: A002 - torch's names
    """input with input[..., start:end:step, ...] (along dim) replaced by src."""
    d = normalize_dim(dim, input.ndim, "slice_scatter")
    if step is None or step < 1:
        raise ValueError(f"slice_scatter: step must be a positive int, got {step!r}")
    index = (slice(None),) * d + (slice(start, end, step),)
    return _written(input, lambda t: t[index], src, "slice_scatter")


def select_scatter(input, src, dim, index):  # noqa: A002
    """input with input.select(dim, index) replaced by src (which lacks that dim)."""
    return _written(input, lambda t: select(t, dim, index), src, "select_scatter")


def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):  # noqa: A002
    """input with input.diagonal(offset, dim1, dim2) replaced by src."""
    return _written(input, lambda t: diagonal(t, offset, dim1, dim2), src, "diagonal_scatter")
