"""Fixtures for the examples' tests (helpers live in example_helpers.py)."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_tensorboard_or_plot():
    """Training runs here need neither TensorBoard files nor curve plots (both cost seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYGRAD_TENSORBOARD", "0")
        patch.setenv("RAYGRAD_PLOT", "0")
        yield
