"""Process-wide settings torch scripts make at their top, and torch's small top-level helpers.

    tensor.set_num_threads(4)                      # NumPy's BLAS threads (needs threadpoolctl)
    tensor.use_deterministic_algorithms(True)      # refuse CUDA ops whose sums depend on timing
    tensor.set_default_device("cuda")              # factories create there when given no device
    tensor.set_float32_matmul_precision("high")    # accepted; matmuls stay full float32 (see there)

Helpers: asarray, frombuffer, empty_strided, result_type, can_cast, promote_types, typename.
"""
from __future__ import annotations

import numbers
import os
import sys
import warnings

import numpy as np

from . import dtypes
from .backend import CPU, Device, as_device, device_of
from .errors import ShapeError
from .tensor import Tensor, _wrap

# ------------------------------------------------------------------------ float32 matmul precision
_MATMUL_PRECISIONS = ("highest", "high", "medium")
_matmul_precision = "highest"


def set_float32_matmul_precision(precision: str) -> None:
    """torch.set_float32_matmul_precision: recorded, with PyTorch's validation. raygrad's float32 matrix
    products always run at full float32 precision ('highest': NumPy's BLAS, and cuBLAS without TF32),
    so 'high' and 'medium' change no result; get_float32_matmul_precision returns what was set."""
    global _matmul_precision
    if precision not in _MATMUL_PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: expected one of {', '.join(map(repr, _MATMUL_PRECISIONS))}, "
                         f"got {precision!r}")
    _matmul_precision = precision


def get_float32_matmul_precision() -> str:
    return _matmul_precision


# ------------------------------------------------------------------------------------ threads

# NumPy's wheels ship OpenBLAS, which reads its own variable before OMP_NUM_THREADS; MKL likewise.
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def set_num_threads(num_threads: int) -> None:
    """Set how many threads NumPy's BLAS (matmul, linalg) uses, now, in this process.

    BLAS sizes its pool when it loads, so resizing it needs threadpoolctl; without it the only way is
    to set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before Python starts.
    """
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"set_num_threads expects an int, got {type(num_threads).__name__} {num_threads!r}")
    if num_threads < 1:
        raise ValueError(f"set_num_threads expects a positive integer, got {num_threads}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise RuntimeError(
            f"set_num_threads({num_threads}) needs threadpoolctl to resize NumPy's BLAS pool once it is loaded: "
            f"pip install threadpoolctl, or set OMP_NUM_THREADS={num_threads} and "
            f"OPENBLAS_NUM_THREADS={num_threads} before starting Python") from None
    threadpool_limits(limits=int(num_threads), user_api="blas")


def get_num_threads() -> int:
    """The number of threads NumPy's BLAS uses (from the loaded library with threadpoolctl, else from
    the environment variables BLAS reads at load, else the CPUs this process may run on)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return _threads_from_env()
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    ours = [lib for lib in blas if "numpy" in lib.get("filepath", "")] or blas  # torch may load its own
    return int(ours[0]["num_threads"]) if ours else _threads_from_env()


def _threads_from_env() -> int:
    for var in _THREAD_VARS:
        first = os.environ.get(var, "").split(",")[0].strip()  # OMP_NUM_THREADS may list nested levels
        if first.isdigit() and int(first) > 0:
            return int(first)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---------------------------------------------------------------------------------- determinism

_deterministic = False
_warn_only = False


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Make ops that cannot give the same bits on every run raise (or, with warn_only, warn).

    CPU ops are deterministic already. On CUDA these accumulate floats with atomic adds, whose order
    varies between runs, and raise a RuntimeError naming the op while the mode is on:
      - scatter_add and scatter(reduce='add'), index_add_, index_put_(accumulate=True), scatter_reduce
        and index_reduce ('sum', 'mean'), and the backward of gather, index_select, take_along_dim,
        x[index] and the fractional / adaptive 3-D max pools and grid_sample (all through ops.gather.add_at);
      - embedding's backward (cupyx.scatter_add);
      - max_pool2d's backward where windows overlap (atomicAdd in kernels/max_pool.py);
      - bincount with weights and histogram with weight (CuPy's atomicAdd kernels).
    Integer and boolean accumulation is exact in any order, so it never raises.
    """
    global _deterministic, _warn_only
    for name, value in (("mode", mode), ("warn_only", warn_only)):
        if not isinstance(value, bool):
            raise TypeError(f"use_deterministic_algorithms: {name} must be a bool, got {type(value).__name__} {value!r}")
    _deterministic, _warn_only = mode, warn_only


def are_deterministic_algorithms_enabled() -> bool:
    return _deterministic


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return _warn_only


