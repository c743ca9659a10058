"""Zero-size ("empty") tensors through the tensor ops, forward and backward, as in PyTorch.

Each case is one line of a table: a function of (m, x) that works for m = this package and for m = torch,
the empty input's shape, and what comes out (shape, dtype, and the value of every element, or None when
the result has none or is random). The same table runs against these fixed expectations (no torch
needed, on --device too) and against torch itself where it is installed. The error table lists what
PyTorch refuses on empty input: we refuse it too, with our own message naming the shape.
"""
import functools
import warnings
from collections import namedtuple

import numpy as np
import pytest

import tensor

from helpers import to_numpy

INF, NAN = float("inf"), float("nan")
Case = namedtuple("Case", "name fn shape out_shape dtype fill grad")


def case(name, fn, shape, out_shape, dtype="float32", fill=None, grad=None):
    """grad: whether the result is on x's graph (by default, when it is a float)."""
    grad = dtype.startswith("float") if grad is None else grad
    return pytest.param(Case(name, fn, shape, out_shape, dtype, fill, grad), id=name)


def made(name, fn, out_shape, dtype="float32"):
    """A case that makes a new empty tensor (x is not used)."""
    return case(name, fn, (0,), out_shape, dtype, grad=False)


def _long(m, *values):
    return m.tensor(list(values), dtype=m.int64)


def _setitem(x, index, value):
    y = x.clone()
    y[index] = value
    return y


