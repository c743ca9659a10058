"""Optimizers: each update rule against a NumPy reference and against torch.optim; groups, errors, state dicts."""
import itertools

import numpy as np
import pytest

import tensor
from tensor import optim

SHAPES = [(3, 4), (5,)]
STEPS = 6


@pytest.fixture
def starts(rng):
    return [rng.standard_normal(shape) for shape in SHAPES]


@pytest.fixture
def grads(rng):
    """GRADS[step][i]: the gradient of parameter i at each step (some steps flip sign, as real ones do)."""
    return [[rng.standard_normal(shape) * (1 + step % 3) for shape in SHAPES] for step in range(STEPS)]


def make_params(starts, dtype=np.float64):
    return [tensor.tensor(s.astype(dtype), requires_grad=True) for s in starts]


def train(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = tensor.tensor(g.astype(p.dtype))
        opt.step()


def reference_run(step_fn, start, grads_of_param, **hyper):
    p, state = start.copy(), {}
    for t, g in enumerate(grads_of_param, 1):
        p = step_fn(p, g, state, t, **hyper)
    return p


# ---------------------------------------------------------------------------- NumPy references


def sgd_step(p, g, s, t, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    g = (-g if maximize else g) + weight_decay * p
    if momentum:
        s["buf"] = g.copy() if t == 1 else momentum * s["buf"] + (1 - dampening) * g
        g = g + momentum * s["buf"] if nesterov else s["buf"]
    return p - lr * g


def adam_step(p, g, s, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
              decoupled=False):
    g = -g if maximize else g
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["m"] = betas[0] * s.get("m", 0) + (1 - betas[0]) * g
    s["v"] = betas[1] * s.get("v", 0) + (1 - betas[1]) * g * g
    s["vmax"] = np.maximum(s.get("vmax", 0), s["v"])
    v = s["vmax"] if amsgrad else s["v"]
    m_hat = s["m"] / (1 - betas[0] ** t)
    return p - lr * m_hat / (np.sqrt(v / (1 - betas[1] ** t)) + eps)


def rmsprop_step(p, g, s, t, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
    g = (-g if maximize else g) + weight_decay * p
    s["v"] = alpha * s.get("v", 0) + (1 - alpha) * g * g
    s["a"] = alpha * s.get("a", 0) + (1 - alpha) * g
    avg = np.sqrt(s["v"] - s["a"] ** 2 if centered else s["v"]) + eps
    if momentum:
        s["buf"] = momentum * s.get("buf", 0) + g / avg
        return p - lr * s["buf"]
    return p - lr * g / avg


def adagrad_step(p, g, s, t, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 maximize=False):
    g = (-g if maximize else g) + weight_decay * p
    s["sum"] = s.get("sum", initial_accumulator_value) + g * g
    return p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s["sum"]) + eps)


CASES = [
    (optim.SGD, sgd_step, dict(lr=0.1)),
    (optim.SGD, sgd_step, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    (optim.SGD, sgd_step, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    (optim.Adam, adam_step, dict(lr=0.01)),
    (optim.Adam, adam_step, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True, maximize=True)),
    (optim.RMSprop, rmsprop_step, dict(lr=0.01)),
    (optim.RMSprop, rmsprop_step, dict(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.5, centered=True)),
    (optim.Adagrad, adagrad_step, dict(lr=0.1)),
    (optim.Adagrad, adagrad_step, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5)),
]


@pytest.mark.parametrize("cls, step_fn, hyper", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_update_rule_matches_numpy_reference(cls, step_fn, hyper, starts, grads):
    params = make_params(starts)
    train(cls(params, **hyper), params, grads)
    for i, (p, start) in enumerate(zip(params, starts)):
        expected = reference_run(step_fn, start, [g[i] for g in grads], **hyper)
        np.testing.assert_allclose(p.data, expected, rtol=1e-10, atol=1e-12)


def test_adamw_is_adam_with_decoupled_decay(starts, grads):
    params = make_params(starts)
    train(optim.AdamW(params, lr=0.01, weight_decay=0.1), params, grads)
    expected = reference_run(adam_step, starts[0], [g[0] for g in grads], lr=0.01, weight_decay=0.1, decoupled=True)
    np.testing.assert_allclose(params[0].data, expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------ torch.optim


def _options(**choices):
    keys = list(choices)
    return [dict(zip(keys, values)) for values in itertools.product(*choices.values())]


TORCH_CASES = (
    [("SGD", o) for o in _options(lr=[0.05], momentum=[0.0, 0.9], dampening=[0.0, 0.2], weight_decay=[0.0, 0.05],
                                   maximize=[False, True])]
    + [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=m)) for m in (False, True)]
    + [(name, o) for name in ("Adam", "AdamW") for o in _options(lr=[0.01], betas=[(0.9, 0.999), (0.3, 0.9)],
                                                                   weight_decay=[0.0, 0.1], amsgrad=[False, True],
                                                                   maximize=[False, True])]
    + [("RMSprop", o) for o in _options(lr=[0.01], alpha=[0.99, 0.3], weight_decay=[0.0, 0.1], momentum=[0.0, 0.8],
                                         centered=[False, True], maximize=[False, True])]
    + [("Adagrad", o) for o in _options(lr=[0.1], lr_decay=[0.0, 0.05], weight_decay=[0.0, 0.1],
                                         initial_accumulator_value=[0.0, 0.3], maximize=[False, True])]
)


@pytest.mark.parametrize("name, hyper", TORCH_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TORCH_CASES)])
def test_matches_torch_optim(name, hyper, starts, grads):
    torch = pytest.importorskip("torch")
    params = make_params(starts)
    train(getattr(optim, name)(params, **hyper), params, grads)
    torch_params = [torch.tensor(s, requires_grad=True) for s in starts]
    torch_opt = getattr(torch.optim, name)(torch_params, **hyper)
    for step_grads in grads:
        for p, g in zip(torch_params, step_grads):
            p.grad = torch.tensor(g)
        torch_opt.step()
    for ours, theirs in zip(params, torch_params):
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, hyper", [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_large_parameters_updated_in_blocks_match_torch(name, hyper, layout, rng):
    """Parameters bigger than one block (and non-contiguous ones, which are not split) update exactly as in torch."""
    torch = pytest.importorskip("torch")
    start = rng.standard_normal((optim.optimizer.BLOCK // 64 + 7, 70))
    grads = [rng.standard_normal(start.shape) for _ in range(3)]
    param = tensor.tensor(start, requires_grad=True)
    if layout == "transposed":
        param.data = np.asfortranarray(start)
    opt = getattr(optim, name)([param], **hyper)
    torch_param = torch.tensor(start, requires_grad=True)
    torch_opt = getattr(torch.optim, name)([torch_param], **hyper)
    for g in grads:
        param.grad = tensor.tensor(g)
        torch_param.grad = torch.tensor(g)
        opt.step()
        torch_opt.step()
    assert param.data.flags.f_contiguous == (layout == "transposed")
    np.testing.assert_allclose(param.data, torch_param.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_float32_matches_torch(name, starts, grads):
    torch = pytest.importorskip("torch")
    hyper = dict(lr=0.01, momentum=0.9) if name in ("SGD", "RMSprop") else dict(lr=0.01)
    params = make_params(starts, np.float32)
    train(getattr(optim, name)(params, **hyper), params, grads)
    torch_params = [torch.tensor(s.astype(np.float32), requires_grad=True) for s in starts]
    torch_opt = getattr(torch.optim, name)(torch_params, **hyper)
    for step_grads in grads:
        for p, g in zip(torch_params, step_grads):
            p.grad = torch.tensor(g.astype(np.float32))
        torch_opt.step()
    for ours, theirs in zip(params, torch_params):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ mechanics


def test_param_groups_use_their_own_hyperparameters(starts, grads):
    a, b = make_params(starts)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["momentum"] == 0.9
    train(opt, [a, b], grads)
    expected = reference_run(sgd_step, starts[1], [g[1] for g in grads], lr=0.5, momentum=0.9)
    np.testing.assert_allclose(b.data, expected, rtol=1e-12)


def test_add_param_group_and_duplicates(starts):
    a, b = make_params(starts)
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="already optimized"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="already optimized"):
        optim.SGD([a, a], lr=0.1)


def test_parameters_without_grad_are_skipped_and_versions_bumped(starts):
    a, b = make_params(starts)
    before = b.data.copy()
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = tensor.ones_like(a)
    version = a._version
    opt.step()
    assert a._version == version + 1
    np.testing.assert_array_equal(b.data, before)
    assert b not in opt.state and len(opt.state) == 1


def test_zero_grad(starts):
    a, b = make_params(starts)
    opt = optim.SGD([a, b], lr=0.1)
    a.grad, b.grad = tensor.ones_like(a), tensor.ones_like(b)
    grad = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is grad and not a.grad.data.any()
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_with_closure_records_a_graph_even_under_no_grad(starts):
    (a, _) = make_params(starts)
    opt = optim.SGD([a], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (a * a).sum()
        loss.backward()
        return loss

    start = a.data.copy()
    with tensor.no_grad():
        loss = opt.step(closure)
    assert float(loss) == pytest.approx(float((start**2).sum()))
    np.testing.assert_allclose(a.data, start - 0.1 * 2 * start)


def test_update_is_in_place_and_grad_untouched(starts, grads):
    params = make_params(starts)
    arrays = [p.data for p in params]
    opt = optim.Adam(params, lr=0.1, weight_decay=0.1, maximize=True)
    params[0].grad = tensor.tensor(grads[0][0])
    opt.step()
    assert params[0].data is arrays[0]
    np.testing.assert_array_equal(params[0].grad.data, grads[0][0])


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make, error, words", [
    (lambda p: optim.SGD([p], lr=-0.1), ValueError, "lr=-0.1"),
    (lambda p: optim.SGD([p], lr=float("nan")), ValueError, "lr=nan"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=-1), ValueError, "momentum=-1"),
    (lambda p: optim.SGD([p], lr=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda p: optim.Adam([p], betas=(1.0, 0.999)), ValueError, "beta1.*1.0"),
    (lambda p: optim.Adam([p], betas=(0.9, -0.1)), ValueError, "beta2.*-0.1"),
    (lambda p: optim.AdamW([p], eps=-1e-8), ValueError, "eps=-1e-08"),
    (lambda p: optim.Adam([{"params": [p], "lr": -1}]), ValueError, "lr=-1"),
    (lambda p: optim.RMSprop([p], alpha=-0.5), ValueError, "alpha=-0.5"),
    (lambda p: optim.Adagrad([p], lr_decay=-1), ValueError, "lr_decay=-1"),
    (lambda p: optim.SGD(p, lr=0.1), TypeError, "got a Tensor"),
    (lambda p: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda p: optim.SGD([p.data], lr=0.1), TypeError, "ndarray"),
    (lambda p: optim.SGD([p * 2], lr=0.1), ValueError, "non-leaf"),
    (lambda p: optim.SGD({p}, lr=0.1), TypeError, "set"),
])
def test_clear_errors(make, error, words, starts):
    (p, _) = make_params(starts)
    with pytest.raises(error, match=words):
        make(p)


# ----------------------------------------------------------------------------- state dicts


OPTIMIZERS = [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
]


@pytest.mark.parametrize("make_opt", OPTIMIZERS, ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_state_dict_round_trip_through_a_file_continues_identically(make_opt, starts, grads, tmp_path):
    params = make_params(starts, np.float32)
    opt = make_opt(params)
    train(opt, params, grads[:3])
    tensor.save({"params": [p.detach() for p in params], "optim": opt.state_dict()}, tmp_path / "ckpt")

    loaded = tensor.load(tmp_path / "ckpt")
    resumed_params = [t.clone().requires_grad_(True) for t in loaded["params"]]
    resumed = make_opt(resumed_params)
    resumed.load_state_dict(loaded["optim"])
    assert resumed.param_groups[0]["params"][0] is resumed_params[0]

    train(opt, params, grads[3:])
    train(resumed, resumed_params, grads[3:])
    for ours, theirs in zip(params, resumed_params):
        np.testing.assert_array_equal(ours.data, theirs.data)


def test_state_dict_layout_is_pytorchs(starts, grads):
    params = make_params(starts)
    opt = optim.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}])
    train(opt, params, grads[:2])
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0], [1]]
    assert state["param_groups"][1]["lr"] == 0.5
    assert set(state["state"]) == {0, 1}
    assert state["state"][0]["step"] == 2
    assert isinstance(state["state"][0]["exp_avg"], tensor.Tensor)


