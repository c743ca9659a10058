"""MaxUnpool1d / MaxUnpool2d / MaxUnpool3d: put max-pooled values back where max_pool*d(return_indices=True) found
them, zeros elsewhere (PyTorch's arguments and reprs; no parameters)."""
from __future__ import annotations

from .functional import unpool as F
from .module import Module


class _MaxUnpoolNd(Module):
    _spatial = 2
    _function = None

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        op, n = type(self).__name__, self._spatial
        self.kernel_size = F._tuple(kernel_size, n, op, "kernel_size", 1)
        self.stride = F._tuple(kernel_size if stride is None else stride, n, op, "stride", 1)
        self.padding = F._tuple(padding, n, op, "padding", 0)

    def forward(self, input, indices, output_size=None):
        return type(self)._function(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """(N, C, L) + indices from MaxPool1d(return_indices=True) -> (N, C, Lo)."""

    _spatial = 1
    _function = staticmethod(F.max_unpool1d)


class MaxUnpool2d(_MaxUnpoolNd):
    """(N, C, H, W) + indices from MaxPool2d(return_indices=True) -> (N, C, Ho, Wo)."""

    _spatial = 2
    _function = staticmethod(F.max_unpool2d)


class MaxUnpool3d(_MaxUnpoolNd):
    """(N, C, D, H, W) + indices from MaxPool3d(return_indices=True) -> (N, C, Do, Ho, Wo)."""

    _spatial = 3
    _function = staticmethod(F.max_unpool3d)
