"""The CPU communicator: shared memory within a node, Ray's object store between nodes.

Within a node the ranks reduce through shared memory (dist.comm.node: reduce-scatter then all-gather
over the ranks' buffers, numpy in place, no pickling, no Ray call per step). Across nodes it is
hierarchical: reduce within each node onto its leader, exchange between the leaders through the object
store (dist.comm.crossnode), then broadcast within each node.

Async forms run on one background thread per communicator, in issue order; numpy releases the GIL
during the copies and reductions, so they overlap with the caller's work. A sync call first waits for
the async ops issued before it, then runs inline.
"""

from __future__ import annotations

import concurrent.futures
import os
import uuid
from dataclasses import dataclass

import numpy as np

from dist.comm.base import DEFAULT_TIMEOUT_S, Communicator, CompletedWork, Deadline, Work
from dist.comm.crossnode import LeaderExchange
from dist.comm.node import BANKS, MIN_BANK_BYTES, NodeGroup
from dist.comm.shm import ControlBlock, SharedFile, shm_dir
from dist.errors import CollectiveAborted, CollectiveError, CollectiveTimeout

DEFAULT_MAX_BUFFER_BYTES = 4 << 20


class CpuWork(Work):
    """A CPU collective queued on the communicator's thread."""

    def __init__(self, future: concurrent.futures.Future, op: str, rank: int):
        self._future, self._op, self._rank = future, op, rank

    def wait(self, timeout: float | None = None):
        # Not future.result(timeout): its TimeoutError is the builtin one, which the op's own
        # CollectiveTimeout also is, so the two could not be told apart.
        done, _ = concurrent.futures.wait([self._future], timeout)
        if not done:
            raise CollectiveTimeout(self._op, timeout, [], self._rank,
                                    detail="Work.wait(timeout) expired; the op keeps running under its own "
                                           "timeout")
        return self._future.result()

    def is_completed(self) -> bool:
        return self._future.done()


@dataclass(frozen=True)
class Topology:
    """Which node each rank is on. Nodes are numbered by their lowest rank; a node's leader is that rank."""

    node_of: tuple[int, ...]
    members: tuple[tuple[int, ...], ...]

    @classmethod
    def from_node_ids(cls, node_ids: list[str]) -> Topology:
        order = list(dict.fromkeys(node_ids))  # first appearance = lowest rank
        node_of = tuple(order.index(n) for n in node_ids)
        members = tuple(tuple(r for r, k in enumerate(node_of) if k == node) for node in range(len(order)))
        return cls(node_of, members)

    @property
    def num_nodes(self) -> int:
        return len(self.members)

    @property
    def leaders(self) -> list[int]:
        return [ranks[0] for ranks in self.members]


