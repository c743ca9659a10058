"""tensor.utils.checkpoint: the same values and gradients as running the function directly, with
the same dropout masks on recomputation, several outputs, mixed arguments, and clear refusals."""
import numpy as np
import pytest

import tensor
import tensor.nn as nn
from tensor.errors import AutogradError
from tensor.utils.checkpoint import checkpoint

from helpers import to_numpy


def _block(device):
    tensor.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.Dropout(0.25), nn.Linear(12, 6)).to(device)


def _run(block, x, use_checkpoint):
    tensor.manual_seed(7)  # the dropout masks of this step
    y = checkpoint(block, x) if use_checkpoint else block(x)
    (y * y).sum().backward()
    grads = [to_numpy(p.grad) for p in block.parameters()] + [to_numpy(x.grad)]
    block.zero_grad()
    x.grad = None
    return to_numpy(y.detach()), grads


def test_same_values_and_gradients_with_dropout(device):
    block = _block(device)
    x = tensor.randn(5, 6, device=device, requires_grad=True)
    plain, checked = _run(block, x, False), _run(block, x, True)
    np.testing.assert_allclose(checked[0], plain[0], rtol=1e-6)
    for got, want in zip(checked[1], plain[1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_several_outputs_and_mixed_arguments(device):
    w = tensor.randn(4, 4, device=device, dtype=tensor.float64, requires_grad=True)

    def fn(a, scale, b, *, shift):
        h = (a @ w).tanh() * scale
        return h + b + shift, h.sum()

    a = tensor.randn(3, 4, device=device, dtype=tensor.float64, requires_grad=True)
    b = tensor.randn(3, 4, device=device, dtype=tensor.float64)  # no grad: gets none
    first, total = checkpoint(fn, a, 2.0, b, shift=0.5)
    (first.sum() * 3 + total).backward()
    got = to_numpy(a.grad), to_numpy(w.grad)
    a.grad = w.grad = None
    first, total = fn(a, 2.0, b, shift=0.5)
    (first.sum() * 3 + total).backward()
    np.testing.assert_allclose(got[0], to_numpy(a.grad), rtol=1e-12)
    np.testing.assert_allclose(got[1], to_numpy(w.grad), rtol=1e-12)
    assert b.grad is None


def test_nested_checkpoints(device):
    lin = nn.Linear(4, 4).to(device)
    x = tensor.randn(2, 4, device=device, requires_grad=True)
    y = checkpoint(lambda t: checkpoint(lin, t).relu(), x)
    y.sum().backward()
    got = to_numpy(x.grad)
    x.grad = None
    lin.zero_grad()
    lin(x).relu().sum().backward()
    np.testing.assert_allclose(got, to_numpy(x.grad), rtol=1e-6)


def test_refusals(device):
    x = tensor.randn(2, 3, device=device, requires_grad=True)
    with pytest.raises(AutogradError, match="must return a Tensor or a tuple of Tensors"):
        checkpoint(lambda t: float(t.sum().item()), x)
    with pytest.raises(TypeError, match="must be callable"):
        checkpoint(3, x)
    with pytest.warns(UserWarning, match="none of the inputs requires grad"):
        checkpoint(lambda t: t * 2, tensor.randn(2, device=device))



def test_non_reentrant_gives_parameters_gradients_without_input_grad(device):
    """use_reentrant=False behind a frozen input (LoRA on a frozen embedding): the block's parameters
    still get PyTorch's gradients; a fully frozen block's output stays out of the graph."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    state = {k: v.numpy() for k, v in torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 4))
             .state_dict().items()}
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)

    def run(lib, dev, use_checkpoint):
        block = lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.Tanh(), lib.nn.Linear(6, 4))
        block.load_state_dict({k.replace("1.", "2."): lib.tensor(v) for k, v in state.items()})
        block = block.to(dev)
        block[0].requires_grad_(False)
        inputs = lib.tensor(x, device=dev)
        y = lib.utils.checkpoint.checkpoint(block, inputs, use_reentrant=False) if use_checkpoint else block(inputs)
        (y * y).sum().backward()
        return [None if p.grad is None else to_numpy(p.grad) for p in block.parameters()]

    want = run(torch, "cpu", True)
    for got in (run(tensor, device, True), run(tensor, device, False)):
        assert [g is None for g in got] == [g is None for g in want] == [True, True, False, False]
        for g, w in zip(got[2:], want[2:]):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    frozen = nn.Linear(3, 3).to(device).requires_grad_(False)
    out = checkpoint(frozen, tensor.randn(2, 3, device=device), use_reentrant=False)
    assert not out.requires_grad and out.shape == (2, 3)
