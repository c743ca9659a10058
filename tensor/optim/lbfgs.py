"""L-BFGS (PyTorch's algorithm, after minFunc), with its optional strong-Wolfe line search.

All parameters are handled as one flat vector: the gradient is gathered into a flat array, and a
step of length t along a flat direction d is added back parameter by parameter. The curvature
history (the last `history_size` pairs s = x_{k+1} - x_k, y = g_{k+1} - g_k) gives the two-loop
recursion's search direction. Scalars (t, ys, H_diag, ...) stay 0-d arrays of the parameters'
dtype, as PyTorch keeps them 0-d tensors, so float32 runs round as PyTorch's do.

    opt = tensor.optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")
    def closure():
        opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); return loss
    opt.step(closure)
"""
from __future__ import annotations

from ..autograd import enable_grad, no_grad
from ..backend import array_module, to_device_array
from ..tensor import Tensor, _wrap
from ._line_search import strong_wolfe
from .optimizer import Optimizer, check_non_negative

# State entries kept across steps, besides the counters func_evals and n_iter.
_CARRIED = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")


class LBFGS(Optimizer):
    """Limited-memory BFGS over all parameters at once; `step(closure)` runs up to max_iter iterations.

    One parameter group only (PyTorch's restriction). The state lives under the first parameter,
    as in PyTorch. max_eval defaults to max_iter * 5 // 4.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        self._params = self.param_groups[0]["params"]

    def _check_group(self, group):
        check_non_negative(self, group, "lr")
        for name in ("max_iter", "max_eval", "history_size"):
            if not isinstance(group[name], int) or group[name] < 1:
                raise ValueError(f"LBFGS: {name} must be an int >= 1, got {name}={group[name]!r}")
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got {group['line_search_fn']!r}")

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups): give it one list of "
                             "parameters")
        super().add_param_group(param_group)
        devices = {p.device for p in self.param_groups[0]["params"]}
        if len(devices) > 1:
            raise ValueError(f"LBFGS: all parameters must be on one device, got {sorted(map(str, devices))}")

    # ------------------------------------------------------------------ the flat parameter vector
    def _gather_flat_grad(self):
        first = self._params[0].data
        xp = array_module(first)
        views = [xp.zeros(p.data.size, dtype=p.data.dtype) if p._grad is None else p._grad.data.reshape(-1)
                 for p in self._params]
        return xp.concatenate(views)

    def _add_grad(self, step_size, update):
        offset = 0
        for p in self._params:
            size = p.data.size
            p.data += step_size * update[offset:offset + size].reshape(p.data.shape)
            p._bump_version()
            offset += size

    def _clone_param(self):
        return [p.data.copy() for p in self._params]

    def _set_param(self, arrays):
        for p, array in zip(self._params, arrays):
            p.data[...] = array
            p._bump_version()

    def _directional_evaluate(self, closure, x, t, d):
        """Loss and flat gradient at x + t d; the parameters are put back to x afterwards."""
        self._add_grad(t, d)
        loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # ------------------------------------------------------------------ step
    def step(self, closure=None):
        """Run up to max_iter L-BFGS iterations; `closure` clears the gradients, re-evaluates the model,
        calls backward and returns the loss. Returns the loss of the first evaluation."""
        if closure is None:
            raise TypeError("LBFGS.step needs a closure that re-evaluates the model: "
                            "def closure(): opt.zero_grad(); loss = ...; loss.backward(); return loss")

        def evaluate():
            with enable_grad():
                return closure()

        with no_grad():
            return self._run(evaluate)

    def _run(self, closure):
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if abs(flat_grad).max() <= tolerance_grad:  # already optimal
            return orig_loss
        carried = {name: _unpack(state.get(name)) for name in _CARRIED}
        d, t, prev_flat_grad, prev_loss = (carried[k] for k in ("d", "t", "prev_flat_grad", "prev_loss"))
        history = (carried["old_dirs"], carried["old_stps"], carried["ro"], carried["H_diag"])

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                history = ([], [], [], 1)
            else:
                history = _update_history(history, flat_grad - prev_flat_grad, d * t, group["history_size"])
                d = self._direction(state, flat_grad, history, group["history_size"])
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            # the first step is scaled down by the gradient's size; later ones trust the curvature
            t = min(1.0, 1.0 / abs(flat_grad).sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)  # directional derivative
            if gtd > -tolerance_change:
                break
            ls_func_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x_init = self._clone_param()

                def obj_func(x, step, direction):
                    return self._directional_evaluate(closure, x, step, direction)

                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)  # a fixed step
                opt_cond = False
                if n_iter != max_iter:  # the last iteration's loss is not needed (and may be stochastic)
                    loss = float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if abs(d * t).max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break  # no progress

        old_dirs, old_stps, ro, H_diag = history
        carried = dict(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                       prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        state.update({name: _pack(value, self._params[0]) for name, value in carried.items()})
        return orig_loss

    def _direction(self, state, flat_grad, history, history_size):
        """The two-loop recursion: -H grad with H the L-BFGS inverse-Hessian estimate."""
        old_dirs, old_stps, ro, H_diag = history
        if "al" not in state:
            state["al"] = [None] * history_size
        al = state["al"]
        q = -flat_grad
        for i in range(len(old_dirs) - 1, -1, -1):
            al[i] = _wrap(array_module(q).asarray(old_stps[i].dot(q) * ro[i]))
            q -= al[i].data * old_dirs[i]
        r = q * H_diag
        for i in range(len(old_dirs)):
            be_i = old_dirs[i].dot(r) * ro[i]
            r += (al[i].data - be_i) * old_stps[i]
        return r

    # ------------------------------------------------------------------ state dict
    def load_state_dict(self, state_dict):
        """Restore a state saved by `state_dict()`; the flat history vectors skip the per-parameter shape check."""
        super().load_state_dict({"state": {}, "param_groups": state_dict["param_groups"]})
        self._params = self.param_groups[0]["params"]
        first = self._params[0]
        for key, saved in state_dict["state"].items():
            self.state[self._params[int(key)]] = {name: _copy_to(value, first) for name, value in saved.items()}


def _update_history(history, y, s, history_size):
    """Add the pair (y, s) when it keeps the estimate positive definite (y.s > 1e-10), dropping the oldest."""
    old_dirs, old_stps, ro, H_diag = history
    ys = y.dot(s)
    if ys > 1e-10:
        if len(old_dirs) == history_size:
            old_dirs.pop(0)
            old_stps.pop(0)
            ro.pop(0)
        old_dirs.append(y)
        old_stps.append(s)
        ro.append(1.0 / ys)
        H_diag = ys / y.dot(y)  # the scale of the initial inverse Hessian
    return old_dirs, old_stps, ro, H_diag


def _pack(value, like: Tensor):
    """A state entry as the state dict holds it: arrays (and 0-d scalars) as Tensors, lists item by item."""
    if isinstance(value, list):
        return [_pack(v, like) for v in value]
    if value is None or isinstance(value, Tensor) or type(value) in (int, float):
        return value
    return _wrap(array_module(like.data).asarray(value))


def _unpack(value):
    """A state entry as the step works on it: raw arrays (0-d for scalars), lists item by item."""
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    return value.data if isinstance(value, Tensor) else value


def _copy_to(value, like: Tensor):
    """A loaded entry copied onto the parameters' device, floats in their dtype (the caller's dict stays as is)."""
    if isinstance(value, list):
        return [_copy_to(v, like) for v in value]
    if not isinstance(value, Tensor):
        return value
    array = to_device_array(value.data, like.device)
    dtype = like.dtype if value.dtype.kind == "f" else value.dtype
    return _wrap(array.astype(dtype, copy=True))
