"""Fixtures shared by the whole suite.

`device`: the device the engine's op tests run on. It is "cpu" here; tests/gpu/conftest.py
overrides it with "cuda" and re-runs the same op tests there (skipped without CUDA).
"""
import numpy as np
import pytest


@pytest.fixture
def device():
    return "cpu"


@pytest.fixture
def rng():
    return np.random.default_rng(0)
