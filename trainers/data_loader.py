"""prepare_data_loader: a tensor.utils.data.DataLoader made ready for data-parallel ranks, as Ray Train's.

    loader = session.prepare_data_loader(DataLoader(dataset, batch_size=32, shuffle=True))
    for epoch in range(epochs):
        if session.get_context().get_world_size() > 1:
            loader.sampler.set_epoch(epoch)
        for x, y in loader: ...              # this rank's share, on its device

With more than one rank the loader is rebuilt around a DistributedSampler (PyTorch's index
assignment: each rank a disjoint share, padded to equal length), shuffled if the original loader
shuffled. Unlike get_dataset_shard's Arrow loader, its progress within an epoch is not checkpointed:
a restart repeats the epoch the script resumes at.
"""
from __future__ import annotations


def prepare(loader, world_size: int, rank: int, device: str, add_dist_sampler: bool, move_to_device: bool):
    from tensor.utils.data import DataLoader, DistributedSampler, IterableDataset, SequentialSampler

    if not isinstance(loader, DataLoader):
        raise TypeError(f"prepare_data_loader expects a tensor.utils.data.DataLoader, got {type(loader).__name__}; "
                        "for Parquet/Arrow data use session.get_dataset_shard(name, batch_size=...)")
    if (add_dist_sampler and world_size > 1 and not isinstance(loader.sampler, DistributedSampler)
            and not isinstance(loader.dataset, IterableDataset)):
        if loader.batch_size is None:
            raise ValueError("prepare_data_loader: the DataLoader has a batch_sampler (or batch_size=None), which "
                             "decides the indices itself; pass add_dist_sampler=False and shard in your batch "
                             "sampler, or give the DataLoader a batch_size")
        shuffle = not isinstance(loader.sampler, SequentialSampler)  # a DataLoader keeps no shuffle flag
        sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle)
        loader = DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                            num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                            pin_memory=loader.pin_memory, drop_last=loader.drop_last, timeout=loader.timeout,
                            worker_init_fn=loader.worker_init_fn,
                            multiprocessing_context=loader.multiprocessing_context,
                            generator=loader.generator, prefetch_factor=loader.prefetch_factor,
                            persistent_workers=loader.persistent_workers, in_order=loader.in_order)
    if move_to_device and device != "cpu":
        return DeviceLoader(loader, device)
    return loader  # batches are host tensors already


class DeviceLoader:
    """A DataLoader whose batches' tensors (in tuples, lists and dicts) come on `device`; every other
    attribute (sampler, dataset, batch_size...) is the wrapped loader's."""

    def __init__(self, loader, device: str):
        self.loader, self.device = loader, device

    def __iter__(self):
        for batch in self.loader:
            yield _to_device(batch, self.device)

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)


def _to_device(value, device):
    from tensor import Tensor

    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_to_device(item, device) for item in value)
    if isinstance(value, tuple):  # a namedtuple
        return type(value)(*(_to_device(item, device) for item in value))
    return value
