"""Pytrees for the function transforms: nested tuples, lists, dicts and namedtuples of leaves.

flatten(tree) gives the leaves in order (dicts in insertion order, as torch.utils._pytree) and a
TreeSpec; unflatten(leaves, spec) rebuilds the same nesting. Anything that is not one of the four
containers is a leaf (a Tensor, a number, None). broadcast_prefix spreads a prefix tree (vmap's
in_dims / out_dims: 0 for a whole dict, {'a': 0, 'b': None} for its entries) over a full tree.
"""
from __future__ import annotations

__all__ = ["TreeSpec", "flatten", "unflatten", "tree_map", "broadcast_prefix"]


def _is_namedtuple(value):
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _node(value):
    """(kind, context, children) of a container, or None for a leaf."""
    if _is_namedtuple(value):
        return type(value), None, list(value)
    if isinstance(value, (tuple, list)):
        return type(value), None, list(value)
    if isinstance(value, dict):
        return dict, list(value), list(value.values())
    return None


class TreeSpec:
    """The nesting of a pytree: kind (None for a leaf; tuple, list, dict or a namedtuple class),
    context (a dict's keys) and one child spec per entry."""

    __slots__ = ("kind", "context", "children", "num_leaves")

    def __init__(self, kind=None, context=None, children=()):
        self.kind, self.context, self.children = kind, context, tuple(children)
        self.num_leaves = 1 if kind is None else sum(c.num_leaves for c in self.children)

    def is_leaf(self):
        return self.kind is None

    def __eq__(self, other):
        return (isinstance(other, TreeSpec) and self.kind == other.kind and self.context == other.context
                and self.children == other.children)

    def __hash__(self):
        return hash((self.kind, tuple(self.context or ()), self.children))

    def __repr__(self):
        """torch's short form: `*` per leaf, e.g. (*, {'q': *})."""
        if self.kind is None:
            return "*"
        inner = [repr(c) for c in self.children]
        if self.kind is dict:
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(self.context, inner)) + "}"
        if self.kind is list:
            return "[" + ", ".join(inner) + "]"
        if self.kind is tuple:
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        return f"{self.kind.__name__}(" + ", ".join(inner) + ")"


def flatten(tree):
    """(leaves, spec) of a pytree."""
    leaves = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves):
    node = _node(tree)
    if node is None:
        leaves.append(tree)
        return TreeSpec()
    kind, context, children = node
    return TreeSpec(kind, context, [_flatten(child, leaves) for child in children])


def unflatten(leaves, spec):
    """The pytree of shape `spec` holding `leaves` in order."""
    leaves = list(leaves)
    if len(leaves) != spec.num_leaves:
        raise ValueError(f"unflatten: the spec {spec!r} holds {spec.num_leaves} leaves but {len(leaves)} were given")
    return _build(iter(leaves), spec)


def _build(leaves, spec):
    if spec.kind is None:
        return next(leaves)
    children = [_build(leaves, child) for child in spec.children]
    if spec.kind is dict:
        return dict(zip(spec.context, children))
    if spec.kind in (tuple, list):
        return spec.kind(children)
    return spec.kind(*children)  # a namedtuple


def tree_map(fn, tree):
    leaves, spec = flatten(tree)
    return unflatten([fn(leaf) for leaf in leaves], spec)


def broadcast_prefix(prefix, tree_spec):
    """One value of `prefix` per leaf of the tree `tree_spec` describes, where each leaf of `prefix` covers a
    whole subtree. Returns None when prefix's nesting does not match the tree's."""
    out = []
    return out if _spread(prefix, tree_spec, out) else None


def _spread(prefix, spec, out):
    node = _node(prefix)
    if node is None:
        out.extend([prefix] * spec.num_leaves)
        return True
    kind, context, children = node
    if kind is not spec.kind or len(children) != len(spec.children):
        return False
    if kind is dict and set(context) != set(spec.context):
        return False
    if kind is dict:  # match by key: the prefix's dict may list them in another order
        children = [prefix[key] for key in spec.context]
    return all(_spread(child, sub, out) for child, sub in zip(children, spec.children))
