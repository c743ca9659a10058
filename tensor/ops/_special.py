"""Special functions on raw arrays for special.py: erfc, erfinv, lgamma, digamma, trigamma (digamma's
derivative), the Hurwitz zeta function (for polygamma), log_ndtr, i0 and i1 (i0's derivative). NumPy has none of them but i0, and SciPy is not a dependency.

Each computes in float64 and returns x's dtype. Except where noted, the code is branch-free
(xp.where over all elements), so the same formulas run on NumPy and on CuPy. Edge values follow
PyTorch: digamma(0) = -inf, digamma(-0.0) = inf, digamma(negative integer) = NaN,
lgamma(non-positive integer) = inf, erfinv(+-1) = +-inf, NaN outside [-1, 1].
"""
from __future__ import annotations

import math

import numpy as np

from ._erf import _ERF_SMALL, _ERFC_LARGE, _ERFC_MIDDLE, _INV_SQRT_PI, _erf, _rational

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
_SHIFT = 10  # lgamma, digamma, trigamma: x < 10 is moved up by recurrence to where the asymptotic series converge


def _float64(x):
    return x.astype(np.float64, copy=False)


def _cupy_special(name):
    import cupyx.scipy.special

    return getattr(cupyx.scipy.special, name)


def _back(result, like):
    with np.errstate(over="ignore"):  # a float64 result beyond float32's range becomes inf, as in float32
        return result.astype(like.dtype, copy=False)


# ------------------------------------------------------------------------------------------- erfc
def erfc(xp, x):
    """1 - erf(x) with relative accuracy where it is tiny: CuPy's own on the GPU, Cody's on NumPy."""
    if xp is not np:
        return _cupy_special("erfc")(x).astype(x.dtype, copy=False)  # float16 computes in float32
    return _back(_erfc_cody(_float64(x)), x)


def _erfc_cody(x):
    y = np.abs(x)
    out = np.empty_like(y)
    small = y <= 0.46875
    middle = (y <= 4.0) & ~small
    large = ~(small | middle)  # NaN lands here and stays NaN
    z = y[small]
    out[small] = 1.0 - z * _rational(z * z, _ERF_SMALL)
    z = y[middle]
    out[middle] = _exp_minus_square(z) * _rational(z, _ERFC_MIDDLE)
    z = y[large]
    inv_z2 = 1.0 / (z * z)
    out[large] = _exp_minus_square(z) / z * (_INV_SQRT_PI - inv_z2 * _rational(inv_z2, _ERFC_LARGE))
    return np.where(x < 0, 2.0 - out, out)


def _exp_minus_square(z):
    """exp(-z*z) without the rounding of z*z (Cody's split): z*z is exact for the 1/16-multiple part."""
    head = np.trunc(z * 16.0) / 16.0
    with np.errstate(invalid="ignore"):  # inf - inf for z = inf: the product underflows to 0 anyway
        tail = np.nan_to_num((z - head) * (z + head), nan=np.inf)
    return np.exp(-head * head) * np.exp(-tail)


# ------------------------------------------------------------------------------------------ erfinv
# Pavlis' starting values (as in PyTorch's calc_erfinv), then two Newton steps on erf(x) = y in the
# centre and on erfc(|x|) = 1 - |y| in the tails, where 1 - |y| is exact and erf(x) - y would cancel.
_ERFINV_CENTRE = ((-0.140543331, 0.914624893, -1.645349621, 0.886226899),
                  (0.012229801, -0.329097515, 1.442710462, -2.118377725, 1.0))
_ERFINV_TAIL = ((1.641345311, 3.429567803, -1.624906493, -1.970840454), (1.637067800, 3.543889200, 1.0))


def _poly(z, coeffs):
    out = z * 0 + coeffs[0]
    for c in coeffs[1:]:
        out = out * z + c
    return out


