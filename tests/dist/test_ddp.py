"""DistributedDataParallel across Ray actors (CPU communicator) against one process on the whole batch.

Each rank builds its model from a different seed (DDP's broadcast from rank 0 must make them agree),
trains on its shard of a global batch, and trains a reference copy of rank 0's model on the whole
batch beside it; it returns how far its DDP parameters are from the reference and a digest of them
(all ranks must agree bit for bit). Models are small and in float64, so 1e-5 is a tight bound.
"""

import contextlib
import hashlib

import numpy as np
import pytest

import tensor
import tensor.nn.functional as F
from dist import DistributedDataParallel, WorkerGroup
from dist.comm import init_communicator
from dist.env import get_context
from dist.errors import CollectiveTimeout
from tensor import nn

pytestmark = pytest.mark.timeout(300)

ROWS_PER_RANK = 8
TINY_BUCKETS_MB = 300 * 8 / 2**20  # 300 float64 values: splits the 16x16 layer from its neighbours


@pytest.fixture(scope="module")
def group(ray_cluster):
    wg = WorkerGroup(2, cpus_per_worker=0.5, name="test-ddp-2")
    wg.execute(open_communicator)
    yield wg
    wg.shutdown()


# -- what the ranks run ------------------------------------------------------------------------------


def open_communicator():
    init_communicator("cpu", timeout_s=60)  # DDP finds it with get_communicator()


def mlp(seed, batch_norm=False):
    tensor.manual_seed(seed)
    middle = [nn.BatchNorm1d(16)] if batch_norm else []
    return nn.Sequential(nn.Linear(6, 16), *middle, nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 3)).double()


def global_batch(step, world_size, rows_per_rank=ROWS_PER_RANK):
    rng = np.random.default_rng(step)
    x = rng.standard_normal((world_size * rows_per_rank, 6))
    return tensor.tensor(x), tensor.tensor(np.tanh(x[:, :3] * 2))


def shard(t, rank, rows=ROWS_PER_RANK):
    return t[rank * rows:(rank + 1) * rows]


def make_optimizer(kind, params):
    if kind == "sgd":
        return tensor.optim.SGD(params, lr=0.1, momentum=0.9)
    return tensor.optim.Adam(params, lr=1e-2)


def distance(ddp, ref):
    """(largest parameter difference from the reference, digest of this rank's parameters)."""
    ours = [p.data for p in ddp.parameters()]
    error = max(float(np.abs(a - b.data).max()) for a, b in zip(ours, ref.parameters()))
    return error, hashlib.sha1(b"".join(a.tobytes() for a in ours)).hexdigest()


def train_against_reference(optimizer, steps=20, bucket_cap_mb=TINY_BUCKETS_MB, sync_batch_norm=False, **ddp_options):
    """DDP on the shards against one model on the whole batch. sync_batch_norm: both models get a BatchNorm,
    SyncBatchNorm under DDP (it normalises every shard with the whole batch's statistics, so the two agree)."""
    ctx = get_context()
    model = mlp(seed=ctx.rank, batch_norm=sync_batch_norm)
    if sync_batch_norm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb, **ddp_options)
    ref = mlp(seed=0, batch_norm=sync_batch_norm)
    opt, ref_opt = make_optimizer(optimizer, ddp.parameters()), make_optimizer(optimizer, ref.parameters())
    for step in range(steps):
        x, y = global_batch(step, ctx.world_size)
        opt.zero_grad()
        F.mse_loss(ddp(shard(x, ctx.rank)), shard(y, ctx.rank)).backward()
        opt.step()
        ref_opt.zero_grad()
        F.mse_loss(ref(x), y).backward()
        ref_opt.step()
    return (*distance(ddp, ref), len(ddp.buckets), buffer_distance(ddp, ref))


def buffer_distance(ddp, ref):
    """The largest difference between the DDP model's buffers (running statistics) and the reference's."""
    return max((float(np.abs(a.data - b.data).max()) for a, b in zip(ddp.buffers(), ref.buffers())), default=0.0)


def check_same(results, tol=1e-5):
    errors = [r[0] for r in results]
    assert max(errors) < tol, errors
    assert len({r[1] for r in results}) == 1, "ranks ended with different parameters"


# -- the tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_ranks_train_like_one_process_on_the_whole_batch(group, optimizer):
    results = group.execute(train_against_reference, optimizer)
    check_same(results)
    assert results[0][2] >= 3, "the bucket cap should have split the model into several buckets"


def test_separate_grads_and_default_buckets_match_too(group):
    check_same(group.execute(train_against_reference, "sgd", steps=5, bucket_cap_mb=25,
                             gradient_as_bucket_view=False))


def train_batch_norm_model(steps=10):
    """BatchNorm normalises each rank's shard by its own statistics; the reference does the same per shard,
    and keeps the running stats of shard 0 only (DDP copies rank 0's buffers to every rank)."""
    ctx = get_context()
    ddp = DistributedDataParallel(mlp(seed=ctx.rank, batch_norm=True), bucket_cap_mb=TINY_BUCKETS_MB)
    ref = mlp(seed=0, batch_norm=True)
    opt, ref_opt = make_optimizer("sgd", ddp.parameters()), make_optimizer("sgd", ref.parameters())
    for step in range(steps):
        x, y = global_batch(step, ctx.world_size)
        opt.zero_grad()
        F.mse_loss(ddp(shard(x, ctx.rank)), shard(y, ctx.rank)).backward()
        opt.step()
        ref_opt.zero_grad()
        before = [b.data.copy() for b in ref.buffers()]
        losses = []
        for rank in reversed(range(ctx.world_size)):  # shard 0 last: its running stats are the ones kept
            for buf, saved in zip(ref.buffers(), before):
                np.copyto(buf.data, saved)
            losses.append(F.mse_loss(ref(shard(x, rank)), shard(y, rank)))
        (sum(losses) / ctx.world_size).backward()
        ref_opt.step()
    ddp.eval()
    ddp(shard(x, ctx.rank))  # a forward broadcasts rank 0's buffers (eval mode leaves them as they are)
    return (*distance(ddp, ref), buffer_distance(ddp, ref))


