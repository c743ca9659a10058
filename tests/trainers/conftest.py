import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_tensorboard_or_plot_by_default():
    """tensorboardX imports PyTorch when it is installed, and drawing the curves takes a second or
    more on a busy machine; only the tests that check those files turn them on (monkeypatch.setenv).
    Session-scoped, so that module-scoped fixtures that train run without them too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYGRAD_TENSORBOARD", "0")
        patch.setenv("RAYGRAD_PLOT", "0")
        yield
