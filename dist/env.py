"""What a rank knows about itself inside its actor: rank numbers, the coordinator, the abort flag.

``get_context()`` is how code running under ``WorkerGroup.execute`` (DDP, the trainers' session,
``dist.comm.init_communicator``) finds its rank, world size, device and coordinator.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from dist.comm.base import Communicator
    from dist.coordinator import CoordinatorClient

log = logging.getLogger(__name__)

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class AbortSignal:
    """A process-wide, sticky "stop now" flag with the reason; communicators poll ``is_set()`` while they
    wait and register callbacks (e.g. to raise a shared-memory flag that wakes the node's other ranks)."""

    def __init__(self):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[str], None]] = []
        self.reason: str | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, reason: str) -> None:
        """Abort with ``reason`` (the first reason wins) and run the callbacks once."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = str(reason)
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(self.reason)
            except Exception:  # one broken callback must not stop the others from hearing the abort
                log.exception("abort callback %r failed", callback)

    def add_callback(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` on abort (at once if already aborted)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self.reason)

    def remove_callback(self, callback: Callable[[str], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


@dataclass
class WorkerContext:
    """One rank's view of the job. ``node_rank`` numbers nodes by their lowest rank (rank 0's node is 0)."""

    job: str
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    node_id: str
    use_gpu: bool
    device_index: int | None
    client: CoordinatorClient
    abort: AbortSignal
    communicators: dict[str, Communicator] = field(default_factory=dict)
    comm_generations: dict[str, int] = field(default_factory=dict)  # per name: communicators created so far
    _heartbeat: _Heartbeat | None = None

    @property
    def coordinator(self):
        """The coordinator's actor handle."""
        return self.client.handle

    def progress(self) -> dict[str, int]:
        """communicator key -> collectives started, sent with each heartbeat (names lagging ranks on timeout)."""
        return {comm.key: comm.ops_started for comm in list(self.communicators.values())}

    def start_heartbeat(self, interval_s: float) -> None:
        self._heartbeat = _Heartbeat(self, interval_s)
        self._heartbeat.start()

    def close(self) -> None:
        """Close the communicators, stop the heartbeat and tell the coordinator this rank leaves on purpose."""
        for comm in list(self.communicators.values()):
            try:
                comm.close()
            except Exception:  # closing is best effort: the actor is about to go away
                log.exception("closing communicator %r failed", comm)
        self.communicators.clear()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        try:
            self.client.call("leave", self.rank, timeout_s=5)
        except Exception:
            log.warning("rank %d could not tell the coordinator it is leaving", self.rank)


class _Heartbeat(threading.Thread):
    """Beats to the coordinator every ``interval_s`` and brings the job's abort flag back to this process."""

    def __init__(self, context: WorkerContext, interval_s: float):
        super().__init__(name=f"raygrad-heartbeat-rank{context.rank}", daemon=True)
        self._context, self._interval_s = context, interval_s
        self._stop = threading.Event()

    def run(self) -> None:
        import ray  # imported here so that dist.env stays importable without starting Ray machinery

        ctx = self._context
        while not self._stop.is_set():
            try:
                reason = ctx.client.call("heartbeat", ctx.rank, ctx.progress(),
                                         timeout_s=max(5.0, 5 * self._interval_s))
            except ray.exceptions.GetTimeoutError:
                log.warning("rank %d: the coordinator did not answer a heartbeat in time", ctx.rank)
                reason = None
            except Exception as exc:  # the coordinator died: nothing can coordinate this job any more
                reason = f"the job's coordinator is unreachable ({type(exc).__name__}: {exc})"
            if reason is not None:
                ctx.abort.set(reason)
            self._stop.wait(self._interval_s)

    def stop(self) -> None:
        self._stop.set()


_context: WorkerContext | None = None


def get_context() -> WorkerContext:
    """This rank's WorkerContext; only inside a function run by ``WorkerGroup.execute``."""
    if _context is None:
        raise RuntimeError("dist.env.get_context(): this process is not a raygrad worker; call it from a function "
                           "run by WorkerGroup.execute(...)")
    return _context


def in_worker() -> bool:
    return _context is not None


def set_context(context: WorkerContext | None) -> None:
    global _context
    _context = context


def limit_threads(num_threads: int) -> None:
    """Make BLAS/OpenMP use ``num_threads`` threads in this process.

    OpenBLAS and MKL read OMP/OPENBLAS/MKL_NUM_THREADS once, when numpy first loads them. A fresh Ray
    actor process has not imported numpy when its __init__ runs (dist.worker_group keeps numpy out of
    its imports for this reason), so setting the variables there is enough. A reused worker may have
    loaded numpy already: then threadpoolctl, where installed, resizes the running pools; without it
    we can only warn.
    """
    import sys

    value = str(max(1, int(num_threads)))
    for var in THREAD_ENV_VARS:
        os.environ[var] = value
    if "numpy" not in sys.modules:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.warning("numpy was loaded before the BLAS thread count could be set to %s and threadpoolctl is not "
                    "installed; BLAS may use more threads than this worker's CPUs (pip install threadpoolctl)",
                    value)
        return
    threadpool_limits(limits=int(value))


def set_rank_env(rank: int, world_size: int, local_rank: int, local_world_size: int, node_rank: int) -> None:
    """The torchrun-style variables, for user code and libraries that read them."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(local_rank),
                      LOCAL_WORLD_SIZE=str(local_world_size), NODE_RANK=str(node_rank))


def select_cuda_device() -> int:
    """Make this process's GPU current before anything touches CUDA; returns the device index (0).

    Ray sets CUDA_VISIBLE_DEVICES to the GPU it gave this actor, so that GPU is device 0 here.
    """
    if not os.environ.get("CUDA_VISIBLE_DEVICES"):
        raise RuntimeError("use_gpu=True but Ray gave this actor no GPU (CUDA_VISIBLE_DEVICES is empty); "
                           "check that the cluster has GPUs: ray.cluster_resources().get('GPU')")
    try:
        import cupy
    except ImportError:
        return 0  # nothing CUDA-aware is loaded yet; device 0 is CUDA's default for every thread
    cupy.cuda.Device(0).use()
    return 0
