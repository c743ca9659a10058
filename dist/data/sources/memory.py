"""In-memory sources: a pyarrow Table, or a dict of NumPy arrays (turned into one, zero-copy).

These are already in memory, so the index costs nothing; the data travels to the ranks with the
Dataset object (through Ray's object store), never through the coordinator.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from ..errors import UnsupportedSourceError
from .base import Part, PartReader, Source

# Field metadata recording a sample's shape, so (N, 3, 32, 32) arrays come back as (B, 3, 32, 32).
SHAPE_METADATA_KEY = b"raygrad.shape"
DEFAULT_PART_ROWS = 65536


class TableSource(Source):
    """A pyarrow Table, cut into record batches of at most `part_rows` rows (the read units)."""

    format = "table"

    def __init__(self, table: pa.Table, part_rows: int = DEFAULT_PART_ROWS, description: str = "in-memory table"):
        if not isinstance(table, pa.Table):
            raise UnsupportedSourceError(f"TableSource needs a pyarrow.Table, got {type(table).__name__}")
        self.schema = table.schema
        self.files = (f"<{description}>",)
        self._batches = table.to_batches(max_chunksize=part_rows)

    def parts(self) -> list[Part]:
        return [Part(0, index, batch.num_rows) for index, batch in enumerate(self._batches)]

    def reader(self) -> PartReader:
        return _TableReader(self._batches)

    def describe(self) -> str:
        return self.files[0][1:-1]


class _TableReader(PartReader):
    def __init__(self, batches: list[pa.RecordBatch]):
        self._batches = batches

    def read(self, file, part, columns):
        return pa.Table.from_batches([self._batches[part]]).select(columns)


def table_from_numpy(arrays: dict) -> pa.Table:
    """A Table sharing memory with a dict of arrays, each of shape (N, ...).

    1-D arrays become plain columns; N-D arrays become fixed-size-list columns of prod(shape[1:])
    values with the sample shape in the field metadata (read back by dist.data.columns).
    """
    if not isinstance(arrays, dict) or not arrays:
        raise UnsupportedSourceError(f"a NumPy source must be a non-empty dict of name -> array, got {arrays!r:.80}")
    lengths = {}
    fields, columns = [], []
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.ndim == 0:
            raise UnsupportedSourceError(f"column {name!r} is a scalar; give an array of shape (num_rows, ...)")
        lengths[name] = len(array)
        field, column = _numpy_column(str(name), np.ascontiguousarray(array))
        fields.append(field)
        columns.append(column)
    if len(set(lengths.values())) > 1:
        raise UnsupportedSourceError(
            f"NumPy source columns differ in length: {lengths}; give every array the same first dimension")
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _numpy_column(name: str, array: np.ndarray) -> tuple[pa.Field, pa.Array]:
    if array.ndim == 1:
        column = pa.array(array)
        return pa.field(name, column.type), column
    sample_shape = array.shape[1:]
    values = pa.array(array.reshape(-1))
    column = pa.FixedSizeListArray.from_arrays(values, int(np.prod(sample_shape)))
    metadata = {SHAPE_METADATA_KEY: json.dumps(list(sample_shape)).encode()}
    return pa.field(name, column.type, metadata=metadata), column
