"""Which k entries torch.topk picks when values tie: the pruned set of nn.utils.prune, exactly.

torch.topk on CPU copies (value, index) pairs into a buffer and runs libstdc++'s std::partial_sort
(when k * 64 <= n) or std::nth_element on it, comparing values only; the first k pairs are the answer.
Where no tie straddles the k-th value, any selection gives the same set, so a partition does it in
linear time. Where one does, which of the tied entries are picked depends on those algorithms'
swaps, so they are replayed here in Python (slow for millions of tied entries, but exact), for the
same masks as PyTorch. NaN counts as larger than every number, as in torch.topk.
"""
from __future__ import annotations

import numpy as np


def topk_set(values, k: int, largest: bool) -> np.ndarray:
    """The int64 positions (in no particular order) of the k entries torch.topk(values, k, largest=largest)
    returns for the 1-D NumPy array `values`."""
    values = np.asarray(values).reshape(-1)
    n = values.size
    if k <= 0:
        return np.empty(0, np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    nan = np.isnan(values) if values.dtype.kind in "fc" else np.zeros(n, bool)
    if not nan.any():
        keys = values if not largest else -values.astype(np.float64)
        kth = np.partition(keys, k - 1)[k - 1]
        below, tied = keys < kth, keys == kth
        if int(below.sum()) + int(tied.sum()) == k:
            return np.flatnonzero(below | tied).astype(np.int64)
        keys = keys.tolist()
    elif largest:  # NaN first, then descending
        keys = [(0, 0.0) if isnan else (1, -float(v)) for v, isnan in zip(values.tolist(), nan.tolist())]
    else:  # ascending, NaN last
        keys = [(1, 0.0) if isnan else (0, float(v)) for v, isnan in zip(values.tolist(), nan.tolist())]
    queue = list(zip(keys, range(n)))
    if k * 64 <= n:
        _heap_select(queue, 0, k, n)
    else:
        _nth_element(queue, k - 1)
    return np.array([index for _, index in queue[:k]], np.int64)


# ----------------------------------------------------------------- libstdc++'s algorithms, on (key, index)

def _nth_element(q, nth):
    first, last = 0, len(q)
    depth = 2 * (len(q).bit_length() - 1)
    while last - first > 3:
        if depth == 0:
            _heap_select(q, first, nth + 1, last)
            q[first], q[nth] = q[nth], q[first]
            return
        depth -= 1
        cut = _partition_pivot(q, first, last)
        if cut <= nth:
            first = cut
        else:
            last = cut
    _insertion_sort(q, first, last)


def _partition_pivot(q, first, last):
    mid = first + (last - first) // 2
    a, b, c = first + 1, mid, last - 1
    ka, kb, kc = q[a][0], q[b][0], q[c][0]
    if ka < kb:
        median = b if kb < kc else (c if ka < kc else a)
    elif ka < kc:
        median = a
    else:
        median = c if kb < kc else b
    q[first], q[median] = q[median], q[first]
    pivot = q[first][0]
    lo, hi = first + 1, last
    while True:
        while q[lo][0] < pivot:
            lo += 1
        hi -= 1
        while pivot < q[hi][0]:
            hi -= 1
        if not lo < hi:
            return lo
        q[lo], q[hi] = q[hi], q[lo]
        lo += 1


def _insertion_sort(q, first, last):
    for i in range(first + 1, last):
        item = q[i]
        if item[0] < q[first][0]:
            q[first + 1:i + 1] = q[first:i]
            q[first] = item
        else:
            j = i - 1
            while item[0] < q[j][0]:
                q[j + 1] = q[j]
                j -= 1
            q[j + 1] = item


def _adjust_heap(q, first, hole, length, item):
    top = second = hole
    while second < (length - 1) // 2:
        second = 2 * (second + 1)
        if q[first + second][0] < q[first + second - 1][0]:
            second -= 1
        q[first + hole] = q[first + second]
        hole = second
    if length % 2 == 0 and second == (length - 2) // 2:
        second = 2 * (second + 1)
        q[first + hole] = q[first + second - 1]
        hole = second - 1
    parent = (hole - 1) // 2
    while hole > top and q[first + parent][0] < item[0]:
        q[first + hole] = q[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    q[first + hole] = item


def _heap_select(q, first, middle, last):
    length = middle - first
    if length >= 2:
        for parent in range((length - 2) // 2, -1, -1):
            _adjust_heap(q, first, parent, length, q[first + parent])
    for i in range(middle, last):
        if q[i][0] < q[first][0]:
            item, q[i] = q[i], q[first]
            _adjust_heap(q, first, 0, length, item)
