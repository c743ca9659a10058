"""tensor.distributions against torch.distributions: values, gradients, sampling, validation."""
import numpy as np
import pytest

import tensor
import tensor.distributions as D
from tests.tensor.helpers import make, to_numpy

torch = pytest.importorskip("torch")
TD = torch.distributions

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(4, 3)) * 2
PROBS = RNG.uniform(0.05, 1.0, size=(4, 3))
BERN_P = RNG.uniform(0.05, 0.95, size=(5,))
LOC, SCALE = RNG.normal(size=(2, 3)), RNG.uniform(0.5, 2.0, size=(2, 3))
LOW, HIGH = RNG.uniform(-2, 0, size=(3,)), RNG.uniform(0.5, 2, size=(3,))


def pair(array, device):
    """The same float64 array as a raygrad tensor on `device` and a torch tensor, both requiring grad."""
    return make(array, device, requires_grad=True), torch.tensor(array, requires_grad=True)


def assert_close(ours, theirs, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=rtol, atol=atol)


def assert_same_grads(ours_out, theirs_out, ours_params, theirs_params):
    """Backward of out.sum() gives the same gradient to each parameter."""
    ours_out.sum().backward()
    theirs_out.sum().backward()
    for a, b in zip(ours_params, theirs_params):
        if b.grad is None:  # the output does not depend on it (Normal's entropy on loc)
            assert a.grad is None or not to_numpy(a.grad).any()
        else:
            assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------ values and gradients
BUILDERS = {
    "categorical_logits": (lambda m, a: m.Categorical(logits=a[0]), [LOGITS], np.array([0, 2, 1, 2])),
    "categorical_probs": (lambda m, a: m.Categorical(probs=a[0]), [PROBS], np.array([[1, 0, 2, 2]] * 2)),
    "bernoulli_logits": (lambda m, a: m.Bernoulli(logits=a[0]), [LOGITS[0] * 5], np.array([1.0, 0.0, 1.0])),
    "bernoulli_probs": (lambda m, a: m.Bernoulli(probs=a[0]), [BERN_P], np.array([1.0, 0, 0, 1, 1])),
    "normal": (lambda m, a: m.Normal(a[0], a[1]), [LOC, SCALE], RNG.normal(size=(4, 2, 3))),
    "uniform": (lambda m, a: m.Uniform(a[0], a[1]), [LOW, HIGH], RNG.uniform(0, 0.4, size=(2, 3))),
    "onehot": (lambda m, a: m.OneHotCategorical(logits=a[0]), [LOGITS], np.eye(3)[[0, 2, 1, 1]]),
}


def build(name, device):
    build_fn, arrays, value = BUILDERS[name]
    ours_params, theirs_params = zip(*[pair(a, device) for a in arrays])
    value_dtype = None if value.dtype.kind == "i" else tensor.float64
    ours_value, theirs_value = make(value, device, dtype=value_dtype), torch.tensor(value)
    return (build_fn(D, ours_params), build_fn(TD, theirs_params), ours_params, theirs_params, ours_value,
            theirs_value)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_log_prob_matches_torch_with_gradients(name, device):
    ours, theirs, ours_params, theirs_params, ours_value, theirs_value = build(name, device)
    assert ours.batch_shape == theirs.batch_shape and ours.event_shape == theirs.event_shape
    ours_lp, theirs_lp = ours.log_prob(ours_value), theirs.log_prob(theirs_value)
    assert ours_lp.shape == tuple(theirs_lp.shape)
    assert_close(ours_lp, theirs_lp)
    assert_same_grads(ours_lp, theirs_lp, ours_params, theirs_params)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_entropy_matches_torch_with_gradients(name, device):
    ours, theirs, ours_params, theirs_params, _, _ = build(name, device)
    assert_close(ours.entropy(), theirs.entropy())
    assert_same_grads(ours.entropy(), theirs.entropy(), ours_params, theirs_params)


@pytest.mark.parametrize("name", ["bernoulli_probs", "normal", "uniform", "onehot"])
def test_mean_variance_stddev_match_torch(name, device):
    ours, theirs, *_ = build(name, device)
    for attr in ("mean", "variance", "stddev"):
        assert_close(getattr(ours, attr), getattr(theirs, attr))


def test_categorical_mean_is_nan_and_probs_are_normalised(device):
    ours, theirs, *_ = build("categorical_probs", device)
    assert np.isnan(to_numpy(ours.mean)).all() and ours.mean.shape == (4,)
    assert_close(ours.probs, theirs.probs)
    assert_close(ours.logits, theirs.logits)
    assert_close(D.Categorical(logits=make(LOGITS, device)).probs, TD.Categorical(logits=torch.tensor(LOGITS)).probs)


