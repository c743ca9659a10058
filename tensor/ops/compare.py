"""Comparisons, logical ops and selection: eq..ge, logical_*, isnan/isinf/isfinite/isposinf/isneginf/isreal, any/all,
isclose/allclose/equal, where, maximum/minimum, masked_fill.

Comparisons and predicates return bool tensors and carry no gradient (mixed dtypes are promoted
first, as in PyTorch). where, maximum, minimum and masked_fill are differentiable in their value
operands.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import DTypeError
from ..graph_backward import saved_in_graph
from ..tensor import Tensor, _wrap
from ._util import cast, promote, sum_to
from .reduce import reduction_dims


def _shape(x):
    return getattr(x, "shape", None)


def _predicate(name, ufunc):
    """A Function whose bool result carries no gradient: `ufunc` from the array module on the raw operands."""

    def forward(ctx, *operands):
        return getattr(ctx.xp, ufunc)(*operands)

    return type(name, (Function,), {"forward": staticmethod(forward), "__doc__": f"xp.{ufunc}; bool, no gradient."})


Eq, Ne = _predicate("Eq", "equal"), _predicate("Ne", "not_equal")
Lt, Le = _predicate("Lt", "less"), _predicate("Le", "less_equal")
Gt, Ge = _predicate("Gt", "greater"), _predicate("Ge", "greater_equal")
LogicalAnd, LogicalOr = _predicate("LogicalAnd", "logical_and"), _predicate("LogicalOr", "logical_or")
LogicalXor, LogicalNot = _predicate("LogicalXor", "logical_xor"), _predicate("LogicalNot", "logical_not")
IsNan, IsInf, IsFinite = _predicate("IsNan", "isnan"), _predicate("IsInf", "isinf"), _predicate("IsFinite", "isfinite")
BitwiseAnd, BitwiseOr = _predicate("BitwiseAnd", "bitwise_and"), _predicate("BitwiseOr", "bitwise_or")
BitwiseXor, BitwiseNot = _predicate("BitwiseXor", "bitwise_xor"), _predicate("BitwiseNot", "invert")


def _is_operand(x):
    # an array is no operand either, but must say so (DTypeError) rather than compare as unequal objects
    return isinstance(x, (Tensor, numbers.Number, np.generic)) or hasattr(x, "__array_interface__") \
        or hasattr(x, "__cuda_array_interface__")


# ------------------------------------------------------------------------------------- comparisons
def eq(a, b):
    return Eq.apply(*promote(a, b))


def ne(a, b):
    return Ne.apply(*promote(a, b))


def eq_operator(a, b):
    """`a == b`: `t == None` (any non-operand) is False, as in PyTorch (Python falls back to identity);
    only the operator does this: the method and function `eq` reject such an operand, as PyTorch's do."""
    return eq(a, b) if _is_operand(b) else NotImplemented


def ne_operator(a, b):
    return ne(a, b) if _is_operand(b) else NotImplemented


def lt(a, b):
    return Lt.apply(*promote(a, b))


def le(a, b):
    return Le.apply(*promote(a, b))


def gt(a, b):
    return Gt.apply(*promote(a, b))


def ge(a, b):
    return Ge.apply(*promote(a, b))


def logical_and(a, b):
    return LogicalAnd.apply(a, b)


def logical_or(a, b):
    return LogicalOr.apply(a, b)


def logical_xor(a, b):
    return LogicalXor.apply(a, b)


def logical_not(a):
    return LogicalNot.apply(a)


def _integral(name, *operands):
    """& | ^ ~ are bitwise on integers and logical on bools (as in PyTorch); floats are an error."""
    for x in operands:
        if isinstance(x, Tensor) and x.dtype.kind == "f" or isinstance(x, float):
            raise DTypeError(f"{name}: needs integer or bool operands, got {getattr(x, 'dtype', type(x).__name__)}")
    return operands


def bitwise_and(a, b):
    return BitwiseAnd.apply(*_integral("bitwise_and", *promote(a, b)))


def bitwise_or(a, b):
    return BitwiseOr.apply(*_integral("bitwise_or", *promote(a, b)))


def bitwise_xor(a, b):
    return BitwiseXor.apply(*_integral("bitwise_xor", *promote(a, b)))


def bitwise_not(a):
    return BitwiseNot.apply(*_integral("bitwise_not", a))


def isnan(x):
    return IsNan.apply(x)


def isinf(x):
    return IsInf.apply(x)


def isfinite(x):
    return IsFinite.apply(x)


def isposinf(x):
    """True where x is +inf."""
    return logical_and(isinf(x), gt(x, 0))


def isneginf(x):
    """True where x is -inf."""
    return logical_and(isinf(x), lt(x, 0))


def isreal(x):
    """True everywhere: raygrad's dtypes are all real (torch: whether each element has no imaginary part)."""
    return _wrap(x.xp.ones(x.data.shape, dtype=np.bool_))


# -------------------------------------------------------------------------------------- any / all
class Any(Function):
    forward = staticmethod(lambda ctx, x, dims, keepdim: x.any(axis=dims, keepdims=keepdim))


class All(Function):
    forward = staticmethod(lambda ctx, x, dims, keepdim: x.all(axis=dims, keepdims=keepdim))


def any(x, dim=None, keepdim=False):  # noqa: A001 - torch.any
    """True where any element along `dim` (an int, a tuple, or None for all) is nonzero."""
    return Any.apply(x, reduction_dims(x, dim, "any"), keepdim)


def all(x, dim=None, keepdim=False):  # noqa: A001 - torch.all
    return All.apply(x, reduction_dims(x, dim, "all"), keepdim)


