"""raygrad on CUDA next to PyTorch eager on CUDA: training-step time, matmul TFLOP/s, peak memory.

    python benchmarks/gpu_compare.py [--out results.md] [--only mlp cnn ...] [--no-matmul]
    python benchmarks/gpu_compare.py --device cpu --quick      # a smoke test without a GPU

Workloads (float32, Adam lr 1e-3, one fixed batch stepped on repeatedly; a step is zero_grad,
forward, cross-entropy, backward and the optimizer step), at GPU scale, with the ratio
raygrad / torch each must meet:
- mlp:         784-1024-1024-10 with ReLU, batch 4096                                   <= 1.3
- cnn:         conv(1->16, 3x3, pad 1)-relu-maxpool 2-conv(16->32, 3x3, pad 1)-relu-maxpool 2-
               linear(1568->10), 28x28 input, batch 512                                  <= 1.5
- transformer: character LM, vocab 96, d_model 512, 8 heads, feed-forward 2048, 6 pre-norm
               encoder layers with a causal mask, dropout 0, T=256, batch 32              <= 1.3
- tiny_mlp:    64-128-10 with ReLU, batch 64 (launch and Python overhead; no target)
and a 4096 x 4096 x 4096 matrix product in float32 and float16 (raygrad's `a @ b` against
torch.matmul), in TFLOP/s. --quick shrinks every size for a smoke run.

Method: torch loads raygrad's initial state dict, so both start from the same weights and see the
same batch. After warm-up (which includes CuPy's first-use kernel compiles) the two run in
alternating blocks of steps, the order flipping each round; a block is timed on the host clock
between two device synchronisations (cupy's Device.synchronize, torch.cuda.synchronize), and no
step waits for the device inside a block (losses are read after it), so the host can run ahead as
in real training. The table gives each framework's median per-step time and the ratio.

Memory: after timing, one more step of each framework with its peak counter reset: raygrad's
exact peak of CuPy's pool (tensor.cuda.track_peak_memory) and torch.cuda.max_memory_allocated,
both counting everything live (weights, optimizer state, batch, activations).

Sanity: both take the same steps from the same weights, so their losses should agree closely over
the first 20 steps (later, float32 rounding differences grown by training make them drift) and
fall; one line per workload says so. Prints ONE table (Markdown), and with --out writes it to that
file and the numbers as JSON beside it (same name, .json).
"""
from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tensor
import tensor.nn as rnn
import tensor.nn.functional as rF

try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF
except ImportError:  # pragma: no cover - the comparison needs torch
    torch = None

TARGETS = {"mlp": 1.3, "cnn": 1.5, "transformer": 1.3, "tiny_mlp": None}
LR = 1e-3
MIB = 2**20

# Sizes: the GPU scale, and a quick variant small enough for a CPU smoke run.
FULL = {
    "mlp": {"sizes": (784, 1024, 1024, 10), "batch": 4096},
    "cnn": {"batch": 512},
    "transformer": {"vocab": 96, "d_model": 512, "heads": 8, "ff": 2048, "layers": 6, "seq": 256, "batch": 32},
    "tiny_mlp": {"sizes": (64, 128, 10), "batch": 64},
    "matmul": {"n": 4096},
}
QUICK = {
    "mlp": {"sizes": (784, 128, 128, 10), "batch": 64},
    "cnn": {"batch": 16},
    "transformer": {"vocab": 96, "d_model": 64, "heads": 4, "ff": 128, "layers": 2, "seq": 32, "batch": 4},
    "tiny_mlp": {"sizes": (64, 128, 10), "batch": 64},
    "matmul": {"n": 256},
}


# ------------------------------------------------------------------------------------ workloads
#
# Each builder returns ((raygrad model, torch model), (x, y) as NumPy, loss function, description).
# Both models use the same layer names, so raygrad's state dict loads into torch's.


def _mlp(nn, sizes):
    mods = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        mods.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def _classes(shape, classes, rng):
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, classes, size=shape[0])


def build_mlp(rng, sizes, batch):
    models = (_mlp(rnn, sizes), _mlp(tnn, sizes))
    return models, _classes((batch, sizes[0]), sizes[-1], rng), _logits_loss, f"{'-'.join(map(str, sizes))} b{batch}"


def build_tiny_mlp(rng, sizes, batch):
    return build_mlp(rng, sizes, batch)


