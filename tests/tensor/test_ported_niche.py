"""Niche research code as its reference implementations write it in plain PyTorch, ported by imports.

Metric learning (ArcFace / CosFace margin heads with a focal loss; batch-hard and batch-all triplet mining,
circle loss), capsule networks (squash, dynamic routing by agreement, margin loss), hypernetworks (conv kernels
generated for F.conv2d, a task-conditioned head through bmm / F.linear), spiking networks (SpyTorch's LIF
neurons with a surrogate-gradient autograd.Function, snntorch's Leaky), Kolmogorov-Arnold networks
(efficient-kan's B-spline bases, lstsq coefficients, adaptive grids), deformable sampling from grid_sample (a
modulated deformable conv, Deformable DETR's multi-scale deformable attention), autoregressive decoding (a KV
cache by torch.cat, greedy decoding with a repetition penalty, top-k / top-p warpers, beam search with topk
over flattened scores), Perceiver cross-attention from learned latents (with tied layers), E(n)-equivariant
graph layers (scatter_add_ / index_add_), modern Hopfield pooling and retrieval, and a deep-equilibrium layer
whose backward solves a fixed point through autograd.grad in a tensor hook (with a Jacobian penalty by
double backward).

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data, and losses and final parameters agree to float32 accuracy. Where a script meets
one of README's accepted differences (`.data` is the raw array, a custom Function sees raw arrays) only that
spot is adapted, with a comment. The end of the file holds, at their smallest, the gaps these scripts found
in raygrad (all fixed since).
"""
import math

import numpy as np
import pytest

import tensor
from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


# ---- 1. ArcFace / CosFace margin heads (ronghuaiyang/arcface-pytorch models/metrics.py, focal_loss.py) --

def margin_model(T, head="arc", easy_margin=False):
    nn, F = T.nn, T.nn.functional

    class ArcMarginProduct(nn.Module):
        def __init__(self, in_features, out_features, s=30.0, m=0.50, easy_margin=False):
            super().__init__()
            self.in_features = in_features
            self.out_features = out_features
            self.s = s
            self.m = m
            self.weight = nn.Parameter(T.Tensor(out_features, in_features))  # T.FloatTensor there
            nn.init.xavier_uniform_(self.weight)
            self.easy_margin = easy_margin
            self.cos_m = math.cos(m)
            self.sin_m = math.sin(m)
            self.th = math.cos(math.pi - m)
            self.mm = math.sin(math.pi - m) * m

        def forward(self, input, label):
            cosine = F.linear(F.normalize(input), F.normalize(self.weight))
            sine = T.sqrt((1.0 - T.pow(cosine, 2)).clamp(0, 1))
            phi = cosine * self.cos_m - sine * self.sin_m
            if self.easy_margin:
                phi = T.where(cosine > 0, phi, cosine)
            else:
                phi = T.where(cosine > self.th, phi, cosine - self.mm)
            one_hot = T.zeros(cosine.size(), device=input.device)
            one_hot.scatter_(1, label.view(-1, 1).long(), 1)
            output = (one_hot * phi) + ((1.0 - one_hot) * cosine)
            output *= self.s
            return output

    class AddMarginProduct(nn.Module):  # CosFace
        def __init__(self, in_features, out_features, s=30.0, m=0.40):
            super().__init__()
            self.s, self.m = s, m
            self.weight = nn.Parameter(T.Tensor(out_features, in_features))
            nn.init.xavier_uniform_(self.weight)

        def forward(self, input, label):
            cosine = F.linear(F.normalize(input), F.normalize(self.weight))
            phi = cosine - self.m
            one_hot = T.zeros(cosine.size(), device=input.device)
            one_hot.scatter_(1, label.view(-1, 1).long(), 1)
            output = (one_hot * phi) + ((1.0 - one_hot) * cosine)
            output *= self.s
            return output

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.PReLU(), nn.Linear(16, 8))
            self.metric_fc = (ArcMarginProduct(8, 5, s=8.0, m=0.3, easy_margin=easy_margin) if head == "arc"
                              else AddMarginProduct(8, 5, s=8.0, m=0.3))

        def forward(self, x, label):
            return self.metric_fc(self.backbone(x), label)

    return Net()


def focal_loss(T, gamma=2, eps=1e-7):
    nn = T.nn

    class FocalLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = gamma
            self.eps = eps
            self.ce = T.nn.CrossEntropyLoss()

        def forward(self, input, target):
            logp = self.ce(input, target)
            p = T.exp(-logp)
            loss = (1 - p) ** self.gamma * logp
            return loss.mean()

    return FocalLoss()


def train_margin_head(T, device, init, xs, ys, head, easy_margin, steps=4):
    device = device_of(T, device)
    model = ported_model(T, lambda T: margin_model(T, head, easy_margin), init, device)
    criterion = focal_loss(T)
    opt = T.optim.SGD([{"params": model.backbone.parameters()}, {"params": model.metric_fc.parameters()}],
                      lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = T.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    losses = []
    for step in range(steps):
        x, y = T.from_numpy(xs[step]).to(device), T.from_numpy(ys[step]).to(device)
        output = model(x, y)
        loss = criterion(output, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        acc = output.argmax(1).eq(y).float().mean()
        losses += [loss.item(), acc.item()]
    model.eval()
    with T.no_grad():  # retrieval at test time: cosine similarity of normalized embeddings
        emb = T.nn.functional.normalize(model.backbone(T.from_numpy(xs[0]).to(device)))
        losses += (emb @ emb.t()).flatten().tolist()
    return losses, numpy_state(model)


@pytest.mark.parametrize("head, easy_margin", [("arc", False), ("arc", True), ("cos", False)])
def test_margin_softmax_heads(device, head, easy_margin):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((4, 10, 6)).astype(np.float32)
    ys = rng.integers(0, 5, (4, 10))
    torch.manual_seed(0)
    init = numpy_state(margin_model(torch, head, easy_margin))
    run_both(train_margin_head, device, init, xs, ys, head, easy_margin)


# ---- 2. Triplet mining and circle loss (NegatioN/OnlineMiningTripletLoss, TinyZeroLogN/circle-loss) ------

def _pairwise_distances(T, embeddings, squared=False):
    dot_product = T.matmul(embeddings, embeddings.t())
    square_norm = T.diag(dot_product)
    distances = square_norm.unsqueeze(0) - 2.0 * dot_product + square_norm.unsqueeze(1)
    distances[distances < 0] = 0
    if not squared:
        # the gradient of sqrt is infinite at 0: add an epsilon where the distance is 0, then mask it out
        mask = distances.eq(0).float()
        distances = distances + mask * 1e-16
        distances = (1.0 - mask) * T.sqrt(distances)
    return distances


def _get_anchor_positive_triplet_mask(T, labels):
    indices_equal = T.eye(labels.size(0), device=labels.device).bool()
    indices_not_equal = ~indices_equal
    labels_equal = labels.unsqueeze(0) == labels.unsqueeze(1)
    return labels_equal & indices_not_equal


def _get_anchor_negative_triplet_mask(labels):
    return ~(labels.unsqueeze(0) == labels.unsqueeze(1))


def _get_triplet_mask(T, labels):
    indices_equal = T.eye(labels.size(0), device=labels.device).bool()
    indices_not_equal = ~indices_equal
    i_not_equal_j = indices_not_equal.unsqueeze(2)
    i_not_equal_k = indices_not_equal.unsqueeze(1)
    j_not_equal_k = indices_not_equal.unsqueeze(0)
    distinct_indices = (i_not_equal_j & i_not_equal_k) & j_not_equal_k
    label_equal = labels.unsqueeze(0) == labels.unsqueeze(1)
    i_equal_j = label_equal.unsqueeze(2)
    i_equal_k = label_equal.unsqueeze(1)
    valid_labels = ~i_equal_k & i_equal_j
    return valid_labels & distinct_indices


def batch_hard_triplet_loss(T, labels, embeddings, margin, squared=False):
    pairwise_dist = _pairwise_distances(T, embeddings, squared=squared)
    mask_anchor_positive = _get_anchor_positive_triplet_mask(T, labels).float()
    anchor_positive_dist = mask_anchor_positive * pairwise_dist
    hardest_positive_dist, _ = anchor_positive_dist.max(1, keepdim=True)
    mask_anchor_negative = _get_anchor_negative_triplet_mask(labels).float()
    max_anchor_negative_dist, _ = pairwise_dist.max(1, keepdim=True)
    anchor_negative_dist = pairwise_dist + max_anchor_negative_dist * (1.0 - mask_anchor_negative)
    hardest_negative_dist, _ = anchor_negative_dist.min(1, keepdim=True)
    tl = hardest_positive_dist - hardest_negative_dist + margin
    tl[tl < 0] = 0
    return tl.mean()


def batch_all_triplet_loss(T, labels, embeddings, margin, squared=False):
    pairwise_dist = _pairwise_distances(T, embeddings, squared=squared)
    anchor_positive_dist = pairwise_dist.unsqueeze(2)
    anchor_negative_dist = pairwise_dist.unsqueeze(1)
    triplet_loss = anchor_positive_dist - anchor_negative_dist + margin
    mask = _get_triplet_mask(T, labels)
    triplet_loss = mask.float() * triplet_loss
    triplet_loss[triplet_loss < 0] = 0
    valid_triplets = triplet_loss[triplet_loss > 1e-16]
    num_positive_triplets = valid_triplets.size(0)
    num_valid_triplets = mask.sum()
    fraction_positive_triplets = num_positive_triplets / (num_valid_triplets.float() + 1e-16)
    triplet_loss = triplet_loss.sum() / (num_positive_triplets + 1e-16)
    return triplet_loss, fraction_positive_triplets


def convert_label_to_similarity(normed_feature, label):
    similarity_matrix = normed_feature @ normed_feature.transpose(1, 0)
    label_matrix = label.unsqueeze(1) == label.unsqueeze(0)
    positive_matrix = label_matrix.triu(diagonal=1)
    negative_matrix = label_matrix.logical_not().triu(diagonal=1)
    similarity_matrix = similarity_matrix.view(-1)
    positive_matrix = positive_matrix.view(-1)
    negative_matrix = negative_matrix.view(-1)
    return similarity_matrix[positive_matrix], similarity_matrix[negative_matrix]


def circle_loss(T, m=0.25, gamma=32.0):
    nn = T.nn

    class CircleLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m
            self.gamma = gamma
            self.soft_plus = nn.Softplus()

        def forward(self, sp, sn):
            ap = T.clamp_min(- sp.detach() + 1 + self.m, min=0.)
            an = T.clamp_min(sn.detach() + self.m, min=0.)
            delta_p = 1 - self.m
            delta_n = self.m
            logit_p = - ap * (sp - delta_p) * self.gamma
            logit_n = an * (sn - delta_n) * self.gamma
            return self.soft_plus(T.logsumexp(logit_n, dim=0) + T.logsumexp(logit_p, dim=0))

    return CircleLoss()


def embedding_net(T):
    nn = T.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 6, bias=False))  # distances ignore a shift: a bias gets no gradient


