"""affine_grid and grid_sample: spatial transformers (Jaderberg et al., 2015) as in PyTorch.

affine_grid maps a normalised output grid ([-1, 1] per axis) through a batch of affine matrices;
it is a matmul with a constant base grid, so its gradient w.r.t. theta comes from the engine.

grid_sample reads an (N, C, H, W) input at the (x, y) positions of an (N, Ho, Wo, 2) grid, or an
(N, C, D, H, W) volume at the (x, y, z) of an (N, Do, Ho, Wo, 3) grid. It is one Function: each
output point maps to a source position (PyTorch's unnormalisation, then border clipping or
reflection, each with its own gradient factor), then gathers its 4 bilinear (8 trilinear) corners,
its 16 bicubic taps (each padded on its own, as PyTorch does) or its nearest pixel from the flattened
planes; backward scatter-adds into those same planes and,
for linear modes, forms the grid gradient from the corner values. Everything is whole-array work
over the output points, a corner at a time; nothing loops over pixels.
"""
from __future__ import annotations

import math
import warnings

from ...autograd import Function
from ...creation import _on
from ...errors import DTypeError, ShapeError
from ...ops.gather import add_at
from ...tensor import Tensor, _wrap

_MODES = ("bilinear", "nearest", "bicubic")
_PADDING = ("zeros", "border", "reflection")
_OUT_OF_RANGE = -100.0  # PyTorch moves non-finite or huge source positions here: outside any input


def _default_align_corners(align_corners):
    if align_corners is None:
        warnings.warn("Default grid_sample and affine_grid behavior has changed to align_corners=False since "
                      "PyTorch 1.3.0; pass align_corners=True for the old behavior.", stacklevel=3)
        return False
    return bool(align_corners)


# ------------------------------------------------------------------------------------ affine_grid


def _linspace(xp, n, dtype, align_corners):
    """n sample positions in [-1, 1]: pixel corners (align_corners) or pixel centres."""
    if n <= 1:
        return xp.zeros(1, dtype=dtype)
    steps = xp.linspace(-1, 1, n, dtype=dtype)
    return steps if align_corners else steps * ((n - 1) / n)


def _base_grid(xp, spatial, dtype, align_corners):
    """(prod(spatial), len(spatial) + 1): each output position as (x, y[, z], 1), x along the last dim."""
    axes = [_linspace(xp, n, dtype, align_corners) for n in spatial]
    base = xp.ones(tuple(spatial) + (len(spatial) + 1,), dtype=dtype)
    for column, axis in enumerate(reversed(range(len(spatial)))):  # x varies along the last dim
        shape = [1] * len(spatial)
        shape[axis] = spatial[axis]
        base[..., column] = axes[axis].reshape(shape)
    return base.reshape(-1, len(spatial) + 1)


def affine_grid(theta, size, align_corners=None):
    """theta (N, 2, 3) with size (N, C, H, W) -> grid (N, H, W, 2); theta (N, 3, 4) with size
    (N, C, D, H, W) -> (N, D, H, W, 3). Each grid entry is theta @ (x, y[, z], 1), in the normalised
    [-1, 1] coordinates grid_sample reads."""
    align_corners = _default_align_corners(align_corners)
    if not isinstance(theta, Tensor) or theta.dtype.kind != "f":
        raise DTypeError(f"affine_grid: theta must be a floating-point Tensor, got "
                         f"{getattr(theta, 'dtype', type(theta).__name__)}")
    size = [int(s) for s in size]
    if len(size) not in (4, 5):
        raise NotImplementedError(f"affine_grid: supports 4-d (N, C, H, W) and 5-d (N, C, D, H, W) sizes for 2-d "
                                  f"and 3-d affine transforms; got size {tuple(size)}")
    rows = len(size) - 2
    if theta.dim() != 3 or tuple(theta.shape[1:]) != (rows, rows + 1):
        raise ShapeError(f"affine_grid: expected a batch of {rows}-d affine matrices of shape (N, {rows}, {rows + 1}) "
                         f"for size {tuple(size)}, got theta of shape {tuple(theta.shape)}")
    if theta.shape[0] != size[0]:
        raise ShapeError(f"affine_grid: theta holds {theta.shape[0]} matrices but size asks for a batch of "
                         f"{size[0]}; they must match")
    spatial = size[2:]
    if align_corners and min(spatial) == 1:
        warnings.warn("affine_grid: unit-size grids with align_corners=True changed behaviour in PyTorch 1.3.0 "
                      "and are not an intended use", stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"affine_grid: expected a positive output size, got {tuple(size)}")
    with _on(theta.device):
        base = _wrap(_base_grid(theta.xp, spatial, theta.dtype, align_corners))
    return base.matmul(theta.transpose(1, 2)).reshape((size[0], *spatial, rows))


