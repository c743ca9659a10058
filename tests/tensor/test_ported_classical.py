"""Classical ML and Gaussian processes as pure-PyTorch tutorials write them, ported by imports.

Softmax regression fitted by LBFGS (closure, strong Wolfe), a linear SVM on the hinge loss, k-means
(cdist / argmin, index_add_ or scatter_add_ and bincount), PCA by SVD and by pca_lowrank / svd_lowrank,
Gaussian-mixture EM with logsumexp, kernel ridge regression through solve, cholesky_solve,
cholesky_inverse and triangular_solve, and GP regression (hyperparameters by Adam through the
Cholesky, and through MultivariateNormal.log_prob).

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both, both see the same NumPy data, and values, gradients and final
parameters agree. Randomized algorithms (svd_lowrank) draw different streams in the two libraries,
so their results are compared as subspaces (projectors), never by sign or basis.
"""
import math

import numpy as np
import pytest

import tensor
from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def as_numpy(x):
    return x.detach().cpu().numpy()


def blobs(rng, n, d, k, spread=3.0):
    """n points in d dims around k centres; (x float64 (n, d), labels int64 (n,))."""
    centres = spread * rng.standard_normal((k, d))
    labels = rng.integers(0, k, n)
    return centres[labels] + rng.standard_normal((n, d)), labels.astype(np.int64)


# ---- 1. softmax regression by LBFGS with a closure --------------------------------------------------

def softmax_regression(T, d=4, k=3):
    return T.nn.Linear(d, k).double()


def fit_lbfgs(T, device, init, x, y, lam=1e-2):
    device = device_of(T, device)
    model = ported_model(T, softmax_regression, init, device)
    x, y = T.tensor(x, device=device), T.tensor(y, device=device)
    optimizer = T.optim.LBFGS(model.parameters(), lr=1, max_iter=20, history_size=10,
                              line_search_fn="strong_wolfe")
    losses = []

    def closure():
        optimizer.zero_grad()
        loss = T.nn.functional.cross_entropy(model(x), y) + lam * model.weight.pow(2).sum()
        loss.backward()
        return loss

    for _ in range(3):
        losses.append(optimizer.step(closure).item())
    with T.no_grad():
        acc = (model(x).argmax(dim=1) == y).float().mean().item()
    return losses + [acc], numpy_state(model)


def test_softmax_regression_lbfgs(device):
    rng = np.random.default_rng(0)
    x, y = blobs(rng, 40, 4, 3)
    torch.manual_seed(0)
    got = run_both(fit_lbfgs, device, numpy_state(softmax_regression(torch)), x, y)
    assert got[0][-1] > 0.8


def logistic_regression_lbfgs(T, device, x, y):
    """Binary logistic regression on raw parameters (no Module), LBFGS without line search."""
    device = device_of(T, device)
    x, y = T.tensor(x, device=device), T.tensor(y, device=device)
    w = T.zeros(x.shape[1], dtype=T.float64, device=device, requires_grad=True)
    b = T.zeros(1, dtype=T.float64, device=device, requires_grad=True)
    optimizer = T.optim.LBFGS([w, b], lr=0.5, max_iter=10)

    def closure():
        optimizer.zero_grad()
        logits = x @ w + b
        loss = T.nn.functional.binary_cross_entropy_with_logits(logits, y) + 1e-3 * w.dot(w)
        loss.backward()
        return loss

    losses = [optimizer.step(closure).item() for _ in range(2)]
    return losses, {"w": as_numpy(w), "b": as_numpy(b)}


def test_logistic_regression_lbfgs(device):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal(30) > 0).astype(np.float64)
    run_both(logistic_regression_lbfgs, device, x, y)


# ---- 2. linear SVM on the hinge loss ---------------------------------------------------------------

def linear_svm(T, device, x, y, lam=1e-2, steps=30):
    device = device_of(T, device)
    x, y = T.tensor(x, device=device), T.tensor(y, device=device)
    w = T.zeros(x.shape[1], device=device, requires_grad=True)
    b = T.zeros((), device=device, requires_grad=True)
    optimizer = T.optim.SGD([w, b], lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        f = x @ w + b
        hinge = T.clamp(1 - y * f, min=0).mean()
        loss = hinge + lam * (w ** 2).sum()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        margin_violations = (y * (x @ w + b) < 1).sum().item()
        acc = (T.sign(x @ w + b) == y).float().mean().item()
    return losses + [margin_violations, acc], {"w": as_numpy(w), "b": as_numpy(b)}


def test_linear_svm_hinge(device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 2)).astype(np.float32)
    y = np.where(x[:, 0] - x[:, 1] > 0, 1.0, -1.0).astype(np.float32)
    got = run_both(linear_svm, device, x, y)
    assert got[0][-1] > 0.9


