"""Tensor creation, dtypes and promotion, conversion, DLPack, repr and errors."""
import numpy as np
import pytest

import tensor
from tensor.errors import AutogradError, DTypeError


def test_default_dtypes_follow_pytorch(device):
    assert tensor.tensor([1.0, 2.0], device=device).dtype == tensor.float32
    assert tensor.tensor([1, 2], device=device).dtype == tensor.int64
    assert tensor.tensor([True], device=device).dtype == tensor.bool
    assert tensor.tensor(np.zeros(2), device=device).dtype == tensor.float64  # numpy keeps its dtype
    assert tensor.zeros(2, 3, device=device).dtype == tensor.float32
    assert tensor.arange(5, device=device).dtype == tensor.int64
    assert tensor.arange(0, 1, 0.25, device=device).dtype == tensor.float32


def test_python_numbers_go_straight_to_the_requested_dtype(device):
    # float64 values never pass through the float32 default on their way
    assert tensor.tensor([0.1, 1e-300], dtype=tensor.float64, device=device).tolist() == [0.1, 1e-300]
    assert tensor.tensor(1e40, dtype=tensor.float64, device=device).item() == 1e40
    assert tensor.tensor([1e40], device=device).tolist() == [float("inf")]  # float32 overflows, as in PyTorch
    assert tensor.tensor([2**62 + 1], dtype=tensor.int64, device=device).item() == 2**62 + 1
    assert tensor.tensor([1.7, -1.7], dtype=tensor.int64, device=device).tolist() == [1, -1]
    with pytest.raises(tensor.DTypeError, match="value 300 cannot be converted to uint8 without overflow"):
        tensor.tensor([1, 300], dtype=tensor.uint8, device=device)
    with pytest.raises(tensor.DTypeError, match=r"value -2147483649 cannot be converted to int32 .*int64"):
        tensor.tensor([-(2**31) - 1], dtype=tensor.int32, device=device)
    with pytest.raises(tensor.DTypeError, match="no integer dtype is wider"):
        tensor.tensor([2**64 - 1], device=device)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("int64", "float16", "float16"),
        ("int32", "int64", "int64"),
        ("float32", "float64", "float64"),
        ("bool", "int32", "int32"),
        ("uint8", "int8", "int16"),
    ],
)
def test_tensor_tensor_promotion(device, a, b, expected):
    x = tensor.ones(2, dtype=a, device=device)
    y = tensor.ones(2, dtype=b, device=device)
    assert (x + y).dtype == np.dtype(expected)


def test_scalar_promotion(device):
    i = tensor.tensor([1, 2], device=device)
    f16 = tensor.ones(2, dtype=tensor.float16, device=device)
    assert (i * 0.5).dtype == tensor.float32  # a Python float meets ints: default float
    assert (i + 1).dtype == tensor.int64
    assert (f16 * 2.0).dtype == tensor.float16  # scalars do not widen within a category
    assert (tensor.tensor([1, 2], dtype=tensor.int32, device=device) + 5).dtype == tensor.int32
    assert (i / 2).dtype == tensor.float32  # true division of ints gives floats
    zero_d = tensor.tensor(2.0, dtype=tensor.float64, device=device)
    assert (tensor.ones(3, device=device) * zero_d).dtype == tensor.float32  # 0-d tensor is weaker


def test_numpy_scalars_promote_as_python_numbers(device):
    torch = pytest.importorskip("torch")
    for lib, dev in ((torch, "cpu"), (tensor, device)):
        f32, i32 = lib.ones(3, device=dev), lib.ones(3, dtype=lib.int32, device=dev)
        lam = np.float64(0.7)  # MixMatch's l = max(np.random.beta(a, a), 1 - l)
        got = [lam * f32, f32 * lam, (1 - lam) * f32, f32 / lam, f32 - np.float64(2), f32 * np.int64(2),
               f32 ** np.float64(2), i32 * np.float64(0.5), i32 + np.int64(3)]
        assert [str(v.dtype).replace("torch.", "") for v in got] == ["float32"] * 8 + ["int32"]
    np.testing.assert_allclose((np.float64(0.7) * f32).cpu().numpy(), 0.7, rtol=1e-6)


