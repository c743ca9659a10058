"""Schedules that cycle: CosineAnnealingWarmRestarts (SGDR) and CyclicLR (Smith's cyclical learning rates).

Both follow PyTorch's formulas term by term, so their learning rates (and CyclicLR's momentum)
equal PyTorch's step by step.
"""
from __future__ import annotations

import math
import types

from ..optimizer import Optimizer
from .base import LRScheduler, MomentumCycling, group_values, per_group


class CosineAnnealingWarmRestarts(LRScheduler):
    """Anneal from the initial lr to eta_min along half a cosine over T_i epochs, then restart;
    the first period is T_0 epochs and each one after is T_mult times longer.

    step(epoch) takes fractional epochs, for a step per batch: `scheduler.step(epoch + i / iters)`.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):  # noqa: N803 - PyTorch's names
        if not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"CosineAnnealingWarmRestarts: T_0 must be a positive int (the first period in epochs), "
                             f"got T_0={T_0!r}")
        if not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"CosineAnnealingWarmRestarts: T_mult must be an int >= 1 (each period's growth), "
                             f"got T_mult={T_mult!r}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"CosineAnnealingWarmRestarts: eta_min must be a float, got {type(eta_min).__name__} "
                             f"{eta_min!r}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch=None):
        """Advance one epoch, or go to `epoch` (a float is fine; the learning rate follows it exactly)."""
        self._step_count += 1
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:  # a restart
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            self._go_to(epoch)
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = group_values(self.optimizer, "lr")

    def _go_to(self, epoch):
        """Set the period (T_i) and the position in it (T_cur) that `epoch` falls in."""
        if epoch < 0:
            raise ValueError(f"CosineAnnealingWarmRestarts.step: epoch must be >= 0, got epoch={epoch!r}")
        if epoch < self.T_0:
            self.T_i = self.T_0
            self.T_cur = epoch
        elif self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        else:  # the periods' lengths are a geometric series: n whole periods lie before epoch
            n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult ** (n)


class CyclicLR(MomentumCycling, LRScheduler):
    """Cycle each group's lr between base_lr and max_lr: step_size_up steps up, step_size_down
    (default: step_size_up) steps down. Step it once per batch.

    mode: 'triangular' (constant amplitude), 'triangular2' (amplitude halved each cycle) or
    'exp_range' (amplitude scaled by gamma ** iteration). A custom `scale_fn(x)` replaces the mode;
    scale_mode says whether x is the cycle number ('cycle') or the iteration ('iterations').
    cycle_momentum: the momentum (or Adam's beta1) cycles the other way, between max_momentum
    and base_momentum.
    """

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular",
                 gamma=1.0, scale_fn=None, scale_mode="cycle", cycle_momentum=True, base_momentum=0.8,
                 max_momentum=0.9, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"CyclicLR: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        base_lrs = per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        self.max_lrs = per_group("max_lr", optimizer, max_lr)
        self._init_cycle(step_size_up, step_size_down)
        self._init_scale(mode, gamma, scale_fn, scale_mode)
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.base_momentums, self.max_momentums = self._init_momentum(optimizer, base_momentum,
                                                                          max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_cycle(self, step_size_up, step_size_down):
        if not step_size_up > 0:
            raise ValueError(f"CyclicLR: step_size_up must be > 0 (the steps from base_lr up to max_lr), "
                             f"got step_size_up={step_size_up!r}")
        if step_size_down is not None and not step_size_down >= 0:
            raise ValueError(f"CyclicLR: step_size_down must be >= 0 (or None: as step_size_up), "
                             f"got step_size_down={step_size_down!r}")
        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size

    def _init_scale(self, mode, gamma, scale_fn, scale_mode):
        if scale_fn is None:
            if mode not in ("triangular", "triangular2", "exp_range"):
                raise ValueError(f"CyclicLR: mode must be 'triangular', 'triangular2' or 'exp_range' (or give a "
                                 f"scale_fn), got mode={mode!r}")
            scale_mode = "iterations" if mode == "exp_range" else "cycle"  # each mode's own, as in PyTorch
        elif not callable(scale_fn):
            raise TypeError(f"CyclicLR: scale_fn must be callable (x -> factor), got {type(scale_fn).__name__}")
        elif scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"CyclicLR: scale_mode must be 'cycle' or 'iterations', got scale_mode={scale_mode!r}")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode

    def scale_fn(self, x) -> float:
        """The amplitude's scale at x (the cycle number or the iteration, per scale_mode)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma**x

    def get_lr(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [base_lr + (max_lr - base_lr) * scale_factor * scale
               for base_lr, max_lr in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for group, bottom, top in zip(self.optimizer.param_groups, self.base_momentums, self.max_momentums):
                self._set_momentum(group, top - (top - bottom) * scale_factor * scale)
        return lrs

    def state_dict(self):
        """As LRScheduler's, with a custom scale_fn's attributes in place of the function (when it is an object)."""
        state = super().state_dict()
        fn = state.pop("_scale_fn_custom")
        state["_scale_fn_custom"] = None if fn is None or isinstance(fn, types.FunctionType) else dict(fn.__dict__)
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        attributes = state.pop("_scale_fn_custom", None)
        super().load_state_dict(state)
        if attributes is not None:
            self._scale_fn_custom.__dict__.update(attributes)
