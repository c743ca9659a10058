"""tensor.runtime and tensor.cuda's seeding: what a torch script sets at its top (seeds, threads,
deterministic mode, default device) and torch's small top-level helpers (asarray, frombuffer...).

CUDA-only behaviour (device properties, streams, events, the deterministic check on real CUDA
ops) is in tests/gpu/test_runtime_cuda.py.
"""
import os
import sys
import types
import warnings

import numpy as np
import pytest

import tensor
from tensor import random as trandom
from tensor import runtime
from tensor.backend import Device
from tensor.errors import DeviceError, ShapeError
from tensor.ops import gather

CUDA = tensor.cuda.is_available()


@pytest.fixture(autouse=True)
def restore_settings():
    yield
    tensor.use_deterministic_algorithms(False)
    tensor.set_default_device(None)


# ------------------------------------------------------------------------------------------- seeds


def test_cuda_seeding_is_safe_anywhere_and_draws_repeat(device):
    def draw():
        tensor.manual_seed(3)
        tensor.cuda.manual_seed(3)
        tensor.cuda.manual_seed_all(3)
        return tensor.rand(5, device=device).cpu().numpy(), tensor.randint(0, 100, (4,), device=device).cpu().numpy()

    first, second = draw(), draw()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    tensor.cuda.seed()
    tensor.cuda.seed_all()


@pytest.mark.skipif(CUDA, reason="checks the behaviour without CUDA")
def test_cuda_initial_seed_and_device_queries_raise_without_cuda():
    for call in (tensor.cuda.initial_seed, tensor.cuda.get_device_name, tensor.cuda.get_device_properties,
                 tensor.cuda.get_device_capability, tensor.cuda.mem_get_info, tensor.cuda.Stream,
                 tensor.cuda.Event, lambda: tensor.cuda.set_device(0), lambda: tensor.cuda.device(0).__enter__()):
        with pytest.raises(DeviceError):
            call()
    with tensor.cuda.device(None), tensor.cuda.stream(None):  # torch's no-op forms
        pass


def test_a_device_seed_waits_for_the_generator_and_manual_seed_overrides_it(monkeypatch):
    monkeypatch.setattr(trandom, "_pending_seeds", {})
    far = Device("cuda", 7)  # never created: seeding it must not touch CUDA
    trandom.seed_device(far, 11)
    assert trandom.device_initial_seed(far) == 11
    tensor.manual_seed(5)
    assert trandom._pending_seeds == {}


def test_a_default_generator_made_after_manual_seed_takes_its_seed(monkeypatch):
    tensor.manual_seed(21)
    monkeypatch.setattr(trandom, "_default_generators", {})
    assert trandom.default_generator("cpu").initial_seed() == 21


# ----------------------------------------------------------------------------------------- threads


def test_num_threads_round_trip():
    pytest.importorskip("threadpoolctl")
    before = tensor.get_num_threads()
    try:
        tensor.set_num_threads(1)
        assert tensor.get_num_threads() == 1
        np.ones((64, 64)) @ np.ones((64, 64))  # BLAS still runs
    finally:
        tensor.set_num_threads(before)
    assert tensor.get_num_threads() == before


def test_num_threads_without_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # makes `import threadpoolctl` fail
    with pytest.raises(RuntimeError, match="pip install threadpoolctl.*OMP_NUM_THREADS=2"):
        tensor.set_num_threads(2)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert tensor.get_num_threads() == cpus
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")
    assert tensor.get_num_threads() == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "5")  # OpenBLAS reads its own variable first
    assert tensor.get_num_threads() == 5


def test_set_num_threads_rejects_bad_counts():
    with pytest.raises(ValueError, match="positive"):
        tensor.set_num_threads(0)
    with pytest.raises(TypeError, match="float"):
        tensor.set_num_threads(2.0)


# ------------------------------------------------------------------------------------ determinism


def test_deterministic_flags():
    assert not tensor.are_deterministic_algorithms_enabled()
    tensor.use_deterministic_algorithms(True, warn_only=True)
    assert tensor.are_deterministic_algorithms_enabled() and tensor.is_deterministic_algorithms_warn_only_enabled()
    tensor.use_deterministic_algorithms(True)
    assert tensor.are_deterministic_algorithms_enabled()
    assert not tensor.is_deterministic_algorithms_warn_only_enabled()
    tensor.use_deterministic_algorithms(False)
    assert not tensor.are_deterministic_algorithms_enabled()
    with pytest.raises(TypeError, match="mode must be a bool"):
        tensor.use_deterministic_algorithms(1)


