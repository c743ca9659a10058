"""torch.backends: the backend switches training scripts set at their top, with torch's names.

    tensor.backends.cudnn.benchmark = True               # nanoGPT, most vision scripts
    tensor.backends.cuda.matmul.allow_tf32 = True
    device = "mps" if tensor.backends.mps.is_available() else "cpu"

raygrad runs on NumPy and CuPy: it uses no cuDNN, no MPS and no oneDNN, so `cudnn`, `mps` and
`mkldnn` report themselves unavailable and their flags are recorded without effect (as torch's are on
a machine without those libraries). `cuda.matmul.allow_tf32` is `set_float32_matmul_precision`
seen as a flag, as in torch: True is 'high', False 'highest' (and matmuls stay full float32: see
tensor.runtime).
"""
from . import cuda, cudnn, mkldnn, mps

__all__ = ["cuda", "cudnn", "mkldnn", "mps"]
