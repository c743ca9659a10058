"""tensor.optim.swa_utils against torch.optim.swa_utils: SWA/EMA averages, state dicts, update_bn, SWALR."""
import numpy as np
import pytest

import tensor
from tensor.optim import swa_utils
from tests.tensor.helpers import to_numpy


def make_models(device):
    """The same small BatchNorm model in torch and in raygrad, with equal weights."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    nn = tensor.nn
    ours = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).to(device)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def train_a_little(ours, theirs, averaged, steps, device, seed=0):
    """Move the weights by the same random steps, run a train-mode batch (BatchNorm buffers move), update."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p, q in zip(ours.parameters(), theirs.parameters()):
            delta = rng.standard_normal(tuple(q.shape)).astype(np.float32)
            with tensor.no_grad():
                p.add_(tensor.tensor(delta, device=device))
            with torch.no_grad():
                q.add_(torch.from_numpy(delta))
        batch = rng.standard_normal((5, 3)).astype(np.float32)
        ours(tensor.tensor(batch, device=device))
        theirs(torch.from_numpy(batch))
        for mine, reference in averaged:
            mine.update_parameters(ours)
            reference.update_parameters(theirs)


def assert_same_state(ours, theirs):
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(reference)
    for key, value in reference.items():
        got = to_numpy(mine[key])
        assert got.dtype == value.numpy().dtype, key
        np.testing.assert_allclose(got, value.numpy(), rtol=1e-6, atol=1e-6, err_msg=key)


# ---------------------------------------------------------------------------------- averages


@pytest.mark.parametrize("use_buffers", [False, True])
def test_swa_average_matches_torch(device, use_buffers):
    torch = pytest.importorskip("torch")
    ours, theirs = make_models(device)
    pair = (swa_utils.AveragedModel(ours, use_buffers=use_buffers),
            torch.optim.swa_utils.AveragedModel(theirs, use_buffers=use_buffers))
    train_a_little(ours, theirs, [pair], steps=4, device=device)
    assert pair[0].n_averaged.dtype == tensor.int64 and pair[0].n_averaged.shape == ()
    assert int(pair[0].n_averaged.item()) == 4
    assert_same_state(*pair)  # buffers averaged with use_buffers, copied from the model without


@pytest.mark.parametrize("form", ["multi_avg_fn", "avg_fn"])
def test_ema_average_matches_torch(device, form):
    torch = pytest.importorskip("torch")
    ours, theirs = make_models(device)
    maker = {"multi_avg_fn": "get_ema_multi_avg_fn", "avg_fn": "get_ema_avg_fn"}[form]
    pair = (swa_utils.AveragedModel(ours, use_buffers=True, **{form: getattr(swa_utils, maker)(0.8)}),
            torch.optim.swa_utils.AveragedModel(theirs, use_buffers=True,
                                                **{form: getattr(torch.optim.swa_utils, maker)(0.8)}))
    train_a_little(ours, theirs, [pair], steps=5, device=device)
    assert_same_state(*pair)


def test_swa_functions_and_user_avg_fn_match_torch(device):
    torch = pytest.importorskip("torch")
    ours, theirs = make_models(device)
    pairs = [
        (swa_utils.AveragedModel(ours, multi_avg_fn=swa_utils.get_swa_multi_avg_fn()),
         torch.optim.swa_utils.AveragedModel(theirs, multi_avg_fn=torch.optim.swa_utils.get_swa_multi_avg_fn())),
        (swa_utils.AveragedModel(ours, avg_fn=swa_utils.get_swa_avg_fn()),
         torch.optim.swa_utils.AveragedModel(theirs, avg_fn=torch.optim.swa_utils.get_swa_avg_fn())),
        # a user's function of tensors, written once for both frameworks
        (swa_utils.AveragedModel(ours, avg_fn=lambda avg, new, n: avg + (new - avg) * 0.25),
         torch.optim.swa_utils.AveragedModel(theirs, avg_fn=lambda avg, new, n: avg + (new - avg) * 0.25)),
    ]
    train_a_little(ours, theirs, pairs, steps=3, device=device, seed=1)
    for pair in pairs:
        assert_same_state(*pair)


