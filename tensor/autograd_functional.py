"""tensor.autograd.functional: vjp, jvp, jacobian, hessian, vhp and hvp of a function, as in
torch.autograd.functional (same arguments, same result layout).

Everything is reverse mode on the engine: a Jacobian takes one backward per output element, a
Hessian is the Jacobian of the gradient (create_graph=True), and jvp uses the double-backward trick
(the vector-Jacobian product is linear in its vector, so differentiating it with respect to that
vector gives the Jacobian-vector product). Second-order products therefore need ops that
differentiate twice (see README.md); others raise an error naming the op.

inputs: a Tensor or a tuple of Tensors; func(*inputs) returns a Tensor or a tuple of Tensors. With
create_graph=False the results are detached; strict=True makes an output that does not depend on an
input an error instead of a zero block. vectorize=True and forward-mode strategies are not supported.
"""
from __future__ import annotations

from .autograd import enable_grad
from .creation import ones_like, zeros, zeros_like
from .engine import grad
from .errors import AutogradError
from .ops.join import stack
from .tensor import Tensor


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the vector-Jacobian product, v shaped like func's outputs."""
    with enable_grad():
        inputs, tuple_in = _prepare(inputs, "inputs", "vjp", create_graph)
        outputs, tuple_out = _outputs(func(*inputs), "vjp")
        vs = _vectors(v, outputs, "v", "vjp")
        grads = _grad(outputs, inputs, vs, create_graph, strict, "vjp")
    return _finish(outputs, create_graph, tuple_out), _finish(grads, create_graph, tuple_in)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the Jacobian-vector product, v shaped like the inputs."""
    with enable_grad():
        inputs, tuple_in = _prepare(inputs, "inputs", "jvp", create_graph)
        vs = _vectors(v, inputs, "v", "jvp")
        outputs, tuple_out = _outputs(func(*inputs), "jvp")
        # u -> u^T J is linear in u, so its gradient with respect to u, applied to v, is J v.
        dummies = tuple(zeros_like(out).requires_grad_(True) for out in outputs)
        grads = _grad(outputs, inputs, dummies, True, strict, "jvp")
        products = _grad(grads, dummies, vs, create_graph, strict, "jvp")
    return _finish(outputs, create_graph, tuple_out), _finish(products, create_graph, tuple_out)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """The Jacobian: J[i][j] of shape outputs[i].shape + inputs[j].shape (unnested where func takes or
    returns a single Tensor), one backward per output element."""
    if vectorize or strategy != "reverse-mode":
        raise ValueError(f"jacobian: vectorize={vectorize!r}, strategy={strategy!r} are not supported; "
                         "use the defaults (vectorize=False, strategy='reverse-mode')")
    with enable_grad():
        inputs, tuple_in = _prepare(inputs, "inputs", "jacobian", create_graph)
        outputs, tuple_out = _outputs(func(*inputs), "jacobian")
        blocks = tuple(_jacobian_of(out, inputs, create_graph, strict) for out in outputs)
    blocks = tuple(_finish(row, create_graph, tuple_in) for row in blocks)
    return blocks if tuple_out else blocks[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a function with one single-element output: H[i][j] of shape
    inputs[i].shape + inputs[j].shape (a single Tensor for a single input)."""
    _, tuple_in = _as_tuple(inputs)

    def scalar(*args):
        out = func(*args)
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise AutogradError(f"hessian: func must return a Tensor with one element, got "
                                f"{_describe(out)}; use jacobian() for functions with more outputs")
        return out.reshape(())

    def gradient(*args):
        return jacobian(scalar, args, create_graph=True, strict=strict)

    result = jacobian(gradient, inputs, create_graph=create_graph, strict=strict, vectorize=vectorize,
                      strategy=outer_jacobian_strategy)
    return result if tuple_in else result[0]


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for a function with one single-element output."""
    with enable_grad():
        inputs, tuple_in = _prepare(inputs, "inputs", "vhp", create_graph)
        outputs, _ = _outputs(func(*inputs), "vhp")
        if len(outputs) != 1 or outputs[0].numel() != 1:
            raise AutogradError(f"vhp: func must return one Tensor with one element, got {_describe(outputs)}")
        vs = _vectors(v, inputs, "v", "vhp")
        grads = _grad(outputs, inputs, None, True, strict, "vhp")
        products = _grad(grads, inputs, vs, create_graph, strict, "vhp")
    return _finish(outputs, create_graph, False), _finish(products, create_graph, tuple_in)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v); the Hessian of a twice continuously differentiable function is
    symmetric, so this is vhp's product (PyTorch computes the same numbers another way)."""
    return vhp(func, inputs, v, create_graph, strict)


