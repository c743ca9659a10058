"""Fixtures shared by the whole suite.

`device`: the device the engine's op tests run on: "cpu", or what `--device` names.
`pytest tests/tensor --device cuda` (benchmarks/gpu_check.sh's engine stage) runs every test that
takes `device` on the GPU and deselects the rest; tests/gpu/conftest.py makes it "cuda" for its own
tests. Both skip cleanly without CuPy and a GPU.
"""
import os
import sys

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", choices=("cpu", "cuda"),
                     help="the device of the tests that take the `device` fixture; with cuda, only those run")


def pytest_collection_modifyitems(config, items):
    """With --device cuda, keep only the tests that take `device`. The tests that then run on the GPU
    (those, or tests/gpu's in any run) skip where there is no CuPy and GPU."""
    if config.getoption("--device") == "cuda":
        takes_device = ["device" in getattr(item, "fixturenames", ()) for item in items]
        config.hook.pytest_deselected(items=[item for item, keep in zip(items, takes_device) if not keep])
        items[:] = [item for item, keep in zip(items, takes_device) if keep]
        on_gpu = items
    else:
        on_gpu = [item for item in items if "tests/gpu/" in str(item.fspath).replace("\\", "/")]
    if on_gpu and not _cuda_available():
        skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
        for item in on_gpu:
            item.add_marker(skip)


def _cuda_available():
    try:
        import tensor

        return tensor.cuda.is_available()
    except Exception:  # an unusable CUDA stack means no GPU here, whatever the reason
        return False


@pytest.fixture
def device(request):
    return request.config.getoption("--device")


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
        # Functions defined in test modules are pickled by reference (module + name), so the actors must
        # import those modules: the raylet and its workers inherit PYTHONPATH from this process, so name
        # the folders pytest put on sys.path there while the cluster starts (no runtime_env: that would
        # start every worker through an extra interpreter).
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [p for p in sys.path if os.path.abspath(p or ".").startswith(repo)] + [repo]
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + ([saved] if saved else [])))
        try:
            # address="local": always a fresh cluster of our own, even where `ray start` left one running
            ray.init(address="local", num_cpus=4, include_dashboard=False, namespace="raygrad-tests",
                     log_to_driver=True)
        finally:
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved
    yield ray.get_runtime_context()
    if started_here:
        ray.shutdown()


@pytest.fixture
def sigint_raises():
    """Ctrl-C tests send SIGINT to this process: make sure it raises KeyboardInterrupt here.

    A command started in the background by a non-interactive shell (`pytest &`) inherits SIGINT as
    ignored, and Python then never installs its handler; restore the default for the test's duration.
    """
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
