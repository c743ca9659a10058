"""torch.multiprocessing's process API, which is Python's multiprocessing: set_start_method,
get_context, Process, Queue, Pool, ...

    tensor.multiprocessing.set_start_method("spawn", force=True)

torch's version also moves tensors into shared memory when they are sent to another process; here a
tensor sent through a Queue or to a Process is pickled, so the receiver gets a copy. For data-parallel
training across processes (torch.multiprocessing.spawn with torch.distributed) raygrad uses Ray
workers instead: see trainers.train_loop.
"""
from __future__ import annotations

from multiprocessing import (  # noqa: F401 - re-exported under torch's module name
    Array, Barrier, Condition, Event, JoinableQueue, Lock, Manager, Pipe, Pool, Process, Queue, RLock, Semaphore,
    SimpleQueue, Value, active_children, cpu_count, current_process, get_all_start_methods, get_context,
    get_start_method, set_start_method,
)
