"""Check tensor/kernels' raw kernels without a GPU: compile them with NVRTC, run them emulated.

    python tests/gpu/emulator/check.py [--quick] [--nvrtc PATH/libnvrtc.so.13]

1. NVRTC (when a libnvrtc is found: --nvrtc, $RAYGRAD_NVRTC, or a pip nvidia-cuda-nvrtc package):
   every kernel family for float16/32/64 compiled for sm_90 with CuPy's options, with
   ptxas' register and spill report. Catches what only the CUDA compiler sees.
2. Emulation (emulate.py): F.softmax, F.log_softmax, F.cross_entropy, F.layer_norm and F.max_pool2d
   through the fused Functions, kernels run on CPU threads, against the NumPy path in float64: outputs and
   gradients on many shapes and options, special values, and finite-difference gradients.

Neither replaces tests/gpu/test_kernels.py on a GPU; they catch most mistakes before one is lent.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import os
import re
import site
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/gpu: the shared kernel cases

from emulate import emulated
from kernel_cases import CONVS, POOLS

import tensor
import tensor.nn.functional as F
from tensor import kernels
from tensor.autograd import gradcheck
from tensor.kernels import _rows, columns, cross_entropy, layer_norm, max_pool, softmax

FAMILIES = (softmax, cross_entropy, layer_norm, max_pool, columns)
# What CuPy 14 passes NVRTC for a RawModule without options on an H100 (cupy/cuda/compiler.py)
CUPY_OPTIONS = ["-std=c++11", "-arch=sm_90", "-ftz=true", "--device-as-default-execution-space"]
TOLERANCE = {np.float16: 4e-3, np.float32: 2e-5, np.float64: 1e-11}


# ---------------------------------------------------------------------------------------- NVRTC


def find_nvrtc(explicit):
    candidates = [explicit, os.environ.get("RAYGRAD_NVRTC")]
    for base in site.getsitepackages():
        candidates += sorted(glob.glob(f"{base}/nvidia/**/libnvrtc.so*", recursive=True))
    return next((c for c in candidates if c and os.path.exists(c) and "builtins" not in c), None)


def nvrtc_compile(lib, source, options):
    program = ctypes.c_void_p()
    lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"kernels.cu", 0, None, None)
    encoded = [o.encode() for o in options]
    status = lib.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    return status, log.value.decode()


def check_nvrtc(path) -> bool:
    # libnvrtc loads libnvrtc-builtins from its own folder only through the loader's search path
    os.environ["LD_LIBRARY_PATH"] = os.path.dirname(path) + ":" + os.environ.get("LD_LIBRARY_PATH", "")
    ctypes.CDLL(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*"))[0], mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(path)
    ok = True
    for family in FAMILIES:
        for char in "efd":
            status, log = nvrtc_compile(lib, _rows.render(family._SOURCE, char),
                                        CUPY_OPTIONS + ["--ptxas-options=-v"])
            report = list(zip(re.findall(r"entry function '(\w+)'", log), re.findall(r"Used (\d+) registers", log),
                              re.findall(r"(\d+) bytes spill stores", log)))
            spills = any(int(s) for _, _, s in report)
            ok &= status == 0 and not spills
            name = family.__name__.rsplit(".", 1)[1]
            print(f"  nvrtc {name:<14} {np.dtype(char).name:<8} {'ok' if status == 0 else 'FAILED'}  "
                  + ", ".join(f"{k}: {r} registers, {s} B spilled" for k, r, s in report))
            if status:
                print(log)
    return ok


# ---------------------------------------------------------------------------------------- emulation


@contextlib.contextmanager
def fused_on_cpu():
    """CPU tensors take the fused Functions (the predicates say yes), their kernels emulated."""
    saved = (kernels.fits_rows, kernels.cross_entropy_fits, kernels.layer_norm_fits, kernels.max_pool_fits,
             kernels.columns_fit)
    kernels.fits_rows = lambda xp, x, dim: x.dtype.char in "efd" and x.ndim >= 1 and dim == x.ndim - 1 and x.size > 0
    kernels.cross_entropy_fits = lambda x, t: x.dtype.char in "efd" and x.ndim in (1, 2) and x.size > 0
    kernels.layer_norm_fits = lambda x, w, b: x.size > 0 and all(p is None or p.dtype == x.dtype for p in (w, b))
    kernels.max_pool_fits = lambda x: x.dtype.char in "efd" and x.ndim == 4 and x.size > 0
    kernels.columns_fit = lambda x: x.dtype.char in "efd" and x.size > 0
    try:
        with emulated(*FAMILIES):
            yield
    finally:
        (kernels.fits_rows, kernels.cross_entropy_fits, kernels.layer_norm_fits, kernels.max_pool_fits,
         kernels.columns_fit) = saved


def run(fn, arrays, dtype):
    inputs = [tensor.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*inputs)
    weight = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(dtype).astype(out.dtype)
    (out * tensor.tensor(weight)).sum().backward()
    return [out.detach().numpy()] + [t.grad.numpy() if t.grad is not None else None for t in inputs]


def compare(label, fn, arrays, dtype):
    """Fused (emulated) in `dtype` against the NumPy path in float64; returns the relative error."""
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    want = run(fn, [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays], dtype)
    with fused_on_cpu():
        got = run(fn, arrays, dtype)
    worst = 0.0
    for index, (g, w) in enumerate(zip(got, want)):
        if w is None:
            continue
        if g.dtype != dtype or not np.array_equal(np.isnan(g), np.isnan(w)):
            raise AssertionError(f"{label}: result {index} has dtype {g.dtype} or a different NaN pattern")
        g, w = g[~np.isnan(g)].astype(np.float64), w[~np.isnan(w)]
        error = np.max(np.abs(g - w), initial=0.0) / max(np.max(np.abs(w), initial=0.0), 1e-3)
        if error >= TOLERANCE[dtype]:
            raise AssertionError(f"{label}: result {index} off by {error:.2e} (tolerance {TOLERANCE[dtype]:.0e})")
        worst = max(worst, error)
    return worst


def check_emulated(quick: bool) -> None:
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (7, 10), (33, 100), (2, 1500)] if quick else [
        (1, 1), (6, 10), (33, 31), (4, 100), (3, 1024), (2, 1025), (2, 3000), (1, 40000)]
    ce_options = [{}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.1}, {"weight": True},
                  {"weight": True, "label_smoothing": 0.2, "reduction": "none"}, {"ignore": True}]
    for dtype in (np.float64, np.float32, np.float16):
        worst = 0.0
        for n, c in shapes:
            x = rng.standard_normal((n, c)) * 3
            worst = max(worst, compare(f"softmax {n}x{c}", lambda a: F.softmax(a, dim=-1), [x], dtype))
            worst = max(worst, compare(f"log_softmax {n}x{c}", lambda a: F.log_softmax(a, dim=-1), [x], dtype))
            for options in ce_options:
                worst = max(worst, compare(f"cross_entropy {n}x{c} {options}", *_ce_case(rng, x, options), dtype))
            params = [rng.random(c) + 0.5, rng.standard_normal(c)]
            worst = max(worst, compare(f"layer_norm {n}x{c}", lambda a, w, b, c=c: F.layer_norm(a, (c,), w, b),
                                       [x + 3, *params], dtype))
            worst = max(worst, compare(f"layer_norm plain {n}x{c}", lambda a, c=c: F.layer_norm(a, (c,)), [x], dtype))
        many = rng.standard_normal((3000, 6))
        worst = max(worst, compare("layer_norm 3000 rows", lambda a, w, b: F.layer_norm(a, (6,), w, b),
                                   [many, rng.random(6), rng.random(6)], dtype))
        print(f"  emulated vs NumPy, {np.dtype(dtype).name:<8} largest relative error {worst:.1e}")
    check_max_pool(rng)
    check_convolutions(rng)
    check_attention(rng)
    check_special_values()
    check_gradients(rng)


def check_convolutions(rng):
    """im2col and col2im through conv2d, conv_transpose2d and conv1d, against the NumPy path."""
    for dtype in (np.float64, np.float32, np.float16):
        worst = 0.0
        for options, k in CONVS:
            x, b = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal(6)
            w = rng.standard_normal((6, 4 // options.get("groups", 1), k, k))
            conv = lambda a, w, b, o=options: F.conv2d(a, w, b, **o)  # noqa: E731
            worst = max(worst, compare(f"conv2d {options} k{k}", conv, [x, w, b], dtype))
            # a convolution's output is channels-outermost: im2col reads it through its strides
            cnhw = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
            conv_t = lambda a, w, b, o=options: F.conv2d(a.permute(1, 0, 2, 3), w, b, **o)  # noqa: E731
            worst = max(worst, compare(f"conv2d (C, N) order {options} k{k}", conv_t, [cnhw, w, b], dtype))
        x, w = rng.standard_normal((2, 4, 5, 4)), rng.standard_normal((4, 3, 3, 3))
        up = lambda a, w: F.conv_transpose2d(a, w, stride=2, padding=1, output_padding=1)  # noqa: E731
        worst = max(worst, compare("conv_transpose2d stride 2", up, [x, w], dtype))
        line = lambda a, w: F.conv1d(a, w, padding=2, dilation=2)  # noqa: E731
        worst = max(worst, compare("conv1d", line, [rng.standard_normal((3, 2, 9)), rng.standard_normal((5, 2, 3))],
                                   dtype))
        print(f"  convolutions emulated vs NumPy, {np.dtype(dtype).name:<8} largest relative error {worst:.1e}")


def check_attention(rng):
    """scaled_dot_product_attention takes the fused softmax without a user mask (causal or not)."""
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    for dtype in (np.float64, np.float32):
        for causal in (False, True):
            sdpa = lambda a, b, c, m=causal: F.scaled_dot_product_attention(a, b, c, is_causal=m)  # noqa: E731
            compare(f"sdpa causal={causal}", sdpa, [q, k, v], dtype)
    print("  scaled_dot_product_attention (fused softmax, causal and not) as the NumPy path")


def check_max_pool(rng):
    """The fused max pool against the NumPy path: options, both memory orders, unbatched, NaN."""
    for dtype in (np.float64, np.float32, np.float16):
        worst = 0.0
        for options in POOLS:
            x = rng.standard_normal((2, 3, 7, 6))
            worst = max(worst, compare(f"max_pool2d {options}", lambda a, o=options: F.max_pool2d(a, **o), [x], dtype))
            # a convolution's output is channels-outermost: the kernel reads it through its strides
            cnhw = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
            worst = max(worst, compare(f"max_pool2d (C, N) order {options}",
                                       lambda a, o=options: F.max_pool2d(a.permute(1, 0, 2, 3), **o), [cnhw], dtype))
        unbatched = rng.standard_normal((2, 5, 5))
        worst = max(worst, compare("max_pool2d 3-d", lambda a: F.max_pool2d(a, 3, 1, 1), [unbatched], dtype))
        x = rng.standard_normal((1, 2, 4, 4))
        x[0, 0, 1, 1] = x[0, 1, 2, 3] = np.nan
        worst = max(worst, compare("max_pool2d NaN", lambda a: F.max_pool2d(a, 3, 1), [x], dtype))
        print(f"  max_pool2d emulated vs NumPy, {np.dtype(dtype).name:<8} largest relative error {worst:.1e}")


def _ce_case(rng, x, options):
    options = dict(options)
    n, c = x.shape
    target = rng.integers(0, c, n)
    if options.pop("ignore", False):
        target[1::2] = -100
    if options.pop("weight", False):
        return (lambda a, t, w: F.cross_entropy(a, t, weight=w, **options)), [x, target, rng.random(c) + 0.5]
    return (lambda a, t: F.cross_entropy(a, t, **options)), [x, target]


def check_special_values():
    inf, nan = np.inf, np.nan
    x = np.array([[0, -inf, 1], [-inf, -inf, -inf], [inf, 0, 1], [nan, 0, 1], [-inf, 2, -inf], [1e4, 1e4 - 1, -1e4]],
                 np.float32)
    for op in (F.softmax, F.log_softmax):
        with np.errstate(all="ignore"):
            want = op(tensor.tensor(x), dim=-1).numpy()
            with fused_on_cpu():
                got = op(tensor.tensor(x), dim=-1).numpy()
        assert np.array_equal(np.isnan(got), np.isnan(want)), (op.__name__, got, want)
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-6, atol=1e-6)
    print("  special values (-inf, +inf, NaN, all -inf, large logits) as in the NumPy path")


def check_gradients(rng):
    with fused_on_cpu():
        for shape in [(3, 5), (2, 40)]:
            x = tensor.tensor(rng.standard_normal(shape) * 3, requires_grad=True)
            target = tensor.tensor(np.array([1, -100, 0][: shape[0]]))
            weight = tensor.tensor(rng.random(shape[1]) + 0.5)
            w = tensor.tensor(rng.random(shape[1]) + 0.5, requires_grad=True)
            b = tensor.tensor(rng.standard_normal(shape[1]), requires_grad=True)
            assert gradcheck(lambda a: F.softmax(a, dim=-1), [x])
            assert gradcheck(lambda a: F.log_softmax(a, dim=-1), [x])
            assert gradcheck(lambda a, t=target, k=weight: F.cross_entropy(a, t, weight=k, label_smoothing=0.1), [x])
            assert gradcheck(lambda a, w, b, n=shape[1]: F.layer_norm(a, (n,), w, b), [x, w, b])
    print("  finite-difference gradients in float64 (softmax, log_softmax, cross_entropy, layer_norm)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes (several minutes: every CUDA thread is an OS thread)")
    parser.add_argument("--nvrtc", help="path of libnvrtc.so (default: $RAYGRAD_NVRTC or a pip nvidia package)")
    args = parser.parse_args(argv)
    ok = True
    path = find_nvrtc(args.nvrtc)
    if path:
        print(f"NVRTC ({path}):")
        ok = check_nvrtc(path)
    else:
        print("NVRTC: no libnvrtc found (pip download nvidia-cuda-nvrtc, unzip, pass --nvrtc): compile check skipped")
    print("emulation:")
    check_emulated(args.quick)
    print("all checks passed" if ok else "NVRTC reported errors or spills")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
