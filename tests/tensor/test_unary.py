"""Elementwise math and activations (tensor/ops/unary.py, activation.py): forward against NumPy (torch
where NumPy has no equivalent), gradients by finite differences in float64, dtypes, stability, clamp."""
import math
import warnings

import numpy as np
import pytest

import tensor
from tensor.autograd import gradcheck

from helpers import check_forward, check_grad, make, noncontiguous, to_numpy

np_erf = np.vectorize(math.erf, otypes=[np.float64])


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# Each op's inputs stay where its derivative is smooth: away from kinks (0 for abs/relu), poles and edges.
DOMAINS = {
    "any": lambda a: a * 2,
    "positive": lambda a: np.abs(a) + 0.5,
    "nonzero": lambda a: np.sign(a) * (np.abs(a) + 0.2),
    "tan": lambda a: np.tanh(a) * 1.2,
    "log1p": lambda a: np.abs(a) - 0.5,
}


def np_sigmoid(a):
    return 1 / (1 + np.exp(-a))


def np_gelu(a):
    return 0.5 * a * (1 + np_erf(a / math.sqrt(2)))


def np_gelu_tanh(a):
    return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))


def np_softplus(a, beta=1.0, threshold=20.0):
    return np.where(a * beta > threshold, a, np.log1p(np.exp(a * beta)) / beta)


# name, raygrad function, NumPy reference, domain
OPS = [
    ("exp", lambda x: x.exp(), np.exp, "any"),
    ("expm1", lambda x: x.expm1(), np.expm1, "any"),
    ("log", lambda x: x.log(), np.log, "positive"),
    ("log1p", lambda x: x.log1p(), np.log1p, "log1p"),
    ("log2", lambda x: x.log2(), np.log2, "positive"),
    ("log10", lambda x: x.log10(), np.log10, "positive"),
    ("sqrt", lambda x: x.sqrt(), np.sqrt, "positive"),
    ("rsqrt", lambda x: x.rsqrt(), lambda a: 1 / np.sqrt(a), "positive"),
    ("square", lambda x: x.square(), np.square, "any"),
    ("reciprocal", lambda x: x.reciprocal(), np.reciprocal, "nonzero"),
    ("abs", lambda x: x.abs(), np.abs, "nonzero"),
    ("abs_builtin", lambda x: abs(x), np.abs, "nonzero"),
    ("sin", lambda x: x.sin(), np.sin, "any"),
    ("cos", lambda x: x.cos(), np.cos, "any"),
    ("tan", lambda x: x.tan(), np.tan, "tan"),
    ("tanh", lambda x: x.tanh(), np.tanh, "any"),
    ("erf", lambda x: x.erf(), np_erf, "any"),
    ("sigmoid", lambda x: x.sigmoid(), np_sigmoid, "any"),
    ("relu", lambda x: x.relu(), lambda a: np.maximum(a, 0), "nonzero"),
    ("leaky_relu", lambda x: x.leaky_relu(), lambda a: np.where(a > 0, a, 0.01 * a), "nonzero"),
    ("leaky_relu_0.2", lambda x: x.leaky_relu(0.2), lambda a: np.where(a > 0, a, 0.2 * a), "nonzero"),
    ("elu", lambda x: x.elu(), lambda a: np.where(a > 0, a, np.expm1(a)), "nonzero"),
    ("elu_alpha", lambda x: x.elu(alpha=0.5), lambda a: np.where(a > 0, a, 0.5 * np.expm1(a)), "nonzero"),
    ("softplus", lambda x: x.softplus(), np_softplus, "any"),
    ("softplus_beta", lambda x: x.softplus(beta=2, threshold=3), lambda a: np_softplus(a, 2, 3), "any"),
    ("silu", lambda x: x.silu(), lambda a: a * np_sigmoid(a), "any"),
    ("gelu", lambda x: x.gelu(), np_gelu, "any"),
    ("gelu_tanh", lambda x: x.gelu(approximate="tanh"), np_gelu_tanh, "any"),
    ("clamp", lambda x: x.clamp(-0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7), "any"),
    ("clamp_min", lambda x: x.clamp(min=0.3), lambda a: np.maximum(a, 0.3), "any"),
    ("clip_max", lambda x: x.clip(max=-0.3), lambda a: np.minimum(a, -0.3), "any"),
    ("sign", lambda x: x.sign(), np.sign, "nonzero"),
    ("floor", lambda x: x.floor(), np.floor, "any"),
    ("ceil", lambda x: x.ceil(), np.ceil, "any"),
    ("trunc", lambda x: x.trunc(), np.trunc, "any"),
    ("round", lambda x: x.round(), np.round, "any"),
    ("round_2", lambda x: x.round(decimals=2), lambda a: np.round(a, 2), "any"),
]
IDS = [op[0] for op in OPS]


