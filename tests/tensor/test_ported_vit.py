"""Ported modern vision scripts (ViT, Swin, ConvNeXt, MLP-Mixer) with timm-style training recipes.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor), written as timm and the papers' reference code write it; the model is built in torch and its
state_dict copied into raygrad through NumPy; both see the same NumPy data, and the losses and final
parameters must agree to float32 accuracy. The random draws (mixup lambdas, permutations, cutmix boxes,
drop-path masks) are passed in, since the two libraries' random streams differ.

The attention blocks use qkv_bias=False (a timm option): a key bias has an exactly-zero true gradient
(softmax is shift invariant), so its float-noise gradient, amplified by Adam, would differ between the two.
"""
import math
from copy import deepcopy

import numpy as np
import pytest

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def as_list(x):
    return np.asarray(x, dtype=np.float64).ravel().tolist()


def drop_path_class(T):
    nn = T.nn

    class DropPath(nn.Module):
        """timm's DropPath with its Bernoulli draw passed in: `keep` is a (B,) 0/1 tensor set before each step."""

        def __init__(self, drop_prob=0.0):
            super().__init__()
            self.drop_prob = drop_prob
            self.keep = None

        def forward(self, x):
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep_prob = 1 - self.drop_prob
            shape = (x.shape[0],) + (1,) * (x.ndim - 1)
            mask = self.keep.to(x.dtype).reshape(shape)  # x.new_empty(shape).bernoulli_(keep_prob)
            return x.div(keep_prob) * mask

    return DropPath


def set_drop_path_masks(T, model, keeps, device):
    """keeps: (n_droppath_modules, B) 0/1 floats, one row per DropPath in module order."""
    paths = [m for m in model.modules() if type(m).__name__ == "DropPath" and m.drop_prob > 0]
    assert len(paths) == len(keeps)
    for m, keep in zip(paths, keeps):
        m.keep = T.from_numpy(keep).to(device)


def mlp_class(T):
    nn = T.nn

    class Mlp(nn.Module):
        def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, bias=True,
                     drop=0.0):
            super().__init__()
            out_features = out_features or in_features
            hidden_features = hidden_features or in_features
            bias = bias if isinstance(bias, tuple) else (bias, bias)
            self.fc1 = nn.Linear(in_features, hidden_features, bias=bias[0])
            self.act = act_layer()
            self.drop1 = nn.Dropout(drop)
            self.fc2 = nn.Linear(hidden_features, out_features, bias=bias[1])
            self.drop2 = nn.Dropout(drop)

        def forward(self, x):
            return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))

    return Mlp


# ---- timm's Mixup / CutMix (flip-based), one_hot via scatter_, SoftTargetCrossEntropy ---------------

def one_hot(T, x, num_classes, on_value=1.0, off_value=0.0):
    x = x.long().view(-1, 1)
    return T.full((x.size()[0], num_classes), off_value, device=x.device).scatter_(1, x, on_value)


def mixup_target(T, target, num_classes, lam=1.0, smoothing=0.0):
    off_value = smoothing / num_classes
    on_value = 1.0 - smoothing + off_value
    y1 = one_hot(T, target, num_classes, on_value=on_value, off_value=off_value)
    y2 = one_hot(T, target.flip(0), num_classes, on_value=on_value, off_value=off_value)
    return y1 * lam + y2 * (1.0 - lam)


