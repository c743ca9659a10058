"""The families beyond the basics (MultivariateNormal, Gamma, Beta, Dirichlet, ...) against torch.distributions:
log_prob, entropy and moments with their gradients, samples, and validation."""
import numpy as np
import pytest

import tensor
import tensor.distributions as D
from tests.tensor.helpers import make, to_numpy

torch = pytest.importorskip("torch")
TD = torch.distributions

RNG = np.random.default_rng(1)
A = RNG.normal(size=(2, 3, 3))
COV = A @ A.transpose(0, 2, 1) + np.eye(3)
TRIL = np.linalg.cholesky(COV)
MVN_LOC = RNG.normal(size=(4, 1, 3))
FACTOR = RNG.normal(size=(2, 3, 2))
POS, POS2 = RNG.uniform(0.5, 3.0, size=(2, 3)), RNG.uniform(0.5, 3.0, size=(2, 3))
LOC = RNG.normal(size=(2, 3))
CONC = RNG.uniform(0.5, 3.0, size=(2, 4))
PROBS = RNG.uniform(0.1, 0.9, size=(2, 3))
LOGITS = RNG.normal(size=(2, 3)) * 2
SIMPLEX = RNG.dirichlet(np.ones(4), size=(3, 2))
COUNTS = np.array([[[1.0, 0, 3, 2], [0, 0, 6, 0]], [[2, 2, 1, 1], [6, 0, 0, 0]]])


def pair(array, device):
    return make(array, device, requires_grad=True), torch.tensor(array, requires_grad=True)


def assert_close(ours, theirs, rtol=1e-9, atol=1e-11):
    np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=rtol, atol=atol)


def assert_same_grads(ours_out, theirs_out, ours_params, theirs_params, rtol=1e-8):
    ours_out.sum().backward()
    theirs_out.sum().backward()
    for a, b in zip(ours_params, theirs_params):
        if b.grad is None:
            assert a.grad is None or not to_numpy(a.grad).any()
        else:
            assert_close(a.grad, b.grad, rtol=rtol, atol=1e-10)


