"""Helpers shared by the op families."""
from __future__ import annotations

import functools
import warnings

import numpy as np

from .. import dtypes
from ..tensor import Tensor


def sum_rows(mat):
    """mat.sum(axis=0) of a 2-D array (a bias gradient, the batch summed away).

    On CUDA, for float32/float64, as ones @ mat: one cuBLAS matrix-vector product reads mat once,
    coalesced, where CuPy's reduction across rows strides through it (the profile in
    benchmarks/README.md shows these sums among a transformer step's costliest kernels). NumPy's
    own axis-0 sum is already a vectorised pass.
    """
    if isinstance(mat, np.ndarray) or mat.dtype.char not in "fd" or mat.shape[0] < 2:
        return mat.sum(axis=0)
    return _ones(mat.shape[0], mat.dtype.char, mat.device.id) @ mat


@functools.lru_cache(maxsize=16)
def _ones(n, dtype_char, device_id):
    from ..backend import cupy_module

    cp = cupy_module()
    with cp.cuda.Device(device_id):
        ones = cp.ones(n, dtype=dtype_char)
        cp.cuda.get_current_stream().synchronize()  # filled before any stream may read it
    return ones


# filled_like serves a full array for sizes in [FILLED_MIN, FILLED_LIMIT] and a 0-d one outside:
# below, making the view costs more than the loop saves; above, both forms are memory-bound and a
# full buffer would only cost memory. A buffer is thus at most 8 MB (float64), one per (dtype,
# value) in use: relu's 0 and sigmoid's clamp limit.
FILLED_MIN, FILLED_LIMIT = 1024, 1 << 20
_FILLED_BUFFERS = {}  # (dtype char, value) -> a read-only 1-D buffer, grown on demand
_FILLED = {}  # (shape, dtype char, value) -> the answer: a view of a buffer, or a 0-d array
_FILLED_ANSWERS = 256  # at most this many shapes are remembered (then they are forgotten at once)


def filled_like(x, value, xp=np):
    """A read-only NumPy array of x's dtype, every element `value`, that broadcasts against x: the
    second operand of np.maximum / np.minimum against a constant. Against a 0-d operand NumPy's
    maximum runs a loop without SIMD, which takes twice as long as against a full array on 4K to 1M
    float32 elements (relu, sigmoid's clamp), so mid-sized x get a view of one cached buffer per
    (dtype, value); the others get a 0-d array. Answers are remembered per shape: one dict lookup
    on the hot path. Internal: -0.0 and 0.0 share an entry. For CuPy (xp), `value` itself: its
    elementwise kernels take a scalar at full speed.
    """
    if xp is not np:
        return value
    key = (x.shape, x.dtype.char, value)
    answer = _FILLED.get(key)
    if answer is None:
        answer = _filled_answer(x, value)
        if len(_FILLED) >= _FILLED_ANSWERS:
            _FILLED.clear()
        _FILLED[key] = answer
    return answer


def _filled_answer(x, value):
    size = x.size
    if size < FILLED_MIN or size > FILLED_LIMIT:
        answer = np.full((), value, x.dtype)
        answer.flags.writeable = False
        return answer
    buffer = _FILLED_BUFFERS.get((x.dtype.char, value))
    if buffer is None or buffer.size < size:
        # Doubling from 4K elements: a model's first few sizes settle the buffer for good. The
        # remembered views of the old buffer are dropped so that it can be freed.
        grown = min(max(size, 4096, 0 if buffer is None else 2 * buffer.size), FILLED_LIMIT)
        buffer = _FILLED_BUFFERS[(x.dtype.char, value)] = np.full(grown, value, x.dtype)
        buffer.flags.writeable = False
        _FILLED.clear()
    return buffer[:size].reshape(x.shape)


