"""LBFGS (fixed step and strong-Wolfe line search), Rprop and ASGD: parameters step by step against
torch.optim, state-dict round trips, errors."""
import copy

import numpy as np
import pytest
from helpers import to_numpy
from optim_steps import gradient_steps, make_params, options, starting_points, torch_run, train

import tensor
from tensor import optim

STEPS = 8


@pytest.fixture
def starts(rng):
    return starting_points(rng)


@pytest.fixture
def grads(rng):
    return gradient_steps(rng, STEPS)


# --------------------------------------------------------------------------------- Rprop and ASGD

CASES = (
    [("Rprop", o) for o in options(lr=[0.01, 0.3], etas=[(0.5, 1.2), (0.3, 2.0)], maximize=[False, True])]
    + [("Rprop", dict(lr=0.1, step_sizes=(0.05, 0.2)))]
    + [("ASGD", o) for o in options(lr=[0.01, 0.2], lambd=[1e-4, 0.1], weight_decay=[0.0, 0.1],
                                    maximize=[False, True])]
    + [("ASGD", dict(lr=0.1, alpha=0.5, t0=3)), ("ASGD", dict(lr=0.1, lambd=0.5, t0=0))]
)


@pytest.mark.parametrize("name, hyper", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch_optim(name, hyper, starts, grads, device):
    torch = pytest.importorskip("torch")
    params = make_params(starts, device)
    opt = getattr(optim, name)(params, **hyper)
    train(opt, params, grads)
    torch_params, torch_opt = torch_run(torch, name, hyper, starts, grads)
    for ours, theirs in zip(params, torch_params):
        np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-10, atol=1e-13)
    ours, theirs = opt.state_dict()["state"][0], torch_opt.state_dict()["state"][0]
    assert set(ours) == set(theirs)
    for key, value in ours.items():  # ASGD's eta and mu included: rounded to float32 as torch keeps them
        actual = to_numpy(value) if isinstance(value, tensor.Tensor) else value
        np.testing.assert_allclose(actual, theirs[key].numpy(), rtol=1e-10, atol=1e-13, err_msg=key)


@pytest.mark.parametrize("name", ["Rprop", "ASGD"])
def test_float32_matches_torch(name, starts, grads, device):
    torch = pytest.importorskip("torch")
    hyper = dict(lr=0.05)
    params = make_params(starts, device, np.float32)
    train(getattr(optim, name)(params, **hyper), params, grads)
    torch_params, _ = torch_run(torch, name, hyper, starts, grads, np.float32)
    for ours, theirs in zip(params, torch_params):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-5, atol=1e-6)


MAKERS = {
    "Rprop": lambda ps: optim.Rprop(ps, lr=0.05, etas=(0.4, 1.5), maximize=True),
    "ASGD": lambda ps: optim.ASGD(ps, lr=0.05, lambd=0.01, t0=2, weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip_through_a_file_continues_identically(name, starts, grads, device, tmp_path):
    params = make_params(starts, device)
    opt = MAKERS[name](params)
    train(opt, params, grads[:4])
    tensor.save({"params": [p.detach() for p in params], "optim": opt.state_dict()}, tmp_path / "ckpt")
    loaded = tensor.load(tmp_path / "ckpt")
    resumed_params = [t.clone().requires_grad_(True) for t in loaded["params"]]
    resumed = MAKERS[name](resumed_params)
    resumed.load_state_dict(loaded["optim"])
    train(opt, params, grads[4:])
    train(resumed, resumed_params, grads[4:])
    for ours, theirs in zip(params, resumed_params):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))


