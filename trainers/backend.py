"""Where a training function runs: in the driver process (num_workers=0) or on Ray workers.

Both backends run one *attempt*: set up the data progress from the checkpoint, start the rank(s)
with a session, run `fn(config)` to the end, and raise if a rank fails. The restart policy lives in
trainers.runner; a backend never retries. `request_stop` ends an attempt early on the driver's
request (a sweep's scheduler stopping a trial): the attempt then raises, and the runner, which
asked, treats that as a stop rather than a failure.
"""
from __future__ import annotations

import inspect
import logging
import os
import re
import sys
import uuid

from .channel import CoordinatorChannel, CoordinatorExchange, LocalChannel, LocalExchange, ReportPump
from .config import ScalingConfig
from .errors import TrainingInterrupted
from .rank_output import prefixed_output
from .session import Session, SessionSpec, TrainContext, activate
from . import rng

log = logging.getLogger("raygrad.trainers")

_STOP_GRACE_S = 10.0  # after Ctrl-C: how long ranks get to stop at their next step before they are killed


def call_training_function(fn, config):
    """fn(config), or fn() for a function that takes no arguments (as Ray Train allows)."""
    try:
        takes_config = len(inspect.signature(fn).parameters) > 0
    except (TypeError, ValueError):  # builtins and some callables have no signature: pass the config
        takes_config = True
    return fn(config) if takes_config else fn()


class StopRequested(Exception):
    """Raised through an in-process training function when the driver asks the run to stop; it never
    leaves train_loop (the runner, which asked, ends the run without counting a failure)."""


# ----------------------------------------------------------------------------------- in-process
class InProcessBackend:
    """Runs the function in this process and thread, so debuggers, breakpoints and profilers work."""

    def start(self) -> None:
        from tensor.host_memory import keep_freed_memory

        keep_freed_memory()  # this process trains now, as a rank's actor would (tensor/host_memory.py)

    def run(self, fn, config, spec: SessionSpec, monitor, data_state: dict | None) -> None:
        from dist.data import DataService

        service = DataService()
        service.load_data_state(data_state)
        context = TrainContext(world_size=1, world_rank=0, local_rank=0, local_world_size=1, node_rank=0,
                               device=local_device(), experiment_name=spec.name, storage_path=spec.run_path,
                               attempt=spec.attempt)
        rng.seed_everything(spec.seed)
        session = Session(spec, context, service, LocalChannel(monitor), LocalExchange())
        with activate(session):
            call_training_function(fn, config)

    def request_stop(self, reason: str) -> None:
        """Called on the training thread itself (from within report): unwind the training function."""
        raise StopRequested(reason)

    def close(self) -> None:
        pass


def local_device() -> str:
    """The driver's device for in-process runs: the first GPU if CuPy sees one, else the CPU."""
    import tensor

    return "cuda:0" if tensor.cuda.is_available() else "cpu"


