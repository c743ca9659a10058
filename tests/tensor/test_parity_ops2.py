"""PyTorch parity ops, second batch (sequence.py, ranking.py, elementwise.py, distance.py, inplace_shape.py,
tensor_split in join.py): forward against NumPy, gradients by finite differences in float64, PyTorch on the
same values where the semantics are subtle."""
import math

import numpy as np
import pytest

import tensor

from helpers import check_forward, check_grad, make, noncontiguous, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def torch_or_skip():
    return pytest.importorskip("torch")


# ------------------------------------------------------------------------------------ repeat_interleave
def test_repeat_interleave_forward_and_grad(device):
    a = data(2, 3)
    check_forward(lambda x: x.repeat_interleave(2), lambda a: np.repeat(a, 2), [a], device)
    check_forward(lambda x: x.repeat_interleave(3, dim=1), lambda a: np.repeat(a, 3, axis=1), [a], device)
    counts = np.array([1, 0, 2])
    check_forward(lambda x: x.repeat_interleave(make(counts, device), dim=-1),
                  lambda a: np.repeat(a, counts, axis=1), [a], device)
    check_grad(lambda x: x.repeat_interleave(make(counts, device), dim=1) * 2, [a], device)
    check_grad(lambda x: x.repeat_interleave(2), [noncontiguous(a)], device)
    out = tensor.repeat_interleave(make(np.array([2, 0, 1]), device))
    assert to_numpy(out).tolist() == [0, 0, 2]


def test_repeat_interleave_errors(device):
    x = make(data(2, 3), device)
    with pytest.raises(tensor.ShapeError, match="repeats has 2 counts but the dim has size 3"):
        x.repeat_interleave(make(np.array([1, 2]), device), dim=1)
    with pytest.raises(ValueError, match="repeats must be non-negative, got -1"):
        x.repeat_interleave(-1)


# ----------------------------------------------------------------------------------- tensor_split & co
@pytest.mark.parametrize("spec", [3, 4, [1, 4], [3, 1], [-2], (0, 9)])
def test_tensor_split_matches_numpy_and_torch_slicing(device, spec):
    a = data(2, 7)
    pieces = make(a, device).tensor_split(spec, dim=1)
    expected = np.array_split(a, spec, axis=1) if isinstance(spec, int) else \
        [a[:, s:e] for s, e in zip([0] + list(spec), list(spec) + [None])]
    assert len(pieces) == len(expected)
    for got, want in zip(pieces, expected):
        np.testing.assert_allclose(to_numpy(got), want)


def test_tensor_split_grad_with_overlapping_pieces(device):
    a = data(7, 2)
    check_grad(lambda x: tensor.cat([p * (i + 1) for i, p in enumerate(x.tensor_split([4, 2]))]), [a], device)
    check_grad(lambda x: x.tensor_split(3)[1].exp(), [a], device)


def test_hsplit_vsplit(device):
    a = data(4, 6)
    x = make(a, device)
    assert [tuple(p.shape) for p in x.hsplit(3)] == [(4, 2)] * 3
    assert [tuple(p.shape) for p in x.vsplit([1])] == [(1, 6), (3, 6)]
    assert [tuple(p.shape) for p in make(data(6), device).hsplit(2)] == [(3,), (3,)]
    with pytest.raises(tensor.ShapeError, match="hsplit: dim 1 of size 6 cannot be split into 4 equal parts"):
        x.hsplit(4)
    with pytest.raises(tensor.ShapeError, match=r"vsplit: expects a tensor with at least 2 dimensions, got shape \(6"):
        make(data(6), device).vsplit(2)
    check_grad(lambda t: t.vsplit(2)[1] * 3, [a], device)


# ------------------------------------------------------------------------------------------------- diff
@pytest.mark.parametrize("n, dim", [(1, -1), (2, 0), (3, 1), (0, 0)])
def test_diff_forward_and_grad(device, n, dim):
    a = data(4, 5)
    check_forward(lambda x: x.diff(n, dim), lambda a: np.diff(a, n, dim), [a], device)
    check_grad(lambda x: x.diff(n, dim), [a], device)


def test_diff_prepend_append_and_bool(device):
    a, pre, app = data(3, 4), data(3, 1, seed=1), data(3, 2, seed=2)
    check_forward(lambda x, p, q: tensor.diff(x, 1, 1, p, q), lambda a, p, q: np.diff(a, 1, 1, p, q),
                  [a, pre, app], device)
    check_grad(lambda x, p, q: x.diff(2, dim=1, prepend=p, append=q), [a, pre, app], device)
    check_forward(lambda x: x.diff(prepend=0.5), lambda a: np.diff(a, prepend=0.5), [a], device)
    flags = make(np.array([True, False, False, True]), device)
    assert to_numpy(flags.diff()).tolist() == [True, False, True]