def test_integer_trunc_division_and_scalar_alpha(device):
    a, b = tensor.tensor([7, -7, 7, -7, 6], device=device), tensor.tensor([2, 2, -2, -2, 3], device=device)
    q = tensor.div(a, b, rounding_mode="trunc")
    assert q.dtype == tensor.int64 and q.tolist() == [3, -3, -3, 3, 2]  # toward zero, in the integer dtype
    assert tensor.div(a.to(tensor.int32), 2, rounding_mode="trunc").dtype == tensor.int32
    assert tensor.div(-7, b, rounding_mode="trunc").tolist() == [-3, -3, 3, 3, -2]
    assert tensor.div(a.float(), 2, rounding_mode="trunc").tolist() == [3.0, -3.0, 3.0, -3.0, 3.0]
    assert tensor.div(a, b, rounding_mode="floor").tolist() == [3, -4, -4, 3, 2]
    assert tensor.sub(a, 1, alpha=2).tolist() == [5, -9, 5, -9, 4]  # a Python number times alpha
    assert tensor.add(a.float(), 3, alpha=0.5).tolist() == [8.5, -5.5, 8.5, -5.5, 7.5]


def test_creation_functions(device):
    assert tensor.full((2, 2), 7, device=device).tolist() == [[7, 7], [7, 7]]
    assert tensor.eye(2, device=device).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    np.testing.assert_allclose(tensor.linspace(0, 1, 5, device=device).cpu().numpy(), np.linspace(0, 1, 5))
    x = tensor.randn(3, 4, device=device)
    assert tensor.zeros_like(x).shape == (3, 4) and tensor.ones_like(x).dtype == x.dtype
    assert tensor.empty(2, device=device).shape == (2,)
    assert sorted(tensor.randperm(10, device=device).tolist()) == list(range(10))
    r = tensor.randint(3, 7, (100,), device=device)
    assert r.dtype == tensor.int64 and 3 <= r.min().item() and r.max().item() < 7


@pytest.mark.parametrize("make", ["empty", "zeros", "ones", "rand", "randn", "new_zeros", "new_ones", "new_empty"])
def test_creation_takes_sizes_as_torch_does(device, make):
    maker = getattr(tensor.ones(1, device=device), make) if make.startswith("new_") else getattr(tensor, make)
    for made in (maker(2, 3, device=device), maker((2, 3), device=device), maker([2, 3], device=device),
                 maker(size=(2, 3), device=device)):
        assert made.shape == (2, 3) and made.device.type == device
    with pytest.raises(TypeError, match=r"either positionally or as size=, not both \(got \(2,\) and size=\(3,\)\)"):
        maker(2, size=(3,), device=device)


def test_randint_two_argument_form_draws_from_zero(device):
    # torch.randint(high, size), as nanoGPT's get_batch calls it: torch.randint(len(data) - block, (batch,))
    r = tensor.randint(5, (200,), device=device)
    assert r.shape == (200,) and r.dtype == tensor.int64 and set(r.tolist()) == set(range(5))
    assert tensor.randint(5, tensor.Size([2, 3]), device=device).shape == (2, 3)
    assert tensor.randint(5, size=(4,), device=device).max().item() < 5


def test_manual_seed_makes_randomness_reproducible(device):
    tensor.manual_seed(123)
    a = tensor.randn(5, device=device).tolist()
    tensor.manual_seed(123)
    assert tensor.randn(5, device=device).tolist() == a
    g = tensor.Generator(device).manual_seed(7)
    b = tensor.rand(3, generator=g, device=device).tolist()
    assert tensor.rand(3, generator=tensor.Generator(device).manual_seed(7), device=device).tolist() == b


def test_rng_state_is_a_byte_tensor_that_resumes_the_stream_as_in_torch(tmp_path):
    torch = pytest.importorskip("torch")
    for T in (torch, tensor):
        T.manual_seed(5)
        T.rand(3)
        state = T.get_rng_state()
        assert state.dtype == T.uint8 and state.dim() == 1
        want = T.rand(4).tolist()
        T.manual_seed(99)
        T.set_rng_state(state.clone().cpu())  # as scripts restore it from a checkpoint
        assert T.rand(4).tolist() == want
    tensor.save({"rng_state": state}, tmp_path / "ckpt")
    tensor.manual_seed(1)
    tensor.set_rng_state(tensor.load(tmp_path / "ckpt")["rng_state"])
    assert tensor.rand(4).tolist() == want
    g = tensor.Generator().manual_seed(3)
    saved, first = g.get_state(), tensor.rand(2, generator=g).tolist()
    g.set_state(saved)
    assert tensor.rand(2, generator=g).tolist() == first
    with pytest.raises(TypeError, match="get_rng_state"):
        tensor.set_rng_state(torch.get_rng_state())


