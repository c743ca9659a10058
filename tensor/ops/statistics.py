"""Reductions with a fused backward: var, std, logsumexp, norm (dims and keepdim as in reduce.py).

Each keeps what its gradient needs from the forward pass: var/std the centered input, logsumexp
its output (the gradient is softmax), the norms their output.
"""
from __future__ import annotations

import math

from .. import dtypes
from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..graph_backward import derived_in_graph, saved_in_graph
from ._util import normalize_dim
from .compare import gt, where
from .reduce import _count, _keep, _kept_shape, _require_nonempty, amax, amin, reduction_dims, sum


def _require_float(x, op):
    if x.data.dtype.kind != "f":
        raise DTypeError(f"{op}: needs a floating-point tensor, got {x.dtype}; call .float() first")


# ----------------------------------------------------------------------------------------- var, std
class Var(Function):
    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        centered, scale, out = _variance(ctx.xp, x, dims, correction, keepdim)
        ctx.save_for_backward(centered)
        ctx.meta = (dims, keepdim, scale)
        return out

    @staticmethod
    def backward(ctx, grad):
        (centered,) = ctx.saved_tensors
        dims, keepdim, scale = ctx.meta
        return centered * (_keep(grad, centered.shape, dims, keepdim) * (2 * scale)), None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        dims, keepdim, scale = ctx.meta
        centered = _centered_in_graph(ctx, dims)
        return centered * (_keep(grad, centered.shape, dims, keepdim) * (2 * scale)), None, None, None


class Std(Function):
    @staticmethod
    def forward(ctx, x, dims, correction, keepdim):
        centered, scale, variance = _variance(ctx.xp, x, dims, correction, keepdim)
        out = ctx.xp.sqrt(variance)
        ctx.save_for_backward(centered, out)
        ctx.meta = (dims, keepdim, scale)
        return out

    @staticmethod
    def backward(ctx, grad):
        centered, out = ctx.saved_tensors
        dims, keepdim, scale = ctx.meta
        out = _keep(out, centered.shape, dims, keepdim)
        # std == 0 only where every centered value is 0: divide by 1 there, and the product is 0 (PyTorch).
        factor = _keep(grad, centered.shape, dims, keepdim) * scale / (out + (out == 0))
        return centered * factor, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        dims, keepdim, scale = ctx.meta
        centered, out = _centered_in_graph(ctx, dims), saved_in_graph(ctx)[1]
        out = _keep(out, centered.shape, dims, keepdim)
        factor = _keep(grad, centered.shape, dims, keepdim) * scale / (out + (out == 0))
        return centered * factor, None, None, None


class Centered(Function):
    """The node behind a saved x - mean(x) over `dims`: its gradient is g - mean(g) (a projection)."""

    @staticmethod
    def backward(ctx, grad):
        return grad - grad.mean(axis=ctx.dims, keepdims=True)


def _centered_in_graph(ctx, dims):
    """Var's and Std's saved x - mean (made inside forward) as a Tensor on the graph of x."""
    return derived_in_graph(ctx, ctx.saved_tensors[0], 0, Centered, dims=dims)


def _variance(xp, x, dims, correction, keepdim):
    """(x - mean, 1 / (n - correction), sum((x - mean)^2) / (n - correction))."""
    dof = _count(x.shape, dims) - correction
    scale = 1.0 / dof if dof > 0 else math.inf  # like PyTorch: inf, or NaN where the sum is 0
    if _count(x.shape, dims) == 0:
        centered = x.copy()
    else:
        centered = x - x.mean(axis=dims, keepdims=True)
    return centered, scale, (centered * centered).sum(axis=dims, keepdims=keepdim) * scale