CASES = [
    # ------------------------------------------------------------------------------ reductions
    case("sum", lambda m, x: x.sum(), (0, 3), (), fill=0.0),
    case("sum over the empty dim", lambda m, x: x.sum(0), (0, 3), (3,), fill=0.0),
    case("sum over a full dim", lambda m, x: x.sum(1), (0, 3), (0,)),
    case("sum keepdim", lambda m, x: x.sum(1, keepdim=True), (2, 0, 3), (2, 1, 3), fill=0.0),
    case("sum of bools", lambda m, x: (x > 0).sum(0), (0, 3), (3,), "int64", 0),
    case("prod", lambda m, x: x.prod(), (3, 0), (), fill=1.0),
    case("prod over the empty dim", lambda m, x: x.prod(1), (3, 0), (3,), fill=1.0),
    case("mean", lambda m, x: x.mean(), (0, 3), (), fill=NAN),
    case("mean over the empty dim", lambda m, x: x.mean(0), (0, 3), (3,), fill=NAN),
    case("nansum", lambda m, x: x.nansum(), (0,), (), fill=0.0),
    case("nanmean", lambda m, x: x.nanmean(), (0, 3), (), fill=NAN),
    case("nanmean over the empty dim", lambda m, x: x.nanmean(1), (3, 0), (3,), fill=NAN),
    case("var over a full dim", lambda m, x: x.var(1), (0, 3), (0,)),
    case("std over a full dim", lambda m, x: x.std(-1), (2, 0, 3), (2, 0)),
    case("amax over a full dim", lambda m, x: x.amax(1), (0, 3), (0,)),
    case("amin over a full dim", lambda m, x: x.amin(0), (3, 0), (0,)),
    case("max over a full dim", lambda m, x: x.max(1).values, (0, 3), (0,)),
    case("argmax over a full dim", lambda m, x: x.argmax(1), (0, 3), (0,), "int64"),
    case("logsumexp over the empty dim", lambda m, x: x.logsumexp(0), (0, 3), (3,), fill=-INF),
    case("logsumexp over all", lambda m, x: x.logsumexp((0, 1)), (3, 0), (), fill=-INF),
    case("norm", lambda m, x: x.norm(), (0, 3), (), fill=0.0),
    case("norm p=1", lambda m, x: x.norm(p=1), (3, 0), (), fill=0.0),
    case("norm p=3", lambda m, x: x.norm(p=3, dim=0), (0, 3), (3,), fill=0.0),
    case("norm p=0", lambda m, x: x.norm(p=0), (0,), (), fill=0.0, grad=False),  # a count: no gradient
    case("vector_norm inf over a full dim", lambda m, x: m.linalg.vector_norm(x, INF, dim=1), (0, 3), (0,)),
    case("matrix_norm 1", lambda m, x: m.linalg.matrix_norm(x, 1), (3, 0), (), fill=0.0),
    case("matrix_norm 2", lambda m, x: m.linalg.matrix_norm(x, 2), (2, 0, 3), (2,), fill=0.0),
    case("matrix_norm inf", lambda m, x: m.linalg.matrix_norm(x, INF), (0, 3), (), fill=0.0),
    case("matrix_norm nuc", lambda m, x: m.linalg.matrix_norm(x, "nuc"), (0, 3), (), fill=0.0),
    case("median", lambda m, x: x.median(), (0, 3), (), fill=NAN),
    case("nanmedian", lambda m, x: x.nanmedian(), (0,), (), fill=NAN),
    case("median over a full dim", lambda m, x: x.median(1).values, (0, 3), (0,)),
    case("count_nonzero", lambda m, x: m.count_nonzero(x), (0, 3), (), "int64", 0),
    case("all", lambda m, x: (x > 0).all(), (0, 3), (), "bool", True),
    case("any over the empty dim", lambda m, x: (x > 0).any(0), (0, 3), (3,), "bool", False),
    case("trace", lambda m, x: x.trace(), (0, 3), (), fill=0.0),
    # ------------------------------------------------------------------------------ cumulative
    case("cumsum", lambda m, x: x.cumsum(0), (0, 3), (0, 3)),
    case("cumprod", lambda m, x: x.cumprod(1), (0, 3), (0, 3)),
    case("cummax", lambda m, x: x.cummax(0).values, (0, 3), (0, 3)),
    case("logcumsumexp", lambda m, x: x.logcumsumexp(1), (3, 0), (3, 0)),
    case("diff", lambda m, x: x.diff(dim=0), (0, 3), (0, 3)),
    # ------------------------------------------------------------------------------ joins and splits
    case("cat of empties", lambda m, x: m.cat([x, x], 1), (3, 0), (3, 0)),
    case("cat with a full piece", lambda m, x: m.cat([m.ones(2, 3), x]), (0, 3), (2, 3), fill=1.0),
    case("cat with a legacy (0,)", lambda m, x: m.cat([m.ones(2, 3), x], 1), (0,), (2, 3), fill=1.0),
    case("cat with a legacy (0,) promotes", lambda m, x: m.cat([m.ones(2, 3, dtype=m.int64), x]), (0,), (2, 3),
         fill=1.0),
    case("stack", lambda m, x: m.stack([x, x], 1), (0, 3), (0, 2, 3)),
    case("split", lambda m, x: m.stack(x.split(1, 1)), (0, 3), (3, 0, 1)),
    case("chunk", lambda m, x: x.chunk(3, 1)[2], (0, 3), (0, 1)),
    case("tensor_split", lambda m, x: m.tensor_split(x, 3, dim=1)[1], (0, 3), (0, 1)),
    case("unbind", lambda m, x: m.stack(x.unbind(1), 0), (0, 3), (3, 0)),
    # ------------------------------------------------------------------------------ shape
    case("reshape", lambda m, x: x.reshape(-1, 3), (3, 0), (0, 3)),
    case("view", lambda m, x: x.view(5, 0), (0, 3), (5, 0)),
    case("flatten", lambda m, x: x.flatten(), (2, 0, 3), (0,)),
    case("permute", lambda m, x: x.permute(2, 0, 1), (2, 0, 3), (3, 2, 0)),
    case("expand a size-1 dim to 0", lambda m, x: m.ones(1, 3).expand(0, 3) + x, (0, 3), (0, 3)),
    case("broadcast (0, 3) with (1, 3)", lambda m, x: x + m.ones(1, 3), (0, 3), (0, 3)),
    case("repeat", lambda m, x: x.repeat(2, 2), (0, 3), (0, 6)),
    case("flip", lambda m, x: x.flip(0), (0, 3), (0, 3)),
    case("roll", lambda m, x: x.roll(1, 1), (3, 0), (3, 0)),
    case("tril", lambda m, x: x.tril(), (0, 3), (0, 3)),
    case("pad", lambda m, x: m.nn.functional.pad(x, (1, 1)), (0, 3), (0, 5)),
    # ------------------------------------------------------------------------------ indexing
    case("empty long index", lambda m, x: x[_long(m)], (0, 3), (0, 3)),
    case("empty long index of a full tensor", lambda m, x: m.ones(3, 2)[_long(m)] + x.sum(), (0,), (0, 2)),
    case("empty boolean mask", lambda m, x: x[x > 0], (0, 3), (0,)),
    case("setitem at an empty index", lambda m, x: _setitem(m.ones(3, 2), _long(m), 5.0) + x.sum(), (0,), (3, 2),
         fill=1.0),
    case("index_select", lambda m, x: x.index_select(1, _long(m)), (0, 3), (0, 0)),
    case("gather with an empty index", lambda m, x: m.ones(3, 2).gather(0, m.zeros(0, 5, dtype=m.int64)) + x.sum(),
         (0,), (0, 5)),
    case("scatter_add with a 1-d empty index", lambda m, x: x.scatter_add(0, _long(m), m.ones(4, 4)), (3, 0),
         (3, 0)),
    case("scatter_add into a full tensor", lambda m, x: m.ones(3, 2).scatter_add(0, _long(m), m.ones(4)) + x.sum(),
         (0,), (3, 2), fill=1.0),
    case("scatter_reduce with an empty index", lambda m, x: m.ones(3, 2).scatter_reduce(
        0, _long(m), m.ones(4), "amax") + x.sum(), (0,), (3, 2), fill=1.0),
    case("index_add with an empty index", lambda m, x: m.ones(3, 2).index_add(0, _long(m), x), (0, 2), (3, 2),
         fill=1.0),
    case("index_put with an empty index", lambda m, x: m.ones(3, 2).index_put((_long(m),), m.tensor(2.0)) + x.sum(),
         (0,), (3, 2), fill=1.0),
    case("masked_select", lambda m, x: m.masked_select(x, x > 0), (2, 0, 3), (0,)),
    case("masked_fill", lambda m, x: x.masked_fill(x > 0, 1.0), (0, 3), (0, 3)),
    case("where", lambda m, x: m.where(x > 0, x, 0.0), (0, 3), (0, 3)),
    case("nonzero", lambda m, x: x.nonzero(), (0, 3), (0, 2), "int64"),
    case("unique", lambda m, x: m.unique(x.detach()), (0, 3), (0,), grad=False),
    case("unique along the empty dim", lambda m, x: m.unique(x.detach(), dim=0), (0, 3), (0, 3), grad=False),
    # ------------------------------------------------------------------------------ sorting and searching
    case("sort", lambda m, x: x.sort(0).values, (0, 3), (0, 3)),
    case("argsort", lambda m, x: x.argsort(1), (3, 0), (3, 0), "int64"),
    case("topk 0", lambda m, x: x.topk(0, 0).values, (0, 3), (0, 3)),
    case("kthvalue over a full dim", lambda m, x: x.kthvalue(1, 1).values, (0, 3), (0,)),
    case("searchsorted into nothing", lambda m, x: m.searchsorted(x.detach(), m.ones(3)), (0,), (3,), "int64", 0),
    case("bucketize nothing", lambda m, x: m.bucketize(x.detach(), m.ones(3)), (0, 3), (0, 3), "int64"),
    case("histc", lambda m, x: m.histc(x.detach(), 4), (0,), (4,), fill=0.0, grad=False),
    case("bincount", lambda m, x: m.bincount(x.detach().long(), minlength=3), (0,), (3,), "int64", 0),
    case("bincount with weights", lambda m, x: m.bincount(x.detach().long(), x.detach()), (0,), (0,), "int64"),
    # ------------------------------------------------------------------------------ products
    case("matmul, zero inner size", lambda m, x: x.mT @ x, (0, 3), (3, 3), fill=0.0),
    case("matmul, zero rows", lambda m, x: x @ m.ones(3, 4), (0, 3), (0, 4)),
    case("mm, zero inner size", lambda m, x: m.mm(m.ones(2, 0), x), (0, 3), (2, 3), fill=0.0),
    case("bmm, zero inner size", lambda m, x: m.bmm(m.ones(2, 4, 0), x), (2, 0, 3), (2, 4, 3), fill=0.0),
    case("mv, zero inner size", lambda m, x: m.mv(m.ones(2, 0), x), (0,), (2,), fill=0.0),
    case("dot", lambda m, x: m.dot(x, x), (0,), (), fill=0.0),
    case("einsum, zero inner size", lambda m, x: m.einsum("ij,jk->ik", m.ones(2, 0), x), (0, 3), (2, 3), fill=0.0),
    case("tensordot, zero inner size", lambda m, x: m.tensordot(m.ones(2, 0), x, dims=1), (0, 3), (2, 3), fill=0.0),
    case("tensordot over every dim", lambda m, x: m.tensordot(x, x, dims=2), (3, 0), (), fill=0.0),
    case("inner, zero inner size", lambda m, x: m.inner(x, x), (3, 0), (3, 3), fill=0.0),
    case("outer", lambda m, x: m.outer(x, m.ones(3)), (0,), (0, 3)),
    case("cdist, zero features", lambda m, x: m.cdist(x, m.ones(4, 0)), (2, 0), (2, 4), fill=0.0),
    case("addmm, zero inner size", lambda m, x: m.addmm(m.ones(2, 3), m.ones(2, 0), x), (0, 3), (2, 3), fill=1.0),
    # ------------------------------------------------------------------------------ linear algebra
    case("det of a 0 x 0 matrix", lambda m, x: m.linalg.det(x), (0, 0), (), fill=1.0),
    case("det of no matrices", lambda m, x: m.linalg.det(x + m.eye(3)), (0, 3, 3), (0,)),
    case("slogdet of a 0 x 0 matrix", lambda m, x: m.linalg.slogdet(x).logabsdet, (0, 0), (), fill=0.0),
    case("inv of a 0 x 0 matrix", lambda m, x: m.linalg.inv(x), (2, 0, 0), (2, 0, 0)),
    case("matrix_exp of a 0 x 0 matrix", lambda m, x: m.linalg.matrix_exp(x), (0, 0), (0, 0)),
    case("cond of a 0 x 0 matrix", lambda m, x: m.linalg.cond(x), (2, 0, 0), (2,), fill=0.0),
    case("solve with no right-hand sides", lambda m, x: m.linalg.solve(m.eye(3), x), (3, 0), (3, 0)),
    # ------------------------------------------------------------------------------ elementwise
    case("exp", lambda m, x: x.exp(), (0, 3), (0, 3)),
    case("sigmoid", lambda m, x: x.sigmoid(), (2, 0, 3), (2, 0, 3)),
    case("pow", lambda m, x: x ** 2, (0,), (0,)),
    case("div", lambda m, x: x / x, (3, 0), (3, 0)),
    case("clamp", lambda m, x: x.clamp(0, 1), (0, 3), (0, 3)),
    case("comparison", lambda m, x: x == x, (0, 3), (0, 3), "bool"),
    case("lerp", lambda m, x: m.lerp(x, x, 0.5), (0, 3), (0, 3)),
    # ------------------------------------------------------------------------------ creation
    made("zeros", lambda m, x: m.zeros(0), (0,)),
    made("arange", lambda m, x: m.arange(0), (0,), "int64"),
    made("arange with start == end", lambda m, x: m.arange(5.0, 5.0), (0,)),
    made("linspace", lambda m, x: m.linspace(0, 1, 0), (0,)),
    made("eye", lambda m, x: m.eye(0, 3), (0, 3)),
    case("empty_like", lambda m, x: m.empty_like(x), (0, 3), (0, 3), grad=False),
    case("full_like", lambda m, x: m.full_like(x, 7), (3, 0), (3, 0), grad=False),
    made("randn", lambda m, x: m.randn(0, 3), (0, 3)),
    made("randint", lambda m, x: m.randint(0, 5, (0,)), (0,), "int64"),
    made("randperm", lambda m, x: m.randperm(0), (0,), "int64"),
    made("tensor([])", lambda m, x: m.tensor([]), (0,)),
]

