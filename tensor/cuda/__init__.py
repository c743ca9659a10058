"""tensor.cuda: torch.cuda's helpers over CuPy.

Devices (_devices.py): is_available, device_count, current_device, set_device, device(i), synchronize,
get_device_name, get_device_properties, get_device_capability, mem_get_info; seeding each GPU's
generator: manual_seed, manual_seed_all, seed, seed_all, initial_seed, get/set_rng_state(_all) (the
seeding functions do nothing without CUDA, as in torch; the others raise DeviceError).
Memory statistics (memory.py): memory_allocated, max_memory_allocated, memory_stats, empty_cache...
Streams (streams.py): Stream, Event, stream(s), current_stream, default_stream.
tensor.cuda.amp: the older spelling of tensor.amp's autocast and GradScaler for CUDA.
"""
from ._devices import (
    current_device, device, device_count, get_device_capability, get_device_name, get_device_properties,
    get_rng_state, get_rng_state_all, initial_seed, is_available, manual_seed, manual_seed_all, mem_get_info, seed,
    seed_all, set_device, set_rng_state, set_rng_state_all, synchronize,
)
from .memory import (
    empty_cache, max_memory_allocated, max_memory_reserved, memory_allocated, memory_reserved, memory_stats,
    record_peak_memory, reset_peak_memory_stats, track_peak_memory,
)
from .streams import Event, Stream, current_stream, default_stream, stream
from . import amp  # noqa: E402,F401 - tensor.cuda.amp.autocast / GradScaler, as in torch
