"""ShardedLoader with device='cuda': batches through pinned memory and a side stream, same data as on the CPU.

Skipped without CuPy and a GPU (see conftest.py).
"""
import numpy as np
import pytest

import tensor
from dist.data import Dataset, ShardedLoader

ROWS = 300


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    return Dataset({
        "image": rng.standard_normal((ROWS, 1, 8, 8)).astype(np.float32),
        "label": rng.integers(0, 10, ROWS),
        "weight": rng.random(ROWS).astype(np.float64),
        "mask": rng.random((ROWS, 3)) < 0.5,
    })


def batches(dataset, device, epochs=2, **options):
    """Every batch of `epochs` epochs (the tensors themselves, not copies)."""
    out = []
    with ShardedLoader(dataset, batch_size=32, seed=3, device=device, **options) as loader:
        for _ in range(epochs):
            out += list(loader)
    return out


@pytest.mark.parametrize("prefetch", [0, 2])
def test_cuda_batches_equal_cpu_batches(dataset, device, prefetch):
    on_gpu = batches(dataset, device, prefetch=prefetch)  # all kept alive: no batch may alias another
    on_cpu = batches(dataset, None, prefetch=prefetch)
    assert len(on_gpu) == len(on_cpu) == 2 * (ROWS // 32)
    for gpu, cpu in zip(on_gpu, on_cpu):
        assert set(gpu) == set(cpu)
        for key, value in gpu.items():
            assert isinstance(value, tensor.Tensor) and value.device == tensor.device(device)
            assert value.dtype == cpu[key].dtype and tuple(value.shape) == cpu[key].shape
            np.testing.assert_array_equal(value.cpu().numpy(), cpu[key])


def test_batches_feed_kernels_right_away(dataset, device):
    # The compute stream waits for the copy: a kernel queued at once must see the whole batch.
    with ShardedLoader(dataset, batch_size=ROWS, shuffle=False) as loader:
        images = next(iter(loader))["image"]
    with ShardedLoader(dataset, batch_size=32, device=device, shuffle=False) as loader:
        for batch, start in zip(loader, range(0, ROWS - 31, 32)):
            total = float((batch["image"] * 2).sum().item())
            assert total == pytest.approx(float(images[start:start + 32].sum(dtype=np.float64) * 2), rel=1e-5, abs=1e-3)


def test_close_waits_for_copies_and_releases_buffers(dataset, device):
    loader = ShardedLoader(dataset, batch_size=32, device=device)
    next(iter(loader))
    assert loader._uploader is not None
    loader.close()
    assert loader._uploader is None
