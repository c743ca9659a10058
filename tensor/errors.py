"""Every exception the engine raises, in one place, and the rewording of NumPy's broadcast error.

They derive from RuntimeError (as PyTorch's do) and, where it fits, from the built-in class a
caller would catch (ValueError for bad values, TypeError for bad types).
"""


class TensorError(RuntimeError):
    """Base class of the engine's errors."""


class DeviceError(TensorError):
    """A device that does not exist, or operands on different devices."""


class ShapeError(TensorError, ValueError):
    """Operand shapes that do not fit together."""


class DTypeError(TensorError, TypeError):
    """A dtype an operation cannot take, or a cast that would lose information."""


class AutogradError(TensorError):
    """Misuse of the graph: backward twice, in-place changes to saved tensors, missing grads."""


class SerializationError(TensorError, ValueError):
    """A file that is not a valid raygrad/safetensors file, or that has been altered."""


def broadcast_error(op, arrays, error):
    """NumPy's "operands could not be broadcast together" (a ValueError from op's forward on `arrays`)
    reworded with the op and the first dim whose sizes clash, as PyTorch words it; any other error
    comes back as it was."""
    if "broadcast together with shapes" not in str(error):  # (einsum's "remapped shapes" words its own)
        return error
    shapes = [a.shape for a in arrays if hasattr(a, "shape") and a.ndim]
    ndim = max((len(s) for s in shapes), default=0)
    clash = ""
    for back in range(1, ndim + 1):
        sizes = {s[-back] for s in shapes if len(s) >= back} - {1}
        if len(sizes) > 1:
            clash = f": sizes {' and '.join(map(str, sorted(sizes)))} differ at dim {ndim - back}"
            break
    listed = " and ".join(str(tuple(s)) for s in shapes)
    return ShapeError(f"{op}: shapes {listed} do not broadcast{clash} (each size must match or be 1); reshape "
                      "or unsqueeze an operand so they line up")