@pytest.mark.parametrize("name,fn,np_fn,domain", OPS, ids=IDS)
def test_forward_and_grad(device, name, fn, np_fn, domain):
    a = DOMAINS[domain](data(3, 4))
    check_forward(fn, np_fn, [a], device, rtol=1e-10, atol=1e-12)
    check_forward(fn, np_fn, [a.astype(np.float32)], device, rtol=2e-6, atol=1e-6)  # dtype kept
    assert fn(make(a.astype(np.float32), device)).dtype == tensor.float32
    check_grad(fn, [a], device)


@pytest.mark.parametrize("name,fn,np_fn,domain", OPS, ids=IDS)
def test_noncontiguous_and_reused_input(device, name, fn, np_fn, domain):
    a = noncontiguous(DOMAINS[domain](data(4, 3, seed=1)))
    x = tensor.as_tensor(a, device=device).requires_grad_()  # as_tensor keeps the strided layout
    np.testing.assert_allclose(to_numpy(fn(x)), np_fn(a), rtol=1e-10, atol=1e-12)
    assert gradcheck(fn, [x])
    assert gradcheck(lambda x: fn(x) * x + x, [x])  # x feeds three consumers


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_activations_match_torch(device, approximate):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    a = data(5, 7) * 3
    pairs = [
        (lambda x: x.gelu(approximate=approximate), lambda t: F.gelu(t, approximate=approximate)),
        (lambda x: x.silu(), F.silu),
        (lambda x: x.softplus(beta=1.5, threshold=4), lambda t: F.softplus(t, beta=1.5, threshold=4)),
        (lambda x: x.elu(alpha=0.7), lambda t: F.elu(t, alpha=0.7)),
        (lambda x: x.leaky_relu(0.1), lambda t: F.leaky_relu(t, 0.1)),
        (lambda x: x.sigmoid(), torch.sigmoid),
        (lambda x: x.erf(), torch.erf),
    ]
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        for ours, theirs in pairs:
            x = make(a.astype(dtype), device, requires_grad=True)
            t = torch.tensor(a.astype(dtype), requires_grad=True)
            y, ty = ours(x), theirs(t)
            np.testing.assert_allclose(to_numpy(y), ty.detach().numpy(), rtol=tol, atol=tol)
            weights = np.cos(np.arange(a.size)).reshape(a.shape).astype(dtype)
            (y * make(weights, device)).sum().backward()
            (ty * torch.tensor(weights)).sum().backward()
            np.testing.assert_allclose(to_numpy(x.grad), t.grad.numpy(), rtol=tol * 10, atol=tol * 10)


def test_erf_accuracy_over_the_whole_line(device):
    a = np.concatenate([np.linspace(-8, 8, 4001), np.logspace(-30, 1, 300), -np.logspace(-30, 1, 300), [0.46875, 4.0]])
    expected = np_erf(a)
    got64 = to_numpy(make(a, device).erf())
    np.testing.assert_allclose(got64, expected, rtol=1e-14, atol=0)
    single = 2e-7 if device == "cpu" else 5e-7  # CUDA's erff is within 2 ulp
    for dtype, rtol, atol in ((np.float32, single, 0), (np.float16, 1e-3, 6e-8)):  # atol: float16's subnormal step
        low = a.astype(dtype)
        np.testing.assert_allclose(to_numpy(make(low, device).erf()), np_erf(low.astype(np.float64)), rtol=rtol, atol=atol)
    for dtype in (np.float16, np.float32, np.float64):
        special = to_numpy(make(np.array([np.inf, -np.inf, 9.0, np.nan, -0.0], dtype=dtype), device).erf())
        np.testing.assert_array_equal(special[:3], [1.0, -1.0, 1.0])
        assert np.isnan(special[3]) and special[4] == 0 and np.signbit(special[4])


