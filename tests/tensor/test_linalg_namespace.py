"""tensor.linalg (the torch.linalg namespace) and torch's top-level aliases (tensor.det, x.inverse(), ...):
values against torch.linalg in float64 and float32, batched; gradients by finite differences and
against torch; errors for bad shapes, dtypes and singular matrices.

Decompositions are compared through sign-invariant functions of their factors (Q * R's rows, U**2,
V diag(c) V^T): LAPACK may flip a singular or eigenvector's sign between libraries.
"""
import math

import numpy as np
import pytest

import tensor
import tensor.linalg as LA
from tensor.errors import AutogradError, DTypeError, ShapeError

from helpers import check_grad, compare_float32_with_torch, compare_with_torch, make, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def wellcond(*shape, seed=0):
    """Random square matrices plus 3 I: far from singular."""
    return data(*shape, seed=seed) + 3 * np.eye(shape[-1])


# --------------------------------------------- one case, two libraries: la is tensor.linalg or torch.linalg
def sym(a):
    return a + a.mT


def spd(a):
    """A symmetric positive-definite function of any square a (differentiable), in either library."""
    return a @ a.mT + a.shape[-1] * a.new_tensor(np.eye(a.shape[-1]))


CASES = {  # name: (fn(la, *inputs), input arrays)
    "inv": (lambda la, a: la.inv(a), [wellcond(2, 3, 3)]),
    "det": (lambda la, a: la.det(a), [wellcond(2, 3, 3)]),
    "det_2d": (lambda la, a: la.det(a), [wellcond(4, 4)]),
    "slogdet": (lambda la, a: la.slogdet(a).logabsdet, [data(2, 3, 3)]),
    "solve": (lambda la, a, b: la.solve(a, b), [wellcond(2, 3, 3), data(2, 3, 2, seed=1)]),
    "solve_vector": (lambda la, a, b: la.solve(a, b), [wellcond(3, 3), data(3, seed=1)]),
    "solve_batched_vectors": (lambda la, a, b: la.solve(a, b), [wellcond(2, 3, 3), data(2, 3, seed=1)]),
    "solve_broadcast": (lambda la, a, b: la.solve(a, b), [wellcond(3, 3), data(4, 3, 2, seed=1)]),
    "solve_right": (lambda la, a, b: la.solve(a, b, left=False), [wellcond(2, 3, 3), data(2, 4, 3, seed=1)]),
    "cholesky": (lambda la, a: la.cholesky(spd(a)), [data(2, 3, 3)]),
    "cholesky_upper": (lambda la, a: la.cholesky(spd(a), upper=True), [data(3, 3)]),
    "qr_Q": (lambda la, a: la.qr(a).Q, [data(2, 5, 3)]),
    "qr_R": (lambda la, a: la.qr(a).R, [data(2, 5, 3)]),
    "qr_wide": (lambda la, a: la.qr(a).R + la.qr(a).Q.sum(-1, keepdim=True), [data(3, 5)]),
    # eigen- and singular vectors up to sign: compare their squares
    "eigh_values": (lambda la, a: la.eigh(sym(a)).eigenvalues, [data(2, 4, 4)]),
    "eigh_vectors": (lambda la, a: la.eigh(sym(a)).eigenvectors ** 2, [data(2, 4, 4)]),
    "eigvalsh": (lambda la, a: la.eigvalsh(sym(a)), [data(2, 4, 4)]),
    "svd_U": (lambda la, a: la.svd(a, full_matrices=False).U ** 2, [data(2, 5, 3)]),
    "svd_S": (lambda la, a: la.svd(a, full_matrices=False).S, [data(2, 5, 3)]),
    "svd_Vh": (lambda la, a: la.svd(a, full_matrices=False).Vh ** 2, [data(2, 5, 3)]),
    "svd_wide": (lambda la, a: (lambda r: r.U ** 2 + r.Vh[:, :3] ** 2)(la.svd(a, full_matrices=False)),
                 [data(3, 4)]),
    "svdvals": (lambda la, a: la.svdvals(a), [data(2, 3, 5)]),
    "pinv": (lambda la, a: la.pinv(a), [data(2, 5, 3)]),
    "pinv_hermitian": (lambda la, a: la.pinv(sym(a), hermitian=True), [data(3, 3)]),
    "matrix_power": (lambda la, a: la.matrix_power(a, 3), [data(2, 3, 3)]),
    "matrix_power_neg": (lambda la, a: la.matrix_power(a, -2), [wellcond(3, 3)]),
    "multi_dot": (lambda la, a, b, c: la.multi_dot([a, b, c]), [data(3), data(3, 4, seed=1), data(4, 2, seed=2)]),
    "cross": (lambda la, a, b: la.cross(a, b), [data(4, 3), data(1, 3, seed=1)]),
    "lstsq": (lambda la, a, b: la.lstsq(a, b).solution, [data(5, 3), data(5, 2, seed=1)]),
    "vector_norm_3": (lambda la, x: la.vector_norm(x, 3, dim=1), [data(2, 4, 3)]),
    "norm_default": (lambda la, x: la.norm(x), [data(2, 4, 3)]),
    "norm_vector_dim": (lambda la, x: la.norm(x, 1, dim=-1, keepdim=True), [data(2, 4, 3)]),
}


