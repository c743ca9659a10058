"""The NCCL communicator: ``cupy.cuda.nccl.NcclCommunicator`` on its own non-blocking stream.

Ordering: each op records an event on the caller's current (compute) stream and makes our stream wait
for it, so the collective sees every kernel queued before it; ``Work.wait()`` makes the compute stream
wait for the op's completion event, so kernels queued after it see the result. The host only blocks
in ``wait()``, where it polls the completion event (``Event.done``, cudaEventQuery) so that it can
honour the op's timeout and the job's abort flag; on either it calls ``NcclCommunicator.abort()``
(ncclCommAbort), which makes the stuck kernels exit, and the communicator is unusable afterwards.

``mean`` is a sum followed by a division on our stream (as ChainerMN does), which works on every NCCL
version. CuPy is imported lazily: this module imports without it.
"""

from __future__ import annotations

import threading
import time

from dist.comm.base import DEFAULT_TIMEOUT_S, Communicator, CompletedWork, Deadline, Work
from dist.errors import CollectiveAborted, CollectiveError, CollectiveTimeout

_NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "bfloat16": "NCCL_BFLOAT16", "int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32",
               "int64": "NCCL_INT64", "bool": "NCCL_UINT8"}  # bool as bytes: max is any, min is all
_NCCL_OPS = {"sum": "NCCL_SUM", "mean": "NCCL_SUM", "max": "NCCL_MAX", "min": "NCCL_MIN"}
_SPIN_CHECKS = 100
_MAX_SLEEP_S = 2e-4


def import_cupy():
    """(cupy, cupy.cuda.nccl), or ImportError saying how to get them."""
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as exc:
        raise ImportError("backend='nccl' needs CuPy built with NCCL: pip install 'raygrad[cuda12]' "
                          "(or [cuda13]); use backend='cpu' on machines without CUDA") from exc
    if not getattr(nccl, "available", True):
        raise ImportError("this CuPy was built without NCCL; install a cupy-cuda12x/13x wheel, which bundles it")
    return cupy, nccl


class NcclWork(Work):
    """An NCCL op in flight on the communicator's stream; holds its arrays until it is waited for."""

    def __init__(self, comm: NcclCommunicator, op: str, done, keepalive: tuple, result, deadline: Deadline,
                 sequence: int):
        self._comm, self._op, self._done, self._keepalive = comm, op, done, keepalive
        self._result, self._deadline, self._sequence = result, deadline, sequence
        self._finished = False

    def wait(self, timeout: float | None = None):
        if not self._finished:
            self._comm._wait_for(self._done, self._op, self._deadline, timeout, self._sequence)
            self._comm._cupy.cuda.get_current_stream().wait_event(self._done)
            self._keepalive, self._finished = (), True  # the memory may be reused now: the op is done
        return self._result

    def is_completed(self) -> bool:
        return self._finished or self._done.done


