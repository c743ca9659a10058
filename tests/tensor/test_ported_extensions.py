"""Extension points that libraries build on, ported by changing imports (torch -> tensor).

Custom optimizers (Lion, SAM, Lookahead, Adafactor, gradient centralization), custom LR schedulers,
custom autograd Functions, data-pipeline pieces (IterableDataset sharding, bucketing samplers,
padding collates, worker seeding) and the module hooks that feature extractors, parametrizations
and checkpoint-compatibility code use. Each script is a function of the library module `T` and runs
unchanged on both; where it touches one of README's accepted differences (`p.data` is the raw
array; a custom Function's forward/backward see raw arrays) only that spot is adapted, with a comment.
"""
import collections
import math
import random

import numpy as np
import pytest

import tensor
from tests.tensor.test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-4, 1e-5


def mlp(T):
    nn = T.nn
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def regression_data(n=16):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.standard_normal((n, 3)).astype(np.float32)


def train_with(T, device, init, x, y, make_opt, steps=5, closure_step=False, resume_at=None):
    device = device_of(T, device)
    model = ported_model(T, mlp, init, device)
    opt = make_opt(T, model)
    xs, ys = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
    losses = []
    for step in range(steps):
        if step == resume_at:  # a checkpoint resume: a fresh optimizer loads the state dict
            state = opt.state_dict()
            opt = make_opt(T, model)
            opt.load_state_dict(state)
        def closure():
            opt.zero_grad()
            loss = T.nn.functional.mse_loss(model(xs), ys)
            loss.backward()
            return loss
        if closure_step:
            loss = opt.step(closure)
        else:
            loss = closure()
            opt.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def run_optimizer(device, make_opt, **kwargs):
    x, y = regression_data()
    torch.manual_seed(0)
    run_both(train_with, device, numpy_state(mlp(torch)), x, y, make_opt, **kwargs)


# ---- 1. custom optimizers -----------------------------------------------------------------------------

def lion(T):
    # lucidrains/lion-pytorch
    class Lion(T.optim.Optimizer):
        def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
            assert lr > 0.
            assert all([0. <= beta <= 1. for beta in betas])
            defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay)
            super().__init__(params, defaults)

        @T.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with T.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                for p in filter(lambda p: p.grad is not None, group['params']):
                    grad, lr, wd, beta1, beta2, state = (p.grad, group['lr'], group['weight_decay'],
                                                         *group['betas'], self.state[p])
                    if len(state) == 0:
                        state['exp_avg'] = T.zeros_like(p)
                    exp_avg = state['exp_avg']
                    # README difference: p.data is the raw array, so p.data.mul_ becomes p.mul_ (no_grad)
                    p.mul_(1. - lr * wd)
                    update = exp_avg.clone().lerp_(grad, 1. - beta1).sign_()
                    p.add_(update, alpha=-lr)
                    exp_avg.lerp_(grad, 1. - beta2)
            return loss

    return Lion


@pytest.mark.parametrize("closure_step", [False, True])
def test_lion(device, closure_step):
    run_optimizer(device, lambda T, m: lion(T)(m.parameters(), lr=1e-2, weight_decay=0.1),
                  closure_step=closure_step, resume_at=2)


def sam(T):
    # davda54/sam
    class SAM(T.optim.Optimizer):
        def __init__(self, params, base_optimizer, rho=0.05, adaptive=False, **kwargs):
            assert rho >= 0.0, f"Invalid rho, should be non-negative: {rho}"
            defaults = dict(rho=rho, adaptive=adaptive, **kwargs)
            super(SAM, self).__init__(params, defaults)
            self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
            self.param_groups = self.base_optimizer.param_groups
            self.defaults.update(self.base_optimizer.defaults)

        @T.no_grad()
        def first_step(self, zero_grad=False):
            grad_norm = self._grad_norm()
            for group in self.param_groups:
                scale = group["rho"] / (grad_norm + 1e-12)
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    # README difference: p.data is the raw array; p.clone() under no_grad is the Tensor copy
                    self.state[p]["old_p"] = p.clone()
                    e_w = (T.pow(p, 2) if group["adaptive"] else 1.0) * p.grad * scale.to(p)
                    p.add_(e_w)  # climb to the local maximum "w + e(w)"
            if zero_grad:
                self.zero_grad()

        @T.no_grad()
        def second_step(self, zero_grad=False):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    p.data = self.state[p]["old_p"]  # get back to "w" from "w + e(w)"
            self.base_optimizer.step()
            if zero_grad:
                self.zero_grad()

        @T.no_grad()
        def step(self, closure=None):
            assert closure is not None, "Sharpness Aware Minimization requires closure, but it was not provided"
            closure = T.enable_grad()(closure)
            self.first_step(zero_grad=True)
            closure()
            self.second_step()

        def _grad_norm(self):
            shared_device = self.param_groups[0]["params"][0].device
            norm = T.norm(
                T.stack([
                    ((T.abs(p) if group["adaptive"] else 1.0) * p.grad).norm(p=2).to(shared_device)
                    for group in self.param_groups for p in group["params"]
                    if p.grad is not None
                ]),
                p=2
            )
            return norm

        def load_state_dict(self, state_dict):
            super().load_state_dict(state_dict)
            self.base_optimizer.param_groups = self.param_groups

    return SAM


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam(device, adaptive):
    def script(T, device, init, x, y):
        device = device_of(T, device)
        model = ported_model(T, mlp, init, device)
        opt = sam(T)(model.parameters(), T.optim.SGD, rho=0.5, adaptive=adaptive, lr=0.1, momentum=0.9)
        assert opt.defaults["lr"] == 0.1 and opt.param_groups[0]["rho"] == 0.5
        xs, ys = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        loss_fn = T.nn.functional.mse_loss
        losses = []
        for _ in range(4):
            # the two-pass style of the SAM README
            loss = loss_fn(model(xs), ys)
            loss.backward()
            opt.first_step(zero_grad=True)
            loss_fn(model(xs), ys).backward()
            opt.second_step(zero_grad=True)
            losses.append(loss.item())
        for _ in range(2):  # the closure style
            def closure():
                loss = loss_fn(model(xs), ys)
                loss.backward()
                return loss
            loss_fn(model(xs), ys).backward()
            opt.step(closure)
            opt.zero_grad()
        sd = opt.state_dict()
        again = sam(T)(model.parameters(), T.optim.SGD, rho=0.5, adaptive=adaptive, lr=0.1, momentum=0.9)
        again.load_state_dict(sd)
        assert again.base_optimizer.param_groups is again.param_groups
        return losses, numpy_state(model)

    x, y = regression_data()
    torch.manual_seed(0)
    run_both(script, device, numpy_state(mlp(torch)), x, y)


