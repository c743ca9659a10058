"""Scientific-ML scripts as reference implementations write them, ported by imports.

Graph networks in pure PyTorch (GCN, GAT, graph readout: no PyG), contrastive and metric learning
(SimCLR's NT-Xent, triplet losses, knowledge distillation), a physics-informed network (LBFGS then
Adam on a PDE residual), MAML (first and second order) and a neural ODE integrated by hand with RK4.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data, and losses and final parameters agree to float32 accuracy.
"""
import math

import numpy as np
import pytest

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


# ---- 1. Graph neural networks: GCN, GAT, graph classification, all by scatter / index_add ------------

def random_graph(rng, n, e):
    """An undirected edge_index (2, 2e) without self loops, as int64."""
    src = rng.integers(0, n, e)
    dst = (src + rng.integers(1, n, e)) % n
    return np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]).astype(np.int64)


def gcn(T, in_dim=5, hidden=8, classes=3):
    nn, F = T.nn, T.nn.functional

    def add_self_loops(edge_index, num_nodes):
        loop = T.arange(num_nodes, device=edge_index.device)
        loop = loop.unsqueeze(0).repeat(2, 1)
        return T.cat([edge_index, loop], dim=1)

    def gcn_norm(edge_index, num_nodes):
        row, col = edge_index
        deg = T.zeros(num_nodes, device=edge_index.device).scatter_add_(
            0, row, T.ones(row.size(0), device=edge_index.device))
        deg_inv_sqrt = deg.pow(-0.5)
        deg_inv_sqrt.masked_fill_(deg_inv_sqrt == float('inf'), 0)
        return deg_inv_sqrt[row] * deg_inv_sqrt[col]

    class GCNConv(nn.Module):
        def __init__(self, in_channels, out_channels, scatter):
            super().__init__()
            self.lin = nn.Linear(in_channels, out_channels, bias=False)
            self.bias = nn.Parameter(T.zeros(out_channels))
            self.scatter = scatter

        def forward(self, x, edge_index):
            edge_index = add_self_loops(edge_index, x.size(0))
            x = self.lin(x)
            row, col = edge_index
            norm = gcn_norm(edge_index, x.size(0))
            msg = x[col] * norm.view(-1, 1)
            if self.scatter:
                out = T.zeros(x.size(0), x.size(1), device=x.device).scatter_add_(
                    0, row.unsqueeze(-1).expand_as(msg), msg)
            else:
                out = T.zeros_like(x)
                out.index_add_(0, row, msg)
            return out + self.bias

    class GCN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GCNConv(in_dim, hidden, scatter=True)
            self.conv2 = GCNConv(hidden, classes, scatter=False)

        def forward(self, x, edge_index):
            x = F.dropout(x, p=0.5, training=False)
            x = F.relu(self.conv1(x, edge_index))
            x = F.dropout(x, p=0.5, training=False)
            x = self.conv2(x, edge_index)
            return F.log_softmax(x, dim=1)

    return GCN()


