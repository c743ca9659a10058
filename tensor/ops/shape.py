"""Views: reshape, view, flatten, squeeze, transpose, permute, expand, ... (and Tensor.T / Tensor.mT).

Every op here is one of three Functions, each the inverse of itself in backward:
  Reshape (reshape, view, flatten, unflatten, squeeze, unsqueeze, view_as, reshape_as): reshapes back;
  Permute (permute, transpose, t, movedim, swapaxes, T, mT): applies the inverse permutation;
  Expand (expand, expand_as): sums the broadcast dimensions away with sum_to.
Their outputs share memory and the version counter with the input (`view_of = 0`), so an
in-place change to either is seen by autograd.

view() follows reshape(): where the input's strides do not allow a view (a transposed tensor
flattened, say) NumPy copies, where PyTorch's view() would raise; such a copy is then not
marked as a view. Both raise for sizes that do not fit.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from ..autograd import Function
from ..errors import ShapeError
from ._util import normalize_dim, sum_to

# ------------------------------------------------------------------------------------ Functions


class Reshape(Function):
    view_of = 0

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        out = x.reshape(shape)
        # A view's base is x, or x's own base; otherwise NumPy/CuPy may have copied (a copy's base is
        # the temporary it copied into). The base test is a tenth of the cost of reading x.flags.
        base = out.base
        if base is not x and base is not x.base and not ctx.xp.may_share_memory(out, x):
            ctx.view_of = None
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.in_shape), None

    backward_graph = backward  # Tensor.reshape is recorded


class Permute(Function):
    view_of = 0

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(Permute.inverse(ctx.axes)), None

    @staticmethod
    def backward_graph(ctx, grad):
        return grad.permute(Permute.inverse(ctx.axes)), None

    @staticmethod
    def inverse(axes):
        inverse = [0] * len(axes)
        for position, axis in enumerate(axes):
            inverse[axis] = position
        return tuple(inverse)


class Expand(Function):
    view_of = 0

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return ctx.xp.broadcast_to(x, shape)  # read-only, like writing to an expanded torch tensor

    @staticmethod
    def backward(ctx, grad):
        return sum_to(grad, ctx.in_shape), None

    backward_graph = backward  # sum_to works on Tensors too


# ---------------------------------------------------------------------------------- size parsing


def sizes_arg(args, op):
    """`f(2, 3)`, `f((2, 3))` and `f([2, 3])` as one tuple of ints."""
    if len(args) == 1:
        args = args[0]
        if type(args) is int:
            return (args,)
        if not isinstance(args, (tuple, list)):
            args = (args,)
    try:
        return tuple(map(operator.index, args))
    except TypeError:
        raise TypeError(f"{op}: sizes must be ints (or one tuple of ints), got {args!r}") from None


def dims_kwarg(args, kwargs, op):
    """torch's `f(x, dims=(...))` spelling of `f(x, *dims)`, as the positional tuple."""
    if not kwargs:
        return args
    unknown = sorted(set(kwargs) - {"dims"})
    if unknown:
        raise TypeError(f"{op}() got an unexpected keyword argument {unknown[0]!r} (the keyword is dims=)")
    if args:
        raise TypeError(f"{op}: dims given both positionally {args!r} and as dims={kwargs['dims']!r}; give one")
    return (kwargs["dims"],)


