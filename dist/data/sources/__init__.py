"""Dataset sources: where rows live and how one rank reads a part of them."""

from __future__ import annotations

import os

import pyarrow as pa

from ..errors import UnsupportedSourceError
from .base import Part, PartReader, Source
from .files import CsvSource, FileSource, IpcSource, ParquetSource, open_files
from .memory import DEFAULT_PART_ROWS, SHAPE_METADATA_KEY, TableSource, table_from_numpy

__all__ = [
    "CsvSource", "FileSource", "IpcSource", "ParquetSource", "Part", "PartReader", "SHAPE_METADATA_KEY",
    "Source", "TableSource", "open_source", "table_from_numpy",
]


def open_source(source, *, format: str | None = None, filesystem=None, part_rows: int = DEFAULT_PART_ROWS) -> Source:
    """A Source for anything dist.data reads.

    source: a path or URI (str / os.PathLike) of a Parquet, IPC/Feather or CSV file or directory;
        a pyarrow.Table or RecordBatch; a dict of name -> NumPy array of shape (N, ...); or a Source.
    format: "parquet", "ipc" (or "feather"), "csv"; inferred from file names when None.
    filesystem: a pyarrow.fs.FileSystem for paths on it; URIs pick their own.
    part_rows: rows per read unit for in-memory sources.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        return TableSource(source, part_rows)
    if isinstance(source, dict):
        return TableSource(table_from_numpy(source), part_rows, description="NumPy arrays")
    if isinstance(source, (str, os.PathLike)):
        return open_files(source, filesystem=filesystem, format=format)
    raise UnsupportedSourceError(
        f"cannot read a dataset from {type(source).__name__} {source!r:.80}; give a path or URI (Parquet, "
        f"IPC/Feather, CSV), a pyarrow.Table, or a dict of NumPy arrays"
    )
