"""The dataset index: units with row counts, built from metadata alone, and reads of row-id ranges.

A unit is (file, part, first row, end row) of a source part. Units are what the plan shuffles, so
shuffle granularity is the unit; by default a unit is a whole part (row group, record batch), and
`max_unit_rows` splits large parts into row ranges (finer shuffle, but a Parquet row group split in
several units may be decoded once per unit on a rank, as row groups are the smallest read).

Global row ids number the rows unit by unit: unit u holds ids [offsets[u], offsets[u + 1]).
"""

from __future__ import annotations

import hashlib
import posixpath

import numpy as np
import pyarrow as pa

from .errors import EmptyDatasetError
from .sources import PartReader, Source

_FILE, _PART, _START, _STOP = range(4)


class DatasetIndex:
    """units: int64 array (U, 4) of [file, part, start row, end row] in index order."""

    def __init__(self, units: np.ndarray, fingerprint: str):
        self.units = np.asarray(units, np.int64).reshape(-1, 4)
        self.offsets = np.concatenate([[0], np.cumsum(self.units[:, _STOP] - self.units[:, _START])])
        self.fingerprint = fingerprint

    @classmethod
    def build(cls, source: Source, max_unit_rows: int | None = None) -> DatasetIndex:
        """Index `source` from its metadata; raise EmptyDatasetError if it has no rows."""
        valid = max_unit_rows is None or (type(max_unit_rows) is int and max_unit_rows >= 1)
        if not valid:
            raise ValueError(f"max_unit_rows must be None or an int >= 1, got {max_unit_rows!r}")
        units = [
            [part.file, part.part, start, stop]
            for part in source.parts()
            for start, stop in _split(part.num_rows, max_unit_rows)
        ]
        if not units:
            raise EmptyDatasetError(f"{source.describe()} has no rows; check that the data was written completely")
        units = np.array(units, np.int64)
        return cls(units, _fingerprint(source, units))

    @property
    def num_units(self) -> int:
        return len(self.units)

    @property
    def num_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def unit_rows(self) -> np.ndarray:
        return self.units[:, _STOP] - self.units[:, _START]

    def read(self, reader: PartReader, starts: np.ndarray, stops: np.ndarray, columns: list[str]) -> pa.Table:
        """The rows with ids in [starts[i], stops[i]) for each i, in that order, as one Table.

        Each range must lie within one unit (plans guarantee it). Consecutive ranges in the same part
        are served from one read of the part.
        """
        if starts.size == 0:
            return pa.table({})
        unit = np.searchsorted(self.offsets, starts, side="right") - 1
        if np.any(stops > self.offsets[unit + 1]):
            raise ValueError("DatasetIndex.read: a row range crosses a unit boundary; cut ranges at unit offsets")
        first = starts - self.offsets[unit] + self.units[unit, _START]
        last = first + (stops - starts)
        file, part = self.units[unit, _FILE], self.units[unit, _PART]
        pieces = []
        for begin, end in _runs(file * (int(part.max()) + 1) + part):
            table = reader.read(int(file[begin]), int(part[begin]), columns)
            pieces.append(_take_ranges(table, first[begin:end], last[begin:end]))
        return pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces)


def _split(num_rows: int, max_rows: int | None) -> list[tuple[int, int]]:
    """Row ranges of one part: all of it, or near-equal pieces of at most max_rows rows."""
    if num_rows == 0:
        return []
    if max_rows is None or num_rows <= max_rows:
        return [(0, num_rows)]
    count = -(-num_rows // max_rows)
    bounds = np.linspace(0, num_rows, count + 1).round().astype(np.int64)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _runs(keys: np.ndarray):
    """(begin, end) of each run of equal consecutive keys."""
    breaks = np.flatnonzero(np.diff(keys) != 0) + 1
    bounds = np.concatenate([[0], breaks, [keys.size]])
    return zip(bounds[:-1].tolist(), bounds[1:].tolist())


def _take_ranges(table: pa.Table, firsts: np.ndarray, lasts: np.ndarray) -> pa.Table:
    """Rows [firsts[i], lasts[i]) of table, concatenated; a zero-copy slice when they are contiguous."""
    if firsts.size == 1 or np.array_equal(firsts[1:], lasts[:-1]):
        return table.slice(int(firsts[0]), int(lasts[-1] - firsts[0]))
    lengths = lasts - firsts
    run_begins = np.cumsum(lengths) - lengths
    indices = np.repeat(firsts - run_begins, lengths) + np.arange(int(lengths.sum()))
    return table.take(pa.array(indices))


def _fingerprint(source: Source, units: np.ndarray) -> str:
    """Identifies the data a saved progress refers to: format, file names relative to the root, units."""
    root = getattr(source, "root", None)
    names = [posixpath.relpath(file, root) if root else file for file in source.files]
    digest = hashlib.sha256()
    digest.update(source.format.encode())
    digest.update("\0".join(names).encode())
    digest.update(np.ascontiguousarray(units).tobytes())
    return digest.hexdigest()[:16]
