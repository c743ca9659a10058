"""The C allocator's policy for a training process: keep freed memory for the next step.

A training step allocates and frees the same large arrays every time (a convolution's im2col
matrix is 8 MB for a batch of 64 digits). glibc's default policy adapts its thresholds to the
largest block freed so far and returns the top of its heap to the operating system whenever more
than twice that is free: at the end of every step, for a CNN. The next step then faults every page
back in: 1,000 to 2,800 minor faults and 8 to 16 ms per CNN step on our CI machine
(benchmarks/README.md), a third of the step.

keep_freed_memory() fixes both thresholds, as the MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_
environment variables would: blocks up to 32 MiB come from the heap (not a fresh mmap each time)
and up to 256 MiB of free heap is kept. The process's resident memory may stay that much higher
after its peak; nothing else changes. raygrad applies it in the processes it trains in (each rank's
actor, and the driver of an in-process run); a script of your own can call it once at start-up.

It is a no-op (returning False) where the C library is not glibc, where the user already set
either environment variable (their choice wins), or with RAYGRAD_KEEP_FREED_MEMORY=0.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

MMAP_THRESHOLD = 32 * 2**20  # glibc's largest dynamic mmap threshold (64-bit): what it would adapt to
TRIM_THRESHOLD = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h

_applied = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (see the module docstring). -> whether it is in effect."""
    global _applied
    if _applied:
        return True
    if os.environ.get("RAYGRAD_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if any(os.environ.get(var) for var in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success. The mmap threshold first: setting either turns off the
    # dynamic adjustment of both.
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                          TRIM_THRESHOLD))
    return _applied