def test_to_and_back_is_differentiable(device):
    x = tensor.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x.to(tensor.float64) * 3
    y.backward(tensor.ones_like(y))
    assert x.grad.dtype == tensor.float32 and x.grad.tolist() == [3.0, 3.0]
    assert x.to(device) is x
    assert x.double().dtype == tensor.float64 and x.long().dtype == tensor.int64


def test_properties(device):
    x = tensor.zeros(2, 3, 4, device=device)
    assert x.shape == (2, 3, 4) and x.size() == (2, 3, 4) and x.size(1) == 3
    assert x.ndim == 3 and x.dim() == 3 and x.numel() == 24 and x.shape.numel() == 24
    assert str(x.device).startswith(device) and x.is_leaf and x.grad is None


def test_item_and_tolist(device):
    assert tensor.tensor([[3.5]], device=device).item() == 3.5
    with pytest.raises(ValueError, match="one-element"):
        tensor.zeros(2, device=device).item()


def test_requires_grad_only_for_floats(device):
    with pytest.raises(DTypeError, match="floating"):
        tensor.tensor([1, 2], device=device, requires_grad=True)


def test_numpy_refuses_tensor_requiring_grad():
    x = tensor.ones(2, requires_grad=True)
    with pytest.raises(AutogradError, match="detach"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0, 1.0]


def test_array_protocol_and_from_numpy_share_memory():
    a = np.arange(6.0).reshape(2, 3)
    t = tensor.from_numpy(a)
    a[0, 0] = 42
    assert t[0, 0].item() == 42 if hasattr(t, "__getitem__") else t.tolist()[0][0] == 42
    assert np.asarray(t) is a or np.shares_memory(np.asarray(t), a)


def test_dlpack_round_trip_with_numpy():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = tensor.from_dlpack(a)
    assert np.shares_memory(t.numpy(), a)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, a)
    assert t.__dlpack_device__()[0] == 1  # kDLCPU


def test_dlpack_round_trip_with_torch():
    torch = pytest.importorskip("torch")
    src = torch.arange(6, dtype=torch.float32)
    t = tensor.from_dlpack(src)
    src[0] = 5
    assert t.tolist()[0] == 5.0
    back = torch.from_dlpack(t)
    assert back.data_ptr() == src.data_ptr()


def test_repr_is_readable(device):
    x = tensor.tensor([1.0, 2.0], device=device, requires_grad=True)
    assert repr(x).startswith("tensor([1., 2.]") and "requires_grad=True" in repr(x)
    assert "dtype=tensor.int32" in repr(tensor.tensor([1], dtype=tensor.int32, device=device))
    assert "grad_fn=<Mul>" in repr(x * 2)


def test_format_of_a_scalar_tensor_is_its_number(device):
    loss = tensor.tensor(2.5, device=device, requires_grad=True) * 1
    assert f"{loss:.3f}" == "2.500" and f"{tensor.tensor(3, device=device):d}" == "3"
    assert f"{tensor.tensor(True, device=device)}" == "True"
    x = tensor.tensor([1.0, 2.0], device=device)
    assert f"{x}" == str(x)
    with pytest.raises(TypeError, match=r"needs a 0-d tensor, got shape \(2,\)"):
        f"{x:.3f}"


def test_unsupported_dtype_is_a_clear_error():
    with pytest.raises(DTypeError, match="not supported"):
        tensor.tensor(np.zeros(2, dtype=np.complex64))


@pytest.mark.parametrize("op, a, b, message", [
    (lambda a, b: a + b, (2, 3), (4, 3), r"add: shapes \(2, 3\) and \(4, 3\) do not broadcast: sizes 2 and 4 differ at dim 0"),
    (lambda a, b: a * b, (2, 3), (5, 4, 3), r"mul: shapes \(2, 3\) and \(5, 4, 3\) do not broadcast: sizes 2 and 4 differ at dim 1"),
    (lambda a, b: tensor.where(a > 0, b, 0.0), (3,), (2,), r"where: shapes \(3,\) and \(2,\) do not broadcast"),
])
def test_operands_that_do_not_broadcast_are_a_clear_error(device, op, a, b, message):
    with pytest.raises(tensor.ShapeError, match=message + r".*\(each size must match or be 1\)"):
        op(tensor.ones(*a, device=device), tensor.ones(*b, device=device, requires_grad=True))


def test_bad_device_is_a_clear_error():
    with pytest.raises(tensor.DeviceError, match="unknown device"):
        tensor.zeros(2, device="tpu")


