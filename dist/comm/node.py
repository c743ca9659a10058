"""Collectives among the ranks of one node, through shared memory.

Each rank owns one shared file of BANKS equal *banks*; all ranks of the node map every rank's file.
A collective is cut into steps of at most one bank, step k using bank k % BANKS of every rank.

All-reduce of n elements over N ranks is a pipeline (rank r owns slice p_r of each step, about 1/N):
  scatter k: copy every slice p_j (j != r) of my step k into my bank; publish "scattered k";
  reduce k:  once all scattered k, reduce slice p_r in place inside rank r+1's bank:
             acc = bank[r+1][p_r] op x[p_r] op bank[j][p_r]...; publish "reduced k";
  gather k:  once all reduced k, copy every reduced slice p_j from bank[j+1] into my array;
             publish "gathered k".
A rank scatters up to BANKS steps ahead, as long as every rank has gathered the step that used that
bank before, so a rank that was descheduled for a moment finds its peers' data ready instead of
holding them all at a barrier. Per rank that moves (N-1)/N*n + n elements and reduces n/N of them:
a reduce-scatter then an all-gather. Each slice is reduced once, by one rank, so every rank ends with
bit-identical results.

The other collectives take one barrier per step: write my bank -> barrier -> read the others'. Since
consecutive steps use different banks, a step's writes never overwrite what a slower rank is still
reading: that rank must pass the next barrier first. Every collective starts with a header barrier
that checks all ranks called the same thing (and grows the banks when needed).
"""

from __future__ import annotations

import mmap

import numpy as np

from dist.comm.base import Deadline
from dist.comm.shm import ControlBlock, SharedFile
from dist.comm.sync import GATHERED, REDUCED, SCATTERED, NodeSync
from dist.errors import CollectiveError

UFUNCS = {"sum": np.add, "max": np.maximum, "min": np.minimum}
_OP_CODES = {"allreduce": 1, "reduce": 2, "broadcast": 3, "allgather": 4, "reduce_scatter": 5, "barrier": 6}
_REDUCE_CODES = {"sum": 1, "max": 2, "min": 3}
_NO_DATA = np.empty(0, dtype=np.uint8)
MIN_BANK_BYTES = 64 * 1024
BANKS = 4  # banks per rank: how many steps of an all-reduce a rank may run ahead of the slowest


