"""The graph and the backward engine: ordering, accumulation, freeing, hooks, errors."""
import gc
import weakref

import numpy as np
import pytest

import tensor
from tensor import Function
from tensor.errors import AutogradError


def leaf(shape, device, seed=0):
    data = np.random.default_rng(seed).standard_normal(shape)
    return tensor.tensor(data, device=device, requires_grad=True)


def test_reused_input_accumulates(device):
    x = leaf((3, 4), device)
    y = x * x + x  # x reaches the loss three times
    y.backward(tensor.ones_like(y))
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * x.detach().cpu().numpy() + 1)


def test_grad_accumulates_across_backward_calls(device):
    x = leaf((5,), device)
    for _ in range(3):
        (x * 2).backward(tensor.ones_like(x))
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.full(5, 6.0))


def test_long_chain_needs_no_recursion(device):
    x = tensor.tensor([1.0], device=device, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 0.0
    y.backward(tensor.ones_like(y))
    assert x.grad.tolist() == [1.0]


def test_saved_arrays_are_freed_after_backward(device):
    x = leaf((4, 4), device)
    y = x * 3.0
    z = y * y  # Mul saves y's array
    saved = weakref.ref(z.grad_fn._saved[0])
    del y
    z.backward(tensor.ones_like(z))
    gc.collect()
    assert saved() is None


def test_dropped_loss_frees_its_graph(device):
    x = leaf((2, 2), device)
    loss = (x * x) * 2.0
    node = weakref.ref(loss.grad_fn)
    del loss
    gc.collect()
    assert node() is None


def test_second_backward_through_freed_graph_is_a_clear_error(device):
    x = leaf((3,), device)
    y = x * x
    y.backward(tensor.ones_like(y))
    with pytest.raises(AutogradError, match="second time"):
        y.backward(tensor.ones_like(y))


def test_retain_graph_allows_a_second_backward(device):
    x = leaf((3,), device)
    y = x * x
    y.backward(tensor.ones_like(y), retain_graph=True)
    y.backward(tensor.ones_like(y))
    np.testing.assert_allclose(x.grad.cpu().numpy(), 4 * x.detach().cpu().numpy())


def test_no_graph_under_no_grad(device):
    x = leaf((3,), device)
    with tensor.no_grad():
        y = x * 2 + 1
    assert y.grad_fn is None and not y.requires_grad


def test_grad_mode_decorators_and_setter(device):
    x = leaf((3,), device)

    @tensor.no_grad()
    def f(t):
        return t * 2

    assert f(x).grad_fn is None
    assert tensor.is_grad_enabled()
    with tensor.no_grad():
        with tensor.enable_grad():
            assert (x * 2).grad_fn is not None
    tensor.set_grad_enabled(False)
    assert not tensor.is_grad_enabled()
    tensor.set_grad_enabled(True)
    assert tensor.is_grad_enabled()


def test_backward_errors_are_plain(device):
    x = leaf((2, 3), device)
    with pytest.raises(AutogradError, match="scalar outputs.*\\(2, 3\\)"):
        (x * 2).backward()
    with pytest.raises(AutogradError, match="does not require grad"):
        tensor.ones(3, device=device).backward(tensor.ones(3, device=device))


def test_autograd_grad_leaves_dot_grad_untouched(device):
    x = leaf((3,), device)
    w = leaf((3,), device, seed=1)
    y = x * w
    gx, gw = tensor.autograd.grad(y, (x, w), grad_outputs=tensor.ones_like(y))
    np.testing.assert_allclose(gx.cpu().numpy(), w.detach().cpu().numpy())
    np.testing.assert_allclose(gw.cpu().numpy(), x.detach().cpu().numpy())
    assert x.grad is None and w.grad is None


def test_autograd_grad_unused_input(device):
    x, unused = leaf((3,), device), leaf((3,), device, seed=1)
    y = x * 2
    with pytest.raises(AutogradError, match="not used"):
        tensor.autograd.grad(y, (x, unused), tensor.ones_like(y), retain_graph=True)
    gx, gu = tensor.autograd.grad(y, (x, unused), tensor.ones_like(y), allow_unused=True)
    assert gu is None


def test_autograd_grad_and_backward_take_any_iterable_of_tensors(device):
    """MAML's `autograd.grad(loss, params.values())`: dict views and generators work, as in torch."""
    params = {"x": leaf((3,), device), "w": leaf((3,), device, seed=1)}
    y = (params["x"] * params["w"]).sum()
    gx, gw = tensor.autograd.grad(y, params.values(), retain_graph=True)
    np.testing.assert_allclose(gx.cpu().numpy(), params["w"].detach().cpu().numpy())
    (gw2,) = tensor.autograd.grad([y], (p for n, p in params.items() if n == "w"), retain_graph=True)
    np.testing.assert_allclose(gw2.cpu().numpy(), params["x"].detach().cpu().numpy())
    y.backward(inputs=(p for p in params.values()))  # a generator, read once
    assert params["x"].grad is not None and params["w"].grad is not None
    with pytest.raises(TypeError, match="sequence of Tensors, got float"):
        tensor.autograd.grad(y, 1.0)


def test_variable_is_a_new_leaf_on_the_same_memory_as_in_torch(device):
    """Old PINN/MAML code: `x = Variable(torch.from_numpy(a).float(), requires_grad=True)`."""
    torch = pytest.importorskip("torch")
    from tensor.autograd import Variable
    for T, dev in ((torch, "cpu"), (tensor, device)):
        base = T.ones(3, device=dev) * 2
        x = T.autograd.Variable(base, requires_grad=True)
        assert x.requires_grad and x.grad_fn is None and x is not base and not base.requires_grad
        (x ** 2).sum().backward()
        np.testing.assert_allclose(np.asarray(x.grad.tolist()), [4.0, 4.0, 4.0])
        y = T.ones(2, device=dev, requires_grad=True) * 3
        assert not T.autograd.Variable(y).requires_grad and T.autograd.Variable(y).grad_fn is None
    with tensor.no_grad():
        x.mul_(0.5)  # shares memory with its data
    np.testing.assert_allclose(base.cpu().numpy(), [1.0, 1.0, 1.0])
    assert isinstance(tensor.zeros(1), Variable) and not isinstance(np.zeros(1), Variable)
    with pytest.warns(UserWarning, match="volatile"):
        Variable(base, volatile=True)
    with pytest.raises(TypeError, match="data has to be a Tensor, got list"):
        Variable([1.0, 2.0])


def test_autograd_grad_runs_only_the_nodes_on_a_path_to_its_inputs(device):
    calls = []

    class Traced(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1.0

        @staticmethod
        def backward(ctx, grad):
            calls.append(1)
            return grad

    x, w = leaf((3,), device), leaf((3,), device, seed=1)
    y = (x * Traced.apply(w)).sum()  # w's branch is not asked for
    (gx,) = tensor.autograd.grad(y, x, retain_graph=True)
    np.testing.assert_allclose(gx.cpu().numpy(), w.detach().cpu().numpy())
    assert calls == [] and w.grad is None
    y.backward()  # the branch still runs when its leaf wants a gradient
    assert calls == [1]


def test_hooks_on_leaf_and_non_leaf(device):
    x = leaf((3,), device)
    seen = []
    y = x * 2
    y.register_hook(lambda g: seen.append(("y", g.tolist())))
    handle = x.register_hook(lambda g: g * 10)
    finals = []
    x.register_post_accumulate_grad_hook(lambda t: finals.append(t.grad.tolist()))
    (y * 1.0).backward(tensor.ones_like(y))
    assert seen == [("y", [1.0, 1.0, 1.0])]
    assert finals == [[20.0, 20.0, 20.0]]
    handle.remove()
    x.grad = None
    (x * 2).backward(tensor.ones_like(x))
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_retain_grad_keeps_non_leaf_grad(device):
    x = leaf((3,), device)
    y = x * 2
    y.retain_grad()
    (y * 3).backward(tensor.ones_like(y))
    assert y.grad.tolist() == [3.0, 3.0, 3.0]


def test_leaf_grads_are_independent_arrays(device):
    # x + y hands one gradient array to both leaves; changing one grad must not change the other.
    x, y = leaf((3,), device), leaf((3,), device, seed=1)
    (x + y).backward(tensor.ones(3, dtype=tensor.float64, device=device))
    x.grad.mul_(5)
    assert y.grad.tolist() == [1.0, 1.0, 1.0]


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x * x * grad


def test_custom_function(device):
    x = leaf((4,), device)
    assert tensor.autograd.gradcheck(Cube.apply, (x,))


def test_custom_forward_may_return_tensors(device):
    """forward gets raw arrays, but a result made with tensor.zeros_like (a Tensor) is taken as its array,
    alone or in a tuple, rather than wrapped inside another Tensor."""

    class Spike(tensor.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            out = tensor.zeros_like(x)
            out[x > 0] = 1.0
            return out

        @staticmethod
        def backward(ctx, grad):
            return grad

    class Halves(tensor.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return tensor.as_tensor(x[:2]), x[2:]

        @staticmethod
        def backward(ctx, first, second):
            return tensor.cat([tensor.as_tensor(first), tensor.as_tensor(second)]).data

    x = tensor.tensor([-1.0, 2.0, 3.0], device=device, requires_grad=True)
    spikes = Spike.apply(x)
    assert type(spikes.data) is type(x.data) and spikes.tolist() == [0.0, 1.0, 1.0]
    first, second = Halves.apply(x)
    assert type(first.data) is type(x.data) and first.tolist() == [-1.0, 2.0] and second.tolist() == [3.0]


def test_version_counter_catches_in_place_change_of_saved_tensor(device):
    a = leaf((3,), device)
    b = a * 1.0  # a non-leaf, so in-place is allowed
    c = b * b  # saves b
    b.add_(1)
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        c.backward(tensor.ones_like(c))


def test_in_place_on_leaf_requiring_grad_is_refused(device):
    x = leaf((3,), device)
    with pytest.raises(AutogradError, match="leaf"):
        x.add_(1)
    with tensor.no_grad():
        x.add_(1)  # the optimizer path
    assert x._version == 1


def test_in_place_on_unsaved_non_leaf_gives_correct_gradient(device):
    x = leaf((3,), device)
    y = x + 0.0
    y.mul_(3)
    y.add_(x)
    y.backward(tensor.ones_like(y))
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.full(3, 4.0))


def test_detach_shares_memory_but_not_graph(device):
    x = leaf((3,), device)
    d = x.detach()
    assert d.grad_fn is None and not d.requires_grad
    with tensor.no_grad():
        d.add_(1)
    assert x._version == 1  # detach shares the version counter


def test_autograd_grad_accepts_torchs_deprecated_only_inputs(device):
    """WGAN-GP's gradient penalty passes only_inputs=True: accepted and ignored, in torch's position."""
    torch = pytest.importorskip("torch")
    x = leaf((4, 3), device)
    w = leaf((3,), device, seed=1)
    y = (x * w).sum(dim=1)
    ones = tensor.ones(4, device=device)
    (g,) = tensor.autograd.grad(y, x, ones, True, True, True)  # positional, as torch orders them
    np.testing.assert_allclose(g.detach().cpu().numpy(), np.broadcast_to(w.detach().cpu().numpy(), (4, 3)))
    assert g.requires_grad and w.grad is None
    with pytest.warns(FutureWarning, match="only_inputs"):
        tensor.autograd.grad(y, x, ones, retain_graph=True, only_inputs=False)
    assert w.grad is None  # still only the inputs, as in torch
    tx = torch.ones(2, requires_grad=True)
    with pytest.warns(FutureWarning, match="only_inputs"):
        torch.autograd.grad((tx * 2).sum(), tx, only_inputs=False)


def test_custom_function_extension_points_as_in_torch(device):
    """PyTorch 2's ctx-less forward + setup_context; surplus trailing None gradients; grad_fn.name()."""
    torch = pytest.importorskip("torch")
    grads = []
    for T, dev in ((torch, "cpu"), (tensor, device)):
        class Scale(T.autograd.Function):
            @staticmethod
            def forward(x, c, bias=None):
                return x * c

            @staticmethod
            def setup_context(ctx, inputs, output):
                ctx.c = inputs[1]

            @staticmethod
            def backward(ctx, grad):
                return grad * ctx.c, None, None, None  # one more None than forward's arguments

        x = T.ones(3, device=dev, requires_grad=True)
        y = Scale.apply(x, 2.5)
        assert isinstance(y.grad_fn.name(), str)
        y.sum().backward()
        grads.append(x.grad.tolist())
    assert grads[0] == grads[1] == [2.5] * 3

    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, grad):
            return grad, grad  # a surplus gradient that is not None is still refused

    with pytest.raises(AutogradError, match="returned 2 gradients but forward took 1"):
        Bad.apply(leaf((2,), device)).sum().backward()
