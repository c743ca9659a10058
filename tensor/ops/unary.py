"""Elementwise math: exp/log, roots, powers, trig, erf, clamp, rounding (activations live in activation.py).

Ops that produce fractions (exp, sqrt, sin, erf, ...) turn integer and bool tensors into the
default float dtype first, as PyTorch does; abs, sign, square, clamp and the rounding ops keep
integer dtypes. Backward reuses what forward computed (exp, sqrt, tan, tanh save their output).

Gradient masks multiply (`grad * mask`) rather than select: on NumPy `xp.where` over a mask that
changes element by element is several times slower.
"""
from __future__ import annotations

import math
import types

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import DTypeError
from ..graph_backward import SavedVjp, saved_in_graph
from ..tensor import Tensor, _wrap
from ._erf import _erf
from ._util import cast, filled_like, number, sum_to
from .convert import clone

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
# exp() stays finite below these: capping -x there keeps sigmoid silent where its value is subnormal anyway.
_EXP_LIMIT = {np.dtype(np.float16): 11.0, np.dtype(np.float32): 88.0, np.dtype(np.float64): 709.0}


def _floating(x):
    """Integer and bool tensors become the default float dtype (torch.exp of an int tensor is float)."""
    try:
        kind = x.data.dtype.kind
    except AttributeError:
        raise TypeError(f"expected a Tensor, got {type(x).__name__} {x!r}; make one with tensor.tensor(...)") from None
    return x if kind == "f" else x.to(dtype=dtypes.get_default_dtype())


_ONES = {}  # dtype -> a 0-d NumPy one of that dtype


def _sigmoid(xp, x):
    """1 / (1 + e^-x) in five passes, without overflow (and without NumPy's overflow warning)."""
    if xp is np:
        # Arrays of x's dtype rather than Python floats: NumPy resolves a Python scalar operand anew
        # on every call (about 0.5 us, as much as the arithmetic on a small tensor), and the clamp
        # runs twice as fast against a full array (see filled_like). The values are the same, since
        # a Python float operand takes the array's dtype anyway.
        limit = filled_like(x, _EXP_LIMIT[x.dtype])
        one = _ONES.get(x.dtype)
        if one is None:
            one = _ONES[x.dtype] = np.ones((), x.dtype)
    else:
        limit, one = _EXP_LIMIT[x.dtype], 1
    e = -x
    try:
        xp.minimum(e, limit, out=e)
    except TypeError:  # a 0-d x gives a NumPy scalar, which out= refuses: again as a 0-d array
        e = np.asarray(e)
        xp.minimum(e, limit, out=e)
    xp.exp(e, out=e)
    e += one
    return xp.reciprocal(e, out=e)


# ----------------------------------------------------------------------------- plain math functions
class _FromInput(Function):
    """y = f(x), whose gradient needs x: subclasses give `f(xp, x)` and `vjp(xp, x, grad)`.

    vjp is written with operators and `xp.<function>` only, so that with xp = GRAPH_MATH it runs on
    Tensors and records a graph (create_graph=True)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.f(ctx.xp, x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return ctx.vjp(ctx.xp, x, grad)

    @staticmethod
    def backward_graph(ctx, grad):
        (x,) = saved_in_graph(ctx)
        return ctx.vjp(GRAPH_MATH, x, grad)


class _FromOutput(Function):
    """y = f(x), whose gradient is cheapest from y: subclasses give `f(xp, x)` and `vjp(xp, y, grad)`."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.f(ctx.xp, x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return ctx.vjp(ctx.xp, out, grad)

    @staticmethod
    def backward_graph(ctx, grad):
        (out,) = saved_in_graph(ctx)
        return ctx.vjp(GRAPH_MATH, out, grad)


class Exp(_FromOutput):
    f = staticmethod(lambda xp, x: xp.exp(x))
    vjp = staticmethod(lambda xp, y, g: g * y)


