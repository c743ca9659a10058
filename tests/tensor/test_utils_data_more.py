"""tensor.utils.data beyond the basics: samplers (against torch.utils.data's), DistributedSampler,
ConcatDataset / ChainDataset / StackDataset, and the DataLoader's options and worker processes."""
import multiprocessing
import os
import signal
import time

import numpy as np
import pytest

import tensor
from tensor.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset, DistributedSampler,
                               IterableDataset, RandomSampler, SequentialSampler, StackDataset, Subset,
                               SubsetRandomSampler, TensorDataset, WeightedRandomSampler, default_convert,
                               get_worker_info)

from helpers import make, to_numpy

workers = pytest.mark.timeout(60)


class Squares(Dataset):
    """Map-style, NumPy samples (worker tests stay on the CPU: CUDA does not survive a fork)."""

    def __init__(self, n=12, fail_at=None, delay=0.0):
        self.n, self.fail_at, self.delay = n, fail_at, delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise ValueError(f"sample {i} is corrupt")
        time.sleep(self.delay)
        return {"x": np.full(2, i, np.float32), "y": i * i}


class Countdown(IterableDataset):
    """range(n), split among workers by get_worker_info() as PyTorch's docs do it."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


def _plain(batch):
    return np.asarray(batch["x"]).tolist(), np.asarray(batch["y"]).tolist()


def _ys(loader):
    return [batch["y"].tolist() for batch in loader]


# -------------------------------------------------------------------------------------------- samplers


def test_sequential_and_batch_samplers_match_torch():
    torch_data = pytest.importorskip("torch.utils.data")
    for n, size, drop_last in [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (2, 5, True)]:
        ours, theirs = BatchSampler(SequentialSampler(range(n)), size, drop_last), \
            torch_data.BatchSampler(torch_data.SequentialSampler(range(n)), size, drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
        listed = BatchSampler([5, 3, 1, 4, 2, 0, 6][:n], size, drop_last)  # any iterable: the general path
        assert list(listed) == list(torch_data.BatchSampler([5, 3, 1, 4, 2, 0, 6][:n], size, drop_last))
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="batch_size must be a positive int, got batch_size=0"):
        BatchSampler(range(3), 0, False)


def test_random_sampler_is_a_permutation_fixed_by_the_seed():
    def draw(**kwargs):
        tensor.manual_seed(7)
        return list(RandomSampler(range(20), **kwargs))

    order = draw()
    assert order == draw() and sorted(order) == list(range(20)) and order != list(range(20))
    generator = tensor.Generator().manual_seed(1)
    assert list(RandomSampler(range(20), generator=generator)) != list(RandomSampler(range(20), generator=generator))
    long = draw(num_samples=50)  # two whole permutations, then part of a third
    assert len(long) == 50 and sorted(long[:20]) == sorted(long[20:40]) == list(range(20))
    assert len(set(long[40:])) == 10
    with_replacement = draw(replacement=True, num_samples=200)
    assert with_replacement == draw(replacement=True, num_samples=200) and set(with_replacement) <= set(range(20))
    assert len(set(with_replacement)) < 200 and len(RandomSampler(range(20), num_samples=7)) == 7
    with pytest.raises(ValueError, match="num_samples must be a positive int, got num_samples=0"):
        RandomSampler([])
    with pytest.raises(TypeError, match="replacement must be a bool"):
        RandomSampler(range(3), replacement=1)


def test_subset_random_sampler_permutes_the_given_indices():
    tensor.manual_seed(0)
    first = list(SubsetRandomSampler([10, 20, 30, 40]))
    tensor.manual_seed(0)
    assert first == list(SubsetRandomSampler([10, 20, 30, 40])) and sorted(first) == [10, 20, 30, 40]


def test_weighted_random_sampler_frequencies_within_five_standard_errors(device):
    weights = make(np.array([1.0, 2.0, 0.0, 5.0]), device)
    n = 20000
    tensor.manual_seed(0)
    draws = np.array(list(WeightedRandomSampler(weights, n)))
    p = np.array([1, 2, 0, 5]) / 8
    freq = np.bincount(draws, minlength=4) / n
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n)) and freq[2] == 0
    tensor.manual_seed(0)
    assert list(WeightedRandomSampler([1.0, 2.0, 0.0, 5.0], n)) == draws.tolist()  # a list works as well
    unique = list(WeightedRandomSampler([1.0, 1.0, 1.0, 1.0], 4, replacement=False))
    assert sorted(unique) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"weights must be 1-D .* got shape \(2, 2\)"):
        WeightedRandomSampler([[1.0, 2.0], [3.0, 4.0]], 3)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        WeightedRandomSampler([1.0], 0)


# --------------------------------------------------------------------------------- DistributedSampler


@pytest.mark.parametrize("n, replicas, drop_last", [(10, 3, False), (10, 3, True), (9, 3, False), (2, 4, False),
                                                    (11, 4, True), (7, 1, False)])
def test_distributed_sampler_without_shuffle_matches_torch(n, replicas, drop_last):
    torch_data = pytest.importorskip("torch.utils.data")
    for rank in range(replicas):
        ours = DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = torch_data.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_shuffles_one_shared_permutation_per_epoch():
    def shares(epoch, seed=0):
        samplers = [DistributedSampler(range(10), 3, rank, seed=seed) for rank in range(3)]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        return [list(s) for s in samplers]

    first = shares(0)
    assert first == shares(0) and all(len(share) == 4 for share in first)  # 10 padded to 12 by wrapping around
    order = [first[i % 3][i // 3] for i in range(12)]  # undo the rank::num_replicas striding
    assert sorted(order[:10]) == list(range(10)) and order[10:] == order[:2]
    assert shares(1) != first and shares(0, seed=5) != first


def test_distributed_sampler_reads_world_size_and_rank_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    sampler = DistributedSampler(range(8), shuffle=False)
    assert (sampler.num_replicas, sampler.rank, list(sampler)) == (4, 3, [3, 7])
    with pytest.raises(ValueError, match=r"rank 4 is out of range for num_replicas=4; pass a rank in \[0, 3\]"):
        DistributedSampler(range(8), rank=4)
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(RuntimeError, match="WORLD_SIZE is not set; pass num_replicas= and rank="):
        DistributedSampler(range(8))


# ----------------------------------------------------------------------------------------- datasets


def test_concat_dataset_indexes_across_parts_like_torch():
    torch_data = pytest.importorskip("torch.utils.data")
    parts = [list(range(3)), list(range(10, 15)), [], list(range(20, 22))]
    ours, theirs = ConcatDataset(parts), torch_data.ConcatDataset(parts)
    assert ours.cumulative_sizes == theirs.cumulative_sizes == [3, 8, 8, 10] and len(ours) == 10
    assert [ours[i] for i in range(-10, 10)] == [theirs[i] for i in range(-10, 10)]
    assert isinstance(Subset(range(4), [1]) + Subset(range(4), [2]), ConcatDataset)
    with pytest.raises(ValueError, match="index -11 is out of range for a dataset of 10 samples"):
        ours[-11]
    with pytest.raises(IndexError, match="index 10 is out of range"):
        ours[10]
    with pytest.raises(TypeError, match=r"datasets\[1\] is an IterableDataset"):
        ConcatDataset([parts[0], Countdown(3)])
    with pytest.raises(ValueError, match="datasets is empty"):
        ConcatDataset([])


def test_chain_dataset_and_iterable_addition():
    chained = Countdown(3) + Countdown(2)
    assert isinstance(chained, ChainDataset) and list(chained) == [0, 1, 2, 0, 1]
    with pytest.raises(TypeError, match=r"datasets\[1\] is a list, not an IterableDataset"):
        list(ChainDataset([Countdown(1), [5]]))


def test_stack_dataset_tuples_dicts_and_batches(device):
    x = make(np.arange(8, dtype=np.float32).reshape(4, 2), device)
    images, labels = TensorDataset(x), [10, 11, 12, 13]
    pairs, named = StackDataset(images, labels), StackDataset(image=images, label=labels)
    assert len(pairs) == 4 and pairs[1][1] == 11 and to_numpy(pairs[1][0][0]).tolist() == [2.0, 3.0]
    assert set(named[2]) == {"image", "label"} and named[2]["label"] == 12
    assert [s[1] for s in pairs.__getitems__([3, 0])] == [13, 10]
    batch = next(iter(DataLoader(named, batch_size=4)))
    assert batch["label"].tolist() == [10, 11, 12, 13] and batch["image"][0].shape == (4, 2)
    with pytest.raises(ValueError, match="same length, got lengths"):
        StackDataset(images, [1, 2])
    with pytest.raises(ValueError, match="not both"):
        StackDataset(images, label=labels)


# ------------------------------------------------------------------------------- DataLoader options


def test_sampler_batch_sampler_and_batch_size_none(device):
    ds = TensorDataset(make(np.arange(6), device))
    assert [b[0].tolist() for b in DataLoader(ds, batch_size=2, sampler=[5, 0, 3, 1])] == [[5, 0], [3, 1]]
    batches = DataLoader(ds, batch_sampler=[[4, 2], [0], [1, 3, 5]])
    assert [b[0].tolist() for b in batches] == [[4, 2], [0], [1, 3, 5]] and len(batches) == 3
    unbatched = list(DataLoader(ds, batch_size=None))
    assert len(unbatched) == 6 and unbatched[2][0].tolist() == 2  # one sample at a time, not stacked
    converted = default_convert({"a": np.arange(3), "b": (np.float32(1.5), "text", 7)})
    assert isinstance(converted["a"], tensor.Tensor) and isinstance(converted["b"], list)
    assert converted["b"][0].dtype == tensor.float32 and converted["b"][1:] == ["text", 7]


def test_option_conflicts_are_refused_as_torch_refuses_them():
    ds = Squares()
    for kwargs, message in [
        (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler is mutually exclusive"),
        (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler is mutually exclusive"),
        (dict(sampler=[0, 1], shuffle=True), "sampler and shuffle=True are mutually exclusive"),
        (dict(batch_size=None, drop_last=True), "batch_size=None turns batching off"),
        (dict(prefetch_factor=2), "prefetch_factor=2 needs num_workers > 0"),
        (dict(persistent_workers=True), "persistent_workers=True needs num_workers > 0"),
        (dict(timeout=-1), "timeout must be >= 0"),
        (dict(num_workers=1, multiprocessing_context="nonsense"), "'nonsense' is not a start method"),
    ]:
        with pytest.raises(ValueError, match=message):
            DataLoader(ds, **kwargs)
    with pytest.raises(ValueError, match="shuffle must be left unset"):
        DataLoader(Countdown(3), shuffle=True)
    loader = DataLoader(ds, batch_size=3)
    with pytest.raises(ValueError, match="batch_size cannot change"):
        loader.batch_size = 4


# ---------------------------------------------------------------------------------- worker processes


@workers
def test_workers_give_the_same_batches_as_the_main_process():
    for kwargs in [dict(batch_size=5), dict(batch_size=4, shuffle=True, drop_last=True), dict(batch_size=None)]:
        tensor.manual_seed(3)
        alone = list(DataLoader(Squares(), **kwargs))
        tensor.manual_seed(3)
        pooled = list(DataLoader(Squares(), num_workers=2, **kwargs))
        assert [_plain(b) for b in alone] == [_plain(b) for b in pooled]
    ds = TensorDataset(tensor.arange(10), tensor.arange(10) * 2)  # the gathered fast path, in the workers
    assert [b[1].tolist() for b in DataLoader(ds, batch_size=4, num_workers=2)] == [[0, 2, 4, 6], [8, 10, 12, 14],
                                                                                    [16, 18]]
    unordered = DataLoader(Squares(), batch_size=3, num_workers=2, in_order=False)
    assert sorted(v for b in _ys(unordered) for v in b) == [i * i for i in range(12)]


@workers
def test_iterable_dataset_split_among_workers_by_get_worker_info():
    assert get_worker_info() is None
    batches = [b.tolist() for b in DataLoader(Countdown(10), batch_size=2, num_workers=2)]
    assert batches == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]  # worker 0's and 1's batches in turn
    assert [b.tolist() for b in DataLoader(Countdown(10), batch_size=3, num_workers=2, drop_last=True)] == \
        [[0, 2, 4], [1, 3, 5]]


def _describe_worker(_):
    info = get_worker_info()
    return info.id, info.num_workers, info.seed, type(info.dataset).__name__, float(np.random.rand()), \
        float(tensor.rand(1).item())


@workers
def test_each_worker_is_seeded_differently_and_calls_worker_init_fn():
    calls = multiprocessing.get_context("fork").Queue()
    loader = DataLoader(Squares(4), batch_size=None, num_workers=2, collate_fn=_describe_worker,
                        worker_init_fn=calls.put)
    (id0, n0, seed0, name, np0, t0), (id1, n1, seed1, _, np1, t1) = list(loader)[:2]
    assert (id0, id1, n0, n1, name) == (0, 1, 2, 2, "Squares") and seed1 == seed0 + 1
    assert np0 != np1 and t0 != t1
    assert sorted(calls.get(timeout=5) for _ in range(2)) == [0, 1]


@workers
def test_worker_exception_is_raised_with_its_traceback_and_worker_id():
    it = iter(DataLoader(Squares(fail_at=5), batch_size=2, num_workers=2))
    assert [next(it)["y"].tolist() for _ in range(2)] == [[0, 1], [4, 9]]
    with pytest.raises(ValueError, match=r"(?s)in DataLoader worker process 0.*Traceback.*sample 5 is corrupt"):
        next(it)  # batch [4, 5] is the third, worker 0's
    assert [b["y"].tolist() for b in it] == [[36, 49], [64, 81], [100, 121]]  # the pass goes on, as in PyTorch
    assert multiprocessing.active_children() == []


@workers
def test_a_killed_worker_is_reported_not_waited_for():
    it = iter(DataLoader(Squares(40, delay=0.01), batch_size=2, num_workers=2))
    next(it)
    os.kill(it._workers[0].pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker 0 \(pid \d+\) exited unexpectedly \(killed by signal SIGKILL\)"):
        for _ in it:
            pass
    assert time.monotonic() - start < 10 and multiprocessing.active_children() == []


@workers
def test_breaking_out_early_leaves_no_worker_alive():
    for batch in DataLoader(Squares(40, delay=0.01), batch_size=2, num_workers=2):
        break
    assert multiprocessing.active_children() == []
    it = iter(DataLoader(Squares(), batch_size=2, num_workers=2))
    next(it)
    del it
    assert multiprocessing.active_children() == []


@workers
def test_persistent_workers_are_reused_across_epochs():
    loader = DataLoader(Squares(), batch_size=5, num_workers=2, persistent_workers=True, shuffle=True)
    pids = None
    for _ in range(3):
        assert sorted(v for b in _ys(loader) for v in b) == [i * i for i in range(12)]
        assert pids in (None, [w.pid for w in loader._iterator._workers])
        pids = [w.pid for w in loader._iterator._workers]
    next(iter(loader))  # an epoch abandoned midway: the next one still sees every sample once
    assert sorted(v for b in _ys(loader) for v in b) == [i * i for i in range(12)]
    streams = DataLoader(Countdown(5), batch_size=2, num_workers=2, persistent_workers=True)
    assert [b.tolist() for b in streams] == [b.tolist() for b in streams] == [[0, 2], [1, 3], [4]]
    del loader, streams
    assert multiprocessing.active_children() == []


@workers
def test_timeout_and_spawned_workers():
    with pytest.raises(RuntimeError, match="timed out after 0.05 seconds"):
        list(DataLoader(Squares(4, delay=0.5), batch_size=2, num_workers=1, timeout=0.05))
    ds = TensorDataset(tensor.arange(6))
    spawned = DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    assert [b[0].tolist() for b in spawned] == [[0, 1, 2, 3], [4, 5]]
    assert multiprocessing.active_children() == []
