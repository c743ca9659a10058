"""Learning paradigms as their reference implementations write them, ported by imports.

Semi-supervised learning (FixMatch, MixMatch, Mean Teacher), few-shot and metric learning (Prototypical,
Matching and Relation Networks), continual learning (EWC, experience replay with a reservoir buffer,
LwF, A-GEM) and domain adaptation / robustness (DANN's gradient reversal, FGSM, PGD, TRADES).

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data (augmentations, permutations, noise and mixup coefficients are passed in), and
losses and final parameters agree to float32 accuracy. Where a script touches one of README's accepted
differences (`x.data` is the raw array; a custom Function sees raw arrays) only that spot is adapted.
"""
import copy

import numpy as np
import pytest

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def mlp(T, in_dim=6, hidden=12, classes=3):
    nn = T.nn
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, classes))


def bn_mlp(T, in_dim=6, hidden=12, classes=3):
    nn = T.nn  # no bias before BatchNorm: its true gradient is zero
    return nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


# ---- 1. Semi-supervised: FixMatch, MixMatch, Mean Teacher ----------------------------------------------

def interleave(x, size):
    """kekmodel/FixMatch-pytorch: mix labeled and unlabeled rows so every BatchNorm batch sees both."""
    s = list(x.shape)
    return x.reshape([-1, size] + s[1:]).transpose(0, 1).reshape([-1] + s[1:])


def de_interleave(x, size):
    s = list(x.shape)
    return x.reshape([size, -1] + s[1:]).transpose(0, 1).reshape([-1] + s[1:])


class ModelEMA:
    """kekmodel/FixMatch-pytorch's ModelEMA: an EMA copy updated through state_dict views."""

    def __init__(self, T, model, decay):
        self.T = T
        self.ema = copy.deepcopy(model)
        self.ema.eval()
        self.decay = decay
        self.param_keys = [k for k, _ in self.ema.named_parameters()]
        self.buffer_keys = [k for k, _ in self.ema.named_buffers()]
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def update(self, model):
        with self.T.no_grad():
            msd = model.state_dict()
            esd = self.ema.state_dict()
            for k in self.param_keys:
                model_v = msd[k].detach()
                ema_v = esd[k]
                esd[k].copy_(ema_v * self.decay + (1. - self.decay) * model_v)
            for k in self.buffer_keys:
                esd[k].copy_(msd[k])


def train_fixmatch(T, device, init, x, y, u_w, u_s, steps=3, mu=2, threshold=0.5, temp=0.5, lambda_u=1.0):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, bn_mlp, init, device)
    no_decay = ['bias', 'bn']
    grouped_parameters = [
        {'params': [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
         'weight_decay': 5e-4},
        {'params': [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)],
         'weight_decay': 0.0}]
    optimizer = T.optim.SGD(grouped_parameters, lr=0.03, momentum=0.9, nesterov=True)
    scheduler = T.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0., np.cos(7. * np.pi * step / (16. * steps))))
    ema_model = ModelEMA(T, model, 0.9)
    losses = []
    for step in range(steps):
        model.train()
        inputs_x, targets_x = T.from_numpy(x[step]).to(device), T.from_numpy(y[step]).to(device)
        inputs_u_w, inputs_u_s = T.from_numpy(u_w[step]).to(device), T.from_numpy(u_s[step]).to(device)
        batch_size = inputs_x.shape[0]
        inputs = interleave(T.cat((inputs_x, inputs_u_w, inputs_u_s)), 2 * mu + 1).to(device)
        logits = model(inputs)
        logits = de_interleave(logits, 2 * mu + 1)
        logits_x = logits[:batch_size]
        logits_u_w, logits_u_s = logits[batch_size:].chunk(2)
        del logits
        Lx = F.cross_entropy(logits_x, targets_x, reduction='mean')
        pseudo_label = T.softmax(logits_u_w.detach() / temp, dim=-1)
        max_probs, targets_u = T.max(pseudo_label, dim=-1)
        mask = max_probs.ge(threshold).float()
        Lu = (F.cross_entropy(logits_u_s, targets_u, reduction='none') * mask).mean()
        loss = Lx + lambda_u * Lu
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema_model.update(model)
        model.zero_grad()
        losses += [loss.item(), Lx.item(), Lu.item(), mask.mean().item()]
    with T.no_grad():
        losses += ema_model.ema(T.from_numpy(x[0]).to(device)).flatten().tolist()
    state = numpy_state(model)
    state.update({"ema." + k: v for k, v in numpy_state(ema_model.ema).items()})
    return losses, state


def test_fixmatch(device):
    rng = np.random.default_rng(0)
    steps, B, mu = 3, 4, 2
    x = rng.standard_normal((steps, B, 6)).astype(np.float32)
    y = rng.integers(0, 3, (steps, B))
    u = rng.standard_normal((steps, mu * B, 6)).astype(np.float32)
    u_w = u + 0.05 * rng.standard_normal(u.shape).astype(np.float32)  # weak: flip-and-shift stand-in
    u_s = u + 0.5 * rng.standard_normal(u.shape).astype(np.float32)   # strong: RandAugment stand-in
    torch.manual_seed(0)
    got = run_both(train_fixmatch, device, numpy_state(bn_mlp(torch)), x, y, u_w, u_s, mu=mu)
    masks = got[0][3:12:4]
    assert 0 < sum(masks) < steps  # the threshold kept some pseudo-labels and dropped others


