"""PyTorch parity ops (views.py, pointwise.py, inplace_math.py, cumprod, tensordot, new_*, creation extras):
forward against NumPy, gradients by finite differences in float64, and PyTorch on the same values."""
import numpy as np
import pytest

import tensor

from helpers import check_forward, check_grad, make, noncontiguous, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------------------ views and selection
def test_narrow_select_forward_and_grad(device):
    a = data(3, 5)
    check_forward(lambda x: x.narrow(1, 1, 3), lambda a: a[:, 1:4], [a], device)
    check_forward(lambda x: x.narrow(0, -2, 2), lambda a: a[1:], [a], device)
    check_forward(lambda x: x.select(1, -1), lambda a: a[:, -1], [a], device)
    check_grad(lambda x: x.narrow(1, 2, 2) * 3, [a], device)
    check_grad(lambda x: x.select(0, 1).exp(), [noncontiguous(a)], device)


def test_narrow_select_errors(device):
    x = make(data(3, 5), device)
    with pytest.raises(IndexError, match=r"narrow: start \(4\) \+ length \(2\) exceeds dim 1 of size 5"):
        x.narrow(1, 4, 2)
    with pytest.raises(IndexError, match="select: index 3 is out of range for dim 0 of size 3"):
        x.select(0, 3)


@pytest.mark.parametrize("offset, dim1, dim2", [(0, 0, 1), (1, 0, 1), (-1, 0, 1), (2, 1, 0), (0, -1, 0)])
def test_diagonal_forward_and_grad(device, offset, dim1, dim2):
    a = data(2, 3, 4)
    check_forward(lambda x: x.diagonal(offset, dim1, dim2), lambda a: np.diagonal(a, offset, dim1, dim2), [a], device)
    check_grad(lambda x: x.diagonal(offset, dim1, dim2) * 2, [a], device)


def test_diagonal_is_a_writable_view(device):
    x = tensor.zeros(3, 3, device=device)
    x.diagonal().fill_(1)
    np.testing.assert_array_equal(to_numpy(x), np.eye(3))
    base = make(data(3, 3), device, requires_grad=True)
    y = base * 1
    y.diagonal().mul_(2)  # through the view, recorded on y
    y.sum().backward()
    np.testing.assert_allclose(to_numpy(base.grad), np.ones((3, 3)) + np.eye(3))


def test_diag_and_trace(device):
    v, m = data(3), data(3, 4)
    for k in (0, 1, -2):
        check_forward(lambda x: x.diag(k), lambda a: np.diag(a, k), [v], device)
        check_forward(lambda x: tensor.diag(x, k), lambda a: np.diag(a, k), [m], device)
        check_grad(lambda x: x.diag(k), [v], device)
        check_grad(lambda x: x.diag(k), [m], device)
    check_forward(lambda x: x.trace(), np.trace, [m], device)
    check_grad(lambda x: x.trace(), [m], device)
    with pytest.raises(tensor.ShapeError, match=r"trace: needs a 2-D tensor, got shape \(3,\)"):
        make(v, device).trace()


def test_nonzero_and_argwhere(device):
    a = np.array([[0, 1, 0], [2, 0, 3]])
    x = make(a, device)
    np.testing.assert_array_equal(to_numpy(x.nonzero()), np.argwhere(a))
    np.testing.assert_array_equal(to_numpy(tensor.argwhere(x)), np.argwhere(a))
    for got, want in zip(x.nonzero(as_tuple=True), np.nonzero(a)):
        np.testing.assert_array_equal(to_numpy(got), want)
        assert got.dtype == tensor.int64
    assert tuple(make(np.array(5), device).nonzero().shape) == (1, 0)


def test_where_method(device):
    a, b = data(3, 4), data(4, seed=1)
    cond = a > 0
    x = make(a, device)
    np.testing.assert_allclose(to_numpy(x.where(make(cond, device), make(b, device))), np.where(cond, a, b))
    np.testing.assert_allclose(to_numpy(x.where(make(cond, device), 0.0)), np.where(cond, a, 0))
    check_grad(lambda x, y: x.where(make(cond, device), y), [a, b], device)