def test_categorical_logits_stable_for_large_values(device):
    logits = np.array([[1000.0, 0.0, -1000.0]])
    dist = D.Categorical(logits=make(logits, device))
    assert np.isfinite(to_numpy(dist.logits)[0, :2]).all()
    assert_close(dist.log_prob(make(np.array([0, 1]), device)), TD.Categorical(logits=torch.tensor(logits))
                 .log_prob(torch.tensor([0, 1])))
    assert np.isfinite(to_numpy(dist.entropy())).all()


def test_bernoulli_log_prob_stable_for_large_logits(device):
    logits = np.array([200.0, -200.0, 40.0])
    value = np.array([0.0, 1.0, 1.0])
    ours = D.Bernoulli(logits=make(logits, device)).log_prob(make(value, device))
    assert_close(ours, TD.Bernoulli(logits=torch.tensor(logits)).log_prob(torch.tensor(value)))


def test_normal_cdf_matches_torch(device):
    ours, theirs, *_ = build("normal", device)
    x = RNG.normal(size=(2, 3))
    assert_close(ours.cdf(make(x, device)), theirs.cdf(torch.tensor(x)), rtol=1e-7)


# ----------------------------------------------------------------------------------- kl_divergence
KL_PAIRS = [("categorical_logits", LOGITS[::-1].copy()), ("normal", None), ("bernoulli_probs", BERN_P[::-1].copy()),
            ("onehot", LOGITS[::-1].copy()), ("uniform", None)]


@pytest.mark.parametrize("name,other", KL_PAIRS, ids=[p[0] for p in KL_PAIRS])
def test_kl_divergence_matches_torch_with_gradients(name, other, device):
    p_ours, p_theirs, ours_params, theirs_params, _, _ = build(name, device)
    build_fn, arrays, _ = BUILDERS[name]
    if name == "uniform":  # q must cover p's support for a finite KL
        q_arrays = [LOW - 0.5, HIGH + 1.0]
    elif name == "normal":
        q_arrays = [LOC[::-1].copy(), SCALE[::-1].copy()]
    else:
        q_arrays = [other]
    q_ours_params, q_theirs_params = zip(*[pair(a, device) for a in q_arrays])
    ours = D.kl_divergence(p_ours, build_fn(D, q_ours_params))
    theirs = TD.kl_divergence(p_theirs, build_fn(TD, q_theirs_params))
    assert_close(ours, theirs)
    assert_same_grads(ours, theirs, ours_params + q_ours_params, theirs_params + q_theirs_params)


def test_kl_infinite_where_q_has_no_mass(device):
    p = D.Categorical(probs=make(np.array([0.5, 0.5, 0.0]), device))
    q = D.Categorical(probs=make(np.array([1.0, 0.0, 0.0]), device))
    assert to_numpy(D.kl_divergence(p, q)) == np.inf
    assert to_numpy(D.kl_divergence(q, p)) == pytest.approx(np.log(2))


def test_kl_unknown_pair_names_it(device):
    with pytest.raises(NotImplementedError, match=r"\(Normal, Bernoulli\)"):
        D.kl_divergence(D.Normal(make([0.0], device), 1.0), D.Bernoulli(probs=make([0.5], device)))


# ---------------------------------------------------------------------------------------- sampling
def test_rsample_gradients_reach_loc_and_scale(device):
    loc, scale = pair(LOC, device)[0], pair(SCALE, device)[0]
    tensor.manual_seed(0)
    z = D.Normal(loc, scale).rsample((5,))
    assert z.shape == (5, 2, 3) and z.requires_grad
    tensor.manual_seed(0)
    eps = to_numpy(tensor.randn(5, 2, 3, dtype=tensor.float64, device=device))
    z.sum().backward()  # dz/dloc = 1 per draw, dz/dscale = eps
    np.testing.assert_allclose(to_numpy(loc.grad), np.full((2, 3), 5.0))
    np.testing.assert_allclose(to_numpy(scale.grad), eps.sum(0), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(z), LOC + SCALE * eps, rtol=1e-12)


def test_uniform_rsample_gradients(device):
    low, high = pair(LOW, device)[0], pair(HIGH, device)[0]
    z = D.Uniform(low, high).rsample((7,))
    z.sum().backward()
    u = (to_numpy(z) - LOW) / (HIGH - LOW)
    np.testing.assert_allclose(to_numpy(high.grad), u.sum(0), rtol=1e-10)
    np.testing.assert_allclose(to_numpy(low.grad), (1 - u).sum(0), rtol=1e-10)


def test_sample_has_no_graph_and_discrete_has_no_rsample(device):
    probs = make(PROBS, device, requires_grad=True)
    dist = D.Categorical(probs=probs)
    assert not dist.sample().requires_grad and not D.Normal(make(LOC, device, True), 1.0).sample().requires_grad
    with pytest.raises(NotImplementedError, match="Categorical"):
        dist.rsample()


