"""pixel_shuffle, pixel_unshuffle, channel_shuffle: pure reshapes and permutes of existing ops,
so they cost one copy forward and autograd undoes them exactly backward."""
from __future__ import annotations

from ...errors import ShapeError


def pixel_shuffle(input, upscale_factor):
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r): each group of r^2 channels becomes an r x r block."""
    r = _factor(upscale_factor, "pixel_shuffle", "upscale_factor")
    _check_dims(input, "pixel_shuffle")
    *batch, channels, height, width = input.shape
    if channels % (r * r):
        raise ShapeError(f"pixel_shuffle: the {channels} channels of input shape {tuple(input.shape)} are not "
                         f"divisible by upscale_factor^2 = {r * r}")
    lead = len(batch)
    blocks = input.reshape(*batch, channels // (r * r), r, r, height, width)
    # (..., C, r_h, r_w, H, W) -> (..., C, H, r_h, W, r_w)
    order = tuple(range(lead)) + tuple(lead + d for d in (0, 3, 1, 4, 2))
    return blocks.permute(order).reshape(*batch, channels // (r * r), height * r, width * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W): the inverse of pixel_shuffle."""
    r = _factor(downscale_factor, "pixel_unshuffle", "downscale_factor")
    _check_dims(input, "pixel_unshuffle")
    *batch, channels, height, width = input.shape
    if height % r or width % r:
        raise ShapeError(f"pixel_unshuffle: height {height} and width {width} of input shape {tuple(input.shape)} "
                         f"must both be divisible by downscale_factor = {r}")
    lead = len(batch)
    blocks = input.reshape(*batch, channels, height // r, r, width // r, r)
    # (..., C, H, r_h, W, r_w) -> (..., C, r_h, r_w, H, W)
    order = tuple(range(lead)) + tuple(lead + d for d in (0, 2, 4, 1, 3))
    return blocks.permute(order).reshape(*batch, channels * r * r, height // r, width // r)


def channel_shuffle(input, groups):
    """(N, C, *) -> (N, C, *) with the channels of `groups` groups interleaved (ShuffleNet)."""
    groups = _factor(groups, "channel_shuffle", "groups")
    if input.dim() < 3:
        raise ShapeError(f"channel_shuffle: input must be (N, C, *) with 3 or more dims, got shape "
                         f"{tuple(input.shape)}")
    batch, channels, *rest = input.shape
    if channels % groups:
        raise ShapeError(f"channel_shuffle: {channels} channels cannot be split into {groups} equal groups")
    grouped = input.reshape(batch, groups, channels // groups, *rest)
    return grouped.transpose(1, 2).reshape(batch, channels, *rest)


def _factor(value, op, name):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_dims(input, op):
    if input.dim() < 3:
        raise ShapeError(f"{op}: input must be (*, C, H, W) with 3 or more dims, got shape {tuple(input.shape)}")