def train_gcn(T, device, init, x, edge_index, y, train_mask, steps=4):
    device = device_of(T, device)
    model = ported_model(T, gcn, init, device)
    x, edge_index, y = T.tensor(x).to(device), T.from_numpy(edge_index).to(device), T.tensor(y).to(device)
    train_mask = T.tensor(train_mask, dtype=T.bool).to(device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    losses = []
    for epoch in range(steps):
        model.train()
        optimizer.zero_grad()
        out = model(x, edge_index)
        loss = T.nn.functional.nll_loss(out[train_mask], y[train_mask])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        pred = model(x, edge_index).argmax(dim=1)
        correct = (pred[~train_mask] == y[~train_mask]).sum()
        acc = int(correct) / int((~train_mask).sum())
    return losses + [acc], numpy_state(model)


def test_gcn_node_classification(device):
    rng = np.random.default_rng(0)
    n = 10
    x = rng.standard_normal((n, 5)).astype(np.float32)
    edge_index = random_graph(rng, n, 14)
    y = rng.integers(0, 3, n)
    train_mask = np.arange(n) < 6
    torch.manual_seed(0)
    run_both(train_gcn, device, numpy_state(gcn(torch)), x, edge_index, y, train_mask)


def gat(T, in_dim=5, hidden=4, heads=2, classes=3):
    nn, F = T.nn, T.nn.functional

    def scatter_softmax(src, index, num_nodes):
        """softmax of src (E, H) over the edges that share index (E,): torch_scatter-free."""
        src_max = T.zeros(num_nodes, src.size(1), device=src.device).index_reduce_(
            0, index, src.detach(), 'amax', include_self=False)
        out = (src - src_max[index]).exp()
        denom = T.zeros(num_nodes, src.size(1), device=src.device).index_add_(0, index, out)
        return out / (denom[index] + 1e-16)

    class GATLayer(nn.Module):
        def __init__(self, in_features, out_features, heads, concat=True):
            super().__init__()
            self.heads, self.out_features, self.concat = heads, out_features, concat
            self.W = nn.Linear(in_features, heads * out_features, bias=False)
            self.att_src = nn.Parameter(T.empty(1, heads, out_features))
            self.att_dst = nn.Parameter(T.empty(1, heads, out_features))
            nn.init.xavier_uniform_(self.att_src)
            nn.init.xavier_uniform_(self.att_dst)

        def forward(self, x, edge_index):
            N = x.size(0)
            loop = T.arange(N, device=x.device)
            edge_index = T.cat([edge_index, T.stack([loop, loop])], dim=1)
            src, dst = edge_index[0], edge_index[1]
            h = self.W(x).view(-1, self.heads, self.out_features)
            alpha_src = (h * self.att_src).sum(dim=-1)
            alpha_dst = (h * self.att_dst).sum(dim=-1)
            alpha = alpha_src[src] + alpha_dst[dst]
            alpha = F.leaky_relu(alpha, 0.2)
            alpha = scatter_softmax(alpha, dst, N)
            alpha = F.dropout(alpha, p=0.6, training=False)
            out = T.zeros(N, self.heads, self.out_features, device=x.device)
            out.index_add_(0, dst, h[src] * alpha.unsqueeze(-1))
            if self.concat:
                return out.reshape(N, self.heads * self.out_features)
            return out.mean(dim=1)

    class GAT(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GATLayer(in_dim, hidden, heads)
            self.conv2 = GATLayer(hidden * heads, classes, 1, concat=False)

        def forward(self, x, edge_index):
            x = F.elu(self.conv1(x, edge_index))
            return F.log_softmax(self.conv2(x, edge_index), dim=-1)

    return GAT()


def train_gat(T, device, init, x, edge_index, y, train_mask, steps=4):
    device = device_of(T, device)
    model = ported_model(T, gat, init, device)
    x, edge_index, y = T.from_numpy(x).to(device), T.from_numpy(edge_index).to(device), T.tensor(y).to(device)
    train_mask = T.from_numpy(train_mask).to(device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x, edge_index)
        loss = T.nn.functional.nll_loss(out[train_mask], y[train_mask])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


@pytest.mark.filterwarnings("ignore:index_reduce")  # torch: "index_reduce() is in beta"
def test_gat_node_classification(device):
    rng = np.random.default_rng(1)
    n = 9
    x = rng.standard_normal((n, 5)).astype(np.float32)
    edge_index = random_graph(rng, n, 12)
    y = rng.integers(0, 3, n)
    train_mask = rng.random(n) < 0.7
    torch.manual_seed(0)
    run_both(train_gat, device, numpy_state(gat(torch)), x, edge_index, y, train_mask)


def graph_classifier(T, in_dim=4, hidden=6, classes=2):
    nn = T.nn

    class GraphConv(nn.Module):
        """x_i' = W1 x_i + W2 sum_{j in N(i)} x_j (GraphConv / GIN-style sum aggregation)."""

        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.lin_rel = nn.Linear(in_channels, out_channels)
            self.lin_root = nn.Linear(in_channels, out_channels, bias=False)

        def forward(self, x, edge_index):
            src, dst = edge_index
            agg = x.new_zeros(x.shape).index_add_(0, dst, x.index_select(0, src))
            return self.lin_rel(agg) + self.lin_root(x)

    def global_mean_pool(x, batch, size=None):
        size = int(batch.max().item() + 1) if size is None else size
        out = T.zeros(size, x.size(-1), dtype=x.dtype, device=x.device).index_add_(0, batch, x)
        count = T.bincount(batch, minlength=size).clamp(min=1).to(x.dtype)
        return out / count.unsqueeze(-1)

    def global_max_pool(x, batch, size):
        index = batch.view(-1, 1).expand_as(x)
        return T.full((size, x.size(-1)), float('-inf'), device=x.device).scatter_reduce(
            0, index, x, reduce='amax', include_self=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GraphConv(in_dim, hidden)
            self.conv2 = GraphConv(hidden, hidden)
            self.lin = nn.Linear(2 * hidden, classes)

        def forward(self, x, edge_index, batch, num_graphs):
            x = self.conv1(x, edge_index).relu()
            x = self.conv2(x, edge_index).relu()
            x = T.cat([global_mean_pool(x, batch), global_max_pool(x, batch, num_graphs)], dim=1)
            return self.lin(x)

    return Net()


def train_graph_classifier(T, device, init, graphs, labels, steps=3):
    device = device_of(T, device)
    model = ported_model(T, graph_classifier, init, device)
    # Collate a mini-batch of graphs into one disjoint graph, as PyG's DataLoader does.
    xs, edges, batch, offset = [], [], [], 0
    for i, (x, edge_index) in enumerate(graphs):
        xs.append(T.from_numpy(x))
        edges.append(T.from_numpy(edge_index) + offset)
        batch.append(T.full((x.shape[0],), i, dtype=T.long))
        offset += x.shape[0]
    x, edge_index, batch = T.cat(xs).to(device), T.cat(edges, dim=1).to(device), T.cat(batch).to(device)
    y = T.tensor(labels).to(device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.01)
    criterion = T.nn.CrossEntropyLoss()
    losses = []
    for _ in range(steps):
        model.train()
        out = model(x, edge_index, batch, len(graphs))
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_graph_classification_with_global_pooling(device):
    rng = np.random.default_rng(2)
    graphs = []
    for n in (4, 6, 5):
        graphs.append((rng.standard_normal((n, 4)).astype(np.float32), random_graph(rng, n, n)))
    torch.manual_seed(0)
    run_both(train_graph_classifier, device, numpy_state(graph_classifier(torch)), graphs, [0, 1, 1])


# ---- 2. Contrastive and metric learning: SimCLR NT-Xent, triplet losses, knowledge distillation ----

def encoder(T, in_dim=6, hidden=8, out_dim=4):
    nn = T.nn

    class SimCLR(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU())
            self.projector = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

        def forward(self, x):
            return self.projector(self.backbone(x))

    return SimCLR()


def info_nce_loss(T, features, batch_size, n_views=2, temperature=0.5):
    """sthalles/SimCLR's info_nce_loss: positives moved to column 0, cross-entropy against zeros."""
    F = T.nn.functional
    device = features.device
    labels = T.cat([T.arange(batch_size) for i in range(n_views)], dim=0)
    labels = (labels.unsqueeze(0) == labels.unsqueeze(1)).float()
    labels = labels.to(device)
    features = F.normalize(features, dim=1)
    similarity_matrix = T.matmul(features, features.T)
    mask = T.eye(labels.shape[0], dtype=T.bool).to(device)
    labels = labels[~mask].view(labels.shape[0], -1)
    similarity_matrix = similarity_matrix[~mask].view(similarity_matrix.shape[0], -1)
    positives = similarity_matrix[labels.bool()].view(labels.shape[0], -1)
    negatives = similarity_matrix[~labels.bool()].view(similarity_matrix.shape[0], -1)
    logits = T.cat([positives, negatives], dim=1)
    labels = T.zeros(logits.shape[0], dtype=T.long).to(device)
    logits = logits / temperature
    return F.cross_entropy(logits, labels)


def nt_xent(T, z_i, z_j, temperature=0.5, fill=-9e15):
    """The SimCLR paper's NT-Xent: self-similarity masked out, the positive of row k is row k +- n."""
    F = T.nn.functional
    n = z_i.size(0)
    z = F.normalize(T.cat([z_i, z_j], dim=0), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(T.eye(2 * n, dtype=T.bool, device=z.device), fill)
    labels = T.arange(2 * n, device=z.device).roll(n)
    return F.cross_entropy(sim, labels)


def train_simclr(T, device, init, x, noise1, noise2, steps=3):
    device = device_of(T, device)
    model = ported_model(T, encoder, init, device)
    x, noise1, noise2 = (T.from_numpy(a).to(device) for a in (x, noise1, noise2))
    optimizer = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for step in range(steps):
        x_i, x_j = x + 0.1 * noise1[step], x * 0.9 + 0.1 * noise2[step]
        z_i, z_j = model(x_i), model(x_j)
        loss_a = nt_xent(T, z_i, z_j, fill=-9e15)
        loss_b = nt_xent(T, z_i, z_j, temperature=0.2, fill=float('-inf'))
        loss_c = info_nce_loss(T, T.cat([z_i, z_j], dim=0), x.size(0))
        loss = loss_a + loss_b + loss_c
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [loss_a.item(), loss_b.item(), loss_c.item()]
    return losses, numpy_state(model)


def test_simclr_nt_xent(device):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    noise1, noise2 = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_simclr, device, numpy_state(encoder(torch)), x, noise1, noise2)


def batch_hard_triplet_loss(T, embeddings, labels, margin=0.3):
    """Hermans et al.'s batch-hard mining: hardest positive and hardest negative per anchor."""
    dist = T.cdist(embeddings, embeddings, p=2)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = T.eye(labels.size(0), dtype=T.bool, device=labels.device)
    pos_mask = same & ~eye
    hardest_pos, _ = (dist * pos_mask.float()).max(dim=1)
    max_dist = dist.max(dim=1, keepdim=True)[0]
    hardest_neg, _ = (dist + max_dist * same.float()).min(dim=1)
    neg_inf = dist.masked_fill(same, float('inf')).min(dim=1).values
    loss = T.relu(hardest_pos - hardest_neg + margin).mean()
    return loss, neg_inf


def train_triplet(T, device, init, x, labels, anchor, positive, negative, steps=3):
    device = device_of(T, device)
    model = ported_model(T, encoder, init, device)
    x, labels = T.from_numpy(x).to(device), T.from_numpy(labels).to(device)
    anchor, positive, negative = (T.from_numpy(a).to(device) for a in (anchor, positive, negative))
    triplet = T.nn.TripletMarginLoss(margin=1.0, p=2)
    triplet_swap = T.nn.TripletMarginLoss(margin=0.5, p=1, swap=True, reduction='sum')
    optimizer = T.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        emb = model(x)
        hard, neg_inf = batch_hard_triplet_loss(T, emb, labels)
        a, p, n = model(anchor), model(positive), model(negative)
        loss = hard + triplet(a, p, n) + 0.1 * triplet_swap(a, p, n)
        loss += T.nn.functional.triplet_margin_with_distance_loss(
            a, p, n, distance_function=lambda u, v: 1.0 - T.nn.functional.cosine_similarity(u, v), margin=0.2)
        loss.backward()
        optimizer.step()
        losses += [hard.item(), loss.item()] + neg_inf.tolist()
    return losses, numpy_state(model)


def test_triplet_losses_and_batch_hard_mining(device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    anchor, positive, negative = rng.standard_normal((3, 4, 6)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_triplet, device, numpy_state(encoder(torch)), x, labels, anchor, positive, negative)


def classifier(T, in_dim=6, hidden=10, classes=4):
    nn = T.nn
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def train_distillation(T, device, teacher_init, student_init, x, y, steps=3, T_=4.0, alpha=0.7):
    device = device_of(T, device)
    F = T.nn.functional
    teacher = ported_model(T, lambda T: classifier(T, hidden=16), teacher_init, device)
    student = ported_model(T, classifier, student_init, device)
    x, y = T.from_numpy(x).to(device), T.from_numpy(y).to(device)
    teacher.eval()
    optimizer = T.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    kl = T.nn.KLDivLoss(reduction="batchmean", log_target=True)
    losses = []
    for _ in range(steps):
        student.train()
        optimizer.zero_grad()
        with T.no_grad():
            teacher_logits = teacher(x)
        student_logits = student(x)
        soft = F.kl_div(F.log_softmax(student_logits / T_, dim=1), F.softmax(teacher_logits / T_, dim=1),
                        reduction='batchmean') * T_ * T_
        soft_log = kl(F.log_softmax(student_logits / T_, dim=-1), F.log_softmax(teacher_logits / T_, dim=-1))
        hard = F.cross_entropy(student_logits, y)
        loss = alpha * soft + (1.0 - alpha) * hard + 0.5 * soft_log * (T_ ** 2)
        loss.backward()
        optimizer.step()
        losses += [soft.item(), soft_log.item(), hard.item()]
    return losses, numpy_state(student)


def test_knowledge_distillation(device):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 6)).astype(np.float32)
    y = rng.integers(0, 4, 7)
    torch.manual_seed(0)
    teacher_init, student_init = numpy_state(classifier(torch, hidden=16)), numpy_state(classifier(torch))
    run_both(train_distillation, device, teacher_init, student_init, x, y)


def supcon_loss(T, features, labels, temperature=0.07, base_temperature=0.07):
    """HobbitLong/SupContrast's SupConLoss; features (batch, n_views, dim), already normalized."""
    device = features.device
    batch_size = features.shape[0]
    labels = labels.contiguous().view(-1, 1)
    mask = T.eq(labels, labels.T).float().to(device)
    contrast_count = features.shape[1]
    contrast_feature = T.cat(T.unbind(features, dim=1), dim=0)
    anchor_feature, anchor_count = contrast_feature, contrast_count
    anchor_dot_contrast = T.div(T.matmul(anchor_feature, contrast_feature.T), temperature)
    logits_max, _ = T.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = T.scatter(T.ones_like(mask), 1, T.arange(batch_size * anchor_count).view(-1, 1).to(device), 0)
    mask = mask * logits_mask
    exp_logits = T.exp(logits) * logits_mask
    log_prob = logits - T.log(exp_logits.sum(1, keepdim=True))
    mask_pos_pairs = mask.sum(1)
    mask_pos_pairs = T.where(mask_pos_pairs < 1e-6, 1, mask_pos_pairs)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
    loss = - (temperature / base_temperature) * mean_log_prob_pos
    return loss.view(anchor_count, batch_size).mean()


def off_diagonal(x):
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins_loss(T, z1, z2, lambd=0.005):
    """facebookresearch/barlowtwins: in-place ops on the cross-correlation's diagonal view."""
    bn = T.nn.BatchNorm1d(z1.shape[1], affine=False).to(z1.device)
    c = bn(z1).T @ bn(z2)
    c.div_(z1.shape[0])
    on_diag = T.diagonal(c).add_(-1).pow_(2).sum()
    off_diag = off_diagonal(c).pow_(2).sum()
    return on_diag + lambd * off_diag


def vicreg_loss(T, x, y):
    F = T.nn.functional
    batch_size, num_features = x.shape
    repr_loss = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = T.sqrt(x.var(dim=0) + 0.0001)
    std_y = T.sqrt(y.var(dim=0) + 0.0001)
    std_loss = T.mean(F.relu(1 - std_x)) / 2 + T.mean(F.relu(1 - std_y)) / 2
    cov_x = (x.T @ x) / (batch_size - 1)
    cov_y = (y.T @ y) / (batch_size - 1)
    cov_loss = off_diagonal(cov_x).pow_(2).sum().div(num_features) + off_diagonal(cov_y).pow_(2).sum().div(
        num_features)
    return 25.0 * repr_loss + 25.0 * std_loss + cov_loss


def train_self_supervised(T, device, init, x, labels, noise, queue, steps=3, K=8, m=0.99):
    """SupCon, MoCo v2 (momentum encoder by `.data` assignment, einsum logits, a queue), Barlow Twins, VICReg."""
    device = device_of(T, device)
    F = T.nn.functional
    encoder_q = ported_model(T, encoder, init, device)
    encoder_k = ported_model(T, encoder, init, device)
    for param_k in encoder_k.parameters():
        param_k.requires_grad = False
    queue = F.normalize(T.from_numpy(queue).to(device), dim=0)
    queue_ptr = T.zeros(1, dtype=T.long)
    x, labels, noise = T.from_numpy(x).to(device), T.from_numpy(labels).to(device), T.from_numpy(noise).to(device)
    optimizer = T.optim.SGD(encoder_q.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses = []
    for step in range(steps):
        im_q, im_k = x + 0.1 * noise[step, 0], x + 0.1 * noise[step, 1]
        q = F.normalize(encoder_q(im_q), dim=1)
        with T.no_grad():
            for param_q, param_k in zip(encoder_q.parameters(), encoder_k.parameters()):
                param_k.data = param_k.data * m + param_q.data * (1. - m)
            k = F.normalize(encoder_k(im_k), dim=1)
        l_pos = T.einsum('nc,nc->n', [q, k]).unsqueeze(-1)
        l_neg = T.einsum('nc,ck->nk', [q, queue.clone().detach()])
        logits = T.cat([l_pos, l_neg], dim=1) / 0.2
        moco = F.cross_entropy(logits, T.zeros(logits.shape[0], dtype=T.long).to(device))
        ptr = int(queue_ptr)
        queue[:, ptr:ptr + k.shape[0]] = k.T
        queue_ptr[0] = (ptr + k.shape[0]) % K

        z_k = encoder_q(im_k)
        supcon = supcon_loss(T, T.stack([q, F.normalize(z_k, dim=1)], dim=1), labels)
        barlow = barlow_twins_loss(T, encoder_q(im_q), z_k)
        vicreg = vicreg_loss(T, encoder_q(im_q), z_k)
        loss = moco + supcon + 0.1 * barlow + 0.1 * vicreg
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [moco.item(), supcon.item(), barlow.item(), vicreg.item()]
    state = numpy_state(encoder_q)
    state.update({"k." + n: v for n, v in numpy_state(encoder_k).items()}, queue=queue.cpu().numpy())
    return losses, state


def test_self_supervised_losses(device):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    noise = rng.standard_normal((3, 2, 4, 6)).astype(np.float32)
    queue = rng.standard_normal((4, 8)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_self_supervised, device, numpy_state(encoder(torch)), x, np.array([0, 1, 0, 1]), noise, queue)


# ---- 3. Physics-informed network: derivatives by autograd.grad, LBFGS (strong Wolfe) then Adam ------

def pinn_net(T, layers=(2, 8, 8, 1)):
    nn = T.nn

    class PINN(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:])])
            self.activation = nn.Tanh()

        def forward(self, x, t):
            u = T.cat([x, t], 1)
            for layer in self.layers[:-1]:
                u = self.activation(layer(u))
            return self.layers[-1](u)

    return PINN()