class CpuCommunicator(Communicator):
    """Collectives on numpy arrays among the ranks of a job (see the module docstring).

    Args:
        rank, world_size: this rank and the number of ranks.
        client: a CoordinatorClient (dist.coordinator); not needed when world_size == 1.
        abort: this process's AbortSignal; an abort makes every wait raise CollectiveAborted.
        key: unique per communicator in the job and the same on every rank (names its kv entries
            and shared files); init_communicator picks one.
        timeout_s: default timeout of each collective, and of the setup here.
        max_buffer_bytes: size of each shared-memory bank (four per rank, allocated on first use, grown
            up to this); bigger arrays move in steps of this size.
        node_ids: each rank's node id; default: from the coordinator's rendezvous.
    """

    backend = "cpu"

    def __init__(self, rank: int, world_size: int, client=None, abort=None, *, key: str = "default",
                 timeout_s: float = DEFAULT_TIMEOUT_S, max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
                 node_ids: list[str] | None = None):
        super().__init__(rank, world_size, timeout_s, key)
        if not isinstance(max_buffer_bytes, int) or max_buffer_bytes < MIN_BANK_BYTES:
            raise ValueError(f"CpuCommunicator: max_buffer_bytes must be an int >= {MIN_BANK_BYTES}, "
                             f"got {max_buffer_bytes!r}")
        self._client, self._abort = client, abort
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._last: concurrent.futures.Future | None = None
        self._broken: str | None = None
        self._node: NodeGroup | None = None
        self._cross: LeaderExchange | None = None
        self.topology = Topology.from_node_ids(node_ids or ["local"] * world_size)
        if world_size == 1:
            return
        if client is None:
            raise ValueError("CpuCommunicator: world_size > 1 needs client= (a dist.coordinator.CoordinatorClient)")
        self._connect(node_ids, max_buffer_bytes, Deadline.after(self.timeout_s))

    def _connect(self, node_ids, max_buffer_bytes: int, deadline: Deadline) -> None:
        if node_ids is None:
            node_ids = [info["node_id"] for info in self._client.rendezvous(deadline.remaining())]
            self.topology = Topology.from_node_ids(node_ids)
        if len(node_ids) != self.world_size:
            raise ValueError(f"CpuCommunicator: node_ids has {len(node_ids)} entries for world_size={self.world_size}")
        uid = self._agree_on_uid(deadline)
        self._node = self._open_node_group(uid, max_buffer_bytes, deadline)
        node = self.topology.node_of[self.rank]
        if self.topology.num_nodes > 1 and self.topology.leaders[node] == self.rank:
            self._cross = LeaderExchange(self._client, uid, node, self.topology.leaders)
        if self._abort is not None:
            self._abort.add_callback(self._on_abort)

    def _agree_on_uid(self, deadline: Deadline) -> str:
        """A short id from rank 0 that names this communicator's shared files and kv keys."""
        key = f"comm/{self.key}/uid"
        if self.rank == 0:
            uid = uuid.uuid4().hex[:12]
            self._client.kv_put(key, uid)
            return uid
        return self._client.kv_get(key, deadline.remaining(), op="init_communicator")

    def _open_node_group(self, uid: str, max_buffer_bytes: int, deadline: Deadline) -> NodeGroup:
        """The node's leader creates the control block; all map it; then its name is removed."""
        node = self.topology.node_of[self.rank]
        members = list(self.topology.members[node])
        planned = len(members) * BANKS * max_buffer_bytes
        local_rank, prefix = members.index(self.rank), os.path.join(shm_dir(planned), f"raygrad-{uid}-n{node}")
        shared = len(members) > 1
        everyone = range(self.world_size)
        ctrl_file = SharedFile(prefix + "-ctrl", ControlBlock.nbytes(len(members))) if shared and local_rank == 0 else None
        try:
            self._client.barrier(f"comm/{uid}/shm-created", deadline.remaining(), everyone, op="init_communicator")
            if shared and local_rank != 0:
                ctrl_file = SharedFile(prefix + "-ctrl")
            self._client.barrier(f"comm/{uid}/shm-mapped", deadline.remaining(), everyone, op="init_communicator")
        finally:
            if ctrl_file is not None:
                ctrl_file.unlink()
        ctrl = ControlBlock(ctrl_file, len(members)) if shared else None
        return NodeGroup(ctrl, local_rank, members, prefix, self._abort, max_buffer_bytes)

    # -- the collectives (validated arrays in, see base.Communicator) -------------------------------

    def _check_array(self, array, op: str) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{op}: the cpu backend works on numpy arrays, got {type(array).__module__}."
                            f"{type(array).__name__}; use backend='nccl' for GPU arrays or copy to the host")
        if array.dtype.hasobject:
            raise TypeError(f"{op}: arrays of Python objects ({array.dtype}) cannot go through shared memory; "
                            "use a numeric dtype")

    def _empty(self, shape: tuple, dtype):
        return np.empty(shape, dtype)

    def _launch_allreduce(self, array, op, timeout_s, blocking) -> Work:
        if self.world_size == 1:
            return CompletedWork(array)
        return self._run("allreduce", lambda deadline: self._allreduce(array, op, deadline), timeout_s, blocking)

    def _launch_broadcast(self, array, src, timeout_s, blocking) -> Work:
        if self.world_size == 1:
            return CompletedWork(array)
        return self._run("broadcast", lambda deadline: self._broadcast(array, src, deadline), timeout_s, blocking)

    def _launch_allgather(self, array, out, timeout_s, blocking) -> Work:
        if self.world_size == 1:
            np.copyto(out[0], array)
            return CompletedWork(out)
        return self._run("allgather", lambda deadline: self._allgather(array, out, deadline), timeout_s, blocking)

    def _launch_reduce_scatter(self, array, op, out, timeout_s, blocking) -> Work:
        if self.world_size == 1:
            np.copyto(out, array)  # mean over one rank is the value itself
            return CompletedWork(out)
        return self._run("reduce_scatter", lambda deadline: self._reduce_scatter(array, op, out, deadline),
                         timeout_s, blocking)

    def _launch_barrier(self, timeout_s, blocking) -> Work:
        if self.world_size == 1:
            return CompletedWork(None)
        return self._run("barrier", self._barrier_all, timeout_s, blocking)

    def _allreduce(self, array: np.ndarray, op: str, deadline: Deadline) -> np.ndarray:
        flat, scattered = _flat(array)
        self._allreduce_flat(flat, op, deadline, "allreduce")
        if scattered:
            np.copyto(array, flat.reshape(array.shape))
        return array

    def _allreduce_flat(self, flat: np.ndarray, op: str, deadline: Deadline, label: str) -> None:
        base, divide_by = ("sum", self.world_size) if op == "mean" else (op, None)
        if self.topology.num_nodes == 1:
            self._node.allreduce(flat, base, deadline, divide_by, label=label)
            return
        self._node.allreduce(flat, base, deadline, root_only=True, label=label)
        if self._cross is not None:
            self._cross.allreduce(flat, base, deadline, divide_by, label)
        self._node.broadcast(flat, 0, deadline, label)

    def _broadcast(self, array: np.ndarray, src: int, deadline: Deadline) -> np.ndarray:
        flat, scattered = _flat(array)
        topo, label = self.topology, "broadcast"
        src_node, my_node = topo.node_of[src], topo.node_of[self.rank]
        if my_node == src_node:
            self._node.broadcast(flat, topo.members[src_node].index(src), deadline, label)
        if self._cross is not None:
            self._cross.broadcast(flat, src_node, deadline, label)
        if my_node != src_node:
            self._node.broadcast(flat, 0, deadline, label)
        if scattered:
            np.copyto(array, flat.reshape(array.shape))
        return array

    def _allgather(self, array: np.ndarray, out: np.ndarray, deadline: Deadline) -> np.ndarray:
        flat, rows, label = np.ascontiguousarray(array).reshape(-1), out.reshape(self.world_size, -1), "allgather"
        if self.topology.num_nodes == 1:
            self._node.allgather(flat, rows, deadline, label)
            return out
        local = np.empty((self._node.size, flat.size), flat.dtype)
        self._node.allgather(flat, local, deadline, label)
        if self._cross is not None:
            for members, block in zip(self.topology.members, self._cross.allgather(local, deadline, label)):
                rows[list(members)] = block
        self._node.broadcast(out.reshape(-1), 0, deadline, label)
        return out

    def _reduce_scatter(self, array: np.ndarray, op: str, out: np.ndarray, deadline: Deadline) -> np.ndarray:
        flat, label = np.ascontiguousarray(array).reshape(-1), "reduce_scatter"
        if self.topology.num_nodes == 1:
            base, divide_by = ("sum", self.world_size) if op == "mean" else (op, None)
            self._node.reduce_scatter(flat, base, out.reshape(-1), deadline, divide_by, label)
            return out
        # Across nodes: a full all-reduce of a copy, then keep our block (2x the traffic of a true
        # reduce-scatter, acceptable for the rare cross-node use).
        total = flat.copy()
        self._allreduce_flat(total, op, deadline, label)
        np.copyto(out.reshape(-1), total.reshape(self.world_size, -1)[self.rank])
        return out

    def _barrier_all(self, deadline: Deadline) -> None:
        self._node.barrier(deadline)
        if self.topology.num_nodes > 1:
            if self._cross is not None:
                self._cross.barrier(deadline, "barrier")
            self._node.barrier(deadline)

    # -- running ops inline or on the thread -------------------------------------------------------

    def _run(self, label: str, body, timeout_s: float, blocking: bool) -> Work:
        self._check_usable(label)
        if blocking:
            self._drain()
            return CompletedWork(self._guarded(label, body, timeout_s))
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"raygrad-cpu-comm-{self.key}")
        self._last = self._pool.submit(self._guarded, label, body, timeout_s)
        return CpuWork(self._last, label, self.rank)

    def _guarded(self, label: str, body, timeout_s: float):
        """Run one collective; any failure breaks the communicator and wakes this node's other ranks."""
        self._check_usable(label)
        try:
            return body(Deadline.after(timeout_s))
        except BaseException as exc:
            self._broken = f"{label} failed on rank {self.rank}: {type(exc).__name__}: {exc}"
            if self._node is not None:
                self._node.signal_abort()
            raise

    def _drain(self) -> None:
        """Wait for the async ops issued earlier (each bounded by its own timeout); their Work reports errors."""
        if self._last is not None:
            concurrent.futures.wait([self._last])
            self._last = None

    def _check_usable(self, label: str) -> None:
        if self.closed:
            raise CollectiveError(f"{label}: this communicator is closed; create a new one with init_communicator")
        if self._broken is not None:
            raise CollectiveAborted(label, f"this communicator is unusable after an earlier failure ({self._broken})",
                                    self.rank)

    def _on_abort(self, reason: str) -> None:
        self._node.signal_abort()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._abort is not None and self._node is not None:
            self._abort.remove_callback(self._on_abort)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._cross is not None:
            self._cross.close()
        if self._node is not None:
            self._node.close()


def _flat(array: np.ndarray) -> tuple[np.ndarray, bool]:
    """A flat view of ``array`` when it is contiguous, else a contiguous copy (True: copy the result back)."""
    if array.flags.c_contiguous:
        return array.reshape(-1), False
    return np.ascontiguousarray(array).reshape(-1), True
