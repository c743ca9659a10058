"""PyTorch parity for the margin, embedding and likelihood losses: values and input gradients against
torch in float64 for every reduction, edge cases (targets of -1 / 1 / other values, zero vectors, a
variance at the eps floor, repeated multi-label targets), module reprs, defaults and state_dict keys,
and clear errors for bad arguments."""
import numpy as np
import pytest

import tensor.nn as nn
import tensor.nn.functional as F
from tensor.errors import DTypeError, ShapeError

from helpers import compare_with_torch as _compare
from helpers import make, to_numpy

torch = pytest.importorskip("torch")
tnn, TF = torch.nn, torch.nn.functional

REDUCTIONS = ["mean", "sum", "none"]


def _data(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def _signs(*shape, seed=1):
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=shape)


# ------------------------------------------------------------------------------ pairwise margins


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking_loss(reduction, margin, device):
    _compare(lambda a, b, y: F.margin_ranking_loss(a, b, y, margin=margin, reduction=reduction),
             lambda a, b, y: TF.margin_ranking_loss(a, b, y, margin=margin, reduction=reduction),
             [_data(8), _data(8, seed=2)], device, constants=[_signs(8)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 2.5])
def test_hinge_embedding_loss(reduction, margin, device):
    target = _signs(3, 4)
    target[0, :2] = 0.0  # neither 1 nor -1: PyTorch charges both terms
    _compare(lambda x, y: F.hinge_embedding_loss(x, y, margin=margin, reduction=reduction),
             lambda x, y: TF.hinge_embedding_loss(x, y, margin=margin, reduction=reduction),
             [np.abs(_data(3, 4, scale=2.0))], device, constants=[target])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin_loss(reduction, device):
    _compare(lambda x, y: F.soft_margin_loss(x, y, reduction=reduction),
             lambda x, y: TF.soft_margin_loss(x, y, reduction=reduction),
             [_data(3, 4, scale=3.0)], device, constants=[_signs(3, 4)])


def test_soft_margin_loss_is_finite_for_large_margins(device):
    x = make(np.array([-800.0, 800.0]), device, requires_grad=True)
    loss = F.soft_margin_loss(x, make(np.array([1.0, 1.0]), device), reduction="none")
    loss.sum().backward()
    np.testing.assert_allclose(to_numpy(loss), [800.0, 0.0])
    np.testing.assert_allclose(to_numpy(x.grad), [-1.0, 0.0], atol=1e-300)


# ------------------------------------------------------------------------------ embedding losses


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_cosine_embedding_loss(reduction, margin, device):
    target = _signs(5)
    target[3] = 0.0  # neither 1 nor -1: no loss
    _compare(lambda a, b, y: F.cosine_embedding_loss(a, b, y, margin=margin, reduction=reduction),
             lambda a, b, y: TF.cosine_embedding_loss(a, b, y, margin=margin, reduction=reduction),
             [_data(5, 4), _data(5, 4, seed=2)], device, constants=[target])


