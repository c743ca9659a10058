"""RReLU, MaxUnpool, LazyLinear / LazyConv, gumbel_softmax, FeatureAlphaDropout, LPPool, affine_grid and
grid_sample: values and gradients against PyTorch on the same inputs and weights, finite-difference
gradients in float64, train/eval behaviour, lazy initialisation and state dicts, and clear errors."""
import copy
import pickle
import warnings

import numpy as np
import pytest

import tensor
from tensor import nn
from tensor.nn import functional as F
from tensor.nn.functional import stochastic
from tests.tensor.helpers import needs_torch
from torch_compare import compare_with_torch, copy_weights, gradcheck_float64, make, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def positive(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0.2, 2.0, shape)


# ------------------------------------------------------------------------------------------ RReLU


def test_rrelu_eval_is_leaky_relu_with_the_mean_slope(device):
    torch = pytest.importorskip("torch")
    x = data(4, 5)
    x[0, 0] = 0.0
    compare_with_torch(lambda t: F.rrelu(t, 0.1, 0.3), lambda t: torch.nn.functional.rrelu(t, 0.1, 0.3), [x], device)
    layer = nn.RReLU(0.1, 0.3).eval()
    np.testing.assert_allclose(to_numpy(layer(make(x, device))), np.where(x > 0, x, 0.2 * x))


def test_rrelu_training_draws_a_slope_per_element_and_backprops_it(device):
    x = make(data(200, 50), device, requires_grad=True)
    out = F.rrelu(x, 0.1, 0.3, training=True)
    out.backward(tensor.ones_like(out))
    xs, ys, grads = to_numpy(x), to_numpy(out), to_numpy(x.grad)
    neg = xs < 0
    slopes = ys[neg] / xs[neg]
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and slopes.std() > 0.03  # drawn, not fixed
    np.testing.assert_allclose(grads[neg], slopes)  # the gradient is the drawn slope
    np.testing.assert_array_equal(ys[~neg], xs[~neg])
    np.testing.assert_array_equal(grads[~neg], 1.0)


def test_rrelu_is_reproducible_and_follows_the_module_mode(device):
    x = make(data(6, 7), device)
    layer = nn.RReLU()
    tensor.manual_seed(3)
    first = to_numpy(layer(x))
    tensor.manual_seed(3)
    np.testing.assert_array_equal(to_numpy(layer(x)), first)
    assert not np.allclose(first, to_numpy(layer.eval()(x)))
    assert repr(nn.RReLU(0.1, 0.3, inplace=True)) == "RReLU(lower=0.1, upper=0.3, inplace=True)"


def test_rrelu_in_place(device):
    x = make(data(3, 4), device, requires_grad=True)
    y = x * 1.0
    assert F.rrelu_(y, 0.2, 0.2, training=True) is y
    y.sum().backward()
    expected = np.where(to_numpy(x) > 0, 1.0, 0.2)
    np.testing.assert_allclose(to_numpy(x.grad), expected)
    z = x * 1.0
    assert F.rrelu(z, inplace=True) is z
    with pytest.raises(RuntimeError, match="leaf"):
        F.rrelu_(x)


def test_rrelu_errors(device):
    with pytest.raises(ValueError, match="lower .* must not exceed upper"):
        F.rrelu(make(data(3), device), 0.5, 0.1)
    with pytest.raises(TypeError, match="floating point"):
        F.rrelu(make(np.arange(3), device))


# -------------------------------------------------------------------------------------- MaxUnpool

UNPOOL_CASES = [  # shape, kernel, stride, padding, output_size
    ((2, 3, 6, 8), 2, None, 0, None),
    ((2, 3, 7, 9), 3, 2, 1, None),
    ((2, 3, 7, 9), 2, 2, 0, (7, 9)),  # the odd edge that pooling dropped comes back as zeros
    ((3, 5, 5), (2, 3), (1, 2), 0, None),  # unbatched, overlapping windows
]


