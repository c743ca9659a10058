"""orthogonal, weight_norm and spectral_norm as parametrizations (torch.nn.utils.parametrizations).

Each registers one parametrization module through parametrize.register_parametrization, so the
tensor is recomputed on every access (wrap several accesses in parametrize.cached() to compute it
once) and the state dict holds "parametrizations.<name>.original" (weight_norm: original0 = g,
original1 = v; spectral_norm adds the buffers "parametrizations.<name>.0._u" and "._v"; orthogonal
the buffer "parametrizations.<name>.0.base").
"""
from __future__ import annotations

from enum import Enum, auto

import numpy as np

from ... import creation, random
from ...autograd import no_grad
from ...linalg import solve
from ...ops.join import cat
from ...tensor import Tensor, _wrap
from ..functional.distance import normalize
from ..module import Module
from . import parametrize
from ...linalg import householder_product, matrix_exp
from ._matrix_maps import geqrf
from .spectral_norm import as_matrix, default_dim, random_unit, write
from .weight_norm import _weight_norm, norm_except_dim

__all__ = ["orthogonal", "spectral_norm", "weight_norm"]

# ---------------------------------------------------------------------------------- orthogonal


def _is_orthogonal(q):
    n, k = q.shape[-2], q.shape[-1]
    xp = q.xp
    eps = 10.0 * n * np.finfo(q.dtype).eps
    return bool(xp.allclose(xp.swapaxes(q.data, -1, -2) @ q.data, xp.eye(k, dtype=q.dtype), atol=eps))


def _make_orthogonal(a):
    """The Q of a's QR decomposition with R's diagonal made positive (unique for full-rank a)."""
    reflectors, tau = geqrf(a.xp, a.data)
    q = householder_product(_wrap(reflectors), _wrap(tau)).data
    return _wrap(q * a.xp.sign(a.xp.diagonal(reflectors, axis1=-2, axis2=-1))[..., None, :])


class _OrthMaps(Enum):
    matrix_exp = auto()
    cayley = auto()
    householder = auto()


class _Orthogonal(Module):
    """X (..., n, k) -> an orthogonal (n == k) or orthonormal-columns/rows matrix. With trivialization
    the result is `base @ map(X)`, and right_inverse moves the target into `base`, leaving X = -I."""

    def __init__(self, weight, orthogonal_map: _OrthMaps, *, use_trivialization=True):
        super().__init__()
        self.shape = tuple(weight.shape)
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, X):
        n, k = X.shape[-2], X.shape[-1]
        transposed = n < k
        if transposed:
            X, n, k = X.mT, k, n
        if self.orthogonal_map in (_OrthMaps.matrix_exp, _OrthMaps.cayley):
            X = X.tril()
            if n != k:
                X = cat([X, X.new_zeros(tuple(X.shape[:-2]) + (n, n - k))], -1)
            A = X - X.mT
            if self.orthogonal_map == _OrthMaps.matrix_exp:
                Q = matrix_exp(A)
            else:
                eye = creation.eye(n, dtype=A.dtype, device=A.device)
                Q = solve(eye - A * 0.5, eye + A * 0.5)
            if n != k:
                Q = Q[..., :k]
        else:
            A = X.tril(-1)
            tau = 2.0 / (1.0 + (A * A).sum(-2))
            Q = householder_product(A, tau)
            Q = Q * X.diagonal(0, -2, -1).int().unsqueeze(-2)
        if getattr(self, "base", None) is not None:
            Q = self.base @ Q
        return Q.mT if transposed else Q

    def right_inverse(self, Q):
        if tuple(Q.shape) != self.shape:
            raise ValueError(f"Expected a matrix or batch of matrices of shape {self.shape}. "
                             f"Got a tensor of shape {tuple(Q.shape)}.")
        with no_grad():
            return self._right_inverse(Q)

    def _right_inverse(self, Q):
        original_shape = Q.shape
        n, k = Q.shape[-2], Q.shape[-1]
        transposed = n < k
        if transposed:
            Q, n, k = Q.mT, k, n
        xp = Q.xp
        if not hasattr(self, "base"):
            if self.orthogonal_map != _OrthMaps.householder:
                raise NotImplementedError("It is not possible to assign to the matrix exponential or the Cayley "
                                          "parametrizations when use_trivialization=False.")
            reflectors, tau = geqrf(xp, Q.data)
            diagonal = xp.sign(xp.diagonal(reflectors, axis1=-2, axis2=-1))
            diagonal = xp.where(tau == 0, -diagonal, diagonal)
            index = xp.arange(k)
            reflectors[..., index, index] = diagonal
            A = _wrap(reflectors)
            return A.mT if transposed else A
        if n == k:
            Q = _make_orthogonal(Q) if not _is_orthogonal(Q) else Q.clone()
        else:
            noise = random.randn(*(tuple(Q.shape[:-2]) + (n, n - k)), dtype=Q.dtype, device=Q.device)
            Q = _make_orthogonal(cat([Q, noise], -1))
        self.base = Q
        neg_eye = creation.zeros(original_shape, dtype=Q.dtype, device=Q.device)
        index = xp.arange(min(original_shape[-2:]))
        neg_eye.data[..., index, index] = -1
        return neg_eye