def lookahead(T):
    # timm/optim/lookahead.py
    class Lookahead(T.optim.Optimizer):
        def __init__(self, base_optimizer, alpha=0.5, k=6):
            # NOTE super().__init__() not called on purpose
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f'Invalid slow update rate: {alpha}')
            if not 1 <= k:
                raise ValueError(f'Invalid lookahead steps: {k}')
            defaults = dict(lookahead_alpha=alpha, lookahead_k=k, lookahead_step=0)
            self._base_optimizer = base_optimizer
            self.param_groups = base_optimizer.param_groups
            self.defaults = base_optimizer.defaults
            self.defaults.update(defaults)
            self.state = collections.defaultdict(dict)
            self._optimizer_step_pre_hooks = collections.OrderedDict()  # torch >= 2.0 wraps step with hooks
            self._optimizer_step_post_hooks = collections.OrderedDict()
            # manually add our defaults to the param groups
            for name, default in defaults.items():
                for group in self._base_optimizer.param_groups:
                    group.setdefault(name, default)

        @T.no_grad()
        def update_slow(self, group):
            for fast_p in group["params"]:
                if fast_p.grad is None:
                    continue
                param_state = self._base_optimizer.state[fast_p]
                if 'lookahead_slow_buff' not in param_state:
                    param_state['lookahead_slow_buff'] = T.empty_like(fast_p)
                    param_state['lookahead_slow_buff'].copy_(fast_p)
                slow = param_state['lookahead_slow_buff']
                slow.add_(fast_p - slow, alpha=group['lookahead_alpha'])
                fast_p.copy_(slow)

        def sync_lookahead(self):
            for group in self._base_optimizer.param_groups:
                self.update_slow(group)

        @T.no_grad()
        def step(self, closure=None):
            loss = self._base_optimizer.step(closure)
            for group in self._base_optimizer.param_groups:
                group['lookahead_step'] += 1
                if group['lookahead_step'] % group['lookahead_k'] == 0:
                    self.update_slow(group)
            return loss

        def state_dict(self):
            return self._base_optimizer.state_dict()

        def load_state_dict(self, state_dict):
            self._base_optimizer.load_state_dict(state_dict)
            self.param_groups = self._base_optimizer.param_groups

    return Lookahead


def test_lookahead_with_state_dict_resume(device):
    def script(T, device, init, x, y):
        device = device_of(T, device)
        model = ported_model(T, mlp, init, device)

        def make():
            return lookahead(T)(T.optim.Adam(model.parameters(), lr=0.05), alpha=0.5, k=2)

        opt = make()
        xs, ys = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        losses = []
        for i in range(7):
            if i == 4:  # resume mid-run: the slow buffers and the lookahead step travel in the Adam state dict
                sd = opt.state_dict()
                assert "lookahead_slow_buff" in sd["state"][0] and sd["param_groups"][0]["lookahead_step"] == 4
                opt = make()
                opt.load_state_dict(sd)
                assert opt.param_groups is opt._base_optimizer.param_groups
            opt.zero_grad()
            loss = T.nn.functional.mse_loss(model(xs), ys)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        opt.sync_lookahead()
        return losses, numpy_state(model)

    x, y = regression_data()
    torch.manual_seed(0)
    run_both(script, device, numpy_state(mlp(torch)), x, y)


