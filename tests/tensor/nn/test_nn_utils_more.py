"""nn.utils reparametrizations (weight_norm, spectral_norm, parametrize, parametrizations), fusion,
skip_init, functional_call, clipping helpers; nn.init.dirac_/sparse_; and the small F additions
(in-place activations, pooling aliases, upsample, pdist, triplet loss with a distance function,
3-d unpooling and Lp pooling). Against PyTorch on the same weights where it is installed."""
import copy
import warnings

import numpy as np
import pytest

import tensor
import tensor.nn.functional as F
from tensor import nn
from tensor.nn import init, utils
from tensor.nn.utils import parametrizations, parametrize
from tensor.nn.utils.stateless import functional_call
from tests.tensor.helpers import needs_torch
from torch_compare import compare_with_torch, gradcheck_float64, make, to_numpy

# ------------------------------------------------------------------------------------ helpers


def twins(torch, build, device, reparametrize=None, theirs_reparametrize=None):
    """The same float64 layer in raygrad (on device) and PyTorch, each reparametrized, state copied over."""
    ours = build(nn).double().to(device)
    theirs = build(torch.nn).double()
    if reparametrize:
        reparametrize(ours), theirs_reparametrize(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(to_numpy(v).copy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def train_together(torch, ours, theirs, shape, device, steps=3):
    """A few Adam steps on the same batches; outputs, gradients and then every state entry must agree."""
    opt, topt = tensor.optim.Adam(ours.parameters(), lr=0.05), torch.optim.Adam(theirs.parameters(), lr=0.05)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        x = rng.standard_normal(shape)
        out, ref = ours(make(x, device)), theirs(torch.tensor(x))
        np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=1e-9, atol=1e-12)
        (out ** 2).sum().backward()
        (ref ** 2).sum().backward()
        for p, q in zip(ours.parameters(), theirs.parameters()):
            np.testing.assert_allclose(to_numpy(p.grad), q.grad.numpy(), rtol=1e-8, atol=1e-11)
        opt.step(), topt.step(), opt.zero_grad(), topt.zero_grad()
    expected = theirs.state_dict()
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(to_numpy(value), expected[key].numpy(), rtol=1e-8, atol=1e-11, err_msg=key)


# ------------------------------------------------------------------------ classic hook-based norms


@pytest.mark.parametrize("dim", [0, 1, None])
def test_weight_norm_matches_torch_and_removes(device, dim):
    torch = pytest.importorskip("torch")
    with pytest.warns(FutureWarning, match="deprecated"):
        ours, theirs = twins(torch, lambda n: n.Conv1d(2, 3, 3), device,
                             lambda m: utils.weight_norm(m, dim=dim), lambda m: torch.nn.utils.weight_norm(m, dim=dim))
    assert list(ours.state_dict()) == ["bias", "weight_g", "weight_v"]
    train_together(torch, ours, theirs, (2, 2, 7), device)
    utils.remove_weight_norm(ours), torch.nn.utils.remove_weight_norm(theirs)
    assert list(ours.state_dict()) == ["bias", "weight"] and isinstance(ours.weight, nn.Parameter)
    np.testing.assert_allclose(to_numpy(ours.weight), theirs.weight.detach().numpy(), rtol=1e-12)
    assert not ours._forward_pre_hooks


def test_weight_norm_errors(device):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        layer = utils.weight_norm(nn.Linear(3, 2).to(device))
        with pytest.raises(RuntimeError, match="two weight_norm hooks"):
            utils.weight_norm(layer)
        with pytest.raises(IndexError, match="dim 3 is out of range"):
            utils.weight_norm(nn.Linear(3, 2).to(device), dim=3)
        with pytest.raises(ValueError, match="no parameter named 'kernel'"):
            utils.weight_norm(nn.Linear(3, 2), name="kernel")
    with pytest.raises(ValueError, match="weight_norm of 'bias' not found"):
        utils.remove_weight_norm(layer, "bias")


@pytest.mark.parametrize("build", [lambda n: n.Conv2d(3, 4, 3), lambda n: n.ConvTranspose2d(3, 2, 3)])
def test_spectral_norm_matches_torch_in_training_and_eval(device, build):
    torch = pytest.importorskip("torch")
    ours, theirs = twins(torch, build, device, lambda m: utils.spectral_norm(m, n_power_iterations=2),
                         lambda m: torch.nn.utils.spectral_norm(m, n_power_iterations=2))
    assert list(ours.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    train_together(torch, ours, theirs, (2, 3, 5, 5), device)
    ours.eval(), theirs.eval()
    u = to_numpy(ours.weight_u).copy()
    train_together(torch, ours, theirs, (1, 3, 5, 5), device, steps=1)
    np.testing.assert_array_equal(to_numpy(ours.weight_u), u)  # eval: no power iteration
    utils.remove_spectral_norm(ours), torch.nn.utils.remove_spectral_norm(theirs)
    assert list(ours.state_dict()) == ["bias", "weight"] and isinstance(ours.weight, nn.Parameter)
    np.testing.assert_allclose(to_numpy(ours.weight), theirs.weight.detach().numpy(), rtol=1e-12)


def test_spectral_norm_errors(device):
    with pytest.raises(ValueError, match="n_power_iterations=0"):
        utils.spectral_norm(nn.Linear(2, 2).to(device), n_power_iterations=0)
    layer = utils.spectral_norm(nn.Linear(2, 2).to(device))
    with pytest.raises(RuntimeError, match="two spectral_norm hooks"):
        utils.spectral_norm(layer)
    with pytest.raises(ValueError, match="spectral_norm of 'bias' not found"):
        utils.remove_spectral_norm(layer, "bias")


# ---------------------------------------------------------------------------- parametrizations


@pytest.mark.parametrize("orthogonal_map", [None, "matrix_exp", "cayley", "householder"])
@pytest.mark.parametrize("features", [(4, 4), (5, 3), (3, 5)])
def test_orthogonal_matches_torch(device, orthogonal_map, features):
    torch = pytest.importorskip("torch")
    ours, theirs = twins(torch, lambda n: n.Linear(*features), device,
                         lambda m: parametrizations.orthogonal(m, orthogonal_map=orthogonal_map),
                         lambda m: torch.nn.utils.parametrizations.orthogonal(m, orthogonal_map=orthogonal_map))
    assert type(ours).__name__ == "ParametrizedLinear"
    assert list(ours.state_dict()) == ["bias", "parametrizations.weight.original", "parametrizations.weight.0.base"]
    train_together(torch, ours, theirs, (6, features[0]), device)
    w = to_numpy(ours.weight)
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    np.testing.assert_allclose(gram, np.eye(min(features)), atol=1e-12)


def test_orthogonal_without_trivialization_matches_torch(device):
    torch = pytest.importorskip("torch")
    ours, theirs = twins(
        torch, lambda n: n.Linear(3, 5), device,
        lambda m: parametrizations.orthogonal(m, orthogonal_map="householder", use_trivialization=False),
        lambda m: torch.nn.utils.parametrizations.orthogonal(m, orthogonal_map="householder", use_trivialization=False))
    assert list(ours.state_dict()) == ["bias", "parametrizations.weight.original"]
    train_together(torch, ours, theirs, (4, 3), device)
    with pytest.raises(ValueError, match='one of "matrix_exp", "cayley", "householder"'):
        parametrizations.orthogonal(nn.Linear(2, 2), orthogonal_map="qr")
    with pytest.raises(ValueError, match="Got a tensor of 1 dimensions"):
        parametrizations.orthogonal(nn.Linear(2, 2), name="bias")


@pytest.mark.parametrize("which", ["weight_norm", "spectral_norm"])
def test_norm_parametrizations_match_torch_and_remove(device, which):
    torch = pytest.importorskip("torch")
    ours, theirs = twins(torch, lambda n: n.Conv1d(2, 3, 3), device, getattr(parametrizations, which),
                         getattr(torch.nn.utils.parametrizations, which))
    train_together(torch, ours, theirs, (2, 2, 6), device)
    weight = ours.parametrizations.weight.original if which == "spectral_norm" else None
    parametrize.remove_parametrizations(ours, "weight")
    torch.nn.utils.parametrize.remove_parametrizations(theirs, "weight")
    assert type(ours) is nn.Conv1d and list(ours.state_dict()) == ["bias", "weight"]
    assert isinstance(ours.weight, nn.Parameter) and (weight is None or ours.weight is weight)
    np.testing.assert_allclose(to_numpy(ours.weight), theirs.weight.detach().numpy(), rtol=1e-12)


def test_parametrized_weight_norm_loads_a_classic_state_dict(device):
    with pytest.warns(FutureWarning):
        old = utils.weight_norm(nn.Linear(3, 2).to(device))
    new = copy.deepcopy(parametrizations.weight_norm(nn.Linear(3, 2).to(device)))
    assert list(new.state_dict()) == ["bias", "parametrizations.weight.original0", "parametrizations.weight.original1"]
    new.load_state_dict(old.state_dict())
    np.testing.assert_allclose(to_numpy(new.weight), to_numpy(old.weight), rtol=1e-6)


class Symmetric(nn.Module):
    def forward(self, x):
        return x.triu() + x.triu(1).mT

    def right_inverse(self, a):
        return a.triu()


class Scale(nn.Module):
    def forward(self, x):
        return x * 2.0


class FirstRow(nn.Module):
    def forward(self, x):
        return x[:1]


def test_register_parametrization_right_inverse_assignment_and_removal(device):
    layer = nn.Linear(3, 3).to(device)
    weight = layer.weight
    parametrize.register_parametrization(layer, "weight", Symmetric())
    assert layer.parametrizations.weight.original is weight  # the optimizer's tensor keeps training
    assert parametrize.is_parametrized(layer) and parametrize.is_parametrized(layer, "weight")
    assert not parametrize.is_parametrized(layer, "bias")
    assert parametrize.type_before_parametrizations(layer) is nn.Linear
    w = to_numpy(layer.weight)
    np.testing.assert_allclose(w, w.T)
    a = np.arange(9.0).reshape(3, 3) + np.arange(9.0).reshape(3, 3).T
    layer.weight = make(a, device, dtype=tensor.float32)
    np.testing.assert_allclose(to_numpy(layer.weight), a)
    np.testing.assert_allclose(to_numpy(layer.parametrizations.weight.original), np.triu(a))
    parametrize.register_parametrization(layer, "weight", Scale())  # a chain: Scale(Symmetric(original))
    np.testing.assert_allclose(to_numpy(layer.weight), 2 * a)
    with parametrize.cached():
        assert layer.weight is layer.weight
    assert layer.weight is not layer.weight
    parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
    assert type(layer) is nn.Linear and layer.weight is weight
    np.testing.assert_allclose(to_numpy(layer.weight), np.triu(a))


def test_parametrization_gradients_reach_the_original(device):
    layer = parametrize.register_parametrization(nn.Linear(3, 3).double().to(device), "weight", Symmetric())
    layer(make(np.ones((2, 3)), device)).sum().backward()
    grad = to_numpy(layer.parametrizations.weight.original.grad)
    np.testing.assert_allclose(grad, np.triu(np.full((3, 3), 2.0)) + np.triu(np.full((3, 3), 2.0), 1))


def test_parametrize_errors(device):
    layer = nn.Linear(3, 2).to(device)
    with pytest.raises(ValueError, match="does not have a parameter, a buffer, or a parametrized element"):
        parametrize.register_parametrization(layer, "kernel", Scale())
    with pytest.raises(ValueError, match="may not change the shape"):
        parametrize.register_parametrization(layer, "weight", FirstRow())
    assert type(layer) is nn.Linear and isinstance(layer.weight, nn.Parameter)
    with pytest.raises(ValueError, match="does not have a parametrization on weight"):
        parametrize.remove_parametrizations(layer, "weight")
    parametrizations.weight_norm(layer)
    with pytest.raises(ValueError, match="Cannot leave unparametrized"):
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)


# ----------------------------------------------------------------------- finite differences (no torch)


def test_orthogonal_maps_gradcheck(device):
    from tensor.linalg import householder_product, matrix_exp

    rng = np.random.default_rng(0)
    gradcheck_float64(matrix_exp, [rng.standard_normal((2, 3, 3))], device)
    a = make(rng.standard_normal((3, 3)), device, requires_grad=True)
    assert tensor.autograd.gradgradcheck(matrix_exp, [a])
    gradcheck_float64(householder_product, [rng.standard_normal((4, 3)), rng.random(3)], device)
    for orthogonal_map in ("matrix_exp", "cayley", "householder"):
        orth = parametrizations._Orthogonal(tensor.empty(4, 3), parametrizations._OrthMaps[orthogonal_map],
                                            use_trivialization=False)
        gradcheck_float64(orth, [rng.standard_normal((4, 3)) * 0.5], device)


def test_norm_reparametrizations_gradcheck(device):
    from tensor.nn.utils.weight_norm import _weight_norm

    rng = np.random.default_rng(1)
    v, g = rng.standard_normal((3, 2, 2)), rng.random((3, 1, 1)) + 0.5
    gradcheck_float64(lambda v, g: _weight_norm(v, g, 0), [v, g], device)
    sn = parametrizations._SpectralNorm(make(v, device), dim=1).eval()  # eval: u and v stay fixed
    gradcheck_float64(sn, [v], device)


# ------------------------------------------------------------------------ fusion, skip_init, clipping


@pytest.mark.parametrize("transpose", [False, True])
def test_fuse_conv_bn_eval_matches_the_pair(device, transpose):
    conv = (nn.ConvTranspose2d(3, 4, 3) if transpose else nn.Conv2d(3, 4, 3, bias=False)).double().to(device)
    bn = nn.BatchNorm2d(4).double().to(device)
    bn.running_mean.copy_(make([0.1, -0.2, 0.3, 0.0], device))
    bn.running_var.copy_(make([0.5, 2.0, 1.5, 1.0], device))
    conv.eval(), bn.eval()
    fused = utils.fuse_conv_bn_eval(conv, bn, transpose=transpose)
    x = make(np.random.default_rng(0).standard_normal((2, 3, 5, 5)), device)
    np.testing.assert_allclose(to_numpy(fused(x)), to_numpy(bn(conv(x))), rtol=1e-10, atol=1e-12)
    assert fused is not conv and fused.bias.requires_grad == transpose  # no conv bias: a constant bias, as torch
    with pytest.raises(AssertionError, match="Fusion only for eval"):
        utils.fuse_conv_bn_eval(conv.train(), bn)


def test_fuse_linear_bn_eval_matches_the_pair(device):
    linear, bn = nn.Linear(3, 4).double().to(device).eval(), nn.BatchNorm1d(4).double().to(device).eval()
    bn.running_var.fill_(3.0)
    fused = utils.fuse_linear_bn_eval(linear, bn)
    x = make(np.random.default_rng(0).standard_normal((5, 3)), device)
    np.testing.assert_allclose(to_numpy(fused(x)), to_numpy(bn(linear(x))), rtol=1e-10)
    with pytest.raises(AssertionError, match="linear.out_features == bn.num_features"):
        utils.fuse_linear_bn_eval(linear, nn.BatchNorm1d(3).eval())


def test_skip_init_draws_nothing(device):
    tensor.manual_seed(0)
    layer = utils.skip_init(nn.Linear, 3, 4, device=device)
    assert type(layer) is nn.Linear and tuple(layer.weight.shape) == (4, 3)
    assert layer.weight.device == tensor.empty(1, device=device).device
    after_skip = to_numpy(tensor.rand(3, device=device))
    tensor.manual_seed(0)
    np.testing.assert_array_equal(after_skip, to_numpy(tensor.rand(3, device=device)))
    with pytest.raises(RuntimeError, match="Expected a Module"):
        utils.skip_init(int)
    with pytest.raises(RuntimeError, match="must support a 'device' arg"):
        utils.skip_init(nn.ReLU)


def test_clip_grad_helpers_match_torch(device):
    torch = pytest.importorskip("torch")
    grads = [np.arange(6.0).reshape(2, 3) - 2, np.array([4.0, -7.0])]
    ours = [nn.Parameter(make(np.zeros_like(g), device)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = make(g, device), torch.tensor(g)
    total = utils.get_total_norm([p.grad for p in ours], 3.0)
    np.testing.assert_allclose(total.item(), torch.nn.utils.get_total_norm([t.grad for t in theirs], 3.0).item())
    utils.clip_grads_with_norm_(ours, 2.0, total)
    torch.nn.utils.clip_grads_with_norm_(theirs, 2.0, torch.tensor(total.item()))
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        utils.clip_grad_norm(ours, 1.0)
    torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(to_numpy(p.grad), t.grad.numpy(), rtol=1e-12)


# ------------------------------------------------------------------------------ functional_call


def test_functional_call_replaces_for_one_call(device):
    torch = pytest.importorskip("torch")
    ours, theirs = twins(torch, lambda n: n.Sequential(n.Linear(3, 2), n.Tanh(), n.Linear(2, 2)), device)
    w = np.random.default_rng(0).standard_normal((2, 3))
    x = np.random.default_rng(1).standard_normal((4, 3))
    replacement = make(w, device, requires_grad=True)
    original = ours[0].weight
    out = functional_call(ours, {"0.weight": replacement}, (make(x, device),))
    ref = torch.func.functional_call(theirs, {"0.weight": torch.tensor(w)}, (torch.tensor(x),))
    np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=1e-12)
    out.sum().backward()
    assert replacement.grad is not None and original.grad is None and ours[0].weight is original


def test_functional_call_ties_and_strict(device):
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)).to(device)
    model[1].weight = model[0].weight  # tied
    eye = tensor.eye(2, device=device)
    x = tensor.ones(1, 2, device=device)
    np.testing.assert_allclose(to_numpy(functional_call(model, {"0.weight": eye}, x)), [[1.0, 1.0]])
    untied = functional_call(model, {"0.weight": eye}, x, tie_weights=False)
    np.testing.assert_allclose(to_numpy(untied), to_numpy(model[1](x)))
    with pytest.raises(ValueError, match="which are tied"):
        functional_call(model, {"0.weight": eye, "1.weight": eye * 2}, x)
    with pytest.raises(RuntimeError, match="Unexpected key\\(s\\): 'extra'"):
        functional_call(model, {"0.weight": eye, "extra": eye}, x, strict=True)


