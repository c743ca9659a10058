"""nn.functional losses: values and gradients against PyTorch, gradients by finite differences, errors."""
import numpy as np
import pytest

import tensor
import tensor.nn.functional as F
from tensor.errors import ShapeError
from torch_compare import compare_with_torch, gradcheck_float64, make, to_numpy

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def targets(high, shape, seed=1, ignore=()):
    t = np.random.default_rng(seed).integers(0, high, shape)
    for index in ignore:
        t[index] = -100
    return t


CE_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": np.linspace(0.5, 2.0, 7)},
    {"label_smoothing": 0.2},
    {"weight": np.linspace(0.5, 2.0, 7), "label_smoothing": 0.3, "reduction": "none"},
    {"weight": np.linspace(0.5, 2.0, 7), "label_smoothing": 0.1},
]


def _split(options):
    """Options with the weight as an extra positional array (so it reaches both libraries as a tensor)."""
    weight = options.get("weight")
    rest = {k: v for k, v in options.items() if k != "weight"}
    return weight, rest


@pytest.mark.parametrize("options", CE_OPTIONS)
@pytest.mark.parametrize("ignored", [True, False], ids=["with-ignored", "none-ignored"])
def test_cross_entropy_class_indices_match_torch(device, options, ignored):
    weight, rest = _split(options)
    arrays = [data(6, 7), targets(7, (6,), ignore=[2] if ignored else [])]
    if weight is None:
        compare_with_torch(lambda x, t: F.cross_entropy(x, t, **rest), lambda x, t: TF.cross_entropy(x, t, **rest),
                           arrays, device)
        gradcheck_float64(lambda x, t: F.cross_entropy(x, t, **rest), arrays, device)
    else:
        arrays.append(weight)
        compare_with_torch(lambda x, t, w: F.cross_entropy(x, t, w, **rest),
                           lambda x, t, w: TF.cross_entropy(x, t, w, **rest), arrays, device, grads=[0])
        gradcheck_float64(lambda x, t, w: F.cross_entropy(x, t, w, **rest), arrays, device, grads=[0])


@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("ignored", [True, False], ids=["with-ignored", "none-ignored"])
def test_cross_entropy_spatial_and_unbatched(device, smoothing, ignored):
    arrays = [data(2, 4, 3, 5), targets(4, (2, 3, 5), ignore=[(0, 1, 1)] if ignored else [])]
    fn = lambda x, t: F.cross_entropy(x, t, label_smoothing=smoothing)  # noqa: E731
    compare_with_torch(fn, lambda x, t: TF.cross_entropy(x, t, label_smoothing=smoothing), arrays, device)
    gradcheck_float64(fn, arrays, device)
    unbatched = [data(5), np.array(3)]
    compare_with_torch(fn, lambda x, t: TF.cross_entropy(x, t, label_smoothing=smoothing), unbatched, device)
    none = lambda x, t: F.cross_entropy(x, t, reduction="none")  # noqa: E731
    compare_with_torch(none, lambda x, t: TF.cross_entropy(x, t, reduction="none"), unbatched, device)


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}, {"reduction": "none"}, {"reduction": "sum"}])
def test_cross_entropy_probability_targets(device, options):
    probs = np.random.default_rng(3).dirichlet(np.ones(4), size=(3, 5)).transpose(0, 2, 1)  # (3, 4, 5)
    arrays = [data(3, 4, 5), probs]
    fn = lambda x, p: F.cross_entropy(x, p, **options)  # noqa: E731
    compare_with_torch(fn, lambda x, p: TF.cross_entropy(x, p, **options), arrays, device)
    gradcheck_float64(fn, arrays, device)
    weighted = lambda x, p, w: F.cross_entropy(x, p, w, **options)  # noqa: E731
    compare_with_torch(weighted, lambda x, p, w: TF.cross_entropy(x, p, w, **options),
                       arrays + [np.array([0.5, 1.0, 2.0, 1.5])], device, grads=[0, 1])


def test_cross_entropy_is_stable_for_huge_logits(device):
    x = make(np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32), device, requires_grad=True)
    loss = F.cross_entropy(x, make(np.array([2]), device))
    loss.backward()
    assert np.isclose(loss.item(), 2000.0)
    np.testing.assert_allclose(to_numpy(x.grad), [[1.0, 0.0, -1.0]], atol=1e-6)


def test_cross_entropy_errors_name_the_values(device):
    x = make(data(4, 3), device)
    with pytest.raises(ShapeError, match=r"\(4, 3\).*\(4,\).*got \(4, 1\)"):
        F.cross_entropy(x, make(np.zeros((4, 1), dtype=np.int64), device))
    with pytest.raises(ShapeError, match="integers"):
        F.cross_entropy(x, make(np.zeros(4, dtype=np.int32), device).float())
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, make(np.zeros(4, dtype=np.int64), device), reduction="avg")
    if device == "cpu":
        with pytest.raises(IndexError, match="target 5 is out of bounds for 3 classes"):
            F.cross_entropy(x, make(np.array([0, 5, 1, -100]), device))


