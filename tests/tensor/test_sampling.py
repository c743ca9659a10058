"""Draws from tensors (tensor/ops/sampling.py) and in-place random fills (tensor/ops/random_fills.py):
shapes, dtypes, supports, frequencies against the distributions (seeded, so each assertion is
deterministic; bounds are at least 5 standard errors wide), reproducibility and refusals."""
import numpy as np
import pytest

import tensor
from tensor.ops import sampling

from helpers import to_numpy


def frequencies(indices, categories):
    return np.bincount(to_numpy(indices).ravel(), minlength=categories) / to_numpy(indices).size


# ------------------------------------------------------------------------------------ multinomial
@pytest.mark.parametrize("compare_limit", [sampling._COMPARE_LIMIT, 0])  # 0: the searchsorted path
def test_multinomial_with_replacement_follows_the_weights(device, monkeypatch, compare_limit):
    monkeypatch.setattr(sampling, "_COMPARE_LIMIT", compare_limit)
    tensor.manual_seed(0)
    weights = tensor.tensor([[0.0, 1.0, 0.0, 3.0, 0.0], [2.0, 0.0, 0.0, 0.0, 6.0]], device=device)
    picks = tensor.multinomial(weights, 20000, replacement=True)
    assert picks.shape == (2, 20000) and picks.dtype == tensor.int64 and picks.device == weights.device
    np.testing.assert_allclose(frequencies(picks[0], 5), [0, 0.25, 0, 0.75, 0], atol=0.016)
    np.testing.assert_allclose(frequencies(picks[1], 5), [0.25, 0, 0, 0, 0.75], atol=0.016)
    assert weights[0].multinomial(3, True).shape == (3,)


def test_multinomial_never_picks_a_zero_weight_category(device):
    tensor.manual_seed(1)
    weights = tensor.tensor([0.0, 0.0, 1e-30, 0.0, 5.0, 0.0], dtype=tensor.float64, device=device)
    assert set(to_numpy(tensor.multinomial(weights, 5000, replacement=True)).tolist()) <= {2, 4}
    one = tensor.tensor([0.0, 0.0, 2.0], dtype=tensor.float16, device=device)
    assert to_numpy(tensor.multinomial(one, 100, replacement=True)).tolist() == [2] * 100


def test_multinomial_without_replacement(device):
    tensor.manual_seed(2)
    weights = tensor.tensor([1.0, 2.0, 0.0, 7.0], device=device)
    picks = to_numpy(tensor.multinomial(weights.expand(4000, 4), 3))
    assert all(sorted(row) == [0, 1, 3] for row in picks)  # each positive category once, no zero weight
    np.testing.assert_allclose(frequencies(picks[:, 0], 4), [0.1, 0.2, 0, 0.7], atol=0.036)
    # After the first pick, the next follows the remaining weights: P(1 second | 3 first) = 2 / 3.
    after_three = picks[picks[:, 0] == 3, 1]
    assert abs((after_three == 1).mean() - 2 / 3) < 0.045
    # Zero-weight categories come once the positive ones are used up, in index order (as in PyTorch).
    assert to_numpy(tensor.multinomial(tensor.tensor([0.0, 1.0, 0.0], device=device), 3)).tolist() == [1, 0, 2]


def test_multinomial_is_reproducible(device):
    weights = tensor.rand(3, 10, device=device)
    tensor.manual_seed(7)
    first = tensor.multinomial(weights, 4)
    tensor.manual_seed(7)
    assert first.equal(tensor.multinomial(weights, 4))
    generator = tensor.Generator(device).manual_seed(5)
    again = tensor.Generator(device).manual_seed(5)
    assert tensor.multinomial(weights, 6, True, generator=generator).equal(
        tensor.multinomial(weights, 6, True, generator=again)
    )


@pytest.mark.parametrize("args, error, message", [
    (([1, 2], 1), tensor.DTypeError, "weights must be floating point, got int64"),
    (([[[1.0]]], 1), tensor.ShapeError, r"must be 1-D .* got shape \(1, 1, 1\)"),
    (([1.0, 2.0], 0), ValueError, "num_samples must be >= 1, got 0"),
    (([1.0, 2.0], 3), ValueError, "cannot draw 3 samples without replacement from 2 categories"),
    (([1.0, -1.0], 1), ValueError, "finite and >= 0"),
    (([1.0, float("inf")], 1), ValueError, "finite and >= 0"),
    (([1.0, float("nan")], 1), ValueError, "finite and >= 0"),
    (([[1.0, 0.0], [0.0, 0.0]], 1), ValueError, "a row is all zeros"),
])
def test_multinomial_refusals(device, args, error, message):
    values, num_samples = args
    with pytest.raises(error, match=message):
        tensor.multinomial(tensor.tensor(values, device=device), num_samples)


