import pytest


@pytest.fixture(autouse=True)
def _no_tensorboard_or_plot_by_default(monkeypatch):
    """tensorboardX imports PyTorch when it is installed, and drawing the curves takes a second or
    more on a busy machine; only the tests that check those files turn them on."""
    monkeypatch.setenv("RAYGRAD_TENSORBOARD", "0")
    monkeypatch.setenv("RAYGRAD_PLOT", "0")
