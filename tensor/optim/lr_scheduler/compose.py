"""Schedules made of schedules: SequentialLR (one after another) and ChainedScheduler (all at once)."""
from __future__ import annotations

from bisect import bisect_right

from .base import LRScheduler, group_values
from .plateau import ReduceLROnPlateau


def _check_members(owner, schedulers, optimizer):
    if not schedulers:
        raise ValueError(f"{owner} needs at least one scheduler, got none")
    for index, scheduler in enumerate(schedulers):
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(f"{owner}: ReduceLROnPlateau (scheduler {index}) needs a metric in step(), so it "
                             "can't be composed; step it on its own")
        if getattr(scheduler, "optimizer", None) is not optimizer:
            raise ValueError(f"{owner}: scheduler {index} ({type(scheduler).__name__}) drives a different optimizer; "
                             "every scheduler must be built on the same optimizer")


class SequentialLR(LRScheduler):
    """Run `schedulers[i]` from `milestones[i - 1]` on, e.g. a LinearLR warm-up, then CosineAnnealingLR.

    Each scheduler restarts from epoch 0 at its milestone.
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        _check_members("SequentialLR", schedulers, optimizer)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: {len(schedulers)} schedulers need {len(schedulers) - 1} milestones, "
                             f"got {len(milestones)}: {list(milestones)}")
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # Building the schedulers stepped each once; undo that and start the first one afresh.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for scheduler in self._schedulers:
            _undo_initial_step(scheduler)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self):
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)  # a milestone: this scheduler starts at its epoch 0
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("_schedulers")
        self.__dict__.update(state)
        for scheduler, scheduler_state in zip(self._schedulers, saved):
            scheduler.load_state_dict(scheduler_state)


def _undo_initial_step(scheduler):
    members = getattr(scheduler, "_schedulers", None)
    if members is not None:
        for member in members:
            _undo_initial_step(member)
    elif hasattr(scheduler, "last_epoch"):
        scheduler.last_epoch -= 1


class ChainedScheduler(LRScheduler):
    """Step every scheduler on each step(), so their factors multiply (e.g. ExponentialLR and a warm-up)."""

    def __init__(self, schedulers, optimizer=None):
        optimizer = optimizer or (schedulers[0].optimizer if schedulers else None)
        _check_members("ChainedScheduler", schedulers, optimizer)
        self._schedulers = list(schedulers)
        self.optimizer = optimizer
        self._last_lr = group_values(optimizer, "lr")

    def step(self):
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = group_values(self.optimizer, "lr")

    state_dict = SequentialLR.state_dict
    load_state_dict = SequentialLR.load_state_dict