def adafactor(T):
    # huggingface transformers' Adafactor (relative step, factored second moments), abridged
    class Adafactor(T.optim.Optimizer):
        def __init__(self, params, lr=None, eps=(1e-30, 1e-3), clip_threshold=1.0, decay_rate=-0.8,
                     beta1=None, weight_decay=0.0, scale_parameter=True, relative_step=True,
                     warmup_init=False):
            defaults = dict(lr=lr, eps=eps, clip_threshold=clip_threshold, decay_rate=decay_rate,
                            beta1=beta1, weight_decay=weight_decay, scale_parameter=scale_parameter,
                            relative_step=relative_step, warmup_init=warmup_init)
            super().__init__(params, defaults)

        @staticmethod
        def _get_lr(param_group, param_state):
            rel_step_sz = param_group["lr"]
            if param_group["relative_step"]:
                min_step = 1e-6 * param_state["step"] if param_group["warmup_init"] else 1e-2
                rel_step_sz = min(min_step, 1.0 / math.sqrt(param_state["step"]))
            param_scale = 1.0
            if param_group["scale_parameter"]:
                param_scale = max(param_group["eps"][1], param_state["RMS"])
            return param_scale * rel_step_sz

        @staticmethod
        def _get_options(param_group, param_shape):
            factored = len(param_shape) >= 2
            use_first_moment = param_group["beta1"] is not None
            return factored, use_first_moment

        @staticmethod
        def _rms(tensor):
            return tensor.norm(2) / (tensor.numel() ** 0.5)

        @staticmethod
        def _approx_sq_grad(exp_avg_sq_row, exp_avg_sq_col):
            r_factor = (exp_avg_sq_row / exp_avg_sq_row.mean(dim=-1, keepdim=True)).rsqrt_().unsqueeze(-1)
            c_factor = exp_avg_sq_col.unsqueeze(-2).rsqrt()
            return T.mul(r_factor, c_factor)

        @T.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                loss = closure()
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad
                    if grad.dtype in {T.float16}:
                        grad = grad.float()
                    state = self.state[p]
                    grad_shape = grad.shape
                    factored, use_first_moment = self._get_options(group, grad_shape)
                    if len(state) == 0:
                        state["step"] = 0
                        if use_first_moment:
                            state["exp_avg"] = T.zeros_like(grad)
                        if factored:
                            state["exp_avg_sq_row"] = T.zeros(grad_shape[:-1]).to(grad)
                            state["exp_avg_sq_col"] = T.zeros(grad_shape[:-2] + grad_shape[-1:]).to(grad)
                        else:
                            state["exp_avg_sq"] = T.zeros_like(grad)
                        state["RMS"] = 0
                    p_data_fp32 = p
                    state["step"] += 1
                    state["RMS"] = self._rms(p_data_fp32)
                    lr = self._get_lr(group, state)
                    beta2t = 1.0 - math.pow(state["step"], group["decay_rate"])
                    update = (grad ** 2) + group["eps"][0]
                    if factored:
                        exp_avg_sq_row = state["exp_avg_sq_row"]
                        exp_avg_sq_col = state["exp_avg_sq_col"]
                        exp_avg_sq_row.mul_(beta2t).add_(update.mean(dim=-1), alpha=(1.0 - beta2t))
                        exp_avg_sq_col.mul_(beta2t).add_(update.mean(dim=-2), alpha=(1.0 - beta2t))
                        update = self._approx_sq_grad(exp_avg_sq_row, exp_avg_sq_col)
                        update.mul_(grad)
                    else:
                        exp_avg_sq = state["exp_avg_sq"]
                        exp_avg_sq.mul_(beta2t).add_(update, alpha=(1.0 - beta2t))
                        update = exp_avg_sq.rsqrt().mul_(grad)
                    update.div_((self._rms(update) / group["clip_threshold"]).clamp_(min=1.0))
                    update.mul_(lr)
                    if use_first_moment:
                        exp_avg = state["exp_avg"]
                        exp_avg.mul_(group["beta1"]).add_(update, alpha=(1 - group["beta1"]))
                        update = exp_avg
                    if group["weight_decay"] != 0:
                        p_data_fp32.add_(p_data_fp32, alpha=(-group["weight_decay"] * lr))
                    p_data_fp32.add_(-update)
            return loss

    return Adafactor


@pytest.mark.parametrize("beta1", [None, 0.9])
def test_adafactor(device, beta1):
    run_optimizer(device, lambda T, m: adafactor(T)(m.parameters(), beta1=beta1, weight_decay=0.01), steps=6,
                  resume_at=3)


def sgd_gc(T):
    # Yong et al., "Gradient Centralization": centralize, then the stock update
    def centralized_gradient(x, use_gc=True, gc_conv_only=False):
        if use_gc:
            if gc_conv_only:
                if len(list(x.size())) > 3:
                    x.add_(-x.mean(dim=tuple(range(1, len(list(x.size())))), keepdim=True))
            else:
                if len(list(x.size())) > 1:
                    x.add_(-x.mean(dim=tuple(range(1, len(list(x.size())))), keepdim=True))
        return x

    class SGD_GC(T.optim.SGD):
        @T.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.add_(-p.grad.mean(dim=tuple(range(1, p.dim())), keepdim=True)) \
                            if p.dim() > 1 else None
                        centralized_gradient(p.grad, gc_conv_only=True)
            return super().step(closure)

    return SGD_GC


