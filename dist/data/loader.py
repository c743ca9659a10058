"""ShardedLoader: one rank's batches of a Dataset, planned centrally, read straight from storage."""

from __future__ import annotations

import ctypes
import math
import warnings

import numpy as np

from .client import DataClient
from .dataset import Batch, Dataset
from .errors import LoaderClosedError
from .planner import PlanConfig, RankPlan, check_batch_fits
from .prefetch import Prefetcher
from .ranges import stream_slice


class ShardedLoader:
    """Fixed-size batches of rank `rank`'s share of `dataset`, exactly once per epoch.

    Each epoch the coordinator (or, with coordinator=None, an in-process DataService) plans every
    rank's rows; all ranks get the same number of batches, so none waits alone in a collective. The
    loader reads its rows straight from storage on background threads, in windows of
    `shuffle_buffer` rows that it shuffles, `prefetch` windows ahead. A batch counts as consumed
    when it is handed out; counts reach the coordinator at most every 0.1 s, and flush_progress()
    makes them exact. After a restart from a checkpoint that stored data_state() (taken after every
    rank flushed), an epoch continues with exactly the samples not yet consumed, on the same or a
    different number of workers.

    dataset: what to read (Dataset; picklable, build it once and pass it to every rank).
    coordinator: the job's coordinator actor handle, a shared DataService, or None (in-process).
    rank, world_size: this rank and the number of ranks sharing the dataset.
    batch_size: rows per batch; every batch is full.
    shuffle, seed: seeded shuffle of the unit order and within windows; (seed, epoch) fixes the order.
    drop_last: True leaves out the rows that cannot fill a batch on every rank (fewer than
        world_size * batch_size per epoch, a different few each epoch); False pads the epoch by
        repeating samples from its start, so every sample is seen and some twice.
    shuffle_buffer: rows per local shuffle window (rounded up to a multiple of batch_size); also
        the unit of reading ahead, so memory holds about (prefetch + 2) windows.
    prefetch: windows read, shuffled, converted and transformed ahead on the background thread
        (the depth of its queue); 0 does all of it on the consumer's thread.
    device: None yields dicts of NumPy arrays; otherwise numeric arrays become engine tensors via
        tensor.as_tensor(array, device=device) (string/object columns stay NumPy). On a CUDA device
        they travel through reusable pinned host buffers and an asynchronous copy on a side stream
        (_PinnedUploader), so the transfer does not block the host and overlaps queued kernels.
    name: the name progress is kept under (default dataset.name); one per distinct dataset.
    timeout_s: longest wait for the coordinator before an error.

    Iterating yields {column: array or Tensor of shape (batch_size, *sample shape)}. Iterating
    again after a complete pass moves on to the next epoch; set_epoch(n) picks one explicitly.
    Raises BatchSizeError here, before training, if a rank's share holds no full batch.
    """

    def __init__(self, dataset: Dataset, coordinator=None, rank: int = 0, world_size: int = 1, *, batch_size: int,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = True, shuffle_buffer: int = 16384,
                 prefetch: int = 2, device=None, name: str | None = None, timeout_s: float = 120.0):
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"dataset must be a dist.data.Dataset, got {type(dataset).__name__}; wrap it: Dataset(source)")
        _check_rank(rank, world_size)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0 (windows read ahead; 0 = no thread), got {prefetch!r}")
        self.dataset, self.rank, self.world_size = dataset, rank, world_size
        self.config = PlanConfig(batch_size, bool(shuffle), seed, bool(drop_last), shuffle_buffer)
        self.prefetch, self.device = prefetch, device
        self.name = name or dataset.name
        check_batch_fits(dataset.num_rows, world_size, batch_size)
        self._client = DataClient(coordinator, timeout_s)
        self._client.call("data_register", self.name, dataset.descriptor())
        self._epoch, self._advance_on_next_pass = 0, False
        self._active = None  # the batch source of the pass in progress
        self._uploader = None  # a _PinnedUploader, made on the first batch for a CUDA device
        self._closed = False

    # epochs

    @property
    def epoch(self) -> int:
        """The epoch the next pass reads."""
        return self._epoch + 1 if self._advance_on_next_pass else self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Read epoch `epoch` next (its order is fixed by (seed, epoch))."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self._epoch, self._advance_on_next_pass = int(epoch), False

    def resume_epoch(self) -> int:
        """The epoch to continue with after a restart: the oldest one not finished."""
        return self._client.call("data_resume_epoch", self.name)

    def __len__(self) -> int:
        """Batches left in the current epoch on this rank (all of them before it starts)."""
        return self._plan().remaining_batches

    # iteration

    def __iter__(self):
        self._check_open()
        self._stop_active()
        if self._advance_on_next_pass:
            self._epoch, self._advance_on_next_pass = self._epoch + 1, False
        return self._pass(self._plan())

    def _pass(self, plan: RankPlan):
        """Yield the plan's remaining batches, reporting each as consumed as it is handed out."""
        windows = self._active = self._window_source(plan)
        consumed = plan.skip_batches
        try:
            for batches in windows:
                for batch in batches:
                    consumed += 1
                    self._client.report(self.name, plan.epoch, plan.generation, self.rank, consumed, plan.token)
                    yield self._to_device(batch)
            if self._active is not windows:
                raise LoaderClosedError(
                    f"this pass over {self.name!r} was stopped by close() or by starting another pass; "
                    f"iterate the loader again to continue the epoch"
                )
            self._advance_on_next_pass = True
            self._client.flush()
        finally:
            _close(windows)
            if self._active is windows:
                self._active = None
            self._client.send_pending()  # an early stop still records what was handed out

    def _window_source(self, plan: RankPlan):
        """Lists of batches, one per window. With prefetch, two threads: one reads the next window
        (Arrow decoding releases the GIL) while the other shuffles, converts and transforms the
        current one, `prefetch` windows ahead of the consumer."""
        if self.prefetch == 0:
            return _window_batches(self.dataset, plan, _window_tables(self.dataset, plan))
        thread = f"raygrad-data-{self.name}-rank{self.rank}"

        def tables():
            return Prefetcher(lambda: _window_tables(self.dataset, plan), 1, name=f"{thread}-read")

        return Prefetcher(lambda: _window_batches(self.dataset, plan, tables()), self.prefetch, name=thread)

    def _plan(self) -> RankPlan:
        self._client.flush()  # the plan's skip count must include every batch handed out
        return self._client.call("data_plan", self.name, self.epoch, self.rank, self.world_size, self.config.to_dict())

    def _to_device(self, batch: Batch) -> Batch:
        if self.device is None:
            return batch
        import tensor  # the engine; imported only by loaders that produce tensors

        numeric = {key: value for key, value in batch.items() if _is_numeric(value)}
        device = tensor.device(self.device)
        if device.type == "cuda":
            if self._uploader is None:
                self._uploader = _PinnedUploader(device.index)
            numeric = self._uploader.upload(numeric)
        return {
            key: tensor.as_tensor(numeric[key], device=self.device) if key in numeric else value
            for key, value in batch.items()
        }

    # progress and shutdown

    def flush_progress(self) -> None:
        """Wait until every batch handed out so far is recorded by the coordinator. Call it on every
        rank before rank 0 saves a checkpoint with data_state(), so the state matches the model."""
        self._client.flush()

    def data_state(self) -> dict:
        """The coordinator's data state (all datasets), JSON-serialisable, for checkpoints."""
        self.flush_progress()
        return self._client.call("data_state")

    def load_data_state(self, state: dict | None) -> None:
        """Restore progress from data_state() (in-process mode; under Ray the trainer restores the
        coordinator once for all ranks)."""
        self._stop_active()
        self._client.call("load_data_state", state)
        self._advance_on_next_pass = False

    def close(self) -> None:
        """Stop any background reading and record progress; the loader cannot be iterated again."""
        if self._closed:
            return
        self._closed = True
        self._stop_active()
        if self._uploader is not None:
            self._uploader.close()
            self._uploader = None
        self._client.flush()

    def __enter__(self) -> ShardedLoader:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # already failing: recording progress must not replace the error that matters
            self.close()
        except Exception as close_error:  # noqa: BLE001
            warnings.warn(f"closing loader {self.name!r} after an error also failed: {close_error!r}",
                          RuntimeWarning, stacklevel=2)

    def _stop_active(self) -> None:
        active, self._active = self._active, None
        _close(active)

    def _check_open(self) -> None:
        if self._closed:
            raise LoaderClosedError(f"loader {self.name!r} (rank {self.rank}) is closed; create a new ShardedLoader")

    def __repr__(self) -> str:
        return (f"ShardedLoader({self.name!r}, rank {self.rank}/{self.world_size}, "
                f"batch_size={self.config.batch_size}, "
                f"epoch={self.epoch}, prefetch={self.prefetch}, device={self.device!r})")


