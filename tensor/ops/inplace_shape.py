"""In-place shape ops: squeeze_, unsqueeze_, t_, transpose_, resize_.

PyTorch changes only the tensor's metadata. Here the tensor takes the view's array, which is
only safe while nothing else refers to its old shape: no graph is recorded through it, no view
of it exists (each view knows how to remake itself from the tensor at its old shape, see
view_history.refresh_view) and no node saved it. A tensor gets a version counter the first time any
of those happens, so that is the test; otherwise the op is refused with the out-of-place
alternative (`x = x.unsqueeze(0)`), which is always correct.
"""
from __future__ import annotations

from ..autograd import is_grad_enabled
from ..errors import AutogradError
from ..tensor import Tensor
from . import shape


def _reshape_in_place(x, op_name, view_op, *args):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op_name}: expected a Tensor, got {type(x).__name__}")
    out_of_place = f"x = x.{op_name[:-1]}(...)"
    if (x.requires_grad and is_grad_enabled()) or x.grad_fn is not None:
        raise AutogradError(f"{op_name}: this tensor is part of a graph; changing its shape in place would leave "
                            f"the graph disagreeing with it; use the out-of-place form, {out_of_place}")
    if x._version_box is not None or x._base is not None:
        raise AutogradError(f"{op_name}: this tensor has views, is a view, or was saved for a backward pass, which "
                            f"all rely on its current shape; use the out-of-place form, {out_of_place}")
    alias = object.__new__(Tensor)  # x's array alone: computing the view records nothing about x
    alias.data = x.data
    x.data = view_op(alias, *args).data
    return x


def squeeze_(x, dim=None):
    """In-place squeeze: drop size-1 dims (all, or those among `dim`)."""
    return _reshape_in_place(x, "squeeze_", shape.squeeze, dim)


def unsqueeze_(x, dim):
    """In-place unsqueeze: insert a size-1 dim at `dim`."""
    return _reshape_in_place(x, "unsqueeze_", shape.unsqueeze, dim)


def t_(x):
    """In-place t(): transpose a tensor of at most 2 dims."""
    return _reshape_in_place(x, "t_", shape.t)


def transpose_(x, dim0, dim1):
    """In-place transpose of dims dim0 and dim1."""
    return _reshape_in_place(x, "transpose_", shape.transpose, dim0, dim1)


def resize_(x, *size, memory_format=None):
    """x reshaped to `size` in place, keeping its elements in order (C order) as far as both sizes go, as
    PyTorch's resize_ keeps its storage's; new elements are zeros (PyTorch leaves them uninitialised).
    Observers size an empty buffer this way: `buf.resize_(shape); buf.copy_(value)`. Unlike the ops
    above it replaces the storage, as PyTorch's may: views taken of x before are stale after it (take
    them again), and x's version moves on, so a backward pass that saved x refuses to run."""
    from ..creation import _shape

    if not isinstance(x, Tensor):
        raise TypeError(f"resize_: expected a Tensor, got {type(x).__name__}")
    new_shape = _shape(size)
    if any(n < 0 for n in new_shape):
        raise ValueError(f"resize_: sizes must be >= 0, got {new_shape}")
    if (x.requires_grad and is_grad_enabled()) or x.grad_fn is not None or x._base is not None:
        raise AutogradError("resize_: cannot resize a tensor that requires grad, is part of a graph or is a view; "
                            "make a new one instead, x = x.new_zeros(size)")
    flat = x.data.reshape(-1)
    out = x.xp.zeros(new_shape, dtype=flat.dtype)
    kept = min(flat.size, out.size)
    out.reshape(-1)[:kept] = flat[:kept]
    x.data = out
    if x._version_box is not None:
        x._bump_version()
    return x
