"""Compute feature_stats.json: each feature's mean and standard deviation over the training side only.

    python examples/healthcare/feature_stats.py

The model's transform (model.py:standardize) subtracts these means and divides by these standard
deviations. They come from the rows the model trains on: the training file minus the validation
rows that wdbc.yaml holds out (`eval_fraction`), computed with the same split function the job
uses, so no validation or test row influences the inputs' scaling. The result is shipped beside
this script; rerun it only if the data or the split changes.
"""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from dist.data import Dataset

HERE = Path(__file__).resolve().parent
TRAIN = HERE / "data" / "wdbc_train.parquet"
TARGET = "diagnosis"


def training_rows(job_file: Path = HERE / "wdbc.yaml") -> np.ndarray:
    """Row ids of the training side of the job's holdout split (the job's eval_fraction and seed 0)."""
    fraction = yaml.safe_load(job_file.read_text())["data"]["eval_fraction"]
    train, _ = Dataset(str(TRAIN)).holdout(fraction)  # Trainer's split: same fraction, seed and units
    return train.rows().to_ids()


def main() -> None:
    table = pq.read_table(TRAIN).take(training_rows())
    stats = {}
    for name in table.column_names:
        if name == TARGET:
            continue
        values = table.column(name).to_numpy().astype(np.float64)
        stats[name] = {"mean": round(float(values.mean()), 6), "std": round(float(values.std()), 6)}
    out = HERE / "feature_stats.json"
    lines = ",\n".join(f"  {json.dumps(name)}: {json.dumps(value)}" for name, value in stats.items())
    out.write_text(f'{{"rows": {table.num_rows},\n "features": {{\n{lines}\n }}}}\n')  # one feature a line
    print(f"wrote {out}: {len(stats)} features over {table.num_rows} training rows")


if __name__ == "__main__":
    main()