def train_pinn(T, device, init, x_f, t_f, x_0, u_0, x_b, t_b, pde="burgers", lbfgs_steps=2, adam_steps=3):
    """Raissi et al.'s PINN: u_t + u u_x - nu u_xx = 0 (Burgers) or u_t - k u_xx = 0 (heat)."""
    device = device_of(T, device)
    model = ported_model(T, pinn_net, init, device)
    nu = 0.01 / math.pi
    x_f = T.tensor(x_f, requires_grad=True, device=device)
    t_f = T.tensor(t_f, requires_grad=True, device=device)
    x_0, u_0 = T.tensor(x_0, device=device), T.tensor(u_0, device=device)
    x_b, t_b = T.tensor(x_b, device=device), T.tensor(t_b, device=device)

    def net_f(x, t):
        u = model(x, t)
        u_t = T.autograd.grad(u, t, grad_outputs=T.ones_like(u), retain_graph=True, create_graph=True)[0]
        u_x = T.autograd.grad(u, x, grad_outputs=T.ones_like(u), retain_graph=True, create_graph=True)[0]
        u_xx = T.autograd.grad(u_x, x, grad_outputs=T.ones_like(u_x), retain_graph=True, create_graph=True)[0]
        if pde == "burgers":
            return u_t + u * u_x - nu * u_xx
        return u_t - 0.1 * u_xx

    def loss_func():
        u_pred_0 = model(x_0, T.zeros_like(x_0))
        u_pred_b = model(x_b, t_b)
        f_pred = net_f(x_f, t_f)
        mse_0 = T.mean((u_0 - u_pred_0) ** 2)
        mse_b = T.mean(u_pred_b ** 2)
        mse_f = T.mean(f_pred ** 2)
        return mse_0 + mse_b + mse_f

    losses = []
    optimizer = T.optim.LBFGS(model.parameters(), lr=1.0, max_iter=5, max_eval=8, history_size=50,
                              tolerance_grad=1e-9, tolerance_change=1.0 * np.finfo(float).eps,
                              line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = loss_func()
        loss.backward()
        return loss

    for _ in range(lbfgs_steps):
        losses.append(optimizer.step(closure).item())
    adam = T.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(adam_steps):
        adam.zero_grad()
        loss = loss_func()
        loss.backward()
        adam.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


@pytest.mark.parametrize("pde", ["burgers", "heat"])
def test_pinn_lbfgs_then_adam(device, pde):
    rng = np.random.default_rng(6)
    x_f = rng.uniform(-1, 1, (12, 1)).astype(np.float32)
    t_f = rng.uniform(0, 1, (12, 1)).astype(np.float32)
    x_0 = rng.uniform(-1, 1, (6, 1)).astype(np.float32)
    u_0 = -np.sin(np.pi * x_0).astype(np.float32)
    x_b = np.array([[-1.0], [1.0], [-1.0], [1.0]], np.float32)
    t_b = rng.uniform(0, 1, (4, 1)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_pinn, device, numpy_state(pinn_net(torch)), x_f, t_f, x_0, u_0, x_b, t_b, pde=pde)


def train_pinn_legacy(T, device, init, xt, steps=3):
    """Older PINN code: one (x, t) input wrapped in Variable, derivatives sliced from one gradient."""
    from_numpy = T.from_numpy
    Variable = T.autograd.Variable
    device = device_of(T, device)
    model = ported_model(T, lambda T: T.nn.Sequential(T.nn.Linear(2, 8), T.nn.Tanh(), T.nn.Linear(8, 1)), init,
                         device)
    X = Variable(from_numpy(xt).float().to(device), requires_grad=True)
    optimizer = T.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = T.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        u = model(X)
        du_X = T.autograd.grad(u, X, grad_outputs=T.ones_like(u), create_graph=True, retain_graph=True,
                               only_inputs=True)[0]
        u_x, u_t = du_X[:, 0:1], du_X[:, [1]]
        u_xx = T.autograd.grad(u_x, X, grad_outputs=T.ones_like(u_x), create_graph=True)[0][:, 0:1]
        source = T.exp(-X[:, 1:2]) * (T.sin(math.pi * X[:, :1]) - math.pi ** 2 * T.sin(math.pi * X[:, :1]))
        f = u_t - u_xx + source
        loss = T.nn.MSELoss()(f, T.zeros_like(f))
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_pinn_legacy_variable_single_input(device):
    rng = np.random.default_rng(10)
    x, t = np.meshgrid(np.linspace(-1, 1, 4), np.linspace(0, 1, 3), indexing="ij")
    xt = np.hstack([x.reshape(-1, 1), t.reshape(-1, 1)])  # float64, as np.meshgrid gives
    torch.manual_seed(0)
    init = numpy_state(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)))
    run_both(train_pinn_legacy, device, init, xt + 0.01 * rng.standard_normal(xt.shape))


