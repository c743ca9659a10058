"""Every exception that dist raises, in one place.

All of them pickle with their attributes intact (each defines ``__reduce__``), because they travel
from a Ray actor to the driver inside a WorkerGroupError.
"""

from __future__ import annotations

from typing import Mapping, Sequence


class DistError(RuntimeError):
    """Base class of the errors raised by dist."""


class WorkerGroupError(DistError):
    """One or more ranks of a WorkerGroup failed.

    Attributes:
        errors: rank -> that rank's error with its formatted traceback, for every failed rank.
        exceptions: rank -> the exception object where it could be sent back (else absent).
        root_ranks: the failed ranks whose error is not a consequence of another rank's failure
            (i.e. not CollectiveAborted); the message lists them first.
    """

    def __init__(
        self,
        errors: Mapping[int, str],
        exceptions: Mapping[int, BaseException] | None = None,
        headline: str = "",
    ):
        self.errors = dict(sorted(errors.items()))
        self.exceptions = dict(exceptions or {})
        self.headline = headline
        self.root_ranks = [r for r in self.errors if not isinstance(self.exceptions.get(r), CollectiveAborted)]
        super().__init__(self._format())

    def _format(self) -> str:
        ordered = self.root_ranks + [r for r in self.errors if r not in self.root_ranks]
        head = self.headline or f"{len(self.errors)} rank(s) failed: {sorted(self.errors)}"
        parts = [f"{head} (root causes first)"]
        for rank in ordered:
            parts.append(f"\n--- rank {rank} ---\n{self.errors[rank].rstrip()}")
        return "\n".join(parts)

    def __reduce__(self):
        return (type(self), (self.errors, self.exceptions, self.headline))


class CollectiveError(DistError):
    """A collective could not run: mismatched calls across ranks, or a broken communicator."""


class CollectiveTimeout(CollectiveError, TimeoutError):
    """A collective did not complete within its timeout.

    Attributes:
        op: the collective's name, e.g. "allreduce".
        timeout_s: the timeout that expired, in seconds.
        missing_ranks: the global ranks that never arrived (empty where the backend cannot tell).
        rank: the rank that raised.
    """

    def __init__(self, op: str, timeout_s: float, missing_ranks: Sequence[int] = (), rank: int | None = None,
                 detail: str = ""):
        self.op, self.timeout_s, self.rank, self.detail = op, float(timeout_s), rank, detail
        self.missing_ranks = sorted(int(r) for r in missing_ranks)
        where = f"rank {rank}: " if rank is not None else ""
        who = (f"ranks that never arrived: {self.missing_ranks}" if self.missing_ranks
               else "the backend cannot tell which ranks are missing")
        msg = (f"{where}{op} did not complete within {self.timeout_s:g} s; {who}. "
               "Every rank must call the same collectives in the same order; a rank that is slower "
               "on purpose needs a larger timeout=")
        super().__init__(msg + (f" ({detail})" if detail else ""))

    def __reduce__(self):
        return (type(self), (self.op, self.timeout_s, self.missing_ranks, self.rank, self.detail))


class CollectiveAborted(CollectiveError):
    """A collective stopped because the job was aborted (another rank failed or died)."""

    def __init__(self, op: str, reason: str, rank: int | None = None):
        self.op, self.reason, self.rank = op, reason, rank
        where = f"rank {rank}: " if rank is not None else ""
        super().__init__(f"{where}{op} aborted: {reason}")

    def __reduce__(self):
        return (type(self), (self.op, self.reason, self.rank))


class PlacementTimeout(DistError, TimeoutError):
    """The cluster could not place a WorkerGroup's placement group within the timeout."""

    def __init__(self, bundles: Sequence[Mapping[str, float]], strategy: str, timeout_s: float,
                 cluster_resources: Mapping[str, float], available_resources: Mapping[str, float]):
        self.bundles = [dict(b) for b in bundles]
        self.strategy, self.timeout_s = strategy, float(timeout_s)
        self.cluster_resources = dict(cluster_resources)
        self.available_resources = dict(available_resources)
        total = _sum_bundles(self.bundles)
        super().__init__(
            f"could not place {len(self.bundles)} worker(s) within {self.timeout_s:g} s "
            f"(strategy {strategy}): asked for {_fmt(total)} in bundles of {_fmt(self.bundles[0]) if self.bundles else '{}'}; "
            f"the cluster has {_fmt(_core(self.cluster_resources))} in total and "
            f"{_fmt(_core(self.available_resources))} free. Use fewer workers or fewer resources per "
            "worker, free the cluster, add nodes, or raise placement_timeout_s if nodes are coming up.")

    def __reduce__(self):
        return (type(self), (self.bundles, self.strategy, self.timeout_s, self.cluster_resources,
                             self.available_resources))


class WorkerDied(DistError):
    """A rank's actor process died (killed, crashed, out of memory) or its node went silent."""

    def __init__(self, rank: int, detail: str):
        self.rank, self.detail = rank, detail
        super().__init__(f"rank {rank}: worker died: {detail}")

    def __reduce__(self):
        return (type(self), (self.rank, self.detail))


def _sum_bundles(bundles: Sequence[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for bundle in bundles:
        for key, value in bundle.items():
            total[key] = total.get(key, 0.0) + value
    return total


def _core(resources: Mapping[str, float]) -> dict[str, float]:
    """Drop Ray's per-node bookkeeping resources (node:..., memory) that only add noise to a message."""
    return {k: v for k, v in resources.items() if not k.startswith("node:") and k not in ("memory", "object_store_memory")}


def _fmt(resources: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}"
