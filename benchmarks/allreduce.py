"""All-reduce bandwidth of raygrad's CPU communicator, beside torch.distributed's gloo.

    python benchmarks/allreduce.py [--sizes-mb 4 32 128] [--iters 20] [--workers 2] [--no-gloo]

raygrad: N Ray actors of one WorkerGroup, all-reducing a float32 array through shared memory.
gloo:    N processes (torch.multiprocessing), torch.distributed.all_reduce on a CPU tensor; only where
         torch is installed.
Each rank times every iteration between barriers; the table shows the median of rank 0's times.
Algorithm bandwidth = bytes / time; bus bandwidth = 2 (n - 1) / n * algorithm bandwidth (what each
rank moves in a ring all-reduce, comparable across world sizes, as in nccl-tests).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

import numpy as np

MB = 2**20


def time_raygrad_allreduce(sizes_mb: list[int], iters: int, warmup: int, max_buffer_mb: int) -> dict[int, float]:
    """Runs on every rank: {size in MB: median seconds per all-reduce}."""
    from dist.comm import init_communicator

    comm = init_communicator("cpu", name="bench", max_buffer_bytes=max_buffer_mb * MB)
    medians = {}
    for size in sizes_mb:
        x = np.ones(size * MB // 4, dtype=np.float32)
        comm.allreduce(x)
        if not (x == comm.world_size).all():
            raise AssertionError(f"allreduce of {size} MB gave a wrong result")
        medians[size] = _median_time(lambda: comm.allreduce(x), comm.barrier, iters, warmup)
    comm.close()
    return medians


def run_raygrad(sizes_mb, iters, warmup, workers, max_buffer_mb) -> dict[int, float]:
    import ray

    from dist import WorkerGroup

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        with WorkerGroup(workers, name="bench-allreduce") as group:
            return group.execute(time_raygrad_allreduce, sizes_mb, iters, warmup, max_buffer_mb)[0]
    finally:
        ray.shutdown()


def _gloo_rank(rank, workers, port, sizes_mb, iters, warmup, queue):
    import torch
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=workers)
    medians = {}
    for size in sizes_mb:
        x = torch.ones(size * MB // 4, dtype=torch.float32)
        medians[size] = _median_time(lambda: tdist.all_reduce(x), tdist.barrier, iters, warmup)
    if rank == 0:
        queue.put(medians)
    tdist.destroy_process_group()


def run_gloo(sizes_mb, iters, warmup, workers) -> dict[int, float] | None:
    try:
        import torch.multiprocessing as mp
    except ImportError:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_gloo_rank, args=(r, workers, port, sizes_mb, iters, warmup, queue))
             for r in range(workers)]
    for p in procs:
        p.start()
    result = queue.get(timeout=600)
    for p in procs:
        p.join(60)
    return result


def _median_time(op, barrier, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        op()
    times = []
    for _ in range(iters):
        barrier()
        start = time.perf_counter()
        op()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_table(sizes_mb, workers, ours, gloo) -> None:
    bus = 2 * (workers - 1) / workers
    print(f"all-reduce, float32, {workers} workers, {os.cpu_count()} CPUs; median of each size's iterations")
    header = f"{'size':>7} | {'raygrad ms':>10} {'algbw GB/s':>10} {'busbw GB/s':>10}"
    if gloo:
        header += f" | {'gloo ms':>8} {'algbw GB/s':>10} {'busbw GB/s':>10} | {'speedup':>7}"
    print(header)
    print("-" * len(header))
    for size in sizes_mb:
        algbw = size * MB / ours[size] / 1e9
        row = f"{size:>4} MB | {ours[size] * 1e3:>10.2f} {algbw:>10.2f} {algbw * bus:>10.2f}"
        if gloo:
            gloo_algbw = size * MB / gloo[size] / 1e9
            row += f" | {gloo[size] * 1e3:>8.2f} {gloo_algbw:>10.2f} {gloo_algbw * bus:>10.2f} | {gloo[size] / ours[size]:>6.2f}x"
        print(row)
    if not gloo:
        print("(torch is not installed, or --no-gloo: no gloo comparison)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[4, 32, 128])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-buffer-mb", type=int, default=4, help="the CPU communicator's bank size")
    parser.add_argument("--no-gloo", action="store_true")
    args = parser.parse_args()
    ours = run_raygrad(args.sizes_mb, args.iters, args.warmup, args.workers, args.max_buffer_mb)
    gloo = None if args.no_gloo else run_gloo(args.sizes_mb, args.iters, args.warmup, args.workers)
    print_table(args.sizes_mb, args.workers, ours, gloo)


if __name__ == "__main__":
    main()
