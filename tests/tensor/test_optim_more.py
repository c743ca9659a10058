"""NAdam, RAdam, Adamax, Adadelta and the MultiplicativeLR, PolynomialLR, CosineAnnealingWarmRestarts and CyclicLR
schedules: values step by step against torch.optim, state-dict round trips, errors."""
import math
import warnings

import numpy as np
import pytest
from helpers import to_numpy
from optim_steps import (
    gradient_steps, make_optimizer, make_params, options, starting_points, torch_run, torch_train, train,
)

import tensor
from tensor import optim
from tensor.optim import lr_scheduler as sched

STEPS = 9  # RAdam's rectified step starts at step 6 with beta2 = 0.999: both of its branches run


@pytest.fixture
def starts(rng):
    return starting_points(rng)


@pytest.fixture
def grads(rng):
    return gradient_steps(rng, STEPS)


# ------------------------------------------------------------------------------ optimizers vs torch


CASES = (
    [("NAdam", o) for o in options(lr=[0.01], weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True],
                                     momentum_decay=[4e-3, 0.05], maximize=[False, True])]
    + [("NAdam", dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3))]
    + [("RAdam", o) for o in options(lr=[0.01], betas=[(0.9, 0.999), (0.8, 0.6)], weight_decay=[0.0, 0.1],
                                     decoupled_weight_decay=[False, True], maximize=[False, True])]
    + [("Adamax", o) for o in options(lr=[0.01], betas=[(0.9, 0.999), (0.5, 0.9)], eps=[1e-8, 0.1],
                                      weight_decay=[0.0, 0.1], maximize=[False, True])]
    + [("Adadelta", o) for o in options(lr=[1.0, 0.3], rho=[0.9, 0.5], weight_decay=[0.0, 0.1],
                                        maximize=[False, True])]
    + [("Adadelta", dict(rho=1.0, eps=1e-3)), ("Adadelta", dict(rho=0.0))]
)


@pytest.mark.parametrize("name, hyper", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch_optim(name, hyper, starts, grads, device):
    torch = pytest.importorskip("torch")
    params = make_params(starts, device)
    train(getattr(optim, name)(params, **hyper), params, grads)
    torch_params, _ = torch_run(torch, name, hyper, starts, grads)
    for ours, theirs in zip(params, torch_params):
        np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-10, atol=1e-13)