def train_metric(T, device, init, images, labels, loss_name, steps=4):
    device = device_of(T, device)
    model = ported_model(T, embedding_net, init, device)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    criterion = circle_loss(T)
    losses = []
    for step in range(steps):
        x, y = T.from_numpy(images[step]).to(device), T.from_numpy(labels[step]).to(device)
        emb = model(x)
        if loss_name == "batch_hard":
            loss = batch_hard_triplet_loss(T, y, emb, margin=0.5)
        elif loss_name == "batch_hard_squared":
            loss = batch_hard_triplet_loss(T, y, emb, margin=0.5, squared=True)
        elif loss_name == "batch_all":
            loss, fraction = batch_all_triplet_loss(T, y, emb, margin=0.5)
            losses.append(fraction.item())
        else:
            loss = criterion(*convert_label_to_similarity(T.nn.functional.normalize(emb), y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


@pytest.mark.parametrize("loss_name", ["batch_hard", "batch_hard_squared", "batch_all", "circle"])
def test_metric_learning_losses(device, loss_name):
    rng = np.random.default_rng(1)
    images = rng.standard_normal((4, 8, 1, 5, 5)).astype(np.float32)
    labels = np.tile(np.repeat(np.arange(4), 2), (4, 1))  # P x K sampling: 4 identities, 2 views each
    labels[:, 0] = labels[:, 1]  # one batch-local duplicate anchor: the distance of a row to itself is 0
    torch.manual_seed(0)
    run_both(train_metric, device, numpy_state(embedding_net(torch)), images, labels, loss_name)


# ---- 3. Capsule network: squash, dynamic routing by agreement, margin + reconstruction loss -------------
# gram-ai/capsule-networks capsule_network.py (routing on all priors), with XifengGuo/CapsNet-Pytorch's
# routing (detached priors until the last iteration, squash by torch.norm) as the alternative.

def capsule_softmax(T, input, dim=1):
    transposed_input = input.transpose(dim, len(input.size()) - 1)
    softmaxed_output = T.nn.functional.softmax(
        transposed_input.contiguous().view(-1, transposed_input.size(-1)), dim=-1)
    return softmaxed_output.view(*transposed_input.size()).transpose(dim, len(input.size()) - 1)


def squash_by_norm(T, inputs, axis=-1):
    norm = T.norm(inputs, p=2, dim=axis, keepdim=True)
    scale = norm ** 2 / (1 + norm ** 2) / (norm + 1e-8)
    return scale * inputs


def capsule_net(T, routing="gram-ai", num_classes=3, num_iterations=3):
    nn, F = T.nn, T.nn.functional

    class CapsuleLayer(nn.Module):
        def __init__(self, num_capsules, num_route_nodes, in_channels, out_channels, kernel_size=None,
                     stride=None):
            super().__init__()
            self.num_route_nodes = num_route_nodes
            self.num_iterations = num_iterations
            self.num_capsules = num_capsules
            if num_route_nodes != -1:
                self.route_weights = nn.Parameter(T.randn(num_capsules, num_route_nodes, in_channels, out_channels))
            else:
                self.capsules = nn.ModuleList(
                    [nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=0)
                     for _ in range(num_capsules)])

        def squash(self, tensor, dim=-1):
            squared_norm = (tensor ** 2).sum(dim=dim, keepdim=True)
            scale = squared_norm / (1 + squared_norm)
            return scale * tensor / T.sqrt(squared_norm)

        def route(self, priors):
            logits = T.autograd.Variable(T.zeros(*priors.size())).to(priors.device)  # .cuda() there
            for i in range(self.num_iterations):
                probs = capsule_softmax(T, logits, dim=2)
                outputs = self.squash((probs * priors).sum(dim=2, keepdim=True))
                if i != self.num_iterations - 1:
                    delta_logits = (priors * outputs).sum(dim=-1, keepdim=True)
                    logits = logits + delta_logits
            return outputs

        def route_detached(self, priors):
            # priors (caps, B, nodes, 1, out) -> XifengGuo's u_hat (B, caps, nodes, out)
            u_hat = priors.squeeze(-2).permute(1, 0, 2, 3)
            u_hat_detached = u_hat.detach()
            b = T.zeros(u_hat.size(0), u_hat.size(1), u_hat.size(2), device=u_hat.device)
            for i in range(self.num_iterations):
                c = F.softmax(b, dim=1)
                if i == self.num_iterations - 1:
                    outputs = squash_by_norm(T, T.sum(c[:, :, :, None] * u_hat, dim=-2, keepdim=True))
                else:
                    outputs = squash_by_norm(T, T.sum(c[:, :, :, None] * u_hat_detached, dim=-2, keepdim=True))
                    b = b + T.sum(outputs * u_hat_detached, dim=-1)
            return outputs.permute(1, 0, 2, 3).unsqueeze(2)  # back to gram-ai's (caps, B, 1, 1, out)

        def forward(self, x):
            if self.num_route_nodes != -1:
                priors = x[None, :, :, None, :] @ self.route_weights[:, None, :, :, :]
                return self.route(priors) if routing == "gram-ai" else self.route_detached(priors)
            outputs = [capsule(x).view(x.size(0), -1, 1) for capsule in self.capsules]
            outputs = T.cat(outputs, dim=-1)
            return self.squash(outputs)

    class CapsuleNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels=1, out_channels=8, kernel_size=3, stride=1)
            self.primary_capsules = CapsuleLayer(num_capsules=4, num_route_nodes=-1, in_channels=8,
                                                 out_channels=2, kernel_size=3, stride=2)
            self.digit_capsules = CapsuleLayer(num_capsules=num_classes, num_route_nodes=2 * 3 * 3,
                                               in_channels=4, out_channels=6)
            self.decoder = nn.Sequential(
                nn.Linear(6 * num_classes, 32),
                nn.ReLU(inplace=True),
                nn.Linear(32, 100),
                nn.Sigmoid(),
            )

        def forward(self, x, y=None):
            x = F.relu(self.conv1(x), inplace=True)
            x = self.primary_capsules(x)
            x = self.digit_capsules(x).squeeze().transpose(0, 1)
            classes = (x ** 2).sum(dim=-1) ** 0.5
            classes = F.softmax(classes, dim=-1)
            if y is None:
                # In all batches, get the most active capsule.
                _, max_length_indices = classes.max(dim=1)
                y = T.eye(num_classes).to(x.device).index_select(dim=0, index=max_length_indices)
            # `.view` there: today's torch keeps x's transposed layout in x * y, so forks write .reshape
            reconstructions = self.decoder((x * y[:, :, None]).reshape(x.size(0), -1))
            return classes, reconstructions

    return CapsuleNet()


def capsule_loss(T):
    nn, F = T.nn, T.nn.functional

    class CapsuleLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.reconstruction_loss = nn.MSELoss(size_average=False)

        def forward(self, images, labels, classes, reconstructions):
            left = F.relu(0.9 - classes, inplace=True) ** 2
            right = F.relu(classes - 0.1, inplace=True) ** 2
            margin_loss = labels * left + 0.5 * (1. - labels) * right
            margin_loss = margin_loss.sum()
            images = images.view(reconstructions.size(0), -1)
            reconstruction_loss = self.reconstruction_loss(reconstructions, images)
            return (margin_loss + 0.0005 * reconstruction_loss) / images.size(0)

    return CapsuleLoss()


def train_capsnet(T, device, init, images, labels, routing, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lambda T: capsule_net(T, routing), init, device)
    criterion = capsule_loss(T)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(steps):
        data = T.from_numpy(images[step]).to(device)
        labels_onehot = T.eye(3).index_select(dim=0, index=T.from_numpy(labels[step])).to(device)
        opt.zero_grad()
        classes, reconstructions = model(data, labels_onehot)
        loss = criterion(data, labels_onehot, classes, reconstructions)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():  # test time: reconstruct from the longest capsule
        classes, reconstructions = model(T.from_numpy(images[0]).to(device))
        losses += classes.flatten().tolist() + reconstructions.sum(1).tolist()
    return losses, numpy_state(model)


@pytest.mark.filterwarnings("ignore:size_average")  # nn.MSELoss(size_average=False), as the script has it
@pytest.mark.parametrize("routing", ["gram-ai", "detached"])
def test_capsule_network(device, routing):
    rng = np.random.default_rng(2)
    images = rng.random((3, 4, 1, 10, 10)).astype(np.float32)
    labels = rng.integers(0, 3, (3, 4))
    torch.manual_seed(0)
    run_both(train_capsnet, device, numpy_state(capsule_net(torch, routing)), images, labels, routing)


# ---- 4. Hypernetworks: conv kernels from layer embeddings (g1910/HyperNetworks, Ha et al. 2016) and a ----
# task-conditioned head whose weights a second network emits per sample (used through bmm and F.linear)

def hyper_resnet(T, z_dim=8, num_tasks=3):
    nn, F = T.nn, T.nn.functional

    class HyperNetwork(nn.Module):
        def __init__(self, f_size=3, z_dim=z_dim, out_size=4, in_size=4):
            super().__init__()
            self.z_dim = z_dim
            self.f_size = f_size
            self.out_size = out_size
            self.in_size = in_size
            self.w1 = nn.Parameter(T.fmod(T.randn((self.z_dim, self.out_size * self.f_size * self.f_size)), 2))
            self.b1 = nn.Parameter(T.fmod(T.randn((self.out_size * self.f_size * self.f_size)), 2))
            self.w2 = nn.Parameter(T.fmod(T.randn((self.z_dim, self.in_size * self.z_dim)), 2))
            self.b2 = nn.Parameter(T.fmod(T.randn((self.in_size * self.z_dim)), 2))

        def forward(self, z):
            h_in = T.matmul(z, self.w2) + self.b2
            h_in = h_in.view(self.in_size, self.z_dim)
            h_final = T.matmul(h_in, self.w1) + self.b1
            kernel = h_final.view(self.out_size, self.in_size, self.f_size, self.f_size)
            return kernel

    class Embedding(nn.Module):
        def __init__(self, z_num, z_dim):
            super().__init__()
            self.z_list = nn.ParameterList()
            self.z_num = z_num
            self.z_dim = z_dim
            h, k = self.z_num
            for i in range(h):
                for j in range(k):
                    self.z_list.append(nn.Parameter(T.fmod(T.randn(self.z_dim), 2)))

        def forward(self, hyper_net):
            ww = []
            h, k = self.z_num
            for i in range(h):
                w = []
                for j in range(k):
                    w.append(hyper_net(self.z_list[i * k + j]))
                ww.append(T.cat(w, dim=1))
            return T.cat(ww, dim=0)

    class ResNetBlock(nn.Module):
        def __init__(self, in_size, out_size):
            super().__init__()
            self.reslayer = in_size != out_size
            self.bn1 = nn.BatchNorm2d(out_size)
            self.bn2 = nn.BatchNorm2d(out_size)
            if self.reslayer:
                self.res = nn.Sequential(nn.Conv2d(in_size, out_size, 1), nn.BatchNorm2d(out_size))

        def forward(self, x, conv1_w, conv2_w):
            residual = self.res(x) if self.reslayer else x
            out = F.relu(self.bn1(F.conv2d(x, conv1_w, padding=1)))
            out = self.bn2(F.conv2d(out, conv2_w, padding=1))
            return F.relu(out + residual)

    class TaskHead(nn.Module):
        """Weights of a linear classifier generated from a task embedding (hypnettorch's idea, flat)."""

        def __init__(self, in_features=8, classes=3):
            super().__init__()
            self.shapes = [(classes, in_features), (classes,)]
            self.task_emb = nn.Embedding(num_tasks, 4)
            self.hnet = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, classes * in_features + classes))

        def forward(self, feat, task_ids):
            flat = self.hnet(self.task_emb(task_ids))
            w, b = flat.split([math.prod(s) for s in self.shapes], dim=-1)
            if task_ids.unique().numel() == 1:  # one task in the batch: an ordinary linear layer
                return F.linear(feat, w[0].view(*self.shapes[0]), b[0])
            w = w.view(-1, *self.shapes[0])
            return T.bmm(w, feat.unsqueeze(-1)).squeeze(-1) + b

    class PrimaryNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(4)
            self.z_dim = z_dim
            self.hope = HyperNetwork(z_dim=self.z_dim)
            self.zs_size = [[1, 1], [1, 1], [2, 1], [2, 2]]
            self.filter_size = [[4, 4], [4, 8]]
            self.res_net = nn.ModuleList([ResNetBlock(4, 4), ResNetBlock(4, 8)])
            self.zs = nn.ModuleList([Embedding(self.zs_size[i], self.z_dim) for i in range(len(self.zs_size))])
            self.head = TaskHead()

        def forward(self, x, task_ids):
            x = F.relu(self.bn1(self.conv1(x)))
            for i in range(2):
                w1 = self.zs[2 * i](self.hope)
                w2 = self.zs[2 * i + 1](self.hope)
                x = self.res_net[i](x, w1, w2)
            x = F.avg_pool2d(x, x.shape[-1])
            return self.head(x.view(x.size(0), -1), task_ids)

    return PrimaryNetwork()


