"""Connectionist Temporal Classification loss (Graves et al. 2006), PyTorch's `F.ctc_loss`.

The loss of a sequence is -log of the summed probability of every alignment of its target to the
input frames, computed over the extended label sequence (blank, l1, blank, l2, ..., blank) with the
forward (alpha) recursion in log space; backward runs the beta recursion. Both are vectorized over
the batch and the extended labels, with a Python loop over time only.

The gradient is PyTorch's: d loss / d log_probs[t, n, c] = exp(log_probs[t, n, c]) - posterior
occupancy of class c at frame t. That is the gradient with respect to the *logits* when log_probs
is a log_softmax (the posteriors of a frame sum to 1, so log_softmax's backward passes it through
unchanged), and it is what every PyTorch CTC kernel returns whatever log_probs holds: a model that
feeds log_softmax output, as it should, gets exact gradients; raw scores get PyTorch's.

Label bookkeeping (lengths, the extended sequence) is small and is done on the host; the (T, N, L)
recursions run on the arrays' device.
"""
from __future__ import annotations

import numpy as np

from ...autograd import Function
from ...backend import to_device_array
from ...errors import DTypeError, ShapeError
from ...tensor import Tensor
from ._reduction import check_reduction

_NEG_INF = -np.inf


class CTCLoss(Function):
    """Per-sequence negative log-likelihood of the targets, reduced; gradient for log_probs only."""

    @staticmethod
    def forward(ctx, log_probs, labels, skip, input_lengths, target_lengths, reduction, zero_infinity):
        xp = ctx.xp
        ctx.save_for_backward(log_probs)  # as given, so an in-place change to it is caught at backward
        ctx.unbatched = log_probs.ndim == 2
        if ctx.unbatched:
            log_probs = log_probs[:, None]
        batch = log_probs.shape[1]
        # log_probs[t, n, labels[n, s]]: the emission of each extended label at each frame
        emit = log_probs[:, xp.arange(batch)[:, None], labels]
        with np.errstate(invalid="ignore"):
            alpha = _alpha(xp, emit, skip)
            nll = -_end_probability(xp, alpha, input_lengths, target_lengths)
        loss = xp.where(nll == np.inf, 0, nll).astype(nll.dtype) if zero_infinity else nll
        ctx.args = (alpha, labels, skip, input_lengths, target_lengths, nll, reduction, zero_infinity)
        if reduction == "none":
            return loss[0] if ctx.unbatched else loss
        if reduction == "sum":
            return loss.sum()
        return (loss / xp.maximum(target_lengths, 1).astype(loss.dtype)).mean()

    @staticmethod
    def backward(ctx, grad):
        xp = ctx.xp
        (log_probs,) = ctx.saved_tensors
        if ctx.unbatched:
            log_probs = log_probs[:, None]
        alpha, labels, skip, input_lengths, target_lengths, nll, reduction, zero_infinity = ctx.args
        steps, batch, classes = log_probs.shape
        emit = log_probs[:, xp.arange(batch)[:, None], labels]
        with np.errstate(invalid="ignore", over="ignore"):
            occupancy = _occupancy(xp, alpha, emit, skip, input_lengths, target_lengths, nll)  # (T, N, L)
            grad_input = xp.exp(log_probs) - _per_class(xp, occupancy, labels, classes)
        frames = xp.arange(steps)[:, None] < input_lengths[None, :]  # frames past a sequence's end get 0
        grad_input = xp.where(frames[:, :, None], grad_input, 0).astype(log_probs.dtype)
        if zero_infinity:
            grad_input = xp.where((nll == np.inf)[None, :, None], 0, grad_input).astype(log_probs.dtype)
        grad_input *= _per_sequence_grad(xp, grad, reduction, target_lengths, batch)
        return (grad_input[:, 0] if ctx.unbatched else grad_input), None, None, None, None, None, None


def _alpha(xp, emit, skip):
    """Log forward variables (T + 1, N, L); row 0 is the start (all mass on the first blank), row t + 1 frame t."""
    steps, batch, width = emit.shape
    alpha = xp.full((steps + 1, batch, width), _NEG_INF, dtype=emit.dtype)
    alpha[0, :, 0] = 0
    for t in range(steps):
        prev = alpha[t]
        total = xp.logaddexp(prev, _shift(xp, prev, 1))
        total = xp.logaddexp(total, xp.where(skip, _shift(xp, prev, 2), _NEG_INF))
        alpha[t + 1] = total + emit[t]
    return alpha