def hnn(T, hidden=8):
    nn = T.nn

    class HNN(nn.Module):
        """Greydanus et al.'s Hamiltonian NN: the vector field is the symplectic gradient of a learned H."""

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 1, bias=None))
            M = T.eye(2)
            self.register_buffer("M", T.cat([M[1:], -M[:1]]))

        def time_derivative(self, x):
            H = self.net(x)
            dH = T.autograd.grad(H.sum(), x, create_graph=True)[0]
            return dH @ self.M.t()

    return HNN()


def train_hnn(T, device, init, x, dxdt, steps=3):
    device = device_of(T, device)
    model = ported_model(T, hnn, init, device)
    x = T.tensor(x, requires_grad=True, dtype=T.float32).to(device)
    dxdt = T.tensor(dxdt).to(device)
    optim = T.optim.Adam(model.parameters(), 1e-2, weight_decay=1e-4)
    losses = []
    for _ in range(steps):
        dxdt_hat = model.time_derivative(x)
        dq, dp = T.split(dxdt_hat, 1, dim=1)
        loss = (dxdt - dxdt_hat).pow(2).mean() + 1e-3 * (dq.abs().mean() + dp.abs().mean())
        loss.backward()
        optim.step()
        optim.zero_grad()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_hamiltonian_nn(device):
    rng = np.random.default_rng(11)
    q, p = rng.standard_normal((2, 6)).astype(np.float32)
    x, dxdt = np.stack([q, p], 1), np.stack([p, -q], 1)  # a mass on a spring: H = (q^2 + p^2) / 2
    torch.manual_seed(0)
    run_both(train_hnn, device, numpy_state(hnn(torch)), x, dxdt)


