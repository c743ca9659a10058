"""What a run leaves behind for people and tools: metrics.jsonl, metrics.csv, TensorBoard events, a PNG.

    runs/digits/metrics.jsonl      one JSON object per report(), appended as they arrive
    runs/digits/metrics.csv        the same rows, one column per metric name seen so far
    runs/digits/tensorboard/       event files (tensorboardX, imported on a background thread)
    runs/digits/curves.png         loss and metric curves, drawn at the end (matplotlib, optional)

TensorBoard and the plot are optional: when their library is missing the run says so in one line
and goes on. RAYGRAD_TENSORBOARD=0 or RAYGRAD_PLOT=0 in the environment turns them off.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import queue
import threading
from collections.abc import Callable

from .checkpoint import atomic_write_text

log = logging.getLogger("raygrad.trainers")

JSONL, CSV, TENSORBOARD_DIR, PLOT = "metrics.jsonl", "metrics.csv", "tensorboard", "curves.png"
# Bookkeeping columns: recorded, but neither scalars worth a TensorBoard chart nor curves.
NOT_CURVES = {"iteration", "step", "epoch", "timestamp", "time_total_s"}


def _enabled(variable: str) -> bool:
    return os.environ.get(variable, "1").strip().lower() not in ("0", "false", "no", "off")


def read_history(folder: str) -> list[dict]:
    """The rows of a run's metrics.jsonl (an unreadable last line, cut by a crash, is skipped)."""
    path = os.path.join(folder, JSONL)
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                log.warning("%s: skipping an unreadable line (a run stopped while writing it?)", path)
    return rows


class MetricsLog:
    """Writes rows to metrics.jsonl, metrics.csv and TensorBoard. `note` receives one-line notices."""

    def __init__(self, folder: str, history: list[dict] | None = None, note: Callable[[str], None] = log.info):
        self.folder, self.note = folder, note
        os.makedirs(folder, exist_ok=True)
        self.rows: list[dict] = []
        self.columns: list[str] = []
        self._tensorboard = _TensorBoardThread(os.path.join(folder, TENSORBOARD_DIR), note) if _enabled(
            "RAYGRAD_TENSORBOARD") else None
        self.rewrite(list(history or []))

    def append(self, row: dict) -> None:
        self.rows.append(row)
        with open(os.path.join(self.folder, JSONL), "a") as f:
            f.write(json.dumps(row) + "\n")
        new_columns = [key for key in row if key not in self.columns]
        if new_columns:  # the header changes: write the whole file again (it is small)
            self.columns += new_columns
            self._write_csv()
        else:
            with open(os.path.join(self.folder, CSV), "a", newline="") as f:
                csv.DictWriter(f, self.columns).writerow(row)
        if self._tensorboard is not None:
            self._tensorboard.put(row)

    def rewrite(self, rows: list[dict]) -> None:
        """Replace the files' contents with `rows` (after a restart drops the reports it repeats)."""
        self.rows = list(rows)
        self.columns = list(dict.fromkeys(key for row in self.rows for key in row))
        atomic_write_text(os.path.join(self.folder, JSONL), "".join(json.dumps(r) + "\n" for r in self.rows))
        self._write_csv()

    def _write_csv(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(os.path.join(self.folder, CSV), buffer.getvalue())

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


class _TensorBoardThread:
    """Writes TensorBoard scalars on its own thread: importing tensorboardX can take seconds (it loads
    PyTorch when that is installed), and the training display must not wait for it."""

    def __init__(self, logdir: str, note: Callable[[str], None]):
        self.logdir, self.note = logdir, note
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="raygrad-tensorboard", daemon=True)
        self._thread.start()

    def put(self, row: dict) -> None:
        self._queue.put(row)

    def close(self, timeout_s: float = 60.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            self.note("TensorBoard logs skipped: tensorboardX is not installed (pip install tensorboardX)")
            return
        writer = SummaryWriter(logdir=self.logdir)
        try:
            while (row := self._queue.get()) is not None:
                step = row.get("step", row.get("iteration", 0))
                for key, value in row.items():
                    if key not in NOT_CURVES and is_finite_number(value):
                        writer.add_scalar(key, value, global_step=step, walltime=row.get("timestamp"))
        finally:
            writer.close()


def plot_curves(rows: list[dict], path: str, note: Callable[[str], None] = log.info) -> str | None:
    """Draw the loss curves and each metric against the step (or iteration) into a PNG; its path,
    or None when there is nothing to draw or matplotlib is missing."""
    if not rows or not _enabled("RAYGRAD_PLOT"):
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        note("curves.png skipped: matplotlib is not installed (pip install matplotlib)")
        return None
    panels = _panels(rows)
    if not panels:
        return None
    figure = Figure(figsize=(5 * min(len(panels), 3), 3.6 * math.ceil(len(panels) / 3)))
    FigureCanvasAgg(figure)  # attaches an Agg canvas without touching pyplot's global backend
    x_key = "step" if any("step" in row for row in rows) else "iteration"
    for index, (title, keys) in enumerate(panels):
        axes = figure.add_subplot(math.ceil(len(panels) / 3), min(len(panels), 3), index + 1)
        for key in keys:
            points = [(row[x_key], row[key]) for row in rows if x_key in row and is_finite_number(row.get(key))]
            if points:
                axes.plot(*zip(*points), marker="o" if len(points) < 30 else None, markersize=3, label=key)
        axes.set_title(title)
        axes.set_xlabel(x_key)
        axes.grid(alpha=0.3)
        if len(keys) > 1:
            axes.legend(fontsize=8)
    # Fixed margins: tight_layout measures every tick label and costs more than drawing the figure.
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.1, top=0.92, wspace=0.28, hspace=0.45)
    figure.savefig(path, dpi=90)
    return path


def _panels(rows: list[dict]) -> list[tuple[str, list[str]]]:
    """One panel with every loss, one per other metric, then throughput and step times; at most 9."""
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in NOT_CURVES
            and k != "epoch_time_s" and any(is_finite_number(row.get(k)) for row in rows)]
    losses = [k for k in keys if "loss" in k]
    step_times = [k for k in keys if k.startswith("step_time")]
    throughput = [k for k in keys if k.endswith("per_s")]
    others = [k for k in keys if k not in losses + step_times + throughput]
    panels = [("loss", losses)] + [(k, [k]) for k in others] + [("samples/s", throughput)] + [
        ("step time (s)", step_times)]
    return [(title, panel_keys) for title, panel_keys in panels if panel_keys][:9]


def is_finite_number(value) -> bool:
    """A real int or float that is neither NaN nor infinite (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
