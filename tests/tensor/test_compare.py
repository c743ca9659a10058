"""Comparisons, logical ops and selection (tensor/ops/compare.py): forward against NumPy with broadcasting
and promotion, gradients of where/maximum/minimum/masked_fill by finite differences, ties like PyTorch."""
import numpy as np
import pytest

import tensor
from tensor.autograd import gradcheck
from tensor.errors import DTypeError

from helpers import check_forward, check_grad, make, noncontiguous, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def ints(*shape, seed=0):
    return np.random.default_rng(seed).integers(-3, 4, shape)


BROADCAST = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((4,), (2, 3, 1)), ((), (3,))]

COMPARISONS = [
    ("eq", lambda a, b: a == b, np.equal),
    ("ne", lambda a, b: a != b, np.not_equal),
    ("lt", lambda a, b: a < b, np.less),
    ("le", lambda a, b: a <= b, np.less_equal),
    ("gt", lambda a, b: a > b, np.greater),
    ("ge", lambda a, b: a >= b, np.greater_equal),
    ("eq_fn", tensor.eq, np.equal),
    ("lt_method", lambda a, b: a.lt(b), np.less),
    ("ge_fn", tensor.ge, np.greater_equal),
]


@pytest.mark.parametrize("name,fn,np_fn", COMPARISONS, ids=[c[0] for c in COMPARISONS])
@pytest.mark.parametrize("sa,sb", BROADCAST)
def test_comparisons_broadcast_to_bool(device, name, fn, np_fn, sa, sb):
    a, b = ints(*sa), ints(*sb, seed=1)  # small integers: plenty of equal pairs
    result = check_forward(fn, np_fn, [a, b], device)
    assert result.dtype == tensor.bool and not result.requires_grad
    check_forward(fn, np_fn, [a.astype(np.float32), b.astype(np.float64)], device)  # mixed dtypes


@pytest.mark.parametrize("name,fn,np_fn", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparisons_with_python_scalars(device, name, fn, np_fn):
    a = ints(3, 4)
    check_forward(lambda x: fn(x, 1), lambda v: np_fn(v, 1), [a], device)
    check_forward(lambda x: fn(x, 0.5), lambda v: np_fn(v, 0.5), [a], device)  # int tensor vs float: compared as floats
    if name in ("eq", "ne", "lt", "le", "gt", "ge"):  # reflected operators: 1 < x is x > 1
        check_forward(lambda x: fn(1, x), lambda v: np_fn(1, v), [a], device)


def test_comparing_with_a_grad_tensor_records_no_graph(device):
    x = make(data(3), device, requires_grad=True)
    mask = x > 0
    assert mask.grad_fn is None and not mask.requires_grad


def test_eq_with_none_is_false_like_torch(device):
    x = make(data(3), device)
    assert (x == None) is False  # noqa: E711 - exactly what is being tested
    assert (x != None) is True  # noqa: E711


def test_eq_method_rejects_non_operands_and_eq_operator_rejects_arrays(device):
    # Only the operator falls back to identity; torch's t.eq(None) and torch.ne(t, None) raise TypeError.
    # An array is no operand (as in `t + array`): `t == array` must say so, not answer False.
    x = make(data(3), device)
    for compare in (lambda: x.eq(None), lambda: tensor.ne(x, None), lambda: x.eq(np.zeros(3)),
                    lambda: x == np.zeros(3), lambda: x != np.zeros(3)):
        with pytest.raises(DTypeError, match="as a tensor operand"):
            compare()
    assert (x == "a") is False and (x == [1.0]) is False  # torch: False too


LOGICAL = [
    ("and", lambda a, b: a & b, np.logical_and),
    ("or", lambda a, b: a | b, np.logical_or),
    ("xor", lambda a, b: a ^ b, np.logical_xor),
    ("and_fn", tensor.logical_and, np.logical_and),
    ("or_method", lambda a, b: a.logical_or(b), np.logical_or),
    ("xor_fn", tensor.logical_xor, np.logical_xor),
]


@pytest.mark.parametrize("name,fn,np_fn", LOGICAL, ids=[c[0] for c in LOGICAL])
@pytest.mark.parametrize("sa,sb", BROADCAST[:3])
def test_logical_ops(device, name, fn, np_fn, sa, sb):
    a, b = ints(*sa) > 0, ints(*sb, seed=1) > 0
    assert check_forward(fn, np_fn, [a, b], device).dtype == tensor.bool
    if "fn" in name:  # nonzero numbers count as True
        check_forward(fn, np_fn, [ints(*sa), data(*sb)], device)


def test_logical_not_and_invert(device):
    a = ints(3, 4) > 0
    check_forward(lambda x: ~x, np.logical_not, [a], device)
    check_forward(tensor.logical_not, np.logical_not, [ints(3, 4)], device)


def test_isnan_isinf_isfinite(device):
    a = np.array([[0.0, np.nan, np.inf], [-np.inf, 1.5, -0.0]])
    for name in ("isnan", "isinf", "isfinite"):
        check_forward(getattr(tensor, name), getattr(np, name), [a], device)
        check_forward(lambda x: getattr(x, name)(), getattr(np, name), [a.astype(np.float16)], device)
    check_forward(tensor.isnan, np.isnan, [ints(4)], device)


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_any_all(device, dim, keepdim):
    a = ints(2, 3, 4) > 1
    axis = dim
    check_forward(lambda x: x.any(dim, keepdim), lambda v: np.any(v, axis=axis, keepdims=keepdim), [a], device)
    check_forward(lambda x: tensor.all(x, dim=dim, keepdim=keepdim), lambda v: np.all(v, axis=axis, keepdims=keepdim), [a], device)
    check_forward(lambda x: x.any(dim), lambda v: np.any(v, axis=axis), [data(2, 3, 4) * (a > 0)], device)
    assert make(a, device).all(dim).dtype == tensor.bool


def test_isclose_allclose_equal(device):
    a = np.array([1.0, 2.0, np.nan, 1e-9])
    b = np.array([1.0 + 1e-7, 2.1, np.nan, 0.0])
    x, y = make(a, device), make(b, device)
    np.testing.assert_array_equal(to_numpy(x.isclose(y)), np.isclose(a, b))
    np.testing.assert_array_equal(to_numpy(tensor.isclose(x, y, equal_nan=True, atol=0.2)), np.isclose(a, b, atol=0.2, equal_nan=True))
    assert tensor.allclose(make(a[:2], device), make(a[:2] + 1e-9, device)) is True
    assert x.allclose(y) is False
    assert make(a[:2], device).allclose(make(b[:2], device), atol=0.2) is True
    assert tensor.equal(make([1, 2], device), make([1, 2], device)) is True
    assert make([1, 2], device).equal(make([1, 3], device)) is False
    assert tensor.equal(make([1, 2], device), make([[1, 2]], device)) is False  # shapes differ


# ---------------------------------------------------------------------------------------------- where
@pytest.mark.parametrize("sc,sa,sb", [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (3, 4)), ((2, 1, 4), (3, 1), (4,)), ((4,), (3, 4), ())])
def test_where_broadcasts_and_differentiates_both_branches(device, sc, sa, sb):
    c = np.random.default_rng(5).random(sc) > 0.5
    a, b = data(*sa), data(*sb, seed=1)
    check_forward(tensor.where, np.where, [c, a, b], device)
    check_grad(lambda c, a, b: tensor.where(c, a, b), [c, a, b], device)
    check_grad(lambda c, a, b: tensor.where(c, a * a, a + b), [c, a, b], device)  # a reused in both branches


