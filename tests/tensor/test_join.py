"""cat, stack, hstack, vstack, split, chunk, unbind (tensor/ops/join.py): forward against NumPy,
gradients by finite differences, one multi-output node for the splits, and clear errors."""
import numpy as np
import pytest

import tensor
from tensor.errors import AutogradError, DeviceError, ShapeError

from helpers import check_forward, check_grad, make, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def check(fn, np_fn, arrays, device):
    check_forward(fn, np_fn, arrays, device)
    check_grad(fn, arrays, device)


# ------------------------------------------------------------------------------------ cat / stack


@pytest.mark.parametrize("dim,shapes", [(0, [(2, 3), (1, 3), (4, 3)]), (1, [(2, 1), (2, 3)]), (-1, [(2, 2, 1), (2, 2, 4)]), (0, [(3,)])])
def test_cat(device, dim, shapes):
    arrays = [data(*s, seed=i) for i, s in enumerate(shapes)]
    check(lambda *ts: tensor.cat(ts, dim), lambda *a: np.concatenate(a, dim), arrays, device)
    check(lambda *ts: tensor.concat(list(ts), dim=dim), lambda *a: np.concatenate(a, dim), arrays, device)


def test_cat_noncontiguous_and_reused(device):
    check(
        lambda x, y: tensor.cat([x.mT, y, x.mT], 1),
        lambda a, b: np.concatenate([a.T, b, a.T], 1),
        [data(2, 3), data(3, 4, seed=1)],
        device,
    )


def test_cat_promotes_and_sends_each_input_its_own_dtype(device):
    a = make(data(2), device, dtype=tensor.float32, requires_grad=True)
    b = make(data(3), device, dtype=tensor.float64, requires_grad=True)
    i = make(np.arange(2), device)
    out = tensor.cat([a, b, i])
    assert out.dtype == tensor.float64
    np.testing.assert_allclose(to_numpy(out), np.concatenate([data(2).astype(np.float32), data(3), [0, 1]]), rtol=1e-6)
    out.backward(tensor.ones_like(out))
    assert a.grad.dtype == tensor.float32 and b.grad.dtype == tensor.float64
    assert tensor.cat([i, make(np.ones(2), device, dtype=tensor.float32)]).dtype == tensor.float32


def test_cat_skips_legacy_empty_1d_tensors(device):
    out = tensor.cat([make(np.zeros(0), device), make(data(2, 3), device)])
    np.testing.assert_allclose(to_numpy(out), data(2, 3))


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(device, dim):
    arrays = [data(2, 3, seed=i) for i in range(3)]
    check(lambda *ts: tensor.stack(ts, dim), lambda *a: np.stack(a, dim), arrays, device)


def test_stack_of_0d_and_reused(device):
    check(lambda x, y: tensor.stack([x, y, x]), lambda a, b: np.stack([a, b, a]), [data(), data(seed=1)], device)
    check(lambda x: tensor.stack([x.t(), x.t()], 1), lambda a: np.stack([a.T, a.T], 1), [data(2, 3)], device)


@pytest.mark.parametrize("shapes", [[(3,), (2,)], [(2, 3), (2, 1)], [(), (2,)], [(2, 3, 1), (2, 1, 1)]])
def test_hstack(device, shapes):
    arrays = [data(*s, seed=i) for i, s in enumerate(shapes)]
    check(lambda *ts: tensor.hstack(ts), lambda *a: np.hstack(a), arrays, device)


@pytest.mark.parametrize("shapes", [[(3,), (3,)], [(2, 3), (3,)], [(1, 2, 2), (3, 2, 2)]])
def test_vstack(device, shapes):
    arrays = [data(*s, seed=i) for i, s in enumerate(shapes)]
    check(lambda *ts: tensor.vstack(ts), lambda *a: np.vstack(a), arrays, device)


# ------------------------------------------------------------------------- split / chunk / unbind


@pytest.mark.parametrize(
    "size_or_sections,dim,sizes",
    [(2, 0, [2, 2, 1]), (5, 0, [5]), (7, 0, [5]), ([1, 4], 0, [1, 4]), ((2, 0, 2), 1, [2, 0, 2]), (3, -1, [3, 1])],
)
def test_split(device, size_or_sections, dim, sizes):
    a = data(5, 4)
    pieces = make(a, device).split(size_or_sections, dim)
    assert isinstance(pieces, tuple) and [p.shape[dim] for p in pieces] == sizes
    expected = np.split(a, np.cumsum(sizes)[:-1], axis=dim)
    for piece, want in zip(pieces, expected):
        np.testing.assert_allclose(to_numpy(piece), want)
    check_grad(lambda x: tensor.split(x, size_or_sections, dim), [a], device)


@pytest.mark.parametrize("n,chunks,sizes", [(5, 3, [2, 2, 1]), (6, 4, [2, 2, 2]), (6, 6, [1] * 6), (2, 5, [1, 1]), (0, 3, [0, 0, 0])])
def test_chunk_sizes_follow_torch(device, n, chunks, sizes):
    pieces = make(data(2, n), device).chunk(chunks, 1)
    assert [p.shape for p in pieces] == [(2, s) for s in sizes]


