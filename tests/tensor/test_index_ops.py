"""index_add/copy/fill/reduce/put, scatter_reduce, take, put, masked_select/scatter, unfold and their
in-place forms: values and gradients against PyTorch and finite differences, repeated indices, errors,
and the version check that guards saved tensors."""
import numpy as np
import pytest

import tensor
from tensor.errors import AutogradError, DTypeError, ShapeError

from helpers import check_grad, compare_with_torch, make, to_numpy

rng = np.random.default_rng(3)
X = rng.standard_normal((3, 4))
SRC = rng.standard_normal((5, 4))
ROWS = np.array([0, 2, 0, 1, 0])  # repeats: accumulation must add them all up
COLS = np.array([3, -1, 0]) % 4
SCATTER_INDEX = rng.integers(0, 3, (4, 3))  # for scatter_reduce along dim 0: smaller than src off dim
REDUCES = ["sum", "prod", "mean", "amax", "amin"]


def ones_like(t):
    return tensor.ones(t.shape, dtype=t.dtype, device=t.device)


# ------------------------------------------------------------------------- out of place vs torch

# name -> (fn(x, src, *constants), arrays, constants); the methods are named as PyTorch's, so one fn runs on both
CASES = {
    "index_add": (lambda x, s, i: x.index_add(0, i, s, alpha=2.5), (X, SRC), (ROWS,)),
    "index_add negative dim": (lambda x, s, i: x.index_add(-1, i, s), (X, SRC[:3, :3]), (COLS,)),
    "index_copy": (lambda x, s, i: x.index_copy(1, i, s), (X, SRC[:3, :3]), (np.array([3, 0, 1]),)),
    "index_put accumulate": (lambda x, s, i: x.index_put((i,), s, accumulate=True), (X, SRC[0]), (ROWS,)),
    "index_put": (lambda x, s, i, j: x.index_put((i, j), s), (X, SRC[0, :2]), (np.array([1, 2]), np.array([-1, 0]))),
    "put": (lambda x, s, i: x.put(i, s), (X, SRC[:2, :2]), (np.array([[0, 11], [-2, 5]]),)),
    "put accumulate": (lambda x, s, i: x.put(i, s, accumulate=True), (X, SRC[0]), (np.array([3, 3, -1, 3]),)),
    "masked_scatter": (lambda x, s, m: x.masked_scatter(m, s), (X, SRC), (X > 0,)),
    "masked_scatter broadcast": (lambda x, s, m: x.masked_scatter(m, s), (X[0], SRC), (X > 0,)),
}


@pytest.mark.parametrize("name", CASES)
def test_against_torch(name, device):
    pytest.importorskip("torch")
    fn, arrays, constants = CASES[name]
    compare_with_torch(fn, fn, arrays, device, constants=constants)


@pytest.mark.parametrize("name", ["index_add", "index_copy", "index_put accumulate", "put accumulate",
                                  "masked_scatter"])
def test_gradients_by_finite_differences(name, device):
    fn, arrays, constants = CASES[name]
    check_grad(lambda x, s: fn(x, s, *[make(c, device) for c in constants]), arrays, device)


def test_single_argument_ops_against_torch(device):
    pytest.importorskip("torch")

    def take(x, i):
        return x.take(i)

    def masked_select(x, m):
        return x.masked_select(m)

    def unfold(x):
        return x.unfold(1, 3, 1)

    compare_with_torch(take, take, (X,), device, constants=(np.array([[0, -1], [5, 5]]),))
    for mask in (X > 0, X[0] > 0):  # the mask broadcasts against x
        compare_with_torch(masked_select, masked_select, (X,), device, constants=(mask,))
    compare_with_torch(unfold, unfold, (X,), device)


