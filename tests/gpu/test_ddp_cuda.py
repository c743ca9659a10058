"""DistributedDataParallel on one GPU over NCCL (world size 1) against the plain model on the same GPU.

World size 1 runs every DDP code path on the GPU (buckets allocated on the parameters' device as CuPy
arrays, hooks, NCCL all-reduces ordered against the compute stream, float16 compression, no_sync)
while the expected result stays the plain model's. Skipped without CuPy and a CUDA device.
"""
import contextlib

import numpy as np
import pytest

import tensor
import tensor.nn.functional as F
from dist.ddp import DistributedDataParallel
from tensor import nn


@pytest.fixture(scope="module")
def nccl():
    from dist.comm.nccl import NcclCommunicator

    comm = NcclCommunicator(0, 1, timeout_s=60)
    yield comm
    comm.close()


def mlp(device):
    tensor.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                         nn.Linear(32, 3)).to(device)


def batches(device, steps):
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = rng.standard_normal((16, 6)).astype(np.float32)
        yield tensor.tensor(x, device=device), tensor.tensor(np.tanh(x[:, :3]), device=device)


def train(model, device, steps=5, micro_batches=1):
    """SGD steps; with micro_batches > 1 each step accumulates micro-batch gradients (DDP: in no_sync)."""
    opt = tensor.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches(device, steps):
        opt.zero_grad()
        rows = len(x) // micro_batches
        for i in range(micro_batches):
            accumulate_only = isinstance(model, DistributedDataParallel) and i < micro_batches - 1
            with model.no_sync() if accumulate_only else contextlib.nullcontext():
                part = slice(i * rows, (i + 1) * rows)
                (F.mse_loss(model(x[part]), y[part]) / micro_batches).backward()
        opt.step()
    return [p.cpu().detach().numpy() for p in model.parameters()]


@pytest.mark.parametrize("options, tol", [
    (dict(), 1e-5),
    (dict(bucket_cap_mb=2e-3), 1e-5),  # about 500 floats: several buckets
    (dict(gradient_as_bucket_view=False), 1e-5),
    (dict(grad_dtype=tensor.float16), 1e-2),
])
def test_ddp_on_one_gpu_trains_like_the_plain_model(nccl, device, options, tol):
    ddp = DistributedDataParallel(mlp(device), comm=nccl, **options)
    got, expected = train(ddp, device), train(mlp(device), device)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=tol, rtol=tol)


def test_buckets_and_grads_live_on_the_gpu(nccl, device):
    ddp = DistributedDataParallel(mlp(device), comm=nccl, bucket_cap_mb=2e-3)
    x, y = next(batches(device, 1))
    F.mse_loss(ddp(x), y).backward()
    for bucket in ddp.reducer.buckets:
        assert type(bucket.flat).__module__.startswith("cupy")
    for p in ddp.parameters():
        assert p.grad.device == p.device and p.grad.data.base is not None  # a view of its bucket


def test_no_sync_accumulation_on_the_gpu(nccl, device):
    got = train(DistributedDataParallel(mlp(device), comm=nccl), device, micro_batches=2)
    expected = train(mlp(device), device, micro_batches=2)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
