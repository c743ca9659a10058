"""PyTorch's alternative names: the NumPy-style spellings (multiply, greater, moveaxis, concatenate...),
the dtype shorthands byte/char/short, and one-liners that only rename an op (ravel, ndimension).

Each is the original function itself where the signatures agree, so it behaves (and differentiates)
exactly like it.
"""
from __future__ import annotations

from .. import dtypes
from ..errors import DTypeError
from . import arithmetic, compare, convert, integrate, join, linalg, shape, unary

multiply = arithmetic.mul
subtract = arithmetic.sub  # subtract(input, other, *, alpha=1)
divide = arithmetic.div  # divide(input, other, *, rounding_mode=None)
negative = arithmetic.neg
absolute = unary.abs
not_equal = compare.ne
greater = compare.gt
greater_equal = compare.ge
less = compare.lt
less_equal = compare.le
moveaxis = shape.movedim
swapdims = shape.transpose
concatenate = join.cat
trapz = integrate.trapezoid
ger = linalg.outer  # torch's older name, still in NoisyNet code: epsilon_out.ger(epsilon_in)


def positive(x):
    """x itself (unary plus); refused for bool tensors, as in PyTorch."""
    if x.dtype.kind == "b":
        raise DTypeError("positive: the `+` operator is not supported on a bool tensor; convert it with .int() first")
    return x


def ravel(x):
    """x as a contiguous 1-D tensor (a view when x is contiguous)."""
    return shape.reshape(x, (-1,))


def ndimension(x):
    """The number of dims (Tensor.dim())."""
    return x.ndim


def byte(x):
    return convert.to(x, dtype=dtypes.uint8)


def char(x):
    return convert.to(x, dtype=dtypes.int8)


def short(x):
    return convert.to(x, dtype=dtypes.int16)
