"""How a rank talks to whatever plans its data: the coordinator actor, or a DataService in process."""

from __future__ import annotations

from .service import DataService


class DataClient:
    """Calls the data methods (data_register, data_plan, ...) of a target the same way whether it is
    a Ray actor handle (the job's coordinator) or a plain object (a DataService, for num_workers=0).

    coordinator: an actor handle, an object with the data methods, or None for a private DataService.
    timeout_s: how long a blocking call to an actor may take before GetTimeoutError, so a stuck
        coordinator cannot hang a rank.
    """

    def __init__(self, coordinator=None, timeout_s: float = 120.0):
        self.target = DataService() if coordinator is None else coordinator
        self.remote = callable(getattr(getattr(self.target, "data_plan", None), "remote", None))
        if not self.remote and not callable(getattr(self.target, "data_plan", None)):
            raise TypeError(
                f"coordinator must be a Ray actor handle of dist.coordinator.Coordinator, a DataService, "
                f"or None; got {type(coordinator).__name__}"
            )
        self.timeout_s = timeout_s
        self._last_report = None

    def call(self, method: str, *args):
        """Call `method` and wait for its result."""
        if not self.remote:
            return getattr(self.target, method)(*args)
        import ray  # only ranks under Ray pay for the import

        return ray.get(getattr(self.target, method).remote(*args), timeout=self.timeout_s)

    def report(self, *args) -> None:
        """data_report without waiting. Reports are cumulative counts, so their order does not matter
        and waiting on the latest (flush) is enough to know all have landed."""
        if self.remote:
            self._last_report = self.target.data_report.remote(*args)
        else:
            self.target.data_report(*args)

    def flush(self) -> None:
        """Wait until the latest report is recorded (raising its error, if it failed)."""
        pending, self._last_report = self._last_report, None
        if pending is not None:
            import ray

            ray.get(pending, timeout=self.timeout_s)
