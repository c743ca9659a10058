"""Matrix products: matmul (and @), mm, bmm, dot, outer, einsum.

matmul follows torch.matmul (and NumPy): 1-D operands get a dim prepended (left) or appended
(right) that is removed again, and batch dims broadcast; the gradients of broadcast batch dims
are summed back with sum_to. Everything goes straight to BLAS through `@`: a batch of rows times
one matrix is run as a single (rows, k) @ (k, n) product, which is the common case of a Linear
layer on (batch, seq, features) and much faster than NumPy's loop over the batch.
"""
from __future__ import annotations

import functools
import math
import string

import numpy as np

from .. import dtypes
from ..amp import autocast_inputs
from ..autograd import Function
from ..errors import ShapeError
from ..graph_backward import SavedVjp, saved_in_graph
from ..tensor import Tensor, _wrap
from ._util import cast, promote, sum_to

# ----------------------------------------------------------------------------------------- matmul


class Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            if a.ndim == 2 and b.ndim == 2 and ctx.xp is np:
                return np.dot(a, b)  # see _NUMPY_DOT
            return _rows_at_matrix(a, b) if b.ndim == 2 else a @ b
        except ValueError:
            raise _matmul_error("matmul", a.shape, b.shape) from None

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        if a.ndim == 2 and b.ndim == 2 and ctx.xp is np:  # see _NUMPY_DOT
            return (np.dot(grad, b.T) if need_a else None), (np.dot(a.T, grad) if need_b else None)
        if a.ndim == 1 and b.ndim == 1:  # a dot product: grad is 0-d
            return (grad * b if need_a else None), (grad * a if need_b else None)
        # Give 1-D operands (and grad) back the dim matmul added, so the 2-D rules below apply.
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        g = grad
        if a.ndim == 1:
            g = ctx.xp.expand_dims(g, -2)
        if b.ndim == 1:
            g = ctx.xp.expand_dims(g, -1)
        ga = _fold(_grad_left(g, b2), a2.shape, a.shape) if need_a else None
        gb = _fold(_grad_right(a2, g, b2), b2.shape, b.shape) if need_b else None
        return ga, gb

    @staticmethod
    def backward_graph(ctx, grad):
        a, b = saved_in_graph(ctx)
        need_a, need_b = ctx.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:
            return (grad * b if need_a else None), (grad * a if need_b else None)
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        g = grad
        if a.ndim == 1:
            g = g.unsqueeze(-2)
        if b.ndim == 1:
            g = g.unsqueeze(-1)
        ga = _fold(g @ b2.mT, a2.shape, a.shape) if need_a else None
        gb = _fold(a2.mT @ g, b2.shape, b.shape) if need_b else None
        return ga, gb


# _NUMPY_DOT: for two 2-D NumPy operands np.dot is the same product as `@`, bit for bit (both call
# BLAS gemm), but np.matmul spends about 1.5 us more getting there: most of the op's time on small
# matrices. CuPy keeps `@`.


def _rows_at_matrix(x, w):
    """x (..., m, k) @ w (k, n) as one BLAS call over all rows when x's rows are contiguous."""
    if x.ndim > 2 and x.flags.c_contiguous:
        return (x.reshape(math.prod(x.shape[:-1]), x.shape[-1]) @ w).reshape(x.shape[:-1] + (w.shape[-1],))
    return x @ w


def _grad_left(g, b):
    """g @ b^T: the gradient of a @ b with respect to a (before folding broadcast dims)."""
    return _rows_at_matrix(g, b.T) if b.ndim == 2 else g @ b.swapaxes(-1, -2)


def _grad_right(a, g, b):
    """a^T @ g: the gradient with respect to b; for one matrix b, summed over a's batch in one product."""
    if b.ndim == 2 and a.ndim > 2:
        rows = math.prod(a.shape[:-1])
        return a.reshape(rows, a.shape[-1]).T @ g.reshape(rows, g.shape[-1])
    return a.swapaxes(-1, -2) @ g


def _fold(grad, shape2d, shape):
    """Sum broadcast batch dims away, then drop the dim that matmul added to a 1-D operand."""
    grad = sum_to(grad, shape2d)
    return grad if grad.shape == shape else grad.reshape(shape)


