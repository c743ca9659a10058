"""+ - * / // % ** and negation, broadcasting like NumPy, promoting like PyTorch.

Either operand of a binary Function may be a Python scalar (it stays "weak" and takes the
tensor's dtype); `sum_to` folds broadcast gradients back to each operand's shape.
"""
from __future__ import annotations

import math

from .. import dtypes
from ..autograd import Function
from ..graph_backward import SavedVjp, saved_in_graph
from ..tensor import Tensor, _wrap
from ._util import number_first, promote, sum_to


def _shape(x):
    return getattr(x, "shape", None)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (getattr(a, "shape", None), getattr(b, "shape", None))  # a scalar has no shape
        return a + b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (sum_to(grad, sa) if need_a else None), (sum_to(grad, sb) if need_b else None)

    backward_graph = backward  # sum_to works on Tensors too


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (getattr(a, "shape", None), getattr(b, "shape", None))
        return a - b

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (sum_to(grad, sa) if need_a else None), (sum_to(-grad, sb) if need_b else None)

    backward_graph = backward


class Mul(SavedVjp):
    @staticmethod
    def forward(ctx, a, b):
        # Each operand is saved only for the other's gradient (as PyTorch does): `view * 2` keeps
        # no claim on the view, so a later in-place change to its storage does not void this node.
        need_a, need_b = ctx.needs_input_grad
        ctx.save_for_backward(b if need_a else None, a if need_b else None)
        ctx.shapes = getattr(a, "shape", None), getattr(b, "shape", None)  # a scalar has no shape
        return a * b

    @staticmethod
    def vjp(ctx, grad, b, a):
        """The input gradients, on arrays (backward) or on Tensors (backward_graph)."""
        need_a, need_b = ctx.needs_input_grad
        shape_a, shape_b = ctx.shapes
        return (sum_to(grad * b, shape_a) if need_a else None), (sum_to(grad * a, shape_b) if need_b else None)


class Div(SavedVjp):
    @staticmethod
    def forward(ctx, a, b):
        # a is saved only for b's gradient (as PyTorch does): `y[:, 0] / 3` keeps no claim on the view,
        # so writing the result back into y[:, 0] does not void this node.
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b)
        else:
            ctx.save_for_backward(None, b)
            ctx.shape_a = _shape(a)
        return a / b

    @staticmethod
    def vjp(ctx, grad, a, b):
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(grad / b, _shape(a) if need_b else ctx.shape_a) if need_a else None
        gb = sum_to(-grad * a / (b * b), _shape(b)) if need_b else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        xp = ctx.xp
        need_a, need_b = ctx.needs_input_grad
        ga = gb = None
        if need_a:
            ga = sum_to(grad * b * a ** (b - 1), _shape(a))
        if need_b:
            # d(a^b)/db = a^b log a; PyTorch's convention makes it 0 where a <= 0.
            a = xp.asarray(a)  # a Python number for 2 ** x: cupy.where takes arrays only
            positive = a > 0
            log_a = xp.where(positive, xp.log(xp.where(positive, a, 1)), 0)
            gb = sum_to(grad * out * log_a, _shape(b))
        return ga, gb

    @staticmethod
    def backward_graph(ctx, grad):
        from .compare import where
        from .unary import log

        a, b, out = saved_in_graph(ctx)
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(grad * b * a ** (b - 1), _shape(a)) if need_a else None
        gb = None
        if need_b:
            if isinstance(a, Tensor):
                positive = a > 0
                log_a = where(positive, log(where(positive, a, 1.0)), 0.0)
            else:  # a Python number: 2 ** x
                log_a = math.log(a) if a > 0 else 0.0
            gb = sum_to(grad * out * log_a, _shape(b))
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad

    backward_graph = backward


