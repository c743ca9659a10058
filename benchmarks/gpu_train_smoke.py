"""A short training run through the real WorkerGroup on GPUs: Ray actors, NCCL, the CUDA loader.

    python benchmarks/gpu_train_smoke.py [--steps 80] [--workers N]
    python benchmarks/gpu_train_smoke.py --cpu --workers 2      # the same run on CPU actors (a dry run)

Starts a local Ray cluster with this machine's GPUs and a WorkerGroup of one rank per GPU
(use_gpu=True; --workers picks fewer). Each rank opens an NCCL communicator (world size 1 on a
one-GPU machine), builds the digits CNN on its GPU from rank 0's weights (a broadcast), reads its
shard of the shipped UCI digits through ShardedLoader(device='cuda') (the job's coordinator plans
the shards; batches travel through pinned memory), and trains with AdamW, averaging gradients
across ranks with one all-reduce per parameter. Rank 0 then measures test accuracy.

Prints one line per rank and a verdict; exits 0 only when every rank finished, no loss was NaN,
the loss fell and the accuracy beat chance by far (>= 0.8 after the default steps).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
EXAMPLE = ROOT / "examples" / "vision"
COLUMNS = {"image": {"dtype": "float32", "shape": (1, 8, 8)}, "label": "int64"}


def train_rank(coordinator, steps: int, lr: float, seed: int, example: str, use_gpu: bool = True) -> dict:
    """Runs on every rank; returns what it saw (losses at the start and end, accuracy on rank 0)."""
    sys.path.insert(0, example)  # the example's model.py, on the actor's side
    import numpy as np
    from model import DigitsCNN, scale_pixels

    import tensor
    import tensor.nn.functional as F
    from dist.comm import init_communicator
    from dist.data import Dataset, ShardedLoader
    from dist.env import get_context

    ctx = get_context()
    device = f"cuda:{ctx.device_index}" if use_gpu else "cpu"
    comm = init_communicator("nccl" if use_gpu else "cpu", timeout_s=120)
    tensor.manual_seed(seed)
    model = DigitsCNN().to(device)
    for p in model.parameters():
        comm.broadcast(p.data, src=0)  # every rank starts from rank 0's weights
    optimizer = tensor.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    train = Dataset(Path(example) / "data" / "digits_train.parquet", columns=COLUMNS, transform=scale_pixels)
    losses, start = [], time.perf_counter()
    with ShardedLoader(train, coordinator, ctx.rank, ctx.world_size, batch_size=32, device=device) as loader:
        while len(losses) < steps:
            for batch in loader:
                loss = F.cross_entropy(model(batch["image"]), batch["label"])
                optimizer.zero_grad()
                loss.backward()
                for p in model.parameters():
                    comm.allreduce(p.grad.data, op="mean")
                optimizer.step()
                losses.append(loss.item())
                if len(losses) == steps:
                    break
    seconds = time.perf_counter() - start
    result = {"rank": ctx.rank, "device": device, "backend": comm.backend, "world_size": ctx.world_size,
              "steps": len(losses), "first_loss": float(np.mean(losses[:5])), "last_loss": float(np.mean(losses[-5:])),
              "any_nan": bool(np.isnan(losses).any()), "seconds": seconds,
              "peak_mib": tensor.cuda.max_memory_allocated() / 2**20 if use_gpu else float("nan")}
    if ctx.rank == 0:
        result["accuracy"] = _accuracy(model, Path(example) / "data" / "digits_test.parquet", device)
    comm.close()
    return result


def _accuracy(model, path, device) -> float:
    from model import scale_pixels

    import tensor
    from dist.data import Dataset, ShardedLoader

    model.eval()
    correct = total = 0
    test = Dataset(path, columns=COLUMNS, transform=scale_pixels, name="test")
    with tensor.no_grad(), ShardedLoader(test, batch_size=64, shuffle=False, drop_last=False, device=device) as loader:
        for batch in loader:
            predicted = model(batch["image"]).argmax(dim=1).cpu().numpy()
            correct += int((predicted == batch["label"].cpu().numpy()).sum())
            total += len(predicted)
    return correct / max(total, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--workers", type=int, default=None, help="ranks (default: one per GPU)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=0.8)
    parser.add_argument("--cpu", action="store_true", help="CPU actors and the cpu communicator (a dry run)")
    args = parser.parse_args(argv)

    import ray

    from dist import WorkerGroup
    from tensor.backend import cuda_device_count

    gpus = 0 if args.cpu else cuda_device_count()
    if gpus < 1 and not args.cpu:
        print("gpu_train_smoke: no CUDA device visible (CuPy sees none); --cpu runs the same on CPU actors")
        return 2
    workers = args.workers or max(gpus, 1)
    ray.init(num_cpus=max(4, 2 * workers), num_gpus=gpus, include_dashboard=False, log_to_driver=True)
    try:
        print(f"ray: {ray.cluster_resources()}", flush=True)
        started = time.perf_counter()
        with WorkerGroup(workers, use_gpu=not args.cpu, name="gpu-train-smoke", placement_timeout_s=120) as group:
            results = group.execute(train_rank, group.coordinator, args.steps, args.lr, args.seed, str(EXAMPLE),
                                    not args.cpu)
        print(f"worker group done in {time.perf_counter() - started:.1f} s (actor start included)")
    finally:
        ray.shutdown()
    return verdict(results, args.min_accuracy)


def verdict(results, min_accuracy) -> int:
    for r in results:
        print(f"rank {r['rank']}/{r['world_size']} on {r['device']} ({r['backend']}): {r['steps']} steps in "
              f"{r['seconds']:.1f} s, loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}, peak {r['peak_mib']:.0f} MiB"
              + (f", test accuracy {r['accuracy']:.4f}" if "accuracy" in r else ""))
    problems = [f"rank {r['rank']}: NaN loss" for r in results if r["any_nan"]]
    problems += [f"rank {r['rank']}: loss did not fall" for r in results
                 if not (math.isfinite(r["last_loss"]) and r["last_loss"] < r["first_loss"])]
    accuracy = results[0].get("accuracy", 0.0)
    if accuracy < min_accuracy:
        problems.append(f"test accuracy {accuracy:.3f} < {min_accuracy}")
    print("gpu_train_smoke: " + ("ok" if not problems else "FAILED: " + "; ".join(problems)))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
