"""All-reduce bandwidth of raygrad's CPU communicator, beside torch.distributed's gloo.

    python benchmarks/allreduce.py [--sizes-mb 4 32 128] [--iters 10] [--rounds 3] [--workers 2] [--no-gloo]

raygrad: N Ray actors of one WorkerGroup, all-reducing a float32 array through shared memory.
gloo:    N processes (torch.multiprocessing), torch.distributed.all_reduce on a CPU tensor; only where
         torch is installed.
Each rank times every iteration between barriers. raygrad and gloo take turns (size by size, round by
round) so that load from other processes hits both alike; the table shows medians of rank 0's times.
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


def raygrad_rank(size_mb: int, iters: int, warmup: int, max_buffer_mb: int) -> float:
    """Runs on every rank: median seconds per all-reduce of ``size_mb`` MB."""
    from dist.comm import get_communicator, init_communicator

    try:
        comm = get_communicator("bench")
    except LookupError:
        comm = init_communicator("cpu", name="bench", max_buffer_bytes=max_buffer_mb * MB)
    x = np.ones(size_mb * MB // 4, dtype=np.float32)
    comm.allreduce(x)
    if not (x == comm.world_size).all():
        raise AssertionError(f"allreduce of {size_mb} MB gave a wrong result")
    return _median_time(lambda: comm.allreduce(x), comm.barrier, iters, warmup)


def _gloo_rank(rank, workers, port, commands, results):
    """One gloo process: measures each (size_mb, iters, warmup) it is sent, until it gets None."""
    import torch
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=workers)
    for size_mb, iters, warmup in iter(commands.get, None):
        x = torch.ones(size_mb * MB // 4, dtype=torch.float32)
        seconds = _median_time(lambda: tdist.all_reduce(x), tdist.barrier, iters, warmup)
        if rank == 0:
            results.put(seconds)
    tdist.destroy_process_group()


class Gloo:
    """``workers`` torch.distributed gloo processes that measure on request, or None without torch."""

    @classmethod
    def start(cls, workers: int) -> Gloo | None:
        try:
            import torch.multiprocessing as mp
        except ImportError:
            return None
        return cls(mp.get_context("spawn"), workers)

    def __init__(self, ctx, workers: int):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._commands = [ctx.Queue() for _ in range(workers)]
        self._results = ctx.Queue()
        self._procs = [ctx.Process(target=_gloo_rank, args=(r, workers, port, self._commands[r], self._results))
                       for r in range(workers)]
        for p in self._procs:
            p.start()

    def measure(self, size_mb: int, iters: int, warmup: int) -> float:
        for queue in self._commands:
            queue.put((size_mb, iters, warmup))
        return self._results.get(timeout=600)

    def close(self) -> None:
        for queue in self._commands:
            queue.put(None)
        for p in self._procs:
            p.join(60)


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


def measure(args) -> tuple[dict[int, float], dict[int, float] | None]:
    """Alternate raygrad and gloo, size by size and round by round, so that load changes on a shared
    machine hit both alike; returns {size: median seconds} for each (gloo None without torch)."""
    import ray

    from dist import WorkerGroup

    ours = {size: [] for size in args.sizes_mb}
    theirs = {size: [] for size in args.sizes_mb}
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    gloo = None if args.no_gloo else Gloo.start(args.workers)
    try:
        with WorkerGroup(args.workers, name="bench-allreduce") as group:
            for _ in range(args.rounds):
                for size in args.sizes_mb:
                    ours[size].append(group.execute(raygrad_rank, size, args.iters, args.warmup,
                                                    args.max_buffer_mb)[0])
                    if gloo is not None:
                        theirs[size].append(gloo.measure(size, args.iters, args.warmup))
    finally:
        if gloo is not None:
            gloo.close()
        ray.shutdown()
    median = {size: statistics.median(times) for size, times in ours.items()}
    return median, ({size: statistics.median(t) for size, t in theirs.items()} if gloo is not None else None)


def print_table(sizes_mb, workers, ours, gloo) -> None:
    bus = 2 * (workers - 1) / workers
    print(f"all-reduce, float32, {workers} workers, {os.cpu_count()} CPUs; medians over rounds of iterations")
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
    parser.add_argument("--iters", type=int, default=10, help="timed all-reduces per size and round")
    parser.add_argument("--rounds", type=int, default=3, help="raygrad and gloo take turns this many times")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-buffer-mb", type=int, default=4, help="the CPU communicator's bank size")
    parser.add_argument("--no-gloo", action="store_true")
    args = parser.parse_args()
    ours, gloo = measure(args)
    print_table(args.sizes_mb, args.workers, ours, gloo)


if __name__ == "__main__":
    main()