# -------------------------------------------------------------------------------------- bernoulli
def test_bernoulli_draws_ones_with_the_given_probabilities(device):
    tensor.manual_seed(3)
    probs = tensor.tensor([0.0, 1.0, 0.3], dtype=tensor.float64, device=device).expand(20000, 3)
    draws = tensor.bernoulli(probs)
    assert draws.dtype == tensor.float64 and set(np.unique(to_numpy(draws)).tolist()) <= {0.0, 1.0}
    np.testing.assert_allclose(to_numpy(draws).mean(0), [0, 1, 0.3], atol=0.017)
    fixed = tensor.zeros(20000, device=device).bernoulli(0.8)  # input's shape and dtype, probability p
    assert fixed.dtype == tensor.float32 and abs(to_numpy(fixed).mean() - 0.8) < 0.015


def test_bernoulli_gives_zero_gradients_like_pytorch(device):
    probs = tensor.full((3,), 0.5, device=device, requires_grad=True)
    draws = tensor.bernoulli(probs)
    assert draws.requires_grad
    (draws * 2).sum().backward()
    assert to_numpy(probs.grad).tolist() == [0.0, 0.0, 0.0]


def test_bernoulli_refusals(device):
    with pytest.raises(ValueError, match=r"bernoulli: input must hold probabilities in \[0, 1\]"):
        tensor.bernoulli(tensor.tensor([0.5, 1.5], device=device))
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got -0.1"):
        tensor.zeros(2, device=device).bernoulli(-0.1)
    with pytest.raises(tensor.DTypeError, match="bernoulli: input must be a floating-point Tensor, got int64"):
        tensor.bernoulli(tensor.tensor([0, 1], device=device))


# ----------------------------------------------------------------------------------------- normal
def test_normal_with_tensor_parameters_broadcasts(device):
    tensor.manual_seed(4)
    mean = tensor.tensor([[-5.0], [5.0]], device=device)
    std = tensor.tensor([0.5] * 20000, device=device)
    draws = tensor.normal(mean, std)
    assert draws.shape == (2, 20000) and draws.dtype == tensor.float32
    np.testing.assert_allclose(to_numpy(draws).mean(1), [-5, 5], atol=0.02)
    np.testing.assert_allclose(to_numpy(draws).std(1), [0.5, 0.5], atol=0.02)
    assert tensor.normal(tensor.zeros(3, dtype=tensor.float64, device=device), 2.0).dtype == tensor.float64
    assert tensor.normal(1.0, tensor.ones(4, device=device)).shape == (4,)


def test_normal_of_numbers_takes_a_size(device):
    tensor.manual_seed(5)
    draws = tensor.normal(2.0, 3.0, (100000,), dtype=tensor.float64, device=device)
    assert draws.dtype == tensor.float64 and draws.device == tensor.device(device)
    assert abs(draws.mean().item() - 2) < 0.05 and abs(draws.std().item() - 3) < 0.05
    assert tensor.normal(0.0, 1.0, size=(2, 3), device=device, requires_grad=True).is_leaf


def test_normal_gives_zero_gradients_like_pytorch(device):
    mean = tensor.zeros(3, device=device, requires_grad=True)
    std = tensor.ones(3, device=device, requires_grad=True)
    tensor.normal(mean, std).sum().backward()
    assert to_numpy(mean.grad).tolist() == [0.0] * 3 and to_numpy(std.grad).tolist() == [0.0] * 3


def test_normal_refusals(device):
    with pytest.raises(ValueError, match="normal: std must be >= 0 everywhere"):
        tensor.normal(tensor.zeros(2, device=device), tensor.tensor([1.0, -1.0], device=device))
    with pytest.raises(ValueError, match="normal: std must be >= 0, got -2.0"):
        tensor.normal(tensor.zeros(2, device=device), -2.0)
    with pytest.raises(TypeError, match="pass size="):
        tensor.normal(0.0, 1.0)
    with pytest.raises(TypeError, match="apply only when mean and std are numbers"):
        tensor.normal(tensor.zeros(2, device=device), 1.0, (2,))
    with pytest.raises(tensor.ShapeError, match=r"\(2,\) and \(3,\) do not broadcast"):
        tensor.normal(tensor.zeros(2, device=device), tensor.ones(3, device=device))
    with pytest.raises(tensor.DTypeError, match="must be floating point, got int64"):
        tensor.normal(tensor.zeros(2, dtype=tensor.int64, device=device), 1.0)


