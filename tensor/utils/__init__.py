"""tensor.utils: helpers around the engine (PyTorch's torch.utils): activation checkpointing, the data
API (datasets, samplers, DataLoader), and tensorboard's SummaryWriter (imported on use:
`from tensor.utils.tensorboard import SummaryWriter`, as in torch)."""
from . import checkpoint, data

__all__ = ["checkpoint", "data"]