ErrorCase = namedtuple("ErrorCase", "name fn shape match")


def error_case(name, fn, shape, match):
    return pytest.param(ErrorCase(name, fn, shape, match), id=name)


# What PyTorch refuses on empty input (a max of nothing has no identity, and so on): we refuse it too.
ERROR_CASES = [
    error_case("amax over the empty dim", lambda m, x: x.amax(0), (0, 3), r"dim 0 of size 0 \(shape \(0, 3\)\)"),
    error_case("max of everything", lambda m, x: x.max(), (3, 0), r"empty \(shape \(3, 0\)\)"),
    error_case("min over the empty dim", lambda m, x: x.min(1), (3, 0), r"dim 1 of size 0"),
    error_case("argmax of everything", lambda m, x: x.argmax(), (0,), r"empty \(shape \(0,\)\)"),
    error_case("aminmax", lambda m, x: m.aminmax(x), (0, 3), r"size 0"),
    error_case("norm p=inf", lambda m, x: x.norm(p=INF), (0, 3), r"dim 0 of size 0"),
    error_case("norm p=-1", lambda m, x: x.norm(p=-1), (0, 3), r"p=-1.*dim 0 of size 0"),
    error_case("matrix_norm -2", lambda m, x: m.linalg.matrix_norm(x, -2), (0, 3), r"size 0"),
    error_case("median over the empty dim", lambda m, x: x.median(0), (0, 3), r"dim 0 of size 0"),
    error_case("mode over the empty dim", lambda m, x: x.mode(0), (0, 3), r"dim 0 of size 0"),
    error_case("kthvalue over the empty dim", lambda m, x: x.kthvalue(1, 0), (0, 3), r"dim 0 of size 0"),
    error_case("topk past the size", lambda m, x: x.topk(1, 0), (0, 3), r"dim 0 with size 0"),
    error_case("quantile", lambda m, x: m.quantile(x, 0.5), (0, 3), r"empty \(shape \(0, 3\)\)"),
    error_case("item", lambda m, x: x.item(), (0,), r"one-element.*\(0,\)"),
    error_case("reshape with an ambiguous -1", lambda m, x: x.reshape(-1, 0), (0, 3), r"\(0, 3\).*\(-1, 0\)"),
    error_case("cat of misfits", lambda m, x: m.cat([x, m.ones(2, 3)]), (0, 4), r"\(2, 3\).*\(0, 4\)"),
    error_case("unique along a full dim", lambda m, x: m.unique(x.detach(), dim=1), (0, 3), r"\(0, 3\)"),
    error_case("index of an empty dim", lambda m, x: x[0], (0, 3), r"index 0 .*size 0"),
    error_case("arange the wrong way", lambda m, x: m.arange(5, 2), (0,), r"wrong side"),
    error_case("zeros of a negative size", lambda m, x: m.zeros(-1), (0,), r"negative"),
]


