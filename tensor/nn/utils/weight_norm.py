"""Weight normalization (Salimans and Kingma, 2016), the classic hook-based form: w = g * v / ||v||.

weight_norm(module, name, dim) replaces the parameter `name` by two parameters, `name_g` (the
magnitudes, shaped like the norm: (out, 1, ..., 1) for dim=0) and `name_v` (the direction, shaped
like the weight), and a forward pre-hook that recomputes `module.<name>` from them before every
forward. dim=None (or -1, PyTorch's legacy spelling) takes one norm over the whole tensor.
PyTorch deprecates this form in favour of nn.utils.parametrizations.weight_norm, with a FutureWarning;
so does this one.
"""
from __future__ import annotations

import warnings

from ..parameter import Parameter


def norm_except_dim(v, pow=2, dim=0):  # noqa: A002 - PyTorch's argument name
    """The pow-norm of v over every dim but `dim`, keeping v's rank (size 1 except along dim);
    dim=-1 gives the norm of the whole tensor as a 0-d tensor, as torch.norm_except_dim does."""
    if dim == -1:
        return v.norm(pow)
    ndim = v.dim()
    if not -ndim <= dim < ndim:
        raise IndexError(f"weight_norm: dim {dim} is out of range for a weight of shape {tuple(v.shape)} "
                         f"(expected in [-{ndim}, {ndim - 1}], or None for the whole tensor)")
    dim %= ndim
    others = tuple(d for d in range(ndim) if d != dim)
    return v.norm(pow, others, keepdim=True)


def check_initialized(weight, what):
    from ..lazy import UninitializedParameter  # lazy layers import the layer modules: import on use

    if isinstance(weight, UninitializedParameter):
        raise ValueError(f"The module passed to `{what}` can't have uninitialized parameters. Make sure to run the "
                         f"dummy forward before applying {what}")


def _weight_norm(v, g, dim=0):
    """v * (g / ||v||) with the norm taken as norm_except_dim(v, 2, dim): torch._weight_norm."""
    return v * (g / norm_except_dim(v, 2, dim))


class WeightNorm:
    """The forward pre-hook weight_norm registers: recomputes module.<name> from <name>_g and <name>_v."""

    def __init__(self, name: str, dim: int | None):
        self.name = name
        self.dim = -1 if dim is None else dim

    def compute_weight(self, module):
        return _weight_norm(getattr(module, self.name + "_v"), getattr(module, self.name + "_g"), self.dim)

    @staticmethod
    def apply(module, name: str, dim: int | None) -> WeightNorm:
        warnings.warn("`tensor.nn.utils.weight_norm` is deprecated in favor of "
                      "`tensor.nn.utils.parametrizations.weight_norm`.", FutureWarning, stacklevel=3)
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
        weight = module._parameters.get(name)
        if weight is None:
            raise ValueError(f"weight_norm: {type(module).__name__} has no parameter named {name!r} "
                             f"(its parameters: {', '.join(module._parameters) or 'none'})")
        check_initialized(weight, "WeightNorm")
        fn = WeightNorm(name, dim)
        g = norm_except_dim(weight.detach(), 2, fn.dim)
        del module._parameters[name]
        module.register_parameter(name + "_g", Parameter(g))
        module.register_parameter(name + "_v", Parameter(weight.detach()))
        setattr(module, name, fn.compute_weight(module))
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module):
        weight = self.compute_weight(module)
        delattr(module, self.name)
        del module._parameters[self.name + "_g"]
        del module._parameters[self.name + "_v"]
        setattr(module, self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name: str = "weight", dim: int | None = 0):
    """Reparametrize module.<name> as <name>_g * <name>_v / ||<name>_v|| (norm over every dim but `dim`;
    dim=None: over the whole tensor), recomputed before each forward. Returns the module."""
    WeightNorm.apply(module, name, dim)
    return module


def remove_weight_norm(module, name: str = "weight"):
    """Undo weight_norm: module.<name> becomes a plain Parameter holding the current normalized weight."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, WeightNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"weight_norm of '{name}' not found in {module}")
