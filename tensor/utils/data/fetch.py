"""What both DataLoader iterators share: the fetchers, which turn one index (or one list of indices)
from the sampler into one batch the same way in the main process and in a worker, and BaseIter."""
from __future__ import annotations

import numpy as np

from .collate import default_collate
from .dataset import Subset, TensorDataset
from .sampler import _rng


class MapFetcher:
    """dataset[index] for each index, then collate_fn; a TensorDataset (or a Subset of one) with the
    default collate is gathered with one index per tensor instead of one lookup per sample."""

    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn
        self.tensor_rows = auto_collation and collate_fn is default_collate and _tensor_rows(dataset)

    def fetch(self, index):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        if self.tensor_rows:
            return _gather_rows(self.tensor_rows, index)
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = getitems(index) if callable(getitems) else [self.dataset[i] for i in index]
        return self.collate_fn(samples)


class IterableFetcher:
    """The next sample (or the next `len(index)` samples, collated) of the dataset's stream; raises
    StopIteration when it runs dry (with drop_last, also when the last batch would be short)."""

    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.stream, self.auto_collation = iter(dataset), auto_collation
        self.collate_fn, self.drop_last, self.ended = collate_fn, drop_last, False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.stream))
        samples = []
        for _ in index:
            try:
                samples.append(next(self.stream))
            except StopIteration:
                self.ended = True
                break
        if not samples or (self.drop_last and len(samples) < len(index)):
            raise StopIteration
        return self.collate_fn(samples)


class BaseIter:
    """One pass over a DataLoader: the index stream, plus the seed its workers derive theirs from
    (drawn first, as PyTorch does, so that a shuffle is the same with and without workers)."""

    def __init__(self, loader):
        self._dataset, self._iterable = loader.dataset, loader._iterable
        self._auto_collation, self._collate_fn = loader.batch_sampler is not None, loader.collate_fn
        self._drop_last, self._index_sampler = loader.drop_last, loader._index_sampler
        self._base_seed = int(_rng(loader.generator, "DataLoader").integers(0, 2**63 - 1))
        self._sampler_iter = iter(self._index_sampler)

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._index_sampler)


def make_fetcher(dataset, iterable, auto_collation, collate_fn, drop_last):
    fetcher = IterableFetcher if iterable else MapFetcher
    return fetcher(dataset, auto_collation, collate_fn, drop_last)


def _tensor_rows(dataset):
    """(base TensorDataset, index map or None) when `dataset` is a TensorDataset or nested Subsets of
    one, else None. The map is built once here, not once per batch."""
    index_map = None
    while type(dataset) is Subset:
        here = np.asarray(dataset.indices, dtype=np.int64)
        index_map = here if index_map is None else here[index_map]
        dataset = dataset.dataset
    return (dataset, index_map) if type(dataset) is TensorDataset else None


def _gather_rows(rows, indices):
    """The batch at `indices`: a list with one gathered tensor per field, exactly what default_collate
    gives for those samples."""
    from ... import tensor

    dataset, index_map = rows
    indices = np.asarray(indices, dtype=np.int64)
    if index_map is not None:
        indices = index_map[indices]
    return list(dataset[tensor(indices, device=dataset.tensors[0].device)])
