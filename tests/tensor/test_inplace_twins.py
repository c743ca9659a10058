"""The generated in-place twins (tensor/ops/inplace_twins.py): each equals PyTorch's Tensor.f_ on the
same values, records a graph when one is needed, and refuses results the tensor cannot hold."""
import numpy as np
import pytest

import tensor
from tensor.ops import inplace_twins

from helpers import make, to_numpy

UNARY = ("sign log1p expm1 log2 log10 rsqrt square reciprocal sin cos tan floor ceil round trunc erf asin acos atan "
         "sinh cosh asinh atanh arcsin arccos arctan arcsinh arctanh deg2rad rad2deg sinc exp2 erfc erfinv lgamma "
         "digamma i0 frac sgn logit negative absolute logical_not nan_to_num fix").split()
BINARY = ("atan2 arctan2 hypot xlogy copysign nextafter fmod remainder floor_divide true_divide multiply subtract "
          "divide not_equal greater greater_equal less less_equal eq ne lt le gt ge logical_and logical_or "
          "logical_xor float_power").split()
INTEGER = "bitwise_and bitwise_or bitwise_xor".split()


def values(seed=0, low=0.1, high=0.9):
    return np.random.default_rng(seed).uniform(low, high, (3, 4))


@pytest.mark.parametrize("name", UNARY + ["acosh", "arccosh"])
def test_unary_twins_match_torch(device, name):
    torch = pytest.importorskip("torch")
    a = values(low=1.1, high=3.0) if "cosh" in name and name.startswith("a") else values()
    ours, ref = make(a, device), torch.tensor(a)
    assert getattr(ours, name + "_")() is ours
    getattr(ref, name + "_")()
    np.testing.assert_allclose(to_numpy(ours), ref.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", BINARY)
def test_binary_twins_match_torch(device, name):
    torch = pytest.importorskip("torch")
    a, b = values(0), values(1, 0.2, 1.5)
    ours, ref = make(a, device), torch.tensor(a)
    getattr(ours, name + "_")(make(b, device))
    getattr(ref, name + "_")(torch.tensor(b))
    np.testing.assert_allclose(to_numpy(ours), ref.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", INTEGER + ["bitwise_not"])
def test_integer_twins_match_torch(device, name):
    torch = pytest.importorskip("torch")
    a, b = np.arange(12).reshape(3, 4), np.arange(12)[::-1].reshape(3, 4).copy()
    ours, ref = make(a, device), torch.tensor(a)
    args = () if name == "bitwise_not" else (b,)
    getattr(ours, name + "_")(*[make(x, device) for x in args])
    getattr(ref, name + "_")(*[torch.tensor(x) for x in args])
    np.testing.assert_array_equal(to_numpy(ours), ref.numpy())


def test_twins_with_arguments(device):
    x = make(np.array([-2.0, 0.5, 3.0]), device)
    assert to_numpy(x.clamp_min_(0)).tolist() == [0.0, 0.5, 3.0]
    assert to_numpy(x.clamp_max_(1)).tolist() == [0.0, 0.5, 1.0]
    assert to_numpy(x.clip_(0.25, 0.75)).tolist() == [0.25, 0.5, 0.75]
    assert to_numpy(make(np.array([1.26]), device).round_(decimals=1)).tolist() == [1.3]
    assert to_numpy(make(np.ones(3), device).cumsum_(0)).tolist() == [1.0, 2.0, 3.0]
    m = make(np.eye(2), device).addmm_(make(np.ones((2, 2)), device), make(np.ones((2, 2)), device), beta=0.5,
                                      alpha=2)
    np.testing.assert_allclose(to_numpy(m), [[4.5, 4.0], [4.0, 4.5]])
    assert make(np.ones((2, 3)), device).swapdims_(0, 1).shape == (3, 2)
    assert tensor.fix(make(np.array([-2.7, 2.7]), device)).tolist() == [-2.0, 2.0]


def test_twins_record_gradients_for_their_operands(device):
    w = make(np.array([0.5, 2.0]), device, requires_grad=True)
    y = make(np.array([1.0, 1.0]), device) * 1  # a non-leaf: an in-place change is recorded
    y.hypot_(w)
    y.sum().backward()
    np.testing.assert_allclose(to_numpy(w.grad), np.array([0.5, 2.0]) / np.hypot(1.0, [0.5, 2.0]))


def test_twins_refuse_what_the_tensor_cannot_hold(device):
    with pytest.raises(tensor.DTypeError, match="sin_: result type float32 can't be cast to the tensor's dtype int64"):
        make(np.array([1, 2]), device).sin_()
    with pytest.raises(tensor.ShapeError, match=r"atan2_: result shape \(2, 3\) does not match"):
        make(np.ones(3), device).atan2_(make(np.ones((2, 3)), device))
    assert inplace_twins.swapaxes_ is inplace_twins.swapdims_
