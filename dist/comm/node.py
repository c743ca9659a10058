"""Collectives among the ranks of one node, through shared memory.

Each rank owns one shared file with two *banks* (alternated step by step); all ranks of the node map
every rank's file. A collective is cut into steps of at most one bank; each step is: write into my own
bank -> barrier -> read the others' banks (and, for reductions, reduce my slice and barrier again).
Because consecutive steps use different banks, a step's writes can never overwrite what a slower rank
is still reading from the previous step: that rank must pass the next step's barrier first.

All-reduce of n elements over N ranks, per step (rank r owns slice p_r, about n/N elements):
  1. copy every slice p_k (k != r) of my array into my bank;
  2. barrier;
  3. reduce slice p_r in place inside rank r+1's bank: acc = bank[r+1][p_r] op x[p_r] op bank[j][p_r]...;
  4. barrier;
  5. copy every reduced slice p_k from bank[k+1] into my array.
Per rank that moves (N-1)/N*n + n elements and reduces n/N of them: a reduce-scatter then an all-gather.
Each slice is reduced once, by one rank, so every rank ends with bit-identical results.

Synchronisation is a per-rank epoch counter in a shared control block: a barrier stores my next epoch,
rings the node's doorbell, and waits until every rank's epoch reached it: a short spin (peers usually
arrive within microseconds), then sleeps on the doorbell (a futex: no CPU burnt, woken at once by the
next arrival). Every wait checks its deadline and the abort flags (this process's AbortSignal and the
node's shared abort word) at least every few milliseconds, so nothing hangs.
"""

from __future__ import annotations

import mmap
import platform
import threading

import numpy as np

from dist.comm.base import Deadline
from dist.comm.doorbell import Doorbell
from dist.comm.shm import ControlBlock, SharedFile
from dist.errors import CollectiveAborted, CollectiveError, CollectiveTimeout

UFUNCS = {"sum": np.add, "max": np.maximum, "min": np.minimum}
_OP_CODES = {"allreduce": 1, "reduce": 2, "broadcast": 3, "allgather": 4, "reduce_scatter": 5, "barrier": 6}
_REDUCE_CODES = {"sum": 1, "max": 2, "min": 3}
_NO_DATA = np.empty(0, dtype=np.uint8)
MIN_BANK_BYTES = 64 * 1024
_SPIN_CHECKS = 64  # tight polls (about 1 us each) before sleeping on the doorbell
_SLEEP_SLICE_S = 5e-3  # the longest doorbell sleep between abort and deadline checks


