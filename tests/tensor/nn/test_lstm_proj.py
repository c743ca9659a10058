"""LSTM with proj_size: the layer Function against finite differences (float64), the module against
PyTorch on the same weights (outputs, (h_n, c_n), input, state and parameter gradients, once and
twice differentiated) over layers, directions, batch_first, padded / packed / unbatched input and
given / zero initial states; state_dict layout and errors as PyTorch's."""
import numpy as np
import pytest

import tensor
import tensor.nn as nn
from tensor.autograd import gradgradcheck
from tensor.nn.functional.rnn import LSTMLayer
from tensor.nn.utils import rnn as rnn_utils
from torch_compare import gradcheck_float64, make, to_numpy

INPUT, HIDDEN, PROJ = 3, 5, 2
LENGTHS = [3, 5, 1, 5, 2]  # unsorted, with a tie: packs with sorted_indices


def _close(mine, theirs, name=""):
    np.testing.assert_allclose(to_numpy(mine), theirs.detach().numpy(), rtol=1e-7, atol=1e-10, err_msg=name)


def _twins(torch, device, **case):
    """A PyTorch LSTM and ours with the same float64 weights, ours on `device`."""
    theirs = torch.nn.LSTM(INPUT, HIDDEN, proj_size=PROJ, **case).double()
    ours = nn.LSTM(INPUT, HIDDEN, proj_size=PROJ, **case).double()
    ours.load_state_dict({k: tensor.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    return theirs, ours.to(device)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("sizes", [None, (3, 2, 2, 1)], ids=["padded", "packed"])
def test_layer_gradcheck(reverse, sizes, device, rng):
    T, B, I, H, P = 4, 3, 2, 3, 2
    shapes = [(T, B, I), (B, P), (B, H), (4 * H, I), (4 * H, P), (4 * H,), (4 * H,), (P, H)]
    arrays = [rng.standard_normal(s) * 0.5 for s in shapes]
    gradcheck_float64(lambda *a: LSTMLayer.apply(*a[:7], reverse, sizes, a[7]), arrays, device)


def test_layer_without_states_or_bias_gradcheck(device, rng):
    arrays = [rng.standard_normal(s) * 0.5 for s in [(3, 2, 3), (12, 3), (12, 2), (2, 3)]]
    gradcheck_float64(lambda x, w_ih, w_hh, w_hr: LSTMLayer.apply(x, None, None, w_ih, w_hh, None, None, True,
                                                                  None, w_hr), arrays, device)


def _run_both(torch, ours, theirs, x, layout, batch_first, hx_arrays, device):
    """Both models on the same input laid out as `layout`; -> (ours, theirs) each as (output, h_n, c_n),
    and the leaves whose gradients to compare, ours and theirs."""
    leaves = [make(a, device, requires_grad=True) for a in [x, *hx_arrays]]
    leaves_t = [torch.tensor(a, requires_grad=True) for a in [x, *hx_arrays]]
    results = []
    for lib, utils, model, (xs, *hx) in [(tensor, rnn_utils, ours, leaves),
                                          (torch, torch.nn.utils.rnn, theirs, leaves_t)]:
        data = xs
        if layout == "packed":  # x holds the sequences padded to the longest
            data = utils.pack_padded_sequence(xs, LENGTHS, batch_first=batch_first, enforce_sorted=False)
        out, (h, c) = model(data, tuple(hx) if hx else None)
        results.append((out.data if layout == "packed" else out, h, c))
    return results, leaves, leaves_t


CASES = [dict(num_layers=n, bidirectional=d, batch_first=b) for n in (1, 2) for d in (False, True) for b in (False, True)]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("layout", ["padded", "packed", "unbatched"])
@pytest.mark.parametrize("initial", ["zeros", "given"])
def test_matches_torch(case, layout, initial, device, rng):
    torch = pytest.importorskip("torch")
    theirs, ours = _twins(torch, device, **case)
    states = case["num_layers"] * (2 if case["bidirectional"] else 1)
    T, B = max(LENGTHS), len(LENGTHS)
    shape = (T, INPUT) if layout == "unbatched" else ((B, T, INPUT) if case["batch_first"] else (T, B, INPUT))
    x = rng.standard_normal(shape)
    hx_arrays = []
    if initial == "given":
        batch = () if layout == "unbatched" else (B,)
        hx_arrays = [rng.standard_normal((states, *batch, size)) for size in (PROJ, HIDDEN)]
    (mine, expected), leaves, leaves_t = _run_both(torch, ours, theirs, x, layout, case["batch_first"],
                                                   hx_arrays, device)
    assert tuple(expected[0].shape)[-1] == PROJ * (2 if case["bidirectional"] else 1)
    assert expected[1].shape[-1] == PROJ and expected[2].shape[-1] == HIDDEN
    for m, e, name in zip(mine, expected, ["output", "h_n", "c_n"]):
        _close(m, e, name)
    weights = [rng.standard_normal(tuple(e.shape)) for e in expected]
    sum((m * make(w, device)).sum() for m, w in zip(mine, weights)).backward()
    sum((e * torch.tensor(w)).sum() for e, w in zip(expected, weights)).backward()
    for leaf, leaf_t, name in zip(leaves, leaves_t, ["x", "h_0", "c_0"]):
        _close(leaf.grad, leaf_t.grad, name)
    for name, p in theirs.named_parameters():
        _close(ours.get_parameter(name).grad, p.grad, name)


def test_dropout_between_projected_layers(device, rng):
    """dropout=1 zeroes the projected output of layer 0, deterministically, in both libraries."""
    torch = pytest.importorskip("torch")
    theirs, ours = _twins(torch, device, num_layers=2, bidirectional=True, dropout=1.0)
    x = rng.standard_normal((4, 2, INPUT))
    (mine, expected), _, _ = _run_both(torch, ours, theirs, x, "padded", False, [], device)
    for m, e in zip(mine, expected):
        _close(m, e)
    ours.eval(), theirs.eval()
    (mine, expected), _, _ = _run_both(torch, ours, theirs, x, "padded", False, [], device)
    _close(mine[0], expected[0])
    assert not np.allclose(to_numpy(mine[0]), to_numpy(ours.train()(make(x, device))[0]))


def test_gradient_penalty_matches_torch(device, rng):
    """create_graph=True through two projected bidirectional layers: d(output)/dx differentiated again."""
    torch = pytest.importorskip("torch")
    theirs, ours = _twins(torch, device, num_layers=2, bidirectional=True, batch_first=True)
    x = rng.standard_normal((2, 4, INPUT))
    for lib, model, xs in [(tensor, ours, make(x, device, requires_grad=True)),
                           (torch, theirs, torch.tensor(x, requires_grad=True))]:
        out, (h, c) = model(xs)
        (grad_x,) = lib.autograd.grad((out * out).sum() + (c * c).sum(), xs, create_graph=True)
        (grad_x ** 2).sum().backward()
    for name, p in theirs.named_parameters():
        _close(ours.get_parameter(name).grad, p.grad, name)


def test_packed_projected_lstm_differentiates_twice(device):
    lstm = nn.LSTM(2, 3, proj_size=1, bidirectional=True).to(device=device, dtype=tensor.float64)

    def run(x):
        out, (h, c) = lstm(rnn_utils.pack_padded_sequence(x, [3, 1]))
        return rnn_utils.pad_packed_sequence(out)[0].tanh(), h * c.sum()

    x = make(np.random.default_rng(1).standard_normal((3, 2, 2)), device, requires_grad=True)
    assert gradgradcheck(run, [x])


def test_state_dict_repr_and_init_match_torch():
    torch = pytest.importorskip("torch")
    for case in [dict(num_layers=2, bidirectional=True), dict(bias=False, num_layers=2)]:
        theirs, ours = torch.nn.LSTM(3, 16, proj_size=4, **case), nn.LSTM(3, 16, proj_size=4, **case)
        assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
               [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
        assert repr(ours) == repr(theirs)
    assert list(ours.state_dict())[:3] == ["weight_ih_l0", "weight_hh_l0", "weight_hr_l0"]
    for p in ours.parameters():
        assert np.abs(to_numpy(p)).max() <= 0.25  # uniform(-1/sqrt(hidden), 1/sqrt(hidden)), weight_hr too
    assert nn.LSTM(3, 4, proj_size=0).state_dict().keys() == nn.LSTM(3, 4).state_dict().keys()


def test_errors(device):
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero"):
        nn.LSTM(3, 4, proj_size=-1)
    with pytest.raises(TypeError, match="proj_size must be an int"):
        nn.LSTM(3, 4, proj_size=1.5)
    for cls in (nn.GRU, nn.RNN):
        for size in (0, 2):
            with pytest.raises(ValueError, match="only supported for LSTM, not RNN or GRU"):
                cls(3, 4, proj_size=size)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        nn.RNNBase("GRU", 3, 4, proj_size=2)
    lstm = nn.LSTM(3, 4, proj_size=2).to(device)
    x, state = tensor.zeros(5, 2, 3, device=device), tensor.zeros(1, 2, 2, device=device)
    with pytest.raises(tensor.ShapeError, match=r"h_0 of shape \(1, 2, 4\) should be \(1, 2, 2\).*proj_size"):
        lstm(x, (tensor.zeros(1, 2, 4, device=device), tensor.zeros(1, 2, 4, device=device)))
    with pytest.raises(tensor.ShapeError, match=r"c_0 of shape \(1, 2, 2\) should be \(1, 2, 4\).*hidden_size"):
        lstm(x, (state, state))
    with pytest.raises(tensor.ShapeError, match=r"c_0 of shape \(1, 2\) should be \(1, 4\)"):
        lstm(x[:, 0], (state[:, 0], state[:, 0]))