def test_cosine_embedding_loss_unbatched_and_zero_vector(device):
    _compare(lambda a, b, y: F.cosine_embedding_loss(a, b, y, reduction="none"),
             lambda a, b, y: TF.cosine_embedding_loss(a, b, y, reduction="none"),
             [_data(4), _data(4, seed=2)], device, constants=[np.array(-1.0)])
    zero_row = _data(3, 4)
    zero_row[1] = 0.0  # PyTorch's 1e-12 keeps the cosine (and its gradient) finite
    _compare(lambda a, b, y: F.cosine_embedding_loss(a, b, y, reduction="sum"),
             lambda a, b, y: TF.cosine_embedding_loss(a, b, y, reduction="sum"),
             [zero_row, _data(3, 4, seed=2)], device, constants=[np.array([1.0, 1.0, -1.0])], rtol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,swap", [(2, False), (2, True), (1, False), (3, True)])
def test_triplet_margin_loss(reduction, p, swap, device):
    arrays = [_data(6, 4), _data(6, 4, seed=2), _data(6, 4, seed=3)]
    _compare(lambda a, b, c: F.triplet_margin_loss(a, b, c, margin=1.5, p=p, swap=swap, reduction=reduction),
             lambda a, b, c: TF.triplet_margin_loss(a, b, c, margin=1.5, p=p, swap=swap, reduction=reduction),
             arrays, device)


# ------------------------------------------------------------------------------ likelihood losses

COUNTS = np.array([[0.0, 1.0, 2.0, 5.0], [3.0, 0.0, 7.0, 1.0], [0.5, 4.0, 1.5, 9.0]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input,full", [(True, False), (True, True), (False, False), (False, True)])
def test_poisson_nll_loss(reduction, log_input, full, device):
    rate = _data(3, 4) if log_input else np.abs(_data(3, 4)) + 0.1

    def ours(x, y):
        return F.poisson_nll_loss(x, y, log_input=log_input, full=full, reduction=reduction)

    def theirs(x, y):
        return TF.poisson_nll_loss(x, y, log_input=log_input, full=full, reduction=reduction)

    _compare(ours, theirs, [rate], device, constants=[COUNTS])


def test_poisson_nll_loss_target_gradient(device):
    target = COUNTS + 1.5  # all above 1: the Stirling term and its gradient are live everywhere
    _compare(lambda x, y: F.poisson_nll_loss(x, y, full=True), lambda x, y: TF.poisson_nll_loss(x, y, full=True),
             [_data(3, 4), target], device)


def _variance(*shape, seed=4):
    return np.abs(_data(*shape, seed=seed)) + 0.05


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("var_shape", [(5, 3), (5,), (5, 1)], ids=str)
def test_gaussian_nll_loss(reduction, full, var_shape, device):
    _compare(lambda x, y, v: F.gaussian_nll_loss(x, y, v, full=full, reduction=reduction),
             lambda x, y, v: TF.gaussian_nll_loss(x, y, v, full=full, reduction=reduction),
             [_data(5, 3), _data(5, 3, seed=2), _variance(*var_shape)], device)


def test_gaussian_nll_loss_floors_variance_with_straight_through_gradient(device):
    var = _variance(4, 3)
    var[0, 0], var[2, 1] = 0.0, 1e-9  # below eps: clamped, yet the gradient still reaches var
    _compare(lambda x, y, v: F.gaussian_nll_loss(x, y, v, eps=1e-3),
             lambda x, y, v: TF.gaussian_nll_loss(x, y, v, eps=1e-3), [_data(4, 3), _data(4, 3, seed=2), var], device)


def test_gaussian_nll_loss_float_variance(device):
    _compare(lambda x, y: F.gaussian_nll_loss(x, y, 0.7, reduction="none"),
             lambda x, y: TF.gaussian_nll_loss(x, y, 0.7, reduction="none"), [_data(4, 3), _data(4, 3, seed=2)],
             device)


# ------------------------------------------------------------------------------ multi-class margins


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_soft_margin_loss(reduction, weighted, device):
    target = (np.random.default_rng(5).random((4, 5)) > 0.5).astype(np.float64)
    constants = [target] + ([np.linspace(0.5, 2.0, 5)] if weighted else [])
    _compare(lambda x, y, *w: F.multilabel_soft_margin_loss(x, y, *w, reduction=reduction),
             lambda x, y, *w: TF.multilabel_soft_margin_loss(x, y, *w, reduction=reduction),
             [_data(4, 5, scale=2.0)], device, constants=constants)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 1.0, False), (1, 0.5, True), (2, 2.0, True)])
def test_multi_margin_loss(reduction, p, margin, weighted, device):
    constants = [np.array([1, 0, 4, 2, 4, 3])] + ([np.linspace(0.5, 2.0, 5)] if weighted else [])
    _compare(lambda x, y, *w: F.multi_margin_loss(x, y, p=p, margin=margin, weight=w[0] if w else None,
                                                  reduction=reduction),
             lambda x, y, *w: TF.multi_margin_loss(x, y, p=p, margin=margin, weight=w[0] if w else None,
                                                   reduction=reduction),
             [_data(6, 5)], device, constants=constants)


