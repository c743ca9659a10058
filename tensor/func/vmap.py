"""vmap as torch.func.vmap: same arguments, same checks, same output layout.

It is a PYTHON LOOP over the batch: func runs once per sample (a slice of each batched input, a view,
so gradients flow back to the inputs) and the per-sample outputs are stacked along out_dims. That is
correct for any func (data-dependent control flow and .item() included, which torch refuses) but not
fast: there is no batching rule, and chunk_size is checked and otherwise unused (running func on a
slice of several samples is not equivalent for a general func). vmap(grad(loss), in_dims=(None, 0, 0))
gives per-sample gradients.

randomness: 'error' raises if func draws random numbers from a default generator; 'different' lets
each sample draw its own; 'same' restarts every sample from the same generator state (afterwards the
generators are as after one sample's draws). Draws from a Generator passed explicitly are not watched.
"""
from __future__ import annotations

import copy
import functools

from .. import random as _random
from ..ops.join import stack
from ..tensor import Tensor
from .pytree import broadcast_prefix, flatten, unflatten

__all__ = ["vmap"]

_RANDOMNESS = ("error", "different", "same")


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """func mapped over a dimension of its inputs.

    in_dims: an int (the mapped dim of every input) or a tuple with one entry per positional argument,
    each an int, None (not mapped) or, for a pytree argument, a matching pytree of them. Keyword
    arguments are never mapped. out_dims: where the mapped dim goes in each output (int, None for an
    output that does not depend on the batch, or a pytree matching the outputs). An input of batch
    size B mapped at dim d gives func samples without dim d; an output sample of shape S comes back
    with B inserted at out_dims."""
    check_randomness(randomness)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
        raise ValueError(f"vmap: chunk_size should be None or greater than 0. (got {chunk_size})")
    name = getattr(func, "__name__", repr(func))

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        _check_out_dims(out_dims, name)
        leaves, spec, dims, size = _batched_inputs(args, in_dims, name)
        devices = {leaf.device for leaf in leaves if isinstance(leaf, Tensor)}
        samples = []
        with randomness_scope(randomness, devices) as scope:
            for i in range(size):
                scope.before_sample()
                sample = [leaf if d is None else leaf.select(d, i) for leaf, d in zip(leaves, dims)]
                samples.append(func(*unflatten(sample, spec), **kwargs))
                scope.after_sample()
        return _combine(samples, out_dims, name)

    return wrapped


# ----------------------------------------------------------------------------------------- inputs


def _batched_inputs(args, in_dims, name):
    """(leaves, spec, mapped dim per leaf or None, batch size) of the positional arguments."""
    if not args:
        raise ValueError(f"vmap({name})(<inputs>): got no inputs. Maybe you forgot to add inputs, or you are "
                         "trying to vmap over a function with no inputs. The latter is unsupported.")
    where = f"vmap({name}, in_dims={in_dims!r}, ...)(<inputs>)"
    leaves, spec = flatten(args)
    if isinstance(in_dims, int):
        dims = [in_dims] * len(leaves)
    elif isinstance(in_dims, tuple):
        dims = broadcast_prefix(in_dims, spec)
        if dims is None:
            raise ValueError(f"{where}: in_dims is not compatible with the structure of `inputs`. in_dims has "
                             f"structure {flatten(in_dims)[1]} but inputs has structure {spec}.")
    else:
        raise ValueError(f"{where}: expected `in_dims` to be int or a (potentially nested) tuple matching the "
                         f"structure of inputs, got: {type(in_dims)}.")
    dims = [_in_dim(leaf, d, where) for leaf, d in zip(leaves, dims)]
    sizes = [leaf.shape[d] for leaf, d in zip(leaves, dims) if d is not None]
    if not sizes:
        raise ValueError("vmap: Expected at least one Tensor to vmap over")
    if len(set(sizes)) > 1:
        raise ValueError(f"vmap: Expected all tensors to have the same size in the mapped dimension, got sizes "
                         f"{sizes} for the mapped dimension")
    if sizes[0] == 0:
        raise ValueError(f"{where}: the mapped dimension has size 0; this vmap runs func once per sample, so it "
                         "cannot learn the output shapes of an empty batch")
    return leaves, spec, dims, sizes[0]


def _in_dim(leaf, d, where):
    """d checked against its input, made non-negative."""
    if d is None:
        return None
    if not isinstance(d, int):
        raise ValueError(f"{where}: Got in_dim={d} for an input but in_dim must be either an integer dimension "
                         "or None.")
    if not isinstance(leaf, Tensor):
        raise ValueError(f"{where}: Got in_dim={d} for an input but the input is of type {type(leaf)}. We cannot "
                         "vmap over non-Tensor arguments, please use None as the respective in_dim")
    if not -leaf.ndim <= d < leaf.ndim:
        raise ValueError(f"{where}: Got in_dim={d} for some input, but that input is a Tensor of dimensionality "
                         f"{leaf.ndim} so expected in_dim to satisfy -{leaf.ndim} <= in_dim < {leaf.ndim}.")
    return d % leaf.ndim


# ---------------------------------------------------------------------------------------- outputs


def _check_out_dims(out_dims, name):
    if not all(d is None or isinstance(d, int) for d in flatten(out_dims)[0]):
        raise ValueError(f"vmap({name}, ..., out_dims={out_dims}): `out_dims` must be an int, None or a python "
                         "collection of ints representing where in the outputs the vmapped dimension should appear.")


