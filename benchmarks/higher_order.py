"""Higher-order gradients (create_graph=True): raygrad's step time next to PyTorch's, one table.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/higher_order.py [--rounds 7]

Workloads (float32, one thread each, the same weights and batch in both frameworks):
- wgan_gp:  a WGAN-GP critic step: conv(1->16, 4x4, stride 2)-leaky_relu-conv(16->32, 4x4, stride 2)-
            leaky_relu-linear on 28x28 images, batch 64; loss = critic difference + 10 * gradient
            penalty on interpolates (grad with create_graph=True, then backward through it).
- maml:     one MAML meta-step on an MLP 64-128-128-5, 5 inner samples x 4 tasks: an inner SGD step
            through autograd.grad(create_graph=True), the outer loss backward through it.
- hvp:      a Hessian-vector product of an MLP 256-256-256-1 loss over 512 samples (grad with
            create_graph, then grad of <grad, v>).

The two frameworks alternate in blocks of steps (order flipped each round); the table gives the
median ms per step and the ratio raygrad / torch. There is no target (the issues set none); this
shows what the feature costs. Needs PyTorch (`pip install torch`).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

try:
    import torch
except ImportError:  # the script says so in main()
    torch = None

import tensor

try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None


def _steps(make, arrays):
    """(raygrad step, torch step): `make(lib, F, params)` given the same float32 arrays as each
    library's leaves (requires_grad)."""
    ours = [tensor.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    return make(tensor, tensor.nn.functional, ours), make(torch, torch.nn.functional, theirs)


def _mlp_weights(sizes, rng):
    """[weight, bias, weight, bias, ...] of an MLP with these layer sizes (weights ~ N(0, 1/fan_in))."""
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weights += [rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in), np.zeros(fan_out)]
    return weights


def _mlp(F, x, weights, activation):
    """The MLP of _mlp_weights on x: activation between the layers, none after the last."""
    for i in range(0, len(weights) - 2, 2):
        x = activation(F.linear(x, weights[i], weights[i + 1]))
    return F.linear(x, weights[-2], weights[-1])


def wgan_gp(rng):
    shapes = [(16, 1, 4, 4), (16,), (32, 16, 4, 4), (32,), (1, 32 * 5 * 5), (1,)]
    weights = [rng.standard_normal(s) * 0.1 for s in shapes]
    real, fake = rng.standard_normal((2, 64, 1, 28, 28))
    mix = rng.random((64, 1, 1, 1))

    def make(lib, F, params):
        w1, b1, w2, b2, head, hb = params
        real_t, fake_t, mix_t = (lib.tensor(a.astype(np.float32)) for a in (real, fake, mix))

        def critic(x):
            h = F.leaky_relu(F.conv2d(x, w1, b1, stride=2), 0.2)
            h = F.leaky_relu(F.conv2d(h, w2, b2, stride=2), 0.2)
            return F.linear(h.flatten(1), head, hb)

        def step():
            for p in params:
                p.grad = None
            x = (mix_t * real_t + (1 - mix_t) * fake_t).requires_grad_(True)
            (grad_x,) = lib.autograd.grad(critic(x).sum(), x, create_graph=True)
            penalty = ((grad_x.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss = critic(fake_t).mean() - critic(real_t).mean() + 10 * penalty
            loss.backward()
            return loss.item()

        return step

    return _steps(make, weights)


def maml(rng):
    weights = _mlp_weights([64, 128, 128, 5], rng)
    tasks = [(rng.standard_normal((5, 64)), rng.integers(0, 5, 5), rng.standard_normal((15, 64)),
              rng.integers(0, 5, 15)) for _ in range(4)]

    def make(lib, F, params):
        data = [tuple(lib.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a) for a in task) for task in tasks]

        def step():
            for p in params:
                p.grad = None
            total = 0
            for x_in, y_in, x_out, y_out in data:
                loss = F.cross_entropy(_mlp(F, x_in, params, F.relu), y_in)
                grads = lib.autograd.grad(loss, params, create_graph=True)
                adapted = [p - 0.4 * g for p, g in zip(params, grads)]
                total = total + F.cross_entropy(_mlp(F, x_out, adapted, F.relu), y_out)
            total.backward()
            return total.item()

        return step

    return _steps(make, weights)


def hvp(rng):
    weights = _mlp_weights([256, 256, 256, 1], rng)
    x, y = rng.standard_normal((512, 256)), rng.standard_normal((512, 1))
    vectors = [rng.standard_normal(w.shape) for w in weights]

    def make(lib, F, params):
        x_t, y_t = lib.tensor(x.astype(np.float32)), lib.tensor(y.astype(np.float32))
        v = [lib.tensor(a.astype(np.float32)) for a in vectors]

        def step():
            loss = F.mse_loss(_mlp(F, x_t, params, F.softplus), y_t)
            grads = lib.autograd.grad(loss, params, create_graph=True)
            dot = sum((g * u).sum() for g, u in zip(grads, v))
            products = lib.autograd.grad(dot, params)
            return float(sum(p.sum().item() for p in products))

        return step

    return _steps(make, weights)


WORKLOADS = {"wgan_gp": wgan_gp, "maml": maml, "hvp": hvp}


def measure(ours, theirs, rounds, block_seconds):
    for _ in range(3):
        ours(), theirs()
    steps = max(1, int(block_seconds / max(_time(ours, 1), 1e-4)))
    times = {"raygrad": [], "torch": []}
    for r in range(rounds):
        pair = [("raygrad", ours), ("torch", theirs)]
        for name, step in (pair if r % 2 == 0 else pair[::-1]):
            times[name].append(_time(step, steps))
    return steps, statistics.median(times["raygrad"]), statistics.median(times["torch"])


def _time(step, count):
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block-seconds", type=float, default=0.5)
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    args = parser.parse_args()
    if torch is None:
        raise SystemExit("higher_order.py needs PyTorch installed (pip install torch)")
    torch.set_num_threads(1)
    if threadpool_limits is not None:
        threadpool_limits(limits=1, user_api="blas")
    print(f"# create_graph=True, raygrad vs PyTorch {torch.__version__}, 1 thread each, medians of {args.rounds} "
          f"alternating blocks of ~{args.block_seconds:g} s")
    print()
    print("| workload | steps/block | raygrad ms | torch ms | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name in args.only:
        ours, theirs = WORKLOADS[name](np.random.default_rng(0))
        a, b = ours(), theirs()
        if not np.isclose(a, b, rtol=1e-3, atol=1e-4):
            print(f"WARNING: {name}: raygrad {a:.6g} and torch {b:.6g} disagree")
        steps, ours_s, theirs_s = measure(ours, theirs, args.rounds, args.block_seconds)
        print(f"| {name} | {steps} | {ours_s * 1e3:.2f} | {theirs_s * 1e3:.2f} | {ours_s / theirs_s:.2f} |")


if __name__ == "__main__":
    main()