def mixmatch_interleave_offsets(batch, nu):
    groups = [batch // (nu + 1)] * (nu + 1)
    for x in range(batch - sum(groups)):
        groups[-x - 1] += 1
    offsets = [0]
    for g in groups:
        offsets.append(offsets[-1] + g)
    assert offsets[-1] == batch
    return offsets


def mixmatch_interleave(T, xy, batch):
    """YU1ut/MixMatch-pytorch's interleave of a list of batches."""
    nu = len(xy) - 1
    offsets = mixmatch_interleave_offsets(batch, nu)
    xy = [[v[offsets[p]:offsets[p + 1]] for p in range(nu + 1)] for v in xy]
    for i in range(1, nu + 1):
        xy[0][i], xy[i][i] = xy[i][i], xy[0][i]
    return [T.cat(v, dim=0) for v in xy]


def linear_rampup(current, rampup_length=4):
    if rampup_length == 0:
        return 1.0
    current = np.clip(current / rampup_length, 0.0, 1.0)
    return float(current)


def train_mixmatch(T, device, init, x, y, u1, u2, lams, perms, steps=3, temp=0.5, lambda_u=75., lr=0.02):
    device = device_of(T, device)
    F = T.nn.functional
    num_classes = 3
    model = ported_model(T, mlp, init, device)
    ema_model = ported_model(T, mlp, init, device)
    for param in ema_model.parameters():
        param.detach_()

    class SemiLoss(object):
        def __call__(self, outputs_x, targets_x, outputs_u, targets_u, epoch):
            probs_u = T.softmax(outputs_u, dim=1)
            Lx = -T.mean(T.sum(F.log_softmax(outputs_x, dim=1) * targets_x, dim=1))
            Lu = T.mean((probs_u - targets_u) ** 2)
            return Lx, Lu, lambda_u * linear_rampup(epoch)

    class WeightEMA(object):
        def __init__(self, model, ema_model, alpha=0.999):
            self.model = model
            self.ema_model = ema_model
            self.alpha = alpha
            self.params = list(model.state_dict().values())
            self.ema_params = list(ema_model.state_dict().values())
            self.wd = 0.02 * lr
            for param, ema_param in zip(self.params, self.ema_params):
                param.copy_(ema_param)  # reference: param.data.copy_(ema_param.data); README: .data is raw

        def step(self):
            one_minus_alpha = 1.0 - self.alpha
            for param, ema_param in zip(self.params, self.ema_params):
                if ema_param.dtype == T.float32:
                    ema_param.mul_(self.alpha)
                    ema_param.add_(param * one_minus_alpha)
                    # customized weight decay
                    param.mul_(1 - self.wd)

    train_criterion = SemiLoss()
    optimizer = T.optim.Adam(model.parameters(), lr=lr)
    ema_optimizer = WeightEMA(model, ema_model, alpha=0.9)
    losses = []
    for batch_idx in range(steps):
        model.train()
        inputs_x, targets_x = T.from_numpy(x[batch_idx]), T.from_numpy(y[batch_idx])
        inputs_u, inputs_u2 = T.from_numpy(u1[batch_idx]), T.from_numpy(u2[batch_idx])
        batch_size = inputs_x.size(0)
        targets_x = T.zeros(batch_size, num_classes).scatter_(1, targets_x.view(-1, 1).long(), 1)
        inputs_x, targets_x = inputs_x.to(device), targets_x.to(device, non_blocking=True)
        inputs_u, inputs_u2 = inputs_u.to(device), inputs_u2.to(device)
        with T.no_grad():
            outputs_u = model(inputs_u)
            outputs_u2 = model(inputs_u2)
            p = (T.softmax(outputs_u, dim=1) + T.softmax(outputs_u2, dim=1)) / 2
            pt = p ** (1 / temp)
            targets_u = pt / pt.sum(dim=1, keepdim=True)
            targets_u = targets_u.detach()
        all_inputs = T.cat([inputs_x, inputs_u, inputs_u2], dim=0)
        all_targets = T.cat([targets_x, targets_u, targets_u], dim=0)
        l = lams[batch_idx]  # np.random.beta(alpha, alpha)
        l = max(l, 1 - l)
        idx = T.from_numpy(perms[batch_idx])  # torch.randperm(all_inputs.size(0))
        input_a, input_b = all_inputs, all_inputs[idx]
        target_a, target_b = all_targets, all_targets[idx]
        mixed_input = l * input_a + (1 - l) * input_b
        mixed_target = l * target_a + (1 - l) * target_b
        mixed_input = list(T.split(mixed_input, batch_size))
        mixed_input = mixmatch_interleave(T, mixed_input, batch_size)
        logits = [model(mixed_input[0])]
        for input in mixed_input[1:]:
            logits.append(model(input))
        logits = mixmatch_interleave(T, logits, batch_size)
        logits_x = logits[0]
        logits_u = T.cat(logits[1:], dim=0)
        Lx, Lu, w = train_criterion(logits_x, mixed_target[:batch_size], logits_u, mixed_target[batch_size:],
                                    batch_idx + batch_idx / steps)
        loss = Lx + w * Lu
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema_optimizer.step()
        losses += [loss.item(), Lx.item(), Lu.item(), w]
    state = numpy_state(model)
    state.update({"ema." + k: v for k, v in numpy_state(ema_model).items()})
    return losses, state


def test_mixmatch(device):
    rng = np.random.default_rng(1)
    steps, B = 3, 4
    x = rng.standard_normal((steps, B, 6)).astype(np.float32)
    y = rng.integers(0, 3, (steps, B))
    u = rng.standard_normal((steps, B, 6)).astype(np.float32)
    u1 = u + 0.1 * rng.standard_normal(u.shape).astype(np.float32)
    u2 = u + 0.1 * rng.standard_normal(u.shape).astype(np.float32)
    lams = rng.beta(0.75, 0.75, steps)
    perms = np.stack([rng.permutation(3 * B) for _ in range(steps)])
    torch.manual_seed(0)
    run_both(train_mixmatch, device, numpy_state(mlp(torch)), x, y, u1, u2, lams, perms)


NO_LABEL = -1


def sigmoid_rampup(current, rampup_length):
    """Exponential rampup from https://arxiv.org/abs/1610.02242 (CuriousAI/mean-teacher)."""
    if rampup_length == 0:
        return 1.0
    current = np.clip(current, 0.0, rampup_length)
    phase = 1.0 - current / rampup_length
    return float(np.exp(-5.0 * phase * phase))


def train_mean_teacher(T, device, init, ema_init, x, y, noise1, noise2, steps=4, ema_decay=0.95):
    device = device_of(T, device)
    F = T.nn.functional
    Variable = T.autograd.Variable
    model = ported_model(T, mlp, init, device)
    ema_model = ported_model(T, mlp, ema_init, device)
    for param in ema_model.parameters():
        param.detach_()

    def softmax_mse_loss(input_logits, target_logits):
        assert input_logits.size() == target_logits.size()
        input_softmax = F.softmax(input_logits, dim=1)
        target_softmax = F.softmax(target_logits, dim=1)
        num_classes = input_logits.size()[1]
        return F.mse_loss(input_softmax, target_softmax, size_average=False) / num_classes

    def update_ema_variables(model, ema_model, alpha, global_step):
        # Use the true average until the exponential average is more correct
        alpha = min(1 - 1 / (global_step + 1), alpha)
        for ema_param, param in zip(ema_model.parameters(), model.parameters()):
            if T is torch:
                ema_param.data.mul_(alpha).add_(param.data, alpha=1 - alpha)
            else:  # README: .data is the raw array
                with T.no_grad():
                    ema_param.mul_(alpha).add_(param, alpha=1 - alpha)

    class_criterion = T.nn.CrossEntropyLoss(size_average=False, ignore_index=NO_LABEL).to(device)
    consistency_criterion = softmax_mse_loss
    optimizer = T.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=2e-4, nesterov=True)
    global_step, losses = 0, []
    model.train()
    ema_model.train()
    for i in range(steps):
        input_var = Variable(T.from_numpy(x + noise1[i]).to(device))
        ema_input_var = Variable(T.from_numpy(x + noise2[i]).to(device))
        target_var = Variable(T.from_numpy(y).to(device))
        minibatch_size = len(target_var)
        labeled_minibatch_size = target_var.ne(NO_LABEL).sum()  # reference: target_var.data.ne(...)
        assert labeled_minibatch_size > 0
        ema_model_out = ema_model(ema_input_var)
        model_out = model(input_var)
        logit1, ema_logit = model_out, ema_model_out
        ema_logit = Variable(ema_logit.detach(), requires_grad=False)  # reference: ema_logit.detach().data
        class_loss = class_criterion(logit1, target_var) / minibatch_size
        ema_class_loss = class_criterion(ema_logit, target_var) / minibatch_size
        consistency_weight = 10.0 * sigmoid_rampup(i, 3)
        consistency_loss = consistency_weight * consistency_criterion(logit1, ema_logit) / minibatch_size
        loss = class_loss + consistency_loss
        assert not (np.isnan(loss.item()) or loss.item() > 1e5), 'Loss explosion: {}'.format(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        global_step += 1
        update_ema_variables(model, ema_model, ema_decay, global_step)
        losses += [loss.item(), ema_class_loss.item(), consistency_loss.item(), labeled_minibatch_size.item()]
    state = numpy_state(model)
    state.update({"ema." + k: v for k, v in numpy_state(ema_model).items()})
    return losses, state


@pytest.mark.filterwarnings("ignore:size_average and reduce")
def test_mean_teacher(device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    y = np.where(rng.random(8) < 0.5, NO_LABEL, rng.integers(0, 3, 8))
    y[0] = 1
    noise1 = 0.1 * rng.standard_normal((4, 8, 6)).astype(np.float32)
    noise2 = 0.1 * rng.standard_normal((4, 8, 6)).astype(np.float32)
    torch.manual_seed(0)
    init, ema_init = numpy_state(mlp(torch)), numpy_state(mlp(torch))
    run_both(train_mean_teacher, device, init, ema_init, x, y, noise1, noise2)


# ---- 2. Few-shot and metric learning: Prototypical, Matching and Relation Networks --------------------

def euclidean_dist(T, x, y):
    """jakesnell/prototypical-networks: x (N, D), y (M, D) -> (N, M) squared distances."""
    n = x.size(0)
    m = y.size(0)
    d = x.size(1)
    if d != y.size(1):
        raise Exception
    x = x.unsqueeze(1).expand(n, m, d)
    y = y.unsqueeze(0).expand(n, m, d)
    return T.pow(x - y, 2).sum(2)


def protonet_loss(T, encoder, xs, xq):
    """jakesnell/prototypical-networks' Protonet.loss: xs (n_class, n_support, ...), xq (n_class, n_query, ...)."""
    F = T.nn.functional
    n_class = xs.size(0)
    assert xq.size(0) == n_class
    n_support = xs.size(1)
    n_query = xq.size(1)
    target_inds = T.arange(0, n_class).view(n_class, 1, 1).expand(n_class, n_query, 1).long()
    target_inds = T.autograd.Variable(target_inds, requires_grad=False).to(xs.device)
    x = T.cat([xs.view(n_class * n_support, *xs.size()[2:]),
               xq.view(n_class * n_query, *xq.size()[2:])], 0)
    z = encoder.forward(x)
    z_dim = z.size(-1)
    z_proto = z[:n_class * n_support].view(n_class, n_support, z_dim).mean(1)
    zq = z[n_class * n_support:]
    dists = euclidean_dist(T, zq, z_proto)
    log_p_y = F.log_softmax(-dists, dim=1).view(n_class, n_query, -1)
    loss_val = -log_p_y.gather(2, target_inds).squeeze().view(-1).mean()
    _, y_hat = log_p_y.max(2)
    acc_val = T.eq(y_hat, target_inds.squeeze()).float().mean()
    return loss_val, {'loss': loss_val.item(), 'acc': acc_val.item()}


def prototypical_loss(T, input, target, n_support):
    """orobix/Prototypical-Networks-for-Few-shot-Learning-PyTorch: classes found by torch.unique."""
    F = T.nn.functional
    target_cpu = target.to('cpu')
    input_cpu = input.to('cpu')

    def supp_idxs(c):
        return target_cpu.eq(c).nonzero()[:n_support].squeeze(1)

    classes = T.unique(target_cpu)
    n_classes = len(classes)
    n_query = target_cpu.eq(classes[0].item()).sum().item() - n_support
    support_idxs = list(map(supp_idxs, classes))
    prototypes = T.stack([input_cpu[idx_list].mean(0) for idx_list in support_idxs])
    query_idxs = T.stack(list(map(lambda c: target_cpu.eq(c).nonzero()[n_support:], classes))).view(-1)
    query_samples = input.to('cpu')[query_idxs]
    dists = euclidean_dist(T, query_samples, prototypes)
    log_p_y = F.log_softmax(-dists, dim=1).view(n_classes, n_query, -1)
    target_inds = T.arange(0, n_classes)
    target_inds = target_inds.view(n_classes, 1, 1)
    target_inds = target_inds.expand(n_classes, n_query, 1).long()
    loss_val = -log_p_y.gather(2, target_inds).squeeze().view(-1).mean()
    _, y_hat = log_p_y.max(2)
    acc_val = y_hat.eq(target_inds.squeeze(2)).float().mean()
    return loss_val, acc_val


def protonet_encoder(T):
    nn = T.nn  # no bias on the embedding: distances ignore a shift, so its true gradient is zero
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 4, bias=False))


