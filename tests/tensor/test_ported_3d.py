"""3D deep-learning scripts as reference implementations write them, ported by imports.

PointNet (yanx27's Pointnet_Pointnet2_pytorch: T-Nets, the feature-transform regularizer), PointNet++'s
pure-torch utilities (square_distance, index_points, farthest point sampling, ball query, set
abstraction), DGCNN's EdgeConv (knn by topk, get_graph_feature) and NeRF (nerf-pytorch: positional
encoding, get_rays, stratified and hierarchical sampling, raw2outputs' volume rendering).

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data (random draws such as FPS start points and ray jitter are passed in), and losses
and final parameters agree to float32 accuracy. Models with a bias right before BatchNorm (whose true
gradient is zero) train with SGD, which does not amplify that gradient's float noise as Adam would.
"""
import numpy as np
import pytest

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def point_clouds(rng, b, n, classes):
    """b clouds of n points (b, n, 3) in the unit ball-ish cube, labels (b,) int64."""
    pts = rng.uniform(-1, 1, (b, n, 3)).astype(np.float32)
    return pts, rng.integers(0, classes, b).astype(np.int64)


# ---- 1. PointNet: T-Nets, bmm with the transform, feature-transform regularizer ---------------------

def pointnet(T, k_cls=3, width=8, feat=16):
    nn, F = T.nn, T.nn.functional

    class STNkd(nn.Module):
        def __init__(self, k=64):
            super().__init__()
            self.conv1 = T.nn.Conv1d(k, width, 1)
            self.conv2 = T.nn.Conv1d(width, feat, 1)
            self.fc1 = nn.Linear(feat, width)
            self.fc2 = nn.Linear(width, k * k)
            self.relu = nn.ReLU()
            self.bn1 = nn.BatchNorm1d(width)
            self.bn2 = nn.BatchNorm1d(feat)
            self.bn4 = nn.BatchNorm1d(width)
            self.k = k

        def forward(self, x):
            batchsize = x.size()[0]
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            x = T.max(x, 2, keepdim=True)[0]
            x = x.view(-1, feat)
            x = F.relu(self.bn4(self.fc1(x)))
            x = self.fc2(x)
            iden = T.eye(self.k).flatten().view(1, self.k * self.k).repeat(batchsize, 1)
            if x.is_cuda:
                iden = iden.cuda()
            x = x + iden
            x = x.view(-1, self.k, self.k)
            return x

    class PointNetEncoder(nn.Module):
        def __init__(self, channel=3):
            super().__init__()
            self.stn = STNkd(channel)
            self.conv1 = T.nn.Conv1d(channel, width, 1)
            self.conv2 = T.nn.Conv1d(width, width, 1)
            self.conv3 = T.nn.Conv1d(width, feat, 1)
            self.bn1 = nn.BatchNorm1d(width)
            self.bn2 = nn.BatchNorm1d(width)
            self.bn3 = nn.BatchNorm1d(feat)
            self.fstn = STNkd(k=width)

        def forward(self, x):
            B, D, N = x.size()
            trans = self.stn(x)
            x = x.transpose(2, 1)
            x = T.bmm(x, trans)
            x = x.transpose(2, 1)
            x = F.relu(self.bn1(self.conv1(x)))
            trans_feat = self.fstn(x)
            x = x.transpose(2, 1)
            x = T.bmm(x, trans_feat)
            x = x.transpose(2, 1)
            x = F.relu(self.bn2(self.conv2(x)))
            x = self.bn3(self.conv3(x))
            x = T.max(x, 2, keepdim=True)[0]
            x = x.view(-1, feat)
            return x, trans, trans_feat

    class PointNetCls(nn.Module):
        def __init__(self, k=k_cls):
            super().__init__()
            self.feat = PointNetEncoder()
            self.fc1 = nn.Linear(feat, width)
            self.fc2 = nn.Linear(width, k)
            self.dropout = nn.Dropout(p=0.0)
            self.bn1 = nn.BatchNorm1d(width)
            self.relu = nn.ReLU()

        def forward(self, x):
            x, trans, trans_feat = self.feat(x)
            x = F.relu(self.bn1(self.dropout(self.fc1(x))))
            x = self.fc2(x)
            x = F.log_softmax(x, dim=1)
            return x, trans_feat

    return PointNetCls()


def feature_transform_regularizer(T, trans):
    d = trans.size()[1]
    I = T.eye(d)[None, :, :]
    if trans.is_cuda:
        I = I.cuda()
    loss = T.mean(T.norm(T.bmm(trans, trans.transpose(2, 1)) - I, dim=(1, 2)))
    return loss