@pytest.mark.parametrize("name,shape", [
    ("categorical_logits", (100, 4)), ("bernoulli_probs", (100, 5)), ("normal", (100, 2, 3)),
    ("uniform", (100, 3)), ("onehot", (100, 4, 3)),
])
def test_sample_shapes(name, shape, device):
    dist = build(name, device)[0]
    assert dist.sample((100,)).shape == shape
    assert dist.sample(100).shape == shape
    assert dist.sample().shape == shape[1:]


def test_empirical_moments(device):
    tensor.manual_seed(1)
    n = 40_000
    probs = np.array([0.1, 0.6, 0.3])
    counts = np.bincount(to_numpy(D.Categorical(probs=make(probs, device)).sample((n,))), minlength=3)
    np.testing.assert_allclose(counts / n, probs, atol=0.01)
    bern = to_numpy(D.Bernoulli(probs=make(np.array([0.2, 0.9]), device)).sample((n,)))
    np.testing.assert_allclose(bern.mean(0), [0.2, 0.9], atol=0.01)
    normal = to_numpy(D.Normal(make(np.array([1.0, -3.0]), device), make(np.array([0.5, 2.0]), device)).sample((n,)))
    np.testing.assert_allclose(normal.mean(0), [1.0, -3.0], atol=0.05)
    np.testing.assert_allclose(normal.std(0), [0.5, 2.0], rtol=0.03)
    uniform = to_numpy(D.Uniform(make(np.array([-1.0]), device), 3.0).sample((n,)))
    assert uniform.min() >= -1 and uniform.max() < 3 and abs(uniform.mean() - 1.0) < 0.05


def test_categorical_never_samples_zero_probability(device):
    dist = D.Categorical(probs=make(np.array([0.0, 1.0, 0.0, 0.0]), device))
    assert (to_numpy(dist.sample((1000,))) == 1).all()


def test_manual_seed_reproduces_samples(device):
    def draw():
        tensor.manual_seed(123)
        return [to_numpy(build(name, device)[0].sample((3,))) for name in BUILDERS]

    for a, b in zip(draw(), draw()):
        np.testing.assert_array_equal(a, b)


def test_samples_stay_on_the_parameters_device_and_dtype(device):
    dist = D.Normal(make(LOC, device), make(SCALE, device))
    sample = dist.sample()
    assert sample.device == tensor.device(device) and sample.dtype == tensor.float64
    assert D.Categorical(logits=make(LOGITS, device)).sample().dtype == tensor.int64


# -------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("make_dist,match", [
    (lambda dev: D.Normal(make([0.0, 1.0], dev), make([1.0, -2.0], dev)), r"scale.*Positive.*-2\.0.*index \(1,\)"),
    (lambda dev: D.Bernoulli(probs=make([0.5, 1.5], dev)), r"probs.*1\.5"),
    (lambda dev: D.Categorical(probs=make([0.5, -0.1, 0.6], dev)), r"probs.*Simplex"),
    (lambda dev: D.Uniform(make([0.0, 2.0], dev), make([1.0, 1.0], dev)), r"low >= high.*1\.0.*index \(1,\)"),
    (lambda dev: D.Categorical(), r"exactly one of probs or logits"),
    (lambda dev: D.Bernoulli(probs=make([0.5], dev), logits=make([0.5], dev)), r"not both"),
])
def test_invalid_parameters_raise(make_dist, match, device):
    with pytest.raises(ValueError, match=match):
        make_dist(device)


def test_invalid_values_raise_and_validation_can_be_off(device):
    dist = D.Categorical(logits=make(LOGITS, device))
    with pytest.raises(ValueError, match=r"support.*3 at index \(2,\)"):
        dist.log_prob(make(np.array([0, 1, 3, 0]), device))
    with pytest.raises(ValueError, match="support"):
        D.Bernoulli(probs=make(BERN_P, device)).log_prob(make(np.full(5, 0.5), device))
    with pytest.raises(ValueError, match="broadcast"):
        dist.log_prob(make(np.array([0, 1, 2]), device))
    quiet = D.Normal(make([0.0], device), make([-1.0], device), validate_args=False)
    assert quiet.scale.shape == (1,)
    outside = D.Uniform(0.0, 1.0, validate_args=False).log_prob(make([2.0], device))
    assert to_numpy(outside)[0] == -np.inf


# ------------------------------------------------------- Independent, TransformedDistribution, transforms
def squashed(m, mu, sd):
    return m.TransformedDistribution(m.Independent(m.Normal(mu, sd), 1), [m.TanhTransform()])


