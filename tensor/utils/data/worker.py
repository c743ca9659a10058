"""DataLoader worker processes: the loop each worker runs, and the main process's iterator over them.

Each worker gets its own index queue; all share one data queue back. The main process keeps
prefetch_factor batches per worker in flight, hands indices out round-robin, and puts the batches
back in sampler order. A worker pickles each batch itself (a Tensor pickles as its NumPy array, so
batches cross as arrays and become Tensors again on arrival), so a batch that cannot be pickled is
reported like any other error. The main process never blocks for long: it waits on the data queue
in short polls and checks between them that every worker is still alive.
"""
from __future__ import annotations

import itertools
import os
import pickle
import queue
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass

import numpy as np

from .fetch import BaseIter, make_fetcher

_POLL_S = 0.2  # how often a waiting main process checks that its workers are alive
_JOIN_S = 2.0  # how long a worker gets to exit cleanly at shutdown before it is terminated


@dataclass(frozen=True)
class WorkerInfo:
    """What get_worker_info() returns inside a worker: its id, how many workers there are, its seed,
    and its own copy of the dataset."""

    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info = None


def get_worker_info():
    """This worker's WorkerInfo inside a DataLoader worker process; None in the main process.
    An IterableDataset uses it to split its stream: e.g. yield every `num_workers`-th item from `id`."""
    return _worker_info


class _ResumeIteration:
    """Sent to persistent workers at the start of an epoch, and echoed back once they have restarted."""


@dataclass(frozen=True)
class _StreamEnd:
    """A worker's IterableDataset ran dry."""

    worker_id: int


class _WorkerError:
    """An exception raised in a worker, carried to the main process with the worker's traceback text."""

    def __init__(self, worker_id, doing="in DataLoader worker process"):
        exc_type = sys.exc_info()[0]
        self.where, self.text = f"{doing} {worker_id}", traceback.format_exc()
        self.exc_type = exc_type if _picklable(exc_type) else RuntimeError

    def reraise(self):
        message = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.text}"
        if self.exc_type is KeyError:  # KeyError shows repr(arg): keep the traceback's newlines readable
            message = _Unquoted(message)
        try:
            error = self.exc_type(message)
        except Exception:  # an exception class whose constructor needs other arguments
            error = RuntimeError(message)
        raise error


class _Unquoted(str):
    def __repr__(self):
        return str(self)


def _worker_loop(iterable, dataset, index_queue, data_queue, done_event, auto_collation, collate_fn, drop_last,
                 base_seed, init_fn, worker_id, num_workers):
    """A worker's life: seed, run worker_init_fn, then answer (task id, index) messages from
    index_queue with (task id, batch) on data_queue until it gets None (or the main process dies)."""
    global _worker_info
    try:
        seed = base_seed + worker_id
        _seed(seed, base_seed, worker_id)
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)
        setup_error = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = make_fetcher(dataset, iterable, auto_collation, collate_fn, drop_last)
        except Exception:
            setup_error = _WorkerError(worker_id)
        ended, parent = False, os.getppid()
        while True:
            try:
                message = index_queue.get(timeout=_POLL_S)
            except queue.Empty:
                if os.getppid() != parent:  # orphaned: the main process is gone
                    break
                continue
            if message is None:
                break
            if isinstance(message, _ResumeIteration):
                ended = False
                try:
                    fetcher = make_fetcher(dataset, iterable, auto_collation, collate_fn, drop_last)
                except Exception:
                    setup_error = _WorkerError(worker_id)
                data_queue.put(_pack(message, None, worker_id))
                continue
            if done_event.is_set() or ended:
                continue
            task, index = message
            if setup_error is not None:
                data, setup_error = setup_error, None
            else:
                try:
                    data = fetcher.fetch(index)
                except StopIteration:
                    if not iterable:
                        data = _WorkerError(worker_id)
                    else:
                        data, ended = _StreamEnd(worker_id), True
                except Exception:
                    data = _WorkerError(worker_id)
            data_queue.put(_pack(task, data, worker_id))
            del data, message, index
    except KeyboardInterrupt:
        pass
    if done_event.is_set():  # exit now, even if the main process stopped reading what we sent
        data_queue.cancel_join_thread()
        data_queue.close()


def _seed(seed, base_seed, worker_id):
    """Every worker draws differently: Python's and the engine's CPU generator from base_seed + id
    (PyTorch's rule), NumPy's global one from a hash of both (its seeds must fit in 32-bit words).
    A CUDA generator inherited through fork is left alone: touching CUDA there would fail."""
    from ...random import default_generator

    random.seed(seed)
    default_generator("cpu").manual_seed(seed)
    np.random.seed(np.random.SeedSequence([base_seed, worker_id]).generate_state(4))


