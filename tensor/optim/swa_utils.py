"""Stochastic Weight Averaging (SWA) and exponential moving averages (EMA) of a model's weights,
with PyTorch's names and rules (torch.optim.swa_utils).

    swa_model = AveragedModel(model)                      # equal-weight running average
    ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    swa_scheduler = SWALR(optimizer, swa_lr=0.05)
    ...  # each epoch: train, then swa_model.update_parameters(model); swa_scheduler.step()
    update_bn(loader, swa_model)                          # BatchNorm statistics for the averaged weights

The averaging runs on the raw arrays (numpy or cupy) with PyTorch's formulas and dtype rules,
so averages match PyTorch's: integer buffers (BatchNorm's num_batches_tracked) are averaged in
float32 and truncated back, as in PyTorch.
"""
from __future__ import annotations

import copy
import itertools
import math

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..backend import to_device_array
from ..creation import tensor
from ..nn.instancenorm import _InstanceNorm
from ..nn.module import Module
from ..nn.normalization import _BatchNorm
from ..tensor import Tensor, _wrap
from .lr_scheduler.base import LRScheduler, per_group
from .optimizer import Optimizer

__all__ = [
    "AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn", "get_swa_multi_avg_fn", "get_ema_avg_fn",
    "get_swa_avg_fn",
]


# ------------------------------------------------------------------------------ raw-array math


def _count(num_averaged) -> int:
    """How many models are averaged so far, from an int or a 0-d tensor."""
    return int(num_averaged.item()) if isinstance(num_averaged, Tensor) else int(num_averaged)


def _as_float(array):
    # PyTorch computes integer tensors times (or divided by) numbers in the default float dtype.
    return array if array.dtype.kind in "fc" else array.astype(np.float32)


def _lerp_(start, end, weight: float):
    """start += weight * (end - start) in place, with PyTorch's two-sided formula (exact at weight 1)."""
    weight = start.dtype.type(weight)
    diff = end - start
    if abs(weight) < 0.5:
        start[...] = start + weight * diff
    else:
        start[...] = end - diff * (start.dtype.type(1) - weight)


def _check_decay(decay):
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")


def _write(param: Tensor, array):
    """Store `array` in param's memory (cast to its dtype: floats truncate into integer buffers)."""
    param.data[...] = array
    param._bump_version()


# ---------------------------------------------------------------------------- averaging functions


def get_ema_multi_avg_fn(decay=0.999):
    """An in-place EMA over lists of tensors: ema = decay * ema + (1 - decay) * model."""
    _check_decay(decay)

    def ema_update(ema_param_list, current_param_list, _):
        with no_grad():
            for ema, current in zip(ema_param_list, current_param_list):
                if ema.dtype.kind in "fc":
                    _lerp_(ema.data, current.data, 1 - decay)
                else:
                    _write(ema, _as_float(ema.data) * decay + _as_float(current.data) * (1 - decay))

    return ema_update


def get_swa_multi_avg_fn():
    """An in-place equal-weight running average over lists of tensors: avg += (model - avg) / (n + 1)."""

    def swa_update(averaged_param_list, current_param_list, num_averaged):
        count = _count(num_averaged)
        with no_grad():
            for averaged, current in zip(averaged_param_list, current_param_list):
                if averaged.dtype.kind not in "fc":
                    # PyTorch's foreach addcdiv_/add_ refuse integer tensors here too.
                    raise RuntimeError(
                        f"get_swa_multi_avg_fn: cannot average integer tensors ({averaged.dtype}) in place, as in "
                        "PyTorch (integer division with addcdiv is not supported); leave multi_avg_fn=None (the "
                        "default average handles integer buffers) or use_buffers=False"
                    )
                _lerp_(averaged.data, current.data, 1 / (count + 1))

    return swa_update


def get_ema_avg_fn(decay=0.999):
    """An EMA of one tensor: returns decay * ema + (1 - decay) * model."""
    _check_decay(decay)

    def ema_update(ema_param, current_param, num_averaged):
        return _wrap(decay * _as_float(ema_param.data) + (1 - decay) * _as_float(current_param.data))

    return ema_update


def get_swa_avg_fn():
    """An equal-weight running average of one tensor: returns avg + (model - avg) / (n + 1)."""

    def swa_update(averaged_param, current_param, num_averaged):
        averaged, current = averaged_param.data, current_param.data
        return _wrap(_as_float(averaged) + _as_float(current - averaged) / (_count(num_averaged) + 1))

    return swa_update


# ------------------------------------------------------------------------------- AveragedModel


