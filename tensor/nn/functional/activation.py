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
from ...graph_backward import saved_in_graph
from ...ops._util import normalize_dim, number
from ...ops.compare import where
from ...tensor import Tensor


def _empty_rows(x, error):
    """softmax's output when the max that shifts its input failed: NumPy and CuPy have no max over an
    empty dim, and such a softmax has nothing to normalise: an empty output, as PyTorch's. Any other
    failure is re-raised."""
    if x.size:
        raise error
    return x.copy()


class Softmax(Function):
    arguments = 2  # (x, dim): for derived_in_graph, which makes Softmax nodes for cross_entropy
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim, ctx.fused = dim, kernels.fits_rows(ctx.xp, x, dim)
        if ctx.fused:
            out = kernels.softmax_forward(x)
        else:
            try:
                out = x - x.max(axis=dim, keepdims=True)
            except ValueError as error:  # the error path: the common case pays no test for empty dims
                out = _empty_rows(x, error)
            else:
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

    @staticmethod
    def backward_graph(ctx, grad):
        (out,) = saved_in_graph(ctx)
        return out * (grad - (grad * out).sum(ctx.dim, keepdim=True)), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        xp = ctx.xp
        ctx.dim, ctx.fused = dim, kernels.fits_rows(xp, x, dim)
        if ctx.fused:
            out = kernels.softmax_forward(x, log=True)
        else:
            try:
                out = x - x.max(axis=dim, keepdims=True)
            except ValueError as error:
                out = _empty_rows(x, error)
            else:
                out -= xp.log(xp.exp(out).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        if ctx.fused:
            return kernels.softmax_backward(out, grad, log=True), None
        return grad - ctx.xp.exp(out) * grad.sum(axis=ctx.dim, keepdims=True), None

    @staticmethod
    def backward_graph(ctx, grad):
        (out,) = saved_in_graph(ctx)
        return grad - out.exp() * grad.sum(ctx.dim, keepdim=True), None


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


# ------------------------------------------------------------------ more pointwise (composed)


class Hardtanh(Function):
    """clip(x, min_val, max_val). Its own node because clamp's gradient passes at the bounds and
    PyTorch's hardtanh (and relu6, hardsigmoid) pass it only strictly inside them."""

    @staticmethod
    def forward(ctx, x, min_val, max_val):
        ctx.save_for_backward(x)
        ctx.bounds = min_val, max_val
        return ctx.xp.clip(x, min_val, max_val)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        low, high = ctx.bounds
        return grad * ((x > low) & (x < high)), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        (x,) = saved_in_graph(ctx)
        low, high = ctx.bounds
        return grad * ((x > low) & (x < high)), None, None


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """min_val where x < min_val, max_val where x > max_val, else x."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} must not exceed max_val {max_val}; swap them")
    return Hardtanh.apply(input, number(min_val), number(max_val))


def relu6(input, inplace=False):
    """min(max(0, x), 6)."""
    return hardtanh(input, 0.0, 6.0)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6: 0 below -3, 1 above 3, linear between."""
    return relu6(input + 3.0) / 6.0


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6."""
    return input * hardsigmoid(input)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al."""
    return input.elu(_SELU_ALPHA) * _SELU_SCALE


def celu(input, alpha=1.0, inplace=False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) = alpha * elu(x / alpha) for alpha > 0."""
    if not alpha > 0:
        raise ValueError(f"celu: alpha must be positive, got {alpha}")
    return (input / alpha).elu(1.0) * alpha


def glu(input, dim=-1):
    """a * sigmoid(b) where a, b are the two halves of input along dim (that size halves)."""
    if input.dim() == 0:
        raise ValueError("glu: does not support 0-d (scalar) input; give it at least one dim")
    size = input.shape[dim]
    if size % 2:
        raise ValueError(f"glu: halving dim {dim} must have an even size, got {size} (shape {tuple(input.shape)})")
    try:
        first, second = input.split(size // 2, dim)
    except ValueError:  # an empty dim splits into one piece; both halves are that empty piece
        first = second = input
    return first * second.sigmoid()


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    return input * input.softplus().tanh()


def softsign(input):
    """x / (1 + |x|)."""
    return input / (input.abs() + 1.0)


def logsigmoid(input):
    """log(sigmoid(x)) as -softplus(-x): finite for any x (log of sigmoid would give -inf below -745)."""
    return -((-input).softplus())


def tanhshrink(input):
    """x - tanh(x)."""
    return input - input.tanh()


def threshold(input, threshold, value, inplace=False):  # noqa: F811 - PyTorch names the argument like the function
    """x where x > threshold, else value."""
    return where(input > threshold, input, value)


def prelu(input, weight):
    """max(0, x) + weight * min(0, x); weight has 1 element or one per channel (dim 1 of an input with
    2 or more dims; as in PyTorch, a 0-d or 1-d input has a single channel)."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"prelu: weight must be a Tensor, got {type(weight).__name__}")
    slopes = weight.numel()
    channels = input.shape[1] if input.dim() >= 2 else 1
    if (slopes != channels and slopes != 1) or weight.dim() > 1:
        raise ValueError(f"prelu: weight of shape {tuple(weight.shape)} does not match input shape "
                         f"{tuple(input.shape)} with {channels} channel(s); give one slope per channel (dim 1) "
                         "or a single slope")
    # (C,) -> (C, 1, ..., 1) against the dims after the channel dim; a single slope broadcasts as 0-d
    weight = weight.reshape((slopes,) + (1,) * (input.dim() - 2)) if slopes != 1 else weight.reshape(())
    return where(input > 0, input, weight * input)
