"""torch.cuda's small helpers: is_available(), device_count(), synchronize(), memory statistics."""
from __future__ import annotations

from .backend import cuda_device_count, cuda_is_available, cupy_module


def is_available() -> bool:
    return cuda_is_available()


def device_count() -> int:
    return cuda_device_count()


def synchronize(device=None):
    cp = cupy_module()
    if device is None:
        cp.cuda.Device().synchronize()
    else:
        cp.cuda.Device(device if isinstance(device, int) else device.index).synchronize()


def max_memory_allocated() -> int:
    """Bytes held by CuPy's default memory pool (its high-water mark since the last reset)."""
    return cupy_module().get_default_memory_pool().total_bytes()


def empty_cache():
    cupy_module().get_default_memory_pool().free_all_blocks()