class NcclCommunicator(Communicator):
    """Collectives on CuPy arrays of the current device (see the module docstring).

    Create it after the worker selected its device (WorkerGroup does, before any CUDA call). Arguments
    as for CpuCommunicator; ``client`` is needed when world_size > 1 (to share NCCL's unique id).
    """

    backend = "nccl"

    def __init__(self, rank: int, world_size: int, client=None, abort=None, *, key: str = "default",
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(rank, world_size, timeout_s, key)
        self._cupy, self._nccl = import_cupy()
        if world_size > 1 and client is None:
            raise ValueError("NcclCommunicator: world_size > 1 needs client= (a dist.coordinator.CoordinatorClient)")
        self._client, self._abort = client, abort
        self._broken: str | None = None
        self._device = self._cupy.cuda.Device()  # the current device: the one this rank owns
        with self._device:
            self._stream = self._cupy.cuda.Stream(non_blocking=True)
            self._barrier_buffer = self._cupy.zeros(1, dtype=self._cupy.int32)
        self._comm = self._create(Deadline.after(self.timeout_s))

    def _create(self, deadline: Deadline):
        """Share rank 0's unique id, meet at a barrier, then init; the blocking init runs on a helper
        thread so that a rank that never shows up gives a timeout instead of a hang."""
        nccl = self._nccl
        if self.world_size == 1:
            unique_id = nccl.get_unique_id()
        else:
            id_key = f"comm/{self.key}/nccl-id"
            if self.rank == 0:
                unique_id = nccl.get_unique_id()
                self._client.kv_put(id_key, unique_id)
            else:
                unique_id = self._client.kv_get(id_key, deadline.remaining(), op="init_communicator")
            self._client.barrier(f"comm/{self.key}/nccl-init", deadline.remaining(), range(self.world_size),
                                 op="init_communicator")
        result: dict = {}

        def init() -> None:
            try:
                with self._device:
                    result["comm"] = nccl.NcclCommunicator(self.world_size, unique_id, self.rank)
            except BaseException as exc:  # handed to the waiting thread below
                result["error"] = exc
        thread = threading.Thread(target=init, name=f"raygrad-nccl-init-{self.key}", daemon=True)
        thread.start()
        thread.join(max(0.0, deadline.remaining()))
        if "error" in result:
            raise result["error"]
        if "comm" not in result:
            raise CollectiveTimeout("init_communicator", deadline.timeout_s, [], self.rank,
                                    detail="ncclCommInitRank did not return: a rank never joined")
        return result["comm"]

    # -- validation ------------------------------------------------------------------------------

    def _check_array(self, array, op: str) -> None:
        if not isinstance(array, self._cupy.ndarray):
            raise TypeError(f"{op}: the nccl backend works on cupy arrays, got {type(array).__module__}."
                            f"{type(array).__name__}; move it to the GPU (cupy.asarray) or use backend='cpu'")
        if array.device.id != self._device.id:
            raise ValueError(f"{op}: the array is on GPU {array.device.id} but this rank's communicator is on "
                             f"GPU {self._device.id}")
        self._nccl_type(array.dtype, op)

    def _nccl_type(self, dtype, op: str) -> int:
        name = _NCCL_TYPES.get(str(dtype))
        code = getattr(self._nccl, name, None) if name else None
        if code is None:
            raise TypeError(f"{op}: NCCL cannot move {dtype} arrays here (supported: "
                            f"{sorted(k for k, v in _NCCL_TYPES.items() if hasattr(self._nccl, v))}); cast first")
        return code

    def _empty(self, shape: tuple, dtype):
        with self._device:
            return self._cupy.empty(shape, dtype=dtype)

    def _in_place(self, array, op: str):
        if not array.flags.c_contiguous:
            raise ValueError(f"{op}: the nccl backend works in place on C-contiguous arrays only (strides "
                             f"{array.strides}); pass cupy.ascontiguousarray(x) and copy the result back")
        return array

    # -- the collectives -----------------------------------------------------------------------------

    def _launch_allreduce(self, array, op, timeout_s, blocking) -> Work:
        array = self._in_place(array, "allreduce")
        dtype, reduce = self._nccl_type(array.dtype, "allreduce"), getattr(self._nccl, _NCCL_OPS[op])
        ptr = array.data.ptr
        return self._launch("allreduce", timeout_s,
                            lambda s: self._comm.allReduce(ptr, ptr, array.size, dtype, reduce, s),
                            (array,), array, self._mean_of(array) if op == "mean" else None)

    def _launch_broadcast(self, array, src, timeout_s, blocking) -> Work:
        array = self._in_place(array, "broadcast")
        dtype, ptr = self._nccl_type(array.dtype, "broadcast"), array.data.ptr
        return self._launch("broadcast", timeout_s,
                            lambda s: self._comm.broadcast(ptr, ptr, array.size, dtype, src, s), (array,), array)

    def _launch_allgather(self, array, out, timeout_s, blocking) -> Work:
        array = self._cupy.ascontiguousarray(array)  # on the compute stream, before our ready event
        dtype = self._nccl_type(array.dtype, "allgather")
        return self._launch("allgather", timeout_s,
                            lambda s: self._comm.allGather(array.data.ptr, out.data.ptr, array.size, dtype, s),
                            (array, out), out)

    def _launch_reduce_scatter(self, array, op, out, timeout_s, blocking) -> Work:
        array = self._cupy.ascontiguousarray(array)
        dtype, reduce = self._nccl_type(array.dtype, "reduce_scatter"), getattr(self._nccl, _NCCL_OPS[op])
        return self._launch("reduce_scatter", timeout_s,
                            lambda s: self._comm.reduceScatter(array.data.ptr, out.data.ptr, out.size, dtype,
                                                               reduce, s),
                            (array, out), out, self._mean_of(out) if op == "mean" else None)

    def _launch_barrier(self, timeout_s, blocking) -> Work:
        buffer = self._barrier_buffer
        dtype, reduce = self._nccl.NCCL_INT32, self._nccl.NCCL_SUM
        return self._launch("barrier", timeout_s,
                            lambda s: self._comm.allReduce(buffer.data.ptr, buffer.data.ptr, 1, dtype, reduce, s),
                            (buffer,), None)

    def _mean_of(self, array):
        world = self.world_size
        return lambda: self._cupy.divide(array, world, out=array)

    def _launch(self, op: str, timeout_s: float, enqueue, keepalive: tuple, result, after=None) -> Work:
        """Queue ``enqueue(stream_ptr)`` (and ``after()``) on our stream, ordered after the compute stream."""
        self._check_usable(op)
        if all(a.size == 0 for a in keepalive):
            return CompletedWork(result)  # nothing to move (NCCL versions differ on count 0)
        cupy = self._cupy
        with self._device:
            ready = cupy.cuda.Event(disable_timing=True)
            ready.record(cupy.cuda.get_current_stream())
            self._stream.wait_event(ready)
            enqueue(self._stream.ptr)
            if after is not None:
                with self._stream:
                    after()
            done = cupy.cuda.Event(disable_timing=True)
            done.record(self._stream)
        return NcclWork(self, op, done, keepalive, result, Deadline.after(timeout_s), self.ops_started)

    # -- waiting, aborting, closing --------------------------------------------------------------

    def _wait_for(self, event, op: str, deadline: Deadline, timeout: float | None, sequence: int) -> None:
        """Poll ``event`` until done; abort the communicator on the op's timeout or the job's abort."""
        wait_until = deadline.at if timeout is None else min(deadline.at, time.monotonic() + timeout)
        checks = 0
        while not event.done:  # cupy.cuda.Event.done is cudaEventQuery
            checks += 1
            if checks < _SPIN_CHECKS:
                continue
            if self._abort is not None and self._abort.is_set():
                self._abort_nccl(f"job aborted: {self._abort.reason}")
                raise CollectiveAborted(op, self._abort.reason or "aborted", self.rank)
            if time.monotonic() >= wait_until:
                if wait_until < deadline.at:  # only Work.wait's own timeout expired: the op goes on
                    raise CollectiveTimeout(op, timeout, [], self.rank, detail="Work.wait(timeout) expired; the op "
                                                                              "keeps running under its own timeout")
                missing = self._ranks_behind(sequence)
                self._abort_nccl(f"{op} timed out after {deadline.timeout_s:g} s")
                raise CollectiveTimeout(op, deadline.timeout_s, missing, self.rank)
            time.sleep(0 if checks < 10 * _SPIN_CHECKS else _MAX_SLEEP_S)

    def _ranks_behind(self, sequence: int) -> list[int]:
        """Ranks whose heartbeat says they never issued this op (NCCL itself cannot tell); best effort."""
        if self._client is None:
            return []
        try:
            return self._client.call("ranks_behind", self.key, sequence, timeout_s=5)
        except Exception:  # only enriches the timeout message
            return []

    def _abort_nccl(self, reason: str) -> None:
        if self._broken is None:
            self._broken = reason
            self._comm.abort()

    def _check_usable(self, op: str) -> None:
        if self.closed:
            raise CollectiveError(f"{op}: this communicator is closed; create a new one with init_communicator")
        if self._broken is not None:
            raise CollectiveAborted(op, f"this communicator was aborted earlier ({self._broken})", self.rank)

    def close(self) -> None:
        """Destroy the NCCL communicator once queued work finished (abort it if that takes past timeout_s)."""
        if self.closed:
            return
        self.closed = True
        if self._broken is not None:
            return
        with self._device:
            done = self._cupy.cuda.Event(disable_timing=True)
            done.record(self._stream)
        try:
            self._wait_for(done, "close", Deadline.after(self.timeout_s), None, self.ops_started)
        except CollectiveError:  # aborted or timed out: _wait_for already called ncclCommAbort
            return
        self._comm.destroy()