def train_protonet(T, device, init, data, episodes, shuffles, n_way=3, n_support=2, n_query=2):
    device = device_of(T, device)
    encoder = ported_model(T, protonet_encoder, init, device)
    optimizer = T.optim.Adam(encoder.parameters(), lr=0.01)
    scheduler = T.optim.lr_scheduler.StepLR(optimizer, gamma=0.5, step_size=2)
    losses = []
    for ep, shuffle in zip(episodes, shuffles):
        encoder.train()
        sample = T.from_numpy(data[ep]).to(device)  # (n_way, n_support + n_query, dim)
        xs, xq = sample[:, :n_support].contiguous(), sample[:, n_support:].contiguous()  # the loader's two
        optimizer.zero_grad()
        loss, output = protonet_loss(T, encoder, xs, xq)
        loss.backward()
        optimizer.step()
        # orobix's sampler: a flat batch with labels, in shuffled order
        x = sample.view(-1, sample.size(-1))[T.from_numpy(shuffle)]
        y = T.arange(n_way).repeat_interleave(n_support + n_query)[T.from_numpy(shuffle)].to(device)
        optimizer.zero_grad()
        loss2, acc = prototypical_loss(T, encoder(x), target=y, n_support=n_support)
        loss2.backward()
        optimizer.step()
        scheduler.step()
        losses += [output['loss'], output['acc'], loss2.item(), acc.item()]
    return losses, numpy_state(encoder)