def erfinv(xp, x):
    """The inverse of erf on [-1, 1]: CuPy's own on the GPU; on NumPy, see the comment above."""
    if xp is not np:
        return _cupy_special("erfinv")(x).astype(x.dtype, copy=False)
    y = _float64(x)
    a = xp.abs(y)
    with np.errstate(all="ignore"):
        z = y * y
        centre = y * _poly(z, _ERFINV_CENTRE[0]) / _poly(z, _ERFINV_CENTRE[1])
        w = xp.sqrt(-xp.log((1.0 - a) / 2.0))
        tail = _poly(w, _ERFINV_TAIL[0]) / _poly(w, _ERFINV_TAIL[1])
        rest = 1.0 - a
        for _ in range(2):
            centre = centre - (_erf(xp, centre) - y) / (_TWO_OVER_SQRT_PI * xp.exp(-centre * centre))
            tail = tail + (erfc(xp, tail) - rest) / (_TWO_OVER_SQRT_PI * xp.exp(-tail * tail))
        out = xp.where(a <= 0.7, centre, xp.copysign(tail, y))
        out = xp.where(a == 1.0, xp.copysign(np.inf, y), out)
    return _back(xp.where(a > 1.0, np.nan, out), x)


# ------------------------------------------------------------------------------ lgamma and digamma
# Stirling's series for lgamma(w) - ((w - 1/2) log w - w + log(2 pi)/2), in powers of 1/w^2 (times 1/w):
# B_2k / (2k (2k - 1)); for w >= 10 the omitted terms are below 1e-18.
_STIRLING = (-3617 / 122400, 1 / 156, -691 / 360360, 1 / 1188, -1 / 1680, 1 / 1260, -1 / 360, 1 / 12)
# digamma(w) = log w - 1/(2w) - sum of B_2k / (2k w^2k): the sum's coefficients, highest power first
_DIGAMMA = (-1 / 12, 691 / 32760, -1 / 132, 1 / 240, -1 / 252, 1 / 120, -1 / 12, 0.0)
# trigamma(w) = 1/w + 1/(2 w^2) + sum of B_2k / w^(2k+1): the sum's coefficients, highest power first
_TRIGAMMA = (-3617 / 510, 7 / 6, -691 / 2730, 5 / 66, -1 / 30, 1 / 42, -1 / 30, 1 / 6, 0.0)


def _zeta_minus_one(k, n=60):
    """zeta(k) - 1, the sum of j^-k over j >= 2: the first terms, then the Euler-Maclaurin tail."""
    head = math.fsum(j ** -k for j in range(2, n))
    p = k * (k + 1) * (k + 2)
    return head + (n ** (1 - k) / (k - 1) + n ** -k / 2 + k * n ** (-k - 1) / 12 - p * n ** (-k - 3) / 720
                   + p * (k + 3) * (k + 4) * n ** (-k - 5) / 30240)


# lgamma(2 + t) = (1 - Euler's gamma) t + sum over k >= 2 of (-1)^k (zeta(k) - 1) / k t^k: for |t| <= 1/2,
# 26 terms reach 1e-17, and lgamma keeps its relative accuracy near its zeros at 1 and 2, where
# Stirling's series after the shift would cancel to an absolute error of ~1e-15.
_LGAMMA_AT_TWO = tuple((-1) ** k * _zeta_minus_one(k) / k for k in range(26, 1, -1)) + (1 - 0.5772156649015329, 0.0)


def _shifted(xp, x):
    """(w, low): w = x + 10 where x < 10 (low), else x; the caller undoes the shift where low."""
    low = x < _SHIFT
    w = xp.where(low, x + _SHIFT, x)
    return w, low


def _sin_pi(xp, x):
    """|sin(pi x)| from x's exact distance to the nearest integer, where pi * x itself would round."""
    return xp.abs(xp.sin(np.pi * (x - xp.round(x))))


def lgamma(xp, x):
    """log |Gamma(x)|; inf at 0, the negative integers and +-inf."""
    y = _float64(x)
    with np.errstate(all="ignore"):
        reflect = y < 0.5
        z = xp.where(reflect, 1.0 - y, y)  # >= 0.5
        w, low = _shifted(xp, z)
        product = z * 0 + 1.0
        for k in range(_SHIFT):
            product = product * (z + k)
        inv = 1.0 / w
        series = _poly(inv * inv, _STIRLING) * inv
        positive = (w - 0.5) * xp.log(w) - w + _HALF_LOG_TWO_PI + series - xp.where(low, xp.log(product), 0.0)
        below = z < 1.5
        t = xp.where(below, z - 1.0, z - 2.0)  # exact; lgamma(1 + t) = lgamma(2 + t) - log1p(t)
        near = _poly(t, _LGAMMA_AT_TWO)
        positive = xp.where(z <= 2.5, xp.where(below, near - xp.log1p(t), near), positive)
        out = xp.where(reflect, xp.log(np.pi / _sin_pi(xp, y)) - positive, positive)
    return _back(xp.where(xp.isinf(y), np.inf, out), x)


