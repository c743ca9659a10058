"""The job's coordinator: one named Ray actor per job, and the rank-side client that talks to it.

The coordinator does rendezvous (each rank registers its node and address), a key-value store with
blocking gets (the NCCL unique id, the CPU communicator's shared-memory names, the ObjectRefs that node
leaders exchange), named barriers, heartbeats (a rank silent for ``heartbeat_timeout_s`` is declared
dead and the job aborted), a job-wide abort flag with its reason, and the last error of each rank.

It is a threaded actor (``max_concurrency``): ranks block in ``kv_get`` / ``barrier_wait`` on their own
threads while heartbeats keep flowing. Blocking methods wait at most the slice they are given and return
a status; ``CoordinatorClient`` loops over slices, checks the rank's abort flag in between, and turns
statuses into CollectiveTimeout / CollectiveAborted.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

import ray

from dist.data.coordination import DataCoordinatorMixin
from dist.errors import CollectiveAborted, CollectiveTimeout

if TYPE_CHECKING:
    from dist.env import AbortSignal

_MISSING = object()
_WATCHDOG_PERIOD_S = 0.5


class Coordinator(DataCoordinatorMixin):
    """Job-wide state shared by the ranks. Run it as an actor with ``start_coordinator``.

    Every method runs on one of the actor's threads; ``self._cond`` guards all the state here (the
    data mixin keeps its own state and locking).
    """

    def __init__(self, job: str, world_size: int, heartbeat_timeout_s: float = 30.0):
        super().__init__()
        self._init_data_state()
        self.job = job
        self._heartbeat_timeout_s = float(heartbeat_timeout_s)
        self._cond = threading.Condition()
        self._world_size = int(world_size)
        self._clear()
        self._watchdog = threading.Thread(target=self._watch_heartbeats, name="raygrad-heartbeat-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def _clear(self) -> None:
        self._ranks: dict[int, dict] = {}
        self._kv: dict[str, Any] = {}
        self._barrier_arrived: dict[tuple[str, int], set[int]] = {}
        self._barrier_released: dict[tuple[str, int], int] = {}
        self._barrier_calls: dict[tuple[str, int], int] = {}
        self._beats: dict[int, float] = {}
        self._dead: dict[int, str] = {}
        self._progress: dict[int, dict[str, int]] = {}
        self._abort_reason: str | None = None
        self._errors: dict[int, str] = {}

    def ping(self) -> str:
        return self.job

    def reset(self, world_size: int | None = None) -> None:
        """Forget the previous group (rendezvous, kv, barriers, heartbeats, abort) before a restart."""
        with self._cond:
            if world_size is not None:
                self._world_size = int(world_size)
            self._clear()
            self._cond.notify_all()

    # -- rendezvous ---------------------------------------------------------------------------

    def register(self, rank: int, info: dict) -> None:
        """Record a rank's node id, ip, pid... (``info`` is free-form; comms read ``node_id``)."""
        with self._cond:
            self._ranks[int(rank)] = dict(info)
            self._cond.notify_all()

    def rendezvous(self, timeout_s: float) -> tuple[list[dict] | None, list[int], str | None]:
        """Wait up to ``timeout_s`` for every rank to register: (infos in rank order, missing, abort reason)."""
        with self._cond:
            self._wait(lambda: len(self._ranks) >= self._world_size, timeout_s)
            missing = [r for r in range(self._world_size) if r not in self._ranks]
            infos = None if missing else [self._ranks[r] for r in range(self._world_size)]
            return infos, missing, self._abort_reason

    # -- key-value store ----------------------------------------------------------------------

    def kv_put(self, key: str, value: Any) -> None:
        with self._cond:
            self._kv[key] = value
            self._cond.notify_all()

    def kv_get(self, key: str, timeout_s: float) -> tuple[bool, Any, str | None]:
        """Wait up to ``timeout_s`` for ``key``: (found, value, abort reason)."""
        with self._cond:
            self._wait(lambda: key in self._kv, timeout_s)
            value = self._kv.get(key, _MISSING)
            return value is not _MISSING, (None if value is _MISSING else value), self._abort_reason

    def kv_delete(self, key: str) -> None:
        with self._cond:
            self._kv.pop(key, None)

    # -- barriers -----------------------------------------------------------------------------

    def barrier_arrive(self, name: str, rank: int) -> int:
        """Mark ``rank`` arrived at the next use of barrier ``name``; returns that use's generation."""
        with self._cond:
            generation = self._barrier_calls.get((name, rank), 0)
            self._barrier_calls[(name, rank)] = generation + 1
            self._barrier_arrived.setdefault((name, generation), set()).add(int(rank))
            self._cond.notify_all()
            return generation

    def barrier_wait(self, name: str, generation: int, members: Sequence[int],
                     timeout_s: float) -> tuple[bool, list[int], str | None]:
        """Wait up to ``timeout_s`` for all ``members``: (done, missing ranks, abort reason)."""
        key = (name, generation)
        with self._cond:
            arrived = self._barrier_arrived.setdefault(key, set())
            done = self._wait(lambda: arrived.issuperset(members), timeout_s)
            missing = sorted(set(members) - arrived)
            if done:
                self._release_barrier(key, len(members))
            return done, missing, self._abort_reason

    def _release_barrier(self, key: tuple[str, int], size: int) -> None:
        released = self._barrier_released.get(key, 0) + 1
        if released >= size:  # every member has seen it complete: nothing refers to it any more
            self._barrier_released.pop(key, None)
            self._barrier_arrived.pop(key, None)
        else:
            self._barrier_released[key] = released

    # -- heartbeats, abort, errors ------------------------------------------------------------

    def heartbeat(self, rank: int, progress: dict[str, int] | None = None) -> str | None:
        """A rank is alive; ``progress`` maps communicator key -> collectives started. Returns the abort reason."""
        with self._cond:
            if rank not in self._dead:
                self._beats[int(rank)] = time.monotonic()
            if progress:
                self._progress[int(rank)] = dict(progress)
            return self._abort_reason

    def leave(self, rank: int) -> None:
        """A rank shuts down on purpose: stop watching its heartbeat."""
        with self._cond:
            self._beats.pop(int(rank), None)

    def abort(self, reason: str) -> str:
        """Abort the job (the first reason wins, later ones are ignored); returns the reason in force."""
        with self._cond:
            if self._abort_reason is None:
                self._abort_reason = str(reason)
                self._cond.notify_all()
            return self._abort_reason

    def abort_reason(self) -> str | None:
        with self._cond:
            return self._abort_reason

    def record_error(self, rank: int, text: str) -> None:
        with self._cond:
            self._errors[int(rank)] = text

    def errors(self) -> dict[int, str]:
        """The last error (with traceback) of each rank that reported one."""
        with self._cond:
            return dict(self._errors)

    def dead_ranks(self) -> dict[int, str]:
        """Ranks declared dead by the heartbeat watchdog -> why."""
        with self._cond:
            return dict(self._dead)

    def ranks_behind(self, key: str, count: int) -> list[int]:
        """Ranks whose last heartbeat reported fewer than ``count`` collectives started on communicator ``key``."""
        with self._cond:
            return [r for r in range(self._world_size) if self._progress.get(r, {}).get(key, 0) < count]

    # -- internals ----------------------------------------------------------------------------

    def _wait(self, predicate, timeout_s: float) -> bool:
        """Wait on the condition (held by the caller) until predicate() or abort or timeout; returns predicate()."""
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        while not predicate() and self._abort_reason is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        return predicate()

    def _watch_heartbeats(self) -> None:
        while True:
            time.sleep(_WATCHDOG_PERIOD_S)
            with self._cond:
                now = time.monotonic()
                silent = [(r, now - t) for r, t in self._beats.items() if now - t > self._heartbeat_timeout_s]
                for rank, age in silent:
                    why = (f"no heartbeat for {age:.1f} s (heartbeat_timeout_s={self._heartbeat_timeout_s:g}): "
                           "its process or node died, or it is stuck in code that holds the GIL")
                    self._dead[rank] = why
                    del self._beats[rank]
                    if self._abort_reason is None:
                        self._abort_reason = f"rank {rank} declared dead: {why}"
                    self._cond.notify_all()


