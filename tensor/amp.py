"""Mixed precision: `autocast` (float16 matmul/linear/conv on CUDA) and `GradScaler` (dynamic loss scaling).

    scaler = tensor.amp.GradScaler()
    with tensor.amp.autocast("cuda"):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)        # unscales the grads; skips the step if any is inf or NaN
    scaler.update()

The weights stay float32 ("master weights"); inside autocast the ops that gain from tensor
cores cast their inputs to float16, and autograd casts the gradients back to float32. The
region is recorded per thread; ops ask `autocast_dtype(device_type)` (or call
`autocast_inputs(*tensors)`), which costs one attribute read when autocast is off.

On the CPU both are no-ops rather than errors: autocast('cpu') runs in float32, and a
GradScaler built where CUDA is unavailable warns once and passes everything through
(build it with device='cpu' to scale on the CPU on purpose).
"""
from __future__ import annotations

import functools
import threading
import warnings

import numpy as np

from . import dtypes
from .backend import array_module, cuda_is_available
from .tensor import Tensor

# ============================================================================================ autocast


class _AutocastState(threading.local):
    cuda_dtype = None  # the dtype CUDA matmul/linear/conv compute in, or None outside autocast


_state = _AutocastState()


def autocast_dtype(device_type: str = "cuda"):
    """The dtype that matmul/linear/conv on `device_type` should compute in, or None when autocast is off."""
    return _state.cuda_dtype if device_type == "cuda" else None


def autocast_inputs(*tensors):
    """The tensors cast to the autocast dtype where autocast is on for their device; else unchanged.

    For op writers: `a, b = amp.autocast_inputs(a, b)` at the start of matmul. Only floating CUDA
    tensors are cast; the cast is differentiable, so gradients reach the float32 weights as float32.
    """
    dtype = _state.cuda_dtype
    if dtype is None:
        return tensors
    return tuple(t.to(dtype=dtype) if _castable(t, dtype) else t for t in tensors)


def _castable(t, dtype):
    return isinstance(t, Tensor) and t.is_cuda and t.dtype.kind == "f" and t.dtype != dtype


class autocast:  # noqa: N801 - PyTorch's name
    """Context manager and decorator: run matmul/linear/conv in `dtype` (float16) on CUDA inside it.

    device_type: 'cuda' or 'cpu' (a no-op: the CPU computes in float32). enabled=False turns
    autocast off inside an enclosing region. `cache_enabled` is accepted for PyTorch compatibility.
    """

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True, cache_enabled=None):
        if device_type not in ("cuda", "cpu"):
            raise ValueError(f"autocast: device_type must be 'cuda' or 'cpu', got {device_type!r}")
        self.device_type = device_type
        self.fast_dtype = dtypes.float16 if dtype is None else dtypes.as_dtype(dtype)
        if self.fast_dtype.kind != "f":
            raise ValueError(f"autocast: dtype must be a floating dtype (float16), got {self.fast_dtype}")
        self.enabled = bool(enabled)
        self._saved = []  # the enclosing region's dtype, per (re-entrant) use of this object

    def __enter__(self):
        if self.device_type == "cuda":
            self._saved.append(_state.cuda_dtype)
            _state.cuda_dtype = self.fast_dtype if self.enabled else None
        return self

    def __exit__(self, *exc):
        if self.device_type == "cuda":
            _state.cuda_dtype = self._saved.pop()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper


# ========================================================================================== GradScaler

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"
_warned_no_cuda = False


