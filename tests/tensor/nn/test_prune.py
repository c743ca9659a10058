"""nn.utils.prune against torch.nn.utils.prune: masks, pruned weights, state_dict layout, training through
the reparametrization, remove(), global and chained pruning, and the errors. The deterministic methods
(L1, Ln, custom, global L1) must give torch's masks exactly, ties included; the random ones draw from the
engine's generator, so only their counts and structure are compared."""
import numpy as np
import pytest

import tensor
from tensor import nn
from tensor.nn.utils import prune
from tensor.nn.utils._prune_select import topk_set

torch = pytest.importorskip("torch")
tprune = pytest.importorskip("torch.nn.utils.prune")


def _np(t):
    return t.detach().cpu().numpy() if hasattr(t, "cpu") and not isinstance(t, tensor.Tensor) else np.asarray(t.data)


def twins(build, seed=0, levels=None):
    """The same module in both libraries; levels quantizes the weights so that |w| ties abound."""
    torch.manual_seed(seed)
    theirs = build(torch.nn)
    if levels:
        with torch.no_grad():
            for p in theirs.parameters():
                p.copy_(torch.round(p * levels) / levels)
    ours = build(nn)
    ours.load_state_dict({k: tensor.tensor(v.detach().numpy().copy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def assert_same_state(ours, theirs):
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (k, v), (_, w) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        np.testing.assert_array_equal(_np(v), _np(w), err_msg=k)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]


def linear(lib):
    return lib.Linear(12, 7)


def conv(lib):
    return lib.Conv2d(3, 6, 3)


def net(lib):
    return lib.Sequential(lib.Conv2d(2, 4, 3), lib.ReLU(), lib.Flatten(), lib.Linear(4 * 4 * 4, 5))


# ------------------------------------------------------------------------------- deterministic methods

@pytest.mark.parametrize("amount", [0.3, 0.5, 0.0, 1.0, 17, 0])
@pytest.mark.parametrize("levels", [None, 4])
def test_l1_unstructured_matches_torch(amount, levels):
    ours, theirs = twins(linear, levels=levels)
    assert prune.l1_unstructured(ours, "weight", amount) is ours
    tprune.l1_unstructured(theirs, "weight", amount)
    assert_same_state(ours, theirs)
    np.testing.assert_array_equal(_np(ours.weight), _np(theirs.weight))
    assert not isinstance(ours.weight, nn.Parameter) and isinstance(ours.weight_orig, nn.Parameter)
    assert prune.is_pruned(ours) and not prune.is_pruned(nn.Linear(2, 2))


@pytest.mark.parametrize("n", [1, 2, 3, 0.5, float("inf"), -float("inf")])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_ln_structured_matches_torch(n, dim):
    ours, theirs = twins(conv, levels=2)  # coarse weights: equal channel norms
    prune.ln_structured(ours, "weight", 0.5, n, dim)
    tprune.ln_structured(theirs, "weight", 0.5, n, dim)
    assert_same_state(ours, theirs)


def test_ln_structured_ties_pick_torchs_channels():
    ours, theirs = twins(linear)
    with torch.no_grad():
        theirs.weight.copy_(torch.ones(7, 12))
    ours.weight.data[...] = 1.0
    prune.ln_structured(ours, "weight", 3, 2, 0)
    tprune.ln_structured(theirs, "weight", 3, 2, 0)
    prune.ln_structured(ours, "weight", 5, "fro", 1)
    tprune.ln_structured(theirs, "weight", 5, "fro", 1)
    assert_same_state(ours, theirs)


def test_importance_scores_and_custom_mask():
    ours, theirs = twins(conv)
    scores = np.random.default_rng(0).standard_normal((6, 3, 3, 3)).astype(np.float32)
    prune.l1_unstructured(ours, "weight", 0.4, importance_scores=tensor.tensor(scores))
    tprune.l1_unstructured(theirs, "weight", 0.4, importance_scores=torch.tensor(scores))
    prune.ln_structured(ours, "weight", 2, 1, 1, importance_scores=tensor.tensor(scores))
    tprune.ln_structured(theirs, "weight", 2, 1, 1, importance_scores=torch.tensor(scores))
    mask = (np.arange(6) % 2).astype(np.float32)
    prune.custom_from_mask(ours, "bias", tensor.tensor(mask))
    tprune.custom_from_mask(theirs, "bias", torch.tensor(mask))
    assert_same_state(ours, theirs)
    np.testing.assert_array_equal(_np(ours.bias), _np(theirs.bias))


def test_chained_pruning_uses_a_container():
    ours, theirs = twins(conv, levels=3)
    for lib_prune, module in ((prune, ours), (tprune, theirs)):
        lib_prune.l1_unstructured(module, "weight", 0.2)
        lib_prune.ln_structured(module, "weight", 2, 2, 0)
        lib_prune.l1_unstructured(module, "weight", 10)
        lib_prune.random_structured(module, "weight", 0, 1)
    assert_same_state(ours, theirs)
    hooks = [h for h in ours._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
    assert len(hooks) == 1 and isinstance(hooks[0], prune.PruningContainer)
    assert [type(m).__name__ for m in hooks[0]] == ["L1Unstructured", "LnStructured", "L1Unstructured",
                                                   "RandomStructured"]
    assert len(hooks[0]) == 4 and hooks[0][1].n == 2


@pytest.mark.parametrize("amount", [0.35, 60])
def test_global_unstructured_matches_torch(amount):
    ours, theirs = twins(net, levels=3)
    prune.l1_unstructured(ours[3], "weight", 0.25)  # an already-pruned layer joins through its mask
    tprune.l1_unstructured(theirs[3], "weight", 0.25)
    pick = [(0, "weight"), (0, "bias"), (3, "weight")]
    scores = np.random.default_rng(2).standard_normal((4, 2, 3, 3)).astype(np.float32)
    prune.global_unstructured([(ours[i], n) for i, n in pick], prune.L1Unstructured, amount=amount,
                              importance_scores={(ours[0], "weight"): tensor.tensor(scores)})
    tprune.global_unstructured([(theirs[i], n) for i, n in pick], tprune.L1Unstructured, amount=amount,
                               importance_scores={(theirs[0], "weight"): torch.tensor(scores)})
    assert_same_state(ours, theirs)
    assert isinstance(ours[0]._forward_pre_hooks[next(iter(ours[0]._forward_pre_hooks))], prune.CustomFromMask)


# ----------------------------------------------------------------------------- training and remove

def test_training_through_the_mask_matches_torch():
    ours, theirs = twins(net, seed=1)
    for lib_prune, m in ((prune, ours), (tprune, theirs)):
        lib_prune.l1_unstructured(m[0], "weight", 0.4)
        lib_prune.ln_structured(m[3], "weight", 0.3, 2, 1)
        lib_prune.random_unstructured(m[3], "bias", 0)
    opt = tensor.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.standard_normal((8, 2, 6, 6)).astype(np.float32)
        y = rng.integers(0, 5, 8)
        loss = nn.functional.cross_entropy(ours(tensor.tensor(x)), tensor.tensor(y))
        tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        opt.zero_grad(), topt.zero_grad()
        loss.backward(), tloss.backward()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
        np.testing.assert_allclose(_np(ours[0].weight_orig.grad), _np(theirs[0].weight_orig.grad), atol=1e-6)
        assert ours[0].weight.grad is None  # a plain tensor: the gradient lands on weight_orig
        opt.step(), topt.step()
    ours(tensor.tensor(x)), theirs(torch.tensor(x))  # the pre-hook refreshes the masked weights
    for (k, v), (_, w) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        np.testing.assert_allclose(_np(v), _np(w), atol=1e-5, err_msg=k)
    np.testing.assert_allclose(_np(ours[0].weight), _np(theirs[0].weight), atol=1e-5)
    assert (_np(ours[0].weight)[_np(ours[0].weight_mask) == 0] == 0).all()


def test_remove_makes_pruning_permanent():
    ours, theirs = twins(conv, levels=4)
    for lib_prune, m in ((prune, ours), (tprune, theirs)):
        lib_prune.l1_unstructured(m, "weight", 0.3)
        lib_prune.l1_unstructured(m, "weight", 0.3)
        lib_prune.identity(m, "bias")
    orig = ours.weight_orig
    assert prune.remove(ours, "weight") is ours
    tprune.remove(theirs, "weight")
    assert_same_state(ours, theirs)
    assert ours.weight is orig and isinstance(ours.weight, nn.Parameter)
    assert not hasattr(ours, "weight_orig") and not hasattr(ours, "weight_mask")
    prune.remove(ours, "bias"), tprune.remove(theirs, "bias")
    assert_same_state(ours, theirs)
    assert not prune.is_pruned(ours) and not ours._forward_pre_hooks
    with pytest.raises(ValueError, match="Parameter 'weight' of module .* has to be pruned before pruning can be "
                                         "removed"):
        prune.remove(ours, "weight")


def test_prune_method_on_a_plain_tensor_and_the_container():
    w = np.arange(-5.0, 7.0, dtype=np.float32).reshape(3, 4)
    got = prune.L1Unstructured(amount=4).prune(tensor.tensor(w))
    ref = tprune.L1Unstructured(amount=4).prune(torch.tensor(w))
    np.testing.assert_array_equal(_np(got), _np(ref))
    a, b = prune.L1Unstructured(0.5), prune.LnStructured(1, 1, 0)
    a._tensor_name = b._tensor_name = "weight"
    container = prune.PruningContainer(a, b)
    assert len(container) == 2 and container[1] is b
    other = prune.Identity()
    other._tensor_name = "bias"
    with pytest.raises(ValueError, match="Can only add pruning methods acting on the parameter named 'weight'"):
        container.add_pruning_method(other)
    with pytest.raises(TypeError, match="is not a BasePruningMethod subclass"):
        container.add_pruning_method(3)


# ----------------------------------------------------------------------------------- random methods

def test_random_methods_counts_structure_and_seed():
    ours = nn.Linear(20, 10)
    tensor.manual_seed(0)
    prune.random_unstructured(ours, "weight", 0.3)
    mask = _np(ours.weight_mask)
    assert mask.sum() == 200 - 60 and set(np.unique(mask)) <= {0.0, 1.0}
    prune.random_unstructured(ours, "weight", 0.5)  # half of what is left, the old zeros kept
    new = _np(ours.weight_mask)
    assert new.sum() == 140 - 70 and (new[mask == 0] == 0).all()
    again = nn.Linear(20, 10)
    tensor.manual_seed(0)
    prune.random_unstructured(again, "weight", 0.3)
    np.testing.assert_array_equal(_np(again.weight_mask), mask)

    for dim, kept in ((0, 6), (1, 12)):
        layer = nn.Linear(20, 10)
        prune.random_structured(layer, "weight", 0.4, dim)
        m = _np(layer.weight_mask)
        lines = m.any(axis=1 - dim)
        assert lines.sum() == kept and (m.all(axis=1 - dim) == lines).all()
        prune.random_structured(layer, "weight", 2, dim)  # chained: 2 of the surviving channels
        assert _np(layer.weight_mask).any(axis=1 - dim).sum() == kept - 2


# ------------------------------------------------------------------------------------------- errors

def _same_error(call):
    with pytest.raises(Exception) as ours:
        call(prune, nn)
    with pytest.raises(Exception) as theirs:
        call(tprune, torch.nn)
    assert type(ours.value) is type(theirs.value)
    return str(ours.value), str(theirs.value)


@pytest.mark.parametrize("call", [
    lambda p, lib: p.l1_unstructured(lib.Linear(3, 2), "weight", -1),
    lambda p, lib: p.l1_unstructured(lib.Linear(3, 2), "weight", 1.5),
    lambda p, lib: p.l1_unstructured(lib.Linear(3, 2), "weight", "0.3"),
    lambda p, lib: p.l1_unstructured(lib.Linear(3, 2), "weight", 7),
    lambda p, lib: p.random_unstructured(lib.Linear(3, 2), "weight", 7),
    lambda p, lib: p.ln_structured(lib.Linear(3, 2), "bias", 1, 2, 0),
    lambda p, lib: p.ln_structured(lib.Linear(3, 2), "weight", 1, 2, 2),
    lambda p, lib: p.random_structured(lib.Linear(3, 2), "weight", 3, 0),
    lambda p, lib: p.global_unstructured([(lib.Linear(3, 2), "weight")], p.RandomStructured, amount=1),
    lambda p, lib: p.global_unstructured(3, p.L1Unstructured, amount=1),
    lambda p, lib: p.global_unstructured([(lib.Linear(3, 2), "weight")], p.L1Unstructured, [], amount=1),
])
def test_errors_match_torch(call):
    ours, theirs = _same_error(call)
    assert ours.replace("tensor.nn.utils.prune", "torch.nn.utils.prune") == theirs.replace("torch.Size(", "Size(")


def test_errors_naming_the_module():
    ours, theirs = _same_error(lambda p, lib: p.l1_unstructured(
        lib.Linear(3, 2), "weight", 1, importance_scores=(tensor if p is prune else torch).ones(2)))
    assert ours.startswith("importance_scores should have the same shape as parameter weight of")
    assert theirs.startswith("importance_scores should have the same shape as parameter weight of")
    _same_error(lambda p, lib: p.remove(lib.Linear(3, 2), "weight"))


def test_failed_pruning_leaves_the_module_as_it_was():
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError):
        prune.l1_unstructured(layer, "weight", 7)
    assert isinstance(layer.weight, nn.Parameter) and not hasattr(layer, "weight_orig")
    prune.l1_unstructured(layer, "weight", 1)
    with pytest.raises(ValueError):
        prune.l1_unstructured(layer, "weight", 9)
    assert prune.is_pruned(layer) and _np(layer.weight_mask).sum() == 5


# ------------------------------------------------------------------------------ topk's choice of ties

def test_tied_selection_is_torch_topks():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 300)) if trial % 4 else int(rng.integers(300, 1500))
        values = rng.integers(0, int(rng.integers(1, 5)), n).astype(np.float32)
        if trial % 9 == 0:
            values[rng.random(n) < 0.1] = np.nan
        k = int(rng.integers(0, n + 1))
        for largest in (False, True):
            ref = set(torch.topk(torch.tensor(values), k, largest=largest).indices.tolist())
            assert set(topk_set(values, k, largest).tolist()) == ref, (n, k, largest)