def test_stable_at_extreme_inputs(device):
    a = np.array([-1e4, -800.0, -100.0, -30.0, 0.0, 30.0, 100.0, 800.0, 1e4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's overflow warnings would fail the test
        for dtype in (np.float16, np.float32, np.float64):
            x = make(a.astype(dtype), device)
            for y in (x.sigmoid(), x.softplus(), x.silu(), x.elu(), x.gelu(), x.gelu(approximate="tanh")):
                assert not np.isnan(to_numpy(y)).any()
    x = make(a, device)
    np.testing.assert_allclose(to_numpy(x.sigmoid())[2:4], np_sigmoid(a[2:4]), rtol=1e-12)  # tiny, not 0
    np.testing.assert_array_equal(to_numpy(x.softplus())[-3:], a[-3:])  # above the threshold: x itself
    small = np.array([1e-10, -1e-12, 3e-8])
    np.testing.assert_allclose(to_numpy(make(small, device).log1p()), np.log1p(small), rtol=1e-15)
    np.testing.assert_allclose(to_numpy(make(small, device).expm1()), np.expm1(small), rtol=1e-15)
    x = make(a, device, requires_grad=True)
    x.sigmoid().sum().backward()
    assert np.isfinite(to_numpy(x.grad)).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_erf_in_cache_blocks_equals_one_pass(dtype):
    # Large float16/float32 inputs are evaluated block by block (ops/_erf.py); each element's value
    # must be the one a single pass gives, also for a strided input and a ragged last block.
    from tensor.ops._erf import _ERF_BLOCK, _erf_single, _erf_single_block

    a = (data(3, _ERF_BLOCK + 7) * 3).astype(dtype)
    for values in (a, a[:, ::2].T):
        got = _erf_single(values)
        assert got.shape == values.shape and got.dtype == dtype
        np.testing.assert_array_equal(got, _erf_single_block(values).astype(dtype))
        np.testing.assert_array_equal(tensor.as_tensor(values).erf().numpy(), got)


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "sin", "tanh", "sigmoid", "erf", "gelu", "reciprocal", "rsqrt"])
def test_integer_input_gives_default_float(device, op):
    x = make(np.array([1, 2, 3]), device)
    y = getattr(x, op)()
    assert y.dtype == tensor.get_default_dtype()
    expected = getattr(make(np.array([1.0, 2.0, 3.0], dtype=np.float32), device), op)()
    np.testing.assert_allclose(to_numpy(y), to_numpy(expected))


@pytest.mark.parametrize("op", ["abs", "sign", "square", "relu", "floor", "ceil", "trunc", "round"])
def test_integer_input_keeps_its_dtype(device, op):
    a = np.array([-3, 0, 4], dtype=np.int32)
    y = getattr(make(a, device), op)()
    assert y.dtype == tensor.int32
    expected = {"abs": np.abs(a), "sign": np.sign(a), "square": a * a, "relu": np.maximum(a, 0)}.get(op, a)
    np.testing.assert_array_equal(to_numpy(y), expected)


@pytest.mark.parametrize("op", ["floor", "ceil", "trunc", "round", "sign"])
def test_piecewise_constant_ops_give_zero_gradient(device, op):
    x = make(data(2, 3), device, requires_grad=True)
    (getattr(x, op)() * 3).sum().backward()
    assert x.grad is not None
    np.testing.assert_array_equal(to_numpy(x.grad), np.zeros((2, 3)))


def test_round_halves_to_even_like_torch(device):
    a = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.25, 0.35])
    np.testing.assert_array_equal(to_numpy(make(a, device).round()), [-2, -2, -0, 0, 2, 2, 0, 0])
    np.testing.assert_allclose(to_numpy(make(a, device).round(decimals=1)), np.round(a, 1))


def test_free_functions_are_the_methods(device):
    x = make(data(3), device)
    for name in ("exp", "sigmoid", "gelu", "clamp", "erf"):
        args = (0.0, 1.0) if name == "clamp" else ()
        np.testing.assert_array_equal(to_numpy(getattr(tensor, name)(x, *args)), to_numpy(getattr(x, name)(*args)))


# ------------------------------------------------------------------------------------------- clamp
@pytest.mark.parametrize(
    "shape_x,shape_lo,shape_hi",
    [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (3, 1)), ((4,), (3, 1), ()), ((2, 1, 4), (3, 1), (1, 4))],
)
def test_clamp_with_tensor_bounds_broadcasts(device, shape_x, shape_lo, shape_hi):
    x, lo, hi = data(*shape_x) * 2, data(*shape_lo, seed=1) - 0.5, data(*shape_hi, seed=2) + 0.5
    check_forward(lambda x, lo, hi: x.clamp(lo, hi), lambda a, l, h: np.minimum(np.maximum(a, l), h), [x, lo, hi], device)
    check_grad(lambda x, lo, hi: x.clamp(lo, hi), [x, lo, hi], device)
    check_grad(lambda x, lo: x.clamp(min=lo), [x, lo], device)
    check_grad(lambda x, hi: tensor.clamp(x, max=hi), [x, hi], device)


