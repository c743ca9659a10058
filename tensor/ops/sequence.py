"""Ops along one dim of a sequence: repeat_interleave, diff, cumprod, logcumsumexp (cumsum is with
the reductions, in reduce.py).

repeat_interleave is index_select with a repeated arange (its backward adds repeated rows back
up), and diff is slicing and subtraction, so both are exact compositions. cumprod is one Function
whose gradient is exact where the input has zeros. logcumsumexp is one Function: a running
log-sum-exp that never leaves log space, so it neither overflows nor loses small terms before a
large one.
"""
from __future__ import annotations

import operator

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import ShapeError
from ..graph_backward import saved_in_graph
from ..tensor import Tensor, _wrap
from ._util import normalize_dim
from .arithmetic import sub
from .compare import ne, where
from .gather import index_select
from .join import cat
from .reduce import _integer_accumulator
from .shape import reshape
from .views import narrow


# ------------------------------------------------------------------------------ repeat_interleave
def repeat_interleave(x, repeats=None, dim=None, *, output_size=None):
    """Each element (or slice along `dim`) repeated `repeats` times in place: [a, b] -> [a, a, b, b].

    repeats is an int or a 1-D int tensor with one count per slice (or one count for all); dim=None
    works on the flattened tensor. repeat_interleave(counts) alone gives arange(len(counts)) repeated.
    """
    if repeats is None:  # torch.repeat_interleave(repeats): the indices, each repeated its count
        counts = _counts(x, None, "repeat_interleave")
        return _wrap(x.xp.asarray(np.repeat(np.arange(counts.size, dtype=np.int64), counts)))
    if dim is None:
        x, dim = reshape(x, (-1,)), 0
    dim = normalize_dim(dim, x.ndim, "repeat_interleave")
    size = x.shape[dim] if x.ndim else 1
    counts = _counts(repeats, size, "repeat_interleave")
    # Built on the host: the output size depends on the counts' values (a sync on cuda, as in PyTorch).
    index = x.xp.asarray(np.repeat(np.arange(size, dtype=np.int64), counts))
    if output_size is not None and int(output_size) != index.size:
        raise ShapeError(f"repeat_interleave: output_size={output_size} but the repeats add up to {index.size}")
    return index_select(x, dim, _wrap(index))


def _counts(repeats, size, op):
    """The repeat counts as a 1-D int64 NumPy array of length `size` (one count is broadcast)."""
    if isinstance(repeats, Tensor):
        if repeats.data.dtype.kind not in "iu":
            raise TypeError(f"{op}: repeats must be an integer tensor, got dtype {repeats.dtype}")
        if repeats.ndim > 1:
            raise ShapeError(f"{op}: repeats must be 0-D or 1-D, got shape {tuple(repeats.shape)}")
        counts = repeats.detach().cpu().numpy().reshape(-1).astype(np.int64, copy=False)
    else:
        counts = np.asarray([operator.index(repeats)], dtype=np.int64)
    if size is not None and counts.size == 1:
        counts = counts.repeat(size)
    if size is not None and counts.size != size:
        raise ShapeError(f"{op}: repeats has {counts.size} counts but the dim has size {size}; give one count per "
                         "slice, or a single count")
    if counts.size and int(counts.min()) < 0:
        raise ValueError(f"{op}: repeats must be non-negative, got {int(counts.min())}")
    return counts