# name: (build(module, params), parameter arrays, a value in the support)
BUILDERS = {
    "mvn_cov": (lambda m, a: m.MultivariateNormal(a[0], covariance_matrix=a[1]), [MVN_LOC, COV],
                RNG.normal(size=(5, 4, 2, 3))),
    "mvn_precision": (lambda m, a: m.MultivariateNormal(a[0], precision_matrix=a[1]), [MVN_LOC, COV],
                      RNG.normal(size=(4, 2, 3))),
    "mvn_tril": (lambda m, a: m.MultivariateNormal(a[0], scale_tril=a[1]), [MVN_LOC[0, 0], TRIL],
                 RNG.normal(size=(5, 2, 3))),
    "mvn_lowrank": (lambda m, a: m.LowRankMultivariateNormal(a[0], a[1], a[2]), [MVN_LOC, FACTOR, POS],
                    RNG.normal(size=(5, 4, 2, 3))),
    "gamma": (lambda m, a: m.Gamma(a[0], a[1]), [POS, POS2], RNG.uniform(0.1, 4, size=(4, 2, 3))),
    "chi2": (lambda m, a: m.Chi2(a[0]), [POS], RNG.uniform(0.1, 4, size=(2, 3))),
    "beta": (lambda m, a: m.Beta(a[0], a[1]), [POS, POS2], RNG.uniform(0.05, 0.95, size=(4, 2, 3))),
    "dirichlet": (lambda m, a: m.Dirichlet(a[0]), [CONC], SIMPLEX),
    "exponential": (lambda m, a: m.Exponential(a[0]), [POS], RNG.uniform(0, 4, size=(2, 3))),
    "laplace": (lambda m, a: m.Laplace(a[0], a[1]), [LOC, POS], RNG.normal(size=(3, 2, 3))),
    "lognormal": (lambda m, a: m.LogNormal(a[0], a[1]), [LOC, POS], RNG.uniform(0.1, 5, size=(2, 3))),
    "gumbel": (lambda m, a: m.Gumbel(a[0], a[1]), [LOC, POS], RNG.normal(size=(2, 3)) * 2),
    "cauchy": (lambda m, a: m.Cauchy(a[0], a[1]), [LOC, POS], RNG.normal(size=(2, 3)) * 3),
    "halfnormal": (lambda m, a: m.HalfNormal(a[0]), [POS], RNG.uniform(0, 3, size=(4, 2, 3))),
    "weibull": (lambda m, a: m.Weibull(a[0], a[1]), [POS, POS2], RNG.uniform(0.1, 4, size=(4, 2, 3))),
    "studentt": (lambda m, a: m.StudentT(a[0] + 2.5, a[1], a[2]), [POS, LOC, POS2], RNG.normal(size=(2, 3)) * 3),
    "poisson": (lambda m, a: m.Poisson(a[0]), [POS], RNG.integers(0, 6, size=(3, 2, 3)).astype(float)),
    "geometric_probs": (lambda m, a: m.Geometric(probs=a[0]), [PROBS], RNG.integers(0, 6, size=(2, 3)) * 1.0),
    "geometric_logits": (lambda m, a: m.Geometric(logits=a[0]), [LOGITS], RNG.integers(0, 6, size=(2, 3)) * 1.0),
    "binomial_probs": (lambda m, a: m.Binomial(6, probs=a[0]), [PROBS], RNG.integers(0, 7, size=(4, 2, 3)) * 1.0),
    "binomial_logits": (lambda m, a: m.Binomial(6, logits=a[0]), [LOGITS], RNG.integers(0, 7, size=(2, 3)) * 1.0),
    "multinomial": (lambda m, a: m.Multinomial(6, probs=a[0]), [CONC], COUNTS),
    "multinomial_logits": (lambda m, a: m.Multinomial(6, logits=a[0]), [CONC], COUNTS[0]),
    "mixture": (lambda m, a: m.MixtureSameFamily(m.Categorical(logits=a[0]), m.Normal(a[1], a[2])),
                [LOGITS, LOC, POS], RNG.normal(size=(5, 2))),
    "mixture_mvn": (lambda m, a: m.MixtureSameFamily(m.Categorical(logits=a[0]), m.Independent(
        m.Normal(a[1], a[2]), 1)), [LOGITS[0], LOC.T.copy(), POS.T.copy()], RNG.normal(size=(5, 2))),
}
NO_ENTROPY = {"poisson", "mixture", "mixture_mvn"}
CONTINUOUS_RSAMPLE = [n for n in BUILDERS if n.split("_")[0] in {
    "mvn", "gamma", "chi2", "beta", "dirichlet", "exponential", "laplace", "lognormal", "gumbel", "cauchy",
    "halfnormal", "studentt", "weibull"}]


def build(name, device):
    build_fn, arrays, value = BUILDERS[name]
    ours_params, theirs_params = zip(*[pair(a, device) for a in arrays])
    return (build_fn(D, ours_params), build_fn(TD, theirs_params), list(ours_params), list(theirs_params),
            make(value, device, dtype=tensor.float64), torch.tensor(value))


# ------------------------------------------------------------------------------ values and gradients
@pytest.mark.parametrize("name", list(BUILDERS))
def test_log_prob_matches_torch_with_gradients(name, device):
    ours, theirs, ours_params, theirs_params, ours_value, theirs_value = build(name, device)
    assert ours.batch_shape == theirs.batch_shape and ours.event_shape == theirs.event_shape
    assert ours.has_rsample == theirs.has_rsample
    ours_lp, theirs_lp = ours.log_prob(ours_value), theirs.log_prob(theirs_value)
    assert ours_lp.shape == tuple(theirs_lp.shape)
    assert_close(ours_lp, theirs_lp)
    assert_same_grads(ours_lp, theirs_lp, ours_params, theirs_params, rtol=1e-7)


@pytest.mark.parametrize("name", [n for n in BUILDERS if n not in NO_ENTROPY])
def test_entropy_matches_torch_with_gradients(name, device):
    ours, theirs, ours_params, theirs_params, _, _ = build(name, device)
    # torch computes the log n! of Multinomial's entropy in float32 (lgamma of an int tensor)
    rtol = 1e-6 if name.startswith("multinomial") else 1e-9
    assert_close(ours.entropy(), theirs.entropy(), rtol=rtol)
    assert_same_grads(ours.entropy(), theirs.entropy(), ours_params, theirs_params, rtol=max(rtol, 1e-8))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_moments_match_torch(name, device):
    ours, theirs, ours_params, theirs_params, _, _ = build(name, device)
    for attr in ("mean", "variance", "stddev", "mode"):
        try:
            expected = getattr(theirs, attr)
        except NotImplementedError:
            continue
        assert_close(getattr(ours, attr), expected)
    if name == "cauchy":  # NaN mean and inf variance: constants
        return
    assert_same_grads(ours.mean + ours.variance, theirs.mean + theirs.variance, ours_params, theirs_params)


