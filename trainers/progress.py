"""The driver's terminal output: a progress bar per epoch, a line per report, a summary at the end.

On a terminal the bar redraws in place:

    epoch 2/10 [##########----------] 120/300  loss 0.4123  1520 samples/s  ETA 0:12

Elsewhere (a log file, CI) the same text is printed as plain lines every RunConfig.log_every
steps. verbose=0 prints nothing; notes (restarts, skipped outputs) are printed at verbose >= 1.
"""
from __future__ import annotations

import math
import shutil
import sys
import time

from .metrics_log import is_finite_number

_BAR_WIDTH = 20
_HIDDEN_IN_LINE = {"iteration", "epoch", "step", "timestamp", "time_total_s"}
_TIMING = {"samples_per_s", "epoch_time_s", "step_time_s", "step_time_s_max"}  # shown in brackets at the end


class ProgressDisplay:
    def __init__(self, stream=None, verbose: int = 1, max_epochs: int | None = None, log_every: int = 10):
        self.stream = stream or sys.stdout
        self.verbose, self.max_epochs, self.log_every = verbose, max_epochs, log_every
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar_shown = False
        self._epoch_start: tuple | None = None  # (epoch, step, time) of the first progress seen in an epoch

    # ---------------------------------------------------------------------------------- events
    def progress(self, values: dict) -> None:
        if self.verbose < 1:
            return
        epoch, step, steps = values.get("epoch"), values.get("step"), values.get("steps")
        now = time.monotonic()
        if self._epoch_start is None or self._epoch_start[0] != epoch:
            self._epoch_start = (epoch, step or 0, now)
        line = self._bar_line(values, self._eta(step, steps, now))
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + line[:width].ljust(width))
            self._bar_shown = True
        elif isinstance(step, int) and (step % self.log_every == 0 or step == steps):
            self.stream.write(line + "\n")
        self.stream.flush()

    def report(self, row: dict, checkpoint: dict | None) -> None:
        if self.verbose < 1:
            return
        self._clear_bar()
        self.stream.write(report_line(row, self.max_epochs, checkpoint is not None) + "\n")
        self.stream.flush()
        self._epoch_start = None

    def note(self, message: str) -> None:
        if self.verbose < 1:
            return
        self._clear_bar()
        self.stream.write(message + "\n")
        self.stream.flush()

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((100, 20)).columns - 1) + "\r")
            self._bar_shown = False

    # ---------------------------------------------------------------------------------- text
    def _bar_line(self, values: dict, eta_s: float | None) -> str:
        parts = [_epoch_label(values.get("epoch"), self.max_epochs)]
        step, steps = values.get("step"), values.get("steps")
        if isinstance(step, int) and isinstance(steps, int) and steps > 0:
            done = min(_BAR_WIDTH, round(_BAR_WIDTH * step / steps))
            parts.append(f"[{'#' * done}{'-' * (_BAR_WIDTH - done)}] {step}/{steps}")
        elif step is not None:
            parts.append(f"step {step}")
        if is_finite_number(values.get("loss")):
            parts.append(f"loss {values['loss']:.4f}")
        if is_finite_number(values.get("samples_per_s")):
            parts.append(f"{values['samples_per_s']:.0f} samples/s")
        if eta_s is not None:
            parts.append(f"ETA {format_duration(eta_s)}")
        return "  ".join(parts)

    def _eta(self, step, steps, now) -> float | None:
        if not (isinstance(step, int) and isinstance(steps, int)) or self._epoch_start is None:
            return None
        _, first_step, first_time = self._epoch_start
        if step <= first_step or now <= first_time:
            return None
        return (steps - step) * (now - first_time) / (step - first_step)


def report_line(row: dict, max_epochs: int | None = None, checkpointed: bool = False) -> str:
    """One line per report: where, the metrics, the pace, and whether a checkpoint was written."""
    head = _epoch_label(row.get("epoch"), max_epochs) if "epoch" in row else f"iteration {row.get('iteration')}"
    if "step" in row:
        head += f" step {row['step']}"
    parts = [head + ":"] + [f"{key} {_format_value(value)}" for key, value in row.items()
                            if key not in _HIDDEN_IN_LINE and key not in _TIMING]
    pace = []
    seconds = row.get("epoch_time_s")
    if is_finite_number(seconds):
        pace.append(format_duration(seconds) if seconds >= 60 else f"{seconds:.1f} s")
    if is_finite_number(row.get("samples_per_s")):
        pace.append(f"{row['samples_per_s']:.0f} samples/s")
    if pace:
        parts.append(f"({', '.join(pace)})")
    return "  ".join(parts + (["[checkpoint]"] if checkpointed else []))


def summary_text(status: str, name: str, run_path: str, elapsed_s: float, history: list[dict],
                 best: dict | None, restarts: int, workers: int, files: list[str]) -> str:
    """The one-screen summary printed when a run ends."""
    last = history[-1] if history else {}
    rule = "-" * 72
    lines = [rule, f"run {name!r} {status} in {format_duration(elapsed_s)}", rule,
             f"  folder     {run_path}",
             f"  progress   {_epochs_done(last)}{len(history)} report(s); "
             f"{f'{workers} Ray worker(s)' if workers else 'in-process'}; {restarts} restart(s)"]
    shown = {k: v for k, v in last.items() if k not in _HIDDEN_IN_LINE and k not in _TIMING}
    if shown:
        lines.append("  final      " + "  ".join(f"{k} {_format_value(v)}" for k, v in shown.items()))
    if best is not None:
        lines.append(f"  best       {best['path']}")
    if files:
        lines.append("  files      " + ", ".join(files))
    lines.append(rule)
    return "\n".join(lines)


def _epochs_done(last: dict) -> str:
    text = f"epoch {last['epoch'] + 1}, " if isinstance(last.get("epoch"), int) else ""
    return text + (f"step {last['step']}, " if isinstance(last.get("step"), int) else "")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _epoch_label(epoch, max_epochs) -> str:
    if not isinstance(epoch, int):
        return "epoch ?"
    return f"epoch {epoch + 1}/{max_epochs}" if max_epochs else f"epoch {epoch + 1}"


def _format_value(value) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)

