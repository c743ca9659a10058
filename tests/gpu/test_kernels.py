"""The fused CuPy kernels (tensor/kernels) against the NumPy path, through the public functions.

Each case runs an op on cuda (the fused kernels) and on the CPU in float64 (the NumPy path, as the
reference) on the same float16/32/64-rounded inputs, and compares the output and the gradients of
the float inputs under a random weighting of the output. Row lengths cover both launch layouts:
warp slices (rows of at most 1024: powers of two and not) and whole blocks (longer rows), with
single elements and many rows. Gradients are checked by finite differences in float64 on cuda too.
Skipped without CuPy and a GPU (see conftest.py).
"""
import numpy as np
import pytest

import tensor
import tensor.nn.functional as F
from tensor.autograd import gradcheck
from tensor.random import bernoulli_mask

from kernel_cases import CONVS, POOLS

DTYPES = [np.float16, np.float32, np.float64]
# max |got - ref| / max(max |ref|, 1e-3): float16 rounds every stored element to 11 bits
TOLERANCE = {np.float16: 4e-3, np.float32: 2e-5, np.float64: 1e-11}
ROWS = [(1, 1), (7, 10), (64, 32), (33, 100), (5, 1024), (3, 1025), (4, 3000), (2, 40000), (2, 3, 17)]


# ------------------------------------------------------------------------------------ helpers


def run(fn, arrays, device, dtype):
    """[output, gradient of each float input (None for the others)] as NumPy arrays; the output is
    weighted by random values rounded to `dtype` before the backward pass."""
    inputs = [tensor.tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*inputs)
    weight = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(dtype).astype(out.dtype)
    (out * tensor.tensor(weight, device=device)).sum().backward()
    grads = [t.grad.cpu().numpy() if t.requires_grad and t.grad is not None else None for t in inputs]
    return [out.detach().cpu().numpy()] + grads, out


def compare(fn, arrays, dtype, device, floor=1e-3):
    """Run fn on `device` in `dtype` and on the CPU in float64; assert they agree; return the output.
    Errors are relative to the largest reference value, or to `floor` where every value is smaller."""
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    got, out = run(fn, arrays, device, dtype)
    want, _ = run(fn, [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays], "cpu", dtype)
    for index, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None, index
            continue
        assert g.dtype == dtype and g.shape == w.shape, (index, g.dtype, g.shape, w.shape)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"NaN pattern of result {index}")
        g, w = g[~np.isnan(g)].astype(np.float64), w[~np.isnan(w)]
        error = np.max(np.abs(g - w), initial=0.0) / max(np.max(np.abs(w), initial=0.0), floor)
        assert error < TOLERANCE[dtype], f"result {index}: relative error {error:.2e}"
    return out


def logits(rng, shape, scale=3.0):
    return rng.standard_normal(shape) * scale


# ------------------------------------------------------------------------------------ softmax


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", ROWS, ids=str)
@pytest.mark.parametrize("op", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_matches_numpy(op, shape, dtype, device, rng):
    out = compare(lambda x: op(x, dim=-1), [logits(rng, shape)], dtype, device)
    assert out.grad_fn.fused


@pytest.mark.parametrize("op", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_special_values_as_numpy(op, device):
    inf, nan = np.inf, np.nan
    x = np.array([[0, -inf, 1], [-inf, -inf, -inf], [inf, 0, 1], [nan, 0, 1], [-inf, 2, -inf], [1e4, 1e4 - 1, -1e4]],
                 np.float32)
    with np.errstate(all="ignore"):
        want = op(tensor.tensor(x), dim=-1).numpy()
    got = op(tensor.tensor(x, device=device), dim=-1).cpu().numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-6, atol=1e-6)


def test_softmax_other_dims_and_strides(device, rng):
    x = rng.standard_normal((6, 40, 5)).astype(np.float32)
    on_gpu = tensor.tensor(x, device=device, requires_grad=True)
    for dim in (0, 1):  # not the last dim: the composed path
        out = F.softmax(on_gpu, dim=dim)
        assert not out.grad_fn.fused
        np.testing.assert_allclose(out.detach().cpu().numpy(), F.softmax(tensor.tensor(x), dim=dim).numpy(), rtol=1e-5)
    strided = on_gpu.transpose(0, 2)  # last dim not contiguous: copied, then fused
    np.testing.assert_allclose(F.log_softmax(strided, dim=-1).detach().cpu().numpy(),
                               F.log_softmax(tensor.tensor(x).transpose(0, 2), dim=-1).numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------ cross-entropy

CE_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.1},
    {"weight": True},
    {"weight": True, "label_smoothing": 0.2, "reduction": "none"},
    {"ignore": True},
    {"ignore": True, "weight": True, "label_smoothing": 0.05},
]


