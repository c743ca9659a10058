"""Training techniques as their reference code writes them in plain PyTorch, ported by changing imports.

Quantisation-aware training (LSQ's straight-through rounding; torch.ao's FakeQuantize with
fake_quantize_per_tensor/per_channel_affine), knowledge distillation (the PyTorch tutorial: soft targets
times T^2 plus cross-entropy, then a cosine loss on hidden representations; Hinton's KLDivLoss form),
Sharpness-Aware Minimization with its BatchNorm bypass (davda54/sam), Lookahead around SGD or RAdam with
a LambdaLR on the wrapper (michaelrzhang/lookahead), LARS on a Barlow Twins loss and timm's Lamb (trust
ratios per parameter, parameter groups without decay), weight EMAs (timm's ModelEmaV2 and
torch.optim.swa_utils.AveragedModel), stochastic depth (timm's drop_path, torchvision's stochastic_depth),
mixup and CutMix (facebookresearch/mixup-cifar10, clovaai/CutMix-PyTorch), label smoothing (built in,
timm's and fairseq's hand-written ones), gradient accumulation with clip_grad_norm_ and HF's warmup-cosine
LambdaLR, and focal loss for imbalanced segmentation. Each trains a tiny model a few steps.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) and runs unchanged on both; the model is built in torch and its state_dict copied into raygrad
through NumPy; both see the same NumPy data, and the losses and final parameters must agree to float32
accuracy. Random draws (mixup lambdas and permutations, CutMix boxes, drop-path masks) are passed in,
since the two libraries' random streams differ. Where a script touches one of README's accepted
differences (`p.data` is the raw array) only that spot is adapted, with a comment.
"""
import math
from collections import defaultdict
from copy import deepcopy

import numpy as np
import pytest

import tensor
from tests.tensor.test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def prefixed(prefix, state):
    return {f"{prefix}.{k}": v for k, v in state.items()}


# ---- 1. QAT: LSQ's learned step size with straight-through rounding ---------------------------------

def grad_scale(x, scale):
    # zhutmost/lsq-net quan/quantizer/lsq.py
    y = x
    y_grad = x * scale
    return (y - y_grad).detach() + y_grad


def round_pass(x):
    y = x.round()
    y_grad = x
    return (y - y_grad).detach() + y_grad


def lsq_net(T):
    nn = T.nn

    class LsqQuan(nn.Module):
        # zhutmost/lsq-net quan/quantizer/lsq.py
        def __init__(self, bit, all_positive=False, symmetric=False, per_channel=True):
            super().__init__()
            if all_positive:
                assert not symmetric, "Positive quantization cannot be symmetric"
                # unsigned activation is quantized to [0, 2^b-1]
                self.thd_neg = 0
                self.thd_pos = 2 ** bit - 1
            else:
                if symmetric:
                    # signed weight/activation is quantized to [-2^(b-1)+1, 2^(b-1)-1]
                    self.thd_neg = - 2 ** (bit - 1) + 1
                    self.thd_pos = 2 ** (bit - 1) - 1
                else:
                    # signed weight/activation is quantized to [-2^(b-1), 2^(b-1)-1]
                    self.thd_neg = - 2 ** (bit - 1)
                    self.thd_pos = 2 ** (bit - 1) - 1
            self.per_channel = per_channel
            self.s = nn.Parameter(T.ones(1))

        def init_from(self, x, *args, **kwargs):
            if self.per_channel:
                self.s = nn.Parameter(
                    x.detach().abs().mean(dim=list(range(1, x.dim())), keepdim=True) * 2 / (self.thd_pos ** 0.5))
            else:
                self.s = nn.Parameter(x.detach().abs().mean() * 2 / (self.thd_pos ** 0.5))

        def forward(self, x):
            if self.per_channel:
                s_grad_scale = 1.0 / ((self.thd_pos * x.numel()) ** 0.5)
            else:
                s_grad_scale = 1.0 / ((self.thd_pos * x.numel()) ** 0.5)
            s_scale = grad_scale(self.s, s_grad_scale)

            x = x / s_scale
            x = T.clamp(x, self.thd_neg, self.thd_pos)
            x = round_pass(x)
            x = x * s_scale
            return x

    class SteQuan(nn.Module):
        """A fixed-step unsigned activation quantiser with the textbook straight-through estimator."""

        def __init__(self, bit, step):
            super().__init__()
            self.bit, self.step = bit, step

        def forward(self, x):
            x = T.clamp(x, 0, self.step * (2 ** self.bit - 1))
            return x + (T.round(x / self.step) * self.step - x).detach()

    class QuanConv2d(nn.Conv2d):
        # zhutmost/lsq-net quan/func.py
        def __init__(self, m: nn.Conv2d, quan_w_fn=None, quan_a_fn=None):
            assert type(m) == nn.Conv2d
            super().__init__(m.in_channels, m.out_channels, m.kernel_size,
                             stride=m.stride,
                             padding=m.padding,
                             dilation=m.dilation,
                             groups=m.groups,
                             bias=True if m.bias is not None else False,
                             padding_mode=m.padding_mode)
            self.quan_w_fn = quan_w_fn
            self.quan_a_fn = quan_a_fn

            self.weight = nn.Parameter(m.weight.detach())
            self.quan_w_fn.init_from(m.weight)
            if m.bias is not None:
                self.bias = nn.Parameter(m.bias.detach())

        def forward(self, x):
            quantized_weight = self.quan_w_fn(self.weight)
            quantized_act = self.quan_a_fn(x)
            return self._conv_forward(quantized_act, quantized_weight, self.bias)

    class QuanLinear(nn.Linear):
        def __init__(self, m: nn.Linear, quan_w_fn=None, quan_a_fn=None):
            assert type(m) == nn.Linear
            super().__init__(m.in_features, m.out_features,
                             bias=True if m.bias is not None else False)
            self.quan_w_fn = quan_w_fn
            self.quan_a_fn = quan_a_fn

            self.weight = nn.Parameter(m.weight.detach())
            self.quan_w_fn.init_from(m.weight)
            if m.bias is not None:
                self.bias = nn.Parameter(m.bias.detach())

        def forward(self, x):
            quantized_weight = self.quan_w_fn(self.weight)
            quantized_act = self.quan_a_fn(x)
            return nn.functional.linear(quantized_act, quantized_weight, self.bias)

    # lsq-net keeps the first layer in full precision and quantises the rest (quan.replace_module_by_names)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        QuanConv2d(nn.Conv2d(4, 6, 3, padding=1, bias=False),
                   quan_w_fn=LsqQuan(bit=3, all_positive=False, symmetric=False, per_channel=True),
                   quan_a_fn=LsqQuan(bit=3, all_positive=True, symmetric=False, per_channel=False)),
        nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        QuanLinear(nn.Linear(6, 3), quan_w_fn=LsqQuan(bit=4, all_positive=False, symmetric=True, per_channel=True),
                   quan_a_fn=SteQuan(bit=4, step=0.1)),
    )


