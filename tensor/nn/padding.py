"""Padding layers: ZeroPad, ConstantPad, ReflectionPad, ReplicationPad and CircularPad in 1, 2 and 3
dims, thin Modules over F.pad with PyTorch's arguments and reprs (no parameters).

`padding` is an int (the same on every side) or a tuple in F.pad's order: (left, right) for 1-d,
(left, right, top, bottom) for 2-d, then (front, back) for 3-d.
"""
from __future__ import annotations

from . import functional as F
from .module import Module


def _expand_padding(padding, dims, layer):
    """int -> 2 * dims copies; a tuple must hold exactly 2 * dims ints."""
    if isinstance(padding, int):
        return (padding,) * (2 * dims)
    padding = tuple(padding)
    if len(padding) != 2 * dims or not all(isinstance(p, int) for p in padding):
        raise ValueError(f"{layer}: padding must be an int or a tuple of {2 * dims} ints "
                         f"(before, after per padded dim, last dim first), got {padding!r}")
    return padding


class _Pad(Module):
    """Pads the last `dims` dims of the input with F.pad in `mode`."""

    dims = 0
    mode = "constant"

    def __init__(self, padding, value: float = 0.0):
        super().__init__()
        self.padding = _expand_padding(padding, self.dims, type(self).__name__)
        self.value = value

    def forward(self, input):
        if self.mode != "constant":
            self._check_dims(input)
            return F.pad(input, self.padding, self.mode)
        return F.pad(input, self.padding, "constant", self.value)

    def _check_dims(self, input):
        # PyTorch's reflect/replicate/circular kernels want a batch or an unbatched (C, ...) input
        allowed = (self.dims + 1, self.dims + 2)
        if input.dim() not in allowed:
            raise ValueError(f"{type(self).__name__}: expected a {allowed[0]}-d (unbatched) or {allowed[1]}-d "
                             f"(batched) input, got shape {tuple(input.shape)}")

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPad(_Pad):
    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPad):
    dims = 1


class ConstantPad2d(_ConstantPad):
    dims = 2


class ConstantPad3d(_ConstantPad):
    dims = 3


class _ZeroPad(_Pad):
    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ZeroPad1d(_ZeroPad):
    dims = 1


class ZeroPad2d(_ZeroPad):
    dims = 2


class ZeroPad3d(_ZeroPad):
    dims = 3


class _ModePad(_Pad):
    def __init__(self, padding):
        super().__init__(padding)


class ReflectionPad1d(_ModePad):
    dims, mode = 1, "reflect"


class ReflectionPad2d(_ModePad):
    dims, mode = 2, "reflect"


class ReflectionPad3d(_ModePad):
    dims, mode = 3, "reflect"


class ReplicationPad1d(_ModePad):
    dims, mode = 1, "replicate"


class ReplicationPad2d(_ModePad):
    dims, mode = 2, "replicate"


class ReplicationPad3d(_ModePad):
    dims, mode = 3, "replicate"


class CircularPad1d(_ModePad):
    dims, mode = 1, "circular"


class CircularPad2d(_ModePad):
    dims, mode = 2, "circular"


class CircularPad3d(_ModePad):
    dims, mode = 3, "circular"
