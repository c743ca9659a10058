"""Activations: relu, leaky_relu, elu, softplus, sigmoid, silu, gelu (exact and tanh).

Integer inputs become the default float dtype, except relu, which keeps integers like PyTorch.
On CuPy, gelu and silu (forward and backward) run as one fused kernel each from tensor/kernels
for float32/float64 (float16 and NumPy take the composed path), and relu's backward as one kernel.
On NumPy, selections use arithmetic blends (`max(x, 0) + slope * min(x, 0)`, `grad * mask`):
`np.where` over a mask that changes element by element is several times slower.
"""
from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..autograd import Function
from ..graph_backward import SavedVjp, saved_in_graph
from ._erf import _erf
from ._util import filled_like, number
from .unary import _floating, _FromOutput, _sigmoid

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_SCALE, _GELU_TANH_CUBIC = math.sqrt(2.0 / math.pi), 0.044715
# Beyond +-40 the normal CDF is 0 or 1 and its density 0 in every float dtype, and 40^3 still fits
# in float16: gelu's inner terms use x clipped there, so x^2 and x^3 never overflow.
_GELU_CLIP = 40.0


def _fused(xp, x):
    """Use the fused CuPy kernels (float32/float64 on the GPU) rather than the composed ops."""
    return xp is not np and x.dtype.char in "fd"


class Sigmoid(_FromOutput):
    f = staticmethod(_sigmoid)
    vjp = staticmethod(lambda xp, y, g: g * (y * (1 - y)))


def _relu(xp, x):
    if xp is np and x.dtype.kind == "f":
        return np.maximum(x, filled_like(x, 0.0))  # see filled_like: twice as fast as against a 0-d zero
    return xp.maximum(x, 0)  # integers keep their dtype against a Python 0 (and bools become integers)


def _relu_vjp(xp, y, g):
    if xp is not np and y.dtype.kind == "f" and g.dtype == y.dtype:
        return kernels.relu_backward()(y, g)
    return g * (y > 0)


class Relu(_FromOutput):
    f = staticmethod(_relu)
    vjp = staticmethod(_relu_vjp)

    @staticmethod
    def backward_graph(ctx, grad):
        (y,) = saved_in_graph(ctx)
        return grad * (y > 0)


class LeakyRelu(SavedVjp):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        xp = ctx.xp
        zero = filled_like(x, 0.0, xp)
        return xp.maximum(x, zero) + xp.minimum(x, zero) * slope

    @staticmethod
    def vjp(ctx, grad, x):
        """The input gradient, on arrays (backward) or on Tensors (backward_graph)."""
        positive_part = grad * (x > 0)
        return positive_part + (grad - positive_part) * ctx.slope, None