# ---- 4. MAML (first and second order) and a neural ODE integrated by hand with RK4 ------------------

def regressor(T, hidden=8):
    nn = T.nn
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, 1))


def functional_forward(T, x, weights):
    """The hand-written forward of learn2learn / dragen1860-style MAML: weights is an ordered dict."""
    F = T.nn.functional
    x = F.relu(F.linear(x, weights['0.weight'], weights['0.bias']))
    x = T.tanh(F.linear(x, weights['2.weight'], weights['2.bias']))
    return F.linear(x, weights['4.weight'], weights['4.bias'])


def train_maml(T, device, init, tasks, first_order, functional, inner_steps=2, alpha=0.05, meta_steps=3):
    device = device_of(T, device)
    model = ported_model(T, regressor, init, device)
    meta_optimizer = T.optim.Adam(model.parameters(), lr=1e-2)
    F = T.nn.functional
    losses = []
    for _ in range(meta_steps):
        meta_optimizer.zero_grad()
        meta_loss = 0.0
        for x_s, y_s, x_q, y_q in tasks:
            x_s, y_s, x_q, y_q = (T.from_numpy(a).to(device) for a in (x_s, y_s, x_q, y_q))
            params = dict(model.named_parameters())
            for _ in range(inner_steps):
                if functional:
                    pred = T.func.functional_call(model, params, (x_s,))
                else:
                    pred = functional_forward(T, x_s, params)
                inner_loss = F.mse_loss(pred, y_s)
                grads = T.autograd.grad(inner_loss, params.values(), create_graph=not first_order)
                params = {n: p - alpha * g for (n, p), g in zip(params.items(), grads)}
            if functional:
                query_pred = T.func.functional_call(model, params, (x_q,))
            else:
                query_pred = functional_forward(T, x_q, params)
            task_loss = F.mse_loss(query_pred, y_q)
            meta_loss = meta_loss + task_loss
            losses.append(task_loss.item())
        meta_loss = meta_loss / len(tasks)
        meta_loss.backward()
        meta_optimizer.step()
        losses.append(meta_loss.item())
    return losses, numpy_state(model)


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("functional", [True, False])
def test_maml_sine_regression(device, first_order, functional):
    rng = np.random.default_rng(7)
    tasks = []
    for _ in range(2):
        amplitude, phase = rng.uniform(0.1, 5.0), rng.uniform(0, np.pi)
        x = rng.uniform(-5, 5, (10, 1)).astype(np.float32)
        y = (amplitude * np.sin(x - phase)).astype(np.float32)
        tasks.append((x[:5], y[:5], x[5:], y[5:]))
    torch.manual_seed(0)
    run_both(train_maml, device, numpy_state(regressor(torch)), tasks, first_order, functional)