def _correction(op, dim, unbiased, correction):
    if isinstance(dim, bool):  # var(False): PyTorch's older var(unbiased) form
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise ValueError(f"{op}: pass either unbiased= or correction=, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, correction


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over `dim` with Bessel's correction (correction=1) unless told otherwise."""
    dim, correction = _correction("var", dim, unbiased, correction)
    _require_float(x, "var")
    return Var.apply(x, reduction_dims(x, dim, "var"), correction, keepdim)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, correction = _correction("std", dim, unbiased, correction)
    _require_float(x, "std")
    return Std.apply(x, reduction_dims(x, dim, "std"), correction, keepdim)


# ------------------------------------------------------------------------------- logsumexp, norm
class LogSumExp(Function):
    """log(sum(exp(x))) with the max subtracted first; the gradient is softmax(x)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        xp = ctx.xp
        if _count(x.shape, dims) == 0:
            out = xp.full(_kept_shape(x.shape, dims), -math.inf, dtype=x.dtype)
        else:
            shift = x.max(axis=dims, keepdims=True)
            shift = xp.where(xp.isfinite(shift), shift, 0)  # all -inf (or an inf): no inf - inf below
            out = xp.log(xp.exp(x - shift).sum(axis=dims, keepdims=True)) + shift
        ctx.save_for_backward(x, out)
        ctx.meta = (dims, keepdim)
        return out if keepdim else out.reshape([n for i, n in enumerate(x.shape) if i not in dims])

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        dims, keepdim = ctx.meta
        return _keep(grad, x.shape, dims, keepdim) * ctx.xp.exp(x - out), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        x = saved_in_graph(ctx)[0]
        dims, keepdim = ctx.meta
        # The saved result is not always this node's output (without keepdim, that is a reshape of
        # it), so it is computed again on the graph: the softmax below then differentiates again.
        out = logsumexp(x, dims, keepdim=True)
        return _keep(grad, x.shape, dims, keepdim) * (x - out).exp(), None, None


def logsumexp(x, dim=None, keepdim=False):
    if x.data.dtype.kind != "f":
        x = x.to(dtype=dtypes.get_default_dtype())  # as in PyTorch: integers give floats
    return LogSumExp.apply(x, reduction_dims(x, dim, "logsumexp"), keepdim)


class Norm2(Function):
    """sqrt(sum(x^2)); the gradient x / norm is 0 where the norm is 0 (PyTorch)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        out = ctx.xp.sqrt((x * x).sum(axis=dims, keepdims=keepdim))
        ctx.save_for_backward(x, out)
        ctx.meta = (dims, keepdim)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        dims, keepdim = ctx.meta
        out = _keep(out, x.shape, dims, keepdim)
        return x * (_keep(grad, x.shape, dims, keepdim) / (out + (out == 0))), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        x, out = saved_in_graph(ctx)
        dims, keepdim = ctx.meta
        out = _keep(out, x.shape, dims, keepdim)
        return x * (_keep(grad, x.shape, dims, keepdim) / (out + (out == 0))), None, None


class NormP(Function):
    """(sum |x|^p)^(1/p) for p other than 0, 1, 2 and +-inf."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, p):
        xp = ctx.xp
        out = (xp.abs(x) ** p).sum(axis=dims, keepdims=keepdim) ** (1.0 / p)
        ctx.save_for_backward(x, out)
        ctx.meta = (dims, keepdim, p)
        return out

    @staticmethod
    def backward(ctx, grad):
        """grad * sign(x) |x|^(p-1) / norm^(p-1), with 0 where x or the norm is 0 (PyTorch)."""
        x, out = ctx.saved_tensors
        dims, keepdim, p = ctx.meta
        xp = ctx.xp
        magnitude = xp.abs(x)
        magnitude += magnitude == 0  # 1 at zeros (no 0 ** negative); sign(0) = 0 zeroes them again
        out = _keep(out, x.shape, dims, keepdim)
        factor = _keep(grad, x.shape, dims, keepdim) / (out + (out == 0)) ** (p - 1)
        return xp.sign(x) * magnitude ** (p - 1) * factor, None, None, None


def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """The vector p-norm over `dim` (all dims by default): p = 'fro' (2), 1, 2, inf, -inf, 0 or any float;
    p='nuc' the nuclear norm of the matrices over the two dims `dim` (x itself, 2-D, by default)."""
    if isinstance(p, str):
        if p == "nuc":
            return _nuclear_norm(x, dim, keepdim, dtype)
        if p != "fro":
            raise ValueError(f"norm: p={p!r} is not supported; use 'fro', 'nuc' or a number")
        p = 2
    if dtype is not None:
        x = x.to(dtype=dtypes.as_dtype(dtype))
    _require_float(x, "norm")
    dims = reduction_dims(x, dim, "norm")
    if p == 2:
        return Norm2.apply(x, dims, keepdim)
    if p == 1:
        return sum(x.abs(), dims, keepdim)
    if p == math.inf or p == -math.inf:
        _require_nonempty(x, dims, "norm")  # no identity for the max/min of an empty dim
        return (amax if p > 0 else amin)(x.abs(), dims, keepdim)
    if p == 0:  # the number of nonzero elements; piecewise constant, no gradient
        return sum(x != 0, dims, keepdim).to(dtype=x.dtype)
    if p < 0:  # (sum |x|^p)^(1/p) of nothing is 0^(1/p) = inf: PyTorch refuses it, as for -inf
        _require_nonempty(x, dims, f"norm (p={p})")
    return NormP.apply(x, dims, keepdim, float(p))


def _nuclear_norm(x, dim, keepdim, dtype):
    """torch.norm(x, 'nuc', dim): linalg.matrix_norm(x, 'nuc') over dim (all of x's dims by default, so a
    3-D x needs dim); differentiable through svdvals."""
    from ..linalg.norms import matrix_norm  # here, not at the top: linalg.norms imports this module
    if dim is None:
        if x.ndim > 2:
            raise ShapeError(f"norm: p='nuc' takes the norm of one matrix, but x has shape {tuple(x.shape)} and no dim; "
                             "pass dim=(-2, -1) for the norm of each matrix in the batch")
        dim = tuple(range(x.ndim))
    elif isinstance(dim, int):
        dim = (dim,)
    return matrix_norm(x, "nuc", tuple(dim), keepdim, dtype=dtype)


def renorm(x, p, dim, maxnorm):
    """Each slice x.select(dim, i) whose p-norm exceeds maxnorm scaled down to norm maxnorm (by
    maxnorm / (norm + 1e-7), PyTorch's factor); the others unchanged."""
    d = normalize_dim(dim, x.ndim, "renorm")
    others = tuple(i for i in range(x.ndim) if i != d)
    norms = norm(x, p, others, keepdim=True)
    return x * where(gt(norms, maxnorm), maxnorm / (norms + 1e-7), 1.0)
