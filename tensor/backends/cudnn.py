"""torch.backends.cudnn: raygrad uses no cuDNN (CuPy's convolutions are im2col and cuBLAS), so it is
unavailable and its flags are recorded only."""
from __future__ import annotations

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    return False


def version():
    """None: no cuDNN is loaded."""
    return None
