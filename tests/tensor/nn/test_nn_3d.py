"""Volumetric layers (conv3d, conv_transpose3d, max/avg/adaptive pooling 3d, dropout3d): values, indices
and gradients against PyTorch, finite-difference gradients in float64, modules, errors."""
import math
import warnings

import numpy as np
import pytest

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor.autograd import gradcheck, gradgradcheck
from tensor.errors import DTypeError, ShapeError
from torch_compare import copy_weights, make, to_numpy

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def leaves(device, *shapes):
    return [make(data(*s, seed=i), device, requires_grad=True) for i, s in enumerate(shapes)]


def twins(ours, theirs, arrays, device, rtol=1e-9, atol=1e-10):
    """Same float64 inputs through raygrad and PyTorch: same output (and indices, when a tuple comes
    back), same gradients of every input for one random output gradient."""
    torch = pytest.importorskip("torch")
    xs = [make(a, device, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours(*xs), theirs(*ts)
    if isinstance(ref, tuple):
        np.testing.assert_array_equal(to_numpy(out[1]), ref[1].numpy(), err_msg="indices")
        assert out[1].dtype == tensor.int64
        out, ref = out[0], ref[0]
    assert tuple(out.shape) == tuple(ref.shape)
    np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=rtol, atol=atol, err_msg="output")
    seed = data(*ref.shape, seed=99)
    out.backward(make(seed, device))
    ref.backward(torch.tensor(seed))
    for i, (x, t) in enumerate(zip(xs, ts)):
        np.testing.assert_allclose(to_numpy(x.grad), t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"grad {i}")


# ------------------------------------------------------------------------------------ conv3d

CONV3D_CASES = [
    dict(),
    dict(padding=1),
    dict(stride=2, padding=(1, 0, 2)),
    dict(stride=(2, 1, 3), dilation=(1, 2, 1)),
    dict(dilation=2, padding=2, groups=2),
    dict(padding="same"),
    dict(padding="same", dilation=(2, 1, 2), groups=2),
    dict(padding="valid", groups=4),
    dict(groups=2, stride=(1, 2, 2), padding=1),
]


@pytest.mark.parametrize("case", CONV3D_CASES, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_conv3d_matches_torch(case, bias, device):
    torch = pytest.importorskip("torch")
    groups = case.get("groups", 1)
    x, w, b = data(2, 4, 5, 6, 7), data(8, 4 // groups, 3, 2, 3, seed=1), data(8, seed=2)
    if bias:
        twins(lambda x, w, b: F.conv3d(x, w, b, **case), lambda x, w, b: torch.nn.functional.conv3d(x, w, b, **case),
              [x, w, b], device)
    else:
        twins(lambda x, w: F.conv3d(x, w, **case), lambda x, w: torch.nn.functional.conv3d(x, w, **case), [x, w],
              device)


def test_conv3d_unbatched_matches_torch(device):
    torch = pytest.importorskip("torch")
    twins(lambda x, w: F.conv3d(x, w, stride=2, padding=1), lambda x, w: torch.nn.functional.conv3d(x, w, stride=2,
          padding=1), [data(3, 5, 4, 7), data(2, 3, 3, 3, 3, seed=1)], device)


TRANSPOSED3D_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2), groups=2),
    dict(dilation=2, output_padding=1, groups=2),
    dict(stride=(1, 2, 1), dilation=(2, 1, 1), padding=(0, 1, 1)),
]


@pytest.mark.parametrize("case", TRANSPOSED3D_CASES, ids=str)
def test_conv_transpose3d_matches_torch(case, device):
    torch = pytest.importorskip("torch")
    groups = case.get("groups", 1)
    x, w, b = data(2, 4, 3, 4, 5), data(4, 3, 3, 2, 3, seed=1), data(3 * groups, seed=2)
    twins(lambda x, w, b: F.conv_transpose3d(x, w, b, **case),
          lambda x, w, b: torch.nn.functional.conv_transpose3d(x, w, b, **case), [x, w, b], device)
    twins(lambda x, w: F.conv_transpose3d(x, w, **case),
          lambda x, w: torch.nn.functional.conv_transpose3d(x, w, **case), [x[0], w], device)


def test_conv3d_finite_differences(device):
    x, w, b = leaves(device, (2, 4, 3, 4, 3), (4, 2, 2, 3, 2), (4,))
    assert gradcheck(lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=1, dilation=(1, 1, 2), groups=2),
                     [x, w, b])
    xt, wt, bt = leaves(device, (2, 4, 2, 3, 2), (4, 1, 2, 2, 3), (2,))
    assert gradcheck(lambda x, w, b: F.conv_transpose3d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
                     [xt, wt, bt])


