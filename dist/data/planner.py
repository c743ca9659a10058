"""Epoch shard plans: a pure function of (rows, seed, epoch, generation, world size, config).

How a plan is made (the docstring of ShardPlanner.plan has the details):

1. The rows still to serve are cut at unit boundaries (a unit is a row group, record batch or chunk:
   what one read fetches) and, with shuffle on, the units are put in a seeded random order.
2. Laid end to end they form one stream of R rows. Every rank gets the same number of rows, a whole
   number of batches: with drop_last=True the stream's tail that does not fill one batch on every
   rank is left out of this epoch; with drop_last=False the stream is padded by repeating its first
   rows until it does.
3. Rank r takes the r-th contiguous slice of the stream (units at slice edges are split by row range,
   so shares balance to the row). The loader reads it in windows of `window_rows` rows and, with
   shuffle on, permutes each window with a seeded permutation (the local shuffle buffer).

Because the window permutations are seeded too, "rank r consumed k batches" identifies exactly which
rows were consumed; progress needs nothing more than those counts (see progress.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import BatchSizeError, DataStateError
from .ranges import RowRanges, stream_cycle, stream_positions_to_ids, stream_slice

# seed-sequence tags keep the independent random streams of one seed apart
_UNIT_ORDER_TAG, _WINDOW_TAG = 0, 1


@dataclass(frozen=True)
class PlanConfig:
    """How a loader batches and shuffles; part of every plan, and of the saved progress.

    batch_size: rows per batch on each rank.
    shuffle: seeded shuffle of unit order plus a local shuffle of each window.
    seed: non-negative int; (seed, epoch) fixes the order, so a rerun repeats it exactly.
    drop_last: True drops the stream's tail that would leave some rank a short batch (fewer than
        world_size * batch_size rows per epoch); False pads the tail by repeating samples from the
        start of the epoch's stream, so every sample is seen and a few are seen twice.
    shuffle_buffer: rows in one local shuffle window, rounded up to a whole number of batches.
    """

    batch_size: int
    shuffle: bool = True
    seed: int = 0
    drop_last: bool = True
    shuffle_buffer: int = 16384

    def __post_init__(self):
        _require_int("batch_size", self.batch_size, minimum=1)
        _require_int("seed", self.seed, minimum=0)
        _require_int("shuffle_buffer", self.shuffle_buffer, minimum=0)

    @property
    def window_rows(self) -> int:
        """Rows per local shuffle window: shuffle_buffer rounded up to a multiple of batch_size,
        so a batch never spans two windows."""
        return max(1, math.ceil(self.shuffle_buffer / self.batch_size)) * self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PlanConfig:
        try:
            return cls(**data)
        except TypeError as error:
            raise DataStateError(f"plan config {data!r} is malformed: {error}") from None


@dataclass(frozen=True, eq=False)
class RankPlan:
    """One rank's work for one generation of an epoch.

    starts, stops: int64 arrays (K,) of global row ids, in the order the rank reads them.
    num_batches: batches in the whole plan (the same on every rank of the generation).
    skip_batches: batches already consumed; the loader starts after them.
    """

    epoch: int
    generation: int
    rank: int
    world_size: int
    config: PlanConfig
    starts: np.ndarray
    stops: np.ndarray
    num_batches: int
    skip_batches: int = 0
    token: str = ""  # the generation's identity, echoed in progress reports

    @property
    def num_rows(self) -> int:
        return self.num_batches * self.config.batch_size

    @property
    def remaining_batches(self) -> int:
        return self.num_batches - self.skip_batches

    def window_bounds(self, window: int) -> tuple[int, int]:
        """Stream positions [begin, end) of a local shuffle window."""
        size = self.config.window_rows
        return window * size, min((window + 1) * size, self.num_rows)

    def window_order(self, window: int) -> np.ndarray | None:
        """The permutation the loader applies to a window's rows, or None without shuffle."""
        if not self.config.shuffle:
            return None
        begin, end = self.window_bounds(window)
        key = [self.config.seed, _WINDOW_TAG, self.epoch, self.generation, self.rank, window]
        return np.random.default_rng(key).permutation(end - begin)


@dataclass(frozen=True)
class EpochPlan:
    """All ranks' plans for one generation of an epoch, with what was dropped or padded."""

    ranks: tuple[RankPlan, ...]
    dropped_rows: int = 0
    padded_rows: int = 0

    @property
    def num_batches(self) -> int:
        return self.ranks[0].num_batches


