"""DistributedDataParallel without Ray: bucket assignment, hooks and bookkeeping in one process.

A recording communicator stands in for the real ones. It plays a world of ``world_size`` identical
replicas: its sum multiplies by world_size, which is what summing the same gradient from every rank
gives, so the mean DDP computes must equal the plain module's gradient. These tests see what DDP
asks for and when, and compare every .grad with the plain module's. Real ranks are in test_ddp.py.
"""

import copy

import numpy as np
import pytest

import tensor
from dist.comm.base import CompletedWork
from dist.ddp import DistributedDataParallel, assign_buckets
from dist.errors import CollectiveTimeout
from tensor import nn
from tensor.autograd import queue_callback
from tensor.errors import AutogradError


class RecordingComm:
    """``world_size`` identical replicas; each all-reduce is logged with how many grads were set at launch."""

    rank = 0

    def __init__(self, watch: nn.Module | None = None, fail_wait: Exception | None = None, world_size: int = 2):
        self.watch, self.fail_wait, self.world_size = watch, fail_wait, world_size
        self.allreduces: list[tuple[int, str, str, int]] = []  # (size, dtype, op, grads set at launch)
        self.broadcasts = 0

    def allreduce_async(self, x, op="sum"):
        grads_set = sum(p.grad is not None for p in self.watch.parameters()) if self.watch else -1
        self.allreduces.append((x.size, str(x.dtype), op, grads_set))
        if self.fail_wait is not None:
            return FailingWork(self.fail_wait)
        if op == "sum":
            x *= self.world_size  # every replica sent the same values
        return CompletedWork(x)

    def allreduce(self, x, op="sum"):
        return self.allreduce_async(x, op).wait()

    def broadcast(self, x, src=0):
        self.broadcasts += 1
        return x


class FailingWork(CompletedWork):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def wait(self, timeout=None):
        raise self.error


def mlp(*widths, seed=0):
    tensor.manual_seed(seed)
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1]).double()


def batch(rows=6, cols=4, seed=1):
    return tensor.tensor(np.random.default_rng(seed).standard_normal((rows, cols)))


def grads(module):
    return {name: None if p.grad is None else p.grad.numpy().copy() for name, p in module.named_parameters()}


def assert_same_grads(a, b, atol=1e-12):
    ga, gb = grads(a), grads(b)
    assert ga.keys() == gb.keys()
    for name in ga:
        if ga[name] is None or gb[name] is None:
            assert ga[name] is None and gb[name] is None, name
        else:
            np.testing.assert_allclose(ga[name], gb[name], atol=atol, err_msg=name)


def is_view_of_bucket(param):
    return param.grad is not None and param.grad.data.base is not None


# -- bucket assignment ------------------------------------------------------------------------------


def test_buckets_close_at_the_cap_and_keep_order():
    assert assign_buckets([4, 4, 4, 4], ["f"] * 4, cap_bytes=8) == [[0, 1], [2, 3]]
    assert assign_buckets([4, 4, 4], ["f"] * 3, cap_bytes=100) == [[0, 1, 2]]


def test_a_tensor_bigger_than_the_cap_gets_its_own_bucket():
    assert assign_buckets([4, 100, 4], ["f"] * 3, cap_bytes=8) == [[0], [1], [2]]


def test_buckets_hold_one_dtype_each():
    assert assign_buckets([4, 2, 4, 2], ["f32", "f16", "f32", "f16"], cap_bytes=100) == [[0, 2], [1, 3]]


def test_ddp_buckets_follow_reverse_registration_order():
    model = mlp(4, 8, 8, 3)
    sizes = {name: p.data.nbytes for name, p in model.named_parameters()}
    ddp = DistributedDataParallel(model, RecordingComm(), bucket_cap_mb=(sizes["2.weight"] + sizes["2.bias"]) / 2**20)
    registered = [name for name, _ in model.named_parameters()]
    assert [name for bucket in ddp.buckets for name in bucket] == registered[::-1]
    assert ddp.buckets[:2] == [["4.bias", "4.weight", "2.bias"], ["2.weight", "0.bias"]]


