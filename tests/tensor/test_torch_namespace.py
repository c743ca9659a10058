"""torch's top-level names a script reaches for: constants, window functions, torch.testing, vmap,
set_float32_matmul_precision and the nn.functional ops torch also exports (torch.conv2d, ...)."""
import math

import numpy as np
import pytest

import tensor
import tensor.nn.functional as F

from helpers import to_numpy


def test_constants_and_aliases():
    assert (tensor.pi, tensor.e, tensor.inf) == (math.pi, math.e, math.inf) and math.isnan(tensor.nan)
    assert tensor.newaxis is None and tensor.vmap is tensor.func.vmap
    assert tensor.conv2d is F.conv2d and tensor.pixel_shuffle is F.pixel_shuffle and tensor.layer_norm is F.layer_norm


def test_float32_matmul_precision_is_recorded_and_checked():
    assert tensor.get_float32_matmul_precision() == "highest"
    tensor.set_float32_matmul_precision("high")
    try:
        assert tensor.get_float32_matmul_precision() == "high"
    finally:
        tensor.set_float32_matmul_precision("highest")
    with pytest.raises(ValueError, match="expected one of 'highest', 'high', 'medium', got 'low'"):
        tensor.set_float32_matmul_precision("low")


@pytest.mark.parametrize("name", ["hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window"])
def test_windows_match_torch(device, name):
    torch = pytest.importorskip("torch")
    for length in (0, 1, 2, 5, 16):
        for periodic in (True, False):
            ours = getattr(tensor, name)(length, periodic, dtype=tensor.float64, device=device)
            np.testing.assert_allclose(to_numpy(ours), getattr(torch, name)(length, periodic, dtype=torch.float64).numpy(),
                                       atol=1e-12)
    assert getattr(tensor, name)(8).dtype == tensor.float32
    with pytest.raises(ValueError, match="window_length must be a non-negative int, got -1"):
        getattr(tensor, name)(-1)


def test_assert_close_passes_and_fails_like_torch(device):
    close = tensor.testing.assert_close
    x = tensor.tensor([1.0, 2.0, 3.0], device=device)
    close(x, x + 1e-6)
    close({"w": [x, 3]}, {"w": (x.clone(), 3)})
    close(tensor.tensor([math.nan]), tensor.tensor([math.nan]), equal_nan=True)
    with pytest.raises(AssertionError, match=r"Mismatched elements: 1 / 3 \(33.3%\)\nGreatest absolute difference: "):
        close(x, tensor.tensor([1.0, 2.1, 3.0], device=device))
    with pytest.raises(AssertionError, match="attribute 'dtype' do not match: float32 != float64"):
        close(x, x.double())
    close(x, x.double(), check_dtype=False)
    with pytest.raises(AssertionError, match=r"The failure occurred for item \['a'\]\[1\]"):
        close({"a": [x, x]}, {"a": [x, x * 2]})
    with pytest.raises(AssertionError, match="Scalars are not close"):
        close(1.0, 1.1)
    with pytest.raises(AssertionError, match="Tensor-likes are not equal"):
        close(tensor.tensor([1, 2]), tensor.tensor([1, 3]))
    with pytest.raises(AssertionError, match="custom"):
        close(x, x * 2, msg="custom")
    with pytest.raises(ValueError, match="both rtol and atol"):
        close(x, x, rtol=1e-3)


def test_make_tensor(device):
    t = tensor.testing.make_tensor(3, 4, dtype=tensor.float32, device=device, low=-1, high=1)
    assert t.shape == (3, 4) and t.dtype == tensor.float32 and (t.abs() <= 1).all()
    ints = tensor.testing.make_tensor((50,), dtype=tensor.int64, device=device, exclude_zero=True, noncontiguous=True)
    assert not ints.is_contiguous() and (ints != 0).all()


def test_backends_flags_and_the_accelerator_as_scripts_use_them():
    # nanoGPT's and the vision scripts' first lines
    tensor.backends.cudnn.benchmark = True
    tensor.backends.cudnn.allow_tf32 = True
    try:
        tensor.backends.cuda.matmul.allow_tf32 = True  # linked to the float32 matmul precision, as in torch
        assert tensor.get_float32_matmul_precision() == "high" and tensor.backends.cuda.matmul.allow_tf32
        tensor.set_float32_matmul_precision("highest")
        assert not tensor.backends.cuda.matmul.allow_tf32
    finally:
        tensor.backends.cudnn.benchmark = False
        tensor.set_float32_matmul_precision("highest")
    assert not tensor.backends.mps.is_available() and not tensor.backends.cudnn.is_available()
    tensor.backends.cuda.enable_flash_sdp(False)
    assert not tensor.backends.cuda.flash_sdp_enabled() and tensor.backends.cuda.math_sdp_enabled()
    tensor.backends.cuda.enable_flash_sdp(True)
    cuda = tensor.cuda.is_available()
    assert tensor.accelerator.is_available() == cuda == tensor.backends.cuda.is_built()
    device = tensor.accelerator.current_accelerator().type if tensor.accelerator.is_available() else "cpu"
    assert device == ("cuda" if cuda else "cpu")


def test_multiprocessing_module_compile_cuda_rng_and_new_empty_strided():
    import multiprocessing

    assert tensor.multiprocessing.get_context is multiprocessing.get_context  # loaded on first use
    model = tensor.nn.Linear(2, 2)
    assert model.compile(mode="reduce-overhead") is None  # in place, as torch's Module.compile
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        model.compile(mode="fast")
    if not tensor.cuda.is_available():
        assert tensor.cuda.get_rng_state_all() == []
        with pytest.raises(tensor.DeviceError, match="0 CUDA device"):
            tensor.cuda.get_rng_state()
    x = tensor.ones(2, 3, dtype=tensor.float64)
    y = x.new_empty_strided((2, 3), (1, 2))
    assert y.dtype == tensor.float64 and y.shape == (2, 3) and y.stride() == (1, 2)
