"""tensor.func: torch.func's composable function transforms over raygrad's reverse-mode autograd.

grad, grad_and_value, vjp, jvp, linearize, jacrev, jacfwd, hessian (transforms.py), vmap (vmap.py, a
Python loop over the batch), functional_call, stack_module_state (model ensembling),
replace_all_batch_norm_modules_, and functionalize / debug_unwrap (identities on this eager engine). They compose: grad(grad(f)), hessian = jacfwd(jacrev(f)), and
vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y) for per-sample gradients of a module's loss
through functional_call. There is no forward mode: jvp and jacfwd run reverse passes (see
transforms.py) and give torch.func's values and layouts.
"""
from __future__ import annotations

from ..nn.utils import stateless as _stateless
from ..ops.join import stack as _stack
from .transforms import grad, grad_and_value, hessian, jacfwd, jacrev, jvp, linearize, vjp
from .vmap import vmap

__all__ = ["debug_unwrap", "functional_call", "functionalize", "grad", "grad_and_value", "hessian", "jacfwd",
           "jacrev", "jvp", "linearize", "replace_all_batch_norm_modules_", "stack_module_state", "vjp", "vmap"]


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights=True, strict=False):
    """module(*args, **kwargs) with its parameters and buffers replaced by the given tensors for this
    call (torch.func.functional_call): tensor.nn.utils.stateless.functional_call under torch.func's
    argument names. parameter_and_buffer_dicts: a dict {dotted name: Tensor} or a sequence of them."""
    return _stateless.functional_call(module, parameter_and_buffer_dicts, args, kwargs, tie_weights=tie_weights,
                                      strict=strict)


def stack_module_state(models):
    """(params, buffers) for ensembling M modules of one class with vmap (torch.func.stack_module_state):
    dicts {dotted name: Tensor of shape (M, *shape)}. Stacked parameters are new leaves (requiring grad
    where the models' do), ready for an optimizer; buffers are stacked as they are. Use with
    vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None)); any one of the
    models (e.g. copy.deepcopy(models[0])) serves as base: raygrad has no 'meta' device."""
    models = list(models)
    if len(models) == 0:
        raise RuntimeError("stack_module_state: Expected at least one model, got 0.")
    if len({m.training for m in models}) > 1:
        raise RuntimeError("stack_module_state: Expected all models to have the same training/eval mode.")
    if any(type(m) is not type(models[0]) for m in models):
        raise RuntimeError("stack_module_state: Expected all models to be of the same class.")
    all_params = [dict(m.named_parameters()) for m in models]
    all_buffers = [dict(m.named_buffers()) for m in models]
    params = {k: _stacked_leaf([p[k] for p in all_params], k) for k in all_params[0]}
    buffers = {k: _stacked_leaf([b[k] for b in all_buffers], k) for k in all_buffers[0]}
    return params, buffers


def _stacked_leaf(tensors, name):
    flags = {t.requires_grad for t in tensors}
    if len(flags) > 1:
        raise RuntimeError(f"Expected {name} from each model to have the same .requires_grad")
    result = _stack(tensors)
    return result.detach().requires_grad_() if flags == {True} else result


def replace_all_batch_norm_modules_(root):
    """Every BatchNorm in root (in place) stops tracking running statistics, so it always normalizes by
    the batch's own and writes no buffers, as vmap over a training-mode model needs (functorch's MAML).
    InstanceNorm is left as it is, as in torch. Returns root."""
    from ..nn.instancenorm import _InstanceNorm
    from ..nn.normalization import _BatchNorm

    for module in root.modules():
        if isinstance(module, _BatchNorm) and not isinstance(module, _InstanceNorm) and module.track_running_stats:
            module.running_mean = None
            module.running_var = None
            module.num_batches_tracked = None
            module.track_running_stats = False
    return root


def functionalize(func, *, remove="mutations"):
    """func itself (torch.func.functionalize): removing mutations only matters to graph capture, and this
    eager engine computes the same values, input mutations included, by running func as written."""
    if remove not in ("mutations", "mutations_and_views"):
        raise RuntimeError(f"functionalize(f, remove='mutations'): received invalid argument for remove={remove}. "
                           "Valid options are 'mutations' and 'mutations_and_views'.")
    return func


def debug_unwrap(tensor, *, recurse=True):
    """tensor itself: raygrad's transforms wrap no tensors (torch.func.debug_unwrap)."""
    return tensor