def test_batch_norm_buffers_come_from_rank_zero(group):
    results = group.execute(train_batch_norm_model)
    check_same(results)
    assert max(r[2] for r in results) < 1e-12


def test_sync_batch_norm_trains_like_batch_norm_on_the_whole_batch(group):
    results = group.execute(train_against_reference, "sgd", steps=8, sync_batch_norm=True)
    check_same(results)
    assert max(r[3] for r in results) < 1e-12  # running statistics included


def accumulate_with_no_sync(steps=3, micro_batches=2):
    ctx = get_context()
    ddp = DistributedDataParallel(mlp(seed=ctx.rank), bucket_cap_mb=TINY_BUCKETS_MB)
    ref = mlp(seed=0)
    opt, ref_opt = make_optimizer("sgd", ddp.parameters()), make_optimizer("sgd", ref.parameters())
    rows = ROWS_PER_RANK // micro_batches
    for step in range(steps):
        x, y = global_batch(step, ctx.world_size)
        x, y = shard(x, ctx.rank), shard(y, ctx.rank)
        opt.zero_grad()
        for i in range(micro_batches):
            sync = contextlib.nullcontext() if i == micro_batches - 1 else ddp.no_sync()
            with sync:
                (F.mse_loss(ddp(shard(x, i, rows)), shard(y, i, rows)) / micro_batches).backward()
        opt.step()
        full_x, full_y = global_batch(step, ctx.world_size)
        ref_opt.zero_grad()
        F.mse_loss(ref(full_x), full_y).backward()
        ref_opt.step()
    return distance(ddp, ref)


def test_no_sync_accumulation_equals_one_large_batch(group):
    check_same(group.execute(accumulate_with_no_sync))


class Heads(nn.Module):
    """A trunk and three heads: rank r uses head r, no rank uses the last one."""

    def __init__(self, seed):
        super().__init__()
        tensor.manual_seed(seed)
        self.trunk = nn.Linear(6, 8)
        self.heads = nn.ModuleList([nn.Linear(8, 3) for _ in range(3)])
        self.double()

    def forward(self, x, head):
        return self.heads[head](self.trunk(x).tanh())


def train_with_unused_heads(find_unused_parameters):
    ctx = get_context()
    ddp = DistributedDataParallel(Heads(seed=ctx.rank), find_unused_parameters=find_unused_parameters)
    x, y = global_batch(0, ctx.world_size)
    try:
        F.mse_loss(ddp(shard(x, ctx.rank), head=ctx.rank), shard(y, ctx.rank)).backward()
    except RuntimeError as exc:
        return str(exc)
    ref = Heads(seed=0)
    losses = [F.mse_loss(ref(shard(x, r), head=r), shard(y, r)) for r in range(ctx.world_size)]
    (sum(losses) / ctx.world_size).backward()
    errors = [0.0 if a.grad is None and b.grad is None else float(np.abs(a.grad.numpy() - b.grad.numpy()).max())
              for a, b in zip(ddp.parameters(), ref.parameters())]
    return max(errors), [name for name, p in ddp.named_parameters() if p.grad is None]


def test_a_parameter_without_gradient_is_an_error_naming_it(group):
    for message in group.execute(train_with_unused_heads, False):
        assert "got no gradient" in message and "'heads.2.weight'" in message
        assert "find_unused_parameters=True" in message


def test_find_unused_parameters_averages_what_each_rank_used(group):
    for error, without_grad in group.execute(train_with_unused_heads, True):
        assert error < 1e-12
        assert without_grad == ["heads.2.weight", "heads.2.bias"]


def test_float16_gradients_stay_close(group):
    check_same(group.execute(train_against_reference, "sgd", steps=10, grad_dtype=tensor.float16), tol=1e-2)


def backward_alone(name, bucket_cap_mb):
    """Rank 0 runs a backward that rank 1 never joins: its all-reduce times out inside backward()."""
    ctx = get_context()
    comm = init_communicator("cpu", name=name, timeout_s=2)
    ddp = DistributedDataParallel(mlp(seed=0), comm=comm, bucket_cap_mb=bucket_cap_mb)
    if ctx.rank == 1:
        return "skipped"
    x, y = global_batch(0, ctx.world_size)
    try:
        F.mse_loss(ddp(shard(x, 0)), shard(y, 0)).backward()
    except CollectiveTimeout as exc:
        return type(exc).__name__
    return "no error"


@pytest.mark.parametrize("bucket_cap_mb", [25, TINY_BUCKETS_MB], ids=["one-bucket-inline", "async-buckets"])
def test_a_collective_timeout_reaches_the_caller_of_backward(group, bucket_cap_mb):
    name = "ddp-timeout-inline" if bucket_cap_mb == 25 else "ddp-timeout-async"
    assert group.execute(backward_alone, name, bucket_cap_mb) == ["CollectiveTimeout", "skipped"]


def test_three_ranks(ray_cluster):
    with WorkerGroup(3, cpus_per_worker=0.5, name="test-ddp-3") as wg:
        wg.execute(open_communicator)
        check_same(wg.execute(train_against_reference, "sgd", steps=10))