def check_deterministic(op: str) -> None:
    """Raise (or warn) if deterministic mode is on: called only from the CUDA branches listed in
    use_deterministic_algorithms, never on the CPU path. `op` names the primitive; the message adds
    the Function whose forward/backward called it."""
    if not _deterministic:
        return
    where = _calling_function()
    op = f"{op} (in {where})" if where else op
    if _warn_only:
        warnings.warn(f"{op} does not have a deterministic implementation on CUDA, but you set "
                      "'tensor.use_deterministic_algorithms(True, warn_only=True)'.", UserWarning, stacklevel=3)
        return
    raise RuntimeError(
        f"{op} does not have a deterministic implementation on CUDA, but you set "
        "'tensor.use_deterministic_algorithms(True)'. You can turn off determinism just for this operation "
        "(tensor.use_deterministic_algorithms(False) around it), run it on the CPU, or use the "
        "'warn_only=True' option, if that's acceptable for your application.")


def _calling_function() -> str | None:
    """The qualified name of the nearest Function.forward/backward on the stack (error path only)."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name in ("forward", "backward", "backward_graph"):
            return getattr(code, "co_qualname", code.co_name)
        frame = frame.f_back
    return None


# ------------------------------------------------------------------------------- default device

_default_device: Device = CPU


def set_default_device(device) -> None:
    """Create tensors on `device` when a factory (zeros, rand, arange, tensor(data), nn layers...) is
    given none; None restores the CPU. Process-wide (torch's is per thread)."""
    global _default_device
    device = CPU if device is None else as_device(device)
    if device.type == "cpu":
        device = CPU  # so the common case stays an identity check (`is CPU`)
    else:
        device.xp  # noqa: B018 - a clear DeviceError now, not at the first factory call
    _default_device = device


def get_default_device() -> Device:
    return _default_device


def factory_device(device) -> Device:
    """The device a factory creates on: `device`, else the default (set_default_device)."""
    if device is None:
        return _default_device
    return device if isinstance(device, Device) else as_device(device)


def data_device(device):
    """The device for a tensor made from existing data (tensor, as_tensor, asarray): `device`, else the
    default one if set, else None: the data's own device."""
    if device is None and _default_device is not CPU:
        return _default_device
    return device


# ------------------------------------------------------------------------------ torch's helpers


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=None):
    """`obj` as a tensor, sharing its memory when dtype and device allow (torch.asarray).

    Tensors, NumPy/CuPy arrays and DLPack producers are shared unless copy=True or a conversion is
    needed (copy=False then raises); Python buffers (bytes, bytearray, array.array) are read as
    `dtype` (default: the default float dtype); scalars and sequences are copied. requires_grad=None
    keeps a tensor's own (and its graph); False detaches; True makes the result require grad.
    """
    from .creation import _to_array, from_dlpack

    dtype = None if dtype is None else dtypes.as_dtype(dtype)
    if isinstance(obj, Tensor):
        return _grad_mode(_convert_tensor(obj, dtype, device, copy), requires_grad)
    if isinstance(obj, np.ndarray) or type(obj).__module__.split(".")[0] == "cupy":
        raw = obj
    elif isinstance(obj, np.generic):  # keeps its NumPy dtype, as in torch; a 0-d array is always new
        raw = np.array(obj)
    elif hasattr(obj, "__dlpack__"):
        raw = from_dlpack(obj).data
    else:
        raw = _buffer_array(obj, dtype)
    if raw is None:  # Python scalars and sequences: always a new array
        if copy is False:
            raise ValueError(f"asarray: copy=False, but a {type(obj).__name__} cannot share memory (its values "
                             "are always copied); pass copy=None or copy=True")
        return _grad_mode(_wrap(_to_array(obj, dtype, data_device(device))), requires_grad)
    target = data_device(device)
    target = device_of(raw) if target is None else as_device(target)
    if copy is False and ((dtype is not None and dtype != raw.dtype) or target != device_of(raw)):
        raise ValueError(f"asarray: copy=False but {raw.dtype} data on {device_of(raw)} cannot be shared as "
                         f"{dtype or raw.dtype} on {target}; pass copy=None to allow a copy")
    return _grad_mode(_wrap(_to_array(raw, dtype, target, copy=bool(copy))), requires_grad)


def _buffer_array(obj, dtype):
    """The bytes of an object with the buffer protocol (bytes, bytearray, array.array) as `dtype`."""
    try:
        memoryview(obj)
    except TypeError:
        return None
    return np.frombuffer(obj, dtype=dtype or dtypes.get_default_dtype())


