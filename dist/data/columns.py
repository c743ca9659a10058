"""From Arrow columns to NumPy arrays: selection, dtype, per-sample shape, zero-copy where possible.

Zero-copy: a single-chunk column of a fixed-width type (ints, floats) without nulls becomes a NumPy
view of the Arrow buffer, as do the values of fixed-size lists and of equal-length binary items.
Such views are read-only; copy in the transform before writing into them. Booleans, strings, columns
with nulls, and tables spread over several chunks are copied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ColumnConversionError, MissingColumnError
from .sources import SHAPE_METADATA_KEY


@dataclass(frozen=True)
class Column:
    """A column to load and how.

    name: the column in the source.
    dtype: NumPy dtype of the batch array (None keeps Arrow's; binary columns default to uint8).
    shape: the shape of one sample, e.g. (3, 32, 32): batches come out as (batch, *shape). Applies to
        list columns (fixed-size or equal-length lists, nested lists flattened) and to binary columns
        of raw pixel bytes, each item exactly prod(shape) * itemsize bytes. Encoded images (PNG, JPEG)
        need decoding in the transform instead.
    """

    name: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.dtype is not None:
            try:
                np.dtype(self.dtype)
            except TypeError:
                raise ValueError(f"column {self.name!r}: dtype={self.dtype!r} is not a NumPy dtype") from None
        if self.shape is not None:
            shape = tuple(self.shape)
            if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
                raise ValueError(f"column {self.name!r}: shape={self.shape!r} must be a non-empty tuple of ints >= 1")
            object.__setattr__(self, "shape", tuple(int(d) for d in shape))


def normalize_columns(columns, schema: pa.Schema) -> tuple[Column, ...]:
    """Column objects for a user's `columns`: None (all), a list of names / Columns, or a dict
    name -> dtype string, Column or {"dtype": ..., "shape": ...}. Shapes default to those recorded in
    field metadata (NumPy sources). Raises MissingColumnError naming the available columns."""
    if columns is None:
        specs = [Column(name) for name in schema.names]
    elif isinstance(columns, dict):
        specs = [_column_from_entry(name, entry) for name, entry in columns.items()]
    elif isinstance(columns, (list, tuple)):
        specs = [entry if isinstance(entry, Column) else Column(_name(entry)) for entry in columns]
    else:
        raise ValueError(f"columns must be None, a list of names/Columns or a dict, got {type(columns).__name__}")
    missing = [spec.name for spec in specs if spec.name not in schema.names]
    if missing:
        raise MissingColumnError(
            f"column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} not in the dataset; "
            f"available: {', '.join(schema.names)}"
        )
    return tuple(_with_recorded_shape(spec, schema.field(spec.name)) for spec in specs)


def table_to_numpy(table: pa.Table, columns: tuple[Column, ...]) -> dict[str, np.ndarray]:
    """{name: array of shape (rows, *sample shape)} for each column."""
    return {column.name: column_to_numpy(table.column(column.name), column) for column in columns}


def column_to_numpy(values: pa.ChunkedArray | pa.Array, column: Column) -> np.ndarray:
    """One column as a NumPy array (rows, *shape), with the column's dtype."""
    array = _single_chunk(values)
    kind = array.type
    if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        result = _list_to_numpy(array, column)
    elif _is_binary(kind) and column.shape is not None:
        result = _binary_to_numpy(array, column)
    else:
        result = _flat_to_numpy(array, column)
    if column.dtype is not None and result.dtype != np.dtype(column.dtype):
        result = result.astype(column.dtype)
    return result


def _single_chunk(values) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    if values.num_chunks == 1:
        return values.chunk(0)
    return values.combine_chunks() if values.num_chunks else pa.array([], values.type)


def _flat_to_numpy(array: pa.Array, column: Column) -> np.ndarray:
    kind = array.type
    if array.null_count and not pa.types.is_floating(kind) and not _wants_float(column):
        raise ColumnConversionError(
            f"column {column.name!r} ({kind}) has {array.null_count} null values in this batch; fill them "
            f"(pyarrow.compute.fill_null) or load it as Column({column.name!r}, dtype='float32') to get NaN"
        )
    # ints and floats without nulls map onto NumPy as they are; dates, booleans and nulls need a copy
    zero_copy = (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and array.null_count == 0
    result = array.to_numpy(zero_copy_only=zero_copy)
    if column.shape is not None:
        result = _reshape(result, len(array), column)
    return result


def _list_to_numpy(array: pa.Array, column: Column) -> np.ndarray:
    if array.null_count:
        raise ColumnConversionError(
            f"column {column.name!r} has {array.null_count} null lists; fill or drop those rows")
    rows = len(array)
    leaf = array
    while pa.types.is_fixed_size_list(leaf.type) or pa.types.is_list(leaf.type) or pa.types.is_large_list(leaf.type):
        if not pa.types.is_fixed_size_list(leaf.type):
            _check_equal_lengths(leaf, column)
        leaf = leaf.flatten()
    values = _flat_to_numpy(leaf, Column(column.name, column.dtype))
    if column.shape is None:
        return values.reshape(rows, -1) if rows else values.reshape(0, 0)
    return _reshape(values, rows, column)


def _check_equal_lengths(array: pa.Array, column: Column) -> None:
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    if lengths.size and np.any(lengths != lengths[0]):
        raise ColumnConversionError(
            f"column {column.name!r} holds lists of different lengths ({int(lengths.min())} to {int(lengths.max())}); "
            f"a batch array needs one length: pad them, or convert in the transform"
        )


def _binary_to_numpy(array: pa.Array, column: Column) -> np.ndarray:
    """Raw bytes of each item viewed as dtype (default uint8) and shaped (rows, *shape), zero-copy."""
    if array.null_count:
        raise ColumnConversionError(
            f"column {column.name!r} has {array.null_count} null items; fill or drop those rows")
    dtype = np.dtype(column.dtype or np.uint8)
    item_bytes = int(np.prod(column.shape)) * dtype.itemsize
    rows = len(array)
    if pa.types.is_fixed_size_binary(array.type):
        widths = np.full(1, array.type.byte_width)
        begin, end = array.offset * array.type.byte_width, (array.offset + rows) * array.type.byte_width
        data_buffer = array.buffers()[1]
    else:
        offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
        offsets = np.frombuffer(array.buffers()[1], offset_type)[array.offset : array.offset + rows + 1]
        widths, begin, end = np.diff(offsets), int(offsets[0]), int(offsets[-1])
        data_buffer = array.buffers()[2]
    if np.any(widths != item_bytes):
        bad = int(widths[np.argmax(widths != item_bytes)])
        raise ColumnConversionError(
            f"column {column.name!r}: an item has {bad} bytes but shape={column.shape} of {dtype} needs "
            f"{item_bytes}; raw pixel bytes must match the shape exactly (decode compressed images in the transform)"
        )
    raw = np.frombuffer(data_buffer, np.uint8)[begin:end] if data_buffer is not None else np.empty(0, np.uint8)
    raw.flags.writeable = False  # like pyarrow's own zero-copy views: the memory may be shared
    return raw.view(dtype).reshape(rows, *column.shape)


def _reshape(values: np.ndarray, rows: int, column: Column) -> np.ndarray:
    per_row = int(np.prod(column.shape))
    if values.size != rows * per_row:
        raise ColumnConversionError(
            f"column {column.name!r}: {values.size // max(rows, 1)} values per row cannot take shape={column.shape} "
            f"({per_row} values); fix the shape or the data"
        )
    return values.reshape(rows, *column.shape)


def _is_binary(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _wants_float(column: Column) -> bool:
    return column.dtype is not None and np.issubdtype(np.dtype(column.dtype), np.floating)


def _name(entry) -> str:
    if not isinstance(entry, str):
        raise ValueError(f"a column must be a name or a Column, got {entry!r}")
    return entry


def _column_from_entry(name: str, entry) -> Column:
    if isinstance(entry, Column):
        return entry if entry.name == name else Column(name, entry.dtype, entry.shape)
    if entry is None or isinstance(entry, str) or isinstance(entry, np.dtype) or isinstance(entry, type):
        return Column(name, None if entry is None else np.dtype(entry).name)
    if isinstance(entry, dict):
        unknown = set(entry) - {"dtype", "shape"}
        if unknown:
            raise ValueError(f"column {name!r}: unknown keys {sorted(unknown)}; use 'dtype' and 'shape'")
        return Column(name, entry.get("dtype"), entry.get("shape"))
    raise ValueError(f"column {name!r}: expected a dtype, a Column or {{'dtype':, 'shape':}}, got {entry!r}")


def _with_recorded_shape(spec: Column, field: pa.Field) -> Column:
    if spec.shape is not None or not field.metadata or SHAPE_METADATA_KEY not in field.metadata:
        return spec
    return Column(spec.name, spec.dtype, tuple(json.loads(field.metadata[SHAPE_METADATA_KEY])))
