"""tensor.jit: the TorchScript names that model code uses while it runs eagerly.

Model code written for PyTorch marks itself up for TorchScript: timm's Attention declares
`fused_attn: torch.jit.Final[bool]` in its class body, torchvision guards Python-only branches with
`if not torch.jit.is_scripting():`, and helpers carry `@torch.jit.ignore` or `@torch.jit.unused`.
raygrad runs eagerly and has no TorchScript, so these are what they are in eager torch: `Final` is
typing.Final, nothing is ever being scripted or traced, and the decorators return what they decorate.
`script` and `trace` return the Module or function itself, as `tensor.compile` does (see compiler.py),
so a script that scripts its model still runs, with the same results; there is no `jit.save`. RWKV's
`class RNN(torch.jit.ScriptModule)` with `@torch.jit.script_method` methods is an nn.Module with plain
methods.
"""
from __future__ import annotations

from typing import Final

__all__ = ["Final", "ScriptModule", "annotate", "export", "ignore", "is_scripting", "is_tracing", "script",
           "script_method", "trace", "unused"]


def is_scripting():
    """False: code never runs under TorchScript here."""
    return False


def is_tracing():
    """False: code never runs under the tracer here."""
    return False


def annotate(the_type, the_value):
    """`the_value` itself: a type hint for TorchScript, as in eager torch."""
    return the_value


def ignore(drop=False, **kwargs):
    """`@ignore` and `@ignore(drop=True)`: the function itself (TorchScript leaves it as Python)."""
    if callable(drop):
        return drop
    return lambda fn: fn


def unused(fn):
    """`@unused`: the function itself (TorchScript would replace it by a raise)."""
    return fn


def export(fn):
    """`@export`: the method itself (TorchScript would compile it as an entry point)."""
    return fn


def _passthrough(name, obj):
    if not callable(obj):
        raise TypeError(f"jit.{name}: expected a Module or a function, got {type(obj).__name__}")
    return obj


def script(obj, optimize=None, _frames_up=0, _rcb=None, example_inputs=None):
    """`obj` unchanged (see the module doc): a Module or function keeps running eagerly."""
    return _passthrough("script", obj)


def trace(func, example_inputs=None, optimize=None, check_trace=True, check_inputs=None, check_tolerance=1e-5,
          strict=True, _force_outplace=False, _module_class=None, _compilation_unit=None,
          example_kwarg_inputs=None, _store_inputs=True):
    """`func` unchanged (see the module doc): a Module or function keeps running eagerly."""
    return _passthrough("trace", func)


def script_method(fn):
    """`@script_method` on a ScriptModule's method: the method itself (TorchScript would compile it)."""
    return fn


def __getattr__(name):
    if name == "ScriptModule":  # nn.Module itself, imported on first use (nn imports much of the package)
        from .nn import Module

        globals()["ScriptModule"] = Module
        return Module
    raise AttributeError(f"module 'tensor.jit' has no attribute {name!r}")