def _matmul_error(op, sa, sb):
    sa, sb = tuple(sa), tuple(sb)
    if not sa or not sb:
        return ShapeError(f"{op}: {sa} @ {sb}: both operands need at least 1 dimension")
    inner_b = sb[-2] if len(sb) > 1 else sb[0]
    if sa[-1] != inner_b:
        return ShapeError(f"{op}: {sa} @ {sb}: inner sizes {sa[-1]} and {inner_b} differ")
    return ShapeError(f"{op}: {sa} @ {sb}: batch dims {sa[:-2]} and {sb[:-2]} do not broadcast")


def matmul(a, b):
    """torch.matmul: dot, matrix-vector, matrix-matrix or broadcast batched product."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        _check_tensors("matmul", a, b)  # raises
    if type(a.data) is not np.ndarray or type(b.data) is not np.ndarray:  # autocast only casts CUDA tensors
        a, b = autocast_inputs(a, b)  # float16 on CUDA inside tensor.amp.autocast; a no-op otherwise
    if a.data.dtype is not b.data.dtype:  # both are Tensors here: skip the call in the common case
        a, b = promote(a, b)
    return Matmul.apply(a, b)


def _check_tensors(op, a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{op}: both operands must be tensors, got {type(a).__name__} and {type(b).__name__}")


def mm(a, b):
    """(n, k) @ (k, m); no broadcasting."""
    _check_ndims("mm", a, b, 2, "use matmul for batches or vectors")
    return matmul(a, b)


def bmm(a, b):
    """(B, n, k) @ (B, k, m) with equal batch sizes; no broadcasting."""
    _check_ndims("bmm", a, b, 3, "use matmul to broadcast")
    if a.data.shape[0] != b.data.shape[0]:
        raise ShapeError(f"bmm: {tuple(a.shape)} @ {tuple(b.shape)}: batch sizes {a.shape[0]} and {b.shape[0]} differ")
    return matmul(a, b)


def dot(a, b):
    """The inner product of two 1-D tensors of equal length."""
    _check_ndims("dot", a, b, 1, "use matmul or einsum for higher dims")
    return matmul(a, b)


def _check_ndims(op, a, b, ndim, hint):
    _check_tensors(op, a, b)
    sa, sb = tuple(a.shape), tuple(b.shape)
    if len(sa) != ndim or len(sb) != ndim:
        raise ShapeError(f"{op}: expects two {ndim}-D tensors, got shapes {sa} and {sb}; {hint}")
    if sa[-1] != sb[-2 if ndim > 1 else 0]:
        raise _matmul_error(op, sa, sb)


class Outer(SavedVjp):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return ctx.xp.outer(a, b)

    @staticmethod
    def vjp(ctx, grad, a, b):
        """The input gradients, on arrays (backward) or on Tensors (backward_graph)."""
        need_a, need_b = ctx.needs_input_grad
        return (grad @ b if need_a else None), (a @ grad if need_b else None)


def outer(a, b):
    """out[i, j] = a[i] * b[j] for 1-D a and b."""
    _check_tensors("outer", a, b)
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"outer: expects two 1-D tensors, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = promote(a, b)
    return Outer.apply(a, b)


# ----------------------------------------------------------------------------------------- einsum


class Einsum(Function):
    """One einsum over explicit subscripts (no '...', no implicit output: see _parse)."""

    @staticmethod
    def forward(ctx, spec, *arrays):
        inputs, output, equation = spec
        ctx.spec = spec
        ctx.save_for_backward(*arrays)
        try:
            out = ctx.xp.einsum(f"{','.join(inputs)}->{output}", *arrays, optimize=_worth_optimizing(arrays))
        except ValueError as exc:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ShapeError(f"einsum: {equation!r} does not fit operands of shapes {shapes} ({exc})") from None
        # With one operand and nothing summed, NumPy returns a view (a transpose or a diagonal).
        if len(arrays) == 1 and ctx.xp.may_share_memory(out, arrays[0]):
            ctx.view_of = 1
        return out

    @staticmethod
    def backward(ctx, grad):
        arrays = ctx.saved_tensors
        inputs, output, _ = ctx.spec
        grads = [None]
        for i, need in enumerate(ctx.needs_input_grad[1:]):
            grads.append(_einsum_grad(ctx.xp, grad, arrays, inputs, output, i) if need else None)
        return tuple(grads)

    @staticmethod
    def backward_graph(ctx, grad):
        operands = saved_in_graph(ctx)
        inputs, output, _ = ctx.spec
        return (None,) + tuple(_einsum_grad_graph(ctx.xp, grad, operands, inputs, output, i) if need else None
                               for i, need in enumerate(ctx.needs_input_grad[1:]))


# Planning a contraction order (and handing it to BLAS) costs ~20 us in NumPy: worth it only for
# two or more operands with enough elements to multiply.
_OPTIMIZE_ABOVE = 4096


def _worth_optimizing(arrays):
    return len(arrays) > 1 and sum(a.size for a in arrays) > _OPTIMIZE_ABOVE


def _einsum_grad(xp, grad, arrays, inputs, output, i):
    """d(einsum)/d(operand i) applied to grad: an einsum of grad with the other operands."""
    target = arrays[i]
    equation, extras = _grad_equation(inputs, output, i)
    # Diagonals (a letter repeated in operand i) are rebuilt with identity matrices, and letters
    # summed over in operand i alone are broadcast back with vectors of ones.
    extra_arrays = [
        xp.eye(target.shape[axis], dtype=grad.dtype) if kind == "eye" else xp.ones(target.shape[axis], grad.dtype)
        for kind, axis in extras
    ]
    others = arrays[:i] + arrays[i + 1 :]
    operands = (grad, *others, *extra_arrays)
    result = sum_to(xp.asarray(xp.einsum(equation, *operands, optimize=_worth_optimizing(operands))), target.shape)
    # Broadcasting in forward (a size-1 dim meeting size n) is undone by sum_to above where operand i
    # had the 1, and by broadcasting here where another operand had it.
    return result if result.shape == target.shape else xp.broadcast_to(result, target.shape)


def _einsum_grad_graph(xp, grad, operands, inputs, output, i):
    """_einsum_grad on Tensors: the same einsum, recorded (the eye/ones operands are constants)."""
    target = operands[i]
    equation, extras = _grad_equation(inputs, output, i)
    extra = [_wrap(xp.eye(target.shape[axis], dtype=grad.dtype) if kind == "eye"
                    else xp.ones(target.shape[axis], grad.dtype)) for kind, axis in extras]
    lhs, _, rhs = equation.partition("->")
    result = Einsum.apply((tuple(lhs.split(",")), rhs, equation), grad, *operands[:i], *operands[i + 1:], *extra)
    result = sum_to(result, tuple(target.shape))
    return result if tuple(result.shape) == tuple(target.shape) else result.expand(tuple(target.shape))


@functools.lru_cache(maxsize=1024)
def _grad_equation(inputs, output, i):
    """The equation of operand i's gradient, and the (kind, axis) of each extra eye/ones operand."""
    used = set("".join(inputs))
    fresh = iter(c for c in string.ascii_letters if c not in used)
    target, extras, extra_subs, seen = [], [], [], set()
    for axis, letter in enumerate(inputs[i]):
        if letter in seen:  # a diagonal: out[..., j, ..., j'] = grad-ish[..., j, ...] * eye[j, j']
            renamed = next(fresh)
            extras.append(("eye", axis))
            extra_subs.append(letter + renamed)
            letter = renamed
        seen.add(letter)
        target.append(letter)
    available = set(output).union(*inputs[:i], *inputs[i + 1 :], *extra_subs)
    for axis, letter in enumerate(target):
        if letter not in available:
            extras.append(("ones", axis))
            extra_subs.append(letter)
    subs = [output, *inputs[:i], *inputs[i + 1 :], *extra_subs]
    return f"{','.join(subs)}->{''.join(target)}", tuple(extras)


