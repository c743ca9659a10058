"""Statistics, order statistics, counting and small utilities (tensor/ops/order_stats.py, moments.py,
counting.py, integrate.py, construct.py, dims.py, introspect.py, aliases.py and the additions to
layout.py and join.py): values, dtypes and index choices against PyTorch, gradients by finite
differences and against PyTorch, NaN handling, and errors."""
import math

import numpy as np
import pytest

import tensor
from tensor.errors import DTypeError, ShapeError

from helpers import check_grad, compare_with_torch, make, to_numpy, torch_at_least

NAN = math.nan


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def ties(*shape, seed=0, high=3):
    """Float64 values with many repeats (to exercise tie rules)."""
    return np.random.default_rng(seed).integers(0, high, shape).astype(np.float64)


def assert_same(ours, ref, rtol=1e-6, atol=1e-8):
    """Our result equals torch's: tensors (dtype and values) or (named) tuples of them."""
    if isinstance(ref, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(ref)
        if hasattr(ref, "_fields"):
            assert ours._fields == ref._fields
        for a, b in zip(ours, ref):
            assert_same(a, b, rtol, atol)
        return
    expected = ref.detach().numpy()
    assert to_numpy(ours).dtype == expected.dtype, (to_numpy(ours).dtype, expected.dtype)
    np.testing.assert_allclose(to_numpy(ours), expected, rtol=rtol, atol=atol, equal_nan=True)


def both(fn, torch, device, *arrays):
    """(fn(tensor, *our tensors on device), fn(torch, *torch tensors)) on the same arrays."""
    return fn(tensor, *[make(a, device) for a in arrays]), fn(torch, *[torch.tensor(a) for a in arrays])


# ----------------------------------------------------------------------------------------- aliases
ALIASES = [  # alias, original, arguments (arrays become tensors)
    ("multiply", "mul", (data(3), data(3, seed=1))),
    ("subtract", "sub", (data(3), data(3, seed=1))),
    ("divide", "div", (data(3), data(3, seed=1))),
    ("negative", "neg", (data(3),)),
    ("absolute", "abs", (data(3),)),
    ("not_equal", "ne", (ties(5), ties(5, seed=1))),
    ("greater", "gt", (ties(5), ties(5, seed=1))),
    ("greater_equal", "ge", (ties(5), ties(5, seed=1))),
    ("less", "lt", (ties(5), ties(5, seed=1))),
    ("less_equal", "le", (ties(5), ties(5, seed=1))),
    ("moveaxis", "movedim", (data(2, 3, 4), 0, 2)),
    ("swapdims", "transpose", (data(2, 3, 4), 0, 2)),
    ("ravel", "flatten", (data(2, 3).T,)),
    ("trapz", "trapezoid", (data(2, 5),)),
    ("ger", "outer", (data(3), data(4, seed=1))),
]


@pytest.mark.parametrize("alias,original,args", ALIASES, ids=[a[0] for a in ALIASES])
def test_alias_matches_original_and_torch(alias, original, args, device):
    torch = pytest.importorskip("torch")
    ours = [make(a, device) if isinstance(a, np.ndarray) else a for a in args]
    theirs = [torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args]
    result = getattr(tensor, alias)(*ours)
    np.testing.assert_array_equal(to_numpy(result), to_numpy(getattr(tensor, original)(*ours)))
    assert_same(result, getattr(torch, alias)(*theirs))
    if alias != "trapz":  # a function only, in torch as here
        np.testing.assert_array_equal(to_numpy(getattr(ours[0], alias)(*ours[1:])), to_numpy(result))


def test_small_aliases_and_conversions(device):
    torch = pytest.importorskip("torch")
    a, b = np.array([5, -5, 7]), np.array([2, 2, -2])
    for mode, cast in ((None, int), ("floor", int), ("trunc", float)):  # (div's trunc of ints gives floats)
        a_, b_ = a.astype(cast), b.astype(cast)
        assert_same(tensor.divide(make(a_, device), make(b_, device), rounding_mode=mode),
                    torch.divide(torch.tensor(a_), torch.tensor(b_), rounding_mode=mode))
    assert_same(tensor.subtract(make(a, device), make(b, device), alpha=3),
                torch.subtract(torch.tensor(a), torch.tensor(b), alpha=3))
    assert_same(tensor.concatenate([make(a, device), make(b, device)]), torch.concatenate([torch.tensor(a), torch.tensor(b)]))
    x = make(data(2, 3), device)
    assert tensor.positive(x) is x and x.ndimension() == 2
    with pytest.raises(DTypeError, match="positive"):
        tensor.positive(make(np.array([True]), device))
    assert (x.byte().dtype, x.char().dtype, x.short().dtype) == (tensor.uint8, tensor.int8, tensor.int16)
    assert tensor.short is tensor.int16  # the dtype keeps its name; the method converts


# ---------------------------------------------------------------------------- count_nonzero, moments
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 1), ()])
def test_count_nonzero(dim, device):
    torch = pytest.importorskip("torch")
    a = ties(3, 4)
    assert_same(tensor.count_nonzero(make(a, device), dim), torch.count_nonzero(torch.tensor(a), dim))
    assert_same(make(a, device).count_nonzero(dim=dim), torch.tensor(a).count_nonzero(dim=dim))


