"""fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine against PyTorch: values and the
straight-through gradient, bit for bit, and clear errors."""
import numpy as np
import pytest

import tensor
from helpers import make, to_numpy

torch = pytest.importorskip("torch")

X = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32) * 3
WEIGHTS = np.random.default_rng(1).standard_normal(X.shape).astype(np.float32)


def both(fn_name, args, torch_args, device):
    ours, theirs = make(X, device, requires_grad=True), torch.tensor(X, requires_grad=True)
    out, ref = getattr(tensor, fn_name)(ours, *args), getattr(torch, fn_name)(theirs, *torch_args)
    (out * make(WEIGHTS, device)).sum().backward()
    (ref * torch.tensor(WEIGHTS)).sum().backward()
    np.testing.assert_array_equal(to_numpy(out), ref.detach().numpy())
    np.testing.assert_array_equal(to_numpy(ours.grad), theirs.grad.numpy())


@pytest.mark.parametrize("scale, zero_point, qmin, qmax", [(0.1, 5, 0, 20), (0.37, 0, -8, 7), (0.05, 128, 0, 255)])
def test_per_tensor_matches_torch(device, scale, zero_point, qmin, qmax):
    both("fake_quantize_per_tensor_affine", (scale, zero_point, qmin, qmax), (scale, zero_point, qmin, qmax), device)
    # the observers' form: the scale and zero point as 1-element tensors
    ours = (make(np.array([scale], np.float32), device), make(np.array([zero_point], np.int32), device), qmin, qmax)
    theirs = (torch.tensor([scale]), torch.tensor([zero_point], dtype=torch.int32), qmin, qmax)
    both("fake_quantize_per_tensor_affine", ours, theirs, device)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_per_channel_matches_torch(device, axis):
    channels = X.shape[axis]
    scale = np.linspace(0.05, 0.6, channels).astype(np.float32)
    zero_point = (np.arange(channels) % 3 - 1).astype(np.int32)
    ours = (make(scale, device), make(zero_point, device), axis, -8, 7)
    both("fake_quantize_per_channel_affine", ours, (torch.tensor(scale), torch.tensor(zero_point), axis, -8, 7),
         device)


def test_refusals(device):
    x = make(X, device)
    with pytest.raises(ValueError, match="zero_point 300 must lie between quant_min 0 and quant_max 255"):
        tensor.fake_quantize_per_tensor_affine(x, 0.1, 300, 0, 255)
    with pytest.raises(ValueError, match="quant_min 5 must be <= quant_max 2"):
        tensor.fake_quantize_per_tensor_affine(x, 0.1, 0, 5, 2)
    with pytest.raises(tensor.DTypeError, match="floating point"):
        tensor.fake_quantize_per_tensor_affine(make(np.arange(3), device), 0.1, 0, 0, 255)
    with pytest.raises(tensor.ShapeError, match="one value per channel \\(5\\)"):
        tensor.fake_quantize_per_channel_affine(x, tensor.ones(4), tensor.zeros(4, dtype=tensor.int32), 1, 0, 255)
    with pytest.raises(tensor.ShapeError, match="use fake_quantize_per_channel_affine"):
        tensor.fake_quantize_per_tensor_affine(x, tensor.ones(2), 0, 0, 255)
    with pytest.raises(tensor.ShapeError, match="axis -1 must be between 0 and 2"):  # as PyTorch refuses it
        tensor.fake_quantize_per_channel_affine(x, tensor.ones(3), tensor.zeros(3, dtype=tensor.int32), -1, 0, 255)
