"""In-place ops (add_, mul_, ..., zero_, fill_, copy_, clamp_, __setitem__) and the version check.

Without a graph to record (no_grad, or nothing requires grad) an in-place op writes straight
into the tensor's array with the ufunc's `out=`: the optimizers' hot path. With a graph, the op
runs out of place on a copy (so the arrays saved for backward stay intact), the result is
written back into the tensor's memory, and the tensor takes the new node as its grad_fn. Either
way the version counter moves, so a node that saved this tensor refuses to backward through a
stale value.

Through a view (`x[:, 0] += 1`, `x.t().mul_(2)`), as in PyTorch: the change is recorded on the
view's root base, as a ViewAssign node (the base's old history, with the view's region replaced
by the op's result), and every view of that base, this one included, takes a node made from the
new history when next used (view_history.refresh_view). A view of a leaf that requires grad is refused.
"""
from __future__ import annotations

from .. import dtypes
from ..autograd import Function, is_grad_enabled
from ..view_history import refresh_view, replay_view
from ..errors import AutogradError, DeviceError, DTypeError, ShapeError
from ..tensor import Tensor, _wrap
from . import arithmetic, convert


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def needs_graph(self, *others):
    if not is_grad_enabled():
        return False
    if self._view_src is not None and self._view_version != self._version_box[0]:
        refresh_view(self)  # its base may have gained a history since the view was made
    return self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in others)


def apply_tracked(self, op, *args, name="in-place op"):
    """Run `op(self_copy, *args)` with autograd, then make its result self's value and node."""
    if self.grad_fn is None and self.requires_grad:
        raise AutogradError(
            f"{name}: a leaf tensor that requires grad cannot be changed in place while recording a graph; "
            "wrap the update in `with no_grad():` or use the out-of-place op"
        )
    if self._base is not None:
        return _apply_tracked_to_view(self, op, args, name)
    out = _run_on_copy(self, op, args, name)
    self.data[...] = out.data
    self._bump_version()
    self._take_new_node(out.grad_fn, out._output_nr, out._requires_grad)
    return self


def _run_on_copy(self, op, args, name):
    """op(a copy of self carrying self's node, *args), checked to fit back into self."""
    source = _wrap(self.data.copy())
    source.grad_fn, source._output_nr, source._requires_grad = self.grad_fn, self._output_nr, self._requires_grad
    out = op(source, *args)
    if out.data.shape != self.data.shape:
        raise ShapeError(f"{name}: result shape {tuple(out.shape)} does not match the tensor's shape {tuple(self.shape)}")
    if out.dtype != self.dtype:
        _check_cast(out.dtype, self.dtype, name)
        out = convert.to(out, dtype=self.dtype)
    return out


def _apply_tracked_to_view(view, op, args, name):
    """An in-place op through a view: the root base takes the change as a ViewAssign node."""
    root = view._base
    if root.grad_fn is None and root.requires_grad:
        raise AutogradError(
            f"{name}: a view of a leaf tensor that requires grad cannot be changed in place while recording a "
            "graph; wrap the update in `with no_grad():`, or change a clone() of the leaf"
        )
    if view._view_src is None:  # made under no_grad: as in PyTorch, it stays out of the graph
        raise AutogradError(f"{name}: this view was made under no_grad and is being changed in place with "
                            "grad mode on; make the view with grad enabled, or clone() it first")
    if _from_multi_view(view):  # as PyTorch: the pieces' shared node cannot be rebuilt for one piece
        raise AutogradError(
            f"{name}: this view comes from split/chunk/unbind, which return several views of one tensor; "
            "such views cannot be changed in place while recording a graph; clone() the piece, or index "
            "the base instead (x[:, :k] rather than x.chunk(...)[0])"
        )
    if view._view_version != view._version_box[0]:
        refresh_view(view)  # the op must start from the view's current history
    out = _run_on_copy(view, op, args, name)
    new_root = ViewAssign.apply(root, out, _ViewPath(view))
    view.data[...] = out.data  # through the view: the root's memory now holds the result
    view._bump_version()  # every view of the root is now stale: each refreshes when next used
    root._take_new_node(new_root.grad_fn, new_root._output_nr, new_root._requires_grad)
    return view


def _from_multi_view(view):
    while view._view_src is not None:
        _, args, view_of, nr = view._view_src
        if nr is not None:
            return True
        view = args[view_of]
    return False


class _ViewPath:
    """A view, carried into ViewAssign as a plain argument (not unwrapped to its array)."""

    def __init__(self, view):
        self.view = view


class ViewAssign(Function):
    """base with the region that `path.view` covers replaced by `value` (PyTorch's CopySlices)."""

    @staticmethod
    def forward(ctx, base, value, path):
        xp = ctx.xp
        new = xp.empty_like(base)  # base's memory layout, so the view ops replay as views
        new[...] = base
        _region(path.view, new, xp, "forward")[...] = value
        ctx.path, ctx.layout = path, (base.shape, base.strides, base.dtype)
        return new

    @staticmethod
    def backward(ctx, grad):
        xp = ctx.xp
        grad_base = _empty_in_layout(*ctx.layout, xp)
        grad_base[...] = grad
        region = _region(ctx.path.view, grad_base, xp, "backward")
        grad_value = region.copy()
        region[...] = 0  # the overwritten region no longer depends on the old base
        return grad_base, grad_value, None


