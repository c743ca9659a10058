"""Zero-size inputs through nn: an empty batch (N = 0), a zero-length sequence or spatial dim, zero
features where PyTorch allows them. Forward and `out.sum().backward()`, as PyTorch 2.13 answers.

Each table row builds its call once, from a namespace `t` that is raygrad's or PyTorch's, so both run
the same code: with torch installed the outputs (shape, dtype, values) and every leaf's gradient are
compared with its answer; without it, with the row's fixed expectation (output shapes, loss values,
and gradients of the leaves' shapes that are all zero). REFUSED lists what PyTorch refuses: we raise a
clear error there too. TORCH_BUGS lists where PyTorch 2.13 crashes or returns garbage on an empty
input: there we keep the evident answer, pinned by a fixed expectation only.
"""
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import tensor
from tensor.errors import ShapeError

NAN = math.nan


class Maker:
    """What a row builds its call from: `m` (tensor or torch), `F`, `nn`, and leaves made alike in both."""

    def __init__(self, lib, device):
        self.m, self.F, self.nn = lib.m, lib.F, lib.nn
        self.device, self.leaves, self._seed = device, [], 0

    def _put(self, array, grad=True, dtype=None):
        if self.m is tensor:
            t = tensor.tensor(array, dtype=dtype, device=self.device, requires_grad=grad)
        else:
            t = self.m.tensor(array, dtype=dtype, requires_grad=grad)
        if grad:
            self.leaves.append(t)
        return t

    def x(self, *shape):
        """A float32 zero leaf (the empty input)."""
        return self._put(np.zeros(shape, np.float32))

    def w(self, *shape):
        """A float32 leaf of seeded random values (a weight)."""
        self._seed += 1
        return self._put(np.random.default_rng(self._seed).standard_normal(shape).astype(np.float32))

    def c(self, *shape):
        """A float32 zero constant (a target)."""
        return self._put(np.zeros(shape, np.float32), grad=False)

    def i(self, *shape, values=None):
        """An int64 constant: zeros of `shape`, or `values`."""
        array = np.zeros(shape, np.int64) if values is None else np.asarray(values, np.int64)
        return self._put(array, grad=False, dtype=self.m.int64)

    def b(self, *shape):
        """A bool constant, all True."""
        return self._put(np.ones(shape, bool), grad=False, dtype=self.m.bool)

    def mod(self, make):
        """make(nn) as a module whose parameters are seeded (alike in both libraries) and leaves."""
        module = make(self.nn)
        if self.m is tensor:
            module.to(self.device)
        for p in module.parameters():
            self._seed += 1
            with self.m.no_grad():
                p.copy_(self._put(np.random.default_rng(self._seed).standard_normal(tuple(p.shape))
                                  .astype(np.float32), grad=False))
            self.leaves.append(p)
        return module


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return SimpleNamespace(m=torch, F=torch.nn.functional, nn=torch.nn)


OURS, TORCH = SimpleNamespace(m=tensor, F=tensor.nn.functional, nn=tensor.nn), _torch()


def _outputs(result):
    if isinstance(result, (tuple, list)):
        return [o for part in result for o in _outputs(part)]
    return [] if result is None else [result]


def run(lib, build, device):
    """-> ([(shape, dtype name, values)] per output, [(shape, values)] per leaf gradient)."""
    t = Maker(lib, device)
    outs = _outputs(build(t))
    seen = [(tuple(o.shape), str(o.dtype).split(".")[-1], _numpy(o)) for o in outs]
    floats = [o for o in outs if o.is_floating_point() and o.requires_grad]
    if floats:
        sum(o.sum() for o in floats).backward()
    grads = [(tuple(x.shape), np.zeros(tuple(x.shape)) if x.grad is None else _numpy(x.grad)) for x in t.leaves]
    return seen, grads


def _numpy(t):
    return np.array(t.detach().cpu().numpy())


def case(name, build, *shapes, values=None, zero_grads=True, quiet=True):
    """A table row: `shapes` the expected output shapes, `values` those of its one-element outputs (losses);
    quiet: NumPy must not warn (0/0 on an empty batch)."""
    return pytest.param(build, shapes, values, zero_grads, quiet, id=name)


def losses(name, build, shape=(0,), quiet=True):
    """One row per reduction: 'mean' -> NaN (0/0 over an empty batch), 'sum' -> 0, 'none' -> empty."""
    return [case(f"{name} {r}", lambda t, r=r: build(t, r), () if r != "none" else shape, quiet=quiet,
                 values=None if r == "none" else [NAN if r == "mean" else 0.0]) for r in ("mean", "sum", "none")]