# ----------------------------------------------------------------------------- source positions


def _unnormalize(xp, coord, size, align_corners):
    """Grid coordinates in [-1, 1] -> positions in an axis of `size` pixels, and d position / d coord."""
    if align_corners:
        index, grad = (coord + 1) / 2 * (size - 1), (size - 1) / 2
    else:
        index, grad = ((coord + 1) * size - 1) / 2, size / 2
    return index, xp.full(index.shape, grad, dtype=index.dtype)


def _source_index(xp, coord, size, padding_mode, align_corners):
    """_unnormalize, then the padding mode applied to the position (with its gradient factor)."""
    index, grad = _unnormalize(xp, coord, size, align_corners)
    return _padded(xp, index, size, padding_mode, align_corners, grad), grad


def _padded(xp, index, size, padding_mode, align_corners, grad):
    """index clipped ('border') or mirrored ('reflection') into the axis, grad scaled to match; positions
    that are not finite or are huge go far outside (PyTorch's -100), where they read zero."""
    if padding_mode == "border":
        index = _clip(xp, index, size, grad)
    elif padding_mode == "reflection":
        twice_low, twice_high = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
        index = _clip(xp, _reflect(xp, index, twice_low, twice_high, grad), size, grad)
    finite = xp.isfinite(index) & (xp.abs(index) < 2.0 ** 31 - 2)  # keeps the int64 corner arithmetic sane
    return xp.where(finite, index, _OUT_OF_RANGE)


def _clip(xp, index, size, grad):
    """Clamp into [0, size - 1]; as in PyTorch the gradient is zero on and beyond either bound."""
    grad *= (index > 0) & (index < size - 1)
    return xp.clip(index, 0, size - 1)


def _reflect(xp, index, twice_low, twice_high, grad):
    """Fold positions into [twice_low / 2, twice_high / 2] by mirroring at the bounds (grad flips sign)."""
    if twice_low == twice_high:
        grad *= 0
        return xp.zeros_like(index)
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    shifted = index - low
    sign = xp.where(shifted < 0, -1, 1).astype(index.dtype)
    shifted = xp.abs(shifted)
    extra = xp.fmod(shifted, span)
    even = xp.floor(shifted / span) % 2 == 0
    grad *= xp.where(even, sign, -sign)
    return xp.where(even, extra + low, span - extra + low)


# ---------------------------------------------------------------------------------- grid_sample


class _Plan:
    """Where each output point reads: per corner, flat indices into the flattened spatial dims (N, P),
    weights (N, P) and whether the corner lies inside (N, P). 2-d and 3-d alike: grid coordinate j
    indexes spatial axis -1 - j (x along W, y along H, z along D), and the corners run with x fastest,
    PyTorch's order (so its sums round alike)."""

    def __init__(self, xp, x_shape, grid, mode, padding_mode, align_corners):
        N, self.sizes = x_shape[0], tuple(x_shape[2:])  # (H, W) or (D, H, W)
        k = len(self.sizes)
        self.points = math.prod(grid.shape[1:-1])  # from the shape: N may be 0
        coords = grid.reshape(N, self.points, k)
        axis_size = self.sizes[::-1]  # by grid coordinate: W, H (, D)
        positions = [_source_index(xp, coords[..., j], axis_size[j], padding_mode, align_corners) for j in range(k)]
        self.index = [p[0] for p in positions]
        self.slope = [p[1] for p in positions]  # d position / d coordinate
        if mode == "nearest":
            self.corners = [self._corner(xp, [xp.rint(i) for i in self.index], None)]
            return
        if mode == "bicubic":
            self._bicubic(xp, coords, padding_mode, align_corners)
            return
        self.low = [xp.floor(i) for i in self.index]
        # each axis' two linear weights, as PyTorch forms them: (low + 1) - index and index - low
        self.weights = [((low + 1) - i, i - low) for low, i in zip(self.low, self.index)]
        # per corner, along each coordinate j: 0 for the lower neighbour, 1 for the upper (x varies fastest)
        self.uppers = [[(bits >> j) & 1 for j in range(k)] for bits in range(2 ** k)]
        self.corners = []
        for upper in self.uppers:
            weight = self.weights[0][upper[0]]
            for j in range(1, k):
                weight = weight * self.weights[j][upper[j]]
            self.corners.append(self._corner(xp, [low + u for low, u in zip(self.low, upper)], weight))

    def _bicubic(self, xp, coords, padding_mode, align_corners):
        """PyTorch's bicubic: the unpadded position, its 4 x 4 neighbours from floor - 1 to floor + 2, each
        tap's integer position padded on its own, and cubic convolution weights (A = -0.75) per axis."""
        H, W = self.sizes
        positions = [_unnormalize(xp, coords[..., j], n, align_corners) for j, n in enumerate((W, H))]
        self.index, self.slope = [p[0] for p in positions], [p[1] for p in positions]
        low = [xp.floor(i) for i in self.index]
        t = [i - lo for i, lo in zip(self.index, low)]
        self.cubic = [_cubic_weights(tj) for tj in t]  # per axis: 4 weights
        self.cubic_slopes = [_cubic_slopes(tj) for tj in t]  # their derivatives in t
        self.taps = [(a, b) for b in range(4) for a in range(4)]  # (x tap, y tap), x fastest
        self.corners = []
        for a, b in self.taps:
            position = [_padded(xp, lo + (offset - 1), n, padding_mode, align_corners, xp.zeros_like(lo))
                        for lo, offset, n in zip(low, (a, b), (W, H))]
            self.corners.append(self._corner(xp, position, self.cubic[0][a] * self.cubic[1][b]))

    def _corner(self, xp, position, weight):
        """(flat index clamped into the volume, weight zeroed where the corner lies outside, inside as 0/1)."""
        sizes = self.sizes[::-1]
        inside = (position[0] >= 0) & (position[0] <= sizes[0] - 1)
        for p, n in zip(position[1:], sizes[1:]):
            inside &= (p >= 0) & (p <= n - 1)
        inside = inside.astype(position[0].dtype)
        flat = None
        for p, n in zip(position[::-1], sizes[::-1]):  # the slowest axis first
            clipped = xp.clip(p, 0, n - 1).astype(xp.int64)
            flat = clipped if flat is None else flat * n + clipped
        return flat, inside if weight is None else weight * inside, inside