class _PinnedUploader:
    """Host -> GPU transfer of batches through page-locked memory and a side stream (CuPy).

    Per numeric column: copy the batch into a reusable pinned host buffer (a host memcpy), queue an
    asynchronous copy from it into a reusable device staging buffer on our own non-blocking stream,
    so the DMA runs while kernels the consumer queued earlier still execute; then make the compute
    (current) stream wait for that copy and give the batch a fresh array from CuPy's pool with a
    device-to-device copy on the compute stream. That last copy keeps the pool's stream-ordered
    reuse safe: the array belongs to the compute stream like any other, and the staging buffer is
    free again once the copy out of it has run. Buffers alternate between two slots; a slot is
    refilled only after its previous copies finished (an event wait, normally long past).
    """

    _SLOTS = 2

    def __init__(self, device_index: int):
        import cupy

        self._cp = cupy
        self._device = cupy.cuda.Device(device_index)
        with self._device:
            self._stream = cupy.cuda.Stream(non_blocking=True)
        self._slots = [_UploadSlot() for _ in range(self._SLOTS)]
        self._turn = 0

    def upload(self, arrays: dict) -> dict:
        """{key: CuPy array} on the device for {key: NumPy array}, ready for the compute stream."""
        slot, cp = self._slots[self._turn], self._cp
        self._turn = (self._turn + 1) % len(self._slots)
        with self._device:
            compute = cp.cuda.get_current_stream()
            slot.wait_until_free(self._stream)
            for key, value in arrays.items():
                host, staging = slot.buffers(cp, key, value.nbytes, self._stream)
                np.copyto(np.frombuffer(host, value.dtype, value.size).reshape(value.shape), value)
                staging.data.copy_from_host_async(ctypes.c_void_p(host.ptr), value.nbytes, self._stream)
            slot.copied = self._stream.record()
            compute.wait_event(slot.copied)
            out = {}
            for key, value in arrays.items():
                out[key] = cp.empty(value.shape, value.dtype)
                out[key].data.copy_from_device_async(slot.staging[key].data, value.nbytes, compute)
            slot.consumed = compute.record()
        return out

    def close(self) -> None:
        """Wait for copies in flight: the pinned buffers must outlive the DMA reading them."""
        self._stream.synchronize()


