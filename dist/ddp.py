"""DistributedDataParallel: one model replica per rank, gradients averaged by bucketed all-reduces.

    comm = dist.comm.init_communicator()
    model = DistributedDataParallel(MyModel())       # rank 0's weights and buffers copied to every rank
    opt = tensor.optim.Adam(model.parameters())
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()              # returns with every .grad averaged over the ranks
        opt.step()

How a step works (DESIGN.md, "How data flows through a training step", step 3): the trainable
parameters are packed, in reverse registration order (the order backward finishes them), into flat
buckets of at most ``bucket_cap_mb`` per dtype. A post-accumulate-grad hook on each parameter marks it
ready (copying its gradient into the bucket unless ``.grad`` already is a view of it); when a bucket is
complete its async all-reduce starts at once, overlapping the rest of backward. Buckets start strictly
in bucket order, so every rank issues the same collectives in the same order whatever order its hooks
fire in. A callback queued on the engine (``tensor.autograd.queue_callback``) runs when backward ends:
it all-reduces the last bucket inline and waits for the others, so the mean is in ``.grad`` before
``backward()`` returns and the optimizer needs no extra call.

Each gradient is scaled by 1/world_size as it is copied into its bucket (the copy costs the same with
or without it), so the collective is a plain sum and no pass divides the result. With ``grad_dtype``
the scaled copy goes straight into the compressed array that is all-reduced (the "wire").
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field

import numpy as np

from tensor import dtypes
from tensor.autograd import is_grad_enabled, queue_callback
from tensor.backend import array_module
from tensor.nn import Module, SyncBatchNorm
from tensor.tensor import Tensor, _wrap

MB = 1 << 20


def assign_buckets(nbytes: list[int], keys: list, cap_bytes: int) -> list[list[int]]:
    """Group tensors into buckets: returns lists of indices into ``nbytes``/``keys``.

    Tensors are taken in the given order; a bucket holds one key (dtype, device) only and closes when the
    next tensor of its key would take it past ``cap_bytes`` (a tensor bigger than the cap gets a bucket of
    its own). Buckets are ordered by their first tensor, so the first bucket is the first to complete
    when the tensors become ready in the given order.
    """
    open_bucket: dict = {}  # key -> (its open bucket, bytes in it)
    buckets: list[list[int]] = []
    for index, (size, key) in enumerate(zip(nbytes, keys)):
        bucket, filled = open_bucket.get(key, (None, 0))
        if bucket is None or filled + size > cap_bytes:
            bucket, filled = [], 0
            buckets.append(bucket)
        bucket.append(index)
        open_bucket[key] = (bucket, filled + size)
    return buckets


@dataclass(eq=False)
class _Slot:
    """One parameter's place in its bucket; ``grad_view`` is the Tensor that becomes ``param.grad``."""

    param: Tensor
    name: str
    bucket: _Bucket
    view: object  # the parameter-shaped view of the bucket's flat array (the parameter's dtype)
    send: object  # where its scaled gradient goes to be all-reduced: ``view``, or its slice of the wire
    grad_view: Tensor
    ready: bool = False


@dataclass(eq=False)
class _Bucket:
    """A flat gradient array shared by ``slots``; ``wire`` is the grad_dtype array all-reduced instead."""

    index: int
    flat: object
    wire: object = None
    slots: list = field(default_factory=list)
    pending: int = 0
    work: object = None

    @property
    def payload(self):
        """The array that is all-reduced."""
        return self.flat if self.wire is None else self.wire


