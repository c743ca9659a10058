"""Learning-rate schedulers: lr sequences against closed forms and torch's over many steps; state dicts."""
import math

import numpy as np
import pytest

import tensor
from tensor.optim import lr_scheduler as sched

from optim_steps import make_optimizer


def step_both(schedulers, optimizers, steps, metrics=None):
    """Record get_last_lr() of each scheduler after each step (optimizer.step() first, as intended)."""
    history = [[] for _ in schedulers]
    for step in range(steps):
        for opt in optimizers:
            opt.step()
        for number, scheduler in enumerate(schedulers):
            if metrics is None:
                scheduler.step()
            else:
                scheduler.step(metrics[step])
            history[number].append(list(scheduler.get_last_lr()))
    return history


# ------------------------------------------------------------------------------- closed forms


def test_step_lr_closed_form():
    opt = make_optimizer(tensor)
    scheduler = sched.StepLR(opt, step_size=3, gamma=0.5)
    seen = [scheduler.get_last_lr()[0]]
    for _ in range(9):
        scheduler.step()
        seen.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(seen, [0.1 * 0.5 ** (e // 3) for e in range(10)], rtol=1e-15)


def test_cosine_annealing_closed_form_over_a_period():
    opt = make_optimizer(tensor)
    scheduler = sched.CosineAnnealingLR(opt, T_max=20, eta_min=0.001)
    for epoch in range(1, 41):
        scheduler.step()
        expected = 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * epoch / 20)) / 2
        assert scheduler.get_last_lr()[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_reduce_on_plateau_rule():
    opt = make_optimizer(tensor)
    scheduler = sched.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    for loss in [1.0, 0.9, 0.9, 0.9, 0.9]:  # two bad epochs are patience; the third reduces
        scheduler.step(loss)
    assert scheduler.get_last_lr() == [0.05, 0.02]  # 0.03 * 0.5 is below min_lr
    for loss in [0.95] * 8:
        scheduler.step(loss)
    assert scheduler.get_last_lr() == [0.02, 0.02]  # floors at min_lr


# ----------------------------------------------------------------------------------- vs torch


def _lambda(epoch):
    return 0.95**epoch


CONFIGS = [
    ("StepLR", dict(step_size=7, gamma=0.3), "SGD", {}),
    ("MultiStepLR", dict(milestones=[5, 12, 12, 30], gamma=0.5), "SGD", {}),
    ("ExponentialLR", dict(gamma=0.97), "SGD", {}),
    ("CosineAnnealingLR", dict(T_max=25, eta_min=0.001), "SGD", {}),
    ("CosineAnnealingLR", dict(T_max=10), "Adam", {}),
    ("LinearLR", dict(start_factor=0.1, end_factor=1.0, total_iters=15), "SGD", {}),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.2, total_iters=30), "SGD", {}),
    ("ConstantLR", dict(factor=0.25, total_iters=8), "SGD", {}),
    ("LambdaLR", dict(lr_lambda=_lambda), "SGD", {}),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=100), "SGD", dict(momentum=0.9)),
    ("OneCycleLR", dict(max_lr=0.4, total_steps=100, anneal_strategy="linear", pct_start=0.25), "Adam", {}),
    ("OneCycleLR", dict(max_lr=0.4, epochs=10, steps_per_epoch=10, three_phase=True), "AdamW", {}),
    ("OneCycleLR", dict(max_lr=0.4, total_steps=100, cycle_momentum=False), "Adagrad", {}),
]


