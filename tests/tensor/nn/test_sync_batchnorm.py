"""SyncBatchNorm without Ray: ranks are threads sharing an in-process group whose allreduce sums their
arrays. The ranks' shards through SyncBatchNorm must give what BatchNorm gives on the whole batch:
outputs, input gradients, summed weight gradients and running statistics. (tests/dist/test_ddp.py
trains one under DDP across Ray actors.)"""
import copy
import pickle
import threading

import numpy as np
import pytest

import tensor
from tensor import nn

from torch_compare import make, to_numpy


class ThreadGroup:
    """allreduce(x, op="sum") across `world_size` threads, in place, like dist's communicators."""

    def __init__(self, world_size):
        self.world_size = world_size
        self._barrier = threading.Barrier(world_size, timeout=30)
        self._slots = [None] * world_size
        self._rank = threading.local()
        self.calls = 0

    def run(self, fn):
        """fn(rank) on every rank's thread; the results by rank (a rank's error is raised here)."""
        results, errors = [None] * self.world_size, []

        def main(rank):
            self._rank.value = rank
            try:
                results[rank] = fn(rank)
            except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                errors.append(exc)
                self._barrier.abort()

        threads = [threading.Thread(target=main, args=(r,)) for r in range(self.world_size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results

    def allreduce(self, x, op="sum"):
        assert op == "sum"
        rank = self._rank.value
        self._slots[rank] = x.copy()
        self._barrier.wait()
        total = sum(self._slots)
        self._barrier.wait()
        x[...] = total
        if rank == 0:
            self.calls += 1
        return x


def shards(x, world_size):
    return np.array_split(x, world_size)


@pytest.mark.parametrize("shape, sizes", [((12, 3), (6, 6)), ((7, 4, 5), (2, 5)), ((6, 2, 3, 4), (1, 3, 2)),
                                          ((4, 3, 2, 2, 2), (4, 0))])
def test_shards_through_sync_batch_norm_equal_batch_norm_on_the_whole_batch(device, shape, sizes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3 + 1
    g = rng.standard_normal(shape)
    channels = shape[1]
    reference = nn.BatchNorm1d(channels).double().to(device)  # BatchNorm1d takes (N, C) and (N, C, L)
    with tensor.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-1, 1)
    group = ThreadGroup(len(sizes))
    local = [nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(reference), group) for _ in sizes]
    bounds = np.cumsum((0,) + sizes)
    xs = [make(x[a:b], device, requires_grad=True) for a, b in zip(bounds, bounds[1:])]

    def rank_step(rank):
        out = local[rank](xs[rank])
        out.backward(make(g[bounds[rank]:bounds[rank + 1]], device))
        return to_numpy(out)

    outs = group.run(rank_step)
    whole = make(x.reshape(shape[0], channels, -1), device, requires_grad=True)
    ref_out = reference(whole)
    ref_out.backward(make(g.reshape(ref_out.shape), device))
    np.testing.assert_allclose(np.concatenate(outs).reshape(ref_out.shape), to_numpy(ref_out), atol=1e-12)
    grads = np.concatenate([to_numpy(t.grad) for t in xs])
    np.testing.assert_allclose(grads.reshape(ref_out.shape), to_numpy(whole.grad), atol=1e-12)
    for name in ("weight", "bias"):  # local gradients: their sum over ranks is the whole batch's (DDP averages)
        total = sum(to_numpy(getattr(m, name).grad) for m in local)
        np.testing.assert_allclose(total, to_numpy(getattr(reference, name).grad), atol=1e-12)
    for m in local:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_allclose(to_numpy(getattr(m, name)), to_numpy(getattr(reference, name)), atol=1e-12)
    assert group.calls == 2  # one all-reduce in forward, one in backward


def test_float32_and_float16_statistics_are_accumulated_in_float64(device):
    x = np.random.default_rng(1).standard_normal((8, 2, 5)) * 50 + 300  # squares past float16's range
    for dtype, atol in ((tensor.float32, 1e-4), (tensor.float16, 2e-2)):
        group = ThreadGroup(2)
        layers = [nn.SyncBatchNorm(2, process_group=group).to(device=device, dtype=dtype) for _ in range(2)]
        outs = group.run(lambda r: to_numpy(layers[r](make(x[4 * r:4 * r + 4], device, dtype=dtype))))
        ref = nn.BatchNorm1d(2).double()(make(x, "cpu"))
        np.testing.assert_allclose(np.concatenate(outs), to_numpy(ref), atol=atol)


def test_without_a_group_or_in_eval_it_is_plain_batch_norm(device):
    x = make(np.random.default_rng(2).standard_normal((6, 3, 4)), device)
    plain = nn.BatchNorm1d(3).double().to(device)
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(plain))
    np.testing.assert_array_equal(to_numpy(sync(x)), to_numpy(plain(x)))

    class Forbidden:
        world_size = 2

        def allreduce(self, x, op="sum"):
            raise AssertionError("eval mode must not communicate")

    sync.process_group = Forbidden()
    sync.eval(), plain.eval()
    np.testing.assert_array_equal(to_numpy(sync(x)), to_numpy(plain(x)))
    sync.process_group = ThreadGroup(1)  # one rank: nothing to synchronise
    sync.train(), plain.train()
    np.testing.assert_array_equal(to_numpy(sync(x)), to_numpy(plain(x)))


def test_convert_sync_batchnorm_keeps_parameters_buffers_and_keys(device):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4 * 4 * 4, affine=False))).to(device)
    model.eval()
    before = model.state_dict()
    weight = model[1].weight
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model and isinstance(model[1], nn.SyncBatchNorm) and isinstance(model[3][1], nn.SyncBatchNorm)
    assert model[1].weight is weight and not model[1].training and model[3][1].weight is None
    assert list(model.state_dict()) == list(before)
    assert "SyncBatchNorm(4, eps=1e-05, momentum=0.1" in repr(model)
    lone = nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm3d(2, momentum=None))
    assert isinstance(lone, nn.SyncBatchNorm) and lone.momentum is None


def test_copies_and_pickles_leave_a_lent_group_behind():
    layer = nn.SyncBatchNorm(3)
    layer._ddp_group = ThreadGroup(2)  # what DDP does; a communicator is not something to copy
    assert copy.deepcopy(layer)._ddp_group is None
    assert pickle.loads(pickle.dumps(layer))._ddp_group is None
    assert layer._ddp_group is not None


def test_refusals(device):
    with pytest.raises(ValueError, match="SyncBatchNorm: expected at least 2D input"):
        nn.SyncBatchNorm(3)(make(np.zeros(3), device))
    group = ThreadGroup(2)
    layers = [nn.SyncBatchNorm(2, process_group=group).to(device) for _ in range(2)]
    one_row = make(np.zeros((1, 2)), device)
    with pytest.raises(ValueError, match="more than 1 value per channel over all ranks"):
        group.run(lambda r: layers[r](one_row if r == 0 else make(np.zeros((0, 2)), device)))
