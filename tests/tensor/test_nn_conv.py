"""Convolutions: gradients against finite differences, values and gradients against PyTorch, modules."""
import math

import numpy as np
import pytest

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor.autograd import gradcheck

from helpers import make, to_numpy

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

CONV2D_CASES = [
    dict(),
    dict(padding=1),
    dict(stride=2, padding=(1, 2)),
    dict(stride=(2, 3)),
    dict(dilation=2, padding=2),
    dict(padding="same"),
    dict(padding="same", dilation=(1, 2)),
    dict(padding="valid"),
    dict(groups=2, padding=1),
]

TRANSPOSED_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(groups=2, stride=(1, 2), dilation=2),
    dict(dilation=2, output_padding=1),
    dict(padding=(1, 0)),
]


def _inputs(rng, device, *shapes):
    return [make(rng.standard_normal(s), device, requires_grad=True) for s in shapes]


def _weight_shape(case, out_channels=4, in_channels=4, kernel=(3, 2)):
    return (out_channels, in_channels // case.get("groups", 1), *kernel)


@pytest.mark.parametrize("case", CONV2D_CASES, ids=str)
def test_conv2d_gradcheck(case, device, rng):
    x, w, b = _inputs(rng, device, (2, 4, 5, 6), _weight_shape(case), (4,))
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **case), [x, w, b])


@pytest.mark.parametrize("case", TRANSPOSED_CASES, ids=str)
def test_conv_transpose2d_gradcheck(case, device, rng):
    groups = case.get("groups", 1)
    x, w, b = _inputs(rng, device, (2, 4, 3, 4), (4, 2, 3, 2), (2 * groups,))
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **case), [x, w, b])


def test_conv1d_and_transpose1d_gradcheck(device, rng):
    x, w, b = _inputs(rng, device, (2, 4, 7), (6, 2, 3), (6,))
    assert gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2), [x, w, b])
    xt, wt = _inputs(rng, device, (2, 4, 5), (4, 3, 3))
    assert gradcheck(lambda x, w: F.conv_transpose1d(x, w, stride=3, padding=1, output_padding=2), [xt, wt])


def test_unbatched_input_and_no_bias(device, rng):
    x, w = _inputs(rng, device, (3, 5, 5), (2, 3, 3, 3))
    y = F.conv2d(x, w, padding=1)
    assert tuple(y.shape) == (2, 5, 5)
    batched = F.conv2d(x.unsqueeze(0), w, padding=1)
    np.testing.assert_allclose(to_numpy(y), to_numpy(batched)[0])
    assert gradcheck(lambda x, w: F.conv2d(x, w, stride=2), [x, w])


def test_gradient_only_for_weight(device, rng):
    """The first layer of a network: the input needs no gradient, so col2im is skipped."""
    x = make(rng.standard_normal((2, 1, 6, 6)), device)
    (w,) = _inputs(rng, device, (3, 1, 3, 3))
    assert gradcheck(lambda w: F.conv2d(x, w, padding=1), [w])
    assert x.grad is None


# ------------------------------------------------------------------------------------- vs torch


def _compare_with_torch(rg_fn, torch_fn, arrays, device, rtol=1e-5, atol=1e-5):
    torch = pytest.importorskip("torch")
    ours = [None if a is None else make(a, device, requires_grad=True) for a in arrays]
    theirs = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    y, expected = rg_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(to_numpy(y), expected.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(1).standard_normal(tuple(expected.shape)).astype(arrays[0].dtype)
    y.backward(make(g, device))
    expected.backward(torch.tensor(g))
    for mine, ref in zip(ours, theirs):
        if mine is not None:
            np.testing.assert_allclose(to_numpy(mine.grad), ref.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", CONV2D_CASES, ids=str)
def test_conv2d_matches_torch(case, device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4, 9, 8), _weight_shape(case), (4,))]
    _compare_with_torch(lambda *t: F.conv2d(*t, **case), lambda *t: tf.conv2d(*t, **case), arrays, device)


@pytest.mark.parametrize("case", TRANSPOSED_CASES, ids=str)
def test_conv_transpose2d_matches_torch(case, device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    groups = case.get("groups", 1)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 4, 5, 4), (4, 3, 3, 2), (3 * groups,))]
    _compare_with_torch(lambda *t: F.conv_transpose2d(*t, **case), lambda *t: tf.conv_transpose2d(*t, **case),
                        arrays, device)


