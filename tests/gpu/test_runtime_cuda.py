"""tensor.cuda's device queries, seeding, streams and events; the deterministic mode on real CUDA
ops; a CUDA default device. Skipped without CuPy and a GPU (see conftest.py)."""
import numpy as np
import pytest

import tensor
import tensor.nn.functional as F
from tensor.errors import DeviceError


@pytest.fixture(autouse=True)
def restore_settings():
    yield
    tensor.use_deterministic_algorithms(False)
    tensor.set_default_device(None)


def test_device_queries(device):
    props = tensor.cuda.get_device_properties(0)
    assert isinstance(props.name, str) and props.name and props.name == tensor.cuda.get_device_name()
    assert props.total_memory > 0 and props.multi_processor_count > 0 and props.major >= 3
    assert tensor.cuda.get_device_capability("cuda:0") == (props.major, props.minor)
    free, total = tensor.cuda.mem_get_info()
    assert 0 < free <= total
    tensor.cuda.set_device(0)
    assert tensor.cuda.current_device() == 0
    with tensor.cuda.device("cuda:0"):
        assert tensor.cuda.current_device() == 0
    with pytest.raises(DeviceError, match="visible"):
        tensor.cuda.set_device(tensor.cuda.device_count())


def test_cuda_seeds_repeat_draws(device):
    def draw(seed_fn):
        seed_fn(5)
        return tensor.rand(6, device=device).cpu().numpy()

    np.testing.assert_array_equal(draw(tensor.cuda.manual_seed), draw(tensor.cuda.manual_seed))
    assert tensor.cuda.initial_seed() == 5
    np.testing.assert_array_equal(draw(tensor.cuda.manual_seed_all), draw(tensor.cuda.manual_seed_all))
    tensor.cuda.seed()
    assert tensor.cuda.initial_seed() != 5


def test_events_time_work_and_streams_order_it(device):
    start, end = tensor.cuda.Event(enable_timing=True), tensor.cuda.Event(enable_timing=True)
    start.record()
    x = tensor.ones(512, 512, device=device) @ tensor.ones(512, 512, device=device)
    end.record()
    end.synchronize()
    assert end.query() and start.elapsed_time(end) >= 0
    side = tensor.cuda.Stream()
    side.wait_stream(tensor.cuda.current_stream())
    with tensor.cuda.stream(side):
        assert tensor.cuda.current_stream() == side
        y = x * 2
    assert tensor.cuda.current_stream() != side
    tensor.cuda.current_stream().wait_stream(side)
    side.record_event().wait()
    side.synchronize()
    assert side.query()
    np.testing.assert_array_equal(y.cpu().numpy(), np.full((512, 512), 1024.0))


def test_deterministic_mode_refuses_atomic_cuda_ops(device):
    index = tensor.tensor([0, 0, 2], device=device)
    x, src = tensor.zeros(5, device=device), tensor.ones(3, device=device)
    x.scatter_add(0, index, src)  # mode off: runs
    tensor.use_deterministic_algorithms(True)
    with pytest.raises(RuntimeError, match="scatter_add.*does not have a deterministic implementation"):
        x.scatter_add(0, index, src)
    counts = tensor.zeros(5, dtype=tensor.int64, device=device).scatter_add(0, index, tensor.ones_like(index))
    assert counts.cpu().numpy().tolist() == [2, 0, 1, 0, 0]  # integer sums are exact: allowed
    weight = tensor.ones(5, 3, device=device, requires_grad=True)
    loss = F.embedding(index, weight).sum()
    with pytest.raises(RuntimeError, match="embedding backward"):
        loss.backward()
    tensor.use_deterministic_algorithms(True, warn_only=True)
    with pytest.warns(UserWarning, match="scatter_add"):
        x.scatter_add(0, index, src)


def test_factories_create_on_a_cuda_default_device(device):
    tensor.set_default_device("cuda")
    assert tensor.get_default_device() == tensor.device("cuda:0")
    for t in (tensor.zeros(2), tensor.rand(2), tensor.arange(3), tensor.tensor([1.0]), tensor.nn.Linear(2, 2).weight):
        assert t.is_cuda
    assert not tensor.from_numpy(np.ones(2)).is_cuda
