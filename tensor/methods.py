"""The Tensor method and operator surface, in one table: which op module implements each name.

Op modules define plain functions whose first argument is the tensor; this file attaches them to
Tensor, so `x.exp()` and `tensor.exp(x)` are the same function.
"""
from __future__ import annotations

import functools
import importlib
import inspect

from .tensor import Tensor

METHODS = {
    "arithmetic": "add sub mul div pow neg floor_divide remainder true_divide",
    "unary": "abs sign exp log log1p expm1 log2 log10 sqrt rsqrt square reciprocal sin cos tan tanh "
    "clamp clip floor ceil round trunc erf",
    "activation": "sigmoid relu leaky_relu gelu silu softplus elu softmax log_softmax",
    "compare": "eq ne lt le gt ge logical_and logical_or logical_not logical_xor bitwise_and bitwise_or "
    "bitwise_xor bitwise_not isnan isinf isfinite isposinf isneginf isreal "
    "maximum minimum any all isclose allclose equal masked_fill",
    "reduce": "sum mean prod max min amax amin argmax argmin cumsum",
    "statistics": "var std logsumexp norm renorm",
    "shape": "reshape view flatten unflatten transpose permute t squeeze unsqueeze expand expand_as "
    "movedim swapaxes view_as reshape_as",
    "layout": "repeat tile flip roll tril triu fliplr flipud rot90",
    "join": "split split_with_sizes chunk unbind tensor_split hsplit vsplit dsplit",
    "index": "gather scatter scatter_add index_select take_along_dim",
    "linalg": "matmul mm bmm dot outer",
    "linalg_extra": "inverse det logdet slogdet qr cholesky svd pinverse matrix_power matrix_exp cross kron mv inner vdot "
    "cholesky_solve cholesky_inverse triangular_solve lu lu_solve",
    "sort": "sort argsort msort topk",
    "convert": "clone contiguous float double half long int bool type_as new_zeros new_ones new_full new_empty new_empty_strided "
    "new_tensor new",
    "inplace": "add_ sub_ mul_ div_ pow_ neg_ zero_ fill_ copy_ clamp_",
    "inplace_math": "masked_fill_ abs_ exp_ log_ sqrt_ relu_ sigmoid_ tanh_ lerp_ addcmul_ addcdiv_",
    "random_fills": "uniform_ normal_ log_normal_ exponential_ cauchy_ geometric_ bernoulli_ random_",
    "sampling": "multinomial bernoulli",
    "pointwise": "clamp_min clamp_max lerp addcmul addcdiv addmm nan_to_num nansum nanmean",
    # views.where is the method form, x.where(condition, other); tensor.where stays compare's (FUNCTIONS)
    "views": "narrow select diagonal diag trace nonzero argwhere where broadcast_to",
    "sequence": "repeat_interleave diff cumprod logcumsumexp",
    "ranking": "median mode unique histc",
    "elementwise": "fmod frac sgn logit signbit float_power gcd lcm frexp angle",
    "inplace_shape": "squeeze_ unsqueeze_ t_ transpose_ resize_",
    "aliases": "multiply subtract divide negative positive absolute not_equal greater greater_equal less less_equal "
    "moveaxis swapdims ravel ndimension byte char short ger",
    "introspect": "is_complex is_signed is_nonzero is_same_size is_inference get_device data_ptr storage_offset",
    "order_stats": "aminmax cummax cummin kthvalue nanmedian quantile nanquantile",
    "counting": "count_nonzero bincount unique_consecutive histogram",
    "moments": "cov corrcoef",
    "construct": "diag_embed diagflat",
    "dims": "sum_to_size",
    "trig": "asin acos atan sinh cosh asinh acosh atanh arcsin arccos arctan arcsinh arccosh arctanh "
    "deg2rad rad2deg sinc atan2 arctan2 hypot",
    "special": "exp2 erfc erfinv lgamma digamma polygamma mvlgamma i0 logaddexp logaddexp2 xlogy ldexp copysign "
    "fmax fmin heaviside nextafter",
    "index_ops": "index_add index_copy index_fill index_put take put masked_select masked_scatter",
    "scatter_reduce": "scatter_reduce index_reduce",
    "inplace_index": "scatter_ scatter_add_ scatter_reduce_ index_add_ index_copy_ index_fill_ index_reduce_ "
    "index_put_ put_ masked_scatter_ tril_ triu_ fill_diagonal_",
    "unfold": "unfold as_strided",
    "blas": "baddbmm addbmm addmv addr",
    "view_scatter": "slice_scatter select_scatter diagonal_scatter",
    "distance": "dist",
    "inplace_twins": "sign_ log1p_ expm1_ log2_ log10_ rsqrt_ square_ reciprocal_ sin_ cos_ tan_ clip_ floor_ "
    "ceil_ round_ trunc_ erf_ asin_ acos_ atan_ sinh_ cosh_ asinh_ acosh_ atanh_ arcsin_ arccos_ arctan_ "
    "arcsinh_ arccosh_ arctanh_ deg2rad_ rad2deg_ sinc_ atan2_ arctan2_ hypot_ exp2_ erfc_ erfinv_ lgamma_ "
    "digamma_ i0_ xlogy_ ldexp_ copysign_ heaviside_ nextafter_ fmod_ frac_ sgn_ logit_ float_power_ "
    "floor_divide_ remainder_ true_divide_ multiply_ subtract_ divide_ negative_ absolute_ not_equal_ greater_ "
    "greater_equal_ less_ less_equal_ eq_ ne_ lt_ le_ gt_ ge_ logical_and_ logical_or_ logical_not_ "
    "logical_xor_ bitwise_and_ bitwise_or_ bitwise_xor_ bitwise_not_ clamp_min_ clamp_max_ addmm_ nan_to_num_ "
    "cumsum_ cumprod_ fix fix_ swapaxes_ swapdims_ baddbmm_ addbmm_ addmv_ addr_ polygamma_ mvlgamma_ gcd_ lcm_ renorm_",
}