@pytest.mark.parametrize("name", list(MAKERS))
def test_load_state_dict_takes_a_torch_state_dict(name, starts, grads, device):
    """torch keeps step (and ASGD's eta and mu) as 0-d tensors; they load as numbers and training continues."""
    torch = pytest.importorskip("torch")
    hyper = {k: v for k, v in MAKERS[name](make_params(starts, device)).param_groups[0].items() if k != "params"}
    torch_params, torch_opt = torch_run(torch, name, hyper, starts, grads[:4])
    converted = torch_opt.state_dict()
    converted["state"] = {k: {n: tensor.tensor(v.numpy()) for n, v in s.items()} for k, s in converted["state"].items()}
    params = make_params([t.detach().numpy() for t in torch_params], device)
    opt = MAKERS[name](params)
    opt.load_state_dict(converted)
    assert opt.state[params[0]]["step"] == 4
    train(opt, params, grads[4:])
    for step_grads in grads[4:]:
        for p, g in zip(torch_params, step_grads):
            p.grad = torch.tensor(g)
        torch_opt.step()
    for ours, theirs in zip(params, torch_params):
        np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------------------------ LBFGS


def rosenbrock(x):
    """The banana valley in 4-d: sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2."""
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def least_squares(params, data):
    """A small linear model's mean squared error: weight (3, 4), bias (3,)."""
    weight, bias = params
    inputs, targets = data
    return ((inputs @ weight.T + bias - targets) ** 2).mean()


def least_squares_data(lib, rng):
    inputs, targets = rng.standard_normal((20, 4)), rng.standard_normal((20, 3))
    return lib.tensor(inputs), lib.tensor(targets)


def run_lbfgs(lib, opt_class, loss_fn, starts, data, hyper, steps, dtype=np.float64, device="cpu"):
    params = [lib.tensor(s.astype(dtype), device=device, requires_grad=True) for s in starts]
    data = tuple(d.to(device=device, dtype=params[0].dtype) for d in data)
    opt = opt_class(params, **hyper)

    def closure():
        opt.zero_grad()
        loss = loss_fn(params if len(params) > 1 else params[0], data)
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(steps)]
    return [np.array(p.detach().cpu().numpy()) for p in params], losses, opt


PROBLEMS = {
    "rosenbrock": (lambda x, data: rosenbrock(x), lambda rng: [np.array([-1.2, 1.0, -0.5, 0.8])], None),
    "least_squares": (least_squares, lambda rng: [rng.standard_normal((3, 4)), rng.standard_normal(3)],
                      least_squares_data),
}
LBFGS_CASES = [
    ("rosenbrock", dict(lr=0.001, max_iter=10)),
    ("rosenbrock", dict(line_search_fn="strong_wolfe")),
    ("rosenbrock", dict(line_search_fn="strong_wolfe", history_size=3, max_iter=7)),
    ("least_squares", dict(lr=0.5, history_size=4)),
    ("least_squares", dict(line_search_fn="strong_wolfe", max_iter=5, max_eval=6)),
]


def _run_both(torch, problem, hyper, rng, steps, device, dtype=np.float64):
    loss_fn, make_starts, make_data = PROBLEMS[problem]
    starts = make_starts(rng)
    ours_data = make_data(tensor, np.random.default_rng(3)) if make_data else ()
    theirs_data = make_data(torch, np.random.default_rng(3)) if make_data else ()
    ours = run_lbfgs(tensor, optim.LBFGS, loss_fn, starts, ours_data, hyper, steps, dtype, device)
    theirs = run_lbfgs(torch, torch.optim.LBFGS, loss_fn, starts, theirs_data, hyper, steps, dtype)
    return ours, theirs


@pytest.mark.parametrize("problem, hyper", LBFGS_CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(LBFGS_CASES)])
def test_lbfgs_matches_torch(problem, hyper, rng, device):
    torch = pytest.importorskip("torch")
    (params, losses, opt), (torch_params, torch_losses, torch_opt) = _run_both(torch, problem, hyper, rng, 3, device)
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-9, atol=1e-12)
    for ours, theirs in zip(params, torch_params):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    ours_state, theirs_state = opt.state[opt.param_groups[0]["params"][0]], next(iter(torch_opt.state.values()))
    assert set(ours_state) == set(theirs_state)
    for key in ("func_evals", "n_iter"):
        assert ours_state[key] == theirs_state[key], key
    np.testing.assert_allclose(to_numpy(ours_state["d"]), theirs_state["d"].numpy(), rtol=1e-8, atol=1e-12)
    assert len(ours_state["old_dirs"]) == len(theirs_state["old_dirs"])


