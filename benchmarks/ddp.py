"""DDP overhead: 2-worker training step time with gradient all-reduce against the same workers without it.

    python benchmarks/ddp.py [--workers 2] [--batch-size 256] [--steps 10] [--rounds 5] [--bucket-cap-mb 25 1]
                             [--float16]

The MLP 784-1024-1024-10 (float32, 1.86M parameters, 7.4 MB of gradients), --batch-size rows per
worker, Adam, cross-entropy on fixed random data, on a WorkerGroup of --workers CPU actors (one BLAS
thread each) with the CPU communicator. In one run each worker alternates, --rounds times, --steps
steps of each mode (a step is zero_grad + forward + backward + Adam step):
- no comm: a DDP model with every step inside ``no_sync()`` (hooks return at once, no collective);
- no comm + 1 barrier: the same, then one barrier per step: what the ranks lose by waiting for each
  other alone (their step times jitter independently), with no bytes moved;
- ddp: full DDP steps (gradients averaged over the workers), per --bucket-cap-mb value, and with
  --float16, also with float16 gradient compression at the first cap (it pays on GPUs; NumPy's
  float16 conversions are slow enough to cost more than the halved traffic saves on CPUs).
The table gives, per mode, the median over the rounds of the slowest worker's mean step time (the
others wait for it) and the overhead against no comm; the target is at most 15%. Beside it, the CPU
time per step (all of a worker's threads, mean of the workers), which other processes on a busy
machine do not inflate: it counts the work DDP adds (copies, reductions, waiting spins).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import ray

from dist import WorkerGroup

BASELINE = "no comm (no_sync)"


def build(batch_size: int, seed: int, **ddp_options):
    """A DDP-wrapped MLP with Adam on fixed random data; returns (ddp, step) where step() trains once."""
    import tensor
    import tensor.nn.functional as F
    from dist import DistributedDataParallel
    from tensor import nn

    tensor.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    ddp = DistributedDataParallel(model, **ddp_options)
    opt = tensor.optim.Adam(ddp.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    x = tensor.tensor(rng.standard_normal((batch_size, 784), dtype=np.float32))
    y = tensor.tensor(rng.integers(0, 10, batch_size))

    def step():
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opt.step()

    return ddp, step


def make_modes(batch_size: int, caps: list[float], float16: bool) -> dict:
    """Mode name -> a function running one training step in that mode."""
    import tensor
    from dist.comm import get_communicator
    from dist.env import get_context

    seed = get_context().rank
    base, base_step = build(batch_size, seed)

    def no_comm():
        with base.no_sync():
            base_step()

    def barrier_only():
        no_comm()
        get_communicator().barrier()

    modes = {BASELINE: no_comm, "no comm + 1 barrier": barrier_only}
    for cap in caps:
        modes[f"ddp, {cap:g} MB buckets"] = build(batch_size, seed, bucket_cap_mb=cap)[1]
    if float16:
        modes[f"ddp, {caps[0]:g} MB, float16 grads"] = build(batch_size, seed, bucket_cap_mb=caps[0],
                                                             grad_dtype=tensor.float16)[1]
    return modes


def time_steps(step, steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process's threads) per step, mean over ``steps`` steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def run_rank(batch_size: int, caps: list[float], float16: bool, steps: int, rounds: int) -> dict[str, list]:
    """On every rank: per mode, one (wall, CPU) step time per round (modes interleaved within each round)."""
    from dist.comm import init_communicator

    init_communicator("cpu", timeout_s=120)
    modes = make_modes(batch_size, caps, float16)
    for step in modes.values():  # warm up: first-touch allocations, BLAS start
        time_steps(step, 2)
    times: dict[str, list] = {name: [] for name in modes}
    for _ in range(rounds):
        for name, step in modes.items():
            times[name].append(time_steps(step, steps))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bucket-cap-mb", type=float, nargs="+", default=[25.0, 1.0])
    parser.add_argument("--float16", action="store_true", help="also time float16 gradient compression")
    args = parser.parse_args()

    # address="local": a cluster of our own, even where another process started one with `ray start`.
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    try:
        with WorkerGroup(args.workers, cpus_per_worker=1, name="bench-ddp") as group:
            per_rank = group.execute(run_rank, args.batch_size, args.bucket_cap_mb, args.float16, args.steps,
                                     args.rounds)
    finally:
        ray.shutdown()
    print_table(per_rank, args)


def print_table(per_rank: list[dict[str, list]], args) -> None:
    # Wall: each round's step time is the slowest rank's (the others wait for it in the all-reduce).
    # CPU: the ranks' mean, which preemption by other processes does not inflate.
    rounds = range(args.rounds)
    wall = {name: statistics.median(max(rank[name][i][0] for rank in per_rank) for i in rounds) for name in per_rank[0]}
    cpu = {name: statistics.median(statistics.mean(rank[name][i][1] for rank in per_rank) for i in rounds)
           for name in per_rank[0]}
    print(f"MLP 784-1024-1024-10, Adam, batch {args.batch_size} per worker, {args.workers} CPU workers "
          f"(1 BLAS thread each), median of {args.rounds} rounds x {args.steps} steps; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"| {'mode':<30} | {'step ms':>8} | {'overhead':>8} | {'CPU ms':>8} | {'CPU overhead':>12} |")
    print(f"|{'-' * 32}|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|{'-' * 13}:|")
    for name in wall:
        extra_wall = "" if name == BASELINE else f"{100 * (wall[name] / wall[BASELINE] - 1):+.1f}%"
        extra_cpu = "" if name == BASELINE else f"{100 * (cpu[name] / cpu[BASELINE] - 1):+.1f}%"
        print(f"| {name:<30} | {1000 * wall[name]:>8.1f} | {extra_wall:>8} | {1000 * cpu[name]:>8.1f} | "
              f"{extra_cpu:>12} |")


if __name__ == "__main__":
    main()
