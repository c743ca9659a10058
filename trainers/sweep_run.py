"""Hyperparameter sweeps on Ray Tune: many raygrad training runs of one job, each with its own values.

    from trainers import sweep

    result = sweep("examples/vision/digits.yaml",
                   space={"optimizer.lr": {"loguniform": [1e-4, 1e-2]}, "model.kwargs.channels": {"grid": [16, 32]}},
                   metric="accuracy", mode="max", num_samples=2, max_concurrent=2, workers_per_trial=0,
                   scheduler={"type": "asha", "grace_period": 1})
    result.best_config      # {"optimizer.lr": 0.0031..., "model.kwargs.channels": 32}
    result.best_job         # runs/digits-sweep/best_job.yaml: `raygrad train` it to train the best again

From the command line: `raygrad sweep SWEEP.yaml` (trainers/sweep_config.py describes the file).

Each trial is a full raygrad run of the job (trainers/sweep_trial.py) with the resources for its
workers reserved by Tune, reporting every epoch so that ASHA, median stopping or PBT can act. The
sweep lives in storage_path/name: Tune's trial folders and state, and results.csv/jsonl,
best_job.yaml, best.json and curves.png (trainers/sweep_output.py). Running the same sweep again
continues it where it stopped (resume=False moves it aside and starts over).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError, TrainingFailedError
from .job import load_job, parse_job

if TYPE_CHECKING:  # sweep_output imports Ray Tune: only when a sweep runs
    from .sweep_output import TrialRow

SETTINGS_FILE = "sweep_settings.json"  # what the sweep was started with; a resumed sweep must match it


@dataclass
class SweepResult:
    """What a sweep leaves. `trials` are results.csv's rows; complete is False when it was interrupted
    (run it again to continue)."""

    path: str
    metric: str
    mode: str
    trials: list[TrialRow]
    best: TrialRow | None  # the best trial's row, by its best value
    best_job: str | None
    complete: bool

    @property
    def best_config(self) -> dict | None:
        return None if self.best is None else dict(self.best.config)

    @property
    def best_metric(self) -> float | None:
        return None if self.best is None else self.best.best

    @property
    def best_checkpoint(self) -> str | None:
        return None if self.best is None else (self.best.checkpoint or None)


def sweep(job, space: dict, metric: str, mode: str = "max", num_samples: int = 1, scheduler=None,
          max_concurrent: int | None = None, workers_per_trial: int | None = None, search: str = "random",
          name: str | None = None, storage_path: str | None = None, resume: bool = True, *, overrides=(),
          callbacks=(), verbose: int = 1, address: str | None = None) -> SweepResult:
    """Train the job once per trial with values from `space`, and find the best by `metric`.

    job: a job YAML path or a job dict (as in trainers.job); overrides: `key=value` strings set first.
    space: dotted job key -> {grid|choice: [...]}, {uniform|loguniform|randint: [low, high]}, a fixed
        value, or a Ray Tune domain (trainers/sweep_space.py).
    metric, mode: what the trials report (e.g. "accuracy", "max"; "eval_loss", "min").
    num_samples: samples of the space (each grid combination is tried num_samples times).
    scheduler: None (every trial trains to the end), "asha", "median", "pbt", or {type: ..., options},
        or a Tune TrialScheduler. Times count epochs (grace_period, max_t, perturbation_interval).
    max_concurrent: trials at a time (default: as many as the cluster's resources allow).
    workers_per_trial: Ray workers per trial (0: in the trial's own process); default the job's
        scaling.num_workers. A trial reserves 1 CPU for itself plus its workers' bundles.
    search: "random" (sample; grid keys are tried exhaustively), "grid" (every value of every key;
        choices become grids), or "optuna" (Optuna's TPE; needs `pip install optuna`).
    name, storage_path: the sweep's folder is storage_path/name (default: the job's run.storage_path,
        and "<job name>-sweep").
    resume: continue the sweep found in that folder; False moves it aside (never deleted) and starts over.
    callbacks: extra ray.tune.Callback objects. verbose: 0 silent, 1 the trial table and a summary.
    address: a Ray cluster to join (default: this one, or a new local one).

    Raises ConfigError before any trial starts for a bad space, scheduler or job, and after the first
    results when the trials do not report `metric`; TrainingFailedError when every trial failed.
    """
    from .backend import ensure_ray
    from .sweep_output import MetricGuard, SweepTable, TrialStatuses
    from .sweep_space import make_scheduler, parse_space

    job = _load_job(job, overrides)
    _check_args(metric, mode, num_samples, max_concurrent, workers_per_trial, resume, verbose)
    workers = job["scaling"]["num_workers"] if workers_per_trial is None else workers_per_trial
    _check_trial_job(job, workers)
    param_space = parse_space(space, job, search)
    tune_scheduler = make_scheduler(scheduler, job, param_space)
    name = _check_name(name or f"{job['name'] or 'run'}-sweep")
    storage = os.path.abspath(storage_path or job["run"]["storage_path"])
    folder = os.path.join(storage, name)
    settings = {"job": job, "space": space, "metric": metric, "mode": mode, "num_samples": num_samples,
                "scheduler": scheduler, "search": search, "workers_per_trial": workers}
    guard, statuses = MetricGuard(metric, job["checkpoint"]["every_n_steps"] is not None), TrialStatuses()
    table = SweepTable(metric, mode, list(param_space), verbose)
    run_config = _run_config(name, storage, metric, mode, tune_scheduler, guard, [table, statuses, *callbacks])
    tune_config = _tune_config(metric, mode, num_samples, tune_scheduler, search, max_concurrent, job["run"]["seed"])
    started = time.monotonic()
    with _quiet_tune(verbose):
        ensure_ray(address)
        tuner = _tuner(_trainable(job, workers, folder), folder, resume, settings, param_space, tune_config,
                       run_config)
        grid = tuner.fit()
    return _finish(grid, job, workers, folder, name, metric, mode, guard, statuses.statuses, verbose,
                   time.monotonic() - started)


# ------------------------------------------------------------------------------------------ checks
def _load_job(job, overrides) -> dict:
    if isinstance(job, (str, os.PathLike)):
        return load_job(job, list(overrides))
    if not isinstance(job, dict):
        raise ConfigError(f"sweep: job must be a job YAML path or a job dict, got {type(job).__name__}")
    parsed = parse_job(job, list(overrides))
    # Trials run in other processes and folders: relative model and data paths must not depend on them.
    parsed["base_dir"] = os.path.abspath(parsed["base_dir"] or os.getcwd())
    return parsed


def _check_args(metric, mode, num_samples, max_concurrent, workers_per_trial, resume, verbose) -> None:
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"sweep: metric must be the name of a reported metric (e.g. 'accuracy'), got {metric!r}")
    if mode not in ("max", "min"):
        raise ConfigError(f"sweep: mode must be 'max' or 'min', got {mode!r}")
    for label, value, minimum, optional in (("num_samples", num_samples, 1, False),
                                            ("max_concurrent", max_concurrent, 1, True),
                                            ("workers_per_trial", workers_per_trial, 0, True),
                                            ("verbose", verbose, 0, False)):
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"sweep: {label} must be an integer >= {minimum}, got {value!r}")
    if not isinstance(resume, bool):
        raise ConfigError(f"sweep: resume must be True or False, got {resume!r}")


def _check_trial_job(job: dict, workers: int) -> None:
    """Build the Trainer of a trial here, so a missing data file or a bad model fails before any trial."""
    from .build import trainer_from
    from .sweep_trial import trial_job

    trainer_from(trial_job(job, {}, workers))


def _check_name(name) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
        raise ConfigError(f"sweep: name must be 1-100 letters, digits, '_', '.' or '-', got {name!r}")
    return name


def trial_resources(job: dict, workers: int):
    """Tune reserves each trial's resources as one placement group: bundle 0 for the trial itself (and
    its training, in-process), then one bundle per Ray worker, which the trial's WorkerGroup fills."""
    from ray import tune

    scaling = job["scaling"]
    if workers == 0:
        return tune.PlacementGroupFactory([{"CPU": scaling["cpus_per_worker"]}])
    worker = {"CPU": scaling["cpus_per_worker"], **({"GPU": scaling["gpus_per_worker"]} if scaling["use_gpu"] else {})}
    return tune.PlacementGroupFactory([{"CPU": 1}] + [worker] * workers, strategy=scaling["placement_strategy"])


def _trainable(job: dict, workers: int, folder: str):
    """raygrad_trial with the job (shipped once through Ray's object store) and the trial's resources."""
    from ray import tune

    from .sweep_trial import TrialSpec, raygrad_trial

    return tune.with_resources(tune.with_parameters(raygrad_trial, spec=TrialSpec(job, workers, folder)),
                               trial_resources(job, workers))


def _tune_config(metric, mode, num_samples, scheduler, search, max_concurrent, seed):
    from ray import tune

    from .sweep_space import make_searcher

    return tune.TuneConfig(metric=metric, mode=mode, num_samples=num_samples, scheduler=scheduler,
                           search_alg=make_searcher(search, metric, mode, seed, max_concurrent), reuse_actors=False,
                           max_concurrent_trials=max_concurrent if search == "optuna" else None,
                           trial_dirname_creator=_trial_dirname)


def _checkpoints_to_keep(scheduler) -> int:
    """Per trial, Tune keeps its best checkpoints by the metric and always its latest; PBT clones the
    latest of other trials too, which must not be deleted before it is copied."""
    from ray.tune.schedulers import PopulationBasedTraining

    return 5 if isinstance(scheduler, PopulationBasedTraining) else 2


def _trial_dirname(trial) -> str:
    from .sweep_trial import trial_dirname

    return trial_dirname(trial.trial_id)


def _run_config(name, storage, metric, mode, scheduler, guard, callbacks):
    """Tune's RunConfig: our folder, no Tune console output, the metric guard as its stopper, and
    Tune's result.json/progress.csv per trial (results.csv is read from them). Not Tune's TensorBoard
    logger: tensorboardX may import PyTorch, and each raygrad run writes its own."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return tune.RunConfig(
        name=name, storage_path=storage, verbose=0, stop=guard,
        callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback()],
        failure_config=tune.FailureConfig(max_failures=0),  # each raygrad run has its own restart policy
        checkpoint_config=tune.CheckpointConfig(num_to_keep=_checkpoints_to_keep(scheduler),
                                                checkpoint_score_attribute=metric, checkpoint_score_order=mode))


@contextlib.contextmanager
def _quiet_tune(verbose: int):
    """Tune without usage stats, its own console output and auto loggers; our MetricGuard checks the
    metric (Tune's strict check would also refuse raygrad's mid-epoch reports)."""
    variables = {"RAY_USAGE_STATS_ENABLED": "0", "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
                 "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                 "RAY_AIR_NEW_OUTPUT": "0"}  # the new engine prints its header even at verbose=0
    saved = {key: os.environ.get(key) for key in variables}
    loggers = [logging.getLogger(n) for n in ("ray.tune", "ray.train", "ray.air")]
    levels = [lg.level for lg in loggers]
    os.environ.update(variables)
    for lg in loggers:
        lg.setLevel(logging.WARNING if verbose >= 2 else logging.ERROR)
    try:
        with warnings.catch_warnings():
            # Actor reuse needs Trainable.reset_config; a raygrad trial is a fresh run in a fresh process.
            warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# ------------------------------------------------------------------------------------------ resume
def _tuner(trainable, folder, resume, settings, param_space, tune_config, run_config):
    """A new Tuner, or the sweep found in `folder` restored with its unfinished and failed trials to run."""
    from ray import tune

    if os.path.exists(folder) and not resume:
        os.rename(folder, _aside(folder))
    if resume and tune.Tuner.can_restore(folder):
        _check_same_settings(folder, settings)
        tuner = tune.Tuner.restore(folder, trainable, resume_unfinished=True, resume_errored=True)
        # The restored RunConfig is the one pickled when the sweep started, its callbacks and stopper
        # with their old state: this run's fresh ones replace them.
        restored = tuner._local_tuner.get_run_config()
        restored.callbacks, restored.stop = run_config.callbacks, run_config.stop
        return tuner
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, SETTINGS_FILE), "w") as f:
        f.write(_settings_text(settings))
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def _settings_text(settings: dict) -> str:
    return json.dumps(settings, indent=1, sort_keys=True, default=lambda value: type(value).__name__)


def _check_same_settings(folder: str, settings: dict) -> None:
    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.exists(path):
        return
    with open(path) as f:
        before = json.load(f)
    now = json.loads(_settings_text(settings))
    changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
    if changed:
        raise ConfigError(f"{folder} holds a sweep started with other settings ({', '.join(changed)} differ); "
                          "run with resume=False (--no-resume) to start over (the earlier sweep is moved aside), "
                          "or give this one another name")


def _aside(folder: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = f"{folder}.{stamp}", 1
    while os.path.exists(aside):
        n += 1
        aside = f"{folder}.{stamp}-{n}"
    return aside


# ------------------------------------------------------------------------------------------ output
def _finish(grid, job, workers, folder, name, metric, mode, guard, statuses, verbose, elapsed_s) -> SweepResult:
    """Check that the metric was reported, write the results, the best job and the curves, print a summary."""
    from . import sweep_output as out
    from .sweep_trial import trial_job

    def planned(config):
        return config.get("epochs", job["epochs"]), config.get("max_steps", job["max_steps"])

    rows = out.trial_rows(grid, metric, mode, planned, statuses)
    out.write_results(folder, rows, metric)
    _check_metric(grid, rows, metric, guard, folder)
    best = out.pick_best(rows, mode)
    best_job = None
    if best is not None:
        best_spec = trial_job(job, best.config, workers)
        best_spec["name"] = f"{name}-best"
        best_job = out.write_best(folder, best, metric, mode, best_spec, name)
    plot = out.plot_trials(grid, metric, os.path.join(folder, out.CURVES))
    complete = all(row.status != out.UNFINISHED for row in rows)
    if verbose >= 1:
        files = [out.RESULTS_CSV, out.RESULTS_JSONL] + ([out.BEST_JOB, out.BEST_JSON] if best else []) + (
            [out.CURVES] if plot else [])
        print(out.summary_text(name, folder, rows, best, metric, elapsed_s, best_job, files), flush=True)
        if not complete:
            print(f"sweep {name!r} was interrupted; run it again to continue its unfinished trials", flush=True)
    return SweepResult(folder, metric, mode, rows, best, best_job, complete)


def _check_metric(grid, rows, metric: str, guard, folder: str) -> None:
    from .sweep_output import ERROR, reported_metrics

    if guard.missing is not None:
        raise ConfigError(_missing_metric(metric, guard.missing))
    if rows and all(row.status == ERROR for row in rows):
        first = rows[0]
        raise TrainingFailedError(f"every trial of the sweep failed; trial {first.trial}: {first.error} (trial "
                                  f"folders under {folder})", run_path=folder)
    reported = [r.metrics for r in grid if r.metrics and len(reported_metrics(r.metrics)) > 0]
    if reported and not any(row.best is not None for row in rows):
        raise ConfigError(_missing_metric(metric, reported_metrics(reported[0])))


def _missing_metric(metric: str, reported: list) -> str:
    import difflib

    close = difflib.get_close_matches(metric, reported, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (f"the trials never report metric '{metric}'{hint}. They report: {', '.join(reported) or 'nothing'}. "
            "Set the sweep's metric to one of them (evaluation metrics need the job's data.eval and metrics)")