# ---------------------------------------------------------------------------------- random fills
@pytest.mark.parametrize("fill, mean, std", [
    (lambda x: x.exponential_(2.0), 0.5, 0.5),
    (lambda x: x.geometric_(0.25), 4.0, 12 ** 0.5),
    (lambda x: x.log_normal_(0.0, 0.5), np.exp(0.125), ((np.exp(0.25) - 1) * np.exp(0.25)) ** 0.5),
    (lambda x: x.bernoulli_(0.2), 0.2, 0.4),
    (lambda x: x.random_(10), 4.5, (99 / 12) ** 0.5),
    (lambda x: x.random_(-3, 3), -0.5, (35 / 12) ** 0.5),
])
def test_fills_follow_their_distributions(device, fill, mean, std):
    tensor.manual_seed(6)
    x = tensor.empty(40000, dtype=tensor.float64, device=device)
    assert fill(x) is x
    assert abs(to_numpy(x).mean() - mean) < 5 * std / 200 and abs(to_numpy(x).std() - std) < 0.05 * std


def test_fill_supports(device):
    tensor.manual_seed(8)
    x = tensor.empty(5000, device=device)
    assert to_numpy(x.exponential_()).min() >= 0
    g = to_numpy(x.geometric_(0.5))
    assert g.min() >= 1 and np.array_equal(g, np.round(g))
    c = to_numpy(x.cauchy_(1.0, 2.0))
    assert abs(np.median(c) - 1) < 0.45 and np.isfinite(c).all()
    assert to_numpy(x.random_()).max() <= 2**24
    assert set(to_numpy(x.random_(2, 4)).tolist()) == {2.0, 3.0}
    flags = tensor.empty(1000, dtype=tensor.bool, device=device).random_()
    assert set(to_numpy(flags).tolist()) == {False, True}
    ints = tensor.empty(1000, dtype=tensor.int32, device=device).random_(-5, 5)
    assert ints.dtype == tensor.int32 and to_numpy(ints).min() == -5 and to_numpy(ints).max() == 4
    big = to_numpy(tensor.empty(1000, dtype=tensor.int64, device=device).random_())
    assert big.min() >= 0 and big.max() > 2**60  # up to int64's largest value
    # Integer targets saturate instead of wrapping around when a draw is beyond their range.
    rare = to_numpy(tensor.empty(2000, dtype=tensor.int32, device=device).geometric_(1e-12))
    assert rare.min() >= 1 and rare.max() == 2**31 - 1


def test_bernoulli_fill_with_tensor_probabilities(device):
    x = tensor.empty(3, 4, dtype=tensor.int64, device=device)
    x.bernoulli_(tensor.tensor([0.0, 1.0, 0.0, 1.0], device=device))
    assert to_numpy(x).tolist() == [[0, 1, 0, 1]] * 3


def test_fills_are_reproducible_and_respect_autograd(device):
    for fill in ("exponential_", "cauchy_", "log_normal_", "bernoulli_", "random_"):
        tensor.manual_seed(9)
        first = getattr(tensor.empty(8, device=device), fill)().clone()
        tensor.manual_seed(9)
        assert first.equal(getattr(tensor.empty(8, device=device), fill)()), fill
    leaf = tensor.zeros(3, device=device, requires_grad=True)
    with pytest.raises(tensor.AutogradError, match="exponential_: a leaf tensor that requires grad"):
        leaf.exponential_()
    with tensor.no_grad():
        leaf.bernoulli_(1.0)
    assert to_numpy(leaf).tolist() == [1.0] * 3
    inner = leaf * 2  # a non-leaf leaves the graph: its new values depend on nothing
    inner.exponential_()
    (inner.sum() + leaf.sum()).backward()
    assert to_numpy(leaf.grad).tolist() == [1.0] * 3


@pytest.mark.parametrize("call, error, message", [
    (lambda x: x.exponential_(0), ValueError, "exponential_: lambd must be > 0, got 0"),
    (lambda x: x.cauchy_(0, -1), ValueError, "cauchy_: sigma must be > 0, got -1"),
    (lambda x: x.log_normal_(1, 0), ValueError, "log_normal_: std must be > 0, got 0"),
    (lambda x: x.geometric_(1), ValueError, r"geometric_: p must be in \(0, 1\), got 1"),
    (lambda x: x.bernoulli_(1.5), ValueError, r"bernoulli_: p must be a probability in \[0, 1\], got 1.5"),
    (lambda x: x.random_(5, 3), ValueError, r"random_: from \(5\) must be less than to \(3\)"),
    (lambda x: x.random_(1, 2, 3), TypeError, r"random_: takes \(to\), \(from, to\) or \(\)"),
    (lambda x: x.to(tensor.int32).exponential_(), tensor.DTypeError, "exponential_: fills floating-point tensors"),
    (lambda x: x.to(tensor.int32).random_(0, 2**40), ValueError, r"does not fit int32"),
])
def test_fill_refusals(device, call, error, message):
    with pytest.raises(error, match=message):
        call(tensor.zeros(3, device=device))


def test_random_fill_warns_beyond_exact_float_integers(device):
    with pytest.warns(UserWarning, match=r"beyond 2\*\*24 are not all exact in float32"):
        tensor.zeros(3, device=device).random_(0, 2**30)
