"""examples/interop: zero-copy NumPy and DLPack exchange, scikit-learn on raygrad features."""
import pytest

from example_helpers import load_example

interop = load_example("interop/interop.py")


def test_numpy_shares_memory_both_ways():
    facts = interop.numpy_interop()
    assert facts == {"shared": True, "seen_write": True}


def test_torch_dlpack_is_zero_copy_both_ways():
    pytest.importorskip("torch")
    facts = interop.torch_interop()
    assert facts == {"to_torch": True, "from_torch": True, "seen_write": True}


def test_sklearn_fits_on_raygrad_features():
    pytest.importorskip("sklearn")
    facts = interop.sklearn_interop(epochs=2)
    assert facts["mlp_accuracy"] > 0.8 and facts["probe_accuracy"] > 0.8  # chance is 0.1
