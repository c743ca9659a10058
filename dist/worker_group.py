"""WorkerGroup: N Ray actors in one placement group, one per GPU (or per CPU slot), run as ranks 0..N-1.

Failure semantics: when a rank raises, its actor sets the job's abort flag (so the other ranks'
collectives raise CollectiveAborted and return) and the driver raises ONE WorkerGroupError listing every
rank's error and traceback. The driver never blocks on a single rank: it polls all of them with
``ray.wait`` and checks the coordinator's heartbeat verdicts, so a killed actor or a silent node is
reported within seconds as WorkerDied.
"""

from __future__ import annotations

import pickle
import re
import time
import uuid
from typing import Any, Callable, Mapping

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from dist.coordinator import start_coordinator
from dist.env import RankActor, RankInfo, RankFailure
from dist.errors import PlacementTimeout, WorkerDied, WorkerGroupError

_POLL_S = 0.1
_HEALTH_CHECK_EVERY_S = 1.0
_ACTOR_START_TIMEOUT_S = 300.0
_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class WorkerGroup:
    """N ranks as Ray actors in one placement group, plus the job's coordinator.

    Args:
        num_workers: number of ranks.
        use_gpu: one GPU per actor (``gpus_per_worker`` of them), its device set before any CUDA call.
        cpus_per_worker: CPUs per actor; BLAS/OpenMP threads are set to it (at least 1).
        gpus_per_worker: GPUs per actor when ``use_gpu``.
        placement_strategy: "PACK" (default: fill nodes) or "SPREAD" (one per node where possible),
            or Ray's STRICT_ variants.
        placement_timeout_s: give up with PlacementTimeout if the cluster cannot place the group by then.
        env: extra environment variables for every actor, set before its process starts.
        name: the job's name (names the coordinator actor); default a random one.
        resources_per_worker: extra custom Ray resources per actor, e.g. {"node_a": 1}.
        heartbeat_timeout_s: a rank silent this long is declared dead and the job aborted.
        heartbeat_interval_s: how often each rank beats (and learns of an abort from other nodes).
        abort_grace_s: after a failure, how long the driver waits for the other ranks to stop before it
            reports them as still running.
        coordinator: an existing coordinator handle to reuse (reset here, not killed on shutdown);
            default: start one and own it.
        placement_group: an existing placement group to start the actors in, rank bundles
            ``bundle_offset .. bundle_offset + num_workers - 1`` (e.g. a Ray Tune trial's, whose bundle 0
            holds the trial itself): the workers then use resources already reserved for them instead of
            waiting for a group of their own. It is borrowed: shutdown leaves it in place. Default: create one.
        bundle_offset: the first bundle of ``placement_group`` to use.
    """

    def __init__(self, num_workers: int, use_gpu: bool = False, cpus_per_worker: float = 1,
                 gpus_per_worker: float = 1, placement_strategy: str = "PACK", placement_timeout_s: float = 60.0,
                 env: Mapping[str, str] | None = None, name: str | None = None,
                 resources_per_worker: Mapping[str, float] | None = None, heartbeat_timeout_s: float = 30.0,
                 heartbeat_interval_s: float = 1.0, abort_grace_s: float = 10.0, coordinator=None,
                 placement_group=None, bundle_offset: int = 0):
        _check_args(num_workers, cpus_per_worker, gpus_per_worker, placement_strategy, placement_timeout_s,
                    env, name, resources_per_worker, heartbeat_timeout_s, heartbeat_interval_s, bundle_offset)
        if not ray.is_initialized():
            raise RuntimeError("WorkerGroup needs Ray: call ray.init() first (ray.init(address='auto') joins "
                               "a running cluster)")
        self.name = name or f"job-{uuid.uuid4().hex[:8]}"
        self.num_workers, self.use_gpu = int(num_workers), bool(use_gpu)
        self._abort_grace_s = float(abort_grace_s)
        self._pg = placement_group
        self._owns_pg = placement_group is None
        self._bundle_offset = int(bundle_offset)
        self._workers: list = []
        self._closed, self._failed = False, False
        self._owns_coordinator = coordinator is None
        self._coordinator = coordinator
        self.rank_infos: list[RankInfo] = []
        try:
            self._start(cpus_per_worker, gpus_per_worker, placement_strategy, placement_timeout_s, dict(env or {}),
                        dict(resources_per_worker or {}), heartbeat_timeout_s, heartbeat_interval_s)
        except BaseException:
            self._failed = True
            self.shutdown()
            raise

    def _start(self, cpus, gpus, strategy, placement_timeout_s, env_vars, resources, heartbeat_timeout_s,
               heartbeat_interval_s) -> None:
        if self._coordinator is None:
            # Not waited for here: it starts while the placement group and the actors come up.
            self._coordinator = start_coordinator(self.name, self.num_workers, heartbeat_timeout_s, None)
        else:
            ray.get(self._coordinator.reset.remote(self.num_workers), timeout=60)
        bundle = {"CPU": float(cpus), **({"GPU": float(gpus)} if self.use_gpu else {}), **resources}
        if self._owns_pg:
            self._pg = _place([bundle] * self.num_workers, strategy, placement_timeout_s)
        else:
            _check_borrowed(self._pg, self._bundle_offset, self.num_workers, bundle, placement_timeout_s)
        threads = max(1, int(cpus))
        actors = [self._create_actor(i, cpus, gpus, resources, env_vars, threads) for i in range(self.num_workers)]
        self._workers = actors  # bundle order until ranks are known, so shutdown can kill them on failure
        described = self._gather({i: a.describe.remote() for i, a in enumerate(actors)}, False, _ACTOR_START_TIMEOUT_S)
        order, self.rank_infos = _assign_ranks(described)
        self._workers = [actors[i] for i in order]
        self._gather({info.rank: self._workers[info.rank].setup.remote(
            info, self._coordinator, self.name, self.use_gpu, heartbeat_interval_s) for info in self.rank_infos},
            False, _ACTOR_START_TIMEOUT_S)

    def _create_actor(self, bundle_index, cpus, gpus, resources, env_vars, threads):
        strategy = PlacementGroupSchedulingStrategy(self._pg, self._bundle_offset + bundle_index)
        options = dict(num_cpus=cpus, num_gpus=gpus if self.use_gpu else 0, max_restarts=0,
                       scheduling_strategy=strategy)
        if resources:
            options["resources"] = resources
        if env_vars:  # only then: a runtime_env costs a second interpreter start per actor (setup_worker.py)
            options["runtime_env"] = {"env_vars": env_vars}
        return ray.remote(RankActor).options(**options).remote(threads)

    # -- running functions --------------------------------------------------------------------

    @property
    def coordinator(self):
        """The coordinator's actor handle (data planning, abort state, errors)."""
        return self._coordinator

    @property
    def workers(self) -> list:
        """The actor handles, in rank order."""
        return list(self._workers)

    def execute(self, fn: Callable, *args, **kwargs) -> list:
        """Run ``fn(*args, **kwargs)`` on every rank; its return values in rank order.

        Raises WorkerGroupError (every failed rank's error and traceback) if any rank fails.
        """
        return self.get(self.execute_async(fn, *args, **kwargs))

    def execute_async(self, fn: Callable, *args, **kwargs) -> list[ray.ObjectRef]:
        """Start ``fn`` on every rank; returns one ObjectRef per rank, to pass to ``get``."""
        self._check_open(fn)
        return [w.run.remote(fn, args, kwargs, True) for w in self._workers]

    def execute_single(self, rank: int, fn: Callable, *args, **kwargs) -> Any:
        """Run ``fn`` on one rank only. A failure there raises WorkerGroupError but does not abort the job."""
        self._check_open(fn)
        if not isinstance(rank, int) or not 0 <= rank < self.num_workers:
            raise ValueError(f"execute_single: rank={rank!r} is not in [0, {self.num_workers})")
        ref = self._workers[rank].run.remote(fn, args, kwargs, False)
        return self._gather({rank: ref}, False, None)[0]

    def get(self, refs: list[ray.ObjectRef], timeout_s: float | None = None) -> list:
        """The results of ``execute_async``'s refs in rank order, with ``execute``'s failure semantics.

        ``timeout_s`` bounds the whole wait; ranks still running then are reported as failed.
        """
        if len(refs) != self.num_workers:
            raise ValueError(f"get: expected {self.num_workers} refs (one per rank, from execute_async), "
                             f"got {len(refs)}")
        return self._gather(dict(enumerate(refs)), True, timeout_s)

    # -- collecting results -------------------------------------------------------------------

    def _gather(self, refs: dict[int, ray.ObjectRef], abort_on_failure: bool, timeout_s: float | None) -> list:
        pending = {ref: rank for rank, ref in refs.items()}
        results: dict[int, Any] = {}
        failures: dict[int, tuple[str, BaseException | None]] = {}
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        stop_by, next_health_check = None, time.monotonic() + _HEALTH_CHECK_EVERY_S
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=_POLL_S)
            for ref in ready:
                self._collect(ref, pending.pop(ref), results, failures)
            now = time.monotonic()
            if now >= next_health_check and pending:
                self._check_heartbeats(pending, failures)
                next_health_check = now + _HEALTH_CHECK_EVERY_S
            if failures and stop_by is None:
                stop_by = now + self._abort_grace_s
                self._on_first_failure(failures, abort_on_failure)
            if pending and stop_by is not None and now >= stop_by:
                self._give_up(pending, failures, f"still running {self._abort_grace_s:g} s after the job was aborted "
                                                  "(stuck outside a collective?)")
            elif pending and deadline is not None and now >= deadline:
                self._give_up(pending, failures, f"did not finish within timeout_s={timeout_s:g}")
                self._on_first_failure(failures, abort_on_failure)
        if failures:
            raise WorkerGroupError({r: text for r, (text, _) in failures.items()},
                                   {r: exc for r, (_, exc) in failures.items() if exc is not None},
                                   f"{len(failures)} of {len(refs)} rank(s) failed in job {self.name!r}")
        return [results[rank] for rank in sorted(refs)]

    def _collect(self, ref, rank: int, results: dict, failures: dict) -> None:
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            died = WorkerDied(rank, f"its actor process died ({type(exc).__name__}: {exc})")
            failures[rank] = (str(died), died)
            return
        except ray.exceptions.RayError as exc:  # e.g. fn or its arguments could not be unpickled on the worker
            failures[rank] = (str(exc), None)
            return
        if isinstance(value, RankFailure):
            failures[rank] = (value.text, _unpickle_or_none(value.exception))
        else:
            results[rank] = value

    def _check_heartbeats(self, pending: dict, failures: dict) -> None:
        try:
            dead = ray.get(self._coordinator.dead_ranks.remote(), timeout=5)
        except Exception:  # a slow coordinator must not fail the gather; ray.wait still reports dead actors
            return
        for ref, rank in list(pending.items()):
            if rank in dead:
                died = WorkerDied(rank, dead[rank])
                failures[rank] = (str(died), died)
                del pending[ref]

    def _give_up(self, pending: dict, failures: dict, why: str) -> None:
        for ref, rank in list(pending.items()):
            failures[rank] = (f"rank {rank}: {why}", None)
            del pending[ref]

    def _on_first_failure(self, failures: dict, abort_on_failure: bool) -> None:
        self._failed = True
        if abort_on_failure:
            rank = min(failures)
            first_line = failures[rank][0].strip().splitlines()[-1] if failures[rank][0].strip() else "failed"
            self._coordinator.abort.remote(f"rank {rank} failed: {first_line}")

    # -- lifecycle ----------------------------------------------------------------------------

    def _check_open(self, fn) -> None:
        if self._closed:
            raise RuntimeError(f"WorkerGroup {self.name!r} is shut down; start a new one")
        if not callable(fn):
            raise TypeError(f"execute: fn must be callable, got {type(fn).__name__}: {fn!r}")

    def shutdown(self, graceful_timeout_s: float = 5.0) -> None:
        """Close the ranks' communicators, kill the actors, remove the placement group and our coordinator.

        Idempotent. After a failure the ranks are killed without the graceful step (they may be stuck).
        """
        if self._closed:
            return
        self._closed = True
        if self._workers and not self._failed:
            closing = [w.close.remote() for w in self._workers]
            ray.wait(closing, num_returns=len(closing), timeout=graceful_timeout_s)
        for actor in self._workers:
            _kill(actor)
        if self._pg is not None and self._owns_pg:
            remove_placement_group(self._pg)
        if self._owns_coordinator and self._coordinator is not None:
            _kill(self._coordinator)

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "shut down" if self._closed else "running"
        return f"WorkerGroup(name={self.name!r}, num_workers={self.num_workers}, use_gpu={self.use_gpu}, {state})"


