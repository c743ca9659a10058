"""RNN, LSTM and GRU, and their cells, with PyTorch's arguments, parameter names (weight_ih_l0,
weight_hh_l0, bias_ih_l0, bias_hh_l0, LSTM's weight_hr_l0 with proj_size, ..._reverse; the cells'
weight_ih, weight_hh, bias_ih, bias_hh), gate orders and initialisation, so weights port from
PyTorch unchanged.

Each layer and direction is one fused Function over the whole sequence (functional/rnn.py); this
file stacks them: layers in turn, directions concatenated on the feature dim, dropout between
layers in training. A PackedSequence input runs as its padded, length-sorted batch with the
Functions' batch_sizes, so each sequence stops (or, in reverse, starts) at its own end. A cell is
the same Function run over a sequence of one step.
"""
from __future__ import annotations

import math
import warnings

from ..creation import empty
from ..errors import DTypeError, ShapeError
from ..ops.gather import index_select
from ..ops.join import cat, stack
from . import init
from .functional.dropout import dropout as _dropout
from .functional.rnn import GRULayer, LSTMLayer, RNNLayer
from .module import Module
from .parameter import Parameter
from .utils.rnn import PackedSequence, packed_rows, padded_rows


_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


class RNNBase(Module):
    """The base of RNN, LSTM and GRU, as PyTorch's: RNNBase(mode, input_size, hidden_size, ...) with mode
    'LSTM', 'GRU', 'RNN_TANH' or 'RNN_RELU' makes that mode's parameters; the subclasses run them."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode!r}; expected one of {', '.join(_GATES)}")
        self.mode = mode
        if not isinstance(input_size, int) or input_size <= 0:  # PyTorch refuses 0 features here (not in the cells)
            raise ValueError(f"{name}: input_size must be a positive int, got {input_size!r}")
        if not isinstance(hidden_size, int) or hidden_size <= 0 or not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{name}: hidden_size {hidden_size!r} and num_layers {num_layers!r} must be positive ints")
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(f"{name}: dropout must be a probability in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout acts between recurrent layers, so dropout={dropout} with num_layers=1 does nothing",
                stacklevel=2,
            )
        _check_proj_size(name, mode, proj_size, hidden_size)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gate_size, state_size = _GATES[mode] * hidden_size, self._state_sizes[0]
        factory = dict(device=device, dtype=dtype)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else state_size * self._directions
            for suffix in self._suffixes:
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(empty(gate_size, layer_input, **factory)))
                setattr(self, f"weight_hh_l{layer}{suffix}", Parameter(empty(gate_size, state_size, **factory)))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(empty(gate_size, **factory)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(empty(gate_size, **factory)))
                if proj_size:
                    setattr(self, f"weight_hr_l{layer}{suffix}", Parameter(empty(proj_size, hidden_size, **factory)))
        self.reset_parameters()

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    @property
    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def _state_sizes(self):
        """Each state's features: h has proj_size when projected (LSTM only), LSTM's c has hidden_size."""
        h = self.proj_size or self.hidden_size
        return (h, self.hidden_size) if self.mode == "LSTM" else (h,)

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _layer_weights(self, layer, suffix):
        """w_ih, w_hh, b_ih, b_hh (None without bias), then w_hr when projected."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else ("weight_ih", "weight_hh")
        weights = [getattr(self, f"{n}_l{layer}{suffix}") for n in names]
        weights = weights if self.bias else weights + [None, None]
        return weights + [getattr(self, f"weight_hr_l{layer}{suffix}")] if self.proj_size else weights

    def forward(self, input, hx=None):
        if type(self) is RNNBase:
            raise NotImplementedError("RNNBase has no forward of its own (as in PyTorch); use nn.RNN, nn.LSTM or "
                                      "nn.GRU for the mode's recurrence")
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        batched = self._check_input(input)
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        states = self._initial_states(hx, x.shape[1], batched)
        x, finals = self._run_layers(x, states)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        if not batched:
            x, finals = x.squeeze(1), [f.squeeze(1) for f in finals]
        return x, self._pack_states(finals)

    def _forward_packed(self, packed, hx):
        """A PackedSequence in, a PackedSequence out (same batch_sizes and indices), and final states
        in the batch's original order, each taken at its own sequence's end."""
        data, batch_sizes, sorted_indices, unsorted_indices = packed
        if data.dim() != 2:
            raise ShapeError(f"{type(self).__name__}: packed data must be 2-d (sum of lengths, input_size), "
                             f"got shape {tuple(data.shape)}")
        self._check_input(data)
        sizes = tuple(int(b) for b in batch_sizes.tolist())
        states = self._initial_states(hx, sizes[0], True)
        if sorted_indices is not None:  # hx comes in the caller's order; the layers run in sorted order
            states = [index_select(s, 1, sorted_indices) for s in states]
        x, finals = self._run_layers(padded_rows(data, sizes), states, sizes)
        if unsorted_indices is not None:
            finals = [index_select(f, 1, unsorted_indices) for f in finals]
        output = PackedSequence(packed_rows(x, sizes), batch_sizes, sorted_indices, unsorted_indices)
        return output, self._pack_states(finals)

    def _run_layers(self, x, states, batch_sizes=None):
        """Every layer and direction over x (T, B, I) from `states` (a list, empty for zeros) ->
        (output (T, B, D * H), final states each (num_layers * D, B, H)); H is proj_size for the output
        and h when projected. batch_sizes: see functional/rnn.py."""
        finals = [[] for _ in range(self._state_count)]  # each direction's last state, per layer
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes):
                index = layer * self._directions + direction
                initial = [s[index] for s in states] if states else [None] * self._state_count
                weights = self._layer_weights(layer, suffix)
                out, *last = self._run_layer(x, initial, weights, direction == 1, batch_sizes)
                outputs.append(out)
                for bucket, state in zip(finals, last):
                    bucket.append(state)
            x = outputs[0] if len(outputs) == 1 else cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout)
        return x, [stack(bucket, dim=0) for bucket in finals]

    def _check_input(self, input):
        name = type(self).__name__
        if input.dim() not in (2, 3):
            raise ShapeError(
                f"{name}: expected a 3-d (batched) or 2-d (unbatched) input, got shape {tuple(input.shape)}"
            )
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {input.shape[-1]} features, expected input_size={self.input_size}")
        if input.dtype != self.weight_ih_l0.dtype:
            raise DTypeError(
                f"{name}: input dtype {input.dtype} differs from the weights' {self.weight_ih_l0.dtype}; convert one"
            )
        if not input.data.size:
            _refuse_empty_sequence(name, input, 1 if self.batch_first and input.dim() == 3 else 0)
        return input.dim() == 3

    def _initial_states(self, hx, batch, batched):
        """The initial state tensors as a list (empty for zeros), each (layers * directions, B, _state_sizes)."""
        if hx is None:
            return []
        states = self._unpack_states(hx)
        result = []
        for index, (s, size) in enumerate(zip(states, self._state_sizes)):
            expected = (self.num_layers * self._directions, batch, size)
            s = s if batched else s.unsqueeze(1)
            if tuple(s.shape) != expected:
                got, want = (s.shape, expected) if batched else (s.squeeze(1).shape, (expected[0], size))
                size_name = "proj_size" if index == 0 and self.proj_size else "hidden_size"
                raise ShapeError(f"{type(self).__name__}: initial state {'hc'[index]}_0 of shape {tuple(got)} should "
                                 f"be {want} (num_layers * num_directions, batch, {size_name})")
            result.append(s)
        return result

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN, h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh) with act 'tanh' or 'relu': input
    (T, N, input_size) (batch_first: (N, T, ...)), optional h_0 (num_layers * num_directions, N,
    hidden_size) -> output (T, N, D * hidden_size), h_n."""

    _state_count = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, **kwargs):
        _refuse_proj_size(kwargs)
        self.nonlinearity = _check_nonlinearity(nonlinearity)
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional, device=device,
                         dtype=dtype, **kwargs)

    def _run_layer(self, x, initial, weights, reverse, batch_sizes):
        return RNNLayer.apply(x, initial[0], *weights, reverse, self.nonlinearity == "relu", batch_sizes)

    def _unpack_states(self, hx):
        return [hx]

    def _pack_states(self, finals):
        return finals[0]


def _refuse_empty_sequence(name, input, time_dim):
    """PyTorch runs a recurrent layer on an empty batch but refuses a sequence of length 0."""
    if input.shape[time_dim] == 0:
        raise ShapeError(f"{name}: input of shape {tuple(input.shape)} has sequence length 0 (dim {time_dim}); "
                         "a recurrent layer needs at least one time step, as in PyTorch: skip the call for an "
                         "empty sequence, or pack variable lengths with pack_padded_sequence")


def _check_proj_size(name, mode, proj_size, hidden_size):
    """PyTorch's checks and messages, with the values."""
    if not isinstance(proj_size, int) or isinstance(proj_size, bool):
        raise TypeError(f"{name}: proj_size must be an int, got {type(proj_size).__name__} {proj_size!r}")
    if proj_size < 0:
        raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections, "
                         f"got {proj_size}")
    if proj_size >= hidden_size:
        raise ValueError(f"{name}: proj_size has to be smaller than hidden_size, got {proj_size} >= {hidden_size}")
    if proj_size and mode != "LSTM":
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")