# ------------------------------------------------------------------------------------- closeness
class IsClose(Function):
    forward = staticmethod(lambda ctx, a, b, rtol, atol, equal_nan: ctx.xp.isclose(a, b, rtol, atol, equal_nan))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol * |b|, elementwise (bool)."""
    a, b = promote(a, b)
    return IsClose.apply(a, b, rtol, atol, equal_nan)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(isclose(a, b, rtol, atol, equal_nan).data.all())


def equal(a, b) -> bool:
    """True if a and b have the same shape and elements (a Python bool)."""
    if tuple(a.shape) != tuple(b.shape):
        return False
    return bool(eq(a, b).data.all())


# ---------------------------------------------------------------------------------------- selection
class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b, dtype):
        ctx.save_for_backward(condition)
        ctx.shapes = (_shape(a), _shape(b))
        out = ctx.xp.where(condition, a, b)
        return out if out.dtype == dtype else out.astype(dtype)  # two Python scalars give float64/int64

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved_tensors
        shape_a, shape_b = ctx.shapes
        _, need_a, need_b, _ = ctx.needs_input_grad
        xp = ctx.xp
        ga = sum_to(xp.where(condition, grad, 0), shape_a) if need_a else None
        gb = sum_to(xp.where(condition, 0, grad), shape_b) if need_b else None
        return None, ga, gb, None

    @staticmethod
    def backward_graph(ctx, grad):
        (condition,) = saved_in_graph(ctx)
        shape_a, shape_b = ctx.shapes
        _, need_a, need_b, _ = ctx.needs_input_grad
        ga = sum_to(where(condition, grad, 0.0), shape_a) if need_a else None
        gb = sum_to(where(condition, 0.0, grad), shape_b) if need_b else None
        return None, ga, gb, None


def where(condition, input=None, other=None):  # noqa: A002 - torch's argument names
    """input where condition is True, else other (either may be a Python scalar); broadcasts all three.

    With only a condition, the indices of its True elements, one int64 tensor per dim: like
    nonzero(as_tuple=True), any dtype's nonzero elements (MoE routing: torch.where(expert_mask[e])).
    """
    if input is None and other is None:
        if not isinstance(condition, Tensor):
            raise TypeError(f"where: condition must be a Tensor, got {type(condition).__name__}")
        return tuple(_wrap(i.astype(np.int64, copy=False)) for i in condition.xp.nonzero(condition.data))
    _check_bool("where", "condition", condition)
    if input is None or other is None:
        raise TypeError("where: give both input and other (tensors or numbers), or neither to get indices")
    dtype = dtypes.result_type(input, other)
    return Where.apply(condition, cast(input, dtype), cast(other, dtype), dtype)


def _check_bool(op, name, mask):
    if not isinstance(mask, Tensor) or mask.dtype != np.bool_:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise DTypeError(f"{op}: {name} must be a bool tensor, got {got}; compare to get one (x > 0) or call .bool()")


class Maximum(Function):
    """Elementwise max. On ties each side gets half the gradient (PyTorch); a NaN side gets it all."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        return _split_gradient(ctx, grad, lambda a, b: a < b, *ctx.saved_tensors)

    @staticmethod
    def backward_graph(ctx, grad):
        return _split_gradient(ctx, grad, lambda a, b: a < b, *saved_in_graph(ctx))


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.minimum(a, b)

    @staticmethod
    def backward(ctx, grad):
        return _split_gradient(ctx, grad, lambda a, b: a > b, *ctx.saved_tensors)

    @staticmethod
    def backward_graph(ctx, grad):
        return _split_gradient(ctx, grad, lambda a, b: a > b, *saved_in_graph(ctx))


def _split_gradient(ctx, grad, loses, a, b):
    """a gets grad where it did not lose to b, minus half on ties; b likewise. Masks multiply
    rather than select: np.where over an element-by-element mask is several times slower.
    On arrays (backward) or on Tensors (backward_graph)."""
    need_a, need_b = ctx.needs_input_grad
    half_on_ties = (grad * 0.5) * (a == b)
    ga = sum_to(grad * ~loses(a, b) - half_on_ties, _shape(a)) if need_a else None
    gb = sum_to(grad * ~loses(b, a) - half_on_ties, _shape(b)) if need_b else None
    return ga, gb


def maximum(a, b):
    return Maximum.apply(*promote(a, b))


def minimum(a, b):
    return Minimum.apply(*promote(a, b))


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        ctx.shapes = (x.shape, _shape(value))
        return ctx.xp.where(mask, value, x)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        x_shape, value_shape = ctx.shapes
        need_x, _, need_value = ctx.needs_input_grad
        xp = ctx.xp
        gx = sum_to(xp.where(mask, 0, grad), x_shape) if need_x else None
        gv = xp.where(mask, grad, 0).sum().reshape(value_shape) if need_value else None
        return gx, None, gv

    @staticmethod
    def backward_graph(ctx, grad):
        (mask,) = saved_in_graph(ctx)
        x_shape, value_shape = ctx.shapes
        need_x, _, need_value = ctx.needs_input_grad
        gx = sum_to(where(mask, 0.0, grad), x_shape) if need_x else None
        gv = where(mask, grad, 0.0).sum().reshape(value_shape) if need_value else None
        return gx, None, gv


def masked_fill(x, mask, value):
    """x with `value` (a number or a 0-d tensor) where the bool `mask` (broadcast with x) is True."""
    _check_bool("masked_fill", "mask", mask)
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {tuple(value.shape)}")
        value = cast(value, x.dtype)
    else:
        value = x.dtype.type(value)  # x's dtype, as in PyTorch: 0.7 into an int tensor is 0
    return MaskedFill.apply(x, mask, value)
