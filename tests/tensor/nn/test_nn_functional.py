"""nn.functional outside the losses: softmax family, linear, normalisation, dropout, embedding,
normalize/cosine_similarity. Values and gradients against PyTorch and finite differences."""
import numpy as np
import pytest

import tensor
import tensor.nn.functional as F
from tensor.errors import DTypeError, ShapeError
from torch_compare import compare_with_torch, gradcheck_float64, make, to_numpy

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------------------------ softmax


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family(device, name, dim):
    ours, theirs = getattr(F, name), getattr(TF, name)
    arrays = [data(3, 4, 5)]
    compare_with_torch(lambda x: ours(x, dim), lambda x: theirs(x, dim), arrays, device)
    gradcheck_float64(lambda x: ours(x, dim), arrays, device)


def test_softmax_is_stable_and_keeps_dtype(device):
    x = make(np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32), device)
    np.testing.assert_allclose(to_numpy(F.softmax(x, 1)), [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(to_numpy(F.log_softmax(x, 1)), [[0.0, -1000.0, -2000.0]])
    assert F.log_softmax(x, 1).dtype == tensor.float32
    assert F.softmax(x, 1, dtype=tensor.float64).dtype == tensor.float64


def test_softmax_errors(device):
    with pytest.raises(IndexError, match="dim 2"):
        F.softmax(make(data(2, 3), device), 2)
    with pytest.raises(DTypeError, match="floating"):
        F.softmax(make(np.arange(3), device), 0)
    with pytest.warns(UserWarning, match="implicit dim"):
        F.softmax(make(data(2, 3), device))


def test_pointwise_activations_follow_torch(device):
    x = data(4, 5) * 3
    compare_with_torch(F.relu, TF.relu, [x], device)
    compare_with_torch(lambda t: F.gelu(t, approximate="tanh"), lambda t: TF.gelu(t, approximate="tanh"), [x], device)
    compare_with_torch(lambda t: F.leaky_relu(t, 0.2), lambda t: TF.leaky_relu(t, 0.2), [x], device)
    compare_with_torch(lambda t: F.elu(t, 0.5), lambda t: TF.elu(t, 0.5), [x], device)
    compare_with_torch(lambda t: F.softplus(t, 2.0, 5.0), lambda t: TF.softplus(t, 2.0, 5.0), [x], device)
    for name in ("silu", "sigmoid", "tanh", "gelu"):
        compare_with_torch(getattr(F, name), getattr(TF, name), [x], device, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------- linear


@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3), (3,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(device, shape, bias):
    arrays = [data(*shape), data(6, 3, seed=1)] + ([data(6, seed=2)] if bias else [])
    compare_with_torch(F.linear, TF.linear, arrays, device)
    gradcheck_float64(F.linear, arrays, device)


def test_linear_on_noncontiguous_input(device):
    arrays = [np.ascontiguousarray(data(3, 4).T), data(2, 3, seed=1), data(2, seed=2)]
    compare_with_torch(F.linear, TF.linear, arrays, device)


def test_linear_errors(device):
    with pytest.raises(ShapeError, match=r"\(4, 5\).*\(6, 3\).*in_features=3"):
        F.linear(make(data(4, 5), device), make(data(6, 3), device))
    with pytest.raises(DTypeError, match="float64 differs from weight dtype float32"):
        F.linear(make(data(4, 3), device), make(data(6, 3).astype(np.float32), device))


# ------------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize("normalized", [(5,), (4, 5)])
def test_layer_norm(device, normalized):
    arrays = [data(3, 4, 5), data(*normalized, seed=1), data(*normalized, seed=2)]
    fn = lambda x, w, b: F.layer_norm(x, normalized, w, b, eps=1e-5)  # noqa: E731
    compare_with_torch(fn, lambda x, w, b: TF.layer_norm(x, normalized, w, b, eps=1e-5), arrays, device)
    gradcheck_float64(fn, arrays, device)
    plain = lambda x: F.layer_norm(x, normalized)  # noqa: E731
    compare_with_torch(plain, lambda x: TF.layer_norm(x, normalized), arrays[:1], device)


def test_rms_norm(device):
    arrays = [data(3, 4, 5), data(5, seed=1)]
    fn = lambda x, w: F.rms_norm(x, (5,), w, eps=1e-6)  # noqa: E731
    compare_with_torch(fn, lambda x, w: TF.rms_norm(x, (5,), w, eps=1e-6), arrays, device)
    gradcheck_float64(fn, arrays, device)
    compare_with_torch(lambda x: F.rms_norm(x, (4, 5)), lambda x: TF.rms_norm(x, (4, 5)), arrays[:1], device)


@pytest.mark.parametrize("shape", [(3, 6, 2, 2), (4, 6), (2, 6, 5)])
def test_group_norm(device, shape):
    arrays = [data(*shape), data(6, seed=1), data(6, seed=2)]
    fn = lambda x, w, b: F.group_norm(x, 3, w, b)  # noqa: E731
    compare_with_torch(fn, lambda x, w, b: TF.group_norm(x, 3, w, b), arrays, device)
    gradcheck_float64(fn, arrays, device)
    with pytest.raises(ValueError, match="6 channels cannot be split into 4"):
        F.group_norm(make(arrays[0], device), 4)


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (2, 3, 4, 4)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch_and_updates_running_stats(device, shape, training):
    rng = np.random.default_rng(5)
    x, w, b = data(*shape), data(3, seed=1), data(3, seed=2)
    mean, var = rng.standard_normal(3), rng.random(3) + 0.5
    ours_stats = [make(mean.copy(), device), make(var.copy(), device)]
    torch_stats = [torch.tensor(mean.copy()), torch.tensor(var.copy())]
    compare_with_torch(lambda *a: F.batch_norm(a[0], *ours_stats, a[1], a[2], training, 0.3),
                       lambda *a: TF.batch_norm(a[0], *torch_stats, a[1], a[2], training, 0.3), [x, w, b], device)
    for ours, theirs in zip(ours_stats, torch_stats):
        np.testing.assert_allclose(to_numpy(ours), theirs.numpy(), rtol=1e-12)
    frozen = [make(mean.copy(), device), make(var.copy(), device)]
    gradcheck_float64(lambda x, w, b: F.batch_norm(x, *frozen, w, b, training, 0.0), [x, w, b], device)


def test_batch_norm_without_running_stats_and_errors(device):
    x = data(4, 3, 2)
    compare_with_torch(lambda t: F.batch_norm(t, None, None, training=True),
                       lambda t: TF.batch_norm(t, None, None, training=True), [x], device)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(make(data(1, 3), device), None, None, training=True)
    with pytest.raises(ValueError, match="needs running_mean"):
        F.batch_norm(make(x, device), None, None, training=False)


# --------------------------------------------------------------------------------- dropout


def test_dropout_train_and_eval(device):
    x = make(np.ones((200, 50), dtype=np.float32), device, requires_grad=True)
    tensor.manual_seed(0)
    out = F.dropout(x, 0.3, training=True)
    values = to_numpy(out)
    kept = values != 0
    assert 0.65 < kept.mean() < 0.75
    np.testing.assert_allclose(values[kept], 1 / 0.7, rtol=1e-6)
    out.backward(tensor.ones(out.shape, device=device))
    np.testing.assert_array_equal(to_numpy(x.grad), values)  # the gradient goes through the same mask
    assert F.dropout(x, 0.3, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert not to_numpy(F.dropout(x, 1.0)).any()
    tensor.manual_seed(0)
    np.testing.assert_array_equal(to_numpy(F.dropout(x, 0.3)), values)  # reproducible from the seed
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


def test_dropout_gradcheck_with_fixed_mask(device):
    x = data(4, 5)

    def fn(t):
        tensor.manual_seed(1)  # the same mask on every evaluation
        return F.dropout(t, 0.4)

    gradcheck_float64(fn, [x], device)


# ------------------------------------------------------------------------------- embedding


def test_embedding_with_padding_idx(device):
    indices = np.array([[0, 2, 2], [4, 2, 1]])
    arrays = [indices, data(5, 3)]
    compare_with_torch(lambda i, w: F.embedding(i, w, padding_idx=2), lambda i, w: TF.embedding(i, w, padding_idx=2),
                       arrays, device, grads=[1])
    gradcheck_float64(lambda i, w: F.embedding(i, w), arrays, device, grads=[1])
    if device == "cpu":
        with pytest.raises(IndexError, match="index 7 is out of range for 5"):
            F.embedding(make(np.array([7]), device), make(arrays[1], device))


def test_one_hot(device):
    out = F.one_hot(make(np.array([0, 2, 1]), device), 4)
    np.testing.assert_array_equal(to_numpy(out), np.eye(4, dtype=np.int64)[[0, 2, 1]])


# --------------------------------------------------------------------------------- distance


def test_normalize_and_cosine_similarity(device):
    arrays = [data(4, 5), data(4, 5, seed=1)]
    compare_with_torch(lambda x: F.normalize(x, dim=1), lambda x: TF.normalize(x, dim=1), arrays[:1], device)
    compare_with_torch(lambda x: F.normalize(x, p=1.0, dim=0), lambda x: TF.normalize(x, p=1.0, dim=0), arrays[:1],
                       device)
    compare_with_torch(F.cosine_similarity, TF.cosine_similarity, arrays, device)
    gradcheck_float64(F.cosine_similarity, arrays, device)
    zero = make(np.zeros((1, 3)), device)
    assert to_numpy(F.normalize(zero)).sum() == 0  # eps keeps zero vectors finite
