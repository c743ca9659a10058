"""tensor.special (torch.special's names) and the special functions behind it that tests/tensor/test_trig.py
does not cover: polygamma, mvlgamma (multigammaln), zeta, ndtr, log_ndtr, entr, xlog1py, i1."""
import numpy as np
import pytest

import tensor
from tensor.autograd import gradgradcheck
from tensor.errors import AutogradError

from helpers import check_grad, compare_with_torch, make, to_numpy

torch = pytest.importorskip("torch")
POSITIVE = np.array([0.2, 0.9, 2.5, 7.0, 31.0])
REAL = np.array([-45.0, -21.0, -19.5, -3.0, -0.4, 0.0, 0.7, 4.0, 12.0])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_polygamma_matches_torch_with_gradients(device, n):
    x = np.concatenate([POSITIVE, [-2.3, -0.5]])
    compare_with_torch(lambda t: tensor.polygamma(n, t), lambda t: torch.polygamma(n, t), [x], device, rtol=1e-9)
    assert np.allclose(to_numpy(make(x, device).polygamma(n)), torch.tensor(x).polygamma(n).numpy(), rtol=1e-9)


def test_polygamma_digamma_and_i0_have_second_derivatives(device):
    x = make(POSITIVE[:4], device, requires_grad=True)  # i0 and i1 of 31 are ~1e12: finite differences lose it
    for fn in (lambda t: tensor.polygamma(2, t), tensor.digamma, tensor.i0, tensor.special.i1):
        assert gradgradcheck(fn, [x])
    with pytest.raises(ValueError, match="polygamma: n must be an int >= 0, got -1"):
        tensor.polygamma(-1, x)


def test_mvlgamma_matches_torch_and_checks_its_domain(device):
    compare_with_torch(lambda t: tensor.mvlgamma(t, 3), lambda t: torch.mvlgamma(t, 3), [POSITIVE + 1.1], device)
    assert tensor.special.multigammaln is tensor.mvlgamma
    with pytest.raises(ValueError, match=r"greater than \(p-1\)/2 = 1.0 for p=3, got a minimum of 0.2"):
        tensor.mvlgamma(make(POSITIVE, device), 3)


def test_zeta_matches_torch_with_the_gradient_for_q(device):
    s = np.array([1.5, 2.0, 3.7, 10.0, 2.0])
    compare_with_torch(lambda q: tensor.special.zeta(make(s, device), q),
                       lambda q: torch.special.zeta(torch.tensor(s), q), [POSITIVE], device, rtol=1e-10)
    with pytest.raises(AutogradError, match="zeta: no gradient for x"):
        tensor.special.zeta(make(s, device, requires_grad=True), make(POSITIVE, device)).sum().backward()


@pytest.mark.parametrize("name", ["ndtr", "log_ndtr", "entr", "i1", "expit", "gammaln", "psi", "erfc", "logit"])
def test_unary_special_functions_match_torch(device, name):
    x = {"entr": np.abs(REAL) + 0.1, "logit": np.array([0.01, 0.3, 0.5, 0.99]), "gammaln": POSITIVE,
         "psi": POSITIVE}.get(name, REAL)
    compare_with_torch(getattr(tensor.special, name), getattr(torch.special, name), [x], device, rtol=1e-9)


def test_log_ndtr_is_finite_far_into_both_tails(device):
    out = to_numpy(tensor.special.log_ndtr(make(np.array([-1e3, -40.0, 40.0]), device)))
    expected = torch.special.log_ndtr(torch.tensor([-1e3, -40.0, 40.0], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=0)
    check_grad(tensor.special.log_ndtr, [REAL], device)


def test_entr_and_xlog1py_edges_match_torch(device):
    x = np.array([-1.0, 0.0, 0.5, np.nan])
    np.testing.assert_array_equal(to_numpy(tensor.special.entr(make(x, device))), torch.special.entr(torch.tensor(x)).numpy())
    a, b = np.array([0.0, 0.0, 2.0, 1.5]), np.array([-1.0, np.nan, 0.5, 3.0])
    np.testing.assert_array_equal(to_numpy(tensor.special.xlog1py(make(a, device), make(b, device))),
                                  torch.special.xlog1py(torch.tensor(a), torch.tensor(b)).numpy())
    compare_with_torch(tensor.special.xlog1py, torch.special.xlog1py, [a[2:] + 0.1, b[2:]], device)


def test_namespace_covers_its_names_like_torch(device):
    x = make(np.array([[0.3, 1.2], [2.0, 0.7]]), device)
    for name in tensor.special.__all__:
        assert hasattr(torch.special, name), name
    np.testing.assert_allclose(to_numpy(tensor.special.softmax(x, 1)), torch.special.softmax(torch.tensor(to_numpy(x)), 1).numpy())
    np.testing.assert_allclose(to_numpy(tensor.special.logsumexp(x, 1)), torch.special.logsumexp(torch.tensor(to_numpy(x)), 1).numpy())