def rand_bbox(img_shape, lam, cy, cx):
    """timm's rand_bbox with the centre (np.random.randint draws) passed in."""
    ratio = np.sqrt(1 - lam)
    img_h, img_w = img_shape[-2:]
    cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
    yl = np.clip(cy - cut_h // 2, 0, img_h)
    yh = np.clip(cy + cut_h // 2, 0, img_h)
    xl = np.clip(cx - cut_w // 2, 0, img_w)
    xh = np.clip(cx + cut_w // 2, 0, img_w)
    return yl, yh, xl, xh


def mix_batch(T, x, target, lam, use_cutmix, centre, num_classes, smoothing):
    """timm Mixup._mix_batch + mixup_target, in place on x (a fresh batch, as the loader gives it)."""
    if use_cutmix:
        yl, yh, xl, xh = rand_bbox(x.shape, lam, *centre)
        x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
        lam = 1.0 - (yh - yl) * (xh - xl) / float(x.shape[-2] * x.shape[-1])  # correct_lam
    else:
        x_flipped = x.flip(0).mul_(1.0 - lam)
        x.mul_(lam).add_(x_flipped)
    return x, mixup_target(T, target, num_classes, lam, smoothing)


def soft_target_cross_entropy(T):
    class SoftTargetCrossEntropy(T.nn.Module):
        def forward(self, x, target):
            loss = T.sum(-target * T.nn.functional.log_softmax(x, dim=-1), dim=-1)
            return loss.mean()

    return SoftTargetCrossEntropy()


# ---- 1. ViT: patch embed, cls token, manual attention, LayerScale, DropPath, timm init, LLRD groups ---

def vit(T, img_size=8, patch_size=4, in_chans=3, embed_dim=8, depth=2, num_heads=2, num_classes=3,
        init_values=0.1, drop_path_rate=0.2):
    nn = T.nn
    DropPath, Mlp = drop_path_class(T), mlp_class(T)

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_patches = (img_size // patch_size) ** 2
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
            self.norm = nn.Identity()

        def forward(self, x):
            B, C, H, W = x.shape
            assert H == img_size and W == img_size, f"Input size ({H}*{W}) doesn't match model ({img_size})."
            x = self.proj(x).flatten(2).transpose(1, 2)  # BCHW -> BNC
            return self.norm(x)

    class Attention(nn.Module):
        def __init__(self, dim, num_heads=8, qkv_bias=False, attn_drop=0.0, proj_drop=0.0):
            super().__init__()
            assert dim % num_heads == 0, "dim should be divisible by num_heads"
            self.num_heads = num_heads
            self.head_dim = dim // num_heads
            self.scale = self.head_dim ** -0.5
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
            self.attn_drop = nn.Dropout(attn_drop)
            self.proj = nn.Linear(dim, dim)
            self.proj_drop = nn.Dropout(proj_drop)

        def forward(self, x):
            B, N, C = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = attn @ v
            x = x.transpose(1, 2).reshape(B, N, C)
            return self.proj_drop(self.proj(x))

    class LayerScale(nn.Module):
        def __init__(self, dim, init_values=1e-5, inplace=False):
            super().__init__()
            self.inplace = inplace
            self.gamma = nn.Parameter(init_values * T.ones(dim))

        def forward(self, x):
            return x.mul_(self.gamma) if self.inplace else x * self.gamma

    class Block(nn.Module):
        def __init__(self, dim, num_heads, mlp_ratio=4.0, init_values=None, drop_path=0.0):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.attn = Attention(dim, num_heads=num_heads)
            self.ls1 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
            self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)
            self.ls2 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
            self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

        def forward(self, x):
            x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
            x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
            return x

    class VisionTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_classes = num_classes
            self.num_prefix_tokens = 1
            self.patch_embed = PatchEmbed()
            num_patches = self.patch_embed.num_patches
            self.cls_token = nn.Parameter(T.zeros(1, 1, embed_dim))
            self.pos_embed = nn.Parameter(T.randn(1, num_patches + 1, embed_dim) * 0.02)
            self.pos_drop = nn.Dropout(p=0.0)
            dpr = [x.item() for x in T.linspace(0, drop_path_rate, depth)]  # stochastic depth decay rule
            self.blocks = nn.Sequential(*[
                Block(embed_dim, num_heads, init_values=init_values, drop_path=dpr[i]) for i in range(depth)])
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
            self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            nn.init.normal_(self.cls_token, std=1e-6)
            self.apply(self._init_weights)

        def _init_weights(self, m):
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)

        def no_weight_decay(self):
            return {"pos_embed", "cls_token"}

        def forward_features(self, x):
            x = self.patch_embed(x)
            x = T.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            x = self.pos_drop(x + self.pos_embed)
            x = self.blocks(x)
            return self.norm(x)

        def forward_head(self, x, pre_logits=False):
            x = x[:, 0]
            return x if pre_logits else self.head(x)

        def forward(self, x):
            return self.forward_head(self.forward_features(x))

    return VisionTransformer()


def get_layer_id_for_vit(name, num_layers):
    """BEiT / MAE layer-wise lr decay: embeddings are layer 0, block i is layer i + 1, the head the last."""
    if name in ["cls_token", "pos_embed"]:
        return 0
    elif name.startswith("patch_embed"):
        return 0
    elif name.startswith("blocks"):
        return int(name.split(".")[1]) + 1
    else:
        return num_layers


def param_groups_lrd(model, weight_decay=0.05, no_weight_decay_list=(), layer_decay=0.75):
    """MAE's util/lr_decay.py: one group per (layer, decay / no decay), each with its own lr_scale."""
    param_group_names, param_groups = {}, {}
    num_layers = len(model.blocks) + 1
    layer_scales = list(layer_decay ** (num_layers - i) for i in range(num_layers + 1))
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim == 1 or n in no_weight_decay_list:
            g_decay, this_decay = "no_decay", 0.0
        else:
            g_decay, this_decay = "decay", weight_decay
        layer_id = get_layer_id_for_vit(n, num_layers)
        group_name = "layer_%d_%s" % (layer_id, g_decay)
        if group_name not in param_group_names:
            this_scale = layer_scales[layer_id]
            param_group_names[group_name] = {"lr_scale": this_scale, "weight_decay": this_decay, "params": []}
            param_groups[group_name] = {"lr_scale": this_scale, "weight_decay": this_decay, "params": []}
        param_group_names[group_name]["params"].append(n)
        param_groups[group_name]["params"].append(p)
    return list(param_groups.values())


def adjust_learning_rate(optimizer, epoch, lr, min_lr, warmup_epochs, epochs):
    """MAE's util/lr_sched.py: per-iteration half-cycle cosine after a linear warmup, times lr_scale."""
    if epoch < warmup_epochs:
        lr = lr * epoch / warmup_epochs
    else:
        lr = min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))
    for param_group in optimizer.param_groups:
        if "lr_scale" in param_group:
            param_group["lr"] = lr * param_group["lr_scale"]
        else:
            param_group["lr"] = lr
    return lr


def train_vit(T, device, init, images, labels, lams, cutmix, centres, keeps, steps):
    device = device_of(T, device)
    model = ported_model(T, vit, init, device)
    groups = param_groups_lrd(model, weight_decay=0.05, no_weight_decay_list=model.no_weight_decay(),
                              layer_decay=0.75)
    optimizer = T.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.95))
    criterion = soft_target_cross_entropy(T)
    losses, lrs = [], []
    for step in range(steps):
        model.train()
        lr = adjust_learning_rate(optimizer, step + 1, lr=1e-2, min_lr=1e-4, warmup_epochs=1, epochs=steps + 1)
        samples = T.tensor(images).to(device, non_blocking=True)  # a fresh batch: mixing is in place
        targets = T.tensor(labels).to(device, non_blocking=True)
        samples, targets = mix_batch(T, samples, targets, float(lams[step]), bool(cutmix[step]), centres[step],
                                     num_classes=3, smoothing=0.1)
        set_drop_path_masks(T, model, keeps[step], device)
        outputs = model(samples)
        loss = criterion(outputs, targets)
        loss_value = loss.item()
        assert math.isfinite(loss_value), f"Loss is {loss_value}, stopping training"
        optimizer.zero_grad()
        loss.backward()
        norm = T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        losses += [loss_value, norm.item()]
        lrs += [lr] + [g["lr"] for g in optimizer.param_groups]
    model.eval()
    with T.no_grad():
        output = model(T.from_numpy(images).to(device))
        acc1 = (output.topk(1, 1, True, True)[1].t() == T.from_numpy(labels).to(device).view(1, -1)).float().sum()
    names = [n for n, _ in model.named_parameters()]
    assert len(optimizer.param_groups) == 8 and sum(len(g["params"]) for g in optimizer.param_groups) == len(names)
    return losses + lrs + [acc1.item()] + as_list(output.cpu().numpy()), numpy_state(model)