class AveragedModel(Module):
    """A copy of `model` (`self.module`) whose parameters are a running average of `model`'s.

    avg_fn(averaged_param, model_param, num_averaged) returns the new average of one tensor;
    multi_avg_fn(averaged_params, model_params, num_averaged) updates lists of tensors (one dtype
    and device per call) in place; with neither, every update weighs all models equally (SWA).
    use_buffers=True averages the buffers too; otherwise they are copied from `model` on each
    update (BatchNorm statistics then need update_bn). The first update copies `model`'s values.
    """

    def __init__(self, model: Module, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("AveragedModel: only one of avg_fn and multi_avg_fn should be provided, got both")
        if not isinstance(model, Module):
            raise TypeError(f"AveragedModel: expected a Module to average, got {type(model).__name__}")
        if isinstance(device, int) and not isinstance(device, bool):
            device = f"cuda:{device}"  # PyTorch's device index means a CUDA device
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", tensor(0, dtype=dtypes.int64, device=device))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def update_parameters(self, model: Module):
        """Fold `model`'s current parameters (and buffers, with use_buffers) into the average."""
        if self.use_buffers:
            averaged = list(itertools.chain(self.module.parameters(), self.module.buffers()))
            current = list(itertools.chain(model.parameters(), model.buffers()))
        else:
            averaged, current = list(self.parameters()), list(model.parameters())
        pairs = [(a.detach(), _wrap(to_device_array(m.data, a.device))) for a, m in zip(averaged, current)]
        count = _count(self.n_averaged)
        with no_grad():
            if count == 0:
                for a, m in pairs:
                    _write(a, m.data)
            elif self.avg_fn is not None:
                for a, m in pairs:
                    result = self.avg_fn(a, m, self._n_averaged_on(a.device))
                    _write(a, result.data if isinstance(result, Tensor) else result)
            else:
                self._average_groups(pairs)
            if not self.use_buffers:
                self._copy_buffers(model)
            self.n_averaged.data += 1
            self.n_averaged._bump_version()

    def _average_groups(self, pairs):
        """multi_avg_fn (or the default SWA average) once per (device, dtype) group, as PyTorch does."""
        groups = {}
        for a, m in pairs:
            groups.setdefault((str(a.device), a.dtype), []).append((a, m))
        for group in groups.values():
            n_averaged = self._n_averaged_on(group[0][0].device)
            if self.multi_avg_fn is not None:
                self.multi_avg_fn([a for a, _ in group], [m for _, m in group], n_averaged)
            else:
                # PyTorch's per-tensor formula (its CPU path), so integer buffers average too.
                average = get_swa_avg_fn()
                for a, m in group:
                    _write(a, average(a, m, n_averaged).data)

    def _n_averaged_on(self, device) -> Tensor:
        return _wrap(to_device_array(self.n_averaged.data, device))

    def _copy_buffers(self, model):
        # Without use_buffers the buffers follow the source model (PyTorch keeps them in sync).
        own, theirs = list(self.module.buffers()), list(model.buffers())
        if len(own) != len(theirs):
            raise ValueError(
                f"AveragedModel.update_parameters: the model has {len(theirs)} buffers, the averaged copy has "
                f"{len(own)}; pass the same architecture the AveragedModel was built from"
            )
        for b_avg, b_model in zip(own, theirs):
            _write(b_avg, to_device_array(b_model.data, b_avg.device))


# ------------------------------------------------------------------------------------ update_bn


def _is_batch_norm(module) -> bool:
    # Our InstanceNorm shares BatchNorm's code, but PyTorch's update_bn leaves it alone.
    return isinstance(module, _BatchNorm) and not isinstance(module, _InstanceNorm)


def update_bn(loader, model: Module, device=None):
    """Recompute every BatchNorm's running statistics as a plain average over one pass of `loader`.

    Each batch is a tensor, or a list/tuple whose first element is the model's input; with
    `device`, the input is moved there first. Momenta and the train/eval mode are restored after.
    """
    momenta = []
    for module in model.modules():
        if _is_batch_norm(module):
            module.reset_running_stats()
            momenta.append((module, module.momentum))
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module, _ in momenta:
        module.momentum = None  # a cumulative (equal-weight) average over the batches
    with no_grad():
        for batch in loader:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            if device is not None:
                batch = batch.to(device)
            model(batch)
    for module, momentum in momenta:
        module.momentum = momentum
    model.train(was_training)


# ---------------------------------------------------------------------------------------- SWALR


class SWALR(LRScheduler):
    """Anneal each group's learning rate to `swa_lr` over `anneal_epochs` steps, then hold it there.

    swa_lr: one value, or one per parameter group (stored as group["swa_lr"]);
    anneal_strategy: "cos" or "linear". The formula is PyTorch's chainable one: each step recovers
    the starting lr from the current one, so SWALR takes over from whatever schedule ran before it.
    """

    def __init__(self, optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos", last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"SWALR: expected an Optimizer, got {type(optimizer).__name__}")
        for value, group in zip(per_group("swa_lr", optimizer, swa_lr), optimizer.param_groups):
            group["swa_lr"] = value
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy!r}")
        self._set_anneal_func(anneal_strategy)
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be an int equal or greater than 0, got {anneal_epochs!r}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t):
        return t

    @staticmethod
    def _cosine_anneal(t):
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr, swa_lr, alpha):
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self):
        # Counted by steps taken (not last_epoch), as in PyTorch: step(epoch) does not jump.
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_alpha = self.anneal_func(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        prev_lrs = [self._get_initial_lr(group["lr"], group["swa_lr"], prev_alpha)
                    for group in self.optimizer.param_groups]
        alpha = self.anneal_func(max(0, min(1, step / max(1, self.anneal_epochs))))
        return [group["swa_lr"] * alpha + lr * (1 - alpha) for group, lr in zip(self.optimizer.param_groups, prev_lrs)]

    def _set_anneal_func(self, anneal_strategy):
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def state_dict(self) -> dict:
        """Everything but the optimizer and the anneal function (restored from its name)."""
        return {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict: dict):
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)
