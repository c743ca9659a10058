"""tensor.utils.data: PyTorch's torch.utils.data, so that a script's data code ports as it is.

    from tensor.utils.data import DataLoader, TensorDataset, random_split
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, num_workers=2)
    for xb, yb in loader: ...

dataset.py     Dataset, IterableDataset, TensorDataset, Subset, ConcatDataset, ChainDataset,
               StackDataset, random_split
sampler.py     Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler,
               WeightedRandomSampler, BatchSampler
distributed.py DistributedSampler (PyTorch's index assignment; WORLD_SIZE / RANK by default)
collate.py     default_collate, default_convert
fetch.py       index -> batch, shared by both iterators
loader.py      DataLoader and its single-process iterator
worker.py      worker processes: get_worker_info, the worker loop, the multi-process iterator

A TensorDataset (or a Subset of one) with the default collate is gathered a whole batch at a time.
For data on disk (Parquet, Arrow, CSV), sharded across Ray workers with exact resume, use dist.data.
"""
from .collate import default_collate, default_convert
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset,
                      random_split)
from .distributed import DistributedSampler
from .loader import DataLoader
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)
from .worker import WorkerInfo, get_worker_info

__all__ = [
    "BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
    "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset",
    "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "default_collate",
    "default_convert", "get_worker_info", "random_split",
]
