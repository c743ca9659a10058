"""More in-place ops: masked_fill_, the unary abs_ exp_ log_ sqrt_ relu_ sigmoid_ tanh_, and the random
fills uniform_ and normal_.

They reuse inplace.py's machinery: with a graph to record, the out-of-place op runs through
apply_tracked (so saved tensors stay intact and views stay consistent); without one, the result is
written straight into the tensor's array and the version counter moves.
"""
from __future__ import annotations

from .. import random
from ..autograd import no_grad
from ..errors import DTypeError
from ..tensor import Tensor, _wrap
from . import activation, compare, unary
from .inplace import _check_cast, apply_tracked, needs_graph


def _write(self, result, name):
    """Store a raw result array in self's memory (the no-graph path), refusing a lossy cast."""
    if result.dtype != self.dtype:
        _check_cast(result.dtype, self.dtype, name)
    self.data[...] = result
    self._bump_version()
    return self


def _unary_inplace(self, op, name):
    if needs_graph(self):
        return apply_tracked(self, op, name=name)
    with no_grad():
        return _write(self, op(self.detach()).data, name)


def abs_(self):
    return _unary_inplace(self, unary.abs, "abs_")


def exp_(self):
    return _unary_inplace(self, unary.exp, "exp_")


def log_(self):
    return _unary_inplace(self, unary.log, "log_")


def sqrt_(self):
    return _unary_inplace(self, unary.sqrt, "sqrt_")


def tanh_(self):
    return _unary_inplace(self, unary.tanh, "tanh_")


def sigmoid_(self):
    return _unary_inplace(self, activation.sigmoid, "sigmoid_")


def relu_(self):
    return _unary_inplace(self, activation.relu, "relu_")


def masked_fill_(self, mask, value):
    """Write `value` (a number or a 0-d tensor) where the bool `mask` (broadcast to self) is True."""
    compare._check_bool("masked_fill_", "mask", mask)
    if needs_graph(self, value):
        return apply_tracked(self, lambda s, v: compare.masked_fill(s, mask, v), value, name="masked_fill_")
    with no_grad():
        return _write(self, compare.masked_fill(self.detach(), mask, value).data, "masked_fill_")


# ----------------------------------------------------------------------------------- random fills
def _random_fill(self, draw, name):
    """Replace self's values by `draw()` (a raw array). Like PyTorch's init functions this runs on a
    leaf that requires grad only under no_grad; on a non-leaf the old values simply get no gradient."""
    if self.dtype.kind != "f":
        raise DTypeError(f"{name}: fills floating-point tensors, got {self.dtype}; use random_/randint for integers")
    if needs_graph(self):  # the new values depend on nothing: the tensor leaves the graph
        return apply_tracked(self, lambda source: _wrap(draw()), name=name)
    return _write(self, draw(), name)


def uniform_(self, from_=0.0, to=1.0, *, generator=None, **kwargs):
    """Fill with U(from, to) draws from the engine's generator for self's device (or `generator`)."""
    from_ = kwargs.pop("from", from_)  # torch's keyword is `from`, a Python keyword
    if kwargs:
        raise TypeError(f"uniform_: unexpected arguments {sorted(kwargs)}; use uniform_(from, to, generator=...)")
    if not from_ <= to:
        raise ValueError(f"uniform_: from ({from_}) must be <= to ({to})")
    return _random_fill(
        self, lambda: random.sample_uniform(self.shape, from_, to, self.dtype, self.device, generator), "uniform_"
    )


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with N(mean, std^2) draws from the engine's generator for self's device (or `generator`)."""
    if isinstance(std, Tensor) or isinstance(mean, Tensor):
        raise TypeError("normal_: mean and std must be numbers; for per-element parameters use "
                        "tensor.randn_like(x) * std + mean")
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _random_fill(
        self, lambda: random.sample_normal(self.shape, mean, std, self.dtype, self.device, generator), "normal_"
    )