def conv_learner(T):
    """dragen1860/MAML-Pytorch's Learner: the weights in a ParameterList, the forward written with F."""
    nn = T.nn

    class Learner(nn.Module):
        def __init__(self):
            super().__init__()
            self.vars = nn.ParameterList()
            w = nn.Parameter(T.ones(3, 1, 3, 3))
            nn.init.kaiming_normal_(w)
            self.vars.append(w)  # no conv bias: batch norm cancels it (its gradient is 0, noise that Adam scales up)
            self.vars.extend([nn.Parameter(T.ones(3)), nn.Parameter(T.zeros(3))])  # batch norm
            w = nn.Parameter(T.ones(2, 3 * 2 * 2))
            nn.init.kaiming_normal_(w)
            self.vars.extend([w, nn.Parameter(T.zeros(2))])

        def forward(self, x, vars=None, bn_training=True):
            F = T.nn.functional
            vars = self.vars if vars is None else vars
            w, g, be, w2, b2 = vars
            x = F.conv2d(x, w, None, stride=1, padding=1)
            x = F.batch_norm(x, None, None, weight=g, bias=be, training=bn_training)
            x = F.relu(x, inplace=True)
            x = F.max_pool2d(x, 2, 2, 0)
            x = x.view(x.size(0), -1)
            return F.linear(x, w2, b2)

    return Learner()


