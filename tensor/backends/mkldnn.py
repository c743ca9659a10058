"""torch.backends.mkldnn: oneDNN, which raygrad does not use (NumPy's BLAS does the CPU's products)."""
from __future__ import annotations

enabled = True


def is_available() -> bool:
    return False
