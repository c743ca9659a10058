"""GPU tests: the `device` fixture becomes "cuda"; without CuPy and a GPU they skip (tests/conftest.py)."""
import pytest


@pytest.fixture
def device():
    return "cuda"
