"""im2col and col2im for the convolutions (tensor/nn/functional/conv.py), one launch each.

The NumPy path builds the column matrix from a zero-padded copy of the input (a fill, a copy into
it, a copy of a strided view: three launches on a GPU) and adds the column gradient back with one
strided add per kernel tap (kh*kw launches and a fill). Here:

    im2col   a thread per column element reads its input pixel (0 in the padding, and in the
             "wide" junk columns the convolution drops)
    col2im   a thread per input pixel sums the column entries that read it, in the arithmetic type
             (float for float16): a gather, so no atomics and the same sum order on every run

The layout is conv.py's (see its docstring): columns (C*kh*kw, N*Ho*Wq), rows ordered (C, kh, kw),
columns (N, Ho, Wq), with Wq >= Wo. `geo` is its _Geometry; the attributes read here are the
input size H, W, the kernel kh, kw, stride sh, sw, dilation dh, dw, padding top, left, the output
size Ho, Wo, the column width Wq and the padded row pitch Wr. The NumPy path's column for a junk
position holds whatever its view read; here it is 0 (never used: its output is dropped, and its
gradient is 0).
"""
from __future__ import annotations

import numpy as np

from ..backend import cupy_module
from . import _rows

_SOURCE = r"""
extern "C" __global__ void im2col(
        long long total, int N, int H, int W, int kh, int kw, int sh, int sw, int dh, int dw, int top, int left,
        int Ho, int Wo, int Wq, const T* __restrict__ x, long long xn, long long xc, long long xh, long long xw,
        T* __restrict__ cols) {
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    const long long columns = (long long)N * Ho * Wq;
    const long long row = e / columns, col = e % columns;
    const int ow = (int)(col % Wq);
    long long t = col / Wq;
    const int oh = (int)(t % Ho);
    const long long n = t / Ho;
    const int j = (int)(row % kw);
    t = row / kw;
    const int i = (int)(t % kh);
    const long long c = t / kh;
    const int h = oh * sh + i * dh - top, w = ow * sw + j * dw - left;
    const bool inside = ow < Wo && h >= 0 && h < H && w >= 0 && w < W;
    cols[e] = inside ? x[n * xn + c * xc + h * xh + w * xw] : T(0);  // T(0) is +0 for float16's bits too
}

extern "C" __global__ void col2im(
        long long total, int N, int H, int W, int kh, int kw, int sh, int sw, int dh, int dw, int top, int left,
        int Ho, int Wq, int Wr, const T* __restrict__ cols, T* __restrict__ dx) {
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    const int w = (int)(e % W);
    long long t = e / W;
    const int h = (int)(t % H);
    t /= H;
    const long long n = t % N, c = t / N;
    const long long columns = (long long)N * Ho * Wq;
    // Tap (i, j) of output (oh, ow) reads the padded image at (oh*sh + i*dh)*Wr + ow*sw + j*dw.
    // Solve for (oh, ow) per tap: ow*sw < Wr <= sh*Wr, so the split of the offset is unique.
    const long long p = (long long)(h + top) * Wr + (w + left), pitch = (long long)sh * Wr;
    A acc = A(0);
    for (int i = 0; i < kh; ++i) {
        for (int j = 0; j < kw; ++j) {
            const long long q = p - ((long long)i * dh * Wr + (long long)j * dw);
            if (q < 0) continue;
            const long long oh = q / pitch, rem = q % pitch;
            if (oh >= Ho || rem % sw != 0 || rem / sw >= Wq) continue;
            acc += to_acc(cols[((c * kh + i) * kw + j) * columns + (n * Ho + oh) * Wq + rem / sw]);
        }
    }
    store(dx + e, acc);
}
"""


def columns_fit(array) -> bool:
    """The kernels take non-empty CuPy float16/32/64 arrays (any strides)."""
    return not isinstance(array, np.ndarray) and array.dtype.char in _rows.C_TYPES and array.size > 0


def _ints(*values):
    return tuple(np.int32(v) for v in values)


def im2col(x, geo):
    """x (N, C, H, W), any strides -> the column matrix (C*kh*kw, N*Ho*Wq), C-contiguous."""
    cp = cupy_module()
    N, C = x.shape[:2]
    cols = cp.empty((C * geo.kh * geo.kw, N * geo.Ho * geo.Wq), dtype=x.dtype)
    with _rows.device_scope(x):
        _rows.launch_per_element(_SOURCE, "im2col", x.dtype, cols.size,
                _ints(N, geo.H, geo.W, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw, geo.top, geo.left, geo.Ho,
                      geo.Wo, geo.Wq) + (x, *_rows.element_strides(x), cols))
    return cols


def col2im(cols, geo, C: int, N: int):
    """The column gradient (C*kh*kw, N*Ho*Wq) summed back onto the input: (N, C, H, W), a view of a
    C-contiguous (C, N, H, W) array (the memory order the NumPy path returns too)."""
    cp = cupy_module()
    cols = cp.ascontiguousarray(cols)
    dx = cp.empty((C, N, geo.H, geo.W), dtype=cols.dtype)
    with _rows.device_scope(cols):
        _rows.launch_per_element(_SOURCE, "col2im", cols.dtype, dx.size,
                _ints(N, geo.H, geo.W, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw, geo.top, geo.left, geo.Ho,
                      geo.Wq, geo.Wr) + (cols, dx))
    return dx.transpose(1, 0, 2, 3)