def test_vit_mixup_cutmix_layer_decay(device):
    rng = np.random.default_rng(0)
    n, steps, depth = 4, 4, 2
    images = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    lams = rng.beta(0.8, 0.8, steps)
    cutmix = np.arange(steps) % 2 == 1
    centres = rng.integers(0, 8, (steps, 2))
    keeps = (rng.random((steps, 2 * (depth - 1), n)) > 0.2).astype(np.float32)  # block 0 has rate 0
    keeps[:, :, 0] = 0.0  # at least one dropped path per step
    torch.manual_seed(0)
    run_both(train_vit, device, numpy_state(vit(torch, depth=depth)), images, labels, lams, cutmix, centres, keeps,
             steps)


# ---- 2. Swin: windows, shifted windows + attention mask, relative position bias, patch merging, EMA ---

def window_partition(x, window_size):
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C)
    return windows


def window_reverse(windows, window_size, H, W):
    B = int(windows.shape[0] / (H * W / window_size / window_size))
    x = windows.view(B, H // window_size, W // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)
    return x


def swin(T, img_size=8, patch_size=2, in_chans=3, embed_dim=8, depths=(2, 1), num_heads=(2, 2), window_size=2,
         num_classes=3, drop_path_rate=0.2):
    nn = T.nn
    DropPath, Mlp = drop_path_class(T), mlp_class(T)

    def to_2tuple(x):
        return (x, x)

    class WindowAttention(nn.Module):
        def __init__(self, dim, window_size, num_heads, qkv_bias=False, qk_scale=None):
            super().__init__()
            self.dim = dim
            self.window_size = window_size  # Wh, Ww
            self.num_heads = num_heads
            head_dim = dim // num_heads
            self.scale = qk_scale or head_dim ** -0.5
            self.relative_position_bias_table = nn.Parameter(
                T.zeros((2 * window_size[0] - 1) * (2 * window_size[1] - 1), num_heads))  # 2*Wh-1 * 2*Ww-1, nH
            coords_h = T.arange(self.window_size[0])
            coords_w = T.arange(self.window_size[1])
            coords = T.stack(T.meshgrid([coords_h, coords_w], indexing="ij"))  # 2, Wh, Ww
            coords_flatten = T.flatten(coords, 1)  # 2, Wh*Ww
            relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]  # 2, Wh*Ww, Wh*Ww
            relative_coords = relative_coords.permute(1, 2, 0).contiguous()  # Wh*Ww, Wh*Ww, 2
            relative_coords[:, :, 0] += self.window_size[0] - 1  # shift to start from 0
            relative_coords[:, :, 1] += self.window_size[1] - 1
            relative_coords[:, :, 0] *= 2 * self.window_size[1] - 1
            relative_position_index = relative_coords.sum(-1)  # Wh*Ww, Wh*Ww
            self.register_buffer("relative_position_index", relative_position_index)
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
            self.attn_drop = nn.Dropout(0.0)
            self.proj = nn.Linear(dim, dim)
            self.proj_drop = nn.Dropout(0.0)
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.softmax = nn.Softmax(dim=-1)

        def forward(self, x, mask=None):
            B_, N, C = x.shape
            qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            q = q * self.scale
            attn = (q @ k.transpose(-2, -1))
            relative_position_bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(
                self.window_size[0] * self.window_size[1], self.window_size[0] * self.window_size[1], -1)
            relative_position_bias = relative_position_bias.permute(2, 0, 1).contiguous()  # nH, Wh*Ww, Wh*Ww
            attn = attn + relative_position_bias.unsqueeze(0)
            if mask is not None:
                nW = mask.shape[0]
                attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
                attn = attn.view(-1, self.num_heads, N, N)
                attn = self.softmax(attn)
            else:
                attn = self.softmax(attn)
            attn = self.attn_drop(attn)
            x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
            x = self.proj(x)
            x = self.proj_drop(x)
            return x

    class SwinTransformerBlock(nn.Module):
        def __init__(self, dim, input_resolution, num_heads, window_size=7, shift_size=0, mlp_ratio=4.0,
                     drop_path=0.0, act_layer=nn.GELU, norm_layer=nn.LayerNorm):
            super().__init__()
            self.dim = dim
            self.input_resolution = input_resolution
            self.num_heads = num_heads
            self.window_size = window_size
            self.shift_size = shift_size
            self.mlp_ratio = mlp_ratio
            if min(self.input_resolution) <= self.window_size:
                # if window size is larger than input resolution, we don't partition windows
                self.shift_size = 0
                self.window_size = min(self.input_resolution)
            assert 0 <= self.shift_size < self.window_size, "shift_size must in 0-window_size"
            self.norm1 = norm_layer(dim)
            self.attn = WindowAttention(dim, window_size=to_2tuple(self.window_size), num_heads=num_heads)
            self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
            self.norm2 = norm_layer(dim)
            mlp_hidden_dim = int(dim * mlp_ratio)
            self.mlp = Mlp(in_features=dim, hidden_features=mlp_hidden_dim, act_layer=act_layer)
            if self.shift_size > 0:
                # calculate attention mask for SW-MSA
                H, W = self.input_resolution
                img_mask = T.zeros((1, H, W, 1))  # 1 H W 1
                h_slices = (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size),
                            slice(-self.shift_size, None))
                w_slices = (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size),
                            slice(-self.shift_size, None))
                cnt = 0
                for h in h_slices:
                    for w in w_slices:
                        img_mask[:, h, w, :] = cnt
                        cnt += 1
                mask_windows = window_partition(img_mask, self.window_size)  # nW, window_size, window_size, 1
                mask_windows = mask_windows.view(-1, self.window_size * self.window_size)
                attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
                attn_mask = attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))
            else:
                attn_mask = None
            self.register_buffer("attn_mask", attn_mask)

        def forward(self, x):
            H, W = self.input_resolution
            B, L, C = x.shape
            assert L == H * W, "input feature has wrong size"
            shortcut = x
            x = self.norm1(x)
            x = x.view(B, H, W, C)
            # cyclic shift
            if self.shift_size > 0:
                shifted_x = T.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            else:
                shifted_x = x
            # partition windows
            x_windows = window_partition(shifted_x, self.window_size)  # nW*B, window_size, window_size, C
            x_windows = x_windows.view(-1, self.window_size * self.window_size, C)  # nW*B, window_size*window_size, C
            # W-MSA/SW-MSA
            attn_windows = self.attn(x_windows, mask=self.attn_mask)  # nW*B, window_size*window_size, C
            # merge windows
            attn_windows = attn_windows.view(-1, self.window_size, self.window_size, C)
            shifted_x = window_reverse(attn_windows, self.window_size, H, W)  # B H' W' C
            # reverse cyclic shift
            if self.shift_size > 0:
                x = T.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
            else:
                x = shifted_x
            x = x.view(B, H * W, C)
            # FFN
            x = shortcut + self.drop_path(x)
            x = x + self.drop_path(self.mlp(self.norm2(x)))
            return x

    class PatchMerging(nn.Module):
        def __init__(self, input_resolution, dim, norm_layer=nn.LayerNorm):
            super().__init__()
            self.input_resolution = input_resolution
            self.dim = dim
            self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
            self.norm = norm_layer(4 * dim)

        def forward(self, x):
            H, W = self.input_resolution
            B, L, C = x.shape
            assert L == H * W, "input feature has wrong size"
            assert H % 2 == 0 and W % 2 == 0, f"x size ({H}*{W}) are not even."
            x = x.view(B, H, W, C)
            x0 = x[:, 0::2, 0::2, :]  # B H/2 W/2 C
            x1 = x[:, 1::2, 0::2, :]  # B H/2 W/2 C
            x2 = x[:, 0::2, 1::2, :]  # B H/2 W/2 C
            x3 = x[:, 1::2, 1::2, :]  # B H/2 W/2 C
            x = T.cat([x0, x1, x2, x3], -1)  # B H/2 W/2 4*C
            x = x.view(B, -1, 4 * C)  # B H/2*W/2 4*C
            x = self.norm(x)
            x = self.reduction(x)
            return x

    class BasicLayer(nn.Module):
        def __init__(self, dim, input_resolution, depth, num_heads, window_size, drop_path=0.0, downsample=None):
            super().__init__()
            self.blocks = nn.ModuleList([
                SwinTransformerBlock(dim=dim, input_resolution=input_resolution, num_heads=num_heads,
                                     window_size=window_size, shift_size=0 if (i % 2 == 0) else window_size // 2,
                                     drop_path=drop_path[i] if isinstance(drop_path, list) else drop_path)
                for i in range(depth)])
            self.downsample = downsample(input_resolution, dim=dim) if downsample is not None else None

        def forward(self, x):
            for blk in self.blocks:
                x = blk(x)
            if self.downsample is not None:
                x = self.downsample(x)
            return x

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.patches_resolution = [img_size // patch_size, img_size // patch_size]
            self.num_patches = self.patches_resolution[0] * self.patches_resolution[1]
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
            self.norm = nn.LayerNorm(embed_dim)

        def forward(self, x):
            x = self.proj(x).flatten(2).transpose(1, 2)  # B Ph*Pw C
            return self.norm(x)

    class SwinTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_layers = len(depths)
            self.num_features = int(embed_dim * 2 ** (self.num_layers - 1))
            self.patch_embed = PatchEmbed()
            patches_resolution = self.patch_embed.patches_resolution
            self.pos_drop = nn.Dropout(p=0.0)
            dpr = [x.item() for x in T.linspace(0, drop_path_rate, sum(depths))]  # stochastic depth decay rule
            self.layers = nn.ModuleList()
            for i_layer in range(self.num_layers):
                layer = BasicLayer(dim=int(embed_dim * 2 ** i_layer),
                                   input_resolution=(patches_resolution[0] // (2 ** i_layer),
                                                     patches_resolution[1] // (2 ** i_layer)),
                                   depth=depths[i_layer], num_heads=num_heads[i_layer], window_size=window_size,
                                   drop_path=dpr[sum(depths[:i_layer]):sum(depths[:i_layer + 1])],
                                   downsample=PatchMerging if (i_layer < self.num_layers - 1) else None)
                self.layers.append(layer)
            self.norm = nn.LayerNorm(self.num_features)
            self.avgpool = nn.AdaptiveAvgPool1d(1)
            self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
            self.apply(self._init_weights)

        def _init_weights(self, m):
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)

        def no_weight_decay_keywords(self):
            return {"relative_position_bias_table"}

        def forward_features(self, x):
            x = self.patch_embed(x)
            x = self.pos_drop(x)
            for layer in self.layers:
                x = layer(x)
            x = self.norm(x)  # B L C
            x = self.avgpool(x.transpose(1, 2))  # B C 1
            x = T.flatten(x, 1)
            return x

        def forward(self, x):
            return self.head(self.forward_features(x))

    return SwinTransformer()


def set_weight_decay(model, skip_list=(), skip_keywords=()):
    """Swin's optimizer.py: no decay for 1-d params, biases and the listed names / keywords."""
    has_decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # frozen weights
        if len(param.shape) == 1 or name.endswith(".bias") or (name in skip_list) or \
                any(keyword in name for keyword in skip_keywords):
            no_decay.append(param)
        else:
            has_decay.append(param)
    return [{"params": has_decay}, {"params": no_decay, "weight_decay": 0.0}]


def model_ema_v3(T):
    nn = T.nn

    class ModelEmaV3(nn.Module):
        """timm's ModelEmaV3: an EMA of the state_dict (buffers too), lerped in place with _foreach_lerp_."""

        def __init__(self, model, decay=0.9999, min_decay=0.0, update_after_step=0, use_warmup=False,
                     warmup_gamma=1.0, warmup_power=2 / 3, device=None, foreach=True, exclude_buffers=False):
            super().__init__()
            self.module = deepcopy(model)
            self.module.eval()
            self.decay = decay
            self.min_decay = min_decay
            self.update_after_step = update_after_step
            self.use_warmup = use_warmup
            self.warmup_gamma = warmup_gamma
            self.warmup_power = warmup_power
            self.foreach = foreach
            self.device = device  # perform ema on different device from model if set
            self.exclude_buffers = exclude_buffers
            if self.device is not None and device != next(model.parameters()).device:
                self.foreach = False  # cannot use foreach methods with different devices
                self.module.to(device=device)

        def get_decay(self, step=None):
            if step is None:
                return self.decay
            step = max(0, step - self.update_after_step - 1)
            if step <= 0:
                return 0.0
            if self.use_warmup:
                decay = 1 - (1 + step / self.warmup_gamma) ** -self.warmup_power
                decay = max(min(decay, self.decay), self.min_decay)
            else:
                decay = self.decay
            return decay

        @T.no_grad()
        def update(self, model, step=None):
            decay = self.get_decay(step)
            if self.exclude_buffers:
                self.apply_update_no_buffers_(model, decay)
            else:
                self.apply_update_(model, decay)

        def apply_update_(self, model, decay):
            # interpolate parameters and buffers
            if self.foreach:
                ema_lerp_values = []
                model_lerp_values = []
                for ema_v, model_v in zip(self.module.state_dict().values(), model.state_dict().values()):
                    if ema_v.is_floating_point():
                        ema_lerp_values.append(ema_v)
                        model_lerp_values.append(model_v)
                    else:
                        ema_v.copy_(model_v)
                if hasattr(T, "_foreach_lerp_"):
                    T._foreach_lerp_(ema_lerp_values, model_lerp_values, weight=1.0 - decay)
                else:
                    T._foreach_mul_(ema_lerp_values, scalar=decay)
                    T._foreach_add_(ema_lerp_values, model_lerp_values, alpha=1.0 - decay)
            else:
                for ema_v, model_v in zip(self.module.state_dict().values(), model.state_dict().values()):
                    if ema_v.is_floating_point():
                        ema_v.lerp_(model_v.to(device=self.device), weight=1.0 - decay)
                    else:
                        ema_v.copy_(model_v.to(device=self.device))

        def apply_update_no_buffers_(self, model, decay):
            ema_params = tuple(self.module.parameters())
            model_params = tuple(model.parameters())
            if self.foreach:
                if hasattr(T, "_foreach_lerp_"):
                    T._foreach_lerp_(ema_params, model_params, weight=1.0 - decay)
                else:
                    T._foreach_mul_(ema_params, scalar=decay)
                    T._foreach_add_(ema_params, model_params, alpha=1 - decay)
            else:
                for ema_p, model_p in zip(ema_params, model_params):
                    ema_p.lerp_(model_p.to(device=self.device), weight=1.0 - decay)
            for ema_b, model_b in zip(self.module.buffers(), model.buffers()):
                ema_b.copy_(model_b.to(device=self.device))

        def forward(self, *args, **kwargs):
            return self.module(*args, **kwargs)

    return ModelEmaV3


def warmup_cosine(warmup_steps, total_steps):
    def lr_lambda(step):
        if step < warmup_steps:
            return float(step + 1) / float(max(1, warmup_steps))
        progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return lr_lambda


def train_swin(T, device, init, images, labels, keeps, steps, foreach, exclude_buffers):
    device = device_of(T, device)
    model = ported_model(T, swin, init, device)
    model_ema = model_ema_v3(T)(model, decay=0.9, use_warmup=True, warmup_gamma=1.0, foreach=foreach,
                                exclude_buffers=exclude_buffers)
    parameters = set_weight_decay(model, skip_keywords=model.no_weight_decay_keywords())
    optimizer = T.optim.AdamW(parameters, eps=1e-8, betas=(0.9, 0.999), lr=5e-3, weight_decay=0.05)
    scheduler = T.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(2, steps))
    criterion = T.nn.CrossEntropyLoss(label_smoothing=0.1)
    samples = T.from_numpy(images).to(device)
    targets = T.from_numpy(labels).to(device)
    losses = []
    for step in range(steps):
        model.train()
        set_drop_path_masks(T, model, keeps[step], device)
        outputs = model(samples)
        loss = criterion(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        grad_norm = T.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        scheduler.step()
        model_ema.update(model, step=step + 1)
        losses += [loss.item(), grad_norm.item(), scheduler.get_last_lr()[0], model_ema.get_decay(step + 1)]
    model.eval()
    with T.no_grad():
        out, out_ema = model(samples), model_ema(samples)
    state = numpy_state(model)
    state.update({"ema." + k: v for k, v in numpy_state(model_ema.module).items()})
    return losses + as_list(out.cpu().numpy()) + as_list(out_ema.cpu().numpy()), state


@pytest.mark.parametrize("foreach,exclude_buffers", [(True, False), (False, True)])
def test_swin_shifted_windows_ema(device, foreach, exclude_buffers):
    rng = np.random.default_rng(1)
    n, steps = 2, 4
    images = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    keeps = (rng.random((steps, 2, n)) > 0.3).astype(np.float32)  # the 2nd and 3rd blocks drop paths
    torch.manual_seed(0)
    got = run_both(train_swin, device, numpy_state(swin(torch)), images, labels, keeps, steps, foreach,
                   exclude_buffers)
    state = got[1]
    # the shifted block's mask separates the wrapped-around regions; the EMA moved away from the start
    assert (state["layers.0.blocks.1.attn_mask"] == -100.0).any() and "layers.0.blocks.0.attn_mask" not in state
    assert not np.allclose(state["ema.head.weight"], state["head.weight"])


# ---- 3. ConvNeXt + MLP-Mixer: depthwise 7x7, channels-first LayerNorm by hand, token mixing; CutMix -----

def convnext(T, in_chans=3, num_classes=3, depths=(1, 1), dims=(4, 8), drop_path_rate=0.0,
             layer_scale_init_value=0.1, head_init_scale=0.5, mixer_tokens=4):
    nn = T.nn
    F = T.nn.functional
    DropPath, Mlp = drop_path_class(T), mlp_class(T)

    class LayerNorm(nn.Module):
        """LayerNorm that supports two data formats: channels_last (default) or channels_first."""

        def __init__(self, normalized_shape, eps=1e-6, data_format="channels_last"):
            super().__init__()
            self.weight = nn.Parameter(T.ones(normalized_shape))
            self.bias = nn.Parameter(T.zeros(normalized_shape))
            self.eps = eps
            self.data_format = data_format
            if self.data_format not in ["channels_last", "channels_first"]:
                raise NotImplementedError
            self.normalized_shape = (normalized_shape, )

        def forward(self, x):
            if self.data_format == "channels_last":
                return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
            elif self.data_format == "channels_first":
                u = x.mean(1, keepdim=True)
                s = (x - u).pow(2).mean(1, keepdim=True)
                x = (x - u) / T.sqrt(s + self.eps)
                x = self.weight[:, None, None] * x + self.bias[:, None, None]
                return x

    class Block(nn.Module):
        def __init__(self, dim, drop_path=0.0, layer_scale_init_value=1e-6):
            super().__init__()
            self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)  # depthwise conv
            self.norm = LayerNorm(dim, eps=1e-6)
            self.pwconv1 = nn.Linear(dim, 4 * dim)  # pointwise/1x1 convs, implemented with linear layers
            self.act = nn.GELU()
            self.pwconv2 = nn.Linear(4 * dim, dim)
            self.gamma = nn.Parameter(layer_scale_init_value * T.ones((dim)),
                                      requires_grad=True) if layer_scale_init_value > 0 else None
            self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

        def forward(self, x):
            input = x
            x = self.dwconv(x)
            x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
            x = self.norm(x)
            x = self.pwconv1(x)
            x = self.act(x)
            x = self.pwconv2(x)
            if self.gamma is not None:
                x = self.gamma * x
            x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
            x = input + self.drop_path(x)
            return x

    class MixerBlock(nn.Module):
        """timm's MixerBlock: token mixing MLP across the sequence (via transpose), then channel MLP."""

        def __init__(self, dim, seq_len, mlp_ratio=(0.5, 4.0), norm_layer=nn.LayerNorm, act_layer=nn.GELU):
            super().__init__()
            tokens_dim, channels_dim = [int(x * dim) for x in mlp_ratio]
            self.norm1 = norm_layer(dim, eps=1e-6)
            # No fc2 bias in the token MLP here: it adds a per-token constant across channels, which every
            # LayerNorm downstream removes, so its true gradient is exactly zero (Adam would amplify noise).
            self.mlp_tokens = Mlp(seq_len, tokens_dim, act_layer=act_layer, bias=(True, False))
            self.drop_path = nn.Identity()
            self.norm2 = norm_layer(dim, eps=1e-6)
            self.mlp_channels = Mlp(dim, channels_dim, act_layer=act_layer)

        def forward(self, x):
            x = x + self.drop_path(self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
            x = x + self.drop_path(self.mlp_channels(self.norm2(x)))
            return x

    class ConvNeXt(nn.Module):
        def __init__(self):
            super().__init__()
            self.downsample_layers = nn.ModuleList()  # stem and intermediate downsampling conv layers
            stem = nn.Sequential(
                nn.Conv2d(in_chans, dims[0], kernel_size=2, stride=2),
                LayerNorm(dims[0], eps=1e-6, data_format="channels_first"))
            self.downsample_layers.append(stem)
            for i in range(len(dims) - 1):
                downsample_layer = nn.Sequential(
                    LayerNorm(dims[i], eps=1e-6, data_format="channels_first"),
                    nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
                self.downsample_layers.append(downsample_layer)
            self.stages = nn.ModuleList()  # feature resolution stages, each consisting of multiple blocks
            dp_rates = [x.item() for x in T.linspace(0, drop_path_rate, sum(depths))]
            cur = 0
            for i in range(len(dims)):
                stage = nn.Sequential(*[Block(dim=dims[i], drop_path=dp_rates[cur + j],
                                              layer_scale_init_value=layer_scale_init_value) for j in range(depths[i])])
                self.stages.append(stage)
                cur += depths[i]
            self.mixer = MixerBlock(dims[-1], mixer_tokens)  # a Mixer block over the last stage's tokens
            self.norm = nn.LayerNorm(dims[-1], eps=1e-6)  # final norm layer
            self.head = nn.Linear(dims[-1], num_classes)
            self.apply(self._init_weights)
            # The reference writes self.head.weight.data.mul_(head_init_scale): raygrad's .data is the raw
            # array (README, "Differences"), so the in-place scale goes through no_grad instead.
            with T.no_grad():
                self.head.weight.mul_(head_init_scale)
                self.head.bias.mul_(head_init_scale)

        def _init_weights(self, m):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

        def forward_features(self, x):
            for i in range(len(dims)):
                x = self.downsample_layers[i](x)
                x = self.stages[i](x)
            x = self.mixer(x.flatten(2).transpose(1, 2))  # (N, C, H, W) -> (N, HW, C)
            return self.norm(x.mean(1))  # global average pooling, (N, HW, C) -> (N, C)

        def forward(self, x):
            return self.head(self.forward_features(x))

    return ConvNeXt()


def rand_bbox_ref(size, lam, cx, cy):
    """The CutMix paper's rand_bbox, with np.random.randint's centre passed in."""
    W = size[2]
    H = size[3]
    cut_rat = np.sqrt(1. - lam)
    cut_w = int(W * cut_rat)
    cut_h = int(H * cut_rat)
    bbx1 = np.clip(cx - cut_w // 2, 0, W)
    bby1 = np.clip(cy - cut_h // 2, 0, H)
    bbx2 = np.clip(cx + cut_w // 2, 0, W)
    bby2 = np.clip(cy + cut_h // 2, 0, H)
    return bbx1, bby1, bbx2, bby2


def train_convnext(T, device, init, images, labels, lams, perms, use_cutmix, centres, steps, ema_decay=0.8):
    device = device_of(T, device)
    model = ported_model(T, convnext, init, device)
    ema = deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    optimizer = T.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.05)
    scheduler = T.optim.lr_scheduler.LambdaLR(optimizer, lambda it: min(1.0, (it + 1) / 2)
                                              * 0.5 * (1 + math.cos(math.pi * it / steps)))
    criterion = T.nn.CrossEntropyLoss(label_smoothing=0.1)
    losses = []
    for step in range(steps):
        model.train()
        input = T.from_numpy(images).to(device).clone()
        target = T.from_numpy(labels).to(device)
        lam = float(lams[step])
        rand_index = T.from_numpy(perms[step]).to(device)  # torch.randperm(input.size()[0])
        target_a, target_b = target, target[rand_index]
        if use_cutmix[step]:
            bbx1, bby1, bbx2, bby2 = rand_bbox_ref(input.size(), lam, *centres[step])
            input[:, :, bbx1:bbx2, bby1:bby2] = input[rand_index, :, bbx1:bbx2, bby1:bby2]
            # adjust lambda to exactly match pixel ratio
            lam = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (input.size()[-1] * input.size()[-2]))
        else:
            input = lam * input + (1 - lam) * input[rand_index, :]
        input = input.to(memory_format=T.channels_last)
        output = model(input)
        loss = criterion(output, target_a) * lam + criterion(output, target_b) * (1. - lam)
        optimizer.zero_grad()
        loss.backward()
        grad_norm = T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0, norm_type=2.0)
        optimizer.step()
        scheduler.step()
        with T.no_grad():
            for ema_v, model_v in zip(ema.state_dict().values(), model.state_dict().values()):
                ema_v.lerp_(model_v, 1.0 - ema_decay)
        losses += [loss.item(), grad_norm.item(), scheduler.get_last_lr()[0]]
    ema.eval()
    with T.no_grad():
        x = T.from_numpy(images).to(device).contiguous(memory_format=T.channels_last)
        probs = ema(x).softmax(-1)
    state = numpy_state(model)
    state.update({"ema." + k: v for k, v in numpy_state(ema).items()})
    return losses + as_list(probs.cpu().numpy()), state


def test_convnext_mixer_cutmix_channels_last_ema(device):
    rng = np.random.default_rng(2)
    n, steps = 4, 4
    images = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    lams = rng.beta(1.0, 1.0, steps)
    perms = np.stack([rng.permutation(n) for _ in range(steps)])
    use_cutmix = np.array([True, False, True, False])
    centres = rng.integers(0, 8, (steps, 2))
    torch.manual_seed(0)
    run_both(train_convnext, device, numpy_state(convnext(torch)), images, labels, lams, perms, use_cutmix,
             centres, steps)


# ---- 4. MAE: random masking by argsort + gather, fused attention, patchify; fine-tune at a new size ---

def mae(T, img_size=8, patch_size=4, in_chans=3, embed_dim=8, depth=1, num_heads=2, decoder_embed_dim=8,
        decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0, norm_pix_loss=True):
    nn = T.nn
    F = T.nn.functional
    Mlp = mlp_class(T)

    class Attention(nn.Module):
        """timm's Attention: F.scaled_dot_product_attention unless scripting (fused_attn)."""
        fused_attn: T.jit.Final[bool]

        def __init__(self, dim, num_heads=8, qkv_bias=False):
            super().__init__()
            self.num_heads = num_heads
            self.head_dim = dim // num_heads
            self.scale = self.head_dim ** -0.5
            self.fused_attn = not T.jit.is_scripting()
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
            self.q_norm = nn.Identity()
            self.k_norm = nn.Identity()
            self.attn_drop = nn.Dropout(0.0)
            self.proj = nn.Linear(dim, dim)
            self.proj_drop = nn.Dropout(0.0)

        def forward(self, x):
            B, N, C = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            q, k = self.q_norm(q), self.k_norm(k)
            if self.fused_attn:
                x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
            else:
                q = q * self.scale
                attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
                x = self.attn_drop(attn) @ v
            x = x.transpose(1, 2).reshape(B, N, C)
            return self.proj_drop(self.proj(x))

    class Block(nn.Module):
        def __init__(self, dim, num_heads, mlp_ratio=4.0):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.attn = Attention(dim, num_heads)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_size = (patch_size, patch_size)
            self.num_patches = (img_size // patch_size) ** 2
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
        grid_h = np.arange(grid_size, dtype=np.float32)
        grid_w = np.arange(grid_size, dtype=np.float32)
        grid = np.meshgrid(grid_w, grid_h)  # here w goes first
        grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])

        def from_grid(embed_dim, pos):
            omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
            omega = 1.0 / 10000 ** omega
            out = np.einsum("m,d->md", pos.reshape(-1), omega)
            return np.concatenate([np.sin(out), np.cos(out)], axis=1)

        pos_embed = np.concatenate([from_grid(embed_dim // 2, grid[0]), from_grid(embed_dim // 2, grid[1])], axis=1)
        if cls_token:
            pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], axis=0)
        return pos_embed

    class MaskedAutoencoderViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = PatchEmbed()
            num_patches = self.patch_embed.num_patches
            self.cls_token = nn.Parameter(T.zeros(1, 1, embed_dim))
            self.pos_embed = nn.Parameter(T.zeros(1, num_patches + 1, embed_dim), requires_grad=False)  # fixed
            self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for i in range(depth)])
            self.norm = nn.LayerNorm(embed_dim)
            self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
            self.mask_token = nn.Parameter(T.zeros(1, 1, decoder_embed_dim))
            self.decoder_pos_embed = nn.Parameter(T.zeros(1, num_patches + 1, decoder_embed_dim),
                                                  requires_grad=False)
            self.decoder_blocks = nn.ModuleList([
                Block(decoder_embed_dim, decoder_num_heads, mlp_ratio) for i in range(decoder_depth)])
            self.decoder_norm = nn.LayerNorm(decoder_embed_dim)
            self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans, bias=True)
            self.norm_pix_loss = norm_pix_loss
            self.initialize_weights()

        def initialize_weights(self):
            grid = int(self.patch_embed.num_patches ** 0.5)
            pos_embed = get_2d_sincos_pos_embed(self.pos_embed.shape[-1], grid, cls_token=True)
            decoder_pos_embed = get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], grid, cls_token=True)
            # MAE writes self.pos_embed.data.copy_(...) and xavier_uniform_(w.view(...)) on w = weight.data:
            # raygrad's .data is the raw array (README, "Differences"), so these go through no_grad instead.
            with T.no_grad():
                self.pos_embed.copy_(T.from_numpy(pos_embed).float().unsqueeze(0))
                self.decoder_pos_embed.copy_(T.from_numpy(decoder_pos_embed).float().unsqueeze(0))
                w = self.patch_embed.proj.weight
                T.nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
            T.nn.init.normal_(self.cls_token, std=0.02)
            T.nn.init.normal_(self.mask_token, std=0.02)
            self.apply(self._init_weights)

        def _init_weights(self, m):
            if isinstance(m, nn.Linear):
                T.nn.init.xavier_uniform_(m.weight)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)

        def patchify(self, imgs):
            p = self.patch_embed.patch_size[0]
            assert imgs.shape[2] == imgs.shape[3] and imgs.shape[2] % p == 0
            h = w = imgs.shape[2] // p
            x = imgs.reshape(shape=(imgs.shape[0], 3, h, p, w, p))
            x = T.einsum("nchpwq->nhwpqc", x)
            x = x.reshape(shape=(imgs.shape[0], h * w, p ** 2 * 3))
            return x

        def random_masking(self, x, mask_ratio, noise):
            N, L, D = x.shape  # batch, length, dim
            len_keep = int(L * (1 - mask_ratio))
            # noise = torch.rand(N, L, device=x.device): passed in
            ids_shuffle = T.argsort(noise, dim=1)  # ascend: small is keep, large is remove
            ids_restore = T.argsort(ids_shuffle, dim=1)
            ids_keep = ids_shuffle[:, :len_keep]
            x_masked = T.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
            mask = T.ones([N, L], device=x.device)
            mask[:, :len_keep] = 0
            mask = T.gather(mask, dim=1, index=ids_restore)
            return x_masked, mask, ids_restore

        def forward_encoder(self, x, mask_ratio, noise):
            x = self.patch_embed(x)
            x = x + self.pos_embed[:, 1:, :]
            x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
            cls_token = self.cls_token + self.pos_embed[:, :1, :]
            cls_tokens = cls_token.expand(x.shape[0], -1, -1)
            x = T.cat((cls_tokens, x), dim=1)
            for blk in self.blocks:
                x = blk(x)
            x = self.norm(x)
            return x, mask, ids_restore

        def forward_decoder(self, x, ids_restore):
            x = self.decoder_embed(x)
            mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
            x_ = T.cat([x[:, 1:, :], mask_tokens], dim=1)  # no cls token
            x_ = T.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))  # unshuffle
            x = T.cat([x[:, :1, :], x_], dim=1)  # append cls token
            x = x + self.decoder_pos_embed
            for blk in self.decoder_blocks:
                x = blk(x)
            x = self.decoder_norm(x)
            x = self.decoder_pred(x)
            return x[:, 1:, :]

        def forward_loss(self, imgs, pred, mask):
            target = self.patchify(imgs)
            if self.norm_pix_loss:
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)
                target = (target - mean) / (var + 1.e-6) ** .5
            loss = (pred - target) ** 2
            loss = loss.mean(dim=-1)  # [N, L], mean loss per patch
            loss = (loss * mask).sum() / mask.sum()  # mean loss on removed patches
            return loss

        def forward(self, imgs, noise, mask_ratio=0.75):
            latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
            pred = self.forward_decoder(latent, ids_restore)  # [N, L, p*p*3]
            loss = self.forward_loss(imgs, pred, mask)
            return loss, pred, mask

    return MaskedAutoencoderViT()


