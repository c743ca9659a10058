"""slice/select/diagonal_scatter, renorm, dist, msort, split_with_sizes, broadcast_to, isposinf/isneginf/
isreal, gcd/lcm, frexp and the introspection helpers, against PyTorch (values and gradients)."""
import numpy as np
import pytest

import tensor

from helpers import check_grad, compare_with_torch, make, to_numpy

torch = pytest.importorskip("torch")
rng = np.random.default_rng(3)
X = rng.standard_normal((3, 4))

SCATTERS = [
    ("slice_scatter", rng.standard_normal((3, 2)), (1, 1, 4, 2)),
    ("select_scatter", rng.standard_normal(3), (1, 2)),
    ("diagonal_scatter", rng.standard_normal(3), (1,)),
]


@pytest.mark.parametrize("name,src,args", SCATTERS, ids=[c[0] for c in SCATTERS])
def test_view_scatters_match_torch_with_gradients(device, name, src, args):
    compare_with_torch(lambda x, s: getattr(tensor, name)(x, s, *args),
                       lambda x, s: getattr(torch, name)(x, s, *args), [X, src], device)
    check_grad(lambda x, s: getattr(tensor, name)(x, s, *args), [X, src], device)
    x = make(X, device)
    getattr(tensor, name)(x, make(src, device), *args)
    np.testing.assert_array_equal(to_numpy(x), X)  # out of place


def test_view_scatter_refuses_a_src_of_the_wrong_shape(device):
    with pytest.raises(tensor.ShapeError, match=r"src has shape \(2,\) but the view it fills has shape \(3,\)"):
        tensor.select_scatter(make(X, device), make(np.ones(2), device), 1, 0)


@pytest.mark.parametrize("p,dim,maxnorm", [(2, 0, 1.5), (1, 1, 2.0), (3.0, -1, 0.5)])
def test_renorm_matches_torch(device, p, dim, maxnorm):
    compare_with_torch(lambda x: x.renorm(p, dim, maxnorm), lambda x: x.renorm(p, dim, maxnorm), [X], device)
    x = make(X, device)
    x.renorm_(p, dim, maxnorm)
    np.testing.assert_allclose(to_numpy(x), torch.tensor(X).renorm(p, dim, maxnorm).numpy(), rtol=1e-12)


def test_dist_msort_split_with_sizes_broadcast_to(device):
    other = rng.standard_normal(4)
    for p in (2, 1, float("inf"), 3.5):
        compare_with_torch(lambda a, b: tensor.dist(a, b, p), lambda a, b: torch.dist(a, b, p), [X, other], device)
    zero_norm = tensor.dist(make(X, device), make(other, device), 0)  # the count of differing elements
    assert zero_norm.item() == torch.dist(torch.tensor(X), torch.tensor(other), 0).item() == 12
    np.testing.assert_array_equal(to_numpy(make(X, device).msort()), torch.tensor(X).msort().numpy())
    pieces = make(X, device).split_with_sizes([1, 3], 1)
    assert [tuple(p.shape) for p in pieces] == [(3, 1), (3, 3)]
    assert tuple(make(X[0], device).broadcast_to(2, 4).shape) == (2, 4)


def test_predicates_and_integer_math(device):
    x = make(np.array([1.0, np.inf, -np.inf, np.nan]), device)
    assert to_numpy(tensor.isposinf(x)).tolist() == [False, True, False, False]
    assert to_numpy(x.isneginf()).tolist() == [False, False, True, False]
    assert to_numpy(x.isreal()).all()
    a, b = np.array([12, -18, 0, 7]), np.array([8, 12, 0, -3])
    for name in ("gcd", "lcm"):
        got = to_numpy(getattr(tensor, name)(make(a, device), make(b, device)))
        np.testing.assert_array_equal(got, getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy())
    with pytest.raises(tensor.DTypeError, match="gcd: needs integer tensors"):
        tensor.gcd(make(X, device), 2)
    y = make(a, device)
    y.gcd_(make(b, device))
    assert to_numpy(y).tolist() == [4, 6, 0, 1]
    # 1e-40 is a float32 subnormal, which CuPy's float32 kernels flush to zero (README)
    values = [8.0, -0.3, 0.0, 1e-40 if device == "cpu" else 1e-30]
    mantissa, exponent = tensor.frexp(make(np.array(values, dtype=np.float32), device))
    want = torch.frexp(torch.tensor(values))
    np.testing.assert_array_equal(to_numpy(mantissa), want.mantissa.numpy())
    np.testing.assert_array_equal(to_numpy(exponent), want.exponent.numpy())
    assert exponent.dtype == tensor.int32


def test_introspection_matches_torch(device):
    for dtype in ("float32", "float64", "int64", "int32", "uint8", "bool"):
        ours, theirs = tensor.zeros(2, 3, dtype=getattr(tensor, dtype), device=device), torch.zeros(2, 3, dtype=getattr(torch, dtype))
        assert (ours.is_signed(), ours.itemsize, ours.nbytes) == (theirs.is_signed(), theirs.itemsize, theirs.nbytes)
    x = make(X, device, requires_grad=True)
    y = x * 2
    assert not y.retains_grad
    y.retain_grad()
    assert y.retains_grad and x.is_same_size(y) and not x.is_inference()
    assert x.is_cpu == (device == "cpu")
