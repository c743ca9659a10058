"""Where a training step's time goes on the GPU, raygrad next to PyTorch eager (gpu_compare's workloads).

    python benchmarks/gpu_profile.py [--only cnn transformer] [--steps 10] [--top 15]

For each workload and framework: wall time per step (host clock between synchronisations), host
time to enqueue a step (the same steps, timed before the final synchronisation: when it nears the
wall time the step is bound by Python and launch overhead, not by the GPU), kernels launched per
step, GPU kernel time per step, and the kernels that take the most GPU time. The kernel records
come from torch.profiler, whose CUPTI tracing sees every kernel of the process, CuPy's included.
Prints a table per workload, then a summary table last. Needs a CUDA machine with CUDA torch.
"""
from __future__ import annotations

import argparse
import collections
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_compare as gc_bench  # noqa: E402 - the workloads and runners, shared
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402


def host_and_wall(runner, steps):
    """-> (host seconds to enqueue a step, wall seconds per step)."""
    gc.collect()
    runner.fw.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        runner.step()
    enqueued = time.perf_counter()
    runner.fw.synchronize()
    done = time.perf_counter()
    runner.pending.clear()
    return (enqueued - start) / steps, (done - start) / steps


def kernels(runner, steps):
    """-> {kernel name: (count, total GPU µs)} over `steps` steps, from CUPTI."""
    runner.fw.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            runner.step()
        runner.fw.synchronize()
    runner.pending.clear()
    totals = collections.defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:  # kernels, memcpys and memsets
            entry = totals[event.name]
            entry[0] += 1
            entry[1] += event.device_time_total
    return totals


def python_profile(runner, steps, top):
    """Print where the host's time goes in raygrad's step (cProfile, sorted by own time)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        runner.step()
    runner.fw.synchronize()
    profiler.disable()
    runner.pending.clear()
    print(f"\n## host profile of {steps} raygrad steps (own time)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def profile_workload(name, sizes, args):
    rg, pt, label = gc_bench.make_runners(name, sizes, "cuda", args.seed)
    rows = []
    for runner in (rg, pt):
        for _ in range(3):  # warm-up: CuPy compiles its kernels on first use
            runner.step()
        host_s, wall_s = host_and_wall(runner, args.steps)
        try:
            totals = kernels(runner, args.steps)
        except Exception as exc:  # the timings above still stand
            print(f"\n{name}, {runner.fw.name}: torch.profiler failed: {exc!r}")
            totals = {}
        if args.python and runner is rg:
            python_profile(runner, args.steps, args.top)
        launches = sum(c for c, _ in totals.values()) / args.steps
        gpu_us = sum(t for _, t in totals.values()) / args.steps
        rows.append((runner.fw.name, wall_s * 1e3, host_s * 1e3, launches, gpu_us / 1e3))
        print(f"\n## {name} ({label}), {runner.fw.name}: top kernels by GPU time per step")
        print("| kernel | launches/step | GPU ms/step | share |")
        print("|---|---:|---:|---:|")
        ranked = sorted(totals.items(), key=lambda kv: -kv[1][1])[:args.top]
        for kernel, (count, total) in ranked:
            print(f"| {kernel[:90]} | {count / args.steps:.1f} | {total / args.steps / 1e3:.3f} | "
                  f"{total / max(gpu_us * args.steps, 1e-9):.0%} |")
    del rg, pt
    gc.collect()
    torch.cuda.empty_cache()
    return name, label, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(gc_bench.BUILDERS), default=["cnn", "transformer", "mlp"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--python", action="store_true", help="also cProfile raygrad's host side")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gpu_profile.py needs a CUDA machine with CUDA torch")
    summary = [profile_workload(name, gc_bench.FULL[name], args) for name in args.only]
    print("\n| workload | framework | wall ms/step | host ms/step | kernels/step | GPU kernel ms/step |")
    print("|---|---|---:|---:|---:|---:|")
    for name, label, rows in summary:
        for fw, wall, host, launches, gpu in rows:
            print(f"| {name} {label} | {fw} | {wall:.3f} | {host:.3f} | {launches:.0f} | {gpu:.3f} |")


if __name__ == "__main__":
    main()