def train_pointnet(T, device, init, points, target, steps=3, mat_diff_loss_scale=0.001):
    device = device_of(T, device)
    classifier = ported_model(T, pointnet, init, device)
    optimizer = T.optim.SGD(classifier.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    scheduler = T.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.7)
    points = T.Tensor(points).transpose(2, 1).to(device)
    target = T.from_numpy(target).to(device)
    losses = []
    for _ in range(steps):
        classifier = classifier.train()
        optimizer.zero_grad()
        pred, trans_feat = classifier(points)
        loss = F_nll(T, pred, target.long()) + feature_transform_regularizer(T, trans_feat) * mat_diff_loss_scale
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    classifier = classifier.eval()
    with T.no_grad():
        pred, _ = classifier(points)
        # README: `.data` is the raw array in raygrad, so the reference's pred.data.max(1)[1] and
        # .eq(target.long().data) read .detach() and the tensor itself
        pred_choice = pred.detach().max(1)[1]
        correct = pred_choice.eq(target.long()).cpu().sum()
    return losses + [correct.item() / float(points.size()[0])], numpy_state(classifier)


def F_nll(T, pred, target):
    return T.nn.functional.nll_loss(pred, target)


def test_pointnet_classifier(device):
    rng = np.random.default_rng(0)
    points, target = point_clouds(rng, 6, 16, 3)
    torch.manual_seed(0)
    run_both(train_pointnet, device, numpy_state(pointnet(torch)), points, target)


# ---- 2. PointNet++: FPS, ball query, index_points, set abstraction ---------------------------------

def square_distance(T, src, dst):
    B, N, _ = src.shape
    _, M, _ = dst.shape
    dist = -2 * T.matmul(src, dst.permute(0, 2, 1))
    dist += T.sum(src ** 2, -1).view(B, N, 1)
    dist += T.sum(dst ** 2, -1).view(B, 1, M)
    return dist


def index_points(T, points, idx):
    device = points.device
    B = points.shape[0]
    view_shape = list(idx.shape)
    view_shape[1:] = [1] * (len(view_shape) - 1)
    repeat_shape = list(idx.shape)
    repeat_shape[0] = 1
    batch_indices = T.arange(B, dtype=T.long).to(device).view(view_shape).repeat(repeat_shape)
    new_points = points[batch_indices, idx, :]
    return new_points


def farthest_point_sample(T, xyz, npoint, start):
    """The reference draws `farthest = torch.randint(0, N, (B,))`: here the start points come in."""
    device = xyz.device
    B, N, C = xyz.shape
    centroids = T.zeros(B, npoint, dtype=T.long).to(device)
    distance = T.ones(B, N).to(device) * 1e10
    farthest = T.from_numpy(start).to(device)
    batch_indices = T.arange(B, dtype=T.long).to(device)
    for i in range(npoint):
        centroids[:, i] = farthest
        centroid = xyz[batch_indices, farthest, :].view(B, 1, 3)
        dist = T.sum((xyz - centroid) ** 2, -1)
        mask = dist < distance
        distance[mask] = dist[mask]
        farthest = T.max(distance, -1)[1]
    return centroids


def query_ball_point(T, radius, nsample, xyz, new_xyz):
    device = xyz.device
    B, N, C = xyz.shape
    _, S, _ = new_xyz.shape
    group_idx = T.arange(N, dtype=T.long).to(device).view(1, 1, N).repeat([B, S, 1])
    sqrdists = square_distance(T, new_xyz, xyz)
    group_idx[sqrdists > radius ** 2] = N
    group_idx = group_idx.sort(dim=-1)[0][:, :, :nsample]
    group_first = group_idx[:, :, 0].view(B, S, 1).repeat([1, 1, nsample])
    mask = group_idx == N
    group_idx[mask] = group_first[mask]
    return group_idx


def sample_and_group(T, npoint, radius, nsample, xyz, points, start):
    B, N, C = xyz.shape
    S = npoint
    fps_idx = farthest_point_sample(T, xyz, npoint, start)
    new_xyz = index_points(T, xyz, fps_idx)
    idx = query_ball_point(T, radius, nsample, xyz, new_xyz)
    grouped_xyz = index_points(T, xyz, idx)
    grouped_xyz_norm = grouped_xyz - new_xyz.view(B, S, 1, C)
    if points is not None:
        grouped_points = index_points(T, points, idx)
        new_points = T.cat([grouped_xyz_norm, grouped_points], dim=-1)
    else:
        new_points = grouped_xyz_norm
    return new_xyz, new_points


def sample_and_group_all(T, xyz, points):
    device = xyz.device
    B, N, C = xyz.shape
    new_xyz = T.zeros(B, 1, C).to(device)
    grouped_xyz = xyz.view(B, 1, N, C)
    if points is not None:
        new_points = T.cat([grouped_xyz, points.view(B, 1, N, -1)], dim=-1)
    else:
        new_points = grouped_xyz
    return new_xyz, new_points


