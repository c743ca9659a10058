"""How close a NumPy engine can come to PyTorch on the small ops that ops.py finds over 2x torch.

    python benchmarks/floor.py [--rounds 41] [--batch-ms 5] [--sizes 16 64]     # ~30 s

For each such op, one row with, side by side in one run (ops.py's interleaved rounds and process
CPU time; times are the minimum over rounds in microseconds per call, ratios the median over rounds of
the two sides' times in the same round):
- torch: torch's forward with grad tracking, as in ops.py;
- NumPy floor: the fastest NumPy code we know that gives torch's values (stable, as accurate, no
  warnings), fastest of the listed formulations, with no Tensor and no graph at all;
- graph floor: raygrad's Function.apply around a forward that does nothing (returns its input),
  with the inputs requiring grad: what recording one node costs in this engine;
- raygrad: the op itself.
`NumPy / torch` over 2 means that no engine whose forward runs these NumPy calls can meet the
2x target, however little it adds; `floors / torch` adds this engine's graph floor.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ops import Row, _inputs, _leaves, measure, tensor, tF, torch  # noqa: E402
import tensor.nn.functional as rF  # noqa: E402
from tensor.autograd import Function  # noqa: E402
from tensor.ops._erf import _erf  # noqa: E402


class _Nothing(Function):
    """A node whose forward does no work: the engine's cost of recording one op."""

    @staticmethod
    def forward(ctx, *arrays):
        return arrays[0]

    @staticmethod
    def backward(ctx, grad):
        return (grad,) + (None,) * (len(ctx.needs_input_grad) - 1)


# -------------------------------------------------------------------------- NumPy formulations
_max, _add, _sub, _exp, _div = np.maximum.reduce, np.add.reduce, np.subtract, np.exp, np.divide


def softmax_five_calls(a):
    e = _sub(a, _max(a, -1, keepdims=True))
    _exp(e, out=e)
    return _div(e, _add(e, -1, keepdims=True), out=e)


_FULL = {}


def _full(a, value):
    """A cached array of a's shape and dtype filled with `value`: NumPy's loops run fastest against a
    full operand (see tensor/ops/_util.filled_like), and making it is not the op's cost."""
    key = (a.shape, a.dtype, value)
    if key not in _FULL:
        _FULL[key] = np.full(a.shape, value, a.dtype)
    return _FULL[key]


def sigmoid_clamped(a):
    """raygrad's: clamped so exp cannot overflow (no warning), five passes."""
    e = np.negative(a)
    np.minimum(e, _full(a, 88.0), out=e)
    _exp(e, out=e)
    np.add(e, _full(a, 1.0), out=e)
    return np.reciprocal(e, out=e)


def sigmoid_errstate(a):
    """Four passes, with the overflow warning silenced instead of avoided."""
    with np.errstate(over="ignore"):
        e = _exp(np.negative(a))
        np.add(e, _full(a, 1.0), out=e)
        return np.reciprocal(e, out=e)


def gelu_exact(a):
    """NumPy has no erf: the float32-accurate rational erf raygrad uses, then x * (1 + erf) / 2."""
    cdf = _erf(np, a * math.sqrt(0.5))
    cdf += 1.0
    cdf *= 0.5
    return a * cdf


def cases(n):
    """(op, shapes, NumPy formulations, raygrad/torch fn(m, F, *tensors))."""
    s = (n, n)
    return [
        ("F.softmax", [s], [softmax_five_calls], lambda m, F, x: F.softmax(x, dim=-1)),
        ("sigmoid", [s], [sigmoid_clamped, sigmoid_errstate], lambda m, F, x: x.sigmoid()),
        ("gelu", [s], [gelu_exact], lambda m, F, x: F.gelu(x)),
        ("sum", [s], [_add_all, np.sum], lambda m, F, x: x.sum()),
        ("mul", [s, s], [np.multiply], lambda m, F, x, y: x * y),
        ("reshape", [s], [lambda a: a.reshape(-1)], lambda m, F, x: x.reshape(-1)),
        ("cat", [s, s], [lambda a, b: np.concatenate((a, b), 1)], lambda m, F, x, y: m.cat([x, y], 1)),
    ]


def _add_all(a):
    return _add(a, None)


def row(op, shapes, formulations, fn, rounds, batch_s):
    arrays = _inputs(shapes, seed=len(op))
    variants = {f"numpy {i}": (lambda f=f: f(*arrays)) for i, f in enumerate(formulations)}
    leaves = _leaves(tensor, arrays)
    variants["graph"] = lambda: _Nothing.apply(*leaves)
    variants["rg"] = lambda: fn(tensor, rF, *leaves)
    t_leaves = _leaves(torch, arrays)
    variants["torch"] = lambda: fn(torch, tF, *t_leaves)
    return Row(measure(variants, rounds, batch_s), median=False), len(formulations)


def _median_ratio(row, count, parts):
    """The median over rounds of (the sum of `parts` in a round) / torch's time in that round; "numpy" is
    the fastest formulation of that round. Like ops.py's ratios, it cancels most of the load from other
    jobs, which slows both sides of a round alike."""
    samples = row.samples

    def in_round(part, r):
        if part == "numpy":
            return min(samples[f"numpy {i}"][r] for i in range(count))
        return samples[part][r]

    rounds = range(len(samples["torch"]))
    return statistics.median(sum(in_round(p, r) for p in parts) / samples["torch"][r] for r in rounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--batch-ms", type=float, default=5.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args()
    if torch is None:
        sys.exit("floor.py compares with PyTorch: install torch (CPU build) first")
    torch.set_num_threads(1)
    print("| op | shape | torch | 2x torch | NumPy floor | graph floor | raygrad | NumPy / torch "
          "| floors / torch | raygrad / torch |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for n in args.sizes:
        for op, shapes, formulations, fn in cases(n):
            r, count = row(op, shapes, formulations, fn, args.rounds, args.batch_ms / 1e3)
            torch_us, graph_us, rg_us = r.us("torch"), r.us("graph"), r.us("rg")
            floor_us = min(r.us(f"numpy {i}") for i in range(count))
            ratios = [_median_ratio(r, count, parts) for parts in (["numpy"], ["numpy", "graph"], ["rg"])]
            print(f"| {op} | {n}x{n} | {torch_us:.1f} | {2 * torch_us:.1f} | {floor_us:.1f} | {graph_us:.1f} "
                  f"| {rg_us:.1f} | " + " | ".join(f"{x:.2f}" for x in ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