def test_index_fill(device):
    torch = pytest.importorskip("torch")
    out = make(X, device).index_fill(1, make(np.array([-1, 0, 3]), device), 7.0)
    np.testing.assert_array_equal(to_numpy(out), torch.tensor(X).index_fill(1, torch.tensor([-1, 0, 3]), 7.0).numpy())
    ints = make(np.arange(12).reshape(3, 4), device).index_fill(0, make(np.array([1]), device), 2.7)
    assert ints.dtype == tensor.int64 and to_numpy(ints)[1].tolist() == [2] * 4  # as PyTorch: cast to the dtype
    # a 0-d tensor value gets the gradient of every filled element, a repeated index counted once
    compare_with_torch(lambda x, v, i: x.index_fill(1, i, v), lambda x, v, i: x.index_fill(1, i, v),
                       (X, np.array(0.5)), device, constants=(np.array([2, 2, 0]),))


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(reduce, include_self, device):
    pytest.importorskip("torch")

    def fn(x, s, i):
        return x.scatter_reduce(0, i, s, reduce, include_self=include_self)

    # (PyTorch's backward fails for an index smaller than src, so it sees src cut to the index's shape)
    compare_with_torch(fn, fn, (X, SRC[:4, :3]), device, constants=(SCATTER_INDEX,))
    check_grad(lambda x, s: fn(x, s, make(SCATTER_INDEX, device)), (X, SRC), device)


@pytest.mark.filterwarnings("ignore:index_reduce\\(\\) is in beta")
@pytest.mark.parametrize("reduce", REDUCES[1:])
@pytest.mark.parametrize("include_self", [True, False])
def test_index_reduce(reduce, include_self, device):
    pytest.importorskip("torch")

    def fn(x, s, i):
        return x.index_reduce(0, i, s, reduce, include_self=include_self)

    compare_with_torch(fn, fn, (X, SRC), device, constants=(ROWS,))
    check_grad(lambda x, s: fn(x, s, make(ROWS, device)), (X, SRC), device)


def test_prod_gradient_with_zero_factors(device):
    x = X.copy()
    x[0, 0] = 0.0
    src = SRC.copy()
    src[0, 1] = 0.0  # a single zero at position (0, 1)
    src[2, 2] = src[4, 2] = 0.0  # two zeros at (0, 2): every factor there has derivative 0
    for include_self in (True, False):
        check_grad(lambda a, s: a.index_reduce(0, make(ROWS, device), s, "prod", include_self=include_self),
                   (x, src), device)


def test_amax_gradient_splits_ties_and_ignores_an_excluded_self(device):
    x = make(np.array([3.0, 1.0]), device, requires_grad=True)
    src = make(np.array([3.0, 3.0, 2.0]), device, requires_grad=True)
    index = make(np.array([0, 0, 1]), device)
    x.scatter_reduce(0, index, src, "amax").backward(ones_like(x))
    np.testing.assert_allclose(to_numpy(x.grad), [1 / 3, 0.0])  # x[0] and src[0], src[1] tie at 3
    np.testing.assert_allclose(to_numpy(src.grad), [1 / 3, 1 / 3, 1.0])
    # include_self=False: x[0] equals the result but took no part, so src's winners share all of it
    src2 = make(np.array([3.0, 1.0, 2.0]), device)
    check_grad(lambda a, s: a.scatter_reduce(0, index, s, "amax", include_self=False),
               (np.array([3.0, 1.0]), to_numpy(src2)), device)


def test_integer_reductions_round_down(device):
    x = make(np.array([-5, 4]), device)
    out = x.scatter_reduce(0, make(np.array([0, 1]), device), make(np.array([0, 1]), device), "mean")
    assert to_numpy(out).tolist() == [-3, 2]  # floor(-5 / 2), floor(5 / 2), as PyTorch
    out = x.scatter_reduce(0, make(np.array([1]), device), make(np.array([9]), device), "amin", include_self=False)
    assert to_numpy(out).tolist() == [-5, 9]


def test_repeated_indices_accumulate(device):
    x = make(np.zeros(3), device)
    twice = make(np.array([1, 1]), device)
    ones = make(np.ones(2), device)
    assert to_numpy(x.index_add(0, twice, ones)).tolist() == [0, 2, 0]
    assert to_numpy(x.index_put((twice,), ones, accumulate=True)).tolist() == [0, 2, 0]
    assert to_numpy(x.put(twice, ones, accumulate=True)).tolist() == [0, 2, 0]
    assert to_numpy(x.scatter_reduce(0, twice, ones, "sum")).tolist() == [0, 2, 0]
    assert to_numpy(x).tolist() == [0, 0, 0]  # out of place


def test_zero_dim_tensors(device):
    x = make(np.array(2.0), device)
    zero = make(np.array([0]), device)
    assert to_numpy(x.index_add(0, zero, make(np.array(3.0), device))).item() == 5.0
    assert to_numpy(x.index_fill(0, zero, 7.0)).shape == ()
    assert to_numpy(x.take(make(np.array([0, 0]), device))).tolist() == [2.0, 2.0]
    assert to_numpy(x.unfold(0, 1, 1)).tolist() == [2.0]


