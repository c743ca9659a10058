"""Lazy normalisation layers: LazyBatchNorm1d/2d/3d and LazyInstanceNorm1d/2d/3d (PyTorch's
_LazyNormBase), whose num_features is the input's channel count at the first call.

Until then weight and bias are UninitializedParameters and running_mean / running_var
UninitializedBuffers (num_batches_tracked, a scalar, exists from the start). The first call
materialises them, resets them (weight 1, bias 0, mean 0, var 1) and turns the module into its
plain class. Unlike PyTorch, num_features is also read from the input when nothing was lazy
(affine=False, track_running_stats=False) or the state came from load_state_dict, where PyTorch
leaves it 0; and an unbatched InstanceNorm input counts its channels on dim 0, not dim 1.
"""
from __future__ import annotations

from .. import dtypes
from ..autograd import no_grad
from ..creation import tensor
from .instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, _InstanceNorm
from .lazy import LazyModuleMixin, UninitializedBuffer, UninitializedParameter, _first_input
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d


class _LazyNormBase(LazyModuleMixin):
    """Put first among the bases, before the plain norm class (which it builds with 0 features)."""

    def __init__(self, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None, dtype=None, *,
                 bias=True):
        # affine and track_running_stats off here: the plain class would make tensors of 0 features.
        super().__init__(0, eps, momentum, False, False, device, dtype, bias=False)
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = UninitializedParameter(device=device, dtype=dtype)
            if bias:
                self.bias = UninitializedParameter(device=device, dtype=dtype)
        if track_running_stats:
            self.running_mean = UninitializedBuffer(device=device, dtype=dtype)
            self.running_var = UninitializedBuffer(device=device, dtype=dtype)
            self.num_batches_tracked = tensor(0, dtype=dtypes.int64, device=device)

    def reset_parameters(self):
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, *args, **kwargs):
        input = _first_input(self, args, kwargs)  # noqa: A001
        features = input.shape[self._feature_dim(input)]
        if self.has_uninitialized_params():
            self.num_features = features
            with no_grad():
                for name in ("weight", "bias", "running_mean", "running_var"):
                    if getattr(self, name) is not None:
                        getattr(self, name).materialize((features,))
                self.reset_parameters()
        elif self.num_features == 0:  # nothing lazy, or materialised by load_state_dict
            self.num_features = features

    def _feature_dim(self, input):
        """The channel dim of `input`, after checking its rank as forward would (before materialising)."""
        if isinstance(self, _InstanceNorm):
            dims = (self._unbatched_dims, self._unbatched_dims + 1)
        else:
            dims = self._dims
        if input.dim() not in dims:
            expected = " or ".join(f"{d}D" for d in dims)
            raise ValueError(f"{type(self).__name__}: expected {expected} input, got {input.dim()}D input of shape "
                             f"{tuple(input.shape)}")
        return input.dim() - self._unbatched_dims if isinstance(self, _InstanceNorm) else 1


class LazyBatchNorm1d(_LazyNormBase, BatchNorm1d):
    """BatchNorm1d whose num_features is input.shape[1] at the first call; a BatchNorm1d afterwards."""

    cls_to_become = BatchNorm1d


class LazyBatchNorm2d(_LazyNormBase, BatchNorm2d):
    """BatchNorm2d whose num_features is input.shape[1] at the first call; a BatchNorm2d afterwards."""

    cls_to_become = BatchNorm2d


class LazyBatchNorm3d(_LazyNormBase, BatchNorm3d):
    """BatchNorm3d whose num_features is input.shape[1] at the first call; a BatchNorm3d afterwards."""

    cls_to_become = BatchNorm3d


class LazyInstanceNorm1d(_LazyNormBase, InstanceNorm1d):
    """InstanceNorm1d whose num_features is the input's channel count at the first call. Note PyTorch's
    defaults here: affine=True and track_running_stats=True (the plain class defaults to False)."""

    cls_to_become = InstanceNorm1d


class LazyInstanceNorm2d(_LazyNormBase, InstanceNorm2d):
    """InstanceNorm2d whose num_features is the input's channel count at the first call (affine=True and
    track_running_stats=True by default, as in PyTorch)."""

    cls_to_become = InstanceNorm2d


class LazyInstanceNorm3d(_LazyNormBase, InstanceNorm3d):
    """InstanceNorm3d whose num_features is the input's channel count at the first call (affine=True and
    track_running_stats=True by default, as in PyTorch)."""

    cls_to_become = InstanceNorm3d
