"""Datasets as in torch.utils.data: map-style (Dataset, TensorDataset, Subset, ConcatDataset,
StackDataset), iterable-style (IterableDataset, ChainDataset), and random_split.

A map-style dataset answers `dataset[i]` and `len(dataset)`; an iterable-style one is a stream
(`iter(dataset)`), which a DataLoader with workers copies into every worker (see get_worker_info()
for splitting the stream among them).
"""
from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from ...errors import ShapeError
from ...tensor import Tensor
from .sampler import _rng


class Dataset:
    """A map-style dataset: `dataset[i]` is one sample, `len(dataset)` how many there are."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __len__(self):  # TypeError, as len() of an object without __len__ raises (list() relies on it)
        raise TypeError(f"{type(self).__name__} has no len(): implement __len__()")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses implement __iter__. `a + b` chains two streams."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__()")

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it, it has no [index]")

    def __len__(self):
        raise TypeError(f"{type(self).__name__} has no len(): a stream need not know its length (implement "
                        "__len__() if it does)")

    def __add__(self, other):
        return ChainDataset([self, other])


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

    def __getitems__(self, indices):
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of several map-style datasets, one after the other. cumulative_sizes[k] is the
    number of samples in datasets[:k + 1]; negative indices count from the end."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets is empty; pass a list of at least one dataset")
        for k, d in enumerate(self.datasets):
            if isinstance(d, IterableDataset):
                raise TypeError(f"ConcatDataset: datasets[{k}] is an IterableDataset ({type(d).__name__}), which "
                                "has no indices; chain streams with ChainDataset instead")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    @staticmethod
    def cumsum(sequence):
        return list(itertools.accumulate(len(e) for e in sequence))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        n = len(self)
        if idx < 0:
            if -idx > n:  # ValueError, as PyTorch raises for this case
                raise ValueError(f"ConcatDataset: index {idx} is out of range for a dataset of {n} samples")
            idx += n
        if idx >= n:
            raise IndexError(f"ConcatDataset: index {idx} is out of range for a dataset of {n} samples")
        k = bisect.bisect_right(self.cumulative_sizes, idx)
        return self.datasets[k][idx - (self.cumulative_sizes[k - 1] if k else 0)]


class ChainDataset(IterableDataset):
    """The samples of several IterableDatasets, one stream after the other (built lazily on iteration)."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for k, d in enumerate(self.datasets):
            _check_iterable(d, k)
            yield from d

    def __len__(self):
        total = 0
        for k, d in enumerate(self.datasets):
            _check_iterable(d, k)
            total += len(d)
        return total


def _check_iterable(d, k):
    if not isinstance(d, IterableDataset):
        raise TypeError(f"ChainDataset: datasets[{k}] is a {type(d).__name__}, not an IterableDataset; "
                        "concatenate map-style datasets with ConcatDataset instead")


class StackDataset(Dataset):
    """Samples zipped from datasets of one length: StackDataset(a, b)[i] == (a[i], b[i]) and
    StackDataset(x=a, y=b)[i] == {'x': a[i], 'y': b[i]}."""

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError("StackDataset: pass datasets either positionally (samples are tuples) or by keyword "
                             "(samples are dicts), not both")
        if not args and not kwargs:
            raise ValueError("StackDataset: pass at least one dataset")
        self.datasets = args or kwargs
        named = kwargs or dict(enumerate(args))
        lengths = {key: len(d) for key, d in named.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"StackDataset: datasets must have the same length, got lengths {lengths}")
        self._length = next(iter(lengths.values()))

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices):
        named = self.datasets if isinstance(self.datasets, dict) else dict(enumerate(self.datasets))
        columns = {k: _items(d, indices) for k, d in named.items()}
        if isinstance(self.datasets, dict):
            return [dict(zip(columns, row)) for row in zip(*columns.values())]
        return [tuple(row) for row in zip(*columns.values())]

    def __len__(self):
        return self._length


def _items(dataset, indices):
    getitems = getattr(dataset, "__getitems__", None)
    if not callable(getitems):
        return [dataset[i] for i in indices]
    items = getitems(indices)
    if len(items) != len(indices):
        raise ValueError(f"StackDataset: {type(dataset).__name__}.__getitems__ returned {len(items)} samples for "
                         f"{len(indices)} indices")
    return items


def random_split(dataset, lengths, generator=None):
    """Disjoint random Subsets of the given lengths (ints summing to len(dataset), or fractions
    summing to 1, the remainder spread one by one from the first, as PyTorch does)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and math.isclose(sum(lengths), 1.0) and sum(lengths) <= 1:  # fractions (PyTorch's rule)
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction {frac} at index {i} is not between 0 and 1")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"random_split: split {i} is empty ({lengths[i]} of {n} samples)", stacklevel=2)
        lengths = counts
    if sum(lengths) != n or any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths {lengths} must be non-negative ints summing to the dataset size "
                         f"{n}, or fractions summing to 1")
    order = _rng(generator, "random_split").permutation(n).tolist()
    splits, start = [], 0
    for length in lengths:
        splits.append(Subset(dataset, order[start:start + int(length)]))
        start += int(length)
    return splits
