"""DistributedSampler: each of `num_replicas` data-parallel ranks reads its own share of a dataset.

Index assignment is PyTorch's exactly: one order per epoch (a permutation drawn from seed + epoch,
the same on every rank, or 0..n-1), padded by wrapping around to a multiple of num_replicas (or cut
down to one with drop_last), then rank r takes positions r, r + num_replicas, r + 2 * num_replicas...
Call set_epoch(epoch) before each epoch so that the shuffled order changes.
"""
from __future__ import annotations

import math
import os

from ...random import Generator
from .sampler import Sampler


class DistributedSampler(Sampler):
    """Indices of `dataset` for one rank. num_replicas and rank default to the WORLD_SIZE and RANK
    environment variables (raygrad's Ray workers export them, as torchrun does)."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        num_replicas = _from_env(num_replicas, "num_replicas", "WORLD_SIZE")
        rank = _from_env(rank, "rank", "RANK")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is out of range for num_replicas={num_replicas}; "
                             f"pass a rank in [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, int(seed), drop_last, 0
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)  # == n // num_replicas
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = Generator("cpu").manual_seed(self.seed + self.epoch).rng.permutation(n).tolist()
        else:
            indices = list(range(n))
        if self.drop_last:
            indices = indices[:self.total_size]
        elif indices:
            padding = self.total_size - n
            indices += (indices * math.ceil(padding / n))[:padding]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Use this epoch's order: every rank must call it with the same epoch before iterating."""
        self.epoch = int(epoch)


def _from_env(value, name, variable):
    if value is not None:
        return int(value)
    text = os.environ.get(variable)
    if text is None:
        raise RuntimeError(f"DistributedSampler: {name} was not given and {variable} is not set; pass "
                           "num_replicas= and rank= (raygrad's Ray workers and torchrun export WORLD_SIZE and RANK)")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"DistributedSampler: environment variable {variable}={text!r} is not an int; pass "
                         f"{name}= explicitly") from None
