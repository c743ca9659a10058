"""softmax and log_softmax along the last dim: one kernel launch forward, one backward.

Forward reads each row twice (a pass for the max and the sum of exponentials together, a pass to
write) where the composed CuPy ops read and write it five or six times:

    softmax:      y = exp(x - m) / s                  m = max(x), s = sum(exp(x - m))
    log_softmax:  y = (x - m) - log(s)

Backward reads the saved output and the incoming gradient twice and writes once:

    softmax:      dx = y * (g - sum(g * y))
    log_softmax:  dx = g - exp(y) * sum(g)

Rows holding NaN or +inf come out NaN, and rows that are all -inf come out NaN, as in the unfused
path; a -inf among finite values gets probability 0 (log-probability -inf).
"""
from __future__ import annotations

import numpy as np

from ..backend import cupy_module
from . import _rows

_SOURCE = r"""
extern "C" __global__ void __launch_bounds__(1024, 1) softmax_forward(long long rows, long long cols, int group,
                                           const T* __restrict__ x, T* __restrict__ y, int log_output) {
    __shared__ A scratch_m[32], scratch_s[32];
    const RowSlot r = row_slot(rows, cols, group);
    const T* xr = x + r.offset;
    T* yr = y + r.offset;
    MaxSum ms;
    ms.m = NEG_INF;
    ms.s = A(0);
    for (long long j = r.lane; j < r.count; j += group) ms = max_sum_push(ms, to_acc(xr[j]));
    ms = group_max_sum(ms, group, scratch_m, scratch_s);
    const A log_sum = log_of_sum(ms);
    if (log_output) {
        for (long long j = r.lane; j < r.count; j += group) store(yr + j, (to_acc(xr[j]) - ms.m) - log_sum);
    } else {
        const A sum = ms.m == POS_INF ? A(QNAN) : ms.s;  // as in log_of_sum
        for (long long j = r.lane; j < r.count; j += group) store(yr + j, ex(to_acc(xr[j]) - ms.m) / sum);
    }
}

extern "C" __global__ void __launch_bounds__(1024, 1) softmax_backward(long long rows, long long cols, int group,
                                            const T* __restrict__ y, const T* __restrict__ g,
                                            T* __restrict__ dx, int log_output) {
    __shared__ A scratch[32];
    const RowSlot r = row_slot(rows, cols, group);
    const T* yr = y + r.offset;
    const T* gr = g + r.offset;
    T* dxr = dx + r.offset;
    A total = A(0);  // log_softmax: sum(g); softmax: sum(g * y)
    for (long long j = r.lane; j < r.count; j += group)
        total += log_output ? to_acc(gr[j]) : to_acc(gr[j]) * to_acc(yr[j]);
    total = group_sum(total, group, scratch);
    for (long long j = r.lane; j < r.count; j += group) {
        const A yj = to_acc(yr[j]), gj = to_acc(gr[j]);
        store(dxr + j, log_output ? gj - ex(yj) * total : yj * (gj - total));
    }
}
"""


def softmax_forward(x, log: bool = False):
    """softmax (log=False) or log_softmax (log=True) of a CuPy float array along its last axis.

    x: any shape (..., C), float16/32/64, any strides (a non-contiguous x is copied first).
    Returns a new C-contiguous array of x's shape and dtype.
    """
    cp = cupy_module()
    x = cp.ascontiguousarray(x)
    y = cp.empty_like(x)
    rows, cols = _rows.rows_and_cols(x)
    with _rows.device_scope(x):
        _rows.launch(_rows.function(_SOURCE, "softmax_forward", x.dtype), rows, cols, x, y, np.int32(log))
    return y


def softmax_backward(y, grad, log: bool = False):
    """The input gradient of softmax_forward from its output `y` and the output gradient `grad`."""
    cp = cupy_module()
    y, grad = cp.ascontiguousarray(y), cp.ascontiguousarray(grad, dtype=y.dtype)
    dx = cp.empty_like(y)
    rows, cols = _rows.rows_and_cols(y)
    with _rows.device_scope(y):
        _rows.launch(_rows.function(_SOURCE, "softmax_backward", y.dtype), rows, cols, y, grad, dx, np.int32(log))
    return dx