def test_prototypical_networks(device):
    rng = np.random.default_rng(3)
    data = (rng.standard_normal((5, 4, 6)) + 2 * rng.standard_normal((5, 1, 6))).astype(np.float32)
    episodes = [rng.choice(5, 3, replace=False) for _ in range(3)]  # n_way classes of 5, each episode
    shuffles = [rng.permutation(12) for _ in range(3)]
    torch.manual_seed(0)
    run_both(train_protonet, device, numpy_state(protonet_encoder(torch)), data, episodes, shuffles)


def matching_net(T):
    """gitabcworld/MatchingNetworks' DistanceNetwork and AttentionalClassify around a small encoder."""
    nn = T.nn

    class DistanceNetwork(nn.Module):
        def forward(self, support_set, input_image):
            eps = 1e-10
            similarities = []
            for support_image in support_set:
                sum_support = T.sum(T.pow(support_image, 2), 1)
                support_magnitude = sum_support.clamp(eps, float("inf")).rsqrt()
                dot_product = input_image.unsqueeze(1).bmm(support_image.unsqueeze(2)).squeeze()
                cosine_similarity = dot_product * support_magnitude
                similarities.append(cosine_similarity)
            similarities = T.stack(similarities)
            return similarities

    class AttentionalClassify(nn.Module):
        def forward(self, similarities, support_set_y):
            softmax = nn.Softmax(dim=1)
            softmax_similarities = softmax(similarities)
            preds = softmax_similarities.unsqueeze(1).bmm(support_set_y).squeeze()
            return preds

    class MatchingNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.g = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 5))
            self.dn = DistanceNetwork()
            self.classify = AttentionalClassify()

        def forward(self, support_set_images, support_set_labels_one_hot, target_image, target_label):
            encoded_images = []
            for i in np.arange(support_set_images.size(1)):
                gen_encode = self.g(support_set_images[:, i, :])
                encoded_images.append(gen_encode)
            gen_encode = self.g(target_image)
            encoded_images.append(gen_encode)
            outputs = T.stack(encoded_images)
            similarities = self.dn(support_set=outputs[:-1], input_image=outputs[-1])
            similarities = similarities.t()
            preds = self.classify(similarities, support_set_y=support_set_labels_one_hot)
            values, indices = preds.max(1)
            accuracy = T.mean((indices.squeeze() == target_label).float())
            crossentropy_loss = T.nn.functional.cross_entropy(preds, target_label.long())
            return accuracy, crossentropy_loss

    return MatchingNetwork()


