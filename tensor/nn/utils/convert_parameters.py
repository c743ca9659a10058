"""parameters_to_vector / vector_to_parameters: all parameters as one flat vector, and back."""
from __future__ import annotations

from ...autograd import no_grad
from ...errors import ShapeError
from ...ops.join import cat
from ...tensor import Tensor


def parameters_to_vector(parameters) -> Tensor:
    """One 1-D tensor holding every parameter's elements in order (differentiable, a copy)."""
    parameters = list(parameters)
    devices = {str(p.device) for p in parameters}
    if len(devices) > 1:
        raise ValueError(f"parameters_to_vector: parameters are on several devices ({', '.join(sorted(devices))})")
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of the 1-D vec into the parameters, in place (their identity stays)."""
    if not isinstance(vec, Tensor) or vec.dim() != 1:
        raise TypeError(f"vector_to_parameters: expected a 1-D Tensor, got {getattr(vec, 'shape', type(vec))}")
    parameters = list(parameters)
    needed = sum(p.numel() for p in parameters)
    if vec.numel() != needed:
        raise ShapeError(f"vector_to_parameters: the parameters hold {needed} elements but vec has {vec.numel()}")
    offset = 0
    with no_grad():
        for param in parameters:
            count = param.numel()
            param.data[...] = vec.data[offset:offset + count].reshape(param.shape).astype(param.dtype, copy=False)
            param._bump_version()
            offset += count
