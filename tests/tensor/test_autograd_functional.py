"""tensor.autograd.functional against finite differences and, where installed, torch.autograd.functional."""
import numpy as np
import pytest

import tensor
import tensor.nn.functional as F
from tensor.autograd import functional as AF
from tensor.errors import AutogradError

try:
    import torch
except ImportError:  # the PyTorch comparisons skip without it
    torch = None


def t64(array, device="cpu", requires_grad=False):
    return tensor.tensor(np.asarray(array, dtype=np.float64), device=device, requires_grad=requires_grad)


def host(x):
    return x.detach().cpu().numpy()


def numerical_jacobian(f, x, eps=1e-6):
    """d f(x) / d x for NumPy f and x, by central differences: shape f(x).shape + x.shape."""
    base = np.asarray(f(x))
    jac = np.zeros(base.shape + x.shape)
    for index in np.ndindex(*x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        jac[(...,) + index] = (np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * eps)
    return jac


def test_jacobian_of_one_input_and_output(device):
    x = np.random.default_rng(0).standard_normal((2, 3))
    jac = AF.jacobian(lambda t: (t * t).sum(1).tanh(), t64(x, device))
    assert tuple(jac.shape) == (2, 2, 3)
    np.testing.assert_allclose(host(jac), numerical_jacobian(lambda a: np.tanh((a * a).sum(1)), x), atol=1e-7)


def test_hessian_matches_finite_differences(device):
    x = np.random.default_rng(1).standard_normal(4)

    def f(t):
        return (t.sin() * t.exp()).sum() + (t[0] * t[1]) ** 2

    hess = AF.hessian(f, t64(x, device))
    grad_of = lambda a: host(AF.jacobian(f, t64(a)))  # noqa: E731
    np.testing.assert_allclose(host(hess), numerical_jacobian(grad_of, x), atol=1e-6)
    np.testing.assert_allclose(host(hess), host(hess).T, atol=1e-12)


def test_products_agree_with_the_full_matrices(device):
    rng = np.random.default_rng(2)
    x, v, u = (t64(rng.standard_normal(n), device) for n in (3, 3, 2))
    w = t64(rng.standard_normal((2, 3)), device)

    def f(t):
        return F.softplus(w @ t) * t[:2]

    jac = host(AF.jacobian(f, x))
    _, jv = AF.jvp(f, x, v)
    _, uj = AF.vjp(f, x, u)
    np.testing.assert_allclose(host(jv), jac @ host(v), atol=1e-12)
    np.testing.assert_allclose(host(uj), host(u) @ jac, atol=1e-12)
    scalar = lambda t: (f(t) ** 2).sum()  # noqa: E731
    hess = host(AF.hessian(scalar, x))
    value, hv = AF.hvp(scalar, x, v)
    _, vh = AF.vhp(scalar, x, v)
    np.testing.assert_allclose(host(hv), hess @ host(v), atol=1e-10)
    np.testing.assert_allclose(host(vh), host(v) @ hess, atol=1e-10)
    assert value.item() == pytest.approx(scalar(x).item())


def test_nested_layout_and_results_match_pytorch():
    if torch is None:
        pytest.skip("PyTorch is not installed")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(3)

    def f(lib):
        return lambda x, y: ((x * y).sum(0), (x.exp() @ y).tanh())

    def g(lib):
        return lambda x, y: ((x @ y) ** 2).sum() + y.prod()

    ours_in, theirs_in = (t64(a), t64(b)), (torch.tensor(a), torch.tensor(b))
    ours = AF.jacobian(f(tensor), ours_in)
    theirs = torch.autograd.functional.jacobian(f(torch), theirs_in)
    ours_h = AF.hessian(g(tensor), ours_in)
    theirs_h = torch.autograd.functional.hessian(g(torch), theirs_in)
    for got, want in ((ours, theirs), (ours_h, theirs_h)):
        assert len(got) == len(want)
        for row_got, row_want in zip(got, want):
            assert len(row_got) == len(row_want)
            for x, y in zip(row_got, row_want):
                np.testing.assert_allclose(host(x), y.numpy(), atol=1e-12)


def test_create_graph_keeps_history_to_the_inputs(device):
    x = t64([1.0, 2.0], device, requires_grad=True)
    jac = AF.jacobian(lambda t: t ** 3, x, create_graph=True)  # diag(3 x^2)
    assert jac.requires_grad
    jac.sum().backward()
    np.testing.assert_allclose(host(x.grad), [6.0, 12.0])
    detached = AF.jacobian(lambda t: t ** 3, x)
    assert not detached.requires_grad


def test_unused_input_gives_zeros_or_a_strict_error(device):
    x, y = t64([1.0, 2.0], device), t64([3.0], device)
    jx, jy = AF.jacobian(lambda a, b: a * 2, (x, y))
    np.testing.assert_allclose(host(jy), np.zeros((2, 1)))
    with pytest.raises(AutogradError, match="does not depend on input 1"):
        AF.jacobian(lambda a, b: a * 2, (x, y), strict=True)


def test_bad_arguments_are_named(device):
    x = t64([1.0, 2.0], device)
    with pytest.raises(AutogradError, match="one element"):
        AF.hessian(lambda t: t * 2, x)
    with pytest.raises(AutogradError, match="pass v"):
        AF.vjp(lambda t: t * 2, x)
    with pytest.raises(AutogradError, match=r"expected \[\(2,\)\]"):
        AF.jvp(lambda t: t * 2, x, t64([1.0], device))
    with pytest.raises(TypeError, match="must return Tensors"):
        AF.jacobian(lambda t: 3.0, x)
    with pytest.raises(AutogradError, match="floating-point"):
        AF.jacobian(lambda t: t, tensor.tensor([1, 2], device=device))
    with pytest.raises(ValueError, match="vectorize"):
        AF.jacobian(lambda t: t, x, vectorize=True)