def _combine(samples, out_dims, name):
    """The per-sample outputs stacked leaf by leaf along each leaf's out_dim."""
    flats = [flatten(sample) for sample in samples]
    spec = flats[0][1]
    for i, (_, other) in enumerate(flats):
        if other != spec:
            raise ValueError(f"vmap({name}, ...): `{name}` returned outputs of structure {spec} for sample 0 but "
                             f"{other} for sample {i}; every sample must give the same structure")
    dims = _out_dims_per_leaf(out_dims, spec, name)
    columns = zip(*[leaves for leaves, _ in flats])
    return unflatten([_combine_leaf(list(column), d, name) for column, d in zip(columns, dims)], spec)


def _out_dims_per_leaf(out_dims, spec, name):
    if spec.is_leaf():  # torch accepts out_dims=(d,) for a single output
        if out_dims is None or isinstance(out_dims, int):
            return [out_dims]
        if isinstance(out_dims, tuple) and len(out_dims) == 1:
            return [out_dims[0]]
        dims = None
    else:
        dims = [out_dims] * spec.num_leaves if isinstance(out_dims, int) else broadcast_prefix(out_dims, spec)
    if dims is None:
        raise ValueError(f"vmap({name}, ..., out_dims={out_dims})(<inputs>): out_dims is not compatible with the "
                         f"structure of `outputs`. out_dims has structure {flatten(out_dims)[1]} but outputs has "
                         f"structure {spec}.")
    return dims


def _combine_leaf(column, d, name):
    first = column[0]
    if d is None:
        # Unbatched: func must have given the same value for every sample (a loop cannot tell otherwise
        # whether an output depends on the batch).
        if isinstance(first, Tensor) and not all(_same(first, other) for other in column[1:]):
            raise ValueError(f"vmap({name}, ...): `{name}` can not return a BatchedTensor when out_dim is None")
        return first
    for value in column:
        if not isinstance(value, Tensor):
            raise ValueError(f"vmap({name}, ...): `{name}` must only return Tensors, got type {type(value)}. Did "
                             "you mean to set out_dims= to None for output?")
    rank = first.ndim + 1
    if not -rank <= d < rank:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got {d})")
    for i, value in enumerate(column):
        if value.shape != first.shape:
            raise ValueError(f"vmap({name}, ...): `{name}` returned shape {tuple(first.shape)} for sample 0 but "
                             f"{tuple(value.shape)} for sample {i}; every sample must give the same shape")
    return stack(column, dim=d)


def _same(a, b):
    if a is b:
        return True
    if not isinstance(b, Tensor) or a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    return bool(a.xp.array_equal(a.data, b.data, equal_nan=a.dtype.kind in "fc"))


# ------------------------------------------------------------------------------------- randomness


def check_randomness(randomness):
    if randomness not in _RANDOMNESS:
        raise RuntimeError(f"Only allowed values for randomness are 'error', 'different', or 'same'. Got {randomness}")


class _Watched(_random.Generator):
    """A default generator's stand-in while func runs in 'error' mode: it shares the generator's state
    and notes any draw (every draw reads `.rng`)."""

    def __init__(self, real):  # no Generator.__init__: nothing is reseeded
        self.__dict__.update(real.__dict__)
        self.drawn = False

    @property
    def rng(self):
        self.drawn = True
        return self._rng


def _sync(real, stand_in):
    """Carry a stand-in's state (reseeding, a draw noted for an enclosing watcher) back to the real one."""
    real.__dict__.update({k: v for k, v in stand_in.__dict__.items() if k != "drawn"})
    if getattr(stand_in, "drawn", False) and isinstance(real, _Watched):
        real.drawn = True


class randomness_scope:
    """Runs samples under vmap's randomness mode (see the module docstring)."""

    def __init__(self, mode, devices=()):
        self.mode, self.devices = mode, set(devices)

    def __enter__(self):
        gens = _random._default_generators
        if self.mode == "same":
            for device in self.devices | {"cpu"}:
                _random._generator(None, device)  # make the default generators func may draw from, to copy them
            self.snapshot = {device: copy.deepcopy(gen) for device, gen in gens.items()}
        self.originals = dict(gens)
        if self.mode == "error":
            self.stand_ins = {device: _Watched(gen) for device, gen in gens.items()}
            gens.update(self.stand_ins)
        return self

    def before_sample(self):
        if self.mode == "same":
            gens = _random._default_generators
            gens.clear()
            gens.update({device: copy.deepcopy(gen) for device, gen in self.snapshot.items()})

    def after_sample(self):
        if self.mode == "error" and self._drew():
            raise RuntimeError("vmap: called random operation while in randomness error mode. Please either use the "
                               "'same' or 'different' randomness flags on vmap or perform the randomness operation "
                               "out of vmap")

    def _drew(self):
        gens = _random._default_generators
        return (set(gens) != set(self.stand_ins)  # a device's generator was made: something drew there
                or any(gens[d] is not w or w.drawn for d, w in self.stand_ins.items()))

    def __exit__(self, *exc):
        gens = _random._default_generators
        current = dict(gens)
        for device, real in self.originals.items():
            now = current.get(device)
            if now is not None and now is not real:
                _sync(real, now)
        gens.update(self.originals)
        return False
