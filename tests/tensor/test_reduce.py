"""Reductions (tensor/ops/reduce.py, statistics.py): forward against NumPy over dims and keepdim, gradients by finite
differences, PyTorch's dtypes and tie rules, zeros in prod, stable logsumexp, norms, cumsum, empty dims."""
import math

import numpy as np
import pytest

import tensor
from tensor.autograd import gradcheck
from tensor.errors import DTypeError, ShapeError

from helpers import check_forward, check_grad, compare_with_torch, make, noncontiguous, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def np_logsumexp(a, axis=None, keepdims=False):
    shift = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def np_norm(p):
    def fn(a, axis=None, keepdims=False):
        if p == 0:
            return np.sum(a != 0, axis=axis, keepdims=keepdims).astype(a.dtype)
        if math.isinf(p):
            return (np.max if p > 0 else np.min)(np.abs(a), axis=axis, keepdims=keepdims)
        return np.sum(np.abs(a) ** p, axis=axis, keepdims=keepdims) ** (1 / p)

    return fn


# name, raygrad reduction (x, dim, keepdim), NumPy reference (a, axis, keepdims)
REDUCTIONS = [
    ("sum", lambda x, d, k: x.sum(d, k), np.sum),
    ("mean", lambda x, d, k: x.mean(d, keepdim=k), np.mean),
    ("amax", lambda x, d, k: x.amax(d, k), np.max),
    ("amin", lambda x, d, k: tensor.amin(x, dim=d, keepdim=k), np.min),
    ("var", lambda x, d, k: x.var(d, keepdim=k), lambda a, axis, keepdims: np.var(a, axis=axis, ddof=1, keepdims=keepdims)),
    ("var_biased", lambda x, d, k: x.var(d, keepdim=k, correction=0), lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims)),
    ("std", lambda x, d, k: x.std(d, keepdim=k), lambda a, axis, keepdims: np.std(a, axis=axis, ddof=1, keepdims=keepdims)),
    ("std_unbiased_false", lambda x, d, k: x.std(d, False, k), lambda a, axis, keepdims: np.std(a, axis=axis, keepdims=keepdims)),
    ("logsumexp", lambda x, d, k: x.logsumexp(d, k), np_logsumexp),
    ("norm", lambda x, d, k: x.norm(dim=d, keepdim=k), np_norm(2)),
    ("norm_fro", lambda x, d, k: x.norm("fro", d, k), np_norm(2)),
    ("norm_1", lambda x, d, k: x.norm(1, d, k), np_norm(1)),
    ("norm_3", lambda x, d, k: x.norm(3, d, k), np_norm(3)),
    ("norm_0.5", lambda x, d, k: x.norm(0.5, d, k), np_norm(0.5)),
    ("norm_inf", lambda x, d, k: x.norm(math.inf, d, k), np_norm(math.inf)),
    ("norm_-inf", lambda x, d, k: x.norm(-math.inf, d, k), np_norm(-math.inf)),
]
DIMS = [None, 0, -1, (0, 2), (2, 0, 1), ()]


