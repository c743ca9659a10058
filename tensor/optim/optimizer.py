"""Optimizer: parameter groups, per-parameter state, zero_grad / step, and PyTorch-layout state dicts.

A subclass passes its hyperparameter defaults to `Optimizer.__init__`, checks them in
`_check_group(group)` and updates one group at a time in `_step_group(group)`. Updates work on
the raw arrays (`p.data`, `p.grad.data`) in place, so they record no graph and allocate little;
after changing a parameter they bump its version counter, so a graph that saved the old value
refuses to backward through it.

    opt = tensor.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad(); loss.backward(); opt.step()
"""
from __future__ import annotations

import functools
from collections import OrderedDict, defaultdict

import numpy as np

from ..autograd import enable_grad, no_grad
from ..backend import array_module, to_device_array
from ..tensor import Tensor, _Handle, _wrap


class Optimizer:
    """Base class of every optimizer; the state-dict layout is PyTorch's.

    params: an iterable of Tensors, or of dicts `{"params": [...], "lr": ...}` (parameter groups)
    whose keys override `defaults` for that group.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:  # an optimizer with its own step (LBFGS, a user's) runs the step hooks too
            cls.step = _with_step_hooks(cls.__dict__["step"])

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self._check_group(self.defaults)
        self.state = defaultdict(dict)  # parameter Tensor -> its state (buffers, step count)
        self.param_groups: list[dict] = []
        self._scratch_buffers = {}  # work arrays reused across steps (NumPy path), never saved
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of Tensors or dicts, but got a Tensor; "
                "pass [tensor] or model.parameters()"
            )
        _check_ordered(params)
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list; is the model empty?")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict):
        """Add a group of parameters (with its own hyperparameters) to optimize, e.g. when unfreezing layers."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict with a 'params' key, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"a parameter group needs a 'params' key; got keys {sorted(param_group)}")
        group = dict(param_group)
        group["params"] = _param_list(group["params"])
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_group(group)
        self._check_duplicates(group["params"])
        self.param_groups.append(group)

    def _check_duplicates(self, params):
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        for index, p in enumerate(params):
            if id(p) in seen:
                raise ValueError(
                    f"{type(self).__name__}: parameter {index} of the new group (shape {tuple(p.shape)}) is already "
                    "optimized (it appears twice in one group or in an earlier group); each parameter may appear once"
                )
            seen.add(id(p))

    def _check_group(self, group: dict):
        """Raise ValueError for a hyperparameter out of range; subclasses check their own.

        The base class checks nothing, as PyTorch's: a user's optimizer may have lr=None (Adafactor's
        relative step) or no lr at all.
        """

    # ------------------------------------------------------------------------------ hooks
    def _hook_table(self, name) -> OrderedDict:
        """The hook table `name` (PyTorch's attribute names), made on first use."""
        return self.__dict__.setdefault(name, OrderedDict())

    def _register(self, name, hook, prepend):
        table = self._hook_table(name)
        handle = _Handle(table, hook)
        if prepend:
            table.move_to_end(handle.id, last=False)
        return handle

    def register_step_pre_hook(self, hook):
        """Call `hook(optimizer, args, kwargs) -> None | (new args, new kwargs)` before each step()."""
        return self._register("_optimizer_step_pre_hooks", hook, False)

    def register_step_post_hook(self, hook):
        """Call `hook(optimizer, args, kwargs) -> None` after each step()."""
        return self._register("_optimizer_step_post_hooks", hook, False)

    def register_state_dict_pre_hook(self, hook, prepend: bool = False):
        """Call `hook(optimizer) -> None` before state_dict() builds its dict."""
        return self._register("_optimizer_state_dict_pre_hooks", hook, prepend)

    def register_state_dict_post_hook(self, hook, prepend: bool = False):
        """Call `hook(optimizer, state_dict) -> None | new state_dict` on the dict state_dict() returns."""
        return self._register("_optimizer_state_dict_post_hooks", hook, prepend)

    def register_load_state_dict_pre_hook(self, hook, prepend: bool = False):
        """Call `hook(optimizer, state_dict) -> None | new state_dict` before load_state_dict() reads it."""
        return self._register("_optimizer_load_state_dict_pre_hooks", hook, prepend)

    def register_load_state_dict_post_hook(self, hook, prepend: bool = False):
        """Call `hook(optimizer) -> None` after load_state_dict()."""
        return self._register("_optimizer_load_state_dict_post_hooks", hook, prepend)

    # ------------------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True):
        """Reset every parameter's gradient: drop it (the default, cheaper) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                grad = p._grad
                if grad is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    if grad.grad_fn is not None:  # a grad built with create_graph=True
                        grad.detach_()
                    grad.data.fill(0)
                    grad._bump_version()

    def step(self, closure=None):
        """Update every parameter that has a gradient. `closure` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self, group: dict):
        raise NotImplementedError(f"{type(self).__name__} must implement _step_group(group)")

    def _scratch(self, array, slot: int = 0):
        """A work array shaped like `array`, reused across parameters and steps so updates allocate nothing."""
        xp = array_module(array)
        if xp is not np:
            return xp.empty_like(array)  # CuPy's memory pool makes this cheap
        key = (array.dtype, slot)
        buffer = self._scratch_buffers.get(key)
        if buffer is None or buffer.size < array.size:
            buffer = self._scratch_buffers[key] = np.empty(array.size, array.dtype)
        return buffer[: array.size].reshape(array.shape)

    # ------------------------------------------------------------------------------ state dict
    def state_dict(self) -> dict:
        """{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}, as in PyTorch.

        Parameters are numbered in group order. The state tensors are the optimizer's own (not
        copies): save them (tensor.save) or deep-copy before stepping again.
        """
        for hook in list(self._hook_table("_optimizer_state_dict_pre_hooks").values()):
            hook(self)
        index_of = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index_of[id(p)]: s for p, s in self.state.items() if id(p) in index_of}
        state_dict = {"state": state, "param_groups": groups}
        for hook in list(self._hook_table("_optimizer_state_dict_post_hooks").values()):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict):
        """Restore hyperparameters and state saved by `state_dict()` from an optimizer over the same parameters."""
        for hook in list(self._hook_table("_optimizer_load_state_dict_pre_hooks").values()):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the saved state has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        param_of = {}
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: parameter group {number} has {len(group['params'])} "
                    f"parameters, but the saved group has {len(saved['params'])}"
                )
            param_of.update(zip(saved["params"], group["params"]))
        state = defaultdict(dict)
        # Our optimizers (those updating through _step_group) keep parameter-shaped buffers, so a saved buffer
        # of another shape means another model; a user's step() may keep any shape (Adafactor's row/col means).
        check_shape = type(self)._step_group is not Optimizer._step_group
        for key, saved_state in state_dict["state"].items():
            index = int(key)  # files written by other tools may store the index as a string
            if index not in param_of:
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter {index}, which no group holds")
            p = param_of[index]
            state[p] = {name: _state_value_for(p, name, value, index, check_shape)
                        for name, value in saved_state.items()}
        self.state = state
        self.param_groups = [{**saved, "params": group["params"]} for saved, group in zip(saved_groups, self.param_groups)]
        for hook in list(self._hook_table("_optimizer_load_state_dict_post_hooks").values()):
            hook(self)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines += [f"    {key}: {value}" for key, value in sorted(group.items()) if key != "params"]
        return "\n".join(lines + [")"])


