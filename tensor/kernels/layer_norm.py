"""layer_norm over the trailing dims, seen as rows of D elements: one launch forward, two backward.

Forward, per row (biased variance, as normalisation layers use):

    mean, var = Welford over the row          rstd = 1 / sqrt(var + eps)
    y = (x - mean) * rstd * w + b             (w, b optional)

It saves mean and rstd per row (in the arithmetic type) rather than the normalised x̂, so backward
recomputes x̂ = (x - mean) * rstd from x. Backward, with ĝ = g * w:

    dx = rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂))          one row kernel
    dw = sum over rows of g * x̂,   db = sum over rows of g   a column kernel: partial sums per
                                                              chunk of rows, then one small sum
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import cupy_module
from . import _rows

PARAM_ROWS = 8  # threadIdx.y of the column kernel: rows summed side by side per column
_MIN_CHUNK, _MAX_CHUNKS = 32, 256  # the column kernel's rows per block, and blocks down each column

_SOURCE = f"#define PARAM_ROWS {PARAM_ROWS}\n" + r"""
extern "C" __global__ void __launch_bounds__(1024, 1) layer_norm_forward(long long rows, long long cols, int group,
        const T* __restrict__ x, const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ y,
        A* __restrict__ mean_out, A* __restrict__ rstd_out, A eps) {
    __shared__ A scratch_n[32], scratch_mean[32], scratch_m2[32];
    const RowSlot r = row_slot(rows, cols, group);
    const T* xr = x + r.offset;
    T* yr = y + r.offset;
    Welford stats;
    stats.n = A(0);
    stats.mean = A(0);
    stats.m2 = A(0);
    for (long long j = r.lane; j < r.count; j += group) stats = welford_push(stats, to_acc(xr[j]));
    stats = group_welford(stats, group, scratch_n, scratch_mean, scratch_m2);
    if (!r.active) return;
    const A rstd = A(1) / root(stats.m2 / A(cols) + eps);
    if (r.lane == 0) {
        mean_out[r.row] = stats.mean;
        rstd_out[r.row] = rstd;
    }
    for (long long j = r.lane; j < r.count; j += group) {
        A v = (to_acc(xr[j]) - stats.mean) * rstd;
        if (weight) v *= to_acc(weight[j]);
        if (bias) v += to_acc(bias[j]);
        store(yr + j, v);
    }
}

extern "C" __global__ void __launch_bounds__(1024, 1) layer_norm_backward(long long rows, long long cols, int group,
        const T* __restrict__ grad, const T* __restrict__ x, const A* __restrict__ mean,
        const A* __restrict__ rstd, const T* __restrict__ weight, T* __restrict__ dx) {
    __shared__ A scratch[32];
    const RowSlot r = row_slot(rows, cols, group);
    const T* gr = grad + r.offset;
    const T* xr = x + r.offset;
    T* dxr = dx + r.offset;
    const A mu = r.active ? mean[r.row] : A(0), rs = r.active ? rstd[r.row] : A(0);
    A sum_g = A(0), sum_gx = A(0);  // sum of g*w and of g*w*xhat over the row
    for (long long j = r.lane; j < r.count; j += group) {
        const A gw = weight ? to_acc(gr[j]) * to_acc(weight[j]) : to_acc(gr[j]);
        sum_g += gw;
        sum_gx += gw * ((to_acc(xr[j]) - mu) * rs);
    }
    sum_g = group_sum(sum_g, group, scratch);
    sum_gx = group_sum(sum_gx, group, scratch);
    const A mean_g = sum_g / A(cols), mean_gx = sum_gx / A(cols);
    for (long long j = r.lane; j < r.count; j += group) {
        const A gw = weight ? to_acc(gr[j]) * to_acc(weight[j]) : to_acc(gr[j]);
        const A xhat = (to_acc(xr[j]) - mu) * rs;
        store(dxr + j, rs * ((gw - mean_g) - xhat * mean_gx));
    }
}

