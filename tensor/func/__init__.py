"""tensor.func: torch.func's composable function transforms over raygrad's reverse-mode autograd.

grad, grad_and_value, vjp, jvp, jacrev, jacfwd, hessian (transforms.py), vmap (vmap.py, a Python loop
over the batch) and functional_call. They compose: grad(grad(f)), hessian = jacfwd(jacrev(f)), and
vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y) for per-sample gradients of a module's loss
through functional_call. There is no forward mode: jvp and jacfwd run reverse passes (see
transforms.py) and give torch.func's values and layouts.
"""
from __future__ import annotations

from ..nn.utils import stateless as _stateless
from .transforms import grad, grad_and_value, hessian, jacfwd, jacrev, jvp, vjp
from .vmap import vmap

__all__ = ["functional_call", "grad", "grad_and_value", "hessian", "jacfwd", "jacrev", "jvp", "vjp", "vmap"]


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights=True, strict=False):
    """module(*args, **kwargs) with its parameters and buffers replaced by the given tensors for this
    call (torch.func.functional_call): tensor.nn.utils.stateless.functional_call under torch.func's
    argument names. parameter_and_buffer_dicts: a dict {dotted name: Tensor} or a sequence of them."""
    return _stateless.functional_call(module, parameter_and_buffer_dicts, args, kwargs, tie_weights=tie_weights,
                                      strict=strict)