def test_gradient_centralization(device):
    def make(T, model):
        opt = sgd_gc(T)(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        hooks = []
        opt.register_step_pre_hook(lambda o, args, kwargs: hooks.append("pre"))
        opt.register_step_post_hook(lambda o, args, kwargs: hooks.append("post"))
        opt.hooks = hooks
        return opt

    run_optimizer(device, make)
    model = mlp(tensor)
    opt = make(tensor, model)
    model(tensor.ones(2, 4)).sum().backward()
    opt.step()
    assert opt.hooks == ["pre", "post"]  # a subclass's own step still runs the step hooks once
    assert abs(float(model[0].weight.grad.mean(dim=1).abs().max())) < 1e-6


# ---- 2. custom LR schedulers ------------------------------------------------------------------------

def warmup_cosine(T):
    # UvA deep-learning tutorials: CosineWarmupScheduler on the private base class
    class CosineWarmupScheduler(T.optim.lr_scheduler._LRScheduler):
        def __init__(self, optimizer, warmup, max_iters):
            self.warmup = warmup
            self.max_num_iters = max_iters
            super().__init__(optimizer)

        def get_lr(self):
            lr_factor = self.get_lr_factor(epoch=self.last_epoch)
            return [base_lr * lr_factor for base_lr in self.base_lrs]

        def get_lr_factor(self, epoch):
            lr_factor = 0.5 * (1 + np.cos(np.pi * epoch / self.max_num_iters))
            if epoch <= self.warmup:
                lr_factor *= epoch * 1.0 / self.warmup
            return lr_factor

    return CosineWarmupScheduler


def poly_restarts(T):
    class PolyLRWithRestarts(T.optim.lr_scheduler.LRScheduler):
        def __init__(self, optimizer, cycle_len, power=0.9, min_lr=0.0, last_epoch=-1):
            self.cycle_len, self.power, self.min_lr = cycle_len, power, min_lr
            super().__init__(optimizer, last_epoch)

        def get_lr(self):
            t = self.last_epoch % self.cycle_len
            factor = (1 - t / self.cycle_len) ** self.power
            return [self.min_lr + (base_lr - self.min_lr) * factor for base_lr in self.base_lrs]

    return PolyLRWithRestarts


def schedule_script(T, device, make_sched, steps=9, resume_at=4):
    model = T.nn.Linear(2, 1)
    with T.no_grad():
        model.weight.fill_(0.3)
        model.bias.fill_(-0.1)
    groups = [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}]
    opt = T.optim.SGD(groups, lr=0.1, momentum=0.9)
    sched = make_sched(T, opt)
    lrs = []
    for step in range(steps):
        if step == resume_at:
            sd = sched.state_dict()
            opt_sd = opt.state_dict()
            opt = T.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1,
                              momentum=0.9)
            opt.load_state_dict(opt_sd)
            sched = make_sched(T, opt)
            sched.load_state_dict(sd)
        opt.zero_grad()
        model(T.ones(3, 2)).sum().backward()
        opt.step()
        sched.step()
        lrs.append([float(v) for v in sched.get_last_lr()] + [g["lr"] for g in opt.param_groups])
    return np.array(lrs), numpy_state(model)


@pytest.mark.parametrize("which", ["warmup_cosine", "poly_restarts", "chained", "sequential"])
def test_custom_lr_scheduler(device, which):
    def make(T, opt):
        sch = T.optim.lr_scheduler
        if which == "warmup_cosine":
            return warmup_cosine(T)(opt, warmup=3, max_iters=10)
        if which == "poly_restarts":
            return poly_restarts(T)(opt, cycle_len=3, power=2.0, min_lr=0.01)
        if which == "chained":
            return sch.ChainedScheduler([poly_restarts(T)(opt, cycle_len=4, min_lr=0.01),
                                         sch.ExponentialLR(opt, gamma=0.9)], optimizer=opt)
        return sch.SequentialLR(opt, [sch.LinearLR(opt, start_factor=0.1, total_iters=3),
                                      warmup_cosine(T)(opt, warmup=0.5, max_iters=8)], milestones=[3])

    want = schedule_script(torch, "cpu", make)
    got = schedule_script(tensor, device, make)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-9)
    for k in want[1]:
        np.testing.assert_allclose(got[1][k], want[1][k], rtol=RTOL, atol=ATOL)


