"""Bayesian deep-learning scripts as the well-known tutorials write them, ported by imports.

Bayes by Backprop (Blundell et al.: softplus-parameterised posteriors, a scale-mixture prior, the ELBO
over Monte-Carlo samples, and the closed-form KL variant), mean-field and amortised variational inference
(Independent guides, kl_divergence, rsample, a low-rank Gaussian guide), planar normalizing flows, MC
dropout, and maximum-likelihood fits with torch.distributions (a mixture density network, Poisson
regression).

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data and the same noise (the eps of every reparameterisation is an argument), and
losses and final parameters agree to float32 accuracy.
"""
import math

import numpy as np
import pytest

import tensor
from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


# ---- 1. Bayes by Backprop ---------------------------------------------------------------------------

PI, SIGMA_1, SIGMA_2 = 0.5, math.exp(-0), math.exp(-6)


def bayes_by_backprop(T, in_dim=4, hidden=6, classes=3, closed_form_kl=False):
    nn, F = T.nn, T.nn.functional

    class Gaussian:
        def __init__(self, mu, rho):
            self.mu = mu
            self.rho = rho

        @property
        def sigma(self):
            return T.log1p(T.exp(self.rho))

        def sample(self, epsilon):
            return self.mu + self.sigma * epsilon

        def log_prob(self, input):
            return (-math.log(math.sqrt(2 * math.pi))
                    - T.log(self.sigma)
                    - ((input - self.mu) ** 2) / (2 * self.sigma ** 2)).sum()

    class ScaleMixtureGaussian:
        def __init__(self, pi, sigma1, sigma2):
            self.pi = pi
            self.gaussian1 = T.distributions.Normal(0, sigma1)
            self.gaussian2 = T.distributions.Normal(0, sigma2)

        def log_prob(self, input):
            prob1 = T.exp(self.gaussian1.log_prob(input))
            prob2 = T.exp(self.gaussian2.log_prob(input))
            return (T.log(self.pi * prob1 + (1 - self.pi) * prob2)).sum()

    class BayesianLinear(nn.Module):
        def __init__(self, in_features, out_features):
            super().__init__()
            self.weight_mu = nn.Parameter(T.Tensor(out_features, in_features).uniform_(-0.2, 0.2))
            self.weight_rho = nn.Parameter(T.Tensor(out_features, in_features).uniform_(-5, -4))
            self.weight = Gaussian(self.weight_mu, self.weight_rho)
            self.bias_mu = nn.Parameter(T.Tensor(out_features).uniform_(-0.2, 0.2))
            self.bias_rho = nn.Parameter(T.Tensor(out_features).uniform_(-5, -4))
            self.bias = Gaussian(self.bias_mu, self.bias_rho)
            self.weight_prior = ScaleMixtureGaussian(PI, SIGMA_1, SIGMA_2)
            self.bias_prior = ScaleMixtureGaussian(PI, SIGMA_1, SIGMA_2)
            self.log_prior = 0
            self.log_variational_posterior = 0

        def forward(self, input, eps):
            weight = self.weight.sample(eps[0])
            bias = self.bias.sample(eps[1])
            self.log_prior = self.weight_prior.log_prob(weight) + self.bias_prior.log_prob(bias)
            self.log_variational_posterior = self.weight.log_prob(weight) + self.bias.log_prob(bias)
            return F.linear(input, weight, bias)

        def kl(self):
            q_w = T.distributions.Normal(self.weight_mu, self.weight.sigma)
            q_b = T.distributions.Normal(self.bias_mu, self.bias.sigma)
            prior = T.distributions.Normal(T.zeros_like(self.weight_mu), T.ones_like(self.weight_mu))
            return (T.distributions.kl_divergence(q_w, prior).sum()
                    + T.distributions.kl_divergence(q_b, T.distributions.Normal(0.0, 1.0)).sum())

    class BayesianNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = BayesianLinear(in_dim, hidden)
            self.l2 = BayesianLinear(hidden, classes)

        def forward(self, x, eps):
            x = F.relu(self.l1(x, eps[0:2]))
            return F.log_softmax(self.l2(x, eps[2:4]), dim=1)

        def log_prior(self):
            return self.l1.log_prior + self.l2.log_prior

        def log_variational_posterior(self):
            return self.l1.log_variational_posterior + self.l2.log_variational_posterior

        def sample_elbo(self, input, target, eps, num_batches):
            samples = len(eps)
            outputs = T.zeros(samples, input.size(0), classes, device=input.device)
            log_priors = T.zeros(samples, device=input.device)
            log_variational_posteriors = T.zeros(samples, device=input.device)
            for i in range(samples):
                outputs[i] = self(input, eps[i])
                log_priors[i] = self.log_prior()
                log_variational_posteriors[i] = self.log_variational_posterior()
            log_prior = log_priors.mean()
            log_variational_posterior = log_variational_posteriors.mean()
            negative_log_likelihood = F.nll_loss(outputs.mean(0), target, size_average=False)
            if closed_form_kl:
                kl = self.l1.kl() + self.l2.kl()
            else:
                kl = log_variational_posterior - log_prior
            loss = kl / num_batches + negative_log_likelihood
            return loss, log_prior, log_variational_posterior, negative_log_likelihood

    return BayesianNetwork()


