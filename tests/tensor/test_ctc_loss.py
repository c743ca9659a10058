"""F.ctc_loss and nn.CTCLoss: values and gradients against torch (both target layouts, every reduction,
zero_infinity, repeated labels, unbatched input), a hand-computed case, finite differences, errors."""
import itertools
import re

import numpy as np
import pytest
from helpers import make, to_numpy

import tensor
import tensor.nn.functional as F
from tensor import nn

T, N, C, S = 12, 4, 6, 5
INPUT_LENGTHS = [12, 9, 5, 1]
TARGET_LENGTHS = [5, 3, 0, 1]


def log_softmax(x):
    return x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(-1, keepdims=True)


def random_batch(rng, dtype=np.float64, normalized=True):
    scores = rng.standard_normal((T, N, C))
    targets = rng.integers(1, C, (N, S))
    targets[0, 2] = targets[0, 1]  # a repeated label: the alignment needs a blank between them
    targets[1, 3:] = 0  # padding past the target length may hold anything, the blank included
    return (log_softmax(scores) if normalized else scores).astype(dtype), targets


def concatenated(targets, lengths):
    return np.concatenate([row[:n] for row, n in zip(targets, lengths)])


def run_both(torch, log_probs, targets, input_lengths, target_lengths, device, seed=0, **kwargs):
    """Loss and gradient of log_probs from raygrad and from torch, for one random output gradient."""
    ours_x = make(log_probs, device, requires_grad=True)
    theirs_x = torch.tensor(log_probs, requires_grad=True)

    def as_ours(lengths):
        return make(np.asarray(lengths), device) if isinstance(lengths, np.ndarray) else lengths

    def as_theirs(lengths):
        return torch.tensor(lengths) if isinstance(lengths, np.ndarray) else lengths

    ours = F.ctc_loss(ours_x, make(targets, device), as_ours(input_lengths), as_ours(target_lengths), **kwargs)
    theirs = torch.nn.functional.ctc_loss(theirs_x, torch.tensor(targets), as_theirs(input_lengths),
                                          as_theirs(target_lengths), **kwargs)
    seed = np.random.default_rng(seed).standard_normal(tuple(theirs.shape)).astype(log_probs.dtype)
    ours.backward(make(seed, device))
    theirs.backward(torch.tensor(seed))
    return (to_numpy(ours), to_numpy(ours_x.grad)), (theirs.detach().numpy(), theirs_x.grad.numpy())


def assert_close(ours, theirs, dtype):
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-5, 2e-5)
    for what, a, b in zip(("loss", "grad"), ours, theirs):
        assert a.dtype == dtype, what
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
@pytest.mark.parametrize("normalized", [True, False], ids=["log_softmax", "raw_scores"])
def test_matches_torch(dtype, reduction, layout, normalized, device, rng):
    """Raw scores check that the gradient is torch's (exp(log_probs) - posteriors), not the plain derivative."""
    torch = pytest.importorskip("torch")
    log_probs, targets = random_batch(rng, dtype, normalized)
    if layout == "concatenated":
        targets = concatenated(targets, TARGET_LENGTHS)
    ours, theirs = run_both(torch, log_probs, targets, np.array(INPUT_LENGTHS), np.array(TARGET_LENGTHS), device,
                            reduction=reduction)
    assert_close(ours, theirs, dtype)


@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_impossible_alignments_give_inf_or_zero(zero_infinity, reduction, device, rng):
    """A target longer than its input, and repeats that need more frames than there are, cannot be aligned."""
    torch = pytest.importorskip("torch")
    log_probs, _ = random_batch(rng)
    targets = np.array([[1, 2, 3, 4, 5], [2, 2, 2, 0, 0], [3, 3, 0, 0, 0], [1, 2, 0, 0, 0]])
    input_lengths, target_lengths = np.array([4, 4, 3, 2]), np.array([5, 3, 2, 2])  # possible: the last two
    ours, theirs = run_both(torch, log_probs, targets, input_lengths, target_lengths, device,
                            reduction=reduction, zero_infinity=zero_infinity)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-10)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-10, atol=1e-12)  # NaN where torch has NaN
    if reduction == "none":
        assert list(np.isinf(ours[0])) == ([False] * 4 if zero_infinity else [True, True, False, False])
    if zero_infinity:
        assert np.isfinite(ours[1]).all() and not ours[1][:, :2].any()


@pytest.mark.parametrize("lengths", ["tuples", "lists", "int32 tensors"])
def test_lengths_as_tuples_lists_or_int32(lengths, device, rng):
    torch = pytest.importorskip("torch")
    log_probs, targets = random_batch(rng)
    if lengths == "int32 tensors":
        arguments = (np.array(INPUT_LENGTHS, np.int32), np.array(TARGET_LENGTHS, np.int32))
    else:
        arguments = (tuple(INPUT_LENGTHS), tuple(TARGET_LENGTHS))
        if lengths == "lists":
            arguments = tuple(map(list, arguments))
    ours, theirs = run_both(torch, log_probs, targets.astype(np.int32), *arguments, device)
    assert_close(ours, theirs, np.float64)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_unbatched(reduction, device, rng):
    torch = pytest.importorskip("torch")
    log_probs = log_softmax(rng.standard_normal((7, 4)))
    cases = [(np.array([1, 1, 3]), np.array(7), np.array(3)), (np.array([[1, 1, 3]]), [6], [2])]  # (S,) or (1, S)
    for targets, input_length, target_length in cases:
        ours, theirs = run_both(torch, log_probs, targets, input_length, target_length, device, reduction=reduction)
        assert ours[0].shape == theirs[0].shape and ours[1].shape == (7, 4)
        assert_close(ours, theirs, np.float64)


