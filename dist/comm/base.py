"""The Communicator interface shared by the CPU (shared memory + object store) and NCCL backends.

Every collective works in place on a NumPy/CuPy array, or on an object with a ``.data`` array attribute
(a ``tensor.Tensor``), and has a timeout in seconds (``timeout=None``: the communicator's default).
All ranks must call the same collectives in the same order, as with torch.distributed.

Shapes:
    allreduce(x)          x any shape, reduced in place; returns the array.
    broadcast(x, src)     x any shape, overwritten with rank src's values; returns the array.
    allgather(x)          returns (world_size, *x.shape): out[r] is rank r's x. This is
                          torch's all_gather_into_tensor with the ranks stacked on a new leading axis
                          (``out.reshape(-1, *x.shape[1:])`` is torch's concatenated layout).
    reduce_scatter(x)     x of shape (world_size * k, ...); returns (k, ...): this rank's block of the
                          reduction, rank r getting rows [r*k, (r+1)*k) (torch's reduce_scatter_tensor).
    barrier()             returns when every rank has entered it.

The ``*_async`` forms return a Work handle at once; ``Work.wait()`` gives the same result as the sync
form. One caller thread per communicator: the ops run in the order they were issued.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REDUCE_OPS = ("sum", "mean", "max", "min")
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Deadline:
    """When an op must be done: ``at`` on the time.monotonic() clock, for a timeout of ``timeout_s``."""

    timeout_s: float
    at: float = field(default=0.0)

    @classmethod
    def after(cls, timeout_s: float) -> "Deadline":
        return cls(timeout_s, time.monotonic() + timeout_s)

    def remaining(self) -> float:
        return self.at - time.monotonic()


class Work(abc.ABC):
    """A collective in flight."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> Any:
        """Block until done and return the op's result (or raise its error). ``timeout`` in seconds bounds
        this wait (CollectiveTimeout if it expires; the op itself keeps its own timeout)."""

    @abc.abstractmethod
    def is_completed(self) -> bool:
        """True once the op finished (successfully or not); never blocks."""


class CompletedWork(Work):
    """A Work whose result is already known (world size 1, empty arrays, ops run inline)."""

    def __init__(self, result: Any = None):
        self._result = result

    def wait(self, timeout: float | None = None) -> Any:
        return self._result

    def is_completed(self) -> bool:
        return True


