"""What the row kernels share: the CUDA preamble, the compile cache and the launch geometry.

A row kernel sees a C-contiguous array as (rows, cols) and works on one row at a time: it reduces
the row (a max and a sum, a mean and a variance) and then writes it. A row belongs to a group of
G threads, G a power of two:

- G <= 32 (rows of up to 1024 elements): the group is a slice of a warp and reduces with warp
  shuffles alone; a block of 128 threads holds 128 / G rows.
- G > 32 (longer rows): the group is the whole block, one row per block, and the warps combine
  their partial results through shared memory.

Each thread walks its row with stride G, so a warp's loads are coalesced. Elements are read in
the tensor's type and computed in the arithmetic type A: float for float16 and float32, double for
float64. float16 travels as raw bits (unsigned short) and is converted with PTX's cvt, so the
sources need no header. Kernels are compiled once per (source, dtype) on first use.

Every row kernel is declared __launch_bounds__(1024, 1): the compiler keeps it within the registers
a 1024-thread block may use (64 per thread) rather than failing at launch, and does not squeeze it
further (spilling) to fit two such blocks on a multiprocessor.

The reduction helpers must be called by every thread of the block, with no thread gone: the warp
shuffles name all 32 lanes, and G > 32 synchronises the block. Threads of a block whose row is past
the end therefore walk zero elements (RowSlot.count == 0) and take part anyway.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..backend import cupy_module

# dtype.char -> (C type of the elements, C type of the arithmetic)
C_TYPES = {"e": ("unsigned short", "float"), "f": ("float", "float"), "d": ("double", "double")}
SMALL_ROW = 1024  # rows up to this long go to warp slices, longer ones to whole blocks
SLICE_BLOCK = 128  # threads per block when a group is a warp slice
ELEMENTS_PER_THREAD = 8  # what a whole-block group aims at for long rows, before it caps at 1024 threads


def acc_dtype(dtype):
    """The NumPy dtype of the arithmetic type A for elements of `dtype`."""
    return np.float64 if np.dtype(dtype).char == "d" else np.float32


def fits_rows(xp, x, dim) -> bool:
    """True when a row kernel can take `x` reduced along `dim`: a non-empty CuPy float16/32/64 array,
    `dim` its last axis. (Any strides: the wrappers make the array contiguous first.)"""
    return xp is not np and x.dtype.char in C_TYPES and x.ndim >= 1 and dim == x.ndim - 1 and x.size > 0


# ------------------------------------------------------------------------------------ CUDA preamble

# Device-specific: element types and conversions. The CPU emulator that checks the kernels without a
# GPU (tests/gpu/emulator) swaps this part for a C++ twin, which is why it stays apart from the rest.
DEVICE_PREAMBLE = r"""
typedef {storage} T;   // the tensor's elements (float16 as its raw bits)
typedef {acc} A;       // the arithmetic: float for float16/float32, double for float64

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(unsigned short bits) {
    float v;
    asm("cvt.f32.f16 %0, %1;" : "=f"(v) : "h"(bits));
    return v;
}
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }
__device__ __forceinline__ void store(unsigned short* p, float v) {
    unsigned short bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(v));
    *p = bits;
}
__device__ __forceinline__ float ex(float v) { return expf(v); }
__device__ __forceinline__ double ex(double v) { return exp(v); }
__device__ __forceinline__ float lg(float v) { return logf(v); }
__device__ __forceinline__ double lg(double v) { return log(v); }
__device__ __forceinline__ float root(float v) { return sqrtf(v); }
__device__ __forceinline__ double root(double v) { return sqrt(v); }

#define POS_INF __int_as_float(0x7f800000)
#define NEG_INF (-POS_INF)
#define QNAN __int_as_float(0x7fffffff)
#define FULL_MASK 0xffffffffu
"""

# Portable CUDA C++: also compiled as plain C++ by the emulator.
REDUCTIONS = r"""
// ------------------------------------------------------------------------- where a thread works
struct RowSlot {
    long long row;     // the row this thread's group works on
    int lane;          // this thread's place in the group, 0 .. G-1
    bool active;       // false past the last row: such threads walk nothing but still join reductions
    long long count;   // elements this group walks: cols, or 0 when inactive
    long long offset;  // row * cols, or 0 when inactive
};

