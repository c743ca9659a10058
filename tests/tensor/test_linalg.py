"""matmul, mm, bmm, dot, outer, einsum (tensor/ops/linalg.py): forward against NumPy, gradients by
finite differences over 1-D/2-D/batched/broadcast shapes, and errors naming both shapes."""
import numpy as np
import pytest

import tensor
from tensor.errors import ShapeError

from helpers import check_forward, check_grad, make, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def check(fn, np_fn, arrays, device):
    check_forward(fn, np_fn, arrays, device)
    check_grad(fn, arrays, device)


# ----------------------------------------------------------------------------------------- matmul

MATMUL_SHAPES = [
    ((3,), (3,)),  # dot
    ((3,), (3, 4)),  # vector @ matrix: a dim prepended, then removed
    ((2, 3), (3,)),  # matrix @ vector: a dim appended, then removed
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),  # a batch of rows @ one matrix (the Linear-layer case)
    ((2, 3), (5, 3, 4)),
    ((3,), (5, 3, 4)),
    ((5, 2, 3), (3,)),
    ((5, 2, 3), (5, 3, 4)),
    ((5, 1, 2, 3), (4, 3, 2)),  # batch dims broadcast: (5, 1) with (4,)
    ((1, 2, 3), (4, 3, 1)),
    ((2, 0), (0, 3)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul(device, sa, sb):
    arrays = [data(*sa), data(*sb, seed=1)]
    check(lambda a, b: a @ b, np.matmul, arrays, device)
    check_forward(tensor.matmul, np.matmul, arrays, device)


@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 4)), ((5, 2, 3), (3, 4)), ((5, 2, 3), (5, 3, 4))])
def test_matmul_noncontiguous(device, sa, sb):
    """Transposed views on either side (BLAS takes them as they are, or NumPy copies)."""
    ta, tb = sa[:-2] + sa[:-3:-1], sb[:-2] + sb[:-3:-1]
    check(
        lambda a, b: a.mT @ b.mT,
        lambda a, b: np.swapaxes(a, -1, -2) @ np.swapaxes(b, -1, -2),
        [data(*ta), data(*tb, seed=1)],
        device,
    )


def test_matmul_reused_input(device):
    check(lambda x: x @ x + x.mT @ x, lambda a: a @ a + a.T @ a, [data(3, 3)], device)
    check(lambda x: x @ x, lambda a: a @ a, [data(4)], device)


def test_matmul_promotes_float_dtypes(device):
    a = make(data(2, 3), device, dtype=tensor.float32, requires_grad=True)
    b = make(data(3, 2), device, dtype=tensor.float64, requires_grad=True)
    out = a @ b
    assert out.dtype == tensor.float64
    out.backward(tensor.ones_like(out))
    assert a.grad.dtype == tensor.float32 and b.grad.dtype == tensor.float64


def test_matmul_of_integers(device):
    a, b = np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2)
    out = make(a, device) @ make(b, device)
    assert out.dtype == tensor.int64 and to_numpy(out).tolist() == (a @ b).tolist()


# -------------------------------------------------------------------------------- mm bmm dot outer


def test_mm_bmm_dot_outer(device):
    check(tensor.mm, np.matmul, [data(2, 3), data(3, 4, seed=1)], device)
    check(lambda a, b: a.bmm(b), np.matmul, [data(2, 2, 3), data(2, 3, 4, seed=1)], device)
    check(lambda a, b: a.dot(b), np.dot, [data(3), data(3, seed=1)], device)
    check(lambda a, b: a.outer(b), np.outer, [data(3), data(4, seed=1)], device)
    check(lambda a: a.outer(a), lambda a: np.outer(a, a), [data(3)], device)


MATMUL_ERRORS = [
    (lambda m: m(32, 64) @ m(128, 10), r"matmul: \(32, 64\) @ \(128, 10\): inner sizes 64 and 128 differ"),
    (lambda m: m(3) @ m(4, 2), r"matmul: \(3,\) @ \(4, 2\): inner sizes 3 and 4 differ"),
    (lambda m: m(2, 3, 4) @ m(5, 4, 6), r"batch dims \(2,\) and \(5,\) do not broadcast"),
    (lambda m: m() @ m(3), r"at least 1 dimension"),
    (lambda m: tensor.mm(m(2, 2, 3), m(3, 4)), r"mm: expects two 2-D tensors, got shapes \(2, 2, 3\) and \(3, 4\)"),
    (lambda m: tensor.mm(m(2, 3), m(4, 4)), r"mm: \(2, 3\) @ \(4, 4\): inner sizes 3 and 4 differ"),
    (lambda m: tensor.bmm(m(2, 2, 3), m(3, 3, 4)), r"bmm: .* batch sizes 2 and 3 differ"),
    (lambda m: tensor.bmm(m(2, 3), m(3, 4)), r"bmm: expects two 3-D tensors"),
    (lambda m: tensor.dot(m(3), m(4)), r"dot: \(3,\) @ \(4,\): inner sizes 3 and 4 differ"),
    (lambda m: tensor.outer(m(3, 1), m(4)), r"outer: expects two 1-D tensors"),
]


