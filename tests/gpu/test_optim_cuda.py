"""The fused CuPy optimizer kernels, GradScaler's fused unscale and autocast on a GPU, against the NumPy path.

Skipped without CuPy and a CUDA device (see conftest.py).
"""
import math

import numpy as np
import pytest

import tensor
from tensor import amp, optim

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.1, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
]


def run(name, hyper, start, grads, device):
    param = tensor.tensor(start, device=device, requires_grad=True)
    opt = getattr(optim, name)([param], **hyper)
    for g in grads:
        param.grad = tensor.tensor(g, device=device)
        opt.step()
    return param.cpu().detach().numpy(), opt


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("name, hyper", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_cuda_update_matches_numpy(name, hyper, dtype, rtol, device, rng):
    start = rng.standard_normal((67, 33)).astype(dtype)
    grads = [rng.standard_normal(start.shape).astype(dtype) for _ in range(5)]
    on_gpu, opt = run(name, hyper, start, grads, device)
    on_cpu, _ = run(name, hyper, start, grads, "cpu")
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=rtol, atol=rtol)
    for value in opt.state[opt.param_groups[0]["params"][0]].values():
        if isinstance(value, tensor.Tensor):
            assert value.device == tensor.device(device) and value.dtype == dtype


def test_float16_parameters_update_in_float32_arithmetic(device, rng):
    start = rng.standard_normal(1000).astype(np.float16)
    grads = [rng.standard_normal(1000).astype(np.float16) for _ in range(3)]
    on_gpu, _ = run("Adam", dict(lr=1e-2), start, grads, device)
    on_cpu, _ = run("Adam", dict(lr=1e-2), start.astype(np.float32), [g.astype(np.float32) for g in grads], "cpu")
    np.testing.assert_allclose(on_gpu.astype(np.float32), on_cpu, rtol=2e-3, atol=2e-3)


def test_state_dict_moves_between_devices(device, rng, tmp_path):
    start = rng.standard_normal(10).astype(np.float32)
    _, opt = run("Adam", dict(lr=0.01), start, [start], device)
    tensor.save(opt.state_dict(), tmp_path / "optim")
    loaded = tensor.load(tmp_path / "optim")
    assert loaded["state"][0]["exp_avg"].device == tensor.device(device)
    on_cpu = tensor.load(tmp_path / "optim", map_location="cpu")
    assert on_cpu["state"][0]["exp_avg"].device == tensor.device("cpu")


@pytest.mark.parametrize("bad", [None, math.inf, math.nan])
def test_grad_scaler_unscales_with_one_kernel_and_skips_on_overflow(device, bad):
    p = tensor.zeros(4, device=device, requires_grad=True)
    grad = np.array([8.0, 16.0, -4.0, 2.0], np.float32)
    if bad is not None:
        grad[2] = bad
    p.grad = tensor.tensor(grad, device=device)
    opt = optim.SGD([p], lr=1.0)
    scaler = amp.GradScaler(init_scale=8.0)
    assert scaler.is_enabled()
    scaler.step(opt)
    scaler.update()
    if bad is None:
        np.testing.assert_allclose(p.cpu().detach().numpy(), -grad / 8.0)
        assert scaler.get_scale() == 8.0
    else:
        assert not p.cpu().detach().numpy().any()  # skipped
        assert scaler.get_scale() == 4.0


def test_autocast_runs_matmul_in_float16_with_float32_grads(device):
    a = tensor.randn(8, 16, device=device, requires_grad=True)
    b = tensor.randn(16, 4, device=device, requires_grad=True)
    with amp.autocast("cuda"):
        out = a @ b
        assert out.dtype == tensor.float16
    out.float().sum().backward()
    assert a.grad.dtype == tensor.float32 and b.grad.dtype == tensor.float32
    expected = a.detach().cpu().numpy().astype(np.float16) @ b.detach().cpu().numpy().astype(np.float16)
    np.testing.assert_allclose(out.cpu().detach().numpy(), expected, rtol=1e-2, atol=1e-2)