def _refuse_proj_size(kwargs):
    """RNN and GRU refuse proj_size, even 0, as PyTorch's do."""
    if "proj_size" in kwargs:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity {nonlinearity!r}. Select from 'tanh' or 'relu'.")
    return nonlinearity


class LSTM(RNNBase):
    """Long short-term memory: input (T, N, input_size) (batch_first: (N, T, ...)), optional
    (h_0, c_0) each (num_layers * num_directions, N, hidden_size) -> output (T, N, D * hidden_size),
    (h_n, c_n). Gates i, f, g, o stacked in that order in weight_ih_l{k} (4 * hidden_size rows).

    proj_size P > 0 (below hidden_size): each step's h is projected by weight_hr_l{k} (P, hidden_size),
    so h_0, h_n and the output have P features (weight_hh_l{k} is (4 * hidden_size, P), the next
    layer's input D * P); c_0 and c_n keep hidden_size."""

    _state_count = 2

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    def _run_layer(self, x, initial, weights, reverse, batch_sizes):
        # weight_hr, when projected, goes after batch_sizes: LSTMLayer's optional last argument
        return LSTMLayer.apply(x, initial[0], initial[1], *weights[:4], reverse, batch_sizes, *weights[4:])

    def _unpack_states(self, hx):
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError("LSTM: hx must be a tuple (h_0, c_0)")
        return list(hx)

    def _pack_states(self, finals):
        return tuple(finals)