def test_conv3d_second_order(device):
    """create_graph=True differentiates through both convolutions' backwards."""
    x, w, b = leaves(device, (1, 2, 3, 3, 2), (2, 2, 2, 2, 1), (2,))
    assert gradgradcheck(lambda x, w, b: F.conv3d(x, w, b, padding=(1, 0, 1)), [x, w, b])
    wt = leaves(device, (2, 1, 2, 1, 2))[0]
    assert gradgradcheck(lambda x, w: F.conv_transpose3d(x, w, stride=2), [x, wt])


def test_conv3d_weight_only_gradient(device):
    """A first layer: the input needs no gradient."""
    x = make(data(1, 1, 4, 4, 4), device)
    (w,) = leaves(device, (2, 1, 3, 3, 3))
    assert gradcheck(lambda w: F.conv3d(x, w, padding=1), [w])
    assert x.grad is None


# ------------------------------------------------------------------------------------ pooling

MAX_POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2, 2), stride=(1, 2, 1), padding=(1, 1, 0), dilation=(1, 1, 2)),
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=2, stride=(2, 3, 2), dilation=2, ceil_mode=True),
]


@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=str)
def test_max_pool3d_matches_torch(case, device):
    torch = pytest.importorskip("torch")
    x = data(2, 3, 5, 6, 7)
    twins(lambda x: F.max_pool3d(x, return_indices=True, **case),
          lambda x: torch.nn.functional.max_pool3d(x, return_indices=True, **case), [x], device)
    twins(lambda x: F.max_pool3d(x, **case), lambda x: torch.nn.functional.max_pool3d(x, **case), [x[0]], device)
    ties = np.random.default_rng(3).integers(0, 2, (2, 3, 5, 6, 7)).astype(np.float64)  # first maximum wins
    twins(lambda x: F.max_pool3d(x, return_indices=True, **case),
          lambda x: torch.nn.functional.max_pool3d(x, return_indices=True, **case), [ties], device)


def test_max_pool3d_nan_propagates(device):
    torch = pytest.importorskip("torch")
    x = data(1, 2, 4, 4, 4)
    x[0, 0, 1, 1, 1] = x[0, 1, 2, 3, 0] = np.nan
    for fn, ref in ((F.max_pool3d, torch.nn.functional.max_pool3d),
                    (F.adaptive_max_pool3d, torch.nn.functional.adaptive_max_pool3d)):
        out, idx = fn(make(x, device), 3 if fn is F.adaptive_max_pool3d else 2, return_indices=True)
        expected, expected_idx = ref(torch.tensor(x), 3 if fn is F.adaptive_max_pool3d else 2, return_indices=True)
        np.testing.assert_array_equal(to_numpy(out), expected.numpy())
        np.testing.assert_array_equal(to_numpy(idx), expected_idx.numpy())


AVG_POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(3, 2, 2), stride=(1, 2, 1), padding=(1, 1, 0), count_include_pad=False),
    dict(kernel_size=(2, 3, 3), stride=1, padding=1, divisor_override=5),
]


@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=str)
def test_avg_pool3d_matches_torch(case, device):
    torch = pytest.importorskip("torch")
    x = data(2, 3, 5, 6, 7)
    twins(lambda x: F.avg_pool3d(x, **case), lambda x: torch.nn.functional.avg_pool3d(x, **case), [x], device)
    twins(lambda x: F.avg_pool3d(x, **case), lambda x: torch.nn.functional.avg_pool3d(x, **case), [x[1]], device)


@pytest.mark.parametrize("size", [1, 2, (2, 3, 7), (3, 4, 5), (None, 4, 2)], ids=str)
def test_adaptive_pool3d_matches_torch(size, device):
    torch = pytest.importorskip("torch")
    x = data(2, 3, 5, 6, 7)
    twins(lambda x: F.adaptive_avg_pool3d(x, size), lambda x: torch.nn.functional.adaptive_avg_pool3d(x, size), [x],
          device)
    twins(lambda x: F.adaptive_max_pool3d(x, size, return_indices=True),
          lambda x: torch.nn.functional.adaptive_max_pool3d(x, size, return_indices=True), [x], device)
    twins(lambda x: F.adaptive_max_pool3d(x, size), lambda x: torch.nn.functional.adaptive_max_pool3d(x, size),
          [x[0]], device)
    ties = np.random.default_rng(4).integers(0, 2, (2, 3, 5, 6, 7)).astype(np.float64)
    twins(lambda x: F.adaptive_max_pool3d(x, size, return_indices=True),
          lambda x: torch.nn.functional.adaptive_max_pool3d(x, size, return_indices=True), [ties], device)


