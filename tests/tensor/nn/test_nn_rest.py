"""Lazy norms / LazyConv3d / UninitializedBuffer, FractionalMaxPool2d/3d, AdaptiveLogSoftmaxWithLoss, RNNBase,
CrossMapLRN2d and NLLLoss2d: values and gradients against PyTorch on the same inputs and weights,
finite-difference gradients in float64, lazy state dicts, and clear errors."""
import copy
import pickle
import re
import warnings

import numpy as np
import pytest

import tensor
from tensor import nn
from tensor.nn import functional as F
from tests.tensor.helpers import needs_torch, torch_at_least
from torch_compare import compare_with_torch, copy_weights, gradcheck_float64, make, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def uniform(*shape, seed=1):
    return np.random.default_rng(seed).random(shape)


# ---------------------------------------------------------------------------------- lazy norms

LAZY_NORMS = [
    ("LazyBatchNorm1d", "BatchNorm1d", (4, 3, 5), {}),
    ("LazyBatchNorm2d", "BatchNorm2d", (4, 3, 2, 2), {"momentum": None}),
    ("LazyBatchNorm3d", "BatchNorm3d", (2, 3, 2, 2, 2), {"affine": False}),
    ("LazyInstanceNorm1d", "InstanceNorm1d", (2, 3, 6), {}),
    pytest.param("LazyInstanceNorm2d", "InstanceNorm2d", (2, 3, 3, 3), {"bias": False},
                 marks=needs_torch("2.13", "torch 2.11's norm layers take no bias= argument")),
    ("LazyInstanceNorm3d", "InstanceNorm3d", (1, 3, 2, 3, 2), {"track_running_stats": False}),
]