# ----------------------------------------------------------------------------------------- init


def test_dirac_matches_torch_and_is_the_identity_conv(device):
    w = init.dirac_(tensor.empty(6, 4, 3, 3, device=device), groups=2)
    expected = np.zeros((6, 4, 3, 3))
    for g in range(2):
        for d in range(3):
            expected[g * 3 + d, d, 1, 1] = 1
    np.testing.assert_array_equal(to_numpy(w), expected)
    x = tensor.randn(1, 3, 5, 5, device=device)
    np.testing.assert_allclose(to_numpy(F.conv2d(x, init.dirac_(tensor.empty(3, 3, 3, 3, device=device)), padding=1)),
                               to_numpy(x), rtol=1e-6)
    with pytest.raises(ValueError, match="3, 4, or 5 dimensions"):
        init.dirac_(tensor.empty(3, 3, device=device))
    with pytest.raises(ValueError, match="divisible by groups"):
        init.dirac_(tensor.empty(3, 3, 3, device=device), groups=2)


def test_sparse_zeroes_each_column(device):
    w = init.sparse_(tensor.empty(200, 30, device=device), sparsity=0.25, std=0.5)
    values = to_numpy(w)
    assert ((values == 0).sum(axis=0) == 50).all()
    assert abs(values[values != 0].std() - 0.5) < 0.05
    with pytest.raises(ValueError, match="2 dimensions"):
        init.sparse_(tensor.empty(2, 2, 2, device=device), 0.1)


