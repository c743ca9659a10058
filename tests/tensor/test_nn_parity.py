"""PyTorch parity for padding, activations, 1-d / adaptive-max pooling, channel dropout and distances:
values and input/parameter gradients against torch in float64, finite differences for the new
Functions, module reprs and state_dict keys, and clear errors for bad arguments."""
import numpy as np
import pytest

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor.autograd import gradcheck

from helpers import compare_with_torch as _compare
from helpers import make, to_numpy

torch = pytest.importorskip("torch")
tnn, TF = torch.nn, torch.nn.functional


def _data(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def _same_repr_and_state(ours, theirs):
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())


# -------------------------------------------------------------------------------------- padding

PAD_CASES = [
    ((1, 2), "constant", 0.5, (2, 3, 5)),
    ((1, 2, 0, 3), "constant", None, (2, 3, 4, 5)),
    ((-1, 2), "constant", None, (2, 5)),
    ((2, 1), "reflect", None, (2, 3, 5)),
    ((1, 2, 2, 1), "reflect", None, (2, 3, 4, 5)),
    ((3, 1), "replicate", None, (2, 3, 5)),
    ((1, 2, 2, 1), "replicate", None, (1, 3, 4, 5)),
    ((1, 2, 2, 1), "circular", None, (1, 3, 4, 5)),
]


@pytest.mark.parametrize("pad,mode,value,shape", PAD_CASES, ids=str)
def test_functional_pad_matches_torch(pad, mode, value, shape, device):
    _compare(lambda x: F.pad(x, pad, mode, value), lambda x: TF.pad(x, pad, mode, value), [_data(*shape)], device)


PAD_MODULES = [
    ("ZeroPad1d", (2,), (2, 3, 5)),
    ("ZeroPad1d", ((1, 3),), (3, 5)),
    ("ZeroPad2d", (2,), (2, 3, 4, 5)),
    ("ZeroPad2d", ((1, 0, 2, 3),), (3, 4, 5)),
    ("ConstantPad1d", (2, 3.5), (2, 3, 5)),
    ("ConstantPad2d", ((1, 2, 3, 0), -1.0), (2, 3, 4, 5)),
    ("ReflectionPad1d", (2,), (2, 3, 5)),
    ("ReflectionPad1d", ((3, 1),), (3, 5)),
    ("ReflectionPad2d", ((1, 1, 2, 0),), (2, 3, 4, 5)),
    ("ReflectionPad2d", (2,), (3, 4, 5)),
    ("ReplicationPad1d", ((3, 1),), (2, 3, 5)),
    ("ReplicationPad2d", (3,), (2, 3, 4, 5)),
    ("CircularPad2d", ((1, 2, 0, 3),), (2, 3, 4, 5)),
    ("ZeroPad3d", (1,), (2, 2, 3, 4, 5)),
    ("ReplicationPad3d", ((1, 0, 2, 1, 0, 1),), (1, 2, 3, 4, 5)),
]


@pytest.mark.parametrize("name,args,shape", PAD_MODULES, ids=str)
def test_padding_modules_match_torch(name, args, shape, device):
    ours, theirs = getattr(nn, name)(*args), getattr(tnn, name)(*args)
    _same_repr_and_state(ours, theirs)
    _compare(ours, theirs, [_data(*shape)], device)


def test_padding_modules_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"ZeroPad2d: padding must be an int or a tuple of 4 ints.*\(1, 2\)"):
        nn.ZeroPad2d((1, 2))
    with pytest.raises(ValueError, match=r"ReflectionPad1d: expected a 2-d .* or 3-d .* got shape \(2, 3, 4, 5\)"):
        nn.ReflectionPad1d(1)(tensor.zeros(2, 3, 4, 5))
    with pytest.raises(tensor.errors.ShapeError, match="reflect padding 5 must be less than the size 5"):
        nn.ReflectionPad1d(5)(tensor.zeros(2, 3, 5))


# ---------------------------------------------------------------------------------- activations