def train_maml_omniglot(T, device, init, x_spt, y_spt, x_qry, y_qry, first_order, update_step=2, meta_steps=2):
    device = device_of(T, device)
    F = T.nn.functional
    net = ported_model(T, conv_learner, init, device)
    meta_optim = T.optim.Adam(net.parameters(), lr=1e-2)
    x_spt, x_qry = T.from_numpy(x_spt).to(device), T.from_numpy(x_qry).to(device)
    y_spt, y_qry = T.from_numpy(y_spt).to(device), T.from_numpy(y_qry).to(device)
    task_num = x_spt.size(0)
    losses = []
    for _ in range(meta_steps):
        losses_q, corrects = [0 for _ in range(update_step + 1)], [0 for _ in range(update_step + 1)]
        for i in range(task_num):
            logits = net(x_spt[i], vars=None, bn_training=True)
            loss = F.cross_entropy(logits, y_spt[i])
            grad = T.autograd.grad(loss, net.parameters(), create_graph=not first_order)
            fast_weights = list(map(lambda p: p[1] - 0.4 * p[0], zip(grad, net.parameters())))
            with T.no_grad():
                logits_q = net(x_qry[i], net.parameters(), bn_training=True)
                losses_q[0] += F.cross_entropy(logits_q, y_qry[i])
                corrects[0] += T.eq(F.softmax(logits_q, dim=1).argmax(dim=1), y_qry[i]).sum().item()
            for k in range(1, update_step + 1):
                if k > 1:
                    logits = net(x_spt[i], fast_weights, bn_training=True)
                    loss = F.cross_entropy(logits, y_spt[i])
                    grad = T.autograd.grad(loss, fast_weights, create_graph=not first_order)
                    fast_weights = list(map(lambda p: p[1] - 0.4 * p[0], zip(grad, fast_weights)))
                logits_q = net(x_qry[i], fast_weights, bn_training=True)
                losses_q[k] += F.cross_entropy(logits_q, y_qry[i])
                with T.no_grad():
                    pred_q = F.softmax(logits_q, dim=1).argmax(dim=1)
                    corrects[k] += T.eq(pred_q, y_qry[i]).sum().item()
        loss_q = losses_q[-1] / task_num
        meta_optim.zero_grad()
        loss_q.backward()
        meta_optim.step()
        losses += [l.item() for l in losses_q] + corrects
    return losses, numpy_state(net)


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_omniglot_functional_conv(device, first_order):
    rng = np.random.default_rng(12)
    x_spt, x_qry = rng.standard_normal((2, 2, 4, 1, 4, 4)).astype(np.float32)
    y_spt, y_qry = rng.integers(0, 2, (2, 2, 4))
    torch.manual_seed(0)
    run_both(train_maml_omniglot, device, numpy_state(conv_learner(torch)), x_spt, y_spt, x_qry, y_qry,
             first_order)


