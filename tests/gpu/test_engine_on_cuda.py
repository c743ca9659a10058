"""The engine's whole suite (ops, autograd, nn, optim) once more, on cuda.

Every test under tests/tensor that takes the `device` fixture is collected here too; in this
folder tests/gpu/conftest.py makes that fixture "cuda", and skips everything without a GPU.
"""
import importlib
import inspect
import pathlib
import sys

_ENGINE_TESTS = pathlib.Path(__file__).resolve().parents[1] / "tensor"


def _takes_device(obj) -> bool:
    try:
        return "device" in inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False


def _collect():
    found = {}
    for path in sorted(_ENGINE_TESTS.rglob("test_*.py")):
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))  # the suites import their local `helpers`
        module = importlib.import_module(path.stem)
        for name, obj in vars(module).items():
            if name.startswith("test_") and callable(obj) and _takes_device(obj):
                found[f"{name}__{path.stem}"] = obj
    return found


globals().update(_collect())
