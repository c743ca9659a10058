"""Indexing ops: forward against NumPy, gradients against finite differences, errors."""
import numpy as np
import pytest

import tensor
from tensor.errors import DeviceError, DTypeError, ShapeError

from helpers import check_grad, make, noncontiguous, to_numpy

X = np.arange(60, dtype=np.float64).reshape(3, 4, 5) / 7 - 3

# Each case: a function of (raw array module) -> index; the same index works on NumPy and on tensors.
CASES = {
    "int": lambda: 1,
    "negative int": lambda: -1,
    "slice": lambda: slice(1, None),
    "negative step": lambda: (slice(None, None, -1), slice(3, 0, -2)),
    "ints and slices": lambda: (0, slice(1, 3), -2),
    "all ints": lambda: (2, 3, 4),
    "none and ellipsis": lambda: (None, Ellipsis, 1),
    "ellipsis middle": lambda: (1, Ellipsis, slice(None, 2)),
    "int array repeated": lambda: np.array([0, 2, 0, 0]),
    "negative int array": lambda: np.array([-1, 0, -3]),
    "list": lambda: [2, 2, 1],
    "2-d int array": lambda: np.array([[0, 1], [1, 1]]),
    "array then slices": lambda: (np.array([2, 0, 2]), slice(None), slice(1, None)),
    "arrays separated by a slice": lambda: (np.array([0, 2]), slice(None), np.array([4, 4])),
    "broadcast arrays": lambda: (np.array([[0], [2]]), np.array([1, 3, 1])),
    "bool mask first dim": lambda: np.array([True, False, True]),
    "bool mask full": lambda: X > 0.5,
    "bool mask and int array": lambda: (np.array([True, False, True]), np.array([3, 3])),
    "none with array": lambda: (None, np.array([1, 1]), 0),
    "empty list": lambda: [],
}


def _as_tensor_index(index, device):
    """The same index with every array turned into a tensor on device."""
    if isinstance(index, tuple):
        return tuple(_as_tensor_index(i, device) for i in index)
    return make(index, device) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("case", CASES)
def test_getitem_forward(case, device):
    index = CASES[case]()
    expected = X[index]
    np.testing.assert_array_equal(to_numpy(make(X, device)[_as_tensor_index(index, device)]), expected)
    np.testing.assert_array_equal(to_numpy(make(X, device)[index]), expected)  # NumPy arrays and lists too


@pytest.mark.parametrize("case", CASES)
def test_getitem_grad(case, device):
    index = CASES[case]()
    check_grad(lambda x: x[_as_tensor_index(index, device)], [X], device)


def test_getitem_grad_noncontiguous(device):
    check_grad(lambda x: x[np.array([1, 1, 0]), 1:], [noncontiguous(X[0])], device)
    check_grad(lambda x: x[::-1, 2], [noncontiguous(X[0])], device)


def test_getitem_reused_input(device):
    # y = x[idx] * x[0] + x[1:3].sum-like reuse: x reaches the output along three paths
    check_grad(lambda x: x[[0, 0, 2]] * x[0] + x[1], [X[:, :, 0]], device)


def test_repeated_indices_accumulate(device):
    x = make(np.zeros(4), device, requires_grad=True)
    x[tensor.tensor([1, 1, 1, 3], device=device)].backward(tensor.ones(4, device=device))
    np.testing.assert_array_equal(to_numpy(x.grad), [0, 3, 0, 1])


def test_range_index_like_torch(device):
    # Rainbow's log_ps[range(batch_size), actions]: a range is an integer index list, read and written
    torch = pytest.importorskip("torch")
    actions = np.array([2, 0, 1])
    x = make(X[:, :, 0], device)
    want = torch.tensor(X[:, :, 0])[range(3), torch.tensor(actions)]
    np.testing.assert_array_equal(to_numpy(x[range(3), tensor.tensor(actions, device=device)]), want.numpy())
    np.testing.assert_array_equal(to_numpy(x[range(1, 3)]), X[1:3, :, 0])
    x[range(2), 1] = 7.0
    np.testing.assert_array_equal(to_numpy(x[:2, 1]), [7.0, 7.0])
    check_grad(lambda t: t[range(3), [1, 1, 0]], [X[:, :, 0]], device)


def test_masked_selection(device):
    x = make(X, device)
    mask = make(X > 0, device)
    np.testing.assert_array_equal(to_numpy(x[mask]), X[X > 0])
    np.testing.assert_array_equal(to_numpy(x[make(X[:, 0, 0] > 0, device), 1]), X[X[:, 0, 0] > 0, 1])
    check_grad(lambda t: t[make(X > 0, device)], [X], device)