CASES = [
    # activations and softmax
    case("softmax over an empty dim", lambda t: t.F.softmax(t.x(3, 0), 1), (3, 0)),
    case("log_softmax N=0", lambda t: t.F.log_softmax(t.x(0, 3), 0), (0, 3)),
    case("log_softmax of (0,)", lambda t: t.F.log_softmax(t.x(0), 0), (0,)),
    case("softmin over an empty middle dim", lambda t: t.F.softmin(t.x(2, 0, 4), 1), (2, 0, 4)),
    case("glu of an empty dim", lambda t: t.F.glu(t.x(2, 0)), (2, 0)),
    case("prelu N=0", lambda t: t.F.prelu(t.x(0, 3), t.w(3)), (0, 3)),
    case("prelu 0 channels", lambda t: t.F.prelu(t.x(2, 0), t.x(0)), (2, 0)),
    # linear layers
    case("linear N=0", lambda t: t.F.linear(t.x(0, 3), t.w(4, 3), t.w(4)), (0, 4)),
    case("linear 0 in-features", lambda t: t.F.linear(t.x(2, 0), t.x(4, 0)), (2, 4)),
    case("bilinear N=0", lambda t: t.F.bilinear(t.x(0, 3), t.x(0, 2), t.w(4, 3, 2), t.w(4)), (0, 4)),
    case("bilinear 0 out-features", lambda t: t.F.bilinear(t.w(2, 3), t.w(2, 2), t.x(0, 3, 2)), (2, 0)),
    case("Linear N=0", lambda t: t.mod(lambda nn: nn.Linear(3, 4))(t.x(0, 5, 3)), (0, 5, 4)),
    case("Bilinear N=0", lambda t: t.mod(lambda nn: nn.Bilinear(3, 2, 4))(t.x(0, 3), t.x(0, 2)), (0, 4)),
    # convolutions
    case("conv1d N=0", lambda t: t.F.conv1d(t.x(0, 2, 5), t.w(3, 2, 3), t.w(3)), (0, 3, 3)),
    case("conv1d N=0 padding='same'", lambda t: t.F.conv1d(t.x(0, 2, 5), t.w(3, 2, 3), padding="same"), (0, 3, 5)),
    case("conv2d N=0 groups stride", lambda t: t.F.conv2d(t.x(0, 4, 5, 5), t.w(4, 2, 3, 3), None, 2, 1, 1, 2),
         (0, 4, 3, 3)),
    case("conv3d N=0", lambda t: t.F.conv3d(t.x(0, 2, 4, 4, 4), t.w(3, 2, 3, 3, 3), t.w(3)), (0, 3, 2, 2, 2)),
    case("conv_transpose1d N=0", lambda t: t.F.conv_transpose1d(t.x(0, 2, 5), t.w(2, 3, 3), t.w(3)), (0, 3, 7)),
    case("conv_transpose2d N=0", lambda t: t.F.conv_transpose2d(t.x(0, 2, 5, 5), t.w(2, 3, 3, 3), None, 2, 0, 1),
         (0, 3, 12, 12)),
    case("conv_transpose3d N=0", lambda t: t.F.conv_transpose3d(t.x(0, 2, 3, 3, 3), t.w(2, 3, 2, 2, 2)),
         (0, 3, 4, 4, 4)),
    case("Conv2d reflect-padded N=0",
         lambda t: t.mod(lambda nn: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"))(t.x(0, 2, 4, 4)),
         (0, 3, 4, 4)),
    case("ConvTranspose2d output_size N=0",
         lambda t: t.mod(lambda nn: nn.ConvTranspose2d(2, 3, 3, stride=2))(t.x(0, 2, 4, 4), output_size=[9, 9]),
         (0, 3, 9, 9)),
    # pooling
    case("max_pool1d N=0", lambda t: t.F.max_pool1d(t.x(0, 2, 4), 2), (0, 2, 2)),
    case("max_pool2d N=0 with indices", lambda t: t.F.max_pool2d(t.x(0, 2, 4, 4), 2, return_indices=True),
         (0, 2, 2, 2), (0, 2, 2, 2)),
    case("max_pool3d N=0", lambda t: t.F.max_pool3d(t.x(0, 2, 4, 4, 4), 2), (0, 2, 2, 2, 2)),
    case("avg_pool1d N=0", lambda t: t.F.avg_pool1d(t.x(0, 2, 4), 2), (0, 2, 2)),
    case("avg_pool2d N=0", lambda t: t.F.avg_pool2d(t.x(0, 2, 4, 4), 2), (0, 2, 2, 2)),
    case("avg_pool3d N=0", lambda t: t.F.avg_pool3d(t.x(0, 2, 4, 4, 4), 2), (0, 2, 2, 2, 2)),
    case("lp_pool2d N=0", lambda t: t.F.lp_pool2d(t.x(0, 2, 4, 4), 2.0, 2), (0, 2, 2, 2)),
    case("adaptive_max_pool1d N=0 with indices", lambda t: t.F.adaptive_max_pool1d(t.x(0, 2, 4), 3, True),
         (0, 2, 3), (0, 2, 3)),
    case("adaptive_max_pool2d N=0", lambda t: t.F.adaptive_max_pool2d(t.x(0, 2, 5, 5), 2), (0, 2, 2, 2)),
    case("adaptive_max_pool2d unbatched C=0", lambda t: t.F.adaptive_max_pool2d(t.x(0, 4, 4), 2), (0, 2, 2)),
    case("adaptive_max_pool3d N=0 with indices", lambda t: t.F.adaptive_max_pool3d(t.x(0, 2, 4, 4, 4), 2, True),
         (0, 2, 2, 2, 2), (0, 2, 2, 2, 2)),
    case("adaptive_avg_pool1d N=0", lambda t: t.F.adaptive_avg_pool1d(t.x(0, 2, 5), 2), (0, 2, 2)),
    case("adaptive_avg_pool2d N=0", lambda t: t.F.adaptive_avg_pool2d(t.x(0, 2, 5, 5), 2), (0, 2, 2, 2)),
    case("adaptive_avg_pool3d N=0", lambda t: t.F.adaptive_avg_pool3d(t.x(0, 2, 4, 4, 4), 2), (0, 2, 2, 2, 2)),
    case("adaptive_avg_pool2d to 1x1 of an empty plane (mean: NaN)",
         lambda t: t.F.adaptive_avg_pool2d(t.x(1, 1, 0, 4), 1), (1, 1, 1, 1), values=[NAN]),
    case("fractional_max_pool2d N=0", lambda t: t.F.fractional_max_pool2d(t.x(0, 2, 5, 5), 2, output_size=3),
         (0, 2, 3, 3)),
    case("fractional_max_pool3d N=0", lambda t: t.F.fractional_max_pool3d(t.x(0, 2, 5, 5, 5), 2, output_size=3),
         (0, 2, 3, 3, 3)),
    case("max_unpool2d N=0", lambda t: t.F.max_unpool2d(t.x(0, 2, 2, 2), t.i(0, 2, 2, 2), 2), (0, 2, 4, 4)),
    case("MaxUnpool1d N=0 output_size", lambda t: t.mod(lambda nn: nn.MaxUnpool1d(2))(
        t.x(0, 2, 2), t.i(0, 2, 2), output_size=[5]), (0, 2, 5)),
    # normalisation
    case("batch_norm training N=0", lambda t: t.F.batch_norm(t.x(0, 3), None, None, t.w(3), t.w(3), True), (0, 3)),
    case("batch_norm training L=0", lambda t: t.F.batch_norm(t.x(2, 3, 0), None, None, t.w(3), t.w(3), True),
         (2, 3, 0)),
    case("batch_norm training C=0", lambda t: t.F.batch_norm(t.x(3, 0), None, None, training=True), (3, 0)),
    case("batch_norm eval N=0", lambda t: t.F.batch_norm(t.x(0, 3), t.c(3), t.c(3) + 1, t.w(3), t.w(3)), (0, 3)),
    case("BatchNorm2d training N=0", lambda t: t.mod(lambda nn: nn.BatchNorm2d(3))(t.x(0, 3, 4, 4)), (0, 3, 4, 4)),
    case("layer_norm N=0", lambda t: t.F.layer_norm(t.x(0, 3), (3,), t.w(3), t.w(3)), (0, 3)),
    case("rms_norm N=0", lambda t: t.F.rms_norm(t.x(0, 3), (3,), t.w(3)), (0, 3)),
    case("group_norm N=0", lambda t: t.F.group_norm(t.x(0, 4, 3), 2, t.w(4), t.w(4)), (0, 4, 3)),
    case("GroupNorm N=0 without spatial dims", lambda t: t.mod(lambda nn: nn.GroupNorm(2, 4))(t.x(0, 4)), (0, 4)),
    case("instance_norm N=0", lambda t: t.F.instance_norm(t.x(0, 3, 4)), (0, 3, 4)),
    case("instance_norm L=0", lambda t: t.F.instance_norm(t.x(2, 3, 0)), (2, 3, 0)),
    case("local_response_norm N=0", lambda t: t.F.local_response_norm(t.x(0, 3, 4, 4), 2), (0, 3, 4, 4)),
    case("normalize N=0", lambda t: t.F.normalize(t.x(0, 3), dim=1), (0, 3)),
    case("normalize of 0 features", lambda t: t.F.normalize(t.x(3, 0), dim=1), (3, 0)),
    case("cosine_similarity N=0", lambda t: t.F.cosine_similarity(t.x(0, 3), t.x(0, 3)), (0,)),
    case("cosine_similarity of 0 features", lambda t: t.F.cosine_similarity(t.x(3, 0), t.x(3, 0)), (3,)),
    case("pairwise_distance N=0", lambda t: t.F.pairwise_distance(t.x(0, 3), t.x(0, 3)), (0,)),
    # embeddings
    case("embedding of no indices", lambda t: t.F.embedding(t.i(0), t.w(5, 3)), (0, 3)),
    case("Embedding (2, 0) indices with padding_idx",
         lambda t: t.mod(lambda nn: nn.Embedding(5, 3, padding_idx=1))(t.i(2, 0)), (2, 0, 3)),
    *[case(f"embedding_bag {mode}: empty input, 2 empty bags",
           lambda t, mode=mode: t.F.embedding_bag(t.i(0), t.w(5, 3), t.i(values=[0, 0]), mode=mode), (2, 3))
      for mode in ("sum", "mean", "max")],
    case("embedding_bag 2-D with no bags", lambda t: t.F.embedding_bag(t.i(0, 4), t.w(5, 3)), (0, 3)),
    case("embedding_bag per_sample_weights, empty input",
         lambda t: t.F.embedding_bag(t.i(0), t.w(5, 3), t.i(values=[0]), mode="sum", per_sample_weights=t.x(0)),
         (1, 3)),
    case("EmbeddingBag include_last_offset, no bags",
         lambda t: t.mod(lambda nn: nn.EmbeddingBag(5, 3, include_last_offset=True))(t.i(0), t.i(values=[0])),
         (0, 3)),
    # dropout (training)
    case("dropout N=0", lambda t: t.F.dropout(t.x(0, 3), 0.5, True), (0, 3)),
    case("dropout2d N=0", lambda t: t.F.dropout2d(t.x(0, 2, 3, 3), 0.5, True), (0, 2, 3, 3)),
    case("alpha_dropout N=0", lambda t: t.F.alpha_dropout(t.x(0, 3), 0.5, True), (0, 3)),
    case("feature_alpha_dropout N=0", lambda t: t.F.feature_alpha_dropout(t.x(0, 2, 3, 3), 0.5, True), (0, 2, 3, 3)),
    # resampling and layout
    *[case(f"interpolate {mode} N=0", lambda t, mode=mode, nd=nd: t.F.interpolate(t.x(0, 2, *(3,) * nd), scale_factor=2,
                                                                                   mode=mode), (0, 2, *(6,) * nd))
      for mode, nd in (("nearest", 1), ("linear", 1), ("nearest", 2), ("bilinear", 2), ("bicubic", 2),
                       ("nearest-exact", 2), ("area", 2), ("trilinear", 3))],
    case("Upsample N=0", lambda t: t.mod(lambda nn: nn.Upsample(scale_factor=2, mode="bilinear"))(t.x(0, 2, 3, 3)),
         (0, 2, 6, 6)),
    case("channel_shuffle N=0", lambda t: t.F.channel_shuffle(t.x(0, 4, 3, 3), 2), (0, 4, 3, 3)),
    case("unfold N=0", lambda t: t.F.unfold(t.x(0, 2, 4, 4), 2), (0, 8, 9)),
    case("fold N=0", lambda t: t.F.fold(t.x(0, 8, 9), (4, 4), 2), (0, 2, 4, 4)),
    *[case(f"pad {mode} N=0", lambda t, mode=mode: t.F.pad(t.x(0, 2, 4, 4), (1, 1, 1, 1), mode=mode), (0, 2, 6, 6))
      for mode in ("constant", "reflect", "replicate", "circular")],
    *[case(f"grid_sample {mode} N=0", lambda t, mode=mode: t.F.grid_sample(t.x(0, 2, 3, 3), t.x(0, 4, 4, 2),
                                                                             mode=mode, align_corners=False),
           (0, 2, 4, 4)) for mode in ("bilinear", "nearest", "bicubic")],
    case("grid_sample 3-d N=0", lambda t: t.F.grid_sample(t.x(0, 2, 3, 3, 3), t.x(0, 2, 2, 2, 3), align_corners=False),
         (0, 2, 2, 2, 2)),
    case("grid_sample of an empty grid", lambda t: t.F.grid_sample(t.w(1, 2, 3, 3), t.x(1, 0, 4, 2),
                                                                     align_corners=False), (1, 2, 0, 4)),
    # attention
    case("sdpa L=0", lambda t: t.F.scaled_dot_product_attention(t.x(2, 0, 4), t.w(2, 3, 4), t.w(2, 3, 4)), (2, 0, 4)),
    case("sdpa S=0 (no keys: zeros)", lambda t: t.F.scaled_dot_product_attention(t.w(2, 3, 4), t.x(2, 0, 4),
                                                                                   t.x(2, 0, 4)), (2, 3, 4)),
    case("sdpa N=0", lambda t: t.F.scaled_dot_product_attention(t.x(0, 3, 4), t.x(0, 3, 4), t.x(0, 3, 4)), (0, 3, 4)),
    case("sdpa causal L=S=0", lambda t: t.F.scaled_dot_product_attention(t.x(2, 0, 4), t.x(2, 0, 4), t.x(2, 0, 4),
                                                                           is_causal=True), (2, 0, 4)),
    case("sdpa L=0 with a bool mask", lambda t: t.F.scaled_dot_product_attention(
        t.x(2, 0, 4), t.w(2, 3, 4), t.w(2, 3, 4), attn_mask=t.b(0, 3)), (2, 0, 4)),
    case("sdpa E=0 (uniform weights)", lambda t: t.F.scaled_dot_product_attention(t.x(2, 3, 0), t.x(2, 3, 0),
                                                                                    t.w(2, 3, 4)), (2, 3, 4),
         zero_grads=False),
    case("MultiheadAttention L=0", lambda t: t.mod(lambda nn: nn.MultiheadAttention(4, 2))(
        t.x(0, 2, 4), t.x(0, 2, 4), t.x(0, 2, 4)), (0, 2, 4), (2, 0, 0)),
    case("MultiheadAttention N=0 batch_first, padding mask", lambda t: t.mod(
        lambda nn: nn.MultiheadAttention(4, 2, batch_first=True))(t.x(0, 3, 4), t.x(0, 3, 4), t.x(0, 3, 4),
                                                                  key_padding_mask=t.b(0, 3)), (0, 3, 4), (0, 3, 3)),
    case("MultiheadAttention S=0", lambda t: t.mod(lambda nn: nn.MultiheadAttention(4, 2))(
        t.w(3, 2, 4), t.x(0, 2, 4), t.x(0, 2, 4)), (3, 2, 4), (2, 3, 0), zero_grads=False),
    *[case(f"TransformerEncoderLayer {what} norm_first={first}", lambda t, shape=shape, first=first: t.mod(
        lambda nn: nn.TransformerEncoderLayer(4, 2, 8, 0.0, norm_first=first))(t.x(*shape)), shape)
      for what, shape in (("L=0", (0, 2, 4)), ("N=0", (3, 0, 4))) for first in (False, True)],
    case("TransformerDecoderLayer L=0", lambda t: t.mod(lambda nn: nn.TransformerDecoderLayer(4, 2, 8, 0.0))(
        t.x(0, 2, 4), t.w(3, 2, 4)), (0, 2, 4)),
    case("TransformerDecoderLayer empty memory", lambda t: t.mod(lambda nn: nn.TransformerDecoderLayer(4, 2, 8, 0.0))(
        t.w(3, 2, 4), t.x(0, 2, 4)), (3, 2, 4), zero_grads=False),
    case("Transformer N=0", lambda t: t.mod(lambda nn: nn.Transformer(4, 2, 1, 1, 8, 0.0))(t.x(3, 0, 4), t.x(2, 0, 4)),
         (2, 0, 4)),
    # recurrent layers: an empty batch (a zero-length sequence is refused, see REFUSED)
    *[case(f"{kind} N=0 bidirectional 2 layers", lambda t, kind=kind: t.mod(
        lambda nn: getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True))(t.x(5, 0, 3)), (5, 0, 8), (4, 0, 4),
        *([(4, 0, 4)] if kind == "LSTM" else [])) for kind in ("RNN", "GRU", "LSTM")],
    case("LSTM N=0 batch_first, proj_size, given states", lambda t: t.mod(
        lambda nn: nn.LSTM(3, 4, batch_first=True, proj_size=2))(t.x(0, 5, 3), (t.x(1, 0, 2), t.x(1, 0, 4))),
        (0, 5, 2), (1, 0, 2), (1, 0, 4)),
    *[case(f"{kind}Cell N=0", lambda t, kind=kind: t.mod(lambda nn: getattr(nn, f"{kind}Cell")(3, 4))(t.x(0, 3)),
           *([(0, 4)] * (2 if kind == "LSTM" else 1))) for kind in ("RNN", "GRU", "LSTM")],
    # losses: mean over an empty batch is NaN (0/0), sum 0, none empty
    *losses("mse_loss", lambda t, r: t.F.mse_loss(t.x(0, 3), t.c(0, 3), reduction=r), (0, 3)),
    *losses("l1_loss", lambda t, r: t.F.l1_loss(t.x(0, 3), t.c(0, 3), reduction=r), (0, 3)),
    *losses("smooth_l1_loss", lambda t, r: t.F.smooth_l1_loss(t.x(0, 3), t.c(0, 3), reduction=r), (0, 3)),
    *losses("huber_loss", lambda t, r: t.F.huber_loss(t.x(0, 3), t.c(0, 3), reduction=r), (0, 3)),
    *losses("binary_cross_entropy", lambda t, r: t.F.binary_cross_entropy(t.x(0, 3), t.c(0, 3), reduction=r), (0, 3)),
    *losses("binary_cross_entropy_with_logits pos_weight", lambda t, r: t.F.binary_cross_entropy_with_logits(
        t.x(0, 3), t.c(0, 3), pos_weight=t.c(3) + 1, reduction=r), (0, 3)),
    *losses("cross_entropy", lambda t, r: t.F.cross_entropy(t.x(0, 3), t.i(0), reduction=r)),
    *losses("cross_entropy weight", lambda t, r: t.F.cross_entropy(t.x(0, 3), t.i(0), weight=t.c(3) + 1,
                                                                   reduction=r)),
    *losses("cross_entropy label_smoothing", lambda t, r: t.F.cross_entropy(t.x(0, 3), t.i(0), reduction=r,
                                                                            label_smoothing=0.1)),
    *losses("cross_entropy probabilities", lambda t, r: t.F.cross_entropy(t.x(0, 3), t.c(0, 3), reduction=r)),
    *losses("cross_entropy (N, C, H, W)", lambda t, r: t.F.cross_entropy(t.x(0, 3, 2, 2), t.i(0, 2, 2),
                                                                         reduction=r), (0, 2, 2)),
    *losses("cross_entropy every target ignored", lambda t, r: t.F.cross_entropy(  # not empty: 0/0 may warn
        t.w(2, 3), t.i(values=[1, 1]), ignore_index=1, reduction=r), (2,), quiet=False),
    *losses("cross_entropy probabilities, 0 classes", lambda t, r: t.F.cross_entropy(t.x(2, 0), t.c(2, 0),
                                                                                     reduction=r), (2,)),
    *losses("nll_loss weight", lambda t, r: t.F.nll_loss(t.x(0, 3), t.i(0), weight=t.c(3) + 1, reduction=r)),
    *losses("nll_loss every target ignored", lambda t, r: t.F.nll_loss(t.w(2, 3), t.i(values=[1, 1]), ignore_index=1,
                                                                       reduction=r), (2,), quiet=False),
    *losses("kl_div log_target", lambda t, r: t.F.kl_div(t.x(0, 3), t.c(0, 3), reduction=r, log_target=True),
            (0, 3)),
    case("kl_div batchmean N=0", lambda t: t.F.kl_div(t.x(0, 3), t.c(0, 3), reduction="batchmean"), (),
         values=[NAN]),
    *losses("poisson_nll_loss", lambda t, r: t.F.poisson_nll_loss(t.x(0, 3), t.c(0, 3), reduction=r), (0, 3)),
    *losses("gaussian_nll_loss", lambda t, r: t.F.gaussian_nll_loss(t.x(0, 3), t.c(0, 3), t.x(0, 3) + 1,
                                                                   reduction=r), (0, 3)),
    *losses("cosine_embedding_loss", lambda t, r: t.F.cosine_embedding_loss(t.x(0, 3), t.x(0, 3), t.c(0),
                                                                           reduction=r)),
    *losses("margin_ranking_loss", lambda t, r: t.F.margin_ranking_loss(t.x(0), t.x(0), t.c(0), reduction=r)),
    *losses("triplet_margin_loss swap", lambda t, r: t.F.triplet_margin_loss(t.x(0, 3), t.x(0, 3), t.x(0, 3),
                                                                              swap=True, reduction=r)),
    *losses("triplet_margin_with_distance_loss", lambda t, r: t.F.triplet_margin_with_distance_loss(
        t.x(0, 3), t.x(0, 3), t.x(0, 3), reduction=r)),
    *losses("soft_margin_loss", lambda t, r: t.F.soft_margin_loss(t.x(0, 3), t.c(0, 3), reduction=r), (0, 3)),
    *losses("multilabel_soft_margin_loss", lambda t, r: t.F.multilabel_soft_margin_loss(t.x(0, 3), t.c(0, 3),
                                                                                       reduction=r)),
    *losses("hinge_embedding_loss", lambda t, r: t.F.hinge_embedding_loss(t.x(0, 3), t.c(0, 3), reduction=r),
            (0, 3)),
    case("CrossEntropyLoss module N=0", lambda t: t.mod(lambda nn: nn.CrossEntropyLoss())(t.x(0, 3), t.i(0)), (),
         values=[NAN]),
    case("AdaptiveLogSoftmaxWithLoss N=0", lambda t: t.mod(lambda nn: nn.AdaptiveLogSoftmaxWithLoss(4, 10, [3, 6]))(
        t.x(0, 4), t.i(0)), (0,), (), values=[NAN]),
    case("one_hot of no indices", lambda t: t.F.one_hot(t.i(0), 3), (0, 3)),
]