# ----------------------------------------------------------------------------------------- unfold


@pytest.mark.parametrize("dim, size, step", [(1, 2, 1), (1, 2, 3), (0, 3, 1), (-1, 4, 2), (1, 0, 1)])
def test_unfold_layout_and_gradient(dim, size, step, device):
    torch = pytest.importorskip("torch")
    out = make(X, device).unfold(dim, size, step)
    np.testing.assert_array_equal(to_numpy(out), torch.tensor(X).unfold(dim, size, step).numpy())
    if size:
        check_grad(lambda x: x.unfold(dim, size, step), (X,), device)


def test_unfold_is_a_view(device):
    x = make(X.copy(), device)
    windows = x.unfold(1, 2, 2)
    windows[0, 1, 0] = 100.0  # x[0, 2]
    assert to_numpy(x)[0, 2] == 100.0 and x._version == 1


def test_unfold_second_order(device):
    x = make(X, device, requires_grad=True)
    (g,) = tensor.autograd.grad((x.unfold(1, 3, 1) ** 2).sum(), x, create_graph=True)
    (gg,) = tensor.autograd.grad(g.sum(), x)
    counts = np.array([1, 2, 2, 1.0])  # how many windows hold each column
    np.testing.assert_allclose(to_numpy(gg), np.broadcast_to(2 * counts, X.shape))


# ------------------------------------------------------------------------------------- as_strided


@pytest.mark.parametrize("make_x, size, stride, offset", [
    (lambda T, d: T.tensor(X, device=d), (4, 3), (2, 1), None),  # overlapping sliding windows
    (lambda T, d: T.tensor(X, device=d), (2, 2), (1, 4), 1),
    (lambda T, d: T.tensor(X, device=d).t(), (3,), (5,), None),  # strides count in the storage, not the (transposed) view
    (lambda T, d: T.tensor(X, device=d)[1:], (3, 2), (1, 3), 6),  # a sliced tensor: offsets count from the storage start
    (lambda T, d: T.tensor(X[0], device=d).expand(3, 4), (2, 4), (0, 1), None),  # an input whose elements alias
])
def test_as_strided_matches_torch(make_x, size, stride, offset, device):
    torch = pytest.importorskip("torch")
    weights = rng.standard_normal(size)
    results = []
    for T in (torch, tensor):
        x = make_x(T, "cpu" if T is torch else device).requires_grad_()  # made there: .to() would copy the storage
        out = x.as_strided(size, stride) if offset is None else T.as_strided(x, size, stride, offset)
        (out * T.tensor(weights).to(out.device)).sum().backward()
        results.append((to_numpy(out.detach()), to_numpy(x.grad)))
    (want, want_grad), (got, got_grad) = results
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-12)


def test_as_strided_is_a_view_and_checks_bounds(device):
    x = make(np.zeros(6), device)
    x.as_strided((2,), (3,)).fill_(1.0)
    assert to_numpy(x).tolist() == [1, 0, 0, 1, 0, 0] and x._version == 1
    check_grad(lambda x: x.as_strided((3, 4), (2, 1), 1), (X,), device)
    with pytest.raises(ShapeError, match=r"need 13 elements from this tensor's start, but its storage holds 12"):
        make(X, device).as_strided((4, 4), (3, 1))
    with pytest.raises(ValueError, match="storage_offset 0 lies before this tensor's own first element"):
        make(X, device)[1:].as_strided((2,), (1,), 0)


# ------------------------------------------------------------------------------------------ errors


