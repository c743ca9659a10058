"""Views (tensor/ops/shape.py): forward against NumPy, gradients by finite differences, and the
version counter they share with their base."""
import numpy as np
import pytest

import tensor
from tensor.errors import AutogradError, ShapeError

from helpers import check_forward, check_grad, make, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def check(fn, np_fn, arrays, device):
    check_forward(fn, np_fn, arrays, device)
    check_grad(fn, arrays, device)


def swap_last(a):
    return np.swapaxes(a, -1, -2)


# ------------------------------------------------------------------------------------- reshapes

RESHAPES = [
    ((2, 3), (3, 2), (3, 2)),
    ((2, 3), (-1,), (6,)),
    ((2, 3, 4), ((4, -1),), (4, 6)),
    ((2, 3), ([1, 6],), (1, 6)),
    ((), (1, 1), (1, 1)),
    ((4,), (2, 1, 2), (2, 1, 2)),
    ((0, 3), (3, -1), (3, 0)),
]


@pytest.mark.parametrize("op", ["reshape", "view"])
@pytest.mark.parametrize("shape,args,expected", RESHAPES)
def test_reshape_and_view(device, op, shape, args, expected):
    out = check_forward(lambda x: getattr(x, op)(*args), lambda a: a.reshape(expected), [data(*shape)], device)
    assert out.shape == expected
    if np.prod(shape):
        check_grad(lambda x: getattr(x, op)(*args), [data(*shape)], device)


def test_reshape_and_view_take_torchs_keywords(device):
    """MAE's patchify writes imgs.reshape(shape=(...)); torch.reshape(input, shape=) and view(size=) too."""
    check(lambda x: x.reshape(shape=(2, 1, 3, 2)), lambda a: a.reshape(2, 1, 3, 2), [data(2, 3, 2)], device)
    check(lambda x: tensor.reshape(x, shape=[-1]), lambda a: a.reshape(-1), [data(2, 3)], device)
    check(lambda x: x.view(size=(3, -1)), lambda a: a.reshape(3, -1), [data(2, 3)], device)
    with pytest.raises(TypeError, match=r"reshape: give the sizes either positionally or as shape=, not both"):
        make(data(2, 3), device).reshape(6, shape=(6,))
    with pytest.raises(TypeError, match=r"view: give the sizes either positionally or as size=, not both"):
        make(data(2, 3), device).view(6, size=(6,))


def test_reshape_of_a_noncontiguous_tensor_copies_and_is_no_view(device):
    check(lambda x: x.mT.reshape(-1), lambda a: swap_last(a).reshape(-1), [data(3, 4)], device)
    y = (make(data(3, 4), device, requires_grad=True) * 1.0).t().reshape(-1)
    y.add_(1.0)  # allowed: y owns its memory (changing a view in place is refused, see below)


@pytest.mark.parametrize(
    "shape,start,end,expected",
    [((2, 3, 4), 0, -1, (24,)), ((2, 3, 4), 1, 2, (2, 12)), ((2, 3, 4, 5), 1, -2, (2, 12, 5)), ((), 0, -1, (1,))],
)
def test_flatten(device, shape, start, end, expected):
    check(lambda x: x.flatten(start, end), lambda a: a.reshape(expected), [data(*shape)], device)


def test_flatten_of_one_dim_returns_the_tensor_itself(device):
    x = make(data(2, 3), device)
    assert x.flatten(1, 1) is x


@pytest.mark.parametrize(
    "shape,dim,sizes,expected", [((6, 4), 0, (2, 3), (2, 3, 4)), ((2, 12), -1, (3, -1, 2), (2, 3, 2, 2))]
)
def test_unflatten(device, shape, dim, sizes, expected):
    check(lambda x: x.unflatten(dim, sizes), lambda a: a.reshape(expected), [data(*shape)], device)