def test_chunk_grad_and_noncontiguous(device):
    check_grad(lambda x: x.chunk(3, 1), [data(2, 5)], device)
    check_grad(lambda x: x.mT.chunk(2), [data(2, 5)], device)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unbind(device, dim):
    a = data(2, 3, 4)
    pieces = make(a, device).unbind(dim)
    assert len(pieces) == a.shape[dim]
    for i, piece in enumerate(pieces):
        np.testing.assert_allclose(to_numpy(piece), np.take(a, i, axis=dim))
    check_grad(lambda x: x.unbind(dim), [a], device)


def test_unbind_1d_gives_0d_tensors_and_iteration_uses_it(device):
    pieces = tensor.unbind(make(data(3), device))
    assert [p.shape for p in pieces] == [()] * 3
    assert [float(p) for p in make(data(3), device)] == pytest.approx(list(data(3)))


@pytest.mark.parametrize("op", [lambda x: x.split(2), lambda x: x.chunk(3), lambda x: x.unbind()])
def test_pieces_share_one_node_and_unused_pieces_get_zero_grad(device, op):
    x = make(data(5, 2), device, requires_grad=True)
    pieces = op(x)
    assert len({id(p.grad_fn) for p in pieces}) == 1
    assert [p._output_nr for p in pieces] == list(range(len(pieces)))
    check_grad(lambda t: op(t)[1], [data(5, 2)], device)
    pieces[1].backward(tensor.ones_like(pieces[1]))
    grad = to_numpy(x.grad)
    assert grad.sum() == pieces[1].numel() and (grad != 0).sum() == pieces[1].numel()


def test_pieces_are_views_sharing_the_version_counter(device):
    x = make(data(4, 2), device, requires_grad=True) * 1.0
    first, second = x.split(2)
    y = second * second  # saves a view of x
    x.mul_(2.0)
    assert to_numpy(first).tolist() == (2 * data(4, 2)[:2]).tolist()
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        y.backward(tensor.ones_like(y))


# ---------------------------------------------------------------------------------------- errors

ERRORS = [
    (lambda a, b: tensor.cat([a, b]), ShapeError, r"cat: tensor 1 has shape \(3, 2\) but tensor 0 has shape \(2, 3\)"),
    (lambda a, b: tensor.cat([a, b.reshape(6)]), ShapeError, r"tensor 1 has shape \(6,\)"),
    (lambda a, b: tensor.cat([a.reshape(6).split(1)[0].reshape(())]), ShapeError, r"zero-dimensional"),
    (lambda a, b: tensor.cat([a, a], dim=2), IndexError, r"cat: dim 2 is out of range"),
    (lambda a, b: tensor.cat([]), ValueError, r"non-empty"),
    (lambda a, b: tensor.cat(a), TypeError, r"single Tensor"),
    (lambda a, b: tensor.cat([a, 1.0]), TypeError, r"element 1 is a float"),
    (lambda a, b: tensor.stack([a, a, b]), ShapeError, r"stack: tensor 2 has shape \(3, 2\) but tensor 0 has shape \(2, 3\)"),
    (lambda a, b: tensor.stack([a, a], 3), IndexError, r"stack: dim 3"),
    (lambda a, b: a.split([1, 2]), ShapeError, r"sections \[1, 2\] must be non-negative and sum to the size 2 of dim 0"),
    (lambda a, b: a.split(0), ShapeError, r"split_size must be positive"),
    (lambda a, b: a.chunk(0), ShapeError, r"chunks must be positive"),
    (lambda a, b: a.reshape(6).split(1)[0].reshape(()).unbind(), ShapeError, r"zero-dimensional"),
]


@pytest.mark.parametrize("fn,error,message", ERRORS)
def test_errors_name_the_tensor_and_shapes(device, fn, error, message):
    with pytest.raises(error, match=message):
        fn(make(data(2, 3), device), make(data(3, 2), device))


@pytest.mark.parametrize("shapes, position", [
    ([(0,), ()], 1),  # a legacy empty 1-D tensor with a 0-d one: the 0-d one's position, not 0
    ([(0,), (0,), ()], 2),
    ([(0,), (), (2, 3)], 1),
    ([(2, 3), (0,), ()], 2),
    ([(3,), ()], 1),  # no empty tensor: named too (once an IndexError)
    ([(2, 3), (4,), ()], 2),  # before the shape misfit, as torch
])
def test_cat_names_the_zero_dimensional_tensor_like_torch(device, shapes, position):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=rf"zero-dimensional tensor \(at position {position}\)"):
        torch.cat([torch.zeros(shape) for shape in shapes])
    with pytest.raises(ShapeError, match=rf"cat: tensor {position} is zero-dimensional"):
        tensor.cat([make(np.zeros(shape), device) for shape in shapes])


def test_cat_names_the_tensor_on_another_device(device):
    if device == "cpu":
        pytest.skip("needs a second device")
    with pytest.raises(DeviceError, match="tensor 1 is on cpu but tensor 0 is on cuda"):
        tensor.cat([make(data(2), device), make(data(2), "cpu")])