def test_depthwise_and_conv1d_match_torch(device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 6, 8, 8), (6, 1, 3, 3), (6,))]
    _compare_with_torch(lambda *t: F.conv2d(*t, padding=1, groups=6), lambda *t: tf.conv2d(*t, padding=1, groups=6),
                        arrays, device)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((2, 4, 11), (6, 4, 4), (6,))]
    _compare_with_torch(lambda *t: F.conv1d(*t, padding="same"), lambda *t: tf.conv1d(*t, padding="same"),
                        arrays, device)


# -------------------------------------------------------------------------------------- modules


def _copy_weights(ours, theirs):
    import torch

    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.tensor(to_numpy(ours.get_parameter(name))))


@pytest.mark.parametrize(
    "make_modules",
    [
        lambda m: m.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        lambda m: m.Conv2d(4, 6, (3, 2), padding="same", bias=False, padding_mode="reflect"),
        lambda m: m.Conv2d(4, 6, 3, padding=1, padding_mode="circular"),
        lambda m: m.Conv1d(4, 6, 3, dilation=2, padding_mode="replicate", padding=2),
        lambda m: m.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
        lambda m: m.ConvTranspose1d(4, 6, 3, stride=2),
    ],
)
def test_modules_match_torch(make_modules, device, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = make_modules(nn).to(device), make_modules(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    _copy_weights(ours, theirs)
    spatial = 2 if "2d" in type(ours).__name__ else 1
    x = rng.standard_normal((2, 4) + (7,) * spatial).astype(np.float32)
    y, expected = ours(make(x, device)), theirs(torch.tensor(x))
    np.testing.assert_allclose(to_numpy(y), expected.detach().numpy(), rtol=1e-5, atol=1e-5)
    y.sum().backward()
    expected.sum().backward()
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(to_numpy(ours.get_parameter(name).grad), p.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_default_initialisation_bounds(device):
    conv = nn.Conv2d(8, 16, 3, groups=2).to(device)
    fan_in = 4 * 3 * 3
    assert np.abs(to_numpy(conv.weight)).max() <= 1 / math.sqrt(fan_in) + 1e-7  # kaiming_uniform(a=sqrt(5))
    assert np.abs(to_numpy(conv.bias)).max() <= 1 / math.sqrt(fan_in) + 1e-7
    assert to_numpy(conv.weight).std() > 0.5 / math.sqrt(3 * fan_in)
    transposed = nn.ConvTranspose2d(8, 16, 3)
    assert tuple(transposed.weight.shape) == (8, 16, 3, 3)
    assert np.abs(to_numpy(transposed.bias)).max() <= 1 / math.sqrt(16 * 9) + 1e-7


def test_conv_transpose_output_size(device, rng):
    up = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).to(device)
    x = make(rng.standard_normal((1, 2, 4, 4)).astype(np.float32), device)
    assert tuple(up(x).shape) == (1, 3, 7, 7)
    assert tuple(up(x, output_size=(8, 8)).shape) == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="out of range"):
        up(x, output_size=(10, 10))


# --------------------------------------------------------------------------------------- errors


def test_errors_name_the_values(device):
    x = tensor.zeros(1, 3, 5, 5, device=device)
    with pytest.raises(tensor.ShapeError, match="3 channels but weight .*expects 4"):
        F.conv2d(x, tensor.zeros(2, 4, 3, 3, device=device))
    with pytest.raises(ValueError, match="not supported for strided"):
        F.conv2d(x, tensor.zeros(2, 3, 3, 3, device=device), stride=2, padding="same")
    with pytest.raises(tensor.ShapeError, match="smaller than the dilated kernel"):
        F.conv2d(x, tensor.zeros(2, 3, 7, 7, device=device))
    with pytest.raises(tensor.DTypeError, match="float64"):
        F.conv2d(x, tensor.zeros(2, 3, 3, 3, device=device, dtype=tensor.float64))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, tensor.zeros(3, 2, 3, 3, device=device), stride=1, output_padding=1)