@pytest.mark.parametrize("blank", [0, 3, 5])
def test_other_blank_index(blank, device, rng):
    torch = pytest.importorskip("torch")
    log_probs, _ = random_batch(rng)
    labels = [c for c in range(C) if c != blank]
    targets = np.array(labels)[rng.integers(0, C - 1, (N, S))]
    ours, theirs = run_both(torch, log_probs, targets, np.array(INPUT_LENGTHS), np.array(TARGET_LENGTHS), device,
                            blank=blank, reduction="sum")
    assert_close(ours, theirs, np.float64)


def test_a_hand_computed_case(device):
    """Target [1] in two frames: the alignments 1 1, 1 -, - 1."""
    probs = np.array([[0.6, 0.4], [0.3, 0.7]])  # frame x class (0 = blank)
    loss = F.ctc_loss(make(np.log(probs)[:, None], device), make(np.array([[1]]), device), [2], [1],
                      reduction="none")
    expected = 0.4 * 0.7 + 0.4 * 0.3 + 0.6 * 0.7
    np.testing.assert_allclose(to_numpy(loss), [-np.log(expected)], rtol=1e-12)


def test_gradient_through_log_softmax_matches_finite_differences(device, rng):
    """With log_softmax in the graph torch's convention is the true gradient of the logits."""
    logits = rng.standard_normal((5, 2, 4))
    targets = make(np.array([[1, 1], [2, 3]]), device)

    def loss(x):
        return F.ctc_loss(F.log_softmax(x, dim=-1), targets, [5, 4], [2, 1])

    assert tensor.autograd.gradcheck(loss, [make(logits, device, requires_grad=True)])


def test_module_matches_functional(device, rng):
    log_probs, targets = random_batch(rng)
    x = make(log_probs, device)
    module = nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    expected = F.ctc_loss(x, make(targets, device), INPUT_LENGTHS, TARGET_LENGTHS, reduction="sum",
                          zero_infinity=True)
    np.testing.assert_allclose(to_numpy(module(x, make(targets, device), INPUT_LENGTHS, TARGET_LENGTHS)),
                               to_numpy(expected))
    assert module.reduction == "sum" and module.zero_infinity and module.blank == 0


ERRORS = [
    (dict(input_lengths=[13, 9, 5, 1]), ValueError, "input_lengths must be in [0, 12]"),
    (dict(input_lengths=[-1, 9, 5, 1]), ValueError, "input_lengths"),
    (dict(target_lengths=[6, 3, 0, 1]), tensor.errors.ShapeError, "hold only 5 labels"),
    (dict(target_lengths=[-1, 3, 0, 1]), ValueError, "target_lengths must be >= 0"),
    (dict(input_lengths=[12, 9, 5]), tensor.errors.ShapeError, "batch size 4"),
    (dict(target_lengths=(5, 3)), tensor.errors.ShapeError, "batch size 4"),
    (dict(input_lengths=3), TypeError, "tuple/list of ints"),
    (dict(targets=np.zeros((4, 5), np.int64)), ValueError, "differ from blank=0"),
    (dict(targets=np.full((4, 5), 6)), ValueError, "labels must be in [0, 6)"),
    (dict(targets=np.ones((3, 5), np.int64)), tensor.errors.ShapeError, "(N, S) = (4, S)"),
    (dict(targets=np.ones((4, 5, 1), np.int64)), tensor.errors.ShapeError, "(N, S) = (4, S)"),
    (dict(targets=np.ones(8, np.int64)), tensor.errors.ShapeError, "sum(target_lengths) = 9"),
    (dict(log_probs=np.zeros((12, 6)), input_lengths=[12], target_lengths=[3]), tensor.errors.ShapeError,
     "(N, S) = (1, S)"),
    (dict(log_probs=np.zeros(12)), tensor.errors.ShapeError, "(T, N, C)"),
    (dict(log_probs=np.zeros((12, 4, 6), np.int64)), tensor.errors.DTypeError, "floating point"),
    (dict(blank=6), ValueError, "blank=6"),
    (dict(reduction="avg"), ValueError, "reduction"),
]


@pytest.mark.parametrize("change, error, words", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_bad_inputs_are_refused(change, error, words, device, rng):
    log_probs, targets = random_batch(rng)
    arguments = dict(log_probs=log_probs, targets=targets, input_lengths=INPUT_LENGTHS,
                     target_lengths=TARGET_LENGTHS)
    arguments.update(change)
    for name in ("log_probs", "targets"):
        arguments[name] = make(arguments[name], device)
    with pytest.raises(error, match=re.escape(words)):
        F.ctc_loss(**arguments)


def test_lengths_in_float_tensors_are_refused(device, rng):
    log_probs, targets = random_batch(rng)
    with pytest.raises(tensor.errors.DTypeError, match="use .long()"):
        F.ctc_loss(make(log_probs, device), make(targets, device), make(np.array(INPUT_LENGTHS, float), device),
                   TARGET_LENGTHS)


def test_every_length_combination_of_a_short_batch_matches_torch(device, rng):
    """Empty targets, empty inputs, and targets exactly as long as the input allows."""
    torch = pytest.importorskip("torch")
    pairs = list(itertools.product(range(4), range(3)))
    log_probs = log_softmax(rng.standard_normal((3, len(pairs), 3)))
    input_lengths, target_lengths = (np.array(v) for v in zip(*pairs))
    targets = rng.integers(1, 3, (len(pairs), 2))
    ours, theirs = run_both(torch, log_probs, targets, input_lengths, target_lengths, device, reduction="none")
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-10)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-10, atol=1e-12)