@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 1}])
def test_nll_loss_matches_torch(device, options):
    arrays = [data(5, 4), targets(4, (5,), ignore=[] if "ignore_index" in options else [0])]
    fn = lambda x, t: F.nll_loss(x, t, **options)  # noqa: E731
    compare_with_torch(fn, lambda x, t: TF.nll_loss(x, t, **options), arrays, device)
    gradcheck_float64(fn, arrays, device)
    weighted = lambda x, t, w: F.nll_loss(x, t, w, **options)  # noqa: E731
    compare_with_torch(weighted, lambda x, t, w: TF.nll_loss(x, t, w, **options),
                       arrays + [np.array([1.0, 0.5, 2.0, 3.0])], device, grads=[0])
    spatial = [data(2, 3, 4), targets(3, (2, 4))]
    compare_with_torch(fn, lambda x, t: TF.nll_loss(x, t, **options), spatial, device)


def test_nll_of_log_softmax_equals_cross_entropy(device):
    x, t = make(data(8, 5), device), make(targets(5, (8,)), device)
    np.testing.assert_allclose(F.nll_loss(F.log_softmax(x, 1), t).item(), F.cross_entropy(x, t).item(), rtol=1e-12)


REGRESSION = [
    ("mse_loss", {}),
    ("l1_loss", {}),
    ("smooth_l1_loss", {"beta": 0.5}),
    ("smooth_l1_loss", {"beta": 0.0}),
    ("huber_loss", {"delta": 0.7}),
]


@pytest.mark.parametrize("name, options", REGRESSION)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(device, name, options, reduction):
    arrays = [data(4, 5), data(4, 5, seed=1)]
    ours, theirs = getattr(F, name), getattr(TF, name)
    compare_with_torch(lambda x, y: ours(x, y, reduction=reduction, **options),
                       lambda x, y: theirs(x, y, reduction=reduction, **options), arrays, device)
    gradcheck_float64(lambda x, y: ours(x, y, reduction=reduction, **options), arrays, device)


def test_regression_loss_broadcasts_with_a_warning(device):
    with pytest.warns(UserWarning, match="broadcast"):
        compare_with_torch(F.mse_loss, TF.mse_loss, [data(4, 3), data(1, 3)], device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy(device, reduction):
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.05, 0.95, (4, 3)), rng.random((4, 3))]
    fn = lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction)  # noqa: E731
    compare_with_torch(fn, lambda p, t: TF.binary_cross_entropy(p, t, reduction=reduction), arrays, device)
    gradcheck_float64(fn, arrays, device)
    weighted = lambda p, t, w: F.binary_cross_entropy(p, t, w, reduction=reduction)  # noqa: E731
    compare_with_torch(weighted, lambda p, t, w: TF.binary_cross_entropy(p, t, w, reduction=reduction),
                       arrays + [rng.random((4, 3))], device, grads=[0, 1])


def test_binary_cross_entropy_clamps_log_at_minus_100(device):
    loss = F.binary_cross_entropy(make(np.array([0.0, 1.0]), device), make(np.array([1.0, 0.0]), device))
    assert loss.item() == 100.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        if device != "cpu":
            raise ValueError("between 0 and 1")  # checked on the CPU only
        F.binary_cross_entropy(make(np.array([1.5]), device), make(np.array([1.0]), device))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits(device, reduction):
    rng = np.random.default_rng(0)
    arrays = [data(4, 3) * 5, rng.random((4, 3))]
    fn = lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction)  # noqa: E731
    compare_with_torch(fn, lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction), arrays, device)
    gradcheck_float64(fn, arrays, device)

    def ours(x, t, w, pw):
        return F.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pw)

    def theirs(x, t, w, pw):
        return TF.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pw)

    full = arrays + [rng.random((4, 3)), np.array([0.5, 2.0, 3.0])]
    compare_with_torch(ours, theirs, full, device, grads=[0, 1])
    gradcheck_float64(ours, full, device, grads=[0, 1])


def test_binary_cross_entropy_with_logits_is_stable(device):
    x = make(np.array([-500.0, 500.0], dtype=np.float32), device, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, make(np.array([1.0, 0.0], dtype=np.float32), device), reduction="sum")
    loss.backward()
    assert np.isclose(loss.item(), 1000.0)
    np.testing.assert_allclose(to_numpy(x.grad), [-1.0, 1.0])


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(device, reduction, log_target):
    rng = np.random.default_rng(0)
    target = rng.dirichlet(np.ones(5), 3)
    target[0, 1] = 0.0 if not log_target else target[0, 1]
    arrays = [np.log(rng.dirichlet(np.ones(5), 3)), np.log(target) if log_target else target]
    fn = lambda x, t: F.kl_div(x, t, reduction=reduction, log_target=log_target)  # noqa: E731
    grads = [0, 1] if log_target else [0]  # d/dtarget is -inf at target == 0
    compare_with_torch(fn, lambda x, t: TF.kl_div(x, t, reduction=reduction, log_target=log_target), arrays, device,
                       grads=grads)
    gradcheck_float64(fn, arrays, device, grads=grads)


def test_legacy_size_average_and_reduce(device):
    x, y = make(data(3, 2), device), make(data(3, 2, seed=1), device)
    with pytest.warns(UserWarning, match="deprecated"):
        total = F.mse_loss(x, y, size_average=False)
    assert np.isclose(total.item(), F.mse_loss(x, y, reduction="sum").item())


def test_float32_losses_stay_float32(device):
    x = make(data(4, 3).astype(np.float32), device, requires_grad=True)
    t = make(np.array([0, 1, 2, 1]), device)
    assert F.cross_entropy(x, t).dtype == tensor.float32
    assert F.mse_loss(x, x.detach() * 2).dtype == tensor.float32
