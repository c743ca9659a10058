"""Pooling and interpolation: gradients against finite differences, values, indices and gradients
against PyTorch (ties and NaN included), modules."""
import numpy as np
import pytest

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor.autograd import gradcheck

from helpers import make, to_numpy

MAX_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=(3, 2)),
    dict(kernel_size=3, stride=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2)),
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=1),
]
AVG_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=1, divisor_override=4),
]
INTERPOLATE_CASES = [
    dict(size=(5, 11)),
    dict(scale_factor=2),
    dict(scale_factor=1.7),
    dict(size=(9, 13), mode="nearest-exact"),
    dict(size=(14, 3), mode="bilinear"),
    dict(size=(14, 3), mode="bilinear", align_corners=True),
    dict(scale_factor=(2.5, 0.6), mode="bilinear"),
    dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True),
    dict(size=(14, 3), mode="bicubic"),
    dict(size=(9, 4), mode="bicubic", align_corners=True),
    dict(scale_factor=(0.6, 2.5), mode="bicubic"),
    dict(size=(3, 5), mode="area"),
    dict(size=(9, 6), mode="area"),
    # antialias (timm's pos-embed resampling, torchvision's Resize); no output width 1: torch 2.13's
    # antialiased kernels give every row the first row's value there (resizing (7, 5) to (2, 1), say)
    dict(size=(3, 5), mode="bilinear", antialias=True),
    dict(scale_factor=(2.5, 0.6), mode="bilinear", antialias=True, align_corners=True),
    dict(scale_factor=0.45, mode="bicubic", antialias=True),
    dict(size=(9, 4), mode="bicubic", antialias=True, align_corners=True),
]


def _x(rng, device, shape=(2, 3, 7, 8), ties=False):
    data = rng.standard_normal(shape)
    if ties:
        data = np.round(data)  # many equal values per window: the first maximum must win
    return make(data, device, requires_grad=True)


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool2d_gradcheck(case, device, rng):
    assert gradcheck(lambda x: F.max_pool2d(x, **case), [_x(rng, device)])


@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool2d_gradcheck(case, device, rng):
    assert gradcheck(lambda x: F.avg_pool2d(x, **case), [_x(rng, device)])


@pytest.mark.parametrize("size", [1, 2, (3, 4), (5, 3), (None, 3)], ids=str)
def test_adaptive_avg_pool2d_gradcheck(size, device, rng):
    assert gradcheck(lambda x: F.adaptive_avg_pool2d(x, size), [_x(rng, device, (1, 2, 6, 8))])


@pytest.mark.parametrize("case", INTERPOLATE_CASES, ids=str)
def test_interpolate_gradcheck(case, device, rng):
    assert gradcheck(lambda x: F.interpolate(x, **case), [_x(rng, device, (1, 2, 4, 5))])


# ------------------------------------------------------------------------------------- vs torch