def build_cnn(rng, batch):
    def cnn(nn):
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
        )

    return (cnn(rnn), cnn(tnn)), _classes((batch, 1, 28, 28), 10, rng), _logits_loss, f"28x28 b{batch}"


def build_transformer(rng, vocab, d_model, heads, ff, layers, seq, batch):
    def language_model(nn):
        class CharLM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(vocab, d_model)
                layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ff, dropout=0.0, batch_first=True,
                                                   norm_first=True)
                extra = {"enable_nested_tensor": False} if nn is tnn else {}  # torch warns otherwise (norm_first)
                self.encoder = nn.TransformerEncoder(layer, layers, **extra)
                self.head = nn.Linear(d_model, vocab)

            def forward(self, tokens, mask):
                return self.head(self.encoder(self.embed(tokens), mask=mask, is_causal=True))

        return CharLM()

    tokens = rng.integers(0, vocab, size=(batch, seq + 1))
    loss = _token_loss(vocab, seq)
    return ((language_model(rnn), language_model(tnn)), (tokens[:, :-1], tokens[:, 1:]), loss,
            f"d{d_model} h{heads} L{layers} T{seq} b{batch}")


def _logits_loss(F, model, x, y, mask):
    return F.cross_entropy(model(x), y)


def _token_loss(vocab, seq):
    def loss(F, model, x, y, mask):
        return F.cross_entropy(model(x, mask).reshape(-1, vocab), y.reshape(-1))

    loss.seq = seq
    return loss


BUILDERS = {"mlp": build_mlp, "cnn": build_cnn, "transformer": build_transformer, "tiny_mlp": build_tiny_mlp}


# ------------------------------------------------------------------------------------ frameworks


class Framework:
    """What differs between raygrad and torch: placement, synchronisation, peak memory."""

    def __init__(self, name, device):
        self.name, self.device, self.cuda = name, device, device == "cuda"
        self.lib, self.F = (tensor, rF) if name == "raygrad" else (torch, tF)

    def synchronize(self):
        if self.cuda:
            (tensor.cuda if self.lib is tensor else torch.cuda).synchronize()

    def array(self, a):
        if self.lib is tensor:
            return tensor.tensor(a, device=self.device)
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def causal_mask(self, seq):
        return self.lib.full((seq, seq), float("-inf"), device=self.device).triu(diagonal=1)

    def peak_bytes(self, step):
        """Peak bytes allocated during one call of step() (everything live counts), or None on CPU."""
        if not self.cuda:
            return None
        self.synchronize()
        if self.lib is tensor:
            tensor.cuda.reset_peak_memory_stats()
            with tensor.cuda.track_peak_memory():
                step()
                self.synchronize()
            return tensor.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        self.synchronize()
        return torch.cuda.max_memory_allocated()

    def release(self):
        gc.collect()
        if self.cuda:
            self.synchronize()
            if self.lib is tensor:
                tensor.cuda.empty_cache()
            else:
                torch.cuda.empty_cache()


class Runner:
    """One framework's model, optimizer, batch and step; keeps each step's loss on the device."""

    def __init__(self, fw, model, batch, loss_fn):
        self.fw, self.loss_fn = fw, loss_fn
        self.model = model.to(fw.device)
        self.x, self.y = (fw.array(a) for a in batch)
        self.mask = fw.causal_mask(loss_fn.seq) if hasattr(loss_fn, "seq") else None
        self.opt = fw.lib.optim.Adam(self.model.parameters(), lr=LR)
        self.pending, self.losses = [], []

    def step(self):
        self.opt.zero_grad()
        loss = self.loss_fn(self.fw.F, self.model, self.x, self.y, self.mask)
        loss.backward()
        self.opt.step()
        self.pending.append(loss.detach())

    def block(self, steps):
        """Run `steps` steps between two synchronisations; -> seconds per step."""
        gc.collect()  # the previous block's garbage, outside the timed region, for both alike
        self.fw.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        self.fw.synchronize()
        seconds = (time.perf_counter() - start) / steps
        self.losses += [float(loss.item()) for loss in self.pending]
        self.pending.clear()
        return seconds