BIG_CASES = [
    ("NAdam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1)),
    ("Adadelta", dict(weight_decay=0.1, maximize=True)),
]


@pytest.mark.parametrize("name, hyper", BIG_CASES, ids=[n for n, _ in BIG_CASES])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_large_parameters_updated_in_blocks_match_torch(name, hyper, layout, rng):
    """Parameters bigger than one block (and non-contiguous ones, which are not split) update exactly as in torch."""
    torch = pytest.importorskip("torch")
    start = rng.standard_normal((optim.optimizer.BLOCK // 64 + 7, 70))
    grads = [[rng.standard_normal(start.shape)] for _ in range(7)]
    (param,) = make_params([start], "cpu")
    if layout == "transposed":
        param.data = np.asfortranarray(start)
    train(getattr(optim, name)([param], **hyper), [param], grads)
    (torch_param,), _ = torch_run(torch, name, hyper, [start], grads)
    assert param.data.flags.f_contiguous == (layout == "transposed")
    np.testing.assert_allclose(param.data, torch_param.detach().numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["NAdam", "RAdam", "Adamax", "Adadelta"])
def test_float32_matches_torch(name, starts, grads, device):
    torch = pytest.importorskip("torch")
    hyper = dict(weight_decay=0.1) if name == "Adadelta" else dict(lr=0.01, weight_decay=0.1)
    params = make_params(starts, device, np.float32)
    opt = getattr(optim, name)(params, **hyper)
    train(opt, params, grads)
    torch_params, _ = torch_run(torch, name, hyper, starts, grads, np.float32)
    for ours, theirs in zip(params, torch_params):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    for value in opt.state[params[0]].values():
        if isinstance(value, tensor.Tensor):
            assert value.dtype == np.float32 and value.device == params[0].device


# ------------------------------------------------------------------------------------ state dicts


MAKERS = {
    "NAdam": lambda ps: optim.NAdam(ps, lr=0.01, weight_decay=0.1, momentum_decay=0.05),
    "RAdam": lambda ps: optim.RAdam(ps, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    "Adamax": lambda ps: optim.Adamax(ps, lr=0.01, maximize=True),
    "Adadelta": lambda ps: optim.Adadelta(ps, lr=0.5, weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip_through_a_file_continues_identically(name, starts, grads, device, tmp_path):
    make_opt = MAKERS[name]
    params = make_params(starts, device)
    opt = make_opt(params)
    train(opt, params, grads[:4])
    tensor.save({"params": [p.detach() for p in params], "optim": opt.state_dict()}, tmp_path / "ckpt")

    loaded = tensor.load(tmp_path / "ckpt")
    resumed_params = [t.clone().requires_grad_(True) for t in loaded["params"]]
    resumed = make_opt(resumed_params)
    resumed.load_state_dict(loaded["optim"])
    train(opt, params, grads[4:])
    train(resumed, resumed_params, grads[4:])
    for ours, theirs in zip(params, resumed_params):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_has_torchs_keys_and_values(name, starts, grads, device):
    torch = pytest.importorskip("torch")
    params = make_params(starts, device)
    opt = MAKERS[name](params)
    train(opt, params, grads[:3])
    torch_params = [torch.tensor(s, requires_grad=True) for s in starts]
    torch_opt = getattr(torch.optim, name)(torch_params, **_hyper_of(opt))
    torch_train(torch, torch_opt, torch_params, grads[:3])
    ours, theirs = opt.state_dict(), torch_opt.state_dict()
    assert set(ours["param_groups"][0]) <= set(theirs["param_groups"][0])
    assert set(ours["state"][0]) == set(theirs["state"][0])
    for key, value in ours["state"][0].items():
        expected = theirs["state"][0][key].numpy()
        actual = to_numpy(value) if isinstance(value, tensor.Tensor) else value
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-13, err_msg=key)


def _hyper_of(opt):
    return {k: v for k, v in opt.param_groups[0].items() if k != "params"}


@pytest.mark.parametrize("name", list(MAKERS))
def test_load_state_dict_takes_a_torch_state_dict(name, starts, grads, device):
    """A state dict from torch.optim (step and NAdam's mu_product as 0-d tensors) loads and continues as torch does."""
    torch = pytest.importorskip("torch")
    hyper = _hyper_of(MAKERS[name](make_params(starts, device)))
    torch_params, torch_opt = torch_run(torch, name, hyper, starts, grads[:4])
    converted = torch_opt.state_dict()
    converted["state"] = {k: {n: tensor.tensor(v.numpy()) for n, v in s.items()} for k, s in converted["state"].items()}
    params = make_params([t.detach().numpy() for t in torch_params], device)
    opt = MAKERS[name](params)
    opt.load_state_dict(converted)
    assert opt.state[params[0]]["step"] == 4
    train(opt, params, grads[4:])
    torch_train(torch, torch_opt, torch_params, grads[4:])
    for ours, theirs in zip(params, torch_params):
        np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_nadam_mu_product_is_a_number_rounded_as_torch_rounds_it(starts, grads, device):
    params = make_params(starts, device)
    opt = optim.NAdam(params)
    train(opt, params, grads)
    mu_product = opt.state_dict()["state"][0]["mu_product"]
    assert type(mu_product) is float
    assert mu_product == float(np.float32(mu_product))  # torch keeps it in a float32 scalar tensor


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("make, words", [
    (lambda p: optim.NAdam([p], lr=-0.1), "lr=-0.1"),
    (lambda p: optim.NAdam([p], momentum_decay=-1e-3), "momentum_decay=-0.001"),
    (lambda p: optim.NAdam([p], betas=(1.0, 0.999)), "beta1.*1.0"),
    (lambda p: optim.RAdam([p], betas=(0.9, 1.5)), "beta2.*1.5"),
    (lambda p: optim.RAdam([p], eps=-1e-8), "eps=-1e-08"),
    (lambda p: optim.RAdam([p], weight_decay=float("nan")), "weight_decay=nan"),
    (lambda p: optim.Adamax([p], betas=(0.9,)), "pair"),
    (lambda p: optim.Adamax([{"params": [p], "weight_decay": -1}]), "weight_decay=-1"),
    (lambda p: optim.Adadelta([p], rho=1.1), "rho=1.1"),
    (lambda p: optim.Adadelta([p], rho=-0.1), r"rho must be in \[0, 1\]"),
    (lambda p: optim.Adadelta([p], lr=-1.0), "lr=-1.0"),
])
def test_bad_hyperparameters_are_refused(make, words, device):
    (p, _) = make_params([np.ones(3), np.ones(2)], device)
    with pytest.raises(ValueError, match=words):
        make(p)


# ------------------------------------------------------------------------------ schedulers vs torch


def history(scheduler, opt, steps, epochs=None):
    """After each optimizer.step(), scheduler.step(): the lrs and the momenta (or beta1s) of every group."""
    seen = [_snapshot(scheduler, opt)]
    for step in range(steps):
        opt.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # step(epoch) is deprecated for most schedules, in both frameworks
            scheduler.step() if epochs is None else scheduler.step(epochs[step])
        seen.append(_snapshot(scheduler, opt))
    return seen


def _snapshot(scheduler, opt):
    momenta = [g["betas"][0] if "betas" in g else g.get("momentum", 0.0) for g in opt.param_groups]
    return list(scheduler.get_last_lr()) + [g["lr"] for g in opt.param_groups] + momenta


def _decay(epoch):
    return 0.9 + 0.05 * math.cos(epoch)


class Halving:
    """A callable object: its attributes go into state dicts (functions don't)."""

    def __init__(self):
        self.base = 2.0

    def __call__(self, x):
        return 1 / (self.base ** (x - 1))


CONFIGS = [
    ("MultiplicativeLR", dict(lr_lambda=lambda epoch: 0.95), "SGD", {}),
    ("MultiplicativeLR", dict(lr_lambda=[_decay, lambda epoch: 1.01]), "Adam", {}),
    ("PolynomialLR", dict(), "SGD", {}),
    ("PolynomialLR", dict(total_iters=40, power=2.0), "SGD", {}),
    ("PolynomialLR", dict(total_iters=33, power=0.5), "AdamW", {}),
    ("CosineAnnealingWarmRestarts", dict(T_0=10), "SGD", {}),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.001), "Adam", {}),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=10), "SGD", dict(momentum=0.9)),
    ("CyclicLR", dict(base_lr=[0.01, 0.001], max_lr=[0.2, 0.05], step_size_up=7, step_size_down=13,
                      mode="triangular2", base_momentum=[0.8, 0.7], max_momentum=[0.95, 0.9]), "SGD",
     dict(momentum=0.9)),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=6, mode="exp_range", gamma=0.98), "Adam", {}),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=5, step_size_down=0), "NAdam", {}),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=9, scale_fn=Halving()), "RMSprop", dict(momentum=0.5)),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=4, scale_fn=lambda x: 0.99**x,
                      scale_mode="iterations"), "RAdam", {}),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=8, cycle_momentum=False), "Adadelta", {}),
]