@pytest.mark.parametrize("fn,message", MATMUL_ERRORS)
def test_matmul_errors_name_both_shapes(device, fn, message):
    with pytest.raises(ShapeError, match=message):
        fn(lambda *shape: make(data(*shape), device))


def test_matmul_needs_tensors(device):
    with pytest.raises(TypeError, match="matmul: both operands must be tensors, got Tensor and int"):
        make(data(3), device) @ 2


# ----------------------------------------------------------------------------------------- einsum

EINSUMS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),  # implicit output
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("i,j->ij", [(2,), (3,)]),
    ("i,i", [(3,), (3,)]),
    (",i->i", [(), (3,)]),
    ("ij,ij->i", [(2, 1), (2, 3)]),  # size-1 dims broadcast
    ("ii->i", [(3, 3)]),  # a diagonal
    ("ii", [(3, 3)]),  # the trace
    ("iij,jk->ik", [(3, 3, 2), (2, 4)]),
    ("...ij,...jk->...ik", [(5, 2, 3), (3, 4)]),
    ("...ij,...jk", [(4, 1, 2, 3), (5, 3, 2)]),  # ellipsis dims broadcast
    ("Ab,bC->AC", [(2, 3), (3, 4)]),
    ("i j , j k -> i k", [(2, 3), (3, 4)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUMS)
def test_einsum(device, equation, shapes):
    arrays = [data(*s, seed=i) for i, s in enumerate(shapes)]
    check(lambda *ts: tensor.einsum(equation, *ts), lambda *a: np.einsum(equation.replace(" ", ""), *a), arrays, device)


def test_einsum_operands_as_a_list_reused_and_noncontiguous(device):
    check(lambda x: tensor.einsum("ij,jk->ik", [x, x]), lambda a: a @ a, [data(3, 3)], device)
    check(lambda x, y: tensor.einsum("ij,jk", x.mT, y.mT), lambda a, b: a.T @ b.T, [data(3, 2), data(4, 3, seed=1)], device)


def test_einsum_sums_ellipsis_dims_missing_from_the_output_like_torch(device):
    check(lambda x: tensor.einsum("...ij->ij", x), lambda a: a.sum(0), [data(4, 2, 3)], device)
    check(
        lambda x, y: tensor.einsum("b...,b...->b", x, y),
        lambda a, b: (a * b).sum((1, 2)),
        [data(2, 3, 4), data(2, 3, 4, seed=1)],
        device,
    )


def test_einsum_promotes_dtypes(device):
    a = make(data(2, 3), device, dtype=tensor.float32)
    b = make(data(3), device, dtype=tensor.float64)
    assert tensor.einsum("ij,j->i", a, b).dtype == tensor.float64


EINSUM_ERRORS = [
    ("ij,jk->ik", [(2, 3)], r"einsum: equation 'ij,jk->ik' has 2 operand\(s\) but 1 tensor\(s\) were given"),
    ("ijk->i", [(2, 3)], r"operand 0 has 2 dims but 'ijk' in 'ijk->i' names 3"),
    ("ij1->i", [(2, 3, 4)], r"invalid subscript '1'"),
    ("ij->k", [(2, 3)], r"names one no operand has"),
    ("ij->ii", [(2, 3)], r"repeats a letter"),
    ("...ijk->i", [(2, 3)], r"operand 0 has 2 dims, fewer than the 3 letters"),
    ("ij,jk->ik", [(2, 3), (4, 5)], r"einsum: 'ij,jk->ik' does not fit operands of shapes \(2, 3\), \(4, 5\)"),
    ("ii->i", [(2, 3)], r"einsum: 'ii->i' does not fit operands of shapes \(2, 3\)"),
]


@pytest.mark.parametrize("equation,shapes,message", EINSUM_ERRORS)
def test_einsum_errors(device, equation, shapes, message):
    with pytest.raises((ShapeError, ValueError), match=message):
        tensor.einsum(equation, *[make(data(*s), device) for s in shapes])


def test_einsum_without_summation_is_a_view_sharing_the_version(device):
    x = make(data(2, 3), device)
    y = tensor.einsum("ij->ji", x)
    with tensor.no_grad():
        x.add_(1.0)
    np.testing.assert_allclose(to_numpy(y), data(2, 3).T + 1.0)
    assert y._version == x._version == 1