@pytest.mark.parametrize("shape, kernel, stride, padding, output_size", UNPOOL_CASES)
def test_max_unpool2d_matches_torch(device, shape, kernel, stride, padding, output_size):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional

    def ours(x):
        pooled, idx = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
        return F.max_unpool2d(pooled * 2.0, idx, kernel, stride, padding, output_size)

    def theirs(x):
        pooled, idx = TF.max_pool2d(x, kernel, stride, padding, return_indices=True)
        return TF.max_unpool2d(pooled * 2.0, idx, kernel, stride, padding, output_size)

    compare_with_torch(ours, theirs, [data(*shape)], device)


def test_max_unpool1d_and_modules_match_torch(device):
    torch = pytest.importorskip("torch")
    x = data(2, 3, 11)
    pool, unpool = nn.MaxPool1d(3, 2, 1, return_indices=True), nn.MaxUnpool1d(3, 2, 1)
    tpool, tunpool = torch.nn.MaxPool1d(3, 2, 1, return_indices=True), torch.nn.MaxUnpool1d(3, 2, 1)
    assert repr(unpool) == repr(tunpool) and repr(nn.MaxUnpool2d(2)) == repr(torch.nn.MaxUnpool2d(2))
    compare_with_torch(lambda t: unpool(*pool(t), output_size=(2, 3, 11)),
                       lambda t: tunpool(*tpool(t), output_size=(2, 3, 11)), [x], device)


def test_max_unpool_gradcheck(device):
    idx = make(np.array([[[0, 3, 5], [1, 2, 7]]]), device)
    gradcheck_float64(lambda t: F.max_unpool1d(t, idx, 3, output_size=[8]), [data(1, 2, 3)], device)
    idx2 = F.max_pool2d(make(data(1, 2, 4, 4), device), 2, return_indices=True)[1]
    gradcheck_float64(lambda t: F.max_unpool2d(t, idx2, 2), [data(1, 2, 2, 2)], device)


def test_max_unpool_second_derivative(device):
    x = make(data(1, 2, 4, 4), device, requires_grad=True)
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    (grad,) = tensor.autograd.grad((F.max_unpool2d(pooled, idx, 2) ** 3).sum(), [x], create_graph=True)
    grad.sum().backward()  # d/dx of 3 x^2 at each window's maximum
    is_max = to_numpy(F.max_unpool2d(tensor.ones_like(pooled), idx, 2)) == 1
    np.testing.assert_allclose(to_numpy(x.grad), np.where(is_max, 6 * to_numpy(x), 0.0))


def test_max_unpool_errors(device):
    x = make(data(1, 1, 2, 2), device)
    idx = make(np.array([[[[0, 3], [9, 15]]]]), device)
    with pytest.raises(ValueError, match="invalid output_size .* between 2 and 6"):
        F.max_unpool2d(x, idx, 2, output_size=(6, 4))
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        F.max_unpool2d(x, idx, 2, output_size=(4,))
    with pytest.raises(IndexError, match="invalid max index 15.*3x3"):
        F.max_unpool2d(x, idx, 2, output_size=(3, 3))
    with pytest.raises(ValueError, match="indices shape"):
        F.max_unpool2d(x, idx[..., :1], 2)
    with pytest.raises(TypeError, match="integer tensor"):
        F.max_unpool2d(x, x, 2)
    with pytest.raises(ValueError, match=r"\(N, C, L\) or \(C, L\)"):
        F.max_unpool1d(x, idx, 2)


# -------------------------------------------------------------------------------------- lazy layers