@pytest.mark.parametrize("name,values", [
    ("exponential", RNG.uniform(0, 3, size=(2, 3))), ("laplace", RNG.normal(size=(2, 3))),
    ("gumbel", RNG.normal(size=(2, 3))), ("cauchy", RNG.normal(size=(2, 3)) * 3),
    ("halfnormal", RNG.uniform(0, 3, size=(2, 3))), ("mixture", RNG.normal(size=(2,))),
    ("weibull", RNG.uniform(0.1, 4, size=(2, 3))), ("lognormal", RNG.uniform(0.1, 5, size=(2, 3))),
])
def test_cdf_and_icdf_match_torch(name, values, device):
    ours, theirs, ours_params, theirs_params, _, _ = build(name, device)
    cdf = ours.cdf(make(values, device))
    assert_close(cdf, theirs.cdf(torch.tensor(values)))
    if name != "mixture":
        probs = RNG.uniform(0.05, 0.95, size=(2, 3))
        ours_q, theirs_q = ours.icdf(make(probs, device)), theirs.icdf(torch.tensor(probs))
        assert_close(ours_q, theirs_q, rtol=1e-8)
        assert_same_grads(ours_q, theirs_q, ours_params, theirs_params)


def test_normal_icdf_and_transformed_cdf_match_torch(device):
    """Normal.icdf, and TransformedDistribution's cdf/icdf through an increasing and a decreasing transform."""
    loc, scale = pair(LOC, device), pair(POS, device)
    probs = RNG.uniform(0.05, 0.95, size=(2, 3))
    ours, theirs = D.Normal(loc[0], scale[0]), TD.Normal(loc[1], scale[1])
    ours_q, theirs_q = ours.icdf(make(probs, device)), theirs.icdf(torch.tensor(probs))
    assert_close(ours_q, theirs_q, rtol=1e-8)
    assert_same_grads(ours_q, theirs_q, [loc[0], scale[0]], [loc[1], scale[1]])
    flip = lambda m, base: m.TransformedDistribution(base, [m.AffineTransform(1.0, -2.0)])  # noqa: E731
    values = RNG.normal(size=(2, 3))
    assert_close(flip(D, ours).cdf(make(values, device)), flip(TD, theirs).cdf(torch.tensor(values)))
    assert_close(flip(D, ours).icdf(make(probs, device)), flip(TD, theirs).icdf(torch.tensor(probs)), rtol=1e-8)


def test_beta_and_dirichlet_mode_where_every_concentration_is_below_one(device):
    """The density is unbounded at every vertex; torch picks the first category (x = 1 for Beta), not the largest a."""
    a, b = np.array([0.8, 0.9, 0.9, 2.0]), np.array([0.9, 0.8, 2.0, 3.0])
    assert_close(D.Beta(make(a, device), make(b, device)).mode, TD.Beta(torch.tensor(a), torch.tensor(b)).mode)
    conc = np.array([[0.3, 0.9, 0.5], [0.5, 0.2, 0.1], [2.0, 3.0, 1.0]])
    assert_close(D.Dirichlet(make(conc, device)).mode, TD.Dirichlet(torch.tensor(conc)).mode)


def test_studentt_moments_for_small_df(device):
    df = make(np.array([0.5, 1.5, 3.0]), device)
    dist, ref = D.StudentT(df, 1.0, 2.0), TD.StudentT(torch.tensor([0.5, 1.5, 3.0]), 1.0, 2.0)
    assert_close(dist.mean, ref.mean)
    assert_close(dist.variance, ref.variance)


