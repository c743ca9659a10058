"""Packed sequences: nn.utils.rnn's padding and packing against PyTorch (values and gradients), the
layer Functions' batch_sizes against finite differences, and RNN / LSTM / GRU on packed input against
PyTorch on the same weights (outputs, final states, input, state and weight gradients)."""
import numpy as np
import pytest

import tensor
import tensor.nn as nn
from tensor.autograd import gradcheck
from tensor.nn.functional.rnn import GRULayer, LSTMLayer, RNNLayer
from tensor.nn.utils import rnn as rnn_utils

from helpers import make, to_numpy

torch = pytest.importorskip("torch")
trnn = torch.nn.utils.rnn

LENGTHS = [3, 5, 1, 5, 2]  # unsorted, with a tie: exercises enforce_sorted=False


def _sequences(rng, device, lengths, features=3):
    arrays = [rng.standard_normal((n, features)) for n in lengths]
    return [make(a, device, requires_grad=True) for a in arrays], [torch.tensor(a, requires_grad=True) for a in arrays]


def _close(mine, theirs, **kwargs):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(to_numpy(mine), theirs, rtol=1e-7, atol=1e-10, **kwargs)


def _backward_both(mine, theirs, rng):
    """Backpropagate the same random weighting of `mine` and `theirs` (lists of matching tensors)."""
    weights = [rng.standard_normal(tuple(t.shape)) for t in theirs]
    sum(((m * make(w, m.device)).sum() for m, w in zip(mine, weights)), start=0).backward()
    sum((t * torch.tensor(w)).sum() for t, w in zip(theirs, weights)).backward()


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(batch_first, padding_side, device, rng):
    mine, theirs = _sequences(rng, device, LENGTHS)
    out = rnn_utils.pad_sequence(mine, batch_first=batch_first, padding_value=-1.5, padding_side=padding_side)
    expected = trnn.pad_sequence(theirs, batch_first=batch_first, padding_value=-1.5, padding_side=padding_side)
    _close(out, expected)
    _backward_both([out], [expected], rng)
    for m, t in zip(mine, theirs):
        _close(m.grad, t.grad)


