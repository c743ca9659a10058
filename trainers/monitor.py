"""RunMonitor: the driver's end of a run. It receives rank 0's reports and progress (in-process calls,
or the ReportPump thread under Ray), keeps the metrics history, writes the metrics files, drives the
terminal display, and at the end draws the curves and prints the summary."""
from __future__ import annotations

import os
import threading
import time

from .checkpoint import Checkpoint
from .config import RunConfig
from .metrics_log import CSV, JSONL, PLOT, TENSORBOARD_DIR, MetricsLog, plot_curves, read_history
from .progress import ProgressDisplay, summary_text


class RunMonitor:
    """Thread-safe: reports may arrive on the pump thread while the main thread notes a restart."""

    def __init__(self, run: RunConfig, run_path: str, workers: int, stream=None):
        self.run, self.run_path, self.workers = run, run_path, workers
        self._lock = threading.RLock()
        self.display = ProgressDisplay(stream, run.verbose, run.max_epochs, run.log_every)
        self.log = MetricsLog(run_path, read_history(run_path), note=self.note)
        self.started = time.monotonic()
        self.restarts = 0

    @property
    def history(self) -> list[dict]:
        with self._lock:
            return list(self.log.rows)

    # ------------------------------------------------------------------------ from the ranks
    def on_report(self, record: dict) -> None:
        with self._lock:
            row = {**record["metrics"], "timestamp": round(time.time(), 3)}
            self.log.append(row)
            self.display.report(row, record.get("checkpoint"))

    def on_progress(self, progress: dict) -> None:
        with self._lock:
            self.display.progress(progress)

    # ------------------------------------------------------------------------ from the driver
    def note(self, message: str) -> None:
        with self._lock:
            self.display.note(message)

    def start_attempt(self, attempt: int, checkpoint: Checkpoint | None) -> None:
        """Forget the reports that the attempt will repeat: those after its checkpoint's iteration."""
        with self._lock:
            self.restarts = attempt
            iteration = checkpoint.metrics.get("iteration", 0) if checkpoint is not None else 0
            kept = [row for row in self.log.rows if row.get("iteration", 0) <= iteration]
            if len(kept) != len(self.log.rows):
                self.log.rewrite(kept)

    def finish(self, status: str, best: Checkpoint | None) -> None:
        """Close the logs, draw the curves, print the summary. `status`: finished, interrupted or failed."""
        with self._lock:
            self.log.close()
            plot_curves(self.log.rows, os.path.join(self.run_path, PLOT), note=self.note)
            if self.run.verbose >= 1:
                files = [name + ("/" if name == TENSORBOARD_DIR else "") for name in (JSONL, CSV, TENSORBOARD_DIR, PLOT)
                         if os.path.exists(os.path.join(self.run_path, name))]
                self.display.note(summary_text(
                    status, self.run.name or os.path.basename(self.run_path), self.run_path,
                    time.monotonic() - self.started, self.log.rows, None if best is None else {"path": best.path},
                    self.restarts, self.workers, files))
