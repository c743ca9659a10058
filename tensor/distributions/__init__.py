"""Probability distributions with PyTorch's torch.distributions API, for RL policies and VAEs.

    from tensor.distributions import Categorical, Normal, kl_divergence
    dist = Categorical(logits=policy(obs))
    action = dist.sample()                         # no graph; tensor.manual_seed fixes it
    loss = -(dist.log_prob(action) * advantage).mean() - 0.01 * dist.entropy().mean()
    z = Normal(mu, sigma).rsample()                # gradients reach mu and sigma
    squashed = TransformedDistribution(Independent(Normal(mu, sigma), 1), [TanhTransform(cache_size=1)])

Samples come from the engine's generators (tensor.random) on the parameters' device.
"""
from . import constraints, transforms
from .bernoulli import Bernoulli
from .categorical import Categorical, OneHotCategorical
from .distribution import Distribution
from .independent import Independent
from .kl import kl_divergence, register_kl
from .normal import Normal
from .transformed_distribution import TransformedDistribution
from .transforms import (
    AffineTransform, ComposeTransform, ExpTransform, SigmoidTransform, TanhTransform, Transform,
)
from .uniform import Uniform

__all__ = [
    "AffineTransform", "Bernoulli", "Categorical", "ComposeTransform", "Distribution", "ExpTransform", "Independent",
    "Normal", "OneHotCategorical", "SigmoidTransform", "TanhTransform", "Transform", "TransformedDistribution",
    "Uniform", "constraints", "kl_divergence", "register_kl", "transforms",
]