COMPOSED = {
    "independent": (lambda m, mu, sd: m.Independent(m.Normal(mu, sd), 1), RNG.normal(size=(4, 2, 3))),
    "independent_2": (lambda m, mu, sd: m.Independent(m.Normal(mu, sd), 2), RNG.normal(size=(2, 3))),
    "tanh_normal": (squashed, np.tanh(RNG.normal(size=(5, 2, 3)))),
    "affine_exp": (lambda m, mu, sd: m.TransformedDistribution(
        m.Normal(mu, sd), [m.AffineTransform(0.5, -2.0), m.ExpTransform()]), RNG.uniform(0.1, 3, size=(2, 3))),
    "sigmoid_compose": (lambda m, mu, sd: m.TransformedDistribution(
        m.Normal(mu, sd), m.ComposeTransform([m.AffineTransform(mu, sd), m.SigmoidTransform()])),
        RNG.uniform(0.05, 0.95, size=(2, 3))),
    "affine_event": (lambda m, mu, sd: m.TransformedDistribution(
        m.Independent(m.Normal(mu, sd), 1), [m.AffineTransform(1.0, sd[0], event_dim=1)]), RNG.normal(size=(2, 3))),
}


@pytest.mark.parametrize("name", COMPOSED)
def test_composed_distributions_match_torch(name, device):
    build_fn, value = COMPOSED[name]
    (mu, tmu), (sd, tsd) = pair(LOC, device), pair(SCALE, device)
    ours, theirs = build_fn(D, mu, sd), build_fn(TD, tmu, tsd)
    assert ours.batch_shape == theirs.batch_shape and ours.event_shape == theirs.event_shape
    assert ours.has_rsample == theirs.has_rsample
    ours_lp, theirs_lp = ours.log_prob(make(value, device)), theirs.log_prob(torch.tensor(value))
    assert_close(ours_lp, theirs_lp, rtol=1e-9)
    assert_same_grads(ours_lp, theirs_lp, [mu, sd], [tmu, tsd])
    sample = ours.rsample((7,))
    assert sample.shape == (7,) + tuple(theirs.batch_shape) + tuple(theirs.event_shape) and sample.requires_grad
    assert not ours.sample().requires_grad
    if name.startswith("independent"):
        assert_close(ours.entropy(), theirs.entropy())
        assert_close(ours.mean, theirs.mean)


def test_transform_cache_reuses_the_pre_image(device):
    x = make(np.array([0.0, 20.0, -30.0]), device)
    cached, plain = D.TanhTransform(cache_size=1), D.TanhTransform()
    y = cached(x)
    assert cached.inv(y) is x and cached(x) is y
    assert not np.isfinite(to_numpy(plain.inv(plain(x)))[1:]).all()  # atanh(1) is inf: why the cache exists
    dist = D.TransformedDistribution(D.Normal(make([0.0], device), make([10.0], device)),
                                     [D.TanhTransform(cache_size=1)])
    y = dist.rsample((1000,))
    assert np.isfinite(to_numpy(dist.log_prob(y))).all()
    with pytest.raises(ValueError, match="cache_size must be 0 or 1"):
        D.TanhTransform(cache_size=2)


def test_transform_inverse_and_jacobian_match_torch(device):
    x = RNG.normal(size=(3, 2))
    for ours, theirs in [(D.TanhTransform(), TD.TanhTransform()), (D.ExpTransform(), TD.ExpTransform()),
                         (D.SigmoidTransform(), TD.SigmoidTransform()),
                         (D.AffineTransform(1.0, -3.0), TD.AffineTransform(1.0, -3.0))]:
        tx = torch.tensor(x)
        y, ty = ours(make(x, device)), theirs(tx)
        assert_close(y, ty)
        assert_close(ours.log_abs_det_jacobian(make(x, device), y), theirs.log_abs_det_jacobian(tx, ty))
        assert_close(ours.inv(y), theirs.inv(ty), rtol=1e-8)
        assert ours.sign == theirs.sign and ours.inv.inv is ours


def test_independent_kl_and_validation(device):
    (mu, tmu), (sd, tsd) = pair(LOC, device), pair(SCALE, device)
    p, tp = D.Independent(D.Normal(mu, sd), 1), TD.Independent(TD.Normal(tmu, tsd), 1)
    q, tq = D.Independent(D.Normal(mu * 0, sd * 0 + 1), 1), TD.Independent(TD.Normal(tmu * 0, tsd * 0 + 1), 1)
    assert_close(D.kl_divergence(p, q), TD.kl_divergence(tp, tq))
    with pytest.raises(ValueError, match=r"reinterpreted_batch_ndims must be in 0\.\.2"):
        D.Independent(D.Normal(mu, sd), 3)
    with pytest.raises(ValueError, match="support"):
        squashed(D, mu, sd).log_prob(make(np.full((2, 3), 1.5), device))
