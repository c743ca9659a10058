"""Trigonometric, hyperbolic and special functions, and the binary elementwise math (tensor/ops/trig.py,
special.py, _special.py): forward against NumPy (the standard library or PyTorch where NumPy has no
such function), gradients by finite differences in float64, values and gradients against PyTorch,
dtype promotion, broadcasting, Python scalars, and PyTorch's values and gradients at the edges."""
import math
import warnings

import numpy as np
import pytest

import tensor
from tensor.autograd import gradgradcheck
from tensor.errors import AutogradError, DTypeError

from helpers import check_forward, check_grad, compare_with_torch, make, needs_torch, to_numpy

np_erfc = np.vectorize(math.erfc, otypes=[np.float64])
np_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# Inputs where each function is smooth: inside the domain, away from poles and kinks.
DOMAINS = {
    "any": lambda a: a * 2,
    "unit": lambda a: np.tanh(a) * 0.9,  # (-0.9, 0.9): asin, acos, atanh, erfinv
    "above_one": lambda a: np.abs(a) + 1.2,  # acosh
    "gamma": lambda a: np.round(a * 2) + 0.5 + 0.3 * np.tanh(a),  # negatives too, but no integers
    "positive": lambda a: np.abs(a) + 0.3,
    "nonzero": lambda a: np.sign(a) * (np.abs(a) + 0.2),
}

# name, NumPy reference (None: PyTorch's is the reference), domain
UNARY = [
    ("asin", np.arcsin, "unit"),
    ("acos", np.arccos, "unit"),
    ("atan", np.arctan, "any"),
    ("sinh", np.sinh, "any"),
    ("cosh", np.cosh, "any"),
    ("asinh", np.arcsinh, "any"),
    ("acosh", np.arccosh, "above_one"),
    ("atanh", np.arctanh, "unit"),
    ("deg2rad", np.deg2rad, "any"),
    ("rad2deg", np.rad2deg, "any"),
    ("exp2", np.exp2, "any"),
    ("sinc", np.sinc, "any"),
    ("i0", np.i0, "any"),
    ("erfc", np_erfc, "any"),
    ("lgamma", np_lgamma, "gamma"),
    ("erfinv", None, "unit"),
    ("digamma", None, "gamma"),
]
UNARY_IDS = [op[0] for op in UNARY]
ALIASES = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh", "arccosh": "acosh",
           "arctanh": "atanh", "arctan2": "atan2"}


@pytest.mark.parametrize("name,np_fn,domain", UNARY, ids=UNARY_IDS)
def test_unary_forward_and_grad(device, name, np_fn, domain):
    a = DOMAINS[domain](data(3, 4))
    fn = getattr(tensor, name)
    if np_fn is not None:
        check_forward(fn, np_fn, [a], device, rtol=1e-12, atol=1e-13)
        check_forward(fn, np_fn, [a.astype(np.float32)], device, rtol=2e-6, atol=1e-6)
    assert getattr(make(a.astype(np.float32), device), name)().dtype == tensor.float32  # a method too
    check_grad(fn, [a], device)


@pytest.mark.parametrize("name,np_fn,domain", UNARY, ids=UNARY_IDS)
def test_unary_matches_torch(device, name, np_fn, domain):
    torch = pytest.importorskip("torch")
    a = DOMAINS[domain](data(4, 5, seed=1))
    rtol = 1e-8 if name == "digamma" else 1e-10  # PyTorch's trigamma (digamma's gradient) is within ~1e-9
    compare_with_torch(getattr(tensor, name), getattr(torch, name), [a], device, rtol=rtol, atol=1e-12)
    single = a.astype(np.float32)
    expected = getattr(torch, name)(torch.tensor(single)).numpy()
    np.testing.assert_allclose(to_numpy(getattr(tensor, name)(make(single, device))), expected, rtol=5e-6, atol=1e-6)