def test_frozen_parameters_get_no_bucket():
    model = mlp(4, 8, 3)
    model[0].weight.requires_grad_(False)
    ddp = DistributedDataParallel(model, RecordingComm())
    assert ddp.buckets == [["2.bias", "2.weight", "0.bias"]]


# -- gradients -------------------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [1, 3])
@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize("as_view", [True, False])
def test_grads_match_the_plain_module_over_iterations(as_view, set_to_none, world_size):
    model, ref = mlp(4, 8, 8, 3), mlp(4, 8, 8, 3)
    ddp = DistributedDataParallel(model, RecordingComm(world_size=world_size), bucket_cap_mb=1e-4,
                                  gradient_as_bucket_view=as_view)
    for step in range(3):
        ddp.zero_grad(set_to_none), ref.zero_grad(set_to_none)
        x = batch(seed=step)
        ddp(x).sum().backward()
        ref(x).sum().backward()
        assert_same_grads(model, ref)
        assert all(is_view_of_bucket(p) == as_view for p in model.parameters())


def test_first_buckets_are_all_reduced_while_backward_runs():
    model = mlp(4, 8, 8, 8, 3)
    comm = RecordingComm(watch=model)
    ddp = DistributedDataParallel(model, comm, bucket_cap_mb=1e-6)  # one parameter per bucket
    ddp(batch()).sum().backward()
    launched_with = [grads_set for *_, grads_set in comm.allreduces]
    assert len(launched_with) == 8 and launched_with == sorted(launched_with)
    assert launched_with[0] < 8, "the first bucket waited for the whole backward"
    assert {op for _, _, op, _ in comm.allreduces} == {"sum"}  # scaled by 1/world_size before the sum


def test_grad_dtype_float16_all_reduces_half_copies():
    model, ref = mlp(4, 8, 3), mlp(4, 8, 3)
    comm = RecordingComm()
    ddp = DistributedDataParallel(model, comm, grad_dtype=tensor.float16)
    ddp(batch()).sum().backward()
    ref(batch()).sum().backward()
    assert [(dtype, op) for _, dtype, op, _ in comm.allreduces] == [("float16", "sum")]
    assert_same_grads(model, ref, atol=1e-2)
    assert model[0].weight.grad.dtype == np.float64


def test_no_sync_accumulates_without_communication():
    model, ref = mlp(4, 8, 3), mlp(4, 8, 3)
    comm = RecordingComm()
    ddp = DistributedDataParallel(model, comm)
    with ddp.no_sync():
        ddp(batch(seed=1)).sum().backward()
    assert comm.allreduces == []
    ddp(batch(seed=2)).sum().backward()
    ref(batch(seed=1)).sum().backward()
    ref(batch(seed=2)).sum().backward()
    assert len(comm.allreduces) == 1
    assert_same_grads(model, ref)


class TwoHeads(nn.Module):
    """A trunk and two heads; forward uses one head, so the other gets no gradient."""

    def __init__(self):
        super().__init__()
        tensor.manual_seed(0)
        self.trunk, self.left, self.right = nn.Linear(4, 8), nn.Linear(8, 3), nn.Linear(8, 3)
        self.double()

    def forward(self, x, head="left"):
        return getattr(self, head)(self.trunk(x).tanh())


def test_unused_parameter_is_an_error_naming_it():
    ddp = DistributedDataParallel(TwoHeads(), RecordingComm())
    with pytest.raises(RuntimeError, match=r"2 parameter\(s\) got no gradient.*'right.bias', 'right.weight'.*"
                                           r"find_unused_parameters=True"):
        ddp(batch()).sum().backward()
    ddp.zero_grad()  # the failed step left no state behind: a backward through every parameter works
    (ddp(batch()).sum() + ddp(batch(), head="right").sum()).backward()