def pointnet2(T, classes=3):
    nn, F = T.nn, T.nn.functional

    class PointNetSetAbstraction(nn.Module):
        def __init__(self, npoint, radius, nsample, in_channel, mlp, group_all):
            super().__init__()
            self.npoint = npoint
            self.radius = radius
            self.nsample = nsample
            self.mlp_convs = nn.ModuleList()
            self.mlp_bns = nn.ModuleList()
            last_channel = in_channel
            for out_channel in mlp:
                self.mlp_convs.append(nn.Conv2d(last_channel, out_channel, 1))
                self.mlp_bns.append(nn.BatchNorm2d(out_channel))
                last_channel = out_channel
            self.group_all = group_all

        def forward(self, xyz, points, start=None):
            xyz = xyz.permute(0, 2, 1)
            if points is not None:
                points = points.permute(0, 2, 1)
            if self.group_all:
                new_xyz, new_points = sample_and_group_all(T, xyz, points)
            else:
                new_xyz, new_points = sample_and_group(T, self.npoint, self.radius, self.nsample, xyz, points,
                                                       start)
            new_points = new_points.permute(0, 3, 2, 1)  # [B, C+D, nsample, npoint]
            for i, conv in enumerate(self.mlp_convs):
                bn = self.mlp_bns[i]
                new_points = F.relu(bn(conv(new_points)))
            new_points = T.max(new_points, 2)[0]
            new_xyz = new_xyz.permute(0, 2, 1)
            return new_xyz, new_points

    class PointNet2Cls(nn.Module):
        def __init__(self):
            super().__init__()
            self.sa1 = PointNetSetAbstraction(npoint=6, radius=0.8, nsample=4, in_channel=3, mlp=[6, 8],
                                              group_all=False)
            self.sa2 = PointNetSetAbstraction(npoint=None, radius=None, nsample=None, in_channel=8 + 3,
                                              mlp=[12], group_all=True)
            self.fc1 = nn.Linear(12, 8)
            self.bn1 = nn.BatchNorm1d(8)
            self.drop1 = nn.Dropout(0.0)
            self.fc3 = nn.Linear(8, classes)

        def forward(self, xyz, start):
            B, _, _ = xyz.shape
            l1_xyz, l1_points = self.sa1(xyz, None, start)
            l3_xyz, l3_points = self.sa2(l1_xyz, l1_points)
            x = l3_points.view(B, 12)
            x = self.drop1(F.relu(self.bn1(self.fc1(x))))
            x = self.fc3(x)
            x = F.log_softmax(x, -1)
            return x, l3_points

    return PointNet2Cls()


def train_pointnet2(T, device, init, points, target, starts, steps=3):
    device = device_of(T, device)
    classifier = ported_model(T, pointnet2, init, device)
    optimizer = T.optim.SGD(classifier.parameters(), lr=0.05, momentum=0.9)
    points = T.Tensor(points).to(device).transpose(2, 1)
    target = T.from_numpy(target).to(device)
    losses, centroids = [], []
    for step in range(steps):
        classifier = classifier.train()
        optimizer.zero_grad()
        pred, trans_feat = classifier(points, starts[step])
        loss = T.nn.functional.nll_loss(pred, target.long())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        xyz = points.permute(0, 2, 1)
        fps = farthest_point_sample(T, xyz, 6, starts[0])
        ball = query_ball_point(T, 0.8, 4, xyz, index_points(T, xyz, fps))
        centroids = fps.cpu().numpy().ravel().tolist() + ball.cpu().numpy().ravel().tolist()
    return losses + centroids, numpy_state(classifier)


def test_pointnet2_set_abstraction(device):
    rng = np.random.default_rng(1)
    points, target = point_clouds(rng, 4, 16, 3)
    starts = rng.integers(0, 16, (3, 4)).astype(np.int64)
    torch.manual_seed(0)
    run_both(train_pointnet2, device, numpy_state(pointnet2(torch)), points, target, starts)


# ---- 3. DGCNN: knn by topk, get_graph_feature (EdgeConv), shared BatchNorm modules -------------------

def knn(T, x, k):
    inner = -2 * T.matmul(x.transpose(2, 1), x)
    xx = T.sum(x ** 2, dim=1, keepdim=True)
    pairwise_distance = -xx - inner - xx.transpose(2, 1)
    idx = pairwise_distance.topk(k=k, dim=-1)[1]  # (batch_size, num_points, k)
    return idx


def get_graph_feature(T, x, k=20, idx=None):
    batch_size = x.size(0)
    num_points = x.size(2)
    x = x.view(batch_size, -1, num_points)
    if idx is None:
        idx = knn(T, x, k=k)  # (batch_size, num_points, k)
    device = x.device
    idx_base = T.arange(0, batch_size, device=device).view(-1, 1, 1) * num_points
    idx = idx + idx_base
    idx = idx.view(-1)
    _, num_dims, _ = x.size()
    x = x.transpose(2, 1).contiguous()
    feature = x.view(batch_size * num_points, -1)[idx, :]
    feature = feature.view(batch_size, num_points, k, num_dims)
    x = x.view(batch_size, num_points, 1, num_dims).repeat(1, 1, k, 1)
    feature = T.cat((feature - x, x), dim=3).permute(0, 3, 1, 2).contiguous()
    return feature


