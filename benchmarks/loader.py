"""Rows per second of dist.data's loader against a plain pyarrow read into NumPy.

    python benchmarks/loader.py [--rows 1000000] [--batch-size 1024] [--prefetch 4] [--repeats 5]

Writes a Parquet file (row groups of 64k rows: 8 float32 columns and an int64 label) into a temporary
directory, then times, best of --repeats interleaved rounds:
- pyarrow: pq.read_table(columns) and .to_numpy() of every column (one thread of control, Arrow's
  own thread pool for decoding): the floor of what reading the same columns into NumPy costs;
- loader: one rank's ShardedLoader epoch (in-process planner, prefetch thread on), batches of
  --batch-size rows as dicts of NumPy arrays, with and without shuffling.
The target is a loader at >= 0.8x the pyarrow rows per second. Wall time is what the target is about;
CPU seconds (all threads) show the cost, and are steadier than wall time on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dist.data import Dataset, ShardedLoader

COLUMNS = [f"x{i}" for i in range(8)] + ["label"]


def write_parquet(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    columns = {name: rng.standard_normal(rows, dtype=np.float32) for name in COLUMNS[:-1]}
    columns["label"] = rng.integers(0, 1000, rows)
    pq.write_table(pa.table(columns), path, row_group_size=65536)


def time_pyarrow(path: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of all threads, rows) of reading the columns into NumPy."""
    wall, cpu = time.perf_counter(), time.process_time()
    table = pq.read_table(path, columns=COLUMNS)
    arrays = {name: table.column(name).to_numpy() for name in COLUMNS}
    return time.perf_counter() - wall, time.process_time() - cpu, len(arrays["label"])


def time_loader(path: Path, batch_size: int, prefetch: int, shuffle: bool) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, rows) of one epoch of one rank's loader (index built beforehand)."""
    dataset = Dataset(path, columns=COLUMNS)
    with ShardedLoader(dataset, batch_size=batch_size, prefetch=prefetch, shuffle=shuffle,
                       shuffle_buffer=65536) as loader:
        wall, cpu = time.perf_counter(), time.process_time()
        rows = sum(len(batch["label"]) for batch in loader)
        return time.perf_counter() - wall, time.process_time() - cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.parquet"
        write_parquet(path, args.rows)
        start = time.perf_counter()
        Dataset(path, columns=COLUMNS)
        index_s = time.perf_counter() - start
        measures = {"pyarrow read_table + to_numpy": lambda: time_pyarrow(path)}
        for shuffle in (True, False):
            label = f"ShardedLoader shuffle={shuffle} bs={args.batch_size} prefetch={args.prefetch}"
            measures[label] = lambda shuffle=shuffle: time_loader(path, args.batch_size, args.prefetch, shuffle)
        # interleaved rounds, best of each: a shared machine's noise hits every reader alike
        timings = {label: [] for label in measures}
        for _ in range(args.repeats):
            for label, measure in measures.items():
                timings[label].append(measure())
        results = [(label, *min(runs)) for label, runs in timings.items()]
    baseline_rate = results[0][3] / results[0][1]
    print(f"{args.rows:,} rows x {len(COLUMNS)} columns, best of {args.repeats}; index (footers only) built in "
          f"{index_s * 1e3:.1f} ms; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    print(f"| {'reader':<48} | {'rows':>9} | {'wall s':>7} | {'CPU s':>6} | {'rows/s':>12} | {'vs pyarrow':>10} |")
    print(f"|{'-' * 50}|{'-' * 10}:|{'-' * 8}:|{'-' * 7}:|{'-' * 13}:|{'-' * 11}:|")
    for label, seconds, cpu_seconds, rows in results:
        rate = rows / seconds
        print(f"| {label:<48} | {rows:>9,} | {seconds:>7.3f} | {cpu_seconds:>6.3f} | {rate:>12,.0f} | "
              f"{rate / baseline_rate:>9.2f}x |")


if __name__ == "__main__":
    main()
