"""sort, argsort, topk: forward against NumPy, value gradients against finite differences."""
import numpy as np
import pytest

import tensor

from helpers import check_grad, make, noncontiguous, to_numpy

RNG = np.random.default_rng(7)
X = RNG.permutation(60).reshape(3, 4, 5) / 10.0 - 3  # distinct values: gradients are well defined
TIES = np.array([[2.0, 1.0, 2.0, 0.0, 1.0, 2.0], [5.0, 5.0, 5.0, 5.0, 1.0, 1.0]])


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_forward(dim, descending, device):
    values, indices = tensor.sort(make(X, device), dim=dim, descending=descending)
    expected = np.flip(np.sort(X, axis=dim), dim) if descending else np.sort(X, axis=dim)
    np.testing.assert_array_equal(to_numpy(values), expected)
    np.testing.assert_array_equal(np.take_along_axis(X, to_numpy(indices), dim), expected)
    assert indices.dtype == tensor.int64 and not indices.requires_grad


def test_sort_result_is_a_named_tuple(device):
    result = make(X, device).sort()
    assert type(result).__name__ == "sort"
    assert result.values is result[0] and result.indices is result[1]


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_grad(dim, descending, device):
    check_grad(lambda x: x.sort(dim, descending).values, [X], device)
    check_grad(lambda x: x.sort(dim, descending)[0] * x, [noncontiguous(X[0])], device)


def test_stable_sort_keeps_equal_elements_in_order(device):
    _, ascending = make(TIES, device).sort(stable=True)
    np.testing.assert_array_equal(to_numpy(ascending), np.argsort(TIES, axis=-1, kind="stable"))
    _, descending = make(TIES, device).sort(descending=True, stable=True)
    np.testing.assert_array_equal(to_numpy(descending), np.argsort(-TIES, axis=-1, kind="stable"))


def test_nan_is_the_largest_value(device):
    x = make(np.array([1.0, np.nan, -1.0]), device)
    np.testing.assert_array_equal(to_numpy(x.sort().indices), [2, 0, 1])
    np.testing.assert_array_equal(to_numpy(x.sort(descending=True).indices), [1, 0, 2])
    np.testing.assert_array_equal(to_numpy(x.topk(1).indices), [1])


def test_sort_integer_and_bool(device):
    ints = np.array([3, 0, 7, 7, 1], dtype=np.int64)
    np.testing.assert_array_equal(to_numpy(make(ints, device).sort(descending=True).values), [7, 7, 3, 1, 0])
    flags = np.array([True, False, True])
    np.testing.assert_array_equal(to_numpy(make(flags, device).sort(descending=True).values), [True, True, False])


def test_sort_zero_dim(device):
    values, indices = make(np.array(2.5), device).sort()
    assert values.shape == () and indices.shape == () and float(values) == 2.5 and int(indices) == 0
    check_grad(lambda x: x.sort().values, [np.array(2.5)], device)


@pytest.mark.parametrize("descending", [False, True])
def test_argsort(descending, device):
    indices = make(X, device).argsort(dim=1, descending=descending)
    assert indices.dtype == tensor.int64
    expected = np.argsort(-X if descending else X, axis=1)
    np.testing.assert_array_equal(to_numpy(indices), expected)
    assert tensor.argsort(make(np.array(1.0), device)).shape == ()


@pytest.mark.parametrize("k", [1, 2, 4, 5])  # k < n/2 partitions first; larger k sorts the whole line
@pytest.mark.parametrize("largest", [True, False])
def test_topk_forward(k, largest, device):
    values, indices = make(X, device).topk(k, dim=-1, largest=largest)
    ordered = np.flip(np.sort(X, axis=-1), -1) if largest else np.sort(X, axis=-1)
    np.testing.assert_array_equal(to_numpy(values), ordered[..., :k])
    np.testing.assert_array_equal(np.take_along_axis(X, to_numpy(indices), -1), ordered[..., :k])
    assert indices.dtype == tensor.int64


def test_topk_unsorted_gives_the_same_set(device):
    x = np.arange(20.0)[::-1].copy()
    values, indices = make(x, device).topk(3, sorted=False)
    assert sorted(to_numpy(values).tolist()) == [17.0, 18.0, 19.0]
    np.testing.assert_array_equal(x[to_numpy(indices)], to_numpy(values))


@pytest.mark.parametrize("k, dim", [(2, 0), (1, -1), (5, -1), (3, 1)])
def test_topk_grad(k, dim, device):
    check_grad(lambda x: x.topk(k, dim=dim).values, [X], device)
    check_grad(lambda x: x.topk(k, dim=dim, largest=False, sorted=False)[0], [noncontiguous(X[0])], device)
    check_grad(lambda x: x.topk(1, dim=-1).values * x[..., :1], [X], device)


def test_topk_k_zero_and_errors(device):
    values, indices = make(X, device).topk(0)
    assert values.shape == (3, 4, 0) and indices.shape == (3, 4, 0)
    with pytest.raises(ValueError, match=r"topk: k=6 is out of range for dim 2 with size 5"):
        make(X, device).topk(6)
    with pytest.raises(ValueError, match="k=-1"):
        make(X, device).topk(-1)
    with pytest.raises(IndexError, match="dim 3 is out of range"):
        make(X, device).sort(dim=3)


def test_indices_changed_in_place_are_caught(device):
    x = make(X[0], device, requires_grad=True)
    values, indices = x.sort()
    indices.add_(0)
    with pytest.raises(tensor.AutogradError, match="modified by an in-place operation"):
        values.backward(tensor.ones(values.shape, dtype=values.dtype, device=device))