_CUBIC_A = -0.75  # the cubic convolution's A, PyTorch's (and OpenCV's)


def _cubic_weights(t):
    """The four taps' weights at fraction t of the way from tap 1 to tap 2 (Keys' cubic convolution)."""
    A = _CUBIC_A
    near = lambda x: ((A + 2) * x - (A + 3)) * x * x + 1  # noqa: E731 - |x| <= 1
    far = lambda x: ((A * x - 5 * A) * x + 8 * A) * x - 4 * A  # noqa: E731 - 1 < |x| < 2
    return far(t + 1), near(t), near(1 - t), far(2 - t)


def _cubic_slopes(t):
    """d weight / d t of _cubic_weights' four taps."""
    A = _CUBIC_A
    near = lambda x: (3 * (A + 2) * x - 2 * (A + 3)) * x  # noqa: E731 - d near / dx
    far = lambda x: (3 * A * x - 10 * A) * x + 8 * A  # noqa: E731 - d far / dx
    return far(t + 1), near(t), -near(1 - t), -far(2 - t)


def _gather(xp, planes, flat):
    """planes (N, C, H*W), flat (N, P) -> (N, C, P)."""
    N, C, _ = planes.shape
    return xp.take_along_axis(planes, xp.broadcast_to(flat[:, None, :], (N, C, flat.shape[1])), axis=2)


class GridSample(Function):
    @staticmethod
    def forward(ctx, x, grid, mode, padding_mode, align_corners):
        xp = ctx.xp
        N, C = x.shape[:2]
        plan = _Plan(xp, x.shape, grid, mode, padding_mode, align_corners)
        planes = x.reshape(N, C, math.prod(x.shape[2:]))  # not -1: N or C may be 0
        out = xp.zeros((N, C, plan.points), dtype=x.dtype)
        for flat, weight, _ in plan.corners:
            out += _gather(xp, planes, flat) * weight[:, None, :]
        ctx.plan, ctx.x_shape, ctx.grid_shape, ctx.mode = plan, x.shape, grid.shape, mode
        if mode != "nearest" and ctx.needs_input_grad[1]:
            ctx.save_for_backward(x)
        return out.reshape(N, C, *grid.shape[1:-1])

    @staticmethod
    def backward(ctx, grad):
        xp, plan = ctx.xp, ctx.plan
        N, C = ctx.x_shape[:2]
        volume = math.prod(ctx.x_shape[2:])
        g = grad.reshape(N, C, plan.points)
        grad_x = grad_grid = None
        if ctx.needs_input_grad[0]:
            grad_x = xp.zeros(N * C * volume, dtype=grad.dtype)
            # one flat index per (n, c, point): 1-d scatter-adds are the fast kind on both devices
            offsets = (xp.arange(N * C, dtype=xp.int64) * volume).reshape(N, C, 1)
            for flat, weight, _ in plan.corners:
                add_at(xp, grad_x, (offsets + flat[:, None, :]).ravel(), (g * weight[:, None, :]).ravel())
            grad_x = grad_x.reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            grad_grid = xp.zeros(ctx.grid_shape, dtype=grad.dtype)
            if ctx.mode != "nearest":  # nearest: zero, as in PyTorch
                grad_grid[...] = _grid_grad(xp, plan, ctx.saved_tensors[0], g).reshape(ctx.grid_shape)
        return grad_x, grad_grid, None, None, None