def test_lazy_linear_infers_in_features_and_becomes_linear(device):
    layer = nn.LazyLinear(4).to(device)
    assert isinstance(layer.weight, nn.UninitializedParameter) and repr(layer.weight) == "<UninitializedParameter>"
    assert repr(layer) == "LazyLinear(in_features=0, out_features=4, bias=True)"
    with pytest.raises(RuntimeError, match="shape of an uninitialized parameter"):
        layer.weight.shape
    x = make(data(3, 7), device, dtype=tensor.float32)
    out = layer(x)
    assert type(layer) is nn.Linear and type(layer.weight) is nn.Parameter and layer.in_features == 7
    assert not layer._forward_pre_hooks and tuple(layer.weight.shape) == (4, 7)
    assert repr(layer) == "Linear(in_features=7, out_features=4, bias=True)"
    bound = 1 / np.sqrt(7)
    assert np.abs(to_numpy(layer.weight)).max() <= bound and np.abs(to_numpy(layer.bias)).max() <= bound
    np.testing.assert_allclose(to_numpy(out), to_numpy(F.linear(x, layer.weight, layer.bias)))
    out.sum().backward()
    assert tuple(layer.weight.grad.shape) == (4, 7)


def test_lazy_linear_follows_dtype_and_matches_torch(device):
    torch = pytest.importorskip("torch")
    ours = nn.LazyLinear(3, bias=False).double().to(device)
    x = data(5, 6)
    out = ours(make(x, device))
    assert out.dtype == tensor.float64 and ours.bias is None
    theirs = torch.nn.Linear(6, 3, bias=False).double()
    copy_weights(ours, theirs)
    np.testing.assert_allclose(to_numpy(out), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)


def test_lazy_state_dict_round_trips(device):
    trained = nn.LazyLinear(3).to(device)
    trained(make(data(2, 5), device, dtype=tensor.float32))
    fresh = nn.LazyLinear(3).to(device)
    state = fresh.state_dict()
    assert all(isinstance(v, nn.UninitializedParameter) for v in state.values())
    assert not nn.LazyLinear(3).load_state_dict(state).missing_keys  # lazy into lazy: nothing to copy
    fresh.load_state_dict(trained.state_dict())  # materialises, still lazy until called
    assert type(fresh) is nn.LazyLinear and tuple(fresh.weight.shape) == (3, 5)
    np.testing.assert_array_equal(to_numpy(fresh.weight), to_numpy(trained.weight))
    x = make(data(4, 5, seed=1), device, dtype=tensor.float32)
    np.testing.assert_array_equal(to_numpy(fresh(x)), to_numpy(trained(x)))  # loaded values are kept
    assert type(fresh) is nn.Linear and fresh.in_features == 5
    loaded = nn.LazyLinear(3).to(device)
    loaded.load_state_dict(trained.state_dict())
    with pytest.raises(ValueError, match="input has 4 features but the loaded weight"):
        loaded(make(data(2, 4), device, dtype=tensor.float32))


def test_lazy_parameters_survive_copy_and_pickle():
    model = nn.Sequential(nn.LazyLinear(2), nn.ReLU())
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(clone[0].weight, nn.UninitializedParameter)
        clone(tensor.ones(3, 4))
        assert type(clone[0]) is nn.Linear and tuple(clone[0].weight.shape) == (2, 4)
    assert isinstance(model[0].weight, nn.UninitializedParameter)  # the original is untouched


