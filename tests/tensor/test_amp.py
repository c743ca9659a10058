"""tensor.amp: the autocast region (a no-op on CPU) and GradScaler's scaling, skipping and scale updates."""
import math
import threading
import warnings

import numpy as np
import pytest

import tensor
from tensor import amp

# ---------------------------------------------------------------------------------------- autocast


def test_autocast_region_sets_and_restores_the_dtype():
    assert amp.autocast_dtype("cuda") is None
    with amp.autocast("cuda"):
        assert amp.autocast_dtype("cuda") == tensor.float16
        assert amp.autocast_dtype("cpu") is None
        with amp.autocast("cuda", enabled=False):
            assert amp.autocast_dtype("cuda") is None
        assert amp.autocast_dtype("cuda") == tensor.float16
    assert amp.autocast_dtype("cuda") is None


def test_autocast_restores_after_an_exception_and_works_as_a_decorator():
    with pytest.raises(KeyError):
        with amp.autocast():
            raise KeyError("boom")
    assert amp.autocast_dtype() is None

    @amp.autocast("cuda")
    def inside():
        return amp.autocast_dtype("cuda")

    assert inside() == tensor.float16
    assert amp.autocast_dtype() is None


def test_autocast_is_per_thread():
    seen = []
    with amp.autocast("cuda"):
        worker = threading.Thread(target=lambda: seen.append(amp.autocast_dtype("cuda")))
        worker.start()
        worker.join()
    assert seen == [None]


def test_autocast_on_cpu_is_a_no_op():
    a = tensor.randn(4, 3)
    b = tensor.randn(3, 2)
    with amp.autocast("cpu"):
        assert amp.autocast_dtype("cpu") is None
        assert (a @ b).dtype == tensor.float32
    with amp.autocast("cuda"):  # CPU tensors are never cast, even inside a CUDA region
        cast_a, cast_b = amp.autocast_inputs(a, b)
        assert cast_a is a and cast_b is b
        assert (a @ b).dtype == tensor.float32


def test_autocast_inputs_outside_a_region_returns_the_inputs():
    a = tensor.randn(2)
    assert amp.autocast_inputs(a, 3) == (a, 3)


def test_autocast_argument_errors():
    with pytest.raises(ValueError, match="'tpu'"):
        amp.autocast("tpu")
    with pytest.raises(ValueError, match="floating"):
        amp.autocast("cuda", dtype=tensor.int32)


# -------------------------------------------------------------------------------------- GradScaler


class FakeOptimizer:
    """Just what GradScaler touches: param_groups, and a step() that counts its calls."""

    def __init__(self, params):
        self.param_groups = [{"params": params}]
        self.steps = 0

    def step(self):
        self.steps += 1
        return "stepped"


def params_with_grads(*grads):
    params = []
    for grad in grads:
        p = tensor.zeros(len(grad), requires_grad=True)
        p.grad = tensor.tensor(np.asarray(grad, np.float32))
        params.append(p)
    return params


def test_disabled_without_cuda_warns_once_and_passes_through(monkeypatch):
    if tensor.cuda.is_available():
        pytest.skip("CUDA is available: the scaler stays enabled")
    monkeypatch.setattr(amp, "_warned_no_cuda", False)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        scaler = amp.GradScaler()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        amp.GradScaler()  # the second one is quiet
    loss = tensor.tensor(2.0)
    opt = FakeOptimizer(params_with_grads([1.0]))
    assert not scaler.is_enabled() and scaler.scale(loss) is loss and scaler.get_scale() == 1.0
    assert scaler.step(opt) == "stepped" and opt.steps == 1
    scaler.update()
    assert scaler.state_dict() == {}


def test_scale_multiplies_the_loss():
    scaler = amp.GradScaler(init_scale=1024.0, device="cpu")
    assert float(scaler.scale(tensor.tensor(0.5))) == 512.0
    scaled = scaler.scale([tensor.tensor(1.0), tensor.tensor(2.0)])
    assert [float(t) for t in scaled] == [1024.0, 2048.0]


def test_finite_gradients_are_unscaled_and_stepped():
    scaler = amp.GradScaler(init_scale=8.0, device="cpu")
    params = params_with_grads([8.0, 16.0], [-4.0])
    opt = FakeOptimizer(params)
    version = params[0].grad._version
    assert scaler.step(opt) == "stepped" and opt.steps == 1
    np.testing.assert_array_equal(params[0].grad.data, [1.0, 2.0])
    np.testing.assert_array_equal(params[1].grad.data, [-0.5])
    assert params[0].grad._version == version + 1
    scaler.update()
    assert scaler.get_scale() == 8.0


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_inf_or_nan_gradients_skip_the_step_and_back_off(bad):
    scaler = amp.GradScaler(init_scale=8.0, backoff_factor=0.25, device="cpu")
    opt = FakeOptimizer(params_with_grads([1.0, 2.0], [bad, 1.0]))
    assert scaler.step(opt) is None and opt.steps == 0
    scaler.update()
    assert scaler.get_scale() == 2.0


