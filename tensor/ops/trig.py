"""Trigonometric and hyperbolic functions and their inverses, angle conversions, sinc, atan2 and hypot.

As in unary.py, integer and bool tensors become the default float dtype first (torch.asin of an
int tensor is float32), and each gradient formula (`vjp`) is written with operators and
`xp.<function>` only, so that with xp = GRAPH it runs on Tensors and records a graph
(create_graph=True). As in PyTorch, inputs outside a function's domain give NaN and poles give
inf, silently (NumPy's warnings are switched off inside these ops).

special.py builds on the helpers here: _Elementwise, _Binary, binary_operands and GRAPH.
"""
from __future__ import annotations

import functools
import math
import numbers
import types

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import DTypeError
from ..graph_backward import saved_in_graph
from ..tensor import Tensor, _wrap
from . import compare, unary
from ._util import cast, promote, sum_to
from .convert import new_full

_silent = functools.partial(np.errstate, all="ignore")  # NaN and inf out of the domain, as torch gives them


# ------------------------------------------------------------------------------------ base classes
class _Elementwise(Function):
    """y = f(x): subclasses give `f(xp, x)` and `vjp(xp, saved, grad)`, where saved is x, or y when
    `save_output` (the cheaper one for the formula)."""

    save_output = False

    @staticmethod
    def forward(ctx, x):
        with _silent():
            out = ctx.f(ctx.xp, x)
        ctx.save_for_backward(out if ctx.save_output else x)
        return out

    @staticmethod
    def backward(ctx, grad):
        (saved,) = ctx.saved_tensors
        with _silent():
            return ctx.vjp(ctx.xp, saved, grad)

    @staticmethod
    def backward_graph(ctx, grad):
        (saved,) = saved_in_graph(ctx)
        with _silent():
            return ctx.vjp(GRAPH, saved, grad)


class _Binary(Function):
    """z = f(a, b) on two broadcasting arrays of one float dtype (see binary_operands): subclasses
    give `f(xp, a, b)` and `vjp_a`, `vjp_b(xp, grad, a, b, out)`, each input's gradient at the
    broadcast shape (sum_to folds it back); out is saved only where `save_output`."""

    save_output = False

    @staticmethod
    def forward(ctx, a, b):
        with _silent():
            out = ctx.f(ctx.xp, a, b)
        ctx.save_for_backward(a, b, out if ctx.save_output else None)
        return out

    @staticmethod
    def backward(ctx, grad):
        return _binary_grads(ctx, ctx.xp, grad, *ctx.saved_tensors)

    @staticmethod
    def backward_graph(ctx, grad):
        return _binary_grads(ctx, GRAPH, grad, *saved_in_graph(ctx))


def _binary_grads(ctx, xp, grad, a, b, out):
    need_a, need_b = ctx.needs_input_grad
    with _silent():
        ga = sum_to(ctx.vjp_a(xp, grad, a, b, out), a.shape) if need_a else None
        gb = sum_to(ctx.vjp_b(xp, grad, a, b, out), b.shape) if need_b else None
    return ga, gb


def binary_operands(op, a, b, integers="float"):
    """a and b as two Tensors of their PyTorch result dtype on one device (a Python number becomes
    a 0-d tensor beside the other, which it cannot promote). An integer or bool result dtype
    becomes the default float dtype (integers="float": torch.atan2 of int tensors is float32),
    stays ("keep": fmax), or is refused as PyTorch refuses it ("refuse": hypot, logaddexp)."""
    for x in (a, b):
        if not isinstance(x, (Tensor, numbers.Real)):
            raise TypeError(f"{op}: expected Tensors or numbers, got {type(x).__name__} {x!r}; "
                            "make a tensor with tensor.tensor(...)")
    a, b = promote(a, b)
    like = a if isinstance(a, Tensor) else b
    dtype = like.data.dtype
    if dtype.kind != "f" and integers != "keep":
        if integers == "refuse":
            raise DTypeError(f"{op}: not implemented for {dtypes.dtype_name(dtype)} inputs (as in PyTorch); "
                             "convert them with .float() first")
        dtype = dtypes.get_default_dtype()
    return _operand(a, dtype, like), _operand(b, dtype, like)


def _operand(x, dtype, like):
    if isinstance(x, Tensor):
        return cast(x, dtype)
    return new_full(like, (), x, dtype=dtype)


# --------------------------------------------------------------------------------- unary functions
class Asin(_Elementwise):
    f = staticmethod(lambda xp, x: xp.arcsin(x))
    vjp = staticmethod(lambda xp, x, g: g / xp.sqrt(1 - x * x))


class Acos(_Elementwise):
    f = staticmethod(lambda xp, x: xp.arccos(x))
    vjp = staticmethod(lambda xp, x, g: -g / xp.sqrt(1 - x * x))


class Atan(_Elementwise):
    f = staticmethod(lambda xp, x: xp.arctan(x))
    vjp = staticmethod(lambda xp, x, g: g / (x * x + 1))


class Sinh(_Elementwise):
    f = staticmethod(lambda xp, x: xp.sinh(x))
    vjp = staticmethod(lambda xp, x, g: g * xp.cosh(x))