def test_pooling3d_finite_differences(device):
    (x,) = leaves(device, (2, 2, 3, 4, 5))
    assert gradcheck(lambda x: F.max_pool3d(x, 2, stride=1, padding=1), [x])
    assert gradcheck(lambda x: F.max_pool3d(x, (2, 3, 2), ceil_mode=True), [x])
    assert gradcheck(lambda x: F.avg_pool3d(x, 3, stride=2, padding=1, count_include_pad=False), [x])
    assert gradcheck(lambda x: F.adaptive_avg_pool3d(x, (2, 3, 3)), [x])
    assert gradcheck(lambda x: F.adaptive_max_pool3d(x, (2, 3, 3)), [x])
    assert gradgradcheck(lambda x: F.avg_pool3d(x, 2, stride=1, padding=1), [x])
    assert gradgradcheck(lambda x: F.max_pool3d(x, 2, ceil_mode=True), [x])
    assert gradgradcheck(lambda x: F.adaptive_avg_pool3d(x, (2, 3, 3)), [x])


def test_pooling3d_keeps_float32(device):
    x = make(data(1, 2, 4, 4, 4).astype(np.float32), device)
    for y in (F.max_pool3d(x, 2), F.avg_pool3d(x, 2), F.adaptive_avg_pool3d(x, 3), F.adaptive_max_pool3d(x, 3),
              F.conv3d(x, make(data(1, 2, 2, 2, 2).astype(np.float32), device))):
        assert y.dtype == tensor.float32


# ------------------------------------------------------------------------------------ modules


@pytest.mark.parametrize("make_layer", [
    lambda lib: lib.nn.Conv3d(4, 6, 3),
    lambda lib: lib.nn.Conv3d(4, 6, (3, 2, 1), stride=2, padding=1, dilation=(1, 2, 1), groups=2, bias=False),
    lambda lib: lib.nn.Conv3d(4, 4, 3, padding="same", groups=4),
    lambda lib: lib.nn.Conv3d(4, 2, 3, padding=(1, 2, 1), padding_mode="reflect"),
    lambda lib: lib.nn.Conv3d(4, 2, 2, padding=1, padding_mode="replicate"),
    lambda lib: lib.nn.Conv3d(4, 2, 3, padding="same", padding_mode="circular"),
    lambda lib: lib.nn.ConvTranspose3d(4, 6, 3),
    lambda lib: lib.nn.ConvTranspose3d(4, 6, (3, 2, 2), stride=2, padding=1, output_padding=1, groups=2),
    lambda lib: lib.nn.ConvTranspose3d(4, 2, 2, stride=(2, 1, 2), dilation=2, bias=False),
    lambda lib: lib.nn.MaxPool3d(3, stride=2, padding=1, ceil_mode=True),
    lambda lib: lib.nn.MaxPool3d((2, 3, 2), dilation=(1, 1, 2)),
    lambda lib: lib.nn.AvgPool3d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    lambda lib: lib.nn.AvgPool3d((3, 2, 1), stride=2, padding=(1, 1, 0), divisor_override=3),
    lambda lib: lib.nn.AdaptiveAvgPool3d((2, None, 3)),
    lambda lib: lib.nn.AdaptiveMaxPool3d(2),
])
def test_modules_match_torch(make_layer, device):
    """Same parameter names, same repr, same outputs and gradients on the same weights."""
    torch = pytest.importorskip("torch")
    ours, theirs = make_layer(tensor), make_layer(torch)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.double().to(device)
    theirs.double()
    copy_weights(ours, theirs)
    x = data(2, 4, 5, 6, 7)
    twins(lambda x: ours(x), lambda x: theirs(x), [x], device)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(to_numpy(p.grad), dict(theirs.named_parameters())[name].grad.numpy(), rtol=1e-9,
                                   atol=1e-10, err_msg=name)


def test_conv3d_default_initialisation(device):
    layer = nn.Conv3d(8, 16, 3)
    bound = 1 / math.sqrt(8 * 27)  # kaiming_uniform_(a=sqrt(5)) and the bias share this bound
    w, b = to_numpy(layer.weight), to_numpy(layer.bias)
    assert w.shape == (16, 8, 3, 3, 3) and b.shape == (16,)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound
    t = nn.ConvTranspose3d(8, 6, 2, groups=2)
    assert tuple(t.weight.shape) == (8, 3, 2, 2, 2)
    assert list(t.state_dict()) == ["weight", "bias"]