# operator -> (module, function, swap operands)
OPERATORS = {
    "__add__": ("arithmetic", "add", False),
    "__radd__": ("arithmetic", "add", True),
    "__sub__": ("arithmetic", "sub", False),
    "__rsub__": ("arithmetic", "sub", True),
    "__mul__": ("arithmetic", "mul", False),
    "__rmul__": ("arithmetic", "mul", True),
    "__truediv__": ("arithmetic", "div", False),
    "__rtruediv__": ("arithmetic", "rdiv", False),
    "__floordiv__": ("arithmetic", "floor_divide", False),
    "__rfloordiv__": ("arithmetic", "floor_divide", True),
    "__mod__": ("arithmetic", "remainder", False),
    "__rmod__": ("arithmetic", "remainder", True),
    "__pow__": ("arithmetic", "pow", False),
    "__rpow__": ("arithmetic", "pow", True),
    "__matmul__": ("linalg", "matmul", False),
    "__rmatmul__": ("linalg", "matmul", True),
    "__neg__": ("arithmetic", "neg", False),
    "__abs__": ("unary", "abs", False),
    "__eq__": ("compare", "eq_operator", False),
    "__ne__": ("compare", "ne_operator", False),
    "__lt__": ("compare", "lt", False),
    "__le__": ("compare", "le", False),
    "__gt__": ("compare", "gt", False),
    "__ge__": ("compare", "ge", False),
    "__and__": ("compare", "bitwise_and", False),
    "__rand__": ("compare", "bitwise_and", True),
    "__or__": ("compare", "bitwise_or", False),
    "__ror__": ("compare", "bitwise_or", True),
    "__xor__": ("compare", "bitwise_xor", False),
    "__rxor__": ("compare", "bitwise_xor", True),
    "__invert__": ("compare", "bitwise_not", False),
    "__getitem__": ("index", "getitem", False),
    "__setitem__": ("inplace", "setitem", False),
    "__iadd__": ("inplace", "add_", False),
    "__isub__": ("inplace", "sub_", False),
    "__imul__": ("inplace", "mul_", False),
    "__itruediv__": ("inplace", "div_", False),
}