# ----------------------------------------------------------------------------------- kl_divergence
KL_Q = {
    "mvn_cov": [MVN_LOC[::-1].copy(), COV[::-1] + np.eye(3)],
    "mvn_lowrank": [MVN_LOC[::-1].copy(), FACTOR[::-1].copy(), POS2], "gamma": [POS2, POS], "beta": [POS2, POS],
    "dirichlet": [CONC[::-1].copy()], "exponential": [POS2], "laplace": [LOC[::-1].copy(), POS2],
    "gumbel": [LOC[::-1].copy(), POS2], "cauchy": [LOC[::-1].copy(), POS2], "halfnormal": [POS2],
    "poisson": [POS2], "geometric_probs": [PROBS[::-1].copy()], "binomial_probs": [PROBS[::-1].copy()],
    "lognormal": [LOC[::-1].copy(), POS2],
}


@pytest.mark.parametrize("name", list(KL_Q))
def test_kl_divergence_matches_torch_with_gradients(name, device):
    p_ours, p_theirs, ours_params, theirs_params, _, _ = build(name, device)
    build_fn = BUILDERS[name][0]
    q_ours_params, q_theirs_params = zip(*[pair(a, device) for a in KL_Q[name]])
    ours = D.kl_divergence(p_ours, build_fn(D, q_ours_params))
    theirs = TD.kl_divergence(p_theirs, build_fn(TD, q_theirs_params))
    assert ours.shape == tuple(theirs.shape)
    assert_close(ours, theirs)
    assert_same_grads(ours, theirs, ours_params + list(q_ours_params), theirs_params + list(q_theirs_params))


def test_kl_binomial_counts(device):
    p, q = D.Binomial(make([5.0, 6.0], device), probs=make([0.5, 0.5], device)), D.Binomial(5, probs=0.5)
    kl = to_numpy(D.kl_divergence(p, q))
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[1] == np.inf
    with pytest.raises(NotImplementedError, match="q.total_count > p.total_count"):
        D.kl_divergence(q, p)


# ---------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("name", list(BUILDERS))
def test_sample_shapes_devices_and_graphs(name, device):
    ours, theirs = build(name, device)[:2]
    shape = (7,) + tuple(theirs.batch_shape) + tuple(theirs.event_shape)
    sample = ours.sample((7,))
    assert sample.shape == shape and ours.sample().shape == shape[1:] and not sample.requires_grad
    assert sample.dtype == tensor.float64 and sample.device == tensor.device(device)
    if ours.has_rsample:
        z = ours.rsample((7,))
        assert z.shape == shape and z.requires_grad
    else:
        with pytest.raises(NotImplementedError):
            ours.rsample()
    assert bool(ours.support.check(sample).all())


def test_manual_seed_reproduces_samples(device):
    def draw():
        tensor.manual_seed(7)
        return [to_numpy(build(name, device)[0].sample((3,))) for name in BUILDERS]

    for a, b in zip(draw(), draw()):
        np.testing.assert_array_equal(a, b)


MOMENT_PARAMS = {
    "mvn_cov": [MVN_LOC[0, 0], COV[0]], "gamma": [np.array([0.3, 2.0, 12.0]), np.array([1.0, 0.5, 3.0])],
    "beta": [np.array([0.4, 2.0, 9.0]), np.array([0.7, 3.0, 1.5])], "dirichlet": [np.array([0.3, 1.0, 4.0])],
    "studentt": [np.array([3.0, 4.0, 7.0]), np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 2.0])],
    "poisson": [np.array([0.3, 4.0, 60.0])], "binomial_probs": [np.array([0.05, 0.5, 0.9])],
    "multinomial": [np.array([0.2, 0.3, 0.5])], "geometric_probs": [np.array([0.1, 0.5, 1.0])],
    "mixture": [np.array([0.0, 1.0, -1.0]), np.array([-2.0, 0.0, 3.0]), np.array([0.5, 1.0, 0.3])],
}
MOMENT_PARAMS.update({n: None for n in ("exponential", "laplace", "lognormal", "gumbel", "halfnormal", "chi2")})
MOMENT_PARAMS["weibull"] = [np.array([0.5, 1.0, 2.0]), np.array([1.5, 2.0, 4.0])]