def _compare(ours_fn, torch_fn, x, device, with_indices=False):
    torch = pytest.importorskip("torch")
    ours, theirs = make(x, device, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, expected = ours_fn(ours), torch_fn(theirs)
    if with_indices:
        (y, indices), (expected, expected_indices) = y, expected
        assert indices.dtype == tensor.int64
        np.testing.assert_array_equal(to_numpy(indices), expected_indices.numpy())
    assert tuple(y.shape) == tuple(expected.shape)
    np.testing.assert_allclose(to_numpy(y), expected.detach().numpy(), rtol=1e-6, atol=1e-9)
    g = np.random.default_rng(1).standard_normal(tuple(expected.shape))
    y.backward(make(g, device))
    expected.backward(torch.tensor(g))
    np.testing.assert_allclose(to_numpy(ours.grad), theirs.grad.numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool2d_matches_torch(case, device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    x = rng.standard_normal((2, 3, 7, 8))
    _compare(lambda t: F.max_pool2d(t, **case), lambda t: tf.max_pool2d(t, **case), x, device)
    ties = np.round(x)
    _compare(lambda t: F.max_pool2d(t, return_indices=True, **case),
             lambda t: tf.max_pool2d(t, return_indices=True, **case), ties, device, with_indices=True)
    _compare(lambda t: F.max_pool2d(t, return_indices=True, **case),
             lambda t: tf.max_pool2d(t, return_indices=True, **case), ties[0], device, with_indices=True)


def test_max_pool2d_nan_propagates_like_torch(device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    x = rng.standard_normal((1, 2, 4, 4))
    x[0, 0, 1, 1] = np.nan
    _compare(lambda t: F.max_pool2d(t, 2, return_indices=True), lambda t: tf.max_pool2d(t, 2, return_indices=True),
             x, device, with_indices=True)


def test_max_pool2d_on_a_channels_outermost_layout(device, rng):
    """A convolution returns (N, C, H, W) views of (C, N, H, W) memory; pooling must not care."""
    tf = pytest.importorskip("torch.nn.functional")
    x = np.ascontiguousarray(rng.standard_normal((3, 2, 6, 6)).transpose(1, 0, 2, 3))
    _compare(lambda t: F.max_pool2d(t.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3), 2),
             lambda t: tf.max_pool2d(t, 2), x, device)


@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool2d_matches_torch(case, device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    _compare(lambda t: F.avg_pool2d(t, **case), lambda t: tf.avg_pool2d(t, **case),
             rng.standard_normal((2, 3, 7, 8)), device)


@pytest.mark.parametrize("size", [1, 2, (3, 4), (5, 3), (None, 3), 7], ids=str)
def test_adaptive_avg_pool2d_matches_torch(size, device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    _compare(lambda t: F.adaptive_avg_pool2d(t, size), lambda t: tf.adaptive_avg_pool2d(t, size),
             rng.standard_normal((2, 3, 7, 8)), device)


@pytest.mark.parametrize("case", INTERPOLATE_CASES, ids=str)
def test_interpolate_matches_torch(case, device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    _compare(lambda t: F.interpolate(t, **case), lambda t: tf.interpolate(t, **case),
             rng.standard_normal((2, 3, 7, 8)), device)


def test_interpolate_3d_matches_torch(device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    x = rng.standard_normal((2, 3, 7))
    for case in (dict(size=12, mode="linear"), dict(scale_factor=3), dict(size=5, mode="linear", align_corners=True),
                 dict(size=3, mode="area")):
        _compare(lambda t: F.interpolate(t, **case), lambda t: tf.interpolate(t, **case), x, device)


@pytest.mark.parametrize("case", [
    dict(scale_factor=2, mode="trilinear", align_corners=False), dict(size=(3, 6, 4), mode="trilinear"),
    dict(size=(7, 3, 9), mode="trilinear", align_corners=True), dict(scale_factor=(1.5, 2, 0.5), mode="trilinear"),
    dict(scale_factor=2), dict(size=(3, 7, 2)), dict(size=(6, 3, 7), mode="nearest-exact"),
    dict(size=(2, 3, 4), mode="area"),
], ids=str)
def test_interpolate_5d_matches_torch(case, device, rng):
    tf = pytest.importorskip("torch.nn.functional")
    _compare(lambda t: F.interpolate(t, **case), lambda t: tf.interpolate(t, **case),
             rng.standard_normal((2, 3, 4, 5, 6)), device)


def test_interpolate_5d_gradcheck_and_upsample(device, rng):
    torch = pytest.importorskip("torch")
    x = _x(rng, device, (1, 2, 2, 3, 2))
    assert gradcheck(lambda t: F.interpolate(t, scale_factor=2, mode="trilinear"), [x])
    assert gradcheck(lambda t: F.interpolate(t, size=(3, 2, 5)), [x])
    v = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(to_numpy(nn.Upsample(scale_factor=2, mode="trilinear")(make(v, device))),
                               torch.nn.Upsample(scale_factor=2, mode="trilinear")(torch.tensor(v)).numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(tensor.ShapeError, match="'trilinear' needs a 5-d input"):
        F.interpolate(tensor.zeros(1, 2, 4, 4, device=device), scale_factor=2, mode="trilinear")
    with pytest.raises(tensor.ShapeError, match="'bilinear' needs a 4-d input"):
        F.interpolate(tensor.zeros(1, 2, 4, 4, 4, device=device), scale_factor=2, mode="bilinear")


# -------------------------------------------------------------------------------------- modules


@pytest.mark.parametrize(
    "build",
    [
        lambda m: m.MaxPool2d(3, stride=2, padding=1),
        lambda m: m.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
        lambda m: m.AdaptiveAvgPool2d((3, 5)),
        lambda m: m.Upsample(scale_factor=2, mode="bilinear"),
        lambda m: m.Upsample(size=(4, 9)),
        lambda m: m.Upsample(scale_factor=2, mode="bicubic", align_corners=False),
    ],
)
def test_modules_match_torch(build, device, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = build(nn), build(torch.nn)
    assert repr(ours) == repr(theirs)
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    np.testing.assert_allclose(to_numpy(ours(make(x, device))), theirs(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_max_pool_module_returns_indices(device, rng):
    pool = nn.MaxPool2d(2, return_indices=True)
    y, indices = pool(make(rng.standard_normal((1, 1, 4, 4)), device))
    assert tuple(y.shape) == tuple(indices.shape) == (1, 1, 2, 2)
    assert not indices.requires_grad


def test_errors(device):
    x = tensor.zeros(1, 2, 4, 4, device=device)
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(tensor.ShapeError, match="too small"):
        F.avg_pool2d(x, 5)
    with pytest.raises(tensor.ShapeError, match="4-d"):
        F.max_pool2d(tensor.zeros(4, device=device), 2)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="align_corners only applies"):
        F.interpolate(x, size=3, align_corners=True)
    with pytest.raises(ValueError, match="antialias=True applies to modes 'bilinear' and 'bicubic' only"):
        F.interpolate(x, size=3, antialias=True)
