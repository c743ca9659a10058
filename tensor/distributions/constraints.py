"""Constraints: what values a parameter or a sample may take (torch.distributions.constraints).

`check(value)` returns a bool Tensor of value's shape less `event_dim` trailing dims, computed without a graph.
"""
from __future__ import annotations

from ..autograd import no_grad


class Constraint:
    """The set a value must lie in; `event_dim` trailing dims are judged together (a simplex row, say)."""

    is_discrete = False
    event_dim = 0

    def check(self, value):
        raise NotImplementedError

    def __repr__(self):
        return type(self).__name__.lstrip("_") + "()"


class _Dependent(Constraint):
    """A constraint that depends on other parameters (Uniform's low < high): validated by the distribution."""

    def check(self, value):
        raise ValueError("a dependent constraint cannot be checked on its own")


class _Real(Constraint):
    def check(self, value):
        with no_grad():
            return value == value  # rejects NaN only, as torch's real does


class _Positive(Constraint):
    def check(self, value):
        with no_grad():
            return value > 0


class _UnitInterval(Constraint):
    def check(self, value):
        with no_grad():
            return (value >= 0) & (value <= 1)


class _Boolean(Constraint):
    is_discrete = True

    def check(self, value):
        with no_grad():
            return (value == 0) | (value == 1)


class _Simplex(Constraint):
    """Non-negative rows summing to 1 along the last dim."""

    event_dim = 1

    def check(self, value):
        with no_grad():
            return (value >= 0).all(-1) & ((value.sum(-1) - 1).abs() < 1e-6)


class _RealVector(Constraint):
    event_dim = 1

    def check(self, value):
        with no_grad():
            return (value == value).all(-1)


class _OneHot(Constraint):
    is_discrete = True
    event_dim = 1

    def check(self, value):
        with no_grad():
            return ((value == 0) | (value == 1)).all(-1) & (value.sum(-1) == 1)


class integer_interval(Constraint):  # noqa: N801 - torch's name
    """Integers in [lower_bound, upper_bound]."""

    is_discrete = True

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def check(self, value):
        with no_grad():
            whole = value == value.floor() if value.is_floating_point() else value == value
            return whole & (value >= self.lower_bound) & (value <= self.upper_bound)

    def __repr__(self):
        return f"IntegerInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class half_open_interval(Constraint):  # noqa: N801 - torch's name
    """[lower_bound, upper_bound); the bounds may be tensors (Uniform's support)."""

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def check(self, value):
        with no_grad():
            return (value >= self.lower_bound) & (value < self.upper_bound)

    def __repr__(self):
        return "HalfOpenInterval(lower_bound, upper_bound)"


class interval(Constraint):  # noqa: N801 - torch's name
    """The closed interval [lower_bound, upper_bound] (TanhTransform's codomain is interval(-1, 1))."""

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def check(self, value):
        with no_grad():
            return (value >= self.lower_bound) & (value <= self.upper_bound)

    def __repr__(self):
        return f"Interval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class greater_than(Constraint):  # noqa: N801 - torch's name
    """(lower_bound, inf)."""

    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def check(self, value):
        with no_grad():
            return value > self.lower_bound

    def __repr__(self):
        return f"GreaterThan(lower_bound={self.lower_bound})"


class independent(Constraint):  # noqa: N801 - torch's name
    """`base_constraint` judged over `reinterpreted_batch_ndims` more trailing dims (Independent's support)."""

    def __init__(self, base_constraint, reinterpreted_batch_ndims):
        self.base_constraint, self.reinterpreted_batch_ndims = base_constraint, reinterpreted_batch_ndims
        self.is_discrete = base_constraint.is_discrete
        self.event_dim = base_constraint.event_dim + reinterpreted_batch_ndims

    def check(self, value):
        ok = self.base_constraint.check(value)
        with no_grad():
            for _ in range(self.reinterpreted_batch_ndims):
                ok = ok.all(-1)
            return ok

    def __repr__(self):
        return f"IndependentConstraint({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


class _Nonnegative(Constraint):
    def check(self, value):
        with no_grad():
            return value >= 0


class _NonnegativeInteger(Constraint):
    is_discrete = True

    def check(self, value):
        with no_grad():
            whole = value == value.floor() if value.is_floating_point() else value == value
            return whole & (value >= 0)


class greater_than_eq(Constraint):  # noqa: N801 - torch's name
    """[lower_bound, inf)."""

    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def check(self, value):
        with no_grad():
            return value >= self.lower_bound

    def __repr__(self):
        return f"GreaterThanEq(lower_bound={self.lower_bound})"


class _LowerCholesky(Constraint):
    """Lower-triangular square matrices with a positive diagonal (MultivariateNormal's scale_tril)."""

    event_dim = 2

    def check(self, value):
        with no_grad():
            lower = (value.tril() == value).all(-1).all(-1)
            return lower & (value.diagonal(dim1=-2, dim2=-1) > 0).all(-1)


class _PositiveDefinite(Constraint):
    """Symmetric matrices whose Cholesky factorisation succeeds (all eigenvalues > 0)."""

    event_dim = 2

    def check(self, value):
        from ..creation import as_tensor

        with no_grad():
            xp = value.xp
            data = value.data
            if data.shape[-1] == 0:
                return as_tensor(xp.ones(data.shape[:-2], dtype=bool), device=value.device)
            scale = 1 + xp.abs(data).max(axis=(-1, -2))
            symmetric = xp.abs(data - xp.swapaxes(data, -1, -2)).max(axis=(-1, -2)) <= 1e-6 * scale
            # eigenvalues rather than cholesky: cholesky raises for the whole batch at the first failure
            return as_tensor(symmetric & (xp.linalg.eigvalsh(data).min(axis=-1) > 0), device=value.device)


class multinomial(Constraint):  # noqa: N801 - torch's name
    """Non-negative integer vectors summing to at most `upper_bound` (Multinomial's support)."""

    is_discrete = True
    event_dim = 1

    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def check(self, value):
        with no_grad():
            whole = value == value.floor() if value.is_floating_point() else value == value
            return (whole & (value >= 0)).all(-1) & (value.sum(-1) <= self.upper_bound)

    def __repr__(self):
        return f"Multinomial(upper_bound={self.upper_bound})"


dependent = _Dependent()
real = _Real()
positive = _Positive()
unit_interval = _UnitInterval()
boolean = _Boolean()
simplex = _Simplex()
real_vector = _RealVector()
one_hot = _OneHot()
nonnegative = _Nonnegative()
nonnegative_integer = _NonnegativeInteger()
lower_cholesky = _LowerCholesky()
positive_definite = _PositiveDefinite()