class NodeGroup:
    """The ranks of one node. ``ranks`` are their global ranks, in local-rank order.

    ``ctrl`` is None when the node has a single rank (every op is then local). Ops take flat, contiguous
    1-D arrays and the op's Deadline; ``label`` names the user-level op in errors.
    """

    def __init__(self, ctrl: ControlBlock | None, local_rank: int, ranks: list[int], path_prefix: str,
                 abort=None, max_bank_bytes: int = 4 << 20):
        self.size, self.local_rank, self.ranks = len(ranks), local_rank, list(ranks)
        self._ctrl, self._prefix = ctrl, path_prefix
        self._sync = NodeSync(ctrl, local_rank, ranks, abort) if ctrl is not None else None
        self._max_bank_bytes = max_bank_bytes
        self._step = self._op_index = self._generation = 0
        self._bank_bytes = 0
        self._files: list[SharedFile] = []
        self._banks: list[list[np.ndarray]] = []  # [rank][bank]

    # -- collectives -----------------------------------------------------------------------------

    def allreduce(self, flat: np.ndarray, op: str, deadline: Deadline, divide_by: int | None = None,
                  root_only: bool = False, label: str = "allreduce") -> None:
        """Reduce ``flat`` in place on every rank (only on local rank 0 if ``root_only``); then divide."""
        if self.size == 1:
            _divide(flat, divide_by)
            return
        self._begin("reduce" if root_only else "allreduce", flat, _REDUCE_CODES[op], flat.nbytes, deadline, label)
        step = max(1, self._bank_bytes // flat.itemsize)  # 1 when empty: no steps run, no banks needed
        chunks = [flat[start:start + step] for start in range(0, flat.size, step)]
        first = self._take_steps(len(chunks))
        parts = [_split(chunk.size, self.size) for chunk in chunks]
        scattered = 0
        for i, chunk in enumerate(chunks):
            scattered = self._scatter_ahead(chunks, parts, first, i, scattered, deadline, label)
            self._sync.wait(SCATTERED, first + i, deadline, label)
            banks = self._bank_views(first + i, chunk.dtype, chunk.size)
            self._reduce_my_part(chunk, banks, parts[i], UFUNCS[op], divide_by)
            self._sync.publish(REDUCED, first + i)
            if not root_only or self.local_rank == 0:
                self._sync.wait(REDUCED, first + i, deadline, label)
                for k, (a, b) in enumerate(parts[i]):
                    if b > a:
                        np.copyto(chunk[a:b], banks[(k + 1) % self.size][a:b])
            self._sync.publish(GATHERED, first + i)

    def _scatter_ahead(self, chunks, parts, first: int, current: int, scattered: int, deadline: Deadline,
                       label: str) -> int:
        """Copy the others' slices of the next chunks into my banks: chunk ``current`` now (waiting for its
        bank if need be), later ones only while their banks are already free. Returns how many are done."""
        me = self.local_rank
        while scattered < min(len(chunks), current + BANKS):
            previous = first + scattered - BANKS  # the step of this op that used the bank before
            if previous >= first:  # (earlier ops finished before this op's header barrier)
                if scattered > current and not self._sync.reached(GATHERED, previous):
                    break
                self._sync.wait(GATHERED, previous, deadline, label)
            chunk = chunks[scattered]
            mine = self._bank_views(first + scattered, chunk.dtype, chunk.size)[me]
            for k, (a, b) in enumerate(parts[scattered]):
                if k != me and b > a:
                    np.copyto(mine[a:b], chunk[a:b])
            self._sync.publish(SCATTERED, first + scattered)
            scattered += 1
        return scattered

    def _reduce_my_part(self, chunk, banks, parts, ufunc, divide_by) -> None:
        n, me = self.size, self.local_rank
        a, b = parts[me]
        if b == a:
            return
        acc = banks[(me + 1) % n][a:b]  # rank me+1's copy of my slice: nobody else touches it now
        ufunc(acc, chunk[a:b], out=acc)
        for j in range(n):
            if j not in (me, (me + 1) % n):
                ufunc(acc, banks[j][a:b], out=acc)
        _divide(acc, divide_by)

    def broadcast(self, flat: np.ndarray, root: int, deadline: Deadline, label: str = "broadcast") -> None:
        """Copy local rank ``root``'s ``flat`` into every rank's ``flat``."""
        if self.size == 1:
            return
        self._begin("broadcast", flat, root, flat.nbytes, deadline, label)
        step = max(1, self._bank_bytes // flat.itemsize)  # 1 when empty: no steps run, no banks needed
        for start in range(0, flat.size, step):
            chunk = flat[start:start + step]
            bank = self._bank_views(self._take_steps(1), flat.dtype, chunk.size)[root]
            if self.local_rank == root:
                np.copyto(bank, chunk)
            self._sync.barrier(deadline, label)
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
            banks = self._bank_views(self._take_steps(1), flat.dtype, chunk.size)
            np.copyto(banks[self.local_rank], chunk)
            self._sync.barrier(deadline, label)
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
            banks = [v.reshape(n, e - s) for v in self._bank_views(self._take_steps(1), flat.dtype, n * (e - s))]
            for j in range(n):
                if j != me:
                    np.copyto(banks[me][j], parts[j, s:e])
            self._sync.barrier(deadline, label)
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
        self._sync.barrier(deadline, label)
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
        own = SharedFile(self._path(self.ranks[self.local_rank]), BANKS * bank)
        try:
            self._sync.barrier(deadline, label)  # every rank created its file
            files = [own if j == self.local_rank else SharedFile(self._path(r)) for j, r in enumerate(self.ranks)]
            self._sync.barrier(deadline, label)  # every rank mapped every file: the names can go
        finally:
            own.unlink()
        old, self._files, self._bank_bytes = self._files, files, bank
        self._banks = [[f.array[k * bank:(k + 1) * bank] for k in range(BANKS)] for f in files]
        for f in old:
            f.close()

    def _path(self, rank: int) -> str:
        return f"{self._prefix}-r{rank}-g{self._generation}"

    def _take_steps(self, count: int) -> int:
        """Number the next ``count`` steps (from 1, the same on every rank); returns the first."""
        first = self._step + 1
        self._step += count
        return first

    def _bank_views(self, step: int, dtype, count: int) -> list[np.ndarray]:
        """Every rank's bank for ``step``, as ``count`` elements of ``dtype``."""
        nbytes = count * np.dtype(dtype).itemsize
        return [banks[step % BANKS][:nbytes].view(dtype) for banks in self._banks]

    def signal_abort(self) -> None:
        """Make every rank of this node give up its current and future collectives at once."""
        if self._sync is not None:
            self._sync.signal_abort()

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
