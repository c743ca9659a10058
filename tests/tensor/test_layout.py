"""repeat, tile, flip, roll, tril, triu and pad (tensor/ops/layout.py): forward against NumPy (pad
against torch, whose modes and pad order NumPy does not share), gradients by finite differences."""
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


def swap_last(a):
    return np.swapaxes(a, -1, -2)


def check_noncontiguous(fn, np_fn, shape, device):
    """The same op on a transposed (non-contiguous) view of an input of `shape`."""
    transposed = shape[:-2] + (shape[-1], shape[-2])
    check(lambda x: fn(x.mT), lambda a: np_fn(swap_last(a)), [data(*transposed)], device)


# -------------------------------------------------------------------------------- repeat / tile


@pytest.mark.parametrize(
    "shape,sizes", [((2, 3), (2, 1)), ((2, 3), (1, 1)), ((3,), (2, 2)), ((2, 1, 3), (1, 2, 1, 2)), ((), (3,)), ((0, 2), (2, 3))]
)
def test_repeat(device, shape, sizes):
    check_forward(lambda x: x.repeat(*sizes), lambda a: np.tile(a, sizes), [data(*shape)], device)
    if np.prod(shape):
        check_grad(lambda x: x.repeat(sizes), [data(*shape)], device)


def test_repeat_noncontiguous_and_reused(device):
    check_noncontiguous(lambda x: x.repeat(2, 3), lambda a: np.tile(a, (2, 3)), (3, 2), device)
    check(lambda x: x.repeat(1, 2) * x.repeat(1, 2), lambda a: np.tile(a, (1, 2)) ** 2, [data(2, 3)], device)


@pytest.mark.parametrize("shape,dims", [((2, 3), (2,)), ((2, 3), (2, 2)), ((3,), (2, 2, 1))])
def test_tile(device, shape, dims):
    check(lambda x: x.tile(dims), lambda a: np.tile(a, dims), [data(*shape)], device)


# ----------------------------------------------------------------------------------- flip / roll


@pytest.mark.parametrize("dims", [(0,), (1,), (0, 2), (-1,), ()])
def test_flip(device, dims):
    check(lambda x: x.flip(dims), lambda a: np.flip(a, dims), [data(2, 3, 4)], device)
    check_noncontiguous(lambda x: x.flip(*dims), lambda a: np.flip(a, dims), (2, 3, 4), device)


def test_flip_and_permute_take_dims_by_keyword_as_torch(device):
    x = make(data(2, 3, 4), device)
    a = to_numpy(x)
    np.testing.assert_array_equal(to_numpy(tensor.flip(x, dims=[0, 2])), np.flip(a, (0, 2)))
    np.testing.assert_array_equal(to_numpy(x.flip(dims=(1,))), np.flip(a, 1))
    np.testing.assert_array_equal(to_numpy(tensor.permute(x, dims=(2, 0, 1))), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(to_numpy(x.permute(dims=[1, 2, 0])), a.transpose(1, 2, 0))
    with pytest.raises(TypeError, match=r"dims given both positionally \(1,\) and as dims=2"):
        x.flip(1, dims=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'dim'"):
        x.flip(dim=1)


def test_flip_copies(device):
    x = make(np.zeros(3), device)
    y = x.flip(0)
    with tensor.no_grad():
        x.add_(1.0)
    assert to_numpy(y).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("shifts,dims", [(1, 0), (-2, 1), ((1, 2), (0, -1)), (5, None), ((3,), None), (7, 2)])
def test_roll(device, shifts, dims):
    check(lambda x: x.roll(shifts, dims), lambda a: np.roll(a, shifts, dims), [data(2, 3, 4)], device)
    check_noncontiguous(lambda x: x.roll(shifts, dims), lambda a: np.roll(a, shifts, dims), (2, 3, 4), device)


# ---------------------------------------------------------------------------------- tril / triu


@pytest.mark.parametrize("op", ["tril", "triu"])
@pytest.mark.parametrize("diagonal", [-1, 0, 2])
@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 3)])
def test_tril_triu(device, op, diagonal, shape):
    np_fn = getattr(np, op)
    check(lambda x: getattr(x, op)(diagonal), lambda a: np_fn(a, diagonal), [data(*shape)], device)
    check_noncontiguous(lambda x: getattr(tensor, op)(x, diagonal=diagonal), lambda a: np_fn(a, diagonal), shape, device)


# ------------------------------------------------------------------------------------------- pad

PADS = [
    ("constant", (2, 3, 4), (1, 2)),
    ("constant", (2, 3, 4), (1, 2, 0, 3)),
    ("constant", (2, 3, 4), (1, 0, 2, 1, 1, 1)),
    ("constant", (2, 3, 4), (-1, 2, 1, -2)),
    ("constant", (2, 3, 4), (-1, -1)),
    ("reflect", (2, 3, 5), (2, 1)),
    ("reflect", (2, 4, 5), (1, 3, 2, 0)),
    ("reflect", (2, 4, 5), (-1, 2, 1, -1)),
    ("replicate", (2, 3, 4), (2, 5)),
    ("replicate", (2, 3, 3, 4), (1, 2, 3, 0)),
    ("replicate", (2, 3, 4), (-1, 2)),
    ("circular", (2, 3, 4), (2, 4)),
    ("circular", (2, 3, 4, 5), (1, 2, 3, 0)),
    ("circular", (2, 3, 4, 5), (-1, 2, 2, -1)),
]


