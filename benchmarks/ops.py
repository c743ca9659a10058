"""Per-op time of the engine next to raw NumPy and PyTorch, as one Markdown table.

    python benchmarks/ops.py [--rounds 21] [--batch-ms 2] [--sizes 16 64] [--only add exp ...] [--median]

Each row interleaves its variants round by round (every variant once per round, in a rotating
order), so a burst of load from other processes hits them alike:
- small ops on 16x16 and 64x64 float32 tensors (and a few chains of ops): raw NumPy; raygrad and
  torch forward with grad tracking (inputs require grad, the graph is built and dropped); raygrad
  and torch forward plus backward (the output's backward with a fixed gradient, leaf gradients
  accumulating). Target: raygrad's forward at most 2x torch's.
- large ops (4M-element add/mul/exp, a 1024x1024 matmul; one call per batch, 3x the rounds): raw
  NumPy against raygrad's forward, and a hand-written NumPy forward plus backward (the arrays an
  ideal engine would compute, gradients added into existing .grad arrays) against raygrad's
  forward plus backward. Target: raygrad's forward within 10% of NumPy's.

Both libraries run on one thread: torch.set_num_threads(1), and NumPy's BLAS limited to one thread
with threadpoolctl when it is installed (the header says if it is not; elementwise NumPy is single-
threaded anyway). Times are microseconds of process CPU time per call (on a machine shared with
other jobs, wall time would also count the time spent descheduled), the minimum over rounds
(--median: the median). A ratio is raygrad / other, the median over rounds of the two sides' times
in the same round, which cancels most of the load from other jobs; < 1 means raygrad is faster.
The output is Markdown, ready for benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tensor  # noqa: E402
import tensor.nn.functional as rF  # noqa: E402
from compare_torch import cpu_model  # noqa: E402 - beside this file: the same machine line

try:
    import torch
    import torch.nn.functional as tF
except ImportError:
    torch = tF = None

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None


# ------------------------------------------------------------------------------------- timing


def _per_call(fn, batch_s):
    """How many calls make one timed batch of about `batch_s` seconds (after a warm-up)."""
    for _ in range(3):
        fn()
    n = 1
    while True:
        elapsed = timeit.Timer(fn, setup=gc.enable, timer=time.process_time).timeit(n)
        if elapsed >= batch_s / 4 or n >= 1 << 20:
            return max(1, round(n * batch_s / max(elapsed, 1e-9)))
        n *= 4


def measure(variants, rounds, batch_s):
    """{name: [seconds per call, one sample per round]}; the variants are interleaved round by round.

    The clock is the process's CPU time, not wall time: on a machine shared with other jobs, time
    spent descheduled would otherwise land on whichever variant was running. gc stays enabled
    (timeit turns it off by default): collecting whatever cycles an engine leaves is part of its cost.
    """
    names = [k for k, fn in variants.items() if fn is not None]
    counts = {k: _per_call(variants[k], batch_s) for k in names}
    timers = {k: timeit.Timer(variants[k], setup=gc.enable, timer=time.process_time) for k in names}
    samples = {k: [] for k in names}
    for r in range(rounds):
        shift = r % len(names)
        for k in names[shift:] + names[:shift]:
            samples[k].append(timers[k].timeit(counts[k]) / counts[k])
    return samples


class Row:
    """One row's samples: times as the minimum (or median) over rounds, in microseconds, and ratios
    as the median over rounds of the two variants' times in the same round, which cancels most of
    the load that other jobs put on the machine (it slows both sides of a round alike)."""

    def __init__(self, samples, median):
        self.samples, self.pick = samples, (statistics.median if median else min)

    def us(self, key):
        return self.pick(self.samples[key]) * 1e6 if key in self.samples else None

    def ratio(self, key, other):
        if key not in self.samples or other not in self.samples:
            return None
        return statistics.median(a / b for a, b in zip(self.samples[key], self.samples[other]))


# -------------------------------------------------------------------------------------- cases


def _inputs(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s, dtype=np.float32) for s in shapes]


def _leaves(module, arrays):
    if module is tensor:
        return [tensor.tensor(a, requires_grad=True) for a in arrays]
    return [torch.tensor(a, requires_grad=True) for a in arrays]


def _backward(out, grad):
    """out.backward with a fixed gradient (none for a scalar), the same call in both libraries."""
    if grad is None:
        return out.backward
    return lambda: out.backward(grad)


def small_cases(n):
    """(op, shapes, numpy fn, fn(m, F, *tensors) shared by raygrad and torch)."""
    s = (n, n)
    idx = np.arange(0, n, 2)
    return [
        ("add", [s, s], lambda a, b: a + b, lambda m, F, x, y: x + y),
        ("mul", [s, s], lambda a, b: a * b, lambda m, F, x, y: x * y),
        ("div", [s, s], lambda a, b: a / b, lambda m, F, x, y: x / y),
        ("add row bias", [s, (n,)], lambda a, b: a + b, lambda m, F, x, y: x + y),
        ("mul scalar", [s], lambda a: a * 2.0, lambda m, F, x: x * 2.0),
        ("matmul", [s, s], lambda a, b: a @ b, lambda m, F, x, y: x @ y),
        ("exp", [s], np.exp, lambda m, F, x: x.exp()),
        ("tanh", [s], np.tanh, lambda m, F, x: x.tanh()),
        ("relu", [s], lambda a: np.maximum(a, 0), lambda m, F, x: x.relu()),
        ("sigmoid", [s], lambda a: 1 / (1 + np.exp(-a)), lambda m, F, x: x.sigmoid()),
        ("gelu", [s], None, lambda m, F, x: F.gelu(x)),
        ("sum", [s], np.sum, lambda m, F, x: x.sum()),
        ("sum(dim=1)", [s], lambda a: a.sum(1), lambda m, F, x: x.sum(1)),
        ("mean", [s], np.mean, lambda m, F, x: x.mean()),
        ("reshape", [s], lambda a: a.reshape(-1), lambda m, F, x: x.reshape(-1)),
        ("transpose", [s], lambda a: a.T, lambda m, F, x: x.transpose(0, 1)),
        ("getitem slice", [s], lambda a: a[1:-1, ::2], lambda m, F, x: x[1:-1, ::2]),
        ("getitem int array", [s], lambda a: a[idx], lambda m, F, x: x[idx_of(m, idx)]),
        ("cat", [s, s], lambda a, b: np.concatenate([a, b], 1), lambda m, F, x, y: m.cat([x, y], 1)),
        ("softmax (composed)", [s], _np_softmax, _composed_softmax),
        ("F.softmax", [s], _np_softmax, lambda m, F, x: F.softmax(x, dim=-1)),
        ("linear+relu", [s, s, (n,)], lambda a, w, b: np.maximum(a @ w.T + b, 0),
         lambda m, F, x, w, b: F.relu(F.linear(x, w, b))),
        ("mse loss", [s, s], lambda a, b: ((a - b) ** 2).mean(), lambda m, F, x, y: ((x - y) ** 2).mean()),
    ]


_index_cache = {}


def idx_of(module, idx):
    """The int index as the library's own tensor, made once (building it is not the op's cost)."""
    key = (module.__name__, id(idx))
    if key not in _index_cache:
        _index_cache[key] = module.tensor(idx) if module is tensor else torch.from_numpy(idx)
    return _index_cache[key]


def _np_softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _composed_softmax(m, F, x):
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def small_row(op, shapes, np_fn, fn, rounds, batch_s):
    arrays = _inputs(shapes, seed=len(op))
    variants = {"numpy": (lambda: np_fn(*arrays)) if np_fn is not None else None}
    libs = [("rg", tensor, rF)] + ([("torch", torch, tF)] if torch is not None else [])
    for tag, module, F in libs:
        leaves = _leaves(module, arrays)
        out = fn(module, F, *leaves)
        grad = None if out.numel() == 1 else module.ones_like(out)
        variants[f"{tag} fwd"] = lambda module=module, F=F, leaves=leaves: fn(module, F, *leaves)
        variants[f"{tag} f+b"] = (
            lambda module=module, F=F, leaves=leaves, grad=grad: _backward(fn(module, F, *leaves), grad)()
        )
    return measure(variants, rounds, batch_s)


def large_cases(elements):
    """(op, shapes, numpy forward, numpy forward+backward by hand, raygrad fn)."""
    s = (elements,)
    n = 1024

    def add_fb(a, b, g, ga, gb):
        a + b
        ga += g
        gb += g

    def mul_fb(a, b, g, ga, gb):
        a * b
        ga += g * b
        gb += g * a

    def exp_fb(a, g, ga):
        out = np.exp(a)
        ga += g * out

    def matmul_fb(a, b, g, ga, gb):
        a @ b
        ga += g @ b.T
        gb += a.T @ g

    return [
        ("add", [s, s], lambda a, b: a + b, add_fb, lambda x, y: x + y),
        ("mul", [s, s], lambda a, b: a * b, mul_fb, lambda x, y: x * y),
        ("exp", [s], np.exp, exp_fb, lambda x: x.exp()),
        ("matmul", [(n, n), (n, n)], lambda a, b: a @ b, matmul_fb, lambda x, y: x @ y),
    ]


def large_row(op, shapes, np_fwd, np_fb, fn, rounds, batch_s):
    arrays = _inputs(shapes, seed=len(op))
    leaves = _leaves(tensor, arrays)
    out = fn(*leaves)
    grad = tensor.ones_like(out)
    _backward(out, grad)()  # so .grad exists and later backwards accumulate, as in the NumPy version
    g = grad.data
    np_grads = [np.zeros_like(a) for a in arrays]
    variants = {
        "numpy": lambda: np_fwd(*arrays),
        "rg fwd": lambda: fn(*leaves),
        "numpy f+b": lambda: np_fb(*arrays, g, *np_grads),
        "rg f+b": lambda: _backward(fn(*leaves), grad)(),
    }
    if torch is not None:
        t_leaves = _leaves(torch, arrays)
        variants["torch fwd"] = lambda: fn(*t_leaves)
    return measure(variants, rounds, batch_s)


# -------------------------------------------------------------------------------------- table


def _fmt(x, ratio=False):
    if x is None:
        return "—"
    if ratio:
        return f"{x:.2f}"
    return f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def print_header(args):
    print(f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}")
    versions = f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else ", torch not installed")
    print(f"- {versions}")
    print(f"- threads: {_thread_note()}")
    print(f"- timing: {args.rounds} interleaved rounds of ~{args.batch_ms} ms batches per variant (large ops: "
          f"{3 * args.rounds} rounds of one call), process CPU time, gc enabled; times are the "
          f"{'median' if args.median else 'minimum'} over rounds in microseconds per call, ratios the median "
          "over rounds of the two sides' times in the same round")
    print()


def _thread_note():
    parts = []
    if torch is not None:
        parts.append(f"torch.set_num_threads(1) -> {torch.get_num_threads()}")
    if threadpool_info is None:
        parts.append("threadpoolctl not installed: NumPy's BLAS keeps its default thread count "
                     "(pip install threadpoolctl to limit it)")
    else:
        for lib in threadpool_info():
            if lib["user_api"] == "blas":
                arch = lib.get("architecture") or "?"
                parts.append(f"NumPy's {lib['internal_api']} {lib['version']} ({arch} kernels) "
                             f"at {lib['num_threads']} thread(s)")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        if var in os.environ:
            parts.append(f"{var}={os.environ[var]}")
    return "; ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--batch-ms", type=float, default=2.0)
    parser.add_argument("--large-elements", type=int, default=1 << 22)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--median", action="store_true", help="report medians rather than minimums")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 ms batches: a smoke run")
    parser.add_argument("--only", nargs="+", help="only the ops whose names contain one of these strings")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.batch_ms = 3, 1.0
    if torch is not None:
        torch.set_num_threads(1)
    limits = threadpool_limits(1) if threadpool_limits is not None else None  # noqa: F841 - kept alive
    batch_s = args.batch_ms / 1000

    def wanted(op):
        return not args.only or any(s in op for s in args.only)

    print_header(args)
    print("| op | shape | NumPy | raygrad fwd | torch fwd | fwd vs torch | raygrad f+b | torch f+b "
          "| f+b vs torch | NumPy f+b | fwd vs NumPy | f+b vs NumPy | target |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for n in args.sizes:
        for op, shapes, np_fn, fn in small_cases(n):
            if not wanted(op):
                continue
            r = Row(small_row(op, shapes, np_fn, fn, args.rounds, batch_s), args.median)
            ratio = r.ratio("rg fwd", "torch fwd")
            target = "—" if ratio is None else "ok (<= 2x torch)" if ratio <= 2 else "**missed** (> 2x torch)"
            print(f"| {op} | {n}x{n} | {_fmt(r.us('numpy'))} | {_fmt(r.us('rg fwd'))} | {_fmt(r.us('torch fwd'))} "
                  f"| {_fmt(ratio, True)} | {_fmt(r.us('rg f+b'))} | {_fmt(r.us('torch f+b'))} "
                  f"| {_fmt(r.ratio('rg f+b', 'torch f+b'), True)} | — "
                  f"| {_fmt(r.ratio('rg fwd', 'numpy'), True)} | — | {target} |", flush=True)
    for op, shapes, np_fwd, np_fb, fn in large_cases(args.large_elements):
        if not wanted(op):
            continue
        # One call per batch (each takes milliseconds) and three times the rounds: memory bandwidth
        # is shared with the other jobs on the machine, and the statistics need many chances.
        r = Row(large_row(op, shapes, np_fwd, np_fb, fn, 3 * args.rounds, 0.0), args.median)
        shape = "x".join(map(str, shapes[0])) if len(shapes[0]) > 1 else f"{shapes[0][0] / 2**20:g}M"
        rf = r.ratio("rg fwd", "numpy")
        target = "ok (<= 1.10x NumPy)" if rf <= 1.10 else "**missed** (> 1.10x NumPy)"
        print(f"| {op} | {shape} | {_fmt(r.us('numpy'))} | {_fmt(r.us('rg fwd'))} | {_fmt(r.us('torch fwd'))} | — "
              f"| {_fmt(r.us('rg f+b'))} | — | — | {_fmt(r.us('numpy f+b'))} | {_fmt(rf, True)} "
              f"| {_fmt(r.ratio('rg f+b', 'numpy f+b'), True)} | {target} |", flush=True)


if __name__ == "__main__":
    main()