@pytest.mark.parametrize("name", list(MOMENT_PARAMS))
def test_sample_moments(name, device):
    build_fn, arrays, _ = BUILDERS[name]
    arrays = MOMENT_PARAMS[name] or [a * 0.5 for a in arrays]
    dist = build_fn(D, [make(a, device) for a in arrays])
    tensor.manual_seed(3)
    n = 40_000
    x = to_numpy(dist.sample((n,)))
    mean, var = to_numpy(dist.mean), to_numpy(dist.variance)
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / n) + 1e-12)
    np.testing.assert_allclose(x.var(0), var, rtol=0.08 if name != "lognormal" else 0.3, atol=1e-12)


def test_cauchy_samples_have_the_right_quartiles(device):
    tensor.manual_seed(0)
    x = to_numpy(D.Cauchy(make([1.0], device), make([2.0], device)).sample((40_000,)))
    np.testing.assert_allclose(np.percentile(x, [25, 50, 75]), [-1.0, 1.0, 3.0], atol=0.08)


# ------------------------------------------------------------------------------ reparameterisation
def test_gamma_rsample_gradient_is_torchs_implicit_gradient(device):
    (alpha, _), (rate, _) = pair(np.array([0.05, 0.4, 1.0, 3.0, 9.0, 40.0]), device), pair(np.full(6, 2.0), device)
    tensor.manual_seed(0)
    z = D.Gamma(alpha, rate).rsample((200,))
    z.sum().backward()
    x = to_numpy(z) * 2.0  # the standard-gamma draws
    per_draw = torch._standard_gamma_grad(torch.tensor(np.broadcast_to(to_numpy(alpha), x.shape).copy()),
                                          torch.tensor(x)).numpy()
    np.testing.assert_allclose(to_numpy(alpha.grad), (per_draw / 2.0).sum(0), rtol=1e-10)
    np.testing.assert_allclose(to_numpy(rate.grad), -(to_numpy(z) / 2.0).sum(0), rtol=1e-10)


def test_gamma_implicit_gradient_is_close_to_exact(device):
    special = pytest.importorskip("scipy.special")
    stats = pytest.importorskip("scipy.stats")
    from tensor.distributions._standard_gamma import standard_gamma_grad

    alpha = np.repeat([0.05, 0.3, 1.0, 2.5, 7.0, 9.0, 30.0, 200.0], 100)
    tensor.manual_seed(1)
    x = to_numpy(D.Gamma(make(alpha, device), 1.0).sample())
    h = 1e-6
    d_cdf = (special.gammainc(alpha + h, x) - special.gammainc(alpha - h, x)) / (2 * h)
    exact = -d_cdf / stats.gamma.pdf(x, alpha)
    np.testing.assert_allclose(standard_gamma_grad(np, alpha, x), exact, rtol=2e-3)


@pytest.mark.parametrize("name,params", [
    ("beta", [np.array([0.5, 2.0]), np.array([3.0, 1.5])]),
    ("dirichlet", [np.array([0.5, 2.0, 3.0])]),
    ("studentt", [np.array([6.0, 9.0]), np.array([0.0, 1.0]), np.array([1.0, 2.0])]),
])
def test_rsample_gradients_are_unbiased(name, params, device):
    """The mean over many draws of d(draw)/d(parameter) matches the gradient of torch's closed-form mean (Beta)
    or second moment E[z^2] (Dirichlet, StudentT): the pathwise gradients are unbiased."""
    build_fn = BUILDERS[name][0]
    ours = [make(p, device, requires_grad=True) for p in params]
    theirs = [torch.tensor(p, requires_grad=True) for p in params]
    if name == "studentt":
        build_fn = (lambda m, a: m.StudentT(a[0], a[1], a[2]))
    tensor.manual_seed(5)
    z = build_fn(D, ours).rsample((100_000,))
    stat = z.mean(0) if name == "beta" else z.square().mean(0)
    stat.sum().backward()
    ref_dist = build_fn(TD, theirs)
    ref = ref_dist.mean if name == "beta" else ref_dist.variance + ref_dist.mean.square()
    ref.sum().backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(to_numpy(o.grad), t.grad.numpy(), rtol=0.05, atol=0.03)


