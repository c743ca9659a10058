"""PyTorch parity for instance / local response norm, pixel and channel shuffles, fold/unfold, bilinear,
EmbeddingBag, Softmax2d and the shrink activations: the same float64 weights (our state_dict loaded into
torch's module), the same outputs, input and parameter gradients, running statistics in train and eval
mode, state_dict keys and reprs, and clear errors for bad arguments."""
import warnings

import numpy as np
import pytest

import tensor
from tensor.autograd import gradcheck
from tensor.nn.bilinear import Bilinear
from tensor.nn.embedding_bag import EmbeddingBag
from tensor.nn.fold import Fold, Unfold
from tensor.nn.functional.bilinear import bilinear
from tensor.nn.functional.embedding_bag import embedding_bag
from tensor.nn.functional.fold import fold, unfold
from tensor.nn.functional.instance_norm import instance_norm, local_response_norm
from tensor.nn.functional.shrink import hardshrink, softshrink
from tensor.nn.functional.shuffle import channel_shuffle, pixel_shuffle, pixel_unshuffle
from tensor.nn.instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LocalResponseNorm
from tensor.nn.pixelshuffle import ChannelShuffle, PixelShuffle, PixelUnshuffle
from tensor.nn.shrink import Hardshrink, Softshrink
from tensor.nn.softmax2d import Softmax2d

from helpers import compare_with_torch as _compare
from helpers import make, to_numpy, torch_at_least

torch = pytest.importorskip("torch")
tnn, TF = torch.nn, torch.nn.functional
F64 = tensor.float64


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _close(ours, theirs, what=""):
    np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-7, atol=1e-10, err_msg=what)