def train_matching(T, device, init, support, support_y, target, target_y, steps=3, n_way=3):
    device = device_of(T, device)
    model = ported_model(T, matching_net, init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    losses = []
    for step in range(steps):
        x_support_set = T.from_numpy(support[step]).to(device)
        y_support_set = T.from_numpy(support_y[step]).to(device)
        x_target, y_target = T.from_numpy(target[step]).to(device), T.from_numpy(target_y[step]).to(device)
        # convert to one hot encoding
        y_support_set = y_support_set.unsqueeze(2)
        sequence_length = y_support_set.size()[1]
        batch_size = y_support_set.size()[0]
        y_support_set_one_hot = T.FloatTensor(batch_size, sequence_length, n_way).zero_() if T is torch \
            else T.zeros(batch_size, sequence_length, n_way)  # README: no typed constructors
        y_support_set_one_hot = y_support_set_one_hot.to(device).scatter_(2, y_support_set, 1)
        acc, c_loss = model(x_support_set, y_support_set_one_hot, x_target, y_target)
        optimizer.zero_grad()
        c_loss.backward()
        optimizer.step()
        losses += [c_loss.item(), acc.item()]
    return losses, numpy_state(model)


def test_matching_networks(device):
    rng = np.random.default_rng(4)
    steps, B, n_way, shots = 3, 4, 3, 2
    support = rng.standard_normal((steps, B, n_way * shots, 6)).astype(np.float32)
    support_y = np.tile(np.repeat(np.arange(n_way), shots), (steps, B, 1))
    target = rng.standard_normal((steps, B, 6)).astype(np.float32)
    target_y = rng.integers(0, n_way, (steps, B))
    torch.manual_seed(0)
    run_both(train_matching, device, numpy_state(matching_net(torch)), support, support_y, target, target_y)


def relation_nets(T, feature_dim=4):
    """floodsung/LearningToCompare_FSL's CNNEncoder and RelationNetwork, shrunk (no bias before BN)."""
    nn = T.nn
    F = T.nn.functional

    class CNNEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Sequential(nn.Conv2d(1, feature_dim, kernel_size=3, padding=1, bias=False),
                                        nn.BatchNorm2d(feature_dim, momentum=1, affine=True), nn.ReLU(),
                                        nn.MaxPool2d(2))

        def forward(self, x):
            return self.layer1(x)

    class RelationNetwork(nn.Module):
        def __init__(self, input_size=feature_dim * 2 * 2, hidden_size=8):
            super().__init__()
            self.layer1 = nn.Sequential(nn.Conv2d(feature_dim * 2, feature_dim, kernel_size=3, padding=1,
                                                  bias=False),
                                        nn.BatchNorm2d(feature_dim, momentum=1, affine=True), nn.ReLU(),
                                        nn.MaxPool2d(2))
            self.fc1 = nn.Linear(input_size, hidden_size)
            self.fc2 = nn.Linear(hidden_size, 1)

        def forward(self, x):
            out = self.layer1(x)
            out = out.view(out.size(0), -1)
            out = F.relu(self.fc1(out))
            out = F.sigmoid(self.fc2(out))
            return out

    return nn.ModuleDict({"feature_encoder": CNNEncoder(), "relation_network": RelationNetwork()})


def train_relation(T, device, init, samples_np, batches_np, batch_labels_np, episodes=3, class_num=3,
                   sample_num_per_class=2, batch_num_per_class=2, feature_dim=4):
    device = device_of(T, device)
    nets = ported_model(T, relation_nets, init, device)
    feature_encoder, relation_network = nets["feature_encoder"], nets["relation_network"]
    feature_encoder_optim = T.optim.Adam(feature_encoder.parameters(), lr=0.01)
    feature_encoder_scheduler = T.optim.lr_scheduler.StepLR(feature_encoder_optim, step_size=2, gamma=0.5)
    relation_network_optim = T.optim.Adam(relation_network.parameters(), lr=0.01)
    relation_network_scheduler = T.optim.lr_scheduler.StepLR(relation_network_optim, step_size=2, gamma=0.5)
    losses = []
    for episode in range(episodes):
        samples = T.from_numpy(samples_np[episode]).to(device)
        batches = T.from_numpy(batches_np[episode]).to(device)
        batch_labels = T.from_numpy(batch_labels_np[episode])
        sample_features = feature_encoder(samples)
        sample_features = sample_features.view(class_num, sample_num_per_class, feature_dim, 4, 4)
        sample_features = T.sum(sample_features, 1).squeeze(1)
        batch_features = feature_encoder(batches)
        sample_features_ext = sample_features.unsqueeze(0).repeat(batch_num_per_class * class_num, 1, 1, 1, 1)
        batch_features_ext = batch_features.unsqueeze(0).repeat(class_num, 1, 1, 1, 1)
        batch_features_ext = T.transpose(batch_features_ext, 0, 1)
        relation_pairs = T.cat((sample_features_ext, batch_features_ext), 2).view(-1, feature_dim * 2, 4, 4)
        relations = relation_network(relation_pairs).view(-1, class_num)
        mse = T.nn.MSELoss().to(device)
        one_hot_labels = T.zeros(batch_num_per_class * class_num, class_num).scatter_(
            1, batch_labels.view(-1, 1), 1).to(device)
        loss = mse(relations, one_hot_labels)
        feature_encoder.zero_grad()
        relation_network.zero_grad()
        loss.backward()
        T.nn.utils.clip_grad_norm_(feature_encoder.parameters(), 0.5)
        T.nn.utils.clip_grad_norm_(relation_network.parameters(), 0.5)
        feature_encoder_optim.step()
        relation_network_optim.step()
        feature_encoder_scheduler.step()
        relation_network_scheduler.step()
        losses.append(loss.item())
    return losses, numpy_state(nets)


def test_relation_networks(device):
    rng = np.random.default_rng(5)
    samples = rng.standard_normal((3, 6, 1, 8, 8)).astype(np.float32)
    batches = rng.standard_normal((3, 6, 1, 8, 8)).astype(np.float32)
    batch_labels = np.stack([rng.permutation(np.repeat(np.arange(3), 2)) for _ in range(3)])
    torch.manual_seed(0)
    run_both(train_relation, device, numpy_state(relation_nets(torch)), samples, batches, batch_labels)


# ---- 3. Continual learning: EWC, experience replay (+ DER++), LwF, A-GEM -------------------------------

def ewc_fisher(T, model, dataset):
    """Diagonal Fisher (moskomule/ewc.pytorch, modernised: p.grad.detach() instead of .data)."""
    F = T.nn.functional
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    precision_matrices = {}
    for n, p in copy.deepcopy(params).items():
        precision_matrices[n] = T.zeros_like(p).detach()
    model.eval()
    for input in dataset:
        model.zero_grad()
        output = model(input.unsqueeze(0)).view(1, -1)
        label = output.max(1)[1].view(-1)
        loss = F.nll_loss(F.log_softmax(output, dim=1), label)
        loss.backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                precision_matrices[n] += p.grad.detach() ** 2 / len(dataset)
    means = {n: p.detach().clone() for n, p in params.items()}
    return precision_matrices, means


def ewc_penalty(model, fisher, means):
    loss = 0
    for n, p in model.named_parameters():
        if n in fisher:
            _loss = fisher[n] * (p - means[n]) ** 2
            loss += _loss.sum()
    return loss


def train_ewc(T, device, init, x1, y1, x2, y2, steps=3, importance=100.0):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, mlp, init, device)
    optimizer = T.optim.SGD(params=model.parameters(), lr=0.1)
    x1, y1, x2, y2 = (T.from_numpy(a).to(device) for a in (x1, y1, x2, y2))
    losses = []
    for _ in range(steps):  # task 1
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x1), y1)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    fisher, means = ewc_fisher(T, model, x1)
    for _ in range(steps):  # task 2, anchored to task 1
        model.train()
        optimizer.zero_grad()
        ce = F.cross_entropy(model(x2), y2)
        penalty = ewc_penalty(model, fisher, means)
        loss = ce + importance * penalty
        loss.backward()
        optimizer.step()
        losses += [ce.item(), penalty.item()]
    state = numpy_state(model)
    state.update({"fisher." + n: f.cpu().numpy() for n, f in fisher.items()})
    return losses, state


