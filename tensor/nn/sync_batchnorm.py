"""SyncBatchNorm: batch normalisation whose training statistics cover the batches of every rank.

With small per-GPU batches (detection, segmentation, 3-D volumes) each rank's own statistics are too
noisy; SyncBatchNorm normalises with the mean and variance of the whole global batch, at the cost of
two small all-reduces per layer and step (see functional/sync_batch_norm.py).

The group is `process_group` when given, else the communicator of the DistributedDataParallel that
wraps the model (DDP hands it to its SyncBatchNorm layers), as PyTorch's default group. Without a
group of more than one rank, and in eval mode, it is a plain BatchNorm.
"""
from __future__ import annotations

from .module import Module
from .normalization import _BatchNorm


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C, *) inputs whose training statistics are all-reduced across a group's ranks."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group
        self._ddp_group = None  # set by DistributedDataParallel when process_group is None

    def forward(self, input):
        if input.dim() < 2:
            raise ValueError(f"SyncBatchNorm: expected at least 2D input (N, C, *), got {input.dim()}D input of "
                             f"shape {tuple(input.shape)}")
        group = self.process_group if self.process_group is not None else self._ddp_group
        if group is not None and getattr(group, "world_size", 1) <= 1:
            group = None
        return self._normalize(input, group)

    def __getstate__(self):
        # The group DDP lent is a live communicator: copies and pickles of the model do not take it along.
        state = self.__dict__.copy()
        state["_ddp_group"] = None
        return state

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """`module` with every BatchNorm1d/2d/3d (itself or nested) replaced by a SyncBatchNorm holding the
        same parameters, buffers and mode; other modules are kept (and returned) as they are."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            for name in ("weight", "bias"):
                setattr(converted, name, getattr(module, name))  # the same Parameters: optimizers keep working
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                converted.register_buffer(name, getattr(module, name))
            converted.train(module.training)
            return converted
        for name, child in list(module.named_children()):
            new = cls.convert_sync_batchnorm(child, process_group)
            if new is not child:
                setattr(module, name, new)
        return module
