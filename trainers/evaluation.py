"""Exact evaluation across ranks: each rank reads a disjoint contiguous slice of the evaluation rows,
every row exactly once (no padding, no dropping, the last batch may be short), and the metrics are
combined from every rank's sums or samples.

The training loader cannot do this: it keeps every rank's batch count equal by dropping or
repeating rows. Evaluation needs no collective per batch, so ranks may run different batch counts.
"""
from __future__ import annotations

import math

import numpy as np

import tensor

from .metrics import Metric, MetricAccumulator

_WINDOW_ROWS = 8192  # rows read from storage at once; batches are sliced from each window


def shard_bounds(num_rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """[begin, end) positions of `rank`'s contiguous share of `num_rows` rows (sizes differ by at most 1)."""
    return num_rows * rank // world_size, num_rows * (rank + 1) // world_size


def eval_batches(dataset, rank: int, world_size: int, batch_size: int, device=None):
    """Yield {column: Tensor on `device` (or NumPy if device is None)} batches of `rank`'s rows of `dataset`."""
    from dist.data.ranges import RowRanges, stream_slice

    rows = dataset.rows()
    begin, end = shard_bounds(rows.num_rows, rank, world_size)
    # A read takes ranges that each lie within one unit (row group); slicing pieces keeps them so.
    starts, stops = RowRanges(*stream_slice(rows.starts, rows.stops, begin, end)).cut_at(dataset.index.offsets)
    window = math.ceil(_WINDOW_ROWS / batch_size) * batch_size
    reader = dataset.reader()
    try:
        for offset in range(0, end - begin, window):
            columns = dataset.read(reader, *stream_slice(starts, stops, offset, min(offset + window, end - begin)))
            count = len(next(iter(columns.values())))
            for first in range(0, count, batch_size):
                batch = dataset.apply_transform({k: v[first:first + batch_size] for k, v in columns.items()})
                yield batch if device is None else _to_device(batch, device)
    finally:
        reader.close()


def _to_device(batch: dict, device) -> dict:
    return {k: tensor.as_tensor(v, device=device) if isinstance(v, np.ndarray) and v.dtype.kind in "biuf" else v
            for k, v in batch.items()}


def to_numpy(value) -> np.ndarray:
    """A Tensor (any device) or array as a NumPy array."""
    if isinstance(value, tensor.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def evaluate(model, batches, *, split_batch, loss_fn, metrics: list[Metric], all_gather, prefix: str = "eval_") -> dict:
    """{prefix + "loss": ..., metric name: ...} over every rank's `batches`, the same result on every rank.

    batches: this rank's evaluation batches (eval_batches); split_batch(batch) -> (model inputs, target);
    all_gather(value) -> list of every rank's value.
    """
    accumulator = MetricAccumulator(metrics)
    was_training = model.training
    model.eval()
    try:
        with tensor.no_grad():
            for batch in batches:
                inputs, target = split_batch(batch)
                outputs = model(*inputs)
                loss = loss_fn(outputs, target).item() if loss_fn is not None else None
                accumulator.update(to_numpy(outputs), to_numpy(target), loss)
    finally:
        model.train(was_training)
    return accumulator.combine(all_gather(accumulator.state()), prefix=prefix)