def orthogonal(module, name: str = "weight", orthogonal_map: str | None = None, *, use_trivialization: bool = True):
    """Constrain module.<name> (..., n, k) to orthogonal matrices (orthonormal columns if n > k, rows if
    n < k). orthogonal_map: 'matrix_exp' (default for square), 'cayley', or 'householder' (default for
    rectangular). Returns the module."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if weight.dim() < 2:
        raise ValueError(f"Expected a matrix or batch of matrices. Got a tensor of {weight.dim()} dimensions.")
    if orthogonal_map is None:
        orthogonal_map = "matrix_exp" if weight.shape[-2] == weight.shape[-1] else "householder"
    orth_enum = getattr(_OrthMaps, orthogonal_map, None) if isinstance(orthogonal_map, str) else None
    if orth_enum is None:
        raise ValueError('orthogonal_map has to be one of "matrix_exp", "cayley", "householder". '
                         f"Got: {orthogonal_map}")
    orth = _Orthogonal(weight, orth_enum, use_trivialization=use_trivialization)
    parametrize.register_parametrization(module, name, orth, unsafe=True)
    return module


# ---------------------------------------------------------------------------------- weight_norm


class _WeightNorm(Module):
    def __init__(self, dim: int | None = 0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return _weight_norm(weight_v, weight_g, self.dim)

    def right_inverse(self, weight):
        return norm_except_dim(weight, 2, self.dim), weight


class _LoadRenamingWeightNormKeys:
    """module._load_from_state_dict, also accepting a state dict saved with the classic weight_norm:
    <name>_g and <name>_v become parametrizations.<name>.original0 and original1 (PyTorch's
    compatibility pre-hook). An object, not a closure, so the module still copies and pickles."""

    def __init__(self, module, names):
        self.module, self.names = module, names

    def __call__(self, state_dict, prefix, *rest):
        for name in self.names:
            g_key, v_key = f"{prefix}{name}_g", f"{prefix}{name}_v"
            if g_key in state_dict and v_key in state_dict:
                state_dict[f"{prefix}parametrizations.{name}.original0"] = state_dict.pop(g_key)
                state_dict[f"{prefix}parametrizations.{name}.original1"] = state_dict.pop(v_key)
        return type(self.module)._load_from_state_dict(self.module, state_dict, prefix, *rest)


def weight_norm(module, name: str = "weight", dim: int | None = 0):
    """Reparametrize module.<name> as g * v / ||v|| (norm over every dim but `dim`; None: the whole
    tensor), with g = parametrizations.<name>.original0 and v = original1. Returns the module."""
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    loader = module.__dict__.get("_load_from_state_dict")
    names = loader.names if isinstance(loader, _LoadRenamingWeightNormKeys) else ()
    object.__setattr__(module, "_load_from_state_dict", _LoadRenamingWeightNormKeys(module, names + (name,)))
    return module


# -------------------------------------------------------------------------------- spectral_norm


class _SpectralNorm(Module):
    def __init__(self, weight, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        ndim = weight.dim()
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but "
                             f"got n_power_iterations={n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            with no_grad():
                matrix = as_matrix(weight.detach(), self.dim)
                height, width = matrix.shape
                self.register_buffer("_u", random_unit(height, weight, eps))
                self.register_buffer("_v", random_unit(width, weight, eps))
                self._power_method(matrix, 15)

    def _power_method(self, matrix, n_power_iterations):
        with no_grad():
            matrix = matrix.detach()
            for _ in range(n_power_iterations):
                write(self._u, normalize(matrix.mv(self._v), dim=0, eps=self.eps))
                write(self._v, normalize(matrix.t().mv(self._u), dim=0, eps=self.eps))

    def forward(self, weight):
        if weight.dim() == 1:
            return normalize(weight, dim=0, eps=self.eps)
        matrix = as_matrix(weight, self.dim)
        if self.training:
            self._power_method(matrix, self.n_power_iterations)
        # copies: the next power iteration writes into the buffers, which this graph must not see
        sigma = self._u.clone().dot(matrix.mv(self._v.clone()))
        return weight / sigma

    def right_inverse(self, value):
        return value


def spectral_norm(module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None):
    """Divide module.<name> by its largest singular value, estimated by power iteration (one step per
    access in training mode). dim: the output dim (default 0; 1 for ConvTranspose*d). Returns the module."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    parametrize.register_parametrization(
        module, name, _SpectralNorm(weight, n_power_iterations, default_dim(module, dim), eps))
    return module