class _On:
    """This package as the cases see it: its factories (m.ones(2, 3)) make tensors on `device`."""

    FACTORIES = {"zeros", "ones", "full", "empty", "tensor", "eye", "arange", "linspace", "randn", "rand", "randint",
                 "randperm"}

    def __init__(self, device):
        self.device = device

    def __getattr__(self, name):
        attr = getattr(tensor, name)
        return functools.partial(attr, device=self.device) if name in self.FACTORIES else attr


def _run(m, fn, shape, **zeros_kwargs):
    """fn on an empty float32 input that requires grad; (input, output). A float output is summed and
    differentiated, which must give the input its (empty) gradient."""
    x = m.zeros(*shape, dtype=m.float32, requires_grad=True, **zeros_kwargs)
    out = fn(m, x)
    if out.requires_grad:
        out.sum().backward()
    return x, out


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


@pytest.mark.parametrize("c", CASES)
def test_empty_input_gives_pytorchs_result(c, device):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # PyTorch is silent on these: so are we
        x, out = _run(_On(device), c.fn, c.shape, device=device)
    assert tuple(out.shape) == c.out_shape
    assert _dtype_name(out.dtype) == c.dtype
    if c.fill is not None:
        np.testing.assert_array_equal(to_numpy(out), np.full(c.out_shape, c.fill, dtype=c.dtype))
    assert out.requires_grad == c.grad
    if c.grad:
        assert x.grad is not None and tuple(x.grad.shape) == c.shape


