"""TransformerEncoderLayer / TransformerEncoder: state-dict names, outputs and every gradient
against PyTorch, causal-mask detection, gradcheck of a small layer."""
import numpy as np
import pytest

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor.autograd import gradcheck
from tensor.nn.transformer import _detect_is_causal_mask, generate_square_subsequent_mask

from helpers import make, to_numpy

LAYER_CASES = [
    dict(),
    dict(norm_first=True, activation="gelu", batch_first=True),
    dict(bias=False, activation="gelu_callable"),
]


def _build(module, case, torch_side):
    case = dict(case)
    if case.get("activation") == "gelu_callable":
        case["activation"] = module.functional.gelu
    layer = module.TransformerEncoderLayer(8, 2, 16, dropout=0.0, **case).double()
    extra = dict(enable_nested_tensor=False) if torch_side else {}
    return module.TransformerEncoder(layer, 2, norm=module.LayerNorm(8).double(), **extra)


@pytest.mark.parametrize("case", LAYER_CASES, ids=str)
@pytest.mark.parametrize("mask", ["none", "causal", "padding"])
def test_encoder_matches_torch(case, mask, device, rng):
    torch = pytest.importorskip("torch")
    theirs, ours = _build(torch.nn, case, True), _build(nn, case, False)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: tensor.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    ours.to(device)
    shape = (3, 5, 8) if case.get("batch_first") else (5, 3, 8)
    x = rng.standard_normal(shape)
    ours_kw, theirs_kw = {}, {}
    if mask == "causal":
        ours_kw["mask"] = generate_square_subsequent_mask(5, device=device, dtype=tensor.float64)
        theirs_kw["mask"] = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    elif mask == "padding":
        padding = np.zeros((3, 5), bool)
        padding[0, 3:] = True
        ours_kw["src_key_padding_mask"] = make(padding, device)
        theirs_kw["src_key_padding_mask"] = torch.tensor(padding)
    xo, xt = make(x, device, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, expected = ours(xo, **ours_kw), theirs(xt, **theirs_kw)
    np.testing.assert_allclose(to_numpy(y), expected.detach().numpy(), rtol=1e-7, atol=1e-9)
    g = rng.standard_normal(shape)
    y.backward(make(g, device))
    expected.backward(torch.tensor(g))
    np.testing.assert_allclose(to_numpy(xo.grad), xt.grad.numpy(), rtol=1e-6, atol=1e-9)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(to_numpy(ours.get_parameter(name).grad), p.grad.numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=name)


def test_layer_gradcheck(device, rng):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True, norm_first=True).double().to(device)
    x = make(rng.standard_normal((2, 3, 4)), device, requires_grad=True)
    mask = generate_square_subsequent_mask(3, device=device, dtype=tensor.float64)
    assert gradcheck(lambda x: layer(x, src_mask=mask, is_causal=True), [x])


def test_square_subsequent_mask_and_causal_detection(device):
    mask = generate_square_subsequent_mask(3, device=device)
    expected = np.array([[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(to_numpy(mask), expected)
    assert _detect_is_causal_mask(mask)
    assert _detect_is_causal_mask(tensor.ones(3, 3, dtype=tensor.bool, device=device).triu(diagonal=1))
    assert not _detect_is_causal_mask(tensor.zeros(3, 3, device=device))
    assert not _detect_is_causal_mask(mask, size=4)
    assert not _detect_is_causal_mask(None)
    assert _detect_is_causal_mask(None, is_causal=True)


def test_dropout_only_in_training(device, rng):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5).to(device)
    x = make(rng.standard_normal((5, 2, 8)).astype(np.float32), device)
    layer.eval()
    np.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(layer(x)))
    layer.train()
    assert not np.allclose(to_numpy(layer(x)), to_numpy(layer(x)))


def test_layers_are_independent_copies():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    encoder = nn.TransformerEncoder(layer, 3)
    weights = [m.linear1.weight for m in encoder.layers]
    assert len({id(w) for w in weights}) == 3 and all(w is not layer.linear1.weight for w in weights)
    assert len(list(encoder.parameters())) == 3 * len(list(layer.parameters()))


def test_activation_errors():
    with pytest.raises(ValueError, match="activation 'tanh'"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation=F.silu)
    assert layer.activation is F.silu
