"""Shared by the optimizer test files: the same starting points and gradients, fed step by step to
raygrad's optimizers and to torch.optim's."""
import itertools

import numpy as np

import tensor

SHAPES = [(3, 4), (5,)]


def starting_points(rng):
    return [rng.standard_normal(shape) for shape in SHAPES]


def gradient_steps(rng, steps):
    """grads[step][i]: the gradient of parameter i at each step; step 4's are all zero (signs tie,
    and eps terms matter)."""
    return [[rng.standard_normal(shape) * (1 + step % 3) * (step != 4) for shape in SHAPES] for step in range(steps)]


def make_params(starts, device, dtype=np.float64):
    return [tensor.tensor(s.astype(dtype), device=device, requires_grad=True) for s in starts]


def train(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = tensor.tensor(g.astype(p.dtype), device=p.device)
        opt.step()


def torch_train(torch, opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g.astype(p.detach().numpy().dtype))
        opt.step()


def torch_run(torch, name, hyper, starts, grads, dtype=np.float64):
    params = [torch.tensor(s.astype(dtype), requires_grad=True) for s in starts]
    opt = getattr(torch.optim, name)(params, **hyper)
    torch_train(torch, opt, params, grads)
    return params, opt


def options(**choices):
    """Every combination of the choices, as keyword dicts."""
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


LRS = (0.1, 0.03)  # the two parameter groups' learning rates in the scheduler tests


def make_optimizer(framework, name="SGD", **hyper):
    """An optimizer of `framework` (tensor, or torch) over two groups with different lrs."""
    params = [framework.tensor([1.0, 2.0], requires_grad=True) for _ in LRS]
    return getattr(framework.optim, name)([{"params": [p], "lr": lr} for p, lr in zip(params, LRS)], **hyper)