def test_swa_multi_avg_fn_refuses_integer_buffers_as_torch(device):
    torch = pytest.importorskip("torch")
    ours, theirs = make_models(device)
    mine = swa_utils.AveragedModel(ours, multi_avg_fn=swa_utils.get_swa_multi_avg_fn(), use_buffers=True)
    reference = torch.optim.swa_utils.AveragedModel(
        theirs, multi_avg_fn=torch.optim.swa_utils.get_swa_multi_avg_fn(), use_buffers=True)
    mine.update_parameters(ours)
    reference.update_parameters(theirs)
    with pytest.raises(RuntimeError, match="addcdiv"):
        reference.update_parameters(theirs)
    with pytest.raises(RuntimeError, match="multi_avg_fn=None"):
        mine.update_parameters(ours)


# ------------------------------------------------------------------------ state dict, forward


def test_state_dict_round_trip_and_forward(device):
    torch = pytest.importorskip("torch")
    ours, theirs = make_models(device)
    pair = (swa_utils.AveragedModel(ours), torch.optim.swa_utils.AveragedModel(theirs))
    train_a_little(ours, theirs, [pair], steps=3, device=device, seed=2)
    state = pair[0].state_dict()
    assert list(state)[:2] == ["n_averaged", "module.0.weight"]
    restored = swa_utils.AveragedModel(ours)
    restored.load_state_dict(state)
    assert_same_state(restored, pair[1])
    from_torch = swa_utils.AveragedModel(ours)
    from_torch.load_state_dict(pair[1].state_dict())  # a PyTorch checkpoint loads as is
    assert int(from_torch.n_averaged.item()) == 3
    x = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)
    for model in (restored, from_torch):
        model.eval()
    pair[1].eval()
    expected = pair[1](torch.from_numpy(x)).detach().numpy()
    for model in (restored, from_torch):
        np.testing.assert_allclose(to_numpy(model(tensor.tensor(x, device=device))), expected, rtol=1e-5, atol=1e-6)


def test_device_argument_and_deep_copy(device):
    ours, _ = make_models(device)
    averaged = swa_utils.AveragedModel(ours, device=device)
    assert averaged.n_averaged.device == tensor.tensor(0, device=device).device
    assert averaged.module[0].weight is not ours[0].weight
    np.testing.assert_array_equal(to_numpy(averaged.module[0].weight), to_numpy(ours[0].weight))


# ---------------------------------------------------------------------------------- update_bn


def test_update_bn_matches_torch(device):
    torch = pytest.importorskip("torch")
    ours, theirs = make_models(device)
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal((n, 3)).astype(np.float32) * 3 + 1 for n in (5, 5, 5, 7)]
    target = np.zeros(5)
    ours.eval()
    theirs.eval()
    # (input, target) batches, then a bare tensor batch
    swa_utils.update_bn([(tensor.tensor(x, device=device), target) for x in inputs[:3]]
                        + [tensor.tensor(inputs[3], device=device)], ours)
    torch.optim.swa_utils.update_bn([(torch.from_numpy(x), target) for x in inputs[:3]]
                                    + [torch.from_numpy(inputs[3])], theirs)
    assert not ours.training and not ours[1].training
    assert ours[1].momentum == theirs[1].momentum == 0.1
    assert_same_state(ours, theirs)


def test_update_bn_device_argument_and_instance_norm(device):
    torch = pytest.importorskip("torch")
    ours = tensor.nn.Sequential(tensor.nn.InstanceNorm1d(2, track_running_stats=True), tensor.nn.BatchNorm1d(2))
    theirs = torch.nn.Sequential(torch.nn.InstanceNorm1d(2, track_running_stats=True), torch.nn.BatchNorm1d(2))
    ours.to(device)
    batches = np.random.default_rng(5).standard_normal((2, 4, 2, 3)).astype(np.float32)
    swa_utils.update_bn([tensor.tensor(b) for b in batches], ours, device=device)
    torch.optim.swa_utils.update_bn([torch.from_numpy(b) for b in batches], theirs)
    assert_same_state(ours, theirs)  # InstanceNorm's statistics stay untouched, as in PyTorch


# -------------------------------------------------------------------------------------- SWALR