__device__ __forceinline__ RowSlot row_slot(long long rows, long long cols, int group) {
    RowSlot r;
    r.row = (long long)blockIdx.x * (blockDim.x / group) + threadIdx.x / group;
    r.lane = threadIdx.x % group;
    r.active = r.row < rows;
    r.count = r.active ? cols : 0;
    r.offset = r.active ? r.row * cols : 0;
    return r;
}

// ---------------------------------------------------------------------------------------- sums
// An xor butterfly: every lane ends with the same total (addition commutes, so lanes i and i^k
// compute the same sums bit for bit). Offsets below `width` keep the exchange inside the group.
__device__ __forceinline__ A warp_sum(A v, int width) {
    for (int offset = width / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

// The sum of v over the row's G threads, returned to all of them. scratch: 32 shared slots.
__device__ A group_sum(A v, int group, A* scratch) {
    v = warp_sum(v, group < 32 ? group : 32);
    if (group <= 32) return v;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // the previous reduction may still be reading scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_sum(lane < group / 32 ? scratch[lane] : A(0), 32);
}

// ---------------------------------------------------------------- online softmax normaliser
// (m, s): m the largest value seen, s = sum of exp(v - m) over the values seen. One pass gives
// both (Milakov & Gimelshein, "Online normalizer calculation for softmax", 2018).
struct MaxSum { A m; A s; };

__device__ __forceinline__ MaxSum max_sum_push(MaxSum a, A v) {
    if (v > a.m) {                      // a new maximum: rescale what was summed so far
        a.s = a.s * ex(a.m - v) + A(1);
        a.m = v;
    } else if (v != NEG_INF) {          // exp(-inf - m) adds 0; skipping it avoids -inf - -inf = NaN
        a.s += ex(v - a.m);             // NaN lands here and poisons s, as it poisons the reference
    }
    return a;
}

__device__ __forceinline__ MaxSum max_sum_merge(MaxSum a, MaxSum b) {
    const A m = (a.m > b.m || a.m != a.m) ? a.m : b.m;  // max that keeps NaN
    MaxSum r;
    r.m = m;
    r.s = (m == NEG_INF) ? a.s + b.s : a.s * ex(a.m - m) + b.s * ex(b.m - m);  // (both empty: no rescale)
    return r;
}

__device__ MaxSum warp_max_sum(MaxSum v, int width) {
    for (int offset = width / 2; offset > 0; offset /= 2) {
        MaxSum other;
        other.m = __shfl_xor_sync(FULL_MASK, v.m, offset);
        other.s = __shfl_xor_sync(FULL_MASK, v.s, offset);
        v = max_sum_merge(v, other);    // symmetric, so both partners get the same pair
    }
    return v;
}

__device__ MaxSum group_max_sum(MaxSum v, int group, A* scratch_m, A* scratch_s) {
    v = warp_max_sum(v, group < 32 ? group : 32);
    if (group <= 32) return v;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) { scratch_m[warp] = v.m; scratch_s[warp] = v.s; }
    __syncthreads();
    MaxSum part;
    part.m = lane < group / 32 ? scratch_m[lane] : A(NEG_INF);
    part.s = lane < group / 32 ? scratch_s[lane] : A(0);
    return warp_max_sum(part, 32);
}

// The row's log-sum-exp as (max, log of the rescaled sum); kept apart so that callers can form
// (x - max) - log_sum, which stays exact for large logits where x - (max + log_sum) would not.
// A +inf in the row makes the sum NaN, as exp(inf - inf) makes it in the unfused path.
__device__ __forceinline__ A log_of_sum(MaxSum ms) {
    return ms.m == POS_INF ? A(QNAN) : lg(ms.s);
}

// ------------------------------------------------------------------------- mean and variance
// Welford's running (count, mean, sum of squared deviations), merged with Chan et al.'s formula.
struct Welford { A n; A mean; A m2; };

__device__ __forceinline__ Welford welford_push(Welford a, A v) {
    a.n += A(1);
    const A d = v - a.mean;
    a.mean += d / a.n;
    a.m2 += d * (v - a.mean);
    return a;
}

__device__ __forceinline__ Welford welford_merge(Welford a, Welford b) {
    if (b.n == A(0)) return a;
    if (a.n == A(0)) return b;
    Welford r;
    r.n = a.n + b.n;
    const A d = b.mean - a.mean, fb = b.n / r.n;
    r.mean = a.mean + d * fb;
    r.m2 = a.m2 + b.m2 + d * d * a.n * fb;
    return r;
}

__device__ Welford warp_welford(Welford v, int width) {
    for (int offset = width / 2; offset > 0; offset /= 2) {
        Welford other;
        other.n = __shfl_xor_sync(FULL_MASK, v.n, offset);
        other.mean = __shfl_xor_sync(FULL_MASK, v.mean, offset);
        other.m2 = __shfl_xor_sync(FULL_MASK, v.m2, offset);
        v = welford_merge(v, other);
    }
    return v;
}

__device__ Welford group_welford(Welford v, int group, A* scratch_n, A* scratch_mean, A* scratch_m2) {
    const int width = group < 32 ? group : 32;
    v = warp_welford(v, width);
    if (group > 32) {
        const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
        __syncthreads();
        if (lane == 0) { scratch_n[warp] = v.n; scratch_mean[warp] = v.mean; scratch_m2[warp] = v.m2; }
        __syncthreads();
        Welford part;
        part.n = lane < group / 32 ? scratch_n[lane] : A(0);
        part.mean = lane < group / 32 ? scratch_mean[lane] : A(0);
        part.m2 = lane < group / 32 ? scratch_m2[lane] : A(0);
        v = warp_welford(part, 32);
    }
    // Chan's merge is not symmetric in rounding: take lane 0's result so the whole row agrees.
    v.mean = __shfl_sync(FULL_MASK, v.mean, 0, width);
    v.m2 = __shfl_sync(FULL_MASK, v.m2, 0, width);
    return v;
}
"""


def render(body: str, dtype_char: str) -> str:
    """The full CUDA source of a row-kernel family for one dtype ('e', 'f' or 'd')."""
    storage, acc = C_TYPES[dtype_char]
    return DEVICE_PREAMBLE.replace("{storage}", storage).replace("{acc}", acc) + REDUCTIONS + body


@functools.cache
def module(body: str, dtype_char: str):
    """The compiled cupy.RawModule of `body` for one dtype (built once, then cached)."""
    return cupy_module().RawModule(code=render(body, dtype_char))  # CuPy's defaults: C++11, -ftz=true


def function(body: str, name: str, dtype):
    """Kernel `name` of the family `body`, compiled for elements of `dtype`."""
    return module(body, np.dtype(dtype).char).get_function(name)


# ------------------------------------------------------------------------------------ launching


def geometry(rows: int, cols: int) -> tuple[int, int, int]:
    """(blocks, threads per block, group size G) for `rows` rows of `cols` elements."""
    if cols <= SMALL_ROW:
        group = min(32, _next_pow2(cols))
        block = SLICE_BLOCK
    else:
        group = min(1024, _next_pow2(math.ceil(cols / ELEMENTS_PER_THREAD)))
        block = group
    return math.ceil(rows / (block // group)), block, group


def device_scope(array):
    """The context that makes `array`'s GPU the current one, for a launch on its data."""
    return array.device


def launch(kernel, rows: int, cols: int, *args) -> None:
    """Run a row kernel whose parameters begin (long long rows, long long cols, int group, ...)."""
    blocks, block, group = geometry(rows, cols)
    kernel((blocks,), (block,), (np.int64(rows), np.int64(cols), np.int32(group)) + args)


def launch_per_element(body: str, name: str, dtype, total: int, args: tuple, block: int = 256) -> None:
    """Run kernel `name` of `body` with a thread per element (parameters begin `long long total`)."""
    function(body, name, dtype)((math.ceil(total / block),), (block,), (np.int64(total), *args))


def element_strides(array) -> tuple:
    """An array's strides in elements, as kernel arguments (long long)."""
    return tuple(np.int64(s // array.itemsize) for s in array.strides)


def rows_and_cols(x) -> tuple[int, int]:
    cols = x.shape[-1]
    return x.size // cols, cols


def scalar(value, dtype):
    """A kernel argument of the arithmetic type A (float for float16/32 tensors, double for float64)."""
    return acc_dtype(dtype)(value)


# A null pointer argument (for optional arrays such as an absent weight): 8 zero bytes.
NULL = np.uint64(0)


def pointer(array):
    return NULL if array is None else array


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()
