"""In-place ops and __setitem__: values, gradients, and the version check that guards saved tensors."""
import numpy as np
import pytest

import tensor
from tensor.errors import AutogradError, DeviceError
from tensor.ops.index import index_put

from helpers import check_grad, make, to_numpy

X = np.arange(12, dtype=np.float64).reshape(3, 4) / 5 - 1


def ones_like(t):
    return tensor.ones(t.shape, dtype=t.dtype, device=t.device)


# --------------------------------------------------------------------------- __setitem__ values


@pytest.mark.parametrize(
    "index, value",
    [
        (1, 9.0),
        ((slice(None), -1), np.array([7.0, 8.0, 9.0])),
        ((slice(None, None, -2), slice(1, 3)), np.array([[1.0, 2.0]])),  # value broadcast over rows
        (X > 0, -5.0),
        ([2, 0, 2], np.arange(4.0)),  # a repeated row: the last write wins, as in NumPy
        ((np.array([0, 1]), np.array([3, 3])), np.array([4.0, 5.0])),
        ((Ellipsis, None, 0), 3.0),
    ],
)
def test_setitem_without_grad(index, value, device):
    x = make(X, device)
    tensor_value = make(value, device) if isinstance(value, np.ndarray) else value
    tensor_index = make(index, device) if isinstance(index, np.ndarray) else index
    x[tensor_index] = tensor_value
    expected = X.copy()
    expected[index] = value
    np.testing.assert_array_equal(to_numpy(x), expected)
    assert x._version == 1


def test_setitem_casts_into_the_tensor_dtype(device):
    x = make(np.zeros(3, np.int64), device)
    x[1] = make(np.array(7.0), device)
    assert x.dtype == tensor.int64 and to_numpy(x).tolist() == [0, 7, 0]


def test_setitem_errors(device):
    x = make(X, device)
    with pytest.raises(IndexError, match="index 5"):
        x[5] = 1.0
    with pytest.raises(ValueError, match=r"does not fit the indexed region.*\(3,\)"):
        x[0] = make(np.ones(3), device)
    with pytest.raises(tensor.DTypeError, match="integer or bool"):
        x[make(np.array([0.0]), device)] = 1.0


def test_setitem_index_on_another_device(device):
    if device == "cpu":
        pytest.skip("needs a second device kind")
    x = make(X, device)
    x[tensor.tensor([0])] = 1.0  # a CPU index into a GPU tensor, as in PyTorch
    assert to_numpy(x[0]).tolist() == [1.0] * X.shape[1]
    with pytest.raises(DeviceError, match=f"index tensor is on {x.device}"):
        tensor.tensor(X)[make(np.array([0]), device)] = 1.0
    with pytest.raises(DeviceError):
        x[0] = tensor.ones(4)


# ------------------------------------------------------------------------ __setitem__ gradients


@pytest.mark.parametrize("index", [(1, slice(None, 3)), (slice(None), [3, 0]), [2, 0], X[:, 0] > -0.5])
def test_setitem_grad_matches_out_of_place(index, device):
    region = X[index]
    value = np.linspace(-1, 1, region[-1:].size).reshape(region[-1:].shape)  # broadcast over the first dim

    def in_place(x, v):
        y = x * 2.0  # a non-leaf: in-place changes are recorded
        y[index] = v
        return y * x

    def out_of_place(x, v):
        return index_put(x * 2.0, index, v) * x

    check_grad(in_place, [X, value], device)
    x, v = make(X, device, requires_grad=True), make(value, device, requires_grad=True)
    in_place(x, v).backward(ones_like(x))
    grads = to_numpy(x.grad), to_numpy(v.grad)
    x.grad = v.grad = None
    out_of_place(x, v).backward(ones_like(x))
    np.testing.assert_allclose(grads[0], to_numpy(x.grad))
    np.testing.assert_allclose(grads[1], to_numpy(v.grad))


