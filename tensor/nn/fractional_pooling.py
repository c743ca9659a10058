"""FractionalMaxPool2d / FractionalMaxPool3d: max pooling over pseudo-random, overlapping regions sized
to reach output_size (or output_ratio of the input); see functional/fractional_pooling.py."""
from __future__ import annotations

from .functional.fractional_pooling import fractional_max_pool2d, fractional_max_pool3d
from .module import Module


class _FractionalMaxPoolNd(Module):
    """Exactly one of output_size and output_ratio (each in (0, 1)); `_random_samples` (N, C, n), kept
    as a buffer, fixes the regions, else every call draws new ones from the engine's generator."""

    _n = 2

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices=False, _random_samples=None):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _expand(kernel_size, self._n, name, "kernel_size")
        if any(not isinstance(k, int) or k <= 0 for k in self.kernel_size):
            raise ValueError(f"{name}: kernel_size must be greater than 0, but got {kernel_size!r}")
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)
        if output_size is None and output_ratio is None:
            raise ValueError(f"{name} requires specifying either an output size, or a pooling ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError(f"{name}: only one of output_size and output_ratio may be specified")
        self.output_size = None if output_size is None else _expand(output_size, self._n, name, "output_size")
        self.output_ratio = None if output_ratio is None else _expand(output_ratio, self._n, name, "output_ratio")
        if self.output_ratio is not None and not all(0 < r < 1 for r in self.output_ratio):
            raise ValueError(f"{name}: output_ratio must be between 0 and 1 (got {output_ratio!r})")

    def forward(self, input):  # noqa: A002
        pool = fractional_max_pool2d if self._n == 2 else fractional_max_pool3d
        return pool(input, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
                    _random_samples=self._random_samples)


def _expand(value, n, name, what):
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(values) != n:
        raise ValueError(f"{name}: {what} must be a number or a tuple of {n}, got {value!r}")
    return values


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """(N, C, H, W) or (C, H, W) -> (N, C, oH, oW); with return_indices, also the flat h * W + w of
    each max (what MaxUnpool2d takes)."""

    _n = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """(N, C, T, H, W) or (C, T, H, W) -> (N, C, oT, oH, oW) (and indices with return_indices)."""

    _n = 3
