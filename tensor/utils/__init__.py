"""tensor.utils: helpers around the engine (PyTorch's torch.utils): activation checkpointing."""
from . import checkpoint

__all__ = ["checkpoint"]