class GRU(RNNBase):
    """Gated recurrent unit: input (T, N, input_size), optional h_0 (num_layers * num_directions, N,
    hidden_size) -> output (T, N, D * hidden_size), h_n. Gates r, z, n (3 * hidden_size rows)."""

    _state_count = 1

    def __init__(self, *args, **kwargs):
        _refuse_proj_size(kwargs)
        super().__init__("GRU", *args, **kwargs)

    def _run_layer(self, x, initial, weights, reverse, batch_sizes):
        return GRULayer.apply(x, initial[0], *weights, reverse, batch_sizes)

    def _unpack_states(self, hx):
        return [hx]

    def _pack_states(self, finals):
        return finals[0]



class RNNCellBase(Module):
    """One recurrent step: parameters weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh (G*H,),
    uniform(-1/sqrt(H), 1/sqrt(H)) like PyTorch. Input (N, input_size) or unbatched (input_size,);
    states (N, hidden_size) or (hidden_size,), zeros when not given."""

    _gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"{name}: hidden_size must be a positive int, got {hidden_size!r}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gate_size, factory = self._gates * hidden_size, dict(device=device, dtype=dtype)
        self.weight_ih = Parameter(empty(gate_size, input_size, **factory))
        self.weight_hh = Parameter(empty(gate_size, hidden_size, **factory))
        if bias:
            self.bias_ih = Parameter(empty(gate_size, **factory))
            self.bias_hh = Parameter(empty(gate_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _weights(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def _as_sequence(self, input):
        """input as a one-step, batched sequence (1, N, I) for the layer Functions, and whether it was batched."""
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ShapeError(f"{name}: expected a 2-d (batched) or 1-d (unbatched) input, got shape "
                             f"{tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {input.shape[-1]} features, expected input_size={self.input_size}")
        if input.dtype != self.weight_ih.dtype:
            raise DTypeError(f"{name}: input dtype {input.dtype} differs from the weights' {self.weight_ih.dtype}; "
                             "convert one")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        return x.unsqueeze(0), batched

    def _as_state(self, state, batch, batched):
        """A given state as (N, H), checked against the input's batch; None stays None (zeros)."""
        if state is None:
            return None
        expected = (batch, self.hidden_size) if batched else (self.hidden_size,)
        if tuple(state.shape) != expected:
            raise ShapeError(f"{type(self).__name__}: state of shape {tuple(state.shape)} should be {expected} "
                             "(batch, hidden_size), or (hidden_size,) for an unbatched input")
        return state if batched else state.unsqueeze(0)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """One Elman step: input (N, input_size), optional h (N, hidden_size) -> h' (N, hidden_size),
    h' = act(W_ih x + b_ih + W_hh h + b_hh), act 'tanh' or 'relu'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        self.nonlinearity = _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        x, batched = self._as_sequence(input)
        h0 = self._as_state(hx, x.shape[1], batched)
        _, h = RNNLayer.apply(x, h0, *self._weights(), False, self.nonlinearity == "relu")
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step: input (N, input_size), optional (h, c) each (N, hidden_size) -> (h', c').
    Gates i, f, g, o stacked in that order in weight_ih (4 * hidden_size rows)."""

    _gates = 4

    def forward(self, input, hx=None):
        x, batched = self._as_sequence(input)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTMCell: hx must be a tuple (h_0, c_0)")
        h0, c0 = (None, None) if hx is None else (self._as_state(s, x.shape[1], batched) for s in hx)
        _, h, c = LSTMLayer.apply(x, h0, c0, *self._weights(), False)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step: input (N, input_size), optional h (N, hidden_size) -> h' (N, hidden_size).
    Gates r, z, n (3 * hidden_size rows)."""

    _gates = 3

    def forward(self, input, hx=None):
        x, batched = self._as_sequence(input)
        h0 = self._as_state(hx, x.shape[1], batched)
        _, h = GRULayer.apply(x, h0, *self._weights(), False)
        return h if batched else h.squeeze(0)
