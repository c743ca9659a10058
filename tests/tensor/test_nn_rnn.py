"""LSTM and GRU: the fused layer Functions against finite differences, the modules against
PyTorch on the same weights (outputs, final states and every gradient), names and errors."""
import numpy as np
import pytest

import tensor
import tensor.nn as nn
from tensor.autograd import gradcheck
from tensor.nn.functional.rnn import GRULayer, LSTMLayer

from helpers import make, to_numpy


def _arrays(rng, device, *shapes):
    return [make(rng.standard_normal(s) * 0.5, device, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_layer_gradcheck(reverse, device, rng):
    T, B, I, H = 4, 2, 3, 2
    args = _arrays(rng, device, (T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H), (4 * H,), (4 * H,))
    assert gradcheck(lambda *a: LSTMLayer.apply(*a, reverse), args)


@pytest.mark.parametrize("reverse", [False, True])
def test_gru_layer_gradcheck(reverse, device, rng):
    T, B, I, H = 4, 2, 3, 2
    args = _arrays(rng, device, (T, B, I), (B, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))
    assert gradcheck(lambda *a: GRULayer.apply(*a, reverse), args)


def test_layers_without_initial_state_or_bias(device, rng):
    x, w_ih, w_hh = _arrays(rng, device, (3, 2, 3), (8, 3), (8, 2))
    assert gradcheck(lambda x, a, b: LSTMLayer.apply(x, None, None, a, b, None, None, False), [x, w_ih, w_hh])
    g_ih, g_hh = _arrays(rng, device, (6, 3), (6, 2))
    assert gradcheck(lambda x, a, b: GRULayer.apply(x, None, a, b, None, None, True), [x, g_ih, g_hh])


CASES = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(batch_first=True, bias=False, num_layers=2),
    dict(bidirectional=True),
]


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("initial", ["zeros", "given", "unbatched"])
def test_matches_torch(kind, case, initial, device, rng):
    torch = pytest.importorskip("torch")
    theirs, ours = getattr(torch.nn, kind)(3, 4, **case).double(), getattr(nn, kind)(3, 4, **case).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    ours.load_state_dict({k: tensor.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    ours.to(device)
    states = (num := case.get("num_layers", 1) * (2 if case.get("bidirectional") else 1), 2, 4)
    shape = (2, 5, 3) if case.get("batch_first") else (5, 2, 3)
    if initial == "unbatched":
        shape, states = (5, 3), (num, 4)
    x = rng.standard_normal(shape)
    xo, xt = make(x, device, requires_grad=True), torch.tensor(x, requires_grad=True)
    hx_ours = hx_theirs = None
    if initial != "zeros":
        arrays = [rng.standard_normal(states) for _ in range(2 if kind == "LSTM" else 1)]
        hx_ours = [make(a, device, requires_grad=True) for a in arrays]
        hx_theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    pack = (lambda hs: tuple(hs)) if kind == "LSTM" else (lambda hs: hs[0])
    out, final = ours(xo, None if hx_ours is None else pack(hx_ours))
    expected, expected_final = theirs(xt, None if hx_theirs is None else pack(hx_theirs))
    final = final if isinstance(final, tuple) else (final,)
    expected_final = expected_final if isinstance(expected_final, tuple) else (expected_final,)
    np.testing.assert_allclose(to_numpy(out), expected.detach().numpy(), rtol=1e-7, atol=1e-10)
    for mine, ref in zip(final, expected_final):
        np.testing.assert_allclose(to_numpy(mine), ref.detach().numpy(), rtol=1e-7, atol=1e-10)
    g = rng.standard_normal(tuple(expected.shape))
    g_final = [rng.standard_normal(tuple(s.shape)) for s in expected_final]
    loss = (out * make(g, device)).sum() + sum((s * make(q, device)).sum() for s, q in zip(final, g_final))
    loss.backward()
    expected_loss = (expected * torch.tensor(g)).sum()
    (expected_loss + sum((s * torch.tensor(q)).sum() for s, q in zip(expected_final, g_final))).backward()
    np.testing.assert_allclose(to_numpy(xo.grad), xt.grad.numpy(), rtol=1e-6, atol=1e-9)
    for mine, ref in zip(hx_ours or [], hx_theirs or []):
        np.testing.assert_allclose(to_numpy(mine.grad), ref.grad.numpy(), rtol=1e-6, atol=1e-9)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(to_numpy(ours.get_parameter(name).grad), p.grad.numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=name)


def test_default_initialisation():
    lstm = nn.LSTM(3, 16, num_layers=2)
    assert [n for n, _ in lstm.named_parameters()][:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert tuple(lstm.weight_ih_l1.shape) == (64, 16)
    for p in lstm.parameters():
        assert np.abs(to_numpy(p)).max() <= 0.25  # uniform(-1/sqrt(hidden), 1/sqrt(hidden))


def test_dropout_between_layers_only_in_training(device, rng):
    gru = nn.GRU(3, 8, num_layers=2, dropout=0.5).to(device)
    x = make(rng.standard_normal((4, 2, 3)).astype(np.float32), device)
    gru.eval()
    np.testing.assert_array_equal(to_numpy(gru(x)[0]), to_numpy(gru(x)[0]))
    gru.train()
    assert not np.allclose(to_numpy(gru(x)[0]), to_numpy(gru(x)[0]))
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.LSTM(3, 4, dropout=0.2)


def test_errors(device):
    lstm = nn.LSTM(3, 4)
    with pytest.raises(tensor.ShapeError, match="input_size=3"):
        lstm(tensor.zeros(5, 2, 4))
    with pytest.raises(tensor.ShapeError, match=r"should be \(1, 2, 4\)"):
        lstm(tensor.zeros(5, 2, 3), (tensor.zeros(2, 2, 4), tensor.zeros(2, 2, 4)))
    with pytest.raises(TypeError, match="tuple"):
        lstm(tensor.zeros(5, 2, 3), tensor.zeros(1, 2, 4))
    with pytest.raises(tensor.DTypeError, match="float64"):
        lstm(tensor.zeros(5, 2, 3, dtype=tensor.float64))
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)  # proj_size itself is supported: tests/tensor/nn/test_lstm_proj.py
