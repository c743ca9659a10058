"""Module: registration, iteration, modes, devices/dtypes, hooks, state dicts, repr, containers."""
import copy
import pickle

import numpy as np
import pytest

import tensor
from tensor import nn
from torch_compare import make, to_numpy


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3)
        self.scale = nn.Parameter(tensor.ones(3))
        self.register_buffer("steps", tensor.zeros(1))
        self.register_buffer("scratch", tensor.zeros(2), persistent=False)

    def forward(self, x):
        return self.norm(self.linear(x)) * self.scale


def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


# ------------------------------------------------------------------------------ registration


def test_attributes_register_parameters_buffers_and_modules():
    block = Block()
    assert [n for n, _ in block.named_parameters()] == ["scale", "linear.weight", "linear.bias", "norm.weight",
                                                       "norm.bias"]
    assert [n for n, _ in block.named_buffers()] == ["steps", "scratch", "norm.running_mean", "norm.running_var",
                                                    "norm.num_batches_tracked"]
    assert [n for n, _ in block.named_children()] == ["linear", "norm"]
    assert [n for n, _ in block.named_modules()] == ["", "linear", "norm"]
    assert [n for n, _ in block.named_parameters(recurse=False)] == ["scale"]
    assert block.linear.weight is block.get_parameter("linear.weight")
    assert block.get_submodule("norm") is block.norm
    assert block.get_buffer("norm.running_mean") is block.norm.running_mean
    assert block.num_parameters() == 3 + 12 + 3 + 3 + 3


def test_reassigning_and_deleting():
    block = Block()
    block.scale = None
    assert "scale" not in dict(block.named_parameters())
    with pytest.raises(TypeError, match="nn.Parameter"):
        block.scale = tensor.ones(3)
    block.steps = tensor.ones(1)  # a buffer stays a buffer when assigned a plain tensor
    assert to_numpy(dict(block.named_buffers())["steps"])[0] == 1
    del block.linear
    assert "linear" not in dict(block.named_children())
    block.extra = nn.Buffer(tensor.zeros(2), persistent=False)
    assert "extra" in dict(block.named_buffers()) and "extra" not in block.state_dict()
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        block.missing


def test_replacing_keeps_the_registration_order_as_in_pytorch():
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Tanh())
    setattr(seq, "1", nn.Sigmoid())  # what convert_sync_batchnorm and model surgery do
    assert [type(m).__name__ for m in seq] == ["Linear", "Sigmoid", "Tanh"]
    linear = nn.Linear(2, 2)
    linear.weight = nn.Parameter(tensor.zeros(2, 2))
    assert list(linear.state_dict()) == ["weight", "bias"]
    norm = nn.BatchNorm1d(2)
    norm.running_mean = tensor.ones(2)
    assert list(norm.state_dict())[2:] == ["running_mean", "running_var", "num_batches_tracked"]


def test_registration_before_init_and_bad_names():
    class Early(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter(tensor.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    module = nn.Module()
    with pytest.raises(KeyError, match="without '.'"):
        module.register_parameter("a.b", None)
    with pytest.raises(KeyError, match="already exists"):
        module.register_buffer("train", tensor.zeros(1))


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, shared)
    assert len(list(model.parameters())) == 2
    assert len(list(model.named_parameters(remove_duplicate=False))) == 4
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_parameter_basics():
    p = nn.Parameter(tensor.zeros(2))
    assert p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(tensor.zeros(2), requires_grad=False).requires_grad
    source = tensor.zeros(3)
    assert nn.Parameter(source).data is source.data  # shares memory, like PyTorch
    assert type(p * 2) is tensor.Tensor


def test_assigning_a_tensor_to_parameter_data_swaps_in_its_array():
    # PyTorch's `layer.weight.data = torch.tensor(W, requires_grad=True)` (DLRM's init)
    layer = nn.Linear(3, 2)
    weight = layer.weight
    new = tensor.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    layer.weight.data = new
    assert layer.weight is weight and weight.data is new.data and weight.requires_grad and weight.is_leaf
    layer(tensor.ones(1, 3)).sum().backward()
    np.testing.assert_array_equal(to_numpy(weight.grad), np.ones((2, 3), np.float32))
    assert new.grad is None
    layer.bias.data = np.zeros(2, np.float32)  # a raw array still works as before
    assert to_numpy(layer.bias).tolist() == [0, 0]


# ------------------------------------------------------------------------ modes, grads, apply


def test_train_eval_zero_grad_requires_grad_apply():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert model.training and model[1].training
    model.eval()
    assert not model.training and not model[1].training
    model.train()
    assert model[1].training
    out = model[0](tensor.ones(1, 2)).sum()
    out.backward()
    model.zero_grad(set_to_none=False)
    assert to_numpy(model[0].weight.grad).sum() == 0
    model.zero_grad()
    assert model[0].weight.grad is None
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "Dropout", "Sequential"]