# ---------------------------------------------------------------------------------------- logcumsumexp
def test_logcumsumexp_forward_and_grad(device):
    a = data(3, 17)
    check_forward(lambda x: x.logcumsumexp(1), lambda a: np.logaddexp.accumulate(a, axis=1), [a], device)
    check_forward(lambda x: x.logcumsumexp(0), lambda a: np.log(np.cumsum(np.exp(a), axis=0)), [a], device)
    check_grad(lambda x: x.logcumsumexp(1), [a], device)
    check_grad(lambda x: tensor.logcumsumexp(x, 0) * x, [noncontiguous(a)], device)


def test_logcumsumexp_is_stable_like_torch(device):
    torch = torch_or_skip()
    a = np.array([[1000.0, -1000.0, 1001.0, 5.0], [-1000.0, 0.0, -2000.0, 800.0]])
    x = make(a, device, requires_grad=True)
    g = data(2, 4, seed=3)
    out = x.logcumsumexp(1)
    (out * make(g, device)).sum().backward()
    t = torch.tensor(a, requires_grad=True)
    t_out = t.logcumsumexp(1)
    (t_out * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(to_numpy(out), t_out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(x.grad), t.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------- unique
def test_unique_matches_torch(device):
    torch = torch_or_skip()
    a = np.array([[3, 1, 3], [2, 1, 7]])
    x = make(a, device)
    values, inverse, counts = x.unique(return_inverse=True, return_counts=True)
    t_values, t_inverse, t_counts = torch.tensor(a).unique(return_inverse=True, return_counts=True)
    assert to_numpy(values).tolist() == t_values.tolist()
    assert to_numpy(inverse).tolist() == t_inverse.tolist()
    assert to_numpy(counts).tolist() == t_counts.tolist()
    assert inverse.dtype == tensor.int64 and values.dtype == x.dtype
    assert to_numpy(tensor.unique(x, sorted=False)).tolist() == [1, 2, 3, 7]


def test_unique_slices_along_dim_match_torch(device):
    torch = torch_or_skip()
    a = np.array([[[1, 2], [0, 5]], [[1, 2], [0, 5]], [[0, 9], [3, 3]], [[1, 2], [0, 4]]])
    for dim in (0, 1, 2, -1):
        got = make(a, device).unique(dim=dim, return_inverse=True, return_counts=True)
        want = torch.tensor(a).unique(dim=dim, return_inverse=True, return_counts=True)
        for g, w in zip(got, want):
            assert to_numpy(g).tolist() == w.tolist() and g.dtype == tensor.int64
    pairs = np.array([[3, 1], [0, 2], [3, 1], [0, 1]])  # deduplicating (user, item) pairs
    got = tensor.unique(make(pairs, device), dim=0)
    assert to_numpy(got).tolist() == torch.unique(torch.tensor(pairs), dim=0).tolist()
    flags = np.array([[True, False], [True, False], [False, False]])
    got = make(flags, device).unique(dim=0, return_counts=True)
    want = torch.tensor(flags).unique(dim=0, return_counts=True)
    assert [to_numpy(g).tolist() for g in got] == [w.tolist() for w in want]


# ---------------------------------------------------------------------------------------- median, mode
def test_median_ties_and_nan_match_torch(device):
    torch = torch_or_skip()
    a = np.array([[1.0, 2.0, 2.0, 1.0], [3.0, 3.0, 1.0, 1.0], [4.0, math.nan, 0.0, 2.0]])
    x = make(a, device)
    t = torch.tensor(a)
    values, indices = x.median(1)
    t_values, t_indices = t.median(1)
    np.testing.assert_array_equal(to_numpy(values), t_values.numpy())
    np.testing.assert_array_equal(to_numpy(indices), t_indices.numpy())
    assert float(make(a[:2], device).median()) == float(t[:2].median()) == 1.0
    assert math.isnan(float(x.median()))
    kept = x.median(0, keepdim=True)
    assert tuple(kept.values.shape) == (1, 4) and tuple(kept.indices.shape) == (1, 4)


def test_median_forward_and_grad(device):
    a = data(4, 5)
    check_forward(lambda x: x.median(), lambda a: np.sort(a, axis=None)[(a.size - 1) // 2], [a], device)
    check_forward(lambda x: x.median(0).values, lambda a: np.sort(a, axis=0)[1], [a], device)
    check_grad(lambda x: x.median(), [a], device)
    check_grad(lambda x: x.median(dim=1).values * 2, [noncontiguous(a)], device)


def test_mode_matches_torch(device):
    torch = torch_or_skip()
    a = np.array([[1.0, 2.0, 2.0, 1.0], [3.0, 3.0, 1.0, 1.0], [5.0, 4.0, 5.0, 0.0], [2.0, 9.0, 8.0, 7.0]])
    for dim in (1, 0):
        values, indices = make(a, device).mode(dim)
        t_values, t_indices = torch.tensor(a).mode(dim)
        np.testing.assert_array_equal(to_numpy(values), t_values.numpy())
        np.testing.assert_array_equal(to_numpy(indices), t_indices.numpy())
    # distinct values (a tie would break under finite differences): the mode is the smallest
    check_grad(lambda x: x.mode(1).values, [data(3, 4)], device)


# ----------------------------------------------------------------------------------- elementwise extras
def test_fmod_frac_sgn_signbit(device):
    a, b = data(3, 4) * 4, data(4, seed=1) + 3
    check_forward(lambda x, y: x.fmod(y), np.fmod, [a, b], device)
    check_forward(lambda x: tensor.fmod(x, -1.5), lambda a: np.fmod(a, -1.5), [a], device)
    check_grad(lambda x, y: x.fmod(y), [a, b], device)
    check_forward(lambda x: x.frac(), lambda a: a - np.trunc(a), [a], device)
    check_grad(lambda x: x.frac(), [a], device)
    check_forward(lambda x: x.sgn(), np.sign, [a], device)
    signs = make(np.array([-1.0, -0.0, 0.0, 2.0]), device).signbit()
    assert to_numpy(signs).tolist() == [True, True, False, False] and signs.dtype == tensor.bool
    with pytest.raises(tensor.DTypeError, match="frac: needs a floating-point tensor, got dtype int64"):
        make(np.array([1, 2]), device).frac()


def test_logit_matches_torch(device):
    torch = torch_or_skip()
    a = np.array([0.0, 0.05, 0.3, 0.7, 0.99, 1.0])
    for eps in (None, 0.1):
        got = to_numpy(make(a, device).logit(eps))
        np.testing.assert_allclose(got, torch.tensor(a).logit(eps).numpy(), rtol=1e-12)
    inside = np.array([0.2, 0.5, 0.8])
    check_grad(lambda x: x.logit(), [inside], device)
    check_grad(lambda x: x.logit(eps=0.1), [np.array([0.05, 0.5, 0.95])], device)
    with pytest.raises(ValueError, match=r"logit: eps must be in \[0, 0.5\], got 0.7"):
        make(a, device).logit(0.7)
    # Without eps the gradient is NaN outside [0, 1] (where logit is NaN) and infinite at its ends, as torch's.
    x = make(np.array([-0.5, 0.0, 0.3, 1.0, 1.5]), device, requires_grad=True)
    x.logit().sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [np.nan, np.inf, 1 / 0.21, np.inf, np.nan])


def test_angle_of_real_numbers(device):
    x = make(np.array([-2.0, -0.0, 0.0, 3.0, np.nan, -np.inf]), device, requires_grad=True)
    np.testing.assert_array_equal(to_numpy(x.angle()), [np.pi, 0.0, 0.0, 0.0, np.nan, np.pi])
    x.angle().sum().backward()
    assert to_numpy(x.grad).tolist() == [0.0] * 6
    assert tensor.angle(make(np.array([-1, 2]), device)).dtype == tensor.float32


def test_float_power(device):
    a = np.abs(data(3)) + 0.5
    out = check_forward(lambda x: x.float_power(2.5), lambda a: a ** 2.5, [a.astype(np.float32)], device)
    assert out.dtype == tensor.float64
    ints = make(np.array([1, 2, 3]), device)
    assert ints.float_power(2).dtype == tensor.float64 and to_numpy(ints.float_power(2)).tolist() == [1, 4, 9]
    check_grad(lambda x, y: tensor.float_power(x, y), [a, data(3, seed=1)], device)


# ------------------------------------------------------------------------------ searchsorted, bucketize
def test_searchsorted_and_bucketize_match_torch(device):
    torch = torch_or_skip()
    seq = np.array([1, 3, 5, 7, 9])
    vals = np.array([[3, 6, 9], [0, 1, 10]])
    for right in (False, True):
        got = tensor.searchsorted(make(seq, device), make(vals, device), right=right)
        assert to_numpy(got).tolist() == torch.searchsorted(torch.tensor(seq), torch.tensor(vals), right=right).tolist()
        got = tensor.bucketize(make(vals, device), make(seq, device), right=right, out_int32=True)
        assert got.dtype == tensor.int32
        assert to_numpy(got).tolist() == torch.bucketize(torch.tensor(vals), torch.tensor(seq), right=right).tolist()
    rows = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 10.0]])
    queries = np.array([[2.5, 0.0], [5.0, 11.0]])
    got = tensor.searchsorted(make(rows, device), make(queries, device), side="right")
    expected = torch.searchsorted(torch.tensor(rows), torch.tensor(queries), side="right")
    assert to_numpy(got).tolist() == expected.tolist()
    with pytest.raises(tensor.ShapeError, match="do not match the leading dims of sorted_sequence"):
        tensor.searchsorted(make(rows, device), make(np.zeros((3, 2)), device))