def train_lsq(T, device, init, images, labels):
    device = device_of(T, device)
    model = ported_model(T, lsq_net, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    criterion = T.nn.CrossEntropyLoss().to(device)
    losses = []
    for x, y in zip(images, labels):
        inputs, targets = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        # the quantised weights are integers times the step: what a deployed int model would hold
        w = model[3].quan_w_fn(model[3].weight) / model[3].quan_w_fn.s
        assert T.allclose(w, w.round(), atol=1e-4)
        losses += model(T.from_numpy(images[0]).to(device)).flatten().tolist()
    return losses, numpy_state(model)


def test_lsq_quantization_aware_training(device):
    rng = np.random.default_rng(10)
    images = rng.standard_normal((4, 6, 1, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 3, (4, 6))
    torch.manual_seed(0)
    init = numpy_state(lsq_net(torch))
    assert init["3.quan_w_fn.s"].shape == (6, 1, 1, 1) and init["8.quan_w_fn.s"].shape == (3, 1)
    run_both(train_lsq, device, init, images, labels)


# ---- 2. QAT: torch.ao's FakeQuantize (moving-average observer, fake_quantize_*_affine) ----------------

def fake_quant_net(T):
    nn, F = T.nn, T.nn.functional

    class FakeQuantize(nn.Module):
        """torch/ao/quantization/fake_quantize.py's FakeQuantize with its observer inlined:
        MovingAverageMinMaxObserver (per-tensor affine, quint8) for activations,
        PerChannelMinMaxObserver (per-channel symmetric, qint8) for weights."""

        def __init__(self, quant_min=0, quant_max=255, per_channel=False, ch_axis=0, averaging_constant=0.01):
            super().__init__()
            self.quant_min, self.quant_max = quant_min, quant_max
            self.is_per_channel, self.ch_axis = per_channel, ch_axis
            self.averaging_constant = averaging_constant
            self.register_buffer('fake_quant_enabled', T.tensor([1], dtype=T.uint8))
            self.register_buffer('observer_enabled', T.tensor([1], dtype=T.uint8))
            self.register_buffer('scale', T.tensor([1.0], dtype=T.float))
            self.register_buffer('zero_point', T.tensor([0], dtype=T.int))
            if per_channel:
                self.register_buffer('min_val', T.tensor([]))
                self.register_buffer('max_val', T.tensor([]))
            else:
                self.register_buffer('min_val', T.tensor(float("inf")))
                self.register_buffer('max_val', T.tensor(float("-inf")))
            self.register_buffer('eps', T.tensor([T.finfo(T.float32).eps]))

        def observe(self, x_orig):
            if self.is_per_channel:
                return self._forward_per_channel(x_orig)
            # MovingAverageMinMaxObserver.forward
            x = x_orig.detach()  # avoid keeping autograd tape
            x = x.to(self.min_val.dtype)
            min_val = self.min_val
            max_val = self.max_val
            if min_val == float("inf") and max_val == float("-inf"):
                min_val, max_val = T.aminmax(x)
            else:
                min_val_cur, max_val_cur = T.aminmax(x)
                min_val = min_val + self.averaging_constant * (min_val_cur - min_val)
                max_val = max_val + self.averaging_constant * (max_val_cur - max_val)
            self.min_val.copy_(min_val)
            self.max_val.copy_(max_val)
            return x_orig

        def _forward_per_channel(self, x_orig):
            # PerChannelMinMaxObserver._forward
            if x_orig.numel() == 0:
                return x_orig
            x = x_orig.detach()  # avoid keeping autograd tape
            min_val = self.min_val
            max_val = self.max_val
            x_dim = x.size()

            new_axis_list = [i for i in range(len(x_dim))]  # noqa: C416
            new_axis_list[self.ch_axis] = 0
            new_axis_list[0] = self.ch_axis
            y = x.permute(new_axis_list)
            # Need to match dtype of min/max because the updates to buffers
            # are done in place and types need to match for comparisons
            y = y.to(self.min_val.dtype)
            y = T.flatten(y, start_dim=1)
            if min_val.numel() == 0 or max_val.numel() == 0:
                min_val, max_val = T.aminmax(y, dim=1)
            else:
                min_val_cur, max_val_cur = T.aminmax(y, dim=1)
                min_val = T.min(min_val_cur, min_val)
                max_val = T.max(max_val_cur, max_val)
            self.min_val.resize_(min_val.shape)
            self.max_val.resize_(max_val.shape)
            self.min_val.copy_(min_val)
            self.max_val.copy_(max_val)
            return x_orig

        def calculate_qparams(self):
            # UniformQuantizationObserverBase._calculate_qparams
            min_val_neg = T.min(self.min_val, T.zeros_like(self.min_val))
            max_val_pos = T.max(self.max_val, T.zeros_like(self.max_val))
            if self.is_per_channel:  # per_channel_symmetric
                max_val_pos = T.max(-min_val_neg, max_val_pos)
                scale = max_val_pos / (float(self.quant_max - self.quant_min) / 2)
                scale = T.max(scale, self.eps)
                zero_point = T.zeros(min_val_neg.size(), dtype=T.int64, device=scale.device)
            else:  # per_tensor_affine
                scale = (max_val_pos - min_val_neg) / float(self.quant_max - self.quant_min)
                scale = T.max(scale, self.eps)
                zero_point = self.quant_min - T.round(min_val_neg / scale).to(T.int)
                zero_point = T.clamp(zero_point, self.quant_min, self.quant_max)
            return scale, zero_point

        def forward(self, X):
            if self.observer_enabled[0] == 1:
                self.observe(X.detach())
                _scale, _zero_point = self.calculate_qparams()
                _scale, _zero_point = _scale.to(self.scale.device), _zero_point.to(self.zero_point.device)
                if self.scale.shape != _scale.shape:
                    self.scale.resize_(_scale.shape)
                    self.zero_point.resize_(_zero_point.shape)
                self.scale.copy_(_scale)
                self.zero_point.copy_(_zero_point)

            if self.fake_quant_enabled[0] == 1:
                if self.is_per_channel:
                    X = T.fake_quantize_per_channel_affine(
                        X, self.scale, self.zero_point, self.ch_axis, self.quant_min, self.quant_max)
                else:
                    X = T.fake_quantize_per_tensor_affine(
                        X, self.scale, self.zero_point, self.quant_min, self.quant_max)
            return X

    class QATLinear(nn.Linear):
        """torch.ao.nn.qat.Linear: F.linear(input, self.weight_fake_quant(self.weight), self.bias)."""

        def __init__(self, in_features, out_features):
            super().__init__(in_features, out_features)
            self.weight_fake_quant = FakeQuantize(-128, 127, per_channel=True)

        def forward(self, input):
            return F.linear(input, self.weight_fake_quant(self.weight), self.bias)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = FakeQuantize(0, 255)  # QuantStub's activation_post_process after prepare_qat
            self.fc1, self.relu = QATLinear(5, 8), nn.ReLU()
            self.act1 = FakeQuantize(0, 255)
            self.fc2 = QATLinear(8, 3)

        def forward(self, x):
            return self.fc2(self.act1(self.relu(self.fc1(self.quant(x)))))

    return Net()


def train_fake_quant(T, device, init, xs, ys):
    device = device_of(T, device)
    model = ported_model(T, fake_quant_net, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for step, (x, y) in enumerate(zip(xs, ys)):
        if step == 3:  # the tutorial's schedule: freeze the observers after a few batches
            model.apply(lambda m: m.observer_enabled.fill_(0) if hasattr(m, "observer_enabled") else None)
        x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        loss = T.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [loss.item(), model.quant.scale.item(), float(model.quant.zero_point.item())]
    return losses, numpy_state(model)


def test_fake_quantize_qat(device):
    rng = np.random.default_rng(11)
    xs = (rng.standard_normal((5, 8, 5)) * 2).astype(np.float32)
    ys = rng.integers(0, 3, (5, 8))
    torch.manual_seed(0)
    run_both(train_fake_quant, device, numpy_state(fake_quant_net(torch)), xs, ys)


# ---- 3. knowledge distillation (PyTorch's knowledge_distillation_tutorial; Hinton's KLDivLoss form) ----

def kd_net(T, channels=8, p_drop=0.1, hidden=16, pool_hidden=False):
    nn = T.nn

    class Net(nn.Module):
        """The tutorial's DeepNN / LightNN, shrunk: forward returns (logits, the flattened conv features)."""

        def __init__(self, num_classes=3):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, channels, kernel_size=3, padding=1), nn.ReLU(),
                nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1), nn.ReLU(),
                nn.MaxPool2d(kernel_size=2, stride=2),
            )
            self.classifier = nn.Sequential(
                nn.Linear(channels // 2 * 4 * 4, hidden), nn.ReLU(), nn.Dropout(p_drop),
                nn.Linear(hidden, num_classes),
            )

        def forward(self, x):
            x = self.features(x)
            flattened_conv_output = T.flatten(x, 1)
            x = self.classifier(flattened_conv_output)
            if pool_hidden:  # ModifiedDeepNNCosine: pool the teacher's features to the student's size
                flattened_conv_output = T.nn.functional.avg_pool1d(flattened_conv_output, 2)
            return x, flattened_conv_output

    return Net()


def teacher_net(T):
    return kd_net(T, channels=8, hidden=16, pool_hidden=True)


def student_net(T):
    return kd_net(T, channels=4, hidden=8, p_drop=0.0)  # the tutorial's p=0.1: the dropout streams differ


def loss_fn_kd(T, outputs, labels, teacher_outputs, alpha, temperature):
    # haitongli/knowledge-distillation-pytorch model/net.py (Hinton et al. 2015)
    nn, F = T.nn, T.nn.functional
    KD_loss = nn.KLDivLoss(reduction="batchmean")(F.log_softmax(outputs / temperature, dim=1),
                                                  F.softmax(teacher_outputs / temperature, dim=1)) * \
        (alpha * temperature * temperature) + F.cross_entropy(outputs, labels) * (1. - alpha)
    return KD_loss


def train_distillation(T, device, teacher_init, student_init, images, labels, temperature=2.0):
    device = device_of(T, device)
    nn = T.nn
    teacher = ported_model(T, teacher_net, teacher_init, device)
    student = ported_model(T, student_net, student_init, device)
    ce_loss = nn.CrossEntropyLoss()
    optimizer = T.optim.Adam(student.parameters(), lr=1e-2)
    teacher.eval()  # Teacher set to evaluation mode
    student.train()  # Student to train mode
    losses = []
    soft_target_loss_weight, ce_loss_weight = 0.25, 0.75
    for inputs, labels_ in zip(images[:3], labels[:3]):  # train_knowledge_distillation
        inputs, labels_ = T.from_numpy(inputs).to(device), T.from_numpy(labels_).to(device)
        optimizer.zero_grad()
        # Forward pass with the teacher model - do not save gradients here as we do not change the teacher's weights
        with T.no_grad():
            teacher_logits, _ = teacher(inputs)
        # Forward pass with the student model
        student_logits, _ = student(inputs)
        # Soften the student logits by applying softmax first and log() second
        soft_targets = nn.functional.softmax(teacher_logits / temperature, dim=-1)
        soft_prob = nn.functional.log_softmax(student_logits / temperature, dim=-1)
        # Calculate the soft targets loss. Scaled by T**2 as suggested by the authors of the paper
        # "Distilling the knowledge in a neural network"
        soft_targets_loss = T.sum(soft_targets * (soft_targets.log() - soft_prob)) / soft_prob.size()[0] * (
            temperature ** 2)
        # Calculate the true label loss
        label_loss = ce_loss(student_logits, labels_)
        # Weighted sum of the two losses
        loss = soft_target_loss_weight * soft_targets_loss + ce_loss_weight * label_loss
        loss.backward()
        optimizer.step()
        hinton = loss_fn_kd(T, student_logits.detach(), labels_, teacher_logits, alpha=0.9, temperature=temperature)
        losses += [loss.item(), soft_targets_loss.item(), hinton.item()]

    cosine_loss = nn.CosineEmbeddingLoss()
    for inputs, labels_ in zip(images[3:], labels[3:]):  # train_cosine_loss
        inputs, labels_ = T.from_numpy(inputs).to(device), T.from_numpy(labels_).to(device)
        optimizer.zero_grad()
        # Forward pass with the teacher model and keep only the hidden representation
        with T.no_grad():
            _, teacher_hidden_representation = teacher(inputs)
        # Forward pass with the student model
        student_logits, student_hidden_representation = student(inputs)
        # Calculate the cosine loss. Target is a vector of ones.
        hidden_rep_loss = cosine_loss(student_hidden_representation, teacher_hidden_representation,
                                      target=T.ones(inputs.size(0)).to(device))
        # Calculate the true label loss
        label_loss = ce_loss(student_logits, labels_)
        # Weighted sum of the two losses
        loss = 0.25 * hidden_rep_loss + 0.75 * label_loss
        loss.backward()
        optimizer.step()
        losses += [loss.item(), hidden_rep_loss.item()]

    student.eval()  # test()
    with T.no_grad():
        outputs, _ = student(T.from_numpy(images[0]).to(device))
        _, predicted = T.max(outputs.data if T is torch else outputs, 1)  # README: .data is the raw array
        losses.append((predicted == T.from_numpy(labels[0]).to(device)).sum().item())
    return losses, numpy_state(student)


def test_knowledge_distillation_tutorial(device):
    rng = np.random.default_rng(12)
    images = rng.standard_normal((5, 6, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, (5, 6))
    torch.manual_seed(0)
    teacher_init, student_init = numpy_state(teacher_net(torch)), numpy_state(student_net(torch))
    run_both(train_distillation, device, teacher_init, student_init, images, labels)


# ---- 4. SAM with the BatchNorm bypass and smoothed cross-entropy (davda54/sam, example/train.py) ------

def sam_optimizer(T):
    # davda54/sam sam.py
    class SAM(T.optim.Optimizer):
        def __init__(self, params, base_optimizer, rho=0.05, adaptive=False, **kwargs):
            assert rho >= 0.0, f"Invalid rho, should be non-negative: {rho}"

            defaults = dict(rho=rho, adaptive=adaptive, **kwargs)
            super(SAM, self).__init__(params, defaults)

            self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
            self.param_groups = self.base_optimizer.param_groups
            self.defaults.update(self.base_optimizer.defaults)

        @T.no_grad()
        def first_step(self, zero_grad=False):
            grad_norm = self._grad_norm()
            for group in self.param_groups:
                scale = group["rho"] / (grad_norm + 1e-12)

                for p in group["params"]:
                    if p.grad is None:
                        continue
                    # README difference: p.data is the raw array, so p.data.clone() becomes p.clone() (no_grad)
                    self.state[p]["old_p"] = p.data.clone() if T is torch else p.clone()
                    e_w = (T.pow(p, 2) if group["adaptive"] else 1.0) * p.grad * scale.to(p)
                    p.add_(e_w)  # climb to the local maximum "w + e(w)"

            if zero_grad:
                self.zero_grad()

        @T.no_grad()
        def second_step(self, zero_grad=False):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    p.data = self.state[p]["old_p"]  # get back to "w" from "w + e(w)"

            self.base_optimizer.step()  # do the actual "sharpness-aware" update

            if zero_grad:
                self.zero_grad()

        @T.no_grad()
        def step(self, closure=None):
            assert closure is not None, "Sharpness Aware Minimization requires closure, but it was not provided"
            closure = T.enable_grad()(closure)  # the closure should do a full forward-backward pass

            self.first_step(zero_grad=True)
            closure()
            self.second_step()

        def _grad_norm(self):
            # put everything on the same device, in case of model parallelism
            shared_device = self.param_groups[0]["params"][0].device
            norm = T.norm(
                T.stack([
                    ((T.abs(p) if group["adaptive"] else 1.0) * p.grad).norm(p=2).to(shared_device)
                    for group in self.param_groups for p in group["params"]
                    if p.grad is not None
                ]),
                p=2
            )
            return norm

        def load_state_dict(self, state_dict):
            super().load_state_dict(state_dict)
            self.base_optimizer.param_groups = self.param_groups

    return SAM


def disable_running_stats(T, model):
    # davda54/sam example/utility/bypass_bn.py (`from torch.nn.modules.batchnorm import _BatchNorm`)
    _BatchNorm = T.nn.modules.batchnorm._BatchNorm

    def _disable(module):
        if isinstance(module, _BatchNorm):
            module.backup_momentum = module.momentum
            module.momentum = 0

    model.apply(_disable)


def enable_running_stats(T, model):
    _BatchNorm = T.nn.modules.batchnorm._BatchNorm

    def _enable(module):
        if isinstance(module, _BatchNorm) and hasattr(module, "backup_momentum"):
            module.momentum = module.backup_momentum

    model.apply(_enable)


def smooth_crossentropy(T, pred, gold, smoothing=0.1):
    # davda54/sam example/utility/loss.py
    F = T.nn.functional
    n_class = pred.size(1)

    one_hot = T.full_like(pred, fill_value=smoothing / (n_class - 1))
    one_hot.scatter_(dim=1, index=gold.unsqueeze(1), value=1.0 - smoothing)
    log_prob = F.log_softmax(pred, dim=1)

    return F.kl_div(input=log_prob, target=one_hot, reduction='none').sum(-1)


class StepLR:
    # davda54/sam example/utility/step_lr.py
    def __init__(self, optimizer, learning_rate: float, total_epochs: int):
        self.optimizer = optimizer
        self.total_epochs = total_epochs
        self.base = learning_rate

    def __call__(self, epoch):
        if epoch < self.total_epochs * 3 / 10:
            lr = self.base
        elif epoch < self.total_epochs * 6 / 10:
            lr = self.base * 0.2
        elif epoch < self.total_epochs * 8 / 10:
            lr = self.base * 0.2 ** 2
        else:
            lr = self.base * 0.2 ** 3

        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


def sam_cnn(T):
    nn = T.nn
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Conv2d(6, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))


def train_sam(T, device, init, images, labels, adaptive, epochs=5):
    device = device_of(T, device)
    model = ported_model(T, sam_cnn, init, device)
    base_optimizer = T.optim.SGD
    optimizer = sam_optimizer(T)(model.parameters(), base_optimizer, rho=2.0 if adaptive else 0.05,
                                 adaptive=adaptive, lr=0.1, momentum=0.9, weight_decay=5e-4)
    scheduler = StepLR(optimizer, 0.1, epochs)
    losses = []
    for epoch in range(epochs):
        model.train()
        for x, y in zip(images, labels):
            inputs, targets = (T.from_numpy(b).to(device) for b in (x, y))
            # first forward-backward step
            enable_running_stats(T, model)
            predictions = model(inputs)
            loss = smooth_crossentropy(T, predictions, targets, smoothing=0.1)
            loss.mean().backward()
            optimizer.first_step(zero_grad=True)

            # second forward-backward step
            disable_running_stats(T, model)
            smooth_crossentropy(T, model(inputs), targets, smoothing=0.1).mean().backward()
            optimizer.second_step(zero_grad=True)

            with T.no_grad():
                correct = T.argmax(predictions.data if T is torch else predictions, 1) == targets  # README: .data
                losses += loss.cpu().tolist() + [correct.cpu().sum().item(), scheduler.lr()]
                scheduler(epoch)
    model.eval()
    with T.no_grad():
        inputs, targets = T.from_numpy(images[0]).to(device), T.from_numpy(labels[0]).to(device)
        losses += smooth_crossentropy(T, model(inputs), targets).tolist()
    assert model[1].momentum == 0 and model[1].backup_momentum == 0.1  # left bypassed after the last step
    return losses, numpy_state(model)


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_with_batchnorm_bypass(device, adaptive):
    rng = np.random.default_rng(13)
    images = rng.standard_normal((2, 8, 3, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 4, (2, 8))
    torch.manual_seed(0)
    run_both(train_sam, device, numpy_state(sam_cnn(torch)), images, labels, adaptive)


# ---- 5. Lookahead around SGD or RAdam, a LambdaLR on the wrapper (michaelrzhang/lookahead, the paper's) ----

def lookahead_optimizer(T):
    # michaelrzhang/lookahead lookahead_pytorch.py
    # README difference: p.data is the raw array, so `p.data` below becomes `p` and the in-place
    # updates of the parameters run under no_grad instead
    class Lookahead(T.optim.Optimizer):
        def __init__(self, optimizer, la_steps=5, la_alpha=0.8, pullback_momentum="none"):
            """optimizer: inner optimizer
            la_steps (int): number of lookahead steps
            la_alpha (float): linear interpolation factor. 1.0 recovers the inner optimizer.
            pullback_momentum (str): change to inner optimizer momentum on interpolation update
            """
            self.optimizer = optimizer
            self._la_step = 0  # counter for inner optimizer
            self.la_alpha = la_alpha
            self._total_la_steps = la_steps
            pullback_momentum = pullback_momentum.lower()
            assert pullback_momentum in ["reset", "pullback", "none"]
            self.pullback_momentum = pullback_momentum

            self.state = defaultdict(dict)

            # Cache the current optimizer parameters
            for group in optimizer.param_groups:
                for p in group['params']:
                    param_state = self.state[p]
                    param_state['cached_params'] = T.zeros_like(p)
                    param_state['cached_params'].copy_(p.detach())
                    if self.pullback_momentum == "pullback":
                        param_state['cached_mom'] = T.zeros_like(p)

        def __getstate__(self):
            return {
                'state': self.state,
                'optimizer': self.optimizer,
                'la_alpha': self.la_alpha,
                '_la_step': self._la_step,
                '_total_la_steps': self._total_la_steps,
                'pullback_momentum': self.pullback_momentum
            }

        def zero_grad(self):
            self.optimizer.zero_grad()

        def get_la_step(self):
            return self._la_step

        def state_dict(self):
            return self.optimizer.state_dict()

        def load_state_dict(self, state_dict):
            self.optimizer.load_state_dict(state_dict)

        @T.no_grad()
        def _backup_and_load_cache(self):
            """Useful for performing evaluation on the slow weights (which typically generalize better)
            """
            for group in self.optimizer.param_groups:
                for p in group['params']:
                    param_state = self.state[p]
                    param_state['backup_params'] = T.zeros_like(p)
                    param_state['backup_params'].copy_(p)
                    p.copy_(param_state['cached_params'])

        @T.no_grad()
        def _clear_and_load_backup(self):
            for group in self.optimizer.param_groups:
                for p in group['params']:
                    param_state = self.state[p]
                    p.copy_(param_state['backup_params'])
                    del param_state['backup_params']

        @property
        def param_groups(self):
            return self.optimizer.param_groups

        def step(self, closure=None):
            """Performs a single Lookahead optimization step.
            Arguments:
                closure (callable, optional): A closure that reevaluates the model
                    and returns the loss.
            """
            loss = self.optimizer.step(closure)
            self._la_step += 1

            if self._la_step >= self._total_la_steps:
                self._la_step = 0
                # Lookahead and cache the current optimizer parameters
                for group in self.optimizer.param_groups:
                    for p in group['params']:
                        param_state = self.state[p]
                        with T.no_grad():
                            p.mul_(self.la_alpha).add_(param_state['cached_params'],
                                                       alpha=1.0 - self.la_alpha)  # crucial line
                            param_state['cached_params'].copy_(p)
                        if self.pullback_momentum == "pullback":
                            internal_momentum = self.optimizer.state[p]["momentum_buffer"]
                            self.optimizer.state[p]["momentum_buffer"] = internal_momentum.mul_(self.la_alpha).add_(
                                1.0 - self.la_alpha, param_state["cached_mom"])
                            param_state["cached_mom"] = self.optimizer.state[p]["momentum_buffer"]
                        elif self.pullback_momentum == "reset":
                            self.optimizer.state[p]["momentum_buffer"] = T.zeros_like(p)

            return loss

    return Lookahead


def mlp_classifier(T, d_in=6, hidden=12, classes=4):
    nn = T.nn
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, classes))