@pytest.mark.parametrize("c", CASES)
def test_empty_input_agrees_with_torch(c):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own deprecation notes
        tx, expected = _run(torch, c.fn, c.shape)
        x, out = _run(tensor, c.fn, c.shape)
    assert (tuple(out.shape), _dtype_name(out.dtype)) == (tuple(expected.shape), _dtype_name(expected.dtype))
    if c.fill is not None:  # (random and uninitialised values aside)
        np.testing.assert_array_equal(to_numpy(out), expected.detach().numpy())
    if tx.grad is not None:  # (torch's matrix_norm and cond of empty matrices lose the graph; ours keep it)
        assert x.grad is not None and tuple(x.grad.shape) == tuple(tx.grad.shape)


@pytest.mark.parametrize("c", ERROR_CASES)
def test_what_pytorch_refuses_on_empty_input_we_refuse_clearly(c, device):
    with pytest.raises((IndexError, ValueError, RuntimeError), match=c.match):  # (ShapeError is both of the last)
        c.fn(_On(device), tensor.zeros(*c.shape, device=device))


@pytest.mark.parametrize("c", ERROR_CASES)
def test_torch_refuses_the_error_cases_too(c):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception):
        c.fn(torch, torch.zeros(*c.shape))


# A full tensor w that meets an empty one: its gradient (ones or zeros, by the case) is PyTorch's.
FULL_GRAD_CASES = [
    ("matmul with an empty batch of rows", lambda m, w: m.zeros(0, 3) @ w, (3, 4), 0.0),
    ("cat with an empty piece", lambda m, w: m.cat([w, m.zeros(0, 3)]), (2, 3), 1.0),
    ("cat with a legacy (0,)", lambda m, w: m.cat([m.zeros(0), w], 1), (2, 3), 1.0),
    ("broadcast against an empty tensor", lambda m, w: m.zeros(0, 3) * w, (1, 3), 0.0),
    ("the sum of an empty tensor added", lambda m, w: m.zeros(0, 3).sum(0) + w, (3,), 1.0),
    ("empty long index", lambda m, w: w[_long(m)], (3, 2), 0.0),
    ("empty boolean mask", lambda m, w: w[m.zeros(3, 2, dtype=m.bool)], (3, 2), 0.0),
    ("setitem at an empty index", lambda m, w: _setitem(w, _long(m), 5.0), (3, 2), 1.0),
    ("gather with an empty index", lambda m, w: w.gather(0, m.zeros(0, 5, dtype=m.int64)), (3, 2), 0.0),
    ("scatter with an empty index", lambda m, w: w.scatter(0, _long(m), m.ones(4)), (3, 2), 1.0),
    ("index_add with an empty index", lambda m, w: w.index_add(0, _long(m), m.zeros(0, 2)), (3, 2), 1.0),
    ("masked_scatter of nothing", lambda m, w: w.masked_scatter(m.zeros(3, 2, dtype=m.bool), m.zeros(0)), (3, 2),
     1.0),
    ("repeat 0 times", lambda m, w: w.repeat(0, 1), (2, 3), 0.0),
    ("expand to 0", lambda m, w: w.expand(0, 3), (1, 3), 0.0),
    ("narrow to 0", lambda m, w: w.narrow(0, 1, 0), (3, 2), 0.0),
    ("topk 0", lambda m, w: w.topk(0, 0).values, (3, 2), 0.0),
]


