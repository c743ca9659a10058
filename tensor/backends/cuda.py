"""torch.backends.cuda: is_built, the matmul flags, and the scaled-dot-product-attention switches.

matmul.allow_tf32 reads and sets tensor.set_float32_matmul_precision ('high' is True), as torch
links them. The SDPA switches choose among kernels raygrad does not have (flash, memory-efficient,
cuDNN): raygrad's scaled_dot_product_attention is always the math path, which they leave enabled.
"""
from __future__ import annotations

from .. import runtime


def is_built() -> bool:
    """Whether CUDA support can be used here: CuPy imports and sees a GPU."""
    from .. import cuda

    return cuda.is_available()


class _MatmulFlags:
    """torch.backends.cuda.matmul: allow_tf32 and the reduced-precision reduction flags."""

    allow_fp16_reduced_precision_reduction = True
    allow_bf16_reduced_precision_reduction = True

    @property
    def allow_tf32(self) -> bool:
        return runtime.get_float32_matmul_precision() != "highest"

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        runtime.set_float32_matmul_precision("high" if value else "highest")


matmul = _MatmulFlags()
_sdp_enabled = {"flash": True, "mem_efficient": True, "math": True, "cudnn": True}


def _switch(kind):
    def enable(enabled: bool) -> None:
        _sdp_enabled[kind] = bool(enabled)

    def is_enabled() -> bool:
        return _sdp_enabled[kind]

    return enable, is_enabled


enable_flash_sdp, flash_sdp_enabled = _switch("flash")
enable_mem_efficient_sdp, mem_efficient_sdp_enabled = _switch("mem_efficient")
enable_math_sdp, math_sdp_enabled = _switch("math")
enable_cudnn_sdp, cudnn_sdp_enabled = _switch("cudnn")