def train_lookahead(T, device, init, xs, ys, inner, x_val, warmup=3):
    device = device_of(T, device)
    model = ported_model(T, mlp_classifier, init, device)
    if inner == "radam":  # Ranger = RAdam + Lookahead
        optimizer = T.optim.RAdam(model.parameters(), lr=5e-2, weight_decay=1e-4)
        pullback_momentum = "none"
    else:
        optimizer = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        pullback_momentum = inner
    optimizer = lookahead_optimizer(T)(optimizer, la_steps=3, la_alpha=0.5, pullback_momentum=pullback_momentum)
    scheduler = T.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    losses = []
    for x, y in zip(xs, ys):
        x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        loss = T.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses += [loss.item(), scheduler.get_last_lr()[0], optimizer.get_la_step()]
    x_val = T.from_numpy(x_val).to(device)
    with T.no_grad():
        fast = model(x_val)
        optimizer._backup_and_load_cache()  # evaluate on the slow weights
        slow = model(x_val)
        optimizer._clear_and_load_backup()
        assert T.equal(model(x_val), fast)
    losses += fast.flatten().tolist() + slow.flatten().tolist()
    return losses, numpy_state(model)


@pytest.mark.filterwarnings("ignore:This overload of add_ is deprecated")
@pytest.mark.parametrize("inner", ["radam", "reset", "pullback"])
def test_lookahead_with_scheduler(device, inner):
    rng = np.random.default_rng(14)
    xs = rng.standard_normal((8, 10, 6)).astype(np.float32)
    ys = rng.integers(0, 4, (8, 10))
    x_val = rng.standard_normal((3, 6)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_lookahead, device, numpy_state(mlp_classifier(torch)), xs, ys, inner, x_val)