class GradScaler:
    """Dynamic loss scaling, so float16 gradients neither underflow nor overflow.

    The loss is multiplied by `scale` before backward. step() divides the gradients by it and
    skips the optimizer step when any is inf or NaN; update() then halves the scale
    (`backoff_factor`), or doubles it (`growth_factor`) after `growth_interval` clean steps.

    The signature is torch.amp.GradScaler's (device first); a number in first place is taken as
    init_scale, as torch.cuda.amp.GradScaler(65536.0) meant it.
    """

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        if isinstance(device, (int, float)):
            device, init_scale = "cuda", device
        if device not in ("cuda", "cpu"):
            raise ValueError(f"GradScaler: device must be 'cuda' or 'cpu', got {device!r}")
        if not growth_factor > 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor!r}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor!r}")
        if not (isinstance(growth_interval, int) and growth_interval > 0):
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        self.device = device
        self._enabled = bool(enabled) and _usable(device)
        self._scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._growth_tracker = 0
        self._per_optimizer = {}  # id(optimizer) -> {"stage": ..., "found_inf": bool}

    # -------------------------------------------------------------------------------- the steps
    def scale(self, outputs):
        """outputs * scale (a Tensor, or a list/tuple of them); unchanged when disabled."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        return outputs * self._scale

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by the scale in place and note whether any is inf/NaN.

        Call it before clipping gradients; step() calls it if you did not.
        """
        if not self._enabled:
            return
        record = self._record(optimizer)
        if record["stage"] == _UNSCALED:
            raise RuntimeError("GradScaler.unscale_() has already been called on this optimizer since the last "
                               "update(); call it once per step")
        if record["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.unscale_() is being called after step(); call update() first")
        record["found_inf"] = _unscale_grads(optimizer, 1.0 / self._scale)
        record["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(), unless the unscaled gradients hold inf or NaN (then the step is skipped: None)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("GradScaler.step() does not support closures: the loss must be scaled before "
                               "backward, which a closure would do itself")
        record = self._record(optimizer)
        if record["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.step() has already been called on this optimizer since the last update()")
        if record["stage"] == _READY:
            self.unscale_(optimizer)
        record["stage"] = _STEPPED
        return None if record["found_inf"] else optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        """Adjust the scale for the next iteration: back off after inf/NaN, grow after growth_interval clean steps."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(new_scale.item() if isinstance(new_scale, Tensor) else new_scale)
        else:
            checked = [r for r in self._per_optimizer.values() if r["stage"] != _READY]
            if not checked:
                raise RuntimeError("GradScaler.update(): no gradients were checked since the last update(); "
                                   "call scaler.step(optimizer) (or unscale_) first")
            if any(r["found_inf"] for r in checked):
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
        self._per_optimizer = {}

    def _record(self, optimizer):
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": False})

    # ------------------------------------------------------------------------------ accessors
    def is_enabled(self):
        return self._enabled

    def get_scale(self):
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self):
        return self._growth_factor

    def get_backoff_factor(self):
        return self._backoff_factor

    def get_growth_interval(self):
        return self._growth_interval

    def state_dict(self):
        """PyTorch's keys; empty when disabled, as in PyTorch."""
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError("GradScaler.load_state_dict: the state dict is empty, so it was probably saved from "
                               "a disabled GradScaler")
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])


def _usable(device):
    """False (after one warning per process) when a CUDA scaler is asked for where there is no CUDA."""
    global _warned_no_cuda
    if device == "cpu" or cuda_is_available():
        return True
    if not _warned_no_cuda:
        warnings.warn("GradScaler is enabled, but CUDA is not available; disabling it (scale() and step() pass "
                      "through). Use GradScaler(device='cpu') to scale on the CPU.", UserWarning, stacklevel=3)
        _warned_no_cuda = True
    return False


def _unscale_grads(optimizer, inv_scale) -> bool:
    """Multiply every gradient by inv_scale in place; True if any was inf or NaN (one device sync per device)."""
    found_inf = False
    flags = {}  # CuPy device id -> int32 flag array the fused kernel sets
    for group in optimizer.param_groups:
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            if grad.dtype == np.float16:
                raise ValueError("GradScaler: attempting to unscale float16 gradients; keep the parameters in "
                                 "float32 (autocast casts them for the forward pass)")
            data = grad.data
            if type(data) is np.ndarray:
                found_inf |= not np.isfinite(data).all()
                np.multiply(data, inv_scale, out=data)
            else:
                from .optim import _kernels

                xp = array_module(data)
                flag = flags.get(data.device.id)
                if flag is None:
                    with data.device:
                        flag = flags[data.device.id] = xp.zeros(1, dtype=np.int32)
                _kernels.unscale_(data, inv_scale, flag)
            grad._bump_version()
    return found_inf or any(int(flag[0]) for flag in flags.values())
