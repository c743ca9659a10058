"""scaled_dot_product_attention and MultiheadAttention: gradcheck, and outputs, weights and every
gradient against PyTorch on the same weights."""
import numpy as np
import pytest

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor.autograd import gradcheck

from helpers import make, to_numpy

# --------------------------------------------------------------------------------------- SDPA


def _qkv(rng, device, L=4, S=5, E=3, Ev=2, batch=(2, 2)):
    shapes = ((*batch, L, E), (*batch, S, E), (*batch, S, Ev))
    return [make(rng.standard_normal(s), device, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("kwargs", [dict(), dict(scale=0.3), dict(is_causal=True)], ids=str)
def test_sdpa_gradcheck(kwargs, device, rng):
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs), _qkv(rng, device))


def test_sdpa_gradcheck_with_float_mask_and_broadcast_batch(device, rng):
    q, k, v = _qkv(rng, device)
    mask = make(rng.standard_normal((4, 5)), device, requires_grad=True)
    k1, v1 = k[0].detach().requires_grad_(), v[0].detach().requires_grad_()
    assert gradcheck(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), [q, k1, v1, mask])


def test_sdpa_dropout_is_reproducible_and_differentiable(device, rng):
    q, k, v = _qkv(rng, device)

    def run(q, k, v):
        tensor.manual_seed(0)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)

    assert gradcheck(run, [q, k, v])
    assert not np.allclose(to_numpy(run(q, k, v)), to_numpy(F.scaled_dot_product_attention(q, k, v)))


def _torch_sdpa_case(rng, mask_kind):
    bool_mask = rng.random((4, 5)) > 0.3
    bool_mask[2] = False  # a fully masked row: both give zeros
    masks = {"none": None, "bool": bool_mask, "float": rng.standard_normal((2, 4, 5))}
    return masks[mask_kind]


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal"])
def test_sdpa_matches_torch(mask_kind, device, rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s) for s in ((2, 2, 4, 3), (2, 2, 5, 3), (2, 2, 5, 2))]
    mask = _torch_sdpa_case(rng, mask_kind) if mask_kind != "causal" else None
    causal = mask_kind == "causal"
    ours = [make(a, device, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = F.scaled_dot_product_attention(*ours, attn_mask=None if mask is None else make(mask, device), is_causal=causal)
    expected = torch.nn.functional.scaled_dot_product_attention(
        *theirs, attn_mask=None if mask is None else torch.tensor(mask), is_causal=causal)
    np.testing.assert_allclose(to_numpy(y), expected.detach().numpy(), rtol=1e-7, atol=1e-10)
    g = rng.standard_normal(tuple(expected.shape))
    y.backward(make(g, device))
    expected.backward(torch.tensor(g))
    for mine, ref in zip(ours, theirs):
        np.testing.assert_allclose(to_numpy(mine.grad), ref.grad.numpy(), rtol=1e-6, atol=1e-10)


def test_sdpa_errors(device, rng):
    q, k, v = _qkv(rng, device)
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=make(np.ones((4, 5), bool), device), is_causal=True)
    with pytest.raises(tensor.ShapeError, match="query features 3 and key features 2"):
        F.scaled_dot_product_attention(q, v, v)
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.0)


# ---------------------------------------------------------------------------- MultiheadAttention


