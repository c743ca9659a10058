"""GPU tests: the `device` fixture becomes "cuda"; everything here skips cleanly without CuPy and a GPU."""
import pytest


def _cuda_available():
    try:
        import tensor

        return tensor.cuda.is_available()
    except Exception:
        return False


CUDA = _cuda_available()


def pytest_collection_modifyitems(config, items):
    if CUDA:
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


@pytest.fixture
def device():
    return "cuda"