class Elu(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        xp = ctx.xp
        zero = filled_like(x, 0.0, xp)
        negative_part = xp.expm1(xp.minimum(x, zero)) * alpha  # expm1 of min(x, 0): no overflow for large x
        out = negative_part + xp.maximum(x, zero)
        ctx.save_for_backward(x, negative_part)
        ctx.alpha = alpha
        return out

    @staticmethod
    def backward(ctx, grad):
        x, negative_part = ctx.saved_tensors
        positive = x > 0
        negative_slope = (negative_part + ctx.alpha) * ~positive  # d/dx alpha (e^x - 1) = alpha e^x
        return grad * (negative_slope + positive), None

    @staticmethod
    def backward_graph(ctx, grad):
        from .compare import minimum
        from .unary import expm1

        x = saved_in_graph(ctx)[0]  # the saved negative part was made inside forward: recomputed
        positive = x > 0
        negative_slope = (expm1(minimum(x, 0.0)) * ctx.alpha + ctx.alpha) * ~positive
        return grad * (negative_slope + positive), None


class Softplus(Function):
    """log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (PyTorch's linear regime)."""

    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = ctx.xp
        scaled = x if beta == 1 else x * beta
        ctx.save_for_backward(x)  # x, not scaled: backward_graph needs the input itself
        ctx.beta, ctx.threshold = beta, threshold
        # log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): no overflow for any dtype or threshold
        soft = xp.log1p(xp.exp(-xp.abs(scaled)))
        soft += xp.maximum(scaled, 0)
        if beta != 1:
            soft /= beta
        return xp.where(scaled > threshold, x, soft)  # the mask is almost always uniform: fast

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xp = ctx.xp
        scaled = x if ctx.beta == 1 else x * ctx.beta
        slope = _sigmoid(xp, scaled)
        return xp.where(scaled > ctx.threshold, grad, grad * slope), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        from .compare import where

        (x,) = saved_in_graph(ctx)
        scaled = x * ctx.beta
        return where(scaled > ctx.threshold, grad, grad * sigmoid(scaled)), None, None


class Silu(Function):
    @staticmethod
    def forward(ctx, x):
        xp = ctx.xp
        ctx.fused = _fused(xp, x)
        if ctx.fused:
            ctx.save_for_backward(x)
            return kernels.silu_forward()(x)
        s = _sigmoid(xp, x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        if ctx.fused:
            (x,) = ctx.saved_tensors
            return kernels.silu_backward()(grad, x)
        x, s = ctx.saved_tensors
        return grad * s * (1 + x * (1 - s))

    @staticmethod
    def backward_graph(ctx, grad):
        x = saved_in_graph(ctx)[0]
        s = sigmoid(x)  # the saved one was made inside forward: a constant to the graph
        return grad * s * (1 + x * (1 - s))


class Gelu(Function):
    """x * Phi(x) with the normal CDF Phi exact (erf) or in Hendrycks & Gimpel's tanh form."""

    @staticmethod
    def forward(ctx, x, approximate):
        xp = ctx.xp
        ctx.approximate, ctx.fused = approximate, _fused(xp, x)
        if ctx.fused:
            ctx.save_for_backward(x)
            return kernels.gelu_forward(approximate)(x)
        if approximate == "tanh":
            clipped = xp.clip(x, -_GELU_CLIP, _GELU_CLIP)
            t = xp.tanh((clipped + clipped * clipped * clipped * _GELU_TANH_CUBIC) * _GELU_TANH_SCALE)
            t += 1
            t *= 0.5  # now the CDF, like phi in the exact branch
            ctx.save_for_backward(x, t)
            return x * t
        cdf = _erf(xp, x * math.sqrt(0.5))
        cdf += 1
        cdf *= 0.5
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        if ctx.fused:
            (x,) = ctx.saved_tensors
            return kernels.gelu_backward(ctx.approximate)(grad, x), None
        x, phi = ctx.saved_tensors
        clipped = ctx.xp.clip(x, -_GELU_CLIP, _GELU_CLIP)
        if ctx.approximate == "tanh":
            d_inner = (clipped * clipped * (3 * _GELU_TANH_CUBIC) + 1) * _GELU_TANH_SCALE
            # phi = (1 + t) / 2, so d phi / d inner = (1 - t^2) / 2 = 2 phi (1 - phi)
            return grad * (phi + x * (phi * (1 - phi) * 2) * d_inner), None
        pdf = ctx.xp.exp(clipped * clipped * -0.5) * _INV_SQRT_2PI
        return grad * (phi + x * pdf), None

    @staticmethod
    def backward_graph(ctx, grad):
        from .unary import erf, exp, tanh

        x = saved_in_graph(ctx)[0]  # the saved CDF was made inside forward: recomputed on the graph
        clipped = x.clamp(-_GELU_CLIP, _GELU_CLIP)  # as in forward: no overflow in the inner terms
        if ctx.approximate == "tanh":
            t = tanh((clipped + clipped * clipped * clipped * _GELU_TANH_CUBIC) * _GELU_TANH_SCALE)
            d_inner = (clipped * clipped * (3 * _GELU_TANH_CUBIC) + 1) * _GELU_TANH_SCALE
            return grad * ((t + 1) * 0.5 + x * ((1 - t * t) * 0.5) * d_inner), None
        pdf = exp(clipped * clipped * -0.5) * _INV_SQRT_2PI
        return grad * ((erf(x * math.sqrt(0.5)) + 1) * 0.5 + x * pdf), None


def leaky_relu(x, negative_slope=0.01):
    return LeakyRelu.apply(_floating(x), number(negative_slope))


def elu(x, alpha=1.0):
    return Elu.apply(_floating(x), number(alpha))


def softplus(x, beta=1.0, threshold=20.0):
    return Softplus.apply(_floating(x), number(beta), number(threshold))


def silu(x):
    return Silu.apply(_floating(x))


def gelu(x, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(_floating(x), approximate)


def sigmoid(x):
    return Sigmoid.apply(_floating(x))


def relu(x):
    return Relu.apply(x)


# ------------------------------------------------------------ softmax, log_softmax (Tensor methods)
def softmax(x, dim=None, dtype=None):
    """x.softmax(dim): nn.functional's fused, stable softmax."""
    from ..nn import functional

    return functional.softmax(x, dim, dtype=dtype)


def log_softmax(x, dim=None, dtype=None):
    """x.log_softmax(dim): nn.functional's fused log-softmax."""
    from ..nn import functional

    return functional.log_softmax(x, dim, dtype=dtype)