def test_scale_grows_after_growth_interval_clean_steps_and_resets_on_overflow():
    scaler = amp.GradScaler(init_scale=4.0, growth_factor=3.0, growth_interval=3, device="cpu")
    scales = []
    for grads in [[1.0], [1.0], [1.0], [1.0], [math.inf], [1.0], [1.0], [1.0]]:
        opt = FakeOptimizer(params_with_grads(grads))
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    assert scales == [4.0, 4.0, 12.0, 12.0, 6.0, 6.0, 6.0, 18.0]


def test_unscale_before_clipping_then_step():
    scaler = amp.GradScaler(init_scale=2.0, device="cpu")
    params = params_with_grads([4.0])
    opt = FakeOptimizer(params)
    scaler.unscale_(opt)
    np.testing.assert_array_equal(params[0].grad.data, [2.0])
    scaler.step(opt)  # does not unscale a second time
    np.testing.assert_array_equal(params[0].grad.data, [2.0])
    assert opt.steps == 1


def test_misuse_is_reported():
    scaler = amp.GradScaler(device="cpu")
    opt = FakeOptimizer(params_with_grads([1.0]))
    with pytest.raises(RuntimeError, match="no gradients were checked"):
        scaler.update()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="closures"):
        scaler.step(opt, closure=lambda: 0)
    half = tensor.zeros(2, dtype=tensor.float16, requires_grad=True)
    half.grad = tensor.ones(2, dtype=tensor.float16)
    scaler.update()
    with pytest.raises(ValueError, match="float16 gradients"):
        scaler.unscale_(FakeOptimizer([half]))


@pytest.mark.parametrize("kwargs, words", [
    (dict(growth_factor=1.0), "growth_factor"),
    (dict(backoff_factor=1.5), "backoff_factor"),
    (dict(growth_interval=0), "growth_interval"),
    (dict(device="tpu"), "device"),
])
def test_argument_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        amp.GradScaler(**kwargs)


def test_torch_style_device_first_argument(monkeypatch):
    scaler = amp.GradScaler("cpu", init_scale=16.0)
    assert scaler.is_enabled() and scaler.get_scale() == 16.0
    monkeypatch.setattr(amp, "_warned_no_cuda", True)  # quiet: only the argument order matters here
    assert amp.GradScaler(32.0).device == "cuda" and amp.GradScaler(32.0)._scale == 32.0


def test_state_dict_round_trip_through_a_file(tmp_path):
    scaler = amp.GradScaler(init_scale=64.0, growth_interval=5, device="cpu")
    for _ in range(3):
        scaler.step(FakeOptimizer(params_with_grads([1.0])))
        scaler.update()
    tensor.save({"scaler": scaler.state_dict()}, tmp_path / "ckpt")
    state = tensor.load(tmp_path / "ckpt")["scaler"]
    assert state == {"scale": 64.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 5,
                     "_growth_tracker": 3}
    resumed = amp.GradScaler(device="cpu")
    resumed.load_state_dict(state)
    for _ in range(2):
        resumed.step(FakeOptimizer(params_with_grads([1.0])))
        resumed.update()
    assert resumed.get_scale() == 128.0
    with pytest.raises(RuntimeError, match="empty"):
        amp.GradScaler(device="cpu").load_state_dict({})


def test_with_a_real_optimizer():
    p = tensor.tensor([1.0, 2.0], requires_grad=True)
    opt = tensor.optim.SGD([p], lr=0.1)
    scaler = amp.GradScaler(init_scale=128.0, device="cpu")
    scaler.scale((p * p).sum()).backward()
    np.testing.assert_allclose(p.grad.data, [256.0, 512.0])
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(p.data, [0.8, 1.6], rtol=1e-6)


def test_linear_and_conv_on_cpu_stay_float32_inside_autocast():
    F = pytest.importorskip("tensor.nn.functional")
    x = tensor.randn(2, 3, 5, 5, requires_grad=True)
    weight = tensor.randn(4, 3, 3, 3, requires_grad=True)
    with amp.autocast("cuda"):
        out = F.conv2d(x, weight, padding=1)
        y = F.linear(out.reshape(2, -1), tensor.randn(6, 100))
    assert out.dtype == tensor.float32 and y.dtype == tensor.float32
    y.sum().backward()
    assert weight.grad.dtype == tensor.float32


def test_the_older_cuda_amp_spelling_is_tensor_amp():
    # torch.cuda.amp.autocast() / GradScaler() in older scripts: the same objects with device "cuda" fixed
    region = tensor.cuda.amp.autocast(dtype=tensor.float16)
    assert isinstance(region, tensor.amp.autocast) and region.device_type == "cuda" and region.enabled
    assert not tensor.cuda.amp.autocast(enabled=False).enabled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without CUDA the scaler warns that it passes everything through
        scaler = tensor.cuda.amp.GradScaler(init_scale=1024.0)
    assert isinstance(scaler, tensor.amp.GradScaler)