def _pack(task, data, worker_id):
    try:
        return pickle.dumps((task, data), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        error = _WorkerError(worker_id, "while pickling a batch to send it from DataLoader worker process")
        return pickle.dumps((task, error), protocol=pickle.HIGHEST_PROTOCOL)


def _picklable(obj):
    try:
        pickle.dumps(obj)
        return True
    except Exception:
        return False


def _default_context():
    import multiprocessing

    # fork starts a worker in milliseconds; spawn (the default elsewhere) re-imports everything.
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class MultiProcessIter(BaseIter):
    """One pass over a DataLoader with worker processes (reused across passes with persistent_workers)."""

    def __init__(self, loader):
        super().__init__(loader)
        self._num_workers, self._prefetch = loader.num_workers, loader.prefetch_factor
        self._timeout, self._in_order = loader.timeout, loader.in_order
        self._persistent, self._owner = loader.persistent_workers, os.getpid()
        context = loader.multiprocessing_context or _default_context()
        self._done_event, self._data_queue = context.Event(), context.Queue()
        self._index_queues, self._workers, self._shutdown = [], [], False
        for worker_id in range(self._num_workers):
            index_queue = context.Queue()
            index_queue.cancel_join_thread()  # never let a dead worker's unread queue block our exit
            worker = context.Process(
                target=_worker_loop, daemon=True, name=f"DataLoader worker {worker_id}",
                args=(self._iterable, self._dataset, index_queue, self._data_queue, self._done_event,
                      self._auto_collation, self._collate_fn, self._drop_last, self._base_seed,
                      loader.worker_init_fn, worker_id, self._num_workers))
            worker.start()
            self._index_queues.append(index_queue)
            self._workers.append(worker)
        self._reset(first=True)

    def _reset(self, first=False):
        """Start a pass: a fresh index stream, and (persistent workers) fresh worker streams, with
        whatever the previous pass left in flight drained."""
        self._sampler_iter = iter(self._index_sampler)
        self._send_idx = self._rcvd_idx = self._outstanding = 0
        self._tasks = {}  # task id -> [worker id] while in flight, [worker id, batch] once it is early
        self._active = [True] * self._num_workers  # False once a worker's IterableDataset ran dry
        self._next_worker = itertools.cycle(range(self._num_workers))
        if not first:
            for index_queue in self._index_queues:
                index_queue.put(_ResumeIteration())
            pending = self._num_workers
            while pending:
                task, _ = self._get_data()
                pending -= isinstance(task, _ResumeIteration)
        for _ in range(self._prefetch * self._num_workers):
            self._put_index()

    def _put_index(self):
        """Hand the next index to the next worker whose stream is still running."""
        if self._outstanding >= self._prefetch * self._num_workers:
            return
        worker_id = next((w for w in itertools.islice(self._next_worker, self._num_workers) if self._active[w]), None)
        if worker_id is None:
            return
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        self._index_queues[worker_id].put((self._send_idx, index))
        self._tasks[self._send_idx] = [worker_id]
        self._outstanding += 1
        self._send_idx += 1

    def __next__(self):
        while True:
            while self._rcvd_idx < self._send_idx:  # skip tasks already returned, or lost with a dry stream
                info = self._tasks.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._active[info[0]]):
                    break
                if info is not None:  # sent to a worker whose stream had already run dry: it never returns
                    del self._tasks[self._rcvd_idx]
                    self._outstanding -= 1
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            info = self._tasks[self._rcvd_idx]
            if len(info) == 2:  # it arrived early and waited for its turn
                del self._tasks[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._process(info[1])
            task, data = self._get_data()
            self._outstanding -= 1
            if isinstance(data, _StreamEnd):
                self._active[data.worker_id] = False
                self._tasks.pop(task, None)
                self._put_index()
                continue
            if task == self._rcvd_idx or not self._in_order:
                self._rcvd_idx += task == self._rcvd_idx
                del self._tasks[task]
                return self._process(data)
            self._tasks[task].append(data)

    def _process(self, data):
        self._put_index()
        if isinstance(data, _WorkerError):
            data.reraise()
        return data

    def _get_data(self):
        """The next (task id, batch) from any worker, polling so that a dead worker or the timeout is
        noticed within _POLL_S."""
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if wait <= 0:
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds waiting for a batch from its "
                                   f"{self._num_workers} workers; raise timeout= or make the dataset faster")
            try:
                return pickle.loads(self._data_queue.get(timeout=wait))
            except queue.Empty:
                self._check_workers()

    def _check_workers(self):
        for worker_id, worker in enumerate(self._workers):
            if worker.is_alive():
                continue
            code = worker.exitcode
            how = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
                   else f"exit code {code}")
            self._shutdown_workers()
            raise RuntimeError(f"DataLoader worker {worker_id} (pid {worker.pid}) exited unexpectedly ({how}); "
                               "it may have run out of memory or crashed in native code. Run with num_workers=0 "
                               "to see the error in this process")

    def _shutdown_workers(self):
        """Stop every worker and close the queues; safe to call more than once (and from __del__)."""
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._done_event.set()
            for index_queue in self._index_queues:
                index_queue.put(None)
            for worker in self._workers:
                worker.join(timeout=_JOIN_S)
                if worker.is_alive():
                    worker.terminate()
                    worker.join()
        finally:
            for q in (*self._index_queues, self._data_queue):
                q.cancel_join_thread()
                q.close()

    def __del__(self):
        try:
            if os.getpid() == self._owner:  # not a copy that a forked child inherited and garbage-collects
                self._shutdown_workers()
        except Exception:  # at interpreter exit the modules it needs may be gone already
            pass
