"""tensor.nn.functional: the layers as functions (PyTorch's `torch.nn.functional`, usually `F`).

    import tensor.nn.functional as F
    loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
"""
from ...ops.layout import pad
from .activation import (
    celu, elu, gelu, glu, hardsigmoid, hardswish, hardtanh, leaky_relu, log_softmax, logsigmoid, mish, prelu, relu,
    relu6, selu, sigmoid, silu, softmax, softmin, softplus, softsign, tanh, tanhshrink, threshold,
)
from .inplace_activation import celu_, elu_, hardtanh_, leaky_relu_, relu_, selu_, threshold_
from .stochastic import gumbel_softmax, rrelu, rrelu_
from .distance import cosine_similarity, normalize, pairwise_distance, pdist
from .dropout import alpha_dropout, dropout, dropout1d, dropout2d, dropout3d, feature_alpha_dropout
from .likelihood_loss import gaussian_nll_loss, poisson_nll_loss
from .linear import linear
from .loss import cross_entropy, nll_loss
from .ctc_loss import ctc_loss
from .margin_loss import (
    cosine_embedding_loss, hinge_embedding_loss, margin_ranking_loss, multi_margin_loss, multilabel_margin_loss,
    multilabel_soft_margin_loss, soft_margin_loss, triplet_margin_loss, triplet_margin_with_distance_loss,
)
from .normalization import batch_norm, group_norm, layer_norm, rms_norm
from .pointwise_loss import (
    binary_cross_entropy, binary_cross_entropy_with_logits, huber_loss, kl_div, l1_loss, mse_loss, smooth_l1_loss,
)
from .sparse import embedding, one_hot
from .bilinear import bilinear
from .embedding_bag import embedding_bag
from .fold import fold, unfold
from .instance_norm import instance_norm, local_response_norm
from .shrink import hardshrink, softshrink
from .shuffle import channel_shuffle, pixel_shuffle, pixel_unshuffle

from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from .conv3d import conv3d, conv_transpose3d
from .pooling import avg_pool2d, max_pool2d
from .pooling1d import adaptive_avg_pool1d, adaptive_max_pool1d, avg_pool1d, max_pool1d
from .pooling3d import avg_pool3d, max_pool3d
from .adaptive_pooling import adaptive_avg_pool2d, adaptive_max_pool2d
from .adaptive_pooling3d import adaptive_avg_pool3d, adaptive_max_pool3d
from .pooling_aliases import (
    adaptive_max_pool1d_with_indices, adaptive_max_pool2d_with_indices, adaptive_max_pool3d_with_indices,
    max_pool1d_with_indices, max_pool2d_with_indices, max_pool3d_with_indices, upsample, upsample_bilinear,
    upsample_nearest,
)
from .lp_pool import lp_pool1d, lp_pool2d, lp_pool3d
from .fractional_pooling import (
    fractional_max_pool2d, fractional_max_pool2d_with_indices, fractional_max_pool3d,
    fractional_max_pool3d_with_indices,
)
from .unpool import max_unpool1d, max_unpool2d, max_unpool3d
from .resample import interpolate
from .sampling_grid import affine_grid, grid_sample
from .attention import scaled_dot_product_attention