def _region(view, array, xp, where):
    region = replay_view(view, array, xp)
    if not xp.may_share_memory(region, array):
        raise AutogradError(f"in-place op through a view ({where}): the view ops do not replay as a view of "
                            "the base's memory; clone() the view and change the clone")
    return region


def _empty_in_layout(shape, strides, dtype, xp):
    """An empty array of `shape` whose dims lie in memory in the order `strides` gives them."""
    order = sorted(range(len(shape)), key=lambda d: -abs(strides[d]))
    inverse = [0] * len(order)
    for position, d in enumerate(order):
        inverse[d] = position
    return xp.empty([shape[d] for d in order], dtype).transpose(inverse)


def _check_cast(result, target, name):
    if not dtypes.can_cast(result, target):
        raise DTypeError(f"{name}: result type {result} can't be cast to the tensor's dtype {target} in place")


def _ufunc_inplace(self, other, ufunc, op, name):
    if needs_graph(self, other):
        return apply_tracked(self, op, other, name=name)
    if isinstance(other, Tensor) and other.device != self.device:
        raise DeviceError(f"{name}: tensor on {self.device}, operand on {other.device}; move one with .to()")
    try:
        getattr(self.xp, ufunc)(self.data, _raw(other), out=self.data)
    except ValueError as exc:
        raise ShapeError(
            f"{name}: operand of shape {tuple(getattr(other, 'shape', ()))} does not broadcast to the tensor's shape "
            f"{tuple(self.shape)}"
        ) from exc
    except TypeError as exc:  # numpy's UFuncTypeError: float result into an integer tensor
        result = dtypes.result_type(self, other)
        _check_cast(result, self.dtype, name)
        raise DTypeError(f"{name}: {exc}") from exc
    self._bump_version()
    return self


def add_(self, other, alpha=None):
    if alpha is not None:  # (None for 1: the common call pays one identity test)
        other = arithmetic.alpha_scaled("add_", other, alpha)
    return _ufunc_inplace(self, other, "add", arithmetic.add, "add_")


def sub_(self, other, alpha=None):
    if alpha is not None:  # (None for 1: the common call pays one identity test)
        other = arithmetic.alpha_scaled("sub_", other, alpha)
    return _ufunc_inplace(self, other, "subtract", arithmetic.sub, "sub_")


def mul_(self, other):
    return _ufunc_inplace(self, other, "multiply", arithmetic.mul, "mul_")


def div_(self, other):
    if self.dtype.kind != "f":
        raise DTypeError(f"div_: true division of a {self.dtype} tensor gives floats; use div() or a float tensor")
    return _ufunc_inplace(self, other, "divide", arithmetic.div, "div_")


def pow_(self, other):
    return _ufunc_inplace(self, other, "power", arithmetic.pow, "pow_")


def neg_(self):
    return _ufunc_inplace(self, -1, "multiply", arithmetic.mul, "neg_")


def zero_(self):
    return fill_(self, 0)


def fill_(self, value):
    if needs_graph(self, value):
        return apply_tracked(self, lambda s, v: _filled_like(s, v), value, name="fill_")
    self.data[...] = _raw(value)
    self._bump_version()
    return self


def _filled_like(source, value):
    if isinstance(value, Tensor):  # a 0-d tensor: every element of the result is that value
        return arithmetic.add(arithmetic.mul(source, 0), value).to(dtype=source.dtype)
    return arithmetic.add(arithmetic.mul(source.detach(), 0), value)


def copy_(self, src):
    """Copy src's values (broadcast, cast and moved as needed) into self; grads flow to src."""
    if isinstance(src, Tensor):
        src_data = src.data
        if src.device != self.device:
            src = src.to(self.device)
            src_data = src.data
    else:
        src_data = src
    if needs_graph(self, src):
        def op(source, value):
            return arithmetic.add(arithmetic.mul(source.detach(), 0), value).to(dtype=source.dtype)

        return apply_tracked(self, op, src, name="copy_")
    try:
        self.data[...] = src_data
    except ValueError as exc:
        raise ShapeError(f"copy_: source of shape {tuple(getattr(src, 'shape', ()))} does not broadcast to {tuple(self.shape)}") from exc
    self._bump_version()
    return self


def clamp_(self, min=None, max=None):  # noqa: A002 - torch's argument names
    from .unary import clamp

    if needs_graph(self, min, max):
        return apply_tracked(self, lambda s: clamp(s, min, max), name="clamp_")
    self.xp.clip(self.data, _raw(min), _raw(max), out=self.data)
    self._bump_version()
    return self


def setitem(self, index, value):
    """self[index] = value."""
    from .index import explain_index_error, index_put, normalize_index

    index = normalize_index(index, self)  # index arrays must be on self's device
    if needs_graph(self, value):
        return apply_tracked(self, lambda s, v: index_put(s, index, v), value, name="__setitem__")
    if isinstance(value, Tensor) and value.device != self.device:
        raise DeviceError(f"__setitem__: tensor on {self.device}, value on {value.device}; move one with .to()")
    try:
        self.data[index] = _raw(value)
    except IndexError as exc:  # NumPy and CuPy word it differently: name the value, the dim and its size
        raise explain_index_error("__setitem__", self, index, exc) from None
    except ValueError as exc:
        raise ShapeError(f"__setitem__: value of shape {tuple(getattr(value, 'shape', ()))} does not fit the indexed "
                         f"region of a tensor of shape {tuple(self.shape)}: {exc}") from exc
    self._bump_version()
    return self