def test_ewc(device):
    rng = np.random.default_rng(6)
    x1, x2 = rng.standard_normal((2, 6, 6)).astype(np.float32)
    y1, y2 = rng.integers(0, 3, (2, 6))
    torch.manual_seed(0)
    run_both(train_ewc, device, numpy_state(mlp(torch)), x1, y1, x2, y2)


def reservoir(num_seen_examples, buffer_size, rng):
    """aimagelab/mammoth's reservoir sampling (its np.random draw, here a seeded Generator)."""
    if num_seen_examples < buffer_size:
        return num_seen_examples
    rand = rng.integers(0, num_seen_examples + 1)
    if rand < buffer_size:
        return rand
    return -1


class Buffer:
    """mammoth's Buffer: preallocated tensors filled by reservoir sampling, logits kept for DER++."""

    def __init__(self, T, buffer_size, device, rng):
        self.T, self.buffer_size, self.device, self.rng = T, buffer_size, device, rng
        self.num_seen_examples = 0
        self.attributes = ['examples', 'labels', 'logits']

    def init_tensors(self, examples, labels, logits):
        for attr_str in self.attributes:
            attr = eval(attr_str)
            if attr is not None and not hasattr(self, attr_str):
                typ = self.T.int64 if attr_str.endswith('els') else self.T.float32
                setattr(self, attr_str, self.T.zeros((self.buffer_size, *attr.shape[1:]), dtype=typ,
                                                     device=self.device))

    def add_data(self, examples, labels=None, logits=None):
        if not hasattr(self, 'examples'):
            self.init_tensors(examples, labels, logits)
        for i in range(examples.shape[0]):
            index = reservoir(self.num_seen_examples, self.buffer_size, self.rng)
            self.num_seen_examples += 1
            if index >= 0:
                self.examples[index] = examples[i].to(self.device)
                if labels is not None:
                    self.labels[index] = labels[i].to(self.device)
                if logits is not None:
                    self.logits[index] = logits[i].to(self.device)

    def get_data(self, size):
        num_avail = min(self.num_seen_examples, self.examples.shape[0])
        if size > min(num_avail, self.examples.shape[0]):
            size = min(num_avail, self.examples.shape[0])
        choice = self.rng.choice(num_avail, size=size, replace=False)
        return tuple(getattr(self, a)[choice] for a in self.attributes)

    def is_empty(self):
        return self.num_seen_examples == 0


def train_replay(T, device, init, xs, ys, buffer_size=5, minibatch_size=3, alpha=0.3, beta=0.5):
    device = device_of(T, device)
    F = T.nn.functional
    net = ported_model(T, mlp, init, device)
    opt = T.optim.SGD(net.parameters(), lr=0.1)
    buffer = Buffer(T, buffer_size, device, np.random.default_rng(0))  # NumPy draws: the same for both
    losses = []
    for inputs, labels in zip(xs, ys):  # DER++'s observe
        inputs, labels = T.from_numpy(inputs).to(device), T.from_numpy(labels).to(device)
        not_aug_inputs = inputs
        opt.zero_grad()
        outputs = net(inputs)
        loss = F.cross_entropy(outputs, labels)
        if not buffer.is_empty():
            buf_inputs, _, buf_logits = buffer.get_data(minibatch_size)
            buf_outputs = net(buf_inputs)
            loss_mse = alpha * F.mse_loss(buf_outputs, buf_logits)
            loss += loss_mse
            buf_inputs, buf_labels, _ = buffer.get_data(minibatch_size)
            buf_outputs = net(buf_inputs)
            loss_ce = beta * F.cross_entropy(buf_outputs, buf_labels)
            loss += loss_ce
        loss.backward()
        opt.step()
        # reference: logits=outputs.data (README: .data is the raw array)
        buffer.add_data(examples=not_aug_inputs, labels=labels, logits=outputs.detach())
        losses.append(loss.item())
    state = numpy_state(net)
    state.update({"buffer." + a: getattr(buffer, a).cpu().numpy() for a in buffer.attributes})
    return losses, state


def test_experience_replay(device):
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((4, 3, 6)).astype(np.float32)
    ys = rng.integers(0, 3, (4, 3))
    torch.manual_seed(0)
    run_both(train_replay, device, numpy_state(mlp(torch)), xs, ys)


def multihead(T, heads=(2, 2)):
    nn = T.nn

    class MultiHead(nn.Module):  # FACIL's LLL_Net: a shared body and one head per task
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(nn.Linear(6, 10), nn.ReLU())
            self.heads = nn.ModuleList([nn.Linear(10, n) for n in heads])
            self.task_offset = [0] + list(np.cumsum(heads)[:-1])

        def forward(self, x):
            x = self.model(x)
            return [head(x) for head in self.heads]

    return MultiHead()


def train_lwf(T, device, init, x1, y1, x2, y2, steps=3, lamb=1.0, temp=2.0):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, multihead, init, device)

    def cross_entropy(outputs, targets, exp=1.0, size_average=True, eps=1e-5):
        """FACIL's LwF: cross-entropy between softened outputs and targets."""
        out = F.softmax(outputs, dim=1)
        tar = F.softmax(targets, dim=1)
        if exp != 1:
            out = out.pow(exp)
            out = out / out.sum(1).view(-1, 1).expand_as(out)
            tar = tar.pow(exp)
            tar = tar / tar.sum(1).view(-1, 1).expand_as(tar)
        out = out + eps / out.size(1)
        out = out / out.sum(1).view(-1, 1).expand_as(out)
        ce = -(tar * out.log()).sum(1)
        if size_average:
            ce = ce.mean()
        return ce

    losses, model_old = [], None
    for t, (x, y) in enumerate(((x1, y1), (x2, y2))):
        x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
        optimizer = T.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-3, momentum=0.9)
        for _ in range(steps):
            model.train()
            targets_old = None
            if t > 0:
                targets_old = model_old(x)
            outputs = model(x)
            loss = 0
            if t > 0:
                loss += lamb * cross_entropy(T.cat(outputs[:t], dim=1), T.cat(targets_old[:t], dim=1),
                                             exp=1.0 / temp)
            loss = loss + F.cross_entropy(outputs[t], y - model.task_offset[t])
            optimizer.zero_grad()
            loss.backward()
            T.nn.utils.clip_grad_norm_(model.parameters(), 10000)
            optimizer.step()
            losses.append(loss.item())
        model_old = copy.deepcopy(model)
        model_old.eval()
        for param in model_old.parameters():  # freeze_all
            param.requires_grad = False
    return losses, numpy_state(model)