def test_to_dtype_keeps_parameter_identity(device):
    model = mlp()
    params = list(model.parameters())
    model(tensor.randn(3, 4)).sum().backward()
    model.to(device).double()
    assert all(a is b for a, b in zip(params, model.parameters()))
    assert all(p.dtype == tensor.float64 and str(p.device).startswith(device) for p in model.parameters())
    assert all(p.grad.dtype == tensor.float64 for p in model.parameters())
    out = model(make(np.ones((2, 4)), device))
    assert out.dtype == tensor.float64
    model.float()
    assert model[0].weight.dtype == tensor.float32
    model.to(tensor.float16)
    assert model[0].weight.dtype == tensor.float16
    norm = nn.BatchNorm1d(2).double()
    assert norm.num_batches_tracked.dtype == tensor.int64  # integer buffers keep their dtype
    with pytest.raises(TypeError, match="floating"):
        model.to(tensor.int64)


# ----------------------------------------------------------------------------------- hooks


def test_forward_hooks_and_removal():
    model = nn.Linear(2, 2)
    calls = []
    pre = model.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = model.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    out = model(tensor.ones(3, 2))
    np.testing.assert_allclose(to_numpy(out), np.broadcast_to(to_numpy(model.bias) + 1, (3, 2)), rtol=1e-6)
    assert calls == [(3, 2)]
    pre.remove()
    post.remove()
    np.testing.assert_allclose(to_numpy(model(tensor.zeros(1, 2))), to_numpy(model.bias)[None], rtol=1e-6)
    assert calls == [(3, 2)]


def test_hooks_with_kwargs_and_prepend():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            return x * factor

    module = Scale()
    order = []
    module.register_forward_pre_hook(lambda m, args, kwargs: (args, {"factor": 3.0}), with_kwargs=True)
    module.register_forward_hook(lambda m, args, kwargs, out: order.append(("kw", kwargs["factor"])), with_kwargs=True)
    module.register_forward_hook(lambda m, args, out: order.append("first"), prepend=True)
    assert to_numpy(module(tensor.ones(2))).tolist() == [3.0, 3.0]
    assert order == ["first", ("kw", 3.0)]


# ------------------------------------------------------------------------------- state dicts


def test_state_dict_keys_match_torch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.LayerNorm(8), nn.Embedding(3, 8),
                         nn.GroupNorm(2, 8), nn.RMSNorm(8))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                 torch.nn.LayerNorm(8), torch.nn.Embedding(3, 8), torch.nn.GroupNorm(2, 8),
                                 torch.nn.RMSNorm(8))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert tuple(ours.state_dict()[key].shape) == tuple(value.shape), key


def test_state_dict_round_trip_and_torch_state_dicts_load():
    torch = pytest.importorskip("torch")
    source, target = mlp(), mlp()
    target.load_state_dict(source.state_dict())
    for a, b in zip(source.parameters(), target.parameters()):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    result = target.load_state_dict(twin.state_dict())  # torch tensors load directly (DLPack)
    assert repr(result) == "<All keys matched successfully>"
    np.testing.assert_array_equal(to_numpy(target[2].bias), twin[2].bias.detach().numpy())


