"""Ported vision and tabular (healthcare-style) training scripts: a PyTorch script runs on raygrad unchanged.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor); the model is built in torch and its state_dict copied into raygrad through NumPy; both see the
same NumPy data, and the losses and final parameters must agree to float32 accuracy. Where a script would
draw random numbers (augmentation masks, crop offsets, sampler streams), the draw is passed in, and the
randomness itself is checked by statistics only.
"""
import copy

import numpy as np
import pytest

import tensor
from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def as_list(x):
    return np.asarray(x, dtype=np.float64).ravel().tolist()


# ---- 1. ResNet classifier: residual blocks, AdamW + SequentialLR warmup/cosine, augmentation ---------

def resnet(T, num_classes=3):
    nn = T.nn

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, in_planes, planes, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or in_planes != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )

        def forward(self, x):
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            return self.relu(out)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, kernel_size=3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            self.layer1 = nn.Sequential(BasicBlock(4, 4))
            self.layer2 = nn.Sequential(BasicBlock(4, 8, stride=2))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(8, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

        def forward(self, x):
            x = T.relu(self.bn1(self.conv1(x)))
            x = self.layer2(self.layer1(x))
            x = self.avgpool(x)
            x = T.flatten(x, 1)
            return self.fc(x)

    return ResNet()


def augment(T, x, flip_mask, offsets, pad=2):
    """Horizontal flip on the masked samples, then a random crop: pad by `pad`, slice at the offsets."""
    mask = flip_mask.view(-1, 1, 1, 1)
    x = T.where(mask, T.flip(x, dims=[3]), x)
    h, w = x.shape[-2:]
    padded = T.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    crops = [padded[i:i + 1, :, int(dy):int(dy) + h, int(dx):int(dx) + w] for i, (dy, dx) in enumerate(offsets)]
    return T.cat(crops, dim=0)


def train_resnet(T, device, init, images, labels, flips, offsets, steps=6):
    device = device_of(T, device)
    # No channels_last here (raygrad accepts it, see test_tensor.py): torch 2.13's CPU kernels give a wrong
    # weight gradient for the 1x1 stride-2 downsample conv on channels_last inputs, so the oracle would be off.
    model = ported_model(T, resnet, init, device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    opt = T.optim.AdamW([{"params": decay, "weight_decay": 5e-2}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-2, betas=(0.9, 0.999))
    warmup = T.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=2)
    cosine = T.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps - 2, eta_min=1e-4)
    sched = T.optim.lr_scheduler.SequentialLR(opt, schedulers=[warmup, cosine], milestones=[2])
    criterion = T.nn.CrossEntropyLoss(label_smoothing=0.1)
    mean = T.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1).to(device)
    std = T.tensor([0.25, 0.24, 0.26])[None, :, None, None].to(device)
    # Resize the 6x6 source images to the model's 8x8 input, then normalize.
    x_all = T.nn.functional.interpolate(T.from_numpy(images).to(device), size=(8, 8), mode="bicubic",
                                        align_corners=False)
    x_all = (x_all - mean) / std
    y_all = T.from_numpy(labels).long().to(device)
    losses, lrs = [], []
    for step in range(steps):
        model.train()
        x = augment(T, x_all, T.from_numpy(flips[step]).to(device), offsets[step])
        opt.zero_grad()
        loss = criterion(model(x), y_all)
        loss.backward()
        total_norm = T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=2.0)
        opt.step()
        sched.step()
        losses += [loss.item(), float(total_norm)]
        lrs += [group["lr"] for group in opt.param_groups]
    model.eval()
    with T.no_grad():
        logits = model(x_all)
        preds = logits.argmax(dim=1)
        acc = preds.eq(y_all).float().mean().item()
        probs = T.softmax(logits, dim=-1)
        top_p, top_i = probs.max(dim=1)
    return losses + lrs + [acc] + as_list(top_p.cpu().numpy()) + as_list(top_i.cpu().numpy()), numpy_state(model)


