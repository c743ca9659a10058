"""Pointwise fused CuPy kernels: gelu and silu forward and backward, relu backward, each built once on
first use.

An op calls these only when its `ctx.xp` is cupy, and CuPy is imported inside the cached getters,
so the NumPy path never touches it. gelu and silu are memory-bound: composed from CuPy ufuncs
their forward and backward read and write the tensor 6 to 12 times; a fused kernel once.

The kernels take float32 or float64 (`T`); CUDA's math functions are overloaded for both, so
each body computes in the tensor's own precision. Callers use the composed path for float16.
"""
from __future__ import annotations

import functools

_GELU_FORWARD = {
    "none": "y = x * (T(0.5) + T(0.5) * erf(x * T(0.70710678118654752)));",
    "tanh": """
        const T inner = T(0.79788456080286536) * (x + T(0.044715) * x * x * x);
        y = T(0.5) * x * (T(1) + tanh(inner));
    """,
}

_GELU_BACKWARD = {
    "none": """
        const T cdf = T(0.5) + T(0.5) * erf(x * T(0.70710678118654752));
        const T pdf = exp(T(-0.5) * x * x) * T(0.39894228040143268);
        dx = g * (cdf + x * pdf);
    """,
    "tanh": """
        // x clipped to +-40 where tanh is +-1: x^2 stays finite, so (1 - t^2) * d_inner is 0, not 0 * inf
        const T xc = x > T(40) ? T(40) : (x < T(-40) ? T(-40) : x);
        const T x2 = xc * xc;
        const T t = tanh(T(0.79788456080286536) * (xc + T(0.044715) * x2 * xc));
        const T d_inner = T(0.79788456080286536) * (T(1) + T(0.134145) * x2);
        dx = g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * d_inner);
    """,
}


@functools.cache
def gelu_forward(approximate: str):
    """y = gelu(x); approximate is 'none' (erf) or 'tanh'."""
    import cupy

    return cupy.ElementwiseKernel("T x", "T y", _GELU_FORWARD[approximate], f"raygrad_gelu_{approximate}_forward")


@functools.cache
def gelu_backward(approximate: str):
    """dx = g * gelu'(x), recomputing the CDF from x rather than storing it."""
    import cupy

    return cupy.ElementwiseKernel(
        "T g, T x", "T dx", _GELU_BACKWARD[approximate], f"raygrad_gelu_{approximate}_backward"
    )


@functools.cache
def silu_forward():
    """y = x * sigmoid(x); exp(-x) may overflow to inf for very negative x, giving y = -0."""
    import cupy

    return cupy.ElementwiseKernel("T x", "T y", "y = x / (T(1) + exp(-x));", "raygrad_silu_forward")


@functools.cache
def silu_backward():
    """dx = g * s * (1 + x * (1 - s)) with s = sigmoid(x)."""
    import cupy

    return cupy.ElementwiseKernel(
        "T g, T x",
        "T dx",
        """
        const T s = T(1) / (T(1) + exp(-x));
        dx = g * s * (T(1) + x * (T(1) - s));
        """,
        "raygrad_silu_backward",
    )


@functools.cache
def erf():
    """CuPy's erf ufunc (cupyx.scipy.special.erf); NumPy has none, so unary.py carries its own."""
    import cupyx.scipy.special

    return cupyx.scipy.special.erf


@functools.cache
def relu_backward():
    """dx = g where y > 0, else g * 0 (NaN for a NaN or infinite g, as the composed g * (y > 0)): one
    launch instead of a comparison and a product. Any float dtype, float16 included."""
    import cupy

    return cupy.ElementwiseKernel("T y, T g", "T dx", "dx = y > T(0) ? g : g * T(0);", "raygrad_relu_backward")
