"""tensor.compile: torch.compile's entry point, for scripts written for PyTorch 2.

raygrad runs every op eagerly on NumPy/CuPy and has no graph compiler, so there is nothing to
compile: `compile(model)` checks torch's arguments and returns `model` itself (a Module or a
function), so the script runs with the same results, without the speed-up compilation gives in
torch. One visible difference: torch wraps a Module in an OptimizedModule whose state-dict keys
start with `_orig_mod.`; here the keys stay the model's own.
"""
from __future__ import annotations

_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None,  # noqa: A001
            disable=False):
    """`model` unchanged (see the module doc); `@tensor.compile` and `@tensor.compile(mode=...)` work as
    decorators too."""
    if mode not in _MODES:
        raise ValueError(f"compile: unknown mode {mode!r}; torch.compile accepts {', '.join(map(repr, _MODES[1:]))}")
    if mode is not None and options is not None:
        raise RuntimeError("compile: either mode or options can be specified, but both can't be specified at the "
                           "same time (as in torch.compile)")
    if not (isinstance(backend, str) or callable(backend)):
        raise TypeError(f"compile: backend must be a name or a callable, got {type(backend).__name__}")
    if model is None:
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                                  options=options, disable=disable)
    if not callable(model):
        raise TypeError(f"compile: expected a Module or a function to compile, got {type(model).__name__}")
    return model
