"""tensor.cuda's memory statistics over CuPy's pool: current figures, sampled and exact peaks.

Skipped without CuPy and a GPU (see conftest.py).
"""
import gc

import numpy as np
import pytest

import tensor

MIB = 2**20


@pytest.fixture(autouse=True)
def no_stray_frees():
    """Collect earlier tests' garbage first, so no array is freed while a test counts bytes."""
    gc.collect()


def test_allocated_and_reserved_follow_live_arrays(device):
    tensor.cuda.empty_cache()
    before = tensor.cuda.memory_allocated()
    x = tensor.zeros(4 * MIB // 4, device=device)  # 4 MiB of float32
    assert tensor.cuda.memory_allocated() - before == 4 * MIB
    assert tensor.cuda.memory_reserved() >= tensor.cuda.memory_allocated()
    del x
    assert tensor.cuda.memory_allocated() == before
    assert tensor.cuda.memory_reserved() >= before + 4 * MIB  # cached by the pool until empty_cache()


def test_exact_peak_sees_a_temporary_that_no_sample_saw(device):
    tensor.cuda.reset_peak_memory_stats()
    base = tensor.cuda.memory_allocated()
    with tensor.cuda.track_peak_memory():
        y = (tensor.ones(8 * MIB // 4, device=device) * 2).sum()  # 8 MiB twice, both gone at once
    assert y.item() == 4 * MIB
    assert tensor.cuda.memory_allocated() - base < MIB
    assert tensor.cuda.max_memory_allocated() - base >= 16 * MIB


def test_reset_restarts_the_peaks_from_now(device):
    big = tensor.zeros(16 * MIB // 4, device=device)
    tensor.cuda.record_peak_memory()
    del big
    tensor.cuda.reset_peak_memory_stats()
    assert tensor.cuda.max_memory_allocated() == tensor.cuda.memory_allocated()


def test_memory_stats_uses_torch_key_names(device):
    x = tensor.tensor(np.arange(1000, dtype=np.float32), device=device)
    stats = tensor.cuda.memory_stats()
    assert stats["allocated_bytes.all.current"] >= x.numel() * 4
    assert stats["allocated_bytes.all.peak"] >= stats["allocated_bytes.all.current"]
    assert stats["reserved_bytes.all.peak"] >= stats["reserved_bytes.all.current"] >= stats[
        "allocated_bytes.all.current"]
    assert stats["inactive_split_bytes.all.current"] == (stats["reserved_bytes.all.current"]
                                                         - stats["allocated_bytes.all.current"])


def test_device_arguments(device):
    assert tensor.cuda.memory_allocated(0) == tensor.cuda.memory_allocated("cuda:0") == tensor.cuda.memory_allocated(
        tensor.device("cuda"))
    assert tensor.cuda.current_device() == 0
    tensor.cuda.synchronize("cuda")