def _target_shape(shape, in_shape, op):
    """`shape`, checked to hold as many elements as `in_shape`; a single -1 is left for the
    array's own reshape to infer (it infers exactly what we check here)."""
    count = math.prod(in_shape)
    product = math.prod(shape)
    if product == count and min(shape, default=0) >= 0:
        return shape  # the common case: nothing to infer
    if product < 0 and min(shape) == -1 and shape.count(-1) == 1 and count % -product == 0:
        return shape  # one -1, and the other sizes divide the element count
    if min(shape, default=0) < -1 or shape.count(-1) > 1:
        raise ShapeError(f"{op}: invalid shape {shape}: sizes must be >= 0, with at most one -1 to infer")
    if -1 not in shape:
        raise ShapeError(
            f"{op}: cannot reshape {tuple(in_shape)} ({count} elements) to {shape} ({math.prod(shape)} elements)"
        )
    known = -math.prod(shape)
    if known == 0 or count % known:
        raise ShapeError(
            f"{op}: cannot reshape {tuple(in_shape)} ({count} elements) to {shape}: the -1 cannot be inferred, "
            f"{count} is not a multiple of {known}"
        )
    return tuple(count // known if n == -1 else n for n in shape)


def _permutation(dims, ndim, op):
    axes = tuple(normalize_dim(d, ndim, op) for d in dims)
    if len(axes) != ndim or sorted(axes) != list(range(ndim)):
        raise ShapeError(f"{op}: dims {tuple(dims)} are not a permutation of the {ndim} dimensions of the tensor")
    return axes


# ------------------------------------------------------------------------------------- reshapes


def _sizes_or_keyword(sizes, keyword, op, name):
    """The sizes given as torch's keyword (x.reshape(shape=...), x.view(size=...)), refused beside positional
    ones; callers test `keyword is not None` themselves, to keep a plain x.reshape(...) free of this call."""
    if sizes:
        raise TypeError(f"{op}: give the sizes either positionally or as {name}=, not both (got {sizes} and "
                        f"{name}={keyword})")
    return (keyword,)


def reshape(x, *sizes, shape=None):
    """x's elements in `shape` (ints or one tuple, or shape=; one size may be -1)."""
    if shape is not None:
        sizes = _sizes_or_keyword(sizes, shape, "reshape", "shape")
    return _reshape(x, sizes, "reshape")


def view(x, *shape, size=None):
    """Like reshape (see the module docstring for how it differs from PyTorch's view); size= as in torch."""
    if size is not None:
        shape = _sizes_or_keyword(shape, size, "view", "size")
    if len(shape) == 1 and isinstance(shape[0], (str, type, np.dtype)):
        raise TypeError(f"view: reinterpreting as dtype {shape[0]!r} is not supported; use .to(dtype) to convert")
    return _reshape(x, shape, "view")


def _reshape(x, sizes, op):
    """Reshape to `sizes` as the caller got them: ints, or one tuple or list of them."""
    shape = sizes[0] if len(sizes) == 1 and type(sizes[0]) is not int else sizes
    # The common call, plain ints of at least -1 in a tuple, goes straight to the array's reshape, which
    # checks the element count itself; anything else (NumPy ints, a list, torch.Size, a size below -1,
    # which NumPy would take as -1) is parsed and checked first.
    if type(shape) is not tuple:
        shape = _target_shape(sizes_arg(sizes, op), x.data.shape, op)
    else:
        for n in shape:  # (a loop: all() over a generator costs more than the reshape itself)
            if type(n) is not int or n < -1:
                shape = _target_shape(sizes_arg(sizes, op), x.data.shape, op)
                break
    try:
        return Reshape.apply(x, shape)
    except ValueError:
        _target_shape(shape, x.data.shape, op)
        raise


def view_as(x, other):
    return view(x, other.data.shape)


def reshape_as(x, other):
    return reshape(x, other.data.shape)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one; returns x itself when there is nothing to merge."""
    shape = x.data.shape
    if not shape:
        return Reshape.apply(x, (1,))
    start = normalize_dim(start_dim, len(shape), "flatten")
    end = normalize_dim(end_dim, len(shape), "flatten")
    if start > end:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {tuple(shape)}")
    if start == end:
        return x
    return Reshape.apply(x, shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :])


def unflatten(x, dim, sizes):
    """Split dim `dim` into `sizes` (one of which may be -1)."""
    shape = x.data.shape
    d = normalize_dim(dim, len(shape), "unflatten")
    sizes = sizes_arg((sizes,), "unflatten")
    if not sizes:
        raise ShapeError("unflatten: sizes must not be empty")
    try:
        sizes = _target_shape(sizes, (shape[d],), "unflatten")
        if -1 in sizes:  # inferred from dim d alone, not the whole shape (another dim may be 0)
            sizes = tuple(shape[d] // -math.prod(sizes) if n == -1 else n for n in sizes)
    except ShapeError:
        raise ShapeError(
            f"unflatten: sizes {sizes} do not split dim {dim} of size {shape[d]} (tensor of shape {tuple(shape)})"
        ) from None
    return Reshape.apply(x, shape[:d] + sizes + shape[d + 1 :])


def squeeze(x, dim=None):
    """Drop size-1 dims: all of them, or those among `dim` (int or tuple; others are kept silently)."""
    shape = x.data.shape
    if dim is None:
        dims = range(len(shape))
    else:
        dims = {normalize_dim(d, len(shape), "squeeze") for d in ((dim,) if isinstance(dim, int) else dim)}
    drop = {d for d in dims if shape and shape[d] == 1}
    return Reshape.apply(x, tuple(n for d, n in enumerate(shape) if d not in drop))


def unsqueeze(x, dim):
    """Insert a size-1 dim at `dim` (in -ndim-1..ndim)."""
    shape = x.data.shape
    d = normalize_dim(dim, len(shape) + 1, "unsqueeze")
    return Reshape.apply(x, shape[:d] + (1,) + shape[d:])


# ----------------------------------------------------------------------------------- permutations


def permute(x, *dims, **kwargs):
    """Reorder the dims: out.shape[i] == x.shape[dims[i]] (ints, one tuple, or dims=)."""
    dims = sizes_arg(dims_kwarg(dims, kwargs, "permute"), "permute")
    return Permute.apply(x, _permutation(dims, x.data.ndim, "permute"))


def transpose(x, dim0, dim1):
    ndim = x.data.ndim
    axes = list(range(ndim))
    d0, d1 = normalize_dim(dim0, ndim, "transpose"), normalize_dim(dim1, ndim, "transpose")
    if ndim:
        axes[d0], axes[d1] = d1, d0
    return Permute.apply(x, tuple(axes))


swapaxes = transpose


def t(x):
    """Transpose a 2-D tensor; 0-D and 1-D tensors come back unchanged (as in PyTorch)."""
    ndim = x.data.ndim
    if ndim > 2:
        raise ShapeError(
            f"t: expects a tensor with at most 2 dimensions, got shape {tuple(x.data.shape)}; "
            "use transpose(dim0, dim1) or .mT for batches of matrices"
        )
    return Permute.apply(x, (1, 0) if ndim == 2 else tuple(range(ndim)))


def movedim(x, source, destination):
    """Move dims `source` to positions `destination` (ints or equal-length tuples); the rest keep their order."""
    ndim = x.data.ndim
    source = (source,) if isinstance(source, int) else tuple(source)
    destination = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(source) != len(destination):
        raise ShapeError(f"movedim: source {source} and destination {destination} have different lengths")
    src = [normalize_dim(d, ndim, "movedim") for d in source]
    dst = [normalize_dim(d, ndim, "movedim") for d in destination]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError(f"movedim: source {source} and destination {destination} must not repeat a dim")
    order = [d for d in range(ndim) if d not in src]
    for to, frm in sorted(zip(dst, src)):
        order.insert(to, frm)
    return Permute.apply(x, tuple(order))


def reverse_dims(x):
    """Tensor.T: all dims reversed."""
    return Permute.apply(x, tuple(range(x.data.ndim - 1, -1, -1)))


def matrix_transpose(x):
    """Tensor.mT: the last two dims swapped (a batch of transposed matrices)."""
    ndim = x.data.ndim
    if ndim < 2:
        raise ShapeError(f"mT: expects a tensor with at least 2 dimensions, got shape {tuple(x.data.shape)}")
    return Permute.apply(x, tuple(range(ndim - 2)) + (ndim - 1, ndim - 2))


# ---------------------------------------------------------------------------------------- expand


def expand(x, *sizes):
    """x broadcast to `sizes` without copying: new dims go in front, -1 keeps a size, only size-1 dims grow."""
    sizes = sizes_arg(sizes, "expand")
    shape = x.data.shape
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise ShapeError(f"expand: target {sizes} has fewer dims than the tensor's shape {tuple(shape)}")
    if min(sizes, default=0) < 0:
        sizes = _keep_sizes(sizes, shape, lead)
    for n, target in zip(shape, sizes[lead:]):
        if n != target and n != 1:
            raise ShapeError(
                f"expand: cannot expand {tuple(shape)} to {sizes}: only size-1 dims can grow (a size {n} dim "
                f"would become {target}); use repeat() to copy the data"
            )
    return Expand.apply(x, sizes)


def _keep_sizes(sizes, shape, lead):
    """Replace each -1 in `sizes` by the tensor's size there."""
    out = list(sizes)
    for i, n in enumerate(sizes):
        if n == -1 and i >= lead:
            out[i] = shape[i - lead]
        elif n < 0:
            where = "a new leading dim" if i < lead else f"dim {i}"
            raise ShapeError(f"expand: invalid size {n} for {where} in {sizes}; -1 only keeps an existing size")
    return tuple(out)


def expand_as(x, other):
    return expand(x, other.data.shape)