@pytest.mark.parametrize("build, shapes, values, zero_grads, quiet", CASES)
def test_zero_size_input_as_pytorch(build, shapes, values, zero_grads, quiet, device):
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("error", RuntimeWarning)  # no NumPy 0/0 warning on an empty batch
        outputs, grads = run(OURS, build, device)
    if TORCH is not None:
        _assert_same(outputs, grads, *run(TORCH, build, "cpu"))
    assert [shape for shape, _, _ in outputs] == list(shapes)
    if values is not None:
        got = [float(v.reshape(-1)[0]) for _, _, v in outputs if v.size == 1]
        np.testing.assert_allclose(got, values, equal_nan=True)
    for shape, grad in grads:
        assert grad.shape == shape
        assert not zero_grads or not grad.any()


def _assert_same(outputs, grads, torch_outputs, torch_grads):
    assert [(s, d) for s, d, _ in outputs] == [(s, d) for s, d, _ in torch_outputs]
    for (_, _, ours), (_, _, theirs) in zip(outputs, torch_outputs):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5, equal_nan=True)
    for (shape, ours), (their_shape, theirs) in zip(grads, torch_grads, strict=True):
        assert shape == their_shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5, equal_nan=True)


# ------------------------------------------------------------------------- what PyTorch refuses