# ---------------------------------------------------------------------------------- broadcasting
def test_broadcast_to_and_broadcast_tensors(device):
    a, b = data(3, 1), data(4, seed=1)
    check_forward(lambda x: tensor.broadcast_to(x, (2, 3, 4)), lambda a: np.broadcast_to(a, (2, 3, 4)), [a], device)
    xs = tensor.broadcast_tensors(make(a, device), make(b, device))
    for got, want in zip(xs, np.broadcast_arrays(a, b)):
        np.testing.assert_allclose(to_numpy(got), want)
    check_grad(lambda x, y: sum(t.sin().sum() for t in tensor.broadcast_tensors(x, y)), [a, b], device)
    with pytest.raises(tensor.ShapeError, match=r"shapes \(3, 1\), \(3, 2\), \(4,\) do not broadcast"):
        tensor.broadcast_tensors(make(a, device), make(data(3, 2), device), make(b, device))


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(device, indexing):
    a, b, c = data(3), data(2, seed=1), data(4, seed=2)
    grids = tensor.meshgrid(make(a, device), make(b, device), make(c, device), indexing=indexing)
    for got, want in zip(grids, np.meshgrid(a, b, c, indexing=indexing)):
        np.testing.assert_allclose(to_numpy(got), want)
    check_grad(lambda x, y: sum((g * g).sum() for g in tensor.meshgrid(x, y, indexing=indexing)), [a, b], device)
    with pytest.raises(ValueError, match="indexing must be 'ij' or 'xy'"):
        tensor.meshgrid(make(a, device), indexing="yx")


def test_tensordot(device):
    a, b = data(2, 3, 4), data(3, 4, 5, seed=1)
    check_forward(lambda x, y: tensor.tensordot(x, y), lambda a, b: np.tensordot(a, b), [a, b], device, rtol=1e-10)
    check_forward(lambda x, y: tensor.tensordot(x, y, dims=([1], [0])), lambda a, b: np.tensordot(a, b, ([1], [0])),
                  [a, b], device)
    check_forward(lambda x, y: tensor.tensordot(x, y, 0), lambda a, b: np.tensordot(a, b, 0), [a, b], device)
    check_grad(lambda x, y: tensor.tensordot(x, y, dims=([2, 1], [1, 0])), [a, b], device)
    with pytest.raises(tensor.ShapeError, match="contracted dim 2 of a"):
        tensor.tensordot(make(a, device), make(b, device), dims=([2], [0]))


# ---------------------------------------------------------------------------------------- pointwise
def test_clamp_min_max(device):
    a = data(3, 4)
    check_forward(lambda x: x.clamp_min(0.2), lambda a: np.maximum(a, 0.2), [a], device)
    check_forward(lambda x: x.clamp_max(-0.1), lambda a: np.minimum(a, -0.1), [a], device)
    check_grad(lambda x: x.clamp_min(0.2), [a], device)
    check_grad(lambda x, hi: x.clamp_max(hi), [a, data(4, seed=3)], device)


def test_lerp_addcmul_addcdiv_grads(device):
    a, b, c = data(3, 4), data(4, seed=1), np.abs(data(3, 1, seed=2)) + 0.5
    check_forward(lambda x, y: x.lerp(y, 0.3), lambda a, b: a + 0.3 * (b - a), [a, b], device)
    check_grad(lambda x, y, w: x.lerp(y, w), [a, b, c], device)
    check_forward(lambda x, y, z: x.addcmul(y, z, value=2), lambda a, b, c: a + 2 * b * c, [a, b, c], device)
    check_grad(lambda x, y, z: x.addcmul(y, z, value=-0.5), [a, b, c], device)
    check_forward(lambda x, y, z: x.addcdiv(y, z, value=2), lambda a, b, c: a + 2 * b / c, [a, b, c], device)
    check_grad(lambda x, y, z: tensor.addcdiv(x, y, z), [a, b, c], device)
    ints = make(np.array([1, 2]), device)
    with pytest.raises(tensor.DTypeError, match="addcdiv: integer division"):
        ints.addcdiv(ints, ints)


