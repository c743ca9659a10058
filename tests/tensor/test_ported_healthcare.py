"""Ported healthcare training scripts (medical imaging, survival, tabular, MIL, ECG): a PyTorch script
runs on raygrad unchanged.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor); the model is built in torch and its state_dict copied into raygrad through NumPy; both see the
same NumPy data, and the losses and final parameters must agree to float32 accuracy. The scripts follow
the well-known reference implementations (a MONAI-free 3-D UNet, pycox's DeepSurv/DeepHit, rtdl's
FT-Transformer, TabNet's sparsemax, Ilse et al.'s gated-attention MIL, a 1-D ResNet for ECG).
"""
import math

import numpy as np
import pytest

import tensor
from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def as_list(x):
    return np.asarray(x, dtype=np.float64).ravel().tolist()


# ---- 1. 3-D UNet segmentation: Dice + CE, sliding-window inference, flip TTA ----------------------------

def unet3d(T, in_ch=1, num_classes=3):
    nn, F = T.nn, T.nn.functional

    class ConvBlock(nn.Module):
        # No conv bias: InstanceNorm right after cancels it, so its true gradient is exactly zero.
        def __init__(self, cin, cout):
            super().__init__()
            self.conv1 = nn.Conv3d(cin, cout, kernel_size=3, padding=1, bias=False)
            self.norm1 = nn.InstanceNorm3d(cout, affine=True)
            self.conv2 = nn.Conv3d(cout, cout, kernel_size=3, padding=1, bias=False)
            self.norm2 = nn.InstanceNorm3d(cout, affine=True)
            self.act = nn.LeakyReLU(negative_slope=0.01, inplace=True)

        def forward(self, x):
            x = self.act(self.norm1(self.conv1(x)))
            return self.act(self.norm2(self.conv2(x)))

    class UNet3D(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1 = ConvBlock(in_ch, 4)
            self.pool = nn.MaxPool3d(2)
            self.enc2 = ConvBlock(4, 8)
            self.up = nn.ConvTranspose3d(8, 4, kernel_size=2, stride=2)
            self.side = nn.Conv3d(8, 4, kernel_size=1)
            self.dec1 = ConvBlock(8, 4)
            self.head = nn.Conv3d(4, num_classes, kernel_size=1)

        def forward(self, x):
            x1 = self.enc1(x)
            x2 = self.enc2(self.pool(x1))
            up = self.up(x2) + F.interpolate(self.side(x2), scale_factor=2, mode="trilinear",
                                             align_corners=False)
            up = up + F.interpolate(x2[:, :4], size=x1.shape[2:], mode="nearest")
            return self.head(self.dec1(T.cat([up, x1], dim=1)))

    return UNet3D()


def dice_loss(T, logits, target, num_classes, smooth_nr=1e-5, smooth_dr=1e-5):
    F = T.nn.functional
    probs = F.softmax(logits, dim=1)
    onehot = F.one_hot(target, num_classes).permute(0, 4, 1, 2, 3).float()
    dims = (2, 3, 4)
    intersection = T.sum(probs * onehot, dim=dims)
    denominator = T.sum(probs, dim=dims) + T.sum(onehot, dim=dims)
    dice = (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)
    return 1.0 - dice.mean()


def gaussian_importance_map(T, roi, sigma_scale=0.125, device="cpu"):
    center = (roi - 1) / 2.0
    coords = T.arange(roi, dtype=T.float32, device=device) - center
    zz, yy, xx = T.meshgrid(coords, coords, coords, indexing="ij")
    sigma = roi * sigma_scale
    importance = T.exp(-(zz ** 2 + yy ** 2 + xx ** 2) / (2 * sigma ** 2))
    importance = importance / T.max(importance)
    return importance.clamp(min=1e-3)


def sliding_window_inference(T, image, model, roi, overlap, num_classes):
    """MONAI-style: pad so the windows tile, blend overlapping window predictions with a Gaussian."""
    F = T.nn.functional
    step = int(roi * (1 - overlap))
    sizes = image.shape[2:]
    pads = [(-(-(max(s - roi, 0)) // step)) * step + roi - s for s in sizes]
    padded = F.pad(image, (0, pads[2], 0, pads[1], 0, pads[0]), mode="constant", value=0.0)
    weight = gaussian_importance_map(T, roi, device=image.device)
    out = T.zeros(image.shape[0], num_classes, *padded.shape[2:], device=image.device)
    count = T.zeros(1, 1, *padded.shape[2:], device=image.device)
    for z in range(0, padded.shape[2] - roi + 1, step):
        for y in range(0, padded.shape[3] - roi + 1, step):
            for x in range(0, padded.shape[4] - roi + 1, step):
                window = padded[:, :, z:z + roi, y:y + roi, x:x + roi]
                # test-time augmentation: the prediction of the flipped window, flipped back
                prob = F.softmax(model(window), dim=1)
                flipped = T.flip(model(T.flip(window, dims=(2, 3, 4))), dims=(2, 3, 4))
                prob = (prob + F.softmax(flipped, dim=1)) / 2
                out[:, :, z:z + roi, y:y + roi, x:x + roi] += prob * weight
                count[:, :, z:z + roi, y:y + roi, x:x + roi] += weight
    out = out / count
    return out[:, :, :sizes[0], :sizes[1], :sizes[2]]


def train_unet3d(T, device, init, volumes, labels, test_volume, steps=3):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, unet3d, init, device)
    opt = T.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-5)
    x = T.from_numpy(volumes).to(device)
    y = T.from_numpy(labels).long().to(device)
    losses = []
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        logits = model(x)
        loss = dice_loss(T, logits, y, 3) + F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        probs = sliding_window_inference(T, T.from_numpy(test_volume).to(device), model, roi=8,
                                         overlap=0.5, num_classes=3)
        seg = probs.argmax(dim=1)
    return losses + as_list(probs.cpu().numpy()) + as_list(seg.cpu().numpy()), numpy_state(model)


def test_unet3d_dice_ce_sliding_window(device):
    rng = np.random.default_rng(0)
    volumes = rng.standard_normal((2, 1, 8, 8, 8)).astype(np.float32)
    labels = np.digitize(volumes[:, 0], [-0.5, 0.5]).astype(np.int64)
    test_volume = rng.standard_normal((1, 1, 10, 10, 10)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_unet3d, device, numpy_state(unet3d(torch)), volumes, labels, test_volume)


# ---- 2. Survival: DeepSurv (Cox partial likelihood) and DeepHit (discrete hazards + ranking) ----------

def deepsurv_net(T, in_features=6, out_features=1):
    nn = T.nn
    return nn.Sequential(
        nn.Linear(in_features, 8), nn.SELU(), nn.Dropout(0.0),
        nn.Linear(8, 8), nn.SELU(),
        # pycox's output_bias=False: the Cox partial likelihood is shift-invariant, a bias has no gradient
        nn.Linear(8, out_features, bias=False),
    )


def cox_ph_loss(T, log_h, durations, events, eps=1e-7):
    """pycox's cox_ph_loss (no ties): sort by duration, descending; the risk set is a prefix."""
    idx = durations.sort(descending=True)[1]
    events = events[idx]
    log_h = log_h[idx]
    log_risk = T.logcumsumexp(log_h, dim=0)
    return -(log_h - log_risk)[events == 1].mean()


def concordance_index(T, risk, durations, events):
    with T.no_grad():
        comparable = (durations[:, None] < durations[None, :]) & (events[:, None] == 1)
        concordant = (risk[:, None] > risk[None, :]).float() + 0.5 * (risk[:, None] == risk[None, :]).float()
        return ((concordant * comparable).sum() / comparable.sum()).item()


def train_deepsurv(T, device, init, x, durations, events, steps=5):
    device = device_of(T, device)
    model = ported_model(T, deepsurv_net, init, device)
    opt = T.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    x = T.tensor(x, device=device)
    durations, events = T.tensor(durations, device=device), T.tensor(events, device=device)
    losses = []
    for _ in range(steps):
        model.train()
        opt.zero_grad()
        log_h = model(x).squeeze(-1)
        loss = cox_ph_loss(T, log_h, durations, events)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    cindex = concordance_index(T, model(x).view(-1), durations, events)
    return losses + [cindex], numpy_state(model)


def test_deepsurv_cox_partial_likelihood(device):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    durations = rng.exponential(1.0, 20).astype(np.float32)
    events = (rng.random(20) < 0.7).astype(np.int64)
    torch.manual_seed(0)
    got = run_both(train_deepsurv, device, numpy_state(deepsurv_net(torch)), x, durations, events)
    assert 0.0 <= got[0][-1] <= 1.0


def pad_col(T, input, val=0.0):
    """pycox's pad_col: a constant last column, so the softmax keeps mass beyond the last bin."""
    pad = T.zeros_like(input[:, :1]) + val
    return T.cat([input, pad], dim=1)


def nll_pmf(T, phi, idx_durations, events, epsilon=1e-7):
    """pycox's nll_pmf: the discrete-time likelihood, written with logsumexp-style stabilisation."""
    phi = pad_col(T, phi)
    gamma = phi.max(1)[0]
    cumsum = phi.sub(gamma.view(-1, 1)).exp().cumsum(1)
    sum_ = cumsum[:, -1]
    part1 = phi.gather(1, idx_durations).view(-1).sub(gamma).mul(events)
    part2 = -sum_.relu().add(epsilon).log()
    part3 = sum_.sub(cumsum.gather(1, idx_durations).view(-1)).relu().add(epsilon).log().mul(1.0 - events)
    return -part1.add(part2).add(part3).mean()


def pair_rank_mat(T, idx_durations, events):
    """rank_mat[i, j] = 1 where i has an event before j's time (or at it, j censored)."""
    dur_i, dur_j = idx_durations.view(-1, 1), idx_durations.view(1, -1)
    ev_i, ev_j = events.view(-1, 1), events.view(1, -1)
    return ((ev_i == 1) & ((dur_i < dur_j) | ((dur_i == dur_j) & (ev_j == 0)))).float()


def rank_loss_deephit_single(T, phi, idx_durations, events, rank_mat, sigma):
    pmf = pad_col(T, phi).softmax(1)
    y = T.zeros_like(pmf).scatter(1, idx_durations, 1.0)  # one-hot of the durations
    r = pmf.cumsum(1).matmul(y.transpose(0, 1))  # r[i, j] = F_i(t_j)
    diag_r = r.diag().view(1, -1)
    r = T.ones(r.shape[0], 1, device=r.device).matmul(diag_r) - r  # F_j(t_j) - F_i(t_j)
    r = r.transpose(0, 1)  # [i, j]: F_i(t_i) - F_j(t_i)
    loss = rank_mat * T.exp(-r / sigma)
    return loss.mean(1, keepdim=True).mean()


def deephit_loss(T, phi, idx_durations, events, alpha=0.5, sigma=0.1):
    """pycox's DeepHitSingleLoss: alpha * nll_pmf + (1 - alpha) * the pairwise ranking term."""
    idx_durations = idx_durations.view(-1, 1)
    events = events.float()
    rank_mat = pair_rank_mat(T, idx_durations, events)
    nll = nll_pmf(T, phi, idx_durations, events)
    rank = rank_loss_deephit_single(T, phi, idx_durations, events, rank_mat, sigma)
    return alpha * nll + (1.0 - alpha) * rank


def train_deephit(T, device, init, x, idx_durations, events, steps=4):
    device = device_of(T, device)
    model = ported_model(T, lambda T: deepsurv_net(T, out_features=5), init, device)
    opt = T.optim.AdamW(model.parameters(), lr=5e-3)
    x = T.tensor(x, device=device)
    idx_durations, events = T.tensor(idx_durations, device=device), T.tensor(events, device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = deephit_loss(T, model(x), idx_durations, events)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with T.no_grad():
        surv = 1 - pad_col(T, model(x)).softmax(1).cumsum(1)[:, :-1]
        risk = -surv[:, 2]
    return losses + as_list(surv.cpu().numpy()) + [concordance_index(T, risk, idx_durations, events)], \
        numpy_state(model)


def test_deephit_discrete_time_ranking(device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    idx_durations = rng.integers(0, 5, 16)
    events = (rng.random(16) < 0.6).astype(np.int64)
    torch.manual_seed(0)
    run_both(train_deephit, device, numpy_state(deepsurv_net(torch, out_features=5)), x, idx_durations,
             events)


def train_deep_weibull(T, device, init, x, durations, events, steps=4):
    """Parametric survival: the net predicts a Weibull per patient; censored rows contribute log S(t)."""
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, lambda T: deepsurv_net(T, out_features=2), init, device)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    x = T.tensor(x, device=device)
    durations, events = T.tensor(durations, device=device), T.tensor(events, device=device).float()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        out = model(x)
        dist = T.distributions.Weibull(F.softplus(out[:, 0]) + 1e-3, F.softplus(out[:, 1]) + 0.5)
        log_surv = T.log1p(-dist.cdf(durations))
        loss = -(events * dist.log_prob(durations) + (1 - events) * log_surv).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with T.no_grad():
        out = model(x)
        dist = T.distributions.Weibull(F.softplus(out[:, 0]) + 1e-3, F.softplus(out[:, 1]) + 0.5)
        median = dist.icdf(T.full_like(durations, 0.5))
        cindex = concordance_index(T, -median, durations, events)
    return losses + as_list(dist.mean.cpu().numpy()) + as_list(median.cpu().numpy()) + [cindex], \
        numpy_state(model)


def test_deep_weibull_censored_likelihood(device):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    durations = rng.weibull(1.5, 20).astype(np.float32) + 0.05
    events = (rng.random(20) < 0.7).astype(np.int64)
    torch.manual_seed(0)
    run_both(train_deep_weibull, device, numpy_state(deepsurv_net(torch, out_features=2)), x, durations, events)


# ---- 3. Tabular: FT-Transformer (rtdl) with missing values, class weights, k-fold ----------------------

def ft_transformer(T, n_num=4, cardinalities=(3, 5), d_token=8, n_heads=2, n_classes=3):
    nn, F = T.nn, T.nn.functional

    def uniform_(t, d):
        s = 1 / math.sqrt(d)
        nn.init.uniform_(t, -s, s)

    class NumericalFeatureTokenizer(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(T.Tensor(n_num, d_token))
            self.bias = nn.Parameter(T.Tensor(n_num, d_token))
            self.missing = nn.Parameter(T.Tensor(n_num, d_token))
            for p in (self.weight, self.bias, self.missing):
                uniform_(p, d_token)

        def forward(self, x):
            mask = T.isnan(x)
            x = T.nan_to_num(x, nan=0.0)
            tokens = self.weight[None] * x[..., None] + self.bias[None]
            return tokens + mask[..., None].float() * self.missing[None]

    class CategoricalFeatureTokenizer(nn.Module):
        def __init__(self):
            super().__init__()
            category_offsets = T.tensor([0] + list(cardinalities[:-1])).cumsum(0)
            self.register_buffer("category_offsets", category_offsets, persistent=False)
            self.embeddings = nn.Embedding(sum(cardinalities), d_token)
            self.bias = nn.Parameter(T.Tensor(len(cardinalities), d_token))
            for p in (self.embeddings.weight, self.bias):
                uniform_(p, d_token)

        def forward(self, x):
            return self.embeddings(x + self.category_offsets[None]) + self.bias[None]

    class CLSToken(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(T.Tensor(d_token))
            uniform_(self.weight, d_token)

        def expand(self, *leading_dimensions):
            new_dims = (1,) * (len(leading_dimensions) - 1)
            return self.weight.view(*new_dims, -1).expand(*leading_dimensions, -1)

        def forward(self, x):
            return T.cat([x, self.expand(len(x), 1)], dim=1)

    class MultiheadAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.W_q = nn.Linear(d_token, d_token)
            # rtdl gives W_k a bias too, but a key bias shifts every score of a query equally, so softmax
            # cancels it and its true gradient is exactly zero (Adam would amplify float noise).
            self.W_k = nn.Linear(d_token, d_token, bias=False)
            self.W_v = nn.Linear(d_token, d_token)
            self.W_out = nn.Linear(d_token, d_token)

        def _reshape(self, x):
            batch_size, n_tokens, d = x.shape
            d_head = d // n_heads
            return x.reshape(batch_size, n_tokens, n_heads, d_head).transpose(1, 2).reshape(
                batch_size * n_heads, n_tokens, d_head)

        def forward(self, x_q, x_kv):
            q, k, v = self.W_q(x_q), self.W_k(x_kv), self.W_v(x_kv)
            batch_size, n_q_tokens = len(q), q.shape[1]
            d_head_key = k.shape[-1] // n_heads
            q, k = self._reshape(q), self._reshape(k)
            attention_logits = q @ k.transpose(1, 2) / math.sqrt(d_head_key)
            attention_probs = F.softmax(attention_logits, dim=-1)
            x = attention_probs @ self._reshape(v)
            x = x.reshape(batch_size, n_heads, n_q_tokens, -1).transpose(1, 2).reshape(
                batch_size, n_q_tokens, n_heads * (x.shape[-1]))
            return self.W_out(x)

    class ReGLU(nn.Module):
        def forward(self, x):
            a, b = x.chunk(2, dim=-1)
            return a * F.relu(b)

    class Block(nn.Module):
        def __init__(self, first):
            super().__init__()
            self.attention_normalization = nn.Identity() if first else nn.LayerNorm(d_token)
            self.attention = MultiheadAttention()
            self.ffn_normalization = nn.LayerNorm(d_token)
            self.ffn = nn.Sequential(nn.Linear(d_token, 2 * 2 * d_token), ReGLU(), nn.Dropout(0.0),
                                     nn.Linear(2 * d_token, d_token))

        def forward(self, x, last):
            x_residual = self.attention_normalization(x)
            # rtdl's last block attends only from the CLS token (the only one the head reads)
            x_q = x_residual[:, -1:] if last else x_residual
            x_residual = self.attention(x_q, x_residual)
            x = (x[:, -1:] if last else x) + x_residual
            return x + self.ffn(self.ffn_normalization(x))

    class FTTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_tokenizer = NumericalFeatureTokenizer()
            self.cat_tokenizer = CategoricalFeatureTokenizer()
            self.cls_token = CLSToken()
            self.blocks = nn.ModuleList([Block(first=True), Block(first=False)])
            self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, n_classes))

        def forward(self, x_num, x_cat):
            x = T.cat([self.num_tokenizer(x_num), self.cat_tokenizer(x_cat)], dim=1)
            x = self.cls_token(x)
            for i, block in enumerate(self.blocks):
                x = block(x, last=i == len(self.blocks) - 1)
            return self.head(x[:, -1])

    return FTTransformer()


def train_ft_transformer(T, device, init, x_num, x_cat, y, folds, steps=3):
    device = device_of(T, device)
    x_num, x_cat = T.tensor(x_num, device=device), T.tensor(x_cat, device=device)
    y = T.tensor(y, device=device)
    counts = T.bincount(y, minlength=3).float()
    class_weight = counts.sum() / (len(counts) * counts)
    loss_fn = T.nn.CrossEntropyLoss(weight=class_weight)
    losses, states = [], {}
    for fold, (train_idx, val_idx) in enumerate(folds):
        model = ported_model(T, ft_transformer, init, device)
        # Not lr=1e-2: fold 2's first gradient of blocks.1.ffn.0.weight[18, 6] cancels to 1.7e-7 (the median is
        # 9e-4), near Adam's eps, where the step is steep in it: float32 noise alone moved that weight past tolerance
        opt = T.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-5)
        train_idx = T.as_tensor(train_idx, device=device)
        val_idx = T.as_tensor(val_idx, device=device)
        for _ in range(steps):
            model.train()
            opt.zero_grad()
            loss = loss_fn(model(x_num[train_idx], x_cat[train_idx]), y[train_idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with T.no_grad():
            logits = model(x_num[val_idx], x_cat[val_idx])
            losses.append(loss_fn(logits, y[val_idx]).item())
            losses.append((logits.argmax(1) == y[val_idx]).float().mean().item())
        states.update({f"fold{fold}.{k}": v for k, v in numpy_state(model).items()})
    return losses, states


def test_ft_transformer_missing_values_kfold(device):
    rng = np.random.default_rng(3)
    n = 18
    x_num = rng.standard_normal((n, 4)).astype(np.float32)
    x_num[rng.random((n, 4)) < 0.2] = np.nan
    x_cat = np.stack([rng.integers(0, 3, n), rng.integers(0, 5, n)], axis=1)
    y = np.array([0] * 10 + [1] * 5 + [2] * 3)
    perm = rng.permutation(n)
    folds = [(np.setdiff1d(perm, part), part) for part in np.array_split(perm, 3)]
    torch.manual_seed(0)
    run_both(train_ft_transformer, device, numpy_state(ft_transformer(torch)), x_num, x_cat, y, folds)


# ---- 4. TabNet-style sparsemax feature selection, BCEWithLogits(pos_weight) ------------------------------

def sparsemax(T, input, dim=-1):
    """Martins & Astudillo's sparsemax as a composition of differentiable ops (no custom Function)."""
    input = input - input.max(dim=dim, keepdim=True)[0]
    zs = T.sort(input, dim=dim, descending=True)[0]
    rng = T.arange(1, input.size(dim) + 1, device=input.device, dtype=input.dtype)
    view = [1] * input.dim()
    view[dim] = -1
    rng = rng.view(view)
    cumsum = zs.cumsum(dim) - 1
    support = rng * zs > cumsum
    support_size = support.sum(dim=dim, keepdim=True)
    tau = cumsum.gather(dim, support_size - 1) / support_size.to(input.dtype)
    return T.clamp(input - tau, min=0)


def tabnet_like(T, n_features=6, n_d=8):
    nn = T.nn

    class AttentiveTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(n_d, n_features, bias=False)
            self.bn = nn.BatchNorm1d(n_features, momentum=0.02)

        def forward(self, priors, processed_feat):
            return sparsemax(T, self.bn(self.fc(processed_feat)) * priors)

    class TabNetLike(nn.Module):
        def __init__(self, n_steps=2, gamma=1.3):
            super().__init__()
            self.gamma = gamma
            self.initial_bn = nn.BatchNorm1d(n_features, momentum=0.01)
            self.initial = nn.Sequential(nn.Linear(n_features, n_d), nn.ReLU())
            self.attentive = nn.ModuleList([AttentiveTransformer() for _ in range(n_steps)])
            self.transforms = nn.ModuleList([nn.Sequential(nn.Linear(n_features, n_d), nn.ReLU())
                                             for _ in range(n_steps)])
            self.final = nn.Linear(n_d, 1)

        def forward(self, x):
            x = self.initial_bn(x)
            prior = T.ones_like(x)
            att = self.initial(x)
            out, m_loss = 0, 0
            for attentive, transform in zip(self.attentive, self.transforms):
                M = attentive(prior, att)
                m_loss = m_loss + T.mean(T.sum(M * T.log(M + 1e-15), dim=1))
                prior = (self.gamma - M) * prior
                att = transform(M * x)
                out = out + att
            return self.final(out).squeeze(-1), m_loss / len(self.attentive), M

    return TabNetLike()


def train_tabnet_like(T, device, init, x, y, steps=4):
    device = device_of(T, device)
    model = ported_model(T, tabnet_like, init, device)
    x, y = T.tensor(x, device=device), T.tensor(y, device=device)
    pos_weight = (y == 0).sum() / (y == 1).sum()
    loss_fn = T.nn.BCEWithLogitsLoss(pos_weight=pos_weight.float().reshape(1))
    opt = T.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(steps):
        model.train()
        opt.zero_grad()
        logits, m_loss, _ = model(x)
        loss = loss_fn(logits, y) - 1e-3 * m_loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        logits, _, mask = model(x)
        pred = (T.sigmoid(logits) > 0.5).float()
    return losses + as_list(mask.cpu().numpy()) + as_list(pred.cpu().numpy()), numpy_state(model)


def test_tabnet_sparsemax_pos_weight(device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0.8).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_tabnet_like, device, numpy_state(tabnet_like(torch)), x, y)


def test_sparsemax_rows_sum_to_one_and_are_sparse():
    z = tensor.tensor([[3.0, 1.0, 0.2, -1.0], [0.1, 0.1, 0.1, 0.1]])
    p = sparsemax(tensor, z).numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], 0.25)


# ---- 5. Multiple-instance learning: Ilse et al.'s gated attention -------------------------------------

def gated_attention(T, in_features=10):
    nn, F = T.nn, T.nn.functional

    class GatedAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.M = 8
            self.L = 6
            self.ATTENTION_BRANCHES = 1
            self.feature_extractor_part2 = nn.Sequential(nn.Linear(in_features, self.M), nn.ReLU())
            self.attention_V = nn.Sequential(nn.Linear(self.M, self.L), nn.Tanh())
            self.attention_U = nn.Sequential(nn.Linear(self.M, self.L), nn.Sigmoid())
            # Ilse et al. give attention_w a bias, but softmax over the instances cancels it (its true
            # gradient is exactly zero; Adam would amplify float noise).
            self.attention_w = nn.Linear(self.L, self.ATTENTION_BRANCHES, bias=False)
            self.classifier = nn.Sequential(nn.Linear(self.M * self.ATTENTION_BRANCHES, 1), nn.Sigmoid())

        def forward(self, x):
            x = x.squeeze(0)
            H = self.feature_extractor_part2(x)  # K x M
            A_V = self.attention_V(H)  # K x L
            A_U = self.attention_U(H)  # K x L
            A = self.attention_w(A_V * A_U)  # K x ATTENTION_BRANCHES
            A = T.transpose(A, 1, 0)  # ATTENTION_BRANCHES x K
            A = F.softmax(A, dim=1)
            Z = T.mm(A, H)  # ATTENTION_BRANCHES x M
            Y_prob = self.classifier(Z)
            Y_hat = T.ge(Y_prob, 0.5).float()
            return Y_prob, Y_hat, A

        def calculate_classification_error(self, X, Y):
            Y = Y.float()
            _, Y_hat, _ = self.forward(X)
            return 1.0 - Y_hat.eq(Y).cpu().float().mean().item()

        def calculate_objective(self, X, Y):
            Y = Y.float()
            Y_prob, _, A = self.forward(X)
            Y_prob = T.clamp(Y_prob, min=1e-5, max=1.0 - 1e-5)
            neg_log_likelihood = -1.0 * (Y * T.log(Y_prob) + (1.0 - Y) * T.log(1.0 - Y_prob))
            return neg_log_likelihood, A

    return GatedAttention()


def train_mil(T, device, init, bags, bag_labels, epochs=2):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, gated_attention, init, device)
    opt = T.optim.Adam(model.parameters(), lr=5e-3, betas=(0.9, 0.999), weight_decay=10e-5)
    losses = []
    for _ in range(epochs):
        model.train()
        train_loss, train_error = 0.0, 0.0
        for bag, label in zip(bags, bag_labels):
            data = T.from_numpy(bag).unsqueeze(0).to(device)
            bag_label = T.tensor([label], device=device)
            opt.zero_grad()
            loss, _ = model.calculate_objective(data, bag_label)
            train_loss += loss.data.item()
            train_error += model.calculate_classification_error(data, bag_label)
            loss.backward()
            opt.step()
        losses += [train_loss / len(bags), train_error / len(bags)]
    model.eval()
    with T.no_grad():
        probs, attention = [], []
        for bag, label in zip(bags, bag_labels):
            y_prob, _, A = model(T.from_numpy(bag).to(device))
            probs.append(y_prob.view(1))
            attention += as_list(A.cpu().numpy())
        probs = T.cat(probs)
        bce = F.binary_cross_entropy(probs, T.tensor(bag_labels, dtype=T.float32, device=device))
    return losses + [bce.item()] + attention, numpy_state(model)


