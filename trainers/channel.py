"""How ranks talk to the driver and to each other outside the gradient collectives.

Rank 0 sends two kinds of messages to the driver: reports (the metrics of each `report()` call, with
the checkpoint written for it; none may be lost) and progress (the latest step, loss and
throughput for the progress bar; only the newest matters). In-process they are plain method calls
on the driver's monitor. Under Ray they go through the job coordinator's key-value store: a
report is one blocking `kv_put` under a numbered key, progress a fire-and-forget `kv_put` under one
key; the driver's ReportPump thread polls both, so a rank never waits for the driver.

Exchange gathers small Python objects (evaluation sums, RNG states) from every rank, also through
the key-value store: no communicator has to be set up for it, and it works on CPU and GPU workers.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger("raygrad.trainers")

_POLL_S = 0.1
_EXCHANGE_TIMEOUT_S = 1800.0  # ranks may reach a report far apart (rank 0 evaluating); aborts still wake them


class MonitorSink(Protocol):
    """What the driver's monitor receives (trainers.monitor.RunMonitor implements it)."""

    def on_report(self, record: dict) -> None: ...

    def on_progress(self, progress: dict) -> None: ...


# --------------------------------------------------------------------------------------- rank side
class LocalChannel:
    """In-process: hands messages straight to the driver's monitor."""

    def __init__(self, sink: MonitorSink):
        self.sink = sink

    def send_report(self, record: dict) -> None:
        self.sink.on_report(record)

    def send_progress(self, progress: dict) -> None:
        self.sink.on_progress(progress)


def report_key(attempt: int, seq: int) -> str:
    return f"trainers/{attempt}/report/{seq}"


def progress_key(attempt: int) -> str:
    return f"trainers/{attempt}/progress"


class CoordinatorChannel:
    """Under Ray: messages land in the coordinator's key-value store, keyed by the attempt (so a dying
    group's late messages never mix with its successor's) and, for reports, numbered from 0."""

    def __init__(self, client, attempt: int):
        self.client, self.attempt = client, attempt
        self._seq = 0

    def send_report(self, record: dict) -> None:
        self.client.kv_put(report_key(self.attempt, self._seq), record)
        self._seq += 1

    def send_progress(self, progress: dict) -> None:
        self.client.notify("kv_put", progress_key(self.attempt), progress)


# ------------------------------------------------------------------------------------- driver side
class ReportPump(threading.Thread):
    """Driver thread that moves rank 0's reports and progress from the coordinator to the monitor."""

    def __init__(self, coordinator, attempt: int, sink: MonitorSink):
        super().__init__(name=f"raygrad-report-pump-{attempt}", daemon=True)
        self.coordinator, self.attempt, self.sink = coordinator, attempt, sink
        self._next_seq = 0
        self._last_progress = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.drain()
            self._stop_event.wait(_POLL_S)

    def stop(self) -> None:
        """Stop polling and deliver whatever is still waiting (reports are never dropped)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=10)
        self.drain()

    def drain(self) -> None:
        try:
            self._deliver_progress()  # first: rank 0 sent it before any report now waiting
            while self._deliver_next_report():
                pass
        except Exception as exc:  # a dead coordinator: the group's failure is reported by the WorkerGroup
            log.debug("report pump: coordinator unreachable (%s)", exc)

    def _get(self, key: str):
        import ray

        found, value, _ = ray.get(self.coordinator.kv_get.remote(key, 0.0), timeout=10)
        return value if found else None

    def _deliver_next_report(self) -> bool:
        key = report_key(self.attempt, self._next_seq)
        record = self._get(key)
        if record is None:
            return False
        self.coordinator.kv_delete.remote(key)
        self._next_seq += 1
        self.sink.on_report(record)
        return True

    def _deliver_progress(self) -> None:
        progress = self._get(progress_key(self.attempt))
        if progress is not None and progress != self._last_progress:
            self._last_progress = progress
            self.sink.on_progress(progress)


# ----------------------------------------------------------------------------------- rank to rank
class LocalExchange:
    """World size 1: gathering is the identity, barriers return at once."""

    def allgather(self, value) -> list:
        return [value]

    def gather(self, value) -> list:
        return [value]

    def barrier(self, name: str) -> None:
        return None


class CoordinatorExchange:
    """Gathers small objects from every rank through the coordinator's key-value store.

    Every rank must call allgather/barrier in the same order (like collectives). Each call uses
    fresh keys; after a barrier every rank has read them, so each rank deletes its own.
    """

    def __init__(self, client, rank: int, world_size: int, timeout_s: float = _EXCHANGE_TIMEOUT_S):
        self.client, self.rank, self.world_size, self.timeout_s = client, rank, world_size, timeout_s
        self._calls = 0

    def allgather(self, value) -> list:
        prefix = f"trainers/gather/{self._calls}/"
        self._calls += 1
        self.client.kv_put(prefix + str(self.rank), value)
        values = [self.client.kv_get(prefix + str(r), self.timeout_s, op="trainers allgather")
                  for r in range(self.world_size)]
        self.barrier("trainers/gather")
        self.client.kv_delete(prefix + str(self.rank))
        return values

    def gather(self, value) -> list | None:
        """Every rank's value on rank 0 (a list in rank order); None on the other ranks. Also a barrier."""
        prefix = f"trainers/gather0/{self._calls}/"
        self._calls += 1
        self.client.kv_put(prefix + str(self.rank), value)
        self.barrier("trainers/gather0")
        if self.rank != 0:
            return None
        values = [self.client.kv_get(prefix + str(r), self.timeout_s, op="trainers gather")
                  for r in range(self.world_size)]
        for r in range(self.world_size):
            self.client.kv_delete(prefix + str(r))
        return values

    def barrier(self, name: str) -> None:
        started = time.monotonic()
        self.client.barrier(name, self.timeout_s, range(self.world_size), op=name)
        waited = time.monotonic() - started
        if waited > 60:
            log.info("rank %d waited %.0f s for the other ranks at %s", self.rank, waited, name)