# ------------------------------------------------------------------------------------------ Ray
class RayBackend:
    """One coordinator for the whole run (its data progress outlives restarts) and a new WorkerGroup
    per attempt. Starts Ray locally if it is not running, or joins `address`.

    placement_group: place the workers in the last num_workers bundles of this existing placement group
    (a Ray Tune trial's: bundle 0 holds the trial's driver) instead of reserving a group of their own.
    """

    def __init__(self, scaling: ScalingConfig, name: str, address: str | None = None, placement_group=None):
        self.scaling, self.address, self.placement_group = scaling, address, placement_group
        # Names of Ray actors must be unique among running jobs: a suffix keeps two runs of one name apart.
        self.job = f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)[:60]}-{uuid.uuid4().hex[:6]}"
        self.coordinator = None

    def start(self) -> None:
        from dist.coordinator import start_coordinator

        ensure_ray(self.address)
        self.coordinator = start_coordinator(self.job, self.scaling.num_workers)

    def run(self, fn, config, spec: SessionSpec, monitor, data_state: dict | None) -> None:
        import ray

        from dist import WorkerGroup

        # Before any rank plans an epoch: the coordinator continues the data where the checkpoint was.
        ray.get(self.coordinator.load_data_state.remote(data_state), timeout=120)
        pump = ReportPump(self.coordinator, spec.attempt, monitor)
        group = None
        try:
            group = WorkerGroup(self.scaling.num_workers, use_gpu=self.scaling.use_gpu,
                                cpus_per_worker=self.scaling.cpus_per_worker,
                                gpus_per_worker=self.scaling.gpus_per_worker,
                                placement_strategy=self.scaling.placement_strategy,
                                name=f"{self.job}-{spec.attempt}", coordinator=self.coordinator,
                                **self._placement())
            pump.start()
            refs = group.execute_async(rank_main, fn, config, spec)
            try:
                group.get(refs)
            except KeyboardInterrupt:
                self._stop_ranks(group, refs)
                raise
        except KeyboardInterrupt:  # while the ranks ran, or while the group was starting
            raise TrainingInterrupted("stopped by Ctrl-C") from None
        finally:
            pump.stop()
            if group is not None:
                group.shutdown()

    def _placement(self) -> dict:
        if self.placement_group is None:
            return {}
        offset = max(0, self.placement_group.bundle_count - self.scaling.num_workers)
        return {"placement_group": self.placement_group, "bundle_offset": offset}

    def request_stop(self, reason: str) -> None:
        """Called from the driver's report thread: the ranks stop at their next step or collective, and
        the attempt's group.get raises; the runner ends the run there."""
        if self.coordinator is not None:
            self.coordinator.abort.remote(reason)

    def _stop_ranks(self, group, refs) -> None:
        """Ask every rank to stop (they notice at their next step or collective), wait a little, move on."""
        self.coordinator.abort.remote("stopped by the user (Ctrl-C)")
        try:
            group.get(refs, timeout_s=_STOP_GRACE_S)
        except BaseException:  # noqa: BLE001 - every outcome (aborted ranks, a second Ctrl-C) ends the same way
            pass

    def close(self) -> None:
        if self.coordinator is not None:
            import ray

            try:
                ray.kill(self.coordinator, no_restart=True)
            except Exception:  # already gone with a dead cluster: nothing to clean
                pass
            self.coordinator = None


def ensure_ray(address: str | None) -> None:
    """Join `address`, or start a local Ray whose workers can import the driver's modules."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        return
    # Workers start in other folders; modules the driver imports from its script's folder or the
    # working directory (a model class named in a job YAML) must be importable there too.
    paths = [os.getcwd()] + ([os.path.dirname(os.path.abspath(sys.argv[0]))] if sys.argv and sys.argv[0] else [])
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + ([saved] if saved else [])))
    try:
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def rank_main(fn, config, spec: SessionSpec):
    """What each Ray rank runs: its session around the user's function."""
    from dist.env import get_context as worker_context

    worker = worker_context()
    device = f"cuda:{worker.device_index}" if worker.use_gpu else "cpu"
    context = TrainContext(world_size=worker.world_size, world_rank=worker.rank, local_rank=worker.local_rank,
                           local_world_size=worker.local_world_size, node_rank=worker.node_rank, device=device,
                           experiment_name=spec.name, storage_path=spec.run_path, attempt=spec.attempt)
    # Ranks draw different dropout masks; DDP copies rank 0's initial weights, so init may differ.
    rng.seed_everything(spec.seed + worker.rank)
    session = Session(spec, context, worker.coordinator, CoordinatorChannel(worker.client, spec.attempt),
                      CoordinatorExchange(worker.client, worker.rank, worker.world_size),
                      check_abort=worker.client.check_abort)
    with prefixed_output(worker.rank), activate(session):
        call_training_function(fn, config)


def make_backend(scaling: ScalingConfig, name: str, address: str | None, placement_group=None):
    if scaling.num_workers == 0:
        if address:
            log.warning("address=%s is ignored: num_workers=0 trains in this process without Ray", address)
        return InProcessBackend()
    return RayBackend(scaling, name, address, placement_group)