@pytest.mark.parametrize("name", UNARY_IDS)
def test_integer_and_bool_inputs_give_the_default_float(device, name):
    fn = getattr(tensor, name)
    for values in (np.array([0, 1, 2]), np.array([True, False])):
        y = fn(make(values, device))
        assert y.dtype == tensor.get_default_dtype()
        np.testing.assert_array_equal(to_numpy(y), to_numpy(fn(make(values.astype(np.float32), device))))


def test_aliases_are_the_same_functions():
    for alias, name in ALIASES.items():
        assert getattr(tensor, alias) is getattr(tensor, name)
        assert getattr(tensor.Tensor, alias) is getattr(tensor.Tensor, name)


EDGES = np.array([-np.inf, -3.0, -2.0, -1.5, -1.0, -0.5, -0.0, 0.0, 1e-8, 0.5, 1.0, 2.0, 30.0, np.inf, np.nan])


@pytest.mark.parametrize("name", UNARY_IDS)
def test_edges_and_out_of_domain_match_torch_silently(device, name):
    # NaN outside the domain and +-inf at poles, as PyTorch gives them, and no NumPy warnings.
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = to_numpy(getattr(tensor, name)(make(EDGES, device)))
    expected = getattr(torch, name)(torch.tensor(EDGES)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0, equal_nan=True)
    numbers = ~np.isnan(expected)
    assert np.array_equal(np.signbit(got[numbers]), np.signbit(expected[numbers]))  # -0.0 stays -0.0