def test_multi_margin_loss_unbatched(device):
    _compare(lambda x, y: F.multi_margin_loss(x, y, reduction="none"),
             lambda x, y: TF.multi_margin_loss(x, y, reduction="none"), [_data(5)], device, constants=[np.array(3)])


LABELS = np.array([[1, 3, -1, 0, 0], [0, 1, 2, 3, 4], [4, 4, 2, -1, 1], [-1, 2, 2, 2, 2]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_loss(reduction, device):
    # rows: a padded list, every class a target (no loss), a repeated target before the pad, an empty list
    _compare(lambda x, y: F.multilabel_margin_loss(x, y, reduction=reduction),
             lambda x, y: TF.multilabel_margin_loss(x, y, reduction=reduction),
             [_data(4, 5)], device, constants=[LABELS])


def test_multilabel_margin_loss_unbatched(device):
    _compare(lambda x, y: F.multilabel_margin_loss(x, y, reduction="none"),
             lambda x, y: TF.multilabel_margin_loss(x, y, reduction="none"), [_data(5)], device,
             constants=[np.array([3, 0, -1, 1, 1])])


# ------------------------------------------------------------------------------ modules

MODULES = [
    ("MarginRankingLoss", {"margin": 0.3}, 2, [_signs(6)]),
    ("HingeEmbeddingLoss", {"margin": 2.0, "reduction": "sum"}, 1, [_signs(6)]),
    ("CosineEmbeddingLoss", {"margin": 0.1}, 2, [_signs(6)]),
    ("TripletMarginLoss", {"margin": 0.5, "p": 1.0, "swap": True}, 3, []),
    ("PoissonNLLLoss", {"full": True}, 1, [np.abs(_data(6, 4)).round()]),
    ("GaussianNLLLoss", {"full": True, "eps": 1e-4}, 2, [_variance(6, 4)]),
    ("SoftMarginLoss", {"reduction": "none"}, 1, [_signs(6, 4)]),
    ("MultiLabelSoftMarginLoss", {}, 1, [(_data(6, 4) > 0).astype(np.float64)]),
    ("MultiMarginLoss", {"p": 2, "margin": 0.7}, 1, [np.array([0, 3, 1, 2, 2, 0])]),
    ("MultiLabelMarginLoss", {}, 1, [np.array([[0, -1, 1, 1]] * 6)]),
]


@pytest.mark.parametrize("name,kwargs,inputs,constants", MODULES, ids=[m[0] for m in MODULES])
def test_loss_modules_match_torch(name, kwargs, inputs, constants, device):
    ours, theirs = getattr(nn, name)(**kwargs), getattr(tnn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.reduction == theirs.reduction
    shape = (6,) if name in ("MarginRankingLoss", "HingeEmbeddingLoss") else (6, 4)
    arrays = [_data(*shape, seed=s) for s in range(inputs)]
    _compare(ours, theirs, arrays, device, constants=constants)


def test_loss_module_defaults_match_torch():
    for name in ("MarginRankingLoss", "HingeEmbeddingLoss", "CosineEmbeddingLoss", "TripletMarginLoss",
                 "PoissonNLLLoss", "GaussianNLLLoss", "MultiMarginLoss"):
        ours, theirs = getattr(nn, name)(), getattr(tnn, name)()
        for attr in ("margin", "p", "eps", "swap", "log_input", "full", "reduction"):
            assert getattr(ours, attr, None) == getattr(theirs, attr, None), (name, attr)


def test_weighted_loss_modules_keep_weight_as_buffer(device):
    weight = np.linspace(0.5, 2.0, 4)
    for name in ("MultiMarginLoss", "MultiLabelSoftMarginLoss"):
        ours = getattr(nn, name)(weight=make(weight, device))
        assert list(ours.state_dict()) == list(getattr(tnn, name)(weight=torch.tensor(weight)).state_dict())
    _compare(nn.MultiLabelSoftMarginLoss(weight=make(weight, device)),
             tnn.MultiLabelSoftMarginLoss(weight=torch.tensor(weight)), [_data(6, 4)], device,
             constants=[(_data(6, 4, seed=3) > 0).astype(np.float64)])


# ------------------------------------------------------------------------------ errors


def test_bad_reduction_names_the_choices(device):
    x, y = make(_data(4), device), make(_signs(4), device)
    with pytest.raises(ValueError, match="reduction must be one of 'none', 'mean', 'sum', got 'avg'"):
        F.soft_margin_loss(x, y, reduction="avg")
    with pytest.raises(ValueError, match="gaussian_nll_loss: reduction"):
        F.gaussian_nll_loss(x, x, x, reduction="batchmean")


def test_shape_errors_name_the_shapes(device):
    x = make(_data(4, 3), device)
    with pytest.raises(ShapeError, match=r"margin_ranking_loss: .*\(4, 3\), \(4, 3\), \(4,\)"):
        F.margin_ranking_loss(x, x, make(_signs(4), device))
    with pytest.raises(ShapeError, match="do not broadcast"):
        F.hinge_embedding_loss(x, make(_signs(5), device))
    with pytest.raises(ShapeError, match="1-d target needs 2-d inputs"):
        F.cosine_embedding_loss(make(_data(4), device), make(_data(4), device), make(_signs(4), device))
    with pytest.raises(ShapeError, match="same number of dims"):
        F.triplet_margin_loss(x, x, make(_data(3), device))
    with pytest.raises(ShapeError, match=r"var shape \(4, 2\) does not fit input shape \(4, 3\)"):
        F.gaussian_nll_loss(x, x, make(_variance(4, 2), device))
    with pytest.raises(ShapeError, match=r"target shape \(4, 2\) must equal input shape \(4, 3\)"):
        F.multilabel_soft_margin_loss(x, make(_data(4, 2), device))
    with pytest.raises(ShapeError, match=r"target shape \(3,\) does not fit input shape \(4, 3\); expected \(4,\)"):
        F.multi_margin_loss(x, make(np.array([0, 1, 2]), device))
    with pytest.raises(ShapeError, match=r"weight must have shape \(3,\)"):
        F.multi_margin_loss(x, make(np.array([0, 1, 2, 0]), device), weight=make(np.ones(4), device))


def test_value_errors_name_the_value(device):
    x = make(_data(4, 3), device)
    labels = make(np.array([0, 1, 2, 0]), device)
    with pytest.raises(ValueError, match="only p == 1 and p == 2 are supported, got p=3"):
        F.multi_margin_loss(x, labels, p=3)
    with pytest.raises(ValueError, match="only p == 1 and p == 2"):
        nn.MultiMarginLoss(p=0)
    with pytest.raises(ValueError, match="margin must be greater than 0, got 0"):
        F.triplet_margin_loss(x, x, x, margin=0)
    with pytest.raises(ValueError, match="margin must be greater than 0, got -1"):
        nn.TripletMarginLoss(margin=-1)
    with pytest.raises(ValueError, match="var has negative entries"):
        F.gaussian_nll_loss(x, x, make(-_variance(4, 3), device))
    with pytest.raises(ValueError, match="var must be non-negative, got -0.5"):
        F.gaussian_nll_loss(x, x, -0.5)


def test_class_target_errors(device):
    x = make(_data(4, 3), device)
    with pytest.raises(DTypeError, match=r"target must hold integer class indices.*\.long\(\)"):
        F.multi_margin_loss(x, make(np.array([0.0, 1.0, 2.0, 0.0]), device))
    with pytest.raises(IndexError):
        F.multi_margin_loss(x, make(np.array([0, 1, 3, 0]), device))
    with pytest.raises(IndexError, match=r"class index >= 3.*pad with -1"):
        F.multilabel_margin_loss(x, make(np.array([[0, 3, -1]] * 4), device))
    with pytest.raises(ShapeError, match=r"input must be a non-empty \(C,\) or \(N, C\)"):
        F.multilabel_margin_loss(make(_data(2, 3, 4), device), make(np.zeros((2, 3, 4), dtype=np.int64), device))