@pytest.mark.parametrize("which", ["var_mean", "std_mean"])
@pytest.mark.parametrize("kwargs", [{}, {"dim": 1}, {"dim": (0, 2), "keepdim": True}, {"dim": 1, "correction": 0},
                                    {"dim": 0, "unbiased": False}])
def test_var_mean_std_mean(which, kwargs, device):
    torch = pytest.importorskip("torch")
    for part in (0, 1):
        compare_with_torch(lambda x: getattr(tensor, which)(x, **kwargs)[part],
                           lambda x: getattr(torch, which)(x, **kwargs)[part], [data(3, 4, 2)], device)


def test_cov_and_corrcoef(device):
    torch = pytest.importorskip("torch")
    a, f, w = data(3, 6), np.array([1, 2, 0, 3, 1, 1]), np.abs(data(6, seed=2))
    for kwargs in ({}, {"correction": 0}, {"correction": 2}):
        compare_with_torch(lambda x: tensor.cov(x, **kwargs), lambda x: torch.cov(x, **kwargs), [a], device)
    compare_with_torch(lambda x, f: tensor.cov(x, fweights=f), lambda x, f: torch.cov(x, fweights=f), [a], device,
                       constants=[f])
    compare_with_torch(lambda x, w: tensor.cov(x, fweights=make(f, device), aweights=w),
                       lambda x, w: torch.cov(x, fweights=torch.tensor(f), aweights=w), [a, w], device)
    compare_with_torch(tensor.cov, torch.cov, [data(5)], device)  # one variable: a 0-d result
    compare_with_torch(tensor.corrcoef, torch.corrcoef, [a], device)
    compare_with_torch(tensor.corrcoef, torch.corrcoef, [data(5)], device)
    assert_same(tensor.cov(make(np.array([[1, 2, 4], [1, 0, 1]]), device)), torch.cov(torch.tensor([[1, 2, 4], [1, 0, 1]])))


def test_cov_errors(device):
    x = make(data(2, 4), device)
    with pytest.raises(ShapeError, match="1-D or 2-D"):
        tensor.cov(make(data(2, 2, 2), device))
    with pytest.raises(DTypeError, match="fweights must have an integer dtype"):
        tensor.cov(x, fweights=make(np.ones(4), device))
    with pytest.raises(ShapeError, match="3 values but the input has 4 observations"):
        tensor.cov(x, aweights=make(np.ones(3), device))
    with pytest.raises(ValueError, match="aweights cannot be negative"):
        tensor.cov(x, aweights=make(-np.ones(4), device))
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        assert math.isnan(tensor.cov(make(np.array([1.0]), device)).item())


# ------------------------------------------------------------------------------ order statistics
@pytest.mark.parametrize("kwargs", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}])
def test_aminmax(kwargs, device):
    torch = pytest.importorskip("torch")
    a = ties(3, 4)  # ties share the gradient, as amin's and amax's do
    assert_same(tensor.aminmax(make(a, device), **kwargs), torch.aminmax(torch.tensor(a), **kwargs))
    # torch 2.11 has no derivative for aminmax; 2.13's gradients are amin's and amax's, the oracle there
    parts = torch.aminmax if torch_at_least("2.13") else lambda x, **kw: (torch.amin(x, **kw), torch.amax(x, **kw))
    for part in (0, 1):
        compare_with_torch(lambda x: tensor.aminmax(x, **kwargs)[part], lambda x: parts(x, **kwargs)[part], [a], device)
    with pytest.raises(ShapeError, match="aminmax"):
        tensor.aminmax(make(np.zeros((0, 2)), device), dim=0)


