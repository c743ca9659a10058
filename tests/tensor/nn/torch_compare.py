"""Helpers for the nn tests: run one function on raygrad and on PyTorch with the same inputs,
and compare values and gradients; copy weights between twin modules."""
import numpy as np

import tensor


def to_numpy(t):
    return t.detach().cpu().numpy() if isinstance(t, tensor.Tensor) else np.asarray(t)


def make(array, device, requires_grad=False, dtype=None):
    return tensor.tensor(np.asarray(array), dtype=dtype, device=device, requires_grad=requires_grad)


def _backward(out):
    """Backward with all-ones seed gradient (any output shape)."""
    if out.dim() == 0:
        out.backward()
    else:
        out.backward(tensor.ones(out.shape, dtype=out.dtype, device=out.device))


def compare_with_torch(fn, torch_fn, arrays, device, grads=None, rtol=1e-6, atol=1e-8):
    """fn(*tensors) against torch_fn(*torch tensors): values and the gradients of the float inputs.

    `grads` lists the argument positions whose gradients are compared (default: every float array).
    """
    torch = __import__("torch")
    if grads is None:
        grads = [i for i, a in enumerate(arrays) if np.asarray(a).dtype.kind == "f"]
    ours = [make(a, device, requires_grad=i in grads) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(np.asarray(a), requires_grad=i in grads) for i, a in enumerate(arrays)]
    out, ref = fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=rtol, atol=atol)
    if grads:
        _backward(out)
        ref.sum().backward()
        for i in grads:
            np.testing.assert_allclose(to_numpy(ours[i].grad), theirs[i].grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of argument {i}")
    return out


def gradcheck_float64(fn, arrays, device, grads=None, **kwargs):
    """gradcheck with the float arrays (or those listed in `grads`) as float64 leaves."""
    inputs = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        wants = a.dtype.kind == "f" if grads is None else i in grads
        inputs.append(make(a.astype(np.float64) if wants else a, device, requires_grad=wants))
    assert tensor.autograd.gradcheck(fn, inputs, **kwargs)


def copy_weights(ours, theirs):
    """Copy a raygrad module's state into its PyTorch twin (same architecture, same key names)."""
    torch = __import__("torch")
    state = {k: torch.tensor(to_numpy(v).copy()) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state)