def digamma(xp, x):
    """d/dx lgamma(x), with PyTorch's values at the poles (see the module docstring)."""
    y = _float64(x)
    with np.errstate(all="ignore"):
        reflect = y < 0
        z = xp.where(reflect, 1.0 - y, y)
        w, low = _shifted(xp, z)
        recurrence = z * 0
        for k in range(_SHIFT):
            recurrence = recurrence + 1.0 / (z + k)
        inv2 = 1.0 / (w * w)
        positive = xp.log(w) - 0.5 / w + _poly(inv2, _DIGAMMA) - xp.where(low, recurrence, 0.0)
        fraction = y - xp.trunc(y)  # tan has period pi: pi * fraction keeps its accuracy (PyTorch's choice)
        out = xp.where(reflect, positive - np.pi / xp.tan(np.pi * fraction), positive)
        out = xp.where(reflect & (fraction == 0), np.nan, out)
        out = xp.where(y == 0, xp.copysign(np.inf, -y), out)
    return _back(out, x)


def trigamma(xp, x):
    """d/dx digamma(x) (polygamma(1, x)), reflected below 1/2."""
    y = _float64(x)
    with np.errstate(all="ignore"):
        reflect = y < 0.5
        z = xp.where(reflect, 1.0 - y, y)
        w, low = _shifted(xp, z)
        recurrence = z * 0
        for k in range(_SHIFT):
            recurrence = recurrence + 1.0 / ((z + k) * (z + k))
        inv = 1.0 / w
        positive = inv + 0.5 * inv * inv + _poly(inv * inv, _TRIGAMMA) * inv + xp.where(low, recurrence, 0.0)
        sine = _sin_pi(xp, y)
        out = xp.where(reflect, np.pi * np.pi / (sine * sine) - positive, positive)
    return _back(out, x)


# ---------------------------------------------------------------------------------------- log_ndtr
_SQRT_HALF = math.sqrt(0.5)
_NDTR_TAIL = -20.0  # below: the asymptotic series of log Phi; above: log of erfc, accurate to its underflow


def log_ndtr(xp, x):
    """log Phi(x), the log of the standard normal CDF, accurate in both tails: log(erfc(-x/sqrt 2) / 2)
    for -20 <= x <= 0, log1p(-erfc(x/sqrt 2) / 2) above 0, and below -20 (where Phi underflows from
    -37.5 on) -x^2/2 - log(-x) - log(2 pi)/2 + log(1 - 1/x^2 + 3/x^4 - 15/x^6 + ...)."""
    y = _float64(x)
    with np.errstate(all="ignore"):
        lower = xp.log(0.5 * erfc(xp, -y * _SQRT_HALF))
        upper = xp.log1p(-0.5 * erfc(xp, y * _SQRT_HALF))
        z = xp.minimum(y, _NDTR_TAIL)
        inv_z2 = 1.0 / (z * z)
        term = series = inv_z2 * 0 + 1.0
        for k in range(1, 13):  # terms fall below 1e-18 of the sum by the 12th at x = -20
            term = term * -(2 * k - 1) * inv_z2
            series = series + term
        tail = -0.5 * z * z - xp.log(-z) - _HALF_LOG_TWO_PI + xp.log(series)
        out = xp.where(y < _NDTR_TAIL, tail, xp.where(y > 0, upper, lower))
    return _back(out, x)


# ------------------------------------------------------------------------------------- Hurwitz zeta
# (2k)! / B_2k for k = 1..12: the Euler-Maclaurin tail's coefficients (Cephes' zeta uses the same table).
_EULER_MACLAURIN = (12.0, -720.0, 30240.0, -1209600.0, 47900160.0, -1.8924375803183791606e9, 7.47242496e10,
                    -2.950130727918164224e12, 1.1646782814350067249e14, -4.5979787224074726105e15,
                    1.8152105401943546773e17, -7.1661652561756670113e18)