# ------------------------------------------------------------------------------------------- diff
def diff(x, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along `dim` (out[i] = x[i + 1] - x[i]), after joining prepend and
    append along `dim`; bool tensors give x[i + 1] != x[i], as in PyTorch."""
    if x.ndim == 0:
        raise ShapeError("diff: expects a tensor with at least one dimension, got a 0-d tensor")
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"diff: order n must be non-negative, got {n}")
    dim = normalize_dim(dim, x.ndim, "diff")
    parts = [_edge(p, x, dim, name) for p, name in ((prepend, "prepend"), (x, None), (append, "append"))]
    parts = [p for p in parts if p is not None]
    x = cat(parts, dim) if len(parts) > 1 else x
    for _ in range(n):
        length = x.shape[dim]
        if length == 0:
            break
        later, earlier = narrow(x, dim, 1, length - 1), narrow(x, dim, 0, length - 1)
        x = ne(later, earlier) if x.dtype.kind == "b" else sub(later, earlier)
    return x


def _edge(part, x, dim, name):
    """prepend/append as a tensor with x's dims (a scalar is expanded to one slice, as in PyTorch)."""
    if part is None or name is None:
        return part
    if not isinstance(part, Tensor):
        shape = x.shape[:dim] + (1,) + x.shape[dim + 1:]
        return _wrap(x.xp.full(shape, part, dtype=x.dtype))
    if part.ndim != x.ndim:
        raise ShapeError(f"diff: {name} must have the same number of dims as the input ({x.ndim}), "
                         f"got shape {tuple(part.shape)}")
    return part


# ------------------------------------------------------------------------------------------ cumprod
class Cumprod(Function):
    """Running product along dim. The gradient is exact with zeros in the input: each element before
    the first zero of its slice gets reversed_cumsum(grad * out) / x; the first zero gets
    reversed_cumsum(grad * (the running product with that zero taken as 1)); later elements get 0,
    since every product that contains them also contains that zero."""

    @staticmethod
    def forward(ctx, x, dim, dtype):
        out = ctx.xp.cumprod(x.reshape(1) if x.ndim == 0 else x, axis=dim, dtype=dtype).reshape(x.shape)
        ctx.save_for_backward(x, out)
        ctx.meta = (dim, x.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        dim, dtype = ctx.meta
        xp = ctx.xp
        if x.ndim == 0:
            return grad.astype(dtype, copy=False), None, None

        def reversed_cumsum(a):
            return xp.flip(xp.cumsum(xp.flip(a, dim), axis=dim), dim)

        zeros_so_far = xp.cumsum(x == 0, axis=dim)
        before_zero = zeros_so_far == 0
        first_zero = (zeros_so_far == 1) & (x == 0)
        g = reversed_cumsum(grad * out) / xp.where(before_zero, x, 1)
        g = xp.where(before_zero, g, 0)
        if first_zero.any():  # the slow path only for slices that hold a zero
            out_without_zero = xp.cumprod(xp.where(first_zero, 1, x), axis=dim)
            g = g + xp.where(first_zero, reversed_cumsum(grad * out_without_zero), 0)
        return g.astype(dtype, copy=False), None, None

    @staticmethod
    def backward_graph(ctx, grad):
        """backward's gradient, recorded. Without zeros it is backward's formula on Tensors. With a zero,
        backward's masks would be constants, so the gradient's own derivative would miss that a zero's
        neighbours still move the products past it: there, as PyTorch does under grad mode, each
        element's gradient is sum_{i >= k} grad_i * prod_{j <= i, j != k} x_j (quadratic in the size)."""
        x, out = saved_in_graph(ctx)
        dim, dtype = ctx.meta
        if x.ndim == 0:
            return grad.to(dtype), None, None
        wide = x.to(grad.dtype)  # the dtype forward accumulated in
        if not (x.data == 0).any():
            return (_reversed_cumsum(grad * out, dim) / wide).to(dtype), None, None
        return _cumprod_grad_with_zeros(ctx.xp, wide, grad, dim).to(dtype), None, None


def _reversed_cumsum(t, dim):
    return t.flip(dim).cumsum(dim).flip(dim)


def _cumprod_grad_with_zeros(xp, x, grad, dim):
    """Recorded gradient of cumprod along dim, exact with zeros: element k's is the sum over later
    outputs of grad times the running product with x_k taken as 1."""
    n = x.shape[dim]
    position = xp.arange(n).reshape((n,) + (1,) * (x.ndim - 1 - dim))
    parts = []
    for k in range(n):
        without_k = where(_wrap(position == k), 1.0, x).cumprod(dim)
        parts.append((grad * without_k).narrow(dim, k, n - k).sum(dim, keepdim=True))
    return cat(parts, dim)


def cumprod(x, dim, *, dtype=None):
    """Running product along `dim`; bool and integer tensors accumulate in int64, as in PyTorch."""
    return Cumprod.apply(x, normalize_dim(dim, x.ndim, "cumprod"), _integer_accumulator(x, dtype))


# ------------------------------------------------------------------------------------ logcumsumexp
def _running_logaddexp(xp, x, axis, reverse=False):
    """log(cumsum(exp(x))) along `axis`, staying in log space (exact to rounding for any range)."""
    if reverse:
        return xp.flip(_running_logaddexp(xp, xp.flip(x, axis), axis), axis)
    if xp is np:
        return np.logaddexp.accumulate(x, axis=axis)
    # CuPy has no ufunc.accumulate: a Hillis-Steele scan, log2(n) passes of logaddexp.
    out, n, step = x.copy(), x.shape[axis], 1
    while step < n:
        lead = (slice(None),) * axis
        shifted = out[lead + (slice(0, n - step),)]
        out[lead + (slice(step, n),)] = xp.logaddexp(out[lead + (slice(step, n),)], shifted)
        step *= 2
    return out


class LogCumSumExp(Function):
    @staticmethod
    def forward(ctx, x, dim):
        out = _running_logaddexp(ctx.xp, x, dim) if x.ndim else x.copy()
        ctx.save_for_backward(x, out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad):
        """grad_x[j] = exp(x[j]) * sum_{i >= j} grad[i] exp(-out[i]), each sign of grad summed in log
        space (a reversed logcumsumexp), so no exp overflows."""
        x, out = ctx.saved_tensors
        if x.ndim == 0:
            return grad, None
        xp, dim = ctx.xp, ctx.dim
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf is meant
            result = xp.zeros_like(x)
            for sign, part in ((1, xp.maximum(grad, 0)), (-1, xp.maximum(-grad, 0))):
                log_terms = _running_logaddexp(xp, xp.log(part) - out, dim, reverse=True)
                result = result + sign * xp.exp(x + log_terms)
        return result, None

    @staticmethod
    def backward_graph(ctx, grad):
        """backward's formula on Tensors, recorded: log|grad| enters only where grad has that sign,
        elsewhere the lowest finite float (as PyTorch: a term that adds nothing, where -inf would make
        -inf - -inf = NaN in the running sum's own backward), read through a safe where so that an
        exact zero in grad gives a zero second derivative rather than log's 0 * inf."""
        from .compare import where  # compare imports this package's modules

        x, out = saved_in_graph(ctx)
        if x.ndim == 0:
            return grad, None
        dim = ctx.dim
        log_abs = where(grad == 0, 1.0, grad).abs().log()
        lowest = float(np.finfo(grad.data.dtype).min)
        result = None
        for selected in (grad > 0, grad < 0):
            log_part = where(selected, log_abs, lowest)
            log_terms = (log_part - out).flip(dim).logcumsumexp(dim).flip(dim)
            term = (x + log_terms).exp()
            result = term if result is None else result - term
        return result, None


def logcumsumexp(x, dim):
    """log(cumsum(exp(x), dim)) computed stably (large values do not overflow, small ones count)."""
    if x.data.dtype.kind != "f":
        x = x.to(dtype=dtypes.get_default_dtype())
    return LogCumSumExp.apply(x, normalize_dim(dim, x.ndim, "logcumsumexp"))
