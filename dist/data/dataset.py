"""Dataset: a source, its index, the columns to load and how, and an optional holdout split.

A Dataset is built once (on the driver, or in-process) and is picklable: it carries paths, the
index (row counts per unit) and the column specs, plus the data itself only for in-memory sources.
Every rank receives it and reads its own rows from storage.

For evaluation, either split a holdout off the training data (`Dataset.holdout`) or build a second
Dataset over a separate source.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from .columns import Column, normalize_columns, table_to_numpy
from .index import DatasetIndex
from .ranges import RowRanges
from .sources import DEFAULT_PART_ROWS, PartReader, open_source
from .splits import select_rows, split_spec

Batch = dict  # name -> np.ndarray of shape (batch, *sample shape)


class Dataset:
    """Rows of a source, as batches of NumPy arrays.

    source: a path or URI (Parquet, Arrow IPC / Feather v2, CSV; a file or a directory, hive
        partitions read as columns), a pyarrow.Table, a dict of NumPy arrays (N, ...), or a Source.
    columns: None (all), a list of names or Columns, or {name: dtype | Column | {"dtype", "shape"}}.
    transform: optional fn(batch: dict of arrays) -> dict of arrays, run on each batch on the
        loader's prefetch thread before it reaches the training step.
    format: "parquet", "ipc"/"feather" or "csv"; inferred from file names when None.
    filesystem: a pyarrow.fs.FileSystem for plain paths on it; URIs (s3://, gs://) pick their own.
    max_unit_rows: split parts (row groups, batches) into units of at most this many rows for a
        finer shuffle; None keeps one unit per part.
    part_rows: rows per part of an in-memory source.
    name: the name progress is kept under on the coordinator (default "train").

    Raises, before any training: DataSourceNotFoundError, EmptyDatasetError, MissingColumnError,
    SchemaMismatchError, UnsupportedSourceError.
    """

    def __init__(
        self,
        source,
        *,
        columns=None,
        transform: Callable[[Batch], Batch] | None = None,
        format: str | None = None,
        filesystem=None,
        max_unit_rows: int | None = None,
        part_rows: int = DEFAULT_PART_ROWS,
        name: str = "train",
    ):
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be a callable fn(batch: dict) -> dict, got {transform!r}")
        self.source = open_source(source, format=format, filesystem=filesystem, part_rows=part_rows)
        self.index = DatasetIndex.build(self.source, max_unit_rows)
        # None checks every field: with all columns loaded, any difference between files matters
        names = None if columns is None else [c.name if isinstance(c, Column) else c for c in columns]
        self.source.check_columns(names)
        self.columns = normalize_columns(columns, self.source.schema)
        self.transform = transform
        self.name = name
        self.split: dict | None = None
        self._rows: RowRanges | None = None  # cache: a by-row split costs O(rows) to compute

    # description

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def num_rows(self) -> int:
        """Rows this dataset serves (one side of a split, or all)."""
        return self.rows().num_rows

    def rows(self) -> RowRanges:
        """The global row ids this dataset serves."""
        if self._rows is None:
            self._rows = select_rows(self.index.unit_rows, self.split)
        return self._rows

    def descriptor(self) -> dict:
        """What the coordinator needs to plan this dataset: unit row counts, a split, a fingerprint."""
        digest = hashlib.sha256(f"{self.index.fingerprint}|{json.dumps(self.split, sort_keys=True)}".encode())
        return {"fingerprint": digest.hexdigest()[:16], "unit_rows": self.index.unit_rows.tolist(), "split": self.split}

    def __repr__(self) -> str:
        split = f", split={self.split}" if self.split else ""
        return (f"Dataset({self.source.describe()}, {self.num_rows} rows in {self.index.num_units} units, "
                f"columns={self.column_names}{split}, name={self.name!r})")

    # splits

    def holdout(self, fraction: float, *, seed: int = 0, by: str = "unit") -> tuple[Dataset, Dataset]:
        """(train, holdout): a deterministic split of this dataset's rows, `fraction` held out.

        by="unit" holds out whole units (row groups, record batches); by="row" single rows. The same
        (fraction, seed, by) gives the same split on every machine and run (see splits.py). The
        holdout side is named f"{name}.holdout" for progress tracking.
        """
        if self.split is not None:
            raise ValueError(f"{self!r} is already one side of a split; split the original dataset instead")
        train, held = copy.copy(self), copy.copy(self)
        train.split = split_spec(fraction, seed, by, "train")
        held.split = split_spec(fraction, seed, by, "holdout")
        train._rows = held._rows = None
        held.name = f"{self.name}.holdout"
        train.rows()  # validate now: raises EmptyDatasetError if a side is empty
        return train, held

    def with_transform(self, transform: Callable[[Batch], Batch] | None) -> Dataset:
        """This dataset (the same rows, split and name) with another per-batch transform."""
        if transform is not None and not callable(transform):
            raise ValueError(f"transform must be a callable fn(batch: dict) -> dict, got {transform!r}")
        other = copy.copy(self)
        other.transform = transform
        return other

    # reading (on a rank)

    def reader(self) -> PartReader:
        """A reader for this thread; close() it when done."""
        return self.source.reader()

    def read_table(self, reader: PartReader, starts: np.ndarray, stops: np.ndarray) -> pa.Table:
        """The rows with ids in [starts[i], stops[i]) for each i, in order, with this dataset's columns."""
        return self.index.read(reader, starts, stops, self.column_names)

    def to_numpy(self, table: pa.Table) -> Batch:
        """{name: array of shape (rows, *sample shape)} with each column's dtype and shape."""
        return table_to_numpy(table, self.columns)

    def read(self, reader: PartReader, starts: np.ndarray, stops: np.ndarray) -> Batch:
        """read_table then to_numpy."""
        return self.to_numpy(self.read_table(reader, starts, stops))

    def apply_transform(self, batch: Batch) -> Batch:
        if self.transform is None:
            return batch
        result = self.transform(batch)
        if not isinstance(result, dict):
            raise TypeError(
                f"transform {getattr(self.transform, '__name__', self.transform)!r} returned "
                f"{type(result).__name__}; it must return a dict of name -> array"
            )
        return result
