"""tensor.utils.data: PyTorch's in-memory data API for scripts that port as they are.

    from tensor.utils.data import DataLoader, TensorDataset, random_split
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    for xb, yb in loader: ...

Dataset (map-style: __getitem__ and __len__), TensorDataset, Subset, random_split and a
single-process DataLoader with batch_size, shuffle, drop_last, collate_fn and generator. Batches
of a TensorDataset are gathered with one index per tensor (no per-sample Python loop). For data
on disk (Parquet, Arrow, CSV), sharded across Ray workers with exact resume, use dist.data instead.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor


class Dataset:
    """A map-style dataset: `dataset[i]` is one sample, `len(dataset)` how many there are."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__()")


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dim: dataset[i] = (t[i] for t in tensors)."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        sizes = [t.shape[0] if isinstance(t, Tensor) and t.dim() > 0 else None for t in tensors]
        if None in sizes:
            raise ShapeError("TensorDataset: every argument must be a Tensor with at least one dim, got "
                             f"{[type(t).__name__ if not isinstance(t, Tensor) else tuple(t.shape) for t in tensors]}")
        if len(set(sizes)) != 1:
            raise ShapeError(f"TensorDataset: tensors must share their first dim (the sample count), got sizes {sizes}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Disjoint random Subsets of the given lengths (ints summing to len(dataset), or fractions
    summing to 1, the remainder spread one by one from the first, as PyTorch does)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and math.isclose(sum(lengths), 1.0) and sum(lengths) <= 1:  # fractions (PyTorch's rule)
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n or any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths {lengths} must be non-negative ints summing to the dataset size "
                         f"{n}, or fractions summing to 1")
    order = _rng(generator).permutation(n).tolist()
    splits, start = [], 0
    for length in lengths:
        splits.append(Subset(dataset, order[start:start + int(length)]))
        start += int(length)
    return splits


class DataLoader:
    """Batches of a map-style dataset, in this process: for batch in DataLoader(ds, batch_size=32).

    shuffle draws a new order each epoch from `generator` (default: the engine's CPU generator, so
    tensor.manual_seed fixes it). collate_fn (default: stack samples field by field) turns a list of
    samples into a batch. num_workers must be 0: use dist.data's ShardedLoader for parallel reading.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 generator=None, **kwargs):
        if num_workers:
            raise ValueError(f"DataLoader: num_workers={num_workers} is not supported (this loader runs in the "
                             "calling process); use num_workers=0, or dist.data.ShardedLoader for parallel reads")
        if sampler is not None or batch_sampler is not None:
            raise ValueError("DataLoader: custom samplers are not supported; pass shuffle=True/False, or index "
                             "the dataset with a Subset")
        if batch_size is None or int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), bool(shuffle)
        self.drop_last, self.generator = bool(drop_last), generator
        self.collate_fn = collate_fn or default_collate

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = _rng(self.generator).permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            indices = order[start:start + self.batch_size]
            if isinstance(self.dataset, TensorDataset) and self.collate_fn is default_collate:
                yield list(self.dataset[_as_index(indices, self.dataset.tensors[0])])  # one gather per tensor
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in indices])


def default_collate(samples):
    """Stack a list of samples: Tensors and arrays stack on a new first dim, numbers become a
    tensor, tuples/lists/dicts are collated field by field."""
    from .. import stack, tensor

    first = samples[0]
    if isinstance(first, Tensor):
        return stack(samples)
    if isinstance(first, (np.ndarray, np.generic, int, float, bool)):
        return tensor(np.stack([np.asarray(s) for s in samples]))
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):  # a list of fields, as PyTorch's collate gives for tuples too
        return [default_collate(list(field)) for field in zip(*samples)]
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; pass collate_fn=")


def _rng(generator):
    """A NumPy Generator: the given one (ours or NumPy's), else the engine's default CPU generator."""
    from .. import random

    if isinstance(generator, np.random.Generator):
        return generator
    return (generator or random.default_generator("cpu")).rng


def _as_index(indices, like):
    """Row indices as an index array on the tensors' device."""
    from .. import tensor

    return tensor(np.asarray(indices, dtype=np.int64), device=like.device)
