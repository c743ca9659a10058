"""What a sweep shows and leaves: a live table of trials, results.csv/jsonl, best_job.yaml, best.json, curves.png.

    runs/digits-sweep/results.csv       one row per trial: values, status, iterations, last and best metric,
    runs/digits-sweep/results.jsonl     best checkpoint, run folder, error
    runs/digits-sweep/best_job.yaml     the job with the best trial's values: `raygrad train` reproduces it
    runs/digits-sweep/best.json         the best trial, its value, config, checkpoint and job file
    runs/digits-sweep/curves.png        the metric of every trial against its iterations (matplotlib, optional)
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass

from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS

from .checkpoint import atomic_write_text
from .metrics_log import _enabled, is_finite_number
from .sweep_trial import CHECKPOINT_META, RUN_FOLDER

RESULTS_CSV, RESULTS_JSONL, BEST_JOB, BEST_JSON, CURVES = (
    "results.csv", "results.jsonl", "best_job.yaml", "best.json", "curves.png")
# Keys Tune adds to every result; the rest are what the trials reported.
TUNE_KEYS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint"}
FINISHED, STOPPED, ERROR, UNFINISHED = "finished", "stopped early", "error", "unfinished"


# --------------------------------------------------------------------------------------- the table
class SweepTable(tune.Callback):
    """A compact table of the trials, redrawn in place on a terminal (elsewhere printed as trials start
    and end, and at most every `interval_s`). Holds no stream, so Tune can pickle it with the sweep."""

    def __init__(self, metric: str, mode: str, keys: list[str], verbose: int = 1, interval_s: float = 5.0):
        self.metric, self.mode, self.keys, self.verbose, self.interval_s = metric, mode, keys, verbose, interval_s
        self.best: dict[str, float] = {}
        self._last_drawn, self._lines_drawn = 0.0, 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value, best = result.get(self.metric), self.best.get(trial.trial_id)
        if is_finite_number(value) and (best is None or _better(value, best, self.mode)):
            self.best[trial.trial_id] = value
        # A log file gets a table now and then; a terminal's is redrawn in place, so more often.
        if time.monotonic() - self._last_drawn >= (self.interval_s if _is_tty() else 6 * self.interval_s):
            self.draw(trials)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.draw(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.draw(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.draw(trials)

    # No table at the experiment's end: Tune has marked interrupted trials TERMINATED by then; the
    # sweep's summary follows instead.

    def draw(self, trials) -> None:
        if self.verbose < 1:
            return
        lines = self.lines(trials)
        out = sys.stdout
        if _is_tty() and self._lines_drawn:
            out.write(f"\x1b[{self._lines_drawn}F\x1b[J")  # back to the table's first line, clear below
        out.write("\n".join(lines) + "\n")
        out.flush()
        self._last_drawn, self._lines_drawn = time.monotonic(), len(lines) if _is_tty() else 0

    def lines(self, trials) -> list[str]:
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status.lower()] = counts.get(trial.status.lower(), 0) + 1
        header = ["trial", "status", "iter", *self.keys, self.metric, "best"]
        rows = [[trial.trial_id, trial.status.lower(), str(trial.last_result.get("training_iteration", 0)),
                 *(_fmt(trial.config.get(key)) for key in self.keys),
                 _fmt(trial.last_result.get(self.metric)), _fmt(self.best.get(trial.trial_id))] for trial in trials]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return [f"trials: {summary}"] + ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                                          for row in [header, *rows]]


def _is_tty() -> bool:
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _better(a, b, mode: str) -> bool:
    return a > b if mode == "max" else a < b


class TrialStatuses(tune.Callback):
    """Each trial's Tune status as the sweep's loop last saw it. Tune marks the trials still running
    TERMINATED when an interrupted sweep cleans up, and a restored trial's last result may lack its
    "done": this snapshot, taken every step before that, tells finished trials from unfinished ones."""

    def __init__(self):
        self.statuses: dict[str, str] = {}

    def on_step_end(self, iteration, trials, **info):
        self.statuses = {trial.trial_id: trial.status for trial in trials}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.statuses[trial.trial_id] = "TERMINATED"

    def on_trial_error(self, iteration, trials, trial, **info):
        self.statuses[trial.trial_id] = "ERROR"


# ---------------------------------------------------------------------------------- metric guard
class MetricGuard(tune.Stopper):
    """Ends the whole sweep once a trial has clearly reported without the sweep's metric: its first
    result lacks it (or, when the job also reports mid-epoch, its last). `missing` then holds the
    metrics the trial did report, for the error message."""

    def __init__(self, metric: str, mid_epoch_reports: bool):
        self.metric, self.mid_epoch_reports = metric, mid_epoch_reports
        self.seen: set[str] = set()
        self.missing: list[str] | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.metric in result:
            self.seen.add(trial_id)
        elif trial_id not in self.seen and self.missing is None and (not self.mid_epoch_reports or result.get("done")):
            self.missing = reported_metrics(result)
        return False

    def stop_all(self) -> bool:
        return self.missing is not None


def reported_metrics(result: dict) -> list[str]:
    return sorted(key for key in result if key not in TUNE_KEYS and not key.startswith("config/"))


# ------------------------------------------------------------------------------------------ results
@dataclass
class TrialRow:
    """One trial, as results.csv and results.jsonl hold it."""

    trial: str
    status: str
    iterations: int
    config: dict
    last: float | None
    best: float | None
    checkpoint: str
    run: str
    error: str

    def flat(self, metric: str) -> dict:
        return {"trial": self.trial, "status": self.status, "iterations": self.iterations, **self.config,
                metric: self.last, f"best_{metric}": self.best, "checkpoint": self.checkpoint, "run": self.run,
                "error": self.error}


def trial_rows(grid, metric: str, mode: str, planned, statuses: dict) -> list[TrialRow]:
    """A row per trial of a Tune ResultGrid. planned(config) -> (epochs, max_steps) the trial trains for;
    statuses: trial id -> Tune status (TrialStatuses)."""
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        history = _history(result, metric)
        best = (max if mode == "max" else min)(history) if history else None
        trial = metrics.get("trial_id") or os.path.basename(result.path).removeprefix("trial_")
        rows.append(TrialRow(
            trial=trial, status=_status(result, planned(result.config or {}), statuses.get(trial)),
            iterations=int(metrics.get("training_iteration", 0)), config=dict(result.config or {}),
            last=metrics.get(metric) if is_finite_number(metrics.get(metric)) else None,
            best=best, checkpoint=best_checkpoint_file(result, metric, mode) or "",
            run=os.path.join(result.path, RUN_FOLDER), error=_first_line(result.error)))
    return sorted(rows, key=lambda row: row.trial)


def _history(result, metric: str) -> list[float]:
    frame = result.metrics_dataframe
    if frame is None or metric not in frame:
        return []
    return [float(v) for v in frame[metric].tolist() if is_finite_number(v)]


def _status(result, planned: tuple, status: str | None) -> str:
    metrics = result.metrics or {}
    if result.error is not None or status == "ERROR":
        return ERROR
    ended = status == "TERMINATED" if status is not None else bool(metrics.get("done"))
    if not ended:
        return UNFINISHED
    epochs, max_steps = planned
    trained_out = ((epochs is not None and isinstance(metrics.get("epoch"), int) and metrics["epoch"] + 1 >= epochs)
                   or (max_steps is not None and isinstance(metrics.get("step"), int) and metrics["step"] >= max_steps))
    return FINISHED if trained_out else STOPPED


def best_checkpoint_file(result, metric: str, mode: str) -> str | None:
    """The raygrad checkpoint file inside the trial's best kept Tune checkpoint (by metric), else its latest."""
    scored = [(c, m[metric]) for c, m in (result.best_checkpoints or []) if is_finite_number(m.get(metric))]
    checkpoint = (max if mode == "max" else min)(scored, key=lambda cm: cm[1])[0] if scored else result.checkpoint
    if checkpoint is None:
        return None
    meta = os.path.join(checkpoint.path, CHECKPOINT_META)
    if not os.path.exists(meta):
        return None
    with open(meta) as f:
        return os.path.join(checkpoint.path, json.load(f)["file"])