def make_runners(name, sizes, device, seed):
    rng = np.random.default_rng(seed)
    tensor.manual_seed(seed)
    (rg_model, torch_model), batch, loss_fn, label = BUILDERS[name](rng, **sizes)
    state = {k: torch.from_numpy(np.array(v.detach().numpy(), copy=True)) for k, v in rg_model.state_dict().items()}
    torch_model.load_state_dict(state, strict=True)
    batch = (batch[0], batch[1].astype(np.int64))
    rg = Runner(Framework("raygrad", device), rg_model, batch, loss_fn)
    pt = Runner(Framework("torch", device), torch_model, batch, loss_fn)
    return rg, pt, label


def measure_workload(name, sizes, device, args):
    """-> one result row (dict) and its sanity line."""
    rg, pt, label = make_runners(name, sizes, device, args.seed)
    for _ in range(args.warmup):  # the first steps also compile CuPy's kernels
        rg.step()
        pt.step()
    probe = max(rg.block(2), pt.block(2))
    steps = max(1, int(args.block_seconds / max(probe, 1e-6)))
    times = {"raygrad": [], "torch": []}
    for r in range(args.rounds):
        for runner in ((rg, pt) if r % 2 == 0 else (pt, rg)):
            times[runner.fw.name].append(runner.block(steps))
    rg_s, pt_s = statistics.median(times["raygrad"]), statistics.median(times["torch"])
    row = {"item": name, "size": label, "unit": "ms/step", "raygrad": rg_s * 1e3, "torch": pt_s * 1e3,
           "ratio": rg_s / pt_s, "target": TARGETS[name], "steps_per_block": steps,
           "raygrad_peak_mib": _mib(rg.fw.peak_bytes(rg.step)), "torch_peak_mib": _mib(pt.fw.peak_bytes(pt.step))}
    line = sanity(name, rg, pt)
    for runner in (rg, pt):
        del runner.model, runner.opt, runner.x, runner.y
        runner.fw.release()
    return row, line


SANITY_STEPS = 20  # float32 rounding differences grow as two runs train on: agreement is checked this far


def sanity(name, rg, pt):
    """One line: do the two loss curves agree over the first steps, and fall?"""
    a, b = np.array(rg.losses), np.array(pt.losses)
    n = min(len(a), len(b))
    head = min(n, SANITY_STEPS)
    gap = float(np.max(np.abs(a[:head] - b[:head])) / abs(b[0]))  # relative to the first loss
    ok = a[-1] < a[0] and b[-1] < b[0] and gap < 2e-2
    return (f"{name:<12} loss raygrad {a[0]:.4f} -> {a[-1]:.4f}, torch {b[0]:.4f} -> {b[-1]:.4f} over {n} steps; "
            f"largest gap over the first {head} steps {gap:.1e} of the first loss: {'ok' if ok else 'CHECK'}")


# ------------------------------------------------------------------------------------ matmul


def measure_matmul(n, dtype_name, device, args):
    """raygrad `a @ b` against torch.matmul on n x n operands: TFLOP/s each (median of rounds)."""
    rng = np.random.default_rng(args.seed)
    operands = [rng.standard_normal((n, n)).astype(dtype_name) for _ in range(2)]
    seconds = {}
    for name in ("raygrad", "torch"):
        fw = Framework(name, device)
        seconds[name] = _matmul_seconds(fw, *operands, args)
        fw.release()  # the operands died with _matmul_seconds' frame
    tflops = {k: 2 * n**3 / s / 1e12 for k, s in seconds.items()}
    return {"item": f"matmul {dtype_name}", "size": f"{n}^3", "unit": "TFLOP/s", "raygrad": tflops["raygrad"],
            "torch": tflops["torch"], "ratio": seconds["raygrad"] / seconds["torch"], "target": None,
            "steps_per_block": None, "raygrad_peak_mib": None, "torch_peak_mib": None}


def _matmul_seconds(fw, a_host, b_host, args):
    a, b = fw.array(a_host), fw.array(b_host)

    def product():
        return a @ b

    for _ in range(3):  # warm-up: cuBLAS handles and heuristics
        product()
    iters = max(1, int(args.block_seconds / max(_time(fw, product, 1), 1e-6)))
    return statistics.median(_time(fw, product, iters) for _ in range(args.rounds))


def _time(fw, fn, iters):
    fw.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    fw.synchronize()
    return (time.perf_counter() - start) / iters


# ------------------------------------------------------------------------------------ report