@pytest.mark.parametrize("name", CASES)
def test_against_torch_float64(device, name):
    """Values and gradients equal torch's (one random output gradient)."""
    torch = pytest.importorskip("torch")
    fn, arrays = CASES[name]
    compare_with_torch(lambda *x: fn(LA, *x), lambda *x: fn(torch.linalg, *x), arrays, device, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", CASES)
def test_against_torch_float32(device, name):
    torch = pytest.importorskip("torch")
    fn, arrays = CASES[name]
    compare_float32_with_torch(lambda *x: fn(LA, *x), lambda *x: fn(torch.linalg, *x), arrays, device)


@pytest.mark.parametrize("name", CASES)
def test_gradients_by_finite_differences(device, name):
    fn, arrays = CASES[name]
    check_grad(lambda *x: fn(LA, *x), arrays, device)


# ---------------------------------------------------------------------------------- matrix norms
@pytest.mark.parametrize("ord", ["fro", "nuc", 2, -2, 1, -1, math.inf, -math.inf])
@pytest.mark.parametrize("dim,keepdim", [((-2, -1), False), ((0, 2), True), ((2, 1), False)])
def test_matrix_norm(device, ord, dim, keepdim):
    pytest.importorskip("torch")
    import torch

    fn = lambda x: LA.matrix_norm(x, ord, dim, keepdim)  # noqa: E731
    compare_with_torch(fn, lambda x: torch.linalg.matrix_norm(x, ord, dim, keepdim), [data(2, 4, 3)], device,
                       rtol=1e-6, atol=1e-8)
    check_grad(fn, [data(2, 4, 3)], device)


def test_norm_dispatch(device):
    torch = pytest.importorskip("torch")
    x = data(4, 3)
    for kwargs in [{}, {"ord": "nuc"}, {"ord": 2}, {"ord": -math.inf}, {"dim": (0, 1), "ord": 1}, {"dim": 0}]:
        np.testing.assert_allclose(to_numpy(LA.norm(make(x, device), **kwargs)),
                                   torch.linalg.norm(torch.tensor(x), **kwargs).numpy(), rtol=1e-10)
    v = data(5)
    np.testing.assert_allclose(to_numpy(LA.norm(make(v, device), 0)), 5.0)
    with pytest.raises(ShapeError, match="1-D or 2-D"):
        LA.norm(make(data(2, 3, 4), device), 2)
    with pytest.raises(TypeError, match="ord must be a number"):
        LA.vector_norm(make(v, device), "fro")
    with pytest.raises(ValueError, match="not supported"):
        LA.matrix_norm(make(x, device), 3)
    with pytest.raises(DTypeError, match="narrowing"):
        LA.matrix_norm(make(x, device), dtype=tensor.float32)


# ------------------------------------------------------------------ other results and edge cases
def test_result_fields_and_dtypes(device):
    a = make(wellcond(2, 3, 3), device)
    sign, logabs = LA.slogdet(a)
    assert LA.slogdet(a).sign is not None and not sign.requires_grad
    assert LA.qr(a).R.shape == (2, 3, 3) and LA.eigh(sym(a)).eigenvalues.shape == (2, 3)
    assert LA.svd(a).Vh.shape == (2, 3, 3) and LA.svd(make(data(5, 3), device)).U.shape == (5, 5)
    rank = LA.matrix_rank(make(np.array([[1.0, 2], [2, 4]]), device))
    assert rank.dtype == tensor.int64 and rank.item() == 1
    assert LA.matrix_rank(a, hermitian=False).tolist() == [3, 3]
    assert LA.lstsq(make(data(5, 3), device), make(data(5, 2), device)).rank.item() == 3


def test_det_gradient_of_singular_matrix(device):
    """det's gradient is the cofactor matrix, defined also where A has no inverse (finite differences
    agree; torch 2.x returns zeros for this matrix)."""
    singular = np.array([[1.0, 2, 3], [2, 4, 6], [1, 0, 1]])
    check_grad(LA.det, [np.stack([singular, wellcond(3, 3)])], device)


def test_svd_full_matrices_backward(device):
    """full_matrices=True: the extra singular vectors get no gradient (PyTorch narrows them away)."""
    check_grad(lambda a: (lambda r: ((r.U[..., :3] ** 2).sum(), r.S))(LA.svd(a)), [data(5, 3)], device)


def test_svd_gradient_through_singular_values_only_with_repeated_ones(device):
    """Only S used: U diag(gS) Vh, finite even where singular values repeat (the identity's are all 1)."""
    a = make(np.eye(3), device, requires_grad=True)
    LA.svd(a).S.sum().backward()
    np.testing.assert_allclose(to_numpy(a.grad), np.eye(3))
    check_grad(lambda a: LA.svd(a, full_matrices=False).S, [data(2, 4, 3)], device)


def test_qr_modes(device):
    a = make(data(5, 3), device, requires_grad=True)
    q, r = LA.qr(a, mode="complete")
    assert q.shape == (5, 5) and r.shape == (5, 3)
    with pytest.raises(AutogradError, match="complete"):
        q.sum().backward()
    q, r = LA.qr(a, mode="r")
    assert q.shape == (0,) and r.shape == (3, 3)
    with pytest.raises(AutogradError, match="mode='r'"):
        r.sum().backward()


def test_matrix_power_zero_and_one(device):
    a = make(data(2, 3, 3), device)
    np.testing.assert_array_equal(to_numpy(LA.matrix_power(a, 0)), np.broadcast_to(np.eye(3), (2, 3, 3)))
    np.testing.assert_array_equal(to_numpy(LA.matrix_power(a, 1)), to_numpy(a))


# -------------------------------------------------------------------------------- top-level aliases
def test_aliases_and_methods(device):
    torch = pytest.importorskip("torch")
    a, b = wellcond(3, 3), data(3, 3, seed=1)
    x, y, ta, tb = make(a, device), make(b, device), torch.tensor(a), torch.tensor(b)
    pairs = [
        (x.inverse(), ta.inverse()), (tensor.inverse(x), torch.inverse(ta)), (x.det(), ta.det()),
        (x.logdet(), ta.logdet()), (tensor.logdet(-x), torch.logdet(-ta)), (x.slogdet()[1], ta.slogdet()[1]),
        (x.pinverse(), ta.pinverse()), (x.matrix_power(2), ta.matrix_power(2)),
        (x.cross(y, 0), ta.cross(tb, 0)), (tensor.cross(x, y), torch.cross(ta, tb, dim=0)),
        (x.kron(y[:2]), ta.kron(tb[:2])), (tensor.kron(x, y[0]), torch.kron(ta, tb[0])),
        (x.mv(y[0]), ta.mv(tb[0])), (x.inner(y), ta.inner(tb)), (tensor.inner(x, y[0]), torch.inner(ta, tb[0])),
        (x[0].vdot(y[0]), ta[0].vdot(tb[0])), (tensor.chain_matmul(x, y, x), torch.linalg.multi_dot([ta, tb, ta])),
        (spd(x).cholesky(), torch.linalg.cholesky(ta @ ta.T + 3 * torch.eye(3))),
    ]
    for ours, ref in pairs:
        np.testing.assert_allclose(to_numpy(ours), ref.numpy(), rtol=1e-10, atol=1e-12)
    u, s, v = x.svd()
    np.testing.assert_allclose(to_numpy((u * s.unsqueeze(-2)) @ v.mT), a, atol=1e-12)  # V, not Vh
    u, s, v = tensor.svd(make(data(5, 3), device), some=False)
    assert u.shape == (5, 5) and v.shape == (3, 3)
    u, s, v = tensor.svd(make(data(5, 3), device), compute_uv=False)
    assert u.shape == (5, 5) and float(abs(u).sum()) == 0


def test_legacy_qr_takes_some(device):
    """torch.qr(A, some=True), deprecated but still in Glow's invertible 1x1 conv: linalg.qr's modes."""
    a = make(data(5, 3), device, requires_grad=True)
    for some, shapes in ((True, ((5, 3), (3, 3))), (False, ((5, 5), (5, 3)))):
        q, r = tensor.qr(a, some=some)
        assert (q.shape, r.shape) == shapes
        np.testing.assert_allclose(to_numpy(q @ r), data(5, 3), atol=1e-12)
    q, r = a.qr()
    np.testing.assert_allclose(to_numpy(q.mT @ q), np.eye(3), atol=1e-12)
    check_grad(lambda a: tensor.qr(a)[1].abs(), [data(4, 3)], device)


def test_alias_gradients(device):
    check_grad(lambda a, b: a.kron(b), [data(2, 3), data(3, 2, seed=1)], device)
    check_grad(lambda a, b: a.inner(b), [data(2, 3), data(4, 3, seed=1)], device)
    check_grad(lambda a: a.logdet(), [wellcond(3, 3)], device)
    check_grad(lambda a, b: tensor.cross(a, b), [data(3, 4), data(3, 4, seed=1)], device)


# -------------------------------------------------------------------------------------------- errors
def test_errors(device):
    a = make(wellcond(3, 3), device)
    with pytest.raises(ShapeError, match=r"square matrices, but its last two dims are 2 by 3"):
        LA.inv(make(data(2, 3), device))
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        LA.det(make(data(3), device))
    with pytest.raises(DTypeError, match="floating-point"):
        LA.inv(make(np.eye(3, dtype=np.int64), device))
    with pytest.raises(DTypeError, match=r"float16.*\.float\(\)"):
        LA.cholesky(a.half())
    with pytest.raises(DTypeError, match="one dtype"):
        LA.solve(a, a.float())
    with pytest.raises(ShapeError, match="A X = B"):
        LA.solve(a, make(data(2, 3), device))
    with pytest.raises(ShapeError, match="left=False"):
        LA.solve(a, make(data(3), device), left=False)
    with pytest.raises(ShapeError, match="length 3"):
        LA.cross(make(data(4, 2), device), make(data(4, 2), device))
    with pytest.raises(ShapeError, match="middle tensors must be 2-D"):
        LA.multi_dot([a, make(data(3), device), a])


def test_singular_and_indefinite_matrices(device):
    batch = np.stack([np.eye(2), np.zeros((2, 2))]).reshape(2, 1, 2, 2)
    with pytest.raises(LA.LinAlgError, match=r"linalg.inv: .*singular.*batch element \(1, 0\)"):
        LA.inv(make(batch, device))
    with pytest.raises(LA.LinAlgError, match="linalg.solve: .*singular"):
        LA.solve(make(np.zeros((3, 3)), device), make(data(3), device))
    with pytest.raises(LA.LinAlgError, match="linalg.cholesky: .*not positive-definite"):
        LA.cholesky(make(-np.eye(3), device))
    assert issubclass(LA.LinAlgError, tensor.TensorError)


def test_legacy_solvers_take_the_right_hand_side_first(device):
    """torch.cholesky_solve(B, L), cholesky_inverse, triangular_solve(B, A), lu / lu_solve(B, LU, pivots):
    torch's legacy argument orders and defaults (triangular_solve: upper=True), values and gradients."""
    torch = pytest.importorskip("torch")
    s = data(3, 3) @ data(3, 3).T + 3 * np.eye(3)
    low, b = np.linalg.cholesky(s), data(2, 3, 2, seed=1)
    cases = {  # name: (fn(T, factor, B), factor)
        "cholesky_solve": (lambda T, f, b: T.cholesky_solve(b, f), low),
        "cholesky_solve_upper": (lambda T, f, b: b.cholesky_solve(f, True), low.T),
        "cholesky_inverse": (lambda T, f, b: T.cholesky_inverse(f) + b.sum(), low),
        "cholesky_inverse_upper": (lambda T, f, b: f.cholesky_inverse(upper=True) + b.sum(), low.T),
        "triangular_solve": (lambda T, f, b: T.triangular_solve(b, f).solution, low.T),
        "triangular_solve_lower_transpose": (lambda T, f, b: b.triangular_solve(f, False, True)[0], low),
        "triangular_solve_unit": (lambda T, f, b: T.triangular_solve(b, f, unitriangular=True)[0], low.T),
        "lu_solve": (lambda T, f, b: T.lu_solve(b, *T.lu(f)), s),
        "lu_solve_method": (lambda T, f, b: b.lu_solve(*f.lu()), s),
    }
    for name, (fn, factor) in cases.items():
        compare_with_torch(lambda f, b: fn(tensor, f, b), lambda f, b: fn(torch, f, b), [factor, b], device)
    # the factor's gradient is torch's full-matrix one (above); on its triangle it is the true derivative
    tri = [(lambda f, b: tensor.cholesky_solve(b, f.tril() + 3 * make(np.eye(3), device))), [data(3, 3), b]]
    check_grad(*tri, device)
    assert tensor.autograd.gradgradcheck(tri[0], [make(a, device, requires_grad=True) for a in tri[1]])
    x = make(s, device)
    assert tensor.triangular_solve(make(b, device), x).cloned_coefficient.data is not x.data
    lu, pivots, infos = tensor.lu(make(np.zeros((3, 3)), device), get_infos=True)
    assert int(infos) == 1
    with pytest.raises(ShapeError, match=r"cholesky_solve: .*B \(3,\).*unsqueeze\(-1\)"):
        tensor.cholesky_solve(make(data(3), device), x)
    with pytest.raises(ShapeError, match=r"triangular_solve: .*B \(2, 2\) and A \(3, 3\)"):
        tensor.triangular_solve(make(data(2, 2), device), x)
    with pytest.raises(ShapeError, match="cholesky_inverse: .*square"):
        tensor.cholesky_inverse(make(data(2, 3), device))


@pytest.mark.parametrize("shape, q", [((9, 5), 3), ((5, 9), 3), ((2, 8, 6), 2)])
def test_svd_lowrank_and_pca_lowrank(device, shape, q):
    """Exact for rank(A) <= q whatever the random draw: singular values as torch's, the same subspaces
    (projectors, sign- and basis-free), gradients of the singular values as torch's."""
    torch = pytest.importorskip("torch")
    *batch, m, n = shape
    a = data(*batch, m, q) @ data(*batch, q, n, seed=1)
    for center in (False, True):
        a_c = a - a.mean(-2, keepdims=True) if center else a
        got = [make(a, device, requires_grad=True), make(a_c, device, requires_grad=True)]
        want = [torch.tensor(a, requires_grad=True), torch.tensor(a_c, requires_grad=True)]
        results = []
        for lib, (x, x_c) in ((tensor, got), (torch, want)):
            u, s, v = lib.pca_lowrank(x, q=q, center=center, niter=1) if center else lib.svd_lowrank(x, q=q)
            assert tuple(u.shape) == (*batch, m, q) and tuple(v.shape) == (*batch, n, q)
            s.sum().backward()
            results.append([z.detach().cpu().numpy() for z in (s, u @ u.mT, v @ v.mT, x.grad)])
            np.testing.assert_allclose(results[-1][1] @ a_c, a_c, atol=1e-10)  # U spans A's (centred) columns
        for ours, ref in zip(*results):
            np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
    x = make(a, device)
    with pytest.raises(ValueError, match=r"svd_lowrank: q=-1 must be a non-negative integer"):
        tensor.svd_lowrank(x, q=-1)
    with pytest.raises(ValueError, match="niter=-1"):
        tensor.pca_lowrank(x, niter=-1)
    assert tensor.svd_lowrank(x.float(), q=q)[1].dtype == tensor.float32


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 5, 3)])
def test_svd_lowrank_q_above_min_m_n_gives_the_full_svd(device, shape):
    """torch caps q at min(m, n) (its reduced QR does): q = 4 and the default 6 give the exact SVD."""
    torch = pytest.importorskip("torch")
    a = data(*shape)
    k = min(shape[-2:])
    for q in (4, 6):
        u, s, v = tensor.svd_lowrank(make(a, device), q=q)
        tu, ts, tv = torch.svd_lowrank(torch.tensor(a), q=q)
        assert u.shape == tu.shape and s.shape == ts.shape and v.shape == tv.shape
        assert tuple(s.shape) == (*shape[:-2], k)
        np.testing.assert_allclose(to_numpy(s), ts.numpy(), rtol=1e-10)
        np.testing.assert_allclose(to_numpy(u @ tensor.diag_embed(s) @ v.mT), a, atol=1e-10)