@pytest.mark.parametrize("lazy, plain, shape, kwargs", LAZY_NORMS)
def test_lazy_norm_materialises_on_the_first_call_and_matches_torch(device, lazy, plain, shape, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(nn, lazy)(**kwargs).double().to(device), getattr(torch.nn, lazy)(**kwargs).double()
    same_repr = torch_at_least("2.13")  # torch 2.11's norm reprs have no bias= (2.13's have)
    assert repr(ours) == repr(theirs) or not same_repr
    assert [(k, re.sub(r", device='[^']+'", "", repr(v))) for k, v in ours.state_dict().items()] == [  # torch's: CPU
        (k, repr(v)) for k, v in theirs.state_dict().items()
    ]
    x = data(*shape)
    xo, xt = make(x, device, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = ours(xo), theirs(xt)
    assert type(ours) is getattr(nn, plain) and (repr(ours) == repr(theirs) or not same_repr)
    np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    weights = data(*shape, seed=3)
    (out * make(weights, device)).sum().backward()
    (ref * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(to_numpy(xo.grad), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(to_numpy(ours.state_dict()[key]), value.numpy(), rtol=1e-10, err_msg=key)


def test_lazy_norm_loads_a_state_dict_into_its_uninitialised_buffers(device):
    trained = nn.BatchNorm2d(3).to(device)
    trained(make(data(4, 3, 2, 2), device))  # moves the running statistics off their defaults
    lazy = nn.LazyBatchNorm2d().to(device)
    assert isinstance(lazy.running_mean, nn.UninitializedBuffer)
    assert not nn.LazyBatchNorm2d().load_state_dict(lazy.state_dict()).missing_keys  # lazy into lazy
    lazy.load_state_dict(trained.state_dict())
    assert type(lazy) is nn.LazyBatchNorm2d and type(lazy.running_mean) is tensor.Tensor  # lazy until called
    for key, value in trained.state_dict().items():
        np.testing.assert_array_equal(to_numpy(lazy.state_dict()[key]), to_numpy(value))
    lazy.eval()
    x = make(data(2, 3, 2, 2, seed=5), device)
    np.testing.assert_allclose(to_numpy(lazy(x)), to_numpy(trained.eval()(x)))
    assert type(lazy) is nn.BatchNorm2d and lazy.num_features == 3


def test_lazy_norm_checks_the_input_before_materialising(device):
    lazy = nn.LazyBatchNorm2d().to(device)
    with pytest.raises(ValueError, match="expected 4D input, got 2D"):
        lazy(make(data(3, 4), device))
    assert type(lazy) is nn.LazyBatchNorm2d and lazy.has_uninitialized_params()
    norm = nn.LazyInstanceNorm1d().to(device)
    norm(make(data(3, 5), device))  # unbatched (C, L): the channels are dim 0
    assert norm.num_features == 3 and tuple(norm.weight.shape) == (3,)


def test_uninitialized_buffer_records_device_dtype_and_persistence(device):
    buffer = nn.UninitializedBuffer(device=device, dtype=tensor.float64, persistent=False)
    assert repr(buffer) == "<UninitializedBuffer>" and not buffer.requires_grad and buffer.dtype == tensor.float64
    with pytest.raises(RuntimeError, match="uninitialized"):
        buffer.shape
    module = nn.LazyBatchNorm1d()
    module.register_buffer("extra", buffer, persistent=False)
    assert module.extra is buffer and "extra" not in module.state_dict()
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert isinstance(clone.running_mean, nn.UninitializedBuffer) and isinstance(clone.extra, nn.UninitializedBuffer)
    buffer.materialize((2, 3))
    assert type(buffer) is tensor.Tensor and tuple(buffer.shape) == (2, 3) and buffer.dtype == tensor.float64
    assert buffer.device == tensor.device(device)


@pytest.mark.parametrize("lazy, plain, shape", [
    (lambda m: m.LazyConv3d(4, 2, padding=1, groups=2), lambda m: m.Conv3d(2, 4, 2, padding=1, groups=2),
     (2, 2, 3, 3, 3)),
    (lambda m: m.LazyConvTranspose3d(2, 2, stride=2), lambda m: m.ConvTranspose3d(3, 2, 2, stride=2), (3, 2, 2, 2)),
])
def test_lazy_conv3d_infers_in_channels_and_matches_torch(device, lazy, plain, shape):
    torch = pytest.importorskip("torch")
    ours, theirs = lazy(nn).double().to(device), plain(torch.nn).double()
    assert repr(ours) == repr(lazy(torch.nn))
    x = data(*shape)
    ours(make(x, device))
    assert type(ours) is type(plain(nn)) and repr(ours) == repr(theirs)
    copy_weights(ours, theirs)
    compare_with_torch(ours, theirs, [x], device, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- fractional pooling


@pytest.mark.parametrize("n, shape, kernel, size", [
    (2, (2, 3, 11, 9), (3, 2), (5, 6)),
    (2, (2, 3, 7, 8), 2, (6, 1)),  # the bounds: output + kernel - 1 == input, and one window
    (3, (2, 2, 7, 6, 8), (2, 3, 2), (4, 3, 5)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fractional_max_pool_matches_torch_exactly_for_the_same_samples(device, n, shape, kernel, size, dtype):
    torch = pytest.importorskip("torch")
    x, samples = data(*shape).astype(dtype), uniform(shape[0], shape[1], n).astype(dtype)
    ours_fn = F.fractional_max_pool2d if n == 2 else F.fractional_max_pool3d
    torch_fn = getattr(torch.nn.functional, f"fractional_max_pool{n}d")
    ours = ours_fn(make(x, device), kernel, size, return_indices=True, _random_samples=make(samples, device))
    theirs = torch_fn(torch.tensor(x), kernel, size, return_indices=True, _random_samples=torch.tensor(samples))
    np.testing.assert_array_equal(to_numpy(ours[0]), theirs[0].numpy())
    np.testing.assert_array_equal(to_numpy(ours[1]), theirs[1].numpy())
    assert ours[1].dtype == tensor.int64
    compare_with_torch(lambda t, s: ours_fn(t, kernel, size, _random_samples=s),
                       lambda t, s: torch_fn(t, kernel, size, _random_samples=s), [x, samples], device, grads=[0])


def test_fractional_max_pool_ratio_unbatched_module_and_nan_like_torch(device):
    torch = pytest.importorskip("torch")
    x, samples = data(3, 10, 9), uniform(1, 3, 2)
    ours = nn.FractionalMaxPool2d(2, output_ratio=(0.5, 0.7), return_indices=True, _random_samples=make(samples, device))
    theirs = torch.nn.FractionalMaxPool2d(2, output_ratio=(0.5, 0.7), return_indices=True,
                                          _random_samples=torch.tensor(samples))
    assert repr(ours) == repr(theirs) == "FractionalMaxPool2d()" and list(ours.state_dict()) == ["_random_samples"]
    for a, b in zip(ours(make(x, device)), theirs(torch.tensor(x))):
        np.testing.assert_array_equal(to_numpy(a), b.numpy())
    # ties keep the first position, a NaN wins (the last NaN of a window)
    x = np.array([[[[1.0, 5.0, np.nan, 2.0], [5.0, 5.0, 3.0, np.nan]]]])
    zeros = np.zeros((1, 1, 2))
    ours = F.fractional_max_pool2d(make(x, device), 2, (1, 2), return_indices=True, _random_samples=make(zeros, device))
    theirs = torch.nn.functional.fractional_max_pool2d(torch.tensor(x), 2, (1, 2), return_indices=True,
                                                       _random_samples=torch.tensor(zeros))
    np.testing.assert_array_equal(to_numpy(ours[0]), theirs[0].numpy())
    np.testing.assert_array_equal(to_numpy(ours[1]), theirs[1].numpy())


def test_fractional_max_pool_draws_samples_from_the_engine_generator(device):
    x = make(data(2, 3, 12, 12), device)
    pool = nn.FractionalMaxPool2d(3, output_size=5)
    tensor.manual_seed(7)
    first, second = pool(x), pool(x)
    tensor.manual_seed(7)
    np.testing.assert_array_equal(to_numpy(pool(x)), to_numpy(first))
    assert not np.array_equal(to_numpy(first), to_numpy(second))


def test_fractional_max_pool_gradients_by_finite_differences(device):
    samples2, samples3 = make(uniform(2, 2, 2), device), make(uniform(1, 2, 3), device)
    gradcheck_float64(lambda t: F.fractional_max_pool2d(t, 2, (3, 4), _random_samples=samples2.double()),
                      [data(2, 2, 5, 6)], device)
    gradcheck_float64(lambda t: F.fractional_max_pool3d(t, (2, 1, 2), output_ratio=0.5,
                                                        _random_samples=samples3.double()),
                      [data(1, 2, 5, 4, 5)], device)


def test_fractional_max_pool_double_backward_matches_torch(device):
    torch = pytest.importorskip("torch")
    x, w, samples = data(1, 2, 7, 7), data(1, 2, 3, 3, seed=2), uniform(1, 2, 2)
    xo, wo = make(x, device, requires_grad=True), make(w, device, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    out = (F.fractional_max_pool2d(xo, 3, 3, _random_samples=make(samples, device)) * wo).sum()
    ref = (torch.nn.functional.fractional_max_pool2d(xt, 3, 3, _random_samples=torch.tensor(samples)) * wt).sum()
    (gx,) = tensor.autograd.grad(out, xo, create_graph=True)
    (gt,) = torch.autograd.grad(ref, xt, create_graph=True)
    (gx * gx).sum().backward()
    (gt * gt).sum().backward()
    np.testing.assert_allclose(to_numpy(wo.grad), wt.grad.numpy(), rtol=1e-10)


def test_fractional_max_pool_errors(device):
    x = make(data(1, 2, 8, 8), device, dtype=tensor.float32)
    with pytest.raises(ValueError, match="either an output_size or an output_ratio"):
        F.fractional_max_pool2d(x, 2)
    with pytest.raises(ValueError, match="pool height 2 too large relative to input height 8"):
        F.fractional_max_pool2d(x, 2, output_size=8)
    with pytest.raises(ValueError, match="pool time 2 too large"):  # 3-d needs output + kernel <= input
        F.fractional_max_pool3d(make(data(1, 1, 8, 8, 8), device), 2, output_size=7)
    with pytest.raises(tensor.DTypeError, match="dtype"):
        F.fractional_max_pool2d(x, 2, 4, _random_samples=make(uniform(1, 2, 2), device))
    with pytest.raises(tensor.ShapeError, match=r"\(1, 2, 2\)"):
        F.fractional_max_pool2d(x, 2, 4, _random_samples=make(uniform(1, 2, 3), device, dtype=x.dtype))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        F.fractional_max_pool2d(x, 2, 4, _random_samples=make(uniform(1, 2, 2) + 2, device, dtype=x.dtype))
    with pytest.raises(tensor.ShapeError, match="4-d"):
        F.fractional_max_pool2d(make(data(8, 8), device), 2, 4)
    with pytest.raises(tensor.DTypeError, match="floating"):
        F.fractional_max_pool2d(make(np.ones((1, 1, 8, 8), np.int64), device), 2, 4)
    with pytest.raises(ValueError, match="only one of output_size and output_ratio"):
        nn.FractionalMaxPool2d(2, output_size=4, output_ratio=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.FractionalMaxPool3d(2, output_ratio=1.5)
    with pytest.raises(ValueError, match="kernel_size must be greater than 0"):
        nn.FractionalMaxPool3d(0, output_size=2)


# ------------------------------------------------------------------------- adaptive log softmax


def _adaptive_twins(device, torch, **kwargs):
    ours = nn.AdaptiveLogSoftmaxWithLoss(8, 12, [3, 7], **kwargs).double().to(device)
    theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(8, 12, [3, 7], **kwargs).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    copy_weights(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("head_bias", [False, True])
def test_adaptive_log_softmax_matches_torch(device, head_bias):
    torch = pytest.importorskip("torch")
    ours, theirs = _adaptive_twins(device, torch, div_value=2.0, head_bias=head_bias)
    assert repr(ours).startswith(repr(theirs))  # ours adds a parameter count below the tree
    x, target = data(10, 8), np.array([0, 11, 4, 2, 7, 9, 3, 1, 6, 10])
    xo, xt = make(x, device, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = ours(xo, make(target, device)), theirs(xt, torch.tensor(target))
    assert out._fields == ("output", "loss")
    np.testing.assert_allclose(to_numpy(out.output), ref.output.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(to_numpy(out.loss), ref.loss.item(), rtol=1e-10)
    out.loss.backward()
    ref.loss.backward()
    np.testing.assert_allclose(to_numpy(xo.grad), xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(to_numpy(p.grad), q.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(to_numpy(ours.log_prob(make(x, device))), theirs.log_prob(torch.tensor(x)).detach(),
                               rtol=1e-10)
    single = ours(make(x[0], device), make(target[1], device))
    assert single.output.dim() == 0
    np.testing.assert_allclose(to_numpy(single.output), theirs(xt[0], torch.tensor(target[1])).output.item())


def test_adaptive_log_softmax_predict_mixes_head_and_cluster_classes(device):
    torch = pytest.importorskip("torch")
    ours, theirs = _adaptive_twins(device, torch, div_value=2.0)
    with torch.no_grad():  # make the clusters win for rows with a positive first feature
        theirs.head.weight[3:, 0] = 40.0
    ours.load_state_dict(theirs.state_dict())
    x = data(16, 8, seed=4)
    predicted = to_numpy(ours.predict(make(x, device)))
    np.testing.assert_array_equal(predicted, theirs.predict(torch.tensor(x)).numpy())
    assert (predicted < 3).any() and (predicted >= 3).any()
    np.testing.assert_array_equal(predicted, to_numpy(ours.log_prob(make(x, device))).argmax(1))


def test_adaptive_log_softmax_gradients_by_finite_differences(device):
    model = nn.AdaptiveLogSoftmaxWithLoss(4, 6, [2, 4], div_value=2.0).double().to(device)
    target = make(np.array([0, 5, 3, 1, 4]), device)
    gradcheck_float64(lambda x: model(x, target).loss, [data(5, 4)], device)


def test_adaptive_log_softmax_errors(device):
    with pytest.raises(ValueError, match="sequence of length larger than 0"):
        nn.AdaptiveLogSoftmaxWithLoss(4, 10, [])
    with pytest.raises(ValueError, match="between 1 and n_classes-1"):
        nn.AdaptiveLogSoftmaxWithLoss(4, 10, [5, 3])
    model = nn.AdaptiveLogSoftmaxWithLoss(4, 10, [5]).to(device)
    with pytest.raises(RuntimeError, match=r"should be in \[0, 9\]"):
        model(make(data(2, 4), device, dtype=tensor.float32), make(np.array([1, 10]), device))
    with pytest.raises(tensor.ShapeError, match="same size in the batch"):
        model(make(data(3, 4), device, dtype=tensor.float32), make(np.array([1, 2]), device))
    with pytest.raises(tensor.ShapeError, match="multi-target"):
        model(make(data(2, 4), device, dtype=tensor.float32), make(np.ones((2, 2), np.int64), device))


# ------------------------------------------------------------------------------------- RNNBase


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_rnn_base_builds_each_modes_parameters_like_torch(device, mode):
    torch = pytest.importorskip("torch")
    ours = nn.RNNBase(mode, 3, 4, num_layers=2, bidirectional=True, device=device)
    theirs = torch.nn.RNNBase(mode, 3, 4, num_layers=2, bidirectional=True)
    assert ours.mode == mode
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()
    ]
    with pytest.raises(NotImplementedError, match="nn.RNN, nn.LSTM or nn.GRU"):
        ours(tensor.zeros(2, 1, 3, device=device))


def test_rnn_base_is_the_public_base_of_the_recurrent_layers(device):
    layers = [nn.RNN(3, 4), nn.RNN(3, 4, nonlinearity="relu"), nn.LSTM(3, 4, batch_first=True), nn.GRU(3, 4, 2)]
    assert all(isinstance(layer, nn.RNNBase) for layer in layers)
    assert [layer.mode for layer in layers] == ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
    output, _ = layers[2].to(device)(make(data(2, 5, 3), device, dtype=tensor.float32))
    assert tuple(output.shape) == (2, 5, 4)
    with pytest.raises(ValueError, match="Unrecognized RNN mode"):
        nn.RNNBase("LSTMX", 3, 4)


# ---------------------------------------------------------------------- CrossMapLRN2d, NLLLoss2d


@pytest.mark.parametrize("size, channels", [(5, 9), (4, 6), (3, 2), (1, 4)])
def test_cross_map_lrn2d_matches_torch(device, size, channels):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.CrossMapLRN2d(size, alpha=0.4, beta=0.6, k=1.5), torch.nn.CrossMapLRN2d(size, 0.4, 0.6, 1.5)
    assert repr(ours) == repr(theirs)
    x = data(2, channels, 3, 4)
    # PyTorch's own backward is not the gradient of its forward (its gradcheck fails): compare values only
    compare_with_torch(ours, theirs, [x], device, grads=[], rtol=1e-10)
    gradcheck_float64(ours, [x[:1, :, :2, :2]], device)


def test_cross_map_lrn2d_wants_4d_input(device):
    with pytest.raises(tensor.ShapeError, match="4-d"):
        nn.CrossMapLRN2d(3)(make(data(3, 4, 4), device))


def test_nll_loss2d_is_a_deprecated_nll_loss(device):
    with pytest.warns(FutureWarning, match="NLLLoss2d"):
        loss = nn.NLLLoss2d(ignore_index=1)
    assert isinstance(loss, nn.NLLLoss)
    logp = F.log_softmax(make(data(2, 3, 4, 4), device), dim=1)
    target = make(np.random.default_rng(0).integers(0, 3, (2, 4, 4)), device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = nn.NLLLoss(ignore_index=1)(logp, target)
    np.testing.assert_allclose(to_numpy(loss(logp, target)), to_numpy(expected))
