"""What every source provides, and the file handling shared by the file formats.

A source is picklable and small (paths, row counts, one schema): it travels to every rank, which
opens its own reader. Rows are addressed as (file index, part index, rows of the part), where a part
is whatever one read fetches: a Parquet row group, an IPC record batch, a whole CSV file, an
in-memory record batch.
"""

from __future__ import annotations

import os
import posixpath
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import DataSourceNotFoundError, EmptyDatasetError, SchemaMismatchError, UnsupportedSourceError


@dataclass(frozen=True)
class Part:
    """One readable piece of a source: `num_rows` rows of part `part` of file `file`."""

    file: int
    part: int
    num_rows: int


class PartReader(ABC):
    """Reads parts on one rank; holds open files and a few recent parts (one per thread)."""

    @abstractmethod
    def read(self, file: int, part: int, columns: list[str]) -> pa.Table:
        """The part's rows, with exactly `columns` in that order."""

    def close(self) -> None:
        """Release open files."""


class Source(ABC):
    """A dataset's storage: a schema, its parts (metadata only), and a way to read them."""

    format: str
    schema: pa.Schema
    files: tuple[str, ...]

    @abstractmethod
    def parts(self) -> list[Part]:
        """Every part in index order, with row counts, read from metadata where the format has it."""

    @abstractmethod
    def reader(self) -> PartReader:
        """A new reader for this process (not shared between threads)."""

    def check_columns(self, columns: list[str] | None) -> None:
        """Raise SchemaMismatchError if the files disagree on any of `columns` (None: on any field)."""

    def describe(self) -> str:
        first = self.files[0] if self.files else "<none>"
        more = f" and {len(self.files) - 1} more files" if len(self.files) > 1 else ""
        return f"{self.format} source {first}{more}"


class LRU(OrderedDict):
    """A tiny least-recently-used cache; `capacity` entries."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def get_or_load(self, key, load):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = load()
        while len(self) > self.capacity:
            self.popitem(last=False)
        return value


# filesystems and file discovery


def resolve_path(path, filesystem: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path within it) for a local path, a URI (s3://, gs://, file://) or a path on `filesystem`."""
    path = os.fspath(path)
    if filesystem is not None:
        return filesystem, path
    if "://" not in path:
        return pafs.LocalFileSystem(), os.path.abspath(path)
    try:
        return pafs.FileSystem.from_uri(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise UnsupportedSourceError(
            f"cannot open {path!r} with pyarrow.fs ({error}); check the URI and credentials, install a pyarrow "
            f"built with that filesystem, or pass filesystem=<a pyarrow.fs.FileSystem>"
        ) from None


def discover_files(path, filesystem, extensions: dict[str, str], format: str | None):
    """The data files under `path` and their format.

    extensions maps a file suffix (".parquet") to a format name. A directory is searched
    recursively; names starting with "." or "_" (_SUCCESS, .crc files) are skipped.
    Returns (filesystem, root, sorted file paths, format).
    """
    fs, root = resolve_path(path, filesystem)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise DataSourceNotFoundError(
            f"dataset source {os.fspath(path)!r} does not exist (looked for {root!r}); check the path, "
            f"and that the data was written before the job started"
        )
    if info.type != pafs.FileType.Directory:
        return fs, posixpath.dirname(root), [root], format or _format_of(root, extensions)
    candidates = [
        entry.path for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True))
        if entry.type == pafs.FileType.File and not _hidden(root, entry.path)
    ]
    found = {}
    for file in candidates:
        found.setdefault(_format_of(file, extensions, strict=False), []).append(file)
    found.pop(None, None)
    if format is None and len(found) > 1:
        listing = ", ".join(f"{len(files)} {name}" for name, files in sorted(found.items()))
        raise UnsupportedSourceError(f"directory {root!r} mixes formats ({listing}); pass format= to pick one")
    format = format or next(iter(found), None)
    files = sorted(found.get(format, []))
    if not files:
        wanted = ", ".join(sorted(ext for ext, name in extensions.items() if format in (None, name)))
        raise EmptyDatasetError(f"directory {root!r} holds no data files ({wanted}); check the path and format")
    return fs, root, files, format


def _format_of(path: str, extensions: dict[str, str], strict: bool = True) -> str | None:
    name = path.lower()
    for suffix, format in extensions.items():
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return format
    if strict:
        known = ", ".join(sorted(extensions))
        raise UnsupportedSourceError(f"cannot tell the format of {path!r} from its name (known: {known}); pass format=")
    return None


def _hidden(root: str, path: str) -> bool:
    relative = posixpath.relpath(path, root)
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def hive_partitions(root: str, files: list[str]) -> tuple[list[dict[str, str]], pa.Schema]:
    """Hive partition values (".../year=2024/part=a/file.parquet") of each file and their schema.

    A key whose values all parse as integers is int64, otherwise string (values are URI-decoded).
    """
    values = []
    for file in files:
        directories = posixpath.relpath(file, root).split("/")[:-1]
        values.append(dict(unquote(d).split("=", 1) for d in directories if "=" in d))
    keys = list(values[0]) if values else []
    for file, file_values in zip(files, values):
        if list(file_values) != keys:
            raise SchemaMismatchError(
                f"file {file!r} has hive partition keys {list(file_values)} but {files[0]!r} has {keys}; "
                f"lay every file out under the same key=value directories"
            )
    fields = [pa.field(key, pa.int64() if all(_is_int(v[key]) for v in values) else pa.string()) for key in keys]
    return values, pa.schema(fields)


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def schema_differences(files: list[str], schemas: list[pa.Schema]) -> dict[str, str]:
    """For each field whose presence or type differs between files, the first difference in words."""
    reference, first = schemas[0], files[0]
    differences: dict[str, str] = {}
    for file, schema in zip(files[1:], schemas[1:]):
        for field in reference:
            other = schema.field(field.name) if field.name in schema.names else None
            if other is None:
                differences.setdefault(field.name, f"file {file!r} has no field {field.name!r}, which {first!r} has")
            elif not other.type.equals(field.type):
                differences.setdefault(
                    field.name, f"field {field.name!r} is {other.type} in file {file!r} but {field.type} in {first!r}"
                )
        for name in set(schema.names) - set(reference.names):
            differences.setdefault(name, f"file {file!r} has field {name!r}, which {first!r} lacks")
    return differences


def raise_on_differences(differences: dict[str, str], columns: list[str] | None) -> None:
    for name in differences if columns is None else columns:
        if name in differences:
            raise SchemaMismatchError(
                f"{differences[name]}; rewrite the files with one schema, or leave column {name!r} out of columns="
            )