@pytest.mark.parametrize("lazy, plain, shape", [
    (lambda m: m.LazyConv2d(4, 3, padding=1, groups=2), lambda m: m.Conv2d(6, 4, 3, padding=1, groups=2), (2, 6, 5, 5)),
    (lambda m: m.LazyConv1d(4, 2, stride=2), lambda m: m.Conv1d(3, 4, 2, stride=2), (3, 8)),  # unbatched
    (lambda m: m.LazyConvTranspose2d(2, 3, stride=2), lambda m: m.ConvTranspose2d(3, 2, 3, stride=2), (1, 3, 4, 4)),
    (lambda m: m.LazyConvTranspose1d(2, 3), lambda m: m.ConvTranspose1d(5, 2, 3), (2, 5, 6)),
])
def test_lazy_conv_infers_in_channels_and_matches_torch(device, lazy, plain, shape):
    torch = pytest.importorskip("torch")
    ours, theirs = lazy(nn).double().to(device), plain(torch.nn).double()
    assert repr(lazy(nn)) == repr(lazy(torch.nn))
    x = data(*shape)
    out = ours(make(x, device))
    assert type(ours) is type(plain(nn)) and repr(ours) == repr(theirs)
    copy_weights(ours, theirs)
    np.testing.assert_allclose(to_numpy(out), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_lazy_conv_errors(device):
    with pytest.raises(ValueError, match="channels must be divisible by groups 2"):
        nn.LazyConv2d(4, 3, groups=2)(make(data(1, 3, 4, 4), device))
    with pytest.raises(ValueError, match="out_channels 3 must be divisible by groups 2"):
        nn.LazyConv2d(3, 3, groups=2)
    with pytest.raises(ValueError, match="expected a 3-d .* or 4-d"):
        nn.LazyConv2d(4, 3)(make(data(4, 4), device))
    with pytest.raises(TypeError, match="must pass a Tensor"):
        nn.LazyLinear(2)([1.0, 2.0])


# ---------------------------------------------------------------------------------- gumbel_softmax


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_matches_torch_on_the_same_noise(device, monkeypatch, hard):
    torch = pytest.importorskip("torch")
    noise = -np.log(np.random.default_rng(1).exponential(size=(4, 5)))
    monkeypatch.setattr(stochastic, "_gumbel_noise", lambda like: make(noise, device).data)

    def theirs(logits):  # PyTorch's gumbel_softmax with this noise
        y_soft = ((logits + torch.tensor(noise)) / 0.5).softmax(-1)
        if not hard:
            return y_soft
        y_hard = torch.zeros_like(logits).scatter_(-1, y_soft.max(-1, keepdim=True)[1], 1.0)
        return y_hard - y_soft.detach() + y_soft

    weights = data(4, 5, seed=2)
    compare_with_torch(lambda t: F.gumbel_softmax(t, tau=0.5, hard=hard) * make(weights, device),
                       lambda t: theirs(t) * torch.tensor(weights), [data(4, 5)], device)


def test_gumbel_softmax_samples_the_categorical_distribution(device):
    tensor.manual_seed(0)
    logits = np.log(np.array([0.6, 0.3, 0.1]))
    samples = to_numpy(F.gumbel_softmax(make(np.tile(logits, (4000, 1)), device), hard=True))
    assert set(np.unique(samples)) == {0.0, 1.0} and (samples.sum(1) == 1).all()
    np.testing.assert_allclose(samples.mean(0), [0.6, 0.3, 0.1], atol=0.03)
    soft = to_numpy(F.gumbel_softmax(make(data(3, 4), device), tau=2.0, dim=0))
    np.testing.assert_allclose(soft.sum(0), 1.0)


def test_gumbel_softmax_hard_backprops_the_soft_gradient(device):
    logits = make(data(3, 6), device, requires_grad=True)
    weights = make(data(3, 6, seed=1), device)
    grads = []
    for hard in (False, True):
        tensor.manual_seed(5)
        (F.gumbel_softmax(logits, hard=hard) * weights).sum().backward()
        grads.append(to_numpy(logits.grad))
        logits.grad = None
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-12)


def test_gumbel_softmax_errors(device):
    x = make(data(2, 3), device)
    with pytest.warns(UserWarning, match="eps"):
        F.gumbel_softmax(x, eps=1e-5)
    with pytest.raises(ValueError, match="tau must be positive"):
        F.gumbel_softmax(x, tau=0)
    with pytest.raises(TypeError, match="floating point"):
        F.gumbel_softmax(make(np.arange(3), device))


# ---------------------------------------------------------------------------- FeatureAlphaDropout

_ALPHA = 1.7580993408473766


