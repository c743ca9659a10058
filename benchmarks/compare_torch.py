"""Training-step time of raygrad next to PyTorch on four workloads, as one Markdown table.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compare_torch.py [--threads 1] [--quick]

Workloads (float32, Adam lr 1e-3, one fixed batch stepped on repeatedly; a step is zero_grad,
forward, loss, backward, optimizer step and loss.item()), with the ratio each must meet:
- mlp:         784-1024-1024-10 with ReLU, batch 256, cross-entropy              ratio <= 0.9
- cnn:         conv(1->16, 3x3, pad 1)-relu-maxpool 2-conv(16->32, 3x3, pad 1)-relu-maxpool 2-
               linear(1568->10), 28x28 input, batch 64, cross-entropy            ratio <= 1.3
- transformer: character LM, vocab 96, d_model 128, 4 heads, feed-forward 512, 2 pre-norm
               encoder layers (norm_first) with a causal mask, dropout 0, T=64, batch 32,
               cross-entropy over every token                                      ratio <= 1.3
- tiny_mlp:    64-128-10 with ReLU, batch 64, cross-entropy (Python overhead)    ratio <= 2.0

Method: each workload runs in a fresh process (so what one workload left in the C allocator does
not change the next). It is built in raygrad, and torch loads raygrad's state dict, so both start
from the same weights and see the same batch. After warm-up steps the two are measured in
alternating blocks of steps (the order flips each round), so a burst of load from other
processes hits both alike. Each block gives one per-step time on two clocks: wall time
(time.perf_counter) and this process's CPU time (time.process_time). The table reports the
median per framework and the ratio raygrad / torch (< 1: raygrad is faster).

Which clock the ratio uses: --clock auto (the default) takes CPU time when the 1-minute load
average says other processes compete for the cores (then wall time mostly measures waiting)
and wall time otherwise; the header says which. CPU time counts every thread of the process,
so with --threads > 1 it measures total work rather than latency.

Threads: both run on --threads N (default 1): torch.set_num_threads(N) and NumPy's BLAS
limited to N through threadpoolctl (`pip install threadpoolctl`; a benchmark-only dependency).

OpenBLAS: on this machine's processor OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set in the
environment; OpenBLAS reads them when NumPy loads, and with a current NumPy they select a slower
kernel. Unset both for the benchmark command alone (the `env -u` above); the header prints the
BLAS kernel threadpoolctl reports and warns when either variable is set.

Allocator: --allocator training (the default) runs each workload's process under the C allocator
policy raygrad's training processes use (tensor.host_memory.keep_freed_memory: glibc keeps freed
memory for the next step instead of returning it to the OS); it applies to both frameworks alike,
as they share the process. --allocator default leaves glibc's own adaptive policy.

Page faults: the last column is each framework's minor page faults per step (median). Many of them
mean the C allocator returned freed memory to the OS at the end of a step (glibc trims the top of
its heap) and each step pays again for fresh zeroed pages: time that counts in both clocks. Under
--allocator default the CNN pays this on every step (benchmarks/README.md).

Sanity: both frameworks take the same steps from the same weights, so their losses should
agree closely (float32 rounding apart) and decrease; one line per workload says so.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tensor  # noqa: E402
import tensor.nn as rnn  # noqa: E402
import tensor.nn.functional as rF  # noqa: E402
from tensor.host_memory import keep_freed_memory  # noqa: E402

try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF
except ImportError:  # pragma: no cover - the comparison needs torch
    torch = None

try:
    import resource
except ImportError:  # not on Windows
    resource = None

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None

TARGETS = {"mlp": 0.9, "cnn": 1.3, "transformer": 1.3, "tiny_mlp": 2.0}
LR = 1e-3


# ------------------------------------------------------------------------------------ workloads
#
# Each builder returns (raygrad model, torch model, raygrad batch, torch batch, loss functions).
# The torch model is built with the same layer names, so raygrad's state dict loads into it.


def _mlp_models(sizes):
    def layers(nn):
        mods = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        return nn.Sequential(*mods)

    return layers(rnn), layers(tnn)


def _classification_batch(shape, classes, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, classes, size=shape[0])
    return (x, y)


def build_mlp(rng):
    models = _mlp_models([784, 1024, 1024, 10])
    return models, _classification_batch((256, 784), 10, rng), _logits_loss


def build_tiny_mlp(rng):
    models = _mlp_models([64, 128, 10])
    return models, _classification_batch((64, 64), 10, rng), _logits_loss


def build_cnn(rng):
    def cnn(nn):
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
        )

    return (cnn(rnn), cnn(tnn)), _classification_batch((64, 1, 28, 28), 10, rng), _logits_loss


VOCAB, D_MODEL, HEADS, FF, LAYERS, SEQ, LM_BATCH = 96, 128, 4, 512, 2, 64, 32


def _language_model(nn, mask):
    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, D_MODEL)
            layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, dim_feedforward=FF, dropout=0.0, batch_first=True,
                                               norm_first=True)
            extra = {"enable_nested_tensor": False} if nn is tnn else {}  # torch warns otherwise (norm_first)
            self.encoder = nn.TransformerEncoder(layer, LAYERS, **extra)
            self.head = nn.Linear(D_MODEL, VOCAB)

        def forward(self, tokens):
            return self.head(self.encoder(self.embed(tokens), mask=mask, is_causal=True))

    return CharLM()


def build_transformer(rng):
    models = (_language_model(rnn, _causal_mask(tensor)), _language_model(tnn, _causal_mask(torch)))
    tokens = rng.integers(0, VOCAB, size=(LM_BATCH, SEQ + 1))
    return models, (tokens[:, :-1], tokens[:, 1:]), _token_loss


def _causal_mask(lib):
    return lib.full((SEQ, SEQ), float("-inf")).triu(diagonal=1)


def _logits_loss(F, logits, y):
    return F.cross_entropy(logits, y)


def _token_loss(F, logits, y):
    return F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))


BUILDERS = {"mlp": build_mlp, "cnn": build_cnn, "transformer": build_transformer, "tiny_mlp": build_tiny_mlp}


# ------------------------------------------------------------------------------------ one workload


class Runner:
    """One framework's model, optimizer, batch and step function; remembers every loss."""

    def __init__(self, lib, F, model, batch, loss_fn):
        self.model, self.F, self.loss_fn = model, F, loss_fn
        self.x, self.y = batch
        self.opt = lib.optim.Adam(model.parameters(), lr=LR)
        self.losses = []

    def step(self):
        self.opt.zero_grad()
        loss = self.loss_fn(self.F, self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        self.losses.append(loss.item())

    def block(self, steps):
        """Run `steps` steps; -> (wall seconds, CPU seconds, minor page faults), each per step."""
        gc.collect()  # collect the previous block's garbage outside the timed region, for both alike
        faults, wall, cpu = _minor_faults(), time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.step()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall / steps, cpu / steps, (_minor_faults() - faults) / steps


def _minor_faults():
    """This process's minor page faults so far: each is a fresh page the kernel zero-fills, the cost of
    memory that the allocator handed back to the OS and takes again (0 where resource is unavailable)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


def make_runners(name, seed):
    rng = np.random.default_rng(seed)
    tensor.manual_seed(seed)
    (rg_model, torch_model), (x, y), loss_fn = BUILDERS[name](rng)
    state = {k: torch.from_numpy(np.array(v.detach().numpy(), copy=True)) for k, v in rg_model.state_dict().items()}
    torch_model.load_state_dict(state, strict=True)
    rg = Runner(tensor, rF, rg_model, (tensor.from_numpy(x), tensor.from_numpy(y.astype(np.int64))), loss_fn)
    pt = Runner(torch, tF, torch_model, (torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))), loss_fn)
    return rg, pt


def measure(name, warmup, rounds, block, seed):
    """-> dict of median per-step seconds (rg_wall, rg_cpu, pt_wall, pt_cpu) and the two runners."""
    rg, pt = make_runners(name, seed)
    for _ in range(warmup):
        rg.step()
        pt.step()
    times = {"rg": [], "pt": []}
    for r in range(rounds):
        order = (("rg", rg), ("pt", pt)) if r % 2 == 0 else (("pt", pt), ("rg", rg))
        for key, runner in order:
            times[key].append(runner.block(block))
    result = {}
    for key in ("rg", "pt"):
        walls, cpus, faults = zip(*times[key])
        result[f"{key}_wall"], result[f"{key}_cpu"] = statistics.median(walls), statistics.median(cpus)
        result[f"{key}_faults"] = statistics.median(faults)
    return result, rg, pt


def sanity(name, rg, pt):
    """One line: do the two loss curves agree and fall?"""
    a, b = np.array(rg.losses), np.array(pt.losses)
    # Relative to the starting loss: once a loss nears 0 its own relative rounding noise is meaningless.
    gap = float(np.max(np.abs(a - b)) / abs(b[0]))
    falls = a[-1] < a[0] and b[-1] < b[0]
    ok = falls and gap < 1e-2
    return (f"{name:<12} loss raygrad {a[0]:.4f} -> {a[-1]:.4f}, torch {b[0]:.4f} -> {b[-1]:.4f} over {len(a)} "
            f"steps; largest gap {gap:.1e} of the first loss: {'ok' if ok else 'CHECK'}")


# ------------------------------------------------------------------------------------ report


def blas_description():
    if threadpool_info is None:
        return "threadpoolctl not installed: NumPy's BLAS threads are not limited (pip install threadpoolctl)"
    parts = []
    for pool in threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", "") + pool.get("prefix", ""):
            parts.append(f"{pool['internal_api']} {pool.get('version')} ({pool.get('architecture')} kernel, "
                         f"{pool.get('num_threads')} threads)")
    if not parts:  # the library path did not say numpy: list every BLAS
        parts = [f"{p['internal_api']} {p.get('version')} ({p.get('architecture')}) at {p.get('filepath')}"
                 for p in threadpool_info() if p.get("user_api") == "blas"]
    return "; ".join(parts) or "none found"


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def choose_clock(requested):
    if requested != "auto":
        return requested, ""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores - 0.5:  # more runnable work than this benchmark's own: wall time would time the queue
        return "cpu", f"machine loaded: 1-min load average {load:.1f} on {cores} cores"
    return "wall", f"machine idle enough: 1-min load average {load:.1f} on {cores} cores"


def fmt_ms(seconds):
    return f"{seconds * 1e3:.2f}"


def run_workload(name, args):
    """Measure one workload in this process; -> a JSON-able dict (medians, block size, sanity line)."""
    rounds = args.rounds or (3 if args.quick else 9)
    block_seconds = args.block_seconds or (0.1 if args.quick else 0.5)
    warmup = 2 if args.quick else 5
    # Size the blocks from one timed step of each, so a block lasts about block_seconds.
    rg, pt = make_runners(name, args.seed)
    rg.step(), pt.step()
    probe = max(rg.block(1)[1], pt.block(1)[1])  # CPU time: under load wall time would shrink the blocks
    steps = max(1, int(block_seconds / max(probe, 1e-6)))
    del rg, pt
    result, rg, pt = measure(name, warmup, rounds, steps, args.seed)
    return {"steps": steps, "rounds": rounds, "block_seconds": block_seconds, "sanity": sanity(name, rg, pt),
            **result}


def run_in_subprocess(name, args):
    """run_workload in a fresh interpreter: the C allocator's state (how much freed memory it keeps,
    which grows with the largest block it has seen) then depends on this workload alone, as in a
    process that trains only this model, and not on the workloads measured before it."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--threads", str(args.threads),
               "--seed", str(args.seed), "--allocator", args.allocator]
    for flag, value in (("--rounds", args.rounds), ("--block-seconds", args.block_seconds)):
        if value is not None:
            command += [flag, str(value)]
    if args.quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"compare_torch.py: workload {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def limit_threads(threads):
    torch.set_num_threads(threads)
    if threadpool_limits is not None:
        threadpool_limits(limits=threads, user_api="blas")  # process-wide; the returned handle is not needed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="threads for both frameworks (default 1)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (few steps, noisy numbers)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds per workload (default 9)")
    parser.add_argument("--block-seconds", type=float, default=None,
                        help="about how long one block of steps runs (default 0.5)")
    parser.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                        help="clock the ratio uses (default: CPU time when the machine is loaded, else wall)")
    parser.add_argument("--only", nargs="+", choices=list(BUILDERS), default=list(BUILDERS),
                        help="workloads to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allocator", choices=("training", "default"), default="training",
                        help="C allocator policy: raygrad's for training processes (default) or glibc's own")
    parser.add_argument("--worker", choices=list(BUILDERS), help=argparse.SUPPRESS)  # one workload, JSON out
    args = parser.parse_args(argv)
    if torch is None:
        sys.exit("compare_torch.py needs PyTorch installed (pip install torch)")
    limit_threads(args.threads)
    if args.worker:
        if args.allocator == "training" and not keep_freed_memory():
            print("compare_torch.py: the training allocator policy is not in effect here (not glibc, or "
                  "MALLOC_*_THRESHOLD_ / RAYGRAD_KEEP_FREED_MEMORY=0 set)", file=sys.stderr)
        print(json.dumps(run_workload(args.worker, args)))
        return

    clock, why = choose_clock(args.clock)
    print(f"# raygrad vs PyTorch, one training step ({datetime.datetime.now().isoformat(timespec='seconds')})")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; python {platform.python_version()}, numpy "
          f"{np.__version__}, torch {torch.__version__}; threads {args.threads} (torch.set_num_threads, "
          f"threadpoolctl for NumPy's BLAS); C allocator: {args.allocator}")
    print(f"NumPy BLAS: {blas_description()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"WARNING: {var}={os.environ[var]} is set; it can select a slower OpenBLAS kernel: rerun with "
                  f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
    results = {name: run_in_subprocess(name, args) for name in args.only}
    first = next(iter(results.values()))
    print(f"ratio = raygrad / torch on {'CPU time (time.process_time)' if clock == 'cpu' else 'wall time'}"
          f"{' (' + why + ')' if why else ''}; medians of {first['rounds']} alternating blocks of "
          f"~{first['block_seconds']:g} s each, every workload in a fresh process")
    print()
    other = "wall" if clock == "cpu" else "cpu"
    print(f"| workload | steps/block | raygrad ms ({clock}) | torch ms ({clock}) | ratio ({clock}) | target | met | "
          f"raygrad ms ({other}) | torch ms ({other}) | ratio ({other}) | page faults/step raygrad / torch |")
    print("|---|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|")
    for name, r in results.items():
        ratio, other_ratio = r[f"rg_{clock}"] / r[f"pt_{clock}"], r[f"rg_{other}"] / r[f"pt_{other}"]
        target = TARGETS[name]
        print(f"| {name} | {r['steps']} | {fmt_ms(r[f'rg_{clock}'])} | {fmt_ms(r[f'pt_{clock}'])} | {ratio:.2f} | "
              f"<= {target} | {'yes' if ratio <= target else 'NO'} | {fmt_ms(r[f'rg_{other}'])} | "
              f"{fmt_ms(r[f'pt_{other}'])} | {other_ratio:.2f} | {r['rg_faults']:.0f} / {r['pt_faults']:.0f} |")
    print()
    print("sanity (same weights, same batch, same steps):")
    for r in results.values():
        print("  " + r["sanity"])


if __name__ == "__main__":
    main()
