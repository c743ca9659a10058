"""Variable-length sequences, as torch.nn.utils.rnn: pad_sequence, PackedSequence, pack_padded_sequence,
pad_packed_sequence and pack_sequence.

A PackedSequence holds its sequences sorted by length, longest first, and time-major: `data` (sum of
lengths, *) is step 0 of every sequence, then step 1 of those that have one, and so on; `batch_sizes[t]`
(int64, on the CPU) counts the sequences with a step t. `sorted_indices` (None when the input was
already sorted) gives, for each sorted position, the original batch index; `unsorted_indices` inverts it.
RNN, LSTM and GRU run one as a padded batch whose step t updates only its first batch_sizes[t] rows.

Packing and padding are one Function each (a row gather and its scatter, each the other's backward),
so gradients flow through them to every sequence.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ...autograd import Function
from ...creation import tensor as _tensor
from ...errors import ShapeError  # a RuntimeError and a ValueError, as PyTorch's errors here
from ...graph_backward import linear_backward_graph
from ...ops.gather import index_select
from ...tensor import Tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpad_sequence", "unpack_sequence"]


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """(data, batch_sizes, sorted_indices, unsorted_indices): see the module docstring. Build one with
    pack_padded_sequence or pack_sequence; unsorted_indices is derived from sorted_indices when omitted."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _invert_permutation(sorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """The same sequence with data (and the index tensors, which follow it) moved or cast;
        batch_sizes stays on the CPU."""
        data = self.data.to(*args, **kwargs)
        move = (lambda t: None if t is None else t.to(data.device))
        return type(self)(data, self.batch_sizes, move(self.sorted_indices), move(self.unsorted_indices))

    @property
    def is_cuda(self):
        return self.data.is_cuda


def _invert_permutation(permutation):
    inverse = np.empty(len(permutation), dtype=np.int64)
    inverse[_as_numpy_ints(permutation)] = np.arange(len(permutation))
    return _tensor(inverse, device=permutation.device)


def _as_numpy_ints(values):
    """Lengths, sizes or indices (a Tensor, array or sequence of ints) as a 1-D int64 NumPy array."""
    if isinstance(values, Tensor):
        values = values.tolist()
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _rows_of_steps(batch_sizes, batch):
    """Flat indices into a time-major (T, batch) grid of the rows each step holds, step by step: the
    order of a packed sequence's data."""
    sizes = np.asarray(batch_sizes, dtype=np.int64)
    return np.flatnonzero(np.arange(batch)[None, :] < sizes[:, None])


class _GatherRows(Function):
    """padded (T, B, *) -> its rows at flat indices `rows` of the (T, B) grid: (len(rows), *)."""

    @staticmethod
    def forward(ctx, padded, rows):
        rows = ctx.xp.asarray(rows)
        ctx.shape, ctx.rows = padded.shape, rows
        return padded.reshape((-1,) + padded.shape[2:])[rows]

    @staticmethod
    def backward(ctx, grad):
        full = ctx.xp.zeros((ctx.shape[0] * ctx.shape[1],) + ctx.shape[2:], dtype=grad.dtype)
        full[ctx.rows] = grad  # rows are distinct: no accumulation needed
        return full.reshape(ctx.shape), None

    @staticmethod
    def backward_graph(ctx, grad):
        return linear_backward_graph(ctx, grad, (ctx.rows,))


class _ScatterRows(Function):
    """data (N, *) written at flat indices `rows` of a (T, B) grid filled with padding_value: (T, B, *)."""

    @staticmethod
    def forward(ctx, data, rows, steps, batch, padding_value):
        rows = ctx.xp.asarray(rows)
        ctx.rows, ctx.grid = rows, (steps, batch)
        full = ctx.xp.full((steps * batch,) + data.shape[1:], padding_value, dtype=data.dtype)
        full[rows] = data
        return full.reshape((steps, batch) + data.shape[1:])

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape((-1,) + grad.shape[2:])[ctx.rows], None, None, None, None

    @staticmethod
    def backward_graph(ctx, grad):
        # Linear in data once the padding value is taken out: the adjoint pads with zeros.
        return linear_backward_graph(ctx, grad, (ctx.rows, *ctx.grid, 0.0))


def packed_rows(padded, batch_sizes):
    """The rows of a time-major padded batch (T, B, *) that a packing with these batch_sizes keeps,
    as packed data (sum(batch_sizes), *)."""
    return _GatherRows.apply(padded, _rows_of_steps(batch_sizes, padded.shape[1]))


def padded_rows(data, batch_sizes, steps=None, padding_value=0.0):
    """Packed data (sum(batch_sizes), *) as a time-major padded batch (steps, batch_sizes[0], *)."""
    batch = int(batch_sizes[0])
    steps = len(batch_sizes) if steps is None else steps
    return _ScatterRows.apply(data, _rows_of_steps(batch_sizes, batch), steps, batch, padding_value)


