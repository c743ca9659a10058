"""tensor.nn.functional: the layers as functions (PyTorch's `torch.nn.functional`, usually `F`).

    import tensor.nn.functional as F
    loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
"""
from ...ops.layout import pad
from .activation import (
    celu, elu, gelu, glu, hardsigmoid, hardswish, hardtanh, leaky_relu, log_softmax, logsigmoid, mish, prelu, relu,
    relu6, selu, sigmoid, silu, softmax, softmin, softplus, softsign, tanh, tanhshrink, threshold,
)
from .distance import cosine_similarity, normalize, pairwise_distance
from .dropout import alpha_dropout, dropout, dropout1d, dropout2d
from .linear import linear
from .loss import cross_entropy, nll_loss
from .normalization import batch_norm, group_norm, layer_norm, rms_norm
from .pointwise_loss import (
    binary_cross_entropy, binary_cross_entropy_with_logits, huber_loss, kl_div, l1_loss, mse_loss, smooth_l1_loss,
)
from .sparse import embedding, one_hot

# ---- convolution, pooling, attention, rnn: filled in by their author (functional/conv.py, pooling.py,
# ---- attention.py, rnn.py), e.g.
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from .pooling import (
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool1d, adaptive_max_pool2d, avg_pool1d, avg_pool2d,
    max_pool1d, max_pool2d,
)
from .resample import interpolate
from .attention import scaled_dot_product_attention
# ---- end of the block