class Expm1(_FromOutput):
    f = staticmethod(lambda xp, x: xp.expm1(x))
    vjp = staticmethod(lambda xp, y, g: g * (y + 1))


class Log(_FromInput):
    f = staticmethod(lambda xp, x: xp.log(x))
    vjp = staticmethod(lambda xp, x, g: g / x)


class Log1p(_FromInput):
    f = staticmethod(lambda xp, x: xp.log1p(x))
    vjp = staticmethod(lambda xp, x, g: g / (x + 1))


class Log2(_FromInput):
    f = staticmethod(lambda xp, x: xp.log2(x))
    vjp = staticmethod(lambda xp, x, g: g / (x * _LN2))


class Log10(_FromInput):
    f = staticmethod(lambda xp, x: xp.log10(x))
    vjp = staticmethod(lambda xp, x, g: g / (x * _LN10))


class Sqrt(_FromOutput):
    f = staticmethod(lambda xp, x: xp.sqrt(x))
    vjp = staticmethod(lambda xp, y, g: g / (y * 2))


class Rsqrt(_FromOutput):
    f = staticmethod(lambda xp, x: xp.reciprocal(xp.sqrt(x)))
    vjp = staticmethod(lambda xp, y, g: g * (y * y * y) * -0.5)


class Square(_FromInput):
    f = staticmethod(lambda xp, x: x * x)
    vjp = staticmethod(lambda xp, x, g: g * (x * 2))


class Reciprocal(_FromOutput):
    f = staticmethod(lambda xp, x: xp.reciprocal(x))
    vjp = staticmethod(lambda xp, y, g: -g * (y * y))


class Abs(_FromInput):
    f = staticmethod(lambda xp, x: xp.abs(x))
    vjp = staticmethod(lambda xp, x, g: g * xp.sign(x))  # 0 at x == 0, as in PyTorch


class Sin(_FromInput):
    f = staticmethod(lambda xp, x: xp.sin(x))
    vjp = staticmethod(lambda xp, x, g: g * xp.cos(x))


class Cos(_FromInput):
    f = staticmethod(lambda xp, x: xp.cos(x))
    vjp = staticmethod(lambda xp, x, g: -g * xp.sin(x))


class Tan(_FromOutput):
    f = staticmethod(lambda xp, x: xp.tan(x))
    vjp = staticmethod(lambda xp, y, g: g * (y * y + 1))


class Tanh(_FromOutput):
    f = staticmethod(lambda xp, x: xp.tanh(x))
    vjp = staticmethod(lambda xp, y, g: g * (1 - y * y))


class Erf(_FromInput):
    f = staticmethod(_erf)
    vjp = staticmethod(lambda xp, x, g: g * (xp.exp(-(x * x)) * _TWO_OVER_SQRT_PI))


def exp(x):
    return Exp.apply(_floating(x))


def expm1(x):
    return Expm1.apply(_floating(x))


def log(x):
    return Log.apply(_floating(x))


def log1p(x):
    return Log1p.apply(_floating(x))


def log2(x):
    return Log2.apply(_floating(x))


def log10(x):
    return Log10.apply(_floating(x))


def sqrt(x):
    return Sqrt.apply(_floating(x))


def rsqrt(x):
    return Rsqrt.apply(_floating(x))


def square(x):
    return Square.apply(x)


def reciprocal(x):
    return Reciprocal.apply(_floating(x))


def abs(x):  # noqa: A001 - torch.abs
    return Abs.apply(x)


def sin(x):
    return Sin.apply(_floating(x))


def cos(x):
    return Cos.apply(_floating(x))


def tan(x):
    return Tan.apply(_floating(x))


def tanh(x):
    return Tanh.apply(_floating(x))


def erf(x):
    return Erf.apply(_floating(x))