def _pair(torch, **kwargs):
    theirs = torch.nn.MultiheadAttention(**kwargs).double()
    ours = nn.MultiheadAttention(**kwargs).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: tensor.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def _run_both(torch, ours, theirs, device, arrays, same, **forward):
    """Forward both on the same inputs (self-attention passes one tensor thrice), backward a loss
    touching outputs and weights; compare everything."""
    ours_in = [make(a, device, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    if same == "all":
        ours_in, theirs_in = ours_in[:1] * 3, theirs_in[:1] * 3
    elif same == "kv":
        ours_in, theirs_in = ours_in[:2] + ours_in[1:2], theirs_in[:2] + theirs_in[1:2]
    convert_ours = {k: make(v, device) if isinstance(v, np.ndarray) else v for k, v in forward.items()}
    convert_theirs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in forward.items()}
    out, weights = ours.to(device)(*ours_in, **convert_ours)
    expected, expected_weights = theirs(*theirs_in, **convert_theirs)
    np.testing.assert_allclose(to_numpy(out), expected.detach().numpy(), rtol=1e-7, atol=1e-10)
    if expected_weights is None:
        assert weights is None
    else:
        np.testing.assert_allclose(to_numpy(weights), expected_weights.detach().numpy(), rtol=1e-7, atol=1e-10)
    g = np.random.default_rng(3).standard_normal(tuple(expected.shape))
    ((out * make(g, device)).sum() + (0 if weights is None else weights.sum() * 0.3)).backward()
    ((expected * torch.tensor(g)).sum() + (0 if expected_weights is None else expected_weights.sum() * 0.3)).backward()
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(to_numpy(ours.get_parameter(name).grad), p.grad.numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=name)
    for mine, ref in zip(ours_in, theirs_in):
        np.testing.assert_allclose(to_numpy(mine.grad), ref.grad.numpy(), rtol=1e-6, atol=1e-9)


CAUSAL = np.triu(np.ones((5, 5), bool), 1)
PADDING = np.array([[False] * 5, [False, False, False, True, True], [False] * 5])
MHA_CASES = [
    dict(),
    dict(need_weights=False),
    dict(average_attn_weights=False),
    dict(attn_mask=CAUSAL),
    dict(attn_mask=np.where(CAUSAL, -np.inf, 0.0), is_causal=True, need_weights=False),
    dict(key_padding_mask=PADDING),
    dict(key_padding_mask=PADDING, attn_mask=CAUSAL, need_weights=False),
    dict(attn_mask=np.random.default_rng(0).standard_normal((6, 5, 5))),
]


@pytest.mark.parametrize("forward", MHA_CASES, ids=lambda c: ",".join(c) or "plain")
def test_self_attention_matches_torch(forward, device, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = _pair(torch, embed_dim=8, num_heads=2)
    _run_both(torch, ours, theirs, device, [rng.standard_normal((5, 3, 8))], "all", **forward)


@pytest.mark.parametrize("same", ["kv", "none"])
def test_cross_attention_matches_torch(same, device, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = _pair(torch, embed_dim=8, num_heads=2)
    arrays = [rng.standard_normal(s) for s in ((5, 3, 8), (4, 3, 8), (4, 3, 8))]
    _run_both(torch, ours, theirs, device, arrays, same)


def test_kdim_vdim_batch_first_matches_torch(device, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = _pair(torch, embed_dim=8, num_heads=4, batch_first=True, kdim=5, vdim=3)
    arrays = [rng.standard_normal(s) for s in ((3, 5, 8), (3, 4, 5), (3, 4, 3))]
    _run_both(torch, ours, theirs, device, arrays, "none")


def test_unbatched_without_bias_matches_torch(device, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = _pair(torch, embed_dim=8, num_heads=2, bias=False)
    _run_both(torch, ours, theirs, device, [rng.standard_normal((5, 8))], "all")


def test_default_initialisation_and_repr():
    torch = pytest.importorskip("torch")
    ours, theirs = nn.MultiheadAttention(16, 4), torch.nn.MultiheadAttention(16, 4)
    assert repr(ours).splitlines()[:3] == repr(theirs).splitlines()[:3]
    bound = (6 / (16 + 48)) ** 0.5  # xavier_uniform_ on the (48, 16) in_proj_weight
    w = to_numpy(ours.in_proj_weight)
    assert np.abs(w).max() <= bound and w.std() > bound / 2
    assert not to_numpy(ours.in_proj_bias).any() and not to_numpy(ours.out_proj.bias).any()


def test_mha_dropout_only_in_training(device, rng):
    mha = nn.MultiheadAttention(8, 2, dropout=0.5).to(device)
    x = make(rng.standard_normal((5, 3, 8)).astype(np.float32), device)
    mha.eval()
    a, b = mha(x, x, x)[0], mha(x, x, x)[0]
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    mha.train()
    assert not np.allclose(to_numpy(mha(x, x, x)[0]), to_numpy(a))


def test_mha_errors(device):
    mha = nn.MultiheadAttention(8, 2)
    x = tensor.zeros(5, 3, 8)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(8, 3)
    with pytest.raises(ValueError, match="pass attn_mask too"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(tensor.ShapeError, match="attn_mask shape"):
        mha(x, x, x, attn_mask=tensor.zeros(4, 4))
    with pytest.raises(tensor.ShapeError, match="key_padding_mask shape"):
        mha(x, x, x, key_padding_mask=tensor.zeros(5, 3, dtype=tensor.bool))


def test_sdpa_grouped_query_attention_matches_torch(device, rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s) for s in ((2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 3))]
    ours = [make(a, device, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = F.scaled_dot_product_attention(*ours, enable_gqa=True)
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs, enable_gqa=True)
    np.testing.assert_allclose(to_numpy(y), expected.detach().numpy(), rtol=1e-7, atol=1e-10)
    y.sum().backward()
    expected.sum().backward()
    for mine, ref in zip(ours, theirs):
        np.testing.assert_allclose(to_numpy(mine.grad), ref.grad.numpy(), rtol=1e-6, atol=1e-10)


def _np_attention(q, k, v, blocked):
    """The float64 reference: scores -inf where blocked; a row blocked everywhere gives zeros."""
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    scores = np.where(blocked, -np.inf, scores)
    top = scores.max(-1, keepdims=True)
    weights = np.exp(scores - np.where(np.isinf(top), 0, top))
    total = weights.sum(-1, keepdims=True)
    return (weights / np.where(total == 0, 1, total)) @ v


@pytest.mark.parametrize("dtype,rtol", [(np.float16, 2e-2), (np.float32, 1e-5), (np.float64, 1e-12)])
def test_causal_and_padding_masks_in_every_dtype(dtype, rtol, device, rng):
    # Blocked scores are set by adding 0/-inf (NumPy float32/float64, masks smaller than the
    # scores) or by copyto (float16, CuPy): every way must give the reference.
    q, k, v = (rng.standard_normal(s) for s in ((2, 3, 6, 4), (2, 3, 6, 4), (2, 3, 6, 5)))
    padding = np.zeros((2, 1, 1, 6), bool)
    padding[0, ..., 4:] = True  # batch 0: the last two keys are padding
    padding[1] = True  # batch 1: every key is padding, so every row gives zeros
    ours = [make(a.astype(dtype), device) for a in (q, k, v)]
    causal = F.scaled_dot_product_attention(*ours, is_causal=True)
    padded = F.scaled_dot_product_attention(*ours, attn_mask=make(~padding, device))
    low = [a.astype(dtype).astype(np.float64) for a in (q, k, v)]
    np.testing.assert_allclose(to_numpy(causal), _np_attention(*low, np.triu(np.ones((6, 6), bool), 1)),
                               rtol=rtol, atol=rtol)
    np.testing.assert_allclose(to_numpy(padded), _np_attention(*low, padding), rtol=rtol, atol=rtol)
    assert causal.dtype == padded.dtype == ours[0].dtype


def test_causal_ignores_an_overflowing_future_score_in_float16(device):
    # q . k overflows float16 only where query 0 meets the future key 1: masked, it must not be NaN.
    q = make(np.array([[[2.0], [1e-3]]], np.float16), device)
    k = make(np.array([[[1.0], [6e4]]], np.float16), device)
    v = make(np.array([[[1.0], [2.0]]], np.float16), device)
    with np.errstate(over="ignore"):  # NumPy reports the overflow in q @ k^T, which is the point here
        out = to_numpy(F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert np.isfinite(out).all() and out[0, 0, 0] == 1.0
