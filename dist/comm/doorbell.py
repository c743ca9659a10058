"""A doorbell in shared memory: ranks that wait sleep on it, ranks that arrive ring it.

On Linux the sleep is a futex wait on the doorbell word (through ctypes, which releases the GIL), so a
waiting rank burns no CPU and wakes microseconds after the ring, even on a machine whose cores are
all busy; a spinning or polling rank there either steals the core from the peer it waits for or
oversleeps. Elsewhere (no futex), the sleep is a short time.sleep.

A waiter reads the doorbell, checks its condition, then sleeps only while the doorbell still holds
the value it read; an arrival publishes its state, then changes the doorbell and wakes the sleepers.
Whatever the interleaving, a waiter either sees the new state or finds the doorbell changed, so no
wake-up is lost. The increment need not be atomic: it only has to change the value.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import time

import numpy as np

_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1  # not the _PRIVATE variants: the word is shared between processes
_WAKE_ALL = 2**31 - 1
_POLL_S = 1e-4  # the sleep where there is no futex


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_syscall():
    if _SYS_FUTEX is None or not sys.platform.startswith("linux"):
        return None
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):  # no libc symbol table to search: fall back to polling
        return None
    syscall.restype = ctypes.c_long
    return syscall


_syscall = _load_syscall()


class Doorbell:
    """``word`` is a 1-element int32 view into shared memory (zeroed when created)."""

    def __init__(self, word: np.ndarray):
        if word.dtype != np.int32 or word.shape != (1,):
            raise ValueError(f"Doorbell needs a 1-element int32 array, got {word.dtype} {word.shape}")
        self._word = word
        self._address = ctypes.c_void_p(word.ctypes.data)

    def value(self) -> int:
        return int(self._word[0])

    def ring(self) -> None:
        """Change the word, then wake every rank sleeping on it."""
        self._word += 1  # wraps around at 2**31: only a change matters
        if _syscall is not None:
            _syscall(_SYS_FUTEX, self._address, _FUTEX_WAKE, _WAKE_ALL, None, None, 0)

    def sleep(self, seen: int, timeout_s: float) -> None:
        """Sleep until the word differs from ``seen`` (a ring), or ``timeout_s`` passed, whichever is first;
        may also return early (a signal). Returns at once if the word already changed."""
        if _syscall is None:
            time.sleep(min(timeout_s, _POLL_S))
            return
        timeout_s = max(0.0, timeout_s)
        whole = int(timeout_s)
        timespec = _Timespec(whole, int((timeout_s - whole) * 1e9))
        _syscall(_SYS_FUTEX, self._address, _FUTEX_WAIT, ctypes.c_int(seen), ctypes.byref(timespec), None, 0)