def train_hypernet(T, device, init, images, labels, tasks, steps=3):
    device = device_of(T, device)
    model = ported_model(T, hyper_resnet, init, device)
    opt = T.optim.Adam(model.parameters(), lr=5e-3, weight_decay=5e-4)
    criterion = T.nn.CrossEntropyLoss()
    losses = []
    for step in range(steps):
        x, y = T.from_numpy(images[step]).to(device), T.from_numpy(labels[step]).to(device)
        for task_ids in (T.from_numpy(tasks[step]), T.full((len(y),), step % 3, dtype=T.long)):
            loss = criterion(model(x, task_ids.to(device)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses, numpy_state(model)


def test_hypernetwork(device):
    rng = np.random.default_rng(3)
    images = rng.standard_normal((3, 5, 1, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 3, (3, 5))
    tasks = rng.integers(0, 3, (3, 5))
    tasks[:, 0], tasks[:, 1] = 0, 1  # every batch mixes tasks
    torch.manual_seed(0)
    run_both(train_hypernet, device, numpy_state(hyper_resnet(torch)), images, labels, tasks)


# ---- 5. Spiking networks: SpyTorch's surrogate-gradient LIF (fzenke/spytorch, tutorial 1 and 2) and ------
# snntorch's Leaky neuron with an arctan surrogate, reset by subtraction and a rate-coded loss
# README difference: a custom Function's forward/backward get raw arrays; where the published bodies call
# Tensor-only methods (zeros_like, clone, abs, .float()) the port uses what arrays and Tensors share.

def spike_functions(T):
    class SurrGradSpike(T.autograd.Function):
        scale = 100.0  # controls steepness of surrogate gradient

        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            out = input * 0.0  # adapted from torch.zeros_like(input)
            out[input > 0] = 1.0
            return out

        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            grad_input = grad_output * 1.0  # adapted from grad_output.clone()
            grad = grad_input / (SurrGradSpike.scale * abs(input) + 1.0) ** 2  # adapted from torch.abs
            return grad

    class ATan(T.autograd.Function):  # snntorch.surrogate.ATan
        @staticmethod
        def forward(ctx, input_, alpha=2.0):
            ctx.save_for_backward(input_)
            ctx.alpha = alpha
            out = input_ * 0.0  # adapted from (input_ > 0).float(); NumPy's bool * 1.0 is float64
            out[input_ > 0] = 1.0
            return out

        @staticmethod
        def backward(ctx, grad_output):
            (input_,) = ctx.saved_tensors
            grad_input = grad_output * 1.0
            grad = ctx.alpha / 2 / (1 + (math.pi / 2 * ctx.alpha * input_) ** 2) * grad_input
            return grad, None

    return SurrGradSpike.apply, ATan.apply


def spytorch_weights(rng, nb_inputs=6, nb_hidden=8, nb_outputs=3, weight_scale=7 * (1.0 - 0.9)):
    return {"w1": (rng.standard_normal((nb_inputs, nb_hidden)) * weight_scale / np.sqrt(nb_inputs)).astype(np.float32),
            "w2": (rng.standard_normal((nb_hidden, nb_outputs)) * weight_scale / np.sqrt(nb_hidden)).astype(np.float32)}


def train_spytorch(T, device, init, x_data, y_data, nb_steps=12, time_step=1e-3, tau_mem=10e-3, tau_syn=5e-3):
    device = device_of(T, device)
    dtype = T.float
    alpha = float(np.exp(-time_step / tau_syn))
    beta = float(np.exp(-time_step / tau_mem))
    spike_fn = spike_functions(T)[0]
    w1 = T.tensor(init["w1"], device=device, dtype=dtype, requires_grad=True)
    w2 = T.tensor(init["w2"], device=device, dtype=dtype, requires_grad=True)
    batch_size, nb_hidden, nb_outputs = x_data.shape[1], w1.shape[1], w2.shape[1]

    def run_snn(inputs):
        h1 = T.einsum("abc,cd->abd", (inputs, w1))
        syn = T.zeros((batch_size, nb_hidden), device=device, dtype=dtype)
        mem = T.zeros((batch_size, nb_hidden), device=device, dtype=dtype)
        mem_rec = []
        spk_rec = []
        # Compute hidden layer activity
        for t in range(nb_steps):
            mthr = mem - 1.0
            out = spike_fn(mthr)
            rst = out.detach()  # We do not want to backprop through the reset
            new_syn = alpha * syn + h1[:, t]
            new_mem = (beta * mem + syn) * (1.0 - rst)
            mem_rec.append(mem)
            spk_rec.append(out)
            mem = new_mem
            syn = new_syn
        mem_rec = T.stack(mem_rec, dim=1)
        spk_rec = T.stack(spk_rec, dim=1)
        # Readout layer
        h2 = T.einsum("abc,cd->abd", (spk_rec, w2))
        flt = T.zeros((batch_size, nb_outputs), device=device, dtype=dtype)
        out = T.zeros((batch_size, nb_outputs), device=device, dtype=dtype)
        out_rec = [out]
        for t in range(nb_steps):
            new_flt = alpha * flt + h2[:, t]
            new_out = beta * out + flt
            flt = new_flt
            out = new_out
            out_rec.append(out)
        out_rec = T.stack(out_rec, dim=1)
        return out_rec, [mem_rec, spk_rec]

    optimizer = T.optim.Adam([w1, w2], lr=2e-3, betas=(0.9, 0.999))
    log_softmax_fn = T.nn.LogSoftmax(dim=1)
    loss_fn = T.nn.NLLLoss()
    loss_hist = []
    for x_local, y_local in zip(x_data, y_data):
        x_local, y_local = T.from_numpy(x_local).to(device), T.from_numpy(y_local).to(device)
        output, recs = run_snn(x_local)
        _, spks = recs
        m, _ = T.max(output, 1)
        log_p_y = log_softmax_fn(m)
        # Here we set up our regularizer loss (tutorial 2)
        reg_loss = 2e-6 * T.sum(spks)  # L1 loss on total number of spikes
        reg_loss += 2e-6 * T.mean(T.sum(T.sum(spks, dim=0), dim=0) ** 2)  # L2 loss on spikes per neuron
        loss_val = loss_fn(log_p_y, y_local) + reg_loss
        optimizer.zero_grad()
        loss_val.backward()
        optimizer.step()
        loss_hist += [loss_val.item(), spks.sum().item()]
    return loss_hist, {"w1": w1.detach().cpu().numpy(), "w2": w2.detach().cpu().numpy()}


def snn_convnet(T, beta=0.8, num_steps=6):
    nn, F = T.nn, T.nn.functional
    atan = spike_functions(T)[1]

    class Leaky(nn.Module):  # snntorch.Leaky(beta, learn_beta=True, reset_mechanism="subtract"), trimmed
        def __init__(self, beta, threshold=1.0):
            super().__init__()
            self.beta = nn.Parameter(T.as_tensor(beta))
            self.threshold = threshold

        def mem_reset(self, mem):
            mem_shift = mem - self.threshold
            return atan(mem_shift).clone().detach()

        def forward(self, input_, mem):
            reset = self.mem_reset(mem)
            mem = self.beta.clamp(0, 1) * mem + input_ - reset * self.threshold
            spk = atan(mem - self.threshold)
            return spk, mem

    class Net(nn.Module):  # snntorch tutorial 6, scaled down
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3)
            self.lif1 = Leaky(beta=beta, threshold=0.25)
            self.fc1 = nn.Linear(4 * 3 * 3, 3)
            self.lif2 = Leaky(beta=beta, threshold=0.25)

        def forward(self, x):
            mem1 = mem2 = None
            spk2_rec, mem2_rec = [], []
            for step in range(num_steps):
                cur1 = F.max_pool2d(self.conv1(x[step]), 2)
                mem1 = T.zeros_like(cur1) if mem1 is None else mem1
                spk1, mem1 = self.lif1(cur1, mem1)
                cur2 = self.fc1(spk1.flatten(1))
                mem2 = T.zeros_like(cur2) if mem2 is None else mem2
                spk2, mem2 = self.lif2(cur2, mem2)
                spk2_rec.append(spk2)
                mem2_rec.append(mem2)
            return T.stack(spk2_rec), T.stack(mem2_rec)

    return Net()


def ce_rate_loss(T, spk_out, targets):
    """snntorch.functional.ce_rate_loss: cross-entropy of the spikes at every step, averaged over steps."""
    log_softmax_fn = T.nn.LogSoftmax(dim=-1)
    loss_fn = T.nn.NLLLoss()
    log_p_y = log_softmax_fn(spk_out)
    loss = T.zeros((1), dtype=spk_out.dtype, device=spk_out.device)
    for step in range(spk_out.size(0)):
        loss += loss_fn(log_p_y[step], targets)
    return loss / spk_out.size(0)


def train_snn_convnet(T, device, init, spikes, targets):
    device = device_of(T, device)
    net = ported_model(T, snn_convnet, init, device)
    optimizer = T.optim.Adam(net.parameters(), lr=1e-2, betas=(0.9, 0.999))
    losses = []
    for data, y in zip(spikes, targets):
        data, y = T.from_numpy(data).to(device), T.from_numpy(y).to(device)
        net.train()
        spk_rec, _ = net(data)
        loss_val = ce_rate_loss(T, spk_rec, y)
        optimizer.zero_grad()
        loss_val.backward()
        optimizer.step()
        _, idx = spk_rec.sum(dim=0).max(1)
        losses += [loss_val.item(), (y == idx).float().mean().item()]
    return losses, numpy_state(net)


def test_spytorch_surrogate_gradient(device):
    rng = np.random.default_rng(4)
    # spike trains (batch, time, inputs) as sparse_data_generator's to_dense() gives them, three batches
    x_data = (rng.random((3, 5, 12, 6)) < 0.3).astype(np.float32) * 3.0
    y_data = rng.integers(0, 3, (3, 5))
    run_both(train_spytorch, device, spytorch_weights(rng), x_data, y_data)


def test_snntorch_leaky_convnet(device):
    rng = np.random.default_rng(5)
    # spikegen.rate's Bernoulli draws, made here: (batches, steps, batch, 1, 8, 8)
    spikes = (rng.random((3, 6, 4, 1, 8, 8)) < 0.4).astype(np.float32)
    targets = rng.integers(0, 3, (3, 4))
    torch.manual_seed(0)
    run_both(train_snn_convnet, device, numpy_state(snn_convnet(torch)), spikes, targets)


# ---- 6. Kolmogorov-Arnold network: Blealtan/efficient-kan's KANLinear (B-spline bases by the Cox-de Boor --
# recursion on masks and slices, coefficients by linalg.lstsq, data-adaptive grids) and its MNIST loop

def kan(T, layers_hidden=(4, 6, 3), grid_size=5, spline_order=3):
    nn, F = T.nn, T.nn.functional

    class KANLinear(nn.Module):
        def __init__(self, in_features, out_features, grid_size=5, spline_order=3, scale_noise=0.1, scale_base=1.0,
                     scale_spline=1.0, enable_standalone_scale_spline=True, base_activation=nn.SiLU,
                     grid_eps=0.02, grid_range=[-1, 1]):
            super().__init__()
            self.in_features = in_features
            self.out_features = out_features
            self.grid_size = grid_size
            self.spline_order = spline_order

            h = (grid_range[1] - grid_range[0]) / grid_size
            grid = ((T.arange(-spline_order, grid_size + spline_order + 1) * h + grid_range[0])
                    .expand(in_features, -1).contiguous())
            self.register_buffer("grid", grid)

            self.base_weight = nn.Parameter(T.Tensor(out_features, in_features))
            self.spline_weight = nn.Parameter(T.Tensor(out_features, in_features, grid_size + spline_order))
            if enable_standalone_scale_spline:
                self.spline_scaler = nn.Parameter(T.Tensor(out_features, in_features))

            self.scale_noise = scale_noise
            self.scale_base = scale_base
            self.scale_spline = scale_spline
            self.enable_standalone_scale_spline = enable_standalone_scale_spline
            self.base_activation = base_activation()
            self.grid_eps = grid_eps
            self.reset_parameters()

        def reset_parameters(self):
            nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5) * self.scale_base)
            with T.no_grad():
                noise = ((T.rand(self.grid_size + 1, self.in_features, self.out_features) - 1 / 2)
                         * self.scale_noise / self.grid_size)
                # `self.spline_weight.data.copy_(...)` there: .data is the raw array (README, Differences)
                self.spline_weight.copy_(
                    (self.scale_spline if not self.enable_standalone_scale_spline else 1.0)
                    * self.curve2coeff(self.grid.T[self.spline_order: -self.spline_order], noise))
                if self.enable_standalone_scale_spline:
                    nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5) * self.scale_spline)

        def b_splines(self, x):
            assert x.dim() == 2 and x.size(1) == self.in_features
            grid = self.grid  # (in_features, grid_size + 2 * spline_order + 1)
            x = x.unsqueeze(-1)
            bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
            for k in range(1, self.spline_order + 1):
                bases = (
                    (x - grid[:, : -(k + 1)]) / (grid[:, k:-1] - grid[:, : -(k + 1)]) * bases[:, :, :-1]
                ) + (
                    (grid[:, k + 1:] - x) / (grid[:, k + 1:] - grid[:, 1:(-k)]) * bases[:, :, 1:]
                )
            assert bases.size() == (x.size(0), self.in_features, self.grid_size + self.spline_order)
            return bases.contiguous()

        def curve2coeff(self, x, y):
            assert x.dim() == 2 and x.size(1) == self.in_features
            assert y.size() == (x.size(0), self.in_features, self.out_features)
            A = self.b_splines(x).transpose(0, 1)  # (in_features, batch_size, grid_size + spline_order)
            B = y.transpose(0, 1)  # (in_features, batch_size, out_features)
            solution = T.linalg.lstsq(A, B).solution  # (in_features, grid_size + spline_order, out_features)
            result = solution.permute(2, 0, 1)  # (out_features, in_features, grid_size + spline_order)
            assert result.size() == (self.out_features, self.in_features, self.grid_size + self.spline_order)
            return result.contiguous()

        @property
        def scaled_spline_weight(self):
            return self.spline_weight * (self.spline_scaler.unsqueeze(-1)
                                         if self.enable_standalone_scale_spline else 1.0)

        def forward(self, x):
            assert x.size(-1) == self.in_features
            original_shape = x.shape
            x = x.reshape(-1, self.in_features)
            base_output = F.linear(self.base_activation(x), self.base_weight)
            spline_output = F.linear(self.b_splines(x).view(x.size(0), -1),
                                     self.scaled_spline_weight.view(self.out_features, -1))
            output = base_output + spline_output
            return output.reshape(*original_shape[:-1], self.out_features)

        @T.no_grad()
        def update_grid(self, x, margin=0.01):
            assert x.dim() == 2 and x.size(1) == self.in_features
            batch = x.size(0)
            splines = self.b_splines(x)  # (batch, in, coeff)
            splines = splines.permute(1, 0, 2)  # (in, batch, coeff)
            orig_coeff = self.scaled_spline_weight  # (out, in, coeff)
            orig_coeff = orig_coeff.permute(1, 2, 0)  # (in, coeff, out)
            unreduced_spline_output = T.bmm(splines, orig_coeff)  # (in, batch, out)
            unreduced_spline_output = unreduced_spline_output.permute(1, 0, 2)  # (batch, in, out)

            # sort each channel individually to collect data distribution
            x_sorted = T.sort(x, dim=0)[0]
            grid_adaptive = x_sorted[T.linspace(0, batch - 1, self.grid_size + 1, dtype=T.int64, device=x.device)]
            uniform_step = (x_sorted[-1] - x_sorted[0] + 2 * margin) / self.grid_size
            grid_uniform = (T.arange(self.grid_size + 1, dtype=T.float32, device=x.device).unsqueeze(1)
                            * uniform_step + x_sorted[0] - margin)
            grid = self.grid_eps * grid_uniform + (1 - self.grid_eps) * grid_adaptive
            grid = T.concatenate([
                grid[:1] - uniform_step * T.arange(self.spline_order, 0, -1, device=x.device).unsqueeze(1),
                grid,
                grid[-1:] + uniform_step * T.arange(1, self.spline_order + 1, device=x.device).unsqueeze(1),
            ], dim=0)
            self.grid.copy_(grid.T)
            self.spline_weight.copy_(self.curve2coeff(x, unreduced_spline_output))  # .data.copy_ there

        def regularization_loss(self, regularize_activation=1.0, regularize_entropy=1.0):
            l1_fake = self.spline_weight.abs().mean(-1)
            regularization_loss_activation = l1_fake.sum()
            p = l1_fake / regularization_loss_activation
            regularization_loss_entropy = -T.sum(p * p.log())
            return (regularize_activation * regularization_loss_activation
                    + regularize_entropy * regularization_loss_entropy)

    class KAN(nn.Module):
        def __init__(self):
            super().__init__()
            self.grid_size = grid_size
            self.spline_order = spline_order
            self.layers = nn.ModuleList()
            for in_features, out_features in zip(layers_hidden, layers_hidden[1:]):
                self.layers.append(KANLinear(in_features, out_features, grid_size=grid_size,
                                             spline_order=spline_order))

        def forward(self, x, update_grid=False):
            for layer in self.layers:
                if update_grid:
                    layer.update_grid(x)
                x = layer(x)
            return x

        def regularization_loss(self, regularize_activation=1.0, regularize_entropy=1.0):
            return sum(layer.regularization_loss(regularize_activation, regularize_entropy) for layer in self.layers)

    return KAN()