class _Reducer:
    """The buckets and the per-backward state: which parameters are ready, which buckets are in flight."""

    def __init__(self, named_params: list[tuple[str, Tensor]], comm, cap_bytes: int, grad_dtype,
                 as_view: bool, find_unused: bool):
        self.comm, self.as_view, self.find_unused = comm, as_view, find_unused
        self.grad_dtype = grad_dtype
        self.scale = 1.0 / comm.world_size  # scaled before the sum: no division pass after it, no float16 overflow
        self.sync = True  # False inside no_sync(): hooks leave gradients where the engine put them
        ordered = list(reversed(named_params))  # backward finishes the last-registered layers first
        groups = assign_buckets([p.data.nbytes for _, p in ordered],
                                [(p.data.dtype, str(p.device)) for _, p in ordered], cap_bytes)
        self.buckets = [self._make_bucket(i, [ordered[j] for j in group]) for i, group in enumerate(groups)]
        self.slots = [slot for bucket in self.buckets for slot in bucket.slots]
        self._hook_handles = [slot.param.register_post_accumulate_grad_hook(self._hook_for(slot))
                              for slot in self.slots]
        self._reset()

    def _make_bucket(self, index: int, named: list[tuple[str, Tensor]]) -> _Bucket:
        first = named[0][1].data
        xp = array_module(first)
        with _on_device_of(first):
            flat = xp.zeros(sum(p.data.size for _, p in named), first.dtype)
            wire = None
            if self.grad_dtype is not None and self.grad_dtype != first.dtype:
                wire = xp.empty(flat.size, self.grad_dtype)
        bucket, offset = _Bucket(index, flat, wire), 0
        for name, param in named:
            shape, end = param.data.shape, offset + param.data.size
            view = flat[offset:end].reshape(shape)
            send = view if wire is None else wire[offset:end].reshape(shape)
            bucket.slots.append(_Slot(param, name, bucket, view, send, _wrap(view)))
            offset = end
        return bucket

    def _hook_for(self, slot: _Slot):
        return lambda param: self.on_grad_ready(slot)

    # -- during backward -------------------------------------------------------------------------

    def on_grad_ready(self, slot: _Slot) -> None:
        """A parameter's gradient is final for this backward: into its bucket, and launch what is complete."""
        if not self.sync:
            return
        try:
            if not self._finalize_queued:
                queue_callback(self.finalize)
                self._finalize_queued = True
            if slot.ready:
                raise RuntimeError(f"DistributedDataParallel: parameter {slot.name!r} got its gradient twice in "
                                   "one backward; DDP supports one gradient per parameter per backward")
            self._take_grad(slot)
            self._mark_ready(slot)
            self._launch_complete_buckets()
        except BaseException:
            self._reset()
            raise

    def _take_grad(self, slot: _Slot) -> None:
        """Put gradient / world_size where the all-reduce reads it (in place if .grad is the bucket view)."""
        grad = slot.param.grad
        if grad.data is not slot.send or self.scale != 1:
            slot.grad_view.xp.multiply(grad.data, self.scale, out=slot.send)
        if self.as_view and grad is not slot.grad_view:
            slot.param.grad = slot.grad_view

    def _mark_ready(self, slot: _Slot) -> None:
        slot.ready = True
        slot.bucket.pending -= 1

    def _launch_complete_buckets(self) -> None:
        """Start the all-reduces of complete buckets, in bucket order (the same order on every rank).

        The last bucket is left to finalize, which all-reduces it inline: backward produces its gradients
        last, so nothing would overlap it, and the inline form spares a hand-off to the comm thread (a
        whole scheduler wake-up on a busy CPU)."""
        while self._next_bucket < len(self.buckets) - 1 and self.buckets[self._next_bucket].pending == 0:
            bucket = self.buckets[self._next_bucket]
            bucket.work = self.comm.allreduce_async(bucket.payload, op="sum")
            self._next_bucket += 1

    # -- when backward ends -----------------------------------------------------------------------

    def finalize(self) -> None:
        """Deal with the parameters that got no gradient, wait for every bucket, put the means in .grad."""
        try:
            self._finalize_queued = False
            locally_used = self._fill_unused()
            self._launch_complete_buckets()
            for bucket in self.buckets[:-1]:
                bucket.work.wait()  # first, so that an error surfaces as itself, not as a broken communicator
            self.comm.allreduce(self.buckets[-1].payload, op="sum")
            globally_used = self._agree_on_used(locally_used) if self.find_unused else None
            for bucket in self.buckets:
                if bucket.wire is not None:
                    array_module(bucket.flat).copyto(bucket.flat, bucket.wire)
            self._hand_out_grads(globally_used)
        finally:
            self._reset()

    def _fill_unused(self) -> list[bool]:
        """Zero-fill (find_unused_parameters) or refuse the slots no hook marked ready; which were used here."""
        unready = [slot for slot in self.slots if not slot.ready]
        if unready and not self.find_unused:
            names = [slot.name for slot in unready]
            raise RuntimeError(
                f"DistributedDataParallel: {len(names)} parameter(s) got no gradient in this backward: {names}. "
                "Their buckets can never be all-reduced, and the other ranks would wait for them. If the model "
                "skips parameters on purpose, wrap it with DistributedDataParallel(..., "
                "find_unused_parameters=True); parameters you freeze need requires_grad=False before wrapping.")
        used = []
        for slot in self.slots:
            used.append(slot.ready or slot.param.grad is not None)
            if slot.ready:
                continue
            if slot.param.grad is None:
                slot.send.fill(0)
            else:  # a gradient left from no_sync() backwards: this rank contributes it
                self._take_grad(slot)
            self._mark_ready(slot)
        return used

    def _agree_on_used(self, locally_used: list[bool]) -> list[bool]:
        """Which parameters any rank used: the others keep .grad None, as in one process."""
        xp = array_module(self.buckets[0].flat)
        with _on_device_of(self.buckets[0].flat):
            mask = xp.asarray(np.array(locally_used, dtype=np.int32))
        self.comm.allreduce(mask, op="max")
        return [bool(v) for v in mask.tolist()]

    def _hand_out_grads(self, globally_used: list[bool] | None) -> None:
        for i, slot in enumerate(self.slots):
            grad = slot.param.grad
            if globally_used is not None and not globally_used[i] and grad is None:
                continue
            if self.as_view:
                if grad is not slot.grad_view:
                    slot.param.grad = slot.grad_view
            elif grad is None:  # unused here, used elsewhere: this rank must step it too
                slot.param.grad = _wrap(slot.view.copy())
            else:
                slot.grad_view.xp.copyto(grad.data, slot.view)

    def _reset(self) -> None:
        self._finalize_queued = False
        self._next_bucket = 0
        for bucket in self.buckets:
            bucket.pending, bucket.work = len(bucket.slots), None
            for slot in bucket.slots:
                slot.ready = False

    def reset_after_interrupted_backward(self) -> None:
        """A backward that raised inside the engine never ran finalize: start the next one clean."""
        if self._finalize_queued:  # set by the first hook of every synced backward, cleared by finalize
            self._reset()


