"""BasePruningMethod and PruningContainer: the forward pre-hook that reparametrizes a pruned tensor
(<name>_orig * <name>_mask), and the chaining of successive prunings. Public through nn.utils.prune.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from ...creation import ones_like


class BasePruningMethod(ABC):
    """A pruning method: compute_mask(t, default_mask) -> mask, and the forward pre-hook that applies it.
    Subclasses set PRUNING_TYPE ('unstructured', 'structured' with a `dim` attribute, or 'global')."""

    _tensor_name: str | None = None

    def __call__(self, module, inputs):
        setattr(module, self._tensor_name, self.apply_mask(module))

    @abstractmethod
    def compute_mask(self, t, default_mask):
        """The new mask (shaped like t) from the importance scores t and the current mask default_mask."""

    def apply_mask(self, module):
        """<name>_orig * <name>_mask, in <name>_orig's dtype (differentiable in <name>_orig)."""
        if self._tensor_name is None:
            raise AssertionError(f"Module {module} has to be pruned")
        mask = getattr(module, self._tensor_name + "_mask")
        orig = getattr(module, self._tensor_name + "_orig")
        return mask.to(dtype=orig.dtype) * orig

    @classmethod
    def apply(cls, module, name, *args, importance_scores=None, **kwargs):
        """Prune module.<name> with cls(*args, **kwargs) (chained after any pruning already there);
        importance_scores (shaped like the parameter) rank entries instead of its values. Returns the
        method now registered as the hook (a PruningContainer when chained)."""
        method, old_key, old_method = _get_composite_method(cls, module, name, *args, **kwargs)
        orig = getattr(module, name)
        importance_scores = _scores_for(importance_scores, orig, f"parameter {name} of {module}")
        chained = isinstance(method, PruningContainer)
        if not chained:
            module.register_parameter(name + "_orig", orig)
            del module._parameters[name]
            default_mask = ones_like(orig)
        else:
            default_mask = getattr(module, name + "_mask").detach().clone()
        try:
            mask = method.compute_mask(importance_scores, default_mask=default_mask)
            module.register_buffer(name + "_mask", mask)
            setattr(module, name, method.apply_mask(module))
            module.register_forward_pre_hook(method)
        except Exception:
            if not chained:
                module.register_parameter(name, module._parameters.pop(name + "_orig"))
            elif old_key is not None:  # unlike torch, leave the earlier pruning as it was
                if isinstance(old_method, PruningContainer) and old_method is method:
                    method._pruning_methods = method._pruning_methods[:-1]
                module._forward_pre_hooks[old_key] = old_method
            raise
        return method

    def prune(self, t, default_mask=None, importance_scores=None):
        """t * compute_mask(importance_scores or t, default_mask or ones): a pruned copy of t."""
        importance_scores = _scores_for(importance_scores, t, "tensor t")
        default_mask = default_mask if default_mask is not None else ones_like(t)
        return t * self.compute_mask(importance_scores, default_mask=default_mask)

    def remove(self, module) -> None:
        """Make the pruning permanent: module.<name> becomes the Parameter <name>_orig (same object)
        holding orig * mask; <name>_orig and <name>_mask go. The caller removes the hook."""
        if self._tensor_name is None:
            raise AssertionError(f"Module {module} has to be pruned before pruning can be removed")
        weight = self.apply_mask(module)
        if hasattr(module, self._tensor_name):
            delattr(module, self._tensor_name)
        orig = module._parameters[self._tensor_name + "_orig"]
        orig.data = weight.data
        del module._parameters[self._tensor_name + "_orig"]
        del module._buffers[self._tensor_name + "_mask"]
        setattr(module, self._tensor_name, orig)


def _get_composite_method(cls, module, name, *args, **kwargs):
    """cls(*args, **kwargs) for `name`, chained into a PruningContainer with the hook already pruning
    `name` (which is taken off the hook table; apply registers the result)."""
    found = [(key, hook) for key, hook in module._forward_pre_hooks.items()
             if isinstance(hook, BasePruningMethod) and hook._tensor_name == name]
    if len(found) > 1:
        raise AssertionError(f"Avoid adding multiple pruning hooks to the same tensor {name} of module {module}. "
                             "Use a PruningContainer.")
    old_key, old_method = found[0] if found else (None, None)
    if old_key is not None:
        del module._forward_pre_hooks[old_key]
    method = cls(*args, **kwargs)
    method._tensor_name = name
    if isinstance(old_method, PruningContainer):
        old_method.add_pruning_method(method)
        method = old_method
    elif old_method is not None:
        container = PruningContainer(old_method)
        container.add_pruning_method(method)
        method = container
    return method, old_key, old_method


class PruningContainer(BasePruningMethod):
    """A sequence of pruning methods on one tensor, applied in turn: each new mask only acts on what
    the earlier ones left (torch's _combine_masks)."""

    def __init__(self, *args) -> None:
        self._pruning_methods: tuple[BasePruningMethod, ...] = ()
        if len(args) == 1:
            self._tensor_name = args[0]._tensor_name
            self.add_pruning_method(args[0])
        else:
            for method in args:
                if self._tensor_name is None:  # torch raises AttributeError here; adopt the first name
                    self._tensor_name = getattr(method, "_tensor_name", None)
                self.add_pruning_method(method)

    def add_pruning_method(self, method) -> None:
        """Append a pruning method acting on the same tensor name."""
        if not isinstance(method, BasePruningMethod) and method is not None:
            raise TypeError(f"{type(method)} is not a BasePruningMethod subclass")
        if method is not None and self._tensor_name != method._tensor_name:
            raise ValueError(f"Can only add pruning methods acting on the parameter named '{self._tensor_name}' "
                             f"to PruningContainer {self}. Found '{method._tensor_name}'")
        self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self):
        return iter(self._pruning_methods)

    def __getitem__(self, idx):
        return self._pruning_methods[idx]

    def compute_mask(self, t, default_mask):
        """default_mask with the last method's mask computed on the still-unpruned part of t."""
        method = self._pruning_methods[-1]
        new_mask = default_mask.to(dtype=t.dtype)
        if method.PRUNING_TYPE == "unstructured":
            slc = default_mask == 1
        elif method.PRUNING_TYPE == "structured":
            if not hasattr(method, "dim"):
                raise AttributeError('Pruning methods of PRUNING_TYPE "structured" need to have the attribute '
                                     "`dim` defined.")
            n_dims = t.dim()
            dim = method.dim + n_dims if method.dim < 0 else method.dim
            if dim < 0:
                raise IndexError(f"Index is out of bounds for tensor with dimensions {n_dims}")
            keep_channel = default_mask.sum(dim=[d for d in range(n_dims) if d != dim]) != 0
            slc = tuple(keep_channel if d == dim else slice(None) for d in range(n_dims))
        elif method.PRUNING_TYPE == "global":
            slc = (slice(None),) * len(t.shape)
        else:
            raise ValueError(f"Unrecognized PRUNING_TYPE {method.PRUNING_TYPE}")
        partial_mask = method.compute_mask(t[slc], default_mask=default_mask[slc])
        new_mask[slc] = partial_mask.to(dtype=new_mask.dtype)
        return new_mask


def _scores_for(importance_scores, t, what):
    """The scores that rank t's entries: importance_scores (t's shape, as PyTorch asserts), else t itself."""
    if importance_scores is None:
        return t
    if importance_scores.shape != t.shape:
        raise AssertionError(f"importance_scores should have the same shape as {what}, "
                             f"got {importance_scores.shape} vs {t.shape}")
    return importance_scores

