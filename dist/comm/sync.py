"""How the ranks of one node wait for each other: progress counters in the shared control block.

Each rank owns a few monotonically increasing counters (a barrier epoch, and the last step it scattered,
reduced and gathered in a pipelined all-reduce) and publishes them after the data they describe. A rank
that needs the others to reach a value waits on the minimum over ranks: a short spin (peers usually
arrive within microseconds), then sleeps on the node's doorbell (a futex: no CPU burnt, woken at once
by the next publication). Every wait checks its deadline and both abort flags (this process's
AbortSignal and the node's shared abort word) at least every few milliseconds, so nothing hangs.

Waking a sleeper takes the kernel 100 us or more on some machines (virtual CPUs especially), far
longer than a step's imbalance usually lasts, so a waiter first spins, then yields its core for a
couple of milliseconds (sched_yield: the peer it waits for may be the task that gets it), and only
then sleeps on the doorbell.
"""

from __future__ import annotations

import os
import platform
import threading
import time

from dist.comm.base import Deadline
from dist.comm.doorbell import Doorbell
from dist.comm.shm import ControlBlock
from dist.errors import CollectiveAborted, CollectiveTimeout

EPOCH, SCATTERED, REDUCED, GATHERED = range(4)  # the counters' columns in ControlBlock.progress
_SPIN_CHECKS = 64  # tight polls (about 1 us each) first
_YIELD_FOR_S = 2e-3  # then polls between sched_yield calls for this long
_SLEEP_SLICE_S = 5e-3  # then doorbell sleeps, each at most this long between abort and deadline checks


def _make_fence():
    """A full memory barrier around counter stores and loads. x86-64 keeps stores in order and loads in
    order (TSO), which is all the data-then-counter handoff needs, so there it is free; elsewhere a lock
    round trip, whose atomic instructions order memory on every platform CPython supports."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        return lambda: None
    lock = threading.Lock()

    def fence() -> None:
        with lock:
            pass
    return fence


_fence = _make_fence()


class NodeSync:
    """Counters, barrier and abort flag of one node's ranks; ``ranks`` are global ranks in local order."""

    def __init__(self, ctrl: ControlBlock, local_rank: int, ranks: list[int], abort=None):
        self._ctrl, self.local_rank, self.ranks, self._abort = ctrl, local_rank, list(ranks), abort
        self._doorbell = Doorbell(ctrl.doorbell_word)
        self._epoch = 0

    def barrier(self, deadline: Deadline, label: str) -> None:
        self._epoch += 1
        self.publish(EPOCH, self._epoch)
        self.wait(EPOCH, self._epoch, deadline, label)

    def publish(self, counter: int, value: int) -> None:
        """Set my ``counter`` to ``value`` (after the data it describes) and wake the waiters."""
        _fence()
        self._ctrl.progress[self.local_rank, counter] = value
        self._doorbell.ring()

    def reached(self, counter: int, value: int) -> bool:
        """Whether every rank's ``counter`` is at least ``value`` (never blocks)."""
        if self._ctrl.progress[:, counter].min() >= value:
            _fence()  # what they wrote before publishing is visible from here on
            return True
        return False

    def wait(self, counter: int, value: int, deadline: Deadline, label: str) -> None:
        """Return once every rank's ``counter`` is at least ``value``; CollectiveTimeout/Aborted otherwise."""
        for _ in range(_SPIN_CHECKS):
            if self.reached(counter, value):
                return
        yield_until = time.monotonic() + _YIELD_FOR_S
        while True:
            seen = self._doorbell.value()  # read before the check: a ring after it ends the sleep
            if self.reached(counter, value):
                return
            self.check_abort(label)
            now = time.monotonic()
            if now >= deadline.at:
                self._time_out(counter, value, label, deadline.timeout_s)
            if now < yield_until:
                os.sched_yield()
            else:
                self._doorbell.sleep(seen, min(deadline.at - now, _SLEEP_SLICE_S))

    def check_abort(self, label: str) -> None:
        me = self.ranks[self.local_rank]
        if self._abort is not None and self._abort.is_set():
            raise CollectiveAborted(label, self._abort.reason or "aborted", me)
        if self._ctrl.abort[0]:
            who = int(self._ctrl.abort[1]) - 1
            raise CollectiveAborted(label, f"rank {who} on this node gave up on a collective (see its error)", me)

    def _time_out(self, counter: int, value: int, label: str, timeout_s: float) -> None:
        missing = [r for j, r in enumerate(self.ranks) if self._ctrl.progress[j, counter] < value]
        self.signal_abort()
        raise CollectiveTimeout(label, timeout_s, missing, self.ranks[self.local_rank])

    def signal_abort(self) -> None:
        """Make every rank of this node give up its current and future collectives at once."""
        self._ctrl.abort[1] = self.ranks[self.local_rank] + 1
        self._ctrl.abort[0] = 1
        self._doorbell.ring()  # wake the sleepers now rather than at their next slice