def test_load_state_dict_takes_a_torch_state_dict(starts, grads):
    """A state dict from torch.optim (step as a tensor) loads, after converting its tensors."""
    torch = pytest.importorskip("torch")
    torch_params = [torch.tensor(s, requires_grad=True) for s in starts]
    torch_opt = torch.optim.Adam(torch_params, lr=0.01)
    for step_grads in grads[:3]:
        for p, g in zip(torch_params, step_grads):
            p.grad = torch.tensor(g)
        torch_opt.step()
    converted = torch_opt.state_dict()
    converted["state"] = {k: {n: tensor.tensor(v.numpy()) for n, v in s.items()} for k, s in converted["state"].items()}
    params = [tensor.tensor(p.detach().numpy(), requires_grad=True) for p in torch_params]
    opt = optim.Adam(params, lr=0.01)
    opt.load_state_dict(converted)
    assert opt.state[params[0]]["step"] == 3
    train(opt, params, grads[3:])
    for step_grads in grads[3:]:
        for p, g in zip(torch_params, step_grads):
            p.grad = torch.tensor(g)
        torch_opt.step()
    np.testing.assert_allclose(params[0].data, torch_params[0].detach().numpy(), rtol=1e-12)


def test_load_state_dict_mismatches_are_clear(starts, grads):
    a, b = make_params(starts)
    opt = optim.Adam([a, b])
    train(opt, [a, b], grads[:1])
    state = opt.state_dict()
    with pytest.raises(ValueError, match="saved state has 1 parameter groups, this optimizer has 2"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(state)
    with pytest.raises(ValueError, match="has 1 parameters, but the saved group has 2"):
        optim.Adam([a]).load_state_dict(state)
    swapped = optim.Adam([b, a])
    with pytest.raises(ValueError, match="shape"):
        swapped.load_state_dict(state)


def test_loading_copies_state_so_the_source_is_untouched(starts, grads):
    params = make_params(starts)
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    train(opt, params, grads[:2])
    state = opt.state_dict()
    other = optim.SGD(params, lr=0.1, momentum=0.9)
    other.load_state_dict(state)
    buffer = state["state"][0]["momentum_buffer"]
    assert other.state[params[0]]["momentum_buffer"] is not buffer
    np.testing.assert_array_equal(other.state[params[0]]["momentum_buffer"].data, buffer.data)


def test_repr_lists_groups(starts):
    opt = optim.SGD(make_params(starts), lr=0.1)
    assert "Parameter Group 0" in repr(opt) and "lr: 0.1" in repr(opt)


def test_user_optimizer_base_class_is_as_permissive_as_torch():
    """torch's Optimizer base validates nothing (Adafactor passes lr=None) and loads user state of any shape."""
    torch = pytest.importorskip("torch")
    for T in (torch, tensor):
        class Factored(T.optim.Optimizer):
            def __init__(self, params, lr=None):
                super().__init__(params, dict(lr=lr))

            @T.no_grad()
            def step(self, closure=None):
                for group in self.param_groups:
                    for p in group["params"]:
                        state = self.state[p]
                        if not state:
                            state["row"] = T.zeros(p.shape[:-1])
                        state["row"].add_(p.grad.mean(dim=-1))
                        p.sub_(state["row"].unsqueeze(-1) * 0.1)

        p = T.nn.Parameter(T.ones(3, 2))
        opt = Factored([p])
        p.grad = T.ones(3, 2)
        opt.step()
        again = Factored([p])
        again.load_state_dict(opt.state_dict())
        assert tuple(again.state[p]["row"].shape) == (3,)
        assert again.param_groups[0]["lr"] is None
    with pytest.raises(ValueError, match="has shape"):  # our own optimizers still refuse another model's state
        q = tensor.nn.Parameter(tensor.ones(3, 2))
        sgd = optim.SGD([q], lr=0.1, momentum=0.9)
        q.grad = tensor.ones(3, 2)
        sgd.step()
        state = sgd.state_dict()
        state["state"][0]["momentum_buffer"] = tensor.zeros(3)
        optim.SGD([q], lr=0.1, momentum=0.9).load_state_dict(state)