def test_mvn_rsample_is_loc_plus_scale_tril_times_noise(device):
    (loc, _), (tril, _) = pair(MVN_LOC[0, 0], device), pair(TRIL[0], device)
    tensor.manual_seed(0)
    z = D.MultivariateNormal(loc, scale_tril=tril).rsample((6,))
    tensor.manual_seed(0)
    eps = to_numpy(tensor.randn(6, 3, dtype=tensor.float64, device=device))
    np.testing.assert_allclose(to_numpy(z), MVN_LOC[0, 0] + eps @ TRIL[0].T, rtol=1e-12)
    z.sum().backward()
    np.testing.assert_allclose(to_numpy(loc.grad), np.full(3, 6.0))
    np.testing.assert_allclose(to_numpy(tril.grad), np.tril(np.ones((3, 1)) * eps.sum(0)), rtol=1e-12)


def test_lowrank_mvn_rsample_is_loc_plus_factor_noise_plus_diagonal_noise(device):
    """torch's draw: loc + W eps_r + sqrt(D) eps_n, the rank-r noise drawn first; KL against a full-covariance
    MultivariateNormal matches torch's Woodbury form."""
    (loc, tloc), (w, tw), (d, td) = pair(MVN_LOC[0, 0], device), pair(FACTOR[0], device), pair(POS[0], device)
    tensor.manual_seed(0)
    z = D.LowRankMultivariateNormal(loc, w, d).rsample((6,))
    tensor.manual_seed(0)
    eps_w = to_numpy(tensor.randn(6, 2, dtype=tensor.float64, device=device))
    eps_d = to_numpy(tensor.randn(6, 3, dtype=tensor.float64, device=device))
    np.testing.assert_allclose(to_numpy(z), MVN_LOC[0, 0] + eps_w @ FACTOR[0].T + np.sqrt(POS[0]) * eps_d, rtol=1e-12)
    (q_loc, tq_loc), (cov, tcov) = pair(MVN_LOC[1, 0], device), pair(COV[0], device)
    ours = D.kl_divergence(D.LowRankMultivariateNormal(loc, w, d), D.MultivariateNormal(q_loc, cov))
    theirs = TD.kl_divergence(TD.LowRankMultivariateNormal(tloc, tw, td), TD.MultivariateNormal(tq_loc, tcov))
    assert_close(ours, theirs)
    assert_same_grads(ours, theirs, [loc, w, d, q_loc, cov], [tloc, tw, td, tq_loc, tcov])
    with pytest.raises(ValueError, match=r"cov_factor \(3, 2\) must end in \(2, r\)"):
        D.LowRankMultivariateNormal(make([0.0, 0.0], device), w, d)


@pytest.mark.parametrize("name", ["exponential", "laplace", "gumbel", "cauchy", "halfnormal", "lognormal"])
def test_location_scale_rsample_gradients(name, device):
    """z is loc + scale * (a draw that does not depend on them): dz/dloc = 1, dz/dscale = (z - loc) / scale."""
    build_fn, arrays, _ = BUILDERS[name]
    params = [make(a, device, requires_grad=True) for a in arrays]
    z = build_fn(D, params).rsample((5,))
    z.sum().backward()
    zs = to_numpy(z)
    if name == "exponential":
        np.testing.assert_allclose(to_numpy(params[0].grad), (-zs / arrays[0]).sum(0), rtol=1e-10)
    elif name == "halfnormal":
        np.testing.assert_allclose(to_numpy(params[0].grad), (zs / arrays[0]).sum(0), rtol=1e-10)
    elif name == "lognormal":  # z = exp(loc + scale eps)
        np.testing.assert_allclose(to_numpy(params[0].grad), zs.sum(0), rtol=1e-10)
        np.testing.assert_allclose(to_numpy(params[1].grad), (zs * (np.log(zs) - arrays[0]) / arrays[1]).sum(0),
                                   rtol=1e-8)
    else:
        np.testing.assert_allclose(to_numpy(params[0].grad), np.full(arrays[0].shape, 5.0))
        np.testing.assert_allclose(to_numpy(params[1].grad), ((zs - arrays[0]) / arrays[1]).sum(0), rtol=1e-8)