def _shift(xp, array, by):
    """array moved right by `by` along the last axis (by < 0: left), -inf filled in."""
    out = xp.full_like(array, _NEG_INF)
    if by > 0:
        out[:, by:] = array[:, :-by]
    else:
        out[:, :by] = array[:, -by:]
    return out


def _end_probability(xp, alpha, input_lengths, target_lengths):
    """log P(target | input) per sequence: alpha at its last frame, in its last blank or last label."""
    rows = xp.arange(alpha.shape[1])
    last = 2 * target_lengths  # the final blank of the extended sequence
    at_end = alpha[input_lengths, rows]
    final_blank = at_end[rows, last]
    final_label = xp.where(last > 0, at_end[rows, xp.maximum(last - 1, 0)], _NEG_INF)
    return xp.logaddexp(final_blank, final_label)


def _occupancy(xp, alpha, emit, skip, input_lengths, target_lengths, nll):
    """exp(alpha + beta - emit + nll): the posterior probability of each extended label at each frame."""
    steps, batch, width = emit.shape
    positions = xp.arange(width)[None, :]
    last = 2 * target_lengths[:, None]
    terminal = (positions == last) | (positions == last - 1)
    skip_back = _shift(xp, skip, -2)  # s -> s + 2 is allowed where s + 2 may be reached by a skip
    occupancy = xp.empty_like(emit)
    beta = xp.full((batch, width), _NEG_INF, dtype=emit.dtype)
    for t in range(steps - 1, -1, -1):
        total = xp.logaddexp(beta, _shift(xp, beta, -1))
        total = xp.logaddexp(total, xp.where(skip_back, _shift(xp, beta, -2), _NEG_INF))
        start = xp.where(terminal, emit[t], _NEG_INF)
        beta = xp.where((input_lengths == t + 1)[:, None], start, total + emit[t])
        occupancy[t] = xp.exp(alpha[t + 1] + beta - emit[t] + nll[:, None])
    return occupancy


def _per_class(xp, occupancy, labels, classes):
    """Sum the occupancy of the extended labels (T, N, L) into their classes (T, N, C)."""
    batch, width = labels.shape
    one_hot = xp.zeros((batch, width, classes), dtype=occupancy.dtype)
    one_hot[xp.arange(batch)[:, None], xp.arange(width)[None, :], labels] = 1
    return xp.matmul(occupancy.transpose(1, 0, 2), one_hot).transpose(1, 0, 2)


def _per_sequence_grad(xp, grad, reduction, target_lengths, batch):
    """The upstream gradient of each sequence's loss, shaped (N, 1) to broadcast over (T, N, C)."""
    if reduction == "none":
        return grad.reshape(batch, 1)
    if reduction == "sum":
        return grad
    scale = grad / (xp.maximum(target_lengths, 1).astype(grad.dtype) * batch)
    return scale[:, None]


# ------------------------------------------------------------------------------------ checks


def _host_lengths(value, name, batch, unbatched):
    """Lengths (a Tensor, list/tuple, or int when unbatched) as a host int64 array of shape (N,)."""
    if isinstance(value, Tensor):
        if value.dtype.kind not in "iu":
            raise DTypeError(f"ctc_loss: {name} must hold integers, got dtype {value.dtype}; use .long()")
        if value.ndim > 1:
            raise ShapeError(f"ctc_loss: {name} must be 0-d or 1-d, got shape {tuple(value.shape)}")
        array = np.asarray(value.tolist(), dtype=np.int64).reshape(-1)
    elif isinstance(value, (list, tuple)) or (unbatched and isinstance(value, (int, np.integer))):
        array = np.asarray(value).reshape(-1)
        if array.size and array.dtype.kind not in "iu":
            raise DTypeError(f"ctc_loss: {name} must hold integers, got {value!r}")
        array = array.astype(np.int64)
    else:
        raise TypeError(f"ctc_loss: {name} must be a tensor or a tuple/list of ints, got {type(value).__name__}")
    if array.size != batch:
        raise ShapeError(f"ctc_loss: {name} must have one length per sequence (batch size {batch}), "
                         f"got {array.size}: {array.tolist()}")
    return array