ACTIVATIONS = [
    ("hardtanh", {}), ("hardtanh", dict(min_val=-2.0, max_val=0.5)), ("relu6", {}), ("selu", {}), ("celu", {}),
    ("celu", dict(alpha=2.5)), ("glu", {}), ("glu", dict(dim=1)), ("hardswish", {}), ("hardsigmoid", {}),
    ("mish", {}), ("softsign", {}), ("logsigmoid", {}), ("tanhshrink", {}),
    ("threshold", dict(threshold=0.3, value=-2.0)),
]


@pytest.mark.parametrize("name,kwargs", ACTIVATIONS, ids=str)
def test_activation_functions_match_torch(name, kwargs, device):
    x = _data(3, 4, 6, scale=4.0)  # wide enough to reach every branch (hard* bounds at +-3, relu6 at 6)
    _compare(lambda t: getattr(F, name)(t, **kwargs), lambda t: getattr(TF, name)(t, **kwargs), [x], device)


def test_logsigmoid_is_finite_for_large_inputs(device):
    x = np.array([-1000.0, -40.0, -1.0, 0.0, 1.0, 40.0, 1000.0])
    out = _compare(F.logsigmoid, TF.logsigmoid, [x], device)
    assert np.isfinite(to_numpy(out)).all()


def test_hardtanh_gradient_is_zero_at_the_bounds_like_torch(device):
    x = np.array([-1.0, -0.5, 0.0, 1.0, 6.0, 7.0])
    _compare(F.hardtanh, TF.hardtanh, [x], device)
    _compare(F.relu6, TF.relu6, [x], device)


def test_hardtanh_gradcheck(device):
    x = make(_data(4, 5, scale=2.0), device, requires_grad=True)
    assert gradcheck(lambda t: F.hardtanh(t, -1.5, 0.7), [x])


ACTIVATION_MODULES = [
    ("Hardtanh", ()), ("Hardtanh", (-2.0, 3.0, True)), ("ReLU6", ()), ("ReLU6", (True,)), ("SELU", ()),
    ("SELU", (True,)), ("CELU", ()), ("CELU", (2.0, True)), ("GLU", ()), ("GLU", (1,)), ("Hardswish", ()),
    ("Hardsigmoid", (True,)), ("Mish", ()), ("Softsign", ()), ("LogSigmoid", ()), ("Tanhshrink", ()),
    ("Threshold", (0.1, 20.0)), ("Threshold", (0.1, 2.0, True)),
]


@pytest.mark.parametrize("name,args", ACTIVATION_MODULES, ids=str)
def test_activation_modules_match_torch(name, args, device):
    ours, theirs = getattr(nn, name)(*args), getattr(tnn, name)(*args)
    _same_repr_and_state(ours, theirs)
    # torch's inplace=True would write into the leaf: give it a copy
    _compare(ours, lambda t: theirs(t.clone()), [_data(2, 4, 6, scale=4.0)], device)


@pytest.mark.parametrize("num_parameters,shape", [(1, (2, 3, 4)), (3, (2, 3, 4)), (3, (5, 3)), (1, (4,)), (1, ())],
                         ids=str)
def test_prelu_matches_torch_with_weight_gradient(num_parameters, shape, device):
    ours, theirs = nn.PReLU(num_parameters).double().to(device), tnn.PReLU(num_parameters).double()
    _same_repr_and_state(ours, theirs)
    np.testing.assert_array_equal(to_numpy(ours.weight), theirs.weight.detach().numpy())  # init 0.25
    weight = _data(num_parameters, seed=3)
    ours.weight.data[...] = make(weight, device).data
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(weight))
    _compare(ours, theirs, [_data(*shape)], device)
    seed_sum = theirs.weight.grad.numpy()
    np.testing.assert_allclose(to_numpy(ours.weight.grad), seed_sum, rtol=1e-7, atol=1e-10)


def test_prelu_functional_matches_torch(device):
    _compare(F.prelu, TF.prelu, [_data(2, 3, 4), _data(3, seed=1)], device)


