"""Layers: forward and backward against their PyTorch twins on the same weights, gradients by
finite differences in float64, default initialisation statistics, train/eval behaviour."""
import math

import numpy as np
import pytest

import tensor
from tensor import nn
from torch_compare import copy_weights, make, to_numpy

torch = pytest.importorskip("torch")


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def check_twins(ours, theirs, arrays, device, rtol=1e-6, atol=1e-8, input_grads=True):
    """Same weights, same inputs: same outputs, input gradients and parameter gradients."""
    ours.double().to(device)
    theirs.double()
    copy_weights(ours, theirs)
    floats = [np.asarray(a).dtype.kind == "f" and input_grads for a in arrays]
    xs = [make(a, device, requires_grad=f) for a, f in zip(arrays, floats)]
    ts = [torch.tensor(np.asarray(a), requires_grad=f) for a, f in zip(arrays, floats)]
    out, ref = ours(*xs), theirs(*ts)
    np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=rtol, atol=atol)
    seed = data(*ref.shape, seed=9)
    out.backward(make(seed, device))
    ref.backward(torch.tensor(seed))
    for x, t, f in zip(xs, ts, floats):
        if f:
            np.testing.assert_allclose(to_numpy(x.grad), t.grad.numpy(), rtol=rtol, atol=atol)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(to_numpy(p.grad), q.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    for (name, b), q in zip(ours.named_buffers(), theirs.buffers()):
        np.testing.assert_allclose(to_numpy(b), q.numpy(), rtol=rtol, atol=atol, err_msg=name)


def gradcheck_module(module, arrays, device):
    """Finite differences through the module with respect to its float inputs and every parameter."""
    module.double().to(device)
    xs = [make(np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else a, device,
               requires_grad=np.asarray(a).dtype.kind == "f") for a in arrays]
    n = len(xs)
    # The parameters themselves are leaves of the check: gradcheck perturbs them in place.
    assert tensor.autograd.gradcheck(lambda *args: module(*args[:n]), xs + list(module.parameters()))


CASES = [
    ("Linear", lambda m: m.Linear(5, 3), [(4, 5)]),
    ("Linear no bias 3-D", lambda m: m.Linear(5, 3, bias=False), [(2, 4, 5)]),
    ("LayerNorm", lambda m: m.LayerNorm(5), [(3, 4, 5)]),
    ("LayerNorm 2 dims no bias", lambda m: m.LayerNorm((4, 5), bias=False), [(3, 4, 5)]),
    ("RMSNorm", lambda m: m.RMSNorm(5, eps=1e-6), [(3, 5)]),
    ("GroupNorm", lambda m: m.GroupNorm(2, 4), [(3, 4, 3, 2)]),
    ("BatchNorm1d 2-D", lambda m: m.BatchNorm1d(4), [(6, 4)]),
    ("BatchNorm1d 3-D", lambda m: m.BatchNorm1d(4, momentum=None), [(3, 4, 5)]),
    ("BatchNorm2d", lambda m: m.BatchNorm2d(3), [(2, 3, 4, 4)]),
    ("BatchNorm2d no affine", lambda m: m.BatchNorm2d(3, affine=False), [(2, 3, 2, 2)]),
    ("BatchNorm2d no running stats", lambda m: m.BatchNorm2d(3, track_running_stats=False), [(2, 3, 2, 2)]),
    ("Flatten", lambda m: m.Flatten(), [(2, 3, 4)]),
    ("Unflatten", lambda m: m.Unflatten(1, (3, 4)), [(2, 12)]),
    ("Identity", lambda m: m.Identity(), [(2, 3)]),
    ("ReLU", lambda m: m.ReLU(), [(3, 4)]),
    ("LeakyReLU", lambda m: m.LeakyReLU(0.2), [(3, 4)]),
    ("GELU", lambda m: m.GELU(), [(3, 4)]),
    ("GELU tanh", lambda m: m.GELU(approximate="tanh"), [(3, 4)]),
    ("SiLU", lambda m: m.SiLU(), [(3, 4)]),
    ("Sigmoid", lambda m: m.Sigmoid(), [(3, 4)]),
    ("Tanh", lambda m: m.Tanh(), [(3, 4)]),
    ("Softplus", lambda m: m.Softplus(beta=2.0), [(3, 4)]),
    ("ELU", lambda m: m.ELU(alpha=0.7), [(3, 4)]),
    ("Softmax", lambda m: m.Softmax(dim=1), [(3, 4)]),
    ("LogSoftmax", lambda m: m.LogSoftmax(dim=-1), [(3, 4)]),
    ("MLP", lambda m: m.Sequential(m.Linear(4, 6), m.Tanh(), m.Linear(6, 2)), [(5, 4)]),
]


@pytest.mark.parametrize("name, build, shapes", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch(device, name, build, shapes):
    arrays = [data(*s, seed=i) for i, s in enumerate(shapes)]
    check_twins(build(nn), build(torch.nn), arrays, device)


@pytest.mark.parametrize("name, build, shapes", CASES[:11], ids=[c[0] for c in CASES[:11]])
def test_layer_gradcheck(device, name, build, shapes):
    module = build(nn)
    if "BatchNorm" in name:
        module.eval() if "running" not in name else None  # eval: a pure function of the input
    gradcheck_module(module, [data(*s, seed=i) for i, s in enumerate(shapes)], device)


def test_batch_norm_training_gradcheck(device):
    module = nn.BatchNorm2d(3, momentum=0.0)  # training mode, running stats left alone by momentum 0
    gradcheck_module(module, [data(2, 3, 2, 2)], device)


def test_embedding_matches_torch(device):
    ours, theirs = nn.Embedding(6, 3, padding_idx=1), torch.nn.Embedding(6, 3, padding_idx=1)
    assert not to_numpy(ours.weight)[1].any()  # the padding row starts at zero
    check_twins(ours, theirs, [np.array([[0, 1, 5], [1, 1, 2]])], device)
    assert not to_numpy(ours.weight.grad)[1].any()  # and gets no gradient
    frozen = nn.Embedding.from_pretrained(tensor.ones(4, 2))
    assert not frozen.weight.requires_grad


def test_embedding_scale_grad_by_freq_matches_torch(device):
    # each row's gradient is divided by how often the batch looks it up (the padding row stays at zero)
    ours = nn.Embedding(6, 3, padding_idx=2, scale_grad_by_freq=True)
    theirs = torch.nn.Embedding(6, 3, padding_idx=2, scale_grad_by_freq=True)
    assert repr(ours) == repr(theirs)
    check_twins(ours, theirs, [np.array([[0, 1, 5, 1], [1, 2, 2, 0]])], device)
    x, w, g = np.array([4, 4, 3, 4]), data(5, 2), data(4, 2, seed=1)
    weight, t_weight = make(w, device, requires_grad=True), torch.tensor(w, requires_grad=True)
    (nn.functional.embedding(make(x, device), weight, scale_grad_by_freq=True) * make(g, device)).sum().backward()
    (torch.nn.functional.embedding(torch.tensor(x), t_weight, scale_grad_by_freq=True) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(to_numpy(weight.grad), t_weight.grad.numpy(), rtol=1e-12)
    with pytest.raises(NotImplementedError, match="sparse=False"):
        nn.Embedding(6, 3, sparse=True)


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_embedding_max_norm_renormalises_looked_up_rows_like_torch(device, norm_type):
    ours = nn.Embedding(6, 8, max_norm=1.5, norm_type=norm_type)
    theirs = torch.nn.Embedding(6, 8, max_norm=1.5, norm_type=norm_type)
    assert repr(ours) == repr(theirs)
    check_twins(ours, theirs, [np.array([[0, 1, 5], [1, 1, 2]])], device)
    np.testing.assert_allclose(to_numpy(ours.weight), theirs.weight.detach().numpy(), rtol=1e-6)
    norms = np.linalg.norm(to_numpy(ours.weight), ord=norm_type, axis=1)
    assert (norms[[0, 1, 2, 5]] <= 1.5 + 1e-6).all() and (norms[[3, 4]] > 1.5).any()  # only looked-up rows change


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_running_stats_over_steps_and_eval(device, momentum):
    ours, theirs = nn.BatchNorm1d(3, momentum=momentum), torch.nn.BatchNorm1d(3, momentum=momentum)
    ours.double().to(device)
    theirs.double()
    for step in range(4):
        x = data(8, 3, seed=step) * (step + 1) + step
        out, ref = ours(make(x, device)), theirs(torch.tensor(x))
        np.testing.assert_allclose(to_numpy(out), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(to_numpy(getattr(ours, name)), getattr(theirs, name).numpy(), rtol=1e-10)
    assert ours.num_batches_tracked.item() == 4
    ours.eval()
    theirs.eval()
    x = data(5, 3, seed=7)
    np.testing.assert_allclose(to_numpy(ours(make(x, device))), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10)
    assert ours.num_batches_tracked.item() == 4  # eval leaves the statistics alone
    with pytest.raises(ValueError, match="expected 2D or 3D input, got 4D"):
        ours(make(data(2, 3, 2, 2), device))


def test_dropout_module_train_and_eval(device):
    layer = nn.Dropout(0.5)
    x = make(np.ones((100, 100), dtype=np.float32), device)
    dropped = to_numpy(layer(x))
    assert 0.4 < (dropped == 0).mean() < 0.6
    layer.eval()
    assert layer(x) is x
    assert repr(layer) == "Dropout(p=0.5, inplace=False)"


def test_default_initialisation_follows_torch():
    tensor.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    weight, bias = to_numpy(layer.weight), to_numpy(layer.bias)
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.95 * bound
    assert np.isclose(weight.std(), bound / math.sqrt(3), rtol=0.02)
    assert np.abs(bias).max() <= bound
    embedding = to_numpy(nn.Embedding(300, 200).weight)
    assert abs(embedding.mean()) < 0.01 and np.isclose(embedding.std(), 1.0, rtol=0.02)
    norm = nn.LayerNorm(4)
    assert to_numpy(norm.weight).tolist() == [1] * 4 and to_numpy(norm.bias).tolist() == [0] * 4
    tensor.manual_seed(0)
    again = nn.Linear(400, 300)
    np.testing.assert_array_equal(to_numpy(again.weight), weight)  # reproducible from the seed


def test_loss_modules_match_functional(device):
    logits, target = make(data(4, 3), device), make(np.array([0, 2, 1, 2]), device)
    weight = make(np.array([1.0, 2.0, 0.5]), device)
    torch_logits, torch_target = torch.tensor(data(4, 3)), torch.tensor([0, 2, 1, 2])
    pairs = [
        (nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), label_smoothing=0.1)),
        (nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum")),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(logits, target).item(), theirs(torch_logits, torch_target).item(), rtol=1e-10)
    a, b = data(3, 2), 1 / (1 + np.exp(-data(3, 2, seed=1)))
    for ours, theirs in [(nn.MSELoss(), torch.nn.MSELoss()),
                         (nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum")),
                         (nn.SmoothL1Loss(beta=0.3), torch.nn.SmoothL1Loss(beta=0.3)),
                         (nn.HuberLoss(delta=0.4), torch.nn.HuberLoss(delta=0.4)),
                         (nn.BCEWithLogitsLoss(pos_weight=make(np.array([2.0, 0.5]), device)),
                          torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 0.5], dtype=torch.float64))),
                         (nn.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"))]:
        np.testing.assert_allclose(ours(make(a, device), make(b, device)).item(),
                                   theirs(torch.tensor(a), torch.tensor(b)).item(), rtol=1e-10)
    np.testing.assert_allclose(nn.BCELoss()(make(b, device), make(b[::-1].copy(), device)).item(),
                               torch.nn.BCELoss()(torch.tensor(b), torch.tensor(b[::-1].copy())).item(), rtol=1e-10)
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"


def test_training_a_small_model_reduces_the_loss():
    tensor.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(60):
        model.zero_grad()
        loss = loss_fn(model(tensor.tensor(x)), tensor.tensor(y))
        loss.backward()
        with tensor.no_grad():
            for p in model.parameters():
                p.data -= 0.1 * p.grad.data
        first = first if first is not None else loss.item()
    assert loss.item() < 0.3 * first