def test_setitem_with_a_tensor_index_and_constant_value(device):
    index = make(np.array([2, 0]), device)
    check_grad(lambda x: _assign(x * 1.0, index, 0.5), [X], device)


def _assign(t, index, value):
    t[index] = value
    return t


def test_setitem_on_a_leaf_requiring_grad_is_an_error(device):
    x = make(X, device, requires_grad=True)
    with pytest.raises(AutogradError, match="leaf tensor that requires grad"):
        x[0] = 1.0
    with tensor.no_grad():  # the optimizer path
        x[0] = 1.0
    assert x._version == 1 and to_numpy(x)[0].tolist() == [1.0] * 4


# ------------------------------------------------------------------------------- version checks


def test_changing_a_saved_output_is_caught(device):
    x = make(X, device, requires_grad=True)
    y = x.exp()  # exp saves its output
    y.add_(1)
    with pytest.raises(AutogradError, match=r"modified by an in-place operation \(version 1, expected 0\)"):
        y.backward(ones_like(y))


def test_changing_a_saved_non_leaf_input_is_caught(device):
    x = make(X, device, requires_grad=True)
    a = x + 0.0
    b = make(X[::-1].copy(), device, requires_grad=True)
    y = a * b  # saves a and b
    a.mul_(2)
    with pytest.raises(AutogradError, match=r"version 1, expected 0"):
        y.backward(ones_like(y))


def test_setitem_on_a_saved_tensor_is_caught(device):
    x = make(X, device, requires_grad=True)
    y = x + 0.0
    z = y * y
    y[0] = 5.0
    with pytest.raises(AutogradError, match="version 1, expected 0"):
        z.backward(ones_like(z))


def test_changing_a_saved_tensor_through_a_view_is_caught(device):
    x = make(X, device)  # no grad: the view still shares x's version counter
    w = make(X, device, requires_grad=True)
    y = w * x
    x[1:][0].mul_(10)
    assert x._version == 1
    with pytest.raises(AutogradError, match="version 1, expected 0"):
        y.backward(ones_like(y))


def test_in_place_on_an_unsaved_non_leaf_gives_correct_gradients(device):
    w_data = np.linspace(-2, 2, 12).reshape(3, 4)

    def in_place(x, w):
        a = x + 1.0  # Add saves nothing, so a may change in place
        a.mul_(3)
        a.add_(w)
        a.sub_(x)
        return a

    def out_of_place(x, w):
        return (x + 1.0) * 3 + w - x

    check_grad(in_place, [X, w_data], device)
    results = []
    for fn in (in_place, out_of_place):
        x, w = make(X, device, requires_grad=True), make(w_data, device, requires_grad=True)
        out = fn(x, w)
        out.backward(ones_like(out))
        results.append((to_numpy(out), to_numpy(x.grad), to_numpy(w.grad)))
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected)


def test_in_place_under_no_grad_on_a_leaf(device):
    w = make(X, device, requires_grad=True)
    y = w * w
    y.backward(ones_like(y))
    with tensor.no_grad():  # what an optimizer step does
        w.sub_(w.grad, alpha=0.1)
        w.mul_(0.5)
        w.add_(1.0)
    assert w._version == 3 and w.requires_grad and w.is_leaf and w.grad_fn is None
    np.testing.assert_allclose(to_numpy(w), (X - 0.1 * 2 * X) * 0.5 + 1.0)
    z = w * w  # the graph built before the step saved w: using it again must fail
    with pytest.raises(AutogradError, match="trying to backward through the graph a second time|version"):
        y.backward(ones_like(y))
    z.backward(ones_like(z))
    np.testing.assert_allclose(to_numpy(w.grad), 2 * X + 2 * to_numpy(w))


def test_saved_leaf_changed_under_no_grad_is_caught(device):
    w = make(X, device, requires_grad=True)
    y = w * w
    with tensor.no_grad():
        w.add_(1.0)
    with pytest.raises(AutogradError, match="version 1, expected 0"):
        y.backward(ones_like(y))
