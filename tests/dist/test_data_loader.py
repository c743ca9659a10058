"""ShardedLoader end to end, in process: ranks share one DataService as their coordinator."""

import gc
import json
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dist.data import DataService, Dataset, LoaderClosedError, ShardedLoader

FILE_SIZES = [37, 50, 14, 41]  # several files, odd sizes: 142 rows
NUM_ROWS = sum(FILE_SIZES)


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loader")
    start = 0
    for i, size in enumerate(FILE_SIZES):
        ids = np.arange(start, start + size)
        features = pa.FixedSizeListArray.from_arrays(pa.array(np.repeat(ids, 4).astype(np.float32)), 4)
        table = pa.table({"id": ids, "feature": features})
        pq.write_table(table, folder / f"part-{i:02d}.parquet", row_group_size=9)
        start += size
    return folder


@pytest.fixture
def dataset(parquet_dir):
    return Dataset(parquet_dir, columns={"id": "int64", "feature": "float32"})


def loaders(dataset, world_size, service, **options):
    options = {"batch_size": 4, "shuffle_buffer": 8, "seed": 11, **options}
    return [ShardedLoader(dataset, service, rank, world_size, **options) for rank in range(world_size)]


def no_prefetch_threads():
    gc.collect()
    return not [t for t in threading.enumerate() if t.name.startswith("raygrad-data")]


def run_epoch(ranks, max_batches=None):
    """Each rank's ids, batch by batch (stopping after max_batches[rank] if given)."""
    per_rank = []
    for rank, loader in enumerate(ranks):
        ids = []
        for count, batch in enumerate(loader, start=1):
            assert batch["feature"].shape == (4, 4) and np.all(batch["feature"][:, 0] == batch["id"])
            ids.append(batch["id"].tolist())
            if max_batches is not None and count == max_batches[rank]:
                break
        per_rank.append(ids)
    return per_rank


def flat(per_rank):
    return [i for rank in per_rank for batch in rank for i in batch]


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("drop_last", [True, False])
def test_one_epoch_covers_the_dataset_exactly_once(dataset, world_size, drop_last):
    ranks = loaders(dataset, world_size, DataService(), drop_last=drop_last)
    expected_batches = len(ranks[0])
    per_rank = run_epoch(ranks)
    assert [len(batches) for batches in per_rank] == [expected_batches] * world_size
    ids = flat(per_rank)
    if drop_last:
        assert len(ids) == len(set(ids)) and NUM_ROWS - len(ids) < world_size * 4
    else:
        assert set(ids) == set(range(NUM_ROWS)) and len(ids) - NUM_ROWS < world_size * 4
    assert no_prefetch_threads()


def test_order_differs_per_epoch_and_repeats_with_the_seed(dataset):
    first = loaders(dataset, 2, DataService())
    epoch0, epoch1 = run_epoch(first), run_epoch(first)  # the second pass moves on to epoch 1
    assert first[0].epoch == 2 and epoch0 != epoch1  # the epoch the next pass reads
    assert sorted(flat(epoch0)) != flat(epoch0)
    rerun = loaders(dataset, 2, DataService())
    for loader in rerun:
        loader.set_epoch(1)
    assert run_epoch(rerun) == epoch1


def test_prefetch_does_not_change_the_batches(dataset):
    with_thread = run_epoch(loaders(dataset, 2, DataService(), prefetch=3))
    without = run_epoch(loaders(dataset, 2, DataService(), prefetch=0))
    assert with_thread == without


@pytest.mark.parametrize("worlds", [(2, 3), (2, 3, 2), (3, 1)])
def test_failure_mid_epoch_then_resume_on_other_world_sizes(dataset, worlds):
    """Each world but the last crashes part-way; the checkpointed state restarts the next."""
    service, consumed, rng = DataService(), [], np.random.default_rng(len(worlds))
    for world_size in worlds[:-1]:
        ranks = loaders(dataset, world_size, service)
        stop_after = rng.integers(1, len(ranks[0]), size=world_size)
        consumed += flat(run_epoch(ranks, stop_after))
        for loader in ranks:
            loader.flush_progress()
        checkpoint = json.dumps(service.data_state())
        for loader in ranks:
            loader.close()
        service = DataService()  # a fresh coordinator after the crash, restored from the checkpoint
        service.load_data_state(json.loads(checkpoint))
    final = loaders(dataset, worlds[-1], service)
    assert final[0].resume_epoch() == 0
    batch_counts = {len(loader) for loader in final}
    last = run_epoch(final)
    assert {len(batches) for batches in last} == batch_counts and len(batch_counts) == 1
    ids = consumed + flat(last)
    assert len(ids) == len(set(ids)), "a sample was served twice"
    assert NUM_ROWS - len(ids) < worlds[-1] * 4, "more than the last step's drop_last remainder is missing"
    assert final[0].resume_epoch() == 1


