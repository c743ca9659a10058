"""Spectral normalization (Miyato et al., 2018), the classic hook-based form: w = w_orig / sigma(w_orig).

spectral_norm(module) moves the parameter `name` to `name_orig` and keeps the power iteration's
vectors as buffers `name_u` (rows of the weight seen as a matrix) and `name_v` (its columns), so the
state dict holds `name_orig`, `name_u`, `name_v` as PyTorch's does. A forward pre-hook recomputes
module.<name> before every forward: in training mode it first runs n_power_iterations steps that
update u and v in place (without gradient); sigma = u . (W v) is differentiable in W only, as in
PyTorch. In eval mode u and v stay as they are.
"""
from __future__ import annotations

from ... import random
from ...autograd import no_grad
from ..functional.distance import normalize
from ..parameter import Parameter
from .weight_norm import check_initialized


def _transposed_conv_types():
    from ..conv import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d

    return ConvTranspose1d, ConvTranspose2d, ConvTranspose3d


def default_dim(module, dim):
    """The output dim: 1 for transposed convolutions (weight (in, out, *k)), else 0."""
    if dim is not None:
        return dim
    return 1 if isinstance(module, _transposed_conv_types()) else 0


def as_matrix(weight, dim):
    """weight with `dim` moved first and the rest flattened: (size along dim, everything else)."""
    if dim != 0:
        weight = weight.permute(dim, *[d for d in range(weight.dim()) if d != dim])
    return weight.reshape(weight.shape[0], -1)


def random_unit(length, like, eps):
    """A random unit vector (N(0, 1) draws, normalized) with `like`'s dtype and device."""
    draw = random.randn(length, dtype=like.dtype, device=like.device)
    return normalize(draw, dim=0, eps=eps)


def write(buffer, values):
    """Store values in the buffer's own memory (its identity and version counter stay; the version moves)."""
    buffer.data[...] = values.data
    buffer._bump_version()


class SpectralNorm:
    """The forward pre-hook spectral_norm registers (PyTorch's SpectralNorm, version 1)."""

    _version = 1

    def __init__(self, name="weight", n_power_iterations=1, dim=0, eps=1e-12):
        if n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but "
                             f"got n_power_iterations={n_power_iterations}")
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def reshape_weight_to_matrix(self, weight):
        return as_matrix(weight, self.dim)

    def compute_weight(self, module, do_power_iteration: bool):
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        matrix = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            with no_grad():
                plain = matrix.detach()
                for _ in range(self.n_power_iterations):
                    write(v, normalize(plain.t().mv(u), dim=0, eps=self.eps))
                    write(u, normalize(plain.mv(v), dim=0, eps=self.eps))
        # copies: the next iteration writes into the buffers, which this graph must not see
        sigma = u.clone().dot(matrix.mv(v.clone()))
        return weight / sigma

    def remove(self, module):
        with no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        for suffix in ("", "_u", "_v", "_orig"):
            delattr(module, self.name + suffix)
        module.register_parameter(self.name, Parameter(weight.detach()))

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))

    @staticmethod
    def apply(module, name, n_power_iterations, dim, eps) -> SpectralNorm:
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
        fn = SpectralNorm(name, n_power_iterations, dim, eps)
        weight = module._parameters.get(name)
        if weight is None:
            raise ValueError(f"`SpectralNorm` cannot be applied as parameter `{name}` is None or missing from "
                             f"{type(module).__name__} (its parameters: {', '.join(module._parameters) or 'none'})")
        check_initialized(weight, "SpectralNorm")
        if weight.dim() < 1 or not -weight.dim() <= dim < weight.dim():
            raise IndexError(f"spectral_norm: dim {dim} is out of range for a weight of shape {tuple(weight.shape)}")
        fn.dim = dim % weight.dim()
        with no_grad():
            height, width = fn.reshape_weight_to_matrix(weight).shape
            u, v = random_unit(height, weight, eps), random_unit(width, weight, eps)
        delattr(module, name)
        module.register_parameter(name + "_orig", weight)
        setattr(module, name, weight.detach())
        module.register_buffer(name + "_u", u)
        module.register_buffer(name + "_v", v)
        module.register_forward_pre_hook(fn)
        return fn


def spectral_norm(module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None):
    """Divide module.<name> by its largest singular value (estimated by power iteration) before every
    forward. dim: the output dim (default 0; 1 for ConvTranspose*d). Returns the module."""
    SpectralNorm.apply(module, name, n_power_iterations, default_dim(module, dim), eps)
    return module


def remove_spectral_norm(module, name: str = "weight"):
    """Undo spectral_norm: module.<name> becomes a plain Parameter holding the current normalized weight."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, SpectralNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"spectral_norm of '{name}' not found in {module}")