@pytest.mark.parametrize("name,fn,shape,grad", FULL_GRAD_CASES, ids=[c[0] for c in FULL_GRAD_CASES])
def test_full_tensor_meeting_an_empty_one_gets_its_gradient(name, fn, shape, grad, device):
    w = tensor.ones(*shape, device=device, requires_grad=True)
    fn(_On(device), w).sum().backward()
    np.testing.assert_array_equal(to_numpy(w.grad), np.full(shape, grad, dtype=np.float32))


@pytest.mark.parametrize("name,fn,shape,grad", FULL_GRAD_CASES, ids=[c[0] for c in FULL_GRAD_CASES])
def test_full_tensor_gradients_agree_with_torch(name, fn, shape, grad):
    torch = pytest.importorskip("torch")
    w = torch.ones(*shape, requires_grad=True)
    fn(torch, w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full(shape, grad, dtype=np.float32))


def test_empty_tensor_to_python():
    x = tensor.zeros(2, 0)
    assert x.tolist() == [[], []] and x.numel() == 0 and len(tensor.zeros(0)) == 0
    assert tensor.zeros(0, 3).tolist() == []


def test_median_of_nothing_keeps_integer_dtypes():
    # PyTorch returns its NaN cast to the dtype: the dtype is the point, the value is arbitrary
    assert tensor.zeros(0, dtype=tensor.int64).median().dtype == tensor.int64
    assert tensor.zeros(0, dtype=tensor.int32).nanmedian().dtype == tensor.int32


def test_second_derivative_through_empty_reductions():
    x = tensor.zeros(0, 3, requires_grad=True)
    (g,) = tensor.autograd.grad((x * x).sum() + x.logsumexp(0).sum(), x, create_graph=True)
    (gg,) = tensor.autograd.grad(g.sum(), x)
    assert tuple(g.shape) == tuple(gg.shape) == (0, 3)