# ---- 3. k-means --------------------------------------------------------------------------------------

def kmeans(T, device, x, init_idx, iters=6, scatter=False):
    device = device_of(T, device)
    x = T.tensor(x, device=device)
    k = len(init_idx)
    centroids = x[T.tensor(init_idx, device=device)].clone()
    inertias = []
    for _ in range(iters):
        dists = T.cdist(x, centroids)
        assign = dists.argmin(dim=1)
        inertias.append(dists.min(dim=1).values.pow(2).sum().item())
        if scatter:
            sums = T.zeros(k, x.size(1), dtype=x.dtype, device=device).scatter_add_(
                0, assign.unsqueeze(1).expand(-1, x.size(1)), x)
        else:
            sums = T.zeros_like(centroids).index_add_(0, assign, x)
        counts = T.bincount(assign, minlength=k)
        centroids = sums / counts.clamp(min=1).unsqueeze(1).to(x.dtype)
    return inertias + assign.tolist() + counts.tolist(), {"centroids": as_numpy(centroids)}


@pytest.mark.parametrize("scatter", [False, True])
def test_kmeans(device, scatter):
    rng = np.random.default_rng(3)
    x, _ = blobs(rng, 60, 2, 3)
    got = run_both(kmeans, device, x.astype(np.float32), [0, 1, 2], scatter=scatter)
    assert all(a >= b - 1e-3 for a, b in zip(got[0][:5], got[0][1:6]))  # Lloyd never increases inertia


# ---- 4. PCA: full SVD, pca_lowrank, svd_lowrank ---------------------------------------------------

def projector(v):
    """The orthogonal projector onto the columns of v (k orthonormal columns): sign- and basis-free."""
    return v @ v.T


def pca_svd(T, device, x, k=2):
    device = device_of(T, device)
    x = T.tensor(x, device=device)
    mean = x.mean(dim=0, keepdim=True)
    xc = x - mean
    U, S, Vh = T.linalg.svd(xc, full_matrices=False)
    components = Vh[:k]
    explained_variance = S.pow(2) / (x.shape[0] - 1)
    ratio = explained_variance / explained_variance.sum()
    z = xc @ components.T
    recon = z @ components + mean
    err = (recon - x).pow(2).mean()
    return (ratio[:k].tolist() + [err.item()],
            {"P": as_numpy(projector(components.T)), "zz": as_numpy(z @ z.T), "S": as_numpy(S)})


def test_pca_by_svd(device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 5)) @ np.diag([3.0, 2.0, 0.5, 0.2, 0.1])
    run_both(pca_svd, device, x)


def pca_lowrank_script(T, device, x, q):
    device = device_of(T, device)
    x = T.tensor(x, device=device)
    U, S, V = T.pca_lowrank(x, q=q, center=True, niter=4)
    xc = x - x.mean(dim=0, keepdim=True)
    U2, S2, V2 = T.svd_lowrank(xc.T, q=q, niter=4)  # wide input: svd_lowrank works on its transpose
    U3, S3, V3 = T.svd_lowrank(x, q=q, niter=2, M=x.mean(dim=0, keepdim=True).expand_as(x))
    checks = [(U.T @ U - T.eye(q, dtype=x.dtype, device=device)).abs().max().item(),
              (U @ T.diag(S) @ V.T - xc).abs().max().item()]
    state = {"S": as_numpy(S), "S2": as_numpy(S2), "S3": as_numpy(S3), "PV": as_numpy(projector(V)),
             "PU": as_numpy(projector(U)), "PU2": as_numpy(projector(V2)), "PV3": as_numpy(projector(V3))}
    return checks, state


def test_pca_lowrank_and_svd_lowrank(device):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 8)) + rng.standard_normal(8)  # rank 3 + mean
    torch.manual_seed(0)
    want = pca_lowrank_script(torch, "cpu", x, 3)
    tensor.manual_seed(1)
    got = pca_lowrank_script(tensor, device, x, 3)
    assert max(got[0]) < 1e-10 and max(want[0]) < 1e-10
    for k in want[1]:
        np.testing.assert_allclose(got[1][k], want[1][k], atol=1e-9, err_msg=k)


