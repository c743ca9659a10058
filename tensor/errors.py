"""Every exception the engine raises, in one place.

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