# ---- 6. LARS on a Barlow Twins loss (facebookresearch/barlowtwins main.py) --------------------------

def lars_optimizer(T):
    # facebookresearch/barlowtwins main.py
    class LARS(T.optim.Optimizer):
        def __init__(self, params, lr, weight_decay=0, momentum=0.9, eta=0.001,
                     weight_decay_filter=False, lars_adaptation_filter=False):
            defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                            eta=eta, weight_decay_filter=weight_decay_filter,
                            lars_adaptation_filter=lars_adaptation_filter)
            super().__init__(params, defaults)

        def exclude_bias_and_norm(self, p):
            return p.ndim == 1

        @T.no_grad()
        def step(self):
            for g in self.param_groups:
                for p in g['params']:
                    dp = p.grad

                    if dp is None:
                        continue

                    if not g['weight_decay_filter'] or not self.exclude_bias_and_norm(p):
                        dp = dp.add(p, alpha=g['weight_decay'])

                    if not g['lars_adaptation_filter'] or not self.exclude_bias_and_norm(p):
                        param_norm = T.norm(p)
                        update_norm = T.norm(dp)
                        one = T.ones_like(param_norm)
                        q = T.where(param_norm > 0.,
                                    T.where(update_norm > 0,
                                            (g['eta'] * param_norm / update_norm), one), one)
                        dp = dp.mul(q)

                    param_state = self.state[p]
                    if 'mu' not in param_state:
                        param_state['mu'] = T.zeros_like(p)
                    mu = param_state['mu']
                    mu.mul_(g['momentum']).add_(dp)

                    p.add_(mu, alpha=-g['lr'])

    return LARS