def test_lbfgs_float32_matches_torch(rng, device):
    torch = pytest.importorskip("torch")
    hyper = dict(line_search_fn="strong_wolfe", max_iter=6)
    (params, losses, _), (torch_params, torch_losses, _) = _run_both(torch, "least_squares", hyper, rng, 2, device,
                                                                     np.float32)
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-5)
    for ours, theirs in zip(params, torch_params):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_lbfgs_minimizes_rosenbrock(device):
    x = tensor.tensor(np.array([-1.2, 1.0, -0.5, 0.8]), device=device, requires_grad=True)
    opt = optim.LBFGS([x], line_search_fn="strong_wolfe", max_iter=100)

    def closure():
        opt.zero_grad()
        loss = rosenbrock(x)
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(to_numpy(x), np.ones(4), atol=1e-5)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_state_dict_round_trip_through_a_file_continues_identically(line_search_fn, device, rng, tmp_path):
    weight = tensor.tensor(rng.standard_normal((3, 4)), device=device, requires_grad=True)
    bias = tensor.tensor(rng.standard_normal(3), device=device, requires_grad=True)
    data = tuple(t.to(device) for t in least_squares_data(tensor, rng))

    def make_opt(params):
        return optim.LBFGS(params, lr=0.8, max_iter=4, history_size=3, line_search_fn=line_search_fn)

    def closure_for(opt, params):
        def closure():
            opt.zero_grad()
            loss = least_squares(params, data)
            loss.backward()
            return loss
        return closure

    opt = make_opt([weight, bias])
    opt.step(closure_for(opt, [weight, bias]))
    tensor.save({"params": [weight.detach(), bias.detach()], "optim": opt.state_dict()}, tmp_path / "ckpt")
    loaded = tensor.load(tmp_path / "ckpt")
    resumed_params = [t.clone().requires_grad_(True) for t in loaded["params"]]
    resumed = make_opt(resumed_params)
    resumed.load_state_dict(copy.deepcopy(loaded["optim"]))
    for _ in range(2):
        opt.step(closure_for(opt, [weight, bias]))
        resumed.step(closure_for(resumed, resumed_params))
    for ours, theirs in zip([weight, bias], resumed_params):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
    assert opt.state[weight]["func_evals"] == resumed.state[resumed_params[0]]["func_evals"]


def test_lbfgs_stops_at_once_when_the_gradient_is_zero(device):
    x = tensor.tensor(np.ones(3), device=device, requires_grad=True)
    opt = optim.LBFGS([x])

    def closure():
        opt.zero_grad()
        loss = ((x - 1) ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 0.0
    assert opt.state[x]["n_iter"] == 0 and "d" not in opt.state[x]


# ------------------------------------------------------------------------------------------ errors

BAD = [
    (lambda ps: optim.Rprop(ps, lr=-1), "lr must be >= 0"),
    (lambda ps: optim.Rprop(ps, etas=(1.2, 0.5)), "0 < etaminus < 1 < etaplus"),
    (lambda ps: optim.Rprop(ps, step_sizes=(1.0, 0.1)), "0 <= min <= max"),
    (lambda ps: optim.ASGD(ps, lr=-0.1), "lr must be >= 0"),
    (lambda ps: optim.ASGD(ps, weight_decay=-1), "weight_decay must be >= 0"),
    (lambda ps: optim.LBFGS(ps, lr=-1), "lr must be >= 0"),
    (lambda ps: optim.LBFGS(ps, history_size=0), "history_size must be an int >= 1"),
    (lambda ps: optim.LBFGS(ps, max_iter=0), "max_iter must be an int >= 1"),
    (lambda ps: optim.LBFGS(ps, line_search_fn="armijo"), "None or 'strong_wolfe'"),
    (lambda ps: optim.LBFGS([{"params": ps[:1]}, {"params": ps[1:]}]), "parameter groups"),
]


@pytest.mark.parametrize("make, words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_hyperparameters_are_refused(make, words, starts, device):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        make(make_params(starts, device))


def test_lbfgs_step_needs_a_closure(starts, device):
    with pytest.raises(TypeError, match="needs a closure"):
        optim.LBFGS(make_params(starts, device)).step()
