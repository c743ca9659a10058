"""More elementwise math in PyTorch's names: fmod, frac, sgn, logit, signbit, float_power, angle (of
real numbers), and the gradient-free integer and float decompositions gcd, lcm and frexp.

frac, sgn and float_power are compositions of existing ops (exact, and their gradients come for
free); fmod and logit are Functions of their own, since their gradients need the inputs.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import DeviceError, DTypeError
from ..graph_backward import saved_in_graph
from ..tensor import Tensor, _wrap
from ._util import promote
from .arithmetic import pow as _pow, quotient_grads, sub
from .unary import sign, trunc


def _require_tensor(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__} {x!r}; make one with tensor.tensor(...)")


class Fmod(Function):
    """C's fmod: a - trunc(a / b) * b, with the sign of a (remainder() takes the sign of b)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.fmod(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return quotient_grads(ctx, grad, ctx.xp.trunc(a / b))

    @staticmethod
    def backward_graph(ctx, grad):
        a, b = ctx.saved_tensors
        return quotient_grads(ctx, grad, _wrap(ctx.xp.trunc(a / b)))  # piecewise constant


def fmod(a, b):
    """Elementwise remainder of a / b with the sign of the dividend a (torch.fmod)."""
    a, b = promote(a, b)
    return Fmod.apply(a, b)


def frac(x):
    """x - trunc(x): the fractional part, with x's sign; gradient 1."""
    _require_tensor("frac", x)
    if x.data.dtype.kind != "f":
        raise DTypeError(f"frac: needs a floating-point tensor, got dtype {x.dtype}; convert with .float() first")
    return sub(x, trunc(x))


def sgn(x):
    """sign(x); for real tensors (all raygrad has) torch.sgn is torch.sign."""
    return sign(x)


def signbit(x):
    """True where the sign bit is set (negative numbers and -0.0); a bool tensor without gradient."""
    _require_tensor("signbit", x)
    data = x.data
    if data.dtype.kind == "b":
        return _wrap(x.xp.zeros(data.shape, dtype=np.bool_))
    return _wrap(x.xp.signbit(data))


class Logit(Function):
    """log(x / (1 - x)), with x first clamped to [eps, 1 - eps] when eps is given."""

    @staticmethod
    def forward(ctx, x, eps):
        xp = ctx.xp
        ctx.save_for_backward(x)
        ctx.eps = eps
        z = x if eps is None else xp.clip(x, eps, 1 - eps)
        with np.errstate(divide="ignore", invalid="ignore"):  # logit(0) = -inf, logit(1) = inf, as in PyTorch
            return xp.log(z / (1 - z))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        eps = ctx.eps
        with np.errstate(divide="ignore"):  # at 0 and 1 the slope is infinite, as in PyTorch
            out = grad / (x * (1 - x))
        xp = ctx.xp
        if eps is not None:  # as PyTorch: the clamp passes no gradient outside [eps, 1 - eps] (0, not 0 * inf)
            return xp.where((x >= eps) & (x <= 1 - eps), out, xp.zeros((), dtype=out.dtype)), None
        # and without eps, NaN outside [0, 1], where logit itself is NaN
        return xp.where((x < 0) | (x > 1), xp.asarray(np.nan, dtype=out.dtype), out), None

    @staticmethod
    def backward_graph(ctx, grad):
        """backward's formula on Tensors, recorded; the masks are constants (piecewise, as in PyTorch)."""
        from .compare import where  # compare imports this module's neighbours

        (x,) = saved_in_graph(ctx)
        eps, raw = ctx.eps, x.data
        with np.errstate(divide="ignore"):  # at 0 and 1 the slope is infinite, as in PyTorch
            out = grad / (x * (1 - x))
        if eps is not None:
            return where(_wrap((raw >= eps) & (raw <= 1 - eps)), out, 0.0), None
        return where(_wrap((raw < 0) | (raw > 1)), math.nan, out), None


