"""Samplers as in torch.utils.data: which dataset indices a DataLoader visits, and in what order.

Random samplers draw from the engine's CPU generator (or `generator=`, a tensor.Generator) when
iteration starts, so tensor.manual_seed(s) makes every epoch's order reproducible.
"""
from __future__ import annotations

import numbers

import numpy as np

from ...random import Generator, rng_for


class Sampler:
    """Iterates over dataset indices (or, for a batch sampler, lists of them). Subclasses implement
    __iter__, and __len__ where the count is known."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__()")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _indices(self):
        return np.arange(len(self.data_source))

    def __iter__(self):
        yield from self._indices().tolist()

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order: a fresh permutation each epoch, or with replacement=True `num_samples`
    independent uniform draws. Without replacement, num_samples > len(data_source) repeats whole
    permutations (then part of one), as PyTorch does."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement must be a bool, got replacement={replacement!r}")
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = _check_generator(generator, "RandomSampler")
        if not _positive_int(self.num_samples):
            raise ValueError(f"RandomSampler: num_samples must be a positive int, got num_samples={self.num_samples!r}"
                             + (" (the data source is empty)" if num_samples is None else ""))

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _indices(self):
        n, rng, count = len(self.data_source), _rng(self.generator), self.num_samples
        if self.replacement:
            return rng.integers(0, n, size=count, dtype=np.int64)
        parts = [rng.permutation(n) for _ in range(count // n)]
        parts.append(rng.permutation(n)[:count % n])
        return np.concatenate(parts)

    def __iter__(self):
        yield from self._indices().tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, a fresh one each epoch."""

    def __init__(self, indices, generator=None):
        self.indices, self.generator = indices, _check_generator(generator, "SubsetRandomSampler")

    def __iter__(self):
        for i in _rng(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices into `weights`, index i drawn with probability weights[i] / sum(weights)
    (with replacement by default; without, each index at most once)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        from ... import float64, tensor

        if not _positive_int(num_samples):
            raise ValueError(f"WeightedRandomSampler: num_samples must be a positive int, got {num_samples!r}")
        if not isinstance(replacement, bool):
            raise TypeError(f"WeightedRandomSampler: replacement must be a bool, got replacement={replacement!r}")
        array = np.asarray(weights.detach().cpu().numpy() if hasattr(weights, "detach") else weights,
                           dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"WeightedRandomSampler: weights must be 1-D (one per sample), got shape {array.shape}")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError("WeightedRandomSampler: generator must be a tensor.Generator, got "
                            f"{type(generator).__name__}")
        self.weights = tensor(array, dtype=float64)
        self.num_samples, self.replacement = int(num_samples), replacement
        self.generator = _check_generator(generator, "WeightedRandomSampler")

    def __iter__(self):
        from ... import multinomial

        yield from multinomial(self.weights, self.num_samples, self.replacement, generator=self.generator).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of `batch_size` (the last one shorter unless
    drop_last): list(BatchSampler(SequentialSampler(range(5)), 2, False)) == [[0, 1], [2, 3], [4]]."""

    def __init__(self, sampler, batch_size, drop_last):
        if not _positive_int(batch_size):
            raise ValueError(f"BatchSampler: batch_size must be a positive int, got batch_size={batch_size!r}")
        if not isinstance(drop_last, bool):
            raise TypeError(f"BatchSampler: drop_last must be a bool, got drop_last={drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        if hasattr(self.sampler, "_indices"):  # slice one index array instead of a Python loop per sample
            order, size = self.sampler._indices(), self.batch_size
            stop = len(order) - len(order) % size if self.drop_last else len(order)
            for start in range(0, stop, size):
                yield order[start:start + size].tolist()
            return
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class _InfiniteConstantSampler(Sampler):
    """None forever: the index stream of an IterableDataset, which ignores indices."""

    def __iter__(self):
        while True:
            yield None


def _positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _check_generator(generator, who):
    """A CPU tensor.Generator (or a NumPy Generator, which the DataLoader has always taken) or None."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if not isinstance(generator, Generator):
        raise TypeError(f"{who}: generator must be a tensor.Generator, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(f"{who}: samplers draw on the CPU; pass a tensor.Generator('cpu'), got one for "
                         f"{generator.device}")
    return generator


def _rng(generator, who="sampler"):
    """The NumPy Generator to draw from: `generator`'s, else the engine's default CPU one (looked up
    now, so that a manual_seed since construction counts)."""
    generator = _check_generator(generator, who)
    if isinstance(generator, np.random.Generator):
        return generator
    return rng_for("cpu", generator)