def test_extra_state_as_in_torch():
    """get_extra_state/set_extra_state: any value under `<prefix>_extra_state`, its key checked like the others."""
    torch = pytest.importorskip("torch")
    for T in (torch, tensor):
        class Tokenizer(T.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = T.nn.Linear(2, 2)
                self.vocab = ["<pad>"]

            def get_extra_state(self):
                return {"vocab": list(self.vocab)}

            def set_extra_state(self, state):
                self.vocab = list(state["vocab"])

        model = T.nn.Sequential(Tokenizer())
        model[0].vocab.append("x")
        sd = model.state_dict()
        assert list(sd) == ["0._extra_state", "0.proj.weight", "0.proj.bias"]
        fresh = T.nn.Sequential(Tokenizer())
        fresh.load_state_dict(sd)
        assert fresh[0].vocab == ["<pad>", "x"]
        del sd["0._extra_state"]
        with pytest.raises(RuntimeError, match="Missing key.*0._extra_state"):
            fresh.load_state_dict(sd)
        plain = T.nn.Sequential(T.nn.Module())
        with pytest.raises(RuntimeError, match="Unexpected key.*0._extra_state"):
            plain.load_state_dict({"0._extra_state": 1})


def test_state_dict_values_are_detached_and_share_memory():
    model = mlp()
    state = model.state_dict()
    assert not state["0.weight"].requires_grad
    assert state["0.weight"].data is model[0].weight.data
    assert model.state_dict(keep_vars=True)["0.weight"] is model[0].weight


def test_load_state_dict_errors_list_keys_and_shapes():
    model = mlp()
    state = dict(model.state_dict())
    state.pop("0.bias")
    state["extra.weight"] = tensor.zeros(1)
    state["2.weight"] = tensor.zeros(5, 8)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert 'Missing key(s) in state_dict: "0.bias"' in message
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in message
    assert "size mismatch for 2.weight: copying a param with shape (5, 8) from checkpoint, the shape in current " \
           "model is (2, 8)" in message
    del state["2.weight"]
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.bias", "2.weight"] and result.unexpected_keys == ["extra.weight"]
    missing, unexpected = result
    assert unexpected == ["extra.weight"]


def test_load_state_dict_casts_and_copies_in_place():
    model = mlp()
    weight = model[0].weight
    state = {k: to_numpy(v).astype(np.float64) + 1 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model[0].weight is weight and weight.dtype == tensor.float32
    np.testing.assert_allclose(to_numpy(weight), state["0.weight"], rtol=1e-6)


def test_batch_norm_state_without_counter_loads():
    norm = nn.BatchNorm1d(3)
    state = {k: v for k, v in norm.state_dict().items() if k != "num_batches_tracked"}
    norm.load_state_dict(state)  # a plain dict (no version metadata) from before the counter existed


# ------------------------------------------------------------------------------------- repr


def test_repr_is_torch_tree_plus_parameter_count():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(784, 10), nn.ReLU(), nn.Sequential(nn.Dropout(0.1), nn.LayerNorm(10)),
                         nn.BatchNorm2d(3), nn.GELU(approximate="tanh"), nn.Embedding(5, 2, padding_idx=0),
                         nn.Flatten(), nn.LogSoftmax(dim=1))
    theirs = torch.nn.Sequential(torch.nn.Linear(784, 10), torch.nn.ReLU(),
                                 torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.LayerNorm(10)),
                                 torch.nn.BatchNorm2d(3), torch.nn.GELU(approximate="tanh"),
                                 torch.nn.Embedding(5, 2, padding_idx=0), torch.nn.Flatten(),
                                 torch.nn.LogSoftmax(dim=1))
    text = repr(ours)
    tree, count = text.rsplit("\n", 1)
    assert tree == repr(theirs)
    total = sum(p.numel() for p in theirs.parameters())
    assert count == f"Total parameters: {total:,} (trainable: {total:,})"
    assert repr(nn.Linear(2, 3)) == "Linear(in_features=2, out_features=3, bias=True)"


# ------------------------------------------------------------------------------- containers


def test_sequential_indexing_slicing_and_editing():
    model = mlp()
    assert len(model) == 3 and isinstance(model[-1], nn.Linear)
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    model.append(nn.Softmax(dim=1))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "Softmax"]
    out = model(tensor.randn(5, 4))
    np.testing.assert_allclose(to_numpy(out.sum(1)), np.ones(5), rtol=1e-5)
    del model[1]
    assert [n for n, _ in model.named_children()] == ["0", "1", "2"]
    with pytest.raises(IndexError, match="index 7 is out of range for 3"):
        model[7]


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.Linear(2, 1))
    layers.insert(0, nn.Identity())
    assert len(layers) == 5 and isinstance(layers[0], nn.Identity)
    assert len(list(layers.parameters())) == 8
    assert isinstance(layers[1:3], nn.ModuleList)
    heads = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    heads["c"] = nn.Linear(2, 3)
    assert list(heads.keys()) == ["a", "b", "c"] and "b" in heads
    assert list(heads.state_dict()) == ["a.weight", "a.bias", "c.weight", "c.bias"]


def test_parameter_list_and_dict():
    params = nn.ParameterList([tensor.zeros(2), nn.Parameter(tensor.ones(3))])
    assert all(isinstance(p, nn.Parameter) for p in params) and len(params) == 2
    assert list(params.state_dict()) == ["0", "1"]
    table = nn.ParameterDict({"w": tensor.zeros(2)})
    assert isinstance(table["w"], nn.Parameter) and list(table.state_dict()) == ["w"]


# ---------------------------------------------------------------------------- copy / pickle


def test_deepcopy_and_pickle_keep_parameters():
    model = Block()
    clone = copy.deepcopy(model)
    assert isinstance(clone.scale, nn.Parameter) and clone.scale is not model.scale
    np.testing.assert_array_equal(to_numpy(clone.linear.weight), to_numpy(model.linear.weight))
    restored = pickle.loads(pickle.dumps(model))
    assert isinstance(restored.linear.weight, nn.Parameter) and restored.linear.weight.requires_grad
    assert list(restored.state_dict()) == list(model.state_dict())