def test_conv_transpose3d_output_size(device):
    torch = pytest.importorskip("torch")
    layer, twin = nn.ConvTranspose3d(2, 3, 3, stride=2, padding=1), torch.nn.ConvTranspose3d(2, 3, 3, stride=2,
                                                                                              padding=1)
    copy_weights(layer.double().to(device), twin.double())
    x = data(1, 2, 3, 4, 5)
    y = layer(make(x, device), output_size=(6, 8, 9))
    np.testing.assert_allclose(to_numpy(y), twin(torch.tensor(x), output_size=(6, 8, 9)).detach().numpy(),
                               rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="out of range"):
        layer(make(x, device), output_size=(9, 8, 9))


def test_max_pool3d_module_returns_indices(device):
    out, idx = nn.MaxPool3d(2, return_indices=True)(make(data(1, 1, 4, 4, 4), device))
    assert tuple(out.shape) == tuple(idx.shape) == (1, 1, 2, 2, 2)
    out, idx = nn.AdaptiveMaxPool3d((1, 2, 3), return_indices=True)(make(data(1, 1, 4, 4, 4), device))
    assert tuple(idx.shape) == (1, 1, 1, 2, 3)


def test_dropout3d_drops_whole_channels(device):
    tensor.manual_seed(0)
    x = make(np.ones((4, 8, 2, 3, 3)), device, requires_grad=True)
    layer = nn.Dropout3d(0.5)
    assert repr(layer) == "Dropout3d(p=0.5, inplace=False)"
    y = to_numpy(layer(x))
    per_channel = y.reshape(4, 8, -1)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))  # one draw per (n, c)
    assert set(np.unique(y)) <= {0.0, 2.0} and 0 < (y == 0).mean() < 1
    layer(x).sum().backward()
    assert set(np.unique(to_numpy(x.grad))) <= {0.0, 2.0}
    layer.eval()
    assert layer(x) is x
    unbatched = to_numpy(F.dropout3d(make(np.ones((8, 2, 3, 3)), device), 0.5)).reshape(8, -1)
    assert np.all(unbatched.min(-1) == unbatched.max(-1))


def test_dropout3d_other_ranks_warn_as_torch(device):
    with pytest.warns(UserWarning, match="dropout3d"):
        y = F.dropout3d(make(np.ones((6, 4, 5)), device), 0.5)
    rows = to_numpy(y).reshape(6, -1)
    assert np.all(rows.min(-1) == rows.max(-1))  # dim 0 read as channels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.dropout3d(make(np.ones((2, 6, 1, 4, 5)), device), 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout3d(1.5)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("call", [
    lambda x: F.conv3d(x, tensor.zeros(2, 3, 2, 2, 2, dtype=tensor.float64)),
    lambda x: F.conv_transpose3d(x, tensor.zeros(3, 2, 2, 2, 2, dtype=tensor.float64)),
    lambda x: F.max_pool3d(x, 2),
    lambda x: F.avg_pool3d(x, 2),
    lambda x: F.adaptive_avg_pool3d(x, 2),
    lambda x: F.adaptive_max_pool3d(x, 2),
    lambda x: nn.Conv3d(3, 2, 2).double()(x),
])
def test_wrong_rank_names_the_expected_layout(call, device):
    x = make(data(3, 4, 4), device)
    with pytest.raises(ShapeError, match=r"\(N, C, D, H, W\)"):
        call(x)


def test_bad_arguments_get_clear_errors(device):
    x = make(data(1, 4, 5, 5, 5), device)
    w = make(data(2, 4, 3, 3, 3), device)
    with pytest.raises(ShapeError, match="channels"):
        F.conv3d(x, make(data(2, 3, 3, 3, 3), device))
    with pytest.raises(ValueError, match="'same' is not supported for strided"):
        F.conv3d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="stride must be"):
        F.conv3d(x, w, stride=(1, 2))
    with pytest.raises(ShapeError, match="smaller than the dilated kernel"):
        F.conv3d(x, w, dilation=3)
    with pytest.raises(DTypeError, match="dtype"):
        F.conv3d(x, w.float())
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose3d(x, make(data(4, 2, 3, 3, 3), device), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool3d(x, 3, padding=2)
    with pytest.raises(ShapeError, match="too small"):
        F.avg_pool3d(x, 6)
    with pytest.raises(DTypeError, match="floating-point"):
        F.avg_pool3d(make(np.ones((1, 1, 2, 2, 2), dtype=np.int64), device), 2)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_max_pool3d(x, (2, 2))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv3d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="zeros"):
        nn.ConvTranspose3d(4, 6, 3, padding_mode="reflect")