# -------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("make_dist,match", [
    (lambda d: D.Gamma(make([1.0, -1.0], d), 1.0), r"concentration.*Positive.*-1\.0.*index \(1,\)"),
    (lambda d: D.Beta(make([1.0], d), make([0.0], d)), r"concentration0.*Positive.*0\.0"),
    (lambda d: D.Dirichlet(make([[1.0, 0.0]], d)), r"concentration.*\[1\.0, 0\.0\]"),
    (lambda d: D.Dirichlet(make(1.0, d)), r"at least one dim"),
    (lambda d: D.MultivariateNormal(make([0.0, 0.0], d), covariance_matrix=make([[1.0, 2.0], [2.0, 1.0]], d)),
     r"covariance_matrix.*PositiveDefinite"),
    (lambda d: D.MultivariateNormal(make([0.0, 0.0], d), scale_tril=make([[1.0, 0.0], [2.0, -1.0]], d)),
     r"scale_tril.*LowerCholesky"),
    (lambda d: D.MultivariateNormal(make([0.0, 0.0], d)), r"exactly one of.*none"),
    (lambda d: D.MultivariateNormal(make([0.0, 0.0], d), covariance_matrix=make(np.eye(2), d),
                                    scale_tril=make(np.eye(2), d)), r"exactly one of.*covariance_matrix.*scale_tril"),
    (lambda d: D.MultivariateNormal(make([0.0, 0.0], d), covariance_matrix=make(np.eye(3), d)),
     r"\(3, 3\) must end in \(2, 2\)"),
    (lambda d: D.Exponential(make([0.0], d)), r"rate.*Positive"),
    (lambda d: D.Laplace(0.0, make([-1.0], d)), r"scale.*-1\.0"),
    (lambda d: D.StudentT(make([-2.0], d)), r"df.*-2\.0"),
    (lambda d: D.Poisson(make([1.0, -1.0], d)), r"rate.*-1\.0"),
    (lambda d: D.Geometric(probs=make([0.5, 0.0], d)), r"probs.*\(0, 1\].*0\.0"),
    (lambda d: D.Geometric(), r"exactly one of probs or logits"),
    (lambda d: D.Binomial(make([2.5], d), probs=make([0.5], d)), r"total_count.*2\.5"),
    (lambda d: D.Multinomial(-1, probs=make([0.5, 0.5], d)), r"total_count must be a non-negative int"),
    (lambda d: D.MixtureSameFamily(D.Categorical(logits=make(np.zeros(3), d)), D.Normal(make(np.zeros(4), d), 1.0)),
     r"3 components.*last batch dim is 4"),
    (lambda d: D.MixtureSameFamily(D.Normal(0.0, 1.0), D.Normal(make(np.zeros(4), d), 1.0)),
     r"must be a Categorical"),
])
def test_invalid_parameters_raise(make_dist, match, device):
    with pytest.raises(ValueError, match=match):
        make_dist(device)


@pytest.mark.parametrize("name,bad", [
    ("gamma", -1.0), ("beta", 1.5), ("exponential", -0.5), ("halfnormal", -0.1), ("lognormal", 0.0),
    ("poisson", 1.5), ("geometric_probs", -1.0), ("binomial_probs", 7.0),
])
def test_values_outside_the_support_raise(name, bad, device):
    dist = build(name, device)[0]
    with pytest.raises(ValueError, match=r"support"):
        dist.log_prob(make(np.full(tuple(dist.batch_shape), bad), device))


def test_vector_values_outside_the_support_raise(device):
    with pytest.raises(ValueError, match="Simplex"):
        build("dirichlet", device)[0].log_prob(make(np.full((2, 4), 0.5), device))
    with pytest.raises(ValueError, match="Multinomial"):
        build("multinomial", device)[0].log_prob(make(np.full((2, 4), 2.0), device))
    with pytest.raises(ValueError, match="must end in the event shape"):
        build("mvn_tril", device)[0].log_prob(make(np.zeros((2, 4)), device))
    quiet = D.Gamma(make([1.0], device), 1.0, validate_args=False)
    quiet.log_prob(make([-1.0], device))  # no error without validation


def test_probs_first_read_under_no_grad_keeps_its_graph(device):
    # sample() reads probs under no_grad; a policy loss through probs afterwards must still have gradients
    logits = make(np.array([[0.1, 0.2, 0.3]]), device, requires_grad=True)
    for dist in (D.Categorical(logits=logits), D.Bernoulli(logits=logits)):
        dist.sample()
        assert dist.probs.requires_grad
    categorical = D.Categorical(logits=logits)
    with tensor.no_grad():
        categorical.probs
    (categorical.probs * make(np.array([1.0, 2.0, 3.0]), device)).sum().backward()
    assert np.abs(to_numpy(logits.grad)).max() > 0.1