def train_bayes_by_backprop(T, device, init, x, y, eps, closed_form_kl):
    device = device_of(T, device)
    build = lambda T: bayes_by_backprop(T, closed_form_kl=closed_form_kl)  # noqa: E731
    net = ported_model(T, build, init, device)
    x, y = T.tensor(x).to(device), T.tensor(y).to(device)
    optimizer = T.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for step_eps in eps:
        step_eps = [[T.tensor(e).to(device) for e in sample] for sample in step_eps]
        net.train()
        net.zero_grad()
        loss, log_prior, log_q, nll = net.sample_elbo(x, y, step_eps, num_batches=4)
        loss.backward()
        optimizer.step()
        losses += [loss.item(), log_prior.item(), log_q.item(), nll.item()]
    return losses, numpy_state(net)


@pytest.mark.parametrize("closed_form_kl", [False, True])
def test_bayes_by_backprop(device, closed_form_kl):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    shapes = [(6, 4), (6,), (3, 6), (3,)]
    eps = [[[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(2)] for _ in range(3)]
    torch.manual_seed(0)
    init = numpy_state(bayes_by_backprop(torch))
    run_both(train_bayes_by_backprop, device, init, x, y, eps, closed_form_kl)


# ---- 2. Variational inference -----------------------------------------------------------------------

def mean_field_blr(T, device, X, y, eps, noise_scale=0.5):
    """A mean-field Gaussian guide on Bayesian linear regression's weights; eps fixes the draws."""
    device = device_of(T, device)
    D = T.distributions
    X, y = T.tensor(X).to(device), T.tensor(y).to(device)
    d = X.shape[1]
    q_mu = T.zeros(d, device=device, requires_grad=True)
    q_rho = T.full((d,), -1.0, device=device, requires_grad=True)
    prior = D.Independent(D.Normal(T.zeros(d, device=device), T.ones(d, device=device)), 1)
    optimizer = T.optim.Adam([q_mu, q_rho], lr=0.05)
    losses = []
    for step_eps in eps:
        optimizer.zero_grad()
        q = D.Independent(D.Normal(q_mu, T.nn.functional.softplus(q_rho)), 1)
        w = q.mean + q.stddev * T.tensor(step_eps).to(device)          # (S, d): rsample with known noise
        log_lik = D.Normal(w @ X.T, noise_scale).log_prob(y).sum(-1)   # (S,)
        elbo = log_lik.mean() - D.kl_divergence(q, prior)
        mc_elbo = (log_lik + prior.log_prob(w) - q.log_prob(w)).mean()
        loss = -elbo
        loss.backward()
        optimizer.step()
        losses += [loss.item(), mc_elbo.item(), q.entropy().item()]
    return losses, {"mu": q_mu.detach().cpu().numpy(), "rho": q_rho.detach().cpu().numpy()}


def test_mean_field_vi_bayesian_linear_regression(device):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.standard_normal(20)).astype(np.float32)
    eps = rng.standard_normal((5, 4, 3)).astype(np.float32)
    run_both(mean_field_blr, device, X, y, eps)