def off_diagonal(x):
    # return a flattened view of the off-diagonal elements of a square matrix
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


class BarlowArgs:
    batch_size, lambd, projector = 8, 0.0051, "8-8"
    epochs, warmup_epochs, learning_rate_weights, learning_rate_biases = 4, 1, 2.0, 0.05


def barlow_twins(T, args=BarlowArgs):
    nn = T.nn

    class BarlowTwins(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.args = args
            # a tiny MLP stands in for resnet50 (with fc = nn.Identity())
            self.backbone = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(inplace=True),
                                          nn.Linear(8, 8), nn.Identity())

            # projector
            sizes = [8] + list(map(int, args.projector.split('-')))
            layers = []
            for i in range(len(sizes) - 2):
                layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=False))
                layers.append(nn.BatchNorm1d(sizes[i + 1]))
                layers.append(nn.ReLU(inplace=True))
            layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
            self.projector = nn.Sequential(*layers)

            # normalization layer for the representations z1 and z2
            self.bn = nn.BatchNorm1d(sizes[-1], affine=False)

        def forward(self, y1, y2):
            z1 = self.projector(self.backbone(y1))
            z2 = self.projector(self.backbone(y2))

            # empirical cross-correlation matrix
            c = self.bn(z1).T @ self.bn(z2)

            # sum the cross-correlation matrix between all gpus
            c.div_(self.args.batch_size)
            # torch.distributed.all_reduce(c): one process here

            on_diag = T.diagonal(c).add_(-1).pow_(2).sum()
            off_diag = off_diagonal(c).pow_(2).sum()
            loss = on_diag + self.args.lambd * off_diag
            return loss

    return BarlowTwins(args)


def adjust_learning_rate(args, optimizer, loader, step):
    max_steps = args.epochs * len(loader)
    warmup_steps = args.warmup_epochs * len(loader)  # barlowtwins: 10 epochs
    base_lr = args.batch_size / 256
    if step < warmup_steps:
        lr = base_lr * step / warmup_steps
    else:
        step -= warmup_steps
        max_steps -= warmup_steps
        q = 0.5 * (1 + math.cos(math.pi * step / max_steps))
        end_lr = base_lr * 0.001
        lr = base_lr * q + end_lr * (1 - q)
    optimizer.param_groups[0]['lr'] = lr * args.learning_rate_weights
    optimizer.param_groups[1]['lr'] = lr * args.learning_rate_biases


def train_barlow_twins(T, device, init, loader, args=BarlowArgs):
    device = device_of(T, device)
    model = ported_model(T, barlow_twins, init, device)
    param_weights = []
    param_biases = []
    for param in model.parameters():
        if param.ndim == 1:
            param_biases.append(param)
        else:
            param_weights.append(param)
    parameters = [{'params': param_weights}, {'params': param_biases}]
    optimizer = lars_optimizer(T)(parameters, lr=0, weight_decay=1e-6, eta=0.1,
                                  weight_decay_filter=True,
                                  lars_adaptation_filter=True)
    scaler = T.amp.GradScaler(enabled=False)  # torch.cuda.amp.GradScaler(): off on a CPU machine
    losses = []
    for epoch in range(args.epochs):
        for step, (y1, y2) in enumerate(loader, start=epoch * len(loader)):
            y1 = T.from_numpy(y1).to(device, non_blocking=True)
            y2 = T.from_numpy(y2).to(device, non_blocking=True)
            adjust_learning_rate(args, optimizer, loader, step)
            optimizer.zero_grad()
            with T.autocast(device_type="cpu", enabled=False):
                loss = model.forward(y1, y2)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses += [loss.item(), optimizer.param_groups[0]['lr']]
    return losses, numpy_state(model)


def test_lars_barlow_twins(device):
    rng = np.random.default_rng(15)
    base = rng.standard_normal((2, 8, 6)).astype(np.float32)
    loader = [(b + 0.3 * rng.standard_normal(b.shape).astype(np.float32),
               b + 0.3 * rng.standard_normal(b.shape).astype(np.float32)) for b in base]
    torch.manual_seed(0)
    run_both(train_barlow_twins, device, numpy_state(barlow_twins(torch)), loader)


# ---- 7. timm's Lamb with timm's parameter groups (no weight decay on biases and norms) ----------------

def lamb_optimizer(T):
    # timm/optim/lamb.py
    class Lamb(T.optim.Optimizer):
        def __init__(
                self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-6,
                weight_decay=0.01, grad_averaging=True, max_grad_norm=1.0, trust_clip=False, always_adapt=False):
            defaults = dict(
                lr=lr, bias_correction=bias_correction, betas=betas, eps=eps, weight_decay=weight_decay,
                grad_averaging=grad_averaging, max_grad_norm=max_grad_norm,
                trust_clip=trust_clip, always_adapt=always_adapt)
            super().__init__(params, defaults)

        @T.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with T.enable_grad():
                    loss = closure()

            device = self.param_groups[0]['params'][0].device
            one_tensor = T.tensor(1.0, device=device)  # because torch.where doesn't handle scalars correctly
            global_grad_norm = T.zeros(1, device=device)
            for group in self.param_groups:
                for p in group['params']:
                    if p.grad is None:
                        continue
                    grad = p.grad
                    if grad.is_sparse:
                        raise RuntimeError('Lamb does not support sparse gradients, consider SparseAdam instad.')
                    global_grad_norm.add_(grad.pow(2).sum())

            global_grad_norm = T.sqrt(global_grad_norm)
            # FIXME it'd be nice to remove explicit tensor conversion of scalars when torch.where promotes
            # scalar types properly https://github.com/pytorch/pytorch/issues/9190
            max_grad_norm = T.tensor(self.defaults['max_grad_norm'], device=device)
            clip_global_grad_norm = T.where(
                global_grad_norm > max_grad_norm,
                global_grad_norm / max_grad_norm,
                one_tensor)

            for group in self.param_groups:
                bias_correction = 1 if group['bias_correction'] else 0
                beta1, beta2 = group['betas']
                grad_averaging = 1 if group['grad_averaging'] else 0
                beta3 = 1 - beta1 if grad_averaging else 1.0

                # assume same step across group now to simplify things
                # per parameter step can be easily support by making it tensor, or pass list into kernel
                if 'step' in group:
                    group['step'] += 1
                else:
                    group['step'] = 1

                if bias_correction:
                    bias_correction1 = 1 - beta1 ** group['step']
                    bias_correction2 = 1 - beta2 ** group['step']
                else:
                    bias_correction1, bias_correction2 = 1.0, 1.0

                for p in group['params']:
                    if p.grad is None:
                        continue
                    grad = p.grad.div_(clip_global_grad_norm)
                    state = self.state[p]

                    # State initialization
                    if len(state) == 0:
                        # Exponential moving average of gradient valuesa
                        state['exp_avg'] = T.zeros_like(p)
                        # Exponential moving average of squared gradient values
                        state['exp_avg_sq'] = T.zeros_like(p)

                    exp_avg, exp_avg_sq = state['exp_avg'], state['exp_avg_sq']

                    # Decay the first and second moment running average coefficient
                    exp_avg.mul_(beta1).add_(grad, alpha=beta3)  # m_t
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v_t

                    denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(group['eps'])
                    update = (exp_avg / bias_correction1).div_(denom)

                    weight_decay = group['weight_decay']
                    if weight_decay != 0:
                        update.add_(p, alpha=weight_decay)

                    if weight_decay != 0 or group['always_adapt']:
                        # Layer-wise LR adaptation. By default, skip adaptation on parameters that are
                        # excluded from weight decay, unless always_adapt == True, then always enabled.
                        w_norm = p.norm(2.0)
                        g_norm = update.norm(2.0)
                        # FIXME nested where required since logical and/or not working in PT XLA
                        trust_ratio = T.where(
                            w_norm > 0,
                            T.where(g_norm > 0, w_norm / g_norm, one_tensor),
                            one_tensor,
                        )
                        if group['trust_clip']:
                            # LAMBC trust clipping, upper bound fixed at one
                            trust_ratio = T.minimum(trust_ratio, one_tensor)
                        update.mul_(trust_ratio)

                    p.add_(update, alpha=-group['lr'])

            return loss

    return Lamb


def param_groups_weight_decay(model, weight_decay=1e-5, no_weight_decay_list=()):
    # timm/optim/_param_groups.py
    no_weight_decay_list = set(no_weight_decay_list)
    decay = []
    no_decay = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue

        if param.ndim <= 1 or name.endswith(".bias") or name in no_weight_decay_list:
            no_decay.append(param)
        else:
            decay.append(param)

    return [
        {'params': no_decay, 'weight_decay': 0.},
        {'params': decay, 'weight_decay': weight_decay}]


