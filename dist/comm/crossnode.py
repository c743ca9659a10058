"""The node leaders' half of the hierarchical CPU collectives.

Each node first reduces (or gathers) within itself through shared memory; then the node leaders (the
lowest rank of each node) swap their node's result through Ray's object store: each leader ``ray.put``s
its array and publishes the ObjectRef in the coordinator's key-value store under (communicator, op
sequence number, node); the others fetch it from there. Every op is a full exchange (a leader with
nothing to send publishes None), which doubles as a barrier and tells each leader when the others are
done reading its earlier objects, so those can be freed.
"""

from __future__ import annotations

import numpy as np
import ray

from dist.comm.base import Deadline
from dist.comm.node import UFUNCS
from dist.errors import CollectiveError, CollectiveTimeout

_WAIT_SLICE_S = 1.0


class LeaderExchange:
    """Arrays between the node leaders. ``leaders[k]`` is the global rank leading node k; ``node`` is mine."""

    def __init__(self, client, uid: str, node: int, leaders: list[int]):
        self._client, self._uid, self.node, self.leaders = client, uid, node, list(leaders)
        self._seq = 0
        self._published: dict[int, tuple[str, object]] = {}  # seq -> (kv key, ObjectRef kept alive until read)

    def allreduce(self, flat: np.ndarray, op: str, deadline: Deadline, divide_by: int | None, label: str) -> None:
        """``flat`` (this node's reduction) becomes the reduction over all nodes, in node order on every leader."""
        arrays = self._get(self._exchange(flat, deadline, label), deadline, label)
        self._check_like(arrays, flat, label)
        ufunc = UFUNCS[op]
        ufunc(arrays[0], arrays[1], out=flat)  # own part read back from the store: same order on every leader
        for other in arrays[2:]:
            ufunc(flat, other, out=flat)
        if divide_by is not None and flat.size:
            np.divide(flat, divide_by, out=flat)

    def broadcast(self, flat: np.ndarray, src_node: int, deadline: Deadline, label: str) -> None:
        """Copy node ``src_node``'s leader's ``flat`` into mine."""
        refs = self._exchange(flat if self.node == src_node else None, deadline, label)
        if self.node != src_node:
            (array,) = self._get([refs[src_node]], deadline, label)
            self._check_like([array], flat, label)
            np.copyto(flat, array)

    def allgather(self, block: np.ndarray, deadline: Deadline, label: str) -> list[np.ndarray]:
        """Every node's ``block`` (read-only arrays), in node order."""
        return self._get(self._exchange(block, deadline, label), deadline, label)

    def barrier(self, deadline: Deadline, label: str) -> None:
        self._exchange(None, deadline, label)

    def close(self) -> None:
        for key, _ in self._published.values():
            self._client.kv_delete(key)
        self._published.clear()

    # -- internals ---------------------------------------------------------------------------

    def _exchange(self, payload, deadline: Deadline, label: str) -> list:
        """Publish ``payload`` (or None) for the next op and collect every leader's ref, in node order."""
        self._seq += 1
        seq = self._seq
        ref = None if payload is None else ray.put(payload)
        key = self._key(seq, self.node)
        self._client.kv_put(key, [ref])  # inside a list: Ray passes the ref itself, not the array behind it
        self._published[seq] = (key, ref)
        refs = []
        for node, leader in enumerate(self.leaders):
            refs.append(ref if node == self.node else self._fetch_ref(seq, node, leader, deadline, label))
        self._retire_before(seq)
        return refs

    def _fetch_ref(self, seq: int, node: int, leader: int, deadline: Deadline, label: str):
        try:
            (ref,) = self._client.kv_get(self._key(seq, node), max(1e-3, deadline.remaining()), op=label)
        except CollectiveTimeout:
            raise CollectiveTimeout(label, deadline.timeout_s, [leader], self._client.rank,
                                    detail=f"node {node}'s leader (rank {leader}) never delivered its part") from None
        return ref

    def _retire_before(self, seq: int) -> None:
        """Every leader has published op ``seq``, so each finished reading my objects of earlier ops."""
        for old in [s for s in self._published if s < seq]:
            key, _ = self._published.pop(old)
            self._client.kv_delete(key)

    def _get(self, refs: list, deadline: Deadline, label: str) -> list:
        pending = [r for r in refs if r is not None]
        while pending:
            self._client.check_abort(label)
            remaining = deadline.remaining()
            if remaining <= 0:
                raise CollectiveTimeout(label, deadline.timeout_s, [], self._client.rank,
                                        detail="the transfer of another node's data through the object store "
                                               "did not finish in time")
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=min(_WAIT_SLICE_S, remaining))
        return [None if r is None else ray.get(r) for r in refs]

    def _check_like(self, arrays: list, like: np.ndarray, label: str) -> None:
        bad = {k: (a.shape, str(a.dtype)) for k, a in enumerate(arrays) if a.shape != like.shape or a.dtype != like.dtype}
        if bad:
            raise CollectiveError(f"{label}: nodes sent mismatched arrays: this node has {like.shape} "
                                  f"{like.dtype}, others (node: shape, dtype) {bad}. Every rank must call the same "
                                  "collectives with the same sizes and dtypes")

    def _key(self, seq: int, node: int) -> str:
        return f"comm/{self._uid}/x{seq}/n{node}"
