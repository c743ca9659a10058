"""More in-place ops: masked_fill_, the unary abs_ exp_ log_ sqrt_ relu_ sigmoid_ tanh_, and lerp_,
addcmul_, addcdiv_ (weight averages, optimizer updates). The random fills are in random_fills.py.

They reuse inplace.py's machinery: with a graph to record, the out-of-place op runs through
apply_tracked (so saved tensors stay intact and views stay consistent); without one, the result is
written straight into the tensor's array and the version counter moves.
"""
from __future__ import annotations

from ..autograd import no_grad
from ..errors import ShapeError
from . import activation, compare, pointwise, unary
from ._util import number_first
from .inplace import _check_cast, apply_tracked, needs_graph


def _write(self, result, name):
    """Store a raw result array in self's memory (the no-graph path), refusing a lossy cast."""
    if result.dtype != self.dtype:
        _check_cast(result.dtype, self.dtype, name)
    self.data[...] = result
    self._bump_version()
    return self


def _inplace_of(self, op, name, *operands):
    """self = op(self, *operands), in place: PyTorch's x.f_(...) for an out-of-place op f."""
    if needs_graph(self, *operands):
        return apply_tracked(self, op, *operands, name=name)
    with no_grad():
        result = op(self.detach(), *operands).data
    if result.shape != self.data.shape:
        raise ShapeError(f"{name}: result shape {tuple(result.shape)} does not match the tensor's shape "
                         f"{tuple(self.shape)}: the operands may broadcast to the tensor, not beyond it")
    return _write(self, result, name)


def _unary_inplace(self, op, name):
    return _inplace_of(self, op, name)


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


def lerp_(self, end, weight):
    """self += weight * (end - self): e.g. an exponential moving average of weights, ema.lerp_(p, 0.001)."""
    return _inplace_of(self, pointwise.lerp, "lerp_", end, weight)


def addcmul_(self, tensor1, tensor2, *deprecated, value=1):
    if deprecated:  # addcmul_(value, tensor1, tensor2), PyTorch's deprecated order
        tensor1, tensor2, value = number_first("addcmul_", tensor1, (tensor2, *deprecated), "addcmul_(t1, t2, value=v)")
    return _inplace_of(self, lambda s, a, b: pointwise.addcmul(s, a, b, value=value), "addcmul_", tensor1, tensor2)


def addcdiv_(self, tensor1, tensor2, *deprecated, value=1):
    if deprecated:  # addcdiv_(value, tensor1, tensor2), PyTorch's deprecated order
        tensor1, tensor2, value = number_first("addcdiv_", tensor1, (tensor2, *deprecated), "addcdiv_(t1, t2, value=v)")
    return _inplace_of(self, lambda s, a, b: pointwise.addcdiv(s, a, b, value=value), "addcdiv_", tensor1, tensor2)