def resample_abs_pos_embed(T, posemb, new_size, old_size=None, num_prefix_tokens=1, interpolation="bicubic",
                           antialias=True):
    """timm.layers.resample_abs_pos_embed: the patch grid's embeddings resized, prefix tokens kept."""
    num_pos_tokens = posemb.shape[1]
    num_new_tokens = new_size[0] * new_size[1] + num_prefix_tokens
    if num_new_tokens == num_pos_tokens and new_size[0] == new_size[1]:
        return posemb
    if old_size is None:
        hw = int(math.sqrt(num_pos_tokens - num_prefix_tokens))
        old_size = hw, hw
    if num_prefix_tokens:
        posemb_prefix, posemb = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    else:
        posemb_prefix, posemb = None, posemb
    embed_dim = posemb.shape[-1]
    orig_dtype = posemb.dtype
    posemb = posemb.float()  # interpolate needs float32
    posemb = posemb.reshape(1, old_size[0], old_size[1], -1).permute(0, 3, 1, 2)
    posemb = T.nn.functional.interpolate(posemb, size=new_size, mode=interpolation, antialias=antialias)
    posemb = posemb.permute(0, 2, 3, 1).reshape(1, -1, embed_dim)
    posemb = posemb.to(orig_dtype)
    if posemb_prefix is not None:
        posemb = T.cat([posemb_prefix, posemb], dim=1)
    return posemb