def lamb_net(T):
    nn = T.nn
    return nn.Sequential(nn.Linear(6, 12), nn.LayerNorm(12), nn.GELU(), nn.Linear(12, 4))


def train_lamb(T, device, init, xs, ys, trust_clip):
    device = device_of(T, device)
    model = ported_model(T, lamb_net, init, device)
    model[0].weight.requires_grad_(False)  # a frozen first layer: param_groups_weight_decay leaves it out
    optimizer = lamb_optimizer(T)(param_groups_weight_decay(model, weight_decay=0.05), lr=0.02,
                                  trust_clip=trust_clip, max_grad_norm=0.5)
    assert [len(g["params"]) for g in optimizer.param_groups] == [4, 1]
    losses = []
    for step, (x, y) in enumerate(zip(xs, ys)):
        x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)

        def closure():
            optimizer.zero_grad()
            loss = T.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        loss = optimizer.step(closure) if step % 2 else closure()
        if step % 2 == 0:
            optimizer.step()
        losses += [loss.item(), optimizer.param_groups[1]['step']]
    return losses, numpy_state(model)


@pytest.mark.parametrize("trust_clip", [False, True])
def test_timm_lamb(device, trust_clip):
    rng = np.random.default_rng(16)
    xs = rng.standard_normal((6, 10, 6)).astype(np.float32)
    ys = rng.integers(0, 4, (6, 10))
    torch.manual_seed(0)
    init = numpy_state(lamb_net(torch))
    got = run_both(train_lamb, device, init, xs, ys, trust_clip)
    np.testing.assert_array_equal(got[1]["0.weight"], init["0.weight"])


# ---- 8. weight EMA: timm's ModelEmaV2 and torch.optim.swa_utils.AveragedModel -----------------------

def model_ema_v2(T):
    nn = T.nn

    class ModelEmaV2(nn.Module):
        # timm/utils/model_ema.py
        def __init__(self, model, decay=0.9999, device=None):
            super(ModelEmaV2, self).__init__()
            # make a copy of the model for accumulating moving average of weights
            self.module = deepcopy(model)
            self.module.eval()
            self.decay = decay
            self.device = device  # perform ema on different device from model if set
            if self.device is not None:
                self.module.to(device=device)

        def _update(self, model, update_fn):
            with T.no_grad():
                for ema_v, model_v in zip(self.module.state_dict().values(), model.state_dict().values()):
                    if self.device is not None:
                        model_v = model_v.to(device=self.device)
                    ema_v.copy_(update_fn(ema_v, model_v))

        def update(self, model):
            self._update(model, update_fn=lambda e, m: self.decay * e + (1. - self.decay) * m)

        def set(self, model):
            self._update(model, update_fn=lambda e, m: m)

        def forward(self, *args, **kwargs):
            return self.module(*args, **kwargs)

    return ModelEmaV2


def bn_net(T):
    nn = T.nn
    return nn.Sequential(nn.Linear(5, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 3))


def train_with_ema(T, device, init, xs, ys, x_val):
    device = device_of(T, device)
    model = ported_model(T, bn_net, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    # timm train.py: `device='cpu' if args.model_ema_force_cpu else None`
    model_ema = model_ema_v2(T)(model, decay=0.8, device="cpu")
    swa = T.optim.swa_utils
    averaged = swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(0.8), use_buffers=True)
    losses = []
    for x, y in zip(xs, ys):
        model.train()
        x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        loss = T.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model_ema.update(model)
        averaged.update_parameters(model)
        losses.append(loss.item())
    x_val = T.from_numpy(x_val)
    model.eval()
    averaged.eval()
    with T.no_grad():
        losses += model_ema(x_val).flatten().tolist()  # the EMA copy lives on the CPU
        losses += averaged(x_val.to(device)).flatten().tolist()
        losses.append(averaged.n_averaged.item())
    assert not model_ema.module.training and next(model_ema.parameters()).device.type == "cpu"
    state = numpy_state(model)
    state.update(prefixed("ema", numpy_state(model_ema.module)), **prefixed("avg", numpy_state(averaged)))
    return losses, state


def test_model_ema(device):
    rng = np.random.default_rng(17)
    xs = rng.standard_normal((5, 8, 5)).astype(np.float32)
    ys = rng.integers(0, 3, (5, 8))
    x_val = rng.standard_normal((4, 5)).astype(np.float32)
    torch.manual_seed(0)
    got = run_both(train_with_ema, device, numpy_state(bn_net(torch)), xs, ys, x_val)
    # both EMAs average the int64 num_batches_tracked too, and copy_ truncates it back to an integer
    # (0.8 * e + 0.2 * k: 0 until k = 5)
    assert got[1]["ema.1.num_batches_tracked"] == 1 and got[1]["1.num_batches_tracked"] == 5


# ---- 9. stochastic depth: timm's drop_path (per sample) and torchvision's (per batch) ---------------

def drop_path(x, drop_prob: float = 0., training: bool = False, scale_by_keep: bool = True, keep=None):
    """timm/layers/drop.py; `keep`, when given, is the Bernoulli draw (a NumPy 0/1 row per sample)."""
    if drop_prob == 0. or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # work with diff dim tensors, not just 2D ConvNets
    if keep is None:
        random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    else:
        random_tensor = x.new_tensor(keep).reshape(shape)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


def stochastic_depth(T, input, p, mode, training=True, keep=None):
    """torchvision/ops/stochastic_depth.py; `keep`, when given, is the Bernoulli draw."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ["batch", "row"]:
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if not training or p == 0.0:
        return input

    survival_rate = 1.0 - p
    if mode == "row":
        size = [input.shape[0]] + [1] * (input.ndim - 1)
    else:
        size = [1] * input.ndim
    noise = T.empty(size, dtype=input.dtype, device=input.device)
    if keep is None:
        noise = noise.bernoulli_(survival_rate)
    else:
        noise.copy_(T.from_numpy(keep).reshape(size))
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


def stochastic_resnet(T, depth=4, drop_path_rate=0.3):
    nn, F = T.nn, T.nn.functional

    class DropPath(nn.Module):
        """timm's DropPath; `keep` is set before each step (None: draw)."""

        def __init__(self, drop_prob: float = 0., scale_by_keep: bool = True):
            super(DropPath, self).__init__()
            self.drop_prob = drop_prob
            self.scale_by_keep = scale_by_keep
            self.keep = None

        def forward(self, x):
            return drop_path(x, self.drop_prob, self.training, self.scale_by_keep, keep=self.keep)

        def extra_repr(self):
            return f'drop_prob={round(self.drop_prob, 3):0.3f}'

    class StochasticDepth(nn.Module):
        """torchvision's StochasticDepth module, its draw passed in the same way."""

        def __init__(self, p: float, mode: str) -> None:
            super().__init__()
            self.p, self.mode, self.keep = p, mode, None

        def forward(self, input):
            return stochastic_depth(T, input, self.p, self.mode, self.training, keep=self.keep)

    class BasicBlock(nn.Module):
        def __init__(self, planes, drop_path_layer):
            super().__init__()
            self.conv1 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.drop_path = drop_path_layer

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(x + self.drop_path(out))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(2, 4, 3, padding=1)
            # stochastic depth decay rule
            dpr = [x.item() for x in T.linspace(0, drop_path_rate, depth)]
            self.blocks = nn.Sequential(*[
                BasicBlock(4, DropPath(dpr[i]) if i % 2 == 0 else StochasticDepth(dpr[i], "batch"))
                for i in range(depth)])
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.head(x.mean((-2, -1)))

    return Net()


def train_stochastic_depth(T, device, init, images, labels, keeps):
    device = device_of(T, device)
    model = ported_model(T, stochastic_resnet, init, device)
    optimizer = T.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.05)
    losses = []
    for x, y, keep in zip(images, labels, keeps):
        for block, k in zip(model.blocks, keep):
            # timm's DropPath: a draw per sample; torchvision's "batch" mode: one draw for the whole batch
            block.drop_path.keep = k[:1].copy() if getattr(block.drop_path, "mode", "row") == "batch" else k
        model.train()
        x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        loss = T.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():  # eval: every path on, no rescaling
        losses += model(T.from_numpy(images[0]).to(device)).flatten().tolist()
    assert repr(model.blocks[2].drop_path) == "DropPath(drop_prob=0.200)"
    return losses, numpy_state(model)


