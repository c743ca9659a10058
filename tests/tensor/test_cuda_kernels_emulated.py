"""The CUDA kernels of tensor/kernels, run on the CPU by tests/gpu/emulator (no GPU needed), so CI
checks them on every change: max_pool2d, im2col/col2im through the convolutions, and the attention's
fused softmax, each against the NumPy path in float16/32/64. The emulator compiles the kernels' CUDA
source as C++20 (g++ 12 or newer); without one these tests skip. tests/gpu runs them on a real GPU.
"""
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

EMULATOR = Path(__file__).resolve().parents[1] / "gpu" / "emulator"


def _gxx_major() -> int:
    if shutil.which("g++") is None:
        return 0
    version = subprocess.run(["g++", "-dumpversion"], capture_output=True, text=True).stdout
    match = re.match(r"(\d+)", version)
    return int(match.group(1)) if match else 0


pytestmark = pytest.mark.skipif(_gxx_major() < 12, reason="the kernel emulator needs g++ 12 or newer (C++20)")


@pytest.fixture(scope="module")
def check():
    """tests/gpu/emulator/check.py, loaded under a name of its own (it puts its folder on sys.path)."""
    spec = importlib.util.spec_from_file_location("raygrad_emulator_check", EMULATOR / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_max_pool_kernels(check):
    check.check_max_pool(np.random.default_rng(0))


def test_im2col_and_col2im_kernels(check):
    check.check_convolutions(np.random.default_rng(1))


def test_attention_takes_the_fused_softmax(check):
    check.check_attention(np.random.default_rng(2))