class Communicator(abc.ABC):
    """rank / world_size, five collectives with timeouts and async forms, close().

    Subclasses implement the ``_launch_*`` methods on validated arrays: ``array`` is the raw array the
    caller gave (or its ``.data``), ``timeout_s`` a float, ``blocking`` tells whether the caller will wait
    right away (the CPU backend then runs the op inline instead of on its thread).
    """

    backend = "abstract"

    def __init__(self, rank: int, world_size: int, timeout_s: float = DEFAULT_TIMEOUT_S, key: str = "default"):
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"{type(self).__name__}: world_size must be an int >= 1, got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"{type(self).__name__}: rank={rank!r} is not in [0, {world_size})")
        self.rank, self.world_size, self.key = rank, world_size, key
        self.timeout_s = _check_timeout(type(self).__name__, timeout_s)
        self.ops_started = 0  # collectives issued so far: reported in heartbeats to find lagging ranks
        self.closed = False

    # -- sync forms -----------------------------------------------------------------------------

    def allreduce(self, x, op: str = "sum", timeout: float | None = None):
        """Reduce ``x`` over all ranks in place (op: sum, mean, max, min); returns the array."""
        return self._issue_allreduce(x, op, timeout, blocking=True).wait()

    def broadcast(self, x, src: int = 0, timeout: float | None = None):
        """Overwrite ``x`` on every rank with rank ``src``'s ``x``; returns the array."""
        return self._issue_broadcast(x, src, timeout, blocking=True).wait()

    def allgather(self, x, out=None, timeout: float | None = None):
        """Every rank's ``x`` stacked: an array of shape (world_size, *x.shape) (written into ``out`` if given)."""
        return self._issue_allgather(x, out, timeout, blocking=True).wait()

    def reduce_scatter(self, x, op: str = "sum", out=None, timeout: float | None = None):
        """Reduce ``x`` (shape (world_size * k, ...)) and return this rank's block, shape (k, ...)."""
        return self._issue_reduce_scatter(x, op, out, timeout, blocking=True).wait()

    def barrier(self, timeout: float | None = None) -> None:
        """Return once every rank has called barrier()."""
        self._issue_barrier(timeout, blocking=True).wait()

    # -- async forms ----------------------------------------------------------------------------

    def allreduce_async(self, x, op: str = "sum", timeout: float | None = None) -> Work:
        return self._issue_allreduce(x, op, timeout, blocking=False)

    def broadcast_async(self, x, src: int = 0, timeout: float | None = None) -> Work:
        return self._issue_broadcast(x, src, timeout, blocking=False)

    def allgather_async(self, x, out=None, timeout: float | None = None) -> Work:
        return self._issue_allgather(x, out, timeout, blocking=False)

    def reduce_scatter_async(self, x, op: str = "sum", out=None, timeout: float | None = None) -> Work:
        return self._issue_reduce_scatter(x, op, out, timeout, blocking=False)

    def barrier_async(self, timeout: float | None = None) -> Work:
        return self._issue_barrier(timeout, blocking=False)

    # -- validation, shared by the backends ----------------------------------------------------------

    def _issue_allreduce(self, x, op, timeout, blocking) -> Work:
        array = self._array(x, "allreduce", writable=True)
        check_reduce_op("allreduce", op, array.dtype)
        self.ops_started += 1
        return self._launch_allreduce(array, op, self._timeout(timeout), blocking)

    def _issue_broadcast(self, x, src, timeout, blocking) -> Work:
        array = self._array(x, "broadcast", writable=True)
        if not isinstance(src, (int, np.integer)) or not 0 <= src < self.world_size:
            raise ValueError(f"broadcast: src={src!r} is not a rank in [0, {self.world_size})")
        self.ops_started += 1
        return self._launch_broadcast(array, int(src), self._timeout(timeout), blocking)

    def _issue_allgather(self, x, out, timeout, blocking) -> Work:
        array = self._array(x, "allgather")
        out_array = self._out(out, (self.world_size, *array.shape), array, "allgather")
        self.ops_started += 1
        return self._launch_allgather(array, out_array, self._timeout(timeout), blocking)

    def _issue_reduce_scatter(self, x, op, out, timeout, blocking) -> Work:
        array = self._array(x, "reduce_scatter")
        check_reduce_op("reduce_scatter", op, array.dtype)
        if array.ndim == 0 or array.shape[0] % self.world_size:
            raise ValueError(f"reduce_scatter: the first axis of x (shape {array.shape}) must be a multiple of "
                             f"world_size={self.world_size}; pad x to a multiple first")
        shape = (array.shape[0] // self.world_size, *array.shape[1:])
        out_array = self._out(out, shape, array, "reduce_scatter")
        self.ops_started += 1
        return self._launch_reduce_scatter(array, op, out_array, self._timeout(timeout), blocking)

    def _issue_barrier(self, timeout, blocking) -> Work:
        self.ops_started += 1
        return self._launch_barrier(self._timeout(timeout), blocking)

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout_s if timeout is None else _check_timeout("timeout", timeout)

    def _array(self, x, op: str, writable: bool = False):
        array = as_array(x, op)
        if writable and isinstance(array, np.ndarray) and not array.flags.writeable:
            raise ValueError(f"{op}: the array is read-only (flags.writeable=False), and {op} writes in place; "
                             "pass a writable copy (np.array(x))")
        self._check_array(array, op)
        return array

    def _out(self, out, shape: tuple, like, op: str):
        """The caller's ``out`` checked against ``shape``/dtype, or a new array."""
        if out is None:
            return self._empty(shape, like.dtype)
        out_array = as_array(out, op)
        if tuple(out_array.shape) != tuple(shape) or out_array.dtype != like.dtype:
            raise ValueError(f"{op}: out has shape {tuple(out_array.shape)} and dtype {out_array.dtype}, expected "
                             f"shape {tuple(shape)} and dtype {like.dtype}")
        if not out_array.flags.c_contiguous:
            raise ValueError(f"{op}: out must be C-contiguous; pass out=None to get a new array")
        self._check_array(out_array, op)
        return out_array

    # -- what the backends provide --------------------------------------------------------------

    @abc.abstractmethod
    def _check_array(self, array, op: str) -> None:
        """Raise if this backend cannot work on ``array`` (wrong device, dtype...)."""

    @abc.abstractmethod
    def _empty(self, shape: tuple, dtype):
        """A new uninitialised array on this backend's device."""

    @abc.abstractmethod
    def _launch_allreduce(self, array, op: str, timeout_s: float, blocking: bool) -> Work: ...

    @abc.abstractmethod
    def _launch_broadcast(self, array, src: int, timeout_s: float, blocking: bool) -> Work: ...

    @abc.abstractmethod
    def _launch_allgather(self, array, out, timeout_s: float, blocking: bool) -> Work: ...

    @abc.abstractmethod
    def _launch_reduce_scatter(self, array, op: str, out, timeout_s: float, blocking: bool) -> Work: ...

    @abc.abstractmethod
    def _launch_barrier(self, timeout_s: float, blocking: bool) -> Work: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Release buffers and threads. Idempotent; the communicator is unusable afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size}, key={self.key!r})"


def as_array(x, op: str):
    """The raw array behind ``x``: a numpy/cupy array itself, or the ``.data`` of a Tensor-like object."""
    if isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__"):
        return x  # checked first: numpy and cupy arrays have a .data attribute of their own (a buffer)
    data = getattr(x, "data", None)
    if isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__"):
        return data
    raise TypeError(f"{op}: expected a numpy/cupy array or a Tensor (an object whose .data is one), "
                    f"got {type(x).__name__}")


def check_reduce_op(op_name: str, op: str, dtype) -> None:
    """Raise ValueError unless reduction ``op`` makes sense for ``dtype``."""
    if op not in REDUCE_OPS:
        raise ValueError(f"{op_name}: op={op!r} is not one of {REDUCE_OPS}")
    kind = dtype_kind(dtype)
    if kind == "b" and op in ("sum", "mean"):
        raise ValueError(f"{op_name}: op={op!r} is undefined on bool arrays; use op='max' (any) or op='min' (all), "
                         "or cast to an integer type to count")
    if op == "mean" and kind not in "fc":
        raise ValueError(f"{op_name}: op='mean' needs a floating-point array, got {dtype}; cast to float32, or use "
                         "op='sum' and divide by world_size")
    if op in ("max", "min") and kind == "c":
        raise ValueError(f"{op_name}: op={op!r} is undefined on complex arrays ({dtype})")
    if kind not in "biufc":
        raise ValueError(f"{op_name}: cannot reduce arrays of dtype {dtype}; reductions need numbers or bool")


def dtype_kind(dtype) -> str:
    """numpy's kind letter; bfloat16 (ml_dtypes, kind 'V' to numpy) counts as floating point ('f')."""
    return "f" if str(dtype) == "bfloat16" else np.dtype(dtype).kind


def _check_timeout(label: str, timeout) -> float:
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ValueError(f"{label} must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)