class _UploadSlot:
    """One set of pinned host and device staging buffers (one per column), with the events that
    say when the copies out of them are done."""

    def __init__(self):
        self.pinned, self.staging = {}, {}
        self.copied = self.consumed = None  # events: host -> staging done; staging -> pool array done

    def wait_until_free(self, stream) -> None:
        if self.copied is not None:
            self.copied.synchronize()  # the DMA out of the pinned buffers (the host rewrites them next)
        if self.consumed is not None:
            stream.wait_event(self.consumed)  # the copies out of the staging buffers (our stream rewrites them)

    def buffers(self, cp, key, nbytes: int, stream):
        """(pinned host memory, device uint8 array), each of at least nbytes, grown when too small.

        The staging array is allocated with our stream current: CuPy's pool hands each stream only
        blocks freed in its own order, so no kernel queued on the compute stream can still be
        reading memory our stream is about to write."""
        if key not in self.pinned or self.pinned[key].size() < nbytes:
            self.pinned[key] = cp.cuda.alloc_pinned_memory(max(nbytes, 1))
            with stream:
                self.staging[key] = cp.empty(max(nbytes, 1), dtype=cp.uint8)
        return self.pinned[key], self.staging[key]


def _window_tables(dataset: Dataset, plan: RankPlan):
    """(window index, table, row order or None) of each window from skip_batches on, read from
    storage in plan order. The order is drawn here, on the read thread (Arrow decodes on threads of
    its own), so that the other thread spends its time on the gather."""
    window_rows = plan.config.window_rows
    first_window = plan.skip_batches * plan.config.batch_size // window_rows
    reader = dataset.reader()
    try:
        for window in range(first_window, math.ceil(plan.num_rows / window_rows)):
            rows = stream_slice(plan.starts, plan.stops, *plan.window_bounds(window))
            table = dataset.read_table(reader, *rows)
            yield window, table, plan.window_order(window)
    finally:
        reader.close()


def _window_batches(dataset: Dataset, plan: RankPlan, tables):
    """Each window's remaining batches as one list (one queue hand-off per window, not per batch):
    permute the window with Arrow's take (which also leaves one contiguous chunk for zero-copy
    views), convert to NumPy, slice, transform. Runs on a different thread than the reads, so the
    next window's decoding overlaps this one's shuffle."""
    batch_size = plan.config.batch_size
    first_row = plan.skip_batches * batch_size
    try:
        for window, table, order in tables:
            columns = dataset.to_numpy(table if order is None else table.take(order))
            begin = plan.window_bounds(window)[0]
            yield [dataset.apply_transform({key: value[offset : offset + batch_size] for key, value in columns.items()})
                   for offset in range(max(first_row, begin) - begin, table.num_rows, batch_size)]
    finally:
        _close(tables)


def _check_rank(rank, world_size) -> None:
    for label, value in (("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{label} must be an int, got {value!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size and world_size >= 1, got rank={rank}, world_size={world_size}")


def _is_numeric(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf"


def _close(batches) -> None:
    close = getattr(batches, "close", None)
    if close is not None:
        close()