def test_where_with_scalars_and_promotion(device):
    c = np.array([True, False, True])
    a = data(3)
    x = make(a.astype(np.float32), device, requires_grad=True)
    y = tensor.where(make(c, device), x, 0.0)
    assert y.dtype == tensor.float32
    np.testing.assert_allclose(to_numpy(y), np.where(c, a.astype(np.float32), 0))
    y.sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), c.astype(np.float32))
    assert tensor.where(make(c, device), 1.0, 0.0).dtype == tensor.float32  # two scalars: the default dtype
    mixed = tensor.where(make(c, device), make([1, 2, 3], device), 0.5)  # int tensor, float scalar: float
    assert mixed.dtype == tensor.float32
    np.testing.assert_allclose(to_numpy(mixed), [1, 0.5, 3])
    both = tensor.where(make(c, device), make([1, 2, 3], device), make([0.5, 0.5, 0.5], device, dtype=tensor.float64))
    assert both.dtype == tensor.float64


def test_where_without_values_gives_indices(device):
    c = np.array([[True, False], [False, True], [True, True]])
    rows, cols = tensor.where(make(c, device))
    expected = np.nonzero(c)
    np.testing.assert_array_equal(to_numpy(rows), expected[0])
    np.testing.assert_array_equal(to_numpy(cols), expected[1])
    assert rows.dtype == tensor.int64


def test_where_without_values_takes_any_dtype_like_torch(device):
    torch = pytest.importorskip("torch")
    for c in (ints(3, 4), data(2, 3).round()):
        got = tensor.where(make(c, device))
        want = torch.where(torch.tensor(c))
        assert len(got) == len(want) == c.ndim
        for g, w in zip(got, want):
            assert g.dtype == tensor.int64
            np.testing.assert_array_equal(to_numpy(g), w.numpy())
    with pytest.raises(TypeError, match="condition must be a Tensor, got list"):
        tensor.where([0, 1])