REFUSED = [  # (name, call, words our error must hold); PyTorch raises on each too
    ("max_pool2d C=0", lambda t: t.F.max_pool2d(t.x(2, 0, 4, 4), 2), "size 0 in dim 1"),
    ("max_pool2d unbatched C=0", lambda t: t.F.max_pool2d(t.x(0, 4, 4), 2), "size 0 in dim 0"),
    ("max_pool1d of a 1-D input", lambda t: t.F.max_pool1d(t.x(4), 2), "unsqueeze"),
    ("avg_pool1d of a 1-D input", lambda t: t.F.avg_pool1d(t.x(4), 2), "unsqueeze"),
    ("avg_pool1d C=0", lambda t: t.F.avg_pool1d(t.x(2, 0, 4), 2), "size 0 in dim 1"),
    ("avg_pool3d C=0", lambda t: t.F.avg_pool3d(t.x(2, 0, 4, 4, 4), 2), "size 0 in dim 1"),
    ("lp_pool2d C=0", lambda t: t.F.lp_pool2d(t.x(2, 0, 4, 4), 2.0, 2), "lp_pool2d"),
    ("adaptive_max_pool2d C=0", lambda t: t.F.adaptive_max_pool2d(t.x(2, 0, 4, 4), 2), "size 0 in dim 1"),
    ("adaptive_max_pool1d L=0", lambda t: t.F.adaptive_max_pool1d(t.x(2, 2, 0), 2), "size 0 in dim 2"),
    ("adaptive_avg_pool2d H=0", lambda t: t.F.adaptive_avg_pool2d(t.x(2, 2, 0, 4), 2), "size 0 in dim 2"),
    ("adaptive_avg_pool3d C=0", lambda t: t.F.adaptive_avg_pool3d(t.x(2, 0, 4, 4, 4), 2), "size 0 in dim 1"),
    ("fractional_max_pool2d C=0", lambda t: t.F.fractional_max_pool2d(t.x(2, 0, 5, 5), 2, output_size=3),
     "size 0 in dim 1"),
    ("max_unpool2d W=0", lambda t: t.F.max_unpool2d(t.x(2, 2, 4, 0), t.i(2, 2, 4, 0), 2), "size 0 in dim 3"),
    ("interpolate nearest C=0", lambda t: t.F.interpolate(t.x(2, 0, 3), size=4), "size 0 in dim 1"),
    ("interpolate bilinear C=0", lambda t: t.F.interpolate(t.x(2, 0, 3, 3), size=4, mode="bilinear"),
     "size 0 in dim 1"),
    ("interpolate area 3-d C=0", lambda t: t.F.interpolate(t.x(2, 0, 3, 3, 3), size=2, mode="area"),
     "size 0 in dim 1"),
    ("unfold C=0", lambda t: t.F.unfold(t.x(2, 0, 4, 4), 2), "size 0 in dim 1"),
    ("fold L=0", lambda t: t.F.fold(t.x(1, 8, 0), (1, 1), 2), "size 0 in dim 2"),
    ("conv2d with 0 output channels", lambda t: t.F.conv2d(t.x(1, 2, 5, 5), t.x(0, 2, 3, 3)), "0 output channels"),
    ("LSTM sequence length 0", lambda t: t.mod(lambda nn: nn.LSTM(3, 4))(t.x(0, 2, 3)), "sequence length 0"),
    ("GRU batch_first sequence length 0", lambda t: t.mod(lambda nn: nn.GRU(3, 4, batch_first=True))(t.x(2, 0, 3)),
     "sequence length 0"),
    ("RNN unbatched sequence length 0", lambda t: t.mod(lambda nn: nn.RNN(3, 4))(t.x(0, 3)), "sequence length 0"),
    ("LSTM input_size 0", lambda t: t.nn.LSTM(0, 4), "input_size"),
    ("ctc_loss of an empty batch", lambda t: t.F.ctc_loss(t.x(5, 0, 4), t.i(0, 3), t.i(0), t.i(0)), "empty"),
    ("multi_margin_loss of 0 classes", lambda t: t.F.multi_margin_loss(t.x(3, 0), t.i(3)), "classes C may not"),
    ("clip_grad_norm_ inf norm of an empty gradient", lambda t: t.nn.utils.clip_grad_norm_(
        [_with_grad(t, 0, 3)], 1.0, norm_type=math.inf), "empty tensor"),
]