@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_and_unpack_match_torch(enforce_sorted, batch_first, device, rng):
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    mine, theirs = _sequences(rng, device, lengths)
    padded = rnn_utils.pad_sequence(mine, batch_first=batch_first)
    padded_t = trnn.pad_sequence(theirs, batch_first=batch_first)
    packed = rnn_utils.pack_padded_sequence(padded, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    packed_t = trnn.pack_padded_sequence(padded_t, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    _close(packed.data, packed_t.data)
    assert packed.batch_sizes.tolist() == packed_t.batch_sizes.tolist()
    for index, index_t in [(packed.sorted_indices, packed_t.sorted_indices),
                           (packed.unsorted_indices, packed_t.unsorted_indices)]:
        assert (index is None) == (index_t is None)
        if index is not None:  # torch's sort need not keep ties in order: compare the lengths it gives
            assert np.array(lengths)[index.tolist()].tolist() == np.array(lengths)[index_t.tolist()].tolist()
    unpacked, out_lengths = rnn_utils.pad_packed_sequence(packed, batch_first=batch_first, padding_value=2.0,
                                                          total_length=7)
    unpacked_t, _ = trnn.pad_packed_sequence(packed_t, batch_first=batch_first, padding_value=2.0, total_length=7)
    assert out_lengths.tolist() == lengths
    _close(unpacked, unpacked_t)
    _backward_both([unpacked], [unpacked_t], rng)
    for m, t in zip(mine, theirs):
        _close(m.grad, t.grad)


def test_pack_sequence_round_trip(device, rng):
    mine, _ = _sequences(rng, device, LENGTHS)
    packed = rnn_utils.pack_sequence(mine, enforce_sorted=False)
    assert isinstance(packed, rnn_utils.PackedSequence) and packed.batch_sizes.tolist() == [5, 4, 3, 2, 2]
    for original, back in zip(mine, rnn_utils.unpack_sequence(packed)):
        _close(back, to_numpy(original))
    padded, lengths = rnn_utils.pad_packed_sequence(packed)
    assert tuple(padded.shape) == (5, 5, 3) and lengths.tolist() == LENGTHS


def test_packing_errors(device):
    padded = tensor.zeros(4, 3, 2, device=device)
    with pytest.raises(RuntimeError, match="decreasing order"):
        rnn_utils.pack_padded_sequence(padded, [2, 4, 1])
    with pytest.raises(RuntimeError, match="greater than 0"):
        rnn_utils.pack_padded_sequence(padded, [3, 2, 0])
    with pytest.raises(RuntimeError, match="exceeds"):
        rnn_utils.pack_padded_sequence(padded, [5, 2, 1])
    with pytest.raises(RuntimeError, match="batch size 3"):
        rnn_utils.pack_padded_sequence(padded, [2, 1])
    packed = rnn_utils.pack_padded_sequence(padded, [4, 2, 1])
    with pytest.raises(ValueError, match="total_length=3"):
        rnn_utils.pad_packed_sequence(packed, total_length=3)
    with pytest.raises(ValueError, match="padding_side"):
        rnn_utils.pad_sequence([padded[0]], padding_side="middle")


@pytest.mark.parametrize("reverse", [False, True])
def test_layer_functions_with_batch_sizes_gradcheck(reverse, device, rng):
    T, B, I, H = 4, 3, 2, 2
    sizes = (3, 2, 2, 1)

    def arrays(*shapes):
        return [make(rng.standard_normal(s) * 0.5, device, requires_grad=True) for s in shapes]

    lstm = arrays((T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,))
    assert gradcheck(lambda *a: LSTMLayer.apply(*a, reverse, sizes), lstm)
    gru = arrays((T, B, I), (B, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))
    assert gradcheck(lambda *a: GRULayer.apply(*a, reverse, sizes), gru)
    elman = arrays((T, B, I), (B, H), (H, I), (H, H), (H,), (H,))
    assert gradcheck(lambda *a: RNNLayer.apply(*a, reverse, False, sizes), elman)


CASES = [
    dict(kind="LSTM"),
    dict(kind="GRU", batch_first=True),
    dict(kind="RNN", nonlinearity="relu"),
    dict(kind="LSTM", num_layers=2, bidirectional=True),
    dict(kind="GRU", num_layers=2, bidirectional=True, bias=False),
    dict(kind="RNN", bidirectional=True, batch_first=True),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("given_state", [False, True])
def test_recurrent_layers_on_packed_input_match_torch(case, enforce_sorted, given_state, device, rng):
    case = dict(case)
    kind, batch_first = case.pop("kind"), case.get("batch_first", False)
    theirs = getattr(torch.nn, kind)(3, 4, **case).double()
    ours = getattr(nn, kind)(3, 4, **case).double()
    ours.load_state_dict({k: tensor.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    ours.to(device)
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    mine, their_seqs = _sequences(rng, device, lengths)
    packed = rnn_utils.pack_padded_sequence(rnn_utils.pad_sequence(mine, batch_first=batch_first), lengths,
                                            batch_first=batch_first, enforce_sorted=enforce_sorted)
    packed_t = trnn.pack_padded_sequence(trnn.pad_sequence(their_seqs, batch_first=batch_first), lengths,
                                         batch_first=batch_first, enforce_sorted=enforce_sorted)
    num_states = case.get("num_layers", 1) * (2 if case.get("bidirectional") else 1)
    hx, hx_t = None, None
    if given_state:
        arrays = [rng.standard_normal((num_states, len(lengths), 4)) for _ in range(2 if kind == "LSTM" else 1)]
        hx = [make(a, device, requires_grad=True) for a in arrays]
        hx_t = [torch.tensor(a, requires_grad=True) for a in arrays]
    pack = tuple if kind == "LSTM" else (lambda states: states[0])
    out, final = ours(packed, None if hx is None else pack(hx))
    out_t, final_t = theirs(packed_t, None if hx_t is None else pack(hx_t))
    assert isinstance(out, rnn_utils.PackedSequence)
    assert out.batch_sizes.tolist() == out_t.batch_sizes.tolist()
    _close(out.data, out_t.data)
    final, final_t = (list(final), list(final_t)) if kind == "LSTM" else ([final], [final_t])
    for state, state_t in zip(final, final_t):
        _close(state, state_t)
    _backward_both([out.data] + final, [out_t.data] + final_t, rng)
    for m, t in zip(mine + (hx or []), their_seqs + (hx_t or [])):
        _close(m.grad, t.grad)
    for name, p in theirs.named_parameters():
        _close(ours.get_parameter(name).grad, p.grad, err_msg=name)


def test_packed_output_unpacks_in_the_original_order(device, rng):
    gru = nn.GRU(3, 4).double().to(device)
    mine, _ = _sequences(rng, device, LENGTHS)
    out, h_n = gru(rnn_utils.pack_sequence(mine, enforce_sorted=False))
    padded, lengths = rnn_utils.pad_packed_sequence(out)
    for column, (seq, n) in enumerate(zip(mine, LENGTHS)):  # each alone gives the same outputs and last state
        alone, h_alone = gru(seq)
        _close(padded[:n, column], to_numpy(alone))
        assert np.all(to_numpy(padded[n:, column]) == 0)
        _close(h_n[0, column], to_numpy(h_alone[0]))