# ---------------------------------------------------------------------------------- helpers


def _with_step_hooks(step):
    """`step` running the optimizer's step pre- and post-hooks around it (once, however deep super() goes).
    As in PyTorch, the hooks' `args` are step's positional arguments with the optimizer first."""

    @functools.wraps(step)
    def hooked_step(*args, **kwargs):
        self = args[0]
        pre = self.__dict__.get("_optimizer_step_pre_hooks")
        post = self.__dict__.get("_optimizer_step_post_hooks")
        if not (pre or post) or self.__dict__.get("_in_hooked_step"):
            return step(*args, **kwargs)
        for hook in list((pre or {}).values()):
            result = hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"a step pre-hook must return None or (args, kwargs), got {result!r}")
                args, kwargs = result
        self._in_hooked_step = True
        try:
            out = step(*args, **kwargs)
        finally:
            self._in_hooked_step = False
        for hook in list((post or {}).values()):
            hook(self, args, kwargs)
        return out

    return hooked_step


Optimizer.step = _with_step_hooks(Optimizer.step)


def _param_list(params) -> list:
    if isinstance(params, Tensor):
        return [_checked_param(params, 0)]
    _check_ordered(params)
    return [_checked_param(p, index) for index, p in enumerate(params)]


def _check_ordered(params):
    if isinstance(params, (set, frozenset)):
        raise TypeError("optimizer parameters must be an ordered collection (a list): a set's order varies between "
                        "runs, which would scramble the saved state")


def _checked_param(p, index):
    if not isinstance(p, Tensor):
        raise TypeError(f"optimizer can only optimize Tensors, but parameter {index} is a {type(p).__name__}")
    if not p.is_leaf:
        raise ValueError(
            f"can't optimize a non-leaf Tensor (parameter {index}, shape {tuple(p.shape)}, made by {p.grad_fn.name()}); "
            "optimize the leaf it was computed from, or use t.detach().requires_grad_()"
        )
    return p


_NUMBER_STATE = {"step": int, "mu_product": float}  # state entries kept as numbers, not buffers


