"""Exactly-once progress of one dataset across epochs, failures and changes of world size.

Each epoch is a list of generations. Generation 0 plans all selected rows. Ranks report how many
batches they have consumed (a count, cumulative, so late or reordered reports are harmless). A
restart seals the open generation; the next plan request opens a new one over exactly the rows the
earlier generations did not consume, on whatever world size asks. Plans are deterministic, so the
saved state is only counts: {"epochs": {"3": [{"world_size": 2, "num_batches": 40,
"consumed": [17, 17], "config": {...}, "token": "..."}]}}, small enough for every checkpoint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from .errors import DataStateError
from .planner import EpochPlan, PlanConfig, RankPlan, ShardPlanner
from .ranges import RowRanges

# Older epochs are complete by the time a rank asks for a plan two epochs later; keep state small.
_EPOCHS_KEPT = 2


@dataclass
class Generation:
    """One planning of an epoch's remaining rows on one world size."""

    world_size: int
    config: PlanConfig
    num_batches: int
    consumed: list[int]
    sealed: bool = False
    # Identifies this generation among all runs: a report from a crashed run that planned a
    # generation with the same index (after a restore from an older checkpoint) must not count.
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def complete(self) -> bool:
        return all(count == self.num_batches for count in self.consumed)

    def to_dict(self) -> dict:
        return {
            "world_size": self.world_size,
            "num_batches": self.num_batches,
            "consumed": list(self.consumed),
            "config": self.config.to_dict(),
            "token": self.token,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Generation:
        try:
            generation = cls(
                world_size=int(data["world_size"]),
                config=PlanConfig.from_dict(data["config"]),
                num_batches=int(data["num_batches"]),
                consumed=[int(count) for count in data["consumed"]],
                sealed=True,  # whatever was running when the state was saved has stopped
                token=str(data["token"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataStateError(f"saved generation {data!r} is malformed ({error!r})") from None
        if len(generation.consumed) != generation.world_size:
            raise DataStateError(
                f"saved generation has world_size={generation.world_size} but "
                f"{len(generation.consumed)} consumed counts: {data!r}"
            )
        return generation


class DataProgress:
    """Plans and progress of one dataset.

    unit_rows: rows per unit in index order (see ShardPlanner).
    selection: the row ids this dataset serves (a split's side); all rows when None.
    """

    def __init__(self, unit_rows, selection: RowRanges | None = None):
        self.planner = ShardPlanner(unit_rows)
        self.selection = RowRanges.full(self.planner.num_rows) if selection is None else selection
        self._epochs: dict[int, list[Generation]] = {}
        self._plans: dict[tuple[int, int], EpochPlan] = {}  # cache; plans are pure, so never stale

    # planning

    def plan(self, epoch: int, rank: int, world_size: int, config: PlanConfig) -> RankPlan:
        """Rank `rank`'s plan for `epoch`, resuming after the batches it has already consumed.

        Joins the epoch's open generation when world size and config match; otherwise (first
        request after a restart, or a new world size) seals it and opens a new generation over the
        rows not yet consumed.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        generations = self._epochs.get(epoch) or self._start_epoch(epoch)
        current = generations[-1] if generations else None
        if current is None or current.sealed or current.world_size != world_size or current.config != config:
            current = self._open_generation(epoch, world_size, config)
        index = len(generations) - 1
        rank_plan = self._epoch_plan(epoch, index).ranks[rank]
        return replace(rank_plan, skip_batches=current.consumed[rank], token=current.token)

    def report(self, epoch: int, generation: int, rank: int, batches: int, token: str | None = None) -> bool:
        """Record that `rank` has consumed its first `batches` batches of a generation (and, if
        given, the generation's token from its RankPlan). Returns False, changing nothing, for a
        sealed, unknown or differently-tokened generation: a report from before a restart."""
        generations = self._epochs.get(epoch, [])
        if not 0 <= generation < len(generations) or generations[generation].sealed:
            return False
        current = generations[generation]
        if token is not None and token != current.token:
            return False
        if not 0 <= rank < current.world_size or not 0 <= batches <= current.num_batches:
            raise DataStateError(
                f"report of {batches} batches by rank {rank} does not fit epoch {epoch} generation "
                f"{generation}: world_size={current.world_size}, {current.num_batches} batches per rank"
            )
        current.consumed[rank] = max(current.consumed[rank], batches)
        return True

    def seal(self) -> None:
        """Mark every generation finished: the next plan request re-plans what is left."""
        for generations in self._epochs.values():
            for generation in generations:
                generation.sealed = True

    # queries

    def remaining(self, epoch: int) -> RowRanges:
        """Rows of `epoch` not consumed yet (all selected rows for an epoch never started)."""
        rows = self.selection
        for index, generation in enumerate(self._epochs.get(epoch, [])):
            rows = rows.difference(self._consumed(epoch, index, generation))
        return rows

    def consumed(self, epoch: int) -> RowRanges:
        """Rows of `epoch` consumed so far, over all generations."""
        return self.selection.difference(self.remaining(epoch))

    def is_complete(self, epoch: int) -> bool:
        generations = self._epochs.get(epoch)
        return bool(generations) and generations[-1].complete

    def resume_epoch(self) -> int:
        """The epoch a restarted training loop should run next: the oldest unfinished one."""
        if not self._epochs:
            return 0
        unfinished = [epoch for epoch in self._epochs if not self.is_complete(epoch)]
        return min(unfinished) if unfinished else max(self._epochs) + 1

    # state

    def state(self) -> dict:
        """JSON-serialisable progress: per epoch, per generation, the consumed batch counts."""
        return {
            "epochs": {
                str(epoch): [generation.to_dict() for generation in generations]
                for epoch, generations in sorted(self._epochs.items())
            }
        }

    def load_state(self, state: dict) -> None:
        """Replace all progress with `state` (from state()); every loaded generation is sealed."""
        try:
            epochs = {int(epoch): [Generation.from_dict(g) for g in gens] for epoch, gens in state["epochs"].items()}
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise DataStateError(
                f"data progress state is malformed ({error!r}); expected {{'epochs': {{...}}}}") from None
        self._epochs, self._plans = epochs, {}
        for epoch, generations in epochs.items():
            for index, generation in enumerate(generations):
                self._check_replay(epoch, index, generation)

    # internals

    def _start_epoch(self, epoch: int) -> list[Generation]:
        others = sorted(known for known in self._epochs if known != epoch)
        for old in others[: max(0, len(others) - (_EPOCHS_KEPT - 1))]:
            del self._epochs[old]
            self._plans = {key: plan for key, plan in self._plans.items() if key[0] != old}
        self._epochs[epoch] = []
        return self._epochs[epoch]

    def _open_generation(self, epoch: int, world_size: int, config: PlanConfig) -> Generation:
        generations = self._epochs[epoch]
        rows = self.remaining(epoch)
        for generation in generations:
            generation.sealed = True
        index = len(generations)
        plan = self.planner.plan(rows, epoch, index, world_size, config)
        self._plans[(epoch, index)] = plan
        generation = Generation(world_size, config, plan.num_batches, [0] * world_size)
        generations.append(generation)
        return generation

    def _epoch_plan(self, epoch: int, index: int) -> EpochPlan:
        """The plan of generation `index`, replayed from the generations before it if not cached."""
        key = (epoch, index)
        if key not in self._plans:
            rows = self.selection
            for earlier, generation in enumerate(self._epochs[epoch][:index]):
                rows = rows.difference(self._consumed(epoch, earlier, generation))
            generation = self._epochs[epoch][index]
            self._plans[key] = self.planner.plan(rows, epoch, index, generation.world_size, generation.config)
        return self._plans[key]

    def _consumed(self, epoch: int, index: int, generation: Generation) -> RowRanges:
        plan = self._epoch_plan(epoch, index)
        consumed = RowRanges.empty()
        for rank_plan, batches in zip(plan.ranks, generation.consumed):
            consumed = consumed.union(self.planner.consumed(rank_plan, batches))
        return consumed

    def _check_replay(self, epoch: int, index: int, generation: Generation) -> None:
        replayed = self._epoch_plan(epoch, index).num_batches
        if replayed != generation.num_batches:
            raise DataStateError(
                f"saved progress of epoch {epoch} generation {index} has {generation.num_batches} batches "
                f"per rank, but replaying it on this dataset gives {replayed}: the dataset or its split "
                f"changed since the state was saved; resume with the original data or start a new run"
            )
