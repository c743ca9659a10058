"""cross_entropy of (N, C) logits at class indices: one launch forward, one backward.

Forward, per row i with target t, class weights w (all 1 without weight=) and smoothing e:

    lse    = m + log(s)                     m = max_c x[c], s = sum_c exp(x[c] - m)
    loss_i = (1 - e) * w[t] * (lse - x[t]) + (e / C) * sum_c w[c] * (lse - x[c])

It writes loss_i, the row's weight w[t] (the 'mean' reduction divides by their sum), and m and
log(s) for backward, which recomputes the softmax p from the logits instead of storing it:

    dx[c] = scale_i * ((1 - e) * w[t] * (p[c] - [c == t]) + (e / C) * (W * p[c] - w[c])),  W = sum_c w[c]

scale_i is the upstream gradient of loss_i (already divided by the 'mean' denominator). A row whose
target is ignore_index has loss 0, weight 0 and gradient 0. A target outside [0, C) cannot raise
on the GPU without a sync: its loss, weight and gradient are NaN, which surfaces in the result.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import cupy_module
from . import _rows

_SOURCE = r"""
extern "C" __global__ void __launch_bounds__(1024, 1) cross_entropy_forward(long long rows, long long cols, int group,
        const T* __restrict__ logits, const long long* __restrict__ target, const T* __restrict__ weight,
        A* __restrict__ loss, A* __restrict__ row_weight, A* __restrict__ row_max, A* __restrict__ row_log_sum,
        long long ignore_index, A smoothing) {
    __shared__ A scratch_m[32], scratch_s[32];
    const RowSlot r = row_slot(rows, cols, group);
    const T* xr = logits + r.offset;
    const bool smooth = smoothing != A(0);  // the same for the whole block: no divergence around reductions
    MaxSum ms;
    ms.m = NEG_INF;
    ms.s = A(0);
    A wx = A(0), wsum = A(0);  // sum_c w[c] * x[c] and sum_c w[c], for smoothing only
    for (long long j = r.lane; j < r.count; j += group) {
        const A v = to_acc(xr[j]);
        ms = max_sum_push(ms, v);
        if (smooth) {
            const A w = weight ? to_acc(weight[j]) : A(1);
            wx += w * v;
            wsum += w;
        }
    }
    ms = group_max_sum(ms, group, scratch_m, scratch_s);
    if (smooth) {
        wx = group_sum(wx, group, scratch_m);
        wsum = group_sum(wsum, group, scratch_m);
    }
    if (!r.active || r.lane != 0) return;
    const A log_sum = log_of_sum(ms);
    const long long t = target[r.row];
    row_max[r.row] = ms.m;
    row_log_sum[r.row] = log_sum;
    if (t == ignore_index) {
        loss[r.row] = A(0);
        row_weight[r.row] = A(0);
        return;
    }
    if (t < 0 || t >= cols) {
        loss[r.row] = A(QNAN);
        row_weight[r.row] = A(QNAN);
        return;
    }
    const A wt = weight ? to_acc(weight[t]) : A(1);
    // (m - x[t]) + log(s) rather than lse - x[t]: exact for large logits, where m + log(s) rounds
    A value = wt * ((ms.m - to_acc(xr[t])) + log_sum);
    if (smooth) value = (A(1) - smoothing) * value + smoothing / A(cols) * ((wsum * ms.m - wx) + wsum * log_sum);
    loss[r.row] = value;
    row_weight[r.row] = wt;
}