def cross_entropy_case(rng, shape, options):
    """(fn, arrays) for F.cross_entropy on (N, C) logits with the options of one CE_OPTIONS entry."""
    options = dict(options)
    n, classes = shape
    target = rng.integers(0, classes, n)
    if options.pop("ignore", False):
        target[1::2] = -100  # every other row ignored; row 0 always counts
    arrays = [logits(rng, shape), target]
    if options.pop("weight", False):
        arrays.append(rng.random(classes) + 0.5)
        return (lambda x, t, w: F.cross_entropy(x, t, weight=w, **options)), arrays
    return (lambda x, t: F.cross_entropy(x, t, **options)), arrays


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", [s for s in ROWS if len(s) == 2], ids=str)
@pytest.mark.parametrize("options", CE_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_cross_entropy_matches_numpy(options, shape, dtype, device, rng):
    fn, arrays = cross_entropy_case(rng, shape, options)
    loss = compare(fn, arrays, dtype, device)
    assert type(loss.grad_fn).__name__ == "FusedCrossEntropy"


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_unbatched(reduction, device, rng):
    x, t = logits(rng, (13,)), np.array(4)
    compare(lambda a, b: F.cross_entropy(a, b, reduction=reduction), [x, t], np.float32, device)


def test_cross_entropy_large_logits_stay_exact(device):
    x = np.array([[1e4, 1e4 - 1.0, 0.0]], np.float32)
    got = F.cross_entropy(tensor.tensor(x, device=device), tensor.tensor([1], device=device)).item()
    assert got == pytest.approx(1.0 + np.log1p(np.exp(-1.0)), rel=1e-6)


def test_cross_entropy_out_of_range_target_is_nan_on_gpu(device, rng):
    # A device-side check cannot raise without a sync per step: the row's loss turns NaN instead.
    x = tensor.tensor(logits(rng, (3, 5)).astype(np.float32), device=device, requires_grad=True)
    loss = F.cross_entropy(x, tensor.tensor([0, 7, 1], device=device))
    assert np.isnan(loss.item())


def test_cross_entropy_all_ignored_gives_nan_loss_and_zero_grad(device, rng):
    x = tensor.tensor(logits(rng, (3, 5)).astype(np.float32), device=device, requires_grad=True)
    loss = F.cross_entropy(x, tensor.tensor([-100, -100, -100], device=device))
    loss.backward()
    assert np.isnan(loss.item())  # 0 / 0, as in PyTorch
    assert not x.grad.cpu().numpy().any()  # PyTorch's gradient too


# ------------------------------------------------------------------------------------ layer norm


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape", ROWS, ids=str)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_layer_norm_matches_numpy(affine, shape, dtype, device, rng):
    cols = shape[-1]
    x = rng.standard_normal(shape) * 2 + 3
    # With one column x's gradient is exactly 0, the difference of terms of size rstd * |g * w|
    # (~300 here): measured against 1, not 1e-3, float32 rounding of those terms fits the tolerance.
    floor = 1.0 if cols == 1 else 1e-3
    if affine:
        arrays = [x, rng.random(cols) + 0.5, rng.standard_normal(cols)]
        out = compare(lambda a, w, b: F.layer_norm(a, (cols,), w, b), arrays, dtype, device, floor=floor)
    else:
        out = compare(lambda a: F.layer_norm(a, (cols,)), [x], dtype, device, floor=floor)
    assert out.grad_fn.fused


def test_layer_norm_over_two_dims_and_many_rows(device, rng):
    x = rng.standard_normal((70, 4, 6))
    params = [rng.random((4, 6)) + 0.5, rng.standard_normal((4, 6))]
    compare(lambda a, w, b: F.layer_norm(a, (4, 6), w, b), [x, *params], np.float32, device)
    many = rng.standard_normal((9000, 12))  # the weight/bias column sums span several row chunks
    compare(lambda a, w, b: F.layer_norm(a, (12,), w, b), [many, rng.random(12), rng.random(12)], np.float32, device)


def test_layer_norm_is_stable_far_from_zero(device, rng):
    # E[x^2] - E[x]^2 in float32 would lose every digit of a unit variance at mean 1e4; Welford does not.
    x = (rng.standard_normal((8, 512)) + 1e4).astype(np.float32)
    got = F.layer_norm(tensor.tensor(x, device=device), (512,)).cpu().numpy()
    want = F.layer_norm(tensor.tensor(x.astype(np.float64)), (512,)).numpy()
    np.testing.assert_allclose(got, want, atol=5e-3)


def test_layer_norm_with_other_dtype_parameters_takes_the_composed_path(device, rng):
    x = tensor.tensor(rng.standard_normal((4, 8)).astype(np.float16), device=device, requires_grad=True)
    w = tensor.tensor(np.ones(8, np.float32), device=device, requires_grad=True)
    out = F.layer_norm(x, (8,), w)
    assert not out.grad_fn.fused and out.dtype == tensor.float32  # NumPy's promotion, as on the CPU


# ------------------------------------------------------------------------------------ gradcheck


@pytest.mark.parametrize("shape", [(3, 5), (2, 1030)], ids=str)
def test_fused_gradients_by_finite_differences(shape, device, rng):
    def t(a, grad=True):
        return tensor.tensor(a, device=device, requires_grad=grad)

    x = t(logits(rng, shape))
    assert gradcheck(lambda a: F.softmax(a, dim=-1), [x])
    assert gradcheck(lambda a: F.log_softmax(a, dim=-1), [x])
    target = t(np.array([1, -100, 0][: shape[0]] if shape[0] == 3 else [3, 0]), grad=False)
    weight = t(rng.random(shape[1]) + 0.5, grad=False)
    assert gradcheck(lambda a: F.cross_entropy(a, target, weight=weight, label_smoothing=0.1), [x])
    w, b = t(rng.random(shape[1]) + 0.5), t(rng.standard_normal(shape[1]))
    assert gradcheck(lambda a, w, b: F.layer_norm(a, (shape[1],), w, b), [x, w, b])


# ------------------------------------------------------------------------------------ dropout


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_dropout_matches_the_unfused_mask_bit_for_bit(dtype, device, rng):
    x_host = rng.standard_normal((37, 129)).astype(dtype)
    x = tensor.tensor(x_host, device=device, requires_grad=True)
    p = 0.3
    out = F.dropout(x, p=p, generator=tensor.Generator(device).manual_seed(7))
    assert type(out.grad_fn).__name__ == "FusedDropout"
    # the unfused path's mask, from a generator in the same state (the same doubles as dropout() forms)
    mask = bernoulli_mask(x_host.shape, 1.0 - p, x_host.dtype, device, tensor.Generator(device).manual_seed(7))
    mask *= 1.0 / (1.0 - p)
    np.testing.assert_array_equal(out.detach().cpu().numpy(), (x.data * mask).get())
    g = rng.standard_normal(x_host.shape).astype(dtype)
    out.backward(tensor.tensor(g, device=device))
    np.testing.assert_array_equal(x.grad.cpu().numpy(), (tensor.tensor(g, device=device).data * mask).get())
    kept = float((mask != 0).mean().get())
    assert 0.65 < kept < 0.75


def test_dropout_keeps_nan_where_dropped_and_is_identity_in_eval(device):
    x = tensor.tensor(np.full(4096, np.nan, np.float32), device=device)
    assert np.isnan(F.dropout(x, 0.5).cpu().numpy()).all()  # NaN * 0 stays NaN, as x * mask does
    y = tensor.ones(10, device=device)
    assert F.dropout(y, 0.5, training=False) is y


# ------------------------------------------------------------------------------------ max pool

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", POOLS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_max_pool_matches_numpy(options, dtype, device, rng):
    x = rng.standard_normal((3, 4, 9, 8))
    out = compare(lambda a: F.max_pool2d(a, **options), [x], dtype, device)
    assert out.grad_fn.fused
    # a convolution's output is laid out channels-outermost: the kernel reads it through its strides
    cnhw = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
    compare(lambda a: F.max_pool2d(a.permute(1, 0, 2, 3), **options), [cnhw], dtype, device)


def test_max_pool_nan_and_unbatched_and_large(device, rng):
    x = rng.standard_normal((1, 2, 4, 4))
    x[0, 0, 1, 1] = x[0, 1, 2, 3] = np.nan
    compare(lambda a: F.max_pool2d(a, 3, 1), [x], np.float32, device)
    compare(lambda a: F.max_pool2d(a, 3, 1, 1), [rng.standard_normal((2, 5, 5))], np.float32, device)
    compare(lambda a: F.max_pool2d(a, 2), [rng.standard_normal((64, 16, 28, 28))], np.float32, device)


def test_max_pool_with_indices_takes_the_numpy_path_and_agrees(device, rng):
    x = tensor.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), device=device)
    out, indices = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(out.cpu().numpy(), F.max_pool2d(x, 2).cpu().numpy())
    assert indices.dtype == tensor.int64