# ----------------------------------------------------------------------------- F additions


@pytest.mark.parametrize("name, args", [
    ("relu_", ()), ("elu_", (0.7,)), ("leaky_relu_", (0.2,)), ("hardtanh_", (-0.5, 0.8)), ("selu_", ()),
    ("celu_", (1.3,)), ("threshold_", (0.1, -2.0)),
])
def test_inplace_activations_match_torch(device, name, args):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((3, 4))

    def ours(a):
        b = a * 1.0
        version = b._version
        assert getattr(F, name)(b, *args) is b and b._version > version
        return b

    compare_with_torch(ours, lambda a: getattr(torch.nn.functional, name)(a * 1.0, *args), [x], device)
    leaf = make(x, device, requires_grad=True)
    with pytest.raises(tensor.errors.AutogradError, match=f"{name}: a leaf tensor that requires grad"):
        getattr(F, name)(leaf, *args)
    with tensor.no_grad():
        np.testing.assert_allclose(to_numpy(getattr(F, name)(leaf, *args)),
                                   getattr(torch.nn.functional, name)(torch.tensor(x), *args).numpy(), rtol=1e-12)


@pytest.mark.parametrize("name, shape, args", [
    ("max_pool1d_with_indices", (2, 3, 9), (3, 2, 1)), ("max_pool2d_with_indices", (2, 3, 7, 7), (3, 2, 1)),
    ("max_pool3d_with_indices", (2, 2, 5, 5, 5), (2,)), ("adaptive_max_pool1d_with_indices", (2, 3, 9), (4,)),
    ("adaptive_max_pool2d_with_indices", (2, 3, 7, 7), (3,)),
    ("adaptive_max_pool3d_with_indices", (1, 2, 5, 5, 5), (2,)),
])
def test_pooling_with_indices_aliases_match_torch(device, name, shape, args):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(shape)
    out, indices = getattr(F, name)(make(x, device), *args)
    ref, ref_indices = getattr(torch.nn.functional, name)(torch.tensor(x), *args)
    np.testing.assert_array_equal(to_numpy(out), ref.numpy())
    np.testing.assert_array_equal(to_numpy(indices), ref_indices.numpy())


