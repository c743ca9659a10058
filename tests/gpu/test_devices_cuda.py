"""PyTorch's rules for mixing the CPU and a GPU, and the CUDA sides of ops whose CPU side NumPy gives
for free (copying a generator, a view's storage bounds, singular matrices). Skipped without CuPy and
a GPU (see conftest.py)."""
import copy

import numpy as np
import pytest

import tensor
import tensor.linalg as LA
import tensor.nn.functional as F
from tensor.errors import DeviceError, ShapeError


def test_a_0d_cpu_tensor_joins_a_cuda_op_and_gets_its_gradient(device):
    x = tensor.tensor([1.0, 2.0], device=device, requires_grad=True)
    scale = tensor.tensor(3.0, requires_grad=True)  # 0-d, on the CPU
    y = x * scale - tensor.tensor(1.0)
    assert y.device.type == "cuda"
    y.sum().backward()
    np.testing.assert_allclose(y.detach().cpu().numpy(), [2.0, 5.0])
    assert scale.grad.device.type == "cpu" and float(scale.grad) == 3.0
    np.testing.assert_allclose(x.grad.cpu().numpy(), [3.0, 3.0])


def test_a_cpu_tensor_with_elements_is_still_refused(device):
    with pytest.raises(DeviceError, match=r"different devices \(cuda:0, cpu\)"):
        tensor.ones(2, device=device) + tensor.ones(2)


def test_a_cpu_index_selects_from_a_cuda_tensor(device):
    x = tensor.arange(6.0, device=device).reshape(2, 3)
    rows, cols = tensor.tensor([1, 0]), tensor.tensor([2, 2])
    np.testing.assert_array_equal(x[rows, cols].cpu().numpy(), [5.0, 2.0])
    np.testing.assert_array_equal(x[tensor.tensor([True, False])].cpu().numpy(), [[0.0, 1.0, 2.0]])
    x[tensor.tensor([0])] = 7.0
    assert x[0].tolist() == [7.0, 7.0, 7.0]
    with pytest.raises(DeviceError, match="index tensor is on cuda:0"):
        tensor.zeros(3)[tensor.tensor([0], device=device)]


def test_tensor_from_a_list_of_cuda_scalars(device):
    top = tensor.tensor([[4], [7]], device=device)
    made = tensor.tensor([[top[i][0] for i in range(2)]], dtype=tensor.long)
    assert made.device.type == "cpu" and made.tolist() == [[4, 7]]


def test_pin_memory_is_accepted_for_cpu_tensors_only(device):
    x = tensor.ones(3)
    assert x.pin_memory() is x and not x.is_pinned()
    assert x.pin_memory().to(device, non_blocking=True).device.type == "cuda"
    with pytest.raises(DeviceError, match="only CPU tensors"):
        x.to(device).pin_memory()


def test_a_copied_cuda_generator_continues_the_same_stream(device):
    gen = tensor.Generator(device).manual_seed(3)
    tensor.rand(5, generator=gen, device=device)
    twin = copy.deepcopy(gen)
    a = tensor.rand(1000, generator=gen, device=device).cpu().numpy()
    b = tensor.rand(1000, generator=twin, device=device).cpu().numpy()
    np.testing.assert_array_equal(a, b)


def test_checkpoint_replays_cuda_dropout(device):
    tensor.manual_seed(0)
    x = tensor.randn(4, 8, device=device, requires_grad=True)

    def block(t):
        return F.dropout(t * 2, p=0.5, training=True)

    plain_x = x.detach().requires_grad_()
    tensor.cuda.manual_seed(1)
    block(plain_x).sum().backward()
    tensor.cuda.manual_seed(1)
    tensor.utils.checkpoint.checkpoint(block, x, use_reentrant=True).sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), plain_x.grad.cpu().numpy())


def test_as_strided_bounds_count_the_array_not_the_pool_chunk(device):
    x = tensor.zeros(6, device=device)  # the memory pool's chunk is 512 bytes: room for 64
    with pytest.raises(ShapeError, match="storage holds 6"):
        x.as_strided((7,), (1,))
    tail = x[2:]
    assert tail.storage_offset() == 2
    tail.as_strided((2,), (2,), 3).fill_(1.0)
    assert x.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]


def test_inv_ex_reports_an_exactly_singular_matrix(device):
    singular = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])
    batch = tensor.tensor(np.stack([np.eye(3) * 2, singular]), device=device)
    inverse, info = LA.inv_ex(batch)
    assert info.tolist() == [0, 3]
    np.testing.assert_allclose(inverse[0].cpu().numpy(), np.eye(3) / 2)
    assert np.isnan(inverse[1].cpu().numpy()).all()
    result, info = LA.solve_ex(batch, tensor.ones(2, 3, device=device, dtype=tensor.float64))
    assert info.tolist() == [0, 3] and np.isnan(result[1].cpu().numpy()).all()


def test_pow_of_a_number_to_a_cuda_tensor_has_a_gradient(device):
    x = tensor.tensor([0.0, 1.0, 2.0], device=device, requires_grad=True)
    (2.0 ** x).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.log(2.0) * 2.0 ** np.array([0.0, 1.0, 2.0]))