@pytest.mark.parametrize("name,fn,np_fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_reduction_forward_and_grad(device, name, fn, np_fn, dim, keepdim):
    a = data(2, 3, 4)
    axis = None if dim == () else dim  # PyTorch: an empty dim tuple means every dim
    check_forward(lambda x: fn(x, dim, keepdim), lambda v: np_fn(v, axis=axis, keepdims=keepdim), [a], device)
    check_forward(lambda x: fn(x, dim, keepdim), lambda v: np_fn(v, axis=axis, keepdims=keepdim), [a.astype(np.float32)], device, rtol=1e-5)
    check_grad(lambda x: fn(x, dim, keepdim), [a], device)


@pytest.mark.parametrize("name,fn,np_fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_noncontiguous_and_reused_input(device, name, fn, np_fn):
    a = noncontiguous(data(4, 3, seed=1))
    x = tensor.as_tensor(a, device=device).requires_grad_()
    np.testing.assert_allclose(to_numpy(fn(x, 1, False)), np_fn(a, axis=1, keepdims=False), rtol=1e-10)
    assert gradcheck(lambda x: fn(x, 1, False), [x])
    assert gradcheck(lambda x: fn(x * x + x, 0, True) * x, [x])  # x reaches the result three ways


def test_sum_dtypes_like_torch(device):
    assert make(np.array([1, 2], dtype=np.int32), device).sum().dtype == tensor.int64
    assert make(np.array([True, True, False]), device).sum().item() == 2
    assert make(np.array([True]), device).sum().dtype == tensor.int64
    x = make(np.array([1, 2, 3]), device)
    assert x.sum(dtype=tensor.float32).dtype == tensor.float32
    y = make(np.ones(3, dtype=np.float32), device, requires_grad=True)
    s = y.sum(dtype=tensor.float64)
    assert s.dtype == tensor.float64
    s.backward()
    assert y.grad.dtype == tensor.float32
    assert tensor.sum(make(data(2, 3), device), dim=[0, 1]).shape == ()


def test_mean_of_integers_is_a_clear_error(device):
    with pytest.raises(DTypeError, match=r"call \.float\(\)"):
        make(np.array([1, 2]), device).mean()
    assert make(np.array([1, 2]), device).mean(dtype=tensor.float64).item() == 1.5


# --------------------------------------------------------------------------------------------- prod
@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_forward_and_grad(device, dim):
    a = data(3, 4) + 0.1
    check_forward(lambda x: x.prod(dim), lambda v: np.prod(v, axis=dim), [a], device)
    check_grad(lambda x: x.prod(dim), [a], device)
    check_grad(lambda x: x.prod(dim, keepdim=True) * x, [a], device)


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_grad_with_one_or_several_zeros(device, dim):
    torch = pytest.importorskip("torch")
    a = data(3, 4) + 0.1
    a[0, 1] = 0.0  # row 0: one zero; row 2: two zeros; column 1: two zeros
    a[2, 0] = a[2, 3] = 0.0
    check_grad(lambda x: x.prod(dim), [a], device)
    x, t = make(a, device, requires_grad=True), torch.tensor(a, requires_grad=True)
    x.prod(dim).sum().backward()
    (t.prod() if dim is None else t.prod(dim)).sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), t.grad.numpy(), rtol=1e-12)


def test_prod_of_integers_is_int64(device):
    x = make(np.array([2, 3, 4], dtype=np.int32), device)
    assert x.prod().dtype == tensor.int64 and x.prod().item() == 24


# --------------------------------------------------------------------------------------- max and min
@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_along_dim_return_values_and_indices(device, op, dim, keepdim):
    a = data(3, 4, 5)
    result = getattr(make(a, device), op)(dim, keepdim)
    values, indices = result  # a named tuple
    np.testing.assert_array_equal(to_numpy(result.values), getattr(np, op)(a, axis=dim, keepdims=keepdim))
    np.testing.assert_array_equal(to_numpy(result.indices), getattr(np, "arg" + op)(a, axis=dim, keepdims=keepdim))
    assert indices.dtype == tensor.int64 and type(result).__name__ == op
    check_grad(lambda x: getattr(x, op)(dim, keepdim).values, [a], device)
    check_grad(lambda x: getattr(x, op)(dim=dim, keepdim=keepdim)[0] * 2, [a], device)


def test_max_along_dim_gradient_goes_to_the_returned_index_on_ties(device):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    x = make(a, device, requires_grad=True)
    values, indices = x.max(dim=1)
    values.sum().backward()
    expected = np.zeros_like(a)
    expected[np.arange(2), to_numpy(indices)] = 1
    np.testing.assert_array_equal(to_numpy(x.grad), expected)


@pytest.mark.parametrize("op", ["max", "min", "amax", "amin"])
def test_whole_tensor_max_min_split_ties_evenly_like_torch(device, op):
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, 3.0, 3.0], [3.0, -1.0, -1.0]])
    x, t = make(a, device, requires_grad=True), torch.tensor(a, requires_grad=True)
    getattr(x, op)().backward()
    getattr(t, op)().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), t.grad.numpy())
    x.grad = None
    t.grad = None
    getattr(x, "amax" if "max" in op else "amin")(1).sum().backward()
    getattr(t, "amax" if "max" in op else "amin")(1).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), t.grad.numpy())