def dgcnn(T, k=4, emb_dims=16, output_channels=3):
    nn, F = T.nn, T.nn.functional

    class DGCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.k = k
            self.bn1 = nn.BatchNorm2d(8)
            self.bn2 = nn.BatchNorm2d(8)
            self.bn5 = nn.BatchNorm1d(emb_dims)
            self.conv1 = nn.Sequential(nn.Conv2d(6, 8, kernel_size=1, bias=False), self.bn1,
                                       nn.LeakyReLU(negative_slope=0.2))
            self.conv2 = nn.Sequential(nn.Conv2d(8 * 2, 8, kernel_size=1, bias=False), self.bn2,
                                       nn.LeakyReLU(negative_slope=0.2))
            self.conv5 = nn.Sequential(nn.Conv1d(16, emb_dims, kernel_size=1, bias=False), self.bn5,
                                       nn.LeakyReLU(negative_slope=0.2))
            self.linear1 = nn.Linear(emb_dims * 2, 12, bias=False)
            self.bn6 = nn.BatchNorm1d(12)
            self.dp1 = nn.Dropout(p=0.0)
            self.linear2 = nn.Linear(12, 8)
            self.bn7 = nn.BatchNorm1d(8)
            self.dp2 = nn.Dropout(p=0.0)
            self.linear3 = nn.Linear(8, output_channels)

        def forward(self, x):
            batch_size = x.size(0)
            x = get_graph_feature(T, x, k=self.k)
            x = self.conv1(x)
            x1 = x.max(dim=-1, keepdim=False)[0]
            x = get_graph_feature(T, x1, k=self.k)
            x = self.conv2(x)
            x2 = x.max(dim=-1, keepdim=False)[0]
            x = T.cat((x1, x2), dim=1)
            x = self.conv5(x)
            x1 = F.adaptive_max_pool1d(x, 1).view(batch_size, -1)
            x2 = F.adaptive_avg_pool1d(x, 1).view(batch_size, -1)
            x = T.cat((x1, x2), 1)
            x = F.leaky_relu(self.bn6(self.linear1(x)), negative_slope=0.2)
            x = self.dp1(x)
            x = F.leaky_relu(self.bn7(self.linear2(x)), negative_slope=0.2)
            x = self.dp2(x)
            x = self.linear3(x)
            return x

    return DGCNN()


def cal_loss(T, pred, gold, smoothing=True):
    """DGCNN's cross entropy with label smoothing, by scatter into a one-hot."""
    F = T.nn.functional
    gold = gold.contiguous().view(-1)
    if smoothing:
        eps = 0.2
        n_class = pred.size(1)
        one_hot = T.zeros_like(pred).scatter(1, gold.view(-1, 1), 1)
        one_hot = one_hot * (1 - eps) + (1 - one_hot) * eps / (n_class - 1)
        log_prb = F.log_softmax(pred, dim=1)
        loss = -(one_hot * log_prb).sum(dim=1).mean()
    else:
        loss = F.cross_entropy(pred, gold, reduction='mean')
    return loss


def train_dgcnn(T, device, init, points, label, steps=3):
    device = device_of(T, device)
    model = ported_model(T, dgcnn, init, device)
    opt = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = T.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.001)
    data, label = T.from_numpy(points).to(device), T.from_numpy(label).to(device).squeeze()
    data = data.permute(0, 2, 1)
    losses = []
    for _ in range(steps):
        model.train()
        opt.zero_grad()
        logits = model(data)
        loss = cal_loss(T, logits, label)
        loss.backward()
        opt.step()
        scheduler.step()
        preds = logits.max(dim=1)[1]
        losses += [loss.item(), (preds == label).sum().item()]
    model.eval()
    with T.no_grad():
        losses.append(cal_loss(T, model(data), label, smoothing=False).item())
    return losses, numpy_state(model)


def test_dgcnn_edge_conv(device):
    rng = np.random.default_rng(2)
    points, label = point_clouds(rng, 4, 12, 3)
    torch.manual_seed(0)
    run_both(train_dgcnn, device, numpy_state(dgcnn(torch)), points, label[:, None])


# ---- 4. NeRF: positional encoding, get_rays, stratified + hierarchical sampling, volume rendering ----

class Embedder:
    def __init__(self, T, **kwargs):
        self.T = T
        self.kwargs = kwargs
        self.create_embedding_fn()

    def create_embedding_fn(self):
        T = self.T
        embed_fns = []
        d = self.kwargs['input_dims']
        out_dim = 0
        if self.kwargs['include_input']:
            embed_fns.append(lambda x: x)
            out_dim += d
        max_freq = self.kwargs['max_freq_log2']
        N_freqs = self.kwargs['num_freqs']
        if self.kwargs['log_sampling']:
            freq_bands = 2.**T.linspace(0., max_freq, steps=N_freqs)
        else:
            freq_bands = T.linspace(2.**0., 2.**max_freq, steps=N_freqs)
        for freq in freq_bands:
            for p_fn in self.kwargs['periodic_fns']:
                embed_fns.append(lambda x, p_fn=p_fn, freq=freq: p_fn(x * freq))
                out_dim += d
        self.embed_fns = embed_fns
        self.out_dim = out_dim

    def embed(self, inputs):
        return self.T.cat([fn(inputs) for fn in self.embed_fns], -1)


def get_embedder(T, multires, i=0):
    embed_kwargs = {'include_input': True, 'input_dims': 3, 'max_freq_log2': multires - 1,
                    'num_freqs': multires, 'log_sampling': True, 'periodic_fns': [T.sin, T.cos]}
    embedder_obj = Embedder(T, **embed_kwargs)
    return (lambda x, eo=embedder_obj: eo.embed(x)), embedder_obj.out_dim