def test_basic_index_is_a_view(device):
    x = make(np.arange(6.0).reshape(2, 3), device)
    row = x[1]
    assert row._base is x
    row.add_(10)  # writes through to x and moves the shared version counter
    np.testing.assert_array_equal(to_numpy(x), [[0, 1, 2], [13, 14, 15]])
    assert x._version == row._version == 1
    one = x[0, 1]
    assert one.shape == () and one._base is x


def test_advanced_index_copies(device):
    x = make(np.arange(6.0), device)
    picked = x[[0, 1]]
    assert picked._base is None
    picked.add_(1)
    np.testing.assert_array_equal(to_numpy(x), np.arange(6.0))
    assert x._version == 0


def test_getitem_errors(device):
    x = make(X, device)
    with pytest.raises(IndexError, match=r"index 3 is out of range for dim 0 with size 3"):
        x[3]
    with pytest.raises(IndexError, match=r"index 9 is out of range for dim 1 with size 4"):
        x[:, [0, 9]]
    with pytest.raises(IndexError, match=r"index -6 is out of range for dim 2 with size 5"):
        x[..., tensor.tensor([-6, 0], device=device)]
    with pytest.raises(DTypeError, match="integer or bool dtype, got float32"):
        x[tensor.tensor([1.0], device=device)]
    with pytest.raises(DTypeError, match="uint8"):
        x[tensor.tensor([1], dtype=tensor.uint8, device=device)]
    with pytest.raises(TypeError, match="not a valid index"):
        x["a"]


def test_index_on_another_device(device):
    if device == "cpu":
        pytest.skip("needs a second device kind")
    x = make(X, device)
    # a CPU index (or a list: host data) selects from a GPU tensor, as in PyTorch; the other way round is refused
    np.testing.assert_array_equal(to_numpy(x[tensor.tensor([0, 1])]), X[[0, 1]])
    np.testing.assert_array_equal(to_numpy(x[[0, 1]]), X[[0, 1]])
    with pytest.raises(DeviceError, match=f"index tensor is on {x.device}"):
        tensor.tensor(X)[make(np.array([0, 1]), device)]


# ------------------------------------------------------------------------------------- index_put


def test_index_put_forward(device):
    from tensor.ops.index import index_put

    x = make(X, device)
    expected = X.copy()
    expected[1, :, [0, 2]] = -1.0
    np.testing.assert_array_equal(to_numpy(index_put(x, (1, slice(None), [0, 2]), -1.0)), expected)
    np.testing.assert_array_equal(to_numpy(x), X)  # out of place
    value = np.arange(5.0)
    expected = X.copy()
    expected[X[..., 0] > 0] = value  # value broadcast over the selected rows
    np.testing.assert_array_equal(to_numpy(index_put(x, make(X[..., 0] > 0, device), make(value, device))), expected)


def test_index_put_with_repeats_keeps_one_write(device):
    from tensor.ops.index import index_put

    x = make(np.zeros(3), device)
    out = to_numpy(index_put(x, [0, 0], make(np.array([1.0, 2.0]), device)))
    if device == "cpu":
        np.testing.assert_array_equal(out, [2.0, 0, 0])
    else:  # on cuda, as in PyTorch, which of the repeated writes wins is unspecified: one of them does
        assert out[0] in (1.0, 2.0) and out[1:].tolist() == [0, 0]


@pytest.mark.parametrize(
    "index, value_shape",
    [((0, slice(1, 3)), (2, 5)), ((slice(None), [3, 0]), (1, 5)), ((Ellipsis, 1), ()), (([2, 0], 1, [4, 1]), (2,))],
)
def test_index_put_grad(index, value_shape, device):
    from tensor.ops.index import index_put

    value = np.linspace(-1, 1, int(np.prod(value_shape))).reshape(value_shape)
    check_grad(lambda x, v: index_put(x, index, v), [X, value], device)
    check_grad(lambda x, v: index_put(x, index, v) * x, [noncontiguous(X.transpose(2, 1, 0)).transpose(2, 1, 0), value], device)


def test_index_put_casts_value_and_checks_shape(device):
    from tensor.ops.index import index_put

    x = make(np.zeros((2, 3)), device)
    out = index_put(x, 0, tensor.tensor([1, 2, 3], device=device))
    assert out.dtype == tensor.float64
    with pytest.raises(ShapeError, match=r"value of shape \(2,\)"):
        index_put(x, 0, tensor.tensor([1.0, 2.0], dtype=tensor.float64, device=device))
    with pytest.raises(IndexError, match="index 2 is out of range for dim 0 with size 2"):
        index_put(x, [2], 0.0)