def test_find_unused_parameters_zero_fills_and_keeps_none():
    model, ref = TwoHeads(), TwoHeads()
    ddp = DistributedDataParallel(model, RecordingComm(), find_unused_parameters=True, bucket_cap_mb=1e-4)
    for head in ("left", "right"):
        ddp.zero_grad(), ref.zero_grad()
        ddp(batch(), head=head).sum().backward()
        ref(batch(), head=head).sum().backward()
        assert_same_grads(model, ref)  # the unused head's .grad stays None, as in one process


@pytest.mark.parametrize("bucket_cap_mb", [25, 1e-6], ids=["inline-last-bucket", "async-buckets"])
def test_communication_errors_reach_the_caller_of_backward(bucket_cap_mb):
    model = mlp(4, 8, 3)
    comm = RecordingComm(fail_wait=CollectiveTimeout("allreduce", 1.0, [1], 0))
    ddp = DistributedDataParallel(model, comm, bucket_cap_mb=bucket_cap_mb)
    with pytest.raises(CollectiveTimeout):
        ddp(batch()).sum().backward()
    comm.fail_wait = None
    ddp.zero_grad()
    ddp(batch()).sum().backward()  # state was reset: no "got its gradient twice"


class Breaks(tensor.autograd.Function):
    """The identity, whose backward raises while ``armed``: a backward that dies half way."""

    armed = False

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        if Breaks.armed:
            raise ValueError("backward broke")
        return grad


def test_a_backward_that_dies_half_way_leaves_no_state_behind(monkeypatch):
    monkeypatch.setattr(Breaks, "armed", True)
    model, ref = mlp(4, 8, 3), mlp(4, 8, 3)
    ddp = DistributedDataParallel(model, RecordingComm(), bucket_cap_mb=1e-6)
    with pytest.raises(ValueError, match="backward broke"):
        model[2](Breaks.apply(model[1](model[0](batch())))).sum().backward()  # the last layer's hooks fired
    monkeypatch.setattr(Breaks, "armed", False)
    ddp.zero_grad()
    ddp(batch()).sum().backward()
    ref(batch()).sum().backward()
    assert_same_grads(model, ref)


# -- the wrapper as a Module -------------------------------------------------------------------------


def test_state_dict_and_parameters_are_the_plain_modules():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)).double()
    ddp = DistributedDataParallel(model, RecordingComm())
    assert list(ddp.state_dict()) == list(model.state_dict())
    assert [id(p) for p in ddp.parameters()] == [id(p) for p in model.parameters()]
    ddp.load_state_dict(copy.deepcopy(model.state_dict()))
    ddp.eval()
    assert not model.training


def test_moving_or_casting_after_wrapping_is_refused_unless_it_changes_nothing():
    ddp = DistributedDataParallel(mlp(4, 3), RecordingComm())  # float64 on the CPU
    ddp.to("cpu").double()
    with pytest.raises(RuntimeError, match=r"cannot move or cast.*'0.weight'.*before wrapping"):
        ddp.float()


def test_wrapping_twice_and_bad_arguments_are_refused():
    ddp = DistributedDataParallel(mlp(4, 3), RecordingComm())
    with pytest.raises(TypeError, match="already wrapped"):
        DistributedDataParallel(ddp, RecordingComm())
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        DistributedDataParallel(mlp(4, 3), RecordingComm(), bucket_cap_mb=0)
    with pytest.raises(ValueError, match="grad_dtype"):
        DistributedDataParallel(mlp(4, 3), RecordingComm(), grad_dtype="int32")


# -- the engine facility DDP relies on ---------------------------------------------------------------


def test_queue_callback_runs_after_the_whole_backward():
    x = tensor.tensor([1.0, 2.0], requires_grad=True)
    y = tensor.tensor([3.0], requires_grad=True)
    log = []
    x.register_post_accumulate_grad_hook(lambda t: (log.append("x"), queue_callback(lambda: log.append("done"))))
    y.register_post_accumulate_grad_hook(lambda t: log.append("y"))
    ((x * x).sum() * y).sum().backward()
    assert log[-1] == "done" and sorted(log[:-1]) == ["x", "y"]


def test_queue_callback_outside_backward_is_refused():
    with pytest.raises(AutogradError, match="no backward is running"):
        queue_callback(lambda: None)
