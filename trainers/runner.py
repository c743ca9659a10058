"""train_loop: run a training function on every rank, restart it from checkpoints, return a Result.

    def train_fn(config): ...                        # uses trainers.session inside
    result = train_loop(train_fn, {"lr": 1e-3}, scaling=ScalingConfig(num_workers=2),
                        run=RunConfig(name="mnist", max_epochs=5), datasets={"train": Dataset("train.parquet")})

The run lives in RunConfig.storage_path/name: checkpoints/, metrics.jsonl, metrics.csv, tensorboard/,
curves.png. Rerunning with the same name resumes from its latest valid checkpoint (resume=False
moves its checkpoints and metrics aside and starts over). When a rank fails, the whole group is torn down and
started again from the latest checkpoint, up to FailureConfig.max_failures times (-1: no limit).
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field, replace

from .backend import make_backend
from .checkpoint import Checkpoint, CheckpointManager
from .config import RunConfig, ScalingConfig
from .errors import ConfigError, SessionError, TrainingFailedError, TrainingInterrupted
from .metrics_log import CSV, JSONL, PLOT, TENSORBOARD_DIR
from .monitor import RunMonitor
from .session import RESERVED_KEY, SessionSpec
from . import session as session_module

CHECKPOINTS = "checkpoints"


@dataclass
class Result:
    """What a finished run leaves: rank 0's last metrics, every report's metrics, the kept checkpoints.

    error is None for a completed run (failed runs raise TrainingFailedError instead).
    """

    metrics: dict
    metrics_history: list[dict]
    best_checkpoint: Checkpoint | None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    path: str = ""
    error: BaseException | None = None

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The latest checkpoint (Ray Train's Result.checkpoint)."""
        return self.checkpoints[-1] if self.checkpoints else None

    @property
    def best_checkpoints(self) -> list[tuple[Checkpoint, dict]]:
        """(checkpoint, its metrics) for every kept checkpoint, oldest first (Ray Train's name)."""
        return [(checkpoint, checkpoint.metrics) for checkpoint in self.checkpoints]

    def get_best_checkpoint(self, metric: str, mode: str) -> Checkpoint | None:
        """The kept checkpoint with the lowest (mode="min") or highest ("max") reported `metric`."""
        if mode not in ("min", "max"):
            raise ValueError(f"get_best_checkpoint: mode must be 'min' or 'max', got {mode!r}")
        scored = [c for c in self.checkpoints if isinstance(c.metrics.get(metric), (int, float))]
        if not scored:
            known = sorted({key for c in self.checkpoints for key in c.metrics})
            raise ValueError(f"get_best_checkpoint: no kept checkpoint was reported with metric {metric!r}; "
                             f"their metrics are {known}")
        return (min if mode == "min" else max)(scored, key=lambda c: c.metrics[metric])

    @property
    def metrics_dataframe(self):
        """metrics_history as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Result.metrics_dataframe needs pandas (pip install pandas); "
                              "Result.metrics_history holds the same rows as dicts") from None
        return pandas.DataFrame(self.metrics_history)


def train_loop(fn, config=None, *, scaling: ScalingConfig | None = None, run: RunConfig | None = None,
               datasets: dict | None = None, resume: bool = True, address: str | None = None,
               on_report=None, placement_group=None, resume_from_checkpoint: Checkpoint | None = None) -> Result:
    """Run `fn(config)` (or `fn()`) on every rank and return the run's Result.

    scaling: num_workers=0 runs fn in this process without Ray; >= 1 on that many Ray workers (Ray is
        started locally unless running; `address` joins an existing cluster, e.g. "auto").
    run: name, storage_path, seed, checkpoint and failure policy. On a multi-node cluster the
        storage_path must be a filesystem every node sees (rank 0 writes checkpoints there).
    datasets: name -> dist.data.Dataset; ranks read their shard with session.get_dataset_shard(name).
    resume: continue from the run folder's latest valid checkpoint; False starts over (the earlier
        checkpoints and metrics files move to a sibling folder named with a timestamp, never deleted).
    on_report: callable(row, checkpoint) called on the driver after each report is recorded, with rank
        0's metrics row (as written to metrics.jsonl) and the Checkpoint written with it (or None);
        returning True stops the run there: the ranks stop, nothing is retried, and train_loop returns
        (a sweep's scheduler stopping a trial). It runs on the training thread in-process and on the
        report thread under Ray; reports that arrive after a stop are recorded but not passed on.
    placement_group: start the Ray workers in the last num_workers bundles of this existing placement
        group (a Ray Tune trial's) instead of reserving one of their own.
    resume_from_checkpoint: a Checkpoint (another run's, or Checkpoint.from_directory) that
        session.get_checkpoint() returns while this run has none of its own; the data starts afresh.

    Raises TrainingFailedError (with every failed rank's error) after more than max_failures failed
    attempts, TrainingInterrupted on Ctrl-C (every rank stopped, checkpoints kept).
    """
    scaling, run = _check_configs(scaling, run)
    datasets = _check_inputs(fn, datasets, resume)
    if resume_from_checkpoint is not None and not isinstance(resume_from_checkpoint, Checkpoint):
        raise ConfigError(f"resume_from_checkpoint must be a trainers.Checkpoint (e.g. an earlier Result.checkpoint "
                          f"or Checkpoint.from_directory(folder)), got {type(resume_from_checkpoint).__name__}")
    run_path = os.path.abspath(run.run_path)
    moved_to = _prepare_folder(run_path, resume)
    monitor = _HookedMonitor(run, run_path, scaling.num_workers, on_report=on_report)
    if moved_to:
        monitor.note(f"resume=False: the earlier run's checkpoints and metrics were moved to {moved_to}")
    spec = SessionSpec(name=run.name or os.path.basename(run_path), run_path=run_path,
                       checkpoint_folder=os.path.join(run_path, CHECKPOINTS), checkpoint_config=run.checkpoint_config,
                       datasets=datasets, seed=run.seed, log_every=run.log_every)
    backend = make_backend(scaling, spec.name, address, placement_group)
    monitor.backend = backend
    status = "failed"
    try:
        backend.start()
        _run_attempts(fn, config, spec, backend, monitor, run, resume_from_checkpoint)
        status = "stopped" if monitor.stop_requested else "finished"
    except TrainingInterrupted:
        status = "interrupted"
        raise
    finally:
        backend.close()
        monitor.finish(status, _manager(spec).best())
    return _result(spec, monitor)


class _HookedMonitor(RunMonitor):
    """The run's monitor, which also hands each recorded report to train_loop's on_report callback and
    asks the backend to stop when the callback returns True."""

    def __init__(self, *args, on_report=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hook, self.backend, self.stop_requested = on_report, None, False

    def on_report(self, record: dict) -> None:
        super().on_report(record)
        if self.hook is None or self.stop_requested:
            return  # after a stop, the reports still in flight are kept in the files but not passed on
        entry = record.get("checkpoint")
        if self.hook(self.log.rows[-1], None if entry is None else Checkpoint(**entry)):
            self.stop_requested = True
            self.note("stopping: on_report asked the run to stop")
            self.backend.request_stop("stopped by the driver (on_report)")


def _run_attempts(fn, config, spec: SessionSpec, backend, monitor: _HookedMonitor, run: RunConfig,
                  start: Checkpoint | None) -> None:
    max_failures = run.failure_config.max_failures
    failures = 0
    while True:
        checkpoint, data_state = _resume_point(spec, monitor)
        if checkpoint is None and start is not None:
            checkpoint = start  # its data progress belongs to another run's datasets: not restored
        monitor.start_attempt(failures, checkpoint)
        try:
            backend.run(fn, config, replace(spec, checkpoint=checkpoint, attempt=failures), monitor, data_state)
            return
        except KeyboardInterrupt:
            latest = _manager(spec).entries
            kept = max(latest, key=lambda e: e.step).path if latest else "none yet"
            raise TrainingInterrupted(f"training stopped by Ctrl-C; last checkpoint: {kept}. Run again with the "
                                      f"same name and storage_path to resume") from None
        except Exception as exc:  # noqa: BLE001 - any failure of an attempt is subject to the restart policy
            if monitor.stop_requested:
                return  # the ranks were told to stop, and did: not a failure
            if _is_unrecoverable(exc):
                raise
            failures += 1
            errors, headline = _describe_failure(exc)
            if max_failures != -1 and failures > max_failures:
                raise TrainingFailedError(
                    f"training failed after {failures} attempt(s) (FailureConfig.max_failures={max_failures}): "
                    f"{headline}\n{_format_errors(errors)}", errors, failures, spec.run_path) from exc
            monitor.note(f"attempt {failures} failed: {headline}; restarting from the latest checkpoint "
                         f"(failure {failures} of {'unlimited' if max_failures == -1 else max_failures})")


def _resume_point(spec: SessionSpec, monitor: RunMonitor):
    """(latest valid Checkpoint or None, its data progress or None); says so when the newest is damaged."""
    manager = _manager(spec)
    found = manager.latest()
    newest = max(manager.entries, key=lambda e: e.step, default=None)
    if found is None:
        if newest is not None:
            monitor.note(f"no usable checkpoint in {spec.checkpoint_folder} (all damaged); starting from scratch")
        return None, None
    checkpoint, state = found
    if newest is not None and newest.path != checkpoint.path:
        monitor.note(f"checkpoint {newest.path} is damaged; resuming from the one before it, {checkpoint.path}")
    data_state = (state.get(RESERVED_KEY) or {}).get("data_state")
    return checkpoint, data_state


def _manager(spec: SessionSpec) -> CheckpointManager:
    """A fresh view of the checkpoint index (rank 0 writes it from another process)."""
    return CheckpointManager(spec.checkpoint_folder, spec.checkpoint_config)


def _result(spec: SessionSpec, monitor: RunMonitor) -> Result:
    manager = _manager(spec)
    history = monitor.history
    return Result(metrics=history[-1] if history else {}, metrics_history=history, best_checkpoint=manager.best(),
                  checkpoints=sorted(manager.entries, key=lambda e: e.step), path=spec.run_path)


# ------------------------------------------------------------------------------- failures
def _is_unrecoverable(exc: BaseException) -> bool:
    """Failures that a restart cannot fix: the cluster cannot place the workers at all."""
    from dist.errors import PlacementTimeout

    return isinstance(exc, (PlacementTimeout, SessionError))


def _describe_failure(exc: BaseException) -> tuple[dict, str]:
    """(rank -> error text, one line naming the root cause)."""
    from dist.errors import WorkerGroupError

    if isinstance(exc, WorkerGroupError):
        rank = exc.root_ranks[0] if exc.root_ranks else min(exc.errors)
        last_line = (exc.errors[rank].strip().splitlines() or ["failed"])[-1]
        return dict(exc.errors), f"rank {rank}: {last_line}"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {0: text}, f"{type(exc).__name__}: {exc}".splitlines()[0]


def _format_errors(errors: dict) -> str:
    return "\n".join(f"--- rank {rank} ---\n{text.rstrip()}" for rank, text in sorted(errors.items()))


# --------------------------------------------------------------------------------- checks
def _check_configs(scaling, run) -> tuple[ScalingConfig, RunConfig]:
    scaling = ScalingConfig() if scaling is None else scaling
    run = RunConfig() if run is None else run
    if not isinstance(scaling, ScalingConfig):
        raise ConfigError(f"scaling must be a ScalingConfig, got {type(scaling).__name__}")
    if not isinstance(run, RunConfig):
        raise ConfigError(f"run must be a RunConfig, got {type(run).__name__}")
    return scaling, run


def _check_inputs(fn, datasets, resume) -> dict:
    from dist.data import Dataset

    if session_module._active is not None:
        raise SessionError("train_loop/Trainer.fit was called inside a running training function; they cannot "
                           "be nested")
    if not callable(fn):
        raise ConfigError(f"train_loop: fn must be a function fn(config), got {type(fn).__name__}")
    if not isinstance(resume, bool):
        raise ConfigError(f"train_loop: resume must be True or False, got {resume!r}")
    datasets = dict(datasets or {})
    for name, dataset in datasets.items():
        if not isinstance(name, str) or not isinstance(dataset, Dataset):
            raise ConfigError(f"datasets must map names to dist.data.Dataset objects; {name!r} maps to "
                              f"{type(dataset).__name__} (wrap it: Dataset(source))")
    return datasets


# What a run writes into its folder; resume=False moves these aside and leaves anything else (job.yaml).
RUN_OUTPUTS = (CHECKPOINTS, JSONL, CSV, TENSORBOARD_DIR, PLOT)


def _prepare_folder(run_path: str, resume: bool) -> str | None:
    """With resume=False, an earlier run's outputs are moved to a sibling folder (never deleted); returns it."""
    os.makedirs(run_path, exist_ok=True)
    earlier = [name for name in RUN_OUTPUTS if os.path.exists(os.path.join(run_path, name))]
    if resume or not earlier:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = f"{run_path}.{stamp}", 1
    while os.path.exists(aside):
        n += 1
        aside = f"{run_path}.{stamp}-{n}"
    os.makedirs(aside)
    for name in earlier:
        os.rename(os.path.join(run_path, name), os.path.join(aside, name))
    return aside