def test_stochastic_depth(device):
    rng = np.random.default_rng(18)
    images = rng.standard_normal((4, 6, 2, 5, 5)).astype(np.float32)
    labels = rng.integers(0, 3, (4, 6))
    keeps = (rng.random((4, 4, 6)) > 0.3).astype(np.float32)
    keeps[:, 1, 0] = [0, 1, 0, 1]  # the per-batch path (block 1) is dropped on two steps
    torch.manual_seed(0)
    run_both(train_stochastic_depth, device, numpy_state(stochastic_resnet(torch)), images, labels, keeps)


def test_drop_path_draws_per_sample(device):
    tensor.manual_seed(0)
    x = tensor.ones(4000, 3, 2, device=device)
    out = drop_path(x, 0.25, training=True).cpu().numpy()
    kept = out[:, 0, 0] != 0
    assert abs(kept.mean() - 0.75) < 0.03
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)  # the whole sample is kept and rescaled
    np.testing.assert_array_equal(out[~kept], 0)
    row = stochastic_depth(tensor, x, 0.5, "batch").cpu().numpy()
    assert np.all(row == 0) or np.allclose(row, 2.0)
    assert drop_path(x, 0.25, training=False) is x


# ---- 10. mixup and CutMix (facebookresearch/mixup-cifar10, clovaai/CutMix-PyTorch) ------------------

def mixup_data(T, x, y, lam, index):
    """facebookresearch/mixup-cifar10 train.py; lam (np.random.beta) and index (torch.randperm) passed in."""
    mixed_x = lam * x + (1 - lam) * x[index, :]
    y_a, y_b = y, y[index]
    return mixed_x, y_a, y_b, lam


def mixup_criterion(criterion, pred, y_a, y_b, lam):
    return lam * criterion(pred, y_a) + (1 - lam) * criterion(pred, y_b)


def rand_bbox(size, lam, cx, cy):
    """clovaai/CutMix-PyTorch train.py, the centre (np.random.randint draws) passed in."""
    W = size[2]
    H = size[3]
    cut_rat = np.sqrt(1. - lam)
    cut_w = int(W * cut_rat)
    cut_h = int(H * cut_rat)

    # uniform
    bbx1 = np.clip(cx - cut_w // 2, 0, W)
    bby1 = np.clip(cy - cut_h // 2, 0, H)
    bbx2 = np.clip(cx + cut_w // 2, 0, W)
    bby2 = np.clip(cy + cut_h // 2, 0, H)

    return bbx1, bby1, bbx2, bby2


def mix_cnn(T):
    nn = T.nn
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5))


def train_mixup_cutmix(T, device, init, images, labels, lams, perms, centres, methods):
    device = device_of(T, device)
    model = ported_model(T, mix_cnn, init, device)
    criterion = T.nn.CrossEntropyLoss()
    optimizer = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    losses = []
    for input, target, lam, perm, centre, method in zip(images, labels, lams, perms, centres, methods):
        # a fresh batch, as the loader gives it (CutMix pastes into it in place; from_numpy would share)
        input, target = T.tensor(input).to(device), T.tensor(target).to(device)
        lam = float(lam)
        if method == "mixup":
            index = T.from_numpy(perm).to(device)  # torch.randperm(batch_size).cuda()
            inputs, targets_a, targets_b, lam = mixup_data(T, input, target, lam, index)
            outputs = model(inputs)
            loss = mixup_criterion(criterion, outputs, targets_a, targets_b, lam)
        elif method == "cutmix":
            # generate mixed sample
            rand_index = T.from_numpy(perm).to(device)  # torch.randperm(input.size()[0]).cuda()
            target_a = target
            target_b = target[rand_index]
            bbx1, bby1, bbx2, bby2 = rand_bbox(input.size(), lam, *centre)
            input[:, :, bbx1:bbx2, bby1:bby2] = input[rand_index, :, bbx1:bbx2, bby1:bby2]
            # adjust lambda to exactly match pixel ratio
            lam = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (input.size()[-1] * input.size()[-2]))
            # compute output
            output = model(input)
            loss = criterion(output, target_a) * lam + criterion(output, target_b) * (1. - lam)
        else:
            loss = criterion(model(input), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [loss.item(), float(lam)]
    return losses, numpy_state(model)


def test_mixup_and_cutmix(device):
    rng = np.random.default_rng(19)
    steps = 6
    images = rng.standard_normal((steps, 8, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 5, (steps, 8))
    lams = rng.beta(1.0, 1.0, steps)
    perms = np.stack([rng.permutation(8) for _ in range(steps)])
    centres = rng.integers(0, 8, (steps, 2))
    methods = ["mixup", "cutmix", "none", "cutmix", "mixup", "cutmix"]
    torch.manual_seed(0)
    run_both(train_mixup_cutmix, device, numpy_state(mix_cnn(torch)), images, labels, lams, perms, centres,
             methods)


# ---- 11. label smoothing: built in, timm's and fairseq's hand-written ones ---------------------------

def label_smoothing_cross_entropy(T):
    nn, F = T.nn, T.nn.functional

    class LabelSmoothingCrossEntropy(nn.Module):
        """ NLL loss with label smoothing. (timm/loss/cross_entropy.py)
        """

        def __init__(self, smoothing=0.1):
            super(LabelSmoothingCrossEntropy, self).__init__()
            assert smoothing < 1.0
            self.smoothing = smoothing
            self.confidence = 1. - smoothing

        def forward(self, x, target):
            logprobs = F.log_softmax(x, dim=-1)
            nll_loss = -logprobs.gather(dim=-1, index=target.unsqueeze(1))
            nll_loss = nll_loss.squeeze(1)
            smooth_loss = -logprobs.mean(dim=-1)
            loss = self.confidence * nll_loss + self.smoothing * smooth_loss
            return loss.mean()

    return LabelSmoothingCrossEntropy


def label_smoothed_nll_loss(lprobs, target, epsilon, ignore_index=None, reduce=True):
    # fairseq/criterions/label_smoothed_cross_entropy.py
    if target.dim() == lprobs.dim() - 1:
        target = target.unsqueeze(-1)
    nll_loss = -lprobs.gather(dim=-1, index=target)
    smooth_loss = -lprobs.sum(dim=-1, keepdim=True)
    if ignore_index is not None:
        pad_mask = target.eq(ignore_index)
        nll_loss.masked_fill_(pad_mask, 0.0)
        smooth_loss.masked_fill_(pad_mask, 0.0)
    else:
        nll_loss = nll_loss.squeeze(-1)
        smooth_loss = smooth_loss.squeeze(-1)
    if reduce:
        nll_loss = nll_loss.sum()
        smooth_loss = smooth_loss.sum()
    eps_i = epsilon / (lprobs.size(-1) - 1)
    loss = (1.0 - epsilon - eps_i) * nll_loss + eps_i * smooth_loss
    return loss, nll_loss


def tagger(T, vocab=12, dim=8, tags=5):
    nn = T.nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, dim, padding_idx=0)
            self.conv = nn.Conv1d(dim, dim, 3, padding=1)
            self.out = nn.Linear(dim, tags)

        def forward(self, tokens):  # (N, L) -> (N, L, tags)
            h = self.conv(self.embed(tokens).transpose(1, 2)).relu().transpose(1, 2)
            return self.out(h)

    return Tagger()


def train_label_smoothing(T, device, init, tokens, tags, class_weights):
    device = device_of(T, device)
    F = T.nn.functional
    builtin = ported_model(T, tagger, init, device)
    handwritten = ported_model(T, tagger, init, device)
    weight = T.from_numpy(class_weights).to(device)
    criterion = T.nn.CrossEntropyLoss(weight=weight, ignore_index=0, label_smoothing=0.1)
    timm_ls = label_smoothing_cross_entropy(T)(smoothing=0.1)
    opt_a = T.optim.Adam(builtin.parameters(), lr=1e-2)
    opt_b = T.optim.Adam(handwritten.parameters(), lr=1e-2)
    losses = []
    for x, y in zip(tokens, tags):
        x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        # built in, on (N, C, L) logits: class weights, padding ignored, smoothed
        logits = builtin(x)
        loss = criterion(logits.transpose(1, 2), y)
        opt_a.zero_grad()
        loss.backward()
        opt_a.step()
        flat, flat_y = logits.detach().reshape(-1, logits.shape[-1]), y.reshape(-1)
        losses += [loss.item(),
                   F.cross_entropy(flat, flat_y, label_smoothing=0.1).item(),
                   timm_ls(flat, flat_y).item(),
                   # soft (probability) targets with smoothing on top
                   F.cross_entropy(flat, F.softmax(flat.flip(0), dim=-1), label_smoothing=0.2).item()]
        # fairseq: summed over tokens, padding masked, normalised by the number of target tokens
        lprobs = F.log_softmax(handwritten(x), dim=-1, dtype=T.float32)
        loss, nll_loss = label_smoothed_nll_loss(lprobs.view(-1, lprobs.size(-1)), y.view(-1), 0.1, ignore_index=0)
        ntokens = y.ne(0).sum()
        opt_b.zero_grad()
        (loss / ntokens).backward()
        opt_b.step()
        losses += [loss.item(), nll_loss.item() / ntokens.item() / math.log(2)]
    state = prefixed("builtin", numpy_state(builtin))
    state.update(prefixed("fairseq", numpy_state(handwritten)))
    return losses, state


def test_label_smoothing(device):
    rng = np.random.default_rng(20)
    tokens = rng.integers(1, 12, (4, 5, 7))
    tokens[:, :, 5:] *= rng.random((4, 5, 2)) < 0.5  # padded tails
    tags = np.where(tokens == 0, 0, rng.integers(1, 5, tokens.shape))
    class_weights = np.array([1.0, 0.5, 1.0, 2.0, 1.5], np.float32)
    torch.manual_seed(0)
    run_both(train_label_smoothing, device, numpy_state(tagger(torch)), tokens, tags, class_weights)


# ---- 12. gradient accumulation, clip_grad_norm_, warmup-cosine LambdaLR (HF no-trainer examples) --------

def get_cosine_schedule_with_warmup(T, optimizer, num_warmup_steps, num_training_steps, num_cycles=0.5,
                                    last_epoch=-1):
    # transformers/optimization.py
    def lr_lambda(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))

    return T.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda, last_epoch)


