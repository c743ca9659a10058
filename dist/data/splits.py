"""Deterministic holdout splits, described by a small dict so the coordinator can recompute them.

A split is {"fraction": 0.1, "seed": 0, "by": "unit" | "row", "side": "train" | "holdout"}:
- by "unit" (default) holds out whole units (row groups, record batches): cheap to read and to
  describe, but only as fine as the units (use max_unit_rows for finer ones);
- by "row" holds out individual rows: exact fractions, but reads of either side touch every unit.
The same (fraction, seed, by) always selects the same rows, on every machine.
"""

from __future__ import annotations

import numpy as np

from .errors import EmptyDatasetError
from .ranges import RowRanges

_HOLDOUT_TAG = 2  # seed-sequence tag, distinct from the planner's
SPLIT_BY = ("unit", "row")
SIDES = ("train", "holdout")


def split_spec(fraction: float, seed: int, by: str, side: str) -> dict:
    """A validated split description."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be a number strictly between 0 and 1, got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"split seed must be an int >= 0, got {seed!r}")
    if by not in SPLIT_BY:
        raise ValueError(f"split by={by!r} is not one of {SPLIT_BY}")
    if side not in SIDES:
        raise ValueError(f"split side={side!r} is not one of {SIDES}")
    return {"fraction": float(fraction), "seed": seed, "by": by, "side": side}


def select_rows(unit_rows: np.ndarray, split: dict | None) -> RowRanges:
    """The row ids a split keeps (all rows for split=None).

    unit_rows: rows per unit in index order, shape (U,).
    Raises EmptyDatasetError if either side of the split would be empty.
    """
    unit_rows = np.asarray(unit_rows, np.int64)
    offsets = np.concatenate([[0], np.cumsum(unit_rows)])
    if split is None:
        return RowRanges.full(int(offsets[-1]))
    holdout = _holdout_units(offsets, split) if split["by"] == "unit" else _holdout_rows(offsets, split)
    return holdout if split["side"] == "holdout" else RowRanges.full(int(offsets[-1])).difference(holdout)


def _holdout_units(offsets: np.ndarray, split: dict) -> RowRanges:
    num_units = offsets.size - 1
    count = _holdout_count(num_units, split, "units")
    chosen = np.sort(_rng(split).permutation(num_units)[:count])
    return RowRanges(offsets[chosen], offsets[chosen + 1])


def _holdout_rows(offsets: np.ndarray, split: dict) -> RowRanges:
    num_rows = int(offsets[-1])
    count = _holdout_count(num_rows, split, "rows")
    return RowRanges.from_ids(_rng(split).choice(num_rows, size=count, replace=False))


def _holdout_count(total: int, split: dict, what: str) -> int:
    count = int(round(split["fraction"] * total))
    if not 0 < count < total:
        hint = ("split by='row', use a larger fraction, or smaller units (max_unit_rows)" if what == "units"
                else "use a fraction that keeps rows on both sides")
        raise EmptyDatasetError(
            f"a holdout of fraction {split['fraction']} over {total} {what} puts {count} in the holdout and "
            f"{total - count} in training; one side is empty: {hint}"
        )
    return count


def _rng(split: dict) -> np.random.Generator:
    return np.random.default_rng([split["seed"], _HOLDOUT_TAG])
