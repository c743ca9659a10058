"""Sets of global row ids kept as sorted, disjoint half-open intervals.

A dataset of N rows numbers its rows 0..N-1 in index order (files, then row groups, then rows).
Plans, progress and splits are all sets of such ids; as intervals they stay small (one interval per
unit in the common case) where a boolean mask would cost N bytes.

Streams are the other shape used here: an *ordered* list of intervals (a shuffled plan), addressed
by position 0..len-1 along the stream rather than by id.
"""

from __future__ import annotations

import numpy as np


class RowRanges:
    """An immutable set of row ids as canonical intervals: sorted, disjoint, non-empty, non-adjacent.

    starts, stops: int64 arrays of shape (K,); the set is the union of [starts[i], stops[i]).
    """

    __slots__ = ("starts", "stops")

    def __init__(self, starts, stops):
        self.starts, self.stops = _canonical(np.asarray(starts, np.int64), np.asarray(stops, np.int64))

    # construction

    @classmethod
    def empty(cls) -> RowRanges:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64))

    @classmethod
    def full(cls, num_rows: int) -> RowRanges:
        """All ids 0..num_rows-1."""
        return cls([0], [num_rows]) if num_rows > 0 else cls.empty()

    @classmethod
    def from_ids(cls, ids) -> RowRanges:
        """From any array of ids (duplicates and order do not matter)."""
        ids = np.unique(np.asarray(ids, np.int64))
        if ids.size == 0:
            return cls.empty()
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        starts = ids[np.concatenate([[0], breaks])]
        stops = ids[np.concatenate([breaks - 1, [ids.size - 1]])] + 1
        return cls(starts, stops)

    @classmethod
    def from_pairs(cls, pairs) -> RowRanges:
        """From [[start, stop], ...]; overlapping or unsorted pairs are merged."""
        array = np.asarray(pairs, np.int64).reshape(-1, 2)
        return cls(array[:, 0], array[:, 1])

    # queries

    @property
    def num_rows(self) -> int:
        return int((self.stops - self.starts).sum())

    def __len__(self) -> int:
        return self.num_rows

    def __bool__(self) -> bool:
        return self.starts.size > 0

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, RowRanges)
            and np.array_equal(self.starts, other.starts)
            and np.array_equal(self.stops, other.stops)
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"[{a}, {b})" for a, b in zip(self.starts[:4], self.stops[:4]))
        more = f", ... {self.starts.size - 4} more" if self.starts.size > 4 else ""
        return f"RowRanges({shown}{more}; {self.num_rows} rows)"

    def to_ids(self) -> np.ndarray:
        """Every id in the set, ascending, shape (num_rows,)."""
        return stream_positions_to_ids(self.starts, self.stops, np.arange(self.num_rows))

    def to_pairs(self) -> list[list[int]]:
        return [[int(a), int(b)] for a, b in zip(self.starts, self.stops)]

    # set algebra

    def union(self, other: RowRanges) -> RowRanges:
        return _combine(self, other, lambda a, b: a | b)

    def difference(self, other: RowRanges) -> RowRanges:
        return _combine(self, other, lambda a, b: a & ~b)

    def intersection(self, other: RowRanges) -> RowRanges:
        return _combine(self, other, lambda a, b: a & b)

    def cut_at(self, boundaries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The set's intervals split wherever a boundary falls inside one (not canonical: adjacent
        pieces stay separate). Used to keep every piece inside a single unit."""
        points = np.union1d(np.concatenate([self.starts, self.stops]), np.asarray(boundaries, np.int64))
        starts, stops = points[:-1], points[1:]
        keep = _contains(self, starts)
        return starts[keep], stops[keep]


def _canonical(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if starts.shape != stops.shape or starts.ndim != 1:
        raise ValueError(f"RowRanges: starts {starts.shape} and stops {stops.shape} must be equal 1-D shapes")
    if np.any(stops < starts):
        raise ValueError("RowRanges: every stop must be >= its start")
    keep = stops > starts
    starts, stops = starts[keep], stops[keep]
    if starts.size == 0:
        return starts, stops
    order = np.argsort(starts, kind="stable")
    starts, stops = starts[order], stops[order]
    # an interval begins a new run unless it starts inside or right after the running maximum stop
    running_stop = np.maximum.accumulate(stops)
    new_run = np.concatenate([[True], starts[1:] > running_stop[:-1]])
    return starts[new_run], np.maximum.reduceat(stops, np.flatnonzero(new_run))


def _contains(ranges: RowRanges, points: np.ndarray) -> np.ndarray:
    """For each point, whether it lies in the set (boolean array shaped like points)."""
    opened = np.searchsorted(ranges.starts, points, side="right")
    closed = np.searchsorted(ranges.stops, points, side="right")
    return opened > closed


def _combine(a: RowRanges, b: RowRanges, keep_rule) -> RowRanges:
    """Apply a boolean rule to the elementary segments between all endpoints of a and b."""
    points = np.unique(np.concatenate([a.starts, a.stops, b.starts, b.stops]))
    if points.size < 2:
        return RowRanges.empty()
    starts, stops = points[:-1], points[1:]
    keep = keep_rule(_contains(a, starts), _contains(b, starts))
    return RowRanges(starts[keep], stops[keep])


# ordered streams of intervals


def stream_ends(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Cumulative stream length after each interval, shape (K,)."""
    return np.cumsum(stops - starts)


def stream_slice(starts, stops, begin: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """The intervals covering stream positions [begin, end), trimmed at both ends, in stream order."""
    if end <= begin:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    ends = stream_ends(starts, stops)
    first = int(np.searchsorted(ends, begin, side="right"))
    last = int(np.searchsorted(ends, end - 1, side="right"))
    out_starts, out_stops = starts[first : last + 1].copy(), stops[first : last + 1].copy()
    out_starts[0] += begin - (ends[first] - (stops[first] - starts[first]))
    out_stops[-1] -= ends[last] - end
    return out_starts, out_stops


def stream_positions_to_ids(starts, stops, positions: np.ndarray) -> np.ndarray:
    """The row id at each stream position (positions must be < the stream length)."""
    lengths = stops - starts
    ends = np.cumsum(lengths)
    which = np.searchsorted(ends, positions, side="right")
    return starts[which] + positions - (ends[which] - lengths[which])


def stream_cycle(starts, stops, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The stream repeated from its beginning until it is exactly `length` rows long."""
    total = int((stops - starts).sum())
    if total == 0 or length <= total:
        return stream_slice(starts, stops, 0, length)
    whole, rest = divmod(length, total)
    tail_starts, tail_stops = stream_slice(starts, stops, 0, rest)
    return (
        np.concatenate([np.tile(starts, whole), tail_starts]),
        np.concatenate([np.tile(stops, whole), tail_stops]),
    )
