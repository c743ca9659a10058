"""torch.cuda's memory statistics: memory_allocated(), max_memory_allocated(), memory_stats()...

Memory figures come from CuPy's default memory pool, through which every engine array is
allocated. "allocated" is what live arrays hold (the pool's used bytes); "reserved" is what the
pool holds from the driver, cached free blocks included (its total bytes). CuPy keeps no peak,
so the peaks here are high-water marks of samples: each call to memory_allocated(),
memory_reserved(), max_memory_*(), memory_stats() or record_peak_memory() takes one, and inside
`track_peak_memory()` every allocation does, which makes the peak exact there. The pool only
grows until empty_cache(), so the reserved peak is exact whenever it is sampled before that.

    tensor.cuda.reset_peak_memory_stats()
    with tensor.cuda.track_peak_memory():      # exact, at some cost per allocation
        train_step()
    print(tensor.cuda.max_memory_allocated())  # bytes
"""
from __future__ import annotations

from ..backend import cupy_module
from ._devices import _index

_peaks: dict[int, list[int]] = {}  # device index -> [allocated peak, reserved peak], in bytes


def _pool_bytes(index: int) -> tuple[int, int]:
    """(used, total) bytes of the default pool on device `index`; samples them into the peaks."""
    cp = cupy_module()
    with cp.cuda.Device(index):
        pool = cp.get_default_memory_pool()
        used, total = pool.used_bytes(), pool.total_bytes()
    peak = _peaks.setdefault(index, [0, 0])
    peak[0], peak[1] = max(peak[0], used), max(peak[1], total)
    return used, total


def record_peak_memory(device=None) -> None:
    """Take one sample of the pool's usage into the peaks (cheap: call it after each step)."""
    _pool_bytes(_index(device))


def memory_allocated(device=None) -> int:
    """Bytes held by live arrays on the device now."""
    return _pool_bytes(_index(device))[0]


def memory_reserved(device=None) -> int:
    """Bytes the pool holds from the driver now (live arrays plus cached free blocks)."""
    return _pool_bytes(_index(device))[1]


def max_memory_allocated(device=None) -> int:
    """The highest allocated bytes sampled since the last reset (exact inside track_peak_memory)."""
    index = _index(device)
    _pool_bytes(index)
    return _peaks[index][0]


def max_memory_reserved(device=None) -> int:
    """The highest reserved bytes sampled since the last reset."""
    index = _index(device)
    _pool_bytes(index)
    return _peaks[index][1]


def reset_peak_memory_stats(device=None) -> None:
    """Restart both peaks from the current usage."""
    index = _index(device)
    _peaks.pop(index, None)
    _pool_bytes(index)


def memory_stats(device=None) -> dict:
    """PyTorch's key names for the figures above (bytes), plus the pool's free cached bytes."""
    index = _index(device)
    used, total = _pool_bytes(index)
    peak_used, peak_total = _peaks[index]
    return {
        "allocated_bytes.all.current": used,
        "allocated_bytes.all.peak": peak_used,
        "reserved_bytes.all.current": total,
        "reserved_bytes.all.peak": peak_total,
        "inactive_split_bytes.all.current": total - used,
    }


def empty_cache():
    """Return the pool's cached free blocks to the driver (live arrays stay)."""
    cupy_module().get_default_memory_pool().free_all_blocks()


class track_peak_memory:
    """Inside it, sample the pool after every allocation this thread makes: max_memory_allocated()
    is then exact. Each allocation costs a Python call (a microsecond or so), so keep it out of
    timed regions. CuPy's memory hooks are per thread; allocations of other threads are missed.
    """

    def __init__(self, device=None):
        self._device = device
        self._hook = None

    def __enter__(self):
        cp = cupy_module()
        index = _index(self._device)

        class _PeakHook(cp.cuda.MemoryHook):
            name = f"raygrad_peak_memory_{index}"

            def malloc_postprocess(self, device_id, **_):
                if device_id == index:
                    _pool_bytes(index)

        self._hook = _PeakHook()
        self._hook.__enter__()
        _pool_bytes(index)
        return self

    def __exit__(self, *exc):
        self._hook.__exit__(*exc)
        self._hook = None
        return False