@pytest.mark.parametrize("name", ["asin", "acosh", "atanh", "erfinv", "lgamma", "sinc", "erfc"])
def test_gradients_at_the_edges_match_torch(device, name):
    torch = pytest.importorskip("torch")
    values = np.array([-1.0, 0.0, 1.0, 2.0, -2.5])
    x = make(values, device, requires_grad=True)
    t = torch.tensor(values, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(tensor, name)(x).backward(make(np.ones(5), device))
    getattr(torch, name)(t).backward(torch.ones(5, dtype=torch.float64))
    np.testing.assert_allclose(to_numpy(x.grad), t.grad.numpy(), rtol=1e-12, equal_nan=True)


def test_special_functions_far_out(device):
    tail = np.array([5.0, 10.0, 20.0, 26.0, -3.0])
    np.testing.assert_allclose(to_numpy(make(tail, device).erfc()), np_erfc(tail), rtol=1e-13)  # not 1 - erf
    y = np.concatenate([np.linspace(-0.999, 0.999, 201), 1 - np.logspace(-15, -2, 14), [1e-12, -1e-300]])
    back = np.vectorize(math.erf)(to_numpy(make(y, device).erfinv()))
    np.testing.assert_allclose(back, y, rtol=1e-14, atol=2e-16)
    wide = np.concatenate([np.linspace(-30.25, 30.25, 122), np.logspace(-300, 300, 61), [0.5, 1.0, 2.0, 1e-10]])
    np.testing.assert_allclose(to_numpy(make(wide, device).lgamma()), np_lgamma(wide), rtol=1e-13, atol=1e-15)
    # digamma: psi(1) = -Euler's gamma, psi(x + 1) = psi(x) + 1/x, and the reflection formula
    x = np.concatenate([np.linspace(0.05, 40, 80), [0.01, 1e6, 1e200]])
    psi = to_numpy(make(x, device).digamma())
    np.testing.assert_allclose(to_numpy(make(np.array([1.0]), device).digamma()), [-0.5772156649015329], rtol=1e-15)
    np.testing.assert_allclose(to_numpy(make(x + 1, device).digamma()), psi + 1 / x, rtol=1e-13, atol=1e-13)
    reflected = to_numpy(make(1 - x[:40], device).digamma())
    np.testing.assert_allclose(reflected - psi[:40], np.pi / np.tan(np.pi * x[:40]), rtol=1e-9, atol=1e-9)
    big = np.array([100.0, 700.0, -30.0])
    np.testing.assert_allclose(to_numpy(make(big, device).i0()), np.i0(big), rtol=1e-14)


# ---------------------------------------------------------------------------------- binary functions
def np_xlogy(a, b):
    return np.where(a == 0, 0.0, a * np.log(b))


# name, NumPy reference, domain of the first input, of the second
BINARY = [
    ("atan2", np.arctan2, "any", "any"),
    ("hypot", np.hypot, "any", "any"),
    ("logaddexp", np.logaddexp, "any", "any"),
    ("logaddexp2", np.logaddexp2, "any", "any"),
    ("xlogy", np_xlogy, "any", "positive"),
    ("ldexp", lambda a, b: a * np.exp2(b), "any", "any"),
    ("copysign", np.copysign, "nonzero", "nonzero"),
    ("fmax", np.fmax, "any", "any"),
    ("fmin", np.fmin, "any", "any"),
    ("nextafter", np.nextafter, "any", "any"),
]
BINARY_IDS = [op[0] for op in BINARY]


def pair(domain_a, domain_b, shape_a, shape_b, seed=0):
    return DOMAINS[domain_a](data(*shape_a, seed=seed)), DOMAINS[domain_b](data(*shape_b, seed=seed + 1))


@pytest.mark.parametrize("name,np_fn,domain_a,domain_b", BINARY, ids=BINARY_IDS)
def test_binary_forward_and_grad_with_broadcasting(device, name, np_fn, domain_a, domain_b):
    fn = getattr(tensor, name)
    for shape_a, shape_b in (((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), (2, 3))):
        a, b = pair(domain_a, domain_b, shape_a, shape_b)
        check_forward(fn, np_fn, [a, b], device, rtol=1e-12, atol=1e-13)
        low = [a.astype(np.float32), b.astype(np.float32)]
        assert check_forward(fn, np_fn, low, device, rtol=2e-6, atol=1e-6).dtype == tensor.float32
        check_grad(fn, [a, b], device)
    assert getattr(make(a, device), name)(make(b, device)).shape == (2, 3)  # the method form


# torch 2.11's backward raises "the derivative for 'nextafter' is not implemented"
@pytest.mark.parametrize("name,np_fn,domain_a,domain_b", [
    pytest.param(*op, marks=needs_torch("2.13", "torch 2.11 has no derivative for nextafter")) if op[0] == "nextafter"
    else op for op in BINARY], ids=BINARY_IDS)
def test_binary_matches_torch(device, name, np_fn, domain_a, domain_b):
    torch = pytest.importorskip("torch")
    a, b = pair(domain_a, domain_b, (3, 4), (4,), seed=2)
    compare_with_torch(getattr(tensor, name), getattr(torch, name), [a, b], device, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,np_fn,domain_a,domain_b", BINARY, ids=BINARY_IDS)
def test_binary_with_python_scalars(device, name, np_fn, domain_a, domain_b):
    fn = getattr(tensor, name)
    a, b = pair(domain_a, domain_b, (2, 3), (2, 3))
    for values, first in ((a, True), (b, False)):  # x op 1.5, then 1.5 op x

        def call(x, first=first):
            return fn(x, 1.5) if first else fn(1.5, x)

        y = call(make(values.astype(np.float32), device))
        assert y.dtype == tensor.float32  # a Python float does not lift float32
        expected = np_fn(values, 1.5) if first else np_fn(1.5, values)
        np.testing.assert_allclose(to_numpy(y), expected, rtol=2e-6, atol=1e-6)
        check_grad(call, [values], device)


def test_binary_dtype_promotion(device):
    i64, i32 = make(np.array([1, 2, 3]), device), make(np.array([3, 2, 1], dtype=np.int32), device)
    f32, f64 = make(np.array([1.0, 2.0, 3.0], dtype=np.float32), device), make(np.array([1.0, 2.0, 4.0]), device)
    for name in ("atan2", "xlogy", "ldexp", "copysign"):
        fn = getattr(tensor, name)
        assert fn(i64, i32).dtype == tensor.float32  # integers promote to the default float dtype
        assert fn(i64, 2).dtype == tensor.float32
        assert fn(make(np.array([True]), device), make(np.array([True]), device)).dtype == tensor.float32
        assert fn(f32, f64).dtype == tensor.float64
        assert fn(f32, make(np.array(2.0), device)).dtype == tensor.float32  # a 0-d tensor does not lift
        assert fn(i64, make(np.array(2.0), device)).dtype == tensor.float64  # ... unless it is of a higher kind
    for name in ("fmax", "fmin"):
        y = getattr(tensor, name)(i64, i32)
        assert y.dtype == tensor.int64
        np.testing.assert_array_equal(to_numpy(y), getattr(np, name)([1, 2, 3], [3, 2, 1]))
        assert getattr(tensor, name)(i64, f32).dtype == tensor.float32
    for name in ("hypot", "logaddexp", "logaddexp2", "nextafter"):  # PyTorch refuses integers here
        with pytest.raises(DTypeError, match=name):
            getattr(tensor, name)(i64, i32)
        assert getattr(tensor, name)(i64, f32).dtype == tensor.float32
    with pytest.raises(TypeError, match="atan2"):
        tensor.atan2(f32, "1.0")
    with pytest.raises(TypeError):
        tensor.atan2(1.0, 2.0)


def values_and_grads(device, fn, a, b):
    x, y = make(np.array(a), device, requires_grad=True), make(np.array(b), device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fn(x, y)
        out.backward(make(np.ones(out.shape), device))
    return to_numpy(out), to_numpy(x.grad), to_numpy(y.grad)


def assert_same(got, expected):
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, equal_nan=True)
        assert np.array_equal(np.signbit(g[~np.isnan(g)]), np.signbit(np.array(e)[~np.isnan(e)]))


nan, inf = math.nan, math.inf


def test_xlogy_is_zero_where_x_is_zero(device):
    # PyTorch's values and gradients (grad x: xlogy(x != 0, y); grad y: x / y)
    got = values_and_grads(device, tensor.xlogy, [0.0, 0.0, 1.0, 2.0, 0.0, nan, 0.0], [0.0, 2.0, 0.0, nan, -1.0, 1.0, inf])
    assert_same(got, ([0.0, 0.0, -inf, nan, 0.0, nan, 0.0], [0.0, math.log(2), -inf, nan, 0.0, 0.0, inf],
                      [nan, 0.0, inf, nan, -0.0, nan, 0.0]))


def test_fmax_fmin_skip_nan_and_pick_one_side_on_ties(device):
    a, b = [1.0, 0.0, nan, 1.0, nan], [2.0, 0.0, 2.0, nan, nan]
    assert_same(values_and_grads(device, tensor.fmax, a, b),
                ([2.0, 0.0, 2.0, 1.0, nan], [0.0, 1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0, 0.0]))
    assert_same(values_and_grads(device, tensor.fmin, a, b),
                ([1.0, 0.0, 2.0, 1.0, nan], [1.0, 1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0, 0.0]))


def test_atan2_hypot_logaddexp_copysign_edges(device):
    assert_same(values_and_grads(device, tensor.atan2, [0.0, 1.0, 0.0, 1e-170], [0.0, 0.0, -0.0, 1e-170]),
                ([0.0, math.pi / 2, math.pi, math.pi / 4], [0.0, 0.0, -0.0, 0.0], [-0.0, -1.0, -0.0, -0.0]))
    assert_same(values_and_grads(device, tensor.hypot, [0.0, 3.0], [0.0, 4.0]), ([0.0, 5.0], [nan, 0.6], [nan, 0.8]))
    assert_same(values_and_grads(device, tensor.logaddexp, [inf, -inf, 1.0], [inf, -inf, 1.0]),
                ([inf, -inf, 1 + math.log(2)], [nan, nan, 0.5], [nan, nan, 0.5]))
    assert_same(values_and_grads(device, tensor.copysign, [1.0, 0.0, -1.0, -0.0, 2.0, inf], [2.0, -2.0, 2.0, 1.0, -0.0, -1.0]),
                ([1.0, -0.0, 1.0, 0.0, -2.0, -inf], [1.0, 0.0, -1.0, 0.0, -1.0, nan], [0.0] * 6))


def test_nextafter_and_ldexp(device):
    for dtype in (np.float32, np.float64):
        one = make(np.array([1.0, 1.0, 0.0], dtype=dtype), device)
        got = to_numpy(tensor.nextafter(one, make(np.array([2.0, 0.0, -1.0], dtype=dtype), device)))
        # toward -1 from 0 is the smallest subnormal; CuPy's float32 kernels flush subnormals (README)
        tiny = np.finfo(dtype).smallest_normal if device != "cpu" and dtype == np.float32 else np.finfo(dtype).smallest_subnormal
        np.testing.assert_array_equal(got, [1 + np.finfo(dtype).eps, 1 - np.finfo(dtype).eps / 2, -tiny])
    assert_same(values_and_grads(device, tensor.nextafter, [1.0, -1.0], [2.0, 2.0]),
                ([1 + 2.0**-52, -1 + 2.0**-53], [1.0, 1.0], [0.0, 0.0]))
    assert_same(values_and_grads(device, tensor.ldexp, [1.0, 3.0], [2.0, -1.0]),
                ([4.0, 1.5], [4.0, 0.5], [4 * math.log(2), 1.5 * math.log(2)]))
    exponents = make(np.array([3, -2]), device)  # an integer exponent, as torch.ldexp is mostly used
    np.testing.assert_array_equal(to_numpy(tensor.ldexp(make(np.array([1.5, 8.0]), device), exponents)), [12.0, 2.0])


def test_heaviside(device):
    x = make(np.array([-2.0, 0.0, 3.0, -0.0, nan]), device)
    np.testing.assert_array_equal(to_numpy(tensor.heaviside(x, make(np.array([0.5]), device))), [0, 0.5, 1, 0.5, 0])
    ints = tensor.heaviside(make(np.array([-1, 0, 4]), device), make(np.array([7]), device))
    assert ints.dtype == tensor.int64 and to_numpy(ints).tolist() == [0, 7, 1]
    assert to_numpy(x.heaviside(0.25)).tolist()[:2] == [0.0, 0.25]
    with pytest.raises(DTypeError, match="must match"):
        tensor.heaviside(x, make(np.array([1], dtype=np.int32), device))
    leaf = make(np.array([1.0, 0.0]), device, requires_grad=True)
    with pytest.raises(AutogradError, match="heaviside has no derivative"):
        tensor.heaviside(leaf, 0.5).sum().backward()


# ------------------------------------------------------------------------------------ create_graph
SECOND_ORDER = [(name, lambda x, name=name: getattr(tensor, name)(x), domain) for name, _, domain in UNARY] + [
    (name, lambda x, y, name=name: getattr(tensor, name)(x, y), (da, db)) for name, _, da, db in BINARY
]


@pytest.mark.parametrize("name,fn,domain", SECOND_ORDER, ids=[c[0] for c in SECOND_ORDER])
def test_second_derivatives(device, name, fn, domain):
    domains = domain if isinstance(domain, tuple) else (domain,)
    shapes = [(3, 4), (4,)][:len(domains)]
    inputs = [make(DOMAINS[d](data(*s, seed=i)), device, requires_grad=True) for i, (d, s) in enumerate(zip(domains, shapes))]
    assert gradgradcheck(fn, inputs)
