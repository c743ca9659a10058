"""How a rank talks to whatever plans its data: the coordinator actor, or a DataService in process."""

from __future__ import annotations

import time

from .service import DataService

_MAX_IN_FLIGHT = 64


class DataClient:
    """Calls the data methods (data_register, data_plan, ...) of a target the same way whether it is
    a Ray actor handle (the job's coordinator) or a plain object (a DataService, for num_workers=0).

    coordinator: an actor handle, an object with the data methods, or None for a private DataService.
    timeout_s: how long a blocking call to an actor may take before GetTimeoutError, so a stuck
        coordinator cannot hang a rank.
    report_interval_s: progress reports are sent at most this often (one actor call per batch would
        cost the training step more than the batch); flush() sends the latest count at once.
    """

    def __init__(self, coordinator=None, timeout_s: float = 120.0, report_interval_s: float = 0.1):
        self.target = DataService() if coordinator is None else coordinator
        self.remote = callable(getattr(getattr(self.target, "data_plan", None), "remote", None))
        if not self.remote and not callable(getattr(self.target, "data_plan", None)):
            raise TypeError(
                f"coordinator must be a Ray actor handle of dist.coordinator.Coordinator, a DataService, "
                f"or None; got {type(coordinator).__name__}"
            )
        self.timeout_s = timeout_s
        self.report_interval_s = report_interval_s
        self._pending: dict[tuple, int] = {}
        self._last_sent = 0.0
        self._in_flight: list = []  # ObjectRefs of reports not known to have landed

    def call(self, method: str, *args):
        """Call `method` and wait for its result."""
        if not self.remote:
            return getattr(self.target, method)(*args)
        import ray  # only ranks under Ray pay for the import

        return ray.get(getattr(self.target, method).remote(*args), timeout=self.timeout_s)

    def report(self, name: str, epoch: int, generation: int, rank: int, batches: int, token: str) -> None:
        """Note that `rank` consumed `batches` batches; sent at most every report_interval_s (the
        latest count per pass; counts are cumulative, so skipped intermediate ones lose nothing)."""
        self._pending[(name, epoch, generation, rank, token)] = batches
        if time.monotonic() - self._last_sent >= self.report_interval_s:
            self.send_pending()

    def send_pending(self) -> None:
        """Send unsent counts without waiting for them to land."""
        pending, self._pending = self._pending, {}
        self._last_sent = time.monotonic()
        for key, batches in pending.items():
            name, epoch, generation, rank, token = key
            if self.remote:
                self._in_flight.append(self.target.data_report.remote(name, epoch, generation, rank, batches, token))
            else:
                self.target.data_report(name, epoch, generation, rank, batches, token)
        if len(self._in_flight) > _MAX_IN_FLIGHT:
            self._collect_landed()

    def flush(self) -> None:
        """Send unsent counts and wait until all are recorded (raising a failed report's error).
        The coordinator is a threaded actor and may run reports out of order, so wait for each."""
        self.send_pending()
        in_flight, self._in_flight = self._in_flight, []
        if in_flight:
            import ray

            ray.get(in_flight, timeout=self.timeout_s)

    def _collect_landed(self) -> None:
        import ray

        landed, self._in_flight = ray.wait(self._in_flight, num_returns=len(self._in_flight), timeout=0)
        ray.get(landed)  # already done: only raises a failed report's error