def _state_value_for(p: Tensor, name, value, index, check_shape=True):
    """A loaded state entry in the form this optimizer uses: float buffers in the parameter's dtype and device."""
    if name in _NUMBER_STATE:  # PyTorch saves these as 0-d tensors; we keep plain numbers
        return _NUMBER_STATE[name](value.item()) if isinstance(value, Tensor) else value
    if not isinstance(value, Tensor):
        return value
    if check_shape and value.ndim and tuple(value.shape) != tuple(p.shape):
        raise ValueError(
            f"optimizer state {name!r} of parameter {index} has shape {tuple(value.shape)}, but the parameter has "
            f"shape {tuple(p.shape)}; was the state saved for a different model?"
        )
    array = to_device_array(value.data, p.device)
    dtype = p.dtype if value.dtype.kind == "f" else value.dtype
    return _wrap(array.astype(dtype, copy=True))  # own the buffer: the caller's dict stays untouched


def zeros_state(p: Tensor, fill: float = 0.0) -> Tensor:
    """A state buffer shaped like parameter `p`, on its device and in its dtype."""
    xp = array_module(p.data)
    return _wrap(xp.full(p.data.shape, fill, dtype=p.data.dtype))


def check_non_negative(opt, group, name):
    value = group[name]
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{type(opt).__name__}: {name} must be >= 0, got {name}={value!r}")


def check_betas(opt, group):
    betas = group["betas"]
    if len(betas) != 2:
        raise ValueError(f"{type(opt).__name__}: betas must be a pair (beta1, beta2), got {betas!r}")
    for number, beta in enumerate(betas, 1):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{type(opt).__name__}: beta{number} must be in [0, 1), got betas={tuple(betas)!r}")


def effective_grad(opt, param, grad, weight_decay, maximize):
    """The gradient an update uses: negated when maximizing, plus `weight_decay * param` (an L2 penalty).

    Written into a scratch array (never into `grad`, which the user may still read); returns `grad`
    itself when neither applies.
    """
    if not weight_decay and not maximize:
        return grad
    xp = array_module(grad)
    out = opt._scratch(grad, slot=1)
    if weight_decay:
        xp.multiply(param, weight_decay, out=out)
        (xp.subtract if maximize else xp.add)(out, grad, out=out)
    else:
        xp.negative(grad, out=out)
    return out


# Elements per block in `blocks`: a block of each of the ~6 arrays an update touches stays in the
# L2/L3 cache, so its dozen NumPy passes read main memory about once instead of a dozen times.
BLOCK = 1 << 16


def blocks(*arrays):
    """Matching flat blocks of the arrays (None entries stay None), for updates on big NumPy arrays.

    Small, non-contiguous or CuPy arrays come back whole (one tuple): CuPy updates are fused kernels.
    """
    first = arrays[0]
    if first.size <= BLOCK or type(first) is not np.ndarray or not all(
            a is None or a.flags.c_contiguous for a in arrays):
        yield arrays
        return
    flat = [None if a is None else a.reshape(-1) for a in arrays]
    for start in range(0, first.size, BLOCK):
        yield tuple(None if a is None else a[start:start + BLOCK] for a in flat)


def weight_decay_terms(group):
    """(param_scale, grad_decay) of a group with weight_decay and decoupled_weight_decay. Decoupled decay
    scales the parameter by 1 - lr * weight_decay (AdamW's); coupled decay, an L2 penalty, adds
    weight_decay * p to the gradient."""
    weight_decay = group["weight_decay"]
    if group["decoupled_weight_decay"]:
        return 1 - group["lr"] * weight_decay, 0.0
    return 1.0, weight_decay


def update_moments_(xp, g, exp_avg, exp_avg_sq, beta1, beta2, work):
    """Adam's moments in place: exp_avg lerps toward g by 1 - beta1 (PyTorch's lerp_), exp_avg_sq
    becomes beta2 * exp_avg_sq + (1 - beta2) * g * g. `work` is scratch of g's shape."""
    lerp_(xp, exp_avg, g, 1 - beta1, work)
    xp.multiply(exp_avg_sq, beta2, out=exp_avg_sq)
    xp.multiply(g, 1 - beta2, out=work)
    xp.multiply(work, g, out=work)
    xp.add(exp_avg_sq, work, out=exp_avg_sq)


def lerp_(xp, start, end, weight, work):
    """start += weight * (end - start) in place, with PyTorch's formula choice (exact at weight 0 and 1)."""
    xp.subtract(end, start, out=work)
    if weight < 0.5:
        xp.add(start, xp.multiply(work, weight, out=work), out=start)
    else:
        xp.subtract(end, xp.multiply(work, 1 - weight, out=work), out=start)


def params_with_grad(group):
    """(parameter, its raw gradient array) for the parameters of `group` that have a gradient."""
    for p in group["params"]:
        grad = p._grad
        if grad is not None:
            yield p, grad.data
