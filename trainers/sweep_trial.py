"""One trial of a sweep: a full raygrad training run inside a Ray Tune trial, reported to Tune every epoch.

The trial builds the Trainer from the sweep's job with its own values set, and trains it in its own
process (workers_per_trial=0) or on Ray workers started in the bundles Tune reserved for it. Each
report goes to Tune with the checkpoint raygrad wrote for it, packed as a directory:

    checkpoint_000004.safetensors       the raygrad checkpoint (model, optimizer, scheduler, RNG, data)
    metrics.jsonl                       the run's metrics up to this report
    raygrad_checkpoint.json             step, epoch, metrics, and the trial values it was trained with

When Tune starts a trial from a checkpoint (a resumed sweep, or PBT cloning a better trial), the
trial's run folder is set up again from that directory, with the optimizer and LR scheduler
states rewritten for the trial's (perturbed) values, and the run resumes from it. When Tune's
scheduler stops the trial, the run is told to stop, its workers are shut down, and the trial ends.
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import json
import logging
import numbers
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass

from .job import parse_job, set_path

log = logging.getLogger("raygrad.sweep")

RUN_FOLDER = "run"  # the trial's raygrad run, inside Tune's trial folder
CHECKPOINT_META = "raygrad_checkpoint.json"
_EXIT_GRACE_S = 30.0  # how long a stopped trial's process waits for its run to shut its workers down


@dataclass
class TrialSpec:
    """What every trial needs besides its config (picklable; Tune ships it to the trial actors)."""

    job: dict      # the sweep's job: validated, base_dir absolute
    workers: int   # Ray workers per trial; 0 trains in the trial's own process
    folder: str    # the sweep's folder (storage_path/name), which holds a folder per trial


def trial_dirname(trial_id: str) -> str:
    """A trial's folder name in the sweep's folder (Tune's default holds every value: paths grow too long)."""
    return f"trial_{trial_id}"


def trial_job(base: dict, overrides: dict, workers: int) -> dict:
    """The job with a trial's values set and validated (also how best_job.yaml is made)."""
    job = copy.deepcopy(base)
    for key, value in overrides.items():
        set_path(job, key, value)
    job["scaling"]["num_workers"] = workers
    return parse_job(job)


def raygrad_trial(config: dict, spec: TrialSpec) -> None:
    """The function Tune runs for each trial; config maps dotted job keys to this trial's values."""
    from ray import tune

    from .build import trainer_from

    for name in ("ray.tune", "ray.train"):  # Tune's notes on every checkpoint, in every trial's output
        logging.getLogger(name).setLevel(logging.WARNING)
    overrides = dict(config)
    job = trial_job(spec.job, overrides, spec.workers)
    # Into the trial's folder in the sweep's storage (tune.get_context().get_trial_dir() is a staging
    # folder that Tune copies from, a copy per report; the folder name is the sweep's trial_dirname).
    trial_dir = os.path.join(spec.folder, trial_dirname(tune.get_context().get_trial_id()))
    job["name"], job["run"]["storage_path"], job["run"]["verbose"] = RUN_FOLDER, trial_dir, 0
    run_path = os.path.join(trial_dir, RUN_FOLDER)
    start_run_folder(run_path, tune.get_checkpoint(), overrides)
    trainer = trainer_from(job, resume=True)
    reporter = TuneReporter(run_path, overrides)
    with _process_waits_for_run():
        trainer.fit(on_report=reporter, placement_group=_trial_placement_group(spec.workers))
    if reporter.error is not None:
        raise reporter.error
    if reporter.stopped:
        raise SystemExit(0)  # what Tune's own report raises in a stopped trial: the trial thread ends quietly


class TuneReporter:
    """train_loop's on_report for a trial: hands each report to Tune and says whether to stop.

    Tune's report blocks until the sweep's driver has processed the result, and raises SystemExit
    when the scheduler stops the trial. It may run on the run's report thread (Ray workers), where an
    exception would be lost: every outcome is kept here and acted on by the trial's own thread.
    """

    def __init__(self, run_path: str, overrides: dict):
        self.run_path, self.overrides = run_path, overrides
        self.stopped, self.error = False, None

    def __call__(self, row: dict, checkpoint) -> bool:
        from ray import tune

        metrics = {key: value for key, value in row.items() if key != "timestamp"}  # Tune writes its own
        try:
            with tempfile.TemporaryDirectory(prefix=".tune-checkpoint-", dir=self.run_path) as folder:
                packed = checkpoint is not None and self._pack(checkpoint, folder)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if packed else None)
        except SystemExit:
            self.stopped = True
        except Exception as exc:  # noqa: BLE001 - re-raised on the trial's thread after the run stops
            self.error = exc
        return self.stopped or self.error is not None

    def _pack(self, checkpoint, folder: str) -> bool:
        """Put the checkpoint file (hard-linked when possible: Tune copies it anyway), the metrics so far
        and what Tune needs to restart from it into `folder`; False if the file is already pruned."""
        from .metrics_log import JSONL

        if not os.path.exists(checkpoint.path):
            log.warning("checkpoint %s was pruned before it could be reported to Tune", checkpoint.path)
            return False
        name = os.path.basename(checkpoint.path)
        try:
            os.link(checkpoint.path, os.path.join(folder, name))
        except OSError:  # another filesystem, or no hard links there
            shutil.copyfile(checkpoint.path, os.path.join(folder, name))
        if os.path.exists(os.path.join(self.run_path, JSONL)):  # copied: the run keeps appending to it
            shutil.copyfile(os.path.join(self.run_path, JSONL), os.path.join(folder, JSONL))
        meta = {"file": name, "step": checkpoint.step, "epoch": checkpoint.epoch, "metrics": checkpoint.metrics,
                "overrides": self.overrides}
        with open(os.path.join(folder, CHECKPOINT_META), "w") as f:
            json.dump(meta, f, indent=1)
        return True


