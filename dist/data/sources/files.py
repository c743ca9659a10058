"""File sources: Parquet, Arrow IPC / Feather v2, CSV; local or on any pyarrow.fs filesystem.

What building the index reads:
- Parquet: only footers (row groups and their row counts).
- IPC: the footer and each record batch's header. Local files are memory-mapped, so no data pages
  are touched; on a remote filesystem the batches are fetched.
- CSV: has no metadata, so every file is parsed once to count its rows (and each rank parses the files
  it reads again). Convert large CSV data to Parquet.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import UnsupportedSourceError
from .base import (
    LRU, Part, PartReader, Source, discover_files, hive_partitions, raise_on_differences, schema_differences,
)

EXTENSIONS = {
    ".parquet": "parquet", ".parq": "parquet", ".pq": "parquet",
    ".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc",
    ".csv": "csv",
}
_OPEN_FILES, _CACHED_PARTS = 16, 2


class FileSource(Source):
    """Files of one format under a path (a file or a directory with optional hive partitions).

    Subclasses say how to inspect a file (schema, rows per part) and how to read one part.
    """

    format = "files"

    def __init__(self, filesystem: pafs.FileSystem, root: str, files: list[str]):
        self.filesystem, self.root, self.files = filesystem, root, tuple(files)
        self._partition_values, partition_schema = hive_partitions(root, files)
        inspected = [self._inspect(file) for file in files]
        schemas = [schema for schema, _ in inspected]
        self._differences = schema_differences(files, schemas)
        file_schema = schemas[0]
        self._partition_fields = [f for f in partition_schema if f.name not in file_schema.names]
        self.schema = pa.schema(list(file_schema) + self._partition_fields)
        self._parts = [
            Part(file_index, part_index, rows)
            for file_index, (_, part_rows) in enumerate(inspected)
            for part_index, rows in enumerate(part_rows)
        ]

    def parts(self) -> list[Part]:
        return list(self._parts)

    def check_columns(self, columns: list[str] | None) -> None:
        raise_on_differences(self._differences, columns)

    def reader(self) -> PartReader:
        return _FileReader(self)

    # format-specific

    def _inspect(self, file: str) -> tuple[pa.Schema, list[int]]:
        """(Arrow schema, rows of each part) of one file, from metadata where possible."""
        raise NotImplementedError

    def _open(self, file: str):
        """A handle the format's _read_part can use repeatedly."""
        return self.filesystem.open_input_file(file)

    def _read_part(self, handle, file: str, part: int, columns: list[str]) -> pa.Table:
        raise NotImplementedError

    # shared

    def _partition_columns(self, file_index: int, columns: list[str], num_rows: int) -> dict[str, pa.Array]:
        values = self._partition_values[file_index]
        return {
            field.name: pa.repeat(pa.scalar(values[field.name]).cast(field.type), num_rows)
            for field in self._partition_fields if field.name in columns
        }


class ParquetSource(FileSource):
    format = "parquet"

    def _inspect(self, file):
        with self.filesystem.open_input_file(file) as handle:
            metadata = pq.ParquetFile(handle).metadata
            schema = metadata.schema.to_arrow_schema()
        return schema, [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]

    def _open(self, file):
        return pq.ParquetFile(self.filesystem.open_input_file(file))

    def _read_part(self, handle, file, part, columns):
        return handle.read_row_group(part, columns=columns, use_threads=True)


class IpcSource(FileSource):
    """Arrow IPC file format (Feather v2). The IPC *stream* format has no footer and is not supported."""

    format = "ipc"

    def _inspect(self, file):
        reader = self._open(file)
        return reader.schema, [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]

    def _open(self, file):
        stream = pa.memory_map(file) if isinstance(self.filesystem, pafs.LocalFileSystem) else (
            self.filesystem.open_input_file(file))
        try:
            return pa.ipc.open_file(stream)
        except pa.ArrowInvalid as error:
            raise UnsupportedSourceError(
                f"{file!r} is not an Arrow IPC file ({error}); write it with pyarrow.feather.write_feather "
                f"(version 2) or pyarrow.ipc.new_file, not the IPC stream format or Feather v1"
            ) from None

    def _read_part(self, handle, file, part, columns):
        return pa.Table.from_batches([handle.get_batch(part)]).select(columns)


class CsvSource(FileSource):
    """CSV files (optionally .csv.gz). Column types are inferred from the first file and imposed on
    the others, so one file's all-integer column does not clash with another's floats."""

    format = "csv"

    def __init__(self, filesystem, root, files):
        self._column_types = None
        super().__init__(filesystem, root, files)

    def _inspect(self, file):
        table = self._parse(file, columns=None)
        if self._column_types is None:
            self._column_types = table.schema
        return table.schema, [table.num_rows]

    def _open(self, file):
        return None  # parsed per read; the reader caches whole parsed files as parts

    def _read_part(self, handle, file, part, columns):
        return self._parse(file, columns)

    def _parse(self, file: str, columns: list[str] | None) -> pa.Table:
        options = pacsv.ConvertOptions()
        if self._column_types is not None:
            options.column_types = self._column_types
        if columns is not None:
            options.include_columns = columns
        with self.filesystem.open_input_stream(file, compression="detect") as stream:
            return pacsv.read_csv(stream, convert_options=options)


_SOURCES = {"parquet": ParquetSource, "ipc": IpcSource, "feather": IpcSource, "csv": CsvSource}


def open_files(path, filesystem: pafs.FileSystem | None = None, format: str | None = None) -> FileSource:
    """The FileSource for `path` (file, directory or URI); format inferred from file names unless given."""
    if format is not None and format not in _SOURCES:
        raise UnsupportedSourceError(f"format={format!r} is not one of {sorted(_SOURCES)}")
    format = "ipc" if format == "feather" else format
    fs, root, files, format = discover_files(path, filesystem, EXTENSIONS, format)
    return _SOURCES[format](fs, root, files)


class _FileReader(PartReader):
    def __init__(self, source: FileSource):
        self.source = source
        self._handles = LRU(_OPEN_FILES)
        self._parts = LRU(_CACHED_PARTS)

    def read(self, file, part, columns):
        return self._parts.get_or_load((file, part, tuple(columns)), lambda: self._load(file, part, columns))

    def _load(self, file_index, part, columns):
        source = self.source
        path = source.files[file_index]
        handle = self._handles.get_or_load(file_index, lambda: source._open(path))
        partition_names = {field.name for field in source._partition_fields}
        table = source._read_part(handle, path, part, [c for c in columns if c not in partition_names])
        for name, array in source._partition_columns(file_index, columns, table.num_rows).items():
            table = table.append_column(name, array)
        return table.select(columns)

    def close(self):
        self._handles.clear()
        self._parts.clear()
