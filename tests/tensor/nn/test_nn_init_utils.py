"""nn.init (distributions, gains, fans, reproducibility) and nn.utils (clipping, vector round trips)."""
import math

import numpy as np
import pytest

import tensor
from tensor import nn
from tensor.nn import init
from tensor.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters
from torch_compare import make, to_numpy

# ------------------------------------------------------------------------------------- init


def empty(device, *shape):
    return tensor.empty(*shape, device=device)


def test_gain_and_fans_follow_torch():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert init.calculate_gain("conv2d") == 1
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    assert init._calculate_fan_in_and_fan_out(tensor.empty(16, 8, 3, 3)) == (72, 144)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init._calculate_fan_in_and_fan_out(tensor.empty(5))


@pytest.mark.parametrize("fill, mean, std", [
    (lambda t: init.uniform_(t, -2.0, 4.0), 1.0, 6 / math.sqrt(12)),
    (lambda t: init.normal_(t, 0.5, 2.0), 0.5, 2.0),
    (lambda t: init.xavier_uniform_(t, gain=2.0), 0.0, 2.0 * math.sqrt(2 / (200 + 300))),
    (lambda t: init.xavier_normal_(t), 0.0, math.sqrt(2 / (200 + 300))),
    (lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), 0.0, math.sqrt(2 / 200)),
    (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), 0.0, math.sqrt(2 / 300)),
    (lambda t: init.kaiming_normal_(t, a=0.1), 0.0, math.sqrt(2 / 1.01) / math.sqrt(200)),
])
def test_distributions_have_the_documented_moments(device, fill, mean, std):
    t = empty(device, 300, 200)
    assert fill(t) is t
    values = to_numpy(t)
    assert abs(values.mean() - mean) < 0.02 * max(std, 1)
    assert np.isclose(values.std(), std, rtol=0.03)


def test_trunc_normal_stays_in_bounds(device):
    t = init.trunc_normal_(empty(device, 200, 200), mean=0.0, std=1.0, a=-0.5, b=1.0)
    values = to_numpy(t)
    assert values.min() >= -0.5 and values.max() <= 1.0
    assert values.min() < -0.49 and values.max() > 0.99


def test_orthogonal_gives_orthonormal_rows_or_columns(device):
    wide = to_numpy(init.orthogonal_(empty(device, 3, 7), gain=2.0))
    np.testing.assert_allclose(wide @ wide.T, 4 * np.eye(3), atol=1e-5)
    tall = to_numpy(init.orthogonal_(empty(device, 6, 2, 2)).reshape(6, 4))
    np.testing.assert_allclose(tall.T @ tall, np.eye(4), atol=1e-5)


def test_constant_fills_and_in_place_identity(device):
    p = nn.Parameter(tensor.empty(2, 3, device=device))
    version = p._version
    for fill, expected in [(init.zeros_, 0), (init.ones_, 1), (lambda t: init.constant_(t, 0.25), 0.25)]:
        assert fill(p) is p
        assert (to_numpy(p) == expected).all()
    assert p._version > version and p.grad_fn is None and p.requires_grad
    np.testing.assert_array_equal(to_numpy(init.eye_(p)), np.eye(2, 3))


def test_manual_seed_makes_init_reproducible(device):
    tensor.manual_seed(3)
    first = to_numpy(init.kaiming_uniform_(empty(device, 4, 5))).copy()
    tensor.manual_seed(3)
    np.testing.assert_array_equal(to_numpy(init.kaiming_uniform_(empty(device, 4, 5))), first)
    generator = tensor.Generator(device).manual_seed(3)
    assert to_numpy(init.normal_(empty(device, 2), generator=generator)).shape == (2,)


# ------------------------------------------------------------------------------------ utils


def params_with_grads(device, *grads):
    params = []
    for g in grads:
        p = nn.Parameter(make(np.zeros_like(g), device))
        p.grad = make(np.asarray(g), device)
        params.append(p)
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(device, norm_type):
    torch = pytest.importorskip("torch")
    grads = [np.arange(6.0).reshape(2, 3) - 2, np.array([4.0, -7.0])]
    ours = params_with_grads(device, *grads)
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(theirs, grads):
        t.grad = torch.tensor(g)
    total = clip_grad_norm_(ours, max_norm=1.5, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.5, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(to_numpy(p.grad), t.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_leaves_small_gradients_and_skips_missing(device):
    params = params_with_grads(device, np.array([0.3, 0.4]))
    params.append(nn.Parameter(tensor.zeros(2, device=device)))  # no grad: ignored
    assert np.isclose(clip_grad_norm_(iter(params), 1.0).item(), 0.5)
    np.testing.assert_allclose(to_numpy(params[0].grad), [0.3, 0.4])
    assert clip_grad_norm_([], 1.0).item() == 0.0


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 while scaling, as in torch
def test_clip_grad_norm_nonfinite(device):
    params = params_with_grads(device, np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert math.isinf(clip_grad_norm_(params, 1.0).item())


def test_clip_grad_value(device):
    params = params_with_grads(device, np.array([-3.0, 0.5, 2.0]))
    clip_grad_value_(params, 1.0)
    np.testing.assert_array_equal(to_numpy(params[0].grad), [-1.0, 0.5, 1.0])


def test_parameters_vector_round_trip(device):
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)).to(device)
    vec = parameters_to_vector(model.parameters())
    assert tuple(vec.shape) == (model.num_parameters(),)
    weight = model[0].weight
    vector_to_parameters(vec * 0 + 1, model.parameters())
    assert model[0].weight is weight and (to_numpy(weight) == 1).all()
    with pytest.raises(ValueError, match="hold 11 elements but vec has 3"):
        vector_to_parameters(tensor.zeros(3, device=device), model.parameters())
