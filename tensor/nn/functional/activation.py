"""Activations: softmax and log_softmax as fused Functions; the pointwise ones from the tensor ops.

softmax and log_softmax each run as one node (max-shifted, so exp never overflows; log_softmax
goes through logsumexp), with the textbook backward on the saved output. On CUDA along the last
dim each direction is one fused kernel (tensor/kernels/softmax.py); other dims compose CuPy ops.
The pointwise activations (relu, gelu, ...) are the engine's Tensor ops under PyTorch's
functional signatures; `inplace=True` is accepted for porting but computes out of place.
"""
from __future__ import annotations

import warnings

from ... import kernels
from ...autograd import Function
from ...errors import DTypeError
from ...ops._util import normalize_dim
from ...tensor import Tensor


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim, ctx.fused = dim, kernels.fits_rows(ctx.xp, x, dim)
        if ctx.fused:
            out = kernels.softmax_forward(x)
        else:
            out = x - x.max(axis=dim, keepdims=True)
            ctx.xp.exp(out, out=out)
            out /= out.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        if ctx.fused:
            return kernels.softmax_backward(out, grad), None
        weighted = grad * out
        weighted -= out * weighted.sum(axis=ctx.dim, keepdims=True)
        return weighted, None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        xp = ctx.xp
        ctx.dim, ctx.fused = dim, kernels.fits_rows(xp, x, dim)
        if ctx.fused:
            out = kernels.softmax_forward(x, log=True)
        else:
            out = x - x.max(axis=dim, keepdims=True)
            out -= xp.log(xp.exp(out).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        if ctx.fused:
            return kernels.softmax_backward(out, grad, log=True), None
        return grad - ctx.xp.exp(out) * grad.sum(axis=ctx.dim, keepdims=True), None


def _softmax_input(input, dim, dtype, op):
    if dtype is not None:
        input = input.to(dtype=dtype)
    if not isinstance(input, Tensor) or input.dtype.kind != "f":
        raise DTypeError(f"{op}: input must be a floating-point Tensor, got {getattr(input, 'dtype', type(input))}; "
                         "convert with .float() or pass dtype=")
    if dim is None:
        # PyTorch's legacy choice when dim is omitted; it warns too.
        dim = 0 if input.dim() in (0, 1, 3) else 1
        warnings.warn(f"{op}: implicit dim is deprecated; pass dim= (using dim={dim})", stacklevel=3)
    if input.dim() == 0:
        return input, None
    return input, normalize_dim(dim, input.dim(), op)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along dim (same shape as input)."""
    input, dim = _softmax_input(input, dim, dtype, "softmax")
    if dim is None:  # a 0-d tensor: softmax over one element
        return Softmax.apply(input.reshape(1), 0).reshape(())
    return Softmax.apply(input, dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """x - logsumexp(x) along dim, computed without forming softmax (stable for large logits)."""
    input, dim = _softmax_input(input, dim, dtype, "log_softmax")
    if dim is None:
        return LogSoftmax.apply(input.reshape(1), 0).reshape(())
    return LogSoftmax.apply(input, dim)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return softmax(-input, dim, dtype=dtype)


# ---------------------------------------------------------------------- pointwise (tensor ops)


def relu(input, inplace=False):
    return input.relu()


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return input.leaky_relu(negative_slope)


def gelu(input, approximate="none"):
    return input.gelu(approximate=approximate)


def silu(input, inplace=False):
    return input.silu()


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def softplus(input, beta=1.0, threshold=20.0):
    return input.softplus(beta, threshold)


def elu(input, alpha=1.0, inplace=False):
    return input.elu(alpha)