@pytest.mark.parametrize("op", ["cummax", "cummin"])
def test_cummax_cummin(op, device):
    torch = pytest.importorskip("torch")
    cases = [ties(4, 7), np.array([1.0, NAN, 3, NAN, 5, 0]), ties(3, 5).astype(np.int64), np.array(2.5)]
    for a in cases:
        for dim in range(-a.ndim, max(a.ndim, 1)):
            assert_same(getattr(tensor, op)(make(a, device), dim), getattr(torch, op)(torch.tensor(a), dim))
    compare_with_torch(lambda x: getattr(x, op)(1).values, lambda x: getattr(x, op)(1).values, [data(3, 6)], device)
    check_grad(lambda x: getattr(tensor, op)(x, 0)[0], [data(5, 2)], device)


def test_kthvalue_values_match_torch_and_tied_indices_follow_the_stable_order(device):
    torch = pytest.importorskip("torch")
    a = ties(40, 9, high=4)
    a[np.random.default_rng(1).random(a.shape) < 0.1] = NAN  # NaN sorts last
    for k in range(1, 10):
        ours = tensor.kthvalue(make(a, device), k)
        assert_same(ours.values, torch.kthvalue(torch.tensor(a), k).values)
        # Which of several equal elements is reported PyTorch leaves open; ours: the stable sort's k-th.
        np.testing.assert_array_equal(to_numpy(ours.indices), np.argsort(a, axis=-1, kind="stable")[:, k - 1])
    b = ties(6, 3, 2)
    ours, ref = make(b, device).kthvalue(2, 0, True), torch.tensor(b).kthvalue(2, 0, True)
    assert_same(ours.values, ref.values)
    assert ours.indices.shape == ref.indices.shape
    np.testing.assert_array_equal(np.take_along_axis(b, to_numpy(ours.indices), 0), to_numpy(ours.values))
    assert_same(tensor.kthvalue(make(np.array(4.0), device), 1), torch.kthvalue(torch.tensor(np.array(4.0)), 1))
    compare_with_torch(lambda x: tensor.kthvalue(x, 3, 0).values, lambda x: torch.kthvalue(x, 3, 0).values,
                       [data(5, 4)], device)
    check_grad(lambda x: tensor.kthvalue(x, 2)[0], [data(3, 4)], device)
    for k in (0, 5):
        with pytest.raises(IndexError, match="k=.* is out of range .* 1..4"):
            tensor.kthvalue(make(data(4), device), k)


def test_nanmedian(device):
    torch = pytest.importorskip("torch")
    a = ties(6, 5, high=4)
    a[np.random.default_rng(2).random(a.shape) < 0.3] = NAN
    a[0] = NAN  # a line of NaN only: NaN at index 0
    for dim in (0, 1, -1):
        assert_same(tensor.nanmedian(make(a, device), dim), torch.nanmedian(torch.tensor(a), dim))
    assert_same(make(a, device).nanmedian(1, keepdim=True), torch.tensor(a).nanmedian(1, keepdim=True))
    assert_same(tensor.nanmedian(make(a, device)), torch.nanmedian(torch.tensor(a)))
    assert_same(tensor.nanmedian(make(np.array([3, 1, 2]), device)), torch.nanmedian(torch.tensor([3, 1, 2])))
    b = data(4, 5)
    b[1, 2] = NAN
    compare_with_torch(lambda x: tensor.nanmedian(x, 1).values, lambda x: torch.nanmedian(x, 1).values, [b], device)
    check_grad(lambda x: tensor.nanmedian(x), [data(7)], device)


QUANTILE_CASES = [  # q, kwargs
    (0.3, {}),
    (0.0, {"dim": 1}),
    (1.0, {"dim": 0, "keepdim": True}),
    (np.array([0.1, 0.5, 0.75]), {"dim": -1}),
    (np.array([0.25, 0.9]), {"keepdim": True}),
    (np.array(0.4), {"dim": 1}),
]


@pytest.mark.parametrize("q,kwargs", QUANTILE_CASES)
@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile_against_torch(q, kwargs, interpolation, device):
    torch = pytest.importorskip("torch")
    ours_q = make(q, device) if isinstance(q, np.ndarray) else q
    torch_q = torch.tensor(q) if isinstance(q, np.ndarray) else q
    compare_with_torch(lambda x: tensor.quantile(x, ours_q, **kwargs, interpolation=interpolation),
                       lambda x: torch.quantile(x, torch_q, **kwargs, interpolation=interpolation),
                       [data(4, 7)], device)
    a = data(4, 7)
    a[1, 3], a[2] = NAN, NAN  # quantile gives NaN for a line with NaN; nanquantile skips them
    for op in ("quantile", "nanquantile"):
        assert_same(getattr(make(a, device), op)(ours_q, **kwargs, interpolation=interpolation),
                    getattr(torch.tensor(a), op)(torch_q, **kwargs, interpolation=interpolation))


