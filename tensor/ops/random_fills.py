"""In-place random fills, as in PyTorch: uniform_, normal_, bernoulli_, exponential_, geometric_,
cauchy_, log_normal_ and random_.

Each draws from the engine's generator for the tensor's device (or `generator=`), so manual_seed
reproduces it. The continuous fills need a floating tensor; bernoulli_, geometric_ and random_ fill
integer tensors too (bernoulli_ and random_ bool ones as well), as in PyTorch. Like PyTorch's init
functions, a fill runs on a leaf that requires grad only under no_grad; a non-leaf leaves the graph,
its new values depending on nothing.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import random
from ..creation import _on
from ..errors import DTypeError
from ..tensor import Tensor, _wrap
from .inplace import apply_tracked, needs_graph
from .inplace_math import _write
from .sampling import check_probabilities, check_probability, coin_flips


def _fill(self, draw, name, *, integral=False):
    """Replace self's values by `draw()`, a raw array of self's shape and dtype."""
    if self.dtype.kind != "f" and not (integral and self.dtype.kind in "iub"):
        kinds = "floating-point or integer" if integral else "floating-point"
        raise DTypeError(f"{name}: fills {kinds} tensors, got {self.dtype}; use random_ or randint for integers")
    if needs_graph(self):  # the new values depend on nothing: the tensor leaves the graph
        return apply_tracked(self, lambda source: _wrap(draw()), name=name)
    return _write(self, draw(), name)


def _transformed(self, generator, transform):
    """A draw function for _fill: `transform(xp, v)` of float64 uniforms v in (0, 1], cast to self's
    dtype (integer targets saturate at their largest value rather than wrap)."""

    def draw():
        with _on(self.device):
            v = 1.0 - random.rng_for(self.device, generator).random(tuple(self.shape))
            values = transform(self.xp, v)
            if self.dtype.kind in "iu":
                values = self.xp.minimum(values, np.iinfo(self.dtype).max)
            return values.astype(self.dtype)

    return draw


def _check_positive(value, what, name):
    if not value > 0:
        raise ValueError(f"{name}: {what} must be > 0, got {value}")


# ------------------------------------------------------------------------------------ continuous


def uniform_(self, from_=0.0, to=1.0, *, generator=None, **kwargs):
    """Fill with U(from, to) draws."""
    from_ = kwargs.pop("from", from_)  # torch's keyword is `from`, a Python keyword
    if kwargs:
        raise TypeError(f"uniform_: unexpected arguments {sorted(kwargs)}; use uniform_(from, to, generator=...)")
    if not from_ <= to:
        raise ValueError(f"uniform_: from ({from_}) must be <= to ({to})")
    return _fill(self, lambda: random.sample_uniform(self.shape, from_, to, self.dtype, self.device, generator),
                 "uniform_")


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill with N(mean, std^2) draws."""
    if isinstance(std, Tensor) or isinstance(mean, Tensor):
        raise TypeError("normal_: mean and std must be numbers; for per-element parameters use "
                        "tensor.normal(mean, std)")
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _fill(self, lambda: random.sample_normal(self.shape, mean, std, self.dtype, self.device, generator),
                 "normal_")


def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    """Fill with exp(N(mean, std^2)) draws."""
    _check_positive(std, "std", "log_normal_")

    def draw():
        z = random.sample_normal(self.shape, mean, std, np.float64, self.device, generator)
        with _on(self.device):
            return self.xp.exp(z).astype(self.dtype)

    return _fill(self, draw, "log_normal_")


def exponential_(self, lambd=1.0, *, generator=None):
    """Fill with Exp(lambd) draws (mean 1 / lambd)."""
    _check_positive(lambd, "lambd", "exponential_")
    return _fill(self, _transformed(self, generator, lambda xp, v: -xp.log(v) / lambd), "exponential_")


def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
    """Fill with Cauchy(median, sigma) draws."""
    _check_positive(sigma, "sigma", "cauchy_")
    return _fill(self, _transformed(self, generator, lambda xp, v: median + sigma * xp.tan(np.pi * (v - 0.5))),
                 "cauchy_")


# -------------------------------------------------------------------------------------- discrete


def geometric_(self, p, *, generator=None):
    """Fill with the number of Bernoulli(p) trials up to the first success: 1, 2, ..."""
    if not 0 < p < 1:
        raise ValueError(f"geometric_: p must be in (0, 1), got {p}")
    scale = 1.0 / np.log1p(-p)
    return _fill(self, _transformed(self, generator, lambda xp, v: xp.floor(xp.log(v) * scale) + 1), "geometric_",
                 integral=True)


def bernoulli_(self, p=0.5, *, generator=None):
    """Fill with 1 with probability p (a number, or a tensor broadcast to self's shape), else 0."""
    if isinstance(p, Tensor):
        check_probabilities(p.data, "bernoulli_", "p")
        p = p.data
    else:
        check_probability(p, "bernoulli_")

    def draw():
        with _on(self.device):
            return coin_flips(self.xp, random.rng_for(self.device, generator), self.shape, p, self.dtype)

    return _fill(self, draw, "bernoulli_", integral=True)


def random_(self, *args, generator=None, **kwargs):
    """Fill with integers uniform on [from, to - 1]: random_(to), random_(from, to) or random_(). Without
    `to`, up to the largest integer the dtype holds exactly (2**24 for float32, 2**53 for float64)."""
    low, high = _random_bounds(self, args, kwargs)

    def draw():
        draw_dtype = np.uint64 if self.dtype == np.uint64 else np.int64
        with _on(self.device):
            rng = random.rng_for(self.device, generator)
            return rng.integers(low, high, size=tuple(self.shape), dtype=draw_dtype).astype(self.dtype)

    return _fill(self, draw, "random_", integral=True)


def _random_bounds(self, args, kwargs):
    """[low, high) for random_, checked against what self's dtype can hold."""
    if len(args) > 2 or set(kwargs) - {"from", "to"}:
        raise TypeError(f"random_: takes (to), (from, to) or (), got {args} {kwargs}; use random_(from, to, generator=g)")
    if len(args) == 2:
        low, to = args
    elif len(args) == 1 and "to" not in kwargs:
        low, to = kwargs.get("from", 0), args[0]  # random_(to)
    else:
        low, to = (args[0] if args else kwargs.get("from", 0)), kwargs.get("to")
    dtype = self.dtype
    if dtype.kind == "f":
        top = 2 ** (np.finfo(dtype).nmant + 1)  # every integer up to here is exact in the dtype
        bottom = -top
    elif dtype.kind == "b":
        bottom, top = 0, 1
    else:
        bottom, top = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    high = top + 1 if to is None else int(to)
    low = int(low)
    if low >= high:
        raise ValueError(f"random_: from ({low}) must be less than to ({high})")
    if dtype.kind != "f" and (low < bottom or high - 1 > top):
        raise ValueError(f"random_: [{low}, {high - 1}] does not fit {dtype} ([{bottom}, {top}]); pick a wider dtype")
    if dtype.kind == "f" and (low < bottom or high - 1 > top):
        warnings.warn(f"random_: integers beyond 2**{np.finfo(dtype).nmant + 1} are not all exact in {dtype}; "
                      "the draws are rounded to the nearest value it holds (use float64 for exact ones)", stacklevel=2)
    return low, high
