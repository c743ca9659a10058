"""tensor._foreach_* (lists of tensors in one call) against torch._foreach_*."""
import numpy as np
import pytest

import tensor
from tests.tensor.helpers import make, to_numpy

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
A = [RNG.normal(size=(2, 3)), RNG.normal(size=(4,))]
B = [RNG.normal(size=(2, 3)), RNG.normal(size=(4,))]
C = [RNG.uniform(1, 2, size=(2, 3)), RNG.uniform(1, 2, size=(4,))]


def both(arrays, device):
    return [make(a, device) for a in arrays], [torch.tensor(a) for a in arrays]


CASES = {
    "add_scalar": lambda L, a, b, c: L._foreach_add_(a, 0.5),
    "add_list_alpha": lambda L, a, b, c: L._foreach_add_(a, b, alpha=0.25),
    "add_scalar_list": lambda L, a, b, c: L._foreach_add_(a, [1.0, -2.0]),
    "sub_list_alpha": lambda L, a, b, c: L._foreach_sub_(a, b, alpha=2.0),
    "mul_scalar": lambda L, a, b, c: L._foreach_mul_(a, 0.9),
    "mul_list": lambda L, a, b, c: L._foreach_mul_(a, b),
    "div_list": lambda L, a, b, c: L._foreach_div_(a, c),
    "lerp_scalar": lambda L, a, b, c: L._foreach_lerp_(a, b, 0.3),
    "lerp_tensors": lambda L, a, b, c: L._foreach_lerp_(a, b, c),
    "addcmul": lambda L, a, b, c: L._foreach_addcmul_(a, b, c, value=-0.5),
    "addcdiv": lambda L, a, b, c: L._foreach_addcdiv_(a, b, c, value=0.5),
    "copy": lambda L, a, b, c: L._foreach_copy_(a, b),
    "zero": lambda L, a, b, c: L._foreach_zero_(a),
    "neg": lambda L, a, b, c: L._foreach_neg_(a),
    "sqrt": lambda L, a, b, c: L._foreach_sqrt_(a[:0] + c),
}


@pytest.mark.parametrize("name", CASES)
def test_in_place_matches_torch(name, device):
    (a, ta), (b, tb), (c, tc) = both(A, device), both(B, device), both(C, device)
    ours_out, theirs_out = CASES[name](tensor, a, b, c), CASES[name](torch, ta, tb, tc)
    if name != "sqrt":
        assert all(x is y for x, y in zip(ours_out, a)) and len(ours_out) == len(a)
    for ours, theirs in zip(ours_out, theirs_out):
        np.testing.assert_allclose(to_numpy(ours), theirs.numpy(), rtol=1e-12)


def test_out_of_place_and_norm_match_torch(device):
    (a, ta), (b, tb) = both(A, device), both(B, device)
    for ours, theirs in [(tensor._foreach_add(a, b, alpha=2), torch._foreach_add(ta, tb, alpha=2)),
                         (tensor._foreach_mul(a, 3.0), torch._foreach_mul(ta, 3.0)),
                         (tensor._foreach_lerp(a, b, 0.5), torch._foreach_lerp(ta, tb, 0.5)),
                         (tensor._foreach_norm(a), torch._foreach_norm(ta)),
                         (tensor._foreach_exp(a), torch._foreach_exp(ta))]:
        for x, y in zip(ours, theirs):
            np.testing.assert_allclose(to_numpy(x), y.numpy(), rtol=1e-12)
    assert to_numpy(a[0]).tolist() == A[0].tolist()  # out-of-place leaves the inputs alone


def test_polyak_update_of_parameters_under_no_grad(device):
    net, target = tensor.nn.Linear(3, 2).to(device), tensor.nn.Linear(3, 2).to(device)
    expected = [0.9 * to_numpy(t) + 0.1 * to_numpy(p) for p, t in zip(net.parameters(), target.parameters())]
    with tensor.no_grad():
        tensor._foreach_lerp_(list(target.parameters()), list(net.parameters()), 0.1)
    for got, want in zip(target.parameters(), expected):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-6)
    assert all(p.requires_grad and p.grad_fn is None for p in target.parameters())


def test_errors_name_the_problem(device):
    a, b = [make(A[0], device)], [make(B[0], device), make(B[1], device)]
    with pytest.raises(ValueError, match="different lengths, 1 and 2"):
        tensor._foreach_add_(a, b)
    with pytest.raises(TypeError, match="list of Tensors, got ndarray at position 0"):
        tensor._foreach_mul_([A[0]], 2.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        tensor._foreach_mul_(a, 2.0, alpha=3)
