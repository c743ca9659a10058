"""max_pool2d as one kernel launch forward and one backward (plus the zeroing of the gradient).

The NumPy path walks the kernel taps as strided views, a few passes per tap, and asks the host
whether any maximum is NaN (to route its gradient): on a GPU that is ten-odd launches and a device
synchronisation per pool. Here one thread per output element walks its window:

    forward:   y = the window's first maximum (its first NaN, if any), tap = its place in the window
    backward:  dx[window's tap] += grad      (atomic where windows overlap, a plain store otherwise)

Any strides: the input, the gradient and dx are addressed through their element strides, so a
convolution's channels-outermost output is read in place. y and the saved taps are laid out in
the input's memory order, which keeps the threads of a warp on neighbouring addresses.
"""
from __future__ import annotations

import numpy as np

from ..backend import cupy_module
from ..runtime import check_deterministic
from . import _rows

_SOURCE = r"""
// float16 has no header-free atomicAdd: a compare-and-swap loop on the 32-bit word holding it.
__device__ __forceinline__ void atomic_add(unsigned short* p, float v) {
    unsigned int* word = (unsigned int*)((unsigned long long)p & ~3ull);
    const unsigned int shift = ((unsigned long long)p & 2ull) ? 16u : 0u;
    unsigned int old = *word, assumed;
    do {
        assumed = old;
        unsigned short sum;
        store(&sum, to_acc((unsigned short)((assumed >> shift) & 0xffffu)) + v);
        old = atomicCAS(word, assumed, (assumed & ~(0xffffu << shift)) | ((unsigned int)sum << shift));
    } while (assumed != old);
}
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }

// Output element i, in the input's memory order (outer, inner, ho, wo) -> its (n, c, ho, wo).
struct Cell { long long n, c; int ho, wo; };
__device__ __forceinline__ Cell cell_of(long long i, long long inner, int Ho, int Wo, int swapped) {
    Cell e;
    e.wo = (int)(i % Wo);
    long long t = i / Wo;
    e.ho = (int)(t % Ho);
    t /= Ho;
    const long long b = t % inner, a = t / inner;
    e.n = swapped ? b : a;
    e.c = swapped ? a : b;
    return e;
}

extern "C" __global__ void max_pool_forward(
        long long total, long long inner, int Ho, int Wo, int swapped,
        const T* __restrict__ x, long long xn, long long xc, long long xh, long long xw, int H, int W,
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
        T* __restrict__ y, int* __restrict__ tap) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const Cell e = cell_of(i, inner, Ho, Wo, swapped);
    const T* plane = x + e.n * xn + e.c * xc;
    A best = A(0);
    int best_tap = -1;
    for (int p = 0; p < kh; ++p) {
        const int h = e.ho * sh - ph + p * dh;
        if (h < 0 || h >= H) continue;
        for (int q = 0; q < kw; ++q) {
            const int w = e.wo * sw - pw + q * dw;
            if (w < 0 || w >= W) continue;
            const A v = to_acc(plane[h * xh + w * xw]);
            // The first maximum wins ties; the first NaN beats everything and stays (NaN propagates).
            if (best_tap < 0 || v > best || (v != v && best == best)) {
                best = v;
                best_tap = p * kw + q;
            }
        }
    }
    store(y + i, best);
    tap[i] = best_tap;
}

extern "C" __global__ void max_pool_backward(
        long long total, long long inner, int Ho, int Wo, int swapped,
        const T* __restrict__ grad, long long gn, long long gc, long long gh, long long gw,
        const int* __restrict__ tap, T* __restrict__ dx, long long xn, long long xc, long long xh, long long xw,
        int kw, int sh, int sw, int ph, int pw, int dh, int dw, int overlapping) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int t = tap[i];
    if (t < 0) return;
    const Cell e = cell_of(i, inner, Ho, Wo, swapped);
    const int h = e.ho * sh - ph + (t / kw) * dh, w = e.wo * sw - pw + (t % kw) * dw;
    T* target = dx + e.n * xn + e.c * xc + h * xh + w * xw;
    const T g = grad[e.n * gn + e.c * gc + e.ho * gh + e.wo * gw];
    if (overlapping) {
        atomic_add(target, to_acc(g));
    } else {
        *target = g;  // each input lies in one window at most: no other thread writes here
    }
}
"""


def max_pool_fits(x) -> bool:
    """The fused max pool takes a non-empty 4-d CuPy float16/32/64 array."""
    return not isinstance(x, np.ndarray) and x.dtype.char in _rows.C_TYPES and x.ndim == 4 and x.size > 0


def _order(shape, swapped):
    """(outer, inner): the sizes of the leading dims N, C in memory order."""
    N, C = shape[:2]
    return (C, N) if swapped else (N, C)


def max_pool_forward(x, kernel, stride, padding, dilation, out_hw, swapped: bool):
    """(y, taps) for a CuPy (N, C, H, W) array: y (N, C, Ho, Wo) in x's dtype and the int32 tap of each
    maximum in its window (row-major in the kernel), both laid out channels-outermost when `swapped`."""
    cp = cupy_module()
    outer, inner = _order(x.shape, swapped)
    Ho, Wo = out_hw
    y = cp.empty((outer, inner, Ho, Wo), dtype=x.dtype)
    taps = cp.empty((outer, inner, Ho, Wo), dtype=np.int32)
    H, W = x.shape[2:]
    geometry = tuple(np.int32(v) for v in (H, W, *kernel, *stride, *padding, *dilation))
    with _rows.device_scope(x):
        _rows.launch_per_element(_SOURCE, "max_pool_forward", x.dtype, y.size,
                                 (np.int64(inner), np.int32(Ho), np.int32(Wo), np.int32(swapped),
                                  x, *_rows.element_strides(x), *geometry, y, taps))
    return (y.transpose(1, 0, 2, 3) if swapped else y), taps


def max_pool_backward(grad, taps, in_shape, kernel, stride, padding, dilation, swapped: bool, overlapping: bool):
    """The (N, C, H, W) input gradient from the output gradient (any strides) and forward's taps."""
    if overlapping:
        check_deterministic("max_pool2d backward with overlapping windows (atomicAdd)")
    cp = cupy_module()
    N, C, H, W = in_shape
    outer, inner = _order(in_shape, swapped)
    dx = cp.zeros((outer, inner, H, W), dtype=grad.dtype)
    dx = dx.transpose(1, 0, 2, 3) if swapped else dx
    Ho, Wo = grad.shape[2:]
    geometry = tuple(np.int32(v) for v in (kernel[1], *stride, *padding, *dilation))
    with _rows.device_scope(grad):
        _rows.launch_per_element(_SOURCE, "max_pool_backward", grad.dtype, taps.size,
                                 (np.int64(inner), np.int32(Ho), np.int32(Wo), np.int32(swapped), grad,
                                  *_rows.element_strides(grad), taps, dx, *_rows.element_strides(dx), *geometry,
                                  np.int32(overlapping)))
    return dx
