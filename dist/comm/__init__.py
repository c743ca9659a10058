"""Communicators: allreduce / broadcast / allgather / reduce_scatter / barrier with timeouts.

Inside a WorkerGroup rank::

    comm = dist.comm.init_communicator()          # every rank calls it; "auto": nccl on GPU workers, else cpu
    comm.allreduce(grads, op="mean")              # in place
    work = comm.allreduce_async(bucket); ...; work.wait()

The backends: ``cpu`` (dist.comm.cpu: shared memory within a node, Ray's object store across nodes) and
``nccl`` (dist.comm.nccl: cupy.cuda.nccl on its own stream; CuPy is imported only when it is used).
"""

from __future__ import annotations

from dist.comm.base import DEFAULT_TIMEOUT_S, REDUCE_OPS, Communicator, Work, as_array

BACKENDS = ("auto", "cpu", "nccl")

__all__ = ["BACKENDS", "DEFAULT_TIMEOUT_S", "REDUCE_OPS", "Communicator", "Work", "as_array", "get_communicator",
           "init_communicator", "resolve_backend"]


def init_communicator(backend: str = "auto", *, name: str = "default", timeout_s: float = DEFAULT_TIMEOUT_S,
                      **options) -> Communicator:
    """Create this rank's communicator; a collective call: every rank of the WorkerGroup must make it.

    Args:
        backend: "cpu", "nccl", or "auto" (nccl on GPU workers where CuPy is installed, else cpu).
        name: registry name on this rank (``get_communicator(name)``); one live communicator per name.
        timeout_s: default timeout of each collective, in seconds.
        options: backend options, e.g. ``max_buffer_bytes`` for cpu.
    """
    from dist.env import get_context

    context = get_context()
    existing = context.communicators.get(name)
    if existing is not None and not existing.closed:
        raise ValueError(f"init_communicator: a communicator named {name!r} is already open on this rank; "
                         f"use get_communicator({name!r}) or close it first")
    backend = resolve_backend(backend, context.use_gpu)
    generation = context.comm_generations.get(name, 0)
    context.comm_generations[name] = generation + 1
    key = f"{context.job}/{name}.{generation}"  # same on every rank: they create communicators in the same order
    if backend == "nccl":
        from dist.comm.nccl import NcclCommunicator as cls
    else:
        from dist.comm.cpu import CpuCommunicator as cls
    comm = cls(context.rank, context.world_size, context.client, context.abort, key=key, timeout_s=timeout_s,
               **options)
    context.communicators[name] = comm
    return comm


def get_communicator(name: str = "default") -> Communicator:
    """The communicator that ``init_communicator(name=name)`` created on this rank."""
    from dist.env import get_context

    comm = get_context().communicators.get(name)
    if comm is None or comm.closed:
        raise LookupError(f"get_communicator: no open communicator named {name!r} on this rank; call "
                          f"init_communicator(name={name!r}) on every rank first")
    return comm


def resolve_backend(backend: str, use_gpu: bool) -> str:
    """"auto" -> "nccl" on GPU workers with CuPy, else "cpu"; checks explicit choices."""
    if backend not in BACKENDS:
        raise ValueError(f"init_communicator: backend={backend!r} is not one of {BACKENDS}")
    if backend == "nccl" and not use_gpu:
        raise ValueError("init_communicator: backend='nccl' needs GPU workers: WorkerGroup(..., use_gpu=True)")
    if backend != "auto":
        return backend
    if not use_gpu:
        return "cpu"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "cpu"
    return "nccl"
