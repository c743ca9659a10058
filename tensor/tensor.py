"""Tensor: an array (numpy or cupy) plus the bookkeeping autograd needs.

The operators and math methods (x + y, x.sum(), x.reshape(...)) are defined by the op modules in
tensor/ops and attached in tensor/methods.py; this file holds what is specific to the class:
identity, conversion, and gradient bookkeeping.

Attribute defaults live on the class and are written on an instance only when they change, which
keeps creating the many intermediate tensors of a forward pass cheap.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import dtypes
from .backend import Device, array_module, as_device, device_of, to_device_array
from .errors import AutogradError, DeviceError, DTypeError, ShapeError


class Tensor:
    """An n-dimensional array on a device, optionally recording the ops applied to it.

    `data` is the raw numpy/cupy array (unlike PyTorch, where `.data` is a Tensor).
    """

    __array_priority__ = 1000  # numpy defers to our operators in `ndarray + Tensor`

    data = None
    grad_fn = None
    _requires_grad = False
    _grad = None
    _output_nr = 0
    _version_box = None  # [int], shared between a tensor and its views
    _base = None
    _view_src = None  # a view's (Function, args, index of its parent in args, output number)
    _view_version = 0  # the version of the shared storage when the view's node was made
    _hooks = None
    _post_acc_hooks = None
    _acc_ref = None
    _retains_grad = False
    _retain_handle = None

    def __init__(self, *args, dtype=None, device=None, requires_grad=False):
        """torch.Tensor(...), PyTorch's legacy constructor: Tensor(data) copies data as the default float
        dtype (torch.Tensor is torch.FloatTensor: ints and float64 become float32); Tensor(2, 3) or
        Tensor(Size) is an uninitialised tensor of that shape; Tensor() is empty. tensor.tensor(data)
        keeps data's dtype and is what new code should call."""
        from .creation import _to_array, empty

        dtype = dtypes.get_default_dtype() if dtype is None else dtype
        sizes = args[0] if len(args) == 1 and isinstance(args[0], Size) else args or (0,)
        # NumPy integers are sizes too, as in torch: A-GEM's Tensor(np.sum(grad_dims))
        if all(type(n) is int or isinstance(n, np.integer) for n in sizes):  # Tensor(2, 3), Tensor(Size)
            self.data = empty(*(int(n) for n in sizes), dtype=dtype, device=device).data
        elif len(args) == 1:
            self.data = _to_array(args[0], dtype, device)
        else:
            raise TypeError(f"Tensor(): expected sizes (ints) or one data argument, got {args!r}; "
                            "use tensor.tensor(data, dtype=...) to keep data's dtype")
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------------------------- description
    @property
    def shape(self):
        return Size(self.data.shape)

    def size(self, dim=None):
        return Size(self.data.shape) if dim is None else self.data.shape[dim]

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    def numel(self):
        return int(self.data.size)

    nelement = numel

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> Device:
        return device_of(self.data)

    @property
    def is_cuda(self):
        return not isinstance(self.data, np.ndarray)

    # Always dense, unquantized and real here (README, Differences); scripts test these before choosing a path.
    is_sparse = is_sparse_csr = is_quantized = is_meta = False

    @property
    def xp(self):
        """numpy or cupy: the module that computes on this tensor's array."""
        return array_module(self.data)

    def is_floating_point(self):
        return self.data.dtype.kind == "f"

    def element_size(self):
        return self.data.dtype.itemsize

    def is_contiguous(self, memory_format=None):
        if memory_format is None:
            return bool(self.data.flags.c_contiguous)
        return memory_format.matches(self.data)

    def stride(self, dim=None):
        strides = tuple(s // self.data.itemsize for s in self.data.strides)
        return strides if dim is None else strides[dim]

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    __hash__ = object.__hash__  # tensors are keys by identity; == is elementwise

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"Boolean value of a tensor with {self.data.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.data.reshape(()))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError(f"only integer tensors of one element can be used as an index, got {self._describe()}")
        return int(self.item())

    def _describe(self):
        return f"tensor of shape {tuple(self.data.shape)} and dtype {self.data.dtype}"

    # ---------------------------------------------------------------------------------- autograd
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad=True):
        if self.grad_fn is not None and not requires_grad:
            raise AutogradError(
                "requires_grad can only be turned off on leaf tensors; use detach() on a computed tensor"
            )
        if requires_grad and self.data.dtype.kind != "f":
            raise DTypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}; "
                "convert with .float() first"
            )
        self._requires_grad = bool(requires_grad)
        if requires_grad:
            # A leaf that requires grad goes into op after op, each reading these: copied from the class
            # defaults onto the instance, where CPython 3.11 reads them 4x faster.
            self.grad_fn, self._view_src, self._base = self.grad_fn, self._view_src, self._base
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"grad must be a Tensor or None, got {type(value).__name__}")
            if value.data.shape != self.data.shape:
                raise ShapeError(f"grad of shape {tuple(value.shape)} assigned to a tensor of shape {tuple(self.shape)}")
            if value.device != self.device:
                raise DeviceError(f"grad on {value.device} assigned to a tensor on {self.device}")
            if value.dtype != self.dtype:
                raise DTypeError(f"grad of dtype {value.dtype} assigned to a tensor of dtype {self.dtype}; "
                                 "convert it with .to(dtype) first")
        self._grad = value

    @property
    def _version(self):
        return 0 if self._version_box is None else self._version_box[0]

    def _version_counter(self):
        box = self._version_box
        if box is None:
            box = self._version_box = [0]
        return box

    def _bump_version(self):
        self._version_counter()[0] += 1

    def _grad_accumulator(self):
        """The AccumulateGrad node of a leaf, shared by every graph that uses it while one is alive."""
        from .autograd import grad_accumulator

        return grad_accumulator(self)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into the `.grad` of every leaf that requires grad."""
        from .engine import backward

        backward(self, gradient, retain_graph, create_graph, inputs)

    def register_hook(self, hook):
        """Call `hook(grad) -> Tensor | None` when this tensor's gradient is computed."""
        if not self._requires_grad:
            raise AutogradError("register_hook: this tensor does not require grad, so no gradient will reach it")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = {}
            return _Handle(self._hooks, hook)
        node = self.grad_fn
        if node._tensor_hooks is None:
            node._tensor_hooks = {}
        return _Handle(node._tensor_hooks.setdefault(self._output_nr, {}), hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call `hook(tensor)` after a leaf's `.grad` has been accumulated (DDP starts its bucket here)."""
        if self.grad_fn is not None:
            raise AutogradError("register_post_accumulate_grad_hook only works on leaf tensors")
        if self._post_acc_hooks is None:
            self._post_acc_hooks = {}
        return _Handle(self._post_acc_hooks, hook)

    def retain_grad(self):
        """Keep `.grad` on a non-leaf tensor after backward."""
        if self.grad_fn is None or self._retains_grad:
            return
        ref = weakref.ref(self)  # no reference upward from the graph to its outputs

        def store(grad):
            owner = ref()
            if owner is not None:
                owner._grad = _wrap(grad.data.copy()) if owner._grad is None else owner._grad + grad

        self._retain_handle = self.register_hook(store)
        self._retains_grad = True

    def _take_new_node(self, node, output_nr, requires_grad):
        """Point this tensor at a new node (an in-place change recorded, or a view rebuilt). As in
        PyTorch, retain_grad() follows the tensor (its .grad is the gradient of the latest value);
        hooks stay with the node they were registered on."""
        self.grad_fn, self._output_nr, self._requires_grad = node, output_nr, requires_grad
        if self._retains_grad:
            self._retain_handle.remove()
            self._retains_grad = False
            self.retain_grad()

    def detach(self):
        """The same data, cut from the graph (shares memory and version counter)."""
        t = _wrap(self.data)
        t._version_box = self._version_counter()
        return t

    def detach_(self):
        if self._base is not None:  # its base would still share the storage and the graph (PyTorch refuses too)
            raise AutogradError("detach_(): can't detach a view in place; use detach() instead, which returns a "
                                "new tensor sharing the data")
        self.grad_fn = None
        self._requires_grad = False
        return self

    # -------------------------------------------------------------------------------- conversion
    def numpy(self, force=False):
        if not isinstance(self.data, np.ndarray):
            if not force:
                raise DeviceError(f"numpy(): tensor is on {self.device}; call .cpu() first (or numpy(force=True))")
            return self.data.get()
        if self._requires_grad and not force:
            raise AutogradError("numpy(): tensor requires grad; call .detach().numpy() (or numpy(force=True))")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ShapeError(f"item(): only one-element tensors can be converted, got shape {tuple(self.shape)}")
        return self.data.reshape(()).item()

    def tolist(self):
        return to_device_array(self.data, Device("cpu")).tolist()

    def __array__(self, dtype=None, copy=None):
        if not isinstance(self.data, np.ndarray):
            raise TypeError(f"can't convert a tensor on {self.device} to numpy; call .cpu() first")
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def __dlpack__(self, *args, **kwargs):
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def to(self, *args, **kwargs):
        """to(device), to(dtype), to(device, dtype), to(other_tensor); differentiable."""
        device, dtype = _parse_to_args(args, kwargs)
        from .ops.convert import to as _to

        out = _to(self, device, dtype, kwargs.get("copy", False))
        if kwargs.get("memory_format") is not None:
            from .ops.convert import _in_format

            out = _in_format(out, kwargs["memory_format"], "to")
        return out

    def cpu(self):
        return self.to(device="cpu")

    def cuda(self, device=None):
        return self.to(device="cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))

    def pin_memory(self, device=None):
        """The tensor itself: page-locking is the loader's job here (ShardedLoader pins its CUDA batches,
        DataLoader's pin_memory= is accepted and does nothing), so nanoGPT's `x.pin_memory().to(device,
        non_blocking=True)` ports. Only CPU tensors can be pinned, as in PyTorch."""
        if self.device.type != "cpu":
            raise DeviceError(f"pin_memory(): cannot pin a tensor on {self.device}; only CPU tensors can be pinned")
        return self

    def is_pinned(self, device=None):
        return False

    def type(self, dtype=None):
        return self.data.dtype.name if dtype is None else self.to(dtype=dtype)

    def __repr__(self):
        from .printing import tensor_repr

        return tensor_repr(self)

    def __format__(self, spec):
        # torch formats a 0-d tensor as its Python number, so logging lines like f"{loss:.4f}" port.
        if self.data.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError(f"format spec {spec!r} needs a 0-d tensor, got shape {tuple(self.data.shape)}; "
                            "format loss.item() or t.tolist() instead")
        return str(self)

    def __reduce_ex__(self, protocol):
        # Ray ships tensors between actors as their array (and grad flag); graphs never travel.
        return (_rebuild, (to_device_array(self.data, Device("cpu")), str(self.device), self._requires_grad))


class Size(tuple):
    """torch.Size: a tuple of ints with `numel()`."""

    def numel(self):
        n = 1
        for d in self:
            n *= d
        return n

    def __repr__(self):
        return f"Size({list(self)})"


class _Handle:
    """What register_*hook returns: `handle.remove()` unregisters the hook."""

    _ids = iter(range(1 << 62))

    def __init__(self, table, hook):
        self.table = table
        self.id = next(self._ids)
        table[self.id] = hook

    def remove(self):
        self.table.pop(self.id, None)


def _wrap(data) -> Tensor:
    """A Tensor around an existing array, bypassing __init__ (the hot path of every op)."""
    if type(data) is not np.ndarray and isinstance(data, np.generic):
        data = np.asarray(data)  # numpy ufuncs return scalars for 0-d results
    t = Tensor.__new__(Tensor)
    t.data = data
    return t


def _rebuild(array, device, requires_grad):
    t = _wrap(to_device_array(array, as_device(device)))
    t._requires_grad = requires_grad
    return t


def _parse_to_args(args, kwargs):
    device = kwargs.get("device")
    dtype = kwargs.get("dtype")
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, (str, Device)):
            device = arg
        else:
            dtype = arg
    return (None if device is None else as_device(device)), (None if dtype is None else dtypes.as_dtype(dtype))