def test_cuda_without_cupy_is_a_clear_error():
    if tensor.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(tensor.DeviceError, match="CUDA|CuPy|cuda"):
        tensor.zeros(2, device="cuda")


def test_import_is_fast_and_needs_no_cupy():
    import subprocess
    import sys

    code = "import sys, tensor; assert 'cupy' not in sys.modules; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_channels_last_memory_format_keeps_values_and_matches_torch_strides(device):
    x = tensor.randn(2, 3, 4, 5, device=device, requires_grad=True)
    y = x.contiguous(memory_format=tensor.channels_last)
    assert y.stride() == (60, 1, 15, 3) and y.is_contiguous(memory_format=tensor.channels_last)
    assert not y.is_contiguous() and x.is_contiguous(memory_format=tensor.contiguous_format)
    np.testing.assert_array_equal(y.detach().cpu().numpy(), x.detach().cpu().numpy())
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * x.detach().cpu().numpy(), rtol=1e-6)
    assert x.to(memory_format=tensor.channels_last).stride() == (60, 1, 15, 3)
    assert y.contiguous(memory_format=tensor.contiguous_format).stride() == (60, 20, 5, 1)
    assert x.clone(memory_format=tensor.channels_last).stride() == (60, 1, 15, 3)
    v = tensor.zeros(1, 2, 3, 4, 5, device=device).to(memory_format=tensor.channels_last_3d)
    assert v.stride() == (120, 1, 40, 10, 2)
    model = tensor.nn.Conv2d(3, 2, 3).to(device).to(memory_format=tensor.channels_last)
    assert tuple(model(y).shape) == (2, 2, 2, 3)
    with pytest.raises(ValueError, match="channels_last needs a 4-d tensor, got shape \\(3, 4\\)"):
        tensor.zeros(3, 4, device=device).contiguous(memory_format=tensor.channels_last)
    with pytest.raises(TypeError, match="memory_format must be one of"):
        x.contiguous(memory_format="channels_last")


def test_legacy_tensor_constructor_makes_default_float_tensors_like_torch(device):
    # torch.Tensor(...) is torch.FloatTensor: CleanRL's torch.Tensor(obs) and the tutorials' torch.Tensor([0])
    obs = np.arange(6.0).reshape(2, 3)  # float64, as environments return it
    made = tensor.Tensor(obs, device=device)
    assert made.dtype == tensor.float32 and made.tolist() == obs.tolist()
    assert tensor.Tensor([0]).dtype == tensor.float32 and tensor.Tensor([True]).tolist() == [1.0]
    assert tensor.Tensor(2, 3).shape == (2, 3) and tensor.Tensor(tensor.Size([4])).shape == (4,)
    # NumPy integers are sizes, as in torch: mammoth's A-GEM allocates torch.Tensor(np.sum(grad_dims))
    assert tensor.Tensor(np.sum([2, 3])).shape == (5,) and tensor.Tensor(np.int32(2), 3).shape == (2, 3)
    assert tensor.Tensor().shape == (0,) and tensor.Tensor([1], dtype=tensor.int64).dtype == tensor.int64
    loss = tensor.Tensor([0])
    loss += tensor.tensor([1.5])  # float32 holds it in place
    assert loss.tolist() == [1.5]
    assert tensor.tensor([1, 2]).dtype == tensor.int64  # the factory keeps data's dtype, as torch.tensor
    with pytest.raises(TypeError, match="sizes"):
        tensor.Tensor([1.0], 2)
    tensor.set_default_dtype(tensor.float64)
    try:
        assert tensor.Tensor([1]).dtype == tensor.float64
    finally:
        tensor.set_default_dtype(tensor.float32)


def test_linspace_and_scalar_division_round_as_torch(device):
    # torchvision's color ops cast these to uint8, where one ulp is a whole grey level
    torch = pytest.importorskip("torch")
    for start, end, steps in [(0.0, 0.9, 31), (-1, 1, 7), (0, 1, 1), (2.5, -3.25, 100)]:
        got = tensor.linspace(start, end, steps, device=device).cpu().numpy()
        np.testing.assert_array_equal(got, torch.linspace(start, end, steps).numpy())
    divisors = np.array([7.0, 3.0, 0.3], np.float32)
    np.testing.assert_array_equal((255 / tensor.tensor(divisors, device=device)).cpu().numpy(),
                                  (255 / torch.tensor(divisors)).numpy())
