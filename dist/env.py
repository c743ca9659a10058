"""The rank side of a WorkerGroup: the actor behind each rank, and what a rank knows about itself
(rank numbers, device, the coordinator, the abort flag).

``get_context()`` is how code running under ``WorkerGroup.execute`` (DDP, the trainers' session,
``dist.comm.init_communicator``) finds its rank, world size, device and coordinator.

Each rank's actor process imports this module before ``RankActor.__init__`` limits the BLAS threads,
which must happen before numpy loads: keep this module's imports free of numpy (dist.coordinator pulls
it in through the data mixin, so it is imported inside the functions that use it).
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

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
    actor process has not imported numpy when RankActor.__init__ runs (this module keeps numpy out of
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


@dataclass(frozen=True)
class RankInfo:
    """Where a rank sits. Ranks on one node are contiguous; nodes are numbered by their lowest rank."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    node_id: str
    ip: str


@dataclass
class RankFailure:
    """What a rank returns instead of raising, so the driver gets the traceback text verbatim."""

    rank: int
    text: str
    exception: bytes | None  # pickled exception, None where it does not pickle


class RankActor:
    """The Ray actor behind one rank (WorkerGroup creates it with ``ray.remote(RankActor)``)."""

    def __init__(self, num_threads: int):
        limit_threads(num_threads)
        from tensor.host_memory import keep_freed_memory

        keep_freed_memory()  # a training process: freed step memory is kept for the next step
        self._rank: int | None = None

    def describe(self) -> dict:
        import ray

        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(), "pid": os.getpid()}

    def setup(self, info: RankInfo, coordinator, job: str, use_gpu: bool, heartbeat_interval_s: float) -> None:
        """Become rank ``info.rank``: device first (before any CUDA call), then env vars, context, heartbeat."""
        from dist.coordinator import CoordinatorClient

        device_index = select_cuda_device() if use_gpu else None
        set_rank_env(info.rank, info.world_size, info.local_rank, info.local_world_size, info.node_rank)
        abort = AbortSignal()
        client = CoordinatorClient(coordinator, info.rank, abort)
        context = WorkerContext(
            job=job, rank=info.rank, world_size=info.world_size, local_rank=info.local_rank,
            local_world_size=info.local_world_size, node_rank=info.node_rank, node_id=info.node_id,
            use_gpu=use_gpu, device_index=device_index, client=client, abort=abort)
        client.call("register", info.rank, {"node_id": info.node_id, "ip": info.ip, "pid": os.getpid(),
                                            "node_rank": info.node_rank, "local_rank": info.local_rank})
        set_context(context)
        self._rank = info.rank
        context.start_heartbeat(heartbeat_interval_s)

    def run(self, fn: Callable, args: tuple, kwargs: dict, abort_on_error: bool) -> Any:
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:  # noqa: B036 - the driver must hear about SystemExit/KeyboardInterrupt too
            return self._report(exc, abort_on_error)

    def _report(self, exc: BaseException, abort_on_error: bool) -> RankFailure:
        text = traceback.format_exc()
        context = get_context()
        context.client.notify("record_error", self._rank, text)
        if abort_on_error:
            reason = f"rank {self._rank} failed: {type(exc).__name__}: {exc}"
            context.abort.set(reason)  # wakes this node's ranks at once (shared-memory flag)
            context.client.abort_job(reason)  # and the other nodes' at their next heartbeat
        return RankFailure(self._rank, text, _pickle_or_none(exc))

    def close(self) -> None:
        if in_worker():
            get_context().close()
            set_context(None)


def _pickle_or_none(exc: BaseException) -> bytes | None:
    try:
        return pickle.dumps(exc)
    except Exception:  # an exception holding unpicklable state: its text still travels
        return None