def coordinator_name(job: str) -> str:
    return f"raygrad-coordinator-{job}"


def start_coordinator(job: str, world_size: int, heartbeat_timeout_s: float = 30.0,
                      start_timeout_s: float | None = 120.0):
    """Start the job's named coordinator actor (0 CPUs); returns its handle once it answers (at once
    if ``start_timeout_s`` is None: its first call then waits for it)."""
    name = coordinator_name(job)
    actor_cls = ray.remote(Coordinator)
    try:
        handle = actor_cls.options(
            name=name, num_cpus=0, max_concurrency=max(64, 8 * int(world_size)), max_restarts=0,
        ).remote(job, world_size, heartbeat_timeout_s)
    except ValueError as exc:  # Ray refuses a second actor with the same name
        raise ValueError(f"a job named {job!r} is already running (actor {name!r} exists); pick another "
                         "name= or shut the other WorkerGroup down first") from exc
    if start_timeout_s is not None:
        ray.get(handle.ping.remote(), timeout=start_timeout_s)
    return handle


def get_coordinator(job: str):
    """The handle of a running job's coordinator (ValueError if there is none)."""
    return ray.get_actor(coordinator_name(job))


class CoordinatorClient:
    """Rank-side calls to the coordinator. Every blocking call has a timeout, waits in slices of at most
    ``slice_s`` and gives up with CollectiveAborted as soon as this rank's abort flag or the job's is set."""

    def __init__(self, handle, rank: int, abort: AbortSignal | None = None, slice_s: float = 1.0,
                 call_timeout_s: float = 60.0):
        self.handle, self.rank, self.abort = handle, int(rank), abort
        self._slice_s, self._call_timeout_s = slice_s, call_timeout_s

    def call(self, method: str, *args, timeout_s: float | None = None):
        """One coordinator call, waited for at most ``timeout_s`` (default: the client's call timeout)."""
        ref = getattr(self.handle, method).remote(*args)
        try:
            return ray.get(ref, timeout=self._call_timeout_s if timeout_s is None else timeout_s)
        except ray.exceptions.RayActorError as exc:
            raise CollectiveAborted(method, f"the job's coordinator actor died ({exc})", self.rank) from None

    def notify(self, method: str, *args) -> None:
        """Fire-and-forget call (abort, error reports): never blocks the caller."""
        getattr(self.handle, method).remote(*args)

    def kv_put(self, key: str, value: Any) -> None:
        self.call("kv_put", key, value)

    def kv_delete(self, key: str) -> None:
        self.notify("kv_delete", key)

    def kv_get(self, key: str, timeout_s: float, op: str = "rendezvous") -> Any:
        """The value of ``key``, waiting up to ``timeout_s`` for another rank to put it."""
        def attempt(slice_s):
            found, value, reason = self.call("kv_get", key, slice_s, timeout_s=slice_s + self._call_timeout_s)
            return found, value, reason, []
        return self._poll(attempt, timeout_s, op, f"key {key!r} was never published")

    def barrier(self, name: str, timeout_s: float, members: Sequence[int], op: str = "barrier") -> None:
        """Wait until every rank in ``members`` reached barrier ``name`` (names are reusable)."""
        members = sorted(members)
        generation = self.call("barrier_arrive", name, self.rank)

        def attempt(slice_s):
            done, missing, reason = self.call("barrier_wait", name, generation, members, slice_s,
                                              timeout_s=slice_s + self._call_timeout_s)
            return done, None, reason, missing
        self._poll(attempt, timeout_s, op, f"barrier {name!r}")

    def rendezvous(self, timeout_s: float) -> list[dict]:
        """Every rank's registered info, in rank order, once all ranks registered."""
        def attempt(slice_s):
            infos, missing, reason = self.call("rendezvous", slice_s, timeout_s=slice_s + self._call_timeout_s)
            return infos is not None, infos, reason, missing
        return self._poll(attempt, timeout_s, "rendezvous", "ranks never registered")

    def abort_job(self, reason: str) -> None:
        self.notify("abort", reason)

    def _poll(self, attempt, timeout_s: float, op: str, what: str):
        timeout_s = max(0.0, timeout_s)  # callers pass what is left of an op's deadline, which may be gone
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_abort(op)
            slice_s = max(0.0, min(self._slice_s, deadline - time.monotonic()))
            done, value, reason, missing = attempt(slice_s)
            if done:
                return value
            if reason is not None:
                raise CollectiveAborted(op, reason, self.rank)
            if time.monotonic() >= deadline:
                raise CollectiveTimeout(op, timeout_s, missing, self.rank, detail=what)

    def check_abort(self, op: str) -> None:
        """Raise CollectiveAborted if this rank's abort flag is set."""
        if self.abort is not None and self.abort.is_set():
            raise CollectiveAborted(op, self.abort.reason or "aborted", self.rank)