def text_classifier(T, vocab=16, dim=8, classes=3):
    nn = T.nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = nn.Embedding(vocab, dim)
            self.dense = nn.Linear(dim, dim)
            self.LayerNorm = nn.LayerNorm(dim)
            self.classifier = nn.Linear(dim, classes)

        def forward(self, input_ids, attention_mask):
            h = self.LayerNorm(T.tanh(self.dense(self.embeddings(input_ids))))
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            return self.classifier((h * mask).sum(1) / mask.sum(1))

    return Classifier()


def train_accumulation(T, device, init, batches, gradient_accumulation_steps=3, num_train_epochs=2):
    device = device_of(T, device)
    model = ported_model(T, text_classifier, init, device)
    # run_glue_no_trainer.py: no decay for biases and LayerNorm weights
    no_decay = ["bias", "LayerNorm.weight"]
    optimizer_grouped_parameters = [
        {
            "params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
            "weight_decay": 0.1,
        },
        {
            "params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = T.optim.AdamW(optimizer_grouped_parameters, lr=2e-2)
    num_update_steps_per_epoch = math.ceil(len(batches) / gradient_accumulation_steps)
    max_train_steps = num_train_epochs * num_update_steps_per_epoch
    lr_scheduler = get_cosine_schedule_with_warmup(T, optimizer, num_warmup_steps=2,
                                                   num_training_steps=max_train_steps)
    losses = []
    completed_steps = 0
    for epoch in range(num_train_epochs):
        model.train()
        for step, batch in enumerate(batches):
            batch = {k: T.from_numpy(v).to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            outputs = model(**batch)
            loss = T.nn.functional.cross_entropy(outputs, labels)
            loss = loss / gradient_accumulation_steps
            loss.backward()
            if step % gradient_accumulation_steps == 0 or step == len(batches) - 1:
                total_norm = T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                completed_steps += 1
                losses += [total_norm.item(), lr_scheduler.get_last_lr()[0], lr_scheduler.get_last_lr()[1]]
            losses.append(loss.item())
    assert completed_steps == max_train_steps and lr_scheduler.last_epoch == max_train_steps
    return losses, numpy_state(model)


def test_gradient_accumulation_warmup_cosine(device):
    rng = np.random.default_rng(21)
    batches = []
    for _ in range(7):
        mask = (np.arange(6) < rng.integers(2, 7, (4, 1))).astype(np.int64)
        batches.append({"input_ids": rng.integers(1, 16, (4, 6)) * mask, "attention_mask": mask,
                        "labels": rng.integers(0, 3, 4)})
    torch.manual_seed(0)
    run_both(train_accumulation, device, numpy_state(text_classifier(torch)), batches)


# ---- 13. focal loss for imbalanced segmentation (AdeelH/pytorch-multi-class-focal-loss) ---------------

def focal_loss_class(T):
    nn, F = T.nn, T.nn.functional

    class FocalLoss(nn.Module):
        """ Focal Loss, as described in https://arxiv.org/abs/1708.02002.
        (AdeelH/pytorch-multi-class-focal-loss focal_loss.py)
        """

        def __init__(self, alpha=None, gamma=0., reduction='mean', ignore_index=-100):
            if reduction not in ('mean', 'sum', 'none'):
                raise ValueError('Reduction must be one of: "mean", "sum", "none".')
            super().__init__()
            self.alpha = alpha
            self.gamma = gamma
            self.ignore_index = ignore_index
            self.reduction = reduction
            self.nll_loss = nn.NLLLoss(weight=alpha, reduction='none', ignore_index=ignore_index)

        def __repr__(self):
            arg_keys = ['alpha', 'gamma', 'ignore_index', 'reduction']
            arg_vals = [self.__dict__[k] for k in arg_keys]
            arg_strs = [f'{k}={v!r}' for k, v in zip(arg_keys, arg_vals)]
            arg_str = ', '.join(arg_strs)
            return f'{type(self).__name__}({arg_str})'

        def forward(self, x, y):
            if x.ndim > 2:
                # (N, C, d1, d2, ..., dK) --> (N * d1 * ... * dK, C)
                c = x.shape[1]
                x = x.permute(0, *range(2, x.ndim), 1).reshape(-1, c)
                # (N, d1, d2, ..., dK) --> (N * d1 * ... * dK,)
                y = y.view(-1)

            unignored_mask = y != self.ignore_index
            y = y[unignored_mask]
            if len(y) == 0:
                return T.tensor(0.)
            x = x[unignored_mask]

            # compute weighted cross entropy term: -alpha * log(pt)
            # (alpha is already part of self.nll_loss)
            log_p = F.log_softmax(x, dim=-1)
            ce = self.nll_loss(log_p, y)

            # get true class column from each row
            all_rows = T.arange(len(x))
            log_pt = log_p[all_rows, y]

            # compute focal term: (1 - pt)^gamma
            pt = log_pt.exp()
            focal_term = (1 - pt) ** self.gamma

            # the full loss: -alpha * ((1 - pt)^gamma) * log(pt)
            loss = focal_term * ce

            if self.reduction == 'mean':
                loss = loss.mean()
            elif self.reduction == 'sum':
                loss = loss.sum()

            return loss

    return FocalLoss


def seg_net(T):
    nn = T.nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=2, dilation=2),
                         nn.ReLU(), nn.Conv2d(8, 4, 1))


def train_focal(T, device, init, images, masks, alpha):
    device = device_of(T, device)
    model = ported_model(T, seg_net, init, device)
    criterion = focal_loss_class(T)(alpha=T.from_numpy(alpha).to(device), gamma=2.0, ignore_index=255)
    assert repr(criterion).startswith("FocalLoss(alpha=tensor([")
    optimizer = T.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for x, y in zip(images, masks):
        x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        logits = model(x)
        loss = criterion(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # the one-line form of kaggle kernels: pt from the unreduced cross-entropy
        ce = T.nn.functional.cross_entropy(logits.detach(), y, reduction="none", ignore_index=255)
        pt = T.exp(-ce)
        valid = y != 255
        losses += [loss.item(), ((1 - pt) ** 2 * ce)[valid].mean().item()]
    with T.no_grad():  # the per-pixel map of the last batch
        losses += focal_loss_class(T)(gamma=2.0, reduction='none')(logits, T.where(y == 255, 0, y)).tolist()
    return losses, numpy_state(model)


def test_focal_loss_segmentation(device):
    rng = np.random.default_rng(22)
    images = rng.standard_normal((4, 3, 3, 6, 6)).astype(np.float32)
    masks = rng.choice(4, (4, 3, 6, 6), p=[0.85, 0.1, 0.04, 0.01])  # imbalanced classes
    masks[:, :, 0, :] = 255  # an ignored border
    alpha = np.array([0.1, 1.0, 2.0, 4.0], np.float32)
    torch.manual_seed(0)
    run_both(train_focal, device, numpy_state(seg_net(torch)), images, masks, alpha)