def test_errors(device):
    x = make(X, device)
    index = make(np.array([0, 3]), device)
    with pytest.raises(IndexError, match="index 3 is out of range for dim 0 with size 3"):
        x.index_add(0, index, make(SRC[:2], device))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        x.index_copy(0, make(np.array([-1]), device), make(SRC[:1], device))
    with pytest.raises(IndexError, match="index -13 is out of range for dim 0 with size 12"):
        x.take(make(np.array([-13]), device))
    with pytest.raises(DTypeError, match="index must be int64, got int32"):
        x.index_copy(0, make(np.array([0], np.int32), device), make(SRC[:1], device))
    with pytest.raises(DTypeError, match="int32 or int64"):
        x.index_add(0, make(np.array([0], np.int16), device), make(SRC[:1], device))
    with pytest.raises(DTypeError, match="integer tensor"):
        x.take(make(np.array([0.0]), device))
    with pytest.raises(ShapeError, match=r"source of shape \(2, 3\) must have shape \(2, 4\)"):
        x.index_add(0, make(np.array([0, 1]), device), make(SRC[:2, :3], device))
    with pytest.raises(ShapeError, match="must be 0-d or 1-D"):
        x.index_fill(0, make(np.array([[0]]), device), 1.0)
    with pytest.raises(DTypeError, match="source dtype float32 differs"):
        x.index_add(0, make(np.array([0]), device), make(SRC[:1], device, dtype=tensor.float32))
    with pytest.raises(DTypeError, match="mask must be a bool tensor"):
        x.masked_select(make(np.ones((3, 4), np.int64), device))
    with pytest.raises(ShapeError, match="source has 2 elements but the mask selects"):
        x.masked_scatter(make(np.ones((3, 4), bool), device), make(np.ones(2), device))
    with pytest.raises(ShapeError, match="source has 3 elements but index has 2"):
        x.put(make(np.array([0, 1]), device), make(np.ones(3), device))
    with pytest.raises(TypeError, match="tuple of tensors"):
        x.index_put(make(np.array([0]), device), make(np.ones(4), device))


def test_reduce_and_shape_errors(device):
    x = make(X, device)
    with pytest.raises(ValueError, match="reduce must be one of 'prod', 'mean', 'amax', 'amin', got 'sum'"):
        x.index_reduce(0, make(np.array([0]), device), make(SRC[:1], device), "sum")
    with pytest.raises(ValueError, match="got 'max'"):
        x.scatter_reduce(0, make(SCATTER_INDEX, device), make(SRC, device), "max")
    with pytest.raises(ShapeError, match=r"no larger than src \(2, 4\)"):
        x.scatter_reduce(0, make(SCATTER_INDEX, device), make(SRC[:2], device), "sum")
    with pytest.raises(ShapeError, match="same number of dims"):
        x.scatter_reduce(0, make(np.array([0]), device), make(SRC, device), "sum")
    with pytest.raises(ShapeError, match="size 5 must be in 0..4"):
        x.unfold(1, 5, 1)
    with pytest.raises(ValueError, match="step is 0"):
        x.unfold(1, 2, 0)
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        x.index_fill(2, make(np.array([0]), device), 1.0)
    with pytest.raises(ShapeError, match="all dims equal"):
        make(np.zeros((2, 3, 2)), device).fill_diagonal_(1.0)
    with pytest.raises(ShapeError, match="at least 2 dims"):
        make(np.zeros(3), device).fill_diagonal_(1.0)


def test_a_failed_in_place_op_leaves_the_tensor_unchanged(device):
    x = make(X.copy(), device)
    with pytest.raises(IndexError):
        x.index_add_(0, make(np.array([0, 9]), device), make(SRC[:2], device))
    np.testing.assert_array_equal(to_numpy(x), X)
    assert x._version == 0


# ------------------------------------------------------------------------------------------ in place

# name -> (in-place call, the out-of-place equivalent); both take (x, src) tensors and the device
IN_PLACE = {
    "scatter_": (lambda x, s, d: x.scatter_(0, make(SCATTER_INDEX[:1], d), s),
                 lambda x, s, d: x.scatter(0, make(SCATTER_INDEX[:1], d), s)),
    "scatter_add_": (lambda x, s, d: x.scatter_add_(0, make(SCATTER_INDEX, d), s),
                     lambda x, s, d: x.scatter_add(0, make(SCATTER_INDEX, d), s)),
    "scatter_reduce_": (lambda x, s, d: x.scatter_reduce_(0, make(SCATTER_INDEX, d), s, "amax", include_self=False),
                        lambda x, s, d: x.scatter_reduce(0, make(SCATTER_INDEX, d), s, "amax", include_self=False)),
    "index_add_": (lambda x, s, d: x.index_add_(0, make(ROWS, d), s, alpha=-1),
                   lambda x, s, d: x.index_add(0, make(ROWS, d), s, alpha=-1)),
    "index_copy_": (lambda x, s, d: x.index_copy_(0, make(ROWS[1:4], d), s[:3]),
                    lambda x, s, d: x.index_copy(0, make(ROWS[1:4], d), s[:3])),
    "index_fill_": (lambda x, s, d: x.index_fill_(1, make(COLS, d), s[0, 0]),
                    lambda x, s, d: x.index_fill(1, make(COLS, d), s[0, 0])),
    "index_reduce_": (lambda x, s, d: x.index_reduce_(0, make(ROWS, d), s, "mean"),
                      lambda x, s, d: x.index_reduce(0, make(ROWS, d), s, "mean")),
    "index_put_": (lambda x, s, d: x.index_put_((make(ROWS, d),), s[0], accumulate=True),
                   lambda x, s, d: x.index_put((make(ROWS, d),), s[0], accumulate=True)),
    "put_": (lambda x, s, d: x.put_(make(np.array([1, -1]), d), s[0, :2]),
             lambda x, s, d: x.put(make(np.array([1, -1]), d), s[0, :2])),
    "masked_scatter_": (lambda x, s, d: x.masked_scatter_(make(X > 0, d), s),
                        lambda x, s, d: x.masked_scatter(make(X > 0, d), s)),
    "tril_": (lambda x, s, d: x.tril_(1), lambda x, s, d: x.tril(1)),
    "triu_": (lambda x, s, d: x.triu_(-1), lambda x, s, d: x.triu(-1)),
    "fill_diagonal_": (lambda x, s, d: x.fill_diagonal_(s[0, 0]),
                       lambda x, s, d: x.masked_fill(make(np.eye(3, 4, dtype=bool), d), s[0, 0])),
}