# ------------------------------------------------------------------------------------ convolutions

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", CONVS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c[0].items()) + f",k{c[1]}")
def test_conv2d_columns_match_numpy(case, dtype, device, rng):
    options, k = case
    x, b = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal(6)
    w = rng.standard_normal((6, 4 // options.get("groups", 1), k, k))
    compare(lambda a, w, b: F.conv2d(a, w, b, **options), [x, w, b], dtype, device)
    # a convolution's output is laid out channels-outermost: im2col reads it through its strides
    cnhw = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
    compare(lambda a, w, b: F.conv2d(a.permute(1, 0, 2, 3), w, b, **options), [cnhw, w, b], dtype, device)


def test_conv_transpose_and_conv1d_columns_match_numpy(device, rng):
    x, w = rng.standard_normal((2, 4, 5, 4)), rng.standard_normal((4, 3, 3, 3))
    compare(lambda a, w: F.conv_transpose2d(a, w, stride=2, padding=1, output_padding=1), [x, w], np.float32, device)
    compare(lambda a, w: F.conv1d(a, w, padding=2, dilation=2),
            [rng.standard_normal((3, 2, 9)), rng.standard_normal((5, 2, 3))], np.float32, device)
    big = [rng.standard_normal((64, 16, 28, 28)), rng.standard_normal((32, 16, 3, 3)), rng.standard_normal(32)]
    compare(lambda a, w, b: F.conv2d(a, w, b, padding=1), big, np.float32, device)