class ShardPlanner:
    """Plans epochs over a dataset given only its units' row counts.

    unit_rows: int array (U,) of rows per unit, in index order; unit u holds the global row ids
    [offsets[u], offsets[u + 1]).
    """

    def __init__(self, unit_rows):
        unit_rows = np.asarray(unit_rows, np.int64)
        if unit_rows.ndim != 1 or np.any(unit_rows < 0):
            raise ValueError(f"unit_rows must be a 1-D array of row counts >= 0, got {unit_rows!r}")
        self.offsets = np.concatenate([[0], np.cumsum(unit_rows)])

    @property
    def num_rows(self) -> int:
        return int(self.offsets[-1])

    def plan(self, rows: RowRanges, epoch: int, generation: int, world_size: int, config: PlanConfig) -> EpochPlan:
        """Split `rows` among `world_size` ranks for this (epoch, generation).

        Generation 0 is the epoch's first plan, over all selected rows; a restart opens generation
        g + 1 over the rows generation g left unconsumed, possibly on a different world size.
        Raises BatchSizeError when a first plan would give some rank less than one batch.
        """
        _require_int("world_size", world_size, minimum=1)
        if generation == 0:
            check_batch_fits(rows.num_rows, world_size, config.batch_size)
        starts, stops = self._ordered_stream(rows, epoch, generation, config)
        per_rank = _rows_per_rank(rows.num_rows, world_size, config)
        starts, stops = stream_cycle(starts, stops, per_rank * world_size)
        plans = tuple(
            RankPlan(epoch, generation, rank, world_size, config,
                     *stream_slice(starts, stops, rank * per_rank, (rank + 1) * per_rank),
                     num_batches=per_rank // config.batch_size)
            for rank in range(world_size)
        )
        served = per_rank * world_size
        return EpochPlan(plans, dropped_rows=max(0, rows.num_rows - served), padded_rows=max(0, served - rows.num_rows))

    def consumed(self, plan: RankPlan, batches: int) -> RowRanges:
        """The row ids a rank has consumed after yielding its first `batches` batches."""
        if not 0 <= batches <= plan.num_batches:
            raise DataStateError(
                f"rank {plan.rank} reports {batches} batches consumed of epoch {plan.epoch} "
                f"(generation {plan.generation}), but its plan has {plan.num_batches}"
            )
        consumed_rows = batches * plan.config.batch_size
        window_rows = plan.config.window_rows
        whole_windows_end = (consumed_rows // window_rows) * window_rows
        done = RowRanges(*stream_slice(plan.starts, plan.stops, 0, whole_windows_end))
        partial = consumed_rows - whole_windows_end
        if partial == 0:
            return done
        window = consumed_rows // window_rows
        order = plan.window_order(window)
        taken = np.arange(partial) if order is None else np.sort(order[:partial])
        ids = stream_positions_to_ids(plan.starts, plan.stops, whole_windows_end + taken)
        return done.union(RowRanges.from_ids(ids))

    def _ordered_stream(self, rows: RowRanges, epoch: int, generation: int, config: PlanConfig):
        """`rows` cut at unit boundaries, units in (seeded random) order, rows ascending within a unit."""
        starts, stops = rows.cut_at(self.offsets)
        if not config.shuffle or starts.size == 0:
            return starts, stops
        unit_of_piece = np.searchsorted(self.offsets, starts, side="right") - 1
        units = np.unique(unit_of_piece)
        rng = np.random.default_rng([config.seed, _UNIT_ORDER_TAG, epoch, generation])
        position_of_unit = np.empty(self.offsets.size, np.int64)
        position_of_unit[units] = rng.permutation(units.size)
        order = np.lexsort((starts, position_of_unit[unit_of_piece]))
        return starts[order], stops[order]


def check_batch_fits(num_rows: int, world_size: int, batch_size: int) -> None:
    """Raise BatchSizeError unless every rank's share holds at least one whole batch."""
    share = num_rows // world_size
    if share < batch_size:
        raise BatchSizeError(
            f"batch_size={batch_size} is larger than each rank's share of the dataset: {num_rows} rows "
            f"over world_size={world_size} ranks is {share} rows per rank; use batch_size <= {max(share, 1)}, "
            f"fewer workers, or more data"
        )


def _rows_per_rank(num_rows: int, world_size: int, config: PlanConfig) -> int:
    """Rows each rank serves: a whole number of batches, rounded down (drop_last) or up (pad)."""
    rows_per_step = world_size * config.batch_size
    steps = num_rows // rows_per_step if config.drop_last else -(-num_rows // rows_per_step)
    return steps * config.batch_size


def _require_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