class FloorDiv(Function):
    """a // b rounds toward -inf; piecewise constant, so no gradient flows."""

    @staticmethod
    def forward(ctx, a, b):
        out = ctx.xp.floor_divide(a, b)
        ctx.mark_non_differentiable(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return None, None

    backward_graph = backward


class Remainder(Function):
    """a % b with the sign of b (Python's and torch.remainder's convention)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.remainder(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return quotient_grads(ctx, grad, ctx.xp.floor_divide(a, b))

    @staticmethod
    def backward_graph(ctx, grad):
        a, b = ctx.saved_tensors
        return quotient_grads(ctx, grad, _wrap(ctx.xp.floor_divide(a, b)))  # piecewise constant


def quotient_grads(ctx, grad, quotient):
    """The gradients of a - quotient * b (remainder, fmod) for a whole-number quotient, which is
    piecewise constant: grad for a, -grad * quotient for b. On arrays, or on Tensors (then the
    quotient is a constant Tensor)."""
    a, b = ctx.saved_tensors
    need_a, need_b = ctx.needs_input_grad
    ga = sum_to(grad, _shape(a)) if need_a else None
    gb = sum_to(-grad * quotient, _shape(b)) if need_b else None
    return ga, gb


# The wrappers below skip promote() for two plain Tensors of one dtype, the common case, to save
# a call on the hot path; promote() itself handles everything else (Parameters included).


def add(a, b, alpha=None):
    if alpha is not None:  # (None for 1: the common call pays one identity test)
        b = alpha_scaled("add", b, alpha)
    if type(a) is not Tensor or type(b) is not Tensor or a.data.dtype is not b.data.dtype:
        a, b = promote(a, b)
    return Add.apply(a, b)


def sub(a, b, alpha=None):
    if alpha is not None:  # (None for 1: the common call pays one identity test)
        b = alpha_scaled("sub", b, alpha)
    if type(a) is not Tensor or type(b) is not Tensor or a.data.dtype is not b.data.dtype:
        a, b = promote(a, b)
    return Sub.apply(a, b)


def alpha_scaled(op, other, alpha):
    """other * alpha, the scaled operand of add/sub and their in-place forms; PyTorch's deprecated
    number-first order (`p.add_(-lr, grad)`: alpha a Tensor, other a number) is read as it means."""
    if isinstance(alpha, Tensor) and not isinstance(other, Tensor):
        other, alpha = number_first(op, other, (alpha,), f"{op}(other, alpha=alpha)", stacklevel=4)
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    return other


def mul(a, b):
    if type(a) is not Tensor or type(b) is not Tensor or a.data.dtype is not b.data.dtype:
        a, b = promote(a, b)
    return Mul.apply(a, b)


def div(a, b, rounding_mode=None):
    """True division (integers give the default float dtype); rounding_mode 'floor' or 'trunc'."""
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        if dtypes.result_type(a, b).kind != "f":
            return _trunc_divide_integers(a, b)
        return div(a, b).trunc()
    if rounding_mode is not None:
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
    if type(a) is not Tensor or type(b) is not Tensor or a.data.dtype is not b.data.dtype:
        a, b = promote(a, b)
    if (a if isinstance(a, Tensor) else b).data.dtype.kind != "f":
        a = a.to(dtype=dtypes.get_default_dtype()) if isinstance(a, Tensor) else float(a)
        b = b.to(dtype=dtypes.get_default_dtype()) if isinstance(b, Tensor) else float(b)
    return Div.apply(a, b)


def rdiv(x, number):
    """number / x, computed as PyTorch's __rtruediv__ computes it: x.reciprocal() * number (the same
    rounding, which a uint8 cast after it can turn into a whole grey level; and reciprocal saves its
    result, not x)."""
    if isinstance(number, Tensor):
        return div(number, x)
    from .unary import reciprocal

    return mul(reciprocal(x), number)


def _trunc_divide_integers(a, b):
    """Integer a / b rounded toward zero, in the integer dtype (as PyTorch): floor division, plus one
    where the quotient is negative and inexact (there floor and trunc differ by one)."""
    q = floor_divide(a, b)
    return q + ((remainder(a, b) != 0) & (q < 0)).to(q.dtype)


def pow(a, b):  # noqa: A001 - torch.pow
    a, b = promote(a, b)
    return Pow.apply(a, b)


def neg(a):
    return Neg.apply(a)


def floor_divide(a, b):
    a, b = promote(a, b)
    return FloorDiv.apply(a, b)


def remainder(a, b):
    a, b = promote(a, b)
    return Remainder.apply(a, b)


def rsub(a, b, alpha=1):
    return sub(b, a, alpha=alpha)


def true_divide(a, b):
    return div(a, b)