def test_lwf(device):
    rng = np.random.default_rng(8)
    x1, x2 = rng.standard_normal((2, 5, 6)).astype(np.float32)
    y1, y2 = rng.integers(0, 2, 5), rng.integers(2, 4, 5)
    torch.manual_seed(0)
    run_both(train_lwf, device, numpy_state(multihead(torch)), x1, y1, x2, y2)


def store_grad(params, grads, grad_dims):
    """mammoth's A-GEM helpers: gradients into one flat vector at numel offsets."""
    grads.fill_(0.0)
    count = 0
    for param in params():
        if param.grad is not None:
            begin = 0 if count == 0 else sum(grad_dims[:count])
            end = np.sum(grad_dims[:count + 1])
            grads[begin: end].copy_(param.grad.view(-1))  # reference: param.grad.data.view(-1)
        count += 1


def overwrite_grad(params, newgrad, grad_dims):
    count = 0
    for param in params():
        if param.grad is not None:
            begin = 0 if count == 0 else sum(grad_dims[:count])
            end = sum(grad_dims[:count + 1])
            this_grad = newgrad[begin: end].contiguous().view(param.grad.size())
            param.grad.copy_(this_grad)  # reference: param.grad.data.copy_(this_grad)
        count += 1


def project(T, gxy, ger):
    corr = T.dot(gxy, ger) / T.dot(ger, ger)
    return gxy - corr * ger


def train_agem(T, device, init, xs, ys, buf_x, buf_y, steps=3):
    device = device_of(T, device)
    F = T.nn.functional
    net = ported_model(T, mlp, init, device)
    opt = T.optim.SGD(net.parameters(), lr=0.2)
    grad_dims = [pp.numel() for pp in net.parameters()]  # reference: pp.data.numel()
    grad_xy = T.Tensor(np.sum(grad_dims)).to(device)
    grad_er = T.Tensor(np.sum(grad_dims)).to(device)
    buf_inputs, buf_labels = T.from_numpy(buf_x).to(device), T.from_numpy(buf_y).to(device)
    losses = []
    for inputs, labels in zip(xs, ys):
        inputs, labels = T.from_numpy(inputs).to(device), T.from_numpy(labels).to(device)
        net.zero_grad()
        p = net.forward(inputs)
        loss = F.cross_entropy(p, labels)
        loss.backward()
        store_grad(net.parameters, grad_xy, grad_dims)
        net.zero_grad()
        buf_outputs = net.forward(buf_inputs)
        penalty = F.cross_entropy(buf_outputs, buf_labels)
        penalty.backward()
        store_grad(net.parameters, grad_er, grad_dims)
        dot_prod = T.dot(grad_xy, grad_er)
        if dot_prod.item() < 0:
            g_tilde = project(T, gxy=grad_xy, ger=grad_er)
            overwrite_grad(net.parameters, g_tilde, grad_dims)
        else:
            overwrite_grad(net.parameters, grad_xy, grad_dims)
        opt.step()
        # the same projection as the flat vector the brief's variant builds with torch.cat
        flat = T.cat([p.grad.view(-1) for p in net.parameters()])
        offset = 0
        for p in net.parameters():
            p.grad.view(-1).copy_(flat[offset: offset + p.numel()] * 2.0)
            offset += p.numel()
        losses += [loss.item(), penalty.item(), dot_prod.item(), flat.norm().item(),
                   sum(p.grad.norm() ** 2 for p in net.parameters()).item()]
    return losses, numpy_state(net)


def test_agem(device):
    rng = np.random.default_rng(9)
    xs = rng.standard_normal((3, 4, 6)).astype(np.float32)
    ys = rng.integers(0, 3, (3, 4))
    buf_x, buf_y = xs[0], (ys[0] + 1) % 3  # the same inputs, other labels: a conflicting gradient
    torch.manual_seed(0)
    got = run_both(train_agem, device, numpy_state(mlp(torch)), xs, ys, buf_x, buf_y)
    assert min(got[0][2::5]) < 0  # the projection ran


# ---- 4. Domain adaptation and robustness: DANN, FGSM, PGD, TRADES --------------------------------------

def dann(T):
    """fungtion/DANN's CNNModel, shrunk to an MLP, with its ReverseLayerF."""
    nn = T.nn

    class ReverseLayerF(T.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha):
            ctx.alpha = alpha
            return x * 1.0  # README: raw arrays; reference: x.view_as(x)

        @staticmethod
        def backward(ctx, grad_output):
            output = -grad_output * ctx.alpha  # README: raw arrays; reference: grad_output.neg() * ctx.alpha
            return output, None

    class CNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.feature = nn.Sequential()
            self.feature.add_module('f_fc1', nn.Linear(6, 10))
            self.feature.add_module('f_relu1', nn.ReLU(True))
            self.class_classifier = nn.Sequential()
            self.class_classifier.add_module('c_fc1', nn.Linear(10, 3))
            self.class_classifier.add_module('c_softmax', nn.LogSoftmax(dim=1))
            self.domain_classifier = nn.Sequential()
            self.domain_classifier.add_module('d_fc1', nn.Linear(10, 8))
            self.domain_classifier.add_module('d_relu1', nn.ReLU(True))
            self.domain_classifier.add_module('d_fc2', nn.Linear(8, 2))
            self.domain_classifier.add_module('d_softmax', nn.LogSoftmax(dim=1))

        def forward(self, input_data, alpha):
            feature = self.feature(input_data)
            feature = feature.view(-1, 10)
            reverse_feature = ReverseLayerF.apply(feature, alpha)
            class_output = self.class_classifier(feature)
            domain_output = self.domain_classifier(reverse_feature)
            return class_output, domain_output

    return CNNModel()