def test_rsample_guide_statistics(device):
    """Normal.rsample with the library's own stream: only statistics and the pathwise gradients compare."""
    tensor.manual_seed(0)
    mu = tensor.tensor([0.5, -1.0], device=device, requires_grad=True)
    rho = tensor.tensor([0.0, -1.0], device=device, requires_grad=True)
    sigma = tensor.nn.functional.softplus(rho)
    q = tensor.distributions.Independent(tensor.distributions.Normal(mu, sigma), 1)
    w = q.rsample((20000,))
    assert tuple(w.shape) == (20000, 2)
    np.testing.assert_allclose(w.mean(0).detach().cpu().numpy(), [0.5, -1.0], atol=0.03)
    np.testing.assert_allclose(w.std(0).detach().cpu().numpy(), np.log1p(np.exp([0.0, -1.0])), rtol=0.03)
    (w ** 2).sum(-1).mean().backward()
    # d/dmu E[w^2] = 2 mu, d/drho E[w^2] = 2 sigma * sigmoid(rho)
    np.testing.assert_allclose(mu.grad.cpu().numpy(), [1.0, -2.0], atol=0.06)
    s = np.log1p(np.exp([0.0, -1.0]))
    np.testing.assert_allclose(rho.grad.cpu().numpy(), 2 * s / (1 + np.exp(-np.array([0.0, -1.0]))), rtol=0.06)


def amortised_vae(T, x_dim=6, z_dim=2, hidden=8, rank=1):
    """An encoder emits a low-rank-plus-diagonal Gaussian q(z|x); a decoder gives p(x|z)."""
    nn, F = T.nn, T.nn.functional

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(x_dim, hidden), nn.Tanh())
            self.loc = nn.Linear(hidden, z_dim)
            self.factor = nn.Linear(hidden, z_dim * rank)
            self.diag = nn.Linear(hidden, z_dim)

        def forward(self, x):
            h = self.body(x)
            return self.loc(h), self.factor(h).view(-1, z_dim, rank), F.softplus(self.diag(h)) + 1e-3

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()
            self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.Tanh(), nn.Linear(hidden, x_dim))

        def forward(self, x, eps_w, eps_d):
            D = T.distributions
            loc, cov_factor, cov_diag = self.encoder(x)
            q = D.LowRankMultivariateNormal(loc, cov_factor, cov_diag)
            # LowRankMultivariateNormal.rsample with the noise made explicit: z = loc + W eps_W + sqrt(D) eps_D
            z = loc + (cov_factor @ eps_w.unsqueeze(-1)).squeeze(-1) + cov_diag.sqrt() * eps_d
            prior = D.MultivariateNormal(T.zeros(z_dim, device=x.device), T.eye(z_dim, device=x.device))
            log_px = D.Independent(D.Normal(self.decoder(z), 1.0), 1).log_prob(x)
            kl = D.kl_divergence(q, prior)
            mc_kl = q.log_prob(z) - prior.log_prob(z)
            return -(log_px - kl).mean(), mc_kl.mean(), q.entropy().mean(), q.variance.sum()

    return VAE()


def train_amortised_vae(T, device, init, x, eps_w, eps_d):
    device = device_of(T, device)
    model = ported_model(T, amortised_vae, init, device)
    x = T.tensor(x).to(device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for ew, ed in zip(eps_w, eps_d):
        optimizer.zero_grad()
        loss, mc_kl, entropy, variance = model(x, T.tensor(ew).to(device), T.tensor(ed).to(device))
        loss.backward()
        optimizer.step()
        losses += [loss.item(), mc_kl.item(), entropy.item(), variance.item()]
    return losses, numpy_state(model)


def test_amortised_vi_low_rank_guide(device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 6)).astype(np.float32)
    eps_w = rng.standard_normal((3, 10, 1)).astype(np.float32)
    eps_d = rng.standard_normal((3, 10, 2)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_amortised_vae, device, numpy_state(amortised_vae(torch)), x, eps_w, eps_d)