def test_resnet_classifier(device):
    rng = np.random.default_rng(0)
    n, steps = 6, 6
    images = rng.standard_normal((n, 3, 6, 6)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    flips = rng.random((steps, n)) < 0.5
    offsets = rng.integers(0, 5, (steps, n, 2))
    torch.manual_seed(0)
    run_both(train_resnet, device, numpy_state(resnet(torch)), images, labels, flips, offsets, steps=steps)


# ---- 2. Tiny UNet segmenter: ConvTranspose2d, bilinear upsampling, skip connections, CE + Dice ---------

def unet(T, num_classes=3):
    nn = T.nn
    F = T.nn.functional

    def double_conv(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inc = double_conv(1, 4)
            self.down1 = nn.Sequential(nn.MaxPool2d(2), double_conv(4, 8))
            self.down2 = nn.Sequential(nn.MaxPool2d(2), double_conv(8, 8))
            self.up1 = nn.ConvTranspose2d(8, 8, kernel_size=2, stride=2)
            self.conv1 = double_conv(16, 4)
            self.conv2 = double_conv(8, 4)
            self.outc = nn.Conv2d(4, num_classes, kernel_size=1)

        def forward(self, x):
            x1 = self.inc(x)
            x2 = self.down1(x1)
            x3 = self.down2(x2)
            x = self.up1(x3)
            x = self.conv1(T.cat([x2, x], dim=1))
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.conv2(T.cat([x1, x], dim=1))
            return self.outc(x)

    return UNet()


def dice_loss(T, logits, target, num_classes, ignore_index=255, eps=1e-6):
    probs = T.softmax(logits, dim=1)
    valid = (target != ignore_index).unsqueeze(1).float()
    safe = target.clone()
    safe[target == ignore_index] = 0
    one_hot = T.nn.functional.one_hot(safe, num_classes).permute(0, 3, 1, 2).float()
    dims = (0, 2, 3)
    inter = T.sum(probs * one_hot * valid, dims)
    card = T.sum((probs + one_hot) * valid, dims)
    return 1.0 - ((2.0 * inter + eps) / (card + eps)).mean()


def train_unet(T, device, init, images, masks, steps=3):
    device = device_of(T, device)
    model = ported_model(T, unet, init, device)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    ce = T.nn.CrossEntropyLoss(ignore_index=255)
    x = T.tensor(images, device=device)
    y = T.tensor(masks, dtype=T.long, device=device)
    losses = []
    for _ in range(steps):
        model.train()
        logits = model(x)
        loss_ce = ce(logits, y)
        loss_dice = dice_loss(T, logits, y, 3)
        loss = loss_ce + 0.5 * loss_dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses += [loss_ce.item(), loss_dice.item()]
    model.eval()
    with T.no_grad():
        pred = model(x).argmax(1)
        valid = y != 255
        pixel_acc = (pred[valid] == y[valid]).float().mean().item()
        ious = []
        for c in range(3):
            inter = ((pred == c) & (y == c)).sum().item()
            union = ((pred == c) | (y == c)).logical_and(valid).sum().item()
            ious.append(inter / union if union else float("nan"))
    return losses + [pixel_acc] + [v for v in ious if v == v], numpy_state(model)


def test_unet_segmenter(device):
    rng = np.random.default_rng(1)
    images = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    masks = rng.integers(0, 3, (2, 8, 8))
    masks[rng.random((2, 8, 8)) < 0.1] = 255
    torch.manual_seed(0)
    run_both(train_unet, device, numpy_state(unet(torch)), images, masks)


# ---- 3. Tabular (healthcare) risk model: embeddings + numerics, BCE(pos_weight), early stopping ------

CARDINALITIES = (4, 3, 5)


def tabular_net(T, n_num=3, hidden=8, p_drop=0.0):
    nn = T.nn

    class TabularNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = nn.ModuleList([nn.Embedding(c, min(4, (c + 1) // 2), max_norm=1.0)
                                             for c in CARDINALITIES])
            n_emb = sum(e.embedding_dim for e in self.embeddings)
            self.bn_num = nn.BatchNorm1d(n_num)
            self.mlp = nn.Sequential(
                nn.Linear(n_emb + n_num, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(p_drop),
                nn.Linear(hidden, 1),
            )

        def forward(self, x_cat, x_num):
            embs = [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
            x = T.cat(embs + [self.bn_num(x_num)], dim=1)
            return self.mlp(x).squeeze(-1)

    return TabularNet()


def standardize(T, x_train, x):
    """Impute NaNs with the training mean, then z-score with the training mean/std."""
    mean = T.nanmean(x_train, dim=0)
    filled_train = T.where(T.isnan(x_train), mean, x_train)
    mu, sigma = filled_train.mean(0), filled_train.std(0)
    x = T.where(T.isnan(x), mean.expand_as(x), x)
    return T.nan_to_num((x - mu) / (sigma + 1e-8), nan=0.0, posinf=0.0, neginf=0.0)


def roc_auc(T, scores, labels):
    """Area under the ROC curve by sorting the scores (no ties assumed)."""
    order = T.argsort(scores, descending=True)
    y = labels[order].float()
    tps = T.cumsum(y, dim=0)
    fps = T.cumsum(1 - y, dim=0)
    zero = T.zeros(1, device=scores.device)
    tpr = T.cat([zero, tps / tps[-1]])
    fpr = T.cat([zero, fps / fps[-1]])
    return T.trapezoid(tpr, fpr).item()


def train_tabular(T, device, init, x_cat, x_num, y, train_idx, val_idx, path, epochs=8, patience=2):
    device = device_of(T, device)
    data = T.utils.data
    x_num = T.from_numpy(x_num)
    x_num = standardize(T, x_num[train_idx], x_num)
    dataset = data.TensorDataset(T.from_numpy(x_cat), x_num, T.from_numpy(y).float())
    train_set, val_set = data.Subset(dataset, train_idx), data.Subset(dataset, val_idx)
    # A fixed order: the libraries' shuffles draw different streams.
    train_loader = data.DataLoader(train_set, batch_size=8, shuffle=False, drop_last=True)
    val_loader = data.DataLoader(val_set, batch_size=16)

    model = ported_model(T, tabular_net, init, device)
    y_train = T.from_numpy(y[train_idx])
    pos_weight = (y_train == 0).sum() / (y_train == 1).sum()
    criterion = T.nn.BCEWithLogitsLoss(pos_weight=pos_weight.float().reshape(1).to(device))
    optimizer = T.optim.Adam(model.parameters(), lr=5e-2, weight_decay=1e-4)
    scheduler = T.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=0)

    history, best_loss, best_state, best_epoch, bad_epochs = [], float("inf"), None, -1, 0
    for epoch in range(epochs):
        model.train()
        running = 0.0
        for xc, xn, target in train_loader:
            xc, xn, target = xc.to(device), xn.to(device), target.to(device)
            optimizer.zero_grad()
            loss = criterion(model(xc, xn), target)
            loss.backward()
            optimizer.step()
            running += loss.item() * target.size(0)
        train_loss = running / (len(train_loader) * train_loader.batch_size)

        model.eval()
        val_loss, n_seen = 0.0, 0
        with T.no_grad():
            for xc, xn, target in val_loader:
                xc, xn, target = xc.to(device), xn.to(device), target.to(device)
                val_loss += criterion(model(xc, xn), target).item() * len(target)
                n_seen += len(target)
        val_loss /= n_seen
        scheduler.step(val_loss)
        history += [train_loss, val_loss, optimizer.param_groups[0]["lr"]]
        if val_loss < best_loss:
            best_loss, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            T.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)
        else:
            bad_epochs += 1
            if bad_epochs >= patience:
                break
    model.load_state_dict(best_state)

    checkpoint = T.load(path)
    assert isinstance(checkpoint["epoch"], int) and checkpoint["epoch"] == best_epoch
    restored = tabular_net(T).to(device)
    restored.load_state_dict(checkpoint["model"])
    restored_opt = T.optim.Adam(restored.parameters(), lr=5e-2, weight_decay=1e-4)
    restored_opt.load_state_dict(checkpoint["optimizer"])
    restored.eval()
    model.eval()
    with T.no_grad():
        xc, xn, target = (t.to(device) for t in dataset[val_idx])
        probs = T.sigmoid(model(xc, xn))
        assert T.allclose(probs, T.sigmoid(restored(xc, xn)))
        auc = roc_auc(T, probs, target)
        pred = (probs > 0.5).long()
        tp = ((pred == 1) & (target == 1)).sum().item()
        tn = ((pred == 0) & (target == 0)).sum().item()
        sensitivity = tp / max(int(target.sum().item()), 1)
        specificity = tn / max(int((target == 0).sum().item()), 1)
    n_state = len(restored_opt.state_dict()["state"])
    return history + [best_epoch, auc, sensitivity, specificity, n_state], numpy_state(model)


def patients(n=48, seed=3):
    rng = np.random.default_rng(seed)
    x_cat = np.stack([rng.integers(0, c, n) for c in CARDINALITIES], axis=1)
    x_num = rng.standard_normal((n, 3)).astype(np.float32) * [1.0, 5.0, 0.1] + [0.0, 40.0, 1.0]
    x_num = x_num.astype(np.float32)
    logit = 1.5 * (x_cat[:, 0] == 1) + 0.8 * (x_num[:, 1] - 40) / 5 - 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    x_num[rng.random((n, 3)) < 0.1] = np.nan
    return x_cat, x_num, y


def test_tabular_risk_model(device, tmp_path):
    x_cat, x_num, y = patients()
    train_idx, val_idx = np.arange(32), np.arange(32, 48)
    torch.manual_seed(0)
    init = numpy_state(tabular_net(torch))
    got = run_both(train_tabular, device, init, x_cat, x_num, y, train_idx, val_idx, tmp_path / "best.pt")
    assert 0.0 <= got[0][-4] <= 1.0


def test_weighted_sampler_balances_classes_and_random_split_partitions():
    y = np.array([0] * 90 + [1] * 10)
    for T in (torch, tensor):
        data = T.utils.data
        labels = T.from_numpy(y)
        dataset = data.TensorDataset(T.arange(len(y)), labels)
        class_count = T.bincount(labels)
        weights = 1.0 / class_count[labels].double()
        sampler = data.WeightedRandomSampler(weights, num_samples=2000, replacement=True,
                                             generator=T.Generator().manual_seed(0))
        loader = data.DataLoader(dataset, batch_size=100, sampler=sampler)
        drawn = T.cat([yb for _, yb in loader])
        assert len(loader) == 20 and drawn.shape == (2000,)
        assert abs(drawn.float().mean().item() - 0.5) < 0.05, T.__name__

        train, val, test = data.random_split(dataset, [0.7, 0.2, 0.1], generator=T.Generator().manual_seed(42))
        assert (len(train), len(val), len(test)) == (70, 20, 10)
        parts = [set(int(i) for i in s.indices) for s in (train, val, test)]
        assert set.union(*parts) == set(range(100)) and sum(map(len, parts)) == 100
        again = data.random_split(dataset, [70, 20, 10], generator=T.Generator().manual_seed(42))
        assert [list(s.indices) for s in again] == [list(s.indices) for s in (train, val, test)], T.__name__
        idx, _ = train[3]
        assert int(idx) == train.indices[3]