@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_values_without_grad(name, device):
    in_place, out_of_place = IN_PLACE[name]
    x, src = make(X.copy(), device), make(SRC, device)
    expected = to_numpy(out_of_place(x, src, device))
    assert in_place(x, src, device) is x
    np.testing.assert_allclose(to_numpy(x), expected)
    assert x._version == 1


@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_gradients_match_out_of_place(name, device):
    in_place, out_of_place = IN_PLACE[name]

    def start(x, s):  # a non-leaf, so that its in-place change is recorded, depending on src too
        return x * 1.0 + 0.5 * s[:3]

    def recorded(x, s):
        y = start(x, s)
        in_place(y, s, device)
        return y

    check_grad(recorded, (X, SRC), device)
    xs = [make(X, device, requires_grad=True), make(SRC, device, requires_grad=True)]
    ys = [make(X, device, requires_grad=True), make(SRC, device, requires_grad=True)]
    recorded(*xs).backward(make(X, device))
    out_of_place(start(*ys), ys[1], device).backward(make(X, device))
    for a, b in zip(xs, ys):
        np.testing.assert_allclose(to_numpy(a.grad), to_numpy(b.grad))


@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_on_a_saved_tensor_is_caught(name, device):
    in_place, _ = IN_PLACE[name]
    x = make(X, device, requires_grad=True)
    y = x + 0.0
    z = y * y  # saves y
    in_place(y, make(SRC, device), device)
    with pytest.raises(AutogradError, match=r"modified by an in-place operation \(version 1, expected 0\)"):
        z.backward(ones_like(z))


def test_in_place_on_a_leaf_that_requires_grad_is_refused(device):
    x = make(X, device, requires_grad=True)
    with pytest.raises(AutogradError, match="index_add_: a leaf tensor that requires grad"):
        x.index_add_(0, make(ROWS, device), make(SRC, device))
    with tensor.no_grad():  # the optimizer path
        x.index_fill_(0, make(np.array([0]), device), 0.0)
    assert to_numpy(x)[0].tolist() == [0.0] * 4


def test_in_place_through_a_view_reaches_the_base(device):
    w = make(X, device, requires_grad=True)
    base = w * 2.0
    row = base[1]
    row.index_add_(0, make(np.array([0, 0]), device), make(np.array([1.0, 2.0]), device))
    expected = 2 * X
    expected[1, 0] += 3.0
    np.testing.assert_allclose(to_numpy(base), expected)
    base.sum().backward()
    np.testing.assert_allclose(to_numpy(w.grad), np.full(X.shape, 2.0))


def test_fill_diagonal_layouts(device):
    torch = pytest.importorskip("torch")
    for shape, wrap in [((7, 3), True), ((7, 3), False), ((3, 5), True), ((3, 3, 3), False)]:
        ours = make(np.zeros(shape), device).fill_diagonal_(2.0, wrap=wrap)
        np.testing.assert_array_equal(to_numpy(ours), torch.zeros(shape, dtype=torch.float64)
                                      .fill_diagonal_(2.0, wrap=wrap).numpy())
