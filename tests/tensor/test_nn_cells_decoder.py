"""RNNCell / LSTMCell / GRUCell, the Elman RNN, TransformerDecoderLayer / TransformerDecoder and
Transformer: state-dict names, outputs, final states and every gradient against PyTorch on the same
weights (float64), masks, and the errors for inputs of the wrong shape."""
import numpy as np
import pytest

import tensor
from tensor.autograd import gradcheck
from tensor.nn.functional.rnn import RNNLayer
from tensor.nn.normalization import LayerNorm
from tensor.nn.rnn import RNN, GRUCell, LSTMCell, RNNCell
from tensor.nn.transformer import Transformer, TransformerDecoder, TransformerDecoderLayer

from helpers import make, to_numpy

# Imported from their modules, not tensor.nn, until tensor/nn/__init__.py exports them.
OURS = dict(RNNCell=RNNCell, LSTMCell=LSTMCell, GRUCell=GRUCell, RNN=RNN, LayerNorm=LayerNorm,
            TransformerDecoder=TransformerDecoder, TransformerDecoderLayer=TransformerDecoderLayer)


def _port(theirs, ours, device):
    """Copy torch's weights into ours after checking the state-dict names agree; ours in float64 on device."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: tensor.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    return ours.to(device)


def _pair(rng, device, shape):
    """The same random float64 array as (ours, theirs) leaf tensors that require grad."""
    import torch

    a = rng.standard_normal(shape)
    return make(a, device, requires_grad=True), torch.tensor(a, requires_grad=True)


def _backward_both(rng, device, outputs, expected):
    """Backpropagate the same random weighting of every output through both graphs."""
    import torch

    loss, expected_loss = 0, 0
    for mine, ref in zip(outputs, expected):
        g = rng.standard_normal(tuple(ref.shape))
        loss = loss + (mine * make(g, device)).sum()
        expected_loss = expected_loss + (ref * torch.tensor(g)).sum()
    loss.backward()
    expected_loss.backward()


def _assert_close(mine, ref, what, rtol=1e-7, atol=1e-9):
    np.testing.assert_allclose(to_numpy(mine), ref.detach().numpy(), rtol=rtol, atol=atol, err_msg=what)


def _assert_grads(ours, theirs, leaves):
    for mine, ref in leaves:
        _assert_close(mine.grad, ref.grad, "input grad", rtol=1e-6)
    for name, p in theirs.named_parameters():
        _assert_close(ours.get_parameter(name).grad, p.grad, name, rtol=1e-6)


# ------------------------------------------------------------------------------------------ cells
CELL_CASES = [
    ("RNNCell", dict()),
    ("RNNCell", dict(nonlinearity="relu", bias=False)),
    ("LSTMCell", dict()),
    ("LSTMCell", dict(bias=False)),
    ("GRUCell", dict()),
    ("GRUCell", dict(bias=False)),
]


@pytest.mark.parametrize("kind, case", CELL_CASES, ids=str)
@pytest.mark.parametrize("initial", ["zeros", "given", "unbatched"])
def test_cells_match_torch(kind, case, initial, device, rng):
    torch = pytest.importorskip("torch")
    theirs = getattr(torch.nn, kind)(3, 4, **case).double()
    ours = _port(theirs, OURS[kind](3, 4, **case).double(), device)
    assert repr(ours) == repr(theirs)
    batch = () if initial == "unbatched" else (2,)
    xo, xt = _pair(rng, device, batch + (3,))
    count = 2 if kind == "LSTMCell" else 1
    states = [] if initial == "zeros" else [_pair(rng, device, batch + (4,)) for _ in range(count)]
    pack = tuple if kind == "LSTMCell" else (lambda s: s[0])
    out = ours(xo, pack([o for o, _ in states]) if states else None)
    expected = theirs(xt, pack([t for _, t in states]) if states else None)
    out, expected = (out, expected) if kind == "LSTMCell" else ((out,), (expected,))
    for mine, ref in zip(out, expected):
        assert tuple(mine.shape) == tuple(ref.shape)
        _assert_close(mine, ref, "state")
    _backward_both(rng, device, out, expected)
    _assert_grads(ours, theirs, [(xo, xt)] + states)


def test_cell_initialisation_and_names():
    cell = LSTMCell(3, 16)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert tuple(cell.weight_ih.shape) == (64, 3) and tuple(GRUCell(3, 16).weight_hh.shape) == (48, 16)
    for p in cell.parameters():
        assert np.abs(to_numpy(p)).max() <= 0.25  # uniform(-1/sqrt(hidden), 1/sqrt(hidden))
    assert RNNCell(3, 4, bias=False).bias_ih is None


def test_cell_errors():
    cell = LSTMCell(3, 4)
    with pytest.raises(tensor.ShapeError, match="2-d .* or 1-d"):
        cell(tensor.zeros(5, 2, 3))
    with pytest.raises(tensor.ShapeError, match="input_size=3"):
        cell(tensor.zeros(2, 5))
    with pytest.raises(tensor.ShapeError, match=r"should be \(2, 4\)"):
        cell(tensor.zeros(2, 3), (tensor.zeros(3, 4), tensor.zeros(3, 4)))
    with pytest.raises(tensor.ShapeError, match=r"should be \(4,\)"):
        GRUCell(3, 4)(tensor.zeros(3), tensor.zeros(1, 4))
    with pytest.raises(TypeError, match="tuple"):
        cell(tensor.zeros(2, 3), tensor.zeros(2, 4))
    with pytest.raises(tensor.DTypeError, match="float64"):
        RNNCell(3, 4)(tensor.zeros(2, 3, dtype=tensor.float64))
    with pytest.raises(ValueError, match="nonlinearity 'sigmoid'"):
        RNNCell(3, 4, nonlinearity="sigmoid")


# ---------------------------------------------------------------------------------------- Elman RNN
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_rnn_layer_gradcheck(reverse, relu, device, rng):
    T, B, I, H = 4, 2, 3, 2
    shapes = [(T, B, I), (B, H), (H, I), (H, H), (H,), (H,)]
    args = [make(rng.standard_normal(s) * 0.5, device, requires_grad=True) for s in shapes]
    assert gradcheck(lambda *a: RNNLayer.apply(*a, reverse, relu), args)


RNN_CASES = [
    dict(),
    dict(num_layers=2, nonlinearity="relu", bidirectional=True),
    dict(batch_first=True, bias=False, num_layers=2),
]


@pytest.mark.parametrize("case", RNN_CASES, ids=str)
@pytest.mark.parametrize("initial", ["zeros", "given", "unbatched"])
def test_rnn_matches_torch(case, initial, device, rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.RNN(3, 4, **case).double()
    ours = _port(theirs, RNN(3, 4, **case).double(), device)
    assert repr(ours) == repr(theirs)
    layers = case.get("num_layers", 1) * (2 if case.get("bidirectional") else 1)
    shape, state = ((2, 5, 3) if case.get("batch_first") else (5, 2, 3)), (layers, 2, 4)
    if initial == "unbatched":
        shape, state = (5, 3), (layers, 4)
    xo, xt = _pair(rng, device, shape)
    states = [] if initial == "zeros" else [_pair(rng, device, state)]
    out = ours(xo, states[0][0] if states else None)
    expected = theirs(xt, states[0][1] if states else None)
    for mine, ref in zip(out, expected):
        _assert_close(mine, ref, "output / h_n")
    _backward_both(rng, device, out, expected)
    _assert_grads(ours, theirs, [(xo, xt)] + states)


def test_rnn_arguments_and_errors():
    rnn = RNN(3, 4, 2, "relu")  # nonlinearity is PyTorch's fourth positional argument
    assert rnn.nonlinearity == "relu" and rnn.num_layers == 2 and rnn.bias
    with pytest.raises(ValueError, match="nonlinearity 'sigmoid'"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(tensor.ShapeError, match="input_size=3"):
        rnn(tensor.zeros(5, 2, 4))
    with pytest.raises(tensor.ShapeError, match=r"should be \(2, 2, 4\)"):
        rnn(tensor.zeros(5, 2, 3), tensor.zeros(1, 2, 4))


# ------------------------------------------------------------------------------------ decoder
DECODER_CASES = [
    dict(),
    dict(norm_first=True, activation="gelu", batch_first=True),
    dict(bias=False),
]


def _decoder(classes, case):
    """Two decoder layers and a final norm, from `classes` (OURS or vars(torch.nn))."""
    layer = classes["TransformerDecoderLayer"](8, 2, 16, dropout=0.0, **case).double()
    return classes["TransformerDecoder"](layer, 2, norm=classes["LayerNorm"](8).double())


def _masks(kind, device, T, S, N):
    """(ours, theirs) keyword masks for the decoder: causal tgt, key padding, or an explicit memory mask."""
    import torch

    if kind == "causal":
        return (dict(tgt_mask=Transformer.generate_square_subsequent_mask(T, device=device, dtype=tensor.float64)),
                dict(tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)))
    if kind == "padding":
        tgt_pad, mem_pad = np.zeros((N, T), bool), np.zeros((N, S), bool)
        tgt_pad[0, T - 2 :], mem_pad[1, S - 3 :] = True, True
        names = ("tgt_key_padding_mask", "memory_key_padding_mask")
        return ({n: make(m, device) for n, m in zip(names, (tgt_pad, mem_pad))},
                {n: torch.tensor(m) for n, m in zip(names, (tgt_pad, mem_pad))})
    if kind == "memory_mask":
        blocked = np.triu(np.ones((T, S), bool), k=2)
        return dict(memory_mask=make(blocked, device)), dict(memory_mask=torch.tensor(blocked))
    return {}, {}


@pytest.mark.parametrize("case", DECODER_CASES, ids=str)
@pytest.mark.parametrize("mask", ["none", "causal", "padding", "memory_mask"])
def test_decoder_matches_torch(case, mask, device, rng):
    torch = pytest.importorskip("torch")
    theirs = _decoder(vars(torch.nn), case)
    ours = _port(theirs, _decoder(OURS, case), device)
    T, S, N = 5, 6, 3
    tgt_shape, mem_shape = ((N, T, 8), (N, S, 8)) if case.get("batch_first") else ((T, N, 8), (S, N, 8))
    (to, tt), (mo, mt) = _pair(rng, device, tgt_shape), _pair(rng, device, mem_shape)
    ours_kw, theirs_kw = _masks(mask, device, T, S, N)
    y, expected = ours(to, mo, **ours_kw), theirs(tt, mt, **theirs_kw)
    _assert_close(y, expected, "output")
    _backward_both(rng, device, [y], [expected])
    _assert_grads(ours, theirs, [(to, tt), (mo, mt)])


def test_decoder_layer_unbatched_and_gradcheck(device, rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, norm_first=True).double()
    ours = _port(theirs, TransformerDecoderLayer(4, 2, 6, dropout=0.0, norm_first=True).double(), device)
    (to, tt), (mo, mt) = _pair(rng, device, (3, 4)), _pair(rng, device, (2, 4))
    mask = Transformer.generate_square_subsequent_mask(3, device=device, dtype=tensor.float64)
    expected = theirs(tt, mt, tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(3, dtype=torch.float64),
                      tgt_is_causal=True)
    _assert_close(ours(to, mo, tgt_mask=mask, tgt_is_causal=True), expected, "unbatched output")
    assert gradcheck(lambda t, m: ours(t, m, tgt_mask=mask, tgt_is_causal=True), [to, mo])


def test_decoder_dropout_only_in_training(device, rng):
    layer = TransformerDecoderLayer(8, 2, 16, dropout=0.5).to(device)
    tgt = make(rng.standard_normal((4, 2, 8)).astype(np.float32), device)
    memory = make(rng.standard_normal((5, 2, 8)).astype(np.float32), device)
    layer.eval()
    np.testing.assert_array_equal(to_numpy(layer(tgt, memory)), to_numpy(layer(tgt, memory)))
    layer.train()
    assert not np.allclose(to_numpy(layer(tgt, memory)), to_numpy(layer(tgt, memory)))


def test_decoder_errors():
    layer = TransformerDecoderLayer(8, 2, 16)
    with pytest.raises(tensor.ShapeError, match=r"tgt \(4, 2, 8\) and memory \(5, 3, 8\)"):
        layer(tensor.zeros(4, 2, 8), tensor.zeros(5, 3, 8))
    with pytest.raises(tensor.ShapeError, match="d_model = 8"):
        layer(tensor.zeros(4, 2, 6), tensor.zeros(5, 2, 6))
    with pytest.raises(tensor.ShapeError, match="memory"):
        layer(tensor.zeros(4, 2, 8), tensor.zeros(5, 8))
    with pytest.raises(ValueError, match="activation 'tanh'"):
        TransformerDecoderLayer(8, 2, activation="tanh")
    decoder = TransformerDecoder(layer, 3)
    assert len({id(m.linear1.weight) for m in decoder.layers} | {id(layer.linear1.weight)}) == 4


# ---------------------------------------------------------------------------------------- Transformer
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # torch's note on its inference fast path
@pytest.mark.parametrize("case", [dict(), dict(batch_first=True, norm_first=True)], ids=str)
def test_transformer_matches_torch(case, device, rng):
    torch = pytest.importorskip("torch")
    args = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16, dropout=0.0)
    theirs = torch.nn.Transformer(**args, **case).double()
    ours = _port(theirs, Transformer(**args, **case).double(), device)
    S, T, N = 6, 4, 2
    src_shape, tgt_shape = ((N, S, 8), (N, T, 8)) if case.get("batch_first") else ((S, N, 8), (T, N, 8))
    (so, st), (to, tt) = _pair(rng, device, src_shape), _pair(rng, device, tgt_shape)
    padding = np.zeros((N, S), bool)
    padding[1, S - 2 :] = True
    mask = Transformer.generate_square_subsequent_mask(T, device=device, dtype=tensor.float64)
    y = ours(so, to, tgt_mask=mask, src_key_padding_mask=make(padding, device),
             memory_key_padding_mask=make(padding, device))
    expected = theirs(st, tt, tgt_mask=theirs.generate_square_subsequent_mask(T, dtype=torch.float64),
                      src_key_padding_mask=torch.tensor(padding), memory_key_padding_mask=torch.tensor(padding))
    _assert_close(y, expected, "output")
    _backward_both(rng, device, [y], [expected])
    _assert_grads(ours, theirs, [(so, st), (to, tt)])


def test_transformer_init_and_errors():
    model = Transformer(8, 2, 1, 1, 16)
    bound = np.sqrt(6 / (8 + 16))  # xavier-uniform on linear1 (16, 8)
    assert np.abs(to_numpy(model.encoder.layers[0].linear1.weight)).max() <= bound
    assert isinstance(model.encoder.norm, LayerNorm) and isinstance(model.decoder.norm, LayerNorm)
    with pytest.raises(tensor.ShapeError, match="batch of src"):
        model(tensor.zeros(5, 2, 8), tensor.zeros(4, 3, 8))
    with pytest.raises(tensor.ShapeError, match="d_model = 8"):
        model(tensor.zeros(5, 2, 6), tensor.zeros(4, 2, 6))
