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