# ---------------------------------------------------------------------------------------------- histc
def test_histc_matches_torch(device):
    torch = torch_or_skip()
    a = data(50) * 2
    for bins, lo, hi in ((10, 0, 0), (7, -1, 1), (4, 0, 3)):
        got = make(a, device).histc(bins, lo, hi)
        np.testing.assert_array_equal(to_numpy(got), torch.tensor(a).histc(bins, lo, hi).numpy())
    same = make(np.array([2.0, 2.0]), device).histc(4)
    np.testing.assert_array_equal(to_numpy(same), torch.tensor([2.0, 2.0]).histc(4).numpy())
    with pytest.raises(tensor.DTypeError, match="histc: needs a floating-point tensor"):
        make(np.array([1, 2]), device).histc()


# ---------------------------------------------------------------------------------------------- cdist
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.0, math.inf])
def test_cdist_matches_torch(device, p):
    torch = torch_or_skip()
    a, b = data(2, 4, 3), data(5, 3, seed=1)
    b[1] = a[0, 2]  # a zero distance: no gradient through it, as in PyTorch
    g = data(2, 4, 5, seed=2)
    x, y = make(a, device, requires_grad=True), make(b, device, requires_grad=True)
    out = tensor.cdist(x, y, p=p)
    (out * make(g, device)).sum().backward()
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    t_out = torch.cdist(tx, ty, p=p)
    (t_out * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(to_numpy(out), t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(x.grad), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(to_numpy(y.grad), ty.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("mode", ["use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist"])
def test_cdist_grad(device, mode):
    a, b = data(3, 4), data(5, 4, seed=1)
    check_grad(lambda x, y: tensor.cdist(x, y, compute_mode=mode), [a, b], device)
    check_grad(lambda x, y: tensor.cdist(x, y, p=1.5), [a, b], device)
    np.testing.assert_allclose(to_numpy(tensor.cdist(make(a, device), make(b, device), compute_mode=mode)),
                               np.linalg.norm(a[:, None] - b[None], axis=-1), rtol=1e-10)


def test_cdist_errors(device):
    x, y = make(data(3, 4), device), make(data(5, 3), device)
    with pytest.raises(tensor.ShapeError, match=r"same number of features \(last dim\): 4 != 3"):
        tensor.cdist(x, y)
    with pytest.raises(ValueError, match="p must be non-negative, got -1.0"):
        tensor.cdist(x, x, p=-1)


# ------------------------------------------------------------------------------------ in-place shape ops
def test_inplace_shape_ops_without_graph(device):
    x = make(data(2, 3), device)
    assert x.t_() is x and tuple(x.shape) == (3, 2)
    x.unsqueeze_(1)
    assert tuple(x.shape) == (3, 1, 2)
    x.transpose_(0, 2).squeeze_()
    assert tuple(x.shape) == (2, 3)
    x.squeeze_(0)  # not size 1: kept, as in PyTorch
    assert tuple(x.shape) == (2, 3)
    np.testing.assert_allclose(to_numpy(x), data(2, 3))


def test_inplace_shape_ops_refuse_what_relies_on_the_old_shape(device):
    """A graph, a view or a saved array would disagree with the new shape: the out-of-place form is
    the way (PyTorch changes metadata only and keeps all of them consistent; we do not)."""
    leaf = make(data(2, 3), device, requires_grad=True)
    with pytest.raises(tensor.AutogradError, match="t_: this tensor is part of a graph"):
        leaf.t_()
    with tensor.no_grad():
        leaf.t_()  # a leaf outside any graph: allowed
    assert tuple(leaf.shape) == (3, 2)
    y = leaf * 2
    with tensor.no_grad(), pytest.raises(tensor.AutogradError, match="unsqueeze_: this tensor is part of a graph"):
        y.unsqueeze_(0)
    plain = make(data(2, 3), device)
    view = plain[0]
    with pytest.raises(tensor.AutogradError, match="squeeze_: this tensor has views"):
        plain.squeeze_()
    with pytest.raises(tensor.AutogradError, match="this tensor has views, is a view"):
        view.unsqueeze_(0)
    with pytest.raises(tensor.ShapeError, match="t: expects a tensor with at most 2 dimensions"):
        make(data(2, 2, 2), device).t_()
