"""Joining tensors (cat, stack, hstack, vstack, dstack, column_stack) and taking them apart (split, chunk,
unbind, tensor_split, hsplit, vsplit, dsplit).

cat and stack promote mixed dtypes like torch.cat. split, chunk and unbind return a tuple of
views made by ONE multi-output node, whose backward puts the pieces' gradients back together
(the engine hands it zeros for pieces that got no gradient).
"""
from __future__ import annotations

import operator

import numpy as np

from .. import dtypes
from ..autograd import Function
from ..errors import DeviceError, ShapeError
from ..tensor import Tensor
from ._util import cast, normalize_dim, numpy_dim_names
from .shape import reshape

# ------------------------------------------------------------------------------------ cat / stack


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim, ctx.sizes = dim, [a.shape[dim] for a in arrays]
        return ctx.xp.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        lead = (slice(None),) * ctx.dim
        grads, start = [None], 0
        for size, need in zip(ctx.sizes, ctx.needs_input_grad[1:]):
            grads.append(grad[lead + (slice(start, start + size),)] if need else None)
            start += size
        return tuple(grads)

    backward_graph = backward  # Tensor indexing is recorded


class Stack(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        return ctx.xp.stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        lead = (slice(None),) * ctx.dim
        # The Ellipsis keeps a 0-d piece a 0-d array (a plain index would give a NumPy scalar).
        return (None,) + tuple(
            grad[lead + (i, Ellipsis)] if need else None for i, need in enumerate(ctx.needs_input_grad[1:])
        )

    backward_graph = backward


def cat(tensors, dim=0, *, axis=None):
    """Join tensors along an existing dim; all other sizes must match."""
    if axis is not None:
        dim, _ = numpy_dim_names("cat", dim, False, axis, None, default_dim=0)
    tensors = _checked_list(tensors, "cat")
    shapes = [t.data.shape for t in tensors]
    if (0,) in shapes and any(len(shape) != 1 for shape in shapes):
        tensors, shapes = _legacy_empty_pieces(tensors, shapes, dim)
    first = shapes[0]
    if not first:
        _refuse_zero_dimensional(shapes)
    d = normalize_dim(dim, len(first), "cat")
    try:
        return Cat.apply(d, *_promoted(tensors))
    except (ValueError, IndexError):
        # concatenate checks the shapes, and Cat finds no dim d in a later 0-d piece: name the first
        # misfit here, off the hot path
        _check_cat_shapes(shapes, d, dim)
        raise


def _refuse_zero_dimensional(shapes):
    """Name the first 0-d tensor, as torch does (wherever it stands, before any other misfit)."""
    position = next(i for i, shape in enumerate(shapes) if not shape)
    raise ShapeError(f"cat: tensor {position} is zero-dimensional and cannot be concatenated; use stack, or "
                     "unsqueeze(0) it")


def _legacy_empty_pieces(tensors, shapes, dim):
    """PyTorch's legacy rule: a 1-D empty tensor joins a cat of tensors of any shape. Each becomes a
    piece of size 0 along the joined dim, shaped like the first other tensor, so that it still takes
    part in the dtype promotion and gets its (empty) gradient."""
    if () in shapes:  # a 0-d tensor, which cat refuses wherever it stands
        _refuse_zero_dimensional(shapes)
    model = next(shape for shape in shapes if shape != (0,))
    d = normalize_dim(dim, len(model), "cat")
    piece = model[:d] + (0,) + model[d + 1 :]
    tensors = [reshape(t, piece) if shape == (0,) else t for t, shape in zip(tensors, shapes)]
    return tensors, [t.data.shape for t in tensors]


def _check_cat_shapes(shapes, d, dim):
    if () in shapes:
        _refuse_zero_dimensional(shapes)
    first = shapes[0]
    for i, shape in enumerate(shapes):
        if shape != first and (len(shape) != len(first) or shape[:d] != first[:d] or shape[d + 1 :] != first[d + 1 :]):
            raise ShapeError(
                f"cat: tensor {i} has shape {tuple(shape)} but tensor 0 has shape {tuple(first)}; sizes must match "
                f"in every dim except the joined dim {dim}"
            )


concat = cat


def stack(tensors, dim=0):
    """Join equal-shape tensors along a new dim `dim` (in -ndim-1..ndim)."""
    tensors = _checked_list(tensors, "stack")
    first = tensors[0].data.shape
    for i, t in enumerate(tensors):
        if t.data.shape != first:
            raise ShapeError(
                f"stack: tensor {i} has shape {tuple(t.data.shape)} but tensor 0 has shape {tuple(first)}; "
                "stack needs equal shapes"
            )
    return Stack.apply(normalize_dim(dim, len(first) + 1, "stack"), *_promoted(tensors))


def hstack(tensors):
    """Join along dim 1, or along dim 0 when the tensors are 1-D (0-D tensors count as 1-D)."""
    tensors = [_at_least(t, 1) for t in _checked_list(tensors, "hstack")]
    return cat(tensors, 0 if tensors[0].data.ndim == 1 else 1)


def vstack(tensors):
    """Join along dim 0, treating 1-D tensors of size n as rows of shape (1, n)."""
    return cat([_at_least(t, 2) for t in _checked_list(tensors, "vstack")], 0)


def dstack(tensors):
    """Join along dim 2 (depth), after giving each tensor 3 dims: (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    from .dims import atleast_3d

    return cat(atleast_3d(_checked_list(tensors, "dstack")), 2)


def column_stack(tensors):
    """Join along dim 1, 0-d and 1-D tensors first made into columns (n,) -> (n, 1)."""
    tensors = _checked_list(tensors, "column_stack")
    return cat([reshape(t, (t.data.size, 1)) if t.data.ndim < 2 else t for t in tensors], 1)


def _at_least(t, ndim):
    shape = t.data.shape
    return t if len(shape) >= ndim else reshape(t, (1,) * (ndim - len(shape)) + shape)


def _checked_list(tensors, op):
    """A non-empty list of Tensors on one device, with an error naming the first offender."""
    if isinstance(tensors, Tensor):
        raise TypeError(f"{op}: expected a sequence of tensors, got a single Tensor; wrap it in a list")
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    first = None
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: element {i} is a {type(t).__name__}, not a Tensor")
        # Compare array types (and CuPy devices) rather than Device objects: cheaper, same answer.
        data = t.data
        if first is None:
            first = data
        elif type(data) is not type(first) or (type(data) is not np.ndarray and data.device != first.device):
            raise DeviceError(
                f"{op}: tensor {i} is on {t.device} but tensor 0 is on {tensors[0].device}; "
                "move them to one device with .to()"
            )
    return tensors


def _promoted(tensors):
    """The tensors cast to their common dtype (torch.cat's promotion)."""
    dtype = tensors[0].data.dtype
    for t in tensors:  # a plain loop: all() over a generator costs more for the usual few tensors
        if t.data.dtype != dtype:
            break
    else:
        return tensors
    for t in tensors[1:]:
        dtype = dtypes.promote_types(dtype, t.data.dtype)
    return [cast(t, dtype) for t in tensors]


# ------------------------------------------------------------------------- split / chunk / unbind


class Split(Function):
    view_of = 0

    @staticmethod
    def forward(ctx, x, sizes, dim):
        ctx.dim = dim
        lead = (slice(None),) * dim
        pieces, start = [], 0
        for size in sizes:
            pieces.append(x[lead + (slice(start, start + size),)])
            start += size
        return tuple(pieces)

    @staticmethod
    def backward(ctx, *grads):
        return ctx.xp.concatenate(grads, axis=ctx.dim), None, None

    @staticmethod
    def backward_graph(ctx, *grads):
        return cat(grads, ctx.dim), None, None


class Unbind(Function):
    view_of = 0

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        lead = (slice(None),) * dim
        return tuple(x[lead + (i, Ellipsis)] for i in range(x.shape[dim]))

    @staticmethod
    def backward(ctx, *grads):
        return ctx.xp.stack(grads, axis=ctx.dim), None

    @staticmethod
    def backward_graph(ctx, *grads):
        return stack(grads, ctx.dim), None


def split(x, split_size_or_sections=None, dim=0, *, split_size=None):
    """Views of x along `dim`: pieces of one size (the last may be smaller), or of the given sizes.
    (`split_size=` is the Tensor method's name for the sizes in PyTorch, `split_size_or_sections=` the
    function's: both are taken.)"""
    if (split_size is None) == (split_size_or_sections is None):
        raise TypeError("split: pass the sizes once, as split_size_or_sections (or split_size), e.g. x.split(2)")
    if split_size is not None:
        split_size_or_sections = split_size
    shape = x.data.shape
    if not shape:
        raise ShapeError("split: cannot split a zero-dimensional tensor")
    d = normalize_dim(dim, len(shape), "split")
    n = shape[d]
    if isinstance(split_size_or_sections, (tuple, list)):
        sizes = tuple(map(operator.index, split_size_or_sections))
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ShapeError(
                f"split: sections {list(sizes)} must be non-negative and sum to the size {n} of dim {dim} "
                f"(tensor of shape {tuple(shape)})"
            )
    else:
        size = operator.index(split_size_or_sections)
        if size <= 0 and not (size == 0 and n == 0):
            raise ShapeError(f"split: split_size must be positive, got {size}")
        sizes = (size,) * (n // size) + ((n % size,) if n % size else ()) if n else (0,)
    return Split.apply(x, sizes, d)


def chunk(x, chunks, dim=0):
    """Split x into `chunks` nearly equal views along `dim` (fewer if the size does not allow it)."""
    chunks = operator.index(chunks)
    if chunks <= 0:
        raise ShapeError(f"chunk: chunks must be positive, got {chunks}")
    shape = x.data.shape
    if not shape:
        raise ShapeError("chunk: cannot chunk a zero-dimensional tensor")
    n = shape[normalize_dim(dim, len(shape), "chunk")]
    if n == 0:  # PyTorch keeps the number of chunks for an empty dim
        return split(x, [0] * chunks, dim)
    return split(x, -(-n // chunks), dim)


def unbind(x, dim=0):
    """The slices of x along `dim`, as a tuple of views with that dim removed."""
    if not x.data.ndim:
        raise ShapeError("unbind: cannot unbind a zero-dimensional tensor")
    return Unbind.apply(x, normalize_dim(dim, x.data.ndim, "unbind"))


# ------------------------------------------------------------------------- tensor_split / hsplit / vsplit


class SliceSplit(Function):
    """Views x[start:stop] along `dim` for each (start, stop): tensor_split's pieces, which may
    overlap (indices need not increase), so backward adds each piece's gradient into place."""

    view_of = 0

    @staticmethod
    def forward(ctx, x, bounds, dim):
        ctx.shape, ctx.dim, ctx.bounds = x.shape, dim, bounds
        lead = (slice(None),) * dim
        return tuple(x[lead + (slice(start, stop),)] for start, stop in bounds)

    @staticmethod
    def backward(ctx, *grads):
        grad = ctx.xp.zeros(ctx.shape, grads[0].dtype)
        lead = (slice(None),) * ctx.dim
        for (start, stop), piece in zip(ctx.bounds, grads):
            grad[lead + (slice(start, stop),)] += piece
        return grad, None, None

    @staticmethod
    def backward_graph(ctx, *grads):
        from .index import IndexGradient

        lead = (slice(None),) * ctx.dim
        total = None
        for (start, stop), piece in zip(ctx.bounds, grads):  # pieces may overlap: each is added in place
            placed = IndexGradient.apply(piece, ctx.shape, lead + (slice(start, stop),), None)
            total = placed if total is None else total + placed
        return total, None, None


def tensor_split(x, indices_or_sections, dim=0):
    """Views of x along `dim`: `sections` (an int) nearly equal pieces, the first size % sections one
    longer; or the pieces between the given indices (a list, or a 1-D int tensor), sliced as Python does."""
    shape = x.data.shape
    if not shape:
        raise ShapeError("tensor_split: expects a tensor with at least one dimension, got a 0-d tensor")
    d = normalize_dim(dim, len(shape), "tensor_split")
    n = shape[d]
    split_at = _split_points(indices_or_sections)
    if isinstance(split_at, int):
        if split_at <= 0:
            raise ShapeError(f"tensor_split: number of sections must be positive, got {split_at}")
        size, extra = divmod(n, split_at)
        split_at = [k * size + min(k, extra) for k in range(1, split_at)]
    edges = [0] + [min(max(i + n if i < 0 else i, 0), n) for i in split_at] + [n]
    bounds = tuple((start, max(start, stop)) for start, stop in zip(edges, edges[1:]))
    return SliceSplit.apply(x, bounds, d)


def _split_points(indices_or_sections):
    """An int (sections) or a list of split indices, from an int, a sequence or an int tensor."""
    if isinstance(indices_or_sections, Tensor):
        if indices_or_sections.data.dtype.kind not in "iu" or indices_or_sections.ndim > 1:
            raise TypeError("tensor_split: a tensor indices_or_sections must be a 0-D or 1-D integer tensor, got "
                            f"{indices_or_sections._describe()}")
        values = indices_or_sections.tolist()
        return values if indices_or_sections.ndim else int(values)
    if isinstance(indices_or_sections, (tuple, list)):
        return [operator.index(i) for i in indices_or_sections]
    return operator.index(indices_or_sections)


def hsplit(x, indices_or_sections):
    """tensor_split along dim 1 (dim 0 for a 1-D tensor); an int must divide that dim evenly."""
    if x.data.ndim == 0:
        raise ShapeError("hsplit: expects a tensor with at least 1 dimension, got a 0-d tensor")
    return _even_split(x, indices_or_sections, 1 if x.data.ndim > 1 else 0, "hsplit")


def vsplit(x, indices_or_sections):
    """tensor_split along dim 0 of a tensor with at least 2 dims; an int must divide that dim evenly."""
    if x.data.ndim < 2:
        raise ShapeError(f"vsplit: expects a tensor with at least 2 dimensions, got shape {tuple(x.data.shape)}")
    return _even_split(x, indices_or_sections, 0, "vsplit")


def dsplit(x, indices_or_sections):
    """tensor_split along dim 2 of a tensor with at least 3 dims; an int must divide that dim evenly."""
    if x.data.ndim < 3:
        raise ShapeError(f"dsplit: expects a tensor with at least 3 dimensions, got shape {tuple(x.data.shape)}")
    return _even_split(x, indices_or_sections, 2, "dsplit")


def _even_split(x, indices_or_sections, dim, op):
    split_at = _split_points(indices_or_sections)
    size = x.data.shape[dim]
    if isinstance(split_at, int) and (split_at <= 0 or size % split_at):
        raise ShapeError(f"{op}: dim {dim} of size {size} cannot be split into {split_at} equal parts; give a "
                         "number of sections that divides it, or a list of indices")
    return tensor_split(x, split_at, dim)


def split_with_sizes(x, split_sizes, dim=0):
    """split(x, list(split_sizes), dim): views of the given sizes, which must add up to x.shape[dim]."""
    return split(x, list(split_sizes), dim)