def test_addmm(device):
    i, m1, m2 = data(4), data(3, 5, seed=1), data(5, 4, seed=2)
    check_forward(lambda x, a, b: x.addmm(a, b, beta=0.5, alpha=2), lambda x, a, b: 0.5 * x + 2 * a @ b,
                  [i, m1, m2], device)
    check_grad(lambda x, a, b: tensor.addmm(x, a, b, beta=0.5, alpha=2), [i, m1, m2], device)
    nan_input = make(np.full((3, 4), np.nan), device)
    np.testing.assert_allclose(to_numpy(nan_input.addmm(make(m1, device), make(m2, device), beta=0)), m1 @ m2)
    with pytest.raises(tensor.ShapeError, match="addmm: mat1 must be a 2-D tensor"):
        make(i, device).addmm(make(data(5), device), make(m2, device))


def test_nan_to_num_nansum_nanmean(device):
    a = np.array([[1.0, np.nan, -np.inf], [np.inf, 2.0, np.nan]])
    check_forward(lambda x: x.nan_to_num(), np.nan_to_num, [a], device)
    check_forward(lambda x: x.nan_to_num(1.0, 5.0, -5.0), lambda a: np.nan_to_num(a, nan=1, posinf=5, neginf=-5),
                  [a], device)
    b = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    check_forward(lambda x: x.nansum(), np.nansum, [b], device)
    check_forward(lambda x: x.nansum(1, keepdim=True), lambda a: np.nansum(a, 1, keepdims=True), [b], device)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(b, 1)
    with np.errstate(invalid="ignore"):  # the all-NaN row is 0 / 0 on NumPy, as torch gives NaN
        check_forward(lambda x: x.nanmean(1), lambda a: expected, [b], device)
    x = make(b, device, requires_grad=True)
    x.nansum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), ~np.isnan(b))
    y = make(a, device, requires_grad=True)
    y.nan_to_num().sum().backward()
    np.testing.assert_array_equal(to_numpy(y.grad), np.isfinite(a))


