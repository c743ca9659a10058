"""torch.nn.modules.utils: the helpers that turn an int argument into a tuple (kernel_size=3 -> (3, 3))."""
from __future__ import annotations

import collections.abc
import itertools


def _ntuple(n, name="parse"):
    def parse(x):
        if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
            return tuple(x)
        return tuple(itertools.repeat(x, n))

    parse.__name__ = name
    return parse


_single = _ntuple(1, "_single")
_pair = _ntuple(2, "_pair")
_triple = _ntuple(3, "_triple")
_quadruple = _ntuple(4, "_quadruple")


def _reverse_repeat_tuple(t, n):
    """(a, b) repeated n times each, in reverse order: F.pad's padding from a conv's padding."""
    return tuple(x for x in reversed(t) for _ in range(n))