def test_max_min_forms(device):
    a, b = data(3, 4), data(3, 4, seed=1)
    x, y = make(a, device), make(b, device)
    assert x.max().shape == () and x.max().item() == a.max()
    assert tensor.min(x).item() == a.min()
    np.testing.assert_array_equal(to_numpy(x.max(y)), np.maximum(a, b))  # max(other) is maximum
    np.testing.assert_array_equal(to_numpy(tensor.min(x, y)), np.minimum(a, b))
    values, indices = make(np.array(2.5), device).max(dim=0)  # 0-d: the element and index 0
    assert values.item() == 2.5 and indices.item() == 0


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin(device, op, dim, keepdim):
    a = data(3, 4)
    result = getattr(make(a, device), op)(dim, keepdim)
    np.testing.assert_array_equal(to_numpy(result), getattr(np, op)(a, axis=dim, keepdims=keepdim))
    assert result.dtype == tensor.int64 and not result.requires_grad


# ------------------------------------------------------------------------------------------ var, std
def test_var_std_argument_forms(device):
    a = data(3, 4)
    x = make(a, device)
    np.testing.assert_allclose(to_numpy(x.var(0, True)), np.var(a, axis=0, ddof=1))  # var(dim, unbiased)
    np.testing.assert_allclose(to_numpy(x.var(False)), np.var(a))  # var(unbiased)
    np.testing.assert_allclose(to_numpy(x.std(unbiased=False)), np.std(a))
    np.testing.assert_allclose(to_numpy(tensor.std(x, 1, correction=2)), np.std(a, axis=1, ddof=2))
    with pytest.raises(ValueError, match="either unbiased= or correction="):
        x.var(0, unbiased=True, correction=1)
    with pytest.raises(DTypeError, match="var: needs a floating-point tensor"):
        make(np.array([1, 2]), device).var()


def test_std_gradient_is_zero_where_std_is_zero_like_torch(device):
    a = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]])
    x = make(a, device, requires_grad=True)
    x.std(1).sum().backward()
    grad = to_numpy(x.grad)
    np.testing.assert_array_equal(grad[0], 0)
    assert np.isfinite(grad).all()