def test_len_counts_down_and_early_stop_resumes_in_place(dataset):
    (loader,) = loaders(dataset, 1, DataService())
    total = len(loader)
    seen = run_epoch([loader], [3])
    assert len(loader) == total - 3
    rest = run_epoch([loader])
    ids = flat(seen) + flat(rest)
    assert len(ids) == len(set(ids)) == total * 4


def test_holdout_evaluation_without_shuffle_or_drop(dataset):
    train, held = dataset.holdout(0.2, by="row", seed=3)
    service = DataService()
    evaluation = loaders(held, 2, service, shuffle=False, drop_last=False)
    ids = flat(run_epoch(evaluation))
    assert set(ids) == set(held.rows().to_ids().tolist())
    assert not set(ids) & set(train.rows().to_ids().tolist())
    assert set(service.data_state()["datasets"]) == {"train.holdout"}


# shutdown and errors


def test_consumer_stopping_early_joins_the_thread(dataset):
    (loader,) = loaders(dataset, 1, DataService(), prefetch=1)
    for _ in loader:
        break
    assert no_prefetch_threads()
    iterator = iter(loader)
    next(iterator)
    loader.close()
    assert no_prefetch_threads()
    with pytest.raises(LoaderClosedError, match="is closed; create a new ShardedLoader"):
        iter(loader)


def test_context_manager_closes(dataset):
    with ShardedLoader(dataset, batch_size=4) as loader:
        next(iter(loader))
    assert no_prefetch_threads()


def test_error_in_the_transform_reaches_the_consumer(parquet_dir):
    def failing(batch):
        if batch["id"].min() >= 0:
            raise ZeroDivisionError("bad sample")
        return batch

    dataset = Dataset(parquet_dir, columns=["id"], transform=failing)
    (loader,) = loaders(dataset, 1, DataService(), prefetch=2)
    with pytest.raises(ZeroDivisionError, match="bad sample") as raised:
        next(iter(loader))
    assert "prefetch thread" in "".join(raised.value.__notes__)
    assert no_prefetch_threads()


def test_transform_must_return_a_dict(parquet_dir):
    dataset = Dataset(parquet_dir, columns=["id"], transform=lambda batch: batch["id"])
    with pytest.raises(TypeError, match="returned ndarray; it must return a dict"):
        next(iter(ShardedLoader(dataset, batch_size=4)))


def test_transform_runs_per_batch(parquet_dir):
    dataset = Dataset(parquet_dir, columns=["id"], transform=lambda batch: {"double": batch["id"] * 2})
    batch = next(iter(ShardedLoader(dataset, batch_size=4, shuffle=False)))
    assert batch["double"].tolist() == [0, 2, 4, 6]


def test_a_read_error_reaches_the_consumer(tmp_path):
    pq.write_table(pa.table({"id": np.arange(20)}), tmp_path / "a.parquet")
    dataset = Dataset(tmp_path)
    (tmp_path / "a.parquet").unlink()
    with pytest.raises(FileNotFoundError):
        next(iter(ShardedLoader(dataset, batch_size=4)))
    assert no_prefetch_threads()


def test_starting_a_new_pass_stops_the_old_one(dataset):
    (loader,) = loaders(dataset, 1, DataService())
    old = iter(loader)
    next(old)
    new = iter(loader)
    next(new)
    with pytest.raises(LoaderClosedError, match="stopped by close\\(\\) or by starting another pass"):
        list(old)


def test_local_mode_state_round_trip(dataset):
    (loader,) = loaders(dataset, 1, None)
    run_epoch([loader], [5])
    state = loader.data_state()
    (restored,) = loaders(dataset, 1, None)
    restored.load_data_state(state)
    assert len(restored) == len(loader)


def test_bad_arguments(dataset):
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        ShardedLoader(dataset, None, 2, 2, batch_size=4)
    with pytest.raises(ValueError, match="prefetch must be an int >= 0"):
        ShardedLoader(dataset, batch_size=4, prefetch=-1)
    with pytest.raises(TypeError, match="must be a dist.data.Dataset"):
        ShardedLoader("/tmp", batch_size=4)
    with pytest.raises(TypeError, match="coordinator must be"):
        ShardedLoader(dataset, coordinator=object(), batch_size=4)


def test_device_batches_become_engine_tensors(dataset):
    tensor = pytest.importorskip("tensor")
    if not hasattr(tensor, "as_tensor"):
        pytest.skip("the engine has no tensor.as_tensor yet")
    batch = next(iter(ShardedLoader(dataset, batch_size=4, device="cpu")))
    assert isinstance(batch["feature"], tensor.Tensor) and tuple(batch["feature"].shape) == (4, 4)