class DistributedDataParallel(Module):
    """Data-parallel training of ``module``: same weights on every rank, gradients averaged in backward.

    Args:
        module: the model; move it to this rank's device first (the buckets live on that device).
        comm: the Communicator (default ``dist.comm.get_communicator()``); CPU for numpy parameters,
            NCCL for cupy ones.
        bucket_cap_mb: the most gradient bytes, in MiB, that one all-reduce carries (per dtype).
        broadcast_buffers: copy rank 0's buffers (BatchNorm running stats) to every rank before each
            forward that records a graph outside no_sync().
        gradient_as_bucket_view: make each ``.grad`` a view of its bucket (no copy back after the
            all-reduce); False keeps separate ``.grad`` arrays and copies in and out.
        grad_dtype: e.g. ``tensor.float16``: all-reduce a copy of each bucket in this dtype (half the
            bytes) and write the result back in the parameters' dtype. Worth it over NCCL; on CPUs
            NumPy's float16 conversions cost more than the halved traffic saves.
        find_unused_parameters: allow parameters that get no gradient in a backward: their slots count as
            zeros, and one that no rank used keeps ``.grad`` None. Costs one small all-reduce per step.

    SyncBatchNorm layers without a ``process_group`` take ``comm`` as theirs: their training statistics
    cover the whole global batch (``tensor.nn.SyncBatchNorm.convert_sync_batchnorm(model)`` makes them).

    ``state_dict()``, ``load_state_dict()``, ``parameters()`` and ``buffers()`` are the wrapped module's,
    with its keys (no ``module.`` prefix), so checkpoints load into the plain model.
    """

    def __init__(self, module: Module, comm=None, bucket_cap_mb: float = 25, broadcast_buffers: bool = True,
                 gradient_as_bucket_view: bool = True, grad_dtype=None, find_unused_parameters: bool = False):
        super().__init__()
        _check_args(module, bucket_cap_mb, grad_dtype)
        if comm is None:
            from dist.comm import get_communicator

            comm = get_communicator()
        self.module = module
        self.comm = comm
        for layer in module.modules():  # their default group, as PyTorch's is the default process group
            if isinstance(layer, SyncBatchNorm) and layer.process_group is None:
                layer._ddp_group = comm
        self.broadcast_buffers = bool(broadcast_buffers)
        grad_dtype = None if grad_dtype is None else dtypes.as_dtype(grad_dtype)
        self._buffers_to_sync = list(module.buffers())
        _broadcast_from_rank0(comm, [p for p in module.parameters()] + self._buffers_to_sync)
        trainable = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        self.reducer = _Reducer(trainable, comm, int(bucket_cap_mb * MB), grad_dtype,
                                bool(gradient_as_bucket_view), bool(find_unused_parameters))

    def forward(self, *args, **kwargs):
        self.reducer.reset_after_interrupted_backward()
        if self.broadcast_buffers and self.reducer.sync and is_grad_enabled():
            _broadcast_from_rank0(self.comm, self._buffers_to_sync)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backwards inside accumulate gradients locally, with no communication; the first backward after
        leaving it all-reduces the accumulated sum (gradient accumulation over micro-batches)."""
        previous, self.reducer.sync = self.reducer.sync, False
        try:
            yield
        finally:
            self.reducer.sync = previous

    @property
    def buckets(self) -> list[list[str]]:
        """Parameter names per bucket, in all-reduce order."""
        return [[slot.name for slot in bucket.slots] for bucket in self.reducer.buckets]

    # -- the wrapped module's names, so that checkpoints are the plain model's -----------------------

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self.module.named_parameters(prefix, recurse, remove_duplicate)

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self.module.named_buffers(prefix, recurse, remove_duplicate)

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.module.load_state_dict(state_dict, strict, assign)

    def _convert(self, device, dtype):
        """to() / cuda() / float() ... : refused when they would change a parameter or buffer, whose
        gradient bucket (and the communicator) was set up for the device and dtype it had at wrap time."""
        changed = [name for name, t in itertools.chain(self.module.named_parameters(), self.module.named_buffers())
                   if (device is not None and t.device != device)
                   or (dtype is not None and t.data.dtype.kind == "f" and t.data.dtype != dtype)]
        if changed:
            raise RuntimeError(f"DistributedDataParallel: cannot move or cast the wrapped model ({changed[:3]} "
                               f"would change to device={device}, dtype={dtype}); its gradient buckets were "
                               "allocated at wrap time. Call module.to(...) before wrapping it.")
        return super()._convert(device, dtype)

    def extra_repr(self) -> str:
        return (f"world_size={self.comm.world_size}, buckets={len(self.reducer.buckets)}, "
                f"broadcast_buffers={self.broadcast_buffers}")


def _broadcast_from_rank0(comm, tensors: list[Tensor]) -> None:
    """Overwrite ``tensors`` in place with rank 0's values: one flat broadcast per (device, dtype)."""
    if comm.world_size == 1 or not tensors:
        return
    groups: dict = {}
    for t in tensors:
        groups.setdefault((str(t.device), t.data.dtype), []).append(t)
    for group in groups.values():
        xp = array_module(group[0].data)
        with _on_device_of(group[0].data):
            flat = xp.concatenate([t.data.reshape(-1) for t in group])
        comm.broadcast(flat, src=0)
        offset = 0
        for t in group:
            xp.copyto(t.data, flat[offset:offset + t.data.size].reshape(t.data.shape))
            offset += t.data.size


def _on_device_of(array):
    """Allocate on ``array``'s GPU (a cupy Device context), or do nothing for numpy arrays."""
    return contextlib.nullcontext() if isinstance(array, np.ndarray) else array.device


def _check_args(module, bucket_cap_mb, grad_dtype) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"DistributedDataParallel: module must be a tensor.nn.Module, got {type(module).__name__}")
    if isinstance(module, DistributedDataParallel):
        raise TypeError("DistributedDataParallel: the module is already wrapped; wrap the plain model once")
    if not isinstance(bucket_cap_mb, (int, float)) or isinstance(bucket_cap_mb, bool) or not bucket_cap_mb > 0:
        raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a number of MiB > 0, got {bucket_cap_mb!r}")
    if grad_dtype is not None and dtypes.as_dtype(grad_dtype).kind != "f":
        raise ValueError(f"DistributedDataParallel: grad_dtype must be a floating dtype (e.g. tensor.float16), "
                         f"got {grad_dtype!r}")