def nerf(T, D=4, W=16, input_ch=3 + 3 * 2 * 4, input_ch_views=3 + 3 * 2 * 2, output_ch=4, skips=(2,),
         use_viewdirs=True):
    nn, F = T.nn, T.nn.functional

    class NeRF(nn.Module):
        def __init__(self):
            super().__init__()
            self.D, self.W = D, W
            self.input_ch, self.input_ch_views = input_ch, input_ch_views
            self.skips = list(skips)
            self.use_viewdirs = use_viewdirs
            self.pts_linears = nn.ModuleList(
                [nn.Linear(input_ch, W)] + [nn.Linear(W, W) if i not in self.skips else nn.Linear(W + input_ch, W)
                                            for i in range(D - 1)])
            self.views_linears = nn.ModuleList([nn.Linear(input_ch_views + W, W // 2)])
            if use_viewdirs:
                self.feature_linear = nn.Linear(W, W)
                self.alpha_linear = nn.Linear(W, 1)
                self.rgb_linear = nn.Linear(W // 2, 3)
            else:
                self.output_linear = nn.Linear(W, output_ch)

        def forward(self, x):
            input_pts, input_views = T.split(x, [self.input_ch, self.input_ch_views], dim=-1)
            h = input_pts
            for i, l in enumerate(self.pts_linears):
                h = self.pts_linears[i](h)
                h = F.relu(h)
                if i in self.skips:
                    h = T.cat([input_pts, h], -1)
            if self.use_viewdirs:
                alpha = self.alpha_linear(h)
                feature = self.feature_linear(h)
                h = T.cat([feature, input_views], -1)
                for i, l in enumerate(self.views_linears):
                    h = self.views_linears[i](h)
                    h = F.relu(h)
                rgb = self.rgb_linear(h)
                outputs = T.cat([rgb, alpha], -1)
            else:
                outputs = self.output_linear(h)
            return outputs

    return NeRF()


def get_rays(T, H, W, K, c2w):
    # nerf-pytorch makes these on the GPU through torch.set_default_tensor_type('torch.cuda.FloatTensor') in its
    # __main__; the port moves them to c2w's device instead, as it does its other factory calls
    i, j = T.meshgrid(T.linspace(0, W - 1, W).to(c2w.device), T.linspace(0, H - 1, H).to(c2w.device), indexing='ij')
    i = i.t()
    j = j.t()
    dirs = T.stack([(i - K[0][2]) / K[0][0], -(j - K[1][2]) / K[1][1], -T.ones_like(i)], -1)
    # Rotate ray directions from camera frame to the world frame
    rays_d = T.sum(dirs[..., np.newaxis, :] * c2w[:3, :3], -1)
    rays_o = c2w[:3, -1].expand(rays_d.shape)
    return rays_o, rays_d


def raw2outputs(T, raw, z_vals, rays_d, white_bkgd=False):
    F = T.nn.functional

    def raw2alpha(raw, dists, act_fn=F.relu):
        return 1. - T.exp(-act_fn(raw) * dists)

    dists = z_vals[..., 1:] - z_vals[..., :-1]
    dists = T.cat([dists, T.Tensor([1e10]).to(dists.device).expand(dists[..., :1].shape)], -1)
    dists = dists * T.norm(rays_d[..., None, :], dim=-1)
    rgb = T.sigmoid(raw[..., :3])
    noise = 0.
    alpha = raw2alpha(raw[..., 3] + noise, dists)
    ones = T.ones((alpha.shape[0], 1), device=alpha.device)
    weights = alpha * T.cumprod(T.cat([ones, 1. - alpha + 1e-10], -1), -1)[:, :-1]
    rgb_map = T.sum(weights[..., None] * rgb, -2)
    depth_map = T.sum(weights * z_vals, -1)
    disp_map = 1. / T.max(1e-10 * T.ones_like(depth_map), depth_map / T.sum(weights, -1))
    acc_map = T.sum(weights, -1)
    if white_bkgd:
        rgb_map = rgb_map + (1. - acc_map[..., None])
    return rgb_map, disp_map, acc_map, weights, depth_map


def sample_pdf(T, bins, weights, N_samples, u):
    """The reference draws u = torch.rand(...) (or np.random under its pytest flag): here it comes in."""
    weights = weights + 1e-5  # prevent nans
    pdf = weights / T.sum(weights, -1, keepdim=True)
    cdf = T.cumsum(pdf, -1)
    cdf = T.cat([T.zeros_like(cdf[..., :1]), cdf], -1)  # (batch, len(bins))
    u = T.Tensor(u).to(cdf.device)
    u = u.contiguous()
    inds = T.searchsorted(cdf, u, right=True)
    below = T.max(T.zeros_like(inds - 1), inds - 1)
    above = T.min((cdf.shape[-1] - 1) * T.ones_like(inds), inds)
    inds_g = T.stack([below, above], -1)  # (batch, N_samples, 2)
    matched_shape = [inds_g.shape[0], inds_g.shape[1], cdf.shape[-1]]
    cdf_g = T.gather(cdf.unsqueeze(1).expand(matched_shape), 2, inds_g)
    bins_g = T.gather(bins.unsqueeze(1).expand(matched_shape), 2, inds_g)
    denom = (cdf_g[..., 1] - cdf_g[..., 0])
    denom = T.where(denom < 1e-5, T.ones_like(denom), denom)
    t = (u - cdf_g[..., 0]) / denom
    samples = bins_g[..., 0] + t * (bins_g[..., 1] - bins_g[..., 0])
    return samples


def render_rays(T, ray_batch, network_fn, network_fine, embed_fn, embeddirs_fn, N_samples, N_importance,
                t_rand, u, netchunk=64):
    def batchify(fn, chunk):
        def ret(inputs):
            return T.cat([fn(inputs[i:i + chunk]) for i in range(0, inputs.shape[0], chunk)], 0)
        return ret

    def run_network(inputs, viewdirs, fn):
        inputs_flat = T.reshape(inputs, [-1, inputs.shape[-1]])
        embedded = embed_fn(inputs_flat)
        input_dirs = viewdirs[:, None].expand(inputs.shape)
        input_dirs_flat = T.reshape(input_dirs, [-1, input_dirs.shape[-1]])
        embedded_dirs = embeddirs_fn(input_dirs_flat)
        embedded = T.cat([embedded, embedded_dirs], -1)
        outputs_flat = batchify(fn, netchunk)(embedded)
        return T.reshape(outputs_flat, list(inputs.shape[:-1]) + [outputs_flat.shape[-1]])

    N_rays = ray_batch.shape[0]
    rays_o, rays_d = ray_batch[:, 0:3], ray_batch[:, 3:6]
    viewdirs = ray_batch[:, -3:]
    bounds = T.reshape(ray_batch[..., 6:8], [-1, 1, 2])
    near, far = bounds[..., 0], bounds[..., 1]  # [-1,1]
    t_vals = T.linspace(0., 1., steps=N_samples).to(ray_batch.device)
    z_vals = near * (1. - t_vals) + far * (t_vals)
    z_vals = z_vals.expand([N_rays, N_samples])
    # get intervals between samples
    mids = .5 * (z_vals[..., 1:] + z_vals[..., :-1])
    upper = T.cat([mids, z_vals[..., -1:]], -1)
    lower = T.cat([z_vals[..., :1], mids], -1)
    t_rand = T.Tensor(t_rand).to(ray_batch.device)
    z_vals = lower + (upper - lower) * t_rand
    pts = rays_o[..., None, :] + rays_d[..., None, :] * z_vals[..., :, None]  # [N_rays, N_samples, 3]
    raw = run_network(pts, viewdirs, network_fn)
    rgb_map, disp_map, acc_map, weights, depth_map = raw2outputs(T, raw, z_vals, rays_d)
    rgb_map_0, disp_map_0, acc_map_0 = rgb_map, disp_map, acc_map
    z_vals_mid = .5 * (z_vals[..., 1:] + z_vals[..., :-1])
    z_samples = sample_pdf(T, z_vals_mid, weights[..., 1:-1], N_importance, u)
    z_samples = z_samples.detach()
    z_vals, _ = T.sort(T.cat([z_vals, z_samples], -1), -1)
    pts = rays_o[..., None, :] + rays_d[..., None, :] * z_vals[..., :, None]
    raw = run_network(pts, viewdirs, network_fine)
    rgb_map, disp_map, acc_map, weights, depth_map = raw2outputs(T, raw, z_vals, rays_d)
    return {'rgb_map': rgb_map, 'disp_map': disp_map, 'acc_map': acc_map, 'rgb0': rgb_map_0,
            'disp0': disp_map_0, 'acc0': acc_map_0, 'z_std': T.std(z_samples, dim=-1, unbiased=False)}


def nerf_models(T):
    return T.nn.ModuleDict({'coarse': nerf(T), 'fine': nerf(T)})


def train_nerf(T, device, init, images, poses, select_inds, t_rands, us, lrate=5e-3, lrate_decay=1,
               N_samples=6, N_importance=5):
    device = device_of(T, device)
    models = ported_model(T, nerf_models, init, device)
    H, W, focal = images.shape[1], images.shape[2], 3.0
    K = np.array([[focal, 0, 0.5 * W], [0, focal, 0.5 * H], [0, 0, 1]])
    embed_fn, input_ch = get_embedder(T, 4)
    embeddirs_fn, input_ch_views = get_embedder(T, 2)
    grad_vars = list(models['coarse'].parameters()) + list(models['fine'].parameters())
    optimizer = T.optim.Adam(params=grad_vars, lr=lrate, betas=(0.9, 0.999))
    img2mse = lambda x, y: T.mean((x - y) ** 2)  # noqa: E731 - as nerf-pytorch writes it
    mse2psnr = lambda x: -10. * T.log(x) / T.log(T.Tensor([10.]).to(x.device))  # noqa: E731
    images, poses = T.Tensor(images).to(device), T.Tensor(poses).to(device)
    losses = []
    for global_step, (img_i, inds) in enumerate(select_inds):
        target = images[img_i]
        pose = poses[img_i, :3, :4]
        rays_o, rays_d = get_rays(T, H, W, K, pose)  # (H, W, 3), (H, W, 3)
        coords = T.stack(T.meshgrid(T.linspace(0, H - 1, H), T.linspace(0, W - 1, W), indexing='ij'), -1)
        coords = T.reshape(coords, [-1, 2]).to(device)
        select_coords = coords[inds].long()  # (N_rand, 2)
        rays_o = rays_o[select_coords[:, 0], select_coords[:, 1]]
        rays_d = rays_d[select_coords[:, 0], select_coords[:, 1]]
        target_s = target[select_coords[:, 0], select_coords[:, 1]]
        viewdirs = rays_d / T.norm(rays_d, dim=-1, keepdim=True)
        viewdirs = T.reshape(viewdirs, [-1, 3]).float()
        near, far = 2. * T.ones_like(rays_d[..., :1]), 6. * T.ones_like(rays_d[..., :1])
        rays = T.cat([rays_o, rays_d, near, far, viewdirs], -1)
        extras = render_rays(T, rays, models['coarse'], models['fine'], embed_fn, embeddirs_fn, N_samples,
                             N_importance, t_rands[global_step], us[global_step])
        optimizer.zero_grad()
        img_loss = img2mse(extras['rgb_map'], target_s)
        loss = img_loss
        psnr = mse2psnr(img_loss)
        img_loss0 = img2mse(extras['rgb0'], target_s)
        loss = loss + img_loss0
        loss.backward()
        optimizer.step()
        decay_rate = 0.1
        decay_steps = lrate_decay * 1000
        new_lrate = lrate * (decay_rate ** (global_step / decay_steps))
        for param_group in optimizer.param_groups:
            param_group['lr'] = new_lrate
        losses += [loss.item(), psnr.item(), extras['disp_map'].mean().item(), extras['acc0'].sum().item(),
                   extras['z_std'].mean().item(), extras['disp0'].isnan().sum().item()]
    return losses, numpy_state(models)


# A coarse ray whose densities are all zero renders 0 / 0 = nan disparity in both libraries; NumPy warns
# where torch is silent (README), and the nan compares equal.
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_nerf_volume_rendering(device):
    rng = np.random.default_rng(3)
    steps, H, W, n_rand, n_samples, n_importance = 3, 4, 5, 6, 6, 5
    images = rng.uniform(0, 1, (2, H, W, 3)).astype(np.float32)
    poses = np.tile(np.eye(4, dtype=np.float32), (2, 1, 1))
    poses[:, :3, 3] = rng.uniform(-0.5, 0.5, (2, 3))
    poses[1, :3, :3] = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], np.float32)  # a turned camera
    select_inds = [(step % 2, rng.choice(H * W, size=[n_rand], replace=False)) for step in range(steps)]
    t_rands = rng.uniform(0, 1, (steps, n_rand, n_samples)).astype(np.float32)
    us = rng.uniform(0, 1, (steps, n_rand, n_importance)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_nerf, device, numpy_state(nerf_models(torch)), images, poses, select_inds, t_rands, us)


# ---- 5. PointNet++ segmentation: multi-scale grouping, feature propagation by inverse distance -------

def pointnet2_seg(T, num_classes=3):
    nn, F = T.nn, T.nn.functional

    class PointNetSetAbstractionMsg(nn.Module):
        def __init__(self, npoint, radius_list, nsample_list, in_channel, mlp_list):
            super().__init__()
            self.npoint, self.radius_list, self.nsample_list = npoint, radius_list, nsample_list
            self.conv_blocks = nn.ModuleList()
            self.bn_blocks = nn.ModuleList()
            for i in range(len(mlp_list)):
                convs = nn.ModuleList()
                bns = nn.ModuleList()
                last_channel = in_channel + 3
                for out_channel in mlp_list[i]:
                    convs.append(nn.Conv2d(last_channel, out_channel, 1))
                    bns.append(nn.BatchNorm2d(out_channel))
                    last_channel = out_channel
                self.conv_blocks.append(convs)
                self.bn_blocks.append(bns)

        def forward(self, xyz, points, start):
            xyz = xyz.permute(0, 2, 1)
            if points is not None:
                points = points.permute(0, 2, 1)
            B, N, C = xyz.shape
            S = self.npoint
            new_xyz = index_points(T, xyz, farthest_point_sample(T, xyz, S, start))
            new_points_list = []
            for i, radius in enumerate(self.radius_list):
                K = self.nsample_list[i]
                group_idx = query_ball_point(T, radius, K, xyz, new_xyz)
                grouped_xyz = index_points(T, xyz, group_idx)
                grouped_xyz -= new_xyz.view(B, S, 1, C)
                if points is not None:
                    grouped_points = index_points(T, points, group_idx)
                    grouped_points = T.cat([grouped_points, grouped_xyz], dim=-1)
                else:
                    grouped_points = grouped_xyz
                grouped_points = grouped_points.permute(0, 3, 2, 1)  # [B, D, K, S]
                for j in range(len(self.conv_blocks[i])):
                    conv = self.conv_blocks[i][j]
                    bn = self.bn_blocks[i][j]
                    grouped_points = F.relu(bn(conv(grouped_points)))
                new_points = T.max(grouped_points, 2)[0]  # [B, D', S]
                new_points_list.append(new_points)
            new_xyz = new_xyz.permute(0, 2, 1)
            new_points_concat = T.cat(new_points_list, dim=1)
            return new_xyz, new_points_concat

    class PointNetFeaturePropagation(nn.Module):
        def __init__(self, in_channel, mlp):
            super().__init__()
            self.mlp_convs = nn.ModuleList()
            self.mlp_bns = nn.ModuleList()
            last_channel = in_channel
            for out_channel in mlp:
                self.mlp_convs.append(nn.Conv1d(last_channel, out_channel, 1))
                self.mlp_bns.append(nn.BatchNorm1d(out_channel))
                last_channel = out_channel

        def forward(self, xyz1, xyz2, points1, points2):
            xyz1 = xyz1.permute(0, 2, 1)
            xyz2 = xyz2.permute(0, 2, 1)
            points2 = points2.permute(0, 2, 1)
            B, N, C = xyz1.shape
            _, S, _ = xyz2.shape
            if S == 1:
                interpolated_points = points2.repeat(1, N, 1)
            else:
                dists = square_distance(T, xyz1, xyz2)
                dists, idx = dists.sort(dim=-1)
                dists, idx = dists[:, :, :3], idx[:, :, :3]  # [B, N, 3]
                dist_recip = 1.0 / (dists + 1e-8)
                norm = T.sum(dist_recip, dim=2, keepdim=True)
                weight = dist_recip / norm
                interpolated_points = T.sum(index_points(T, points2, idx) * weight.view(B, N, 3, 1), dim=2)
            if points1 is not None:
                points1 = points1.permute(0, 2, 1)
                new_points = T.cat([points1, interpolated_points], dim=-1)
            else:
                new_points = interpolated_points
            new_points = new_points.permute(0, 2, 1)
            for i, conv in enumerate(self.mlp_convs):
                bn = self.mlp_bns[i]
                new_points = F.relu(bn(conv(new_points)))
            return new_points

    class PointNet2Seg(nn.Module):
        def __init__(self):
            super().__init__()
            self.sa1 = PointNetSetAbstractionMsg(6, [0.5, 1.0], [3, 5], 0, [[4, 6], [6, 6]])
            self.fp1 = PointNetFeaturePropagation(12 + 3, [8, 8])
            self.conv1 = nn.Conv1d(8, 8, 1)
            self.bn1 = nn.BatchNorm1d(8)
            self.drop1 = nn.Dropout(0.0)
            self.conv2 = nn.Conv1d(8, num_classes, 1)

        def forward(self, xyz, start):
            l0_points = xyz
            l0_xyz = xyz[:, :3, :]
            l1_xyz, l1_points = self.sa1(l0_xyz, None, start)
            l0_points = self.fp1(l0_xyz, l1_xyz, l0_points, l1_points)
            x = self.drop1(F.relu(self.bn1(self.conv1(l0_points))))
            x = self.conv2(x)
            x = F.log_softmax(x, dim=1)
            x = x.permute(0, 2, 1)
            return x, l1_points

    return PointNet2Seg()


def train_pointnet2_seg(T, device, init, points, target, starts, weights, steps=3):
    device = device_of(T, device)
    classifier = ported_model(T, pointnet2_seg, init, device)
    optimizer = T.optim.SGD(classifier.parameters(), lr=0.05, momentum=0.9)
    points = T.Tensor(points).to(device).transpose(2, 1)
    target = T.from_numpy(target).to(device)
    weights = T.Tensor(weights).to(device)
    losses = []
    for step in range(steps):
        classifier = classifier.train()
        optimizer.zero_grad()
        seg_pred, trans_feat = classifier(points, starts[step])
        seg_pred = seg_pred.contiguous().view(-1, 3)
        # README: `.data` is the raw array in raygrad; the reference's .cpu().data.numpy() reads .detach()
        batch_label = target.view(-1, 1)[:, 0].cpu().detach().numpy()
        target_flat = target.view(-1, 1)[:, 0]
        loss = T.nn.functional.nll_loss(seg_pred, target_flat, weight=weights)
        loss.backward()
        optimizer.step()
        pred_choice = seg_pred.cpu().detach().max(1)[1].numpy()
        correct = np.sum(pred_choice == batch_label)
        losses += [loss.item(), correct]
    return losses, numpy_state(classifier)


def test_pointnet2_segmentation_msg_and_feature_propagation(device):
    rng = np.random.default_rng(4)
    points, _ = point_clouds(rng, 3, 14, 3)
    target = rng.integers(0, 3, (3, 14)).astype(np.int64)
    starts = rng.integers(0, 14, (3, 3)).astype(np.int64)
    weights = np.array([1.0, 2.0, 0.5], np.float32)
    torch.manual_seed(0)
    run_both(train_pointnet2_seg, device, numpy_state(pointnet2_seg(torch)), points, target, starts, weights)
