"""Evaluation metrics by name, computed exactly across ranks.

    metrics=["accuracy", "roc_auc", my_metric]      # my_metric(outputs, targets) -> float

Every metric sees the model's raw outputs (logits for classifiers, values for regressors) and the
targets as NumPy arrays:

    outputs (N, C) with targets (N,) class ids   multi-class: accuracy, top5_accuracy, log_loss, roc_auc (C == 2)
    outputs (N,) or (N, 1) with targets (N,) 0/1  binary (logit > 0 is class 1): accuracy, log_loss, roc_auc
    outputs (N, ...) with targets of that shape   regression: mse, mae

Metrics that are means over samples (accuracy, top5_accuracy, mse, mae, log_loss) keep a (sum,
count) per rank; the ranks' sums are added, so the result equals the metric over the whole
evaluation set. Metrics that need every sample at once (roc_auc, any callable) keep the outputs
and targets, which are gathered from all ranks before the metric runs.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class Metric:
    """A named metric: either `batch_sums(outputs, targets) -> (sum, count)` or `whole(outputs, targets) -> float`."""

    name: str
    batch_sums: Callable | None = None
    whole: Callable | None = None

    @property
    def needs_all_samples(self) -> bool:
        return self.whole is not None


# ------------------------------------------------------------------------------- the built-in ones
def _as_binary_logits(outputs: np.ndarray) -> np.ndarray | None:
    """(N,) logits of class 1 for binary outputs: (N,), (N, 1), or (N, 2) (the logit difference)."""
    if outputs.ndim == 1:
        return outputs
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return outputs[:, 0]
    if outputs.ndim == 2 and outputs.shape[1] == 2:
        return outputs[:, 1] - outputs[:, 0]
    return None


def _predicted_class(outputs: np.ndarray) -> np.ndarray:
    if outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[1] == 1):
        return (outputs.reshape(-1) > 0).astype(np.int64)
    return outputs.argmax(axis=-1)


def _accuracy_sums(outputs, targets):
    predicted = _predicted_class(outputs)
    return float((predicted == targets.reshape(predicted.shape)).sum()), predicted.size


def _top5_sums(outputs, targets):
    if outputs.ndim != 2 or outputs.shape[1] < 5:
        raise ValueError(f"top5_accuracy needs outputs of shape (N, C) with C >= 5 classes, got {outputs.shape}")
    top5 = np.argpartition(-outputs, 4, axis=1)[:, :5]
    return float((top5 == targets.reshape(-1, 1)).any(axis=1).sum()), len(outputs)


def _regression_pair(outputs, targets, name):
    if outputs.size != targets.size:
        raise ValueError(f"{name}: outputs {outputs.shape} and targets {targets.shape} hold different numbers "
                         "of values")
    return outputs.reshape(-1).astype(np.float64), targets.reshape(-1).astype(np.float64)


def _mse_sums(outputs, targets):
    out, target = _regression_pair(outputs, targets, "mse")
    return float(np.square(out - target).sum()), out.size


def _mae_sums(outputs, targets):
    out, target = _regression_pair(outputs, targets, "mae")
    return float(np.abs(out - target).sum()), out.size


def _log_loss_sums(outputs, targets):
    outputs = outputs.astype(np.float64)
    logits = _as_binary_logits(outputs) if outputs.ndim == 1 or outputs.shape[-1] == 1 else None
    if logits is not None:
        y = targets.reshape(-1).astype(np.float64)
        # log(1 + e^-|z|) + max(z, 0) - y z: binary cross-entropy on logits without overflow
        losses = np.logaddexp(0.0, -np.abs(logits)) + np.maximum(logits, 0.0) - y * logits
        return float(losses.sum()), losses.size
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    picked = log_probs[np.arange(len(outputs)), targets.reshape(-1).astype(np.int64)]
    return float(-picked.sum()), picked.size


def roc_auc(outputs, targets) -> float:
    """Area under the ROC curve of a binary classifier (ties count half): the Mann-Whitney U statistic."""
    scores = _as_binary_logits(np.asarray(outputs, np.float64))
    if scores is None:
        raise ValueError(f"roc_auc is for binary classifiers: outputs of shape (N,), (N, 1) or (N, 2), "
                         f"got {np.shape(outputs)}")
    labels = np.asarray(targets).reshape(-1) > 0
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")  # undefined with one class only; NaN rather than a misleading number
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    first_of_run = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    run_id = np.cumsum(first_of_run) - 1
    run_starts = np.flatnonzero(first_of_run)
    run_ends = np.concatenate([run_starts[1:], [len(values)]])
    mean_rank = (run_starts + run_ends + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = mean_rank[run_id]
    return ranks


BUILTIN = {
    "accuracy": Metric("accuracy", batch_sums=_accuracy_sums),
    "top5_accuracy": Metric("top5_accuracy", batch_sums=_top5_sums),
    "mse": Metric("mse", batch_sums=_mse_sums),
    "mae": Metric("mae", batch_sums=_mae_sums),
    "log_loss": Metric("log_loss", batch_sums=_log_loss_sums),
    "roc_auc": Metric("roc_auc", whole=roc_auc),
}


def resolve_metrics(metrics: Sequence | None) -> list[Metric]:
    """Metric objects for a list of names and callables; ConfigError for unknown names or duplicates."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        metrics = [metrics]
    resolved = [_resolve_one(m) for m in metrics]
    names = [m.name for m in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"metrics: {duplicates} listed more than once; give each metric once")
    return resolved