def test_gated_attention_mil(device):
    rng = np.random.default_rng(5)
    sizes = [3, 5, 4, 6, 2]
    bags = [rng.standard_normal((k, 10)).astype(np.float32) for k in sizes]
    bag_labels = [1, 0, 1, 0, 1]
    for bag, label in zip(bags, bag_labels):
        if label:
            bag[0, :3] += 2.0  # a "positive instance"
    torch.manual_seed(0)
    run_both(train_mil, device, numpy_state(gated_attention(torch)), bags, bag_labels)


# ---- 6. ECG: 1-D ResNet, multi-label BCE-with-logits, F1 at sigmoid thresholds --------------------------

def resnet1d(T, in_leads=12, num_labels=4):
    nn = T.nn

    class BasicBlock1d(nn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv1d(inplanes, planes, kernel_size=7, stride=stride, padding=3, bias=False)
            self.bn1 = nn.BatchNorm1d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv1d(planes, planes, kernel_size=7, stride=1, padding=3, bias=False)
            self.bn2 = nn.BatchNorm1d(planes)
            self.downsample = downsample

        def forward(self, x):
            residual = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                residual = self.downsample(x)
            out += residual
            return self.relu(out)

    class ResNet1d(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv1d(in_leads, 8, kernel_size=15, stride=2, padding=7, bias=False)
            self.bn1 = nn.BatchNorm1d(8)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
            self.layer1 = BasicBlock1d(8, 8)
            downsample = nn.Sequential(nn.Conv1d(8, 16, kernel_size=1, stride=2, bias=False),
                                       nn.BatchNorm1d(16))
            self.layer2 = BasicBlock1d(8, 16, stride=2, downsample=downsample)
            self.avgpool = nn.AdaptiveAvgPool1d(1)
            self.fc = nn.Linear(16, num_labels)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer2(self.layer1(x))
            return self.fc(self.avgpool(x).view(x.size(0), -1))

    return ResNet1d()


def train_ecg(T, device, init, signals, targets, steps=3):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, resnet1d, init, device)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    sched = T.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    x, y = T.from_numpy(signals).to(device), T.from_numpy(targets).to(device)
    losses = []
    for _ in range(steps):
        model.train()
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        probs = T.sigmoid(model(x))
        f1s = []
        for threshold in (0.3, 0.5):
            pred = (probs > threshold).float()
            tp = (pred * y).sum(dim=0)
            fp = (pred * (1 - y)).sum(dim=0)
            fn = ((1 - pred) * y).sum(dim=0)
            f1s += as_list((2 * tp / (2 * tp + fp + fn).clamp(min=1)).cpu().numpy())
    return losses + as_list(probs.cpu().numpy()) + f1s, numpy_state(model)


def test_ecg_resnet1d_multilabel(device):
    rng = np.random.default_rng(6)
    signals = rng.standard_normal((6, 12, 64)).astype(np.float32)
    targets = (rng.random((6, 4)) < 0.4).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_ecg, device, numpy_state(resnet1d(torch)), signals, targets)
