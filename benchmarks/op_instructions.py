"""Instructions per call of ops.py's small ops, raygrad next to PyTorch, counted by valgrind.

    python benchmarks/op_instructions.py [--calls 2000] [--sizes 16 64] [--only add mul ...] [--no-torch]

A measure of per-op overhead that other jobs on the machine cannot blur: each library runs in one
process under callgrind (PYTHONHASHSEED=0, one BLAS/OpenMP thread), which counts the same number
of instructions on every run. The child process builds ops.py's small cases (forward with grad
tracking, its "fwd" column), warms each up, then runs each `--calls` times between two calls of
os.getppid(); callgrind dumps its counters before every getppid (--dump-before), so each dump
holds one op's calls. The same number of calls of an empty function is subtracted.

Instructions are not time: vector width, cache misses and memory stalls are invisible to them.
For small tensors, where an op's cost is the Python and dispatch around one short NumPy call,
their ratio follows the time ratio (a 16x16 mul: 2.2x torch's instructions, 2.0-2.1x its time in
ops.py); for heavier rows (sigmoid, gelu, softmax at 64x64) NumPy's inner loops weigh in and the
time ratio in ops.py is the one to read. Needs valgrind; takes about 10 minutes on 2 cores
(importing torch under valgrind alone takes a minute and a half).
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
_DETERMINISTIC = {"PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _ops():
    """benchmarks/ops.py (and the tensor package beside it), importable from a checkout."""
    for position, path in enumerate((HERE, HERE.parent)):
        if str(path) not in sys.path:
            sys.path.insert(position, str(path))
    import ops

    return ops


def _cases(sizes, only):
    """[(op, shape label, shapes, fn)] from ops.py, in its order, filtered by --only."""
    rows = []
    for n in sizes:
        for op, shapes, _, fn in _ops().small_cases(n):
            if not only or any(word in op for word in only):
                rows.append((op, f"{n}x{n}", shapes, fn))
    return rows


# ------------------------------------------------------------------------ child (under valgrind)


def run_child(library, sizes, only, calls):
    if library == "raygrad":
        sys.modules["torch"] = None  # ops.py then runs without torch: its import is not counted
    ops = _ops()

    if library == "torch":
        ops.torch.set_num_threads(1)
        module, functional = ops.torch, ops.tF
    else:
        module, functional = ops.tensor, ops.rF
    calls_of = []
    for op, _, shapes, fn in _cases(sizes, only):
        call = _bound(fn, module, functional, ops._leaves(module, ops._inputs(shapes, seed=len(op))))
        for _ in range(3):
            call()
        calls_of.append(call)
    # The loop and the two calls around each op (ours and ops.py's lambda), subtracted from every row.
    calls_of.append(_bound(lambda module, functional: None, module, functional, ()))
    for call in calls_of:
        os.getppid()  # callgrind dumps before this: the previous loop's count ends here
        for _ in range(calls):
            call()
    os.getppid()


def _bound(fn, module, functional, leaves):
    def call():
        return fn(module, functional, *leaves)

    return call


# --------------------------------------------------------------------------------------- parent


def count(library, sizes, only, calls):
    """Instructions per call for each case, in _cases order."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-before=os_getppid*",
            "--dump-instr=no", sys.executable, __file__, "--child", library, "--calls", str(calls),
            "--sizes", *map(str, sizes),
        ] + (["--only", *only] if only else [])
        done = subprocess.run(command, env=dict(os.environ, **_DETERMINISTIC), capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"op_instructions: the {library} run under valgrind failed:\n{done.stderr[-3000:]}")
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        totals = [int(re.search(r"^totals: (\d+)", p.read_text(), re.M).group(1)) for p in dumps]
    # Dump 1 is the set-up (imports, warm-up); then one per case; then the empty calls.
    per_case, empty = totals[1:-1], totals[-1]
    return [(total - empty) / calls for total in per_case]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--only", nargs="+", help="only the ops whose names contain one of these strings")
    parser.add_argument("--no-torch", action="store_true", help="count raygrad only")
    parser.add_argument("--child", choices=["raygrad", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args.child, args.sizes, args.only, args.calls)
    if shutil.which("valgrind") is None:
        sys.exit("op_instructions: needs valgrind on PATH (apt install valgrind); benchmarks/ops.py times the same ops")
    cases = _cases(args.sizes, args.only)
    with_torch = not args.no_torch and _ops().torch is not None  # ops.py imports torch when it can
    raygrad = count("raygrad", args.sizes, args.only, args.calls)
    torch = count("torch", args.sizes, args.only, args.calls) if with_torch else [None] * len(cases)
    print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; python {sys.version.split()[0]}")
    settings = ", ".join(f"{k}={v}" for k, v in _DETERMINISTIC.items())
    print(f"- callgrind, {args.calls} calls per op, forward with grad tracking (ops.py's fwd); {settings}"
          + ("" if with_torch else "; torch not counted (not installed, or --no-torch)"))
    print()
    print("| op | shape | raygrad instructions | torch instructions | raygrad / torch |")
    print("|---|---|--:|--:|--:|")
    for (op, shape, _, _), mine, theirs in zip(cases, raygrad, torch):
        ratio = f"{mine / theirs:.2f}" if theirs else "—"
        theirs = f"{theirs:,.0f}" if theirs else "—"
        print(f"| {op} | {shape} | {mine:,.0f} | {theirs} | {ratio} |")


if __name__ == "__main__":
    main()