def test_feature_alpha_dropout_drops_whole_channels(device):
    p = 0.3
    a = ((_ALPHA ** 2 * p + 1) * (1 - p)) ** -0.5
    x = make(data(16, 8, 5, 3), device, requires_grad=True)
    out = F.feature_alpha_dropout(x, p, training=True)
    out.backward(tensor.ones_like(out))
    xs, ys, grads = to_numpy(x), to_numpy(out), to_numpy(x.grad)
    kept = np.isclose(ys, a * xs + _ALPHA * a * p).all(axis=(2, 3))
    dropped = np.isclose(ys, _ALPHA * a * (p - 1)).all(axis=(2, 3))
    assert (kept ^ dropped).all() and 0.1 < dropped.mean() < 0.5  # each channel is wholly one or the other
    np.testing.assert_allclose(grads, np.where(kept[:, :, None, None], a, 0.0) * np.ones_like(xs))


def test_feature_alpha_dropout_keeps_selu_statistics_and_eval_is_identity(device):
    tensor.manual_seed(1)
    x = make(data(4000, 4, 1), device)
    out = to_numpy(F.feature_alpha_dropout(x, 0.2, training=True))
    assert abs(out.mean()) < 0.05 and abs(out.std() - 1) < 0.05
    layer = nn.FeatureAlphaDropout(0.2).eval()
    assert layer(x) is x and F.feature_alpha_dropout(x, 0.2) is x
    assert repr(layer) == "FeatureAlphaDropout(p=0.2, inplace=False)"


def test_feature_alpha_dropout_errors(device):
    with pytest.raises(ValueError, match="at least 2 dims"):
        F.feature_alpha_dropout(make(data(5), device), 0.5, training=True)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.FeatureAlphaDropout(1.5)


# ---------------------------------------------------------------------------------------- LPPool

# torch 2.11 pools x**inf and takes the (1/inf)-th power: every output is 1, where 2.13 gives the max (min) of |x|
LP_INF = needs_torch("2.13", "torch 2.11's LPPool with norm_type=+-inf returns 1 everywhere")

LP_CASES = [  # norm_type, kernel, stride, ceil_mode, positive input only
    (2, 2, None, False, False),
    (2.0, (2, 3), (1, 2), True, False),
    (1.5, 3, 2, True, True),
    (3, 2, 1, False, True),
    (1, 2, None, False, False),
    pytest.param(float("inf"), 2, 1, False, False, marks=LP_INF),
]


@pytest.mark.parametrize("norm_type, kernel, stride, ceil_mode, pos", LP_CASES)
def test_lp_pool2d_matches_torch(device, norm_type, kernel, stride, ceil_mode, pos):
    torch = pytest.importorskip("torch")
    x = positive(2, 3, 5, 7) if pos else data(2, 3, 5, 7)
    layer, twin = nn.LPPool2d(norm_type, kernel, stride, ceil_mode), torch.nn.LPPool2d(norm_type, kernel, stride,
                                                                                      ceil_mode)
    assert repr(layer) == repr(twin)
    compare_with_torch(layer, twin, [x], device)


@pytest.mark.parametrize("norm_type, kernel, stride, ceil_mode", [
    (2, 3, None, False), (1.5, 2, 3, True), pytest.param(-float("inf"), 3, 2, False, marks=LP_INF)])
def test_lp_pool1d_matches_torch(device, norm_type, kernel, stride, ceil_mode):
    torch = pytest.importorskip("torch")
    layer, twin = nn.LPPool1d(norm_type, kernel, stride, ceil_mode), torch.nn.LPPool1d(norm_type, kernel, stride,
                                                                                      ceil_mode)
    assert repr(layer) == repr(twin)
    compare_with_torch(layer, twin, [positive(2, 3, 10)], device)


def test_lp_pool_gradcheck_and_errors(device):
    gradcheck_float64(lambda t: F.lp_pool2d(t, 2.5, 2, 1), [positive(1, 2, 4, 4)], device)
    gradcheck_float64(lambda t: F.lp_pool1d(t, 3, 2), [positive(1, 2, 6)], device)
    with pytest.raises(ValueError, match="norm_type must be a non-zero number"):
        F.lp_pool2d(make(data(1, 1, 4, 4), device), 0, 2)
    with pytest.raises(TypeError, match="floating-point"):
        F.lp_pool1d(make(np.ones((1, 1, 4), dtype=np.int64), device), 2, 2)


