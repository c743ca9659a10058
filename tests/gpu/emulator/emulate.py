"""Run tensor/kernels' CUDA row kernels on the CPU, for working on them without a GPU.

`build(body, dtype_char)` compiles a row-kernel family's CUDA source as C++20 against shim.h (the
CUDA execution model on std::threads, and a C++ twin of the device preamble), one shared library
per (source, dtype), and wraps each `extern "C" __global__` kernel so it takes CuPy-style launch
arguments: `kernel(grid, block, args)` with NumPy arrays for pointers and NumPy scalars for values.

`emulated(*kernel_modules)` patches _rows and the given kernel modules so that their Python
wrappers run unchanged on NumPy arrays: NumPy stands in for CuPy, the compiled C++ for the GPU.

Needs g++ 12 or newer (C++20 <barrier>, _Float16). Slow: every CUDA thread is an OS thread.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tensor.kernels import _rows

SHIM = Path(__file__).with_name("shim.h")
BUILD = Path(os.environ.get("RAYGRAD_EMULATOR_BUILD", Path(tempfile.gettempdir()) / "raygrad-kernel-emulator"))
_SIGNATURE = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(([^)]*)\)', re.DOTALL)
_VALUE_TYPES = {"long long": ctypes.c_longlong, "int": ctypes.c_int, "float": ctypes.c_float,
                "double": ctypes.c_double}


@functools.cache
def build(body: str, dtype_char: str) -> dict:
    """{kernel name: callable(grid, block, args)} for one kernel family and dtype ('e', 'f', 'd')."""
    storage, acc = _rows.C_TYPES[dtype_char]
    kernels, wrappers = {}, []
    for name, text in _SIGNATURE.findall(body):
        params = _parameters(text)
        kernels[name] = params
        declared = ", ".join(f"{kind} {param}" for kind, param in params)
        passed = ", ".join(param for _, param in params)
        wrappers.append(f'extern "C" void emu_{name}(unsigned gx, unsigned gy, unsigned bx, unsigned by, {declared}) '
                        f'{{ emu_launch(Dim3{{gx, gy, 1}}, Dim3{{bx, by, 1}}, [&] {{ {name}({passed}); }}); }}')
    source = (f"#define EMU_STORAGE {storage}\n#define EMU_ACC {acc}\n" + SHIM.read_text() + _rows.REDUCTIONS + body
              + "\n" + "\n".join(wrappers) + "\n")
    library = _compile(source)
    return {name: _Kernel(getattr(library, f"emu_{name}"), params, acc) for name, params in kernels.items()}


def _parameters(text: str) -> list[tuple[str, str]]:
    """[(C type, name)] of a kernel's parameter list."""
    out = []
    for param in (" ".join(p.split()) for p in text.split(",") if p.strip()):
        name = re.findall(r"(\w+)$", param)[0]
        out.append((param[: -len(name)].strip(), name))
    return out


def _compile(source: str):
    BUILD.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(source.encode()).hexdigest()[:16]
    library = BUILD / f"{key}.so"
    if not library.exists():
        cpp = BUILD / f"{key}.cpp"
        cpp.write_text(source)
        subprocess.run(["g++", "-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-Wall", "-Wno-unused-function",
                        "-o", str(library), str(cpp)], check=True)
    return ctypes.CDLL(str(library))


class _Kernel:
    """A compiled kernel, called like a cupy RawKernel: kernel(grid, block, args)."""

    def __init__(self, function, params, acc):
        self.function, self.params = function, params
        types = []
        for kind, _ in params:
            kind = kind.replace("const", "").replace("__restrict__", "").strip()
            if "*" in kind:
                types.append(ctypes.c_void_p)
            else:
                types.append(_VALUE_TYPES[acc if kind == "A" else kind])
        function.argtypes = [ctypes.c_uint] * 4 + types
        function.restype = None

    def __call__(self, grid, block, args):
        if len(args) != len(self.params):
            raise TypeError(f"{len(args)} arguments for {len(self.params)} parameters {self.params}")
        values, keep = [], []
        for value, (kind, name) in zip(args, self.params):
            if "*" not in kind:
                if not isinstance(value, np.generic):
                    raise TypeError(f"{name}: pass a NumPy scalar of the exact C type, got {type(value).__name__}")
                values.append(value.item())
            elif isinstance(value, np.uint64) and value == 0:
                values.append(None)  # _rows.NULL
            else:
                # The address of the first element, as CuPy passes it: a kernel that takes a strided
                # array also takes its strides (the row kernels' wrappers make theirs contiguous).
                array = np.asarray(value)  # CuPy's 0-d results are NumPy scalars under emulation
                keep.append(array)
                values.append(array.ctypes.data)
        grid, block = tuple(grid) + (1,) * (2 - len(grid)), tuple(block) + (1,) * (2 - len(block))
        self.function(grid[0], grid[1], block[0], block[1], *values)


class _Module:
    def __init__(self, kernels):
        self._kernels = kernels

    def get_function(self, name):
        return self._kernels[name]


@contextlib.contextmanager
def emulated(*kernel_modules):
    """Inside: _rows compiles for the CPU, launches need no device, and `kernel_modules` see NumPy as CuPy."""
    saved = [(_rows, "module", _rows.module), (_rows, "device_scope", _rows.device_scope)]
    _rows.module = lambda body, dtype_char: _Module(build(body, dtype_char))
    _rows.device_scope = lambda array: contextlib.nullcontext()
    for module in kernel_modules:
        saved.append((module, "cupy_module", module.cupy_module))
        module.cupy_module = lambda: np
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