def test_quantile_gradient_and_errors(device):
    check_grad(lambda x: tensor.quantile(x, make(np.array([0.2, 0.7]), device), dim=0), [data(5, 3)], device)
    a = data(6)
    a[2] = NAN
    check_grad(lambda x: tensor.nanquantile(x, 0.35), [a], device)
    x = make(data(4), device)
    with pytest.raises(DTypeError, match="floating-point"):
        tensor.quantile(make(np.arange(4), device), 0.5)
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\], got 1.5"):
        tensor.quantile(x, 1.5)
    with pytest.raises(ShapeError, match="0-d or 1-D"):
        tensor.quantile(x, make(np.full((1, 1), 0.5), device))
    with pytest.raises(DTypeError, match="q has dtype float32"):
        tensor.quantile(x, make(np.array([0.5], np.float32), device))
    with pytest.raises(ShapeError, match="empty"):
        tensor.quantile(make(np.zeros(0), device), 0.5)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        tensor.quantile(x, 0.5, interpolation="cubic")


# --------------------------------------------------------------------------------------- counting
def test_bincount(device):
    torch = pytest.importorskip("torch")
    a = np.array([0, 1, 1, 3, 1])
    for kwargs in ({}, {"minlength": 7}):
        assert_same(tensor.bincount(make(a, device), **kwargs), torch.bincount(torch.tensor(a), **kwargs))
    for w in (data(5).astype(np.float32), data(5), np.arange(5)):
        assert_same(make(a, device).bincount(make(w, device)), torch.tensor(a).bincount(torch.tensor(w)))
    assert_same(tensor.bincount(make(np.zeros(0, np.int64), device)), torch.bincount(torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="non-negative, got -1"):
        tensor.bincount(make(np.array([1, -1]), device))
    with pytest.raises(ShapeError, match="1-D tensor of non-negative integers"):
        tensor.bincount(make(np.array([1.0]), device))


def test_isin(device):
    torch = pytest.importorskip("torch")
    a, b = ties(3, 4, high=6), np.array([1.0, 4.0, 7.0])
    for kwargs in ({}, {"invert": True}, {"assume_unique": True}):
        assert_same(*both(lambda m, x, y: m.isin(x, y, **kwargs), torch, device, a, b))
    assert_same(*both(lambda m, x: m.isin(x, 2.0), torch, device, a))
    assert_same(*both(lambda m, y: m.isin(4.0, y), torch, device, b))
    assert_same(*both(lambda m, x, y: m.isin(x, y), torch, device, np.array([1.0, NAN]), np.array([NAN])))


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_unique_consecutive(dim, device):
    torch = pytest.importorskip("torch")
    a = np.array([[1, 1], [1, 1], [2, 3], [2, 3], [1, 1], [2, 2]])
    for flags in ((False, False), (True, False), (False, True), (True, True)):
        kwargs = {"return_inverse": flags[0], "return_counts": flags[1], "dim": dim}
        ours, ref = tensor.unique_consecutive(make(a, device), **kwargs), torch.unique_consecutive(torch.tensor(a), **kwargs)
        assert_same(tuple(ours) if isinstance(ours, tuple) else ours, tuple(ref) if isinstance(ref, tuple) else ref)


def test_histogram(device):
    torch = pytest.importorskip("torch")
    a = data(200).astype(np.float32)
    w = np.abs(data(200, seed=1)).astype(np.float32)
    cases = [{"bins": 7}, {"bins": 5, "range": (-1.0, 2.0)}, {"bins": 4, "density": True},
             {"bins": np.array([-2.0, 0.0, 0.5, 3.0], np.float32)}]
    for kwargs in cases:
        for weighted in (False, True):
            ours_kw = {k: make(v, device) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
            torch_kw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
            if weighted:
                ours_kw["weight"], torch_kw["weight"] = make(w, device), torch.tensor(w)
            assert_same(tensor.histogram(make(a, device), **ours_kw), torch.histogram(torch.tensor(a), **torch_kw),
                        rtol=1e-5, atol=1e-6)
    one = np.array([1.0, 1.0], np.float32)  # a single value: a unit range around it
    assert_same(make(one, device).histogram(2), torch.tensor(one).histogram(2))
    with pytest.raises(DTypeError, match="floating-point"):
        tensor.histogram(make(np.arange(3), device))


# ------------------------------------------------------------------------------------ integration
@pytest.mark.parametrize("op", ["trapezoid", "cumulative_trapezoid"])
def test_trapezoid(op, device):
    torch = pytest.importorskip("torch")
    y = data(3, 5)
    ours, theirs = getattr(tensor, op), getattr(torch, op)
    compare_with_torch(lambda y: ours(y), lambda y: theirs(y), [y], device)
    compare_with_torch(lambda y: ours(y, dx=0.5, dim=0), lambda y: theirs(y, dx=0.5, dim=0), [y], device)
    x1 = np.sort(data(5, seed=1))
    compare_with_torch(lambda y, x: ours(y, x), lambda y, x: theirs(y, x), [y, x1], device)
    compare_with_torch(lambda y, x: ours(y, x, dim=0), lambda y, x: theirs(y, x, dim=0), [y, data(3, 1, seed=2)], device)
    compare_with_torch(lambda y, x: ours(y, x), lambda y, x: theirs(y, x), [y, data(3, 5, seed=3)], device)
    ints = np.array([[1, 2, 4], [0, 3, 3]])
    assert_same(ours(make(ints, device), dx=2), theirs(torch.tensor(ints), dx=2))
    assert_same(ours(make(ints, device), make(ints[0], device)), theirs(torch.tensor(ints), torch.tensor(ints[0])))
    assert_same(ours(make(np.zeros((2, 0)), device)), theirs(torch.zeros(2, 0, dtype=torch.float64)))
    with pytest.raises(ShapeError, match="one x value per sample"):
        ours(make(y, device), make(data(4), device))
    with pytest.raises(TypeError, match="either the sample points x or the even spacing dx"):
        ours(make(y, device), make(x1, device), dx=1.0)


# ------------------------------------------------------------------------------- construction
def test_diag_embed_and_diagflat(device):
    torch = pytest.importorskip("torch")
    for kwargs in ({}, {"offset": 1}, {"offset": -2, "dim1": 0, "dim2": 2}, {"dim1": -1, "dim2": 1}):
        compare_with_torch(lambda x: tensor.diag_embed(x, **kwargs), lambda x: torch.diag_embed(x, **kwargs),
                           [data(2, 3)], device)
    check_grad(lambda x: x.diag_embed(1, 0, 2), [data(2, 3)], device)
    for offset in (0, 2, -1):
        compare_with_torch(lambda x: x.diagflat(offset), lambda x: x.diagflat(offset), [data(2, 2)], device)
    with pytest.raises(ValueError, match="dim1 and dim2 must differ"):
        tensor.diag_embed(make(data(3), device), 0, 1, -1)


def test_block_diag_vander_cartesian_prod_combinations(device):
    torch = pytest.importorskip("torch")
    compare_with_torch(lambda a, b, c: tensor.block_diag(a, b, c), lambda a, b, c: torch.block_diag(a, b, c),
                       [data(2, 3), data(3, seed=1), np.array(0.5)], device)
    assert_same(*both(lambda m, a, b: m.block_diag(a, b), torch, device, np.array([[1, 2]]), np.array([0.5])))
    v = np.array([0.5, -1.5, 0.0, 2.0])
    for kwargs in ({}, {"N": 5}, {"N": 1, "increasing": True}, {"increasing": True}, {"N": 0}):
        assert_same(*both(lambda m, x: m.vander(x, **kwargs), torch, device, v))
    check_grad(lambda x: tensor.vander(x, 4), [v], device)  # (torch.vander's own backward fails)
    assert_same(*both(lambda m, x: m.vander(x), torch, device, np.array([1, 2, 3], np.int32)))
    compare_with_torch(lambda a, b, c: tensor.cartesian_prod(a, b, c), lambda a, b, c: torch.cartesian_prod(a, b, c),
                       [data(2), data(3, seed=1), data(2, seed=2)], device)
    single = make(data(3), device)
    assert tensor.cartesian_prod(single) is single
    for r, rep in ((2, False), (3, True), (1, False), (5, False), (0, False)):
        assert_same(*both(lambda m, x: m.combinations(x, r, rep), torch, device, np.array([4, 5, 6, 7])))
    compare_with_torch(lambda x: tensor.combinations(x, 2, True), lambda x: torch.combinations(x, 2, True),
                       [data(4)], device)
    with pytest.raises(DTypeError, match="same dtype"):
        tensor.cartesian_prod(make(np.arange(2), device), make(data(2), device))


# ------------------------------------------------------------------------------ layout and dims
def test_rot90_flips_and_stacking(device):
    torch = pytest.importorskip("torch")
    a = data(2, 3, 4)
    for k, dims in ((1, (0, 1)), (2, (0, 1)), (3, (1, 2)), (-1, (2, 0)), (4, (0, 1))):
        compare_with_torch(lambda x: x.rot90(k, dims), lambda x: x.rot90(k, dims), [a], device)
    compare_with_torch(tensor.fliplr, torch.fliplr, [a], device)
    compare_with_torch(tensor.flipud, torch.flipud, [a], device)
    with pytest.raises(ShapeError, match="exactly 2 dims"):
        tensor.rot90(make(a, device), 1, [0])
    parts = [np.arange(2), np.arange(4).reshape(2, 2), np.array([7, 8])]
    assert_same(*both(lambda m, *ts: m.column_stack(ts), torch, device, *parts))
    assert_same(*both(lambda m, *ts: m.dstack(ts), torch, device, np.arange(3), np.arange(3, 6)))
    assert_same(*both(lambda m, *ts: m.dstack(ts), torch, device, data(2, 3), data(2, 3, seed=1)))
    for sections in (2, [1, 3]):
        assert_same(*both(lambda m, x: tuple(m.dsplit(x, sections)), torch, device, data(2, 2, 4)))
    with pytest.raises(ShapeError, match="at least 3 dimensions"):
        tensor.dsplit(make(data(2, 4), device), 2)


def test_atleast_nd(device):
    torch = pytest.importorskip("torch")
    arrays = [np.array(1.0), np.arange(3.0), data(2, 3), data(1, 2, 3)]
    for op in ("atleast_1d", "atleast_2d", "atleast_3d"):
        ours = getattr(tensor, op)(*[make(a, device) for a in arrays])
        ref = getattr(torch, op)(*[torch.tensor(a) for a in arrays])
        assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in ref]
        assert tuple(getattr(tensor, op)(make(arrays[1], device)).shape) == tuple(getattr(torch, op)(torch.tensor(arrays[1])).shape)
        assert len(getattr(tensor, op)([make(a, device) for a in arrays[:2]])) == 2


def test_sum_to_size_unravel_index_broadcast_shapes(device):
    torch = pytest.importorskip("torch")
    for size in ((1, 3), (3,), (2, 1), (4, 1, 1)):
        compare_with_torch(lambda x: x.sum_to_size(size), lambda x: x.sum_to_size(size), [data(4, 2, 3)], device)
    x = make(data(2, 3), device)
    assert x.sum_to_size(2, 3) is x
    with pytest.raises(ShapeError, match=r"size \(3, 3\) does not broadcast"):
        x.sum_to_size(3, 3)
    idx = np.array([[4, 5], [-1, 13]])
    for shape in ((2, 3), (3, 2, 2), 6):
        assert_same(*both(lambda m, i: m.unravel_index(i, shape), torch, device, idx))
    with pytest.raises(DTypeError, match="integer dtype"):
        tensor.unravel_index(make(np.array([1.0]), device), (2, 3))
    got = tensor.broadcast_shapes((2, 1), (3,), 1)
    assert got == torch.broadcast_shapes((2, 1), (3,), 1) and isinstance(got, tensor.Size)
    with pytest.raises(ShapeError, match="do not broadcast"):
        tensor.broadcast_shapes((2,), (3,))


def test_introspection(device):
    x = make(data(3, 4), device)
    assert x.get_device() == (-1 if x.device.type == "cpu" else x.device.index)
    assert x.storage_offset() == 0 and x[1:].storage_offset() == 4 and x[:, 2].storage_offset() == 2
    assert x[1:].data_ptr() == x.data_ptr() + 4 * x.element_size()
    assert tensor.is_floating_point(x) and not x.is_complex() and not tensor.is_complex(x)
    assert tensor.is_nonzero(make(np.array([[2]]), device)) and not make(np.array([0.0]), device).is_nonzero()
    for bad, what in ((np.zeros(0), "no values"), (np.ones(2), "2 values")):
        with pytest.raises(ShapeError, match=what):
            tensor.is_nonzero(make(bad, device))