def train_kan(T, device, init, xs, ys, steps=4):
    device = device_of(T, device)
    model = ported_model(T, kan, init, device)
    optimizer = T.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    scheduler = T.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)
    criterion = T.nn.CrossEntropyLoss()
    losses = []
    for step in range(steps):
        x, y = T.from_numpy(xs[step]).to(device), T.from_numpy(ys[step]).to(device)
        optimizer.zero_grad()
        output = model(x, update_grid=step == 1)
        loss = criterion(output, y) + 1e-3 * model.regularization_loss()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses += [loss.item(), (output.argmax(dim=1) == y).float().mean().item()]
    return losses, numpy_state(model)


def test_kolmogorov_arnold_network(device):
    rng = np.random.default_rng(6)
    xs = rng.uniform(-1, 1, (4, 16, 4)).astype(np.float32)
    ys = (xs[..., 0] * xs[..., 1] > 0).astype(np.int64) + (xs[..., 2] > 0.5)
    torch.manual_seed(0)
    run_both(train_kan, device, numpy_state(kan(torch)), xs, ys)


# ---- 7. Deformable sampling from grid_sample: a modulated deformable conv (4uiiurz1/pytorch-deform-conv-v2's --
# offsets and kernel layout, sampled with grid_sample) and Deformable DETR's MSDeformAttn with its PyTorch core