@pytest.mark.parametrize("name, kwargs, opt_name, opt_kwargs", CONFIGS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)])
def test_schedule_matches_torch(name, kwargs, opt_name, opt_kwargs):
    torch = pytest.importorskip("torch")
    ours_opt = make_optimizer(tensor, opt_name, **opt_kwargs)
    torch_opt = make_optimizer(torch, opt_name, **opt_kwargs)
    ours = getattr(sched, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    np.testing.assert_allclose(history(ours, ours_opt, 120), history(theirs, torch_opt, 120), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("name, kwargs, epochs", [
    # fractional epochs, as a step per batch does: epoch + batch / batches
    ("CosineAnnealingWarmRestarts", dict(T_0=4), [e + b / 7 for e in range(12) for b in range(7)]),
    ("CosineAnnealingWarmRestarts", dict(T_0=2, T_mult=3, eta_min=0.01), [e + b / 5 for e in range(30) for b in range(5)]),
    ("CosineAnnealingWarmRestarts", dict(T_0=5, T_mult=2), [0, 3, 4, 5, 9.5, 15, 15, 2, 40, 100.25, 7]),
    ("PolynomialLR", dict(total_iters=12, power=1.5), [0, 1, 5, 2, 11, 12, 30, 3]),
    ("MultiplicativeLR", dict(lr_lambda=_decay), [1, 2, 5, 3, 9]),
])
def test_explicit_epochs_match_torch(name, kwargs, epochs):
    torch = pytest.importorskip("torch")
    ours_opt, torch_opt = make_optimizer(tensor), make_optimizer(torch)
    ours = getattr(sched, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    got = history(ours, ours_opt, len(epochs), epochs)
    np.testing.assert_allclose(got, history(theirs, torch_opt, len(epochs), epochs), rtol=1e-13, atol=1e-16)
    if name == "CosineAnnealingWarmRestarts":
        assert ours.last_epoch == math.floor(epochs[-1])


def test_warmup_then_warm_restarts_in_sequential_lr_matches_torch():
    torch = pytest.importorskip("torch")
    histories = []
    for module, lr_module in ((tensor, sched), (torch, torch.optim.lr_scheduler)):
        opt = make_optimizer(module, "NAdam")
        warmup = lr_module.LinearLR(opt, start_factor=0.01, total_iters=5)
        restarts = lr_module.CosineAnnealingWarmRestarts(opt, T_0=6, T_mult=2, eta_min=1e-4)
        histories.append(history(lr_module.SequentialLR(opt, [warmup, restarts], milestones=[5]), opt, 60))
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-13, atol=1e-16)


def test_warm_restarts_closed_form():
    opt = make_optimizer(tensor)
    scheduler = sched.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.001)
    starts = {0, 2, 6, 14}  # periods of 2, 4, 8
    for epoch in range(1, 20):
        scheduler.step()
        start = max(s for s in starts if s <= epoch)
        period = 2 * 2 ** sorted(starts).index(start)
        expected = 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * (epoch - start) / period)) / 2
        assert scheduler.get_last_lr()[0] == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------ scheduler state dicts


