"""tensor.utils: helpers around the engine (PyTorch's torch.utils): activation checkpointing, and the
in-memory data API (Dataset, TensorDataset, DataLoader, random_split)."""
from . import checkpoint, data

__all__ = ["checkpoint", "data"]