def test_custom_scheduler_construction_and_initial_lr():
    for T in (torch, tensor):
        model = T.nn.Linear(2, 1)
        opt = T.optim.AdamW(model.parameters(), lr=1e-3)
        sched = warmup_cosine(T)(opt, warmup=4, max_iters=20)
        assert sched.last_epoch == 0 and sched.base_lrs == [1e-3]
        assert opt.param_groups[0]["initial_lr"] == 1e-3
        assert sched.get_last_lr() == [0.0] and opt.param_groups[0]["lr"] == 0.0
        assert set(sched.state_dict()) >= {"warmup", "max_num_iters", "base_lrs", "last_epoch", "_last_lr"}
        assert "optimizer" not in sched.state_dict()
        # a scheduler resumed with last_epoch needs initial_lr in the groups, as in torch
        again = poly_restarts(T)(opt, cycle_len=5, last_epoch=7)
        assert again.last_epoch == 8


# ---- 3. custom autograd Functions ---------------------------------------------------------------------
# README difference: a raygrad Function's forward/backward get raw arrays, so where a published body
# calls Tensor-only methods (view_as, neg, clone, mm) the port uses the operators arrays share.

def functions(T):
    Function = T.autograd.Function

    class GradientReversal(Function):  # DANN (fungtion/DANN, tadeephuy/GradientReversal)
        @staticmethod
        def forward(ctx, x, alpha):
            ctx.alpha = alpha
            return x * 1.0  # adapted from x.view_as(x)

        @staticmethod
        def backward(ctx, grad_output):
            output = -grad_output * ctx.alpha  # adapted from grad_output.neg() * ctx.alpha
            return output, None

    class RoundSTE(Function):  # straight-through estimator (quantization-aware training)
        @staticmethod
        def forward(ctx, input):
            return input.round()

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output

    class LinearFunction(Function):  # the PyTorch "Extending torch.autograd" tutorial
        @staticmethod
        def forward(ctx, input, weight, bias=None):
            ctx.save_for_backward(input, weight, bias)
            output = input @ weight.T  # adapted from input.mm(weight.t())
            if bias is not None:
                output = output + bias
            return output

        @staticmethod
        def backward(ctx, grad_output):
            input, weight, bias = ctx.saved_tensors
            grad_input = grad_weight = grad_bias = None
            if ctx.needs_input_grad[0]:
                grad_input = grad_output @ weight
            if ctx.needs_input_grad[1]:
                grad_weight = grad_output.T @ input
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = grad_output.sum(0)
            return grad_input, grad_weight, grad_bias

    class ClampWithMask(Function):  # two outputs, one not differentiable
        @staticmethod
        def forward(ctx, x, lo, hi):
            mask = (x > lo) & (x < hi)
            ctx.mark_non_differentiable(mask)
            ctx.save_for_backward(mask)
            return x.clip(lo, hi), mask

        @staticmethod
        @T.autograd.function.once_differentiable
        def backward(ctx, grad_out, grad_mask):
            (mask,) = ctx.saved_tensors
            return grad_out * mask, None, None

    class Cube(Function):  # backward written with differentiable ops: double backward works
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x ** 2

        # README: raygrad's create_graph walk calls backward_graph with saved tensors in the graph
        @staticmethod
        def backward_graph(ctx, grad_output):
            (x,) = T.autograd.saved_in_graph(ctx)
            return grad_output * 3 * x ** 2

    class MulConstant(Function):  # the docs' PyTorch 2 style: forward without ctx, setup_context beside it
        @staticmethod
        def forward(tensor, constant):
            return tensor * constant

        @staticmethod
        def setup_context(ctx, inputs, output):
            tensor, constant = inputs
            ctx.constant = constant

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * ctx.constant, None

    return GradientReversal, RoundSTE, LinearFunction, ClampWithMask, Cube, MulConstant


def test_custom_functions(device):
    rng = np.random.default_rng(0)
    xv, wv, bv = (rng.standard_normal(s).astype(np.float32) for s in [(5, 4), (3, 4), (3,)])

    def script(T, device):
        device = device_of(T, device)
        GradientReversal, RoundSTE, LinearFunction, ClampWithMask, Cube, MulConstant = functions(T)
        x = T.tensor(xv, device=device, requires_grad=True)
        w = T.tensor(wv, device=device, requires_grad=True)
        b = T.tensor(bv, device=device, requires_grad=True)
        h = LinearFunction.apply(x, w, b)
        h2 = LinearFunction.apply(x.detach(), w)  # bias left to its default; needs_input_grad[0] False
        q = RoundSTE.apply(h * 2) / 2
        r = GradientReversal.apply(h2, 0.7)
        clamped, mask = ClampWithMask.apply(q + r, -0.5, 0.5)
        assert not mask.requires_grad and mask.dtype == T.bool and clamped.requires_grad
        loss = (clamped * T.arange(3.0, device=device)).sum() + Cube.apply(x).sum()
        loss = loss + MulConstant.apply(w, 0.25).pow(2).sum()
        loss.backward()
        (gx,) = T.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
        (ggx,) = T.autograd.grad(gx.sum(), x)
        return ([loss.item(), mask.sum().item()],
                {"x": x.grad.cpu().numpy(), "w": w.grad.cpu().numpy(), "b": b.grad.cpu().numpy(),
                 "ggx": ggx.cpu().numpy()})

    run_both(script, device)