def planar_flow(T, dim=2, K=3):
    nn, F = T.nn, T.nn.functional

    class PlanarFlow(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.u = nn.Parameter(T.randn(1, dim) * 0.5)
            self.w = nn.Parameter(T.randn(1, dim) * 0.5)
            self.b = nn.Parameter(T.zeros(1))

        def forward(self, z):
            wu = self.w @ self.u.t()                                    # (1, 1)
            m_wu = -1 + F.softplus(wu)
            u_hat = self.u + (m_wu - wu) * self.w / (self.w.norm() ** 2)
            lin = z @ self.w.t() + self.b                              # (N, 1)
            f_z = z + u_hat * T.tanh(lin)
            psi = (1 - T.tanh(lin) ** 2) * self.w                      # (N, dim)
            log_det = T.log(T.abs(1 + psi @ u_hat.t()) + 1e-8)
            return f_z, log_det.squeeze(-1)

    class NormalizingFlow(nn.Module):
        def __init__(self):
            super().__init__()
            self.flows = nn.ModuleList([PlanarFlow(dim) for _ in range(K)])

        def forward(self, z):
            sum_log_det = T.zeros(z.size(0), device=z.device)
            for flow in self.flows:
                z, log_det = flow(z)
                sum_log_det = sum_log_det + log_det
            return z, sum_log_det

    return NormalizingFlow()


def train_planar_flow(T, device, init, z0s):
    device = device_of(T, device)
    model = ported_model(T, planar_flow, init, device)
    base = T.distributions.MultivariateNormal(T.zeros(2, device=device), T.eye(2, device=device))
    optimizer = T.optim.RMSprop(model.parameters(), lr=0.01)

    def potential(z):  # the "ring" target of Rezende & Mohamed's figure 3, as an energy U(z)
        z1 = z[:, 0]
        return 0.5 * ((T.norm(z, p=2, dim=1) - 2) / 0.4) ** 2 - T.log(
            T.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + T.exp(-0.5 * ((z1 + 2) / 0.6) ** 2))

    losses = []
    for z0 in z0s:
        z0 = T.from_numpy(z0).to(device)
        optimizer.zero_grad()
        zk, sum_log_det = model(z0)
        loss = (base.log_prob(z0) - sum_log_det + potential(zk)).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_planar_normalizing_flow(device):
    rng = np.random.default_rng(3)
    z0s = rng.standard_normal((4, 16, 2)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_planar_flow, device, numpy_state(planar_flow(torch)), z0s)


def mc_dropout_net(T, p=0.3):
    nn, F = T.nn, T.nn.functional

    class MaskedDropout(nn.Module):
        """Dropout whose keep-mask comes from outside (the libraries' random streams differ)."""

        def __init__(self, p):
            super().__init__()
            self.p = p
            self.mask = None

        def forward(self, x):
            if not self.training:
                return x
            return x * self.mask / (1 - self.p)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(1, 16)
            self.drop1 = MaskedDropout(p)
            self.fc2 = nn.Linear(16, 16)
            self.drop2 = MaskedDropout(p)
            self.out = nn.Linear(16, 1)

        def set_masks(self, m1, m2):
            self.drop1.mask, self.drop2.mask = m1, m2

        def forward(self, x):
            x = self.drop1(F.relu(self.fc1(x)))
            x = self.drop2(F.relu(self.fc2(x)))
            return self.out(x)

    return Net()


def train_mc_dropout(T, device, init, x, y, train_masks, predict_masks, x_test):
    device = device_of(T, device)
    model = ported_model(T, mc_dropout_net, init, device)
    x, y, x_test = (T.tensor(a).to(device) for a in (x, y, x_test))
    optimizer = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses = []
    for m1, m2 in train_masks:
        model.train()
        model.set_masks(T.tensor(m1).to(device), T.tensor(m2).to(device))
        optimizer.zero_grad()
        loss = T.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        deterministic = model(x_test).squeeze(-1)
    model.train()  # keep dropout on at prediction time: MC dropout
    with T.no_grad():
        preds = []
        for m1, m2 in predict_masks:
            model.set_masks(T.tensor(m1).to(device), T.tensor(m2).to(device))
            preds.append(model(x_test))
        preds = T.stack(preds)                              # (S, N, 1)
        mean, var = preds.mean(dim=0).squeeze(-1), preds.var(dim=0).squeeze(-1)
        std = preds.std(dim=0, unbiased=False).squeeze(-1)
    return losses + deterministic.tolist() + mean.tolist() + var.tolist() + std.tolist(), numpy_state(model)


def test_mc_dropout_predictive(device):
    rng = np.random.default_rng(4)
    x = rng.uniform(-2, 2, (12, 1)).astype(np.float32)
    y = np.sin(2 * x).astype(np.float32)
    x_test = np.linspace(-3, 3, 5, dtype=np.float32).reshape(-1, 1)

    def masks(n):
        return [((rng.random((n, 16)) > 0.3).astype(np.float32), (rng.random((n, 16)) > 0.3).astype(np.float32))]

    train_masks = [masks(12)[0] for _ in range(4)]
    predict_masks = [masks(5)[0] for _ in range(6)]
    torch.manual_seed(0)
    run_both(train_mc_dropout, device, numpy_state(mc_dropout_net(torch)), x, y, train_masks, predict_masks,
             x_test)


# ---- 3. Maximum likelihood with torch.distributions ------------------------------------------------

def mdn(T, in_dim=1, out_dim=2, hidden=12, K=3):
    nn, F = T.nn, T.nn.functional
    D = T.distributions

    class MDN(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh())
            self.pi = nn.Linear(hidden, K)
            self.mu = nn.Linear(hidden, K * out_dim)
            self.sigma = nn.Linear(hidden, K * out_dim)

        def forward(self, x):
            h = self.hidden(x)
            logits = self.pi(h)
            mu = self.mu(h).view(-1, K, out_dim)
            sigma = F.elu(self.sigma(h)).add(1 + 1e-6).view(-1, K, out_dim)
            mix = D.Categorical(logits=logits)
            comp = D.Independent(D.Normal(mu, sigma), 1)
            return D.MixtureSameFamily(mix, comp)

    return MDN()


def train_mdn(T, device, init, x, y):
    device = device_of(T, device)
    model = ported_model(T, mdn, init, device)
    x, y = T.tensor(x).to(device), T.tensor(y).to(device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        gmm = model(x)
        loss = -gmm.log_prob(y).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        gmm = model(x)
        # the hand-written MDN likelihood (logsumexp over components) must match MixtureSameFamily's
        comp = gmm.component_distribution.base_dist
        log_comp = T.distributions.Normal(comp.loc, comp.scale).log_prob(y.unsqueeze(1)).sum(-1)
        manual = T.logsumexp(T.log_softmax(gmm.mixture_distribution.logits, dim=-1) + log_comp, dim=-1)
        losses += [gmm.log_prob(y).sum().item(), manual.sum().item(), gmm.mean.sum().item(),
                   gmm.variance.sum().item()]
    return losses, numpy_state(model)


def test_mixture_density_network(device):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (16, 1)).astype(np.float32)
    y = np.concatenate([np.sin(3 * x), np.cos(3 * x)], 1) + 0.1 * rng.standard_normal((16, 2))
    torch.manual_seed(0)
    run_both(train_mdn, device, numpy_state(mdn(torch)), x, y.astype(np.float32))


def poisson_regression(T, device, X, counts):
    device = device_of(T, device)
    X, counts = T.tensor(X).to(device), T.tensor(counts).to(device)
    beta = T.zeros(X.shape[1], dtype=X.dtype, device=device, requires_grad=True)
    intercept = T.zeros(1, dtype=X.dtype, device=device, requires_grad=True)
    optimizer = T.optim.LBFGS([beta, intercept], lr=0.5, max_iter=10, line_search_fn="strong_wolfe")
    losses = []

    def closure():
        optimizer.zero_grad()
        eta = X @ beta + intercept
        loss = -T.distributions.Poisson(rate=T.exp(eta)).log_prob(counts).mean()
        loss.backward()
        return loss

    for _ in range(2):
        losses.append(optimizer.step(closure).item())
    with T.no_grad():
        rate = T.exp(X @ beta + intercept)
        deviance = 2 * (T.xlogy(counts, counts / rate) - (counts - rate)).sum()
        losses.append(deviance.item())
    return losses, {"beta": beta.detach().cpu().numpy(), "intercept": intercept.detach().cpu().numpy()}


def test_poisson_regression(device):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((30, 2))
    counts = rng.poisson(np.exp(0.3 + X @ np.array([0.5, -0.4])))
    # float64, as GLM fits are usually run: at the flat optimum float32 rounding moves beta by ~5e-4
    run_both(poisson_regression, device, X.astype(np.float64), counts.astype(np.float64))