def deformable_cnn(T, ks=3, lr_hook=False):
    nn, F = T.nn, T.nn.functional

    class DeformConv2d(nn.Module):
        def __init__(self, inc, outc, kernel_size=3, padding=1, stride=1, bias=None, modulation=True):
            super().__init__()
            self.kernel_size = kernel_size
            self.padding = padding
            self.stride = stride
            self.zero_padding = nn.ZeroPad2d(padding)
            self.conv = nn.Conv2d(inc, outc, kernel_size=kernel_size, stride=kernel_size, bias=bias)
            self.p_conv = nn.Conv2d(inc, 2 * kernel_size * kernel_size, kernel_size=3, padding=1, stride=stride)
            nn.init.constant_(self.p_conv.weight, 0)
            if lr_hook:
                self.p_conv.register_backward_hook(self._set_lr)
            self.modulation = modulation
            if modulation:
                self.m_conv = nn.Conv2d(inc, kernel_size * kernel_size, kernel_size=3, padding=1, stride=stride)
                nn.init.constant_(self.m_conv.weight, 0)
                if lr_hook:
                    self.m_conv.register_backward_hook(self._set_lr)

        @staticmethod
        def _set_lr(module, grad_input, grad_output):
            # the repository's hook: it builds two generators and returns None, so it changes nothing
            grad_input = (grad_input[i] * 0.1 for i in range(len(grad_input)))
            grad_output = (grad_output[i] * 0.1 for i in range(len(grad_output)))

        def forward(self, x):
            offset = self.p_conv(x)
            if self.modulation:
                m = T.sigmoid(self.m_conv(x))
            dtype = offset.dtype  # offset.data.type() there: a type string, and .data is the raw array here
            ks = self.kernel_size
            N = offset.size(1) // 2
            if self.padding:
                x = self.zero_padding(x)
            # (b, 2N, h, w): N row coordinates, then N column coordinates, in the padded input
            p = self._get_p(offset, dtype)
            p = p.contiguous().permute(0, 2, 3, 1)
            # bilinear sampling by grid_sample (the repository gathers the four neighbours itself)
            H, W = x.size(2), x.size(3)
            grid = T.stack([2 * p[..., N:] / (W - 1) - 1, 2 * p[..., :N] / (H - 1) - 1], dim=-1)
            b, h, w = grid.shape[:3]
            x_offset = F.grid_sample(x, grid.view(b, h, w * N, 2), mode="bilinear", padding_mode="zeros",
                                     align_corners=True)
            x_offset = x_offset.view(b, -1, h, w, N)
            if self.modulation:
                m = m.contiguous().permute(0, 2, 3, 1)
                m = m.unsqueeze(dim=1)
                m = T.cat([m for _ in range(x_offset.size(1))], dim=1)
                x_offset *= m
            x_offset = self._reshape_x_offset(x_offset, ks)
            return self.conv(x_offset)

        def _get_p_n(self, N, dtype):
            p_n_x, p_n_y = T.meshgrid(
                T.arange(-(self.kernel_size - 1) // 2, (self.kernel_size - 1) // 2 + 1),
                T.arange(-(self.kernel_size - 1) // 2, (self.kernel_size - 1) // 2 + 1), indexing="ij")
            p_n = T.cat([T.flatten(p_n_x), T.flatten(p_n_y)], 0)
            return p_n.view(1, 2 * N, 1, 1).type(dtype)

        def _get_p_0(self, h, w, N, dtype):
            p_0_x, p_0_y = T.meshgrid(
                T.arange(1, h * self.stride + 1, self.stride),
                T.arange(1, w * self.stride + 1, self.stride), indexing="ij")
            p_0_x = T.flatten(p_0_x).view(1, 1, h, w).repeat(1, N, 1, 1)
            p_0_y = T.flatten(p_0_y).view(1, 1, h, w).repeat(1, N, 1, 1)
            return T.cat([p_0_x, p_0_y], 1).type(dtype)

        def _get_p(self, offset, dtype):
            N, h, w = offset.size(1) // 2, offset.size(2), offset.size(3)
            p_n = self._get_p_n(N, dtype)
            p_0 = self._get_p_0(h, w, N, dtype)
            return p_0.to(offset.device) + p_n.to(offset.device) + offset

        @staticmethod
        def _reshape_x_offset(x_offset, ks):
            b, c, h, w, N = x_offset.size()
            x_offset = T.cat([x_offset[..., s:s + ks].contiguous().view(b, c, h, w * ks) for s in range(0, N, ks)],
                             dim=-1)
            return x_offset.contiguous().view(b, c, h * ks, w * ks)

    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), DeformConv2d(4, 6, ks), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


def train_deformable_cnn(T, device, init, images, labels, lr_hook, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lambda T: deformable_cnn(T, lr_hook=lr_hook), init, device)
    opt = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for step in range(steps):
        x, y = T.from_numpy(images[step]).to(device), T.from_numpy(labels[step]).to(device)
        loss = T.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


@pytest.mark.parametrize("lr_hook", [False, pytest.param(True, marks=[
    pytest.mark.filterwarnings("ignore:Using a non-full backward hook")])])  # torch's own deprecation warning
def test_deformable_conv_by_grid_sample(device, lr_hook):
    rng = np.random.default_rng(7)
    images = rng.standard_normal((3, 2, 1, 6, 7)).astype(np.float32)
    labels = rng.integers(0, 3, (3, 2))
    torch.manual_seed(0)
    init = numpy_state(deformable_cnn(torch))
    # the offset convs' biases start at up to two pixels, so samples fall between pixels and off the edge
    for name in ("2.p_conv.bias", "2.m_conv.bias"):
        init[name] = rng.uniform(-2, 2, init[name].shape).astype(np.float32)
    run_both(train_deformable_cnn, device, init, images, labels, lr_hook)


def ms_deform_attn_core_pytorch(T, value, value_spatial_shapes, sampling_locations, attention_weights):
    F = T.nn.functional
    # for debug and test only, need to use cuda version instead
    N_, S_, M_, D_ = value.shape
    _, Lq_, M_, L_, P_, _ = sampling_locations.shape
    value_list = value.split([H_ * W_ for H_, W_ in value_spatial_shapes], dim=1)
    sampling_grids = 2 * sampling_locations - 1
    sampling_value_list = []
    for lid_, (H_, W_) in enumerate(value_spatial_shapes):
        # N_, H_*W_, M_, D_ -> N_, H_*W_, M_*D_ -> N_, M_*D_, H_*W_ -> N_*M_, D_, H_, W_
        value_l_ = value_list[lid_].flatten(2).transpose(1, 2).reshape(N_ * M_, D_, H_, W_)
        # N_, Lq_, M_, P_, 2 -> N_, M_, Lq_, P_, 2 -> N_*M_, Lq_, P_, 2
        sampling_grid_l_ = sampling_grids[:, :, :, lid_].transpose(1, 2).flatten(0, 1)
        # N_*M_, D_, Lq_, P_
        sampling_value_l_ = F.grid_sample(value_l_, sampling_grid_l_,
                                          mode='bilinear', padding_mode='zeros', align_corners=False)
        sampling_value_list.append(sampling_value_l_)
    # (N_, Lq_, M_, L_, P_) -> (N_, M_, Lq_, L_, P_) -> (N_, M_, 1, Lq_, L_*P_)
    attention_weights = attention_weights.transpose(1, 2).reshape(N_ * M_, 1, Lq_, L_ * P_)
    output = (T.stack(sampling_value_list, dim=-2).flatten(-2) * attention_weights).sum(-1).view(N_, M_ * D_, Lq_)
    return output.transpose(1, 2).contiguous()


def deformable_encoder(T, d_model=8, n_levels=2, n_heads=2, n_points=2, num_classes=3):
    nn, F = T.nn, T.nn.functional
    constant_, xavier_uniform_ = nn.init.constant_, nn.init.xavier_uniform_

    class MSDeformAttn(nn.Module):
        def __init__(self):
            super().__init__()
            self.im2col_step = 64
            self.d_model = d_model
            self.n_levels = n_levels
            self.n_heads = n_heads
            self.n_points = n_points
            self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
            self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
            self.value_proj = nn.Linear(d_model, d_model)
            self.output_proj = nn.Linear(d_model, d_model)
            self._reset_parameters()

        def _reset_parameters(self):
            # `constant_(self.sampling_offsets.weight.data, 0.)` there: .data is the raw array (README)
            constant_(self.sampling_offsets.weight, 0.)
            thetas = T.arange(self.n_heads, dtype=T.float32) * (2.0 * math.pi / self.n_heads)
            grid_init = T.stack([thetas.cos(), thetas.sin()], -1)
            grid_init = (grid_init / grid_init.abs().max(-1, keepdim=True)[0]).view(
                self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
            for i in range(self.n_points):
                grid_init[:, :, i, :] *= i + 1
            with T.no_grad():
                self.sampling_offsets.bias = nn.Parameter(grid_init.view(-1))
            constant_(self.attention_weights.weight, 0.)
            constant_(self.attention_weights.bias, 0.)
            xavier_uniform_(self.value_proj.weight)
            constant_(self.value_proj.bias, 0.)
            xavier_uniform_(self.output_proj.weight)
            constant_(self.output_proj.bias, 0.)

        def forward(self, query, reference_points, input_flatten, input_spatial_shapes, input_level_start_index,
                    input_padding_mask=None):
            N, Len_q, _ = query.shape
            N, Len_in, _ = input_flatten.shape
            assert (input_spatial_shapes[:, 0] * input_spatial_shapes[:, 1]).sum() == Len_in
            value = self.value_proj(input_flatten)
            if input_padding_mask is not None:
                value = value.masked_fill(input_padding_mask[..., None], float(0))
            value = value.view(N, Len_in, self.n_heads, self.d_model // self.n_heads)
            sampling_offsets = self.sampling_offsets(query).view(N, Len_q, self.n_heads, self.n_levels,
                                                                 self.n_points, 2)
            attention_weights = self.attention_weights(query).view(N, Len_q, self.n_heads,
                                                                   self.n_levels * self.n_points)
            attention_weights = F.softmax(attention_weights, -1).view(N, Len_q, self.n_heads, self.n_levels,
                                                                      self.n_points)
            # N, Len_q, n_heads, n_levels, n_points, 2
            offset_normalizer = T.stack([input_spatial_shapes[..., 1], input_spatial_shapes[..., 0]], -1)
            sampling_locations = reference_points[:, :, None, :, None, :] \
                + sampling_offsets / offset_normalizer[None, None, None, :, None, :]
            output = ms_deform_attn_core_pytorch(T, value, input_spatial_shapes, sampling_locations,
                                                 attention_weights)
            return self.output_proj(output)

    class DeformableEncoder(nn.Module):
        """One DeformableTransformerEncoderLayer over a two-level backbone, then a per-image classifier."""

        def __init__(self):
            super().__init__()
            self.backbone = nn.ModuleList([nn.Conv2d(1, d_model, 3, padding=1),
                                           nn.Conv2d(d_model, d_model, 3, stride=2, padding=1)])
            self.level_embed = nn.Parameter(T.Tensor(n_levels, d_model))
            nn.init.normal_(self.level_embed)
            self.self_attn = MSDeformAttn()
            self.norm1 = nn.LayerNorm(d_model)
            self.linear1, self.linear2 = nn.Linear(d_model, 16), nn.Linear(16, d_model)
            self.norm2 = nn.LayerNorm(d_model)
            self.class_embed = nn.Linear(d_model, num_classes)

        @staticmethod
        def get_reference_points(spatial_shapes, valid_ratios, device):
            reference_points_list = []
            for lvl, (H_, W_) in enumerate(spatial_shapes):
                ref_y, ref_x = T.meshgrid(T.linspace(0.5, H_ - 0.5, H_, dtype=T.float32, device=device),
                                          T.linspace(0.5, W_ - 0.5, W_, dtype=T.float32, device=device),
                                          indexing="ij")
                ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * H_)
                ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * W_)
                ref = T.stack((ref_x, ref_y), -1)
                reference_points_list.append(ref)
            reference_points = T.cat(reference_points_list, 1)
            return reference_points[:, :, None] * valid_ratios[:, None]

        @staticmethod
        def get_valid_ratio(mask):
            _, H, W = mask.shape
            valid_H = T.sum(~mask[:, :, 0], 1)
            valid_W = T.sum(~mask[:, 0, :], 1)
            valid_ratio_h = valid_H.float() / H
            valid_ratio_w = valid_W.float() / W
            return T.stack([valid_ratio_w, valid_ratio_h], -1)

        def forward(self, images, mask):
            srcs, masks, x = [], [], images
            for conv in self.backbone:
                x = F.relu(conv(x))
                srcs.append(x)
                masks.append(F.interpolate(mask[None].float(), size=x.shape[-2:]).to(T.bool)[0])
            src_flatten, mask_flatten, spatial_shapes = [], [], []
            for lvl, (src, m) in enumerate(zip(srcs, masks)):
                bs, c, h, w = src.shape
                spatial_shapes.append((h, w))
                src_flatten.append(src.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
                mask_flatten.append(m.flatten(1))
            src_flatten, mask_flatten = T.cat(src_flatten, 1), T.cat(mask_flatten, 1)
            spatial_shapes = T.as_tensor(spatial_shapes, dtype=T.long, device=src_flatten.device)
            level_start_index = T.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
            valid_ratios = T.stack([self.get_valid_ratio(m) for m in masks], 1)
            reference_points = self.get_reference_points(spatial_shapes, valid_ratios, device=src_flatten.device)
            src2 = self.self_attn(src_flatten, reference_points, src_flatten, spatial_shapes, level_start_index,
                                  mask_flatten)
            src = self.norm1(src_flatten + src2)
            src = self.norm2(src + self.linear2(F.relu(self.linear1(src))))
            keep = (~mask_flatten).float().unsqueeze(-1)
            return self.class_embed((src * keep).sum(1) / keep.sum(1))

    return DeformableEncoder()


def train_deformable_encoder(T, device, init, images, masks, labels, steps=3):
    device = device_of(T, device)
    model = ported_model(T, deformable_encoder, init, device)
    param_dicts = [  # Deformable DETR's main.py: a lower learning rate for the sampling offsets
        {"params": [p for n, p in model.named_parameters() if "sampling_offsets" not in n], "lr": 1e-2},
        {"params": [p for n, p in model.named_parameters() if "sampling_offsets" in n], "lr": 1e-3},
    ]
    opt = T.optim.AdamW(param_dicts, lr=1e-2, weight_decay=1e-4)
    losses = []
    for step in range(steps):
        x, m = T.from_numpy(images[step]).to(device), T.from_numpy(masks[step]).to(device)
        loss = T.nn.functional.cross_entropy(model(x, m), T.from_numpy(labels[step]).to(device))
        opt.zero_grad()
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_deformable_detr_attention(device):
    rng = np.random.default_rng(8)
    images = rng.standard_normal((3, 2, 1, 8, 6)).astype(np.float32)
    masks = np.zeros((3, 2, 8, 6), bool)
    masks[:, 1, 6:, :] = True  # the second image is padded at the bottom and right, as NestedTensor pads
    masks[:, 1, :, 4:] = True
    labels = rng.integers(0, 3, (3, 2))
    torch.manual_seed(0)
    init = numpy_state(deformable_encoder(torch))
    init["self_attn.attention_weights.weight"] = rng.standard_normal((8, 8)).astype(np.float32)
    run_both(train_deformable_encoder, device, init, images, masks, labels)


# ---- 8. Autoregressive decoding: a nanoGPT with a KV cache (torch.cat on past keys and values), greedy ----
# decoding with HF's repetition penalty, top-k / top-p warpers and beam search with topk over flattened scores

def cached_gpt(T, vocab=11, block_size=16, n_embd=8, n_head=2, n_layer=2):
    nn, F = T.nn, T.nn.functional

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            # nanoGPT's bias=False: a key bias gets no gradient (softmax ignores a shift per query), only
            # rounding noise, which AdamW would blow up to full steps in both libraries differently
            self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
            self.c_proj = nn.Linear(n_embd, n_embd)
            self.register_buffer("bias", T.tril(T.ones(block_size, block_size)).view(1, 1, block_size, block_size))

        def forward(self, x, layer_past=None):
            B, T_, C = x.size()
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            k = k.view(B, T_, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)
            q = q.view(B, T_, n_head, C // n_head).transpose(1, 2)
            v = v.view(B, T_, n_head, C // n_head).transpose(1, 2)
            if layer_past is not None:
                past_key, past_value = layer_past
                k = T.cat((past_key, k), dim=-2)
                v = T.cat((past_value, v), dim=-2)
            present = (k, v)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            Tk = k.size(-2)
            att = att.masked_fill(self.bias[:, :, Tk - T_:Tk, :Tk] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T_, C)
            return self.c_proj(y), present

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

        def forward(self, x, layer_past=None):
            a, present = self.attn(self.ln_1(x), layer_past)
            x = x + a
            return x + self.mlp(self.ln_2(x)), present

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, n_embd)
            self.wpe = nn.Embedding(block_size, n_embd)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.wte.weight = self.lm_head.weight

        def forward(self, idx, past_key_values=None):
            past_length = 0 if past_key_values is None else past_key_values[0][0].size(-2)
            pos = T.arange(past_length, past_length + idx.size(1), dtype=T.long, device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            presents = []
            for i, block in enumerate(self.h):
                x, present = block(x, None if past_key_values is None else past_key_values[i])
                presents.append(present)
            return self.lm_head(self.ln_f(x)), tuple(presents)

    return GPT()


def repetition_penalty(T, input_ids, scores, penalty=1.3):
    # transformers RepetitionPenaltyLogitsProcessor
    score = T.gather(scores, 1, input_ids)
    # if score < 0 then repetition penalty has to be multiplied to reduce the token probabilities
    score = T.where(score < 0, score * penalty, score / penalty)
    return scores.scatter(1, input_ids, score)


def top_k_warper(T, scores, top_k, filter_value=-float("Inf")):
    # transformers TopKLogitsWarper
    top_k = min(top_k, scores.size(-1))  # Safety check
    # Remove all tokens with a probability less than the last token of the top-k
    indices_to_remove = scores < T.topk(scores, top_k)[0][..., -1, None]
    return scores.masked_fill(indices_to_remove, filter_value)


def top_p_warper(T, scores, top_p, filter_value=-float("Inf"), min_tokens_to_keep=1):
    # transformers TopPLogitsWarper (ascending sort: drop the low tail whose mass is at most 1 - top_p)
    sorted_logits, sorted_indices = T.sort(scores, descending=False)
    cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Remove tokens with cumulative top_p above the threshold (token with 0 are kept)
    sorted_indices_to_remove = cumulative_probs <= (1 - top_p)
    # Keep at least min_tokens_to_keep
    sorted_indices_to_remove[..., -min_tokens_to_keep:] = 0
    # scatter sorted tensors to original indexing
    indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
    return scores.masked_fill(indices_to_remove, filter_value)


def generate(T, model, input_ids, max_new_tokens, use_cache=True, uniforms=None):
    """Greedy (uniforms None) or top-k + top-p sampling, the draw made from the given uniforms."""
    past, cur = None, input_ids
    for step in range(max_new_tokens):
        if use_cache:
            logits, past = model(cur, past)
        else:
            logits, _ = model(input_ids)
        scores = repetition_penalty(T, input_ids, logits[:, -1, :])
        if uniforms is None:
            next_tokens = T.argmax(scores, dim=-1)
        else:
            scores = top_p_warper(T, top_k_warper(T, scores / 0.7, top_k=6), top_p=0.9)
            probs = T.nn.functional.softmax(scores, dim=-1)
            # torch.multinomial(probs, 1) there: the two libraries draw differently, so invert the CDF
            u = T.tensor(uniforms[step], device=probs.device)
            next_tokens = T.searchsorted(probs.cumsum(-1), u[:, None]).squeeze(-1).clamp(max=probs.size(-1) - 1)
        input_ids = T.cat([input_ids, next_tokens[:, None]], dim=-1)
        cur = next_tokens[:, None]
    return input_ids


def beam_search(T, model, input_ids, num_beams=3, max_new_tokens=5, length_penalty=1.0):
    """transformers' beam search without EOS: expand, topk over (beams x vocab), reorder the cache."""
    batch_size = input_ids.size(0)
    input_ids = input_ids.repeat_interleave(num_beams, dim=0)
    beam_scores = T.zeros((batch_size, num_beams), dtype=T.float, device=input_ids.device)
    beam_scores[:, 1:] = -1e9  # only the first beam is live at the start: the copies would tie it
    beam_scores = beam_scores.view((batch_size * num_beams,))
    past, cur = None, input_ids
    for _ in range(max_new_tokens):
        logits, past = model(cur, past)
        next_token_scores = T.nn.functional.log_softmax(logits[:, -1, :], dim=-1)  # (batch_size * num_beams, vocab)
        next_token_scores = next_token_scores + beam_scores[:, None].expand_as(next_token_scores)
        vocab_size = next_token_scores.shape[-1]
        next_token_scores = next_token_scores.view(batch_size, num_beams * vocab_size)
        next_token_scores, next_tokens = T.topk(next_token_scores, 2 * num_beams, dim=1, largest=True, sorted=True)
        next_indices = T.div(next_tokens, vocab_size, rounding_mode="floor")
        next_tokens = next_tokens % vocab_size
        beam_scores = next_token_scores[:, :num_beams].reshape(-1)
        beam_next_tokens = next_tokens[:, :num_beams].reshape(-1)
        beam_idx = (next_indices[:, :num_beams]
                    + T.arange(batch_size, device=input_ids.device)[:, None] * num_beams).view(-1)
        input_ids = T.cat([input_ids[beam_idx, :], beam_next_tokens.unsqueeze(-1)], dim=-1)
        # GPT2LMHeadModel._reorder_cache
        past = tuple(tuple(p.index_select(0, beam_idx.to(p.device)) for p in layer_past) for layer_past in past)
        cur = beam_next_tokens[:, None]
    scores = beam_scores.view(batch_size, num_beams) / (input_ids.shape[-1] ** length_penalty)
    best = scores.argmax(dim=1) + T.arange(batch_size, device=input_ids.device) * num_beams
    return input_ids[best], scores


def train_and_decode(T, device, init, seqs, prompts, uniforms, steps=4):
    device = device_of(T, device)
    model = ported_model(T, cached_gpt, init, device)
    opt = T.optim.AdamW(model.parameters(), lr=3e-2, betas=(0.9, 0.95), weight_decay=0.1)
    losses = []
    for step in range(steps):
        x = T.from_numpy(seqs[step]).to(device)
        logits, _ = model(x[:, :-1])
        loss = T.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), x[:, 1:].reshape(-1), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    prompt = T.from_numpy(prompts).to(device)
    with T.no_grad():
        greedy = generate(T, model, prompt, 6)
        assert T.equal(greedy, generate(T, model, prompt, 6, use_cache=False))  # the cache changes nothing
        sampled = generate(T, model, prompt, 6, uniforms=uniforms)
    with T.inference_mode():
        best, scores = beam_search(T, model, prompt)
        scores = model(prompt)[0][:, -1].log_softmax(-1).max(-1).values.tolist() + scores.flatten().tolist()
    return losses + greedy.flatten().tolist() + sampled.flatten().tolist() + best.flatten().tolist() + scores, \
        numpy_state(model)


def test_kv_cache_greedy_sampling_and_beam_search(device):
    rng = np.random.default_rng(9)
    starts = rng.integers(0, 11, (4, 6, 1))
    seqs = (starts + np.arange(12) * rng.integers(1, 3, (4, 6, 1))) % 11  # count up by 1 or 2, modulo 11
    prompts = seqs[0, :2, :4].copy()
    uniforms = rng.random((6, 2)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_and_decode, device, numpy_state(cached_gpt(torch)), seqs, prompts, uniforms)


# ---- 9. Perceiver: learned latents cross-attending to Fourier-encoded inputs (lucidrains/perceiver-pytorch) --
# einops' rearrange / repeat / Reduce written out as reshape, permute and expand

def fourier_encode(T, x, max_freq, num_bands=4):
    x = x.unsqueeze(-1)
    device, dtype, orig_x = x.device, x.dtype, x
    scales = T.linspace(1., max_freq / 2, num_bands, device=device, dtype=dtype)
    scales = scales[(*((None,) * (len(x.shape) - 1)), Ellipsis)]
    x = x * scales * math.pi
    x = T.cat([x.sin(), x.cos()], dim=-1)
    return T.cat((x, orig_x), dim=-1)


def cache_fn(f):
    cache = dict()

    def cached_fn(*args, _cache=True, key=None, **kwargs):
        if not _cache:
            return f(*args, **kwargs)
        if key in cache:
            return cache[key]
        result = f(*args, **kwargs)
        cache[key] = result
        return result

    return cached_fn


def perceiver(T, weight_tie_layers=False, num_freq_bands=3, depth=3, max_freq=5., input_channels=2, input_axis=2,
              num_latents=4, latent_dim=8, cross_heads=1, latent_heads=2, cross_dim_head=4, latent_dim_head=4,
              num_classes=3):
    nn, F = T.nn, T.nn.functional

    class PreNorm(nn.Module):
        def __init__(self, dim, fn, context_dim=None):
            super().__init__()
            self.fn = fn
            self.norm = nn.LayerNorm(dim)
            self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None

        def forward(self, x, **kwargs):
            x = self.norm(x)
            if self.norm_context is not None:
                context = kwargs['context']
                normed_context = self.norm_context(context)
                kwargs.update(context=normed_context)
            return self.fn(x, **kwargs)

    class GEGLU(nn.Module):
        def forward(self, x):
            x, gates = x.chunk(2, dim=-1)
            return x * F.gelu(gates)

    class FeedForward(nn.Module):
        def __init__(self, dim, mult=4, dropout=0.):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(dim, dim * mult * 2), GEGLU(), nn.Linear(dim * mult, dim),
                                     nn.Dropout(dropout))

        def forward(self, x):
            return self.net(x)

    class Attention(nn.Module):
        def __init__(self, query_dim, context_dim=None, heads=8, dim_head=64, dropout=0.):
            super().__init__()
            inner_dim = dim_head * heads
            context_dim = query_dim if context_dim is None else context_dim
            self.scale = dim_head ** -0.5
            self.heads = heads
            self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
            self.to_kv = nn.Linear(context_dim, inner_dim * 2, bias=False)
            self.dropout = nn.Dropout(dropout)
            self.to_out = nn.Linear(inner_dim, query_dim)

        def forward(self, x, context=None, mask=None):
            h = self.heads
            q = self.to_q(x)
            context = x if context is None else context
            k, v = self.to_kv(context).chunk(2, dim=-1)
            # rearrange(t, 'b n (h d) -> (b h) n d', h=h)
            q, k, v = map(lambda t: t.reshape(t.shape[0], t.shape[1], h, -1).permute(0, 2, 1, 3)
                          .reshape(t.shape[0] * h, t.shape[1], -1), (q, k, v))
            sim = T.einsum('b i d, b j d -> b i j', q, k) * self.scale
            if mask is not None:
                mask = mask.reshape(mask.shape[0], -1)  # rearrange(mask, 'b ... -> b (...)')
                max_neg_value = -T.finfo(sim.dtype).max
                mask = mask[:, None, None, :].expand(-1, h, 1, -1).reshape(-1, 1, mask.shape[-1])
                sim.masked_fill_(~mask, max_neg_value)
            attn = sim.softmax(dim=-1)
            attn = self.dropout(attn)
            out = T.einsum('b i j, b j d -> b i d', attn, v)
            out = out.reshape(-1, h, *out.shape[1:]).permute(0, 2, 1, 3).flatten(2)  # '(b h) n d -> b n (h d)'
            return self.to_out(out)

    class MeanTokens(nn.Module):  # einops.layers.torch.Reduce('b n d -> b d', 'mean')
        def forward(self, x):
            return x.mean(dim=1)

    class Perceiver(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_axis = input_axis
            self.max_freq = max_freq
            self.num_freq_bands = num_freq_bands
            fourier_channels = input_axis * ((num_freq_bands * 2) + 1)
            input_dim = fourier_channels + input_channels
            self.latents = nn.Parameter(T.randn(num_latents, latent_dim))

            def get_cross_attn():
                return PreNorm(latent_dim, Attention(latent_dim, input_dim, heads=cross_heads, dim_head=cross_dim_head),
                               context_dim=input_dim)

            def get_cross_ff():
                return PreNorm(latent_dim, FeedForward(latent_dim))

            def get_latent_attn():
                return PreNorm(latent_dim, Attention(latent_dim, heads=latent_heads, dim_head=latent_dim_head))

            def get_latent_ff():
                return PreNorm(latent_dim, FeedForward(latent_dim))

            get_cross_attn, get_cross_ff, get_latent_attn, get_latent_ff = map(
                cache_fn, (get_cross_attn, get_cross_ff, get_latent_attn, get_latent_ff))
            self.layers = nn.ModuleList([])
            for i in range(depth):
                should_cache = i > 0 and weight_tie_layers
                cache_args = {'_cache': should_cache}
                self_attns = nn.ModuleList([])
                self_attns.append(nn.ModuleList([get_latent_attn(**cache_args, key=0),
                                                 get_latent_ff(**cache_args, key=0)]))
                self.layers.append(nn.ModuleList([get_cross_attn(**cache_args), get_cross_ff(**cache_args),
                                                  self_attns]))
            self.to_logits = nn.Sequential(MeanTokens(), nn.LayerNorm(latent_dim), nn.Linear(latent_dim, num_classes))

        def forward(self, data, mask=None):
            b, *axis, _, device, dtype = *data.shape, data.device, data.dtype
            assert len(axis) == self.input_axis, 'input data must have the right number of axis'
            # calculate fourier encoded positions in the range of [-1, 1], for all axis
            axis_pos = list(map(lambda size: T.linspace(-1., 1., steps=size, device=device, dtype=dtype), axis))
            pos = T.stack(T.meshgrid(*axis_pos, indexing='ij'), dim=-1)
            enc_pos = fourier_encode(T, pos, self.max_freq, self.num_freq_bands)
            enc_pos = enc_pos.flatten(-2)  # rearrange(enc_pos, '... n d -> ... (n d)')
            enc_pos = enc_pos.expand(b, *enc_pos.shape)  # repeat(enc_pos, '... -> b ...', b=b)
            data = T.cat((data, enc_pos), dim=-1)
            data = data.reshape(b, -1, data.shape[-1])  # rearrange(data, 'b ... d -> b (...) d')
            x = self.latents.unsqueeze(0).expand(b, -1, -1)  # repeat(self.latents, 'n d -> b n d', b=b)
            for cross_attn, cross_ff, self_attns in self.layers:
                x = cross_attn(x, context=data, mask=mask) + x
                x = cross_ff(x) + x
                for self_attn, self_ff in self_attns:
                    x = self_attn(x) + x
                    x = self_ff(x) + x
            return self.to_logits(x)

    return Perceiver()


def train_perceiver(T, device, init, images, masks, labels, weight_tie_layers, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lambda T: perceiver(T, weight_tie_layers), init, device)
    opt = T.optim.Adam(model.parameters(), lr=3e-3)
    sched = T.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses = []
    for step in range(steps):
        x, m = T.from_numpy(images[step]).to(device), T.from_numpy(masks[step]).to(device)
        loss = T.nn.functional.cross_entropy(model(x, mask=m), T.from_numpy(labels[step]).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


@pytest.mark.parametrize("weight_tie_layers", [False, True])
def test_perceiver(device, weight_tie_layers):
    rng = np.random.default_rng(10)
    images = rng.standard_normal((3, 3, 3, 4, 2)).astype(np.float32)  # (steps, b, h, w, channels)
    masks = np.ones((3, 3, 3, 4), bool)
    masks[:, 0, :, 3] = False  # the first image is narrower: its last column is padding
    labels = rng.integers(0, 3, (3, 3))
    torch.manual_seed(0)
    model = perceiver(torch, weight_tie_layers)
    # lucidrains ties layers 1 .. depth - 1 (layer 0 is built uncached): shared modules, repeated state keys
    assert (len(model.state_dict()) > len(list(model.parameters()))) == weight_tie_layers
    run_both(train_perceiver, device, numpy_state(model), images, masks, labels, weight_tie_layers)


# ---- 10. E(n)-equivariant GNN (vgsatorras/egnn models/gcl.py E_GCL, models/egnn_clean) on an n-body batch --

def unsorted_segment_sum(data, segment_ids, num_segments, via="scatter_add_"):
    result_shape = (num_segments, data.size(1))
    if via == "index_add_":  # the same sum as forks write it
        return data.new_zeros(result_shape).index_add_(0, segment_ids, data)
    result = data.new_full(result_shape, 0)  # Init empty result tensor.
    segment_ids = segment_ids.unsqueeze(-1).expand(-1, data.size(1))
    result.scatter_add_(0, segment_ids, data)
    return result


def unsorted_segment_mean(T, data, segment_ids, num_segments):
    result_shape = (num_segments, data.size(1))
    segment_ids = segment_ids.unsqueeze(-1).expand(-1, data.size(1))
    result = data.new_full(result_shape, 0)  # Init empty result tensor.
    count = data.new_full(result_shape, 0)
    result.scatter_add_(0, segment_ids, data)
    count.scatter_add_(0, segment_ids, T.ones_like(data))
    return result / count.clamp(min=1)


def egnn(T, attention=False, normalize=False, tanh=False, coords_agg="mean", in_node_nf=1, hidden_nf=8,
         out_node_nf=1, in_edge_nf=1, n_layers=2):
    nn = T.nn

    class E_GCL(nn.Module):
        def __init__(self, input_nf, output_nf, hidden_nf, edges_in_d=0, act_fn=nn.SiLU(), residual=True):
            super().__init__()
            input_edge = input_nf * 2
            self.residual = residual
            self.attention = attention
            self.normalize = normalize
            self.coords_agg = coords_agg
            self.tanh = tanh
            self.epsilon = 1e-8
            edge_coords_nf = 1
            self.edge_mlp = nn.Sequential(nn.Linear(input_edge + edge_coords_nf + edges_in_d, hidden_nf), act_fn,
                                          nn.Linear(hidden_nf, hidden_nf), act_fn)
            self.node_mlp = nn.Sequential(nn.Linear(hidden_nf + input_nf, hidden_nf), act_fn,
                                          nn.Linear(hidden_nf, output_nf))
            layer = nn.Linear(hidden_nf, 1, bias=False)
            T.nn.init.xavier_uniform_(layer.weight, gain=0.001)
            coord_mlp = []
            coord_mlp.append(nn.Linear(hidden_nf, hidden_nf))
            coord_mlp.append(act_fn)
            coord_mlp.append(layer)
            if self.tanh:
                coord_mlp.append(nn.Tanh())
            self.coord_mlp = nn.Sequential(*coord_mlp)
            if self.attention:
                self.att_mlp = nn.Sequential(nn.Linear(hidden_nf, 1), nn.Sigmoid())

        def edge_model(self, source, target, radial, edge_attr):
            if edge_attr is None:  # Unused.
                out = T.cat([source, target, radial], dim=1)
            else:
                out = T.cat([source, target, radial, edge_attr], dim=1)
            out = self.edge_mlp(out)
            if self.attention:
                att_val = self.att_mlp(out)
                out = out * att_val
            return out

        def node_model(self, x, edge_index, edge_attr, node_attr):
            row, col = edge_index
            agg = unsorted_segment_sum(edge_attr, row, num_segments=x.size(0),
                                       via="index_add_" if self.coords_agg == "sum" else "scatter_add_")
            if node_attr is not None:
                agg = T.cat([x, agg, node_attr], dim=1)
            else:
                agg = T.cat([x, agg], dim=1)
            out = self.node_mlp(agg)
            if self.residual:
                out = x + out
            return out, agg

        def coord_model(self, coord, edge_index, coord_diff, edge_feat):
            row, col = edge_index
            trans = coord_diff * self.coord_mlp(edge_feat)
            if self.coords_agg == 'sum':
                agg = unsorted_segment_sum(trans, row, num_segments=coord.size(0))
            elif self.coords_agg == 'mean':
                agg = unsorted_segment_mean(T, trans, row, num_segments=coord.size(0))
            else:
                raise Exception('Wrong coords_agg parameter %s' % self.coords_agg)
            return coord + agg

        def coord2radial(self, edge_index, coord):
            row, col = edge_index
            coord_diff = coord[row] - coord[col]
            radial = T.sum(coord_diff**2, 1).unsqueeze(1)
            if self.normalize:
                norm = T.sqrt(radial).detach() + self.epsilon
                coord_diff = coord_diff / norm
            return radial, coord_diff

        def forward(self, h, edge_index, coord, edge_attr=None, node_attr=None):
            row, col = edge_index
            radial, coord_diff = self.coord2radial(edge_index, coord)
            edge_feat = self.edge_model(h[row], h[col], radial, edge_attr)
            coord = self.coord_model(coord, edge_index, coord_diff, edge_feat)
            h, agg = self.node_model(h, edge_index, edge_feat, node_attr)
            return h, coord, edge_attr

    class EGNN(nn.Module):
        def __init__(self, act_fn=nn.SiLU()):
            super().__init__()
            self.hidden_nf = hidden_nf
            self.n_layers = n_layers
            self.embedding_in = nn.Linear(in_node_nf, self.hidden_nf)
            self.embedding_out = nn.Linear(self.hidden_nf, out_node_nf)
            for i in range(0, n_layers):
                self.add_module("gcl_%d" % i, E_GCL(self.hidden_nf, self.hidden_nf, self.hidden_nf,
                                                    edges_in_d=in_edge_nf, act_fn=act_fn))

        def forward(self, h, x, edges, edge_attr):
            h = self.embedding_in(h)
            for i in range(0, self.n_layers):
                h, x, _ = self._modules["gcl_%d" % i](h, edges, x, edge_attr=edge_attr)
            h = self.embedding_out(h)
            return h, x

    return EGNN()


def get_edges_batch(T, n_nodes, batch_size):
    rows, cols = [], []
    for i in range(n_nodes):
        for j in range(n_nodes):
            if i != j:
                rows.append(i)
                cols.append(j)
    edges = [rows, cols]
    edge_attr = T.ones(len(edges[0]) * batch_size, 1)
    edges = [T.tensor(edges[0], dtype=T.long), T.tensor(edges[1], dtype=T.long)]  # T.LongTensor(...) there
    rows, cols = [], []
    for i in range(batch_size):
        rows.append(edges[0] + n_nodes * i)
        cols.append(edges[1] + n_nodes * i)
    return [T.cat(rows), T.cat(cols)], edge_attr


def train_egnn(T, device, init, loc, vel, charges, target, rotation, flags, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lambda T: egnn(T, **flags), init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-12)
    loss_mse = T.nn.MSELoss()
    n_nodes, batch_size = 4, len(loc[0]) // 4
    edges, _ = get_edges_batch(T, n_nodes, batch_size)
    edges = [e.to(device) for e in edges]
    losses = []
    for step in range(steps):
        x, v = T.from_numpy(loc[step]).to(device), T.from_numpy(vel[step]).to(device)
        q, y = T.from_numpy(charges[step]).to(device), T.from_numpy(target[step]).to(device)
        nodes = T.sqrt(T.sum(v ** 2, dim=1)).unsqueeze(1).detach()  # main_nbody.py: |velocity| as node feature
        rows, cols = edges
        loc_dist = T.sum((x[rows] - x[cols]) ** 2, 1).unsqueeze(1)  # relative distances among locations
        edge_attr = T.cat([q[rows] * q[cols], loc_dist], 1).detach()  # concatenate all edge properties
        optimizer.zero_grad()
        _, loc_pred = model(nodes, x.detach(), edges, edge_attr[:, :1])
        loss = loss_mse(loc_pred, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # E(n) equivariance: rotating and shifting the input turns and moves the predicted positions alike
    model.eval()
    with T.no_grad():
        R, shift = T.from_numpy(rotation).to(device), T.tensor([0.5, -1.0, 2.0], device=device)
        h, out = model(nodes, x, edges, edge_attr[:, :1])
        h_rot, out_rot = model(nodes, x @ R.T + shift, edges, edge_attr[:, :1])
        assert T.allclose(h_rot, h, atol=1e-4) and T.allclose(out_rot, out @ R.T + shift, atol=1e-4)
    return losses + out.flatten().tolist(), numpy_state(model)


@pytest.mark.parametrize("flags", [{}, {"attention": True, "normalize": True, "tanh": True},
                                   {"coords_agg": "sum"}], ids=["mean", "attention-normalize-tanh", "sum"])
def test_egnn_nbody(device, flags):
    rng = np.random.default_rng(11)
    loc = rng.standard_normal((3, 8, 3)).astype(np.float32)  # two systems of four particles per batch
    vel = rng.standard_normal((3, 8, 3)).astype(np.float32)
    charges = rng.choice([-1.0, 1.0], (3, 8, 1)).astype(np.float32)
    target = (loc + 0.5 * vel).astype(np.float32)
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0].astype(np.float32)
    torch.manual_seed(0)
    run_both(train_egnn, device, numpy_state(egnn(torch, **flags)), loc, vel, charges, target, rotation, flags)


# ---- 11. Modern Hopfield networks (ml-jku/hopfield-layers): HopfieldPooling for multiple-instance learning, --
# with hopfield_core_forward's update loop (active heads, a data-dependent stop) condensed, and retrieval

def hopfield_mil(T, input_size=6, hidden_size=4, num_heads=2, quantity=1, update_steps_max=3, update_steps_eps=1e-4):
    nn, F = T.nn, T.nn.functional

    class HopfieldPooling(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_heads, self.head_dim = num_heads, hidden_size
            self.scaling = hidden_size ** -0.5
            self.pooling_weights = nn.Parameter(T.empty(size=(1, quantity, input_size)))  # the state pattern
            nn.init.normal_(self.pooling_weights, mean=0.0, std=0.5)
            self.norm_stored_pattern = nn.LayerNorm(input_size)
            self.norm_state_pattern = nn.LayerNorm(input_size)
            self.norm_pattern_projection = nn.LayerNorm(input_size)
            self.q_proj = nn.Linear(input_size, num_heads * hidden_size)
            self.k_proj = nn.Linear(input_size, num_heads * hidden_size)
            self.v_proj = nn.Linear(input_size, num_heads * hidden_size)
            self.out_proj = nn.Linear(num_heads * hidden_size, input_size)

        def heads(self, x):
            # (bsz, len, heads * dim) -> (bsz * heads, len, dim), as multi_head_attention_forward lays it out
            length, bsz = x.shape[1], x.shape[0]
            return x.transpose(0, 1).contiguous().view(length, bsz * self.num_heads, self.head_dim).transpose(0, 1)

        def forward(self, input, stored_pattern_padding_mask=None):
            bsz, src_len = input.shape[0], input.shape[1]
            state_pattern = self.pooling_weights.expand(bsz, -1, -1)
            tgt_len = state_pattern.shape[1]
            stored_pattern = self.norm_stored_pattern(input)
            state_pattern = self.norm_state_pattern(state_pattern)
            pattern_projection = self.norm_pattern_projection(input)
            q = self.heads(self.q_proj(state_pattern) * self.scaling)
            k = self.heads(self.k_proj(stored_pattern))
            v = self.heads(self.v_proj(pattern_projection))

            update_active_heads = T.tensor([[[True]]] * self.num_heads * bsz, device=q.device)
            assert update_active_heads.any(), "at least one head needs to be active."
            update_step = 0
            while update_active_heads.any():
                # calculate association matrix
                attn_output_weights = T.bmm(q, k.transpose(1, 2))
                assert list(attn_output_weights.size()) == [bsz * self.num_heads, tgt_len, src_len]
                if stored_pattern_padding_mask is not None:
                    attn_output_weights = attn_output_weights.view(bsz, self.num_heads, tgt_len, src_len)
                    attn_output_weights = attn_output_weights.masked_fill(
                        stored_pattern_padding_mask.unsqueeze(1).unsqueeze(2), float('-inf'))
                    attn_output_weights = attn_output_weights.view(bsz * self.num_heads, tgt_len, src_len)
                # apply hopfield update rule
                attn_output_weights = F.softmax(attn_output_weights, dim=-1)
                xi_old = q
                xi = T.bmm(attn_output_weights, k) * self.scaling
                # not `&=`: masked_scatter saved the mask for backward (torch refuses the in-place change)
                update_active_heads = update_active_heads & (
                    (xi - xi_old).norm(dim=2).max(axis=1).values > update_steps_eps).view(-1, 1, 1)
                q = T.masked_scatter(input=xi_old, mask=update_active_heads, source=xi)
                update_step += 1
                if update_step >= update_steps_max:
                    break
            attn_output = T.bmm(attn_output_weights, v)
            attn_output = attn_output.transpose(0, 1).contiguous().view(tgt_len, bsz, -1).transpose(0, 1)
            return self.out_proj(attn_output).flatten(start_dim=1)

    class HopfieldMIL(nn.Module):  # hopfield-layers examples/mnist_bags, scaled down
        def __init__(self):
            super().__init__()
            self.embedding = nn.Sequential(nn.Linear(3, input_size), nn.ReLU())
            self.pooling = HopfieldPooling()
            self.classifier = nn.Linear(input_size * quantity, 1)

        def forward(self, bags, mask):
            return self.classifier(self.pooling(self.embedding(bags), stored_pattern_padding_mask=mask)).squeeze(-1)

    return HopfieldMIL()


def hopfield_retrieve(T, patterns, query, beta=8.0, steps=3):
    """Ramsauer et al.'s update xi <- X softmax(beta X^T xi): one step retrieves a well-separated pattern."""
    X = patterns.T  # (dim, N): stored patterns as columns
    xi = query
    for _ in range(steps):
        xi = X @ T.softmax(beta * X.T @ xi, dim=0)
    return xi


def train_hopfield_mil(T, device, init, bags, masks, labels, patterns, query, steps=4):
    device = device_of(T, device)
    model = ported_model(T, hopfield_mil, init, device)
    opt = T.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-4)
    losses = []
    for step in range(steps):
        x, m = T.from_numpy(bags[step]).to(device), T.from_numpy(masks[step]).to(device)
        y = T.from_numpy(labels[step]).to(device)
        logits = model(x, m)
        loss = T.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses += [loss.item(), ((logits > 0).float() == y).float().mean().item()]
    stored = T.from_numpy(patterns).to(device)
    retrieved = hopfield_retrieve(T, stored, T.from_numpy(query).to(device))
    assert T.argmax(stored @ retrieved).item() == 2
    return losses + retrieved.tolist(), numpy_state(model)


def test_hopfield_pooling_and_retrieval(device):
    rng = np.random.default_rng(12)
    bags = rng.standard_normal((4, 4, 5, 3)).astype(np.float32)  # (steps, bags, instances, features)
    lengths = rng.integers(2, 6, (4, 4))
    masks = np.arange(5) >= lengths[..., None]  # True where a bag is padded
    labels = ((bags[..., 0] > 1.0) & ~masks).any(-1).astype(np.float32)
    patterns = np.sign(rng.standard_normal((5, 16))).astype(np.float32)
    query = patterns[2] * np.where(np.arange(16) < 3, -1, 1).astype(np.float32)  # three signs flipped
    assert np.argmax(patterns @ query) == 2
    torch.manual_seed(0)
    run_both(train_hopfield_mil, device, numpy_state(hopfield_mil(torch)), bags, masks, labels, patterns, query)


# ---- 12. Deep equilibrium model (the NeurIPS 2020 implicit-layers tutorial, chapter 4): a fixed point found --
# without a graph by Anderson acceleration, its backward solved inside a tensor hook by autograd.grad

def forward_iteration(f, x0, max_iter=50, tol=1e-2):
    f0 = f(x0)
    res = []
    for k in range(max_iter):
        x = f0
        f0 = f(x)
        res.append((f0 - x).norm().item() / (1e-5 + f0.norm().item()))
        if (res[-1] < tol):
            break
    return f0, res


def anderson_solver(T):
    def anderson(f, x0, m=5, lam=1e-4, max_iter=50, tol=1e-2, beta=1.0):
        """ Anderson acceleration for fixed point iteration. """
        bsz, d, H, W = x0.shape
        X = T.zeros(bsz, m, d * H * W, dtype=x0.dtype, device=x0.device)
        F = T.zeros(bsz, m, d * H * W, dtype=x0.dtype, device=x0.device)
        X[:, 0], F[:, 0] = x0.view(bsz, -1), f(x0).view(bsz, -1)
        X[:, 1], F[:, 1] = F[:, 0], f(F[:, 0].view_as(x0)).view(bsz, -1)
        H = T.zeros(bsz, m + 1, m + 1, dtype=x0.dtype, device=x0.device)
        H[:, 0, 1:] = H[:, 1:, 0] = 1
        y = T.zeros(bsz, m + 1, 1, dtype=x0.dtype, device=x0.device)
        y[:, 0] = 1
        res = []
        for k in range(2, max_iter):
            n = min(k, m)
            G = F[:, :n] - X[:, :n]
            H[:, 1:n + 1, 1:n + 1] = (T.bmm(G, G.transpose(1, 2))
                                      + lam * T.eye(n, dtype=x0.dtype, device=x0.device)[None])
            # torch.solve(y[:, :n+1], H[:, :n+1, :n+1])[0] in the tutorial; torch.solve is gone since 1.9
            alpha = T.linalg.solve(H[:, :n + 1, :n + 1], y[:, :n + 1])[:, 1:n + 1, 0]  # (bsz x n)
            X[:, k % m] = beta * (alpha[:, None] @ F[:, :n])[:, 0] + (1 - beta) * (alpha[:, None] @ X[:, :n])[:, 0]
            F[:, k % m] = f(X[:, k % m].view_as(x0)).view(bsz, -1)
            res.append((F[:, k % m] - X[:, k % m]).norm().item() / (1e-5 + F[:, k % m].norm().item()))
            if (res[-1] < tol):
                break
        return X[:, k % m].view_as(x0), res

    return anderson


def jac_loss_estimate(autograd, f0, z0, vecs):
    """locuslab/deq lib/jacobian.py: Hutchinson's estimate of ||J_f(z*)||_F^2, differentiable (create_graph).
    torch.randn(*z0.shape) there: the probe vectors are given, since the libraries draw differently."""
    result = 0
    for v in vecs:
        vJ = autograd.grad(f0, z0, v, retain_graph=True, create_graph=True)[0]
        result += vJ.norm() ** 2
    return result / len(vecs) / np.prod(z0.shape)


def deq_model(T, solver="anderson", chan=4, num_groups=2, tol=1e-4, max_iter=25):
    nn, F = T.nn, T.nn.functional
    autograd = T.autograd

    class ResNetLayer(nn.Module):
        def __init__(self, n_channels, n_inner_channels, kernel_size=3, num_groups=8):
            super().__init__()
            self.conv1 = nn.Conv2d(n_channels, n_inner_channels, kernel_size, padding=kernel_size // 2, bias=False)
            self.conv2 = nn.Conv2d(n_inner_channels, n_channels, kernel_size, padding=kernel_size // 2, bias=False)
            self.norm1 = nn.GroupNorm(num_groups, n_inner_channels)
            self.norm2 = nn.GroupNorm(num_groups, n_channels)
            self.norm3 = nn.GroupNorm(num_groups, n_channels)
            # `self.conv1.weight.data.normal_(0, 0.01)` there: .data is the raw array (README, Differences)
            nn.init.normal_(self.conv1.weight, 0, 0.01)
            nn.init.normal_(self.conv2.weight, 0, 0.01)

        def forward(self, z, x):
            y = self.norm1(F.relu(self.conv1(z)))
            return self.norm3(F.relu(z + self.norm2(x + self.conv2(y))))

    class DEQFixedPoint(nn.Module):
        def __init__(self, f, solver, **kwargs):
            super().__init__()
            self.f = f
            self.solver = solver
            self.kwargs = kwargs
            self.jac_vecs = None  # set to probe vectors for locuslab/deq's Jacobian regularization

        def forward(self, x):
            # compute forward pass and re-engage autograd tape
            with T.no_grad():
                z, self.forward_res = self.solver(lambda z: self.f(z, x), T.zeros_like(x), **self.kwargs)
            z = self.f(z, x)

            # set up Jacobian vector product (without additional forward calls)
            z0 = z.clone().detach().requires_grad_()
            f0 = self.f(z0, x)

            def backward_hook(grad):
                g, self.backward_res = self.solver(lambda y: autograd.grad(f0, z0, y, retain_graph=True)[0] + grad,
                                                   grad, **self.kwargs)
                return g

            z.register_hook(backward_hook)
            if self.training and self.jac_vecs is not None:
                # on a graph of its own: loss.backward() through the estimate would free f0's, which the hook
                # still differentiates (torch: "Trying to backward through the graph a second time")
                z1 = z.clone().detach().requires_grad_()
                self.jac_loss = jac_loss_estimate(autograd, self.f(z1, x), z1, self.jac_vecs)
            return z

    f = ResNetLayer(chan, 8, kernel_size=3, num_groups=num_groups)
    solve = anderson_solver(T) if solver == "anderson" else forward_iteration
    kwargs = dict(tol=tol, max_iter=max_iter) if solver != "anderson" else dict(tol=tol, max_iter=max_iter, m=5)
    # bias=True in the tutorial: BatchNorm subtracts it again, so its gradient is rounding noise, which Adam
    # scales up to full steps differently in each library
    return nn.Sequential(nn.Conv2d(1, chan, kernel_size=3, bias=False, padding=1),
                         nn.BatchNorm2d(chan),
                         DEQFixedPoint(f, solve, **kwargs),
                         nn.BatchNorm2d(chan),
                         nn.AvgPool2d(4, 4),
                         nn.Flatten(),
                         nn.Linear(chan * 2 * 2, 3))


def train_deq(T, device, init, images, labels, solver, jac_vecs=None, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lambda T: deq_model(T, solver), init, device)
    if jac_vecs is not None:
        model[2].jac_vecs = [T.from_numpy(v).to(device) for v in jac_vecs]
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = T.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-6)
    losses = []
    for step in range(steps):
        X, y = T.from_numpy(images[step]).to(device), T.from_numpy(labels[step]).to(device)
        yp = model(X)
        loss = T.nn.CrossEntropyLoss()(yp, y)
        if jac_vecs is not None:
            loss = loss + 0.5 * model[2].jac_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        scheduler.step()
        deq = model[2]
        losses += [loss.item(), len(deq.forward_res), len(deq.backward_res)]
    return losses, numpy_state(model)


@pytest.mark.parametrize("solver, jacobian_penalty", [("anderson", False), ("anderson", True),
                                                      ("forward_iteration", False)])
def test_deep_equilibrium_implicit_backward(device, solver, jacobian_penalty):
    rng = np.random.default_rng(13)
    images = rng.standard_normal((3, 4, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, (3, 4))
    jac_vecs = rng.standard_normal((2, 4, 4, 8, 8)).astype(np.float32) if jacobian_penalty else None
    torch.manual_seed(0)
    run_both(train_deq, device, numpy_state(deq_model(torch, solver)), images, labels, solver, jac_vecs)


# ---- the gaps these scripts found, at their smallest ----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["sigmoid", "silu", "gelu", "erf",
                                "softplus_backward", "logsigmoid_backward", "mish_backward"])
def test_sigmoid_and_erf_of_a_0d_tensor(op):
    # tensor/ops/unary.py _sigmoid and tensor/ops/_erf.py _erf_single_block run ufuncs with out= on the result
    # of a first ufunc, which NumPy returns as a scalar, not an array, when x is 0-d (CuPy keeps 0-d arrays).
    x = tensor.tensor(0.5, requires_grad=True)
    if op.endswith("_backward"):
        getattr(tensor.nn.functional, op.split("_")[0])(x).backward()
    else:
        (getattr(tensor, op, None) or getattr(tensor.nn.functional, op))(x)


@pytest.mark.parametrize("make", ["empty", "zeros", "ones", "rand", "randn", "new_zeros", "new_ones", "new_empty"])
def test_creation_takes_the_size_keyword(make):
    made = (getattr(tensor.ones(1), make) if make.startswith("new_") else getattr(tensor, make))(size=(1, 2))
    assert made.shape == (1, 2)


def test_custom_function_returning_a_tensor_is_unwrapped_or_refused():
    class Spike(tensor.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            out = tensor.zeros_like(input)  # a Tensor, though forward is handed raw arrays
            out[input > 0] = 1.0
            return out

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output

    try:
        y = Spike.apply(tensor.tensor([-1.0, 2.0], requires_grad=True))
    except TypeError as error:  # refusing is as good as unwrapping, if it says which Function
        assert "Spike" in str(error)
        return
    assert not isinstance(y.data, tensor.Tensor)


def test_module_register_backward_hook():
    calls = []
    layer = tensor.nn.Linear(3, 2)
    layer.register_backward_hook(lambda module, grad_input, grad_output: calls.append(len(grad_output)))
    layer(tensor.ones(4, 3, requires_grad=True)).sum().backward()
    assert calls == [1]
