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


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole suite (4 logical CPUs, no dashboard), shut down at the end.

    Ray tests take this fixture instead of calling ray.init themselves; a test that needs a cluster of
    another shape runs it in a subprocess (see tests/dist/test_crossnode.py).
    """
    ray = pytest.importorskip("ray")
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=4, include_dashboard=False, namespace="raygrad-tests", log_to_driver=True)
    yield ray.get_runtime_context()
    if started_here:
        ray.shutdown()