def logit(x, eps=None):
    """The inverse of sigmoid; with eps, inputs are clamped to [eps, 1 - eps] (no gradient outside)."""
    _require_tensor("logit", x)
    if x.data.dtype.kind != "f":
        x = x.to(dtype=dtypes.get_default_dtype())
    if eps is not None:
        eps = float(eps)
        if not 0 <= eps <= 0.5:
            raise ValueError(f"logit: eps must be in [0, 0.5], got {eps}")
    return Logit.apply(x, eps)


class Angle(Function):
    """The argument of a real number: pi below 0, 0 from 0 up (NaN stays NaN); piecewise constant."""

    @staticmethod
    def forward(ctx, x):
        xp = ctx.xp
        out = xp.where(x < 0, xp.asarray(math.pi, dtype=x.dtype), xp.zeros((), dtype=x.dtype))
        return xp.where(xp.isnan(x), x, out)

    @staticmethod
    def backward(ctx, grad):
        return ctx.xp.zeros_like(grad)

    @staticmethod
    def backward_graph(ctx, grad):
        return grad * 0


def angle(x):
    """torch.angle of a real tensor (raygrad has no complex dtypes): pi for negative values, else 0;
    integers give the default float dtype. The gradient is zero, as PyTorch's for real inputs."""
    _require_tensor("angle", x)
    if x.data.dtype.kind != "f":
        x = x.to(dtype=dtypes.get_default_dtype())
    return Angle.apply(x)


def float_power(x, exponent):
    """x ** exponent computed in float64 (torch.float_power), whatever the inputs' dtypes."""
    base = x.to(dtype=dtypes.float64) if isinstance(x, Tensor) else float(x)
    if isinstance(exponent, Tensor):
        exponent = exponent.to(dtype=dtypes.float64)
    elif not isinstance(base, Tensor):
        raise TypeError("float_power: expected at least one Tensor operand")
    else:
        exponent = float(exponent)
    return _pow(base, exponent)



def _integer_pair(op, a, b):
    a, b = promote(a, b)
    for x in (a, b):
        if isinstance(x, Tensor) and x.data.dtype.kind not in "iu" or isinstance(x, float):
            raise DTypeError(f"{op}: needs integer tensors, got {getattr(x, 'dtype', type(x).__name__)}; "
                             "convert with .long() first")
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.device != b.device:
        raise DeviceError(f"{op}: operands are on different devices ({a.device}, {b.device}); move them to one "
                          "device with .to(device) first")
    like = a if isinstance(a, Tensor) else b
    return like.xp, [x.data if isinstance(x, Tensor) else x for x in (a, b)]


def gcd(a, b):
    """The greatest common divisor, elementwise, of integer tensors (non-negative; gcd(0, 0) = 0)."""
    xp, (x, y) = _integer_pair("gcd", a, b)
    return _wrap(xp.gcd(x, y))


def lcm(a, b):
    """The least common multiple, elementwise, of integer tensors (non-negative; 0 where either is 0)."""
    xp, (x, y) = _integer_pair("lcm", a, b)
    return _wrap(xp.lcm(x, y))


def frexp(x):
    """(mantissa, exponent) with x = mantissa * 2**exponent, |mantissa| in [0.5, 1); exponent is int32.
    No gradient, as in PyTorch."""
    _require_tensor("frexp", x)
    if x.data.dtype.kind != "f":
        raise DTypeError(f"frexp: needs a floating-point tensor, got dtype {x.dtype}; convert with .float() first")
    mantissa, exponent = x.xp.frexp(x.data)
    return FrexpResult((_wrap(mantissa), _wrap(exponent.astype(np.int32, copy=False))))


class FrexpResult(tuple):
    """torch.return_types.frexp: a (mantissa, exponent) tuple with those names."""

    mantissa = property(lambda self: self[0])
    exponent = property(lambda self: self[1])
