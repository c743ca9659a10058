"""nn.DataParallel: PyTorch's single-process multi-GPU wrapper, which here wraps without splitting.

raygrad runs one device per process (several GPUs train through dist.DistributedDataParallel, one Ray
actor per GPU), so DataParallel runs the wrapped module whole on the module's own device, as PyTorch's
does when it has one device or none. It keeps PyTorch's `module.` prefix in state_dict keys, so
checkpoints move between the two unchanged.
"""
from __future__ import annotations

from .module import Module


class DataParallel(Module):
    """DataParallel(module, device_ids=None, output_device=None, dim=0): forward is module(*inputs)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: expects an nn.Module to wrap, got {type(module).__name__}")
        self.module = module
        # recorded only: the batch is not scattered over them (one device per process; see above)
        self.device_ids = [] if device_ids is None else list(device_ids)
        self.output_device = output_device
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)