def test_clamp_gradients_match_torch_with_crossed_bounds(device):
    torch = pytest.importorskip("torch")
    a, lo, hi = data(4, 5) * 2, data(4, 5, seed=1), data(5, seed=2)  # lo > hi in places
    tensors = [make(v, device, requires_grad=True) for v in (a, lo, hi)]
    reference = [torch.tensor(v, requires_grad=True) for v in (a, lo, hi)]
    tensors[0].clamp(tensors[1], tensors[2]).sum().backward()
    torch.clamp(*reference).sum().backward()
    for ours, theirs in zip(tensors, reference):
        np.testing.assert_array_equal(to_numpy(ours.grad), theirs.grad.numpy())


def test_clamp_dtypes_and_errors(device):
    ints = make(np.array([-2, 0, 3]), device)
    assert ints.clamp(-1, 1).dtype == tensor.int64
    y = ints.clamp(min=0.5)  # a float bound makes the result float, as in PyTorch
    assert y.dtype == tensor.float32
    np.testing.assert_array_equal(to_numpy(y), [0.5, 0.5, 3.0])
    with pytest.raises(ValueError, match="at least one of min and max"):
        ints.clamp()
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        make(data(2), device).gelu(approximate="fast")
    with pytest.raises(TypeError, match="expected a Tensor, got float"):
        tensor.exp(2.0)


def test_nan_propagates(device):
    x = make(np.array([np.nan, 1.0]), device)
    for y in (x.relu(), x.clamp(0, 2), x.sigmoid(), x.gelu(), x.abs(), x.erf()):
        assert np.isnan(to_numpy(y)[0])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradient_is_finite_for_huge_inputs(device, approximate):
    for dtype in (np.float16, np.float32, np.float64):
        x = make(np.array([-6e4, -300.0, 300.0, 6e4]).astype(dtype), device, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            x.gelu(approximate=approximate).sum().backward()
        np.testing.assert_array_equal(to_numpy(x.grad), [0, 0, 1, 1])


@pytest.mark.parametrize("shape", [(40, 40), (3, 700), (1030, 1030)], ids=["1600", "2100", "over_limit"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_activations_against_constant_buffers(device, shape, dtype):
    # Mid-sized NumPy inputs take filled_like's full-array constants (relu's zero, sigmoid's clamp),
    # the largest its 0-d form; both must agree with NumPy, also for a strided input.
    a = (data(*shape) * 50).astype(dtype)
    for values in (a, a[:, ::2]):
        x = tensor.as_tensor(values, device=device)
        np.testing.assert_array_equal(to_numpy(x.relu()), np.maximum(values, 0))
        np.testing.assert_array_equal(to_numpy(x.leaky_relu(0.5)), np.where(values > 0, values, values * dtype(0.5)))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sigmoid = to_numpy(x.sigmoid())
        # float16 caps -x at 11 (e^11 is near its largest value): sigmoid bottoms out at a subnormal 1.7e-5
        atol = 2e-5 if dtype == np.float16 else 1e-7
        np.testing.assert_allclose(sigmoid, np_sigmoid(values.astype(np.float64)), rtol=2e-3, atol=atol)


def test_filled_like_is_a_read_only_constant():
    from tensor.ops._util import FILLED_LIMIT, FILLED_MIN, filled_like

    x = np.ones((50, 60), np.float32)
    c = filled_like(x, 2.5)
    assert c.shape == x.shape and c.dtype == np.float32 and not c.flags.writeable
    assert (c == 2.5).all()
    with pytest.raises(ValueError):
        c[0, 0] = 1
    bigger = filled_like(np.ones(3 * 4096, np.float32), 2.5)  # the buffer grows; old views stay valid
    assert bigger.shape == (3 * 4096,) and (bigger == 2.5).all() and (c == 2.5).all()
    assert filled_like(np.ones(FILLED_MIN - 1), 2.5).shape == ()  # small: a 0-d array
    assert filled_like(np.ones(FILLED_LIMIT + 1, np.float16), 2.5).shape == ()  # huge: no buffer
    assert filled_like(x.astype(np.float64), 2.5).dtype == np.float64