@functools.lru_cache(maxsize=1024)
def _parse(equation, ndims):
    """(subscripts per operand, output subscripts, equation), all explicit: '...' becomes fresh
    letters (broadcast right-aligned), and a missing '->' gives the implicit output (ellipsis dims,
    then the letters that occur once, sorted)."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ShapeError(f"einsum: equation {equation!r} has {len(terms)} operand(s) but {len(ndims)} tensor(s) were given")
    letters = [c for c in lhs + rhs if c not in ".,-> "]
    bad = [c for c in letters if c not in string.ascii_letters]
    if bad:
        raise ValueError(f"einsum: invalid subscript {bad[0]!r} in {equation!r}; use letters a-z, A-Z and '...'")
    fresh = [c for c in string.ascii_letters if c not in letters]
    ellipsis = max((n - len(t.replace("...", "")) for t, n in zip(terms, ndims) if "..." in t), default=0)
    batch = "".join(fresh[:ellipsis])
    inputs = tuple(_expand_term(t, n, batch, equation, k) for k, (t, n) in enumerate(zip(terms, ndims)))
    if arrow:
        output = rhs.replace("...", batch)
        missing = [c for c in output if c not in "".join(inputs)]
        if missing or len(set(output)) != len(output):
            raise ValueError(f"einsum: output {rhs!r} of {equation!r} repeats a letter or names one no operand has")
    else:
        counts = "".join(t.replace("...", "") for t in terms)
        output = batch + "".join(sorted(c for c in set(counts) if counts.count(c) == 1))
    return inputs, output, equation


def _expand_term(term, ndim, batch, equation, k):
    named = len(term.replace("...", ""))
    if "..." in term:
        if ndim < named:
            raise ShapeError(f"einsum: operand {k} has {ndim} dims, fewer than the {named} letters of {term!r} in {equation!r}")
        return term.replace("...", batch[len(batch) - (ndim - named) :] if ndim > named else "")
    if ndim != named:
        raise ShapeError(f"einsum: operand {k} has {ndim} dims but {term!r} in {equation!r} names {named}")
    return term


def einsum(equation, *operands):
    """torch.einsum: einsum('ij,jk->ik', a, b) (or the operands as one list), with '...' and implicit output."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for k, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum: operand {k} is a {type(t).__name__}, not a Tensor")
    spec = _parse(equation, tuple(t.data.ndim for t in operands))
    dtype = operands[0].data.dtype
    if any(t.data.dtype != dtype for t in operands):
        dtype = functools.reduce(dtypes.promote_types, (t.data.dtype for t in operands))
        operands = tuple(cast(t, dtype) for t in operands)
    return Einsum.apply(spec, *operands)