def sgd_pair(torch, lrs=(0.1, 0.03)):
    ours = tensor.optim.SGD([{"params": [tensor.tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs])
    theirs = torch.optim.SGD([{"params": [torch.tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs])
    return ours, theirs


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 10])
def test_swalr_matches_torch_over_30_steps(strategy, anneal_epochs):
    torch = pytest.importorskip("torch")
    ours, theirs = sgd_pair(torch)
    mine = swa_utils.SWALR(ours, swa_lr=[0.05, 0.5], anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    reference = torch.optim.swa_utils.SWALR(theirs, swa_lr=[0.05, 0.5], anneal_epochs=anneal_epochs,
                                            anneal_strategy=strategy)
    seen, expected = [mine.get_last_lr()], [reference.get_last_lr()]
    for _ in range(30):
        ours.step()
        theirs.step()
        mine.step()
        reference.step()
        seen.append(mine.get_last_lr())
        expected.append(reference.get_last_lr())
    np.testing.assert_allclose(seen, expected, rtol=1e-14, atol=0)
    assert [g["swa_lr"] for g in ours.param_groups] == [0.05, 0.5]


def test_swalr_takes_over_from_another_schedule():
    torch = pytest.importorskip("torch")
    ours, theirs = sgd_pair(torch)
    first = tensor.optim.lr_scheduler.StepLR(ours, step_size=2, gamma=0.5)
    first_ref = torch.optim.lr_scheduler.StepLR(theirs, step_size=2, gamma=0.5)
    for _ in range(5):
        ours.step()
        theirs.step()
        first.step()
        first_ref.step()
    mine = swa_utils.SWALR(ours, swa_lr=0.01, anneal_epochs=4, anneal_strategy="linear")
    reference = torch.optim.swa_utils.SWALR(theirs, swa_lr=0.01, anneal_epochs=4, anneal_strategy="linear")
    for _ in range(8):
        ours.step()
        theirs.step()
        mine.step()
        reference.step()
        np.testing.assert_allclose(mine.get_last_lr(), reference.get_last_lr(), rtol=1e-14)


def test_swalr_state_dict_round_trip():
    torch = pytest.importorskip("torch")
    ours, _ = sgd_pair(torch)
    scheduler = swa_utils.SWALR(ours, swa_lr=0.05, anneal_epochs=6, anneal_strategy="linear")
    for _ in range(3):
        scheduler.step()
    state = scheduler.state_dict()
    assert "anneal_func" not in state and "optimizer" not in state and state["_anneal_strategy"] == "linear"
    resumed_opt, _ = sgd_pair(torch)
    resumed_opt.load_state_dict(ours.state_dict())
    resumed = swa_utils.SWALR(resumed_opt, swa_lr=0.05, anneal_strategy="cos")
    resumed.load_state_dict(state)
    assert resumed.anneal_func is swa_utils.SWALR._linear_anneal
    for _ in range(5):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()


# ------------------------------------------------------------------------------------- errors


def test_errors(device):
    torch = pytest.importorskip("torch")
    ours, _ = sgd_pair(torch)
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear'"):
        swa_utils.SWALR(ours, swa_lr=0.1, anneal_strategy="exp")
    for bad in (-1, 2.0):
        with pytest.raises(ValueError, match="anneal_epochs"):
            swa_utils.SWALR(ours, swa_lr=0.1, anneal_epochs=bad)
    with pytest.raises(ValueError, match="swa_lr has 3 values"):
        swa_utils.SWALR(ours, swa_lr=[0.1, 0.2, 0.3])
    with pytest.raises(TypeError, match="expected an Optimizer"):
        swa_utils.SWALR(object(), swa_lr=0.1)
    for maker in (swa_utils.get_ema_avg_fn, swa_utils.get_ema_multi_avg_fn):
        with pytest.raises(ValueError, match=r"decay value 1.5 .* \[0,1\]"):
            maker(1.5)
    model = tensor.nn.Linear(2, 2).to(device)
    with pytest.raises(AssertionError, match="only one of avg_fn and multi_avg_fn"):
        swa_utils.AveragedModel(model, avg_fn=swa_utils.get_swa_avg_fn(),
                                multi_avg_fn=swa_utils.get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="expected a Module"):
        swa_utils.AveragedModel(object())