def test_svd_lowrank_gradient_and_default_q(device):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((12, 2)) @ rng.standard_normal((2, 9))
    outs = []
    for T in (torch, tensor):
        A = T.tensor(a, device=device_of(T, device), requires_grad=True)
        U, S, V = T.svd_lowrank(A)  # q=6 by default
        assert tuple(U.shape) == (12, 6) and tuple(S.shape) == (6,) and tuple(V.shape) == (9, 6)
        S[:2].sum().backward()  # the nuclear norm: its gradient is U_2 V_2^T, whatever the basis
        outs.append((as_numpy(S[:2]), as_numpy(A.grad)))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-10)
    np.testing.assert_allclose(outs[1][1], outs[0][1], atol=1e-8)


# ---- 5. Gaussian-mixture EM with logsumexp ---------------------------------------------------------

def gmm_em(T, device, x, init_idx, iters=5):
    device = device_of(T, device)
    x = T.tensor(x, device=device)
    n, d = x.shape
    k = len(init_idx)
    mu = x[T.tensor(init_idx, device=device)].clone()
    var = T.ones(k, d, dtype=x.dtype, device=device)
    log_pi = T.full((k,), -math.log(k), dtype=x.dtype, device=device)
    lls = []
    for _ in range(iters):
        # E step: log N(x | mu_k, diag var_k) for every point and component, (n, k)
        diff = x.unsqueeze(1) - mu.unsqueeze(0)
        log_prob = -0.5 * (diff.pow(2) / var + var.log() + math.log(2 * math.pi)).sum(-1)
        weighted = log_prob + log_pi
        log_norm = T.logsumexp(weighted, dim=1, keepdim=True)
        resp = (weighted - log_norm).exp()
        lls.append(log_norm.sum().item())
        # M step
        nk = resp.sum(0) + 1e-10
        mu = (resp.T @ x) / nk.unsqueeze(1)
        var = (resp.T @ x.pow(2)) / nk.unsqueeze(1) - mu.pow(2) + 1e-6
        log_pi = nk.log() - math.log(n)
    return lls, {"mu": as_numpy(mu), "var": as_numpy(var), "pi": as_numpy(log_pi.exp())}


def test_gaussian_mixture_em(device):
    rng = np.random.default_rng(7)
    x, _ = blobs(rng, 80, 2, 3)
    got = run_both(gmm_em, device, x, [0, 1, 2])
    assert all(b >= a - 1e-6 for a, b in zip(got[0], got[0][1:]))  # EM never decreases the likelihood


# ---- 6. kernel ridge regression: solve, cholesky + cholesky_solve, cholesky_inverse, triangular_solve

def rbf(T, a, b, lengthscale):
    return T.exp(-0.5 * T.cdist(a, b).pow(2) / lengthscale ** 2)


def kernel_ridge(T, device, x, y, x_test, lam=1e-1):
    device = device_of(T, device)
    x, y, x_test = (T.tensor(v, device=device) for v in (x, y, x_test))
    ls = T.tensor(0.8, dtype=x.dtype, device=device, requires_grad=True)
    K = rbf(T, x, x, ls) + lam * T.eye(x.shape[0], dtype=x.dtype, device=device)
    alpha_solve = T.linalg.solve(K, y)
    L = T.linalg.cholesky(K)
    alpha_chol = T.cholesky_solve(y, L)
    alpha_upper = T.cholesky_solve(y, L.T, upper=True)
    alpha_method = y.cholesky_solve(L)
    K_inv = T.cholesky_inverse(L)
    z = T.triangular_solve(y, L, upper=False).solution  # L z = y
    alpha_tri = T.triangular_solve(z, L, upper=False, transpose=True)[0]  # L^T alpha = z
    pred = rbf(T, x_test, x, ls) @ alpha_chol
    pred.pow(2).sum().backward()
    vals = [(alpha_solve - alpha_chol).abs().max().item(), (alpha_upper - alpha_chol).abs().max().item(),
            (alpha_method - alpha_chol).abs().max().item(), (alpha_tri - alpha_chol).abs().max().item(),
            (K_inv @ K - T.eye(x.shape[0], dtype=x.dtype, device=device)).abs().max().item(), ls.grad.item()]
    return vals, {"pred": as_numpy(pred), "alpha": as_numpy(alpha_chol), "K_inv": as_numpy(K_inv)}


def test_kernel_ridge_regression(device):
    rng = np.random.default_rng(8)
    x = rng.uniform(-3, 3, (15, 1))
    y = np.sin(x) + 0.1 * rng.standard_normal((15, 1))
    got = run_both(kernel_ridge, device, x, y, np.linspace(-3, 3, 7)[:, None])
    assert max(got[0][:5]) < 1e-8