def _grid_grad(xp, plan, x, g):
    """d loss / d grid for (bi/tri)linear sampling: each corner's value times the slope of its weight,
    which along coordinate j is -+1 times the other coordinates' weights."""
    N, C = x.shape[:2]
    planes = x.reshape(N, C, math.prod(x.shape[2:]))
    if hasattr(plan, "taps"):
        return _bicubic_grid_grad(xp, plan, planes, g)
    k = len(plan.index)
    grads = [xp.zeros_like(i) for i in plan.index]
    for (flat, _, inside), upper in zip(plan.corners, plan.uppers):
        value = (_gather(xp, planes, flat) * g).sum(axis=1)
        value *= inside  # an outside corner reads zero
        for j in range(k):
            others = [plan.weights[i][upper[i]] for i in range(k) if i != j]
            slope = others[0] if upper[j] else -others[0]
            for w in others[1:]:
                slope = slope * w
            grads[j] += value * slope
    return xp.stack([gj * sj for gj, sj in zip(grads, plan.slope)], axis=-1)


def _bicubic_grid_grad(xp, plan, planes, g):
    """d loss / d grid for bicubic sampling: each tap's value times its weight's slope along one axis and
    its weight along the other (the padding of taps moves no gradient to the grid, as in PyTorch)."""
    gix, giy = xp.zeros_like(plan.index[0]), xp.zeros_like(plan.index[1])
    (wx, wy), (sx, sy) = plan.cubic, plan.cubic_slopes
    for (flat, _, inside), (a, b) in zip(plan.corners, plan.taps):
        value = (_gather(xp, planes, flat) * g).sum(axis=1) * inside
        gix += value * (sx[a] * wy[b])
        giy += value * (wx[a] * sy[b])
    return xp.stack([gix * plan.slope[0], giy * plan.slope[1]], axis=-1)


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):  # noqa: A002
    """input (N, C, H, W) read at grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo), or a volume (N, C, D, H, W) at
    (N, Do, Ho, Wo, 3) -> (N, C, Do, Ho, Wo) ('bilinear' is then trilinear, as in PyTorch). grid[..., 0]
    is x (along W), grid[..., 1] y (along H), grid[..., 2] z (along D), all normalised to [-1, 1]
    (pixel corners with align_corners=True, else pixel centres' outer edges). padding_mode says what
    lies outside: 'zeros', the 'border' pixels, or the input mirrored ('reflection'). Differentiable
    w.r.t. input, and w.r.t. grid for 'bilinear' and 'bicubic' (4-d input only, as in PyTorch); 'nearest'
    gives the grid a zero gradient, as PyTorch does."""
    if mode not in _MODES:
        raise ValueError(f"grid_sample: mode must be one of {_MODES}, got {mode!r}")
    if padding_mode not in _PADDING:
        raise ValueError(f"grid_sample: padding_mode must be one of {_PADDING}, got {padding_mode!r}")
    align_corners = _default_align_corners(align_corners)
    for name, t in (("input", input), ("grid", grid)):
        if not isinstance(t, Tensor):
            raise TypeError(f"grid_sample: {name} must be a Tensor, got {type(t).__name__}")
    if mode == "bicubic" and input.dim() == 5:
        raise NotImplementedError("grid_sample: mode='bicubic' takes 4-d input only, as in PyTorch; use 'bilinear' "
                                  "(trilinear) or 'nearest' for volumes")
    if input.dim() not in (4, 5):
        raise ShapeError(f"grid_sample: expected a 4-d (N, C, H, W) or 5-d (N, C, D, H, W) input, got shape "
                         f"{tuple(input.shape)}")
    k = input.dim() - 2
    if grid.dim() != input.dim() or grid.shape[-1] != k or grid.shape[0] != input.shape[0]:
        form = "(N, H_out, W_out, 2)" if k == 2 else "(N, D_out, H_out, W_out, 3)"
        raise ShapeError(f"grid_sample: expected a grid of shape {form} with N = {input.shape[0]} for input "
                         f"{tuple(input.shape)}, got grid of shape {tuple(grid.shape)}")
    if input.dtype.kind != "f" or grid.dtype != input.dtype:
        raise DTypeError(f"grid_sample: input and grid must share one floating dtype, got {input.dtype} and "
                         f"{grid.dtype}; convert one with .to(dtype=...)")
    if 0 in input.shape[2:]:
        raise ShapeError(f"grid_sample: input has an empty spatial dim, shape {tuple(input.shape)}")
    return GridSample.apply(input, grid, mode, padding_mode, align_corners)