def test_function_in_a_module_and_gradcheck(device):
    class GRL(tensor.nn.Module):
        def __init__(self, alpha=1.0):
            super().__init__()
            self.alpha = alpha

        def forward(self, x):
            return functions(tensor)[0].apply(x, self.alpha)

    x = tensor.randn(4, 3, dtype=tensor.float64, device=device, requires_grad=True)
    _, _, LinearFunction, _, Cube, _ = functions(tensor)
    w = tensor.randn(2, 3, dtype=tensor.float64, device=device, requires_grad=True)
    assert tensor.autograd.gradcheck(LinearFunction.apply, (x, w), eps=1e-6, atol=1e-4)
    assert tensor.autograd.gradgradcheck(Cube.apply, (x,))
    y = GRL(0.5)(x)
    assert y.grad_fn is not None and type(y.grad_fn).__name__.startswith("GradientReversal")
    y.sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), -0.5)


# ---- 4. data pipelines ------------------------------------------------------------------------------

def range_iterable(T):
    # the torch.utils.data.IterableDataset docstring example
    class MyIterableDataset(T.utils.data.IterableDataset):
        def __init__(self, start, end):
            super(MyIterableDataset).__init__()
            assert end > start, "this example code only works with end >= start"
            self.start = start
            self.end = end

        def __iter__(self):
            worker_info = T.utils.data.get_worker_info()
            if worker_info is None:  # single-process data loading, return the full iterator
                iter_start = self.start
                iter_end = self.end
            else:  # in a worker process: split workload
                per_worker = int(math.ceil((self.end - self.start) / float(worker_info.num_workers)))
                worker_id = worker_info.id
                iter_start = self.start + worker_id * per_worker
                iter_end = min(iter_start + per_worker, self.end)
            return iter(range(iter_start, iter_end))

    return MyIterableDataset


def tolist(batches):
    """Batches (Tensors, dicts, lists, tuples) as nested Python values, to compare across libraries."""
    if hasattr(batches, "tolist"):
        return (str(batches.dtype).replace("torch.", ""), batches.tolist())
    if isinstance(batches, dict):
        return {k: tolist(v) for k, v in batches.items()}
    if isinstance(batches, (list, tuple)):
        return type(batches).__name__, [tolist(v) for v in batches]
    return batches


def test_iterable_dataset_sharded_by_worker_info():
    def script(T, num_workers):
        ds = range_iterable(T)(start=3, end=10)
        chained = T.utils.data.ChainDataset([ds, range_iterable(T)(start=20, end=22)])
        return (tolist(list(T.utils.data.DataLoader(ds, num_workers=num_workers, batch_size=2))),
                tolist(list(T.utils.data.DataLoader(chained, batch_size=None))))

    assert script(tensor, 0) == script(torch, 0)
    assert script(tensor, 2) == script(torch, 2)


def test_iterable_dataset_sharded_by_worker_init_fn():
    def script(T):
        def worker_init_fn(worker_id):  # the docs' second way: each worker edits its copy of the dataset
            worker_info = T.utils.data.get_worker_info()
            dataset = worker_info.dataset
            overall_start, overall_end = dataset.start, dataset.end
            per_worker = int(math.ceil((overall_end - overall_start) / float(worker_info.num_workers)))
            dataset.start = overall_start + worker_id * per_worker
            dataset.end = min(dataset.start + per_worker, overall_end)

        ds = range_iterable(T)(start=3, end=8)
        return tolist(list(T.utils.data.DataLoader(ds, num_workers=2, worker_init_fn=worker_init_fn)))

    assert script(tensor) == script(torch)


def pad_collate(T):
    pad_sequence = T.nn.utils.rnn.pad_sequence

    def collate_fn(batch):
        ids = [T.tensor(item["ids"]) for item in batch]
        return {
            "input_ids": pad_sequence(ids, batch_first=True, padding_value=0),
            "attention_mask": pad_sequence([T.ones_like(t) for t in ids], batch_first=True),
            "lengths": T.tensor([len(t) for t in ids]),
            "labels": T.tensor([item["label"] for item in batch], dtype=T.float32),
        }

    return collate_fn