# ------------------------------------------------------------------------------------------ restore
def start_run_folder(run_path: str, tune_checkpoint, overrides: dict) -> None:
    """A clean run folder for the trial, holding Tune's checkpoint (if any) as its latest one.

    The folder is scratch: Tune's checkpoints are the trial's record, and a restarted trial must
    resume from the one Tune gives it (perhaps another trial's, under PBT), not from what it left.
    """
    from .checkpoint import CheckpointManager
    from .metrics_log import JSONL
    from .runner import CHECKPOINTS

    if os.path.exists(run_path):
        shutil.rmtree(run_path)
    os.makedirs(run_path)
    if tune_checkpoint is None:
        return
    import tensor

    with tune_checkpoint.as_directory() as folder:
        with open(os.path.join(folder, CHECKPOINT_META)) as f:
            meta = json.load(f)
        state = tensor.load(os.path.join(folder, meta["file"]))
        retune(state, meta["overrides"], overrides)
        CheckpointManager(os.path.join(run_path, CHECKPOINTS)).save(state, meta["step"], meta["epoch"],
                                                                      meta["metrics"])
        if os.path.exists(os.path.join(folder, JSONL)):
            shutil.copyfile(os.path.join(folder, JSONL), os.path.join(run_path, JSONL))


def retune(state: dict, old: dict, new: dict) -> None:
    """Rewrite a checkpoint's optimizer and LR scheduler states from the values it was trained with (`old`)
    to a trial's (`new`): loading them would otherwise bring the old learning rate back. The lr is
    scaled by new/old, so a schedule in progress keeps its shape; optimizer.kwargs values are set.
    (Model values such as dropout take effect as the model is rebuilt; values that change a
    parameter's shape cannot continue from another trial's weights.)"""
    groups = (state.get("optimizer") or {}).get("param_groups", [])
    old_lr, new_lr = old.get("optimizer.lr"), new.get("optimizer.lr")
    if _is_number(old_lr) and _is_number(new_lr) and old_lr > 0 and new_lr != old_lr:
        ratio = new_lr / old_lr
        for group in groups:
            for key in ("lr", "initial_lr"):
                if _is_number(group.get(key)):
                    group[key] *= ratio
        _scale_schedule(state.get("scheduler"), ratio)
    prefix = "optimizer.kwargs."
    for key, value in new.items():
        if key.startswith(prefix) and old.get(key) != value:
            for group in groups:
                if key[len(prefix):] in group:
                    group[key[len(prefix):]] = value


def _scale_schedule(scheduler, ratio: float) -> None:
    if not isinstance(scheduler, dict):
        return
    for key in ("base_lrs", "_last_lr"):
        if isinstance(scheduler.get(key), list):
            scheduler[key] = [v * ratio if _is_number(v) else v for v in scheduler[key]]
    for inner in scheduler.get("_schedulers") or []:  # SequentialLR / ChainedScheduler hold others
        _scale_schedule(inner, ratio)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------ process
def _trial_placement_group(workers: int):
    """The placement group Tune reserved for this trial (bundle 0: the trial; 1..N: its workers)."""
    if workers == 0:
        return None
    from ray.util import get_current_placement_group

    pg = get_current_placement_group()
    if pg is None:
        log.warning("trial runs outside a placement group; its workers reserve their own resources")
    return pg


_idle = threading.Event()
_idle.set()
_exit_hook = []


@contextlib.contextmanager
def _process_waits_for_run():
    """Tune ends a stopped trial's actor process right after telling the trial to stop, while this
    thread is still stopping the run's workers; the exit waits (atexit runs first) for that to end."""
    if not _exit_hook:
        atexit.register(_idle.wait, _EXIT_GRACE_S)
        _exit_hook.append(True)
    _idle.clear()
    try:
        yield
    finally:
        _idle.set()