# ----------------------------------------------------------------------------------- along a dim

M = np.arange(20, dtype=np.float64).reshape(4, 5) / 3 - 2
IDX = np.array([[0, 0, 3], [1, 4, 4], [2, 2, 2]])  # repeats; smaller than M off either dim


def _np_gather(x, dim, index):
    out = np.empty(index.shape, x.dtype)
    for pos in np.ndindex(*index.shape):
        src = list(pos)
        src[dim] = index[pos]
        out[pos] = x[tuple(src)]
    return out


def _np_scatter(x, dim, index, src, combine):
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        dst = list(pos)
        dst[dim] = index[pos]
        value = src[pos] if isinstance(src, np.ndarray) else src
        out[tuple(dst)] = combine(out[tuple(dst)], value)
    return out


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dim, device):
    index = IDX if dim == 1 or dim == -1 else IDX[:, :3] % 4
    np.testing.assert_array_equal(to_numpy(make(M, device).gather(dim, make(index, device))), _np_gather(M, dim % 2, index))
    check_grad(lambda x: x.gather(dim, make(index, device)), [M], device)
    check_grad(lambda x: tensor.gather(x, dim, make(index, device)) * x[:3, :3], [noncontiguous(M)], device)


def test_gather_one_pick_per_line(device):
    # the cross-entropy shape: one class per row
    labels = np.array([[4], [0], [4], [2]])
    np.testing.assert_array_equal(to_numpy(make(M, device).gather(1, make(labels, device))), _np_gather(M, 1, labels))
    check_grad(lambda x: x.gather(1, make(labels, device)), [M], device)


@pytest.mark.parametrize("reduce", [None, "add"])
def test_scatter(reduce, device):
    index = np.array([[0, 1, 3], [2, 4, 0]])  # no repeated target within a row: writes are well defined
    src = np.arange(10.0).reshape(2, 5)  # larger than index: only its leading block is used
    combine = (lambda old, new: new) if reduce is None else (lambda old, new: old + new)
    out = make(M, device).scatter(1, make(index, device), make(src, device), reduce=reduce)
    np.testing.assert_array_equal(to_numpy(out), _np_scatter(M, 1, index, src[:, :3], combine))
    check_grad(lambda x, s: x.scatter(1, make(index, device), s, reduce=reduce), [M, src], device)
    check_grad(lambda x, s: x.scatter(0, make(index % 4, device), s, reduce=reduce) * x, [noncontiguous(M), src], device)


def test_scatter_value(device):
    index = np.array([[1], [0], [1], [3]])
    out = make(M, device).scatter(1, make(index, device), 9.0)
    np.testing.assert_array_equal(to_numpy(out), _np_scatter(M, 1, index, 9.0, lambda old, new: new))
    check_grad(lambda x: x.scatter(1, make(index, device), value=-1.0), [M], device)


def test_scatter_add_accumulates_repeats(device):
    index = np.array([[0, 0, 0], [4, 4, 1]])
    src = np.arange(6.0).reshape(2, 3)
    out = make(M, device).scatter_add(1, make(index, device), make(src, device))
    np.testing.assert_allclose(to_numpy(out), _np_scatter(M, 1, index, src, lambda old, new: old + new))
    check_grad(lambda x, s: x.scatter_add(1, make(index, device), s), [M, src], device)


def test_scatter_multiply(device):
    if device != "cpu":
        pytest.skip("reduce='multiply' is cpu only")
    index = np.array([[0, 0], [3, 3]])
    src = np.array([[2.0, 3.0], [-1.0, 0.5]])
    out = make(M, device).scatter(1, make(index, device), make(src, device), reduce="multiply")
    np.testing.assert_allclose(to_numpy(out), _np_scatter(M, 1, index, src, lambda old, new: old * new))
    with pytest.raises(tensor.AutogradError, match="no gradient"):
        make(M, device, requires_grad=True).scatter(1, make(index, device), make(src, device), reduce="multiply")


@pytest.mark.parametrize("dim", [0, 1])
def test_index_select(dim, device):
    index = np.array([3, 0, 3, 3])
    np.testing.assert_array_equal(to_numpy(make(M, device).index_select(dim, make(index, device))), np.take(M, index, dim))
    check_grad(lambda x: x.index_select(dim, make(index, device)), [M], device)
    check_grad(lambda x: x.index_select(dim, make(index, device)).index_select(dim, make(index, device)), [noncontiguous(M)], device)
    assert make(M, device).index_select(dim, make(np.array(2), device)).shape[dim] == 1