def train_dann(T, device, init, xs, ys, xt, n_epoch=2):
    device = device_of(T, device)
    my_net = ported_model(T, dann, init, device)
    optimizer = T.optim.Adam(my_net.parameters(), lr=1e-2)
    loss_class = T.nn.NLLLoss()
    loss_domain = T.nn.NLLLoss()
    for p in my_net.parameters():
        p.requires_grad = True
    len_dataloader, losses = len(xs), []
    for epoch in range(n_epoch):
        for i in range(len_dataloader):
            p = float(i + epoch * len_dataloader) / n_epoch / len_dataloader
            alpha = 2. / (1. + np.exp(-10 * p)) - 1  # an np.float64, as in the reference
            my_net.zero_grad()
            s_img, s_label = T.from_numpy(xs[i]).to(device), T.from_numpy(ys[i]).to(device)
            batch_size = len(s_label)
            domain_label = T.zeros(batch_size).long().to(device)
            class_output, domain_output = my_net(input_data=s_img, alpha=alpha)
            err_s_label = loss_class(class_output, s_label)
            err_s_domain = loss_domain(domain_output, domain_label)
            t_img = T.from_numpy(xt[i]).to(device)
            domain_label = T.ones(len(t_img)).long().to(device)
            _, domain_output = my_net(input_data=t_img, alpha=alpha)
            err_t_domain = loss_domain(domain_output, domain_label)
            err = err_t_domain + err_s_domain + err_s_label
            err.backward()
            optimizer.step()
            losses += [err_s_label.item(), err_s_domain.item(), err_t_domain.item()]
    state = numpy_state(my_net)
    assert all(p.grad.dtype == p.dtype for p in my_net.parameters())
    return losses, state


def test_dann_gradient_reversal(device):
    rng = np.random.default_rng(10)
    xs = rng.standard_normal((2, 4, 6)).astype(np.float32)
    ys = rng.integers(0, 3, (2, 4))
    xt = (rng.standard_normal((2, 4, 6)) + 1.0).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_dann, device, numpy_state(dann(torch)), xs, ys, xt)


def fgsm(T, model, X, y, epsilon):
    """Wong et al.'s "Fast is better than free" FGSM on a zero delta."""
    delta = T.zeros_like(X, requires_grad=True)
    loss = T.nn.CrossEntropyLoss()(model(X + delta), y)
    loss.backward()
    return epsilon * delta.grad.detach().sign()


def pgd_attack(T, model, images, labels, eps, alpha, iters):
    loss = T.nn.CrossEntropyLoss()
    ori_images = images.clone().detach()  # reference: images.data (README: .data is the raw array)
    for i in range(iters):
        images.requires_grad = True
        outputs = model(images)
        model.zero_grad()
        cost = loss(outputs, labels)
        grad = T.autograd.grad(cost, images)[0]
        adv_images = images + alpha * grad.sign()
        eta = T.clamp(adv_images - ori_images, min=-eps, max=eps)
        images = T.clamp(ori_images + eta, min=0, max=1).detach_()
    return images


def trades_loss(T, model, x_natural, y, optimizer, noise, step_size=0.01, epsilon=0.03, perturb_steps=3,
                beta=6.0):
    """yaodongyu/TRADES' trades_loss (its random start passed in as `noise`)."""
    F = T.nn.functional
    criterion_kl = T.nn.KLDivLoss(size_average=False)
    model.eval()
    batch_size = len(x_natural)
    x_adv = x_natural.detach() + 0.001 * noise.detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with T.enable_grad():
            loss_kl = criterion_kl(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x_natural), dim=1))
        grad = T.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * T.sign(grad.detach())
        x_adv = T.min(T.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = T.clamp(x_adv, 0.0, 1.0)
    model.train()
    x_adv = T.autograd.Variable(T.clamp(x_adv, 0.0, 1.0), requires_grad=False)
    optimizer.zero_grad()
    logits = model(x_natural)
    loss_natural = F.cross_entropy(logits, y)
    loss_robust = (1.0 / batch_size) * criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                                    F.softmax(model(x_natural), dim=1))
    loss_batchmean = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x_natural), dim=1),
                              reduction='batchmean')
    loss = loss_natural + beta * loss_robust
    return loss, loss_robust, loss_batchmean, x_adv


def train_adversarial(T, device, init, x, y, noise, steps=2, eps=0.1):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, mlp, init, device)
    opt = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y, noise = T.from_numpy(x).to(device), T.from_numpy(y).to(device), T.from_numpy(noise).to(device)
    losses = []
    for step in range(steps):
        # FGSM training (fast adversarial training, its random init passed in)
        delta = fgsm(T, model, T.clamp(x + eps * noise[step], 0, 1), y, eps)
        x_adv = T.clamp(T.clamp(x + delta, x - eps, x + eps), 0, 1)
        opt.zero_grad()
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()
        opt.step()
        # PGD training (Madry et al.)
        x_pgd = pgd_attack(T, model, x.clone(), y, eps=eps, alpha=eps / 4, iters=3)
        opt.zero_grad()
        loss_pgd = F.cross_entropy(model(x_pgd), y)
        loss_pgd.backward()
        opt.step()
        # TRADES
        loss_t, robust, batchmean, x_tr = trades_loss(T, model, x, y, opt, noise[step])
        loss_t.backward()
        opt.step()
        losses += [loss.item(), loss_pgd.item(), loss_t.item(), robust.item(), batchmean.item(),
                   (x_pgd - x).abs().max().item(), (x_tr - x).abs().max().item()]
        losses += x_adv.flatten().tolist()
    return losses, numpy_state(model)


@pytest.mark.filterwarnings("ignore:size_average and reduce")
def test_fgsm_pgd_trades(device):
    rng = np.random.default_rng(11)
    x = rng.random((6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    noise = rng.uniform(-1, 1, (2, 6, 6)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_adversarial, device, numpy_state(mlp(torch)), x, y, noise)