def test_where_and_masked_fill_need_a_bool_mask(device):
    x = make(data(3), device)
    with pytest.raises(DTypeError, match="condition must be a bool tensor, got int64"):
        tensor.where(make([1, 0, 1], device), x, x)
    with pytest.raises(DTypeError, match="mask must be a bool tensor"):
        x.masked_fill(make([1, 0, 1], device), 0.0)
    with pytest.raises(TypeError, match="give both input and other"):
        tensor.where(x > 0, x)


# ---------------------------------------------------------------------------------- maximum, minimum
@pytest.mark.parametrize("op,np_fn", [("maximum", np.maximum), ("minimum", np.minimum)])
@pytest.mark.parametrize("sa,sb", BROADCAST)
def test_maximum_minimum_broadcast(device, op, np_fn, sa, sb):
    a, b = data(*sa), data(*sb, seed=1)
    check_forward(getattr(tensor, op), np_fn, [a, b], device)
    check_grad(getattr(tensor, op), [a, b], device)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_like_torch(device, op):
    torch = pytest.importorskip("torch")
    a = np.array([1.0, 2.0, 3.0, -1.0, np.nan])
    b = np.array([1.0, 3.0, 2.0, -1.0, 0.0])
    x, y = make(a, device, requires_grad=True), make(b, device, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (getattr(x, op)(y) * make(np.arange(1.0, 6.0), device)).sum().backward()
    (getattr(torch, op)(tx, ty) * torch.arange(1.0, 6.0, dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), tx.grad.numpy())
    np.testing.assert_array_equal(to_numpy(y.grad), ty.grad.numpy())
    assert to_numpy(x.grad)[0] == 0.5  # a tie: half to each side


def test_maximum_with_scalars_noncontiguous_and_reused_inputs(device):
    a = noncontiguous(data(4, 3))
    x = tensor.as_tensor(a, device=device).requires_grad_()
    np.testing.assert_allclose(to_numpy(x.maximum(make(0.25, device))), np.maximum(a, 0.25))
    assert gradcheck(lambda x: tensor.maximum(x, -x) + x, [x])  # |x| + x, x on both sides
    assert gradcheck(lambda x: tensor.minimum(x * 2, x * 3) * x, [x])
    ints_max = tensor.maximum(make([1, 2], device), tensor.tensor([1.5, 1.0], device=device))  # int, float32: float32
    assert ints_max.dtype == tensor.float32
    np.testing.assert_allclose(to_numpy(ints_max), [1.5, 2.0])


# ---------------------------------------------------------------------------------------- masked_fill
@pytest.mark.parametrize("sx,sm", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (3, 1)), ((4,), (3, 1))])
def test_masked_fill_forward_and_grad(device, sx, sm):
    m = np.random.default_rng(3).random(sm) > 0.5
    a = data(*sx)
    check_forward(lambda x, m: x.masked_fill(m, -1.5), lambda v, m: np.where(m, -1.5, v), [a, m], device)
    check_grad(lambda x, m: x.masked_fill(m, -1.5) * x, [a, m], device)


def test_masked_fill_with_a_tensor_value_differentiates_it(device):
    m = np.array([[True, False, True], [False, False, True]])
    a = data(2, 3)
    check_grad(lambda x, v, m: x.masked_fill(m, v), [a, np.array(0.7), m], device)
    x, v = make(a, device), make(np.array(0.7), device, requires_grad=True)
    (x.masked_fill(make(m, device), v) * 2).sum().backward()
    assert to_numpy(v.grad) == 2 * m.sum()
    with pytest.raises(ValueError, match="0-d tensor"):
        x.masked_fill(make(m, device), make([1.0, 2.0, 3.0], device))


def test_masked_fill_keeps_the_tensor_dtype_like_torch(device):
    m = make(np.array([True, False, True]), device)
    filled = make([1, 2, 3], device).masked_fill(m, 0.7)  # PyTorch casts the value: 0
    assert filled.dtype == tensor.int64
    np.testing.assert_array_equal(to_numpy(filled), [0, 2, 0])
    half = make(np.ones(3, dtype=np.float16), device).masked_fill(m, float("-inf"))
    assert half.dtype == tensor.float16 and np.isneginf(to_numpy(half)[0])


def test_masked_fill_noncontiguous(device):
    a = noncontiguous(data(4, 3))
    m = make(noncontiguous(np.random.default_rng(1).random((4, 3)) > 0.5), device)
    x = tensor.as_tensor(a, device=device).requires_grad_()
    np.testing.assert_allclose(to_numpy(x.masked_fill(m, 0.0)), np.where(to_numpy(m), 0.0, a))
    assert gradcheck(lambda x: x.masked_fill(m, 2.0) * x + x, [x])