def train_mae_then_finetune(T, device, init, images, noises, big_images, labels, head_init, steps=3):
    device = device_of(T, device)
    model = ported_model(T, mae, init, device)
    param_groups = [{"params": [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1
                                and n not in ("cls_token", "mask_token")], "weight_decay": 0.05},
                    {"params": [p for n, p in model.named_parameters() if p.requires_grad and (p.ndim <= 1
                                or n in ("cls_token", "mask_token"))], "weight_decay": 0.0}]
    optimizer = T.optim.AdamW(param_groups, lr=1e-2, betas=(0.9, 0.95))
    losses = []
    imgs = T.from_numpy(images).to(device)
    for step in range(steps):
        model.train(True)
        loss, pred, mask = model(imgs, T.from_numpy(noises[step]).to(device), mask_ratio=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [loss.item(), mask.sum().item()]
    # Fine-tune at 12x12 (a 3x3 patch grid): the encoder's weights into a ViT, its pos_embed resampled.
    finetune = vit(T, img_size=12, init_values=None, depth=1, drop_path_rate=0.0).to(device)
    checkpoint_model = {k: v for k, v in model.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    checkpoint_model["pos_embed"] = resample_abs_pos_embed(T, checkpoint_model["pos_embed"], new_size=(3, 3))
    msg = finetune.load_state_dict(checkpoint_model, strict=False)
    assert set(msg.missing_keys) == {"head.weight", "head.bias"} and not msg.unexpected_keys, msg
    with T.no_grad():  # trunc_normal_(model.head.weight, std=2e-5) in MAE: the draw passed in
        finetune.head.weight.copy_(T.from_numpy(head_init))
        finetune.head.bias.zero_()
    optimizer = T.optim.AdamW(finetune.parameters(), lr=5e-3, weight_decay=0.05)
    criterion = T.nn.CrossEntropyLoss(label_smoothing=0.1)
    x, y = T.from_numpy(big_images).to(device), T.from_numpy(labels).to(device)
    for step in range(steps):
        finetune.train()
        loss = criterion(finetune(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    state = numpy_state(model)
    state.update({"finetune." + k: v for k, v in numpy_state(finetune).items()})
    return losses, state


def test_mae_pretrain_then_finetune_at_a_new_resolution(device):
    rng = np.random.default_rng(3)
    n, steps = 2, 3
    images = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    noises = rng.random((steps, n, 4)).astype(np.float32)
    big_images = rng.standard_normal((n, 3, 12, 12)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    head_init = (rng.standard_normal((3, 8)) * 0.02).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_mae_then_finetune, device, numpy_state(mae(torch)), images, noises, big_images, labels, head_init,
             steps)