class _PadSequences(Function):
    """Sequences (L_i, *) stacked into (max L, B, *), each on the left or the right of its column."""

    @staticmethod
    def forward(ctx, padding_value, left, *sequences):
        longest = max(s.shape[0] for s in sequences)
        first = sequences[0]
        out = ctx.xp.full((longest, len(sequences)) + first.shape[1:], padding_value, dtype=first.dtype)
        spans = [slice(longest - len(s), longest) if left else slice(0, len(s)) for s in sequences]
        for column, (seq, span) in enumerate(zip(sequences, spans)):
            out[span, column] = seq
        ctx.spans = spans
        return out

    @staticmethod
    def backward(ctx, grad):
        return (None, None) + tuple(grad[span, column] for column, span in enumerate(ctx.spans))

    backward_graph = backward  # Tensor indexing is recorded


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Sequences of shapes (L_i, *) -> one tensor (max L, B, *), or (B, max L, *) when batch_first,
    the gaps filled with padding_value after each sequence ('right') or before it ('left')."""
    sequences = list(sequences)
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    if not sequences:
        raise ValueError("pad_sequence: received an empty list of sequences")
    trailing = {tuple(s.shape[1:]) for s in sequences}
    if len(trailing) > 1 or any(s.dim() == 0 for s in sequences):
        raise ShapeError(f"pad_sequence: sequences must be (L, *) with the same trailing dims, got shapes "
                         f"{[tuple(s.shape) for s in sequences]}")
    out = _PadSequences.apply(padding_value, padding_side == "left", *sequences)
    return out.transpose(0, 1) if batch_first else out


def _check_lengths(lengths, steps, batch):
    if len(lengths) != batch:
        raise ShapeError(f"pack_padded_sequence: expected len(lengths) == batch size {batch}, got {len(lengths)}")
    if batch == 0 or lengths.min() <= 0:
        raise ShapeError(f"pack_padded_sequence: every length must be greater than 0, got {lengths.tolist()}; "
                         "drop the empty sequences before packing")
    if lengths.max() > steps:
        raise ShapeError(f"pack_padded_sequence: a length of {lengths.max()} exceeds the input's {steps} "
                         "time steps")


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """A padded batch (T, B, *) (batch_first: (B, T, *)) and each sequence's length -> PackedSequence.

    With enforce_sorted the lengths must not increase along the batch; otherwise the batch is sorted
    (longest first, ties in their order) and the permutation kept to undo it on unpacking."""
    lengths = _as_numpy_ints(lengths)
    batch_dim = 0 if batch_first else 1
    _check_lengths(lengths, input.shape[1 - batch_dim], input.shape[batch_dim])
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise ShapeError(f"pack_padded_sequence: lengths {lengths.tolist()} must be sorted in decreasing "
                             "order when enforce_sorted=True; pass enforce_sorted=False to sort them here")
        sorted_indices = None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = _tensor(order, device=input.device)
        lengths = lengths[order]
        input = index_select(input, batch_dim, sorted_indices)
    if batch_first:
        input = input.transpose(0, 1)
    batch_sizes = (lengths[None, :] > np.arange(lengths[0])[:, None]).sum(axis=1)
    data = packed_rows(input, batch_sizes)
    return PackedSequence(data, _tensor(batch_sizes), sorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """PackedSequence -> (padded (T, B, *) or, batch_first, (B, T, *); lengths (B,) int64 on the CPU),
    in the batch's original order. T is the longest length, or total_length when given (at least that)."""
    batch_sizes = _as_numpy_ints(sequence.batch_sizes)
    longest = len(batch_sizes)
    if total_length is not None and total_length < longest:
        raise ValueError(f"pad_packed_sequence: total_length={total_length} is shorter than the longest "
                         f"sequence ({longest} steps)")
    padded = padded_rows(sequence.data, batch_sizes, total_length or longest, padding_value)
    lengths = (batch_sizes[None, :] > np.arange(batch_sizes[0])[:, None]).sum(axis=1)
    if sequence.unsorted_indices is not None:
        padded = index_select(padded, 1, sequence.unsorted_indices)
        lengths = lengths[_as_numpy_ints(sequence.unsorted_indices)]
    return (padded.transpose(0, 1) if batch_first else padded), _tensor(lengths)


def pack_sequence(sequences, enforce_sorted=True):
    """Sequences (L_i, *) -> PackedSequence: pad_sequence then pack_padded_sequence."""
    sequences = list(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The inverse of pad_sequence (right padding): a list of (L_i, *) views of the padded batch."""
    padded = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [padded[i, :length] for i, length in enumerate(_as_numpy_ints(lengths).tolist())]


def unpack_sequence(packed_sequences):
    """The inverse of pack_sequence: the list of sequences (L_i, *) in their original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