def test_activations_reject_bad_arguments():
    with pytest.raises(ValueError, match="glu: halving dim -1 must have an even size, got 5"):
        F.glu(tensor.zeros(2, 5))
    with pytest.raises(ValueError, match="hardtanh: min_val 2 must not exceed max_val 1"):
        F.hardtanh(tensor.zeros(2), 2, 1)
    with pytest.raises(ValueError, match="CELU: alpha must be positive, got 0"):
        nn.CELU(0)
    with pytest.raises(ValueError, match="PReLU: num_parameters must be a positive int.*got 0"):
        nn.PReLU(0)
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(3,\) does not match input shape \(2, 4\)"):
        nn.PReLU(3)(tensor.zeros(2, 4))
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(4,\) does not match input shape \(4,\)"):
        F.prelu(tensor.zeros(4), tensor.zeros(4))


# -------------------------------------------------------------------------------------- pooling

POOL1D_CASES = [
    ("max_pool1d", dict(kernel_size=2)),
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool1d", dict(kernel_size=2, stride=1, dilation=2, ceil_mode=True)),
    ("avg_pool1d", dict(kernel_size=3)),
    ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg_pool1d", dict(kernel_size=(2,), stride=(2,), ceil_mode=True)),
    ("adaptive_avg_pool1d", dict(output_size=3)),
    ("adaptive_avg_pool1d", dict(output_size=4)),
    ("adaptive_max_pool1d", dict(output_size=3)),
]


@pytest.mark.parametrize("name,kwargs", POOL1D_CASES, ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 9), (3, 8)], ids=str)
def test_pool1d_matches_torch(name, kwargs, shape, device):
    _compare(lambda x: getattr(F, name)(x, **kwargs), lambda x: getattr(TF, name)(x, **kwargs), [_data(*shape)], device)


@pytest.mark.parametrize("size", [1, 3, (2, 5), (None, 3), (4, 4)], ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (3, 8, 8)], ids=str)
def test_adaptive_max_pool2d_matches_torch(size, shape, device):
    x = np.round(_data(*shape))  # ties: the first maximum must get the gradient, as in PyTorch
    _compare(lambda t: F.adaptive_max_pool2d(t, size), lambda t: TF.adaptive_max_pool2d(t, size), [x], device)


def test_adaptive_max_pool_indices_match_torch(device):
    x = _data(2, 3, 7, 9)
    out, idx = F.adaptive_max_pool2d(make(x, device), (3, 4), return_indices=True)
    ref, ref_idx = TF.adaptive_max_pool2d(torch.tensor(x), (3, 4), return_indices=True)
    np.testing.assert_array_equal(to_numpy(idx), ref_idx.numpy())
    _, idx1 = F.max_pool1d(make(x[0], device), 3, return_indices=True)
    np.testing.assert_array_equal(to_numpy(idx1), TF.max_pool1d(torch.tensor(x[0]), 3, return_indices=True)[1].numpy())


def test_adaptive_max_pool2d_gradcheck(device):
    x = make(_data(2, 2, 5, 7), device, requires_grad=True)
    assert gradcheck(lambda t: F.adaptive_max_pool2d(t, (3, 4)), [x])


POOL_MODULES = [
    ("MaxPool1d", (3,), {}), ("MaxPool1d", (3, 2, 1, 2, False, True), {}), ("AvgPool1d", (3,), {}),
    ("AvgPool1d", (3, 2, 1, True, False), {}), ("AdaptiveAvgPool1d", (5,), {}), ("AdaptiveMaxPool1d", (4,), {}),
    ("AdaptiveMaxPool2d", ((3, None),), {}), ("AdaptiveMaxPool2d", (3,), {}),
]


@pytest.mark.parametrize("name,args,kwargs", POOL_MODULES, ids=str)
def test_pool_modules_match_torch(name, args, kwargs, device):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(tnn, name)(*args, **kwargs)
    _same_repr_and_state(ours, theirs)
    shape = (2, 3, 6, 10) if name.endswith("2d") else (2, 3, 10)
    _compare(ours, theirs, [_data(*shape)], device)


def test_pooling_rejects_bad_arguments():
    with pytest.raises(tensor.errors.ShapeError, match=r"max_pool1d: expected a 3-d .* got shape \(2, 3, 4, 5\)"):
        F.max_pool1d(tensor.zeros(2, 3, 4, 5), 2)
    with pytest.raises(ValueError, match=r"avg_pool1d: kernel_size must be an int or a 1-tuple, got \(2, 2\)"):
        F.avg_pool1d(tensor.zeros(2, 3, 4), (2, 2))
    with pytest.raises(ValueError, match="adaptive_max_pool2d: output_size must be a positive int.*got 0"):
        F.adaptive_max_pool2d(tensor.zeros(1, 1, 4, 4), 0)


