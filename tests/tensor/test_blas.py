"""baddbmm, addbmm, addmv, addr (tensor/ops/blas.py): values and gradients against NumPy, finite
differences and PyTorch; beta=0 ignores NaN in the input; in-place forms; shape errors."""
import numpy as np
import pytest

import tensor
from tensor.errors import ShapeError

from helpers import check_grad, compare_with_torch, make, to_numpy

rng = np.random.default_rng(0)
X3, B1, B2 = rng.standard_normal((1, 3, 4)), rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 5, 4))
M, V, U = rng.standard_normal((3, 5)), rng.standard_normal(5), rng.standard_normal(3)

CASES = [  # name, arrays, NumPy reference with beta=0.5, alpha=2
    ("baddbmm", [X3, B1, B2], lambda x, a, b: 0.5 * x + 2 * (a @ b)),
    ("addbmm", [X3[0], B1, B2], lambda x, a, b: 0.5 * x + 2 * (a @ b).sum(0)),
    ("addmv", [U, M, V], lambda x, m, v: 0.5 * x + 2 * (m @ v)),
    ("addr", [M, U, V], lambda x, u, v: 0.5 * x + 2 * np.outer(u, v)),
]


@pytest.mark.parametrize("name,arrays,reference", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients(device, name, arrays, reference):
    fn = getattr(tensor, name)
    out = fn(*[make(a, device) for a in arrays], beta=0.5, alpha=2)
    np.testing.assert_allclose(to_numpy(out), reference(*arrays), rtol=1e-12)
    check_grad(lambda *xs: fn(*xs, beta=0.5, alpha=2), arrays, device)


@pytest.mark.parametrize("name,arrays,reference", CASES, ids=[c[0] for c in CASES])
def test_matches_torch(device, name, arrays, reference):
    torch = pytest.importorskip("torch")
    compare_with_torch(lambda *xs: getattr(tensor, name)(*xs, beta=0.5, alpha=2),
                       lambda *ts: getattr(torch, name)(*ts, beta=0.5, alpha=2), arrays, device)


@pytest.mark.parametrize("name,arrays,reference", CASES, ids=[c[0] for c in CASES])
def test_beta_zero_ignores_nan_and_in_place_forms(device, name, arrays, reference):
    poisoned = np.full_like(arrays[0], np.nan)
    out = getattr(tensor, name)(*[make(a, device) for a in [poisoned, *arrays[1:]]], beta=0)
    assert np.isfinite(to_numpy(out)).all()
    target = make(np.broadcast_to(arrays[0], reference(*arrays).shape).copy(), device)
    getattr(target, name + "_")(*[make(a, device) for a in arrays[1:]], beta=0.5, alpha=2)
    np.testing.assert_allclose(to_numpy(target), reference(*arrays), rtol=1e-12)


def test_shape_errors_name_the_operands(device):
    x = make(X3, device)
    with pytest.raises(ShapeError, match=r"baddbmm: batch1 \(2, 3, 5\) and batch2 \(2, 4, 5\) do not chain"):
        tensor.baddbmm(x, make(B1, device), make(B2.transpose(0, 2, 1), device))
    with pytest.raises(ShapeError, match="addmv: vec must be a 1-D tensor"):
        tensor.addmv(make(U, device), make(M, device), make(M, device))
    with pytest.raises(ShapeError, match="addmv: mat .* sizes 5 and 3 differ"):
        tensor.addmv(make(U, device), make(M, device), make(U, device))
