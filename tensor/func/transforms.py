"""grad, grad_and_value, vjp, jvp, jacrev, jacfwd and hessian as in torch.func, over reverse mode.

Each transform calls func on copies of the differentiated inputs that are leaves of a graph of their
own (detached copies; views when an enclosing transform or the caller's graph must reach the
originals) and differentiates with the engine's grad (autograd_functional's helpers). The result keeps
a graph only when something outside the transform can use it: an input that required grad, or a
tensor func closes over that does (an enclosing grad's input, a module parameter); levels.py decides.
That is what makes grad(grad(f)), jacfwd(jacrev(f)) and grad over a closure compose, while a plain
call leaves no graph behind. Higher-order results need ops with a backward that records a graph (README.md lists them).

There is no forward mode: jvp is the double-vjp trick (two reverse passes: u -> J^T u is linear in u,
so its gradient with respect to u, applied to the tangent, is J v), and jacfwd computes the same
Jacobian as jacrev, one reverse pass per output element, with torch.func.jacfwd's layout.
"""
from __future__ import annotations

import functools

from ..autograd import enable_grad, is_grad_enabled
from ..autograd_functional import _grad, _jacobian_of
from ..creation import zeros_like
from ..errors import AutogradError
from ..tensor import Tensor
from .levels import Level, depends_on, keep, reaches_outside
from .pytree import flatten, unflatten
from .vmap import check_randomness, randomness_scope

__all__ = ["grad", "grad_and_value", "vjp", "jvp", "linearize", "jacrev", "jacfwd", "hessian"]


def grad_and_value(func, argnums=0, has_aux=False):
    """A function returning (gradient, value) of func, which returns a 0-d Tensor (or (that, aux) with
    has_aux, giving (gradient, (value, aux))). argnums: which positional arguments to differentiate, an
    int or a tuple; each may be a pytree of Tensors, and the gradient has the same structure (a tuple
    of them for a tuple of argnums). Inputs need not require grad."""
    api = "grad_and_value(f)(*args)"

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        nums = _argnums(argnums, len(args))
        with Level() as level, enable_grad():
            result, groups = _call(func, args, kwargs, nums, level)
            output, aux = _split_aux(result, has_aux, api)
            if not isinstance(output, Tensor):
                raise AutogradError(f"{api}: Expected f(*args) to return a Tensor, got {type(output)}")
            if output.ndim != 0:
                raise AutogradError(f"{api}: Expected f(*args) to return a scalar Tensor, got tensor with "
                                    f"{output.ndim} dims. Maybe you wanted to use the vjp or jacrev APIs instead?")
            leaves = _flat(groups)
            graph = reaches_outside([output], level)
            grads = _grad((output,), leaves, None, graph, False, "grad")
            value = output if graph else output.detach()
            value = (value, keep(aux, level)) if has_aux else value
        return _regroup(grads, groups, isinstance(argnums, int)), value

    return wrapper


