"""Shared checks for op tests: forward against NumPy, gradients against finite differences, and
values and gradients against PyTorch."""
import re

import numpy as np
import pytest

import tensor


def to_numpy(t):
    return t.detach().cpu().numpy() if isinstance(t, tensor.Tensor) else np.asarray(t)


def _torch_version():
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def _release(version):
    return tuple(int(n) for n in re.match(r"(\d+)\.(\d+)", version).groups())  # "2.13.0+cpu" -> (2, 13)


def torch_at_least(version):
    """Whether the installed PyTorch, the oracle, is release `version` ("2.13") or later (False without it).

    Machines hold different releases (the GPU machine's is older than this one's): behaviour that a newer
    torch changed is compared only where that torch is installed."""
    found = _torch_version()
    return found is not None and _release(found) >= _release(version)


def needs_torch(version, why):
    """A skip mark, for a test or one pytest.param, that compares with PyTorch behaviour new in `version`:
    an older torch answers otherwise (`why`), which says nothing about raygrad."""
    return pytest.mark.skipif(not torch_at_least(version),
                              reason=f"needs torch >= {version}, found {_torch_version()}: {why}")


def make(array, device, requires_grad=False, dtype=None):
    """A tensor on `device` from a NumPy array (float64 arrays stay float64 for gradcheck)."""
    return tensor.tensor(np.asarray(array), dtype=dtype, device=device, requires_grad=requires_grad)


def check_forward(fn, np_fn, arrays, device, rtol=1e-5, atol=1e-6):
    """fn on tensors equals np_fn on the same arrays."""
    result = fn(*[make(a, device) for a in arrays])
    expected = np_fn(*arrays)
    np.testing.assert_allclose(to_numpy(result), expected, rtol=rtol, atol=atol)
    return result


def check_grad(fn, arrays, device, **kwargs):
    """gradcheck in float64 with every float input requiring grad."""
    inputs = [
        make(np.asarray(a, dtype=np.float64), device, requires_grad=True) if np.asarray(a).dtype.kind == "f" else make(a, device)
        for a in arrays
    ]
    assert tensor.autograd.gradcheck(fn, inputs, **kwargs)


def noncontiguous(array):
    """The same values in a non-contiguous layout (a transposed copy, transposed back)."""
    return np.ascontiguousarray(array.T).T


def compare_with_torch(ours_fn, torch_fn, arrays, device, constants=(), rtol=1e-7, atol=1e-10):
    """The same float64 inputs through raygrad and PyTorch: the same output, and the same gradients
    of `arrays` for one random output gradient. `constants` (targets, weights) follow the arrays,
    without gradients. Returns raygrad's output."""
    import torch

    xs = [make(a, device, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = ours_fn(*xs, *[make(c, device) for c in constants])
    ref = torch_fn(*ts, *[torch.tensor(c) for c in constants])
    assert tuple(out.shape) == tuple(ref.shape)
    np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=rtol, atol=atol, err_msg="output")
    seed = np.random.default_rng(7).standard_normal(tuple(ref.shape))
    out.backward(make(seed, device))
    ref.backward(torch.tensor(seed))
    for i, (x, t) in enumerate(zip(xs, ts)):
        np.testing.assert_allclose(to_numpy(x.grad), t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"grad of {i}")
    return out


def compare_float32_with_torch(ours_fn, torch_fn, arrays, device, rtol=1e-4, atol=1e-4):
    """The same inputs as float32 through raygrad and PyTorch: a float32 output with torch's values."""
    import torch

    out = ours_fn(*[make(a, device, dtype=tensor.float32) for a in arrays])
    ref = torch_fn(*[torch.tensor(a, dtype=torch.float32) for a in arrays])
    assert out.dtype == tensor.float32
    np.testing.assert_allclose(to_numpy(out), ref.numpy(), rtol=rtol, atol=atol)
    return out
