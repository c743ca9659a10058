"""In-place ops through views, with autograd (as PyTorch records them): `x[:, 0] += 1`,
`x.t()[1:].mul_(2)`, a base changed after its views were made. Each case is checked by finite
differences in float64, and against PyTorch on the same values where torch is installed."""
import numpy as np
import pytest

import tensor
from tensor.errors import AutogradError

from helpers import check_grad, make, to_numpy


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def column_add(w, lib):
    x = w * 2
    x[:, 0] += 1
    return (x * x).sum()


def row_scale(w, lib):
    x = w * 2
    x[1].mul_(3)
    return (x * x).sum()


def chained_views(w, lib):
    x = w * 1.5
    x.t()[1:].mul_(w.t()[1:])  # a view of a view, and the change depends on w again
    return (x ** 2).sum()


def reshaped_slice(w, lib):
    x = w + 0.5
    x.reshape(-1)[2:5].add_(x.reshape(-1)[6:9] * 2)
    return (x * x).sum()


def base_changed_after_the_view(w, lib):
    x = w * 2
    v = x[0]  # made before the change: must see the new history, not the old one
    x.mul_(3)
    return (v * v).sum() + x.sum()


def sibling_view(w, lib):
    x = w * 2
    a, b = x[0], x[0:2]
    a.mul_(3)  # b overlaps a: it must see the change in its gradient too
    return (b * b).sum()


def setitem_through_a_view(w, lib):
    x = w * 1.0
    x[0][1:3] = w[2, :2] * 4
    return (x * x).sum()


CASES = [column_add, row_scale, chained_views, reshaped_slice, base_changed_after_the_view, sibling_view,
         setitem_through_a_view]


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_gradients_by_finite_differences(case, device):
    check_grad(lambda w: case(w, tensor), [data(3, 4)], device)


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_matches_torch(case, device):
    torch = pytest.importorskip("torch")
    values = data(3, 4)
    w = make(values, device, requires_grad=True)
    loss = case(w, tensor)
    loss.backward()
    tw = torch.tensor(values, requires_grad=True)
    tloss = case(tw, torch)
    tloss.backward()
    np.testing.assert_allclose(float(loss.item()), float(tloss.item()), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(w.grad), tw.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_pieces_of_chunk_are_refused_as_in_pytorch(device):
    x = make(data(3, 4), device, requires_grad=True) * 1.0
    first, second = x.chunk(2, dim=1)
    with pytest.raises(AutogradError, match="split/chunk/unbind"):
        first.mul_(second)
    with pytest.raises(AutogradError, match="split/chunk/unbind"):
        x.unbind(0)[1][1:].add_(1.0)


def test_a_buffer_without_grad_gains_history_through_its_view(device):
    w = make(data(4), device, requires_grad=True)
    buffer = tensor.zeros(3, 4, device=device, dtype=tensor.float64)
    row = buffer[1]
    row.add_(w * 2)
    assert buffer.requires_grad and buffer.grad_fn is not None
    (buffer * buffer).sum().backward()
    np.testing.assert_allclose(to_numpy(w.grad), 8 * data(4))


def test_a_node_that_saved_the_view_refuses_after_the_change(device):
    x = make(data(2, 3), device, requires_grad=True) * 1.0
    v = x[0]
    y = v.exp()  # saves only its own output, a fresh array
    z = v * v  # saves v itself
    v.add_(1.0)
    y.sum().backward(retain_graph=True)  # exp saved only its own output: still valid
    with pytest.raises(AutogradError, match="modified by an in-place operation"):
        z.sum().backward()


def test_without_grad_the_view_is_written_directly(device):
    x = make(data(2, 3), device, requires_grad=True) * 1.0
    with tensor.no_grad():
        x[0].mul_(0)
    assert np.all(to_numpy(x.detach())[0] == 0)


def test_a_view_made_under_no_grad_stays_out_of_the_graph(device):
    w = make(data(2, 3), device, requires_grad=True)
    with tensor.no_grad():
        v = w[0]
        w.mul_(2)  # an optimizer-style update: the view's storage changes
    assert not (v * 3).requires_grad


def test_retain_grad_follows_the_tensor_through_in_place_changes(device):
    """As in PyTorch: .grad is the gradient of the latest value (here 2 * 6), for a tensor changed in
    place and for a view whose base was."""
    w = make(np.ones(3), device, requires_grad=True)
    x = w * 2
    x.retain_grad()
    x.mul_(3)
    (x * x).sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), [12.0] * 3)
    np.testing.assert_allclose(to_numpy(w.grad), [72.0] * 3)
    base = make(np.ones((2, 3)), device, requires_grad=True) * 2
    view = base[0]
    view.retain_grad()
    base.mul_(3)
    (view * view).sum().backward()
    np.testing.assert_allclose(to_numpy(view.grad), [12.0] * 3)