def _with_grad(t, *shape):
    p = t.nn.Parameter(t.x(*shape).detach())
    p.grad = t.x(*shape).detach()
    return p


@pytest.mark.parametrize("build, words", [pytest.param(b, w, id=n) for n, b, w in REFUSED])
def test_what_pytorch_refuses_raises_a_clear_error(build, words, device):
    with pytest.raises((ShapeError, ValueError), match=words):
        build(Maker(OURS, device))
    if TORCH is not None:
        with pytest.raises((RuntimeError, ValueError, IndexError)):
            build(Maker(TORCH, "cpu"))


# --------------------------------------------------- where PyTorch 2.13 fails: the evident answer

TORCH_BUGS = [
    # torch's backward of these rejects its own gradient's shape (PixelShuffleBackward0)
    case("pixel_shuffle N=0", lambda t: t.F.pixel_shuffle(t.x(0, 4, 3, 3), 2), (0, 1, 6, 6)),
    case("pixel_unshuffle N=0", lambda t: t.F.pixel_unshuffle(t.x(0, 1, 4, 4), 2), (0, 4, 2, 2)),
    # torch's backward segfaults
    case("pdist N=0", lambda t: t.F.pdist(t.x(0, 3)), (0,)),
    # torch indexes weight[0] of an empty weight (IndexError: select())
    case("instance_norm affine N=0", lambda t: t.F.instance_norm(t.x(0, 3, 4), weight=t.w(3), bias=t.w(3)),
         (0, 3, 4)),
    case("InstanceNorm1d tracking stats, eval, N=0", lambda t: t.mod(
        lambda nn: nn.InstanceNorm1d(3, affine=True, track_running_stats=True)).eval()(t.x(0, 3, 4)), (0, 3, 4)),
    case("BatchNorm1d of 0 features", lambda t: t.mod(lambda nn: nn.BatchNorm1d(0))(t.x(4, 0)), (4, 0)),
    # torch's fast path reshapes an empty tensor with -1 (ambiguous)
    case("TransformerEncoderLayer N=0 with a padding mask", lambda t: t.mod(
        lambda nn: nn.TransformerEncoderLayer(4, 2, 8, 0.0))(t.x(3, 0, 4), src_key_padding_mask=t.b(0, 3)), (3, 0, 4)),
    # torch: "step must be nonzero"; empty bags give zeros, as with offsets
    case("embedding_bag 2-D, bags of length 0", lambda t: t.F.embedding_bag(t.i(2, 0), t.w(5, 3)), (2, 3)),
    # torch reads uninitialised memory for the mean and sum of an empty batch
    *losses("multi_margin_loss", lambda t, r: t.F.multi_margin_loss(t.x(0, 3), t.i(0), reduction=r)),
    *losses("multilabel_margin_loss", lambda t, r: t.F.multilabel_margin_loss(t.x(0, 3), t.i(0, 3), reduction=r)),
    # torch: NaN weight gradients (0 * inf) from a sum over no elements; ours are 0
    case("group_norm L=0", lambda t: t.F.group_norm(t.x(2, 4, 0), 2, t.w(4), t.w(4)), (2, 4, 0)),
    # torch's forward takes 0 channels but its backward refuses them
    case("adaptive_avg_pool2d C=0", lambda t: t.F.adaptive_avg_pool2d(t.x(2, 0, 4, 4), 2), (2, 0, 2, 2)),
    case("interpolate area C=0", lambda t: t.F.interpolate(t.x(2, 0, 4), size=2, mode="area"), (2, 0, 2)),
]


