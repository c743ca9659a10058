"""Standard-gamma draws with implicit-reparameterisation gradients (torch._standard_gamma and its backward).

    x = standard_gamma(alpha)            # x ~ Gamma(alpha, 1), shape alpha.shape; x.sum().backward() reaches alpha

The draw comes from the engine's generator for alpha's device (NumPy's / CuPy's standard_gamma), so
tensor.manual_seed reproduces it. The gradient is the implicit one, dx/dalpha = -(dF/dalpha) / f at the drawn x
(F the CDF, f the density), evaluated as PyTorch evaluates it (aten/src/ATen/native/Distributions.h,
standard_gamma_grad_one): a series in x for x < 0.8, Rice's saddle-point expansion for alpha > 8, and Jankowiak &
Obermeyer's bivariate rational fit elsewhere. So per draw it equals torch's gradient (to rounding); the fit is an
approximation of the exact implicit gradient with relative error below about 1e-3 (the tests measure it against
finite differences of the regularised incomplete gamma function).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..creation import _on
from ..ops import _special
from ..random import rng_for

# Jankowiak & Obermeyer's rational fit of dx/dalpha in u = log(x / alpha), v = log(alpha), as in PyTorch
_COEF_UV = (
    (0.16009398, -0.094634809, 0.025146376, -0.0030648343, 1, 0.32668115, 0.10406089, 0.0014179084),
    (0.53487893, 0.1298071, 0.065735949, -0.0015649758, 0.16639465, 0.020070113, -0.0035938915, -0.00058392623),
    (0.040121004, -0.0065914022, -0.0026286047, -0.0013441777, 0.017050642, -0.0021309326, 0.00085092367,
     -1.5247877e-07),
)


def standard_gamma_grad(xp, alpha, x):
    """dx/dalpha for draws x ~ Gamma(alpha, 1) (raw arrays of one shape), PyTorch's three-regime evaluation."""
    with np.errstate(all="ignore"):  # every regime is evaluated everywhere and the right one kept
        # a Taylor series of the CDF for small x
        numer, denom = xp.ones_like(x), alpha
        series1, series2 = numer / denom, numer / (denom * denom)
        for i in range(1, 6):
            numer = numer * (-x / i)
            denom = denom + 1
            series1 = series1 + numer / denom
            series2 = series2 + numer / (denom * denom)
        pow_x_alpha = x ** alpha
        pdf = x ** (alpha - 1) * xp.exp(-x)
        cdf = pow_x_alpha * series1
        cdf_alpha = (xp.log(x) - _special.digamma(xp, alpha)) * cdf - pow_x_alpha * series2
        small = -cdf_alpha / pdf
        small = xp.where(xp.isnan(small), 0.0, small)
        # Rice's saddle-point expansion for large alpha: near the mean, and away from it
        near = (1 + 24 * alpha * (1 + 12 * alpha)) * (
            1440 * alpha * alpha + 6 * x * (53 - 120 * x) - 65 * x * x / alpha + alpha * (107 + 3600 * x)
        ) / (1244160 * alpha ** 4)
        root = xp.sqrt(8 * alpha)
        term2 = root / (alpha - x)
        term3 = (x - alpha - alpha * xp.log(x / alpha)) ** -1.5
        term23 = xp.where(x < alpha, term2 - term3, term2 + term3)
        term1 = xp.log(x / alpha) * term23 - xp.sqrt(2 / alpha) * (alpha + x) / ((alpha - x) * (alpha - x))
        stirling = 1 + 1 / (12 * alpha) * (1 + 1 / (24 * alpha))
        far = -stirling * x * term1 / root
        large = xp.where((0.9 * alpha <= x) & (x <= 1.1 * alpha), near, far)
        # the rational fit
        u, v = xp.log(x / alpha), xp.log(alpha)
        coef = [c0 + u * (c1 + u * c2) for c0, c1, c2 in zip(*_COEF_UV)]
        p = coef[0] + v * (coef[1] + v * (coef[2] + v * coef[3]))
        q = coef[4] + v * (coef[5] + v * (coef[6] + v * coef[7]))
        rational = xp.exp(p / q)
        return xp.where(x < 0.8, small, xp.where(alpha > 8.0, large, rational)).astype(x.dtype, copy=False)


class _StandardGamma(Function):
    """Gamma(alpha, 1) draws of alpha's shape; backward: grad * dx/dalpha (implicit reparameterisation)."""

    @staticmethod
    def forward(ctx, alpha, rng):
        xp = ctx.xp
        dtype = alpha.dtype if alpha.dtype in (np.float32, np.float64) else np.float32
        x = rng.standard_gamma(alpha.astype(dtype, copy=False), size=alpha.shape, dtype=dtype).astype(alpha.dtype)
        x = xp.maximum(x, np.finfo(x.dtype).tiny)  # torch clamps too: log(x) of a tiny-alpha draw stays finite
        ctx.save_for_backward(alpha, x)
        return x

    @staticmethod
    def backward(ctx, grad):
        alpha, x = ctx.saved_tensors
        return grad * standard_gamma_grad(ctx.xp, alpha, x), None


def standard_gamma(alpha):
    """Gamma(alpha, 1) draws of alpha's shape (a contiguous float tensor), differentiable in alpha."""
    with _on(alpha.device):
        return _StandardGamma.apply(alpha.contiguous(), rng_for(alpha.device))