@pytest.mark.parametrize("mode,shape,pad", PADS)
def test_pad_against_torch(device, mode, shape, pad):
    torch = pytest.importorskip("torch")

    def expected(a):
        return torch.nn.functional.pad(torch.from_numpy(a), pad, mode=mode).numpy()

    check(lambda x: tensor.pad(x, pad, mode=mode), expected, [data(*shape)], device)


def test_pad_constant_value_and_integers(device):
    torch = pytest.importorskip("torch")
    a = data(2, 3)
    expected = torch.nn.functional.pad(torch.from_numpy(a), (1, 2, 2, 0), value=-1.5).numpy()
    check(lambda x: tensor.pad(x, (1, 2, 2, 0), value=-1.5), lambda _: expected, [a], device)
    ints = make(np.arange(6).reshape(2, 3), device)
    out = tensor.pad(ints, (1, 1), value=7)
    assert out.dtype == tensor.int64
    assert to_numpy(out).tolist() == [[7, 0, 1, 2, 7], [7, 3, 4, 5, 7]]


def test_pad_noncontiguous_and_reused(device):
    check_noncontiguous(lambda x: tensor.pad(x, (1, 2, 1, 1), mode="reflect"), lambda a: np.pad(a, ((1, 1), (1, 2)), mode="reflect"), (3, 4), device)
    check(
        lambda x: tensor.pad(x, (1, 1), mode="replicate") * tensor.pad(x, (2, 0), mode="circular"),
        lambda a: np.pad(a, ((0, 0), (1, 1)), mode="edge") * np.pad(a, ((0, 0), (2, 0)), mode="wrap"),
        [data(2, 3)],
        device,
    )


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("shape, pad, empty_dim", [
    ((2, 0, 4), (1, 1), 1),  # an empty channel dim, even with an empty batch or a zero pad
    ((0, 0, 4), (0, 0), 1),
    ((0, 4), (1, 1), 0),  # no batch dim: dim 0 is the channel
    ((1, 2, 0, 4), (1, 1, 1, 1), 2),  # an empty padded dim
])
def test_reflect_and_replicate_pad_refuse_an_empty_non_batch_dim_like_torch(device, mode, shape, pad, empty_dim):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="non-zero dimensions"):
        torch.nn.functional.pad(torch.zeros(shape), pad, mode=mode)
    message = rf"pad: {mode} padding of shape \({', '.join(map(str, shape))},?\) .* dim {empty_dim} has size 0"
    with pytest.raises(ShapeError, match=message):
        tensor.pad(make(np.zeros(shape), device), pad, mode=mode)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_of_an_empty_batch_like_torch(device, mode):
    torch = pytest.importorskip("torch")
    for shape, pad in [((0, 3, 4), (1, 2)), ((0, 2, 3, 4), (1, 1, 2, 0))]:
        want = torch.nn.functional.pad(torch.zeros(shape), pad, mode=mode)
        assert tuple(tensor.pad(make(np.zeros(shape), device), pad, mode=mode).shape) == tuple(want.shape)
    if mode == "circular":  # it pads an empty channel too, as torch does
        assert tuple(tensor.pad(make(np.zeros((2, 0, 4)), device), (1, 1), mode="circular").shape) == (2, 0, 6)


# ---------------------------------------------------------------------------------------- errors

ERRORS = [
    (lambda x: x.repeat(2), r"repeat: 1 repeat counts \(2,\) for a tensor of 2 dims \(2, 3\)"),
    (lambda x: x.repeat(1, -1), r"must not be negative"),
    (lambda x: x.flip(0, 0), r"flip: dim \(0, 0\) repeats a dimension"),
    (lambda x: x.flip(2), r"flip: dim 2 is out of range"),
    (lambda x: x.roll((1, 2), 0), r"roll: shifts \(1, 2\) and dims \(0,\) must have the same length"),
    (lambda x: x.roll((1, 2)), r"without dims, shifts must be one int"),
    (lambda x: x.reshape(6).tril(), r"tril: expects a tensor with at least 2 dimensions, got shape \(6,\)"),
    (lambda x: tensor.pad(x, (1, 2, 3)), r"pad: \(1, 2, 3\) must hold a \(before, after\) pair"),
    (lambda x: tensor.pad(x, (1,) * 6), r"at most the 2 dims"),
    (lambda x: tensor.pad(x, (-2, -2)), r"would make dim 1 of shape \(2, 3\) negative \(-1\)"),
    (lambda x: tensor.pad(x, (3, 0), mode="reflect"), r"reflect padding 3 must be less than the size 3 of dim 1"),
    (lambda x: tensor.pad(x, (0, 4), mode="circular"), r"circular padding 4 must be at most the size 3"),
    (lambda x: tensor.pad(x, (1, 1), mode="edge"), r"unknown mode 'edge'"),
    (lambda x: tensor.pad(x, (1, 1), mode="reflect", value=2.0), r"takes no value"),
]


@pytest.mark.parametrize("fn,message", ERRORS)
def test_errors(device, fn, message):
    with pytest.raises((ShapeError, ValueError, IndexError), match=message):
        fn(make(data(2, 3), device))