_ZETA_START = 10.0  # the tail starts once q + terms >= 10, where its 12 corrections reach float64 accuracy


def zeta(xp, s, q):
    """The Hurwitz zeta function, the sum over i >= 0 of (q + i)^-s, for a number s > 1.

    The first terms are summed until q + i >= 10 (more of them for negative q), then Euler-Maclaurin
    gives the rest: w^(1-s)/(s-1) + w^-s/2 + the Bernoulli corrections, at w = q + terms. For q <= 0
    a term hits 0 where q is an integer, and the sum is inf there, as in PyTorch.
    """
    y = _float64(q)
    # one host sync for the term count; non-finite q count as 0 (only a negative lowest adds terms), and
    # no boolean-mask indexing (a second sync on CuPy, and a 0-d q is a plain min)
    lowest = float(xp.where(xp.isfinite(y), y, 0.0).min()) if y.size else 0.0
    terms = max(int(_ZETA_START), math.ceil(_ZETA_START - lowest))
    with np.errstate(all="ignore"):
        total = y * 0
        for i in range(terms):
            total = total + xp.power(y + i, -s)
        w = y + terms
        power = xp.power(w, -s)
        total = total + w * power / (s - 1) + 0.5 * power
        rising, scale = 1.0, power / w  # s (s+1) ... (s+2k-2) and w^(-s-2k+1)
        for k, coefficient in enumerate(_EULER_MACLAURIN):
            rising *= s + 2 * k
            total = total + rising * scale / coefficient
            rising *= s + 2 * k + 1
            scale = scale / (w * w)
    return _back(total, q)


def polygamma(xp, n, x):
    """The n-th derivative of digamma for an int n >= 0: (-1)^(n+1) n! zeta(n + 1, x) for n >= 2."""
    if n == 0:
        return digamma(xp, x)
    if n == 1:
        return trigamma(xp, x)
    y = _float64(x)
    return _back((-1) ** (n + 1) * math.factorial(n) * zeta(xp, n + 1.0, y), x)


# ---------------------------------------------------------------------------------------- i0 and i1
_I1_SERIES_LIMIT = 20.0  # below: the power series (36 terms); above: the asymptotic series (30 terms)


def i0(xp, x):
    """The modified Bessel function of the first kind, order 0 (NumPy's and CuPy's i0, in float64),
    NaN at +-inf as PyTorch and NumPy give it (CuPy gives inf)."""
    y = _float64(x)
    with np.errstate(all="ignore"):
        return _back(xp.where(xp.isinf(y), math.nan, xp.i0(y)), x)


def i1(xp, x):
    """The modified Bessel function of the first kind, order 1: odd, ~ e^|x| / sqrt(2 pi |x|)."""
    y = _float64(x)
    a = xp.abs(y)
    with np.errstate(all="ignore"):
        s = xp.minimum(a, _I1_SERIES_LIMIT) / 2.0
        s2 = s * s
        term = s
        series = s
        for k in range(36):  # sum of s^(2k+1) / (k! (k+1)!); every term positive, so nothing cancels
            term = term * s2 / ((k + 1) * (k + 2))
            series = series + term
        big = xp.maximum(a, _I1_SERIES_LIMIT)
        term = big * 0 + 1.0
        asymptotic = term
        for k in range(1, 31):  # sum of (-1)^k a_k(1) / big^k, a_k(1) = prod (4 - (2j-1)^2) / (k! 8^k)
            term = term * -(4.0 - (2 * k - 1) ** 2) / (k * 8.0 * big)
            asymptotic = asymptotic + term
        half = xp.exp(big / 2.0)  # e^big in two halves: I1 stays finite a little beyond e^big's overflow
        asymptotic = half * (half * asymptotic / xp.sqrt(2.0 * np.pi * big))
        out = xp.where(a <= _I1_SERIES_LIMIT, series, asymptotic)
    return _back(xp.copysign(out, y), x)