PROPERTIES = {
    "T": ("shape", "reverse_dims"), "mT": ("shape", "matrix_transpose"), "is_cpu": ("introspect", "is_cpu"),
    "itemsize": ("introspect", "itemsize"), "nbytes": ("introspect", "nbytes"),
    "retains_grad": ("introspect", "retains_grad"),
}

# Free functions only (tensor.cat, tensor.where, ...), beyond the methods above, which are exported too.
FUNCTIONS = {
    "arithmetic": "rsub",
    "join": "cat concat stack hstack vstack dstack column_stack",
    "index": "one_hot",
    "layout": "pad",
    "linalg": "einsum tensordot",
    "linalg_extra": "chain_matmul svd_lowrank pca_lowrank",
    "compare": "where",
    "views": "broadcast_tensors broadcast_shapes meshgrid numel",
    "convert": "finfo iinfo",
    "ranking": "searchsorted bucketize",
    "distance": "cdist",
    "sampling": "normal",
    "aliases": "concatenate trapz",
    "introspect": "is_floating_point",
    "counting": "isin",
    "moments": "var_mean std_mean",
    "integrate": "trapezoid cumulative_trapezoid",
    "construct": "block_diag vander cartesian_prod combinations",
    "dims": "atleast_1d atleast_2d atleast_3d unravel_index",
    "quantize": "fake_quantize_per_tensor_affine fake_quantize_per_channel_affine",
}

missing: list[str] = []  # filled while binding; tests/tensor/test_methods.py asserts it is empty


def _swapped(fn):
    def method(self, other):
        return fn(other, self)

    method.__name__ = fn.__name__
    return method


def _numpy_dim_names(fn):
    """fn accepting NumPy's names for its dim arguments, as PyTorch does: x.sum(axis=1, keepdims=True)."""
    # The parameter names from the code object: inspect.signature for each of ~550 bindings cost
    # `import tensor` about 15 ms.
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return fn
    params = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    if "dim" not in params or "axis" in params:
        return fn

    @functools.wraps(fn)
    def method(*args, **kwargs):
        if kwargs:
            for alias, name in (("axis", "dim"), ("keepdims", "keepdim")):
                if alias in kwargs:
                    if name in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {name!r} and its alias {alias!r}; pass one")
                    kwargs[name] = kwargs.pop(alias)
        return fn(*args, **kwargs)

    return method


def _bind():
    modules = {}

    def lookup(module, name):
        if module not in modules:
            try:
                modules[module] = importlib.import_module(f".ops.{module}", __package__)
            except ImportError:
                modules[module] = None
        mod = modules[module]
        fn = getattr(mod, name, None) if mod is not None else None
        if fn is None:
            missing.append(f"{module}.{name}")
            return None
        return _numpy_dim_names(fn)

    for module, names in METHODS.items():
        for name in names.split():
            fn = lookup(module, name)
            if fn is not None:
                setattr(Tensor, name, fn)
    for dunder, (module, name, swap) in OPERATORS.items():
        fn = lookup(module, name)
        if fn is not None:
            setattr(Tensor, dunder, _swapped(fn) if swap else fn)
    for prop, (module, name) in PROPERTIES.items():
        fn = lookup(module, name)
        if fn is not None:
            setattr(Tensor, prop, property(fn))
    Tensor.__pos__ = lambda self: self
    functions = {}
    for table in (METHODS, FUNCTIONS):
        for module, names in table.items():
            for name in names.split():
                fn = lookup(module, name) if table is FUNCTIONS else getattr(Tensor, name, None)
                if fn is not None and not name.endswith("_"):
                    functions[name] = fn
    return functions


functions = _bind()  # the public free functions, exported by tensor/__init__.py