def train_functorch_maml(T, device, init, x1, y1, x2, y2, meta_steps=2):
    """pytorch/functorch's maml-regression example: grad and functional_call inside vmap over tasks."""
    from_func = T.func
    F = T.nn.functional
    device = device_of(T, device)
    net = ported_model(T, lambda T: regressor(T, hidden=6), init, device)
    meta_opt = T.optim.Adam(net.parameters(), lr=1e-2)
    x1, y1, x2, y2 = (T.from_numpy(a).to(device) for a in (x1, y1, x2, y2))

    def get_loss_for_task(x1, y1, x2, y2):
        def inner_loss(params, x1, y1):
            f = from_func.functional_call(net, params, (x1,))
            return F.mse_loss(f, y1)

        params = dict(net.named_parameters())
        grads = from_func.grad(inner_loss)(params, x1, y1)
        new_params = {k: params[k] - g * 1e-1 for k, g in grads.items()}
        v_f = from_func.functional_call(net, new_params, (x2,))
        return F.mse_loss(v_f, y2)

    losses = []
    for _ in range(meta_steps):
        meta_opt.zero_grad()
        qry_losses = from_func.vmap(get_loss_for_task)(x1, y1, x2, y2)
        qry_losses.sum().backward()
        meta_opt.step()
        losses += qry_losses.tolist()
    return losses, numpy_state(net)


def test_functorch_maml_with_vmap(device):
    rng = np.random.default_rng(13)
    x = rng.uniform(-5, 5, (3, 10, 1)).astype(np.float32)
    y = (rng.uniform(1, 3, (3, 1, 1)) * np.sin(x)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_functorch_maml, device, numpy_state(regressor(torch, hidden=6)), x[:, :5], y[:, :5],
             x[:, 5:], y[:, 5:])


def ode_func(T, dim=2, hidden=8):
    nn = T.nn

    class ODEFunc(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

        def forward(self, t, y):
            return self.net(y ** 3)

    return ODEFunc()


def rk4_odeint(T, func, y0, t):
    """torchdiffeq's fixed-grid rk4 (3/8 rule not used): the solution at each time in t."""
    solution = [y0]
    y = y0
    for t0, t1 in zip(t[:-1], t[1:]):
        dt = t1 - t0
        k1 = func(t0, y)
        k2 = func(t0 + dt / 2, y + dt * k1 / 2)
        k3 = func(t0 + dt / 2, y + dt * k2 / 2)
        k4 = func(t1, y + dt * k3)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        solution.append(y)
    return T.stack(solution)


def train_neural_ode(T, device, init, true_y0, t, true_y, batch_idx, steps=3):
    """torchdiffeq's ode_demo: fit a spiral from random windows of its trajectory."""
    device = device_of(T, device)
    func = ported_model(T, ode_func, init, device)
    true_y0, t, true_y = (T.from_numpy(a).to(device) for a in (true_y0, t, true_y))
    optimizer = T.optim.RMSprop(func.parameters(), lr=1e-3)
    batch_time = 4
    losses = []
    for itr in range(steps):
        optimizer.zero_grad()
        s = T.from_numpy(batch_idx[itr]).to(device)
        batch_y0 = true_y[s]  # (M, D)
        batch_t = t[:batch_time]  # (T)
        batch_y = T.stack([true_y[s + i] for i in range(batch_time)], dim=0)  # (T, M, D)
        pred_y = rk4_odeint(T, func, batch_y0, batch_t)
        loss = T.mean(T.abs(pred_y - batch_y))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        pred_y = rk4_odeint(T, func, true_y0, t)
        losses.append(T.mean(T.abs(pred_y - true_y)).item())
    return losses, numpy_state(func)


def test_neural_ode_rk4(device):
    rng = np.random.default_rng(8)
    t = np.linspace(0.0, 0.25, 10).astype(np.float32)
    true_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
    ys = [np.array([[2.0, 0.0]])]
    for dt in np.diff(t):  # the true spiral by small Euler steps, good enough as data
        y = ys[-1]
        for _ in range(20):
            y = y + dt / 20 * (y ** 3) @ true_A
        ys.append(y)
    true_y = np.stack(ys).astype(np.float32)  # (T, 1, D)
    batch_idx = [rng.choice(np.arange(len(t) - 4), 3, replace=False).astype(np.int64) for _ in range(3)]
    torch.manual_seed(0)
    run_both(train_neural_ode, device, numpy_state(ode_func(torch)), true_y[0], t, true_y, batch_idx)