def _make_fence():
    """A full memory barrier around the epoch store/load. x86-64 keeps stores in order and loads in order
    (TSO), which is all the data-then-epoch handoff needs, so there it is free; elsewhere a lock round
    trip, whose atomic instructions order memory on every platform CPython supports."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        return lambda: None
    lock = threading.Lock()

    def fence() -> None:
        with lock:
            pass
    return fence


_fence = _make_fence()


class NodeGroup:
    """The ranks of one node. ``ranks`` are their global ranks, in local-rank order.

    ``ctrl`` is None when the node has a single rank (every op is then local). Ops take flat, contiguous
    1-D arrays and the op's Deadline; ``label`` names the user-level op in errors.
    """

    def __init__(self, ctrl: ControlBlock | None, local_rank: int, ranks: list[int], path_prefix: str,
                 abort=None, max_bank_bytes: int = 4 << 20):
        self.size, self.local_rank, self.ranks = len(ranks), local_rank, list(ranks)
        self._ctrl, self._prefix, self._abort = ctrl, path_prefix, abort
        self._doorbell = Doorbell(ctrl.doorbell_word) if ctrl is not None else None
        self._max_bank_bytes = max_bank_bytes
        self._epoch = self._step = self._op_index = self._generation = 0
        self._bank_bytes = 0
        self._files: list[SharedFile] = []
        self._banks: list[tuple[np.ndarray, np.ndarray]] = []

    # -- collectives -----------------------------------------------------------------------------

    def allreduce(self, flat: np.ndarray, op: str, deadline: Deadline, divide_by: int | None = None,
                  root_only: bool = False, label: str = "allreduce") -> None:
        """Reduce ``flat`` in place on every rank (only on local rank 0 if ``root_only``); then divide."""
        if self.size == 1:
            _divide(flat, divide_by)
            return
        self._begin("reduce" if root_only else "allreduce", flat, _REDUCE_CODES[op], flat.nbytes, deadline, label)
        step = max(1, self._bank_bytes // flat.itemsize)  # 1 when empty: no steps run, no banks needed
        for start in range(0, flat.size, step):
            self._allreduce_step(flat[start:start + step], UFUNCS[op], deadline, divide_by, root_only, label)

    def _allreduce_step(self, chunk, ufunc, deadline, divide_by, root_only, label) -> None:
        n, me = self.size, self.local_rank
        banks = self._views(chunk.dtype, chunk.size)
        parts = _split(chunk.size, n)
        for k, (a, b) in enumerate(parts):
            if k != me and b > a:
                np.copyto(banks[me][a:b], chunk[a:b])
        self._barrier(deadline, label)
        a, b = parts[me]
        if b > a:
            acc = banks[(me + 1) % n][a:b]  # rank me+1's copy of my slice: nobody else touches it now
            ufunc(acc, chunk[a:b], out=acc)
            for j in range(n):
                if j not in (me, (me + 1) % n):
                    ufunc(acc, banks[j][a:b], out=acc)
            _divide(acc, divide_by)
        self._barrier(deadline, label)
        if not root_only or me == 0:
            for k, (a, b) in enumerate(parts):
                if b > a:
                    np.copyto(chunk[a:b], banks[(k + 1) % n][a:b])

    def broadcast(self, flat: np.ndarray, root: int, deadline: Deadline, label: str = "broadcast") -> None:
        """Copy local rank ``root``'s ``flat`` into every rank's ``flat``."""
        if self.size == 1:
            return
        self._begin("broadcast", flat, root, flat.nbytes, deadline, label)
        step = max(1, self._bank_bytes // flat.itemsize)  # 1 when empty: no steps run, no banks needed
        for start in range(0, flat.size, step):
            chunk = flat[start:start + step]
            bank = self._views(flat.dtype, chunk.size)[root]
            if self.local_rank == root:
                np.copyto(bank, chunk)
            self._barrier(deadline, label)
            if self.local_rank != root:
                np.copyto(chunk, bank)

    def allgather(self, flat: np.ndarray, out: np.ndarray, deadline: Deadline, label: str = "allgather") -> None:
        """``out`` (shape (size, flat.size)) gets every local rank's ``flat`` in local-rank order."""
        if self.size == 1:
            np.copyto(out[0], flat)
            return
        self._begin("allgather", flat, 0, flat.nbytes, deadline, label)
        step = max(1, self._bank_bytes // flat.itemsize)  # 1 when empty: no steps run, no banks needed
        for start in range(0, flat.size, step):
            chunk = flat[start:start + step]
            banks = self._views(flat.dtype, chunk.size)
            np.copyto(banks[self.local_rank], chunk)
            self._barrier(deadline, label)
            for j, bank in enumerate(banks):
                np.copyto(out[j, start:start + chunk.size], bank)

    def reduce_scatter(self, flat: np.ndarray, op: str, out: np.ndarray, deadline: Deadline,
                       divide_by: int | None = None, label: str = "reduce_scatter") -> None:
        """``flat`` is (size * k) elements; ``out`` (k elements) gets slice local_rank of the reduction."""
        n, me = self.size, self.local_rank
        parts = flat.reshape(n, -1)
        if n == 1:
            np.copyto(out, parts[0])
            _divide(out, divide_by)
            return
        self._begin("reduce_scatter", flat, _REDUCE_CODES[op], flat.nbytes, deadline, label)
        step = max(1, self._bank_bytes // (flat.itemsize * n))
        ufunc = UFUNCS[op]
        for s in range(0, parts.shape[1], step):
            e = min(parts.shape[1], s + step)
            banks = [v.reshape(n, e - s) for v in self._views(flat.dtype, n * (e - s))]
            for j in range(n):
                if j != me:
                    np.copyto(banks[me][j], parts[j, s:e])
            self._barrier(deadline, label)
            others = [banks[j][me] for j in range(n) if j != me]
            ufunc(parts[me, s:e], others[0], out=out[s:e])
            for other in others[1:]:
                ufunc(out[s:e], other, out=out[s:e])
            _divide(out[s:e], divide_by)

    def barrier(self, deadline: Deadline, label: str = "barrier") -> None:
        if self.size > 1:
            self._begin("barrier", _NO_DATA, 0, 0, deadline, label)

    # -- op header: consistency check and buffer growth --------------------------------------------

    def _begin(self, name: str, flat: np.ndarray, arg: int, step_bytes: int, deadline: Deadline, label: str) -> None:
        """Publish what this rank is about to do, wait for the others, check they agree, grow the banks."""
        slot = 4 * (self._op_index % 2)  # alternate: a slow rank may still be reading the previous descriptor
        self._op_index += 1
        descriptor = (_OP_CODES[name], flat.dtype.num, flat.size, arg)
        self._ctrl.descriptors[self.local_rank, slot:slot + 4] = descriptor
        self._barrier(deadline, label)
        seen = self._ctrl.descriptors[:, slot:slot + 4]
        if not (seen == descriptor).all():
            self.signal_abort()
            calls = "; ".join(f"rank {r}: {_describe(seen[j])}" for j, r in enumerate(self.ranks))
            raise CollectiveError(f"{label}: the ranks of this node called mismatched collectives ({calls}). "
                                  "Every rank must call the same collectives, with the same sizes, dtypes and "
                                  "arguments, in the same order")
        needed = min(step_bytes, self._max_bank_bytes)
        if needed > self._bank_bytes:
            self._grow(needed, deadline, label)

    def _grow(self, needed: int, deadline: Deadline, label: str) -> None:
        """Replace every rank's file by a bigger one (same size on all ranks: ``needed`` is agreed)."""
        bank = max(MIN_BANK_BYTES, 1 << (needed - 1).bit_length())
        bank = min(_round_up(bank, mmap.PAGESIZE), _round_up(self._max_bank_bytes, mmap.PAGESIZE))
        self._generation += 1
        own = SharedFile(self._path(self.ranks[self.local_rank]), 2 * bank)
        try:
            self._barrier(deadline, label)  # every rank created its file
            files = [own if j == self.local_rank else SharedFile(self._path(r)) for j, r in enumerate(self.ranks)]
            self._barrier(deadline, label)  # every rank mapped every file: the names can go
        finally:
            own.unlink()
        old, self._files, self._bank_bytes = self._files, files, bank
        self._banks = [(f.array[:bank], f.array[bank:2 * bank]) for f in files]
        for f in old:
            f.close()

    def _path(self, rank: int) -> str:
        return f"{self._prefix}-r{rank}-g{self._generation}"

    def _views(self, dtype, count: int) -> list[np.ndarray]:
        """Every rank's bank for the next step, as ``count`` elements of ``dtype``."""
        parity = self._step % 2
        self._step += 1
        nbytes = count * np.dtype(dtype).itemsize
        return [banks[parity][:nbytes].view(dtype) for banks in self._banks]

    # -- synchronisation -------------------------------------------------------------------------

    def _barrier(self, deadline: Deadline, label: str) -> None:
        self._epoch += 1
        _fence()  # my data writes become visible before my epoch does
        self._ctrl.epochs[self.local_rank] = self._epoch
        self._doorbell.ring()
        self._wait_for(self._epoch, deadline, label)
        _fence()  # and the others' data before I read it

    def _wait_for(self, epoch: int, deadline: Deadline, label: str) -> None:
        epochs = self._ctrl.epochs
        for _ in range(_SPIN_CHECKS):
            if epochs.min() >= epoch:
                return
        while True:
            seen = self._doorbell.value()  # read before the check: a ring after it ends the sleep
            if epochs.min() >= epoch:
                return
            self._check_abort(label)
            remaining = deadline.remaining()
            if remaining <= 0:
                self._time_out(epoch, label, deadline.timeout_s)
            self._doorbell.sleep(seen, min(remaining, _SLEEP_SLICE_S))

    def _check_abort(self, label: str) -> None:
        me = self.ranks[self.local_rank]
        if self._abort is not None and self._abort.is_set():
            raise CollectiveAborted(label, self._abort.reason or "aborted", me)
        if self._ctrl.abort[0]:
            who = int(self._ctrl.abort[1]) - 1
            raise CollectiveAborted(label, f"rank {who} on this node gave up on a collective (see its error)", me)

    def _time_out(self, epoch: int, label: str, timeout_s: float) -> None:
        missing = [r for j, r in enumerate(self.ranks) if self._ctrl.epochs[j] < epoch]
        self.signal_abort()
        raise CollectiveTimeout(label, timeout_s, missing, self.ranks[self.local_rank])

    def signal_abort(self) -> None:
        """Make every rank of this node give up its current and future collectives at once."""
        if self._ctrl is not None:
            self._ctrl.abort[1] = self.ranks[self.local_rank] + 1
            self._ctrl.abort[0] = 1
            self._doorbell.ring()  # wake the sleepers now rather than at their next slice

    def close(self) -> None:
        self._banks = []
        for f in self._files:
            f.close()
        self._files = []
        if self._ctrl is not None:
            self._ctrl.file.close()


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering [0, n), sizes differing by at most one."""
    base, extra = divmod(n, parts)
    bounds = [k * base + min(k, extra) for k in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _divide(array: np.ndarray, divide_by: int | None) -> None:
    if divide_by is not None and divide_by != 1 and array.size:
        np.divide(array, divide_by, out=array)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _describe(descriptor) -> str:
    code, dtype_num, count, arg = (int(v) for v in descriptor)
    name = next((k for k, v in _OP_CODES.items() if v == code), f"op#{code}")
    dtype = next((np.dtype(t).name for t in np.sctypeDict.values() if np.dtype(t).num == dtype_num), f"#{dtype_num}")
    return f"{name} of {count} x {dtype} (arg {arg})"