# -------------------------------------------------------------------------------------------- clamp
class Clamp(SavedVjp):
    """min(max(x, lo), hi); lo and hi are numbers, tensors or None. Gradients follow PyTorch's
    clamp_backward_min_max: x gets it where it was kept, a tensor bound where it was active."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        xp = ctx.xp
        out = x if lo is None else xp.maximum(x, lo)
        out = out if hi is None else xp.minimum(out, hi)
        ctx.save_for_backward(x, lo, hi)
        return out

    @staticmethod
    def vjp(ctx, grad, x, lo, hi):
        """The input gradients, on arrays (backward) or on Tensors (backward_graph)."""
        need_x, need_lo, need_hi = ctx.needs_input_grad
        gx = glo = ghi = None
        if need_x:
            kept = x >= lo if lo is not None else x <= hi
            if lo is not None and hi is not None:
                kept = kept & (x <= hi)
            gx = sum_to(grad * kept, x.shape)
        if need_lo:
            active = x < lo
            if hi is not None:
                active = active & (lo < hi)
            glo = sum_to(grad * active, lo.shape)
        if need_hi:
            active = x > hi
            if lo is not None:
                active = active | (hi < lo)  # crossed bounds: the result is hi everywhere
            ghi = sum_to(grad * active, hi.shape)
        return gx, glo, ghi


def clamp(x, min=None, max=None):  # noqa: A002 - torch's argument names
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given (a number or a tensor)")
    if x.data.dtype.kind == "f" and not isinstance(min, Tensor) and not isinstance(max, Tensor):
        return Clamp.apply(x, number(min), number(max))  # the common case: number bounds keep a float dtype
    bounds = [b for b in (min, max) if b is not None]
    dtype = dtypes.result_type(x, *bounds)  # torch.clamp(int_tensor, min=0.5) is float
    return Clamp.apply(cast(x, dtype), cast(min, dtype), cast(max, dtype))


clip = clamp


# ----------------------------------------------------------------------------------------- rounding
class _PiecewiseConstant(Function):
    """Rounding and sign: PyTorch's gradient is zeros (not None), so x.grad exists after backward."""

    @staticmethod
    def backward(ctx, grad):
        return (ctx.xp.zeros_like(grad),) + (None,) * (len(ctx.needs_input_grad) - 1)

    @staticmethod
    def backward_graph(ctx, grad):
        return (_wrap(ctx.xp.zeros_like(grad.data)),) + (None,) * (len(ctx.needs_input_grad) - 1)


class Sign(_PiecewiseConstant):
    forward = staticmethod(lambda ctx, x: ctx.xp.sign(x))


class Floor(_PiecewiseConstant):
    forward = staticmethod(lambda ctx, x: ctx.xp.floor(x))


class Ceil(_PiecewiseConstant):
    forward = staticmethod(lambda ctx, x: ctx.xp.ceil(x))


class Trunc(_PiecewiseConstant):
    forward = staticmethod(lambda ctx, x: ctx.xp.trunc(x))


class Round(_PiecewiseConstant):
    forward = staticmethod(lambda ctx, x, decimals: ctx.xp.round(x, decimals))  # half to even, like torch


def sign(x):
    if x.data.dtype.kind == "b":
        return clone(x)
    return Sign.apply(x)


def floor(x):
    return Floor.apply(x) if x.data.dtype.kind == "f" else clone(x)  # integers are already whole


def ceil(x):
    return Ceil.apply(x) if x.data.dtype.kind == "f" else clone(x)


def trunc(x):
    return Trunc.apply(x) if x.data.dtype.kind == "f" else clone(x)


def round(x, decimals=0):  # noqa: A001 - torch.round
    if not isinstance(decimals, int):
        raise DTypeError(f"round: decimals must be an int, got {type(decimals).__name__} {decimals!r}")
    return Round.apply(x, decimals) if x.data.dtype.kind == "f" else clone(x)


# The `xp` that the vjp formulas above get in a backward_graph: the same names, on Tensors.
GRAPH_MATH = types.SimpleNamespace(exp=exp, sign=sign, cos=cos, sin=sin)