def _twin(ours, theirs):
    """torch's module with our weights and buffers; state_dict keys and repr must already agree."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    # instance norms take bias= in torch 2.13 and show it in their repr; torch 2.11's have neither
    if torch_at_least("2.13") or not isinstance(theirs, (tnn.InstanceNorm1d, tnn.InstanceNorm2d, tnn.InstanceNorm3d)):
        assert repr(ours) == repr(theirs)
    theirs.load_state_dict({k: torch.tensor(to_numpy(v)) for k, v in ours.state_dict().items()})
    return theirs


def _same_parameter_grads(ours, theirs):
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        _close(p.grad, q.grad, f"grad of {name}")


# -------------------------------------------------------------------------------- instance norm

INSTANCE_CASES = [
    (InstanceNorm1d, tnn.InstanceNorm1d, (2, 3, 5)),
    (InstanceNorm1d, tnn.InstanceNorm1d, (3, 6)),  # unbatched
    (InstanceNorm2d, tnn.InstanceNorm2d, (2, 3, 4, 5)),
    (InstanceNorm2d, tnn.InstanceNorm2d, (3, 4, 2)),
    (InstanceNorm3d, tnn.InstanceNorm3d, (2, 3, 2, 3, 2)),
]


@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True), (False, True)])
@pytest.mark.parametrize("ours_cls,torch_cls,shape", INSTANCE_CASES, ids=lambda v: str(getattr(v, "__name__", v)))
def test_instance_norm_matches_torch_in_train_and_eval(ours_cls, torch_cls, shape, affine, track, device):
    ours = ours_cls(3, affine=affine, track_running_stats=track, momentum=0.2, device=device, dtype=F64)
    if affine:  # away from the 1 / 0 start, so a swapped weight and bias would show
        ours.weight.data[...] = make(_data(3, seed=1), device).data
        ours.bias.data[...] = make(_data(3, seed=2), device).data
    theirs = _twin(ours, torch_cls(3, affine=affine, track_running_stats=track, momentum=0.2).double())
    for step in range(2):  # the second step starts from updated running stats
        x, t = make(_data(*shape, seed=step), device, requires_grad=True), torch.tensor(_data(*shape, seed=step),
                                                                                         requires_grad=True)
        out, ref = ours(x), theirs(t)
        _close(out, ref, "train output")
        seed = _data(*shape, seed=9)
        out.backward(make(seed, device))
        ref.backward(torch.tensor(seed))
        _close(x.grad, t.grad, "input grad")
        _same_parameter_grads(ours, theirs)
    for name, buffer in theirs.named_buffers():
        _close(ours.state_dict()[name], buffer, name)
    ours.eval(), theirs.eval()
    x = _data(*shape, seed=5)
    _close(ours(make(x, device)), theirs(torch.tensor(x)), "eval output")


def test_instance_norm_momentum_none_freezes_running_stats(device):
    ours = InstanceNorm1d(2, momentum=None, track_running_stats=True, device=device, dtype=F64)
    ours(make(_data(2, 2, 5), device))
    np.testing.assert_array_equal(to_numpy(ours.running_mean), [0, 0])
    np.testing.assert_array_equal(to_numpy(ours.running_var), [1, 1])


def test_functional_instance_norm_matches_torch(device):
    x, w, b = _data(2, 3, 6), _data(3, seed=1), _data(3, seed=2)
    _compare(lambda x, w, b: instance_norm(x, weight=w, bias=b, eps=1e-3),
             lambda x, w, b: TF.instance_norm(x, weight=w, bias=b, eps=1e-3), [x, w, b], device)
    stats = make(_data(3, seed=3), device), make(np.abs(_data(3, seed=4)) + 0.5, device)
    theirs = [torch.tensor(to_numpy(s)) for s in stats]
    _compare(lambda x: instance_norm(x, *stats, use_input_stats=False),
             lambda x: TF.instance_norm(x, *theirs, use_input_stats=False), [x], device)


def test_instance_norm_errors(device):
    with pytest.raises(ValueError, match="expected 2D .*or 3D input"):
        InstanceNorm1d(3)(make(_data(2, 3, 4, 5), device))
    with pytest.raises(ValueError, match=r"num_features \(4\), got 3"):
        InstanceNorm1d(4, affine=True, dtype=F64, device=device)(make(_data(2, 3, 5), device))
    with pytest.warns(UserWarning, match="does not match num_features"):
        InstanceNorm1d(4)(make(_data(2, 3, 5), device))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        instance_norm(make(_data(2, 3, 1), device))
    with pytest.raises(ValueError, match="needs running_mean"):
        instance_norm(make(_data(2, 3, 4), device), use_input_stats=False)
    with pytest.raises(tensor.errors.ShapeError, match=r"weight must have shape \(3,\)"):
        instance_norm(make(_data(2, 3, 4), device), weight=make(_data(4), device))


# -------------------------------------------------------------------------------- local response norm


@pytest.mark.parametrize("size,shape", [(1, (2, 4, 3)), (2, (2, 5, 3)), (3, (2, 6, 3, 4)), (4, (1, 3, 2, 2, 3))])
def test_local_response_norm_matches_torch(size, shape, device):
    _compare(lambda x: LocalResponseNorm(size, alpha=0.3, beta=0.6, k=2.0)(x),
             lambda x: tnn.LocalResponseNorm(size, alpha=0.3, beta=0.6, k=2.0)(x), [_data(*shape)], device)
    assert repr(LocalResponseNorm(size)) == repr(tnn.LocalResponseNorm(size))


def test_local_response_norm_errors(device):
    with pytest.raises(tensor.errors.ShapeError, match="3 or more dims"):
        local_response_norm(make(_data(2, 3), device), 2)
    with pytest.raises(ValueError, match="size must be a positive int, got 0"):
        local_response_norm(make(_data(2, 3, 4), device), 0)


# -------------------------------------------------------------------------------- shuffles


@pytest.mark.parametrize("r,shape", [(2, (2, 8, 3, 4)), (3, (9, 2, 2)), (2, (2, 1, 4, 3, 2))])
def test_pixel_shuffle_and_unshuffle_match_torch(r, shape, device):
    _compare(lambda x: PixelShuffle(r)(x), lambda x: tnn.PixelShuffle(r)(x), [_data(*shape)], device)
    big = shape[:-3] + (shape[-3] // (r * r), shape[-2] * r, shape[-1] * r)
    _compare(lambda x: pixel_unshuffle(x, r), lambda x: TF.pixel_unshuffle(x, r), [_data(*big)], device)
    x = make(_data(*shape), device)
    np.testing.assert_array_equal(to_numpy(pixel_unshuffle(pixel_shuffle(x, r), r)), to_numpy(x))
    assert repr(PixelShuffle(r)) == repr(tnn.PixelShuffle(r))
    assert repr(PixelUnshuffle(r)) == repr(tnn.PixelUnshuffle(r))


def test_channel_shuffle_matches_torch(device):
    _compare(lambda x: ChannelShuffle(3)(x), lambda x: tnn.ChannelShuffle(3)(x), [_data(2, 6, 2, 3)], device)
    _compare(lambda x: channel_shuffle(x, 2), lambda x: TF.channel_shuffle(x, 2), [_data(1, 4, 5)], device)
    assert repr(ChannelShuffle(3)) == repr(tnn.ChannelShuffle(3))


def test_shuffle_errors(device):
    with pytest.raises(tensor.errors.ShapeError, match="not divisible by upscale_factor"):
        pixel_shuffle(make(_data(1, 6, 2, 2), device), 2)
    with pytest.raises(tensor.errors.ShapeError, match="divisible by downscale_factor = 2"):
        pixel_unshuffle(make(_data(1, 1, 3, 4), device), 2)
    with pytest.raises(ValueError, match="upscale_factor must be a positive int, got 0"):
        pixel_shuffle(make(_data(1, 4, 2, 2), device), 0)
    with pytest.raises(tensor.errors.ShapeError, match="5 channels cannot be split into 2"):
        channel_shuffle(make(_data(1, 5, 2), device), 2)


# -------------------------------------------------------------------------------- fold / unfold

FOLD_CASES = [  # input shape, kernel, dilation, padding, stride
    ((2, 3, 7, 8), (2, 3), 1, 0, 1),
    ((2, 3, 7, 8), 3, (2, 1), 1, (2, 3)),
    ((1, 2, 9, 9), 3, 1, 1, 1),  # stride 1 with padding: the convolution's "wide rows"
    ((3, 5, 6), 2, 1, (1, 2), 2),  # unbatched
]


@pytest.mark.parametrize("shape,kernel,dilation,padding,stride", FOLD_CASES, ids=str)
def test_unfold_and_fold_match_torch(shape, kernel, dilation, padding, stride, device):
    args = (kernel, dilation, padding, stride)
    cols = _compare(lambda x: Unfold(*args)(x), lambda x: tnn.Unfold(*args)(x), [_data(*shape)], device)
    _compare(lambda c: Fold(shape[-2:], *args)(c), lambda c: tnn.Fold(shape[-2:], *args)(c),
             [_data(*cols.shape, seed=3)], device)
    assert repr(Unfold(*args)) == repr(tnn.Unfold(*args))
    assert repr(Fold(shape[-2:], *args)) == repr(tnn.Fold(shape[-2:], *args))


def test_fold_and_unfold_gradcheck(device):
    x = make(_data(1, 2, 4, 5), device, requires_grad=True)
    assert gradcheck(lambda x: unfold(x, 2, padding=1, stride=(1, 2)), [x])
    c = make(_data(1, 8, 6), device, requires_grad=True)
    assert gradcheck(lambda c: fold(c, (3, 4), 2, stride=1), [c])


def test_fold_unfold_errors(device):
    with pytest.raises(tensor.errors.ShapeError, match="give 6 blocks .* has 5"):
        fold(make(_data(1, 8, 5), device), (3, 4), 2)
    with pytest.raises(tensor.errors.ShapeError, match="divisible by the kernel's 2\\*2 = 4 taps"):
        fold(make(_data(1, 6, 6), device), (3, 4), 2)
    with pytest.raises(tensor.errors.ShapeError, match="does not fit input"):
        unfold(make(_data(1, 2, 2, 2), device), 3)
    with pytest.raises(tensor.errors.ShapeError, match=r"\(N, C, H, W\) or unbatched"):
        unfold(make(_data(2, 2), device), 1)
    with pytest.raises(ValueError, match="stride must be an int or a pair of ints >= 1, got 0"):
        unfold(make(_data(1, 2, 4, 4), device), 2, stride=0)


# -------------------------------------------------------------------------------- bilinear


@pytest.mark.parametrize("bias,lead", [(True, (4,)), (False, (2, 3)), (True, ())])
def test_bilinear_matches_torch(bias, lead, device):
    ours = Bilinear(3, 5, 4, bias=bias, device=device, dtype=F64)
    theirs = _twin(ours, tnn.Bilinear(3, 5, 4, bias=bias).double())
    _compare(ours, theirs, [_data(*lead, 3), _data(*lead, 5, seed=1)], device)
    _same_parameter_grads(ours, theirs)


def test_bilinear_initialisation_and_errors(device):
    layer = Bilinear(16, 3, 50, device=device)
    bound = 1 / 4  # 1 / sqrt(in1_features)
    for p in (layer.weight, layer.bias):
        values = to_numpy(p)
        assert np.abs(values).max() <= bound and values.std() > bound / 4
    x1, w = make(_data(2, 3), device), make(_data(4, 3, 5), device)
    with pytest.raises(tensor.errors.ShapeError, match="in2_features=5"):
        bilinear(x1, make(_data(2, 6), device), w)
    with pytest.raises(tensor.errors.ShapeError, match="leading"):
        bilinear(x1, make(_data(3, 5), device), w)
    with pytest.raises(tensor.errors.ShapeError, match=r"bias must have shape \(4,\)"):
        bilinear(x1, make(_data(2, 5), device), w, make(_data(3), device))


# -------------------------------------------------------------------------------- embedding bag

BAG_INPUT = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 0])
BAG_OFFSETS = np.array([0, 2, 2, 5])  # an empty bag in the middle


@pytest.mark.parametrize("padding_idx", [None, 4])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_matches_torch(mode, padding_idx, device):
    ours = EmbeddingBag(10, 3, mode=mode, padding_idx=padding_idx, device=device, dtype=F64)
    theirs = _twin(ours, tnn.EmbeddingBag(10, 3, mode=mode, padding_idx=padding_idx).double())
    for args in ((BAG_INPUT, BAG_OFFSETS), (BAG_INPUT.reshape(2, 5), None)):
        inputs = [make(a, device) if a is not None else None for a in args]
        out, ref = ours(*inputs), theirs(*[torch.tensor(a) if a is not None else None for a in args])
        _close(out, ref, "output")
        seed = _data(*ref.shape, seed=7)
        out.backward(make(seed, device))
        ref.backward(torch.tensor(seed))
        _same_parameter_grads(ours, theirs)
        ours.zero_grad(), theirs.zero_grad()


def test_embedding_bag_per_sample_weights_and_last_offset(device):
    weights = _data(10, 3)
    offsets = np.append(BAG_OFFSETS, len(BAG_INPUT))
    _compare(lambda w, s: embedding_bag(make(BAG_INPUT, device), w, make(offsets, device), mode="sum",
                                        per_sample_weights=s, include_last_offset=True),
             lambda w, s: TF.embedding_bag(torch.tensor(BAG_INPUT), w, torch.tensor(offsets), mode="sum",
                                           per_sample_weights=s, include_last_offset=True),
             [weights, _data(10, seed=1)], device)


def test_embedding_bag_errors(device):
    w, idx = make(_data(10, 3), device), make(BAG_INPUT, device)
    with pytest.raises(ValueError, match="1-D input needs 1-D offsets"):
        embedding_bag(idx, w)
    with pytest.raises(ValueError, match="offsets must be None for 2-D input"):
        embedding_bag(idx.reshape(2, 5), w, make(np.array([0, 1]), device))
    with pytest.raises(ValueError, match="must start at 0"):
        embedding_bag(idx, w, make(np.array([1, 3]), device))
    with pytest.raises(NotImplementedError, match="only work with mode='sum'"):
        embedding_bag(idx, w, make(BAG_OFFSETS, device), per_sample_weights=make(_data(10), device))
    with pytest.raises(ValueError, match="mode must be one of"):
        EmbeddingBag(10, 3, mode="min")
    with pytest.raises(IndexError, match="index 10 is out of range for 10"):
        embedding_bag(make(np.array([[1, 10]]), device), w)


# -------------------------------------------------------------------------------- activations


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 2)])
def test_softmax2d_matches_torch(shape, device):
    _compare(Softmax2d(), tnn.Softmax2d(), [_data(*shape)], device)
    assert repr(Softmax2d()) == repr(tnn.Softmax2d())
    with pytest.raises(tensor.errors.ShapeError, match="3D .* or 4D"):
        Softmax2d()(make(_data(2, 3), device))


@pytest.mark.parametrize("ours,theirs", [(Hardshrink, tnn.Hardshrink), (Softshrink, tnn.Softshrink)],
                         ids=["hardshrink", "softshrink"])
@pytest.mark.parametrize("lambd", [0.5, 1.25])
def test_shrinks_match_torch(ours, theirs, lambd, device):
    _compare(ours(lambd), theirs(lambd), [_data(4, 25)], device)
    assert repr(ours(lambd)) == repr(theirs(lambd))


def test_functional_shrinks_keep_dtype_and_check_lambd(device):
    x = make(_data(6), device, dtype=tensor.float32)
    assert hardshrink(x).dtype == tensor.float32 and softshrink(x, 0.1).dtype == tensor.float32
    with pytest.raises(ValueError, match="lambd must be >= 0, got -1"):
        softshrink(x, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no promotion warning from the mask product
        hardshrink(x, 0.2)