def _mib(nbytes):
    return None if nbytes is None else nbytes / MIB


def environment(device):
    """Header lines: the card, the versions, the matmul precision settings."""
    lines = [(f"date {datetime.datetime.now().isoformat(timespec='seconds')}; python {platform.python_version()}, "
              f"numpy {np.__version__}, torch {torch.__version__}")]
    if device == "cuda":
        cp = tensor.backend.cupy_module()
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        lines.append(f"device {name}, {props['totalGlobalMem'] / 2**30:.0f} GiB, {props['multiProcessorCount']} SMs; "
                     f"cupy {cp.__version__} (CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}), torch CUDA "
                     f"{torch.version.cuda}")
        lines.append(f"float32 matmul: torch allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
                     f"CUPY_TF32={os.environ.get('CUPY_TF32', 'unset')} (both unset/False: full float32)")
    else:
        lines.append(f"device cpu ({os.cpu_count()} cores); torch threads {torch.get_num_threads()}")
    return lines


def table(rows):
    head = ("| item | size | unit | raygrad | torch | ratio | target | met | raygrad peak MiB | torch peak MiB |\n"
            "|---|---|---|---:|---:|---:|---:|:---:|---:|---:|")
    lines = [head]
    for r in rows:
        target = "" if r["target"] is None else f"<= {r['target']}"
        met = "" if r["target"] is None else ("yes" if r["ratio"] <= r["target"] else "NO")
        lines.append(f"| {r['item']} | {r['size']} | {r['unit']} | {r['raygrad']:.4g} | {r['torch']:.4g} | "
                     f"{r['ratio']:.2f} | {target} | {met} | {_fmt(r['raygrad_peak_mib'])} | "
                     f"{_fmt(r['torch_peak_mib'])} |")
    return "\n".join(lines)


def _fmt(value):
    return "" if value is None else f"{value:.0f}"


def write_outputs(path, header, body, rows, checks):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n\n" + body + "\n\nsanity:\n" + "\n".join("  " + c for c in checks) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"header": header, "rows": rows, "sanity": checks}, indent=1))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes and few steps (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=list(BUILDERS), default=list(BUILDERS))
    parser.add_argument("--no-matmul", action="store_true", help="skip the matmul rows")
    parser.add_argument("--out", help="also write the table here (Markdown) and the numbers beside it (.json)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds per workload (default 7)")
    parser.add_argument("--block-seconds", type=float, default=None, help="about how long a block runs (0.3 s)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.block_seconds = args.block_seconds or (0.05 if args.quick else 0.3)
    return args


def main(argv=None):
    args = parse_args(argv)
    if torch is None:
        sys.exit("gpu_compare.py needs PyTorch (the CUDA build on a GPU machine)")
    if args.device == "cuda" and not (tensor.cuda.is_available() and torch.cuda.is_available()):
        sys.exit(f"gpu_compare.py --device cuda needs CuPy and CUDA torch: tensor.cuda.is_available()="
                 f"{tensor.cuda.is_available()}, torch.cuda.is_available()={torch.cuda.is_available()}; "
                 "use --device cpu --quick for a smoke run")
    sizes = QUICK if args.quick else FULL
    header = [f"# raygrad / PyTorch eager, {args.device}{' (quick sizes)' if args.quick else ''}",
              *environment(args.device),
              (f"ratio = raygrad time / torch time (lower is better for raygrad); medians of {args.rounds} "
               f"alternating blocks of ~{args.block_seconds:g} s, host clock between device synchronisations")]
    print("\n".join(header), flush=True)
    rows, checks = [], []
    for name in args.only:
        row, line = measure_workload(name, sizes[name], args.device, args)
        rows.append(row)
        checks.append(line)
        print(f"  {name}: {row['raygrad']:.4g} vs {row['torch']:.4g} ms/step, ratio {row['ratio']:.2f}", flush=True)
    if not args.no_matmul:
        for dtype_name in ("float32", "float16"):
            rows.append(measure_matmul(sizes["matmul"]["n"], dtype_name, args.device, args))
    body = table(rows)
    print("\nsanity (same weights, same batch, same steps):\n" + "\n".join("  " + c for c in checks))
    if args.out:
        write_outputs(args.out, header, body, rows, checks)
    print()
    print(body)  # last: the short table


if __name__ == "__main__":
    main()
