"""Probability distributions with PyTorch's torch.distributions API, for RL policies and VAEs.

    from tensor.distributions import Categorical, Normal, kl_divergence
    dist = Categorical(logits=policy(obs))
    action = dist.sample()                         # no graph; tensor.manual_seed fixes it
    loss = -(dist.log_prob(action) * advantage).mean() - 0.01 * dist.entropy().mean()
    z = Normal(mu, sigma).rsample()                # gradients reach mu and sigma

Samples come from the engine's generators (tensor.random) on the parameters' device.
"""
from . import constraints
from .bernoulli import Bernoulli
from .categorical import Categorical, OneHotCategorical
from .distribution import Distribution
from .kl import kl_divergence, register_kl
from .normal import Normal
from .uniform import Uniform

__all__ = [
    "Bernoulli", "Categorical", "Distribution", "Normal", "OneHotCategorical", "Uniform", "constraints",
    "kl_divergence", "register_kl",
]