def _convert_tensor(t, dtype, device, copy):
    target = data_device(device)
    target = t.device if target is None else as_device(target)
    if (dtype is None or dtype == t.dtype) and target == t.device:
        return t.clone() if copy else t
    if copy is False:
        raise ValueError(f"asarray: copy=False but a {t.dtype} tensor on {t.device} cannot be shared as "
                         f"{dtype or t.dtype} on {target}; pass copy=None to allow a copy")
    return t.to(device=target, dtype=dtype)


def _grad_mode(t, requires_grad):
    if requires_grad is None or requires_grad == t.requires_grad:
        return t
    return t.requires_grad_(True) if requires_grad else t.detach()


def frombuffer(buffer, *, dtype, count=-1, offset=0, requires_grad=False):
    """A 1-D CPU tensor over the bytes of a Python buffer (bytearray, memoryview...), sharing them."""
    dtype = dtypes.as_dtype(dtype)
    size = memoryview(buffer).nbytes
    if size == 0:
        raise ValueError("frombuffer: the buffer is empty (0 bytes)")
    if not 0 <= offset < size:
        raise ValueError(f"frombuffer: offset ({offset} bytes) must be non-negative and smaller than the buffer "
                         f"length ({size} bytes)")
    if count == 0 or count < -1:
        raise ValueError(f"frombuffer: count must be positive or -1 (the whole buffer), got {count}")
    if count == -1 and (size - offset) % dtype.itemsize:
        raise ValueError(f"frombuffer: buffer length ({size} bytes) after offset ({offset} bytes) must be a "
                         f"multiple of {dtype}'s size ({dtype.itemsize}); pass count")
    if count > 0 and offset + count * dtype.itemsize > size:
        raise ValueError(f"frombuffer: {count} x {dtype.itemsize} bytes after offset {offset} exceed the buffer's "
                         f"{size} bytes")
    array = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset)
    if not array.flags.writeable:
        warnings.warn("frombuffer: the buffer is not writable, so in-place ops on this tensor will fail; "
                      "pass a bytearray, or .clone() the result", UserWarning, stacklevel=2)
    t = _wrap(array)
    return t.requires_grad_(True) if requires_grad else t


def empty_strided(size, stride, *, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor of `size` whose stride() is `stride` (in elements), over a buffer sized
    exactly for them (strides may overlap, e.g. 0, as in torch)."""
    from .creation import _on

    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise ShapeError(f"empty_strided: size {size} and stride {stride} must have the same length")
    if any(s < 0 for s in size + stride):
        raise ValueError(f"empty_strided: sizes and strides must be >= 0, got size {size}, stride {stride}")
    dtype = dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)
    device = factory_device(device)
    elements = 0 if 0 in size else 1 + sum((n - 1) * s for n, s in zip(size, stride))
    xp = device.xp
    with _on(device):
        base = xp.empty(elements, dtype)
        array = xp.lib.stride_tricks.as_strided(base, shape=size, strides=tuple(s * dtype.itemsize for s in stride))
    t = _wrap(array)
    return t.requires_grad_(True) if requires_grad else t


def result_type(tensor1, tensor2) -> np.dtype:
    """The dtype of an elementwise op on two tensors or numbers, by torch's promotion rules."""
    return dtypes.result_type(tensor1, tensor2)


def can_cast(from_, to) -> bool:
    """Whether torch's casting rules let an op write a `from_` result into a `to` tensor."""
    return dtypes.can_cast(dtypes.as_dtype(from_), dtypes.as_dtype(to))


def promote_types(type1, type2) -> np.dtype:
    """The smallest dtype both promote to (torch.promote_types)."""
    return dtypes.promote_types(dtypes.as_dtype(type1), dtypes.as_dtype(type2))


_TYPE_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long", "int32": "Int",
               "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


def typename(obj) -> str:
    """torch.typename: 'tensor.FloatTensor' (or 'tensor.cuda.FloatTensor') for a tensor, else the
    object's module-qualified type name ('int', 'numpy.ndarray', 'tensor.nn.linear.Linear')."""
    if isinstance(obj, Tensor):
        prefix = "tensor.cuda." if obj.is_cuda else "tensor."
        return f"{prefix}{_TYPE_NAMES[obj.dtype.name]}Tensor"
    module = getattr(obj, "__module__", "") or ""
    if hasattr(obj, "__qualname__"):
        qualname = obj.__qualname__
    elif hasattr(obj, "__name__"):
        qualname = obj.__name__
    else:
        module, qualname = obj.__class__.__module__ or "", obj.__class__.__qualname__
    return qualname if module in ("", "builtins") else f"{module}.{qualname}"