// Column sums of g * xhat (weight) and g (bias) over one chunk of rows. Block (32, PARAM_ROWS):
// threadIdx.x picks the column (a warp reads 32 neighbours of one row), threadIdx.y strides the rows.
extern "C" __global__ void layer_norm_param_grads(long long rows, long long cols, long long chunk,
        const T* __restrict__ grad, const T* __restrict__ x, const A* __restrict__ mean,
        const A* __restrict__ rstd, A* __restrict__ partial_weight, A* __restrict__ partial_bias) {
    __shared__ A sum_w[PARAM_ROWS][32], sum_b[PARAM_ROWS][32];
    const long long col = (long long)blockIdx.x * 32 + threadIdx.x;
    const long long first = (long long)blockIdx.y * chunk;
    const long long last = first + chunk < rows ? first + chunk : rows;
    A acc_w = A(0), acc_b = A(0);
    if (col < cols) {
        for (long long i = first + threadIdx.y; i < last; i += PARAM_ROWS) {
            const A g = to_acc(grad[i * cols + col]);
            acc_w += g * ((to_acc(x[i * cols + col]) - mean[i]) * rstd[i]);
            acc_b += g;
        }
    }
    sum_w[threadIdx.y][threadIdx.x] = acc_w;
    sum_b[threadIdx.y][threadIdx.x] = acc_b;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        A total_w = A(0), total_b = A(0);
        for (int k = 0; k < PARAM_ROWS; ++k) {
            total_w += sum_w[k][threadIdx.x];
            total_b += sum_b[k][threadIdx.x];
        }
        partial_weight[blockIdx.y * cols + col] = total_w;
        partial_bias[blockIdx.y * cols + col] = total_b;
    }
}
"""


def layer_norm_forward(x, weight, bias, count: int, eps: float):
    """Normalise a CuPy array over its last `count` dims. Returns (y, mean, rstd); mean and rstd
    have one value per row (x.size // D rows of D elements), in the arithmetic dtype.

    weight, bias: None or arrays of the normalised shape, in x's dtype.
    """
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    cols = math.prod(x.shape[x.ndim - count:])
    rows = x.size // cols
    weight, bias = _flat(cp, weight), _flat(cp, bias)
    y = cp.empty_like(x)
    acc = _rows.acc_dtype(x.dtype)
    mean, rstd = cp.empty(rows, dtype=acc), cp.empty(rows, dtype=acc)
    with _rows.device_scope(x):
        kernel = _rows.function(_SOURCE, "layer_norm_forward", x.dtype)
        _rows.launch(kernel, rows, cols, x, _rows.pointer(weight), _rows.pointer(bias), y, mean, rstd,
                     _rows.scalar(eps, x.dtype))
    return y, mean, rstd


def layer_norm_backward(grad, x, mean, rstd, weight, count: int, need_weight: bool, need_bias: bool):
    """(dx, dweight, dbias) of layer_norm_forward from the output gradient `grad` and the saved x,
    mean and rstd. dweight and dbias (the normalised shape, x's dtype) are None unless asked for."""
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    grad = cp.ascontiguousarray(grad, dtype=x.dtype)
    norm_shape = x.shape[x.ndim - count:]
    cols = math.prod(norm_shape)
    rows = x.size // cols
    dx = cp.empty_like(x)
    dweight = dbias = None
    with _rows.device_scope(x):
        kernel = _rows.function(_SOURCE, "layer_norm_backward", x.dtype)
        _rows.launch(kernel, rows, cols, grad, x, mean, rstd, _rows.pointer(_flat(cp, weight)), dx)
        if need_weight or need_bias:
            dweight, dbias = _param_grads(cp, grad, x, mean, rstd, rows, cols)
    as_param = lambda total: total.astype(x.dtype, copy=False).reshape(norm_shape)
    return dx, (as_param(dweight) if need_weight else None), (as_param(dbias) if need_bias else None)


def _param_grads(cp, grad, x, mean, rstd, rows, cols):
    """Column sums of grad * x̂ and grad over all rows: partial sums per chunk of rows, then a sum."""
    chunk = max(_MIN_CHUNK, math.ceil(rows / _MAX_CHUNKS))
    chunks = math.ceil(rows / chunk)
    acc = _rows.acc_dtype(x.dtype)
    partial_weight = cp.empty((chunks, cols), dtype=acc)
    partial_bias = cp.empty((chunks, cols), dtype=acc)
    kernel = _rows.function(_SOURCE, "layer_norm_param_grads", x.dtype)
    kernel((math.ceil(cols / 32), chunks), (32, PARAM_ROWS),
           (np.int64(rows), np.int64(cols), np.int64(chunk), grad, x, mean, rstd, partial_weight, partial_bias))
    return partial_weight.sum(axis=0), partial_bias.sum(axis=0)


def _flat(cp, param):
    return None if param is None else cp.ascontiguousarray(param).reshape(-1)