# -------------------------------------------------------------------------------------- dropout


@pytest.mark.filterwarnings("ignore:dropout2d. received a 3-d input")
@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (4, 16, 7)), (F.dropout1d, (16, 7)), (F.dropout2d, (4, 16, 3, 5)),
                                      (F.dropout2d, (16, 3, 5))], ids=lambda value: getattr(value, "__name__", str(value)))
def test_channel_dropout_drops_whole_channels(fn, shape, device):
    tensor.manual_seed(0)
    x = make(np.ones(shape), device, requires_grad=True)
    unbatched = fn is F.dropout1d and len(shape) == 2  # dropout2d reads a 3-d input as (N, C, L), as PyTorch
    out = fn(x, p=0.5)
    values = to_numpy(out).reshape((1,) + shape if unbatched else shape)
    per_channel = values.reshape(values.shape[:2] + (-1,))
    # every channel is all zeros or all 1 / (1 - p), and both happen
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0 < (per_channel == 0).all(-1).sum() < per_channel.shape[0] * per_channel.shape[1]
    out.sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), to_numpy(out))  # the gradient is the scaled mask


def test_channel_dropout_eval_and_extreme_p(device):
    x = make(_data(2, 3, 4), device)
    assert F.dropout1d(x, 0.5, training=False) is x
    assert F.dropout1d(x, 0.0) is x
    assert not to_numpy(F.dropout1d(x, 1.0)).any()


def test_alpha_dropout_keeps_mean_and_variance(device):
    tensor.manual_seed(0)
    x = make(_data(200_000), device)
    out = to_numpy(F.alpha_dropout(x, 0.2, training=True))
    assert abs(out.mean()) < 0.02 and abs(out.std() - 1.0) < 0.02
    assert F.alpha_dropout(x, 0.2) is x  # training defaults to False, as in PyTorch


DROPOUT_MODULES = [("Dropout1d", ()), ("Dropout2d", (0.3, True)), ("AlphaDropout", (0.2,))]


@pytest.mark.parametrize("name,args", DROPOUT_MODULES, ids=str)
def test_dropout_modules_repr_and_eval(name, args, device):
    ours, theirs = getattr(nn, name)(*args), getattr(tnn, name)(*args)
    _same_repr_and_state(ours, theirs)
    x = make(_data(*((2, 3, 4) if name == "Dropout1d" else (2, 3, 4, 5))), device)
    assert ours.eval()(x) is x


def test_dropout_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Dropout2d: probability p must be between 0 and 1, got 1.5"):
        nn.Dropout2d(1.5)
    with pytest.raises(ValueError, match=r"dropout1d: expected a 3-d .* got shape \(2, 3, 4, 5\)"):
        F.dropout1d(tensor.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="alpha_dropout: probability p must be between 0 and 1, got -0.1"):
        F.alpha_dropout(tensor.zeros(3), -0.1, True)


# ------------------------------------------------------------------------------------ distances


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance_matches_torch(p, keepdim, device):
    _compare(lambda a, b: F.pairwise_distance(a, b, p, keepdim=keepdim),
             lambda a, b: TF.pairwise_distance(a, b, p, keepdim=keepdim), [_data(5, 4), _data(5, 4, seed=1)], device)


def test_distance_modules_match_torch(device):
    for name, args in [("CosineSimilarity", ()), ("CosineSimilarity", (0, 1e-6)), ("PairwiseDistance", ()),
                       ("PairwiseDistance", (1.0, 1e-5, True))]:
        ours, theirs = getattr(nn, name)(*args), getattr(tnn, name)(*args)
        _same_repr_and_state(ours, theirs)
        _compare(ours, theirs, [_data(5, 4), _data(5, 4, seed=1)], device)


def test_pairwise_distance_rejects_scalars():
    with pytest.raises(ValueError, match=r"pairwise_distance: inputs need at least one dim, got shapes \(\) and"):
        F.pairwise_distance(tensor.tensor(1.0), tensor.zeros(3))
