"""Moments together and across variables: var_mean, std_mean, cov, corrcoef.

var_mean and std_mean pair statistics.py's var/std with reduce.py's mean. cov and corrcoef are
PyTorch's formulas (Correlation.cpp) written with Tensor ops, so they differentiate with respect to
the input (and to the weights) through those ops.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from .linalg import mm
from .ranking import _require_tensor
from .reduce import mean
from .shape import reshape, squeeze
from .statistics import _correction, _require_float, std, var
from .unary import clamp, sqrt
from .views import diagonal


def var_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) over `dim`, as var() and mean() give them (correction=1, Bessel's, unless told)."""
    dim, correction = _correction("var_mean", dim, unbiased, correction)
    _require_float(x, "var_mean")
    return var(x, dim, keepdim=keepdim, correction=correction), mean(x, dim, keepdim)


def std_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) over `dim`, as std() and mean() give them."""
    dim, correction = _correction("std_mean", dim, unbiased, correction)
    _require_float(x, "std_mean")
    return std(x, dim, keepdim=keepdim, correction=correction), mean(x, dim, keepdim)


def cov(x, *, correction=1, fweights=None, aweights=None):
    """The covariance matrix of the variables in x's rows, observed in its columns (a 1-D x is one
    variable: a 0-d result). fweights: integer repeat counts per observation; aweights: float
    importance weights; correction: subtracted from the (weighted) number of observations."""
    _require_tensor("cov", x)
    if x.ndim > 2:
        raise ShapeError(f"cov: expects a 1-D or 2-D input (variables x observations), got shape {tuple(x.shape)}")
    if x.dtype.kind == "b":
        raise DTypeError("cov: bool inputs are not supported; convert with .float() first")
    rows = x if x.ndim == 2 else reshape(x, (1, -1))
    observations = rows.shape[1]
    w = _weights("fweights", fweights, observations, "iu")
    a = _weights("aweights", aweights, observations, "f")
    if a is not None:
        w = a if w is None else w * a
    if w is None:
        w_sum = observations
        centered = rows - rows.sum(1, keepdim=True) / observations
    else:
        w_sum = w.sum()
        if not bool(w_sum != 0):
            raise ValueError("cov: the weights sum to zero, so the observations cannot be averaged")
        centered = rows - (rows * w).sum(1, keepdim=True) / w_sum
    if w is not None and correction != 0 and a is not None:
        norm = w_sum - correction * (w * a).sum() / w_sum
    else:
        norm = w_sum - correction
    if bool(norm <= 0):
        warnings.warn("cov: degrees of freedom <= 0 (correction should be less than the number of observations); "
                      "the result is inf or nan", RuntimeWarning, stacklevel=2)
        norm = norm * 0
    weighted = centered if w is None else centered * w
    with np.errstate(divide="ignore", invalid="ignore"):  # x / 0 is inf or nan here, as in PyTorch (warned above)
        return squeeze(mm(centered, weighted.t()) / norm)


def _weights(name, weights, observations, kinds):
    """fweights/aweights checked (1-D or 0-d, one per observation, non-negative), or None."""
    if weights is None:
        return None
    if not isinstance(weights, Tensor):
        raise TypeError(f"cov: {name} must be a Tensor, got {type(weights).__name__}")
    if weights.ndim > 1:
        raise ShapeError(f"cov: {name} must have at most one dim, got shape {tuple(weights.shape)}")
    if weights.dtype.kind not in kinds:
        kind = "an integer" if kinds == "iu" else "a floating-point"
        raise DTypeError(f"cov: {name} must have {kind} dtype, got {weights.dtype}")
    if weights.numel() != observations:
        raise ShapeError(f"cov: {name} has {weights.numel()} values but the input has {observations} observations; "
                         "give one weight per observation (column)")
    if observations and bool((weights < 0).any()):
        raise ValueError(f"cov: {name} cannot be negative")
    return weights


def corrcoef(x):
    """Pearson's correlation coefficients of the variables in x's rows: cov normalised by the standard
    deviations and clipped to [-1, 1] (a 0-d input gives 1, or nan where the variance is 0 or nan)."""
    _require_tensor("corrcoef", x)
    if x.ndim > 2:
        raise ShapeError(f"corrcoef: expects a 1-D or 2-D input (variables x observations), got shape "
                         f"{tuple(x.shape)}")
    c = cov(x)
    if c.ndim == 0:
        return c / c
    stddev = sqrt(diagonal(c))
    c = c / reshape(stddev, (-1, 1))
    c = c / reshape(stddev, (1, -1))
    return clamp(c, -1, 1)
