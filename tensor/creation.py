"""Creating tensors: from data (tensor, as_tensor, from_numpy, from_dlpack) and by shape (zeros, arange...).

Random creation (rand, randn, ...) lives in random.py.
"""
from __future__ import annotations

import numpy as np

from . import dtypes
from .backend import as_device, device_of, to_device_array
from .errors import DTypeError
from .runtime import data_device, factory_device
from .tensor import Tensor, _wrap


def _to_array(data, dtype=None, device=None, copy=True):
    """Turn data (Tensor, numpy/cupy array, nested lists, scalars, DLPack object) into an array."""
    dtype = None if dtype is None else dtypes.as_dtype(dtype)
    if isinstance(data, Tensor):
        data = data.data
    elif not isinstance(data, np.ndarray) and type(data).__module__.split(".")[0] not in ("cupy",):
        if hasattr(data, "__dlpack__") and not isinstance(data, (list, tuple)):
            data = from_dlpack(data).data
        else:
            data = _from_python(data, dtype)
    target = device_of(data) if device is None else as_device(device)
    if data.dtype not in dtypes.SUPPORTED:
        raise DTypeError(f"arrays of dtype {data.dtype} are not supported; convert to one of float32, int64, bool, ...")
    moved = to_device_array(data, target)
    if dtype is not None and moved.dtype != dtype:
        return moved.astype(dtype)
    if copy and moved is data:
        return moved.copy()
    return moved


def _from_python(data, dtype=None):
    """Nested lists and Python scalars follow PyTorch: floats -> default dtype, ints -> int64. With a
    dtype, Python's numbers go straight to it (float64 values never pass through float32), and ints
    that it cannot hold are refused, as in PyTorch."""
    try:
        array = np.asarray(data)
    except TypeError:  # GPU tensors inside a list: PyTorch takes their values, as for CPU ones
        array = np.asarray(_on_host(data))
    if array.dtype.kind not in "fiub":
        raise DTypeError(f"cannot make a tensor from {type(data).__name__} data of numpy dtype {array.dtype}")
    if dtype is None and isinstance(_first_leaf(data), np.generic):
        dtype = array.dtype  # NumPy scalars keep their dtype (tensor(np.float64(2.)) is float64), as in PyTorch
    if dtype is None:
        dtype = {"f": dtypes.get_default_dtype(), "i": np.dtype(np.int64), "u": np.dtype(np.int64)}.get(
            array.dtype.kind, array.dtype)
    if dtype.kind in "iu" and array.dtype.kind in "iu" and array.size:
        _check_int_range(array, dtype)  # (Python ints past int64 arrive as uint64)
    with np.errstate(over="ignore"):  # 1e40 -> float32 is inf, as in PyTorch
        return array.astype(dtype, copy=False)


def _first_leaf(data):
    """The first number in nested lists and tuples (data itself when it is not one)."""
    while isinstance(data, (list, tuple)) and data:
        data = data[0]
    return data


def _on_host(data):
    """data (nested lists and tuples) with each Tensor in it as a NumPy array."""
    if isinstance(data, Tensor):
        return to_device_array(data.data, as_device("cpu"))
    if isinstance(data, (list, tuple)):
        return [_on_host(item) for item in data]
    return data


def _check_int_range(array, dtype):
    info = np.iinfo(dtype)
    low, high = int(array.min()), int(array.max())
    if low < info.min and dtype.kind == "i" or high > info.max:
        bad = high if high > info.max else low
        fix = "pick a wider dtype such as int64" if dtype.itemsize < 8 else "no integer dtype is wider: use float64"
        raise DTypeError(f"value {bad} cannot be converted to {dtype} without overflow ({dtype} holds "
                         f"{info.min}..{info.max}); {fix}")


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor that owns a copy of `data`."""
    out = _wrap(_to_array(data, dtype, data_device(device)))
    if requires_grad:
        out.requires_grad_(True)
    return out


def as_tensor(data, dtype=None, device=None):
    """Like tensor(), but shares memory with `data` when dtype and device already match."""
    device = data_device(device)
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtypes.as_dtype(dtype)):
        if device is None or data.device == as_device(device):
            return data
    return _wrap(_to_array(data, dtype, device, copy=False))


def from_numpy(array: np.ndarray):
    """A CPU tensor sharing memory with a NumPy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return _wrap(_to_array(array, copy=False))


def from_dlpack(obj):
    """Zero-copy import of any DLPack producer (NumPy, CuPy, PyTorch, JAX) onto its own device."""
    if isinstance(obj, Tensor):
        return obj
    kind, _ = obj.__dlpack_device__()
    if kind == 1:  # kDLCPU
        return _wrap(np.from_dlpack(obj))
    if kind in (2, 3):  # kDLCUDA, kDLCUDAHost
        cp = as_device("cuda").xp
        return _wrap(cp.from_dlpack(obj))
    raise DTypeError(f"from_dlpack: DLPack device type {kind} is not supported (only CPU and CUDA)")


def _xp_and_dtype(device, dtype, default=None):
    dev = factory_device(device)
    return dev.xp, (dtypes.as_dtype(dtype) if dtype is not None else (default or dtypes.get_default_dtype())), dev


