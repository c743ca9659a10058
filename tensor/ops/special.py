"""Exponential-family and special functions (exp2, erfc, erfinv, lgamma, digamma, polygamma, mvlgamma,
i0, i1) and the binary elementwise functions logaddexp, logaddexp2, xlogy, ldexp, copysign, fmax, fmin,
heaviside, nextafter, zeta (Hurwitz).

The raw special functions are in _special.py (NumPy has none of them but i0). The gradient
rules follow PyTorch's derivatives, including its choices at edges: xlogy's for x is log(y), but 0
where x == 0 and y <= 0; fmax/fmin send it all to one side on ties and to the non-NaN side, copysign's other input
and nextafter's get zeros, and heaviside has none (backward raises). Higher derivatives chain through
polygamma (digamma's derivative is polygamma(1, x), polygamma(n)'s is polygamma(n + 1)) and i1 (i0's);
zeta has a gradient for q only (PyTorch has none for x either).
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import AutogradError, DTypeError
from ..graph_backward import saved_in_graph
from ..tensor import Tensor
from . import _special, compare, reduce, unary
from .arithmetic import add, mul, sub
from .trig import GRAPH, _Binary, _Elementwise, _silent, binary_operands
from .unary import _floating

_LN2 = math.log(2.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_HALF_SQRT_PI = math.sqrt(math.pi) / 2.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)


# --------------------------------------------------------------------------------- unary functions
class Exp2(_Elementwise):
    save_output = True
    f = staticmethod(lambda xp, x: xp.exp2(x))
    vjp = staticmethod(lambda xp, y, g: g * y * _LN2)


class Erfc(_Elementwise):
    f = staticmethod(_special.erfc)
    vjp = staticmethod(lambda xp, x, g: -g * (xp.exp(-(x * x)) * _TWO_OVER_SQRT_PI))


class Erfinv(_Elementwise):
    save_output = True
    f = staticmethod(_special.erfinv)
    vjp = staticmethod(lambda xp, y, g: g * (xp.exp(y * y) * _HALF_SQRT_PI))


class Lgamma(_Elementwise):
    f = staticmethod(_special.lgamma)

    @staticmethod
    def vjp(xp, x, g):
        if xp is GRAPH:  # create_graph: digamma as the op, so that its own gradient flows
            return g * digamma(x)
        return g * _special.digamma(xp, x)


class Digamma(_Elementwise):
    f = staticmethod(_special.digamma)

    @staticmethod
    def vjp(xp, x, g):
        if xp is GRAPH:
            return g * polygamma(1, x)
        return g * _special.trigamma(xp, x)


class Entr(_Elementwise):
    """-x log x: 0 at 0, -inf below 0 (PyTorch's torch.special.entr); gradient -(1 + log x)."""
    f = staticmethod(lambda xp, x: xp.where(x < 0, -np.inf, xp.where(x == 0, 0.0, -x * xp.log(x))))
    vjp = staticmethod(lambda xp, x, g: -g * (1 + xp.log(x)))


class LogNdtr(Function):
    """log Phi(x); the gradient phi(x) / Phi(x) is exp(-x^2/2 - log Phi(x)) / sqrt(2 pi), finite in both tails."""

    @staticmethod
    def forward(ctx, x):
        out = _special.log_ndtr(ctx.xp, x)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        with _silent():
            return grad * (ctx.xp.exp(-0.5 * x * x - out) * _INV_SQRT_2PI)

    @staticmethod
    def backward_graph(ctx, grad):
        x, out = saved_in_graph(ctx)
        return grad * (unary.exp(-0.5 * x * x - out) * _INV_SQRT_2PI)


class Polygamma(Function):
    @staticmethod
    def forward(ctx, x, n):
        ctx.n = n
        ctx.save_for_backward(x)
        with _silent():
            return _special.polygamma(ctx.xp, n, x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        with _silent():
            return grad * _special.polygamma(ctx.xp, ctx.n + 1, x), None

    @staticmethod
    def backward_graph(ctx, grad):
        (x,) = saved_in_graph(ctx)
        return grad * polygamma(ctx.n + 1, x), None


class I0(_Elementwise):
    f = staticmethod(_special.i0)

    @staticmethod
    def vjp(xp, x, g):
        if xp is GRAPH:
            return g * i1(x)
        return g * _special.i1(xp, x)


class I1(_Elementwise):
    f = staticmethod(_special.i1)

    @staticmethod
    def vjp(xp, x, g):
        """i1'(x) = i0(x) - i1(x) / x, and 1/2 at 0 (x moves off 0 first, so no NaN reaches a gradient)."""
        if xp is GRAPH:
            at_zero = compare.eq(x, 0)
            safe = compare.where(at_zero, 1.0, x)
            return g * compare.where(at_zero, 0.5, i0(safe) - i1(safe) / safe)
        at_zero = x == 0
        safe = xp.where(at_zero, 1.0, x)
        return g * xp.where(at_zero, 0.5, _special.i0(xp, safe) - _special.i1(xp, safe) / safe)


class Zeta(Function):
    """The Hurwitz zeta function of (x, q); the gradient for q is -x zeta(x + 1, q), none for x."""

    @staticmethod
    def forward(ctx, x, q):
        ctx.save_for_backward(x, q)
        return _special.zeta(ctx.xp, x, q)

    @staticmethod
    def backward(ctx, grad):
        x, q = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            raise AutogradError("zeta: no gradient for x (the exponent), as in PyTorch; detach x or pass a number")
        return None, grad * -x * _special.zeta(ctx.xp, x + 1, q)


def exp2(x):
    return Exp2.apply(_floating(x))


def erfc(x):
    """1 - erf(x), accurate where erf(x) is near 1."""
    return Erfc.apply(_floating(x))


def erfinv(x):
    """The inverse of erf: NaN outside [-1, 1], +-inf at +-1."""
    return Erfinv.apply(_floating(x))


def lgamma(x):
    """log |Gamma(x)|: inf at 0 and the negative integers."""
    return Lgamma.apply(_floating(x))


def digamma(x):
    """d/dx lgamma(x): -inf at 0 (inf at -0.0), NaN at the negative integers, as in PyTorch."""
    return Digamma.apply(_floating(x))


def i0(x):
    """The zeroth-order modified Bessel function of the first kind."""
    return I0.apply(_floating(x))


def i1(x):
    """The first-order modified Bessel function of the first kind."""
    return I1.apply(_floating(x))


def polygamma(n, input):  # noqa: A002 - torch's argument name
    """The n-th derivative of digamma (n = 0 is digamma itself). torch.polygamma(n, x) and x.polygamma(n)
    both reach here: a tensor first and an int second are taken in the method's order."""
    if isinstance(n, Tensor) and not isinstance(input, Tensor):
        n, input = input, n
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"polygamma: n must be an int >= 0, got {n!r}")
    return Polygamma.apply(_floating(input), n)


def mvlgamma(x, p):
    """The multivariate log-gamma function of dimension p: p(p-1)/4 log(pi) + sum over i < p of
    lgamma(x - i/2); every element of x must exceed (p - 1)/2, as in PyTorch."""
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueError(f"mvlgamma: p must be an int >= 1, got {p!r}")
    x = _floating(x)
    if x.numel() and not bool(compare.all(compare.gt(x, (p - 1) / 2)).item()):
        raise ValueError(f"mvlgamma: all elements must be greater than (p-1)/2 = {(p - 1) / 2} for p={p}, got a "
                         f"minimum of {reduce.min(x).item()}")
    total = lgamma(x)
    for i in range(1, p):
        total = add(total, lgamma(sub(x, i / 2)))
    return add(total, p * (p - 1) / 4 * math.log(math.pi))


def entr(x):
    """-x log x elementwise (torch.special.entr): 0 at 0, -inf for negative x."""
    return Entr.apply(_floating(x))


def ndtr(x):
    """The standard normal CDF, erfc(-x / sqrt 2) / 2 (accurate in the lower tail)."""
    return mul(erfc(mul(_floating(x), -_SQRT_HALF)), 0.5)


def log_ndtr(x):
    """log of the standard normal CDF, accurate far into both tails (no -inf for x = -40)."""
    return LogNdtr.apply(_floating(x))


def xlog1py(x, other):
    """x * log1p(other), but 0 where x == 0 and other is not NaN (torch.special.xlog1py)."""
    return Xlog1py.apply(*binary_operands("xlog1py", x, other))


def zeta(x, other):
    """The Hurwitz zeta function, sum over k >= 0 of (other + k)^-x (torch.special.zeta)."""
    return Zeta.apply(*binary_operands("zeta", x, other))


# -------------------------------------------------------------------------------- binary functions
class Logaddexp(_Binary):
    f = staticmethod(lambda xp, a, b: xp.logaddexp(a, b))
    vjp_a = staticmethod(lambda xp, g, a, b, out: g / (xp.exp(b - a) + 1))
    vjp_b = staticmethod(lambda xp, g, a, b, out: g / (xp.exp(a - b) + 1))


class Logaddexp2(_Binary):
    f = staticmethod(lambda xp, a, b: xp.logaddexp2(a, b))
    vjp_a = staticmethod(lambda xp, g, a, b, out: g / (2.0 ** (b - a) + 1))
    vjp_b = staticmethod(lambda xp, g, a, b, out: g / (2.0 ** (a - b) + 1))


def _xlog(xp, a, b, log_b):
    """a * log(b), but 0 where a == 0 and b is not NaN (PyTorch's xlogy)."""
    return xp.where((a == 0) & ~xp.isnan(b), 0.0, log_b)


def _xlogy_vjp_a(xp, g, a, b, out):
    """PyTorch's: xlogy(grad, y), but 0 where x == 0 and y <= 0 (there the value is 0 and log y undefined)."""
    return xp.where((a == 0) & (b <= 0), 0.0, _xlog(xp, g, b, g * xp.log(b)))


class Xlogy(_Binary):
    f = staticmethod(lambda xp, a, b: _xlog(xp, a, b, a * xp.log(b)))
    vjp_a = staticmethod(_xlogy_vjp_a)
    vjp_b = staticmethod(lambda xp, g, a, b, out: g * a / b)


class Xlog1py(_Binary):
    f = staticmethod(lambda xp, a, b: _xlog(xp, a, b, a * xp.log1p(b)))
    # PyTorch's: xlog1py(grad, y), but 0 where x == 0 and y <= -1
    vjp_a = staticmethod(lambda xp, g, a, b, out: xp.where((a == 0) & (b <= -1), 0.0, _xlog(xp, g, b, g * xp.log1p(b))))
    vjp_b = staticmethod(lambda xp, g, a, b, out: g * a / (1 + b))


class Ldexp(_Binary):
    save_output = True
    f = staticmethod(lambda xp, a, b: a * xp.exp2(b))
    vjp_a = staticmethod(lambda xp, g, a, b, out: g * 2.0 ** b)
    vjp_b = staticmethod(lambda xp, g, a, b, out: g * out * _LN2)


class Copysign(_Binary):
    save_output = True
    f = staticmethod(lambda xp, a, b: xp.copysign(a, b))
    # PyTorch's result / x, 0 where x == 0 (so NaN at x = +-inf, as there)
    vjp_a = staticmethod(lambda xp, g, a, b, out: g * xp.where(a == 0, 0.0, out / a))
    vjp_b = staticmethod(lambda xp, g, a, b, out: xp.zeros_like(g))


def _fmax_takes_a(xp, a, b):
    return (a >= b) | xp.isnan(b)


def _fmin_takes_a(xp, a, b):
    return (a <= b) | xp.isnan(b)


class Fmax(_Binary):
    """max ignoring NaN. The gradient goes to a where a >= b or b is NaN, else to b (PyTorch's rule)."""

    f = staticmethod(lambda xp, a, b: xp.fmax(a, b))
    vjp_a = staticmethod(lambda xp, g, a, b, out: xp.where(_fmax_takes_a(xp, a, b), g, 0.0))
    vjp_b = staticmethod(lambda xp, g, a, b, out: xp.where(_fmax_takes_a(xp, a, b), 0.0, g))


class Fmin(_Binary):
    f = staticmethod(lambda xp, a, b: xp.fmin(a, b))
    vjp_a = staticmethod(lambda xp, g, a, b, out: xp.where(_fmin_takes_a(xp, a, b), g, 0.0))
    vjp_b = staticmethod(lambda xp, g, a, b, out: xp.where(_fmin_takes_a(xp, a, b), 0.0, g))


class Nextafter(_Binary):
    """The next representable number after a towards b; PyTorch passes the gradient to a as is."""

    f = staticmethod(lambda xp, a, b: xp.nextafter(a, b))
    vjp_a = staticmethod(lambda xp, g, a, b, out: g)
    vjp_b = staticmethod(lambda xp, g, a, b, out: xp.zeros_like(g))


class Heaviside(Function):
    """values where x == 0, else 1 where x > 0 and 0 below (NaN counts as below, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x, values):
        return ctx.xp.where(x == 0, values, x > 0).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        raise AutogradError("heaviside has no derivative (PyTorch raises here too); detach its inputs, "
                            "or use a smooth step such as (x / temperature).sigmoid()")

    backward_graph = backward


def logaddexp(x, other):
    """log(exp(x) + exp(other)) without overflow; floating-point inputs only, as in PyTorch."""
    return Logaddexp.apply(*binary_operands("logaddexp", x, other, integers="refuse"))


def logaddexp2(x, other):
    """log2(2^x + 2^other) without overflow; floating-point inputs only."""
    return Logaddexp2.apply(*binary_operands("logaddexp2", x, other, integers="refuse"))


def xlogy(x, other):
    """x * log(other), 0 where x == 0 (unless other is NaN)."""
    return Xlogy.apply(*binary_operands("xlogy", x, other))


def ldexp(x, other):
    """x * 2^other."""
    return Ldexp.apply(*binary_operands("ldexp", x, other))


def copysign(x, other):
    """|x| with the sign of other (-0.0 counts as negative)."""
    return Copysign.apply(*binary_operands("copysign", x, other))


def fmax(x, other):
    """Elementwise maximum that ignores NaN (NaN only where both are); integer dtypes are kept."""
    return Fmax.apply(*binary_operands("fmax", x, other, integers="keep"))


def fmin(x, other):
    """Elementwise minimum that ignores NaN (NaN only where both are); integer dtypes are kept."""
    return Fmin.apply(*binary_operands("fmin", x, other, integers="keep"))


def nextafter(x, other):
    """The next floating-point value after x towards other; floating-point inputs only."""
    return Nextafter.apply(*binary_operands("nextafter", x, other, integers="refuse"))


def heaviside(x, values):
    """The step function: 0 for x < 0, values where x == 0, 1 for x > 0; x's dtype (PyTorch wants
    values of that dtype too, and so do we; a number is fine)."""
    if isinstance(x, Tensor) and isinstance(values, Tensor) and x.dtype != values.dtype:
        raise DTypeError(f"heaviside: x is {dtypes.dtype_name(x.dtype)} but values is "
                         f"{dtypes.dtype_name(values.dtype)}; they must match (as in PyTorch): convert values "
                         "with .to(x.dtype)")
    return Heaviside.apply(*binary_operands("heaviside", x, values, integers="keep"))