extern "C" __global__ void __launch_bounds__(1024, 1) cross_entropy_backward(long long rows, long long cols, int group,
        const T* __restrict__ logits, const long long* __restrict__ target, const T* __restrict__ weight,
        const A* __restrict__ row_max, const A* __restrict__ row_log_sum, const A* __restrict__ scale,
        long long scale_stride, const A* __restrict__ weight_total, T* __restrict__ dx,
        long long ignore_index, A smoothing) {
    const RowSlot r = row_slot(rows, cols, group);
    if (!r.active) return;  // no reductions below: threads past the end may leave
    const T* xr = logits + r.offset;
    T* dxr = dx + r.offset;
    const long long t = target[r.row];
    const bool ignored = t == ignore_index, in_range = t >= 0 && t < cols;
    const A s = ignored ? A(0) : (in_range ? scale[r.row * scale_stride] : A(QNAN));
    const A wt = (weight && in_range && !ignored) ? to_acc(weight[t]) : A(1);
    const A hit = s * (A(1) - smoothing) * wt;  // the one-hot target's share
    const A spread = s * smoothing / A(cols);   // the uniform target's share, per class
    const A spread_total = spread * (weight ? *weight_total : A(cols));
    const A m = row_max[r.row], log_sum = row_log_sum[r.row];
    for (long long j = r.lane; j < r.count; j += group) {
        const A p = ex((to_acc(xr[j]) - m) - log_sum);
        const A w = weight ? to_acc(weight[j]) : A(1);
        A d = p * (hit + spread_total) - spread * w;
        if (j == t) d -= hit;
        store(dxr + j, d);
    }
}
"""


class RowLoss(NamedTuple):
    """What cross_entropy_forward computes per row (arrays of shape (N,), the arithmetic dtype)."""

    loss: object  # loss_i (0 where ignored)
    weight: object  # w[target_i] (0 where ignored): the 'mean' reduction divides by their sum
    max: object  # m and log(s) of the row's log-sum-exp, for backward
    log_sum: object


def cross_entropy_forward(logits, target, weight, ignore_index: int, smoothing: float) -> RowLoss:
    """Per-row cross-entropy of CuPy logits (N, C) (float16/32/64, any strides) at integer targets (N,).

    weight: None or (C,) class weights (cast to the logits' dtype, as the unfused path does).
    """
    cp = cupy_module()
    logits = cp.ascontiguousarray(logits)
    target = cp.ascontiguousarray(target, dtype=cp.int64)
    weight = None if weight is None else cp.ascontiguousarray(weight, dtype=logits.dtype)
    rows, cols = logits.shape
    acc = _rows.acc_dtype(logits.dtype)
    loss, row_weight, row_max, log_sum = (cp.empty(rows, dtype=acc) for _ in range(4))
    with _rows.device_scope(logits):
        kernel = _rows.function(_SOURCE, "cross_entropy_forward", logits.dtype)
        _rows.launch(kernel, rows, cols, logits, target, _rows.pointer(weight), loss, row_weight, row_max, log_sum,
                     np.int64(ignore_index), _rows.scalar(smoothing, logits.dtype))
    return RowLoss(loss, row_weight, row_max, log_sum)


def cross_entropy_backward(logits, target, weight, rows: RowLoss, scale, ignore_index: int, smoothing: float):
    """The logits' gradient (N, C). scale: each row's upstream gradient, shape (N,), or () for all rows."""
    cp = cupy_module()
    logits = cp.ascontiguousarray(logits)
    target = cp.ascontiguousarray(target, dtype=cp.int64)
    acc = _rows.acc_dtype(logits.dtype)
    scale = cp.ascontiguousarray(scale, dtype=acc).reshape(-1)
    weight_total = None
    if weight is not None:
        weight = cp.ascontiguousarray(weight, dtype=logits.dtype)
        weight_total = weight.astype(acc).sum()
    dx = cp.empty_like(logits)
    n, cols = logits.shape
    with _rows.device_scope(logits):
        kernel = _rows.function(_SOURCE, "cross_entropy_backward", logits.dtype)
        _rows.launch(kernel, n, cols, logits, target, _rows.pointer(weight), rows.max, rows.log_sum, scale,
                     np.int64(1 if scale.size > 1 else 0), _rows.pointer(weight_total), dx, np.int64(ignore_index),
                     _rows.scalar(smoothing, logits.dtype))
    return dx