def _padded_targets(targets, target_lengths, batch):
    """Targets as a host (N, S) array whatever their layout: padded (N, S), or concatenated (sum(lengths),).

    Unbatched input (N = 1) takes the same layouts, as in PyTorch: (1, S), or (target_length,).
    """
    if targets.dtype.kind not in "iuf":
        raise DTypeError(f"ctc_loss: targets must hold class indices (integers), got dtype {targets.dtype}")
    host = np.asarray(targets.tolist(), dtype=np.int64)
    if host.ndim == 1:
        total = int(target_lengths.sum())
        if host.size != total:
            raise ShapeError(f"ctc_loss: concatenated 1-d targets must have sum(target_lengths) = {total} "
                             f"entries, got {host.size}")
        starts = np.cumsum(target_lengths) - target_lengths
        index = starts[:, None] + np.arange(target_lengths.max(initial=0))[None, :]
        return host[np.minimum(index, max(total - 1, 0))] if total else np.zeros(index.shape, np.int64)
    if host.ndim != 2 or host.shape[0] != batch:
        raise ShapeError(f"ctc_loss: targets must be padded (N, S) = ({batch}, S) or concatenated 1-d "
                         f"(sum(target_lengths),), got shape {host.shape}")
    if host.shape[1] < target_lengths.max(initial=0):
        raise ShapeError(f"ctc_loss: target_lengths go up to {int(target_lengths.max())}, but padded targets "
                         f"hold only {host.shape[1]} labels per sequence")
    return host


def _extended_labels(padded, target_lengths, blank, classes):
    """(labels, skip): the extended sequences (N, 2 S + 1), blank-filled past each end, and where s - 2 -> s is allowed."""
    batch = padded.shape[0]
    longest = int(target_lengths.max(initial=0))
    valid = np.arange(longest)[None, :] < target_lengths[:, None]
    used = padded[:, :longest]
    bad = valid & ((used < 0) | (used >= classes) | (used == blank))
    if bad.any():
        n, j = (int(i[0]) for i in np.nonzero(bad))
        raise ValueError(f"ctc_loss: target {n} holds label {int(used[n, j])} at position {j}; labels must be in "
                         f"[0, {classes}) and differ from blank={blank} (padding past target_lengths is ignored)")
    labels = np.full((batch, 2 * longest + 1), blank, dtype=np.int64)
    labels[:, 1::2] = np.where(valid, used, blank)
    skip = np.zeros(labels.shape, dtype=bool)
    skip[:, 2:] = (labels[:, 2:] != blank) & (labels[:, 2:] != labels[:, :-2])  # repeats need a blank between
    return labels, skip


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """CTC loss of log-probabilities (T, N, C) (or unbatched (T, C)) against label sequences.

    targets: padded (N, S) or concatenated 1-d (sum(target_lengths),) class indices, never `blank`;
    input_lengths, target_lengths: (N,) tensors or tuples/lists of ints. 'mean' divides each loss by its
    target length (at least 1), then averages over the batch. An impossible alignment (target too long
    for its input) gives inf, or 0 (and a zero gradient) with zero_infinity=True.
    """
    check_reduction(reduction, "ctc_loss")
    for name, value in (("log_probs", log_probs), ("targets", targets)):
        if not isinstance(value, Tensor):
            raise TypeError(f"ctc_loss: {name} must be a Tensor, got {type(value).__name__}")
    if log_probs.ndim not in (2, 3):
        raise ShapeError(f"ctc_loss: log_probs must be (T, N, C) or unbatched (T, C), got shape "
                         f"{tuple(log_probs.shape)}")
    if log_probs.dtype.kind != "f":
        raise DTypeError(f"ctc_loss: log_probs must be floating point, got {log_probs.dtype}")
    if not log_probs.data.size:
        raise ShapeError(f"ctc_loss: log_probs of shape {tuple(log_probs.shape)} is empty; as in PyTorch it needs "
                         "at least one time step, sequence and class: skip the loss for an empty batch")
    unbatched = log_probs.ndim == 2
    steps, classes = log_probs.shape[0], log_probs.shape[-1]
    batch = 1 if unbatched else log_probs.shape[1]
    if not 0 <= blank < classes:
        raise ValueError(f"ctc_loss: blank={blank} must be a class index in [0, {classes})")
    input_host = _host_lengths(input_lengths, "input_lengths", batch, unbatched)
    target_host = _host_lengths(target_lengths, "target_lengths", batch, unbatched)
    if ((input_host < 0) | (input_host > steps)).any():
        raise ValueError(f"ctc_loss: input_lengths must be in [0, {steps}] (T = {steps}), got {input_host.tolist()}")
    if (target_host < 0).any():
        raise ValueError(f"ctc_loss: target_lengths must be >= 0, got {target_host.tolist()}")
    labels, skip = _extended_labels(_padded_targets(targets, target_host, batch), target_host, blank, classes)
    device = log_probs.device
    on_device = [to_device_array(a, device) for a in (labels, skip, input_host, target_host)]
    return CTCLoss.apply(log_probs, *on_device, reduction, bool(zero_infinity))