@pytest.mark.parametrize("name, kwargs", [
    ("upsample", dict(scale_factor=2, mode="bilinear", align_corners=False)), ("upsample_nearest", dict(size=(7, 9))),
    ("upsample_bilinear", dict(scale_factor=2)),
])
def test_upsample_aliases_warn_and_match_torch(device, name, kwargs):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5))
    with pytest.warns(UserWarning, match=f"nn.functional.{name}` is deprecated"):
        out = getattr(F, name)(make(x, device), **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(torch.nn.functional, name)(torch.tensor(x), **kwargs)
    np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("p", [0, 0.5, 1, 2, 3, float("inf")])
def test_pdist_matches_torch(device, p):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((5, 3))
    x[3] = x[1]  # a zero distance: gradient 0, as torch
    compare_with_torch(lambda a: F.pdist(a, p), lambda a: torch.pdist(a, p), [x], device, rtol=1e-10, atol=1e-12)


def test_pdist_gradcheck_and_errors(device):
    gradcheck_float64(F.pdist, [np.random.default_rng(0).standard_normal((4, 3))], device)
    assert tuple(F.pdist(tensor.ones(1, 3, device=device)).shape) == (0,)
    with pytest.raises(ValueError, match="only supports 2D tensors, got: 3D"):
        F.pdist(tensor.ones(2, 2, 2, device=device))
    with pytest.raises(ValueError, match="non-negative p"):
        F.pdist(tensor.ones(2, 2, device=device), -1)


@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_with_distance_loss_matches_torch(device, swap):
    torch = pytest.importorskip("torch")
    arrays = list(np.random.default_rng(0).standard_normal((3, 4, 5)))

    def cosine_distance(lib):
        return lambda a, b: 1.0 - lib.nn.functional.cosine_similarity(a, b)

    compare_with_torch(
        lambda a, p, n: F.triplet_margin_with_distance_loss(a, p, n, distance_function=cosine_distance(tensor),
                                                            margin=0.5, swap=swap),
        lambda a, p, n: torch.nn.functional.triplet_margin_with_distance_loss(
            a, p, n, distance_function=cosine_distance(torch), margin=0.5, swap=swap), arrays, device)
    compare_with_torch(lambda a, p, n: nn.TripletMarginWithDistanceLoss(swap=swap, reduction="sum")(a, p, n),
                       lambda a, p, n: torch.nn.TripletMarginWithDistanceLoss(swap=swap, reduction="sum")(a, p, n),
                       arrays, device)
    with pytest.raises(ValueError, match="expected margin to be greater than 0"):
        nn.TripletMarginWithDistanceLoss(margin=0)
    with pytest.raises(ValueError, match="same number of dimensions"):
        F.triplet_margin_with_distance_loss(*[make(a, device) for a in arrays[:2]], make(arrays[2][0], device))


def test_max_unpool3d_matches_torch(device):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 6, 6))
    pooled, indices = F.max_pool3d(make(x, device), 2, return_indices=True)
    compare_with_torch(lambda a: nn.MaxUnpool3d(2)(a, indices, output_size=(5, 7, 7)),
                       lambda a: torch.nn.MaxUnpool3d(2)(a, torch.tensor(to_numpy(indices)), output_size=(5, 7, 7)),
                       [to_numpy(pooled)], device)
    with pytest.raises(ValueError, match=r"expected a \(N, C, D, H, W\) or \(C, D, H, W\) input"):
        F.max_unpool3d(pooled[0, 0], indices[0, 0], 2)


# torch 2.11 pools x**inf and takes the (1/inf)-th power: every output is 1, where 2.13 gives the max of |x|
@pytest.mark.parametrize("norm_type", [2, 1.5, pytest.param(float("inf"), marks=needs_torch(
    "2.13", "torch 2.11's LPPool with norm_type=inf returns 1 everywhere"))])
def test_lp_pool3d_matches_torch(device, norm_type):
    torch = pytest.importorskip("torch")
    x = np.abs(np.random.default_rng(0).standard_normal((2, 2, 5, 6, 6))) + 0.1
    compare_with_torch(lambda a: nn.LPPool3d(norm_type, (2, 3, 2), stride=(1, 2, 2), ceil_mode=True)(a),
                       lambda a: torch.nn.LPPool3d(norm_type, (2, 3, 2), stride=(1, 2, 2), ceil_mode=True)(a),
                       [x], device)
    gradcheck_float64(lambda a: F.lp_pool3d(a, 2, 2), [x[:1, :1, :4, :4, :4]], device)
