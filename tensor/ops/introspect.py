"""Facts about a tensor rather than ops on it: is_floating_point, is_complex, is_signed, is_nonzero,
is_same_size, is_inference, get_device, data_ptr, storage_offset, and the properties is_cpu, itemsize,
nbytes and retains_grad (PyTorch's names and results).

A tensor's "storage" is the array its data is a view of: NumPy's outermost `.base`, or the CuPy
allocation behind its memory pointer; storage_offset counts elements from its start.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def is_floating_point(x):
    return x.dtype.kind == "f"


def is_complex(x):
    """Always False: raygrad has no complex dtypes."""
    return False


def is_nonzero(x):
    """bool(x) for a tensor of exactly one element; an error for any other size (PyTorch)."""
    if x.numel() != 1:
        what = "no values" if x.numel() == 0 else f"{x.numel()} values"
        raise ShapeError(f"is_nonzero: the truth value of a tensor with {what} is ambiguous; it needs exactly one "
                         "element (use .any() or .all() for several)")
    return bool(x.data.reshape(()) != 0)


def get_device(x):
    """-1 for a cpu tensor, the CUDA device index otherwise."""
    device = x.device
    return -1 if device.type == "cpu" else device.index


def data_ptr(x):
    """The address of x's first element."""
    return array_address(x.data)


def storage_offset(x):
    """How many elements x's first element lies after the start of the array it views."""
    data = x.data
    return (data_ptr(x) - array_address(storage_root(data))) // data.itemsize


def storage_root(data):
    """The array that owns data's memory: data itself, or the array its chain of views started from.
    (Not CuPy's memory chunk: the pool rounds chunks up and may hand one out in pieces.)"""
    root = data
    while isinstance(root.base, type(data)):
        root = root.base
    return root


def array_address(data):
    return data.__array_interface__["data"][0] if isinstance(data, np.ndarray) else data.data.ptr


def is_signed(x):
    """Whether x's dtype holds negative numbers (floats and signed ints; not bool or uint8)."""
    return x.data.dtype.kind in "fi"


def is_same_size(x, other):
    return tuple(x.data.shape) == tuple(other.data.shape)


def is_inference(x):
    """Always False: raygrad's inference_mode is no_grad and makes ordinary tensors."""
    return False


def is_cpu(x):
    return type(x.data) is np.ndarray


def itemsize(x):
    """Bytes per element."""
    return x.data.dtype.itemsize


def nbytes(x):
    """Bytes of x's elements (numel * itemsize, as torch counts them; views count their own elements)."""
    return x.data.size * x.data.dtype.itemsize


def retains_grad(x):
    """Whether retain_grad() was called on this non-leaf tensor."""
    return x._retains_grad
