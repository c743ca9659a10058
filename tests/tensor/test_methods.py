"""The method table in tensor/methods.py is complete, and operators mean what they mean in PyTorch."""
import pytest

import tensor


def test_every_listed_method_is_bound():
    assert tensor.methods.missing == []


def test_free_functions_do_not_shadow_dtypes():
    assert tensor.float is tensor.float32 and tensor.bool is tensor.dtypes.bool and tensor.long is tensor.int64


def test_bitwise_operators_on_ints_logical_on_bools(device):
    a = tensor.tensor([5, 6], device=device)
    assert (a & 3).tolist() == [1, 2] and (a | 1).tolist() == [5, 7] and (a ^ 1).tolist() == [4, 7]
    flags = tensor.tensor([True, False], device=device)
    assert (~flags).tolist() == [False, True] and (flags & True).tolist() == [True, False]
    with pytest.raises(tensor.DTypeError, match="bitwise_and: needs integer or bool"):
        tensor.ones(2, device=device) & 1


def test_numpy_names_for_dim_and_keepdim_as_in_torch(device):
    x = tensor.arange(6.0, device=device).reshape(2, 3)
    assert x.sum(axis=1, keepdims=True).tolist() == [[3.0], [12.0]]
    assert tensor.mean(x, axis=0).tolist() == [1.5, 2.5, 3.5]
    assert x.max(axis=1)[1].tolist() == [2, 2] and x.argmax(axis=0).tolist() == [1, 1, 1]
    assert tensor.cat([x, x], axis=1).shape == (2, 6) and x.softmax(axis=-1).shape == (2, 3)
    with pytest.raises(TypeError, match="both 'dim' and its alias 'axis'"):
        x.sum(dim=0, axis=1)