# ---- 7. Gaussian-process regression: hyperparameters by Adam through the Cholesky ------------------

class ExactGP:
    """A zero-mean GP with an RBF kernel; log lengthscale, log signal and log noise are learned."""

    def __init__(self, T, device):
        self.T = T
        self.log_ls = T.zeros((), dtype=T.float64, device=device, requires_grad=True)
        self.log_sf = T.zeros((), dtype=T.float64, device=device, requires_grad=True)
        self.log_noise = T.tensor(-1.0, dtype=T.float64, device=device, requires_grad=True)

    def parameters(self):
        return [self.log_ls, self.log_sf, self.log_noise]

    def kernel(self, a, b):
        d2 = self.T.cdist(a / self.log_ls.exp(), b / self.log_ls.exp()).pow(2)
        return self.log_sf.exp().pow(2) * self.T.exp(-0.5 * d2)

    def train_K(self, x):
        n = x.shape[0]
        return self.kernel(x, x) + self.log_noise.exp() * self.T.eye(n, dtype=x.dtype, device=x.device)

    def neg_log_marginal_likelihood(self, x, y):
        T = self.T
        L = T.linalg.cholesky(self.train_K(x))
        alpha = T.cholesky_solve(y.unsqueeze(-1), L)
        lml = (-0.5 * (y.unsqueeze(-1) * alpha).sum() - T.diagonal(L).log().sum()
               - 0.5 * x.shape[0] * math.log(2 * math.pi))
        return -lml

    def predict(self, x, y, x_test):
        T = self.T
        L = T.linalg.cholesky(self.train_K(x))
        alpha = T.cholesky_solve(y.unsqueeze(-1), L)
        k_star = self.kernel(x_test, x)
        mean = (k_star @ alpha).squeeze(-1)
        v = T.linalg.solve_triangular(L, k_star.T, upper=False)
        var = self.log_sf.exp().pow(2) - v.pow(2).sum(0)
        return mean, var


def gp_regression(T, device, x, y, x_test, steps=15, through_mvn=False):
    device = device_of(T, device)
    x, y, x_test = (T.tensor(v, device=device) for v in (x, y, x_test))
    gp = ExactGP(T, device)
    optimizer = T.optim.Adam(gp.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        if through_mvn:
            K = gp.train_K(x)
            mvn = T.distributions.MultivariateNormal(T.zeros(x.shape[0], dtype=x.dtype, device=device), K)
            loss = -mvn.log_prob(y)
        else:
            loss = gp.neg_log_marginal_likelihood(x, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        mean, var = gp.predict(x, y, x_test)
    state = {"log_ls": as_numpy(gp.log_ls), "log_sf": as_numpy(gp.log_sf),
             "log_noise": as_numpy(gp.log_noise), "mean": as_numpy(mean), "var": as_numpy(var)}
    return losses, state


@pytest.mark.parametrize("through_mvn", [False, True])
def test_gp_regression(device, through_mvn):
    rng = np.random.default_rng(9)
    x = rng.uniform(-3, 3, (20, 1))
    y = np.sin(2 * x[:, 0]) + 0.1 * rng.standard_normal(20)
    x_test = np.linspace(-3, 3, 9)[:, None]
    got = run_both(gp_regression, device, x, y, x_test, through_mvn=through_mvn)
    assert got[0][-1] < got[0][0]
    assert (got[1]["var"] > 0).all()


def test_gp_lml_cholesky_matches_mvn(device):
    """The hand-written log marginal likelihood is MultivariateNormal(0, K).log_prob(y), gradients too."""
    rng = np.random.default_rng(10)
    x = rng.uniform(-2, 2, (10, 2))
    y = rng.standard_normal(10)
    for T in (torch, tensor):
        dev = device_of(T, device)
        gp = ExactGP(T, dev)
        xt, yt = T.tensor(x, device=dev), T.tensor(y, device=dev)
        a = gp.neg_log_marginal_likelihood(xt, yt)
        ga = T.autograd.grad(a, gp.parameters())
        mvn = T.distributions.MultivariateNormal(T.zeros(10, dtype=xt.dtype, device=dev), gp.train_K(xt))
        b = -mvn.log_prob(yt)
        gb = T.autograd.grad(b, gp.parameters())
        np.testing.assert_allclose(as_numpy(a), as_numpy(b), rtol=1e-12)
        for u, v in zip(ga, gb):
            np.testing.assert_allclose(as_numpy(u), as_numpy(v), rtol=1e-10)