def test_parity_with_torch_on_tricky_ops(device):
    torch = pytest.importorskip("torch")
    a, b = data(4, 4), data(4, 4, seed=1)
    x, y = make(a, device), make(b, device)
    ta, tb = torch.tensor(a), torch.tensor(b)
    pairs = [
        (x.diag(1), ta.diag(1)), (x.diagonal(-1), ta.diagonal(-1)), (x.trace(), ta.trace()),
        (x.addcdiv(y, x.abs() + 1, value=0.5), ta.addcdiv(tb, ta.abs() + 1, value=0.5)),
        (x.lerp(y, 0.25), ta.lerp(tb, 0.25)), (tensor.tensordot(x, y, 1), torch.tensordot(ta, tb, 1)),
        (tensor.tril_indices(4, 3, -1), torch.tril_indices(4, 3, -1)),
        (tensor.triu_indices(3, 5, 1), torch.triu_indices(3, 5, 1)),
        (tensor.logspace(-1, 2, 5, base=2), torch.logspace(-1, 2, 5, base=2)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(to_numpy(ours), theirs.numpy(), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------ cumprod
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumprod_forward_and_grad(device, dim):
    a = data(3, 4)
    check_forward(lambda x: x.cumprod(dim), lambda a: np.cumprod(a, dim), [a], device)
    check_grad(lambda x: x.cumprod(dim), [a], device)


def test_cumprod_grad_with_zeros_matches_torch(device):
    torch = pytest.importorskip("torch")
    a = np.array([[2.0, 0.0, 3.0, 0.0, 5.0], [0.0, 1.5, -2.0, 4.0, 1.0], [1.0, 2.0, 3.0, 4.0, 0.0]])
    g = data(3, 5, seed=4)
    x = make(a, device, requires_grad=True)
    x.cumprod(1).backward(make(g, device))
    t = torch.tensor(a, requires_grad=True)
    t.cumprod(1).backward(torch.tensor(g))
    np.testing.assert_allclose(to_numpy(x.grad), t.grad.numpy(), rtol=1e-12)
    check_grad(lambda x: x.cumprod(1), [a], device)  # finite differences agree too: cumprod is smooth


def test_cumprod_integers_accumulate_in_int64(device):
    x = make(np.array([1, 2, 3], dtype=np.int32), device)
    assert x.cumprod(0).dtype == tensor.int64 and x.cumprod(0).tolist() == [1, 2, 6]


# --------------------------------------------------------------------------------------- in place
@pytest.mark.parametrize("name, np_fn", [
    ("abs_", np.abs), ("exp_", np.exp), ("log_", lambda a: np.log(np.abs(a))), ("sqrt_", lambda a: np.sqrt(np.abs(a))),
    ("relu_", lambda a: np.maximum(a, 0)), ("sigmoid_", lambda a: 1 / (1 + np.exp(-a))), ("tanh_", np.tanh),
])
def test_inplace_unary(device, name, np_fn):
    a = data(3, 4)
    positive = name in ("log_", "sqrt_")
    x = make(np.abs(a) if positive else a, device)
    out = getattr(x, name)()
    assert out is x and x._version == 1
    np.testing.assert_allclose(to_numpy(x), np_fn(a), rtol=1e-6)
    out_of_place = name[:-1]

    def fn(t):
        y = t * 1
        getattr(y, name)()
        return y

    check_grad(fn, [np.abs(a) + 0.1 if positive else a + 0.05], device)
    assert getattr(tensor.Tensor, out_of_place)


def test_inplace_unary_refuses_leaf_and_lossy_cast(device):
    leaf = make(data(3), device, requires_grad=True)
    with pytest.raises(tensor.AutogradError, match="exp_: a leaf tensor that requires grad"):
        leaf.exp_()
    with pytest.raises(tensor.DTypeError, match="exp_: result type float32 can't be cast to the tensor's dtype int64"):
        make(np.array([1, 2]), device).exp_()


def test_masked_fill_(device):
    a = data(3, 4)
    mask = a > 0.3
    x = make(a, device)
    x.masked_fill_(make(mask, device), -2.0)
    np.testing.assert_allclose(to_numpy(x), np.where(mask, -2.0, a))

    def fn(t, v):
        y = t * 1
        return y.masked_fill_(make(mask[0], device), v.sum())

    check_grad(fn, [a, data(2, seed=1)], device)
    with pytest.raises(tensor.DTypeError, match="masked_fill_: mask must be a bool tensor"):
        x.masked_fill_(make(a, device), 0)


def test_lerp_addcmul_addcdiv_in_place(device):
    torch = pytest.importorskip("torch")
    a, b, c = data(3, 4), data(4, seed=1), np.abs(data(3, 4, seed=2)) + 0.5
    for name, args, kwargs in (("lerp_", (b, 0.25), {}), ("addcmul_", (b, c), {"value": -2}),
                               ("addcdiv_", (b, c), {"value": 3})):
        ours = make(a, device)
        getattr(ours, name)(*[make(x, device) if isinstance(x, np.ndarray) else x for x in args], **kwargs)
        ref = torch.tensor(a)
        getattr(ref, name)(*[torch.tensor(x) if isinstance(x, np.ndarray) else x for x in args], **kwargs)
        np.testing.assert_allclose(to_numpy(ours), ref.numpy(), rtol=1e-12)
    ema = make(np.zeros(3), device)
    for _ in range(2):
        ema.lerp_(make(np.ones(3), device), 0.5)  # an exponential moving average, as torch scripts keep one
    assert to_numpy(ema).tolist() == [0.75] * 3
    w = make(np.ones(3), device, requires_grad=True)
    x = w * 2
    x.lerp_(make(np.zeros(3), device), 0.5)  # recorded: x is w again
    x.sum().backward()
    assert to_numpy(w.grad).tolist() == [1.0] * 3
    with pytest.raises(tensor.ShapeError, match=r"lerp_: result shape \(2, 3\) does not match"):
        make(np.zeros(3), device).lerp_(make(np.zeros((2, 3)), device), 0.5)


def test_uniform_normal_fill_reproducibly(device):
    tensor.manual_seed(3)
    x = tensor.empty(1000, device=device).uniform_(-2, 3)
    tensor.manual_seed(3)
    y = tensor.empty(1000, device=device).uniform_(-2, 3)
    assert x.equal(y) and -2 <= x.min().item() and x.max().item() < 3 and abs(x.mean().item() - 0.5) < 0.2
    z = tensor.empty(4000, dtype=tensor.float64, device=device).normal_(1.0, 2.0)
    assert z.dtype == tensor.float64 and abs(z.mean().item() - 1) < 0.15 and abs(z.std().item() - 2) < 0.15
    leaf = tensor.zeros(3, device=device, requires_grad=True)
    with pytest.raises(tensor.AutogradError, match="uniform_: a leaf tensor that requires grad"):
        leaf.uniform_()
    with tensor.no_grad():
        leaf.normal_()
    assert leaf.requires_grad and leaf.abs().sum().item() > 0
    with pytest.raises(tensor.DTypeError, match="uniform_: fills floating-point tensors"):
        tensor.zeros(3, dtype=tensor.int64, device=device).uniform_()


# ----------------------------------------------------------------------------- new_*, type_as, misc
def test_new_factories_and_type_as(device):
    x = make(data(2, 3), device, dtype=tensor.float64)
    for t in (x.new_zeros(2, 5), x.new_ones((4,)), x.new_empty(3), x.new_full((2,), 7), x.new_tensor([1, 2])):
        assert t.dtype == tensor.float64 and t.device == x.device and not t.requires_grad
    assert x.new_zeros((2, 5)).tolist() == [[0.0] * 5] * 2 and x.new_full((2,), 7).tolist() == [7.0, 7.0]
    assert x.new_ones(2, dtype=tensor.int32).dtype == tensor.int32
    assert x.new_zeros(2, requires_grad=True).requires_grad
    ints = make(np.array([1, 2]), device)
    assert ints.type_as(x).dtype == tensor.float64 and x.type_as(ints).dtype == tensor.int64


def test_legacy_new_constructor(device):
    """x.new(...) as torch's: sizes (uninitialised), data copied into x's dtype, or a same-dtype tensor."""
    x = make(np.array([0, 0]), device)
    for t in (x.new(2, 3), x.new(tensor.Size([2, 3])), x.new(), x.new([1, 2]), x.new(np.array([1.0, 2.0]))):
        assert t.dtype == tensor.int64 and t.device == x.device
    assert x.new(2, 3).shape == (2, 3) and x.new().shape == (0,) and x.new((2, 3)).tolist() == [2, 3]
    other = make(np.array([3, 4]), device)
    assert x.new(other).data is other.data and x.new([1.7, 2]).tolist() == [1, 2]
    with pytest.raises(tensor.DTypeError, match="new: expected a int64 tensor, got float32"):
        x.new(make(np.array([1.5], np.float32), device))


def test_softmax_methods_match_functional(device):
    a = data(3, 5)
    check_forward(lambda x: x.softmax(1), lambda a: np.exp(a) / np.exp(a).sum(1, keepdims=True), [a], device)
    check_forward(lambda x: x.log_softmax(-1), lambda a: a - np.log(np.exp(a).sum(1, keepdims=True)), [a], device)
    check_grad(lambda x: x.log_softmax(0), [a], device)


def test_creation_extras_and_dtype_info(device):
    np.testing.assert_allclose(to_numpy(tensor.logspace(0, 3, 4, device=device)), [1, 10, 100, 1000], rtol=1e-6)
    np.testing.assert_array_equal(to_numpy(tensor.triu_indices(3, 3, device=device)), np.stack(np.triu_indices(3)))
    np.testing.assert_array_equal(to_numpy(tensor.tril_indices(2, 4, 1)), np.stack(np.tril_indices(2, 1, 4)))
    assert tensor.numel(tensor.zeros(2, 3)) == 6
    assert tensor.finfo(tensor.float16).max == 65504 and tensor.finfo().eps == np.finfo(np.float32).eps
    assert tensor.iinfo(tensor.int8).min == -128
    with pytest.raises(tensor.DTypeError, match="finfo: int64 is not a floating-point dtype"):
        tensor.finfo(tensor.int64)


def test_inference_mode_is_no_grad():
    x = tensor.ones(2, requires_grad=True)
    with tensor.inference_mode():
        assert not (x * 2).requires_grad
    assert tensor.is_grad_enabled()

    @tensor.inference_mode
    def bare():
        return tensor.is_grad_enabled()

    @tensor.inference_mode()
    def called():
        return tensor.is_grad_enabled()

    assert bare() is False and called() is False and tensor.is_grad_enabled()
    with tensor.inference_mode(False):
        assert (x * 2).requires_grad