@pytest.mark.parametrize("build, shapes, values, zero_grads, quiet", TORCH_BUGS)
def test_where_pytorch_fails_we_give_the_evident_answer(build, shapes, values, zero_grads, quiet, device):
    outputs, grads = run(OURS, build, device)
    assert [shape for shape, _, _ in outputs] == list(shapes)
    if values is not None:
        np.testing.assert_allclose([float(v.reshape(-1)[0]) for _, _, v in outputs if v.size == 1], values,
                                   equal_nan=True)
    assert all(grad.shape == shape and not grad.any() for shape, grad in grads)


# ---------------------------------------------------------------------------- running statistics


def test_batch_norm_on_an_empty_batch_keeps_its_running_stats_and_counts_the_batch(device):
    """As PyTorch: nothing to average, so the statistics stay; the module still counts the step."""
    for momentum in (0.5, None):
        layer = tensor.nn.BatchNorm1d(3, momentum=momentum).to(device)
        layer.running_mean.data += 1.0
        layer(tensor.zeros(0, 3, device=device))
        np.testing.assert_array_equal(layer.running_mean.cpu().numpy(), [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(layer.running_var.cpu().numpy(), [1.0, 1.0, 1.0])
        assert int(layer.num_batches_tracked.item()) == 1
    mean, var = tensor.ones(3, device=device), tensor.ones(3, device=device)
    tensor.nn.functional.batch_norm(tensor.zeros(2, 3, 0, device=device), mean, var, training=True, momentum=0.5)
    np.testing.assert_array_equal(mean.cpu().numpy(), [1.0, 1.0, 1.0])


def test_instance_norm_on_an_empty_batch_keeps_its_running_stats(device):
    """Deliberately unlike PyTorch 2.13, which averages over no instances and stores NaN: an empty
    batch (a data-parallel rank with no samples, say) must not poison the statistics."""
    layer = tensor.nn.InstanceNorm1d(3, track_running_stats=True, momentum=0.5).to(device)
    layer(tensor.zeros(0, 3, 4, device=device))
    layer(tensor.zeros(2, 3, 0, device=device))
    np.testing.assert_array_equal(layer.running_mean.cpu().numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(layer.running_var.cpu().numpy(), [1.0, 1.0, 1.0])


# ------------------------------------------------------------------------------------ utilities


def test_clip_grad_norm_without_gradients_or_with_empty_ones(device):
    nothing = tensor.nn.Parameter(tensor.zeros(3, device=device))  # no .grad at all
    assert float(tensor.nn.utils.clip_grad_norm_([nothing], 1.0)) == 0.0
    assert float(tensor.nn.utils.clip_grad_norm_([], 1.0)) == 0.0
    empty = _with_grad(Maker(OURS, device), 0, 3)
    for norm_type in (2.0, 1.0, 0.0, 3.0):
        assert float(tensor.nn.utils.clip_grad_norm_([empty], 1.0, norm_type=norm_type)) == 0.0
    assert tuple(empty.grad.shape) == (0, 3)
    tensor.nn.utils.clip_grad_value_([empty], 1.0)
    assert tuple(empty.grad.shape) == (0, 3)


def test_parameters_to_vector_with_empty_parameters(device):
    utils = tensor.nn.utils
    vector = utils.parameters_to_vector([tensor.zeros(0, 3, device=device), tensor.ones(2, device=device)])
    np.testing.assert_array_equal(vector.cpu().numpy(), [1.0, 1.0])
    empty = tensor.nn.Parameter(tensor.zeros(0, 3, device=device))
    utils.vector_to_parameters(tensor.zeros(0, device=device), [empty])
    assert tuple(empty.shape) == (0, 3)
    with pytest.raises(ValueError, match="non-empty"):  # as torch.cat: nothing to concatenate
        utils.parameters_to_vector([])