def _place(bundles: list[dict], strategy: str, timeout_s: float):
    """A ready placement group, or PlacementTimeout (the group removed) after ``timeout_s``."""
    pg = placement_group(bundles, strategy=strategy)
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if ready:
        return pg
    remove_placement_group(pg)
    raise PlacementTimeout(bundles, strategy, timeout_s, ray.cluster_resources(), ray.available_resources())


def _check_borrowed(pg, offset: int, num_workers: int, bundle: dict, timeout_s: float) -> None:
    """A borrowed placement group must be ready and hold, from ``offset`` on, a bundle per worker that
    covers what a worker asks for; otherwise the actors would wait for resources that never come."""
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        raise PlacementTimeout([bundle] * num_workers, "borrowed", timeout_s,
                               ray.cluster_resources(), ray.available_resources())
    specs = pg.bundle_specs
    if len(specs) < offset + num_workers:
        raise ValueError(f"WorkerGroup: the placement group has {len(specs)} bundle(s), but {num_workers} worker(s) "
                         f"from bundle_offset={offset} need bundles {offset}..{offset + num_workers - 1}")
    for index in range(offset, offset + num_workers):
        if any(specs[index].get(key, 0) < value for key, value in bundle.items()):
            raise ValueError(f"WorkerGroup: bundle {index} of the placement group holds {specs[index]}, but a worker "
                             f"asks for {bundle}; reserve bundles of at least that size for the workers")