def _resolve_one(metric) -> Metric:
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        if metric not in BUILTIN:
            raise ConfigError(f"unknown metric {metric!r}; available: {', '.join(BUILTIN)}, "
                              "or pass a callable(outputs, targets) -> float")
        return BUILTIN[metric]
    if callable(metric):
        name = getattr(metric, "__name__", None) or type(metric).__name__
        return Metric(name, whole=metric)
    raise ConfigError(f"metrics entries must be names or callables(outputs, targets) -> float, got {metric!r}")


# ---------------------------------------------------------------------------- accumulating per rank
class MetricAccumulator:
    """Collects one rank's evaluation: the loss, each metric's sums, and, only if some metric needs
    them, the outputs and targets. `state()` is what a rank sends; `combine(states)` gives the metrics."""

    def __init__(self, metrics: Sequence[Metric]):
        self.metrics = list(metrics)
        self.keep_samples = any(m.needs_all_samples for m in self.metrics)
        self.sums = {m.name: [0.0, 0] for m in self.metrics if not m.needs_all_samples}
        self.loss = [0.0, 0]
        self.outputs: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def update(self, outputs: np.ndarray, targets: np.ndarray, loss: float | None = None) -> None:
        """One batch: outputs and targets as NumPy arrays; loss the batch's mean loss (or None)."""
        n = len(targets)
        if loss is not None:
            self.loss[0] += float(loss) * n
            self.loss[1] += n
        for metric in self.metrics:
            if metric.batch_sums is not None:
                total, count = metric.batch_sums(outputs, targets)
                self.sums[metric.name][0] += total
                self.sums[metric.name][1] += count
        if self.keep_samples:
            self.outputs.append(np.asarray(outputs))
            self.targets.append(np.asarray(targets))

    def state(self) -> dict:
        state = {"loss": list(self.loss), "sums": {k: list(v) for k, v in self.sums.items()}}
        if self.keep_samples and self.outputs:
            state["outputs"] = np.concatenate(self.outputs)
            state["targets"] = np.concatenate(self.targets)
        return state

    def combine(self, states: Sequence[dict], prefix: str = "eval_") -> dict:
        """The metrics over every rank's samples: {prefix + "loss": ..., name: value, ...}."""
        results = {}
        loss_sum, loss_count = (sum(s["loss"][i] for s in states) for i in (0, 1))
        if loss_count:
            results[prefix + "loss"] = loss_sum / loss_count
        gathered = self._gathered(states)
        for metric in self.metrics:
            if metric.needs_all_samples:
                value = metric.whole(*gathered) if gathered is not None else float("nan")
            else:
                total, count = (sum(s["sums"][metric.name][i] for s in states) for i in (0, 1))
                value = total / count if count else float("nan")
            results[metric.name] = float(value)
        return results

    @staticmethod
    def _gathered(states):
        pieces = [s for s in states if "outputs" in s]
        if not pieces:
            return None
        return np.concatenate([s["outputs"] for s in pieces]), np.concatenate([s["targets"] for s in pieces])