# -------------------------------------------------------------------------------------- tensordot
def tensordot(a, b, dims=2):
    """Contract a's dims `dims[0]` with b's dims `dims[1]` (an int n: a's last n with b's first n).

    Composed of permute, reshape and one matrix product, so the gradient is matmul's.
    """
    _check_tensors("tensordot", a, b)
    dims_a, dims_b = _contracted_dims(a, b, dims)
    for da, db in zip(dims_a, dims_b):
        if a.shape[da] != b.shape[db]:
            raise ShapeError(f"tensordot: {tuple(a.shape)} and {tuple(b.shape)}: contracted dim {da} of a "
                             f"(size {a.shape[da]}) and dim {db} of b (size {b.shape[db]}) differ")
    free_a = [d for d in range(a.ndim) if d not in dims_a]
    free_b = [d for d in range(b.ndim) if d not in dims_b]
    k = math.prod(a.shape[d] for d in dims_a)
    rows, cols = tuple(a.shape[d] for d in free_a), tuple(b.shape[d] for d in free_b)
    # (sizes spelled out, not -1, which is ambiguous when a dim is 0)
    left = a.permute(*free_a, *dims_a).reshape(math.prod(rows), k) if a.ndim else a.reshape(1, 1)
    right = b.permute(*dims_b, *free_b).reshape(k, math.prod(cols)) if b.ndim else b.reshape(1, 1)
    return matmul(left, right).reshape(rows + cols)


def _contracted_dims(a, b, dims):
    from ._util import normalize_dim

    if isinstance(dims, int) or (isinstance(dims, Tensor) and dims.ndim == 0):
        n = int(dims)
        if not 0 <= n <= min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: dims={n} must be 0..{min(a.ndim, b.ndim)} for shapes {tuple(a.shape)} "
                             f"and {tuple(b.shape)}")
        return list(range(a.ndim - n, a.ndim)), list(range(n))
    if len(dims) != 2:
        raise ValueError(f"tensordot: dims must be an int or a pair of dim lists, got {dims!r}")
    dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(dims_a) != len(dims_b):
        raise ValueError(f"tensordot: dims {dims_a} of a and {dims_b} of b must be lists of the same length")
    return ([normalize_dim(int(d), a.ndim, "tensordot") for d in dims_a],
            [normalize_dim(int(d), b.ndim, "tensordot") for d in dims_b])