def _assign_ranks(described: list[dict]) -> tuple[list[int], list[RankInfo]]:
    """Order actors so that ranks on one node are contiguous, nodes in order of their first bundle.

    Returns (actor index of each rank, RankInfo of each rank).
    """
    nodes: list[str] = []
    for d in described:
        if d["node_id"] not in nodes:
            nodes.append(d["node_id"])
    order = sorted(range(len(described)), key=lambda i: (nodes.index(described[i]["node_id"]), i))
    per_node = {node: sum(d["node_id"] == node for d in described) for node in nodes}
    infos, seen = [], {node: 0 for node in nodes}
    for rank, i in enumerate(order):
        node = described[i]["node_id"]
        infos.append(RankInfo(rank, len(described), seen[node], per_node[node], nodes.index(node), node,
                              described[i]["ip"]))
        seen[node] += 1
    return order, infos


def _check_args(num_workers, cpus, gpus, strategy, placement_timeout_s, env_vars, name, resources,
                heartbeat_timeout_s, heartbeat_interval_s, bundle_offset=0) -> None:
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 1:
        raise ValueError(f"WorkerGroup: num_workers must be an int >= 1, got {num_workers!r}")
    if not isinstance(bundle_offset, int) or isinstance(bundle_offset, bool) or bundle_offset < 0:
        raise ValueError(f"WorkerGroup: bundle_offset must be an int >= 0, got {bundle_offset!r}")
    for label, value in (("cpus_per_worker", cpus), ("gpus_per_worker", gpus),
                         ("placement_timeout_s", placement_timeout_s), ("heartbeat_timeout_s", heartbeat_timeout_s),
                         ("heartbeat_interval_s", heartbeat_interval_s)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"WorkerGroup: {label} must be a number > 0, got {value!r}")
    if heartbeat_interval_s * 3 > heartbeat_timeout_s:
        raise ValueError(f"WorkerGroup: heartbeat_timeout_s={heartbeat_timeout_s} must be at least 3x "
                         f"heartbeat_interval_s={heartbeat_interval_s}, or live ranks get declared dead")
    if strategy not in _STRATEGIES:
        raise ValueError(f"WorkerGroup: placement_strategy={strategy!r} is not one of {_STRATEGIES}")
    bad_env = {k: v for k, v in (env_vars or {}).items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad_env:
        raise TypeError(f"WorkerGroup: env must map str to str; these entries do not: {bad_env!r}")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", str(name)):
        raise ValueError(f"WorkerGroup: name={name!r} must be 1-100 letters, digits, '_', '.' or '-'")
    bad_res = {k: v for k, v in (resources or {}).items()
               if k in ("CPU", "GPU") or not isinstance(v, (int, float)) or v <= 0}
    if bad_res:
        raise ValueError(f"WorkerGroup: resources_per_worker holds custom resources > 0 only (use "
                         f"cpus_per_worker / gpus_per_worker for CPU and GPU); bad entries: {bad_res!r}")


def _kill(actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already dead: nothing to do
        pass


def _unpickle_or_none(data: bytes | None) -> BaseException | None:
    if data is None:
        return None
    try:
        return pickle.loads(data)
    except Exception:  # its class does not exist on the driver
        return None