def bucket_sampler(T):
    class BucketBatchSampler(T.utils.data.Sampler):
        """Batches of similar length; the batch order shuffled per epoch (set_epoch, as DistributedSampler)."""

        def __init__(self, lengths, batch_size, shuffle=True, seed=0):
            self.lengths, self.batch_size, self.shuffle, self.seed = lengths, batch_size, shuffle, seed
            self.epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            indices = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
            batches = [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
            if self.shuffle:
                random.Random(self.seed + self.epoch).shuffle(batches)
            yield from batches

        def __len__(self):
            return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    return BucketBatchSampler


def test_bucketing_batch_sampler_with_padding_collate():
    rng = np.random.default_rng(0)
    items = [{"ids": rng.integers(1, 50, n).tolist(), "label": i % 2} for i, n in enumerate(rng.integers(1, 8, 11))]

    def script(T):
        class Seqs(T.utils.data.Dataset):
            def __len__(self):
                return len(items)

            def __getitem__(self, i):
                return items[i]

        sampler = bucket_sampler(T)([len(it["ids"]) for it in items], batch_size=3)
        loader = T.utils.data.DataLoader(Seqs(), batch_sampler=sampler, collate_fn=pad_collate(T))
        out = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            out.append(tolist(list(loader)))
        assert len(loader) == 4
        return out

    assert script(tensor) == script(torch)


def test_concat_subset_and_sampler_subclass():
    def script(T):
        class Squares(T.utils.data.Dataset):
            def __init__(self, n, offset):
                self.n, self.offset = n, offset

            def __len__(self):
                return self.n

            def __getitem__(self, i):
                if i >= self.n:
                    raise IndexError(i)
                return T.tensor([float(self.offset + i) ** 2]), self.offset + i

        class EveryOther(T.utils.data.Sampler):
            def __init__(self, data_source):
                self.data_source = data_source

            def __iter__(self):
                return iter(range(0, len(self.data_source), 2))

            def __len__(self):
                return (len(self.data_source) + 1) // 2

        concat = T.utils.data.ConcatDataset([Squares(3, 0), Squares(4, 10)])
        sub = T.utils.data.Subset(concat, [6, 0, 3, 4])
        both = concat + sub  # Dataset.__add__ is ConcatDataset
        loader = T.utils.data.DataLoader(both, sampler=EveryOther(both), batch_size=3)
        split = T.utils.data.random_split(range(10), [0.7, 0.3], generator=T.Generator().manual_seed(0))
        return (concat.cumulative_sizes, len(both), tolist(concat[-1]), tolist(sub[0]), tolist(list(loader)),
                [len(s) for s in split], sorted(list(split[0]) + list(split[1])))

    assert script(tensor) == script(torch)


def test_default_collate_structures():
    Point = collections.namedtuple("Point", ["x", "y"])

    def script(T):
        collate = T.utils.data.default_collate
        batch = [{"a": np.float32(i), "b": [i, [i * 2.0, "s%d" % i]], "p": Point(i, np.ones(2) * i),
                  "t": T.full((2,), float(i))} for i in range(3)]
        out = collate(batch)
        assert type(out["p"]).__name__ == "Point"
        tuples = collate([(1, 2.5, True), (3, 4.5, False)])
        return tolist(out), tolist(tuples), tolist(T.utils.data.default_convert([np.arange(3), {"z": np.ones(1)}]))

    assert script(tensor) == script(torch)


class NoisyDataset:
    """Draws from NumPy's global stream in __getitem__: the case worker_init_fn seeding exists for."""

    def __init__(self, T):
        self.T = T

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.T.tensor([float(i), float(np.random.rand())])


def seed_worker(worker_id):
    worker_info = torch.utils.data.get_worker_info() or tensor.utils.data.get_worker_info()
    np.random.seed(1234 + worker_info.id)


@pytest.mark.parametrize("persistent", [False, True])
def test_worker_init_fn_seeding_and_persistent_workers(persistent):
    def script(T):
        ds = type("Noisy", (NoisyDataset, T.utils.data.Dataset), {})(T)
        loader = T.utils.data.DataLoader(ds, batch_size=2, num_workers=2, worker_init_fn=seed_worker,
                                         persistent_workers=persistent)
        return [np.concatenate([b.numpy() for b in loader]) for _epoch in range(2)]

    want, got = script(torch), script(tensor)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    # persistent workers keep their NumPy stream across epochs; fresh workers are seeded again
    assert (np.allclose(got[0], got[1])) != persistent


# ---- 5. hooks and module extension points ---------------------------------------------------------------

def test_forward_hooks_feature_extraction(device):
    def script(T, device, init, x):
        device = device_of(T, device)
        model = ported_model(T, mlp, init, device)
        activation = {}

        def get_activation(name):
            def hook(model, input, output):
                activation[name] = output.detach()
            return hook

        handles = [m.register_forward_hook(get_activation(name)) for name, m in model.named_modules()
                   if isinstance(m, (T.nn.Linear, T.nn.Tanh))]
        calls = []

        def scale_input(module, args, kwargs):  # with_kwargs=True: may rewrite args and kwargs
            calls.append(sorted(kwargs))
            return (args[0] * 2,), kwargs

        pre = model[0].register_forward_pre_hook(scale_input, with_kwargs=True)

        def clip_output(module, args, kwargs, output):
            return output.clamp(max=0.5)

        post = model[1].register_forward_hook(clip_output, with_kwargs=True)
        out = model(T.from_numpy(x).to(device))
        out.sum().backward()
        for h in handles + [pre, post]:
            h.remove()
        plain = model(T.from_numpy(x).to(device))
        assert calls == [[]] and len(activation) == 3
        values = {k: v.cpu().numpy() for k, v in activation.items()}
        values.update(out=out.detach().cpu().numpy(), plain=plain.detach().cpu().numpy(),
                      grad=model[0].weight.grad.cpu().numpy())
        return [out.sum().item()], values

    x, _ = regression_data(5)
    torch.manual_seed(0)
    run_both(script, device, numpy_state(mlp(torch)), x)


def test_parametrization_symmetric(device):
    def script(T, device, init):
        device = device_of(T, device)
        parametrize = T.nn.utils.parametrize

        class Symmetric(T.nn.Module):
            def forward(self, X):
                return X.triu() + X.triu(1).transpose(-1, -2)

            def right_inverse(self, A):
                return A.triu()

        layer = T.nn.Linear(3, 3)
        layer.load_state_dict({k: T.tensor(v) for k, v in init.items()})
        layer = layer.to(device)
        parametrize.register_parametrization(layer, "weight", Symmetric())
        assert parametrize.is_parametrized(layer) and parametrize.is_parametrized(layer, "weight")
        keys = sorted(layer.state_dict())
        W = layer.weight
        assert T.allclose(W, W.T)
        opt = T.optim.SGD(layer.parameters(), lr=0.1)
        x = T.arange(6.0, device=device).reshape(2, 3)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            with parametrize.cached():
                loss = (layer(x) ** 2).mean() + layer.weight.sum()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        with T.no_grad():
            layer.weight = T.eye(3, device=device) * 2 + T.ones(3, 3, device=device)  # through right_inverse
        original = layer.parametrizations.weight.original.detach().cpu().numpy().copy()
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        assert not parametrize.is_parametrized(layer)
        return losses + [len(keys)], {"original": original, "weight": layer.weight.detach().cpu().numpy(),
                                      "bias": layer.bias.detach().cpu().numpy(), "keys": np.array(keys)}

    run_both(script, device, numpy_state(torch.nn.Linear(3, 3)),
             state_view=lambda s: {k: v for k, v in s.items() if k != "keys"})
    assert sorted(tensor.nn.Linear(3, 3).state_dict()) == ["bias", "weight"]


def compat_blocks(T):
    class OldBlock(T.nn.Module):  # version 1 of a layer, as old checkpoints hold it
        def __init__(self):
            super().__init__()
            self.fc = T.nn.Linear(3, 3)
            self.register_buffer("scale", T.ones(3))

        def forward(self, x):
            return self.fc(x) * self.scale

    class Block(T.nn.Module):
        _version = 2  # v2 renamed fc -> proj and made `cache` non-persistent

        def __init__(self):
            super().__init__()
            self.proj = T.nn.Linear(3, 3)
            self.register_buffer("scale", T.ones(3))
            self.register_buffer("cache", T.zeros(3), persistent=False)
            self.vocab = ["<pad>"]

        def forward(self, x):
            return self.proj(x) * self.scale + self.cache

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                  unexpected_keys, error_msgs):
            version = local_metadata.get("version", None)
            if version is None or version < 2:
                for name in ("weight", "bias"):
                    old_key = prefix + "fc." + name
                    if old_key in state_dict:
                        state_dict[prefix + "proj." + name] = state_dict.pop(old_key)
                state_dict.setdefault(prefix + "_extra_state", {"vocab": ["<pad>"]})  # v1 had no vocab
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                          unexpected_keys, error_msgs)

        def get_extra_state(self):
            return {"vocab": list(self.vocab)}

        def set_extra_state(self, state):
            self.vocab = list(state["vocab"])

    return OldBlock, Block