def _shape(sizes, size=None, op="size"):
    """One tuple of ints from f(2, 3), f((2, 3)), f([2, 3]) or torch's keyword spelling f(size=(2, 3))."""
    if size is not None:
        from .ops.shape import _sizes_or_keyword  # (here: the ops package imports this module)

        sizes = _sizes_or_keyword(sizes, size, op, "size")
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = sizes[0]
    return tuple(int(s) for s in sizes)


def _filled(fill, size, dtype, device, requires_grad):
    """`size`: the shape, already parsed by _shape."""
    xp, dtype, dev = _xp_and_dtype(device, dtype)
    shape = size
    with _on(dev):
        try:
            t = _wrap(fill(xp, shape, dtype))
        except ValueError:  # NumPy's "negative dimensions are not allowed", worded with the size
            if any(n < 0 for n in shape):
                raise ValueError(f"size {shape} has a negative dim; sizes must be >= 0 (0 makes an empty "
                                 "tensor)") from None
            raise
    return t.requires_grad_(True) if requires_grad else t


def zeros(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    return _filled(lambda xp, s, d: xp.zeros(s, d), _shape(sizes, size, "zeros"), dtype, device, requires_grad)


def ones(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    return _filled(lambda xp, s, d: xp.ones(s, d), _shape(sizes, size, "ones"), dtype, device, requires_grad)


def empty(*sizes, size=None, dtype=None, device=None, requires_grad=False):
    return _filled(lambda xp, s, d: xp.empty(s, d), _shape(sizes, size, "empty"), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = dtypes.result_type(fill_value)
    return _filled(lambda xp, s, d: xp.full(s, fill_value, d), _shape((size,)), dtype, device, requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return empty(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Values from start (inclusive) to end (exclusive); int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        dtype = dtypes.result_type(start, end, step)
    xp, dtype, dev = _xp_and_dtype(device, dtype)
    with _on(dev):
        values = xp.arange(start, end, step)
        if values.size == 0 and (end - start) * step < 0:
            raise ValueError(f"arange: end {end} lies on the wrong side of start {start} for step {step}; "
                             "swap them, or flip the sign of the step")
        t = _wrap(values.astype(dtype, copy=False))
    return t.requires_grad_(True) if requires_grad else t


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """`steps` evenly spaced values from start to end, as PyTorch's kernel makes them: start, end and the
    step in the dtype (integer dtypes: the ends as integers, the step in double), the first half as
    start + step * i and the second as end - step * (steps - 1 - i), each rounded once as its fused
    multiply-add rounds it (exact for float32, whose products float64 holds; float64 in long double, on
    the CPU; float16 may differ by an ulp). One ulp matters: torchvision's color ops cast to uint8."""
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"linspace: steps must be >= 0, got {steps}")
    xp, dtype, dev = _xp_and_dtype(device, dtype)
    work = dtype if dtype.kind == "f" else np.dtype(np.float64)
    wide = np.dtype(np.longdouble if dtype == np.float64 and xp is np else np.float64)
    with _on(dev):
        first, last = (xp.asarray(v).astype(dtype).astype(work) for v in (start, end))
        step = ((last - first) / work.type(max(steps - 1, 1))).astype(wide)
        first, last = first.astype(wide), last.astype(wide)
        i = xp.arange(steps, dtype=wide)
        values = first.reshape(1) if steps == 1 else xp.where(i < steps // 2, first + step * i,
                                                              last - step * (steps - 1 - i))
        t = _wrap(values.astype(dtype))
    return t.requires_grad_(True) if requires_grad else t


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    """base ** linspace(start, end, steps): `steps` points evenly spaced on a log scale."""
    if int(steps) < 0:
        raise ValueError(f"logspace: steps must be >= 0, got {steps}")
    xp, dtype, dev = _xp_and_dtype(device, dtype)
    with _on(dev):
        t = _wrap(xp.logspace(start, end, int(steps), base=base).astype(dtype, copy=False))
    return t.requires_grad_(True) if requires_grad else t


def tril_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (2, N) int64 row and column indices of the lower triangle of a row x col matrix (row-major)."""
    return _triangle_indices("tril_indices", row, col, offset, dtype, device, lower=True)


def triu_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (2, N) int64 row and column indices of the upper triangle of a row x col matrix (row-major)."""
    return _triangle_indices("triu_indices", row, col, offset, dtype, device, lower=False)


def _triangle_indices(op, row, col, offset, dtype, device, lower):
    if row < 0 or col < 0:
        raise ValueError(f"{op}: row ({row}) and col ({col}) must be >= 0")
    dtype = dtypes.int64 if dtype is None else dtypes.as_dtype(dtype)
    rows, cols = (np.tril_indices if lower else np.triu_indices)(int(row), int(offset), int(col))
    return _wrap(to_device_array(np.stack([rows, cols]).astype(dtype), factory_device(device)))


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    xp, dtype, dev = _xp_and_dtype(device, dtype)
    with _on(dev):
        t = _wrap(xp.eye(n, m, dtype=dtype))
    return t.requires_grad_(True) if requires_grad else t


class _on:
    """Make a CUDA device current while creating arrays on it (no-op on the CPU)."""

    def __init__(self, device):
        self.ctx = device.xp.cuda.Device(device.index) if device.type == "cuda" else None

    def __enter__(self):
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)

