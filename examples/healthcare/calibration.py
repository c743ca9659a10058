"""Test-set report of a trained wdbc run: its metrics, a reliability table, the Brier score, thresholds.

    raygrad train examples/healthcare/wdbc.yaml
    python examples/healthcare/calibration.py runs/wdbc [--data examples/healthcare/data/wdbc_test.parquet]

It loads the run's best checkpoint (by the job's checkpoint.score_metric, chosen on the validation
split during training), computes the job's metrics on the held-out test file with
trainers.evaluate, then the model's predicted probabilities of malignancy on the same rows and:

- a reliability table: the predictions grouped into equal-width probability bins, each bin's mean
  predicted probability beside the observed fraction of malignant cases (calibrated: they match);
- the Brier score, the mean squared error of the probabilities (0 is perfect; always answering
  the base rate scores base_rate * (1 - base_rate));
- sensitivity and specificity at a few decision thresholds (0.5 is not sacred: where missing a
  malignancy costs more than a false alarm, a lower threshold trades specificity for sensitivity).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import tensor
from trainers.build import Ref
from trainers.checkpoint import Checkpoint, CheckpointManager
from trainers.config import CheckpointConfig
from trainers.evaluate import evaluate_checkpoint
from trainers.job import load_job

TEST = Path(__file__).resolve().parent / "data" / "wdbc_test.parquet"


def best_checkpoint(run_folder: Path, job: dict) -> Checkpoint:
    """The run's best kept checkpoint by the job's score metric (the latest if it names none)."""
    best = CheckpointManager(run_folder / "checkpoints", CheckpointConfig(**job["checkpoint"])).best()
    if best is None:
        raise SystemExit(f"calibration: no checkpoint in {run_folder}/checkpoints; train first "
                         "(raygrad train examples/healthcare/wdbc.yaml)")
    return best


def predict(checkpoint: Checkpoint, job: dict, data_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities of the positive class, 0/1 labels) of the checkpoint's model on every row of data_path."""
    model = Ref(job["model"]["class"], job["base_dir"], job["model"]["kwargs"])()
    model.load_state_dict(checkpoint.load()["model"])
    model.eval()
    table = pq.read_table(data_path)
    batch = Ref(job["data"]["transform"], job["base_dir"])({name: table.column(name).to_numpy() for name in
                                                            table.column_names})
    with tensor.no_grad():
        logits = model(tensor.from_numpy(batch[job["data"]["features"]])).numpy().astype(np.float64)
    return 1.0 / (1.0 + np.exp(-logits)), batch[job["data"]["target"]].astype(np.int64)


def reliability_table(probabilities, labels, bins: int = 5) -> list[dict]:
    """Per equal-width bin of predicted probability: its range, count, mean prediction and observed rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)  # p == 1.0 goes in the last bin
    rows = []
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        rows.append({"low": edges[b], "high": edges[b + 1], "count": count,
                     "predicted": float(probabilities[members].mean()) if count else float("nan"),
                     "observed": float(labels[members].mean()) if count else float("nan")})
    return rows


def expected_calibration_error(rows: list[dict], total: int) -> float:
    """The count-weighted mean gap between predicted and observed rates over the bins."""
    return sum(r["count"] / total * abs(r["predicted"] - r["observed"]) for r in rows if r["count"])


def brier_score(probabilities, labels) -> float:
    return float(np.mean((probabilities - labels) ** 2))


def threshold_rates(probabilities, labels, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) when predicting positive at probability >= threshold."""
    positive = probabilities >= threshold
    return float(positive[labels == 1].mean()), float((~positive)[labels == 0].mean())


def report(run_folder: Path, data_path: Path = TEST, bins: int = 5) -> dict:
    """Print the report; return its numbers (metrics, brier, ece, base_rate)."""
    job = load_job(run_folder / "job.yaml")
    best = best_checkpoint(run_folder, job)
    metrics = evaluate_checkpoint(best.path, str(data_path), job_file=str(run_folder / "job.yaml"))
    print(f"checkpoint {best.path} (epoch {best.epoch}, validation {job['checkpoint']['score_metric']} "
          f"{best.metrics.get(job['checkpoint']['score_metric'], float('nan')):.4f})")
    print(f"test set {data_path.name}: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))

    probabilities, labels = predict(best, job, data_path)
    rows = reliability_table(probabilities, labels, bins)
    print("\nreliability (predicted probability of malignancy vs observed fraction malignant)")
    print("  bin            cases  mean predicted  observed")
    for r in rows:
        print(f"  [{r['low']:.1f}, {r['high']:.1f}){r['count']:>9d}  {r['predicted']:>14.3f}  {r['observed']:>8.3f}")
    base_rate = float(labels.mean())
    brier, ece = brier_score(probabilities, labels), expected_calibration_error(rows, len(labels))
    print(f"Brier score {brier:.4f} (base-rate guess: {base_rate * (1 - base_rate):.4f}); "
          f"expected calibration error {ece:.4f}")

    print("\nthreshold  sensitivity  specificity")
    for threshold in (0.5, 0.3, 0.1):
        sensitivity, specificity = threshold_rates(probabilities, labels, threshold)
        print(f"  {threshold:>7.1f}  {sensitivity:>11.3f}  {specificity:>11.3f}")
    return {"metrics": metrics, "brier": brier, "ece": ece, "base_rate": base_rate, "reliability": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_folder", type=Path, help="the run's folder, e.g. runs/wdbc")
    parser.add_argument("--data", type=Path, default=TEST, help="held-out Parquet file (default: the test split)")
    parser.add_argument("--bins", type=int, default=5, help="probability bins of the reliability table")
    args = parser.parse_args()
    report(args.run_folder, args.data, args.bins)