RESUMABLE = {
    "multiplicative": lambda opt: sched.MultiplicativeLR(opt, lr_lambda=_decay),
    "polynomial": lambda opt: sched.PolynomialLR(opt, total_iters=20, power=2.0),
    "warm_restarts": lambda opt: sched.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2),
    "cyclic": lambda opt: sched.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="triangular2"),
    "cyclic_exp_range": lambda opt: sched.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range",
                                                   gamma=0.95),
    "cyclic_scale_fn": lambda opt: sched.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=Halving()),
}


@pytest.mark.parametrize("name", list(RESUMABLE))
def test_scheduler_state_dict_round_trip_through_a_file_resumes_identically(name, tmp_path):
    make = RESUMABLE[name]
    opt = make_optimizer(tensor, momentum=0.9)
    scheduler = make(opt)
    history(scheduler, opt, 8)
    tensor.save({"optim": opt.state_dict(), "sched": scheduler.state_dict()}, tmp_path / "ckpt")

    loaded = tensor.load(tmp_path / "ckpt")
    resumed_opt = make_optimizer(tensor, momentum=0.9)
    resumed = make(resumed_opt)
    resumed_opt.load_state_dict(loaded["optim"])
    resumed.load_state_dict(loaded["sched"])
    assert resumed.get_last_lr() == scheduler.get_last_lr()
    assert history(resumed, resumed_opt, 25) == history(scheduler, opt, 25)


def test_cyclic_state_dict_saves_a_scale_objects_attributes_not_functions():
    scale = Halving()
    scheduler = sched.CyclicLR(make_optimizer(tensor, momentum=0.9), base_lr=0.01, max_lr=0.1, scale_fn=scale)
    state = scheduler.state_dict()
    assert state["_scale_fn_custom"] == {"base": 2.0}
    state["_scale_fn_custom"]["base"] = 3.0
    scheduler.load_state_dict(state)
    assert scale.base == 3.0 and scheduler.scale_fn(2) == 1 / 3.0
    by_function = sched.CyclicLR(make_optimizer(tensor, momentum=0.9), base_lr=0.01, max_lr=0.1, scale_fn=_decay)
    assert by_function.state_dict()["_scale_fn_custom"] is None


# -------------------------------------------------------------------------------- scheduler errors


@pytest.mark.parametrize("make, error, words", [
    (lambda opt: sched.CosineAnnealingWarmRestarts(opt, T_0=0), ValueError, "T_0=0"),
    (lambda opt: sched.CosineAnnealingWarmRestarts(opt, T_0=2.5), ValueError, "T_0=2.5"),
    (lambda opt: sched.CosineAnnealingWarmRestarts(opt, T_0=5, T_mult=0), ValueError, "T_mult=0"),
    (lambda opt: sched.CosineAnnealingWarmRestarts(opt, T_0=5, eta_min="0"), ValueError, "eta_min"),
    (lambda opt: sched.CosineAnnealingWarmRestarts(opt, T_0=5).step(-1), ValueError, "epoch=-1"),
    (lambda opt: sched.CyclicLR(opt, 0.01, 0.1, mode="sine"), ValueError, "sine"),
    (lambda opt: sched.CyclicLR(opt, 0.01, 0.1, step_size_up=0), ValueError, "step_size_up=0"),
    (lambda opt: sched.CyclicLR(opt, 0.01, 0.1, step_size_down=-2), ValueError, "step_size_down=-2"),
    (lambda opt: sched.CyclicLR(opt, 0.01, 0.1, scale_fn=_decay, scale_mode="epoch"), ValueError, "epoch"),
    (lambda opt: sched.CyclicLR(opt, 0.01, 0.1, scale_fn=3.0), TypeError, "float"),
    (lambda opt: sched.CyclicLR(opt, [0.01, 0.02, 0.03], 0.1), ValueError, "3 values"),
    (lambda opt: sched.CyclicLR(object(), 0.01, 0.1), TypeError, "expected an Optimizer"),
    (lambda opt: sched.PolynomialLR(opt, total_iters=0), ValueError, "total_iters=0"),
    (lambda opt: sched.MultiplicativeLR(opt, lr_lambda=0.9), TypeError, "callable"),
    (lambda opt: sched.MultiplicativeLR(opt, lr_lambda=[_decay]), ValueError, "2 lr_lambdas"),
])
def test_scheduler_errors(make, error, words):
    with pytest.raises(error, match=words):
        make(make_optimizer(tensor, momentum=0.9))


def test_cyclic_momentum_needs_momentum_or_betas():
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        sched.CyclicLR(make_optimizer(tensor, "Adadelta"), base_lr=0.01, max_lr=0.1)