class Cosh(_Elementwise):
    f = staticmethod(lambda xp, x: xp.cosh(x))
    vjp = staticmethod(lambda xp, x, g: g * xp.sinh(x))


class Asinh(_Elementwise):
    f = staticmethod(lambda xp, x: xp.arcsinh(x))
    vjp = staticmethod(lambda xp, x, g: g / xp.sqrt(x * x + 1))


class Acosh(_Elementwise):
    f = staticmethod(lambda xp, x: xp.arccosh(x))
    vjp = staticmethod(lambda xp, x, g: g / xp.sqrt(x * x - 1))


class Atanh(_Elementwise):
    f = staticmethod(lambda xp, x: xp.arctanh(x))
    vjp = staticmethod(lambda xp, x, g: g / (1 - x * x))


def _sinc(xp, x):
    """sin(pi x) / (pi x), 1 at 0, as PyTorch computes it on every device (cupy.sinc differs: exact
    zeros at the integers, and 1 for NaN)."""
    zero = x == 0
    y = xp.where(zero, 1.0, x) * math.pi
    return xp.where(zero, 1.0, xp.sin(y) / y)


def _sinc_vjp(xp, x, g):
    """(cos(pi x) - sinc(x)) / x, 0 at x = 0; the division runs on a safe x so that no NaN is ever
    made (in a recorded graph a NaN in the branch where() drops would still reach the gradient)."""
    zero = x == 0
    safe = xp.where(zero, 1.0, x)
    return g * xp.where(zero, 0.0, (xp.cos(safe * math.pi) - _sinc(xp, safe)) / safe)


class Sinc(_Elementwise):
    """sin(pi x) / (pi x), 1 at 0 (the normalized sinc, as torch.sinc and numpy.sinc)."""

    f = staticmethod(_sinc)
    vjp = staticmethod(_sinc_vjp)


class _Scale(Function):
    """y = x * c (the angle conversions, as PyTorch computes them): the gradient is grad * c."""

    @staticmethod
    def forward(ctx, x):
        return x * ctx.c  # a Python float keeps x's dtype (float16 stays float16)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.c

    backward_graph = backward


class Deg2rad(_Scale):
    c = math.pi / 180


class Rad2deg(_Scale):
    c = 180 / math.pi


def asin(x):
    return Asin.apply(unary._floating(x))


def acos(x):
    return Acos.apply(unary._floating(x))


def atan(x):
    return Atan.apply(unary._floating(x))


def sinh(x):
    return Sinh.apply(unary._floating(x))


def cosh(x):
    return Cosh.apply(unary._floating(x))


def asinh(x):
    return Asinh.apply(unary._floating(x))


def acosh(x):
    return Acosh.apply(unary._floating(x))


def atanh(x):
    return Atanh.apply(unary._floating(x))


def sinc(x):
    return Sinc.apply(unary._floating(x))


def deg2rad(x):
    return Deg2rad.apply(unary._floating(x))


def rad2deg(x):
    return Rad2deg.apply(unary._floating(x))


arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


# -------------------------------------------------------------------------------- binary functions
def _inverse_norm2(xp, a, b):
    """1 / (a^2 + b^2), but 0 where that is 0: atan2 gets no gradient at the origin (PyTorch's rule)."""
    norm2 = a * a + b * b
    return 1 / xp.where(norm2 == 0, math.inf, norm2)


class Atan2(_Binary):
    f = staticmethod(lambda xp, a, b: xp.arctan2(a, b))
    vjp_a = staticmethod(lambda xp, g, a, b, out: g * b * _inverse_norm2(xp, a, b))
    vjp_b = staticmethod(lambda xp, g, a, b, out: g * -a * _inverse_norm2(xp, a, b))


class Hypot(_Binary):
    save_output = True
    f = staticmethod(lambda xp, a, b: xp.hypot(a, b))
    vjp_a = staticmethod(lambda xp, g, a, b, out: g * a / out)  # NaN at (0, 0), as in PyTorch
    vjp_b = staticmethod(lambda xp, g, a, b, out: g * b / out)


def atan2(x, other):
    """The angle of the point (other, x) in (-pi, pi]: atan(x / other) in the right quadrant."""
    return Atan2.apply(*binary_operands("atan2", x, other))


arctan2 = atan2


def hypot(x, other):
    """sqrt(x^2 + other^2) without overflow; floating-point inputs only, as in PyTorch."""
    return Hypot.apply(*binary_operands("hypot", x, other, integers="refuse"))


def _constant_zeros_like(t):
    return _wrap(t.xp.zeros_like(t.data))


# The `xp` that the vjp formulas here and in special.py get in a backward_graph: the same names, on Tensors.
GRAPH = types.SimpleNamespace(**{
    **vars(unary.GRAPH_MATH), "sqrt": unary.sqrt, "log": unary.log, "cosh": cosh, "sinh": sinh, "sinc": sinc,
    "where": compare.where, "isnan": compare.isnan, "zeros_like": _constant_zeros_like,
})