def pick_best(rows: list[TrialRow], mode: str) -> TrialRow | None:
    scored = [row for row in rows if row.best is not None]
    if not scored:
        return None
    return (max if mode == "max" else min)(scored, key=lambda row: row.best)


def _first_line(error) -> str:
    if error is None:
        return ""
    text = str(error).strip().splitlines()
    return next((line for line in reversed(text) if line.strip()), type(error).__name__)[:300]


# ------------------------------------------------------------------------------------------- files
def write_results(folder: str, rows: list[TrialRow], metric: str) -> None:
    flat = [row.flat(metric) for row in rows]
    columns = list(dict.fromkeys(key for row in flat for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(flat)
    atomic_write_text(os.path.join(folder, RESULTS_CSV), buffer.getvalue())
    atomic_write_text(os.path.join(folder, RESULTS_JSONL), "".join(json.dumps(row) + "\n" for row in flat))


def write_best(folder: str, best: TrialRow, metric: str, mode: str, job: dict, sweep_name: str) -> str:
    """best_job.yaml (ready for `raygrad train`) and best.json; returns the YAML's path."""
    import yaml

    path = os.path.join(folder, BEST_JOB)
    values = ", ".join(f"{key}={_fmt(value)}" for key, value in best.config.items())
    header = (f"# The best trial of sweep {sweep_name!r}: {metric} {_fmt(best.best)} (mode {mode}), "
              f"trial {best.trial}\n#   {values}\n# `raygrad train {path}` trains it again (same values and seed).\n")
    atomic_write_text(path, header + yaml.safe_dump(job, sort_keys=False))
    summary = {"metric": metric, "mode": mode, "value": best.best, "trial": best.trial, "config": best.config,
               "checkpoint": best.checkpoint or None, "job": path, "run": best.run}
    atomic_write_text(os.path.join(folder, BEST_JSON), json.dumps(summary, indent=1) + "\n")
    return path


def plot_trials(grid, metric: str, path: str) -> str | None:
    """Every trial's metric against training_iteration, one line each; None without matplotlib or data."""
    if not _enabled("RAYGRAD_PLOT"):
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    drawn = 0
    for result in grid:
        frame = result.metrics_dataframe
        if frame is None or metric not in frame or "training_iteration" not in frame:
            continue
        points = [(x, y) for x, y in zip(frame["training_iteration"], frame[metric]) if is_finite_number(y)]
        if points:
            label = (result.metrics or {}).get("trial_id") or os.path.basename(result.path)
            axes.plot(*zip(*points), marker="o" if len(points) < 30 else None, markersize=3, label=label)
            drawn += 1
    if not drawn:
        return None
    axes.set_xlabel("training_iteration")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    if drawn <= 12:
        axes.legend(fontsize=7)
    figure.subplots_adjust(left=0.11, right=0.98, bottom=0.13, top=0.95)
    figure.savefig(path, dpi=90)
    return path


def summary_text(name: str, path: str, rows: list[TrialRow], best: TrialRow | None, metric: str, elapsed_s: float,
                 best_job: str | None, files: list[str]) -> str:
    counts = {status: sum(row.status == status for row in rows)
              for status in (FINISHED, STOPPED, ERROR, UNFINISHED)}
    rule = "-" * 72
    lines = [rule, f"sweep {name!r}: {len(rows)} trial(s) in {_duration(elapsed_s)}: "
             + ", ".join(f"{n} {status}" for status, n in counts.items() if n), rule]
    if best is not None:
        values = "  ".join(f"{key}={_fmt(value)}" for key, value in best.config.items())
        lines += [f"  best       {metric} {_fmt(best.best)}  trial {best.trial}", f"  values     {values}",
                  f"  checkpoint {best.checkpoint or 'none'}", f"  job        {best_job}   (raygrad train {best_job})"]
    lines += [f"  folder     {path}", f"  files      {', '.join(files)}", rule]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(math.ceil(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