@pytest.mark.parametrize("name, kwargs, opt_name, opt_kwargs", CONFIGS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)])
def test_matches_torch(name, kwargs, opt_name, opt_kwargs):
    torch = pytest.importorskip("torch")
    ours_opt = make_optimizer(tensor, opt_name, **opt_kwargs)
    torch_opt = make_optimizer(torch, opt_name, **opt_kwargs)
    ours = getattr(sched, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    assert ours.get_last_lr() == theirs.get_last_lr()
    steps = 99 if name == "OneCycleLR" else 120
    ours_lrs, theirs_lrs = step_both([ours, theirs], [ours_opt, torch_opt], steps)
    np.testing.assert_allclose(ours_lrs, theirs_lrs, rtol=1e-13, atol=1e-16)
    for key in ("momentum", "betas"):
        if key in ours_opt.param_groups[0]:
            np.testing.assert_allclose([g[key] for g in ours_opt.param_groups],
                                       [g[key] for g in torch_opt.param_groups], rtol=1e-13)


def test_sequential_warmup_then_cosine_matches_torch():
    torch = pytest.importorskip("torch")
    histories = []
    for module, lr_module in ((tensor, sched), (torch, torch.optim.lr_scheduler)):
        opt = make_optimizer(module, "AdamW")
        warmup = lr_module.LinearLR(opt, start_factor=0.01, total_iters=10)
        cosine = lr_module.CosineAnnealingLR(opt, T_max=90, eta_min=1e-5)
        scheduler = lr_module.SequentialLR(opt, [warmup, cosine], milestones=[10])
        histories.append([list(scheduler.get_last_lr())] + step_both([scheduler], [opt], 100)[0])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-13, atol=1e-16)


def test_chained_scheduler_matches_torch():
    torch = pytest.importorskip("torch")
    histories = []
    for module, lr_module in ((tensor, sched), (torch, torch.optim.lr_scheduler)):
        opt = make_optimizer(module)
        scheduler = lr_module.ChainedScheduler([lr_module.ConstantLR(opt, factor=0.5, total_iters=4),
                                                lr_module.ExponentialLR(opt, gamma=0.9)])
        histories.append(step_both([scheduler], [opt], 30)[0])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-13)


@pytest.mark.parametrize("kwargs", [
    dict(mode="min", factor=0.5, patience=3),
    dict(mode="max", factor=0.3, patience=2, threshold=0.05, threshold_mode="abs", cooldown=2, min_lr=[0.001, 0.02]),
    dict(mode="min", factor=0.1, patience=0, threshold_mode="rel", eps=0.05),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    metrics = [1.0 / (1 + e) if e < 15 else 0.07 + 0.001 * math.sin(e) for e in range(80)]
    if kwargs["mode"] == "max":
        metrics = [1 - m for m in metrics]
    ours_opt, torch_opt = make_optimizer(tensor), make_optimizer(torch)
    ours = sched.ReduceLROnPlateau(ours_opt, **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_opt, **kwargs)
    ours_lrs, theirs_lrs = step_both([ours, theirs], [ours_opt, torch_opt], len(metrics), metrics)
    assert ours_lrs == theirs_lrs


# ------------------------------------------------------------------------------- state dicts


RESUMABLE = [
    lambda opt: sched.StepLR(opt, step_size=4, gamma=0.5),
    lambda opt: sched.MultiStepLR(opt, milestones=[3, 9, 9], gamma=0.5),
    lambda opt: sched.CosineAnnealingLR(opt, T_max=12, eta_min=0.001),
    lambda opt: sched.OneCycleLR(opt, max_lr=1.0, total_steps=40),
    lambda opt: sched.LambdaLR(opt, lr_lambda=_lambda),
    lambda opt: sched.SequentialLR(opt, [sched.LinearLR(opt, start_factor=0.1, total_iters=5),
                                         sched.CosineAnnealingLR(opt, T_max=30)], milestones=[5]),
]


@pytest.mark.parametrize("make", RESUMABLE, ids=["step", "multistep", "cosine", "onecycle", "lambda", "sequential"])
def test_state_dict_round_trip_through_a_file_resumes_identically(make, tmp_path):
    opt = make_optimizer(tensor, momentum=0.9)
    scheduler = make(opt)
    step_both([scheduler], [opt], 8)
    tensor.save({"optim": opt.state_dict(), "sched": scheduler.state_dict()}, tmp_path / "ckpt")

    loaded = tensor.load(tmp_path / "ckpt")
    resumed_opt = make_optimizer(tensor, momentum=0.9)
    resumed = make(resumed_opt)
    resumed_opt.load_state_dict(loaded["optim"])
    resumed.load_state_dict(loaded["sched"])
    assert resumed.get_last_lr() == scheduler.get_last_lr()
    expected, got = step_both([scheduler, resumed], [opt, resumed_opt], 25)
    assert got == expected


def test_lambda_state_dict_saves_callable_objects_attributes_not_functions():
    class Warmup:
        def __init__(self):
            self.steps = 5

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.steps)

    opt = make_optimizer(tensor)
    warmup = Warmup()
    scheduler = sched.LambdaLR(opt, lr_lambda=[_lambda, warmup])
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None, {"steps": 5}]
    state["lr_lambdas"][1]["steps"] = 10
    scheduler.load_state_dict(state)
    assert warmup.steps == 10


