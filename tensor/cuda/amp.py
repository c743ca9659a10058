"""tensor.cuda.amp: the older spelling of tensor.amp for CUDA, kept because many PyTorch scripts still
write `torch.cuda.amp.autocast()` and `torch.cuda.amp.GradScaler()` (deprecated in torch in favour of
`torch.amp.autocast("cuda")` and `torch.amp.GradScaler("cuda")`, which these are)."""
from __future__ import annotations

from .. import amp as _amp


class autocast(_amp.autocast):  # noqa: N801 - PyTorch's name
    """tensor.amp.autocast("cuda", ...): run matmul/linear/conv in float16 on CUDA inside it."""

    def __init__(self, enabled: bool = True, dtype=None, cache_enabled=None):
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class GradScaler(_amp.GradScaler):
    """tensor.amp.GradScaler("cuda", ...): dynamic loss scaling for float16 training."""

    def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)