# ------------------------------------------------------------------------- affine_grid, grid_sample


def _grid(n, h, w, seed=0):
    """Sample positions inside and beyond [-1, 1], plus exact pixel positions and corners."""
    grid = np.random.default_rng(seed).uniform(-1.3, 1.3, (n, h, w, 2))
    grid[0, 0, 0], grid[0, 0, 1], grid[-1, -1, -1] = (1.0, -1.0), (0.2, 0.6), (-1.0, 1.0)
    return grid


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_matches_torch(device, mode, padding_mode, align_corners):
    torch = pytest.importorskip("torch")
    compare_with_torch(lambda x, g: F.grid_sample(x, g, mode, padding_mode, align_corners),
                       lambda x, g: torch.nn.functional.grid_sample(x, g, mode, padding_mode, align_corners),
                       [data(2, 3, 5, 6), _grid(2, 4, 7)], device)


def test_grid_sample_float32_matches_torch(device):
    torch = pytest.importorskip("torch")
    x, g = data(1, 2, 8, 8).astype(np.float32), _grid(1, 5, 5).astype(np.float32)
    compare_with_torch(lambda a, b: F.grid_sample(a, b, align_corners=False),
                       lambda a, b: torch.nn.functional.grid_sample(a, b, align_corners=False), [x, g], device,
                       rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_volumes_match_torch(device, mode, padding_mode, align_corners):
    # VoxelMorph's SpatialTransformer: 5-d input, trilinear ("bilinear") or nearest
    torch = pytest.importorskip("torch")
    grid = np.random.default_rng(4).uniform(-1.3, 1.3, (2, 3, 4, 5, 3))
    grid[0, 0, 0, 0], grid[-1, -1, -1, -1] = (1.0, -1.0, 0.5), (-1.0, 1.0, -1.0)
    compare_with_torch(lambda x, g: F.grid_sample(x, g, mode, padding_mode, align_corners),
                       lambda x, g: torch.nn.functional.grid_sample(x, g, mode, padding_mode, align_corners),
                       [data(2, 3, 4, 5, 6), grid], device)
    if mode == "bilinear":
        gradcheck_float64(lambda x, g: F.grid_sample(x, g, mode, padding_mode, align_corners),
                          [data(1, 2, 3, 3, 4), np.random.default_rng(5).uniform(-1.2, 1.2, (1, 2, 2, 3, 3))], device)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_gradcheck(device, padding_mode):
    grid = np.random.default_rng(3).uniform(-1.2, 1.2, (2, 3, 4, 2))  # off the kinks at pixel positions
    gradcheck_float64(lambda x, g: F.grid_sample(x, g, "bilinear", padding_mode, False), [data(2, 2, 4, 5), grid],
                      device)
    gradcheck_float64(lambda x: F.grid_sample(x, make(grid, device), "nearest", padding_mode, True),
                      [data(2, 2, 4, 5)], device)
    gradcheck_float64(lambda x, g: F.grid_sample(x, g, "bicubic", padding_mode, False), [data(2, 2, 4, 5), grid],
                      device)


def test_grid_sample_nearest_gives_the_grid_a_zero_gradient(device):
    x, g = make(data(1, 1, 3, 3), device, requires_grad=True), make(_grid(1, 2, 2), device, requires_grad=True)
    F.grid_sample(x, g, "nearest", align_corners=False).sum().backward()
    assert not to_numpy(g.grad).any() and to_numpy(x.grad).sum() > 0


@pytest.mark.parametrize("size", [(2, 3, 4, 5), (2, 1, 3, 4, 2)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_matches_torch(device, size, align_corners):
    torch = pytest.importorskip("torch")
    rows = len(size) - 2
    compare_with_torch(lambda t: F.affine_grid(t, size, align_corners),
                       lambda t: torch.nn.functional.affine_grid(t, size, align_corners), [data(2, rows, rows + 1)],
                       device)


def test_identity_transform_reproduces_the_input(device):
    x = make(data(2, 3, 4, 5), device)
    theta = make(np.tile(np.eye(2, 3), (2, 1, 1)), device, requires_grad=True)
    for align_corners in (False, True):
        grid = F.affine_grid(theta, x.shape, align_corners=align_corners)
        np.testing.assert_allclose(to_numpy(F.grid_sample(x, grid, align_corners=align_corners)), to_numpy(x),
                                   atol=1e-12)
    gradcheck_float64(lambda t: F.grid_sample(x, F.affine_grid(t, (2, 3, 3, 3), False), align_corners=False),
                      [to_numpy(theta) + 0.1 * data(2, 2, 3)], device)


def test_grid_sample_and_affine_grid_errors(device):
    x, g = make(data(1, 2, 3, 3), device), make(_grid(1, 2, 2), device)
    with pytest.raises(NotImplementedError, match="'bicubic' takes 4-d input only"):
        F.grid_sample(x.unsqueeze(2), make(np.zeros((1, 1, 2, 2, 3)), device), "bicubic", align_corners=False)
    with pytest.raises(ValueError, match="mode must be one of"):
        F.grid_sample(x, g, "linear", align_corners=False)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        F.grid_sample(x, g, padding_mode="wrap", align_corners=False)
    with pytest.raises(ValueError, match=r"grid of shape \(N, H_out, W_out, 2\)"):
        F.grid_sample(x, g[..., :1], align_corners=False)
    with pytest.raises(TypeError, match="share one floating dtype"):
        F.grid_sample(x, g.float(), align_corners=False)
    with pytest.raises(tensor.ShapeError, match=r"grid of shape \(N, D_out, H_out, W_out, 3\)"):
        F.grid_sample(x.unsqueeze(2), g, align_corners=False)
    with pytest.warns(UserWarning, match="align_corners=False"):
        F.grid_sample(x, g)
    theta = make(data(1, 2, 3), device)
    with pytest.raises(ValueError, match=r"shape \(N, 3, 4\)"):
        F.affine_grid(theta, (1, 1, 2, 2, 2), False)
    with pytest.raises(ValueError, match="batch of 3"):
        F.affine_grid(theta, (3, 1, 2, 2), False)
    with pytest.raises(NotImplementedError, match="4-d .* and 5-d"):
        F.affine_grid(theta, (1, 2, 2), False)
    with pytest.raises(TypeError, match="floating-point"):
        F.affine_grid(make(np.ones((1, 2, 3), dtype=np.int64), device), (1, 1, 2, 2), False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.affine_grid(theta, (1, 1, 2, 2), align_corners=False)


def test_data_parallel_wraps_like_torch_on_one_device(device):
    # muzero-general wraps each sub-network in nn.DataParallel; on one device torch's runs the module whole
    torch = pytest.importorskip("torch")
    theirs = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ELU()))
    ours = nn.DataParallel(nn.Sequential(nn.Linear(3, 2), nn.ELU())).to(device)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["module.0.weight", "module.0.bias"]
    # where torch sees a GPU, its DataParallel moves the module to cuda:0 and runs it there: .cpu() its tensors
    ours.load_state_dict({k: tensor.tensor(v.cpu().numpy()) for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    ours(make(x, device)).sum().backward()
    theirs(torch.tensor(x)).sum().backward()
    np.testing.assert_allclose(to_numpy(ours(make(x, device))), theirs(torch.tensor(x)).detach().cpu().numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(to_numpy(ours.module[0].weight.grad), theirs.module[0].weight.grad.cpu().numpy(),
                               atol=1e-6)
    assert list(ours.parameters())[0] is ours.module[0].weight
    with pytest.raises(TypeError, match="expects an nn.Module"):
        nn.DataParallel(lambda x: x)