def test_take_along_dim(device):
    order = np.argsort(M, axis=1)[:, ::-1]
    np.testing.assert_array_equal(to_numpy(make(M, device).take_along_dim(make(order, device), 1)), np.take_along_axis(M, order, 1))
    check_grad(lambda x: x.take_along_dim(make(IDX, device), 1), [M[:3]], device)
    # x broadcast against indices off dim: the gradient sums over the broadcast rows
    check_grad(lambda x: x.take_along_dim(make(IDX, device), 1), [M[:1]], device)
    flat = np.array([19, 0, 0, 7])
    np.testing.assert_array_equal(to_numpy(tensor.take_along_dim(make(M, device), make(flat, device))), M.reshape(-1)[flat])
    check_grad(lambda x: tensor.take_along_dim(x, make(flat, device)), [M], device)


def test_along_dim_errors(device):
    x = make(M, device)
    with pytest.raises(IndexError, match=r"gather: index 5 is out of range for dim 1 with size 5"):
        x.gather(1, make(np.array([[5]]), device))
    with pytest.raises(IndexError, match=r"gather: index -1 is out of range for dim 0 with size 4"):
        x.gather(0, make(np.array([[-1]]), device))
    with pytest.raises(ShapeError, match="same number of dims"):
        x.gather(1, make(np.array([0]), device))
    with pytest.raises(ShapeError, match=r"index of shape \(5, 1\)"):
        x.gather(1, make(np.zeros((5, 1), np.int64), device))
    with pytest.raises(DTypeError, match="integer tensor, got dtype float"):
        x.index_select(0, make(np.array([0.0]), device))
    with pytest.raises(IndexError, match="index_select: index 4 is out of range for dim 0 with size 4"):
        x.index_select(0, make(np.array([0, 4]), device))
    with pytest.raises(IndexError, match="scatter: index 7 is out of range for dim 1 with size 5"):
        x.scatter_add(1, make(np.array([[7]]), device), make(np.ones((1, 1)), device))
    with pytest.raises(ShapeError, match="must not be larger than src"):
        x.scatter(1, make(np.zeros((2, 2), np.int64), device), make(np.ones((1, 2)), device))
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        x.gather(2, make(np.zeros((1, 1), np.int64), device))


# --------------------------------------------------------------------------------------- one_hot


def test_one_hot(device):
    labels = np.array([[0, 2], [3, 3]])
    out = tensor.one_hot(make(labels, device))
    assert out.dtype == tensor.int64 and out.shape == (2, 2, 4)
    np.testing.assert_array_equal(to_numpy(out), np.eye(4, dtype=np.int64)[labels])
    assert tensor.one_hot(make(labels, device), num_classes=6).shape == (2, 2, 6)
    assert tensor.one_hot(make(np.zeros(0, np.int64), device), 3).shape == (0, 3)


def test_one_hot_errors(device):
    with pytest.raises(ValueError, match="class value -1 is negative"):
        tensor.one_hot(make(np.array([0, -1]), device), 3)
    with pytest.raises(ValueError, match="class value 3 is out of range for num_classes=3"):
        tensor.one_hot(make(np.array([3, 1]), device), 3)
    with pytest.raises(DTypeError, match="integer tensor"):
        tensor.one_hot(make(np.array([1.0]), device))
    with pytest.raises(ValueError, match="empty"):
        tensor.one_hot(make(np.zeros(0, np.int64), device))


@pytest.mark.parametrize("shape, num_classes, message", [
    ((0,), 0, r"num_classes=0 for an empty tensor.*pass num_classes >= 1"),  # not a (0, 0) result
    ((2, 0), -2, r"num_classes=-2 for an empty tensor"),
    ((3,), 0, r"class value 0 is out of range for num_classes=0"),
    ((3,), -2, r"class value 0 is out of range for num_classes=-2"),  # only -1 infers num_classes
])
def test_one_hot_refuses_num_classes_below_one_like_torch(device, shape, num_classes, message):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="Can not infer|must be smaller than num_classes"):
        torch.nn.functional.one_hot(torch.zeros(shape, dtype=torch.int64), num_classes)
    with pytest.raises(ValueError, match=message):
        tensor.one_hot(make(np.zeros(shape, np.int64), device), num_classes)