def grad(func, argnums=0, has_aux=False):
    """The gradient of func (a 0-d Tensor output) with respect to argnums; see grad_and_value.
    Composes: grad(grad(f)) is the second derivative, vmap(grad(f)) gives per-sample gradients."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        gradient, value = grad_and_value(func, argnums, has_aux)(*args, **kwargs)
        return (gradient, value[1]) if has_aux else gradient

    return wrapper


def vjp(func, *primals, has_aux=False):
    """(func(*primals), vjp_fn[, aux]): vjp_fn(cotangents), cotangents shaped like func's output pytree,
    returns v^T J as a tuple with one entry per primal (each shaped like that primal). vjp_fn may be
    called many times: the graph lives as long as vjp_fn (retain_graph is accepted and always True).
    create_graph=None records a graph when the result can be differentiated further (nested
    transforms, cotangents that require grad)."""
    with Level() as level:
        state = _Vjp(func, primals, has_aux, level)
        output, aux = keep(state.output, level), keep(state.aux, level)

    def vjp_fn(cotangents, retain_graph=True, create_graph=None):
        return _regroup(state.pullback(cotangents, create_graph), state.groups, False)

    return (output, vjp_fn, aux) if has_aux else (output, vjp_fn)


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """(func(*primals), J v[, aux]) with v = tangents (a tuple shaped like primals); J v has the output's
    structure. Two reverse passes (the double-vjp trick), so every op on the way needs a backward that
    records a graph. strict=True makes an output independent of the primals an error."""
    api = "jvp(f, primals, tangents)"
    for what, value in (("primals", primals), ("tangents", tangents)):
        if not isinstance(value, tuple):
            raise AutogradError(f"{api}: Expected {what} to be a tuple. E.g. it should be valid to call f(*primals).")
    tangent_leaves = _check_tangents(primals, tangents, api)
    with Level() as level, enable_grad():
        state = _Vjp(func, primals, has_aux, level, api)
        if strict and any(not depends_on(o, state.leaves) for o in state.out_leaves):
            raise AutogradError(f"{api}: The output of f is independent of the inputs. This is not allowed "
                                "with strict=True.")
        dummies = [level.own(zeros_like(o).requires_grad_(True)) for o in state.out_leaves]
        vjps = state.pullback(unflatten(dummies, state.out_spec), True)
        graph = state.graph or (level.outer and any(t.requires_grad for t in tangent_leaves))
        products = _grad(vjps, dummies, tangent_leaves, graph, False, "jvp")
        result = (keep(state.output, level), unflatten(products, state.out_spec))
        return result + (keep(state.aux, level),) if has_aux else result


def linearize(func, *primals):
    """(func(*primals), jvp_fn): jvp_fn(*tangents), tangents shaped like primals, gives J v at primals
    (torch.func.linearize). Nothing is traced: each jvp_fn call is jvp(func, primals, tangents), which
    runs func again, so func should be deterministic (torch's traced graph replays the first call)."""
    output = func(*primals)
    p_leaves, p_spec = flatten(primals)

    def jvp_fn(*tangents):
        t_leaves, t_spec = flatten(tangents)
        if t_spec != p_spec:
            raise RuntimeError(f"Expected the tangents {t_spec} to have the same argspec as the primals {p_spec}")
        for i, (t, p) in enumerate(zip(t_leaves, p_leaves)):
            for what in ("shape", "device", "dtype"):
                if not isinstance(t, Tensor) or getattr(t, what) != getattr(p, what):
                    got = getattr(t, what) if isinstance(t, Tensor) else type(t).__name__
                    raise RuntimeError(f"tangent:{i} with {what} {got} in flattened pytree doesn't match the {what} "
                                       f"{getattr(p, what)} of the corresponding primal.")
        return jvp(func, primals, tangents)[1]

    return output, jvp_fn


def jacrev(func, argnums=0, *, has_aux=False, chunk_size=None):
    """The Jacobian of func with respect to argnums: for each output leaf, the input's pytree (a tuple of
    them for a tuple of argnums) of blocks shaped output.shape + input.shape. One reverse pass per
    output element; chunk_size is checked and otherwise unused (the rows are computed one at a time)."""
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ValueError("jacrev: `chunk_size` should be greater than 0.")
    return _jacobian_transform(func, argnums, has_aux, "vjp(f, *primals)", None)


def jacfwd(func, argnums=0, has_aux=False, *, randomness="error"):
    """torch.func.jacfwd's result and layout (as jacrev's), computed in REVERSE mode: one backward per
    output element, not one forward per input element. randomness as vmap's: 'error' (the default)
    refuses a func that draws random numbers; func runs once, so 'same' and 'different' agree."""
    check_randomness(randomness)
    return _jacobian_transform(func, argnums, has_aux, "jvp(f, primals, tangents)", randomness)


def hessian(func, argnums=0):
    """jacfwd(jacrev(func, argnums), argnums): for a 0-d output, blocks shaped input.shape + input.shape
    (a tuple of tuples of them for a tuple of argnums)."""
    return jacfwd(jacrev(func, argnums), argnums)


# ----------------------------------------------------------------------------------- the machinery


class _Vjp:
    """func run once on differentiable copies of all primals, ready to pull cotangents back."""

    def __init__(self, func, primals, has_aux, level, api="vjp(f, *primals)"):
        with enable_grad():
            result, self.groups = _call(func, primals, {}, range(len(primals)), level)
        self.output, self.aux = _split_aux(result, has_aux, api)
        self.out_leaves, self.out_spec = flatten(self.output)
        _check_outputs(self.out_leaves, api)
        self.leaves = _flat(self.groups)
        self.graph = reaches_outside(self.out_leaves, level)

    def pullback(self, cotangents, create_graph=None):
        """v^T J per primal leaf; a graph is kept when asked, when the forward reached outside, or when
        the cotangents themselves require grad (jvp's second pass differentiates through them)."""
        leaves, spec = flatten(cotangents)
        if spec != self.out_spec:
            raise AutogradError("Expected pytree structure of cotangents to be the same as pytree structure of "
                                f"outputs to the function. cotangents: {spec}, primal output: {self.out_spec}")
        for i, (c, o) in enumerate(zip(leaves, self.out_leaves)):
            if not isinstance(c, Tensor) or tuple(c.shape) != tuple(o.shape):
                got = tuple(c.shape) if isinstance(c, Tensor) else type(c).__name__
                raise AutogradError(f"vjp: cotangent {i} is {got} but output {i} has shape {tuple(o.shape)}; "
                                    "each cotangent must be a Tensor shaped like its output")
        if create_graph is None:
            create_graph = self.graph or (is_grad_enabled() and any(c.requires_grad for c in leaves))
        with enable_grad():
            return _grad(self.out_leaves, self.leaves, leaves, create_graph, False, "vjp")


def _jacobian_transform(func, argnums, has_aux, api, randomness):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        nums = _argnums(argnums, len(args))
        with Level() as level, enable_grad():
            with randomness_scope(randomness or "different") as scope:
                result, groups = _call(func, args, kwargs, nums, level)
                scope.after_sample()
            output, aux = _split_aux(result, has_aux, api)
            out_leaves, out_spec = flatten(output)
            _check_outputs(out_leaves, api)
            leaves = _flat(groups)
            graph = reaches_outside(out_leaves, level)
            blocks = [_regroup(_jacobian_of(o, leaves, graph, False), groups, isinstance(argnums, int))
                      for o in out_leaves]
            jacobian = unflatten(blocks, out_spec)
            return (jacobian, keep(aux, level)) if has_aux else jacobian

    return wrapper


def _argnums(argnums, count):
    """argnums as a tuple of non-negative positions, checked as torch.func checks them."""
    if isinstance(argnums, int):
        nums = (argnums,)
    elif isinstance(argnums, tuple) and all(isinstance(n, int) for n in argnums):
        if not argnums:
            raise AutogradError("argnums must be non-empty")
        nums = argnums
    else:
        raise AutogradError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")
    for n in nums:
        if not -count <= n < count:
            raise AutogradError(f"Got argnum={n}, but only {count} positional inputs")
    nums = tuple(n % count for n in nums)
    if len(set(nums)) != len(nums):
        raise AutogradError(f"argnums elements must be unique, got {argnums}")
    return nums


def _call(func, args, kwargs, nums, level):
    """func(*args) with args[n] (n in nums) replaced by differentiable copies of their leaves.
    Returns (result, [(leaves, spec) per n])."""
    args = list(args)
    groups = []
    for n in nums:
        leaves, spec = flatten(args[n])
        copies = [_differentiable(leaf, level) for leaf in leaves]
        args[n] = unflatten(copies, spec)
        groups.append((copies, spec))
    with enable_grad():
        return func(*args, **kwargs), groups


def _differentiable(leaf, level):
    if not isinstance(leaf, Tensor):
        raise ValueError(f"Thing passed to transform API must be Tensor, got {type(leaf)}")
    if leaf.dtype.kind != "f":
        raise AutogradError(f"only Tensors of floating point dtype can be differentiated, got dtype {leaf.dtype}; "
                            "convert with .float() or .double()")
    if level.outer and leaf.requires_grad:
        return leaf.view_as(leaf)  # differentiable here, and connected to the caller's graph
    return level.own(leaf.detach().requires_grad_(True))


def _flat(groups):
    return [leaf for leaves, _ in groups for leaf in leaves]


def _regroup(flat, groups, single):
    """Flat per-leaf results back into each argument's structure (one, or a tuple of them)."""
    flat, trees = list(flat), []
    for leaves, spec in groups:
        trees.append(unflatten(flat[:len(leaves)], spec))
        flat = flat[len(leaves):]
    return trees[0] if single else tuple(trees)


def _split_aux(result, has_aux, api):
    if not has_aux:
        return result, None
    if not isinstance(result, tuple) or len(result) != 2:
        raise AutogradError(f"{api}: output of function f should be a tuple: (output, aux) if has_aux is True")
    return result


def _check_outputs(leaves, api):
    for leaf in leaves:
        if not isinstance(leaf, Tensor):
            raise AutogradError(f"{api}: expected f(*primals) to return only tensors, got unsupported type "
                                f"{type(leaf)}")


def _check_tangents(primals, tangents, api):
    p_leaves, p_spec = flatten(primals)
    t_leaves, t_spec = flatten(tangents)
    if p_spec != t_spec:
        raise AutogradError(f"{api}: Expected primals and tangents to have the same python structure. For "
                            "example, if primals is a tuple of 3 tensors, tangents also must be. Got primals with "
                            f"structure {p_spec} and tangents with structure {t_spec}")
    for i, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        if not isinstance(t, Tensor) or not isinstance(p, Tensor) or tuple(t.shape) != tuple(p.shape):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            want = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
            raise AutogradError(f"{api}: tangent {i} is {shape} but its primal is {want}; each tangent must be a "
                                "Tensor shaped like its primal")
    return t_leaves
