"""LRScheduler: the base of every schedule that sets `group["lr"]` once per `step()`.

The formulas are PyTorch's, including its "chainable" form: most schedules compute the next
learning rate from the current one (`group["lr"]`), so schedules can be stacked, and a
closed form (`_get_closed_form_lr`, from `base_lrs` and `last_epoch`) is used when a step is
given an explicit epoch. Matching both keeps our learning rates equal to PyTorch's step by
step, rounding included.

A scheduler's state_dict is its attributes except the optimizer: plain numbers, lists and
dicts, which tensor.save stores as they are.
"""
from __future__ import annotations

import warnings

from ..optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "scheduler.step(epoch) is deprecated, as in PyTorch: call scheduler.step() once per epoch (or per batch); "
    "with an explicit epoch the closed-form learning rate is used where the schedule has one"
)


class LRScheduler:
    """Sets each parameter group's learning rate from `get_lr()` on every `step()`.

    last_epoch: the index of the last step taken; -1 starts a new schedule (and records each
    group's `initial_lr`), anything else resumes one whose groups already hold `initial_lr`.
    """

    _is_initial = False  # True only while the constructor takes the schedule's first step

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for number, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{type(self).__name__}: resuming with last_epoch={last_epoch}, but param_groups[{number}] "
                        "has no 'initial_lr'; load the optimizer's state_dict first, or start with last_epoch=-1"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Take step 0, which sets the schedule's first learning rate."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rate of each group for `self.last_epoch` (called by step())."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr()")

    def get_last_lr(self) -> list[float]:
        """The learning rates the last step() set, one per parameter group."""
        return self._last_lr

    def step(self, epoch: int | None = None):
        """Advance the schedule by one (call it after optimizer.step())."""
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = group_values(self.optimizer, "lr")

    def state_dict(self) -> dict:
        """Everything but the optimizer: plain values that tensor.save can store."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict):
        self.__dict__.update(state_dict)


class _LRScheduler(LRScheduler):
    """PyTorch's old name for LRScheduler, which much published scheduler code still subclasses."""


def group_values(optimizer: Optimizer, key: str) -> list:
    """`group[key]` for every parameter group."""
    return [group[key] for group in optimizer.param_groups]


def per_group(name: str, optimizer: Optimizer, value) -> list:
    """A hyperparameter given once or once per group, as a list with one entry per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} has {len(value)} values, but the optimizer has {len(optimizer.param_groups)} parameter "
                "groups; give one value, or one per group"
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


class MomentumCycling:
    """For schedules that move momentum (SGD's momentum, or Adam's beta1) opposite to the lr: OneCycleLR and
    CyclicLR. The state lands where PyTorch keeps it: `use_beta1` on the scheduler, each group's
    `max_momentum` and `base_momentum` in the group."""

    def _init_momentum(self, optimizer, base_momentum, max_momentum, last_epoch):
        """Check there is a momentum to cycle; on a fresh start (last_epoch == -1) set each group's to its
        max_momentum and record both bounds. Returns (base momentums, max momentums), one per group."""
        if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
            raise ValueError(f"{type(self).__name__}: cycle_momentum=True, but {type(optimizer).__name__} has neither "
                             "momentum nor betas; pass cycle_momentum=False")
        self.use_beta1 = "betas" in optimizer.defaults
        bottoms = per_group("base_momentum", optimizer, base_momentum)
        tops = per_group("max_momentum", optimizer, max_momentum)
        if last_epoch == -1:
            for group, bottom, top in zip(optimizer.param_groups, bottoms, tops):
                self._set_momentum(group, top)
                group["max_momentum"] = top
                group["base_momentum"] = bottom
        return bottoms, tops

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

