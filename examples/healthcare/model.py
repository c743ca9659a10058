"""A small MLP for the Wisconsin diagnostic breast cancer data: 30 standardised features -> one logit.

The loader transform `standardize` stacks the 30 feature columns into one (N, 30) array and scales
each feature with the training side's mean and standard deviation (feature_stats.json, made by
feature_stats.py): the raw features span five orders of magnitude (areas in the thousands,
fractal dimensions near 0.05), which an MLP trains poorly on.
"""
import json
from pathlib import Path

import numpy as np

import tensor.nn as nn

_STATS = json.loads((Path(__file__).resolve().parent / "feature_stats.json").read_text())["features"]
FEATURES = list(_STATS)  # column order of the stacked input
_MEAN = np.array([_STATS[name]["mean"] for name in FEATURES], np.float32)
_STD = np.array([_STATS[name]["std"] for name in FEATURES], np.float32)


def standardize(batch: dict) -> dict:
    """Loader transform: {30 feature columns, diagnosis} -> {"features": (N, 30) float32, "label": (N,) float32}.

    label is 1.0 for malignant and 0.0 for benign, as float for binary_cross_entropy_with_logits.
    """
    missing = [name for name in FEATURES if name not in batch]
    if missing:
        raise KeyError(f"standardize: batch lacks feature column(s) {missing}; it has {sorted(batch)}")
    features = np.stack([batch[name] for name in FEATURES], axis=1).astype(np.float32)
    return {"features": (features - _MEAN) / _STD, "label": batch["diagnosis"].astype(np.float32)}


class TabularMLP(nn.Module):
    """(N, in_features) standardised features -> (N,) logits of the positive class (malignant).

    Two hidden layers, each Linear -> LayerNorm -> ReLU -> Dropout. LayerNorm keeps the hidden
    activations on one scale whatever the batch (unlike BatchNorm, it does not depend on the other
    samples of a small, per-worker batch).
    """

    def __init__(self, in_features: int = 30, hidden: int = 32, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, features):
        return self.net(features).squeeze(-1)
