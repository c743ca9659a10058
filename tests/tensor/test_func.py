"""tensor.func (grad, vjp, jvp, jacrev, jacfwd, hessian, vmap, functional_call) against torch.func."""
import collections

import numpy as np
import pytest

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor import func as tf
from tensor.errors import AutogradError

from helpers import make, to_numpy

RNG = np.random.default_rng(0)


def arr(*shape):
    return RNG.standard_normal(shape)


def assert_same(ours, ref, rtol=1e-7, atol=1e-10):
    """ours (raygrad) equals ref (torch) leaf by leaf, with the same nesting and shapes."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict) and list(ours) == list(ref)
        for key in ref:
            assert_same(ours[key], ref[key], rtol, atol)
    elif isinstance(ref, (tuple, list)):
        assert type(ours) is type(ref) and len(ours) == len(ref), (type(ours), type(ref))
        for a, b in zip(ours, ref):
            assert_same(a, b, rtol, atol)
    else:
        assert tuple(ours.shape) == tuple(ref.shape)
        # .cpu(): a ref may be ours too (test_linearize_matches_torch's jvp), on cuda
        np.testing.assert_allclose(to_numpy(ours), ref.detach().cpu().numpy(), rtol=rtol, atol=atol)


def pair(device, *arrays):
    """The same float64 arrays as raygrad tensors on `device` and as torch tensors."""
    torch = pytest.importorskip("torch")
    return [make(a, device) for a in arrays], [torch.tensor(a) for a in arrays]


# ----------------------------------------------------------------------------------------------- grad


def mlp_pair(device):
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double().to(device)
    ref = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    params = {name: make(arr(*p.shape), device) for name, p in ours.named_parameters()}
    ref_params = {name: torch.tensor(to_numpy(p)) for name, p in params.items()}
    return ours, ref, params, ref_params


def test_grad_of_mlp_loss_through_functional_call(device):
    torch = pytest.importorskip("torch")
    ours, ref, params, ref_params = mlp_pair(device)
    (x, y), (tx, ty) = pair(device, arr(6, 4), arr(6, 3))

    def loss(p, x, y):
        return F.mse_loss(tf.functional_call(ours, p, (x,)), y)

    def ref_loss(p, x, y):
        return torch.nn.functional.mse_loss(torch.func.functional_call(ref, p, (x,)), y)

    grads = tf.grad(loss)(params, x, y)
    assert_same(grads, torch.func.grad(ref_loss)(ref_params, tx, ty))
    assert all(g.grad_fn is None and not g.requires_grad for g in grads.values())  # no graph left behind
    assert all(p.grad is None for p in ours.parameters())  # the module's own parameters are untouched
    (g, value), (tg, tvalue) = tf.grad_and_value(loss)(params, x, y), torch.func.grad_and_value(ref_loss)(
        ref_params, tx, ty)
    assert_same((g, value), (tg, tvalue))


@pytest.mark.parametrize("name", ["cubic", "sin_times_square", "tanh_exp"])
def test_grad_of_grad(device, name):
    torch = pytest.importorskip("torch")
    fns = {
        "cubic": (lambda x: (x ** 3).sum(), lambda x: (x ** 3).sum()),
        "sin_times_square": (lambda x: (tensor.sin(x) * x * x).sum(), lambda x: (torch.sin(x) * x * x).sum()),
        "tanh_exp": (lambda x: tensor.tanh(tensor.exp(x)).sum(), lambda x: torch.tanh(torch.exp(x)).sum()),
    }
    ours_fn, ref_fn = fns[name]
    (x,), (tx,) = pair(device, np.array(0.7))
    assert_same(tf.grad(tf.grad(ours_fn))(x), torch.func.grad(torch.func.grad(ref_fn))(tx))
    assert_same(tf.grad(tf.grad(tf.grad(ours_fn)))(x), torch.func.grad(torch.func.grad(torch.func.grad(ref_fn)))(tx))
    (v,), (tv,) = pair(device, arr(3))  # grad of the sum of a gradient: the Hessian's row sums
    assert_same(tf.grad(lambda v: tf.grad(ours_fn)(v).sum())(v), torch.func.grad(lambda v: torch.func.grad(ref_fn)(
        v).sum())(tv))


def test_grad_over_a_closure_composes(device):
    torch = pytest.importorskip("torch")
    (x, y), (tx, ty) = pair(device, arr(3), np.array(1.5))
    ours = tf.grad(lambda y: tf.grad(lambda x: (tensor.sin(x * y) * x).sum())(x).sum())(y)
    ref = torch.func.grad(lambda y: torch.func.grad(lambda x: (torch.sin(x * y) * x).sum())(tx).sum())(ty)
    assert_same(ours, ref)
    assert ours.grad_fn is None


def test_grad_keeps_the_graph_to_tensors_that_require_grad(device):
    w = make(arr(3), device, requires_grad=True)
    x = make(arr(3), device)
    g = tf.grad(lambda x: (x * w * x).sum())(x)
    assert g.requires_grad  # d/dx = 2 w x still depends on w, as with torch.func.grad
    g.sum().backward()
    np.testing.assert_allclose(to_numpy(w.grad), 2 * to_numpy(x))


def test_has_aux_argnums_and_pytrees(device):
    torch = pytest.importorskip("torch")
    (a, b, c), (ta, tb, tc) = pair(device, arr(3), arr(2, 3), arr(3))

    def ours(d, c):
        out = (d["a"] * d["b"][0] * c).sum() + (d["b"][1] ** 2).sum()
        return out, {"out": out, "c": c * 2}

    def ref(d, c):
        out = (d["a"] * d["b"][0] * c).sum() + (d["b"][1] ** 2).sum()
        return out, {"out": out, "c": c * 2}

    tree, ref_tree = {"a": a, "b": [b[0], b[1]]}, {"a": ta, "b": [tb[0], tb[1]]}
    for argnums in (0, 1, (0, 1), (1, 0), -1):
        got = tf.grad(ours, argnums=argnums, has_aux=True)(tree, c)
        assert_same(got, torch.func.grad(ref, argnums=argnums, has_aux=True)(ref_tree, tc))
    got = tf.grad_and_value(ours, argnums=(0, 1), has_aux=True)(tree, c)
    assert_same(got, torch.func.grad_and_value(ref, argnums=(0, 1), has_aux=True)(ref_tree, tc))
    assert got[1][1]["c"].grad_fn is None
    P = collections.namedtuple("P", "w b")
    g = tf.grad(lambda p: (p.w * p.b).sum())(P(a, c))
    assert isinstance(g, P) and np.allclose(to_numpy(g.w), to_numpy(c))


def test_grad_unused_input_gives_zeros(device):
    x, y = make(arr(3), device), make(arr(2), device)
    gx, gy = tf.grad(lambda x, y: (x * 2).sum(), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(to_numpy(gy), np.zeros(2))
    np.testing.assert_allclose(to_numpy(tf.grad(lambda x: make(np.array(1.0), device))(x)), np.zeros(3))


def test_transforms_leave_no_graph_behind(device):
    import weakref

    inner = []

    def f(x):
        h = tensor.sin(x) * x
        inner.append(weakref.ref(h))
        return h.sum()

    x = make(arr(3), device)
    calls = [lambda: tf.grad(f)(x), lambda: tf.jacrev(f)(x), lambda: tf.jvp(f, (x,), (x,)),
             lambda: tf.vjp(f, x)[0], lambda: tf.grad(tf.grad(f))(x[0])]
    for call in calls:
        inner.clear()
        result = call()
        assert inner and all(ref() is None for ref in inner)  # freed at once, no cycle left to collect
        assert result is not None
    with tensor.no_grad():  # works under no_grad, as torch.func.grad does
        np.testing.assert_allclose(to_numpy(tf.grad(lambda x: (x * x).sum())(x)), 2 * to_numpy(x))


def test_functional_call_takes_torch_func_argument_names(device):
    layer = nn.Linear(3, 2).double().to(device)
    weight, bias = make(arr(2, 3), device), make(arr(2), device)
    x = make(arr(4, 3), device)
    out = tf.functional_call(layer, parameter_and_buffer_dicts=({"weight": weight}, {"bias": bias}), args=(x,))
    np.testing.assert_allclose(to_numpy(out), to_numpy(x) @ to_numpy(weight).T + to_numpy(bias))


# ------------------------------------------------------------------------------------------ vjp / jvp


def two_input_fn(lib):
    return lambda x, y: (lib.sin(x)[:, None] * y, {"s": (x * x).sum() * y.sum()})


def test_vjp_values_and_structure(device):
    torch = pytest.importorskip("torch")
    (x, y, ct, cs), (tx, ty, tct, tcs) = pair(device, arr(3), arr(2), arr(3, 2), np.array(0.3))
    out, fn = tf.vjp(two_input_fn(tensor), x, y)
    ref_out, ref_fn = torch.func.vjp(two_input_fn(torch), tx, ty)
    assert_same(out, ref_out)
    assert_same(fn((ct, {"s": cs})), ref_fn((tct, {"s": tcs})))
    assert_same(fn((ct * 2, {"s": cs})), ref_fn((tct * 2, {"s": tcs})))  # callable again
    out, fn, aux = tf.vjp(lambda x: (x * x, x + 1), x, has_aux=True)
    assert_same((out, fn(ct[:, 0]), aux), (tx * tx, (2 * tx * tct[:, 0],), tx + 1))
    with pytest.raises(AutogradError, match="pytree structure of cotangents"):
        fn((ct[:, 0],))


def test_jvp_values_and_structure(device):
    torch = pytest.importorskip("torch")
    (x, y, u, v), (tx, ty, tu, tv) = pair(device, arr(3), arr(2), arr(3), arr(2))
    got = tf.jvp(two_input_fn(tensor), (x, y), (u, v))
    assert_same(got, torch.func.jvp(two_input_fn(torch), (tx, ty), (tu, tv)))
    assert all(t.grad_fn is None for t in (got[0][0], got[1][0], got[1][1]["s"]))
    got = tf.jvp(lambda x: (tensor.exp(x), x.sum()), (x,), (u,), has_aux=True)
    assert_same(got, torch.func.jvp(lambda x: (torch.exp(x), x.sum()), (tx,), (tu,), has_aux=True))
    _, tangent = tf.jvp(lambda x, y: make(np.ones(3), device) * y.sum(), (x, y), (u, v))  # x unused: no error
    np.testing.assert_allclose(to_numpy(tangent), np.full(3, to_numpy(v).sum()))
    with pytest.raises(AutogradError, match="independent of the inputs"):
        tf.jvp(lambda x: make(np.ones(2), device), (x,), (u,), strict=True)
    with pytest.raises(AutogradError, match="Expected primals to be a tuple"):
        tf.jvp(tensor.sin, x, u)
    with pytest.raises(AutogradError, match="same python structure"):
        tf.jvp(lambda x, y: x, (x, y), (u,))


# ---------------------------------------------------------------------------- jacrev / jacfwd / hessian


@pytest.mark.parametrize("name", ["jacrev", "jacfwd"])
def test_jacobian_layouts_and_values(device, name):
    torch = pytest.importorskip("torch")
    ours_t, ref_t = getattr(tf, name), getattr(torch.func, name)
    (x, y), (tx, ty) = pair(device, arr(3), arr(2))
    for argnums in (0, 1, (0, 1), (1, 0)):
        assert_same(ours_t(two_input_fn(tensor), argnums=argnums)(x, y),
                    ref_t(two_input_fn(torch), argnums=argnums)(tx, ty))
    g = lambda lib: lambda d: (d["a"] * lib.cos(d["b"][0])).sum() * d["a"]  # noqa: E731
    assert_same(ours_t(g(tensor))({"a": x, "b": [x * 2]}), ref_t(g(torch))({"a": tx, "b": [tx * 2]}))
    got = ours_t(lambda x: (x * x, x.sum()), has_aux=True)(x)
    assert_same(got, ref_t(lambda x: (x * x, x.sum()), has_aux=True)(tx))
    assert all(t.grad_fn is None for t in got)
    assert_same(ours_t(lambda x: make(np.ones(2), device))(x), ref_t(lambda x: torch.ones(2, dtype=x.dtype))(tx))


def test_hessian_layouts_and_values(device):
    torch = pytest.importorskip("torch")
    (x, y), (tx, ty) = pair(device, arr(3), arr(2))
    f = lambda lib: lambda x, y: (lib.sin(x).sum() * y * y).sum() + (x ** 3).sum()  # noqa: E731
    for argnums in (0, 1, (0, 1)):
        assert_same(tf.hessian(f(tensor), argnums=argnums)(x, y), torch.func.hessian(f(torch), argnums=argnums)(tx, ty))
    vector = lambda lib: lambda x: lib.sin(x) * x.sum()  # noqa: E731  a vector output: a 3-d Hessian
    assert_same(tf.hessian(vector(tensor))(x), torch.func.hessian(vector(torch))(tx))


def test_chunk_size_and_randomness_checks(device):
    x = make(arr(3), device)
    with pytest.raises(ValueError, match="chunk_size"):
        tf.jacrev(tensor.sin, chunk_size=0)
    assert tf.jacrev(tensor.sin, chunk_size=1)(x).shape == (3, 3)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        tf.jacfwd(lambda x: x * tensor.rand(3, device=device))(x)
    assert tf.jacfwd(lambda x: x * tensor.rand(3, device=device), randomness="different")(x).shape == (3, 3)


# ------------------------------------------------------------------------------------------------ vmap


def test_vmap_in_dims_and_out_dims(device):
    torch = pytest.importorskip("torch")
    (a, b, c), (ta, tb, tc) = pair(device, arr(4, 3), arr(3, 4), arr(3))
    ours, ref = {"a": a, "b": b, "c": c}, {"a": ta, "b": tb, "c": tc}
    cases = [  # (function of the inputs' namespace, vmap's arguments, the arguments' names)
        (lambda ns: lambda x, y: x * y, dict(in_dims=(0, 1)), "ab"),
        (lambda ns: lambda x, y: x * y, dict(in_dims=(0, None)), "ac"),
        (lambda ns: lambda x, y: x * y, dict(in_dims=(1, 0), out_dims=1), "ba"),
        (lambda ns: lambda x: (x, x.sum()), dict(out_dims=(1, 0)), "a"),
        (lambda ns: lambda x: {"p": x, "q": [x.sum()]}, dict(out_dims={"p": -1, "q": [0]}), "a"),
        (lambda ns: lambda x: (x * 2, ns["c"]), dict(out_dims=(0, None)), "a"),
        (lambda ns: lambda x: x.sum(), dict(in_dims=-1), "a"),
        (lambda ns: lambda x: x, dict(out_dims=(1,)), "a"),
    ]
    for factory, kwargs, names in cases:
        got = tf.vmap(factory(ours), **kwargs)(*[ours[n] for n in names])
        assert_same(got, torch.func.vmap(factory(ref), **kwargs)(*[ref[n] for n in names]))
    for in_dims in (({"a": 0, "b": [1]},), ({"a": 0, "b": 1},)):  # a pytree argument, in_dims nested or a prefix
        got = tf.vmap(lambda d: d["a"] * d["b"][0], in_dims=in_dims)({"a": a, "b": [b]})
        assert_same(got, torch.func.vmap(lambda d: d["a"] * d["b"][0], in_dims=in_dims)({"a": ta, "b": [tb]}))
    nested = tf.vmap(tf.vmap(lambda x, y: x * y, in_dims=(0, None)), in_dims=(None, 0))(c, a)
    assert_same(nested, torch.func.vmap(torch.func.vmap(lambda x, y: x * y, in_dims=(0, None)), in_dims=(None, 0))(
        tc, ta))
    assert_same(tf.vmap(lambda x, k: x * k)(a, k=c), ta * tc)  # keyword arguments are not mapped


def test_vmap_is_differentiable_and_allows_item(device):
    a = make(arr(4, 3), device, requires_grad=True)
    out = tf.vmap(lambda x: x * 2 if x.sum().item() > 0 else x * 3)(a)
    out.sum().backward()
    rows = to_numpy(a).sum(1) > 0
    np.testing.assert_allclose(to_numpy(a.grad), np.where(rows[:, None], 2.0, 3.0) * np.ones((4, 3)))


def test_per_sample_gradients_match_torch(device):
    torch = pytest.importorskip("torch")
    ours, ref, params, ref_params = mlp_pair(device)
    x_np, y_np = arr(5, 4), RNG.integers(0, 3, size=5)
    x, tx = make(x_np, device), torch.tensor(x_np)
    y, ty = tensor.tensor(y_np, device=device), torch.tensor(y_np)

    def loss(p, x, y):
        return F.cross_entropy(tf.functional_call(ours, p, (x[None],)), y[None])

    def ref_loss(p, x, y):
        return torch.nn.functional.cross_entropy(torch.func.functional_call(ref, p, (x[None],)), y[None])

    got = tf.vmap(tf.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    assert_same(got, torch.func.vmap(torch.func.grad(ref_loss), in_dims=(None, 0, 0))(ref_params, tx, ty))
    assert all(g.grad_fn is None for g in got.values())


def test_vmap_randomness(device):
    zeros = make(np.zeros((4, 3)), device)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        tf.vmap(lambda x: x + tensor.rand(3, device=device))(zeros)
    with pytest.raises(RuntimeError, match="randomness error mode"):
        tf.vmap(lambda x: F.dropout(x, 0.5, training=True))(zeros)
    tensor.manual_seed(0)
    same = to_numpy(tf.vmap(lambda x: x + tensor.rand((), device=device), randomness="same")(zeros))
    assert np.all(same == same[0, 0])
    after_same = to_numpy(tensor.rand(2, device=device))
    tensor.manual_seed(0)
    single = to_numpy(tensor.rand((), device=device))
    np.testing.assert_allclose(same[0, 0], single)  # 'same' draws as one sample would
    np.testing.assert_allclose(after_same, to_numpy(tensor.rand(2, device=device)))  # and leaves the state so
    different = to_numpy(tf.vmap(lambda x: x + tensor.rand((), device=device), randomness="different")(zeros))
    assert len(set(different[:, 0].tolist())) == 4
    with pytest.raises(RuntimeError, match="Only allowed values for randomness"):
        tf.vmap(tensor.sin, randomness="bad")
    with pytest.raises(RuntimeError, match="randomness error mode"):  # an enclosing 'error' wins
        tf.vmap(tf.vmap(lambda x: x + tensor.rand((), device=device), randomness="same"))(zeros)
    nested = tf.vmap(tf.vmap(lambda x: x * 2, randomness="same"))(zeros)  # no draw: no error
    np.testing.assert_allclose(to_numpy(nested), np.zeros((4, 3)))
    assert all(type(g) is tensor.Generator for g in tensor.random._default_generators.values())


def test_vmap_errors_match_torch(device):
    torch = pytest.importorskip("torch")
    (a, b), (ta, tb) = pair(device, arr(4, 3), arr(3, 4))
    cases = [
        (lambda v: v(lambda x, y: x * y, in_dims=(0, 0))(*args), "same size in the mapped dimension"),
        (lambda v: v(lambda x, y: x * y, in_dims=(0,))(*args), "in_dims is not compatible"),
        (lambda v: v(lambda x, y: x * y, in_dims=[0, 1])(*args), "expected `in_dims` to be int"),
        (lambda v: v(lambda x, y: x * y, in_dims=(0, 2))(*args), "expected in_dim to satisfy -2 <= in_dim < 2"),
        (lambda v: v(lambda x, y: x * y, in_dims=(0, "a"))(*args), "integer dimension or None"),
        (lambda v: v(lambda x, y: x, in_dims=(0, 0))(args[0], 3), "cannot vmap over non-Tensor"),
        (lambda v: v(lambda x, y: x * y, in_dims=(None, None))(*args), "at least one Tensor"),
        (lambda v: v(lambda x: x)(), "got no inputs"),
        (lambda v: v(lambda x: 3)(args[0]), "must only return Tensors"),
        (lambda v: v(lambda x: (x, x), out_dims=(0, None))(args[0]), "BatchedTensor when out_dim is None"),
        (lambda v: v(lambda x: (x, x), out_dims=(0, 1, 2))(args[0]), "out_dims is not compatible"),
        (lambda v: v(lambda x: x, out_dims="a")(args[0]), "`out_dims` must be an int"),
        (lambda v: v(lambda x: x, chunk_size=0)(args[0]), "chunk_size should be None or greater than 0"),
    ]
    for make_call, message in cases:
        errors = []
        for v, args in ((tf.vmap, (a, b)), (torch.func.vmap, (ta, tb))):
            with pytest.raises(ValueError, match=message) as info:
                make_call(v)
            errors.append(type(info.value))
        assert errors[0] is errors[1]
    with pytest.raises(IndexError, match="Dimension out of range"):
        tf.vmap(lambda x: x, out_dims=2)(a)
    assert tf.vmap(lambda x: (x, 3), out_dims=(0, None))(a)[1] == 3


def test_transform_argument_errors(device):
    x = make(arr(3), device)
    with pytest.raises(AutogradError, match="scalar Tensor, got tensor with 1 dims"):
        tf.grad(lambda x: x)(x)
    with pytest.raises(AutogradError, match=r"\(output, aux\)"):
        tf.grad(lambda x: x.sum(), has_aux=True)(x)
    with pytest.raises(AutogradError, match="only 1 positional inputs"):
        tf.grad(lambda x: x.sum(), argnums=1)(x)
    with pytest.raises(AutogradError, match="must be unique"):
        tf.grad(lambda x: x.sum(), argnums=(0, 0))(x)
    with pytest.raises(ValueError, match="must be Tensor"):
        tf.grad(lambda x: x[0].sum())([x, 3])
    with pytest.raises(AutogradError, match="floating point"):
        tf.grad(lambda x: x.sum())(tensor.arange(3, device=device))
    with pytest.raises(AutogradError, match="return only tensors"):
        tf.jacrev(lambda x: 1)(x)


def test_stack_module_state_matches_torch(device):
    torch = pytest.importorskip("torch")
    ref = [torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)) for _ in range(3)]
    ref[0][0].bias.requires_grad_(False)
    with pytest.raises(RuntimeError, match="0.bias from each model to have the same .requires_grad"):
        torch.func.stack_module_state(ref)
    ref[1][0].bias.requires_grad_(False)
    ref[2][0].bias.requires_grad_(False)
    ours = [nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).to(device) for _ in range(3)]
    for o, r in zip(ours, ref):
        o.load_state_dict({k: tensor.tensor(v.detach().numpy()) for k, v in r.state_dict().items()})
        o[0].bias.requires_grad_(False)
    (params, buffers), (tparams, tbuffers) = tf.stack_module_state(ours), torch.func.stack_module_state(ref)
    assert_same(params, tparams)
    assert_same(buffers, tbuffers)
    for k, p in params.items():
        assert p.is_leaf and p.requires_grad == tparams[k].requires_grad
        assert p.grad_fn is None
    assert not any(b.requires_grad for b in buffers.values())
    x = make(arr(4, 3), device).float()
    out = tf.vmap(lambda p, b, x: tf.functional_call(ours[0], (p, b), (x,)), in_dims=(0, 0, None))(params, buffers, x)
    assert out.shape == (3, 4, 2)
    out.sum().backward()
    assert params["0.weight"].grad.shape == (3, 2, 3) and ours[0][0].weight.grad is None


def test_linearize_matches_torch(device):
    torch = pytest.importorskip("torch")
    (x, w, v, u), (tx, tw, tv, tu) = pair(device, arr(3), arr(3, 3), arr(3), arr(3, 3))

    def f(x, w):
        return (w @ x).tanh() * x.sum()

    (out, jvp_fn), (tout, tjvp_fn) = tf.linearize(f, x, w), torch.func.linearize(f, tx, tw)
    assert_same(out, tout)
    assert_same(jvp_fn(v, u), tjvp_fn(tv, tu))
    assert_same(jvp_fn(v, tensor.zeros_like(w)), tf.jvp(f, (x, w), (v, tensor.zeros_like(w)))[1])
    with pytest.raises(RuntimeError, match="same argspec"):
        jvp_fn(v)
    with pytest.raises(RuntimeError, match=r"tangent:1 with shape .* doesn't match the shape"):
        jvp_fn(v, v)
    with pytest.raises(RuntimeError, match="tangent:0 with dtype float32 .* doesn't match the dtype float64"):
        jvp_fn(v.float(), u)


def test_replace_all_batch_norm_modules_and_functionalize(device):
    torch = pytest.importorskip("torch")
    for T in (torch, tensor):
        net = T.nn.Sequential(T.nn.BatchNorm1d(2), T.nn.Sequential(T.nn.BatchNorm2d(2)), T.nn.InstanceNorm1d(2,
                              track_running_stats=True))
        assert T.func.replace_all_batch_norm_modules_(net) is net
        assert net[0].running_mean is None and net[1][0].running_var is None and not net[0].track_running_stats
        assert list(net.state_dict()) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "2.running_mean",
                                          "2.running_var", "2.num_batches_tracked"]
        x = T.tensor(arr(3, 2)).float()
        before = net[0](x)
        assert T.allclose(net.eval()[0](x), before)  # eval mode uses the batch statistics now
        with pytest.raises(RuntimeError, match="invalid argument for remove=views"):
            T.func.functionalize(lambda y: y, remove="views")

    def f(a):
        a.add_(1)
        return a * 2
    a = make(arr(3), device)
    want = a * 2 + 2
    assert_same(tf.functionalize(f)(a), torch.tensor(to_numpy(want)))
    assert_same(a, torch.tensor(to_numpy(want) / 2))  # the input mutation is kept, as in torch