def test_deterministic_mode_leaves_cpu_ops_alone():
    """The atomic-using ops run on the CPU as usual (this test is about the CPU path only)."""
    def run():
        w = tensor.ones(5, 3, requires_grad=True)
        x = tensor.zeros(5).scatter_add(0, tensor.tensor([0, 0, 2]), tensor.ones(3))
        tensor.nn.functional.embedding(tensor.tensor([1, 1, 4]), w).sum().backward()
        counts = tensor.bincount(tensor.tensor([0, 1, 1]), weights=tensor.tensor([0.5, 1.0, 2.0]))
        return x.numpy(), w.grad.numpy(), counts.numpy()

    expected = run()
    tensor.use_deterministic_algorithms(True)
    for got, want in zip(run(), expected):
        np.testing.assert_array_equal(got, want)


class _FakeCupyx(types.SimpleNamespace):
    """Stands in for cupyx so that add_at's CUDA branch runs on NumPy arrays."""

    @staticmethod
    def scatter_add(target, index, values):
        np.add.at(target, index, values)


def test_cuda_scatter_add_raises_or_warns_in_deterministic_mode(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupyx", _FakeCupyx())
    fake_cupy = types.SimpleNamespace()  # not numpy: add_at takes its CUDA branch
    target, index = np.zeros(3), np.array([0, 0, 2])
    gather.add_at(fake_cupy, target, index, np.ones(3))  # mode off: runs
    np.testing.assert_array_equal(target, [2, 0, 1])
    tensor.use_deterministic_algorithms(True)
    with pytest.raises(RuntimeError, match=r"scatter_add \(cupyx.scatter_add\) does not have a deterministic"):
        gather.add_at(fake_cupy, target, index, np.ones(3))
    gather.add_at(fake_cupy, np.zeros(3, np.int64), index, np.ones(3, np.int64))  # integer sums are exact
    tensor.use_deterministic_algorithms(True, warn_only=True)
    with pytest.warns(UserWarning, match="scatter_add"):
        gather.add_at(fake_cupy, target, index, np.ones(3))
    np.testing.assert_array_equal(target, [4, 0, 2])


def test_deterministic_error_names_the_calling_function():
    class Accumulate(tensor.Function):
        @staticmethod
        def forward(ctx, x):
            runtime.check_deterministic("fake_op")
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad

    Accumulate.apply(tensor.ones(2))  # mode off: nothing
    tensor.use_deterministic_algorithms(True)
    with pytest.raises(RuntimeError, match=r"fake_op \(in .*Accumulate.forward\) does not have"):
        Accumulate.apply(tensor.ones(2))


# ---------------------------------------------------------------------------------- default device


def test_default_device_round_trip_and_factories(device):
    assert tensor.get_default_device() == Device("cpu")
    tensor.set_default_device(device)
    try:  # (the autouse fixture does not follow this test when tests/gpu re-runs it)
        assert tensor.get_default_device() == Device(device)
        made = [tensor.zeros(2), tensor.ones(2, 3), tensor.empty(2), tensor.full((2,), 1.5), tensor.rand(2),
                tensor.randn(2), tensor.randint(0, 5, (3,)), tensor.randperm(4), tensor.arange(3),
                tensor.linspace(0, 1, 3), tensor.logspace(0, 1, 3), tensor.eye(2), tensor.tril_indices(3, 3),
                tensor.tensor([1.0, 2.0]), tensor.tensor(np.ones(2)), tensor.as_tensor(np.ones(2)),
                tensor.asarray([1, 2]), tensor.empty_strided((2, 2), (2, 1)), tensor.nn.Linear(2, 3).weight]
        assert all(t.device == Device(device) for t in made)
        assert tensor.from_numpy(np.ones(2)).device == Device("cpu")  # always shares the NumPy array
    finally:
        tensor.set_default_device(None)
    assert tensor.get_default_device() == Device("cpu") and tensor.zeros(1).device == Device("cpu")


@pytest.mark.skipif(CUDA, reason="needs a machine without CUDA to stand a missing GPU in")
def test_factories_follow_a_non_cpu_default(monkeypatch):
    with pytest.raises(DeviceError):
        tensor.set_default_device("cuda")  # refused at once, not at the first factory call
    monkeypatch.setattr(runtime, "_default_device", Device("cuda"))
    for factory in (lambda: tensor.zeros(2), lambda: tensor.rand(2), lambda: tensor.arange(3),
                    lambda: tensor.tensor([1.0]), lambda: tensor.as_tensor(tensor.ones(2, device="cpu")),
                    lambda: tensor.asarray(np.ones(2))):
        with pytest.raises(DeviceError, match="CUDA"):  # each one went for the GPU
            factory()
    assert tensor.zeros(2, device="cpu").device == Device("cpu")
    assert tensor.from_numpy(np.ones(2)).device == Device("cpu")
    assert tensor.Tensor([1.0]).device == Device("cpu")  # torch's legacy constructor ignores the default too


# ------------------------------------------------------------------------------- torch's helpers


def test_autocast_alias():
    assert tensor.autocast is tensor.amp.autocast


def test_promotion_helpers_match_torch():
    torch = pytest.importorskip("torch")
    names = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
    for a in names:
        for b in names:
            ours, theirs = getattr(tensor, a), getattr(torch, a)
            other, other_t = getattr(tensor, b), getattr(torch, b)
            assert tensor.promote_types(ours, other).name == str(torch.promote_types(theirs, other_t))[6:], (a, b)
            assert tensor.can_cast(ours, other) == torch.can_cast(theirs, other_t), (a, b)
    cases = [(np.ones(2, np.int32), 2.5), (np.ones(2, np.int64), np.array(1.0)), (np.ones(2, np.float16), 1),
             (np.ones(2, np.uint8), np.ones(2, np.int8)), (np.array(True), 3)]
    for x, y in cases:
        wrap = lambda v, lib: lib.as_tensor(v) if isinstance(v, np.ndarray) else v  # noqa: E731
        assert tensor.result_type(wrap(x, tensor), wrap(y, tensor)).name == str(
            torch.result_type(wrap(x, torch), wrap(y, torch)))[6:], (x, y)


def test_asarray_shares_converts_and_copies_like_torch(device):
    torch = pytest.importorskip("torch")
    t = tensor.ones(3, device=device)
    assert tensor.asarray(t) is t
    assert tensor.asarray(t, copy=True) is not t and tensor.asarray(t, dtype=tensor.float64).dtype == tensor.float64
    with pytest.raises(ValueError, match="copy=False"):
        tensor.asarray(t, dtype=tensor.float64, copy=False)
    with pytest.raises(ValueError, match="copy=False"):
        tensor.asarray([1, 2], copy=False)
    for data in ([1, 2], [1.0, 2], 3.0, [True], np.float64(2.5), np.ones(2, np.int32), bytearray(8)):
        ours, theirs = tensor.asarray(data, device=device), torch.asarray(data)
        assert ours.dtype.name == str(theirs.dtype)[6:] and tuple(ours.shape) == tuple(theirs.shape), data
        np.testing.assert_array_equal(ours.cpu().numpy(), theirs.numpy())
    n = np.zeros(3, np.float32)
    shared, copied = tensor.asarray(n), tensor.asarray(n, copy=True)
    n[0] = 7
    assert shared[0].item() == 7 and copied[0].item() == 0


def test_asarray_requires_grad(device):
    leaf = tensor.ones(2, device=device, requires_grad=True)
    y = leaf * 2
    assert tensor.asarray(y) is y  # None keeps the graph
    assert not tensor.asarray(y, requires_grad=False).requires_grad
    assert tensor.asarray(y, copy=True).grad_fn is not None  # a differentiable copy, as torch's clone
    assert tensor.asarray(np.ones(2), requires_grad=True, device=device).requires_grad


def test_frombuffer_matches_torch_and_shares_the_buffer():
    torch = pytest.importorskip("torch")
    data = bytearray(np.arange(4, dtype=np.float32).tobytes())
    for kwargs in ({}, {"count": 2, "offset": 4}, {"offset": 8}):
        ours = tensor.frombuffer(data, dtype=tensor.float32, **kwargs)
        np.testing.assert_array_equal(ours.numpy(), torch.frombuffer(data, dtype=torch.float32, **kwargs).numpy())
    view = tensor.frombuffer(data, dtype=tensor.float32)
    data[0:4] = np.float32(9).tobytes()
    assert view[0].item() == 9
    for kwargs, message in (({"offset": 3}, "multiple"), ({"count": 5}, "exceed"), ({"offset": 16}, "offset"),
                            ({"count": 0}, "count")):
        with pytest.raises(ValueError, match=message):
            tensor.frombuffer(data, dtype=tensor.float32, **kwargs)
    with pytest.warns(UserWarning, match="not writable"):
        tensor.frombuffer(b"abcd", dtype=tensor.uint8)


def test_empty_strided_has_the_strides_asked_for(device):
    torch = pytest.importorskip("torch")
    for size, stride in (((2, 3), (1, 2)), ((2, 3), (0, 1)), ((4,), (2,)), ((0, 3), (3, 1)), ((), ())):
        ours = tensor.empty_strided(size, stride, dtype=tensor.float64, device=device)
        theirs = torch.empty_strided(size, stride, dtype=torch.float64)
        assert tuple(ours.shape) == tuple(theirs.shape) and ours.stride() == theirs.stride(), (size, stride)
    t = tensor.empty_strided((2, 3), (1, 2), device=device)
    t.copy_(tensor.arange(6, dtype=tensor.float32, device=device).reshape(2, 3))
    np.testing.assert_array_equal(t.cpu().numpy(), np.arange(6).reshape(2, 3))
    with pytest.raises(ShapeError):
        tensor.empty_strided((2, 3), (1,))
    with pytest.raises(ValueError, match=">= 0"):
        tensor.empty_strided((2, 3), (-1, 1))


def test_typename_matches_torch():
    torch = pytest.importorskip("torch")
    for name in ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"):
        ours = tensor.typename(tensor.zeros(1, dtype=getattr(tensor, name)))
        assert ours.replace("tensor.", "torch.") == torch.typename(torch.zeros(1, dtype=getattr(torch, name)))
    for obj in (3, "s", np.ones(1), len, warnings.warn):
        assert tensor.typename(obj) == torch.typename(obj)
    assert tensor.typename(tensor.nn.Linear(1, 1)) == "tensor.nn.linear.Linear"


def test_compile_returns_the_model_itself_and_checks_torch_arguments():
    model = tensor.nn.Linear(2, 2)
    assert tensor.compile(model) is model  # eager engine: nothing to compile, same results
    assert list(tensor.compile(model, mode="reduce-overhead").state_dict()) == ["weight", "bias"]

    @tensor.compile(mode="max-autotune", fullgraph=True)
    def double(x):
        return x * 2

    assert double(tensor.tensor([1.0])).tolist() == [2.0]
    with pytest.raises(ValueError, match="compile: unknown mode 'fastest'"):
        tensor.compile(model, mode="fastest")
    with pytest.raises(RuntimeError, match="either mode or options"):
        tensor.compile(model, mode="default", options={})
    with pytest.raises(TypeError, match="expected a Module or a function"):
        tensor.compile(3)


def test_jit_names_let_torchscript_annotated_model_code_run_eagerly():
    torch = pytest.importorskip("torch")

    def build(T):
        class Attention(T.nn.Module):
            fused_attn: T.jit.Final[bool]  # timm's class-body annotation

            def __init__(self):
                super().__init__()
                self.fused_attn = not T.jit.is_scripting()
                self.proj = T.nn.Linear(2, 2)

            @T.jit.ignore
            def no_weight_decay(self):
                return {"proj.bias"}

            @T.jit.ignore(drop=False)
            def group_matcher(self):
                return {"stem": r"^proj"}

            @T.jit.unused
            def forward_eager(self, x):
                return x if T.jit.is_tracing() else self.proj(x)

        return Attention()

    for T in (torch, tensor):
        model = build(T)
        assert model.fused_attn and model.no_weight_decay() == {"proj.bias"} and "stem" in model.group_matcher()
        assert T.jit.annotate(list, []) == [] and tuple(model.forward_eager(T.zeros(1, 2)).shape) == (1, 2)
    model = build(tensor)
    assert tensor.jit.script(model) is model and tensor.jit.trace(model, tensor.zeros(1, 2)) is model
    with pytest.raises(TypeError, match="jit.script: expected a Module or a function, got int"):
        tensor.jit.script(3)