def test_versioned_load_from_state_dict_and_extra_state(device):
    def script(T, device):
        OldBlock, Block = compat_blocks(T)
        old = T.nn.Sequential(OldBlock(), T.nn.ReLU())
        with T.no_grad():
            old[0].fc.weight.copy_(T.arange(9.0).reshape(3, 3) / 10)
            old[0].fc.bias.fill_(0.5)
            old[0].scale.fill_(2.0)
        old_sd = old.state_dict()
        meta = {k: dict(v) for k, v in old_sd._metadata.items()}
        new = T.nn.Sequential(Block(), T.nn.ReLU()).to(device)
        result = new.load_state_dict(old_sd)
        assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
        assert "0.fc.weight" in old_sd  # the caller's dict is not renamed in place
        new[0].vocab.append("hello")
        sd = new.state_dict()
        keys = list(sd)
        assert sd._metadata["0"]["version"] == 2 and "0.cache" not in sd
        assert [n for n, _ in new.named_buffers()] == ["0.scale", "0.cache"]
        again = T.nn.Sequential(Block(), T.nn.ReLU())
        again.load_state_dict(sd)
        assert again[0].vocab == ["<pad>", "hello"]
        bad = dict(sd)
        bad["0.extra"] = T.zeros(1)
        with pytest.raises(RuntimeError, match="Unexpected key"):
            again.load_state_dict(bad)
        out = new(T.ones(2, 3, device=device))
        return [out.sum().item()], {"keys": np.array(keys), "meta": np.array(sorted(meta)),
                                   "out": out.detach().cpu().numpy()}

    want = script(torch, "cpu")
    got = script(tensor, device)
    assert list(got[1]["keys"]) == list(want[1]["keys"])
    assert list(got[1]["meta"]) == list(want[1]["meta"])
    np.testing.assert_allclose(got[1]["out"], want[1]["out"], rtol=RTOL)
