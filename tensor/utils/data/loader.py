"""DataLoader, with PyTorch's signature and checks, and its single-process iterator.

    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=2)
    for xb, yb in loader: ...

num_workers=0 loads in the calling process; num_workers > 0 in worker processes (worker.py).
pin_memory (and pin_memory_device) are accepted so that scripts port unchanged, and do nothing:
batches are host arrays already; move them to the GPU with .to(device). As in PyTorch, a dataset
whose tensors live on the GPU loads with num_workers=0: a forked worker cannot use CUDA.
"""
from __future__ import annotations

import math
import os
import warnings

from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .fetch import BaseIter, make_fetcher
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _InfiniteConstantSampler, _positive_int

# Settings that fix the index stream: PyTorch refuses to change them once the loader exists.
_FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class DataLoader:
    """Batches of `dataset` (map-style or an IterableDataset), as torch.utils.data.DataLoader.

    shuffle draws a new order each epoch from `generator` (default: the engine's CPU generator, so
    tensor.manual_seed fixes it); sampler / batch_sampler choose the indices instead. batch_size=None
    turns batching off (each sample goes through collate_fn, default_convert by default). With
    num_workers > 0, worker processes (started with `multiprocessing_context`, 'fork' on Linux by
    default) load batches ahead, prefetch_factor each, and the batches come back in sampler order
    (in_order=False: as they are ready). timeout bounds the wait for one batch (seconds, 0: none);
    persistent_workers keeps the workers across epochs.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        prefetch_factor = _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers)
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader: an IterableDataset decides its own order, so {name} must be "
                                     f"left unset, got {name}={value!r}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive; shuffle in the sampler "
                             "(e.g. RandomSampler) instead")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler is mutually exclusive with batch_size, shuffle, sampler "
                                 f"and drop_last (got batch_size={batch_size!r}, shuffle={shuffle}, sampler="
                                 f"{sampler!r}, drop_last={drop_last}); the batch sampler decides all of them")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None turns batching off, so drop_last=True has no batch to "
                                 "drop; pass a batch_size or drop_last=False")
        elif not _positive_int(batch_size):
            raise ValueError("DataLoader: batch_size must be a positive int (or None to turn batching off), got "
                             f"{batch_size!r}")
        if sampler is None:
            sampler = (_InfiniteConstantSampler() if iterable else
                       RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset))
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, bool(drop_last)
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.collate_fn = collate_fn or (default_collate if batch_sampler is not None else default_convert)
        self.num_workers, self.prefetch_factor, self.persistent_workers = num_workers, prefetch_factor, \
            persistent_workers
        self.pin_memory, self.pin_memory_device = pin_memory, pin_memory_device  # accepted; nothing to pin
        self.timeout, self.worker_init_fn, self.in_order = timeout, worker_init_fn, in_order
        self.multiprocessing_context = _context(multiprocessing_context, num_workers)
        self._iterable, self._iterator, self._initialized = iterable, None, True

    def __setattr__(self, name, value):
        if name in _FROZEN and getattr(self, "_initialized", False):
            raise ValueError(f"DataLoader: {name} cannot change once the DataLoader is built; make a new DataLoader")
        super().__setattr__(name, value)

    @property
    def _index_sampler(self):
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        from .worker import MultiProcessIter

        if not self.persistent_workers:
            return MultiProcessIter(self)
        if self._iterator is None or self._iterator._shutdown:  # first pass, or its workers failed
            self._iterator = MultiProcessIter(self)
        else:
            self._iterator._reset()
        return self._iterator

    def __len__(self):
        if not self._iterable:
            return len(self._index_sampler)
        n = len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


class _SingleProcessIter(BaseIter):
    """Loads each batch in the calling process when it is asked for."""

    def __init__(self, loader):
        super().__init__(loader)
        self._fetcher = make_fetcher(self._dataset, self._iterable, self._auto_collation, self._collate_fn,
                                     self._drop_last)

    def __next__(self):
        return self._fetcher.fetch(next(self._sampler_iter))


def _check_worker_options(num_workers, timeout, prefetch_factor, persistent_workers):
    """Validate the multi-process options as PyTorch does; returns the prefetch_factor to use."""
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
        raise ValueError(f"DataLoader: num_workers must be an int >= 0 (0 loads in this process), got "
                         f"num_workers={num_workers!r}")
    if timeout < 0:
        raise ValueError(f"DataLoader: timeout must be >= 0 seconds (0 waits forever), got timeout={timeout!r}")
    if timeout > 0 and num_workers == 0:
        raise ValueError(f"DataLoader: timeout={timeout} bounds the wait for worker processes, so it needs "
                         "num_workers > 0; pass timeout=0 to load in this process")
    if num_workers == 0:
        if prefetch_factor is not None:
            raise ValueError(f"DataLoader: prefetch_factor={prefetch_factor} needs num_workers > 0 (it counts batches "
                             "each worker loads ahead); leave it None to load in this process")
        if persistent_workers:
            raise ValueError("DataLoader: persistent_workers=True needs num_workers > 0")
        return None
    cpus = os.cpu_count() or 1
    if num_workers > cpus:
        warnings.warn(f"DataLoader: num_workers={num_workers} is more than the {cpus} CPUs here; the workers will "
                      "compete for them (and may slow loading down)", stacklevel=3)
    prefetch_factor = 2 if prefetch_factor is None else prefetch_factor
    if not _positive_int(prefetch_factor):
        raise ValueError(f"DataLoader: prefetch_factor must be a positive int, got prefetch_factor={prefetch_factor!r}")
    return prefetch_factor


def _context(context, num_workers):
    """The multiprocessing context workers start in: a start method's name, a context, or None (the default)."""
    if context is None:
        return None
    if num_workers == 0:
        raise ValueError(f"DataLoader: multiprocessing_context={context!r} needs num_workers > 0 (it starts the "
                         "worker processes)")
    import multiprocessing  # here, not at import: a loader without workers never needs it

    if isinstance(context, str):
        methods = multiprocessing.get_all_start_methods()
        if context not in methods:
            raise ValueError(f"DataLoader: multiprocessing_context={context!r} is not a start method here; use one "
                             f"of {methods}")
        return multiprocessing.get_context(context)
    if not isinstance(context, multiprocessing.context.BaseContext):
        raise TypeError("DataLoader: multiprocessing_context must be a start method's name ('fork', 'spawn', "
                        f"'forkserver') or a multiprocessing context, got {type(context).__name__}")
    return context