@pytest.mark.parametrize(
    "shape,dim,expected",
    [((1, 3, 1, 2), None, (3, 2)), ((1, 3, 1), 0, (3, 1)), ((1, 3, 1), (0, 2), (3,)), ((2, 3), 1, (2, 3)), ((), 0, ())],
)
def test_squeeze(device, shape, dim, expected):
    check(lambda x: x.squeeze(dim), lambda a: a.reshape(expected), [data(*shape)], device)


@pytest.mark.parametrize("shape,dim,expected", [((2, 3), 0, (1, 2, 3)), ((2, 3), -1, (2, 3, 1)), ((2, 3), 1, (2, 1, 3)), ((), 0, (1,))])
def test_unsqueeze(device, shape, dim, expected):
    check(lambda x: x.unsqueeze(dim), lambda a: a.reshape(expected), [data(*shape)], device)


def test_view_as_and_reshape_as(device):
    other = make(np.zeros((3, 2)), device)
    check(lambda x: x.view_as(other), lambda a: a.reshape(3, 2), [data(2, 3)], device)
    check(lambda x: x.reshape_as(other), lambda a: a.reshape(3, 2), [data(6)], device)


# --------------------------------------------------------------------------------- permutations

PERMUTATIONS = [
    ("transpose", lambda x: x.transpose(0, 2), lambda a: a.transpose(2, 1, 0)),
    ("transpose-neg", lambda x: x.transpose(-1, -2), lambda a: a.transpose(0, 2, 1)),
    ("swapaxes", lambda x: x.swapaxes(0, 1), lambda a: a.swapaxes(0, 1)),
    ("permute", lambda x: x.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    ("permute-tuple", lambda x: x.permute((1, -1, 0)), lambda a: a.transpose(1, 2, 0)),
    ("movedim", lambda x: x.movedim(0, -1), lambda a: np.moveaxis(a, 0, -1)),
    ("movedim-tuple", lambda x: x.movedim((0, 1), (2, 0)), lambda a: np.moveaxis(a, (0, 1), (2, 0))),
    ("T", lambda x: x.T, lambda a: a.T),
    ("mT", lambda x: x.mT, lambda a: swap_last(a)),
]


@pytest.mark.parametrize("name,fn,np_fn", PERMUTATIONS, ids=[p[0] for p in PERMUTATIONS])
def test_permutations(device, name, fn, np_fn):
    check(fn, np_fn, [data(2, 3, 4)], device)
    # A non-contiguous input: the same op on a transposed view.
    check(lambda x: fn(x.mT), lambda a: np_fn(swap_last(a)), [data(2, 4, 3)], device)


@pytest.mark.parametrize("shape", [(2, 3), (3,), ()])
def test_t(device, shape):
    check(lambda x: x.t(), lambda a: a.T, [data(*shape)], device)


def test_tensor_free_functions(device):
    x = make(data(2, 3), device)
    np.testing.assert_allclose(to_numpy(tensor.reshape(x, (3, 2))), data(2, 3).reshape(3, 2))
    np.testing.assert_allclose(to_numpy(tensor.transpose(x, 0, 1)), data(2, 3).T)
    np.testing.assert_allclose(to_numpy(tensor.flatten(x)), data(2, 3).ravel())


# ---------------------------------------------------------------------------------------- expand


@pytest.mark.parametrize(
    "shape,sizes,expected",
    [((3, 1), (3, 4), (3, 4)), ((3, 1), (2, -1, 4), (2, 3, 4)), ((1,), (5,), (5,)), ((), (2, 3), (2, 3)), ((2, 3), (2, 3), (2, 3))],
)
def test_expand(device, shape, sizes, expected):
    check(lambda x: x.expand(*sizes), lambda a: np.broadcast_to(a, expected), [data(*shape)], device)
    check(lambda x: x.expand(sizes), lambda a: np.broadcast_to(a, expected), [data(*shape)], device)


def test_expand_as_and_reused_input(device):
    other = make(np.zeros((4, 2, 3)), device)
    check(lambda x: x.expand_as(other), lambda a: np.broadcast_to(a, (4, 2, 3)), [data(2, 1)], device)
    # x reaches the output three ways: as itself, expanded and transposed.
    check(
        lambda x: x.expand(3, 3) * x + x.t(),
        lambda a: np.broadcast_to(a, (3, 3)) * a + a.T,
        [data(3, 1) * np.ones((1, 3))],
        device,
    )


# ------------------------------------------------------------------------- views share versions


def test_views_share_memory_with_their_base(device):
    x = make(np.zeros((2, 3)), device)
    views = [x.view(6), x.t(), x.unsqueeze(0), x.expand(4, 2, 3), x.permute(1, 0)]
    with tensor.no_grad():
        x.add_(1.0)
    for v in views:
        assert float(to_numpy(v).min()) == 1.0
        assert v._version == x._version == 1


def test_in_place_change_of_base_after_a_view_was_saved_raises(device):
    a = make(data(2, 3), device, requires_grad=True)
    x = a * 1.0
    y = x.view(6)
    z = y * y  # saves y
    x.add_(1.0)
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        z.backward(tensor.ones_like(z))


def test_in_place_change_of_base_is_seen_even_if_the_view_was_made_without_a_graph(device):
    x = make(data(2, 3), device)  # requires no grad: the view is made without recording a node
    w = make(data(3, 2), device, requires_grad=True)
    z = x.t() * w  # saves the view x.t()
    x.mul_(2.0)
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        z.backward(tensor.ones_like(z))


def test_in_place_change_of_a_view_of_a_leaf_that_requires_grad_is_refused(device):
    w = make(data(2, 3), device, requires_grad=True)
    with pytest.raises(AutogradError, match="view of a leaf"):
        w.reshape(6).add_(1.0)


# ---------------------------------------------------------------------------------------- errors

ERRORS = [
    (lambda x: x.reshape(4, 2), r"reshape: cannot reshape \(2, 3\) \(6 elements\) to \(4, 2\) \(8 elements\)"),
    (lambda x: x.view(4, -1), r"view: cannot reshape \(2, 3\) \(6 elements\) to \(4, -1\)"),
    (lambda x: x.reshape(-1, -1), r"at most one -1"),
    (lambda x: x.reshape(-2, 3), r"sizes must be >= 0"),
    (lambda x: x.view(tensor.float32), r"use .to\(dtype\)"),
    (lambda x: x.flatten(1, 0), r"start_dim 1 comes after end_dim 0"),
    (lambda x: x.unflatten(1, (2, 2)), r"sizes \(2, 2\) do not split dim 1 of size 3"),
    (lambda x: x.unsqueeze(3), r"unsqueeze: dim 3 is out of range"),
    (lambda x: x.squeeze(2), r"squeeze: dim 2 is out of range"),
    (lambda x: x.permute(0, 0), r"permute: dims \(0, 0\) are not a permutation"),
    (lambda x: x.permute(0), r"not a permutation"),
    (lambda x: x.transpose(0, 2), r"transpose: dim 2 is out of range"),
    (lambda x: x.reshape(1, 2, 3).t(), r"t: expects a tensor with at most 2 dimensions, got shape \(1, 2, 3\)"),
    (lambda x: x.reshape(6).mT, r"mT: expects a tensor with at least 2 dimensions"),
    (lambda x: x.movedim((0, 1), 0), r"different lengths"),
    (lambda x: x.expand(2, 4), r"expand: cannot expand \(2, 3\) to \(2, 4\)"),
    (lambda x: x.expand(3), r"fewer dims"),
    (lambda x: x.expand(-1, 2, 3), r"new leading dim"),
]


@pytest.mark.parametrize("fn,message", ERRORS)
def test_errors_name_the_shapes(device, fn, message):
    with pytest.raises((ShapeError, IndexError, TypeError), match=message):
        fn(make(data(2, 3), device))