# --------------------------------------------------------------------------------- logsumexp, norm
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log(0) for the all -inf row, as NumPy reports it
def test_logsumexp_is_stable_and_its_gradient_is_softmax(device):
    a = np.array([[1000.0, 1000.0, -1000.0], [-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0]])
    x = make(a, device, requires_grad=True)
    out = x.logsumexp(1)
    expected = [1000 + math.log(2), -np.inf, np_logsumexp(np.array([0.0, 1.0]))]
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-12)
    (out * make([1.0, 0.0, 1.0], device)).sum().backward()  # row 1 (all -inf) left out
    softmax = np.exp(a[2] - np_logsumexp(a[2]))
    np.testing.assert_allclose(to_numpy(x.grad)[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(to_numpy(x.grad)[2], softmax)
    assert make(np.array([1, 2]), device).logsumexp(0).dtype == tensor.float32  # integers give floats


def test_norm_gradient_at_zero_is_zero(device):
    x = make(np.zeros((2, 3)), device, requires_grad=True)
    (x.norm() + x.norm(dim=1).sum() + x.norm(3, dim=0).sum() + x.norm(0.5)).backward()
    np.testing.assert_array_equal(to_numpy(x.grad), np.zeros((2, 3)))


def test_norm_other_forms(device):
    a = data(3, 4) * (data(3, 4, seed=1) > 0)
    x = make(a, device)
    np.testing.assert_allclose(to_numpy(x.norm(0, dim=1)), np.sum(a != 0, axis=1))
    np.testing.assert_allclose(to_numpy(make(np.array([1, 2]), device).norm(dtype=tensor.float64)), math.sqrt(5))
    with pytest.raises(ValueError, match="'bad' is not supported; use 'fro', 'nuc' or a number"):
        x.norm("bad")
    with pytest.raises(DTypeError, match=r"call \.float\(\)"):
        make(np.array([3, 4]), device).norm()


@pytest.mark.parametrize("shape, kwargs", [
    ((3, 4), {}),
    ((2, 3, 4), {"dim": (-2, -1)}),
    ((2, 3, 4), {"dim": (0, 2), "keepdim": True}),
])
def test_nuclear_norm_and_its_gradient_like_torch(device, shape, kwargs):
    """p='nuc' is linalg.matrix_norm(x, 'nuc') over dim; its gradient U V^T as torch's."""
    pytest.importorskip("torch")
    compare_with_torch(lambda x: x.norm("nuc", **kwargs), lambda t: t.norm("nuc", **kwargs), [data(*shape)], device)
    compare_with_torch(lambda x: tensor.norm(x, p="nuc", **kwargs), lambda t: t.norm(p="nuc", **kwargs),
                       [data(*shape, seed=1)], device)


def test_nuclear_norm_refuses_what_torch_refuses(device):
    x = make(data(2, 3, 4), device)
    with pytest.raises(ShapeError, match=r"shape \(2, 3, 4\) and no dim; pass dim=\(-2, -1\)"):
        x.norm("nuc")
    with pytest.raises(ValueError, match=r"dim must be a pair of dims, got \(1,\)"):
        x.norm("nuc", dim=1)
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        make(data(4), device).norm("nuc")
    with pytest.raises(DTypeError, match="floating-point"):
        make(np.ones((2, 3), dtype=np.int64), device).norm("nuc")


# ------------------------------------------------------------------------------------------- cumsum
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), -2)])
def test_cumsum_forward_and_reversed_cumsum_gradient(device, shape, dim):
    a = data(*shape)
    check_forward(lambda x: x.cumsum(dim), lambda v: np.cumsum(v, axis=dim), [a], device)
    check_grad(lambda x: x.cumsum(dim) * x, [a], device)
    b = noncontiguous(data(4, 3))
    x = tensor.as_tensor(b, device=device).requires_grad_()
    assert gradcheck(lambda x: tensor.cumsum(x, dim=1), [x])


def test_cumsum_dtypes_and_0d(device):
    assert make(np.array([True, True]), device).cumsum(0).dtype == tensor.int64
    np.testing.assert_array_equal(to_numpy(make(np.array([1, 2, 3], dtype=np.int32), device).cumsum(0)), [1, 3, 6])
    x = make(np.array(3.0), device, requires_grad=True)
    y = x.cumsum(0)
    assert y.shape == () and y.item() == 3.0
    y.backward()
    assert x.grad.item() == 1.0


# --------------------------------------------------------------------------------------- empty dims
def test_reductions_over_an_empty_dim_give_the_identity(device):
    x = make(np.ones((0, 3)), device, requires_grad=True)
    np.testing.assert_array_equal(to_numpy(x.sum(0)), np.zeros(3))
    np.testing.assert_array_equal(to_numpy(x.prod(0)), np.ones(3))
    assert np.isnan(to_numpy(x.mean(0))).all()
    np.testing.assert_array_equal(to_numpy(x.logsumexp(0)), np.full(3, -np.inf))
    np.testing.assert_array_equal(to_numpy(x.norm(dim=0)), np.zeros(3))
    np.testing.assert_array_equal(to_numpy(x.cumsum(0)), np.ones((0, 3)))
    assert x.sum(1).shape == (0,)
    x.sum().backward()
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("call", [
    lambda x: x.amax(0), lambda x: x.amin(), lambda x: x.max(), lambda x: x.max(0), lambda x: x.argmax(0),
    lambda x: x.argmin(), lambda x: x.norm(math.inf, dim=0),
])
def test_reductions_without_identity_refuse_empty_dims(device, call):
    with pytest.raises(ShapeError, match="size 0|is empty"):
        call(make(np.ones((0, 3)), device))


def test_dim_errors_name_the_dim(device):
    x = make(data(2, 3), device)
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        x.sum(2)
    with pytest.raises(ValueError, match="repeats a dimension"):
        x.mean((0, -2))
    with pytest.raises(TypeError, match="use amax/amin for several dims"):
        x.max((0, 1))