def test_multistep_state_dict_is_plain_data():
    scheduler = sched.MultiStepLR(make_optimizer(tensor), milestones=[2, 2, 5])
    assert type(scheduler.state_dict()["milestones"]) is dict


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make, words", [
    (lambda opt: sched.StepLR(object(), step_size=2), "expected an Optimizer"),
    (lambda opt: sched.StepLR(opt, step_size=2, last_epoch=3), "initial_lr"),
    (lambda opt: sched.LinearLR(opt, start_factor=0.0), "start_factor=0.0"),
    (lambda opt: sched.OneCycleLR(opt, max_lr=0.1), "total_steps"),
    (lambda opt: sched.OneCycleLR(opt, max_lr=[0.1, 0.2, 0.3], total_steps=10), "3 values"),
    (lambda opt: sched.ReduceLROnPlateau(opt, factor=1.5), "factor=1.5"),
    (lambda opt: sched.ReduceLROnPlateau(opt, mode="median"), "median"),
    (lambda opt: sched.SequentialLR(opt, [sched.StepLR(opt, 2)], milestones=[3]), "0 milestones"),
    (lambda opt: sched.LambdaLR(opt, lr_lambda=[_lambda]), "2 lr_lambdas"),
])
def test_clear_errors(make, words):
    with pytest.raises((ValueError, TypeError, KeyError), match=words):
        make(make_optimizer(tensor))


def test_one_cycle_refuses_stepping_past_the_end():
    scheduler = sched.OneCycleLR(make_optimizer(tensor, momentum=0.9), max_lr=0.1, total_steps=3)
    scheduler.step()
    scheduler.step()
    scheduler.step()
    with pytest.raises(ValueError, match="total_steps is 3"):
        scheduler.step()


def test_reduce_on_plateau_state_dict_round_trip_through_a_file(tmp_path):
    opt = make_optimizer(tensor)
    scheduler = sched.ReduceLROnPlateau(opt, mode="max", patience=1)
    tensor.save(scheduler.state_dict(), tmp_path / "fresh")  # best is -inf before any metric
    assert tensor.load(tmp_path / "fresh")["best"] == -math.inf
    metrics = [0.5, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7]
    for value in metrics[:3]:
        scheduler.step(value)
    tensor.save({"optim": opt.state_dict(), "sched": scheduler.state_dict()}, tmp_path / "ckpt")
    loaded = tensor.load(tmp_path / "ckpt")
    resumed_opt = make_optimizer(tensor)
    resumed_opt.load_state_dict(loaded["optim"])
    resumed = sched.ReduceLROnPlateau(resumed_opt)
    resumed.load_state_dict(loaded["sched"])
    expected, got = step_both([scheduler, resumed], [opt, resumed_opt], 5, metrics[3:])
    assert got == expected


def test_old_private_base_class_name():
    """Much published scheduler code subclasses torch.optim.lr_scheduler._LRScheduler."""
    torch = pytest.importorskip("torch")
    lrs = []
    for T in (torch, tensor):
        class Halving(T.optim.lr_scheduler._LRScheduler):
            def get_lr(self):
                return [base_lr * 0.5 ** self.last_epoch for base_lr in self.base_lrs]

        opt = T.optim.SGD([T.nn.Parameter(T.ones(1))], lr=0.8)
        sched = Halving(opt)
        assert isinstance(sched, T.optim.lr_scheduler.LRScheduler)
        for _ in range(3):
            opt.step()
            sched.step()
        lrs.append(sched.get_last_lr())
    assert lrs[0] == lrs[1] == [0.1]
