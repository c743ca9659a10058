"""linear: input @ weight.T + bias as one Function, straight into BLAS.

`weight.T` is a transposed view, which NumPy/CuPy hand to GEMM as a transpose flag: no copy.
Inputs with extra leading dims (N, *, in) are folded to 2-D, a view when contiguous.
"""
from __future__ import annotations

from ...amp import autocast_inputs
from ...autograd import Function
from ...errors import DTypeError, ShapeError
from ...graph_backward import saved_in_graph
from ...ops._util import sum_rows


class Linear(Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        flat = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        out = flat @ weight.T
        if bias is not None:
            out += bias  # out is a fresh array: adding in place saves a pass over memory
        ctx.save_for_backward(x, weight)  # x itself (not flat): backward_graph needs the input
        ctx.shape = x.shape
        return out if x.ndim == 2 else out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        flat = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        need_x, need_w, need_b = ctx.needs_input_grad
        grad2d = grad if grad.ndim == 2 else grad.reshape(-1, grad.shape[-1])
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = grad2d @ weight
            if len(ctx.shape) != 2:
                grad_x = grad_x.reshape(ctx.shape)
        if need_w:
            grad_w = grad2d.T @ flat
        if need_b:
            grad_b = sum_rows(grad2d)
        return grad_x, grad_w, grad_b

    @staticmethod
    def backward_graph(ctx, grad):
        x, weight = saved_in_graph(ctx)
        need_x, need_w, need_b = ctx.needs_input_grad
        flat = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        grad2d = grad if grad.ndim == 2 else grad.reshape(-1, grad.shape[-1])
        grad_x = (grad2d @ weight).reshape(ctx.shape) if need_x else None
        grad_w = grad2d.mT @ flat if need_w else None
        grad_b = grad2d.sum(0) if need_b else None
        return grad_x, grad_w, grad_b


def linear(input, weight, bias=None):
    """y = input @ weight.T + bias for input (*, in_features), weight (out, in), bias (out,)."""
    input, weight, bias = autocast_inputs(input, weight, bias)  # float16 on CUDA inside tensor.amp.autocast
    if weight.dim() != 2:
        raise ShapeError(f"linear: weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if input.dim() == 0 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"linear: input of shape {tuple(input.shape)} does not fit weight {tuple(weight.shape)}: the last dim "
            f"must be in_features={weight.shape[1]}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ShapeError(f"linear: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    if input.dtype != weight.dtype:
        raise DTypeError(
            f"linear: input dtype {input.dtype} differs from weight dtype {weight.dtype}; convert the input with "
            f".to({weight.dtype}) or the module with .to(dtype)"
        )
    if input.dim() == 1:
        return Linear.apply(input.reshape(1, -1), weight, bias).reshape(-1)
    return Linear.apply(input, weight, bias)