def sum_to(grad, shape):
    """Undo broadcasting: sum `grad` down to `shape` (the one helper every broadcasting op uses).
    `grad` is an array, or a Tensor in a backward_graph (then the sum is recorded)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    if type(grad) is Tensor:
        out = grad.sum(dim=axes, keepdim=True) if axes else grad
        return out.reshape(shape) if lead else out
    if lead and axes == tuple(range(lead)) and not isinstance(grad, np.ndarray) and grad.flags.c_contiguous:
        # on CUDA, a broadcast bias's gradient (only leading dims summed away) is a matrix-vector product
        return sum_rows(grad.reshape(-1, int(np.prod(shape, dtype=np.int64)))).reshape(shape)
    out = grad.sum(axis=axes, keepdims=True) if axes else grad
    if lead:
        out = out.reshape(shape)
    return out


def promote(a, b):
    """Cast the Tensor operands of a binary op to their PyTorch result dtype (scalars stay weak)."""
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        if a.data.dtype is b.data.dtype or a.data.dtype == b.data.dtype:
            return a, b
    elif ta:
        # The common `float_tensor * 0.5`: a Python number never lifts a float tensor's dtype.
        if (type(b) is float or type(b) is int) and a.data.dtype.kind == "f":
            return a, b
        b = number(b)
        if not _scalar_upcasts(a.data.dtype, b):
            return a, _wrapped_int(b, a.data.dtype)
    elif tb:
        a = number(a)
        if not _scalar_upcasts(b.data.dtype, a):
            return _wrapped_int(a, b.data.dtype), b
    else:
        raise TypeError(f"expected at least one Tensor operand, got {type(a).__name__} and {type(b).__name__}")
    target = dtypes.result_type(a, b)
    return cast(a, target), cast(b, target)


def _wrapped_int(scalar, dtype):
    """A Python int outside an integer dtype's range, wrapped into it as PyTorch casts it (uint8 & -32 is
    uint8 & 224, u8 + 300 is u8 + 44): NumPy 2 refuses such a weak scalar with an OverflowError."""
    if type(scalar) is int and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= scalar <= info.max:
            return np.array(scalar).astype(dtype)[()]
    return scalar


def _scalar_upcasts(dtype, scalar):
    """Does a Python scalar move the result to a higher category than `dtype` (int tensor * 0.5)?"""
    return dtypes.scalar_category(scalar) > dtypes.category(dtype)


def cast(x, dtype):
    if isinstance(x, Tensor):
        return x if x.data.dtype == dtype else x.to(dtype=dtype)
    return x


def numpy_dim_names(op, dim, keepdim, axis, keepdims, default_dim=None):
    """dim and keepdim given PyTorch's NumPy-style aliases axis= and keepdims= (x.sum(axis=1)). The hot
    reductions take the aliases as keyword-only arguments and call this only when one is given; the other
    methods get them from tensor/methods.py's wrapper."""
    if axis is not None:
        if dim != default_dim:
            raise TypeError(f"{op}() got both 'dim' and its alias 'axis' ({dim!r} and {axis!r}); pass one")
        dim = axis
    return dim, keepdim if keepdims is None else keepdims


def normalize_dim(dim, ndim, op="op"):
    """A dim in [-ndim, ndim) as a non-negative int, with a clear error otherwise."""
    if 0 <= dim < ndim:  # the common case, without the 0-d special case below
        return dim
    lo, hi = -max(ndim, 1), max(ndim, 1)
    if not lo <= dim < hi:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dimension(s) (expected {lo}..{hi - 1})")
    return dim % max(ndim, 1)


def normalize_dims(dim, ndim, op="op"):
    """None -> all dims; int or tuple -> a sorted tuple of non-negative dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    dims = tuple(sorted({normalize_dim(d, ndim, op) for d in dim}))
    if len(dims) != len(dim):
        raise ValueError(f"{op}: dim {dim} repeats a dimension")
    return dims


def number_first(op, number, args, new_form, stacklevel=3):
    """PyTorch's deprecated overloads that take the scale first, as old optimizer code writes them
    (`p.add_(-lr, grad)`, `exp_avg_sq.addcmul_(1 - beta2, grad, grad)`): (args..., number) in the current
    order, with PyTorch's deprecation warning."""
    warnings.warn(f"This overload of {op} is deprecated: {op}(Number, Tensor...); use {new_form} instead",
                  UserWarning, stacklevel=stacklevel)  # at the caller of the op
    return (*args, number)


def number(value):
    """A NumPy scalar hyperparameter (softplus's beta = np.log(2), a clamp bound) as the Python number it
    is, as PyTorch takes it: under NumPy 2's promotion a np.float64 would turn a float32 result float64."""
    return value.item() if isinstance(value, np.generic) else value

