"""The in-place twins x.f_(...) of out-of-place ops, one table for the lot (PyTorch has a twin for
nearly every elementwise op: x.sin_(), x.clamp_min_(0), x.eq_(y), x.addmm_(a, b), ...).

Each runs its op through inplace_math._inplace_of: recorded like the other in-place ops when a graph
needs it, else written into the tensor's memory; a result dtype the tensor cannot hold (an int
tensor's sin_) or a shape beyond the tensor's is refused with the op's name.
"""
from __future__ import annotations

from . import (
    aliases, arithmetic, blas, compare, elementwise, pointwise, reduce, sequence, special, statistics, trig, unary,
)
from .inplace_math import _inplace_of
from .inplace_shape import transpose_

_TWINS = {
    unary: "sign log1p expm1 log2 log10 rsqrt square reciprocal sin cos tan clip floor ceil round trunc erf",
    trig: "asin acos atan sinh cosh asinh acosh atanh arcsin arccos arctan arcsinh arccosh arctanh deg2rad rad2deg "
          "sinc atan2 arctan2 hypot",
    special: "exp2 erfc erfinv lgamma digamma polygamma mvlgamma i0 xlogy ldexp copysign heaviside nextafter",
    elementwise: "fmod frac sgn logit float_power gcd lcm",
    statistics: "renorm",
    arithmetic: "floor_divide remainder true_divide",
    aliases: "multiply subtract divide negative absolute not_equal greater greater_equal less less_equal",
    compare: "eq ne lt le gt ge logical_and logical_or logical_not logical_xor bitwise_and bitwise_or bitwise_xor "
             "bitwise_not",
    pointwise: "clamp_min clamp_max addmm nan_to_num",
    reduce: "cumsum",
    sequence: "cumprod",
    blas: "baddbmm addbmm addmv addr",
}


def _twin(op, name):
    def inplace(self, *args, **kwargs):
        # args go through as operands, so a Tensor among them that requires grad gets its gradient
        return _inplace_of(self, lambda s, *operands: op(s, *operands, **kwargs), name, *args)

    inplace.__name__ = inplace.__qualname__ = name
    inplace.__doc__ = f"In place: self = self.{name[:-1]}(...), as PyTorch's Tensor.{name}."
    return inplace


for _module, _names in _TWINS.items():
    for _name in _names.split():
        globals()[_name + "_"] = _twin(getattr(_module, _name), _name + "_")


def fix(x):
    """torch.fix: trunc's other name."""
    return unary.trunc(x)


fix_ = _twin(unary.trunc, "fix_")
swapaxes_ = swapdims_ = transpose_
del _module, _names, _name
