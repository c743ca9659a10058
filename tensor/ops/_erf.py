"""erf on raw arrays: CuPy's own on the GPU; on NumPy, Cody's rational approximations for float64
and Eigen's single-precision one for float16/float32 (NumPy has no erf of its own)."""
from __future__ import annotations

import math

import numpy as np

from .. import kernels

# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969),
# as in Netlib SPECFUN's CALERF; ~1e-16 relative in float64. Coefficients in Horner order; each
# denominator is monic. Region 1 gives erf(y) = y P(y^2)/Q(y^2); regions 2 and 3 give erfc.
_ERF_SMALL = (
    (1.85777706184603153e-1, 3.16112374387056560e0, 1.13864154151050156e2, 3.77485237685302021e2, 3.20937758913846947e3),
    (1.0, 2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3, 2.84423683343917062e3),
)
_ERFC_MIDDLE = (
    (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e0, 6.61191906371416295e1,
     2.98635138197400131e2, 8.81952221241769090e2, 1.71204761263407058e3, 2.05107837782607147e3,
     1.23033935479799725e3),
    (1.0, 1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2, 1.62138957456669019e3,
     3.29079923573345963e3, 4.36261909014324716e3, 3.43936767414372164e3, 1.23033935480374942e3),
)
_ERFC_LARGE = (
    (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
     1.60837851487422766e-2, 6.58749161529837803e-4),
    (1.0, 2.56852019228982242e0, 1.87295284992346047e0, 5.27905102951428412e-1, 6.05183413124413191e-2,
     2.33520497626869185e-3),
)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
# float16/float32: Eigen's (and XLA's) odd rational approximation on [-4, 4], beyond which erf is
# +-1 in float32. Evaluated in float64 it is within 1.3e-7 relative, and 4x faster than the
# three regions above, whose masked gathers and scatters dominate on NumPy.
_ERF_SINGLE = (
    (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
     -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02),
    (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
     -1.42647390514189e-02),
)


def _horner(z, coeffs):
    out = z * coeffs[0]
    for c in coeffs[1:-1]:
        out += c
        out *= z
    out += coeffs[-1]
    return out


def _rational(z, pair):
    return _horner(z, pair[0]) / _horner(z, pair[1])


def _erf(xp, x):
    """erf of a float array: CuPy's own on the GPU; on NumPy Cody's for float64, Eigen's otherwise."""
    if xp is not np:
        return kernels.erf()(x).astype(x.dtype, copy=False)  # float16 computes in float32
    return _erf_cody(x) if x.dtype == np.float64 else _erf_single(x)


# The same numbers as 0-d float64 arrays, and maximum/minimum instead of np.clip: NumPy resolves
# each Python float operand on every call and np.clip adds a Python wrapper, together about half of
# erf's time on a small tensor. The results are bit for bit the same.
_ERF_SINGLE_ARRAYS = tuple(tuple(np.full((), c) for c in coeffs) for coeffs in _ERF_SINGLE)
_ERF_SINGLE_BOUNDS = np.full((), -4.0), np.full((), 4.0)


# Elements per block in _erf_single: its float64 working arrays (about four at a time) stay in the
# L2 cache, so the two dozen passes of the rational function read main memory once, not two dozen
# times (3x faster on a million elements; small inputs are one block).
_ERF_BLOCK = 1 << 14


def _erf_single(x):
    if x.size <= _ERF_BLOCK:
        return _erf_single_block(x).astype(x.dtype)
    flat = x.reshape(-1)  # a view when x is contiguous, else one copy
    out = np.empty(flat.shape, x.dtype)
    for start in range(0, flat.size, _ERF_BLOCK):
        out[start:start + _ERF_BLOCK] = _erf_single_block(flat[start:start + _ERF_BLOCK])
    return out.reshape(x.shape)


def _erf_single_block(x):
    """Eigen's rational erf of a float16/float32 array, computed in float64."""
    low, high = _ERF_SINGLE_BOUNDS
    # Convert first, then clip in place: np.maximum(x, low, dtype=float64) casts through a buffered
    # loop that takes 4x as long on 4K elements. np.array, not astype: x may be a NumPy scalar (a 0-d
    # result), whose astype gives another scalar, which out= refuses.
    clipped = np.array(x, np.float64)
    np.maximum(clipped, low, out=clipped)
    np.minimum(clipped, high, out=clipped)
    out = _rational(clipped * clipped, _ERF_SINGLE_ARRAYS)
    out *= clipped
    return out


def _erf_cody(x):
    y = np.abs(x)
    out = np.empty_like(y)
    small = y <= 0.46875
    middle = (y <= 4.0) & ~small
    large = ~(small | middle)  # NaN lands here and stays NaN
    z = y[small]
    out[small] = z * _rational(z * z, _ERF_SMALL)
    z = y[middle]
    out[middle] = 1.0 - np.exp(-z * z) * _rational(z, _ERFC_MIDDLE)
    z = y[large]
    inv_z2 = 1.0 / (z * z)
    out[large] = 1.0 - np.exp(-z * z) / z * (_INV_SQRT_PI - inv_z2 * _rational(inv_z2, _ERFC_LARGE))
    return np.copysign(out, x)