# ----------------------------------------------------------------------------------- helpers


def _as_tuple(x):
    return (tuple(x), True) if isinstance(x, (tuple, list)) else ((x,), False)


def _prepare(inputs, name, op, create_graph):
    """Inputs that record their own graph: detached copies, or views of inputs that require grad when
    the result must differentiate back to them (create_graph), as torch does."""
    inputs, is_tuple = _as_tuple(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be Tensors, got {type(t).__name__} at position {i}")
        if t.dtype.kind != "f":
            raise AutogradError(f"{op}: {name}[{i}] has dtype {t.dtype}; only floating-point inputs have "
                                "gradients (convert with .double() or .float())")
    prepared = tuple(t.view_as(t) if create_graph and t.requires_grad else t.detach().requires_grad_(True)
                     for t in inputs)
    return prepared, is_tuple


def _outputs(outputs, op):
    outputs, is_tuple = _as_tuple(outputs)
    for i, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(f"{op}: func must return Tensors, got {type(out).__name__} at position {i}")
    return outputs, is_tuple


def _vectors(v, like, name, op):
    if v is None:
        if any(t.numel() != 1 for t in like):
            raise AutogradError(f"{op}: {name} may be omitted only when every tensor it pairs with has one element "
                                f"(shapes {[tuple(t.shape) for t in like]}); pass {name}")
        return tuple(ones_like(t) for t in like)
    vs, _ = _as_tuple(v)
    if len(vs) != len(like) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(vs, like)):
        raise AutogradError(f"{op}: {name} has shapes {[tuple(a.shape) for a in vs]}, expected "
                            f"{[tuple(b.shape) for b in like]}")
    return vs


def _grad(outputs, inputs, grad_outputs, create_graph, strict, op):
    """grad() that gives zeros (or, strict, an error) for inputs the outputs do not depend on."""
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs or (None,) * len(outputs)) if o.requires_grad]
    if pairs:
        grads = grad([o for o, _ in pairs], inputs, None if grad_outputs is None else [g for _, g in pairs],
                     retain_graph=True, create_graph=create_graph, allow_unused=True)
    else:
        grads = (None,) * len(inputs)
    result = []
    for i, (g, t) in enumerate(zip(grads, inputs)):
        if g is None:
            if strict:
                raise AutogradError(f"{op}: the output does not depend on input {i} (strict=True); "
                                    "pass strict=False to get zeros")
            g = zeros_like(t)
        result.append(g)
    return tuple(result)


def _jacobian_of(out, inputs, create_graph, strict):
    flat = out.reshape(-1)
    rows = [[] for _ in inputs]
    for element in range(flat.numel()):
        for i, g in enumerate(_grad((flat[element],), inputs, None, create_graph, strict, "jacobian")):
            rows[i].append(g)
    blocks = []
    for i, t in enumerate(inputs):
        shape = tuple(out.shape) + tuple(t.shape)
        blocks.append(stack(rows[i]).reshape(shape) if rows[i] else zeros(shape, dtype=t.dtype, device=t.device))
    return tuple(blocks)


def _finish(tensors, create_graph, as_tuple):
    tensors = tuple(t if create_graph else t.detach() for t in tensors)
    return tensors if as_tuple else tensors[0]


def _describe(value):
    if isinstance(value, Tensor):
        return f"a Tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple):
        return f"{len(value)} Tensors"
    return type(value).__name__
