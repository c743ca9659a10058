"""Vision code beyond classifiers, as its reference implementations write it in plain PyTorch, ported by imports.

Spatial transformer networks (affine_grid + grid_sample, both align_corners, every padding mode), RAFT /
PWC-Net optical flow (backward warping from a flow field, an all-pairs correlation pyramid by matmul, a local
cost volume by unfold, convex upsampling), VoxelMorph registration (dense warps in 2-D and 3-D, scaling and
squaring), DeepLabv3's ASPP head, neural style transfer (Gatys: Gram matrices and LBFGS on the image itself;
Johnson: TransformerNet with InstanceNorm), ESPCN super-resolution (PixelShuffle / PixelUnshuffle), RoIAlign
and RoIPool written in torch, RPN target assignment (IoU matrix, Matcher, balanced sampling, box coding),
attention gates (Attention U-Net, UNet++), CBAM / squeeze-excitation, and torchvision's tensor augmentations
(float and uint8, RandAugment's ops) written out. No torchvision import: where the reference code calls
torchvision, its functional ops are written here in torch as torchvision writes them.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data, and losses and final parameters agree to float32 accuracy. Random draws (crop
boxes, jitter factors, sampler permutations, RandAugment's signs) are passed in.
"""
import math

import numpy as np
import pytest

import tensor

from test_ported_scripts import ATOL, RTOL, device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def as_list(x):
    return np.asarray(x, dtype=np.float64).ravel().tolist()


# ---- 1. Spatial transformer network: localisation net, affine_grid + grid_sample ---------------------

def stn_net(T, align_corners=False, padding_mode="zeros", mode="bilinear", p_drop=0.0):
    # pytorch/tutorials intermediate_source/spatial_transformer_tutorial.py, scaled to 16x16 inputs.
    nn = T.nn
    F = T.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, kernel_size=3)
            self.conv2 = nn.Conv2d(4, 6, kernel_size=3)
            self.conv2_drop = nn.Dropout2d(p_drop)
            self.fc1 = nn.Linear(6 * 2 * 2, 12)
            self.fc2 = nn.Linear(12, 3)

            # Spatial transformer localization-network
            self.localization = nn.Sequential(
                nn.Conv2d(1, 4, kernel_size=5),
                nn.MaxPool2d(2, stride=2),
                nn.ReLU(True),
                nn.Conv2d(4, 6, kernel_size=3),
                nn.MaxPool2d(2, stride=2),
                nn.ReLU(True),
            )
            # Regressor for the 3 * 2 affine matrix
            self.fc_loc = nn.Sequential(
                nn.Linear(6 * 2 * 2, 16),
                nn.ReLU(True),
                nn.Linear(16, 3 * 2),
            )
            # Initialize the weights/bias with identity transformation. The tutorial writes
            # `self.fc_loc[2].weight.data.zero_()`: raygrad's .data is the raw array (README, Differences).
            with T.no_grad():
                self.fc_loc[2].weight.zero_()
                self.fc_loc[2].bias.copy_(T.tensor([1, 0, 0, 0, 1, 0], dtype=T.float))

        # Spatial transformer network forward function
        def stn(self, x):
            xs = self.localization(x)
            xs = xs.view(-1, 6 * 2 * 2)
            theta = self.fc_loc(xs)
            theta = theta.view(-1, 2, 3)
            grid = F.affine_grid(theta, x.size(), align_corners=align_corners)
            x = F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
            return x

        def forward(self, x):
            x = self.stn(x)
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
            x = x.view(-1, 6 * 2 * 2)
            x = F.relu(self.fc1(x))
            x = F.dropout(x, p=p_drop, training=self.training)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    return Net()


def train_stn(T, device, init, images, labels, align_corners, padding_mode, mode, steps=4):
    device = device_of(T, device)
    model = ported_model(T, lambda T: stn_net(T, align_corners, padding_mode, mode), init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    data, target = T.from_numpy(images).to(device), T.from_numpy(labels).to(device)
    losses = []
    for step in range(steps):
        model.train()
        optimizer.zero_grad()
        output = model(data)
        loss = T.nn.functional.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # visualize_stn: the transformed batch, under no_grad
    with T.no_grad():
        model.eval()
        transformed = model.stn(data).cpu().numpy()
        test_loss = T.nn.functional.nll_loss(model(data), target, reduction="sum").item()
        pred = model(data).max(1, keepdim=True)[1]
        correct = pred.eq(target.view_as(pred)).sum().item()
    return losses + [test_loss, correct] + as_list(transformed), numpy_state(model)


@pytest.mark.parametrize("align_corners, padding_mode, mode", [
    (False, "zeros", "bilinear"), (True, "zeros", "bilinear"), (False, "border", "bilinear"),
    (True, "reflection", "bilinear"), (False, "reflection", "bilinear"), (True, "border", "nearest"),
    (False, "border", "bicubic"),
])
def test_spatial_transformer(device, align_corners, padding_mode, mode):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((6, 1, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 3, 6)
    torch.manual_seed(0)
    init = numpy_state(stn_net(torch))
    # Start away from the exact identity (a rotation, scale and shift, and some weight on the features), so
    # that sampling points fall between pixels and some leave the image: the padding mode matters.
    init["fc_loc.2.weight"] = (0.05 * rng.standard_normal((6, 16))).astype(np.float32)
    init["fc_loc.2.bias"] = np.array([1.1, 0.25, 0.07, -0.2, 0.95, -0.11], np.float32)
    run_both(train_stn, device, init, images, labels, align_corners, padding_mode, mode)


# ---- 2. Optical flow: RAFT's correlation pyramid and convex upsampling, PWC-Net's backward warp -------

def bilinear_sampler(T, img, coords, mode="bilinear", mask=False):
    """Wrapper for grid_sample, uses pixel coordinates (princeton-vl/RAFT core/utils/utils.py)."""
    F = T.nn.functional
    H, W = img.shape[-2:]
    xgrid, ygrid = coords.split([1, 1], dim=-1)
    xgrid = 2 * xgrid / (W - 1) - 1
    ygrid = 2 * ygrid / (H - 1) - 1

    grid = T.cat([xgrid, ygrid], dim=-1)
    img = F.grid_sample(img, grid, align_corners=True)

    if mask:
        mask = (xgrid > -1) & (ygrid > -1) & (xgrid < 1) & (ygrid < 1)
        return img, mask.float()

    return img


def coords_grid(T, batch, ht, wd, device):
    coords = T.meshgrid(T.arange(ht, device=device), T.arange(wd, device=device))
    coords = T.stack(coords[::-1], dim=0).float()
    return coords[None].repeat(batch, 1, 1, 1)


def upflow8(T, flow, mode="bilinear"):
    new_size = (8 * flow.shape[2], 8 * flow.shape[3])
    return 8 * T.nn.functional.interpolate(flow, size=new_size, mode=mode, align_corners=True)


def corr_block(T):
    # princeton-vl/RAFT core/corr.py
    F = T.nn.functional

    class CorrBlock:
        def __init__(self, fmap1, fmap2, num_levels=4, radius=4):
            self.num_levels = num_levels
            self.radius = radius
            self.corr_pyramid = []

            # all pairs correlation
            corr = CorrBlock.corr(fmap1, fmap2)

            batch, h1, w1, dim, h2, w2 = corr.shape
            corr = corr.reshape(batch * h1 * w1, dim, h2, w2)

            self.corr_pyramid.append(corr)
            for i in range(self.num_levels - 1):
                corr = F.avg_pool2d(corr, 2, stride=2)
                self.corr_pyramid.append(corr)

        def __call__(self, coords):
            r = self.radius
            coords = coords.permute(0, 2, 3, 1)
            batch, h1, w1, _ = coords.shape

            out_pyramid = []
            for i in range(self.num_levels):
                corr = self.corr_pyramid[i]
                dx = T.linspace(-r, r, 2 * r + 1, device=coords.device)
                dy = T.linspace(-r, r, 2 * r + 1, device=coords.device)
                delta = T.stack(T.meshgrid(dy, dx), axis=-1)

                centroid_lvl = coords.reshape(batch * h1 * w1, 1, 1, 2) / 2 ** i
                delta_lvl = delta.view(1, 2 * r + 1, 2 * r + 1, 2)
                coords_lvl = centroid_lvl + delta_lvl

                corr = bilinear_sampler(T, corr, coords_lvl)
                corr = corr.view(batch, h1, w1, -1)
                out_pyramid.append(corr)

            out = T.cat(out_pyramid, dim=-1)
            return out.permute(0, 3, 1, 2).contiguous().float()

        @staticmethod
        def corr(fmap1, fmap2):
            batch, dim, ht, wd = fmap1.shape
            fmap1 = fmap1.view(batch, dim, ht * wd)
            fmap2 = fmap2.view(batch, dim, ht * wd)

            corr = T.matmul(fmap1.transpose(1, 2), fmap2)
            corr = corr.view(batch, ht, wd, 1, ht, wd)
            return corr / T.sqrt(T.tensor(dim).float())

    return CorrBlock


def pwc_warp(T, x, flo):
    """NVlabs/PWC-Net PyTorch/models/PWCNet.py: warp an image/tensor (im2) back to im1, according to the flow."""
    B, C, H, W = x.size()
    # mesh grid
    xx = T.arange(0, W).view(1, -1).repeat(H, 1)
    yy = T.arange(0, H).view(-1, 1).repeat(1, W)
    xx = xx.view(1, 1, H, W).repeat(B, 1, 1, 1)
    yy = yy.view(1, 1, H, W).repeat(B, 1, 1, 1)
    grid = T.cat((xx, yy), 1).float()
    grid = grid.to(x.device)
    vgrid = T.autograd.Variable(grid) + flo

    # scale grid to [-1,1]
    vgrid[:, 0, :, :] = 2.0 * vgrid[:, 0, :, :].clone() / max(W - 1, 1) - 1.0
    vgrid[:, 1, :, :] = 2.0 * vgrid[:, 1, :, :].clone() / max(H - 1, 1) - 1.0

    vgrid = vgrid.permute(0, 2, 3, 1)
    output = T.nn.functional.grid_sample(x, vgrid, align_corners=True)
    mask = T.autograd.Variable(T.ones(x.size(), device=x.device))
    mask = T.nn.functional.grid_sample(mask, vgrid, align_corners=True)

    mask[mask < 0.9999] = 0
    mask[mask > 0] = 1

    return output * mask


def local_correlation(T, f1, f2, md=2):
    """PWC-Net's cost volume (its Correlation CUDA op, max_displacement=md, kernel_size=1, strides 1) as pure
    torch ports write it: every displacement of f2 in one F.unfold, then a channel mean and LeakyReLU(0.1)."""
    F = T.nn.functional
    b, c, h, w = f1.shape
    f2_unf = F.unfold(f2, kernel_size=2 * md + 1, padding=md).view(b, c, (2 * md + 1) ** 2, h, w)
    corr = (f1.unsqueeze(2) * f2_unf).sum(1) / c
    return F.leaky_relu(corr, 0.1)


def tiny_raft(T, hdim=8, levels=2, radius=1):
    # A RAFT-shaped model (princeton-vl/RAFT core/raft.py) at 1/8 resolution: feature and context encoders,
    # correlation lookup around coords1, an update head for delta flow and the convex upsampling mask.
    nn = T.nn
    F = T.nn.functional
    CorrBlock = corr_block(T)
    cor_planes = levels * (2 * radius + 1) ** 2

    def encoder(cout):
        return nn.Sequential(
            nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(8, cout, 3, stride=2, padding=1),
        )

    class RAFT(nn.Module):
        def __init__(self):
            super().__init__()
            self.fnet = encoder(8)
            self.cnet = encoder(2 * hdim)
            self.convc = nn.Conv2d(cor_planes, 8, 1)
            self.convf = nn.Conv2d(2, 4, 3, padding=1)
            self.gru = nn.Conv2d(hdim + 8 + 4 + hdim, hdim, 3, padding=1)
            self.flow_head = nn.Sequential(nn.Conv2d(hdim, 8, 3, padding=1), nn.ReLU(inplace=True),
                                           nn.Conv2d(8, 2, 3, padding=1))
            self.mask = nn.Sequential(nn.Conv2d(hdim, 16, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(16, 64 * 9, 1, padding=0))

        def initialize_flow(self, img):
            """Flow is represented as difference between two coordinate grids flow = coords1 - coords0"""
            N, C, H, W = img.shape
            coords0 = coords_grid(T, N, H // 8, W // 8, device=img.device)
            coords1 = coords_grid(T, N, H // 8, W // 8, device=img.device)
            return coords0, coords1

        def upsample_flow(self, flow, mask):
            """Upsample flow field [H/8, W/8, 2] -> [H, W, 2] using convex combination"""
            N, _, H, W = flow.shape
            mask = mask.view(N, 1, 9, 8, 8, H, W)
            mask = T.softmax(mask, dim=2)

            up_flow = F.unfold(8 * flow, [3, 3], padding=1)
            up_flow = up_flow.view(N, 2, 9, 1, 1, H, W)

            up_flow = T.sum(mask * up_flow, dim=2)
            up_flow = up_flow.permute(0, 1, 4, 2, 5, 3)
            return up_flow.reshape(N, 2, 8 * H, 8 * W)

        def forward(self, image1, image2, iters=3, flow_init=None):
            image1 = 2 * (image1 / 255.0) - 1.0
            image2 = 2 * (image2 / 255.0) - 1.0
            image1 = image1.contiguous()
            image2 = image2.contiguous()

            fmap1, fmap2 = self.fnet(image1).float(), self.fnet(image2).float()
            corr_fn = CorrBlock(fmap1, fmap2, num_levels=levels, radius=radius)

            cnet = self.cnet(image1)
            net, inp = T.split(cnet, [hdim, hdim], dim=1)
            net = T.tanh(net)
            inp = T.relu(inp)

            coords0, coords1 = self.initialize_flow(image1)
            if flow_init is not None:
                coords1 = coords1 + flow_init

            flow_predictions = []
            for itr in range(iters):
                coords1 = coords1.detach()
                corr = corr_fn(coords1)  # index correlation volume

                flow = coords1 - coords0
                motion = T.cat([F.relu(self.convc(corr)), F.relu(self.convf(flow))], dim=1)
                net = T.tanh(self.gru(T.cat([net, inp, motion], dim=1)))
                delta_flow = self.flow_head(net)
                # scale mask to balence gradients
                up_mask = .25 * self.mask(net)

                # F(t+1) = F(t) + \Delta(t)
                coords1 = coords1 + delta_flow

                # upsample predictions
                if up_mask is None:
                    flow_up = upflow8(T, coords1 - coords0)
                else:
                    flow_up = self.upsample_flow(coords1 - coords0, up_mask)

                flow_predictions.append(flow_up)

            return flow_predictions

    return RAFT()


def sequence_loss(T, flow_preds, flow_gt, valid, gamma=0.8, max_flow=400):
    """Loss function defined over sequence of flow predictions (princeton-vl/RAFT train.py)."""
    n_predictions = len(flow_preds)
    flow_loss = 0.0

    # exlude invalid pixels and extremely large diplacements
    mag = T.sum(flow_gt ** 2, dim=1).sqrt()
    valid = (valid >= 0.5) & (mag < max_flow)

    for i in range(n_predictions):
        i_weight = gamma ** (n_predictions - i - 1)
        i_loss = (flow_preds[i] - flow_gt).abs()
        flow_loss += i_weight * (valid[:, None] * i_loss).mean()

    epe = T.sum((flow_preds[-1] - flow_gt) ** 2, dim=1).sqrt()
    epe = epe.view(-1)[valid.view(-1)]

    metrics = {
        'epe': epe.mean().item(),
        '1px': (epe < 1).float().mean().item(),
        '3px': (epe < 3).float().mean().item(),
        '5px': (epe < 5).float().mean().item(),
    }
    return flow_loss, metrics


def train_raft(T, device, init, image1, image2, flow_gt, valid, steps=3):
    device = device_of(T, device)
    model = ported_model(T, tiny_raft, init, device)
    model.train()
    optimizer = T.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=1e-5, eps=1e-8)
    scheduler = T.optim.lr_scheduler.OneCycleLR(optimizer, 4e-4, steps + 100, pct_start=0.05,
                                                cycle_momentum=False, anneal_strategy="linear")
    image1, image2 = T.from_numpy(image1).to(device), T.from_numpy(image2).to(device)
    flow, valid = T.from_numpy(flow_gt).to(device), T.from_numpy(valid).to(device)
    out = []
    for step in range(steps):
        optimizer.zero_grad()
        flow_predictions = model(image1, image2, iters=3)
        loss, metrics = sequence_loss(T, flow_predictions, flow, valid)
        # an unsupervised photometric term: warp image2 back by the predicted flow (PWC-Net's warp)
        warped = pwc_warp(T, image2 / 255.0, flow_predictions[-1])
        photo = (warped - image1 / 255.0).abs().mean()
        (loss + photo).backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        out += [loss.item(), photo.item(), metrics["epe"], metrics["1px"], metrics["3px"]]
    with T.no_grad():
        model.eval()
        CorrBlock = corr_block(T)
        f1, f2 = model.fnet(image1 / 255.0), model.fnet(image2 / 255.0)
        coords = coords_grid(T, 2, 4, 4, device) + T.from_numpy(flow_gt[:, :, ::8, ::8].copy()).to(device) / 8
        lookup = CorrBlock(f1, f2, num_levels=2, radius=1)(coords)
        up = upflow8(T, flow_predictions[-1][:, :, ::8, ::8])
        sampled, inside = bilinear_sampler(T, image2, coords.permute(0, 2, 3, 1), mask=True)
    # PWC-Net's step at one pyramid level: warp the second features by the (upsampled) coarse flow, then the
    # local cost volume; its gradient w.r.t. that flow goes through grid_sample and unfold.
    coarse = T.zeros(2, 2, 2, 2, device=device, requires_grad=True)
    flow_lr = T.nn.functional.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False) * 2.0
    f1, f2 = model.fnet(image1 / 255.0).detach(), model.fnet(image2 / 255.0).detach()
    cost = local_correlation(T, f1, pwc_warp(T, f2, flow_lr + 0.3))
    (cost * T.linspace(-1, 1, cost.numel(), device=device).view(cost.shape)).sum().backward()
    return out + as_list(lookup.cpu()) + as_list(up.cpu()) + as_list(sampled.cpu()) + as_list(inside.cpu()) \
        + as_list(cost.detach().cpu()) + as_list(coarse.grad.cpu()), numpy_state(model)


def test_raft_flow_and_pwc_warp(device):
    rng = np.random.default_rng(1)
    # 32x32 images: 4x4 features at 1/8, so the pyramid's coarsest level (2x2) still has W - 1 > 0.
    image1 = (255 * rng.random((2, 3, 32, 32))).astype(np.float32)
    image2 = (255 * rng.random((2, 3, 32, 32))).astype(np.float32)
    flow_gt = (1.5 * rng.standard_normal((2, 2, 32, 32))).astype(np.float32)
    valid = (rng.random((2, 32, 32)) < 0.9).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_raft, device, numpy_state(tiny_raft(torch)), image1, image2, flow_gt, valid)



# ---- 2b. VoxelMorph registration: dense flow warping in 2-D and 3-D, scaling-and-squaring integration --

def voxelmorph(T, inshape, int_steps=3, int_downsize=2, enc_nf=(4, 8), dec_nf=(8, 8, 4)):
    # voxelmorph/torch/layers.py (SpatialTransformer, VecInt, ResizeTransform) and networks.py (ConvBlock,
    # Unet, VxmDense with bidir=True), with a two-level U-Net.
    nn = T.nn
    nnf = T.nn.functional
    ndims = len(inshape)

    class SpatialTransformer(nn.Module):
        """
        N-D Spatial Transformer
        """

        def __init__(self, size, mode='bilinear'):
            super().__init__()

            self.mode = mode

            # create sampling grid
            vectors = [T.arange(0, s) for s in size]
            grids = T.meshgrid(vectors)
            grid = T.stack(grids)
            grid = T.unsqueeze(grid, 0)
            # voxelmorph writes `grid.type(torch.FloatTensor)`: raygrad has no typed tensor classes (README,
            # Differences), so the dtype itself
            grid = grid.type(T.float32)

            # registering the grid as a buffer cleanly moves it to the GPU, but it also
            # adds it to the state dict.
            self.register_buffer('grid', grid)

        def forward(self, src, flow):
            # new locations
            new_locs = self.grid + flow
            shape = flow.shape[2:]

            # need to normalize grid values to [-1, 1] for resampler
            for i in range(len(shape)):
                new_locs[:, i, ...] = 2 * (new_locs[:, i, ...] / (shape[i] - 1) - 0.5)

            # move channels dim to last position
            # also not sure why, but the channels need to be reversed
            if len(shape) == 2:
                new_locs = new_locs.permute(0, 2, 3, 1)
                new_locs = new_locs[..., [1, 0]]
            elif len(shape) == 3:
                new_locs = new_locs.permute(0, 2, 3, 4, 1)
                new_locs = new_locs[..., [2, 1, 0]]

            return nnf.grid_sample(src, new_locs, align_corners=True, mode=self.mode)

    class VecInt(nn.Module):
        """
        Integrates a vector field via scaling and squaring.
        """

        def __init__(self, inshape, nsteps):
            super().__init__()

            assert nsteps >= 0, 'nsteps should be >= 0, found: %d' % nsteps
            self.nsteps = nsteps
            self.scale = 1.0 / (2 ** self.nsteps)
            self.transformer = SpatialTransformer(inshape)

        def forward(self, vec):
            vec = vec * self.scale
            for _ in range(self.nsteps):
                vec = vec + self.transformer(vec, vec)
            return vec

    class ResizeTransform(nn.Module):
        """
        Resize a transform, which involves resizing the vector field *and* rescaling it.
        """

        def __init__(self, vel_resize, ndims):
            super().__init__()
            self.factor = 1.0 / vel_resize
            self.mode = 'linear'
            if ndims == 2:
                self.mode = 'bi' + self.mode
            elif ndims == 3:
                self.mode = 'tri' + self.mode

        def forward(self, x):
            if self.factor < 1:
                # resize first to save memory
                x = nnf.interpolate(x, align_corners=True, scale_factor=self.factor, mode=self.mode)
                x = self.factor * x

            elif self.factor > 1:
                # multiply first to save memory
                x = self.factor * x
                x = nnf.interpolate(x, align_corners=True, scale_factor=self.factor, mode=self.mode)

            # don't do anything if resize is 1
            return x

    class ConvBlock(nn.Module):
        """
        Specific convolutional block followed by leakyrelu for unet.
        """

        def __init__(self, ndims, in_channels, out_channels, stride=1):
            super().__init__()

            Conv = getattr(nn, 'Conv%dd' % ndims)
            self.main = Conv(in_channels, out_channels, 3, stride, 1)
            self.activation = nn.LeakyReLU(0.2)

        def forward(self, x):
            out = self.main(x)
            out = self.activation(out)
            return out

    class Unet(nn.Module):
        def __init__(self, infeats):
            super().__init__()
            MaxPooling = getattr(nn, 'MaxPool%dd' % ndims)
            self.pooling = MaxPooling(2)
            self.upsampling = nn.Upsample(scale_factor=2, mode='nearest')
            self.encoder = nn.ModuleList([ConvBlock(ndims, infeats, enc_nf[0]),
                                          ConvBlock(ndims, enc_nf[0], enc_nf[1])])
            self.decoder = nn.ModuleList([ConvBlock(ndims, enc_nf[1], dec_nf[0]),
                                          ConvBlock(ndims, dec_nf[0] + enc_nf[1], dec_nf[1])])
            self.remaining = nn.ModuleList([ConvBlock(ndims, dec_nf[1] + enc_nf[0], dec_nf[2])])
            self.final_nf = dec_nf[2]

        def forward(self, x):
            # encoder forward pass
            x_history = [x]
            for conv in self.encoder:
                x = conv(x)
                x_history.append(x)
                x = self.pooling(x)

            # decoder forward pass with upsampling and concatenation
            for conv in self.decoder:
                x = conv(x)
                x = self.upsampling(x)
                x = T.cat([x, x_history.pop()], dim=1)

            # remaining convs at full resolution
            for conv in self.remaining:
                x = conv(x)

            return x

    class VxmDense(nn.Module):
        def __init__(self):
            super().__init__()
            self.unet_model = Unet(2)
            Conv = getattr(nn, 'Conv%dd' % ndims)
            self.flow = Conv(self.unet_model.final_nf, ndims, kernel_size=3, padding=1)

            # init flow layer with small weights and bias
            self.flow.weight = nn.Parameter(T.distributions.normal.Normal(0, 1e-5).sample(self.flow.weight.shape))
            self.flow.bias = nn.Parameter(T.zeros(self.flow.bias.shape))

            # configure optional resize layers (downsize)
            self.resize = ResizeTransform(int_downsize, ndims)
            self.fullsize = ResizeTransform(1 / int_downsize, ndims)
            self.bidir = True

            # configure optional integration layer for diffeomorphic warp
            down_shape = [int(dim / int_downsize) for dim in inshape]
            self.integrate = VecInt(down_shape, int_steps)

            # configure transformer
            self.transformer = SpatialTransformer(inshape)

        def forward(self, source, target, registration=False):
            # concatenate inputs and propagate unet
            x = T.cat([source, target], dim=1)
            x = self.unet_model(x)

            # transform into flow field
            flow_field = self.flow(x)

            # resize flow for integration
            pos_flow = flow_field
            if self.resize:
                pos_flow = self.resize(pos_flow)

            preint_flow = pos_flow

            # negate flow for bidirectional model
            neg_flow = -pos_flow if self.bidir else None

            # integrate to produce diffeomorphic warp
            if self.integrate:
                pos_flow = self.integrate(pos_flow)
                neg_flow = self.integrate(neg_flow) if self.bidir else None

                # resize to final resolution
                if self.fullsize:
                    pos_flow = self.fullsize(pos_flow)
                    neg_flow = self.fullsize(neg_flow) if self.bidir else None

            # warp image with flow field
            y_source = self.transformer(source, pos_flow)
            y_target = self.transformer(target, neg_flow) if self.bidir else None

            # return non-integrated flow field if training
            if not registration:
                return (y_source, y_target, preint_flow) if self.bidir else (y_source, preint_flow)
            else:
                return y_source, pos_flow

    return VxmDense()


def ncc_loss(T, y_true, y_pred, win=None, device="cpu"):
    # voxelmorph/torch/losses.py NCC.loss (it builds sum_filt `.to("cuda")`; the script's device here)
    F = T.nn.functional
    Ii = y_true
    Ji = y_pred

    # get dimension of volume
    # assumes Ii, Ji are sized [batch_size, *vol_shape, nb_feats]
    ndims = len(list(Ii.size())) - 2
    assert ndims in [1, 2, 3], "volumes should be 1 to 3 dimensions. found: %d" % ndims

    # set window size
    win = [9] * ndims if win is None else win

    # compute filters
    sum_filt = T.ones([1, 1, *win]).to(device)

    pad_no = math.floor(win[0] / 2)

    if ndims == 1:
        stride = (1)
        padding = (pad_no)
    elif ndims == 2:
        stride = (1, 1)
        padding = (pad_no, pad_no)
    else:
        stride = (1, 1, 1)
        padding = (pad_no, pad_no, pad_no)

    # get convolution function
    conv_fn = getattr(F, 'conv%dd' % ndims)

    # compute CC squares
    I2 = Ii * Ii
    J2 = Ji * Ji
    IJ = Ii * Ji

    I_sum = conv_fn(Ii, sum_filt, stride=stride, padding=padding)
    J_sum = conv_fn(Ji, sum_filt, stride=stride, padding=padding)
    I2_sum = conv_fn(I2, sum_filt, stride=stride, padding=padding)
    J2_sum = conv_fn(J2, sum_filt, stride=stride, padding=padding)
    IJ_sum = conv_fn(IJ, sum_filt, stride=stride, padding=padding)

    win_size = np.prod(win)
    u_I = I_sum / win_size
    u_J = J_sum / win_size

    cross = IJ_sum - u_J * I_sum - u_I * J_sum + u_I * u_J * win_size
    I_var = I2_sum - 2 * u_I * I_sum + u_I * u_I * win_size
    J_var = J2_sum - 2 * u_J * J_sum + u_J * u_J * win_size

    cc = cross * cross / (I_var * J_var + 1e-5)

    return -T.mean(cc)


def grad_loss(T, y_pred, penalty='l2', loss_mult=None):
    # voxelmorph/torch/losses.py Grad
    def _diffs(y):
        vol_shape = [n for n in y.shape][2:]
        ndims = len(vol_shape)

        df = [None] * ndims
        for i in range(ndims):
            d = i + 2
            # permute dimensions
            r = [d, *range(0, d), *range(d + 1, ndims + 2)]
            y = y.permute(r)
            dfi = y[1:, ...] - y[:-1, ...]

            # permute back
            # note: this might not be necessary for this loss specifically,
            # since the results are just summed over anyway.
            r = [*range(d - 1, d + 1), *reversed(range(1, d - 1)), 0, *range(d + 1, ndims + 2)]
            df[i] = dfi.permute(r)

        return df

    if penalty == 'l1':
        dif = [T.abs(f) for f in _diffs(y_pred)]
    else:
        assert penalty == 'l2', 'penalty can only be l1 or l2. Got: %s' % penalty
        dif = [f * f for f in _diffs(y_pred)]

    df = [T.mean(T.flatten(f, start_dim=1), dim=-1) for f in dif]
    grad = sum(df) / len(df)

    if loss_mult is not None:
        grad *= loss_mult

    return grad.mean()


def train_voxelmorph(T, device, init, moving, fixed, steps=3):
    # voxelmorph/scripts/torch/train.py: bidirectional NCC image losses (weight 0.5 each) + Grad('l2')
    device = device_of(T, device)
    inshape = moving.shape[2:]
    model = ported_model(T, lambda T: voxelmorph(T, inshape), init, device)
    model.train()
    optimizer = T.optim.Adam(model.parameters(), lr=1e-2)
    losses = [lambda y_true, y_pred: ncc_loss(T, y_true, y_pred, win=[5] * len(inshape), device=device)] * 2
    losses += [lambda _, y_pred: grad_loss(T, y_pred, 'l2', loss_mult=2)]
    weights = [0.5, 0.5, 0.01]
    inputs = [T.from_numpy(moving).to(device), T.from_numpy(fixed).to(device)]
    y_true = [inputs[1], inputs[0], None]
    out = []
    for step in range(steps):
        # run inputs through the model to produce a warped image and flow field
        y_pred = model(*inputs)

        # calculate total loss
        loss = 0
        loss_list = []
        for n, loss_function in enumerate(losses):
            curr_loss = loss_function(y_true[n], y_pred[n]) * weights[n]
            loss_list.append(curr_loss.item())
            loss += curr_loss

        # backpropagate and optimize
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        out += loss_list + [loss.item()]
    model.eval()
    with T.no_grad():
        moved, warp = model(*inputs, registration=True)
    return out + as_list(moved.cpu()) + as_list(warp.cpu()), numpy_state(model)


@pytest.mark.parametrize("ndims", [
    2,
    3,
])
def test_voxelmorph_registration(device, ndims):
    rng = np.random.default_rng(11)
    inshape = (8, 8) if ndims == 2 else (4, 8, 8)
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in inshape], indexing="ij")
    blob = lambda c: np.exp(-sum((a - ci) ** 2 for a, ci in zip(axes, c)) * 4)  # noqa: E731
    moving = blob([0.1] * ndims)[None, None] + 0.05 * rng.standard_normal((1, 1, *inshape))
    fixed = blob([-0.2] * ndims)[None, None] + 0.05 * rng.standard_normal((1, 1, *inshape))
    torch.manual_seed(0)
    init = numpy_state(voxelmorph(torch, inshape))
    # The reference starts the flow conv at N(0, 1e-5), which samples every voxel at (a rounding error from)
    # a grid point, where grid_sample's gradient w.r.t. the grid jumps: start from a real deformation.
    init["flow.weight"] = (0.2 * rng.standard_normal(init["flow.weight"].shape)).astype(np.float32)
    init["flow.bias"] = (0.3 * rng.standard_normal(init["flow.bias"].shape)).astype(np.float32)
    run_both(train_voxelmorph, device, init, moving.astype(np.float32), fixed.astype(np.float32))

# ---- 3. DeepLabv3: ASPP (dilated convs + image pooling), aux head, poly LR, mIoU by bincount ----------

def deeplabv3(T, num_classes=3, ch=8, atrous_rates=(1, 2, 3), p_drop=0.0):
    # torchvision/models/segmentation/deeplabv3.py (ASPP, DeepLabHead), fcn.py (FCNHead) and _utils.py
    # (_SimpleSegmentationModel), with a tiny dilated backbone for the ResNet.
    nn = T.nn
    F = T.nn.functional

    class ASPPConv(nn.Sequential):
        def __init__(self, in_channels, out_channels, dilation):
            modules = [
                nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            ]
            super().__init__(*modules)

    class ASPPPooling(nn.Sequential):
        def __init__(self, in_channels, out_channels):
            super().__init__(
                nn.AdaptiveAvgPool2d(1),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            )

        def forward(self, x):
            size = x.shape[-2:]
            for mod in self:
                x = mod(x)
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    class ASPP(nn.Module):
        def __init__(self, in_channels, atrous_rates, out_channels=ch):
            super().__init__()
            modules = []
            modules.append(
                nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                              nn.ReLU())
            )

            rates = tuple(atrous_rates)
            for rate in rates:
                modules.append(ASPPConv(in_channels, out_channels, rate))

            modules.append(ASPPPooling(in_channels, out_channels))

            self.convs = nn.ModuleList(modules)

            self.project = nn.Sequential(
                nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.Dropout(p_drop),
            )

        def forward(self, x):
            _res = []
            for conv in self.convs:
                _res.append(conv(x))
            res = T.cat(_res, dim=1)
            return self.project(res)

    class DeepLabHead(nn.Sequential):
        def __init__(self, in_channels, num_classes, atrous_rates):
            super().__init__(
                ASPP(in_channels, atrous_rates),
                nn.Conv2d(ch, ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU(),
                nn.Conv2d(ch, num_classes, 1),
            )

    class FCNHead(nn.Sequential):
        def __init__(self, in_channels, channels):
            inter_channels = in_channels // 4
            layers = [
                nn.Conv2d(in_channels, inter_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(inter_channels),
                nn.ReLU(),
                nn.Dropout(p_drop),
                nn.Conv2d(inter_channels, channels, 1),
            ]
            super().__init__(*layers)

    class Backbone(nn.Module):
        # IntermediateLayerGetter(return_layers={"layer4": "out", "layer3": "aux"}) on a dilated net
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
            self.layer3 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(8),
                                        nn.ReLU(inplace=True))
            self.layer4 = nn.Sequential(nn.Conv2d(8, 12, 3, padding=4, dilation=4, bias=False),
                                        nn.BatchNorm2d(12), nn.ReLU(inplace=True))

        def forward(self, x):
            x = self.stem(x)
            aux = self.layer3(x)
            return {"out": self.layer4(aux), "aux": aux}

    class DeepLabV3(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Backbone()
            self.classifier = DeepLabHead(12, num_classes, atrous_rates)
            self.aux_classifier = FCNHead(8, num_classes)

        def forward(self, x):
            input_shape = x.shape[-2:]
            # contract: features is a dict of tensors
            features = self.backbone(x)

            result = {}
            x = features["out"]
            x = self.classifier(x)
            x = F.interpolate(x, size=input_shape, mode="bilinear", align_corners=False)
            result["out"] = x

            if self.aux_classifier is not None:
                x = features["aux"]
                x = self.aux_classifier(x)
                x = F.interpolate(x, size=input_shape, mode="bilinear", align_corners=False)
                result["aux"] = x

            return result

    return DeepLabV3()


def seg_criterion(T, inputs, target):
    # torchvision references/segmentation/train.py
    losses = {}
    for name, x in inputs.items():
        losses[name] = T.nn.functional.cross_entropy(x, target, ignore_index=255)

    if len(losses) == 1:
        return losses["out"]

    return losses["out"] + 0.5 * losses["aux"]


class ConfusionMatrix:
    # torchvision references/segmentation/utils.py
    def __init__(self, T, num_classes):
        self.T = T
        self.num_classes = num_classes
        self.mat = None

    def update(self, a, b):
        T, n = self.T, self.num_classes
        if self.mat is None:
            self.mat = T.zeros((n, n), dtype=T.int64, device=a.device)
        with T.inference_mode():
            k = (a >= 0) & (a < n)
            inds = n * a[k].to(T.int64) + b[k]
            self.mat += T.bincount(inds, minlength=n ** 2).reshape(n, n)

    def compute(self):
        torch_ = self.T
        h = self.mat.float()
        acc_global = torch_.diag(h).sum() / h.sum()
        acc = torch_.diag(h) / h.sum(1)
        iu = torch_.diag(h) / (h.sum(1) + h.sum(0) - torch_.diag(h))
        return acc_global, acc, iu


def train_deeplab(T, device, init, images, masks, steps=4):
    device = device_of(T, device)
    model = ported_model(T, deeplabv3, init, device)
    params_to_optimize = [
        {"params": [p for p in model.backbone.parameters() if p.requires_grad]},
        {"params": [p for p in model.classifier.parameters() if p.requires_grad]},
    ]
    params = [p for p in model.aux_classifier.parameters() if p.requires_grad]
    params_to_optimize.append({"params": params, "lr": 0.02 * 10})
    optimizer = T.optim.SGD(params_to_optimize, lr=0.02, momentum=0.9, weight_decay=1e-4)
    main_lr_scheduler = T.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=steps - 1, power=0.9)
    warmup_lr_scheduler = T.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=1)
    lr_scheduler = T.optim.lr_scheduler.SequentialLR(optimizer, schedulers=[warmup_lr_scheduler, main_lr_scheduler],
                                                     milestones=[1])
    image, target = T.from_numpy(images).to(device), T.from_numpy(masks).to(device)
    losses = []
    for step in range(steps):
        model.train()
        output = model(image)
        loss = seg_criterion(T, output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lr_scheduler.step()
        losses += [loss.item(), optimizer.param_groups[0]["lr"], optimizer.param_groups[2]["lr"]]
    model.eval()
    confmat = ConfusionMatrix(T, 3)
    with T.inference_mode():
        output = model(image)["out"]
        confmat.update(target.flatten(), output.argmax(1).flatten())
    acc_global, acc, iu = confmat.compute()
    return losses + as_list(confmat.mat.cpu()) + [acc_global.item(), iu.mean().item()], numpy_state(model)


def test_deeplabv3_aspp(device):
    rng = np.random.default_rng(2)
    images = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    masks = rng.integers(0, 3, (2, 16, 16))
    masks[:, :2] = 255  # an ignored border
    torch.manual_seed(0)
    run_both(train_deeplab, device, numpy_state(deeplabv3(torch)), images, masks)


# ---- 4. Neural style transfer (Gatys): Gram matrices, loss modules spliced in, LBFGS on the image ------

def style_cnn(T):
    # stands in for models.vgg19(...).features.eval(): Conv2d / ReLU / MaxPool2d children
    nn = T.nn
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
    )


def style_transfer(T):
    # pytorch/tutorials advanced_source/neural_style_tutorial.py
    nn = T.nn
    F = T.nn.functional
    optim = T.optim

    class ContentLoss(nn.Module):
        def __init__(self, target,):
            super(ContentLoss, self).__init__()
            # we 'detach' the target content from the tree used
            # to dynamically compute the gradient: this is a stated value,
            # not a variable. Otherwise the forward method of the criterion
            # will throw an error.
            self.target = target.detach()

        def forward(self, input):
            self.loss = F.mse_loss(input, self.target)
            return input

    def gram_matrix(input):
        a, b, c, d = input.size()  # a=batch size(=1)
        # b=number of feature maps
        # (c,d)=dimensions of a f. map (N=c*d)

        features = input.view(a * b, c * d)  # resize F_XL into \hat F_XL

        G = T.mm(features, features.t())  # compute the gram product

        # we 'normalize' the values of the gram matrix
        # by dividing by the number of element in each feature maps.
        return G.div(a * b * c * d)

    class StyleLoss(nn.Module):
        def __init__(self, target_feature):
            super(StyleLoss, self).__init__()
            self.target = gram_matrix(target_feature).detach()

        def forward(self, input):
            G = gram_matrix(input)
            self.loss = F.mse_loss(G, self.target)
            return input

    class Normalization(nn.Module):
        def __init__(self, mean, std):
            super(Normalization, self).__init__()
            # .view the mean and std to make them [C x 1 x 1] so that they can
            # directly work with image Tensor of shape [B x C x H x W].
            # B is batch size. C is number of channels. H is height and W is width.
            self.mean = T.tensor(mean).view(-1, 1, 1)
            self.std = T.tensor(std).view(-1, 1, 1)

        def forward(self, img):
            # normalize ``img``
            return (img - self.mean) / self.std

    content_layers_default = ['conv_4']
    style_layers_default = ['conv_1', 'conv_2', 'conv_3', 'conv_4']

    def get_style_model_and_losses(cnn, normalization_mean, normalization_std, style_img, content_img,
                                   content_layers=content_layers_default, style_layers=style_layers_default):
        # normalization module
        normalization = Normalization(normalization_mean, normalization_std)

        # just in order to have an iterable access to or list of content/style
        # losses
        content_losses = []
        style_losses = []

        # assuming that ``cnn`` is a ``nn.Sequential``, so we make a new ``nn.Sequential``
        # to put in modules that are supposed to be activated sequentially
        model = nn.Sequential(normalization)

        i = 0  # increment every time we see a conv
        for layer in cnn.children():
            if isinstance(layer, nn.Conv2d):
                i += 1
                name = 'conv_{}'.format(i)
            elif isinstance(layer, nn.ReLU):
                name = 'relu_{}'.format(i)
                # The in-place version doesn't play very nicely with the ``ContentLoss``
                # and ``StyleLoss`` we insert below. So we replace with out-of-place
                # ones here.
                layer = nn.ReLU(inplace=False)
            elif isinstance(layer, nn.MaxPool2d):
                name = 'pool_{}'.format(i)
            elif isinstance(layer, nn.BatchNorm2d):
                name = 'bn_{}'.format(i)
            else:
                raise RuntimeError('Unrecognized layer: {}'.format(layer.__class__.__name__))

            model.add_module(name, layer)

            if name in content_layers:
                # add content loss:
                target = model(content_img).detach()
                content_loss = ContentLoss(target)
                model.add_module("content_loss_{}".format(i), content_loss)
                content_losses.append(content_loss)

            if name in style_layers:
                # add style loss:
                target_feature = model(style_img).detach()
                style_loss = StyleLoss(target_feature)
                model.add_module("style_loss_{}".format(i), style_loss)
                style_losses.append(style_loss)

        # now we trim off the layers after the last content and style losses
        for i in range(len(model) - 1, -1, -1):
            if isinstance(model[i], ContentLoss) or isinstance(model[i], StyleLoss):
                break

        model = model[:(i + 1)]

        return model, style_losses, content_losses

    def get_input_optimizer(input_img):
        # this line to show that input is a parameter that requires a gradient
        optimizer = optim.LBFGS([input_img])
        return optimizer

    def run_style_transfer(cnn, normalization_mean, normalization_std, content_img, style_img, input_img,
                           num_steps=300, style_weight=1000000, content_weight=1, log=None):
        """Run the style transfer."""
        model, style_losses, content_losses = get_style_model_and_losses(
            cnn, normalization_mean, normalization_std, style_img, content_img)

        # We want to optimize the input and not the model parameters so we
        # update all the requires_grad fields accordingly
        input_img.requires_grad_(True)
        # We also put the model in evaluation mode, so that specific layers
        # such as dropout or batch normalization layers behave correctly.
        model.eval()
        model.requires_grad_(False)

        optimizer = get_input_optimizer(input_img)

        run = [0]
        while run[0] <= num_steps:

            def closure():
                # correct the values of updated input image
                with T.no_grad():
                    input_img.clamp_(0, 1)

                optimizer.zero_grad()
                model(input_img)
                style_score = 0
                content_score = 0

                for sl in style_losses:
                    style_score += sl.loss
                for cl in content_losses:
                    content_score += cl.loss

                style_score *= style_weight
                content_score *= content_weight

                loss = style_score + content_score
                loss.backward()

                run[0] += 1
                log.append([style_score.item(), content_score.item()])

                return style_score + content_score

            optimizer.step(closure)

        # a last correction...
        with T.no_grad():
            input_img.clamp_(0, 1)

        return input_img, model

    return run_style_transfer


def run_neural_style(T, device, init, content, style, num_steps):
    device = device_of(T, device)
    cnn = ported_model(T, style_cnn, init, device).eval()
    cnn_normalization_mean = T.tensor([0.485, 0.456, 0.406]).to(device)
    cnn_normalization_std = T.tensor([0.229, 0.224, 0.225]).to(device)
    content_img = T.from_numpy(content).to(device, T.float)
    style_img = T.from_numpy(style).to(device, T.float)
    input_img = content_img.clone()
    log = []
    output, model = style_transfer(T)(cnn, cnn_normalization_mean, cnn_normalization_std, content_img, style_img,
                                      input_img, num_steps=num_steps, log=log)
    assert output is input_img and not any(p.requires_grad for p in cnn.parameters())
    names = [name for name, _ in model.named_children()]
    assert names[0] == "0" and names[-1] == "style_loss_4" and "content_loss_4" in names
    return [v for pair in log for v in pair], {"image": output.detach().cpu().numpy(), **numpy_state(cnn)}


def test_neural_style_transfer_lbfgs(device):
    rng = np.random.default_rng(3)
    content = rng.random((1, 3, 12, 12)).astype(np.float32)
    style = rng.random((1, 3, 12, 12)).astype(np.float32)
    torch.manual_seed(0)
    init = numpy_state(style_cnn(torch))
    # num_steps=3: one optimizer.step(closure), which LBFGS runs for up to max_iter=20 evaluations, over
    # which the style loss falls ~600-fold (129 -> 0.21). float32 rounding of the first losses (~1e-7
    # relative) is carried into the last ones at the scale of the first: torch float32 vs torch float64
    # differ by 2e-5 relative there, and raygrad float32 by 1e-4 to 2e-4, while raygrad and torch agree to
    # 1e-13 in float64 (same LBFGS steps). So the losses are compared at float32 accuracy of the starting
    # loss (atol = 1e-6 * first loss), and the image and weights at RTOL / ATOL.
    want = run_neural_style(torch, "cpu", init, content, style, 3)
    got = run_neural_style(tensor, device, init, content, style, 3)
    np.testing.assert_allclose(got[0], want[0], rtol=RTOL, atol=1e-6 * want[0][0], err_msg="losses")
    assert got[1].keys() == want[1].keys()
    for k in want[1]:
        np.testing.assert_allclose(got[1][k], want[1][k], rtol=RTOL, atol=ATOL, err_msg=k)



# ---- 4b. Fast neural style (Johnson et al.): TransformerNet, InstanceNorm, bmm Gram matrices, Adam -------

def transformer_net(T, c=(4, 6, 8)):
    # pytorch/examples fast_neural_style/neural_style/transformer_net.py (32/64/128 channels scaled down,
    # two residual blocks instead of five)
    nn = T.nn

    class ConvLayer(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, stride):
            super(ConvLayer, self).__init__()
            reflection_padding = kernel_size // 2
            self.reflection_pad = nn.ReflectionPad2d(reflection_padding)
            self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

        def forward(self, x):
            out = self.reflection_pad(x)
            out = self.conv2d(out)
            return out

    class ResidualBlock(nn.Module):
        def __init__(self, channels):
            super(ResidualBlock, self).__init__()
            self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
            self.in1 = nn.InstanceNorm2d(channels, affine=True)
            self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
            self.in2 = nn.InstanceNorm2d(channels, affine=True)
            self.relu = nn.ReLU()

        def forward(self, x):
            residual = x
            out = self.relu(self.in1(self.conv1(x)))
            out = self.in2(self.conv2(out))
            out = out + residual
            return out

    class UpsampleConvLayer(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, stride, upsample=None):
            super(UpsampleConvLayer, self).__init__()
            self.upsample = upsample
            reflection_padding = kernel_size // 2
            self.reflection_pad = nn.ReflectionPad2d(reflection_padding)
            self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

        def forward(self, x):
            x_in = x
            if self.upsample:
                x_in = T.nn.functional.interpolate(x_in, mode='nearest', scale_factor=self.upsample)
            out = self.reflection_pad(x_in)
            out = self.conv2d(out)
            return out

    class TransformerNet(nn.Module):
        def __init__(self):
            super(TransformerNet, self).__init__()
            # Initial convolution layers
            self.conv1 = ConvLayer(3, c[0], kernel_size=9, stride=1)
            self.in1 = nn.InstanceNorm2d(c[0], affine=True)
            self.conv2 = ConvLayer(c[0], c[1], kernel_size=3, stride=2)
            self.in2 = nn.InstanceNorm2d(c[1], affine=True)
            self.conv3 = ConvLayer(c[1], c[2], kernel_size=3, stride=2)
            self.in3 = nn.InstanceNorm2d(c[2], affine=True)
            # Residual layers
            self.res1 = ResidualBlock(c[2])
            self.res2 = ResidualBlock(c[2])
            # Upsampling Layers
            self.deconv1 = UpsampleConvLayer(c[2], c[1], kernel_size=3, stride=1, upsample=2)
            self.in4 = nn.InstanceNorm2d(c[1], affine=True)
            self.deconv2 = UpsampleConvLayer(c[1], c[0], kernel_size=3, stride=1, upsample=2)
            self.in5 = nn.InstanceNorm2d(c[0], affine=True)
            self.deconv3 = ConvLayer(c[0], 3, kernel_size=9, stride=1)
            # Non-linearities
            self.relu = nn.ReLU()

        def forward(self, X):
            y = self.relu(self.in1(self.conv1(X)))
            y = self.relu(self.in2(self.conv2(y)))
            y = self.relu(self.in3(self.conv3(y)))
            y = self.res1(y)
            y = self.res2(y)
            y = self.relu(self.in4(self.deconv1(y)))
            y = self.relu(self.in5(self.deconv2(y)))
            y = self.deconv3(y)
            return y

    return TransformerNet()


def vgg_slices(T, features):
    # fast_neural_style/neural_style/vgg.py Vgg16, on style_cnn's layers (relu1_2, relu2_2, relu3_3)
    from collections import namedtuple
    nn = T.nn

    class Vgg16(nn.Module):
        def __init__(self, requires_grad=False):
            super(Vgg16, self).__init__()
            vgg_pretrained_features = features
            self.slice1 = nn.Sequential()
            self.slice2 = nn.Sequential()
            self.slice3 = nn.Sequential()
            for x in range(2):
                self.slice1.add_module(str(x), vgg_pretrained_features[x])
            for x in range(2, 5):
                self.slice2.add_module(str(x), vgg_pretrained_features[x])
            for x in range(5, 9):
                self.slice3.add_module(str(x), vgg_pretrained_features[x])
            if not requires_grad:
                for param in self.parameters():
                    param.requires_grad = False

        def forward(self, X):
            h = self.slice1(X)
            h_relu1_2 = h
            h = self.slice2(h)
            h_relu2_2 = h
            h = self.slice3(h)
            h_relu3_3 = h
            vgg_outputs = namedtuple("VggOutputs", ['relu1_2', 'relu2_2', 'relu3_3'])
            out = vgg_outputs(h_relu1_2, h_relu2_2, h_relu3_3)
            return out

    return Vgg16(requires_grad=False)


def gram_matrix_bmm(y):
    # fast_neural_style/neural_style/utils.py
    (b, ch, h, w) = y.size()
    features = y.view(b, ch, w * h)
    features_t = features.transpose(1, 2)
    gram = features.bmm(features_t) / (ch * h * w)
    return gram


def normalize_batch(batch):
    # normalize using imagenet mean and std
    mean = batch.new_tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
    std = batch.new_tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)
    batch = batch.div_(255.0)
    return (batch - mean) / std


def train_fast_style(T, device, init, vgg_init, images, style_image, content_weight=1e5, style_weight=1e10,
                     batch_size=2):
    device = device_of(T, device)
    transformer = ported_model(T, transformer_net, init, device)
    optimizer = T.optim.Adam(transformer.parameters(), 1e-3)
    mse_loss = T.nn.MSELoss()

    vgg = vgg_slices(T, ported_model(T, style_cnn, vgg_init, device)).to(device)
    # style_transform: ToTensor() then Lambda(lambda x: x.mul(255))
    style = T.from_numpy(style_image).mul(255)
    style = style.repeat(batch_size, 1, 1, 1).to(device)

    features_style = vgg(normalize_batch(style))
    gram_style = [gram_matrix_bmm(y) for y in features_style]

    data = T.utils.data.TensorDataset(T.from_numpy(images).mul(255), T.zeros(len(images)))
    train_loader = T.utils.data.DataLoader(data, batch_size=batch_size)
    out = []
    for e in range(2):
        transformer.train()
        agg_content_loss = 0.
        agg_style_loss = 0.
        count = 0
        for batch_id, (x, _) in enumerate(train_loader):
            n_batch = len(x)
            count += n_batch
            optimizer.zero_grad()

            x = x.to(device)
            y = transformer(x)

            y = normalize_batch(y)
            x = normalize_batch(x)

            features_y = vgg(y)
            features_x = vgg(x)

            content_loss = content_weight * mse_loss(features_y.relu2_2, features_x.relu2_2)

            style_loss = 0.
            for ft_y, gm_s in zip(features_y, gram_style):
                gm_y = gram_matrix_bmm(ft_y)
                style_loss += mse_loss(gm_y, gm_s[:n_batch, :, :])
            style_loss *= style_weight

            total_loss = content_loss + style_loss
            total_loss.backward()
            optimizer.step()

            agg_content_loss += content_loss.item()
            agg_style_loss += style_loss.item()
            out += [agg_content_loss / (batch_id + 1), agg_style_loss / (batch_id + 1)]
    # stylize: the eval-mode output, clamped to a uint8 image's range as utils.save_image does
    transformer.eval()
    with T.no_grad():
        output = transformer(T.from_numpy(images[:1]).mul(255).to(device)).cpu()
        img = output[0].clone().clamp(0, 255).numpy()
    return out + as_list(img), numpy_state(transformer)


def test_fast_neural_style(device):
    rng = np.random.default_rng(13)
    images = rng.random((4, 3, 16, 16)).astype(np.float32)
    style_image = rng.random((3, 16, 16)).astype(np.float32)
    torch.manual_seed(0)
    net = transformer_net(torch)
    # Every conv but the last feeds an InstanceNorm, which cancels its bias; so does each residual block's
    # last InstanceNorm bias (a per-channel constant that reaches the loss only through a conv and the next
    # InstanceNorm). Their gradients are rounding noise that Adam turns into full steps of either sign, so
    # those biases are left out.
    noisy = {name + ".conv2d.bias" for name, m in net.named_modules()
             if hasattr(m, "conv2d") and name != "deconv3"} | {"res1.in2.bias", "res2.in2.bias"}
    assert len(noisy) == 11
    run_both(train_fast_style, device, numpy_state(net), numpy_state(style_cnn(torch)), images, style_image,
             state_view=lambda state: {k: v for k, v in state.items() if k not in noisy})

# ---- 5. ESPCN super-resolution: PixelShuffle, PixelUnshuffle, antialiased bicubic LR, PSNR ------------

def espcn(T, scale_factor=2, num_channels=1, unshuffle=False):
    # yjn870/ESPCN-pytorch models.py (64/32 channels scaled down to 8/6); `unshuffle` puts a space-to-depth
    # input stage in front, as xinntao/Real-ESRGAN's RRDBNet does for its x2 model (basicsr arch_util).
    nn = T.nn

    class ESPCN(nn.Module):
        def __init__(self, scale_factor, num_channels=1):
            super(ESPCN, self).__init__()
            self.unshuffle = nn.PixelUnshuffle(2) if unshuffle else nn.Identity()
            cin = num_channels * 4 if unshuffle else num_channels
            cout = scale_factor * 2 if unshuffle else scale_factor
            self.first_part = nn.Sequential(
                nn.Conv2d(cin, 8, kernel_size=5, padding=5 // 2),
                nn.Tanh(),
                nn.Conv2d(8, 6, kernel_size=3, padding=3 // 2),
                nn.Tanh(),
            )
            self.last_part = nn.Sequential(
                nn.Conv2d(6, num_channels * (cout ** 2), kernel_size=3, padding=3 // 2),
                nn.PixelShuffle(cout)
            )

            self._initialize_weights()

        def _initialize_weights(self):
            # The reference initialises `m.weight.data` and sizes it by `m.weight.data[0][0].numel()`: raygrad's
            # .data is the raw array (README, Differences), so the parameter itself here.
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    if m.in_channels == 6:
                        nn.init.normal_(m.weight, mean=0.0, std=0.001)
                        nn.init.zeros_(m.bias)
                    else:
                        nn.init.normal_(m.weight, mean=0.0,
                                        std=math.sqrt(2 / (m.out_channels * m.weight[0][0].numel())))
                        nn.init.zeros_(m.bias)

        def forward(self, x):
            x = self.unshuffle(x)
            x = self.first_part(x)
            x = self.last_part(x)
            return x

    return ESPCN(scale_factor, num_channels)


def pixel_unshuffle_basicsr(T, x, scale):
    """Pixel unshuffle (xinntao/BasicSR basicsr/archs/arch_util.py)."""
    b, c, hh, hw = x.size()
    out_channel = c * (scale ** 2)
    assert hh % scale == 0 and hw % scale == 0
    h = hh // scale
    w = hw // scale
    x_view = x.view(b, c, h, scale, w, scale)
    return x_view.permute(0, 1, 3, 5, 2, 4).reshape(b, out_channel, h, w)


def calc_psnr(T, img1, img2):
    return 10. * T.log10(1. / T.mean((img1 - img2) ** 2))


def train_espcn(T, device, init, hr_images, unshuffle, epochs=4, scale=2):
    device = device_of(T, device)
    model = ported_model(T, lambda T: espcn(T, scale, unshuffle=unshuffle), init, device)
    F = T.nn.functional
    criterion = T.nn.MSELoss()
    optimizer = T.optim.Adam([
        {'params': model.first_part.parameters()},
        {'params': model.last_part.parameters(), 'lr': 1e-2 * 0.1}
    ], lr=1e-2)
    scheduler = T.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 3], gamma=0.5)
    hr = T.from_numpy(hr_images).to(device)
    # the LR inputs: PIL's BICUBIC resize is antialiased; on tensors, torchvision's resize(antialias=True)
    lr = F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", align_corners=False, antialias=True)
    lr = lr.clamp(0.0, 1.0)
    out = as_list(lr.cpu())
    for epoch in range(epochs):
        model.train()
        preds = model(lr)
        loss = criterion(preds, hr)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        model.eval()
        with T.no_grad():
            preds = model(lr).clamp(0.0, 1.0)
        out += [loss.item(), calc_psnr(T, hr, preds).item()]
    shuffled = F.pixel_shuffle(F.pixel_unshuffle(hr, 2), 2)
    assert T.equal(shuffled, hr)
    assert T.equal(F.pixel_unshuffle(hr, 2), pixel_unshuffle_basicsr(T, hr, 2))
    return out + as_list(F.pixel_unshuffle(hr, 4).cpu()), numpy_state(model)


@pytest.mark.parametrize("unshuffle", [False, True])
def test_espcn_super_resolution(device, unshuffle):
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:16, 0:16] / 16.0
    hr = 0.5 + 0.3 * np.sin(6 * xx + rng.random((3, 1, 1, 1)) * 3) * np.cos(4 * yy)
    hr = (hr + 0.05 * rng.standard_normal(hr.shape)).clip(0, 1).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_espcn, device, numpy_state(espcn(torch, 2, unshuffle=unshuffle)), hr, unshuffle)


# ---- 6. RoIAlign and RoIPool in plain torch, a Fast R-CNN box head --------------------------------------

def _bilinear_interpolate(T, input, roi_batch_ind, y, x, ymask, xmask):
    # torchvision/ops/roi_align.py: the pure-Python roi_align, "transcribed directly off of the roi_align CUDA
    # kernel". input [N, C, H, W], roi_batch_ind [K], y [K, PH, IY], x [K, PW, IX], ymask [K, IY], xmask [K, IX]
    _, channels, height, width = input.size()

    # deal with inverse element out of feature map boundary
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low = y.int()
    x_low = x.int()
    y_high = T.where(y_low >= height - 1, height - 1, y_low + 1)
    y_low = T.where(y_low >= height - 1, height - 1, y_low)
    y = T.where(y_low >= height - 1, y.to(input.dtype), y)

    x_high = T.where(x_low >= width - 1, width - 1, x_low + 1)
    x_low = T.where(x_low >= width - 1, width - 1, x_low)
    x = T.where(x_low >= width - 1, x.to(input.dtype), x)

    ly = y - y_low
    lx = x - x_low
    hy = 1.0 - ly
    hx = 1.0 - lx

    # do bilinear interpolation, but respect the masking!
    def masked_index(y, x):  # y [K, PH, IY], x [K, PW, IX]
        if ymask is not None:
            assert xmask is not None
            y = T.where(ymask[:, None, :], y, 0)
            x = T.where(xmask[:, None, :], x, 0)
        return input[
            roi_batch_ind[:, None, None, None, None, None],
            T.arange(channels, device=input.device)[None, :, None, None, None, None],
            y[:, None, :, None, :, None],  # prev [K, PH, IY]
            x[:, None, None, :, None, :],  # prev [K, PW, IX]
        ]  # [K, C, PH, PW, IY, IX]

    v1 = masked_index(y_low, x_low)
    v2 = masked_index(y_low, x_high)
    v3 = masked_index(y_high, x_low)
    v4 = masked_index(y_high, x_high)

    # all ws preemptively [K, C, PH, PW, IY, IX]
    def outer_prod(y, x):
        return y[:, None, :, None, :, None] * x[:, None, None, :, None, :]

    w1 = outer_prod(hy, hx)
    w2 = outer_prod(hy, lx)
    w3 = outer_prod(ly, hx)
    w4 = outer_prod(ly, lx)

    val = w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4
    return val


def _roi_align(T, input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    orig_dtype = input.dtype

    _, _, height, width = input.size()

    ph = T.arange(pooled_height, device=input.device)  # [PH]
    pw = T.arange(pooled_width, device=input.device)  # [PW]

    # input: [N, C, H, W]
    # rois: [K, 5]

    roi_batch_ind = rois[:, 0].int()  # [K]
    offset = 0.5 if aligned else 0.0
    roi_start_w = rois[:, 1] * spatial_scale - offset  # [K]
    roi_start_h = rois[:, 2] * spatial_scale - offset  # [K]
    roi_end_w = rois[:, 3] * spatial_scale - offset  # [K]
    roi_end_h = rois[:, 4] * spatial_scale - offset  # [K]

    roi_width = roi_end_w - roi_start_w  # [K]
    roi_height = roi_end_h - roi_start_h  # [K]
    if not aligned:
        roi_width = T.clamp(roi_width, min=1.0)  # [K]
        roi_height = T.clamp(roi_height, min=1.0)  # [K]

    bin_size_h = roi_height / pooled_height  # [K]
    bin_size_w = roi_width / pooled_width  # [K]

    exact_sampling = sampling_ratio > 0

    roi_bin_grid_h = sampling_ratio if exact_sampling else T.ceil(roi_height / pooled_height)  # scalar or [K]
    roi_bin_grid_w = sampling_ratio if exact_sampling else T.ceil(roi_width / pooled_width)  # scalar or [K]

    if exact_sampling:
        count = max(roi_bin_grid_h * roi_bin_grid_w, 1)  # scalar
        iy = T.arange(roi_bin_grid_h, device=input.device)  # [IY]
        ix = T.arange(roi_bin_grid_w, device=input.device)  # [IX]
        ymask = None
        xmask = None
    else:
        count = T.clamp(roi_bin_grid_h * roi_bin_grid_w, min=1)  # [K]
        # When doing adaptive sampling, the number of samples we need to do
        # is data-dependent based on how big the ROIs are.  This is a bit
        # awkward because first-class dims can't actually handle this.
        # So instead, we inefficiently suppose that we needed to sample ALL
        # the points and mask out things that turned out to be unnecessary
        iy = T.arange(height, device=input.device)  # [IY]
        ix = T.arange(width, device=input.device)  # [IX]
        ymask = iy[None, :] < roi_bin_grid_h[:, None]  # [K, IY]
        xmask = ix[None, :] < roi_bin_grid_w[:, None]  # [K, IX]

    def from_K(t):
        return t[:, None, None]

    y = (
        from_K(roi_start_h)
        + ph[None, :, None] * from_K(bin_size_h)
        + (iy[None, None, :] + 0.5).to(input.dtype) * from_K(bin_size_h / roi_bin_grid_h)
    )  # [K, PH, IY]
    x = (
        from_K(roi_start_w)
        + pw[None, :, None] * from_K(bin_size_w)
        + (ix[None, None, :] + 0.5).to(input.dtype) * from_K(bin_size_w / roi_bin_grid_w)
    )  # [K, PW, IX]
    val = _bilinear_interpolate(T, input, roi_batch_ind, y, x, ymask, xmask)  # [K, C, PH, PW, IY, IX]

    # Mask out samples that weren't actually adaptively needed
    if not exact_sampling:
        val = T.where(ymask[:, None, None, None, :, None], val, 0)
        val = T.where(xmask[:, None, None, None, None, :], val, 0)

    output = val.sum((-1, -2))  # remove IY, IX ~> [K, C, PH, PW]
    if isinstance(count, T.Tensor):
        output /= count[:, None, None, None]
    else:
        output /= count

    output = output.to(orig_dtype)

    return output


def roi_pool_py(T, features, rois, pooled_height, pooled_width, spatial_scale):
    # longcw/faster_rcnn_pytorch faster_rcnn/roi_pooling/modules/roi_pool_py.py. It reads the boxes with
    # `roi[1:].data.cpu().numpy()` (raygrad's .data is the raw array, README Differences: .detach() here), and
    # was written when torch.max kept the reduced dim, so its second max is over dim 1 here.
    batch_size, num_channels, data_height, data_width = features.size()
    num_rois = rois.size()[0]
    outputs = T.zeros(num_rois, num_channels, pooled_height, pooled_width, device=features.device)

    for roi_ind, roi in enumerate(rois):
        batch_ind = int(roi[0].item())
        roi_start_w, roi_start_h, roi_end_w, roi_end_h = np.round(
            roi[1:].detach().cpu().numpy() * spatial_scale).astype(int)
        roi_width = max(roi_end_w - roi_start_w + 1, 1)
        roi_height = max(roi_end_h - roi_start_h + 1, 1)
        bin_size_w = float(roi_width) / float(pooled_width)
        bin_size_h = float(roi_height) / float(pooled_height)

        for ph in range(pooled_height):
            hstart = int(np.floor(ph * bin_size_h))
            hend = int(np.ceil((ph + 1) * bin_size_h))
            hstart = min(data_height, max(0, hstart + roi_start_h))
            hend = min(data_height, max(0, hend + roi_start_h))
            for pw in range(pooled_width):
                wstart = int(np.floor(pw * bin_size_w))
                wend = int(np.ceil((pw + 1) * bin_size_w))
                wstart = min(data_width, max(0, wstart + roi_start_w))
                wend = min(data_width, max(0, wend + roi_start_w))

                is_empty = (hend <= hstart) or (wend <= wstart)
                if is_empty:
                    outputs[roi_ind, :, ph, pw] = 0
                else:
                    data = features[batch_ind]
                    outputs[roi_ind, :, ph, pw] = T.max(
                        T.max(data[:, hstart:hend, wstart:wend], 1)[0], 1)[0].view(-1)

    return outputs


def fast_rcnn(T, num_classes=3, ch=6, pooled=2):
    nn = T.nn

    class FastRCNN(nn.Module):
        # backbone -> RoIAlign (aligned, sampling_ratio=2) + RoIAlign (adaptive) + RoIPool -> TwoMLPHead ->
        # FastRCNNPredictor (torchvision/models/detection/faster_rcnn.py)
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(ch, ch, 3, stride=2, padding=1), nn.ReLU(inplace=True))
            self.fc6 = nn.Linear(3 * ch * pooled * pooled, 16)
            self.fc7 = nn.Linear(16, 16)
            self.cls_score = nn.Linear(16, num_classes)
            self.bbox_pred = nn.Linear(16, num_classes * 4)

        def forward(self, images, rois):
            features = self.body(images)
            a = _roi_align(T, features, rois, 0.5, pooled, pooled, sampling_ratio=2, aligned=True)
            b = _roi_align(T, features, rois, 0.5, pooled, pooled, sampling_ratio=-1, aligned=False)
            c = roi_pool_py(T, features, rois, pooled, pooled, 0.5)
            x = T.cat([a, b, c], dim=1).flatten(start_dim=1)
            x = T.nn.functional.relu(self.fc6(x))
            x = T.nn.functional.relu(self.fc7(x))
            return self.cls_score(x), self.bbox_pred(x)

    return FastRCNN()


def fastrcnn_loss(T, class_logits, box_regression, labels, regression_targets):
    # torchvision/models/detection/roi_heads.py
    F = T.nn.functional
    labels = T.cat(labels, dim=0)
    regression_targets = T.cat(regression_targets, dim=0)

    classification_loss = F.cross_entropy(class_logits, labels)

    # get indices that correspond to the regression targets for
    # the corresponding ground truth labels, to be used with
    # advanced indexing
    sampled_pos_inds_subset = T.where(labels > 0)[0]
    labels_pos = labels[sampled_pos_inds_subset]
    N, num_classes = class_logits.shape
    box_regression = box_regression.reshape(N, box_regression.size(-1) // 4, 4)

    box_loss = F.smooth_l1_loss(
        box_regression[sampled_pos_inds_subset, labels_pos],
        regression_targets[sampled_pos_inds_subset],
        beta=1 / 9,
        reduction="sum",
    )
    box_loss = box_loss / labels.numel()

    return classification_loss, box_loss


def train_fast_rcnn(T, device, init, images, rois, labels, targets, steps=3):
    device = device_of(T, device)
    model = ported_model(T, fast_rcnn, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    images, rois = T.from_numpy(images).to(device), T.from_numpy(rois).to(device)
    labels = [T.from_numpy(v).to(device) for v in labels]
    targets = [T.from_numpy(v).to(device) for v in targets]
    losses = []
    for step in range(steps):
        class_logits, box_regression = model(images, rois)
        loss_classifier, loss_box_reg = fastrcnn_loss(T, class_logits, box_regression, labels, targets)
        loss = loss_classifier + loss_box_reg
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [loss_classifier.item(), loss_box_reg.item()]
    # the three poolings themselves, and RoIAlign's gradient w.r.t. the feature map
    feats = T.from_numpy(np.arange(2 * 1 * 7 * 9, dtype=np.float32).reshape(2, 1, 7, 9) % 11).to(device)
    feats.requires_grad_(True)
    pooled = [_roi_align(T, feats, rois, 0.5, 3, 2, 2, True), _roi_align(T, feats, rois, 0.5, 3, 2, -1, False),
              roi_pool_py(T, feats, rois, 3, 2, 0.5)]
    (pooled[0].sum() + 2 * pooled[1].sum()).backward()
    return losses + sum((as_list(p.detach().cpu()) for p in pooled), []) + as_list(feats.grad.cpu()), \
        numpy_state(model)


def test_fast_rcnn_roi_align_roi_pool(device):
    rng = np.random.default_rng(5)
    images = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    # [batch_index, x1, y1, x2, y2] in image coordinates; the last box leaves the image
    rois = np.array([[0, 1.3, 2.1, 9.7, 12.4], [0, 4.2, 0.6, 15.1, 6.3], [1, 0.4, 0.2, 5.9, 7.7],
                     [1, 7.7, 3.1, 14.2, 15.6], [1, 10.3, 9.6, 18.5, 17.2]], np.float32)
    labels = [np.array([1, 0]), np.array([2, 0, 1])]
    targets = [rng.standard_normal((2, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)]
    torch.manual_seed(0)
    run_both(train_fast_rcnn, device, numpy_state(fast_rcnn(torch)), images, rois, labels, targets)


# ---- 7. RPN targets: anchors, IoU matrix, Matcher (low-quality matches), balanced sampling, box coder --

def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(T, boxes1, boxes2):
    # torchvision/ops/boxes.py (_box_inter_union + box_iou)
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)

    lt = T.max(boxes1[:, None, :2], boxes2[:, :2])  # [N,M,2]
    rb = T.min(boxes1[:, None, 2:], boxes2[:, 2:])  # [N,M,2]

    wh = (rb - lt).clamp(min=0)  # [N,M,2]
    inter = wh[:, :, 0] * wh[:, :, 1]  # [N,M]

    union = area1[:, None] + area2 - inter
    iou = inter / union
    return iou


def clip_boxes_to_image(T, boxes, size):
    dim = boxes.dim()
    boxes_x = boxes[..., 0::2]
    boxes_y = boxes[..., 1::2]
    height, width = size
    boxes_x = boxes_x.clamp(min=0, max=width)
    boxes_y = boxes_y.clamp(min=0, max=height)
    clipped_boxes = T.stack((boxes_x, boxes_y), dim=dim)
    return clipped_boxes.reshape(boxes.shape)


def remove_small_boxes(T, boxes, min_size):
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (ws >= min_size) & (hs >= min_size)
    keep = T.where(keep)[0]
    return keep


def anchor_generator(T, sizes=(4, 8), aspect_ratios=(0.5, 1.0, 2.0)):
    # torchvision/models/detection/anchor_utils.py AnchorGenerator, one feature map
    def generate_anchors(scales, aspect_ratios, dtype=T.float32, device="cpu"):
        scales = T.as_tensor(scales, dtype=dtype, device=device)
        aspect_ratios = T.as_tensor(aspect_ratios, dtype=dtype, device=device)
        h_ratios = T.sqrt(aspect_ratios)
        w_ratios = 1 / h_ratios

        ws = (w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (h_ratios[:, None] * scales[None, :]).view(-1)

        base_anchors = T.stack([-ws, -hs, ws, hs], dim=1) / 2
        return base_anchors.round()

    def grid_anchors(grid_size, stride, base_anchors):
        grid_height, grid_width = grid_size
        stride_height, stride_width = stride
        device = base_anchors.device

        # For output anchor, compute [x_center, y_center, x_center, y_center]
        shifts_x = T.arange(0, grid_width, dtype=T.int32, device=device) * stride_width
        shifts_y = T.arange(0, grid_height, dtype=T.int32, device=device) * stride_height
        shift_y, shift_x = T.meshgrid(shifts_y, shifts_x, indexing="ij")
        shift_x = shift_x.reshape(-1)
        shift_y = shift_y.reshape(-1)
        shifts = T.stack((shift_x, shift_y, shift_x, shift_y), dim=1)

        # For every (base anchor, output anchor) pair,
        # offset each zero-centered base anchor by the center of the output anchor.
        return (shifts.view(-1, 1, 4) + base_anchors.view(1, -1, 4)).reshape(-1, 4)

    def __call__(image_size, grid_size, device):
        stride = [T.empty((), dtype=T.int64, device=device).fill_(image_size[0] // grid_size[0]),
                  T.empty((), dtype=T.int64, device=device).fill_(image_size[1] // grid_size[1])]
        base = generate_anchors(sizes, aspect_ratios, device=device)
        return grid_anchors(grid_size, stride, base)

    return __call__


class Matcher:
    # torchvision/models/detection/_utils.py
    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, T, high_threshold, low_threshold, allow_low_quality_matches=False):
        self.T = T
        self.BELOW_LOW_THRESHOLD = -1
        self.BETWEEN_THRESHOLDS = -2
        assert low_threshold <= high_threshold
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix):
        # match_quality_matrix is M (gt) x N (predicted)
        # Max over gt elements (dim 0) to find best gt candidate for each prediction
        matched_vals, matches = match_quality_matrix.max(dim=0)
        if self.allow_low_quality_matches:
            all_matches = matches.clone()
        else:
            all_matches = None

        # Assign candidate matches with low quality to negative (unassigned) values
        below_low_threshold = matched_vals < self.low_threshold
        between_thresholds = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches[below_low_threshold] = self.BELOW_LOW_THRESHOLD
        matches[between_thresholds] = self.BETWEEN_THRESHOLDS

        if self.allow_low_quality_matches:
            self.set_low_quality_matches_(matches, all_matches, match_quality_matrix)

        return matches

    def set_low_quality_matches_(self, matches, all_matches, match_quality_matrix):
        # For each gt, find the prediction with which it has the highest quality
        highest_quality_foreach_gt, _ = match_quality_matrix.max(dim=1)
        # Find the highest quality match available, even if it is low, including ties
        gt_pred_pairs_of_highest_quality = self.T.where(match_quality_matrix == highest_quality_foreach_gt[:, None])
        pred_inds_to_update = gt_pred_pairs_of_highest_quality[1]
        matches[pred_inds_to_update] = all_matches[pred_inds_to_update]


class BalancedPositiveNegativeSampler:
    # torchvision/models/detection/_utils.py; torch.randperm is replaced by `randperm`, a NumPy stream passed
    # in (the two libraries draw different permutations).
    def __init__(self, T, batch_size_per_image, positive_fraction, randperm):
        self.T = T
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.randperm = randperm

    def __call__(self, matched_idxs):
        T = self.T
        pos_idx = []
        neg_idx = []
        for matched_idxs_per_image in matched_idxs:
            positive = T.where(matched_idxs_per_image >= 1)[0]
            negative = T.where(matched_idxs_per_image == 0)[0]

            num_pos = int(self.batch_size_per_image * self.positive_fraction)
            # protect against not enough positive examples
            num_pos = min(positive.numel(), num_pos)
            num_neg = self.batch_size_per_image - num_pos
            # protect against not enough negative examples
            num_neg = min(negative.numel(), num_neg)

            # randomly select positive and negative examples
            perm1 = self.randperm(positive.numel(), device=positive.device)[:num_pos]
            perm2 = self.randperm(negative.numel(), device=negative.device)[:num_neg]

            pos_idx_per_image = positive[perm1]
            neg_idx_per_image = negative[perm2]

            # create binary mask from indices
            pos_idx_per_image_mask = T.zeros_like(matched_idxs_per_image, dtype=T.uint8)
            neg_idx_per_image_mask = T.zeros_like(matched_idxs_per_image, dtype=T.uint8)

            pos_idx_per_image_mask[pos_idx_per_image] = 1
            neg_idx_per_image_mask[neg_idx_per_image] = 1

            pos_idx.append(pos_idx_per_image_mask)
            neg_idx.append(neg_idx_per_image_mask)

        return pos_idx, neg_idx


def encode_boxes(T, reference_boxes, proposals, weights):
    # torchvision/models/detection/_utils.py
    wx = weights[0]
    wy = weights[1]
    ww = weights[2]
    wh = weights[3]

    proposals_x1 = proposals[:, 0].unsqueeze(1)
    proposals_y1 = proposals[:, 1].unsqueeze(1)
    proposals_x2 = proposals[:, 2].unsqueeze(1)
    proposals_y2 = proposals[:, 3].unsqueeze(1)

    reference_boxes_x1 = reference_boxes[:, 0].unsqueeze(1)
    reference_boxes_y1 = reference_boxes[:, 1].unsqueeze(1)
    reference_boxes_x2 = reference_boxes[:, 2].unsqueeze(1)
    reference_boxes_y2 = reference_boxes[:, 3].unsqueeze(1)

    # implementation starts here
    ex_widths = proposals_x2 - proposals_x1
    ex_heights = proposals_y2 - proposals_y1
    ex_ctr_x = proposals_x1 + 0.5 * ex_widths
    ex_ctr_y = proposals_y1 + 0.5 * ex_heights

    gt_widths = reference_boxes_x2 - reference_boxes_x1
    gt_heights = reference_boxes_y2 - reference_boxes_y1
    gt_ctr_x = reference_boxes_x1 + 0.5 * gt_widths
    gt_ctr_y = reference_boxes_y1 + 0.5 * gt_heights

    targets_dx = wx * (gt_ctr_x - ex_ctr_x) / ex_widths
    targets_dy = wy * (gt_ctr_y - ex_ctr_y) / ex_heights
    targets_dw = ww * T.log(gt_widths / ex_widths)
    targets_dh = wh * T.log(gt_heights / ex_heights)

    targets = T.cat((targets_dx, targets_dy, targets_dw, targets_dh), dim=1)
    return targets


class BoxCoder:
    def __init__(self, T, weights, bbox_xform_clip=math.log(1000.0 / 16)):
        self.T = T
        self.weights = weights
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, reference_boxes, proposals):
        boxes_per_image = [len(b) for b in reference_boxes]
        reference_boxes = self.T.cat(reference_boxes, dim=0)
        proposals = self.T.cat(proposals, dim=0)
        targets = self.encode_single(reference_boxes, proposals)
        return targets.split(boxes_per_image, 0)

    def encode_single(self, reference_boxes, proposals):
        dtype = reference_boxes.dtype
        device = reference_boxes.device
        weights = self.T.as_tensor(self.weights, dtype=dtype, device=device)
        targets = encode_boxes(self.T, reference_boxes, proposals, weights)

        return targets

    def decode(self, rel_codes, boxes):
        concat_boxes = self.T.cat(boxes, dim=0)
        box_sum = 0
        for val in [b.size(0) for b in boxes]:
            box_sum += val
        if box_sum > 0:
            rel_codes = rel_codes.reshape(box_sum, -1)
        pred_boxes = self.decode_single(rel_codes, concat_boxes)
        if box_sum > 0:
            pred_boxes = pred_boxes.reshape(box_sum, -1, 4)
        return pred_boxes

    def decode_single(self, rel_codes, boxes):
        T = self.T
        boxes = boxes.to(rel_codes.dtype)

        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights

        wx, wy, ww, wh = self.weights
        dx = rel_codes[:, 0::4] / wx
        dy = rel_codes[:, 1::4] / wy
        dw = rel_codes[:, 2::4] / ww
        dh = rel_codes[:, 3::4] / wh

        # Prevent sending too large values into torch.exp()
        dw = T.clamp(dw, max=self.bbox_xform_clip)
        dh = T.clamp(dh, max=self.bbox_xform_clip)

        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = T.exp(dw) * widths[:, None]
        pred_h = T.exp(dh) * heights[:, None]

        # Distance from center to box's corner.
        c_to_c_h = T.tensor(0.5, dtype=pred_ctr_y.dtype, device=pred_h.device) * pred_h
        c_to_c_w = T.tensor(0.5, dtype=pred_ctr_x.dtype, device=pred_w.device) * pred_w

        pred_boxes1 = pred_ctr_x - c_to_c_w
        pred_boxes2 = pred_ctr_y - c_to_c_h
        pred_boxes3 = pred_ctr_x + c_to_c_w
        pred_boxes4 = pred_ctr_y + c_to_c_h
        pred_boxes = T.stack((pred_boxes1, pred_boxes2, pred_boxes3, pred_boxes4), dim=2).flatten(1)
        return pred_boxes


def rpn_head(T, in_channels=3, num_anchors=6):
    nn = T.nn
    F = T.nn.functional

    class RPNHead(nn.Module):
        # torchvision/models/detection/rpn.py (conv_depth=1), with a stride-4 stem as the backbone
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(in_channels, 6, 3, stride=2, padding=1), nn.ReLU(),
                                          nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.ReLU())
            self.conv = nn.Sequential(nn.Conv2d(6, 6, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True))
            self.cls_logits = nn.Conv2d(6, num_anchors, kernel_size=1, stride=1)
            self.bbox_pred = nn.Conv2d(6, num_anchors * 4, kernel_size=1, stride=1)

            for layer in self.modules():
                if isinstance(layer, nn.Conv2d):
                    T.nn.init.normal_(layer.weight, std=0.01)
                    if layer.bias is not None:
                        T.nn.init.constant_(layer.bias, 0)

        def forward(self, x):
            t = self.conv(self.backbone(x))
            return self.cls_logits(t), self.bbox_pred(t)

    return RPNHead()


def permute_and_flatten(layer, N, A, C, H, W):
    layer = layer.view(N, -1, C, H, W)
    layer = layer.permute(0, 3, 4, 1, 2)
    layer = layer.reshape(N, -1, C)
    return layer


def train_rpn(T, device, init, images, gt_boxes, perm_seed, steps=3):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, rpn_head, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    perm_rng = np.random.default_rng(perm_seed)
    randperm = lambda n, device: T.from_numpy(perm_rng.permutation(n)).to(device)  # noqa: E731
    matcher = Matcher(T, 0.5, 0.3, allow_low_quality_matches=True)
    sampler = BalancedPositiveNegativeSampler(T, 16, 0.5, randperm)
    box_coder = BoxCoder(T, weights=(1.0, 1.0, 1.0, 1.0))
    images = T.from_numpy(images).to(device)
    gt_boxes = [T.from_numpy(b).to(device) for b in gt_boxes]
    image_size = images.shape[-2:]
    anchors_one = anchor_generator(T)(image_size, (4, 4), device)
    anchors = [anchors_one for _ in gt_boxes]
    out = as_list(anchors_one.cpu())

    # RegionProposalNetwork.assign_targets_to_anchors
    labels, matched_gt_boxes = [], []
    for anchors_per_image, gt in zip(anchors, gt_boxes):
        match_quality_matrix = box_iou(T, gt, anchors_per_image)
        matched_idxs = matcher(match_quality_matrix)
        # get the targets corresponding GT for each proposal
        # NB: need to clamp the indices because we can have a single
        # GT in the image, and matched_idxs can be -2, which goes
        # out of bounds
        matched_gt_boxes_per_image = gt[matched_idxs.clamp(min=0)]

        labels_per_image = matched_idxs >= 0
        labels_per_image = labels_per_image.to(dtype=T.float32)

        # Background (negative examples)
        bg_indices = matched_idxs == matcher.BELOW_LOW_THRESHOLD
        labels_per_image[bg_indices] = 0.0

        # discard indices that are between thresholds
        inds_to_discard = matched_idxs == matcher.BETWEEN_THRESHOLDS
        labels_per_image[inds_to_discard] = -1.0

        labels.append(labels_per_image)
        matched_gt_boxes.append(matched_gt_boxes_per_image)
        out += as_list(matched_idxs.cpu())
    regression_targets = box_coder.encode(matched_gt_boxes, anchors)

    losses = []
    for step in range(steps):
        objectness, pred_bbox_deltas = model(images)
        N, AxC, H, W = objectness.shape
        Ax4 = pred_bbox_deltas.shape[1]
        A = Ax4 // 4
        C = AxC // A
        # concat_box_prediction_layers
        objectness = permute_and_flatten(objectness, N, A, C, H, W).flatten(0, -2)
        pred_bbox_deltas = permute_and_flatten(pred_bbox_deltas, N, A, 4, H, W).reshape(-1, 4)

        # RegionProposalNetwork.compute_loss
        sampled_pos_inds, sampled_neg_inds = sampler(labels)
        sampled_pos_inds = T.where(T.cat(sampled_pos_inds, dim=0))[0]
        sampled_neg_inds = T.where(T.cat(sampled_neg_inds, dim=0))[0]

        sampled_inds = T.cat([sampled_pos_inds, sampled_neg_inds], dim=0)

        objectness = objectness.flatten()

        cat_labels = T.cat(labels, dim=0)
        cat_targets = T.cat(regression_targets, dim=0)

        box_loss = F.smooth_l1_loss(
            pred_bbox_deltas[sampled_pos_inds],
            cat_targets[sampled_pos_inds],
            beta=1 / 9,
            reduction="sum",
        ) / (sampled_inds.numel())

        objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled_inds], cat_labels[sampled_inds])
        loss = objectness_loss + box_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [objectness_loss.item(), box_loss.item(), sampled_pos_inds.numel()]

    # RegionProposalNetwork.forward: decode the proposals, then filter_proposals' clip / small-box removal
    with T.no_grad():
        objectness, pred_bbox_deltas = model(images)
        pred_bbox_deltas = permute_and_flatten(pred_bbox_deltas, N, A, 4, H, W).reshape(-1, 4)
        proposals = box_coder.decode(pred_bbox_deltas.detach(), anchors).view(N, -1, 4)
        boxes = clip_boxes_to_image(T, proposals[0], image_size)
        keep = remove_small_boxes(T, boxes, 1e-3)
        scores = permute_and_flatten(objectness, N, A, 1, H, W)[0, :, 0].sigmoid()
        top = scores[keep].topk(5)
        roundtrip = box_coder.decode_single(box_coder.encode_single(gt_boxes[0], anchors_one[:3]), anchors_one[:3])
    out += as_list(T.cat(regression_targets).cpu()) + as_list(boxes[keep].cpu()) + as_list(top.values.cpu())
    out += as_list(top.indices.cpu()) + as_list(roundtrip.cpu())
    return losses + out, numpy_state(model)


def test_rpn_target_assignment(device):
    rng = np.random.default_rng(6)
    images = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)

    def boxes(n):
        xy = rng.uniform(0, 11, (n, 2))
        wh = rng.uniform(3, 9, (n, 2))
        return np.concatenate([xy, np.minimum(xy + wh, 16)], axis=1).astype(np.float32)

    torch.manual_seed(0)
    run_both(train_rpn, device, numpy_state(rpn_head(torch)), images, [boxes(3), boxes(2)], 7)


# ---- 8. Attention U-Net gates (Oktay et al.) and UNet++ with deep supervision, BCE + Dice ------------

def attention_unet(T, n_classes=1, filters=(4, 6, 8)):
    # ozan-oktay/Attention-Gated-Networks models/layers/grid_attention_layer.py (_GridAttentionBlockND,
    # mode='concatenation', sub_sample_factor=(2, 2)) in a 3-level U-Net; the decoder's up-conv block is
    # LeeJunHyun/Image_Segmentation network.py's up_conv (nn.Upsample(scale_factor=2) + conv).
    nn = T.nn
    F = T.nn.functional

    class GridAttentionBlock2D(nn.Module):
        def __init__(self, in_channels, gating_channels, inter_channels=None, sub_sample_factor=(2, 2)):
            super().__init__()
            self.sub_sample_factor = sub_sample_factor
            self.sub_sample_kernel_size = self.sub_sample_factor
            self.in_channels = in_channels
            self.gating_channels = gating_channels
            self.inter_channels = inter_channels
            if self.inter_channels is None:
                self.inter_channels = in_channels // 2
                if self.inter_channels == 0:
                    self.inter_channels = 1
            self.upsample_mode = 'bilinear'
            # Output transform
            self.W = nn.Sequential(
                nn.Conv2d(in_channels=self.in_channels, out_channels=self.in_channels, kernel_size=1, stride=1,
                          padding=0),
                nn.BatchNorm2d(self.in_channels),
            )
            # Theta^T * x_ij + Phi^T * gating_signal + bias
            self.theta = nn.Conv2d(in_channels=self.in_channels, out_channels=self.inter_channels,
                                   kernel_size=self.sub_sample_kernel_size, stride=self.sub_sample_factor,
                                   padding=0, bias=False)
            self.phi = nn.Conv2d(in_channels=self.gating_channels, out_channels=self.inter_channels,
                                 kernel_size=1, stride=1, padding=0, bias=True)
            self.psi = nn.Conv2d(in_channels=self.inter_channels, out_channels=1, kernel_size=1, stride=1,
                                 padding=0, bias=True)

        def forward(self, x, g):
            '''
            :param x: (b, c, t, h, w)
            :param g: (b, g_d)
            :return:
            '''
            input_size = x.size()
            batch_size = input_size[0]
            assert batch_size == g.size(0)

            # theta => (b, c, t, h, w) -> (b, i_c, t, h, w) -> (b, i_c, thw)
            # phi   => (b, g_d) -> (b, i_c)
            theta_x = self.theta(x)
            theta_x_size = theta_x.size()

            # g (b, c, t', h', w') -> phi_g (b, i_c, t', h', w')
            #  Relu(theta_x + phi_g + bias) -> f = (b, i_c, thw) -> (b, i_c, t/s1, h/s2, w/s3)
            phi_g = F.upsample(self.phi(g), size=theta_x_size[2:], mode=self.upsample_mode)
            f = F.relu(theta_x + phi_g, inplace=True)

            #  psi^T * f -> (b, psi_i_c, t/s1, h/s2, w/s3)
            sigm_psi_f = F.sigmoid(self.psi(f))

            # upsample the attentions and multiply
            sigm_psi_f = F.upsample(sigm_psi_f, size=input_size[2:], mode=self.upsample_mode)
            y = sigm_psi_f.expand_as(x) * x
            W_y = self.W(y)

            return W_y, sigm_psi_f

    class conv_block(nn.Module):
        def __init__(self, ch_in, ch_out):
            super(conv_block, self).__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(ch_in, ch_out, kernel_size=3, stride=1, padding=1, bias=True),
                nn.BatchNorm2d(ch_out),
                nn.ReLU(inplace=True),
                nn.Conv2d(ch_out, ch_out, kernel_size=3, stride=1, padding=1, bias=True),
                nn.BatchNorm2d(ch_out),
                nn.ReLU(inplace=True)
            )

        def forward(self, x):
            x = self.conv(x)
            return x

    class up_conv(nn.Module):
        def __init__(self, ch_in, ch_out):
            super(up_conv, self).__init__()
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2),
                nn.Conv2d(ch_in, ch_out, kernel_size=3, stride=1, padding=1, bias=True),
                nn.BatchNorm2d(ch_out),
                nn.ReLU(inplace=True)
            )

        def forward(self, x):
            x = self.up(x)
            return x

    class AttU_Net(nn.Module):
        def __init__(self, img_ch=1, output_ch=n_classes):
            super(AttU_Net, self).__init__()
            f1, f2, f3 = filters
            self.Maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
            self.Conv1 = conv_block(ch_in=img_ch, ch_out=f1)
            self.Conv2 = conv_block(ch_in=f1, ch_out=f2)
            self.Conv3 = conv_block(ch_in=f2, ch_out=f3)
            self.Up3 = up_conv(ch_in=f3, ch_out=f2)
            self.Att3 = GridAttentionBlock2D(in_channels=f2, gating_channels=f3)
            self.Up_conv3 = conv_block(ch_in=2 * f2, ch_out=f2)
            self.Up2 = up_conv(ch_in=f2, ch_out=f1)
            self.Att2 = GridAttentionBlock2D(in_channels=f1, gating_channels=f2)
            self.Up_conv2 = conv_block(ch_in=2 * f1, ch_out=f1)
            self.Conv_1x1 = nn.Conv2d(f1, output_ch, kernel_size=1, stride=1, padding=0)

        def forward(self, x):
            # encoding path
            x1 = self.Conv1(x)
            x2 = self.Maxpool(x1)
            x2 = self.Conv2(x2)
            x3 = self.Maxpool(x2)
            x3 = self.Conv3(x3)

            # decoding + concat path; the gating signal is the coarser decoder feature
            g_conv3, att3 = self.Att3(x2, x3)
            d3 = self.Up3(x3)
            d3 = T.cat((g_conv3, d3), dim=1)
            d3 = self.Up_conv3(d3)

            g_conv2, att2 = self.Att2(x1, d3)
            d2 = self.Up2(d3)
            d2 = T.cat((g_conv2, d2), dim=1)
            d2 = self.Up_conv2(d2)

            d1 = self.Conv_1x1(d2)
            return d1, (att2, att3)

    return AttU_Net()


def nested_unet(T, num_classes=1, input_channels=1, deep_supervision=True, nb_filter=(4, 6, 8)):
    # 4uiiurz1/pytorch-nested-unet archs.py NestedUNet, three levels deep
    nn = T.nn

    class VGGBlock(nn.Module):
        def __init__(self, in_channels, middle_channels, out_channels):
            super().__init__()
            self.relu = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(in_channels, middle_channels, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(middle_channels)
            self.conv2 = nn.Conv2d(middle_channels, out_channels, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(out_channels)

        def forward(self, x):
            out = self.conv1(x)
            out = self.bn1(out)
            out = self.relu(out)

            out = self.conv2(out)
            out = self.bn2(out)
            out = self.relu(out)

            return out

    class NestedUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.deep_supervision = deep_supervision

            self.pool = nn.MaxPool2d(2, 2)
            self.up = nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)

            self.conv0_0 = VGGBlock(input_channels, nb_filter[0], nb_filter[0])
            self.conv1_0 = VGGBlock(nb_filter[0], nb_filter[1], nb_filter[1])
            self.conv2_0 = VGGBlock(nb_filter[1], nb_filter[2], nb_filter[2])

            self.conv0_1 = VGGBlock(nb_filter[0] + nb_filter[1], nb_filter[0], nb_filter[0])
            self.conv1_1 = VGGBlock(nb_filter[1] + nb_filter[2], nb_filter[1], nb_filter[1])

            self.conv0_2 = VGGBlock(nb_filter[0] * 2 + nb_filter[1], nb_filter[0], nb_filter[0])

            if self.deep_supervision:
                self.final1 = nn.Conv2d(nb_filter[0], num_classes, kernel_size=1)
                self.final2 = nn.Conv2d(nb_filter[0], num_classes, kernel_size=1)
            else:
                self.final = nn.Conv2d(nb_filter[0], num_classes, kernel_size=1)

        def forward(self, input):
            x0_0 = self.conv0_0(input)
            x1_0 = self.conv1_0(self.pool(x0_0))
            x0_1 = self.conv0_1(T.cat([x0_0, self.up(x1_0)], 1))

            x2_0 = self.conv2_0(self.pool(x1_0))
            x1_1 = self.conv1_1(T.cat([x1_0, self.up(x2_0)], 1))
            x0_2 = self.conv0_2(T.cat([x0_0, x0_1, self.up(x1_1)], 1))

            if self.deep_supervision:
                output1 = self.final1(x0_1)
                output2 = self.final2(x0_2)
                return [output1, output2]

            else:
                output = self.final(x0_2)
                return output

    return NestedUNet()


def bce_dice_loss(T, input, target):
    # 4uiiurz1/pytorch-nested-unet losses.py BCEDiceLoss
    F = T.nn.functional
    bce = F.binary_cross_entropy_with_logits(input, target)
    smooth = 1e-5
    input = T.sigmoid(input)
    num = target.size(0)
    input = input.view(num, -1)
    target = target.view(num, -1)
    intersection = (input * target)
    dice = (2. * intersection.sum(1) + smooth) / (input.sum(1) + target.sum(1) + smooth)
    dice = 1 - dice.sum() / num
    return 0.5 * bce + dice


def iou_score(T, output, target):
    # 4uiiurz1/pytorch-nested-unet metrics.py; it reads `torch.sigmoid(output).data.cpu().numpy()`
    # (raygrad's .data is the raw array, README Differences: .detach() here)
    smooth = 1e-5
    output = T.sigmoid(output).detach().cpu().numpy()
    target = target.detach().cpu().numpy()
    output_ = output > 0.5
    target_ = target > 0.5
    intersection = (output_ & target_).sum()
    union = (output_ | target_).sum()
    return (intersection + smooth) / (union + smooth)


def train_gated_unets(T, device, init_att, init_nested, images, masks, steps=3):
    device = device_of(T, device)
    att = ported_model(T, attention_unet, init_att, device)
    nested = ported_model(T, nested_unet, init_nested, device)
    params = list(att.parameters()) + list(filter(lambda p: p.requires_grad, nested.parameters()))
    optimizer = T.optim.Adam(params, lr=1e-2, weight_decay=1e-4)
    scheduler = T.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=1e-5)
    input, target = T.from_numpy(images).to(device), T.from_numpy(masks).to(device)
    out = []
    for step in range(steps):
        att.train()
        nested.train()
        logits, _ = att(input)
        loss_att = bce_dice_loss(T, logits, target)
        # deep supervision: the mean of the losses of every output
        outputs = nested(input)
        loss_nested = 0
        for output in outputs:
            loss_nested += bce_dice_loss(T, output, target)
        loss_nested /= len(outputs)
        iou = iou_score(T, outputs[-1], target)

        optimizer.zero_grad()
        (loss_att + loss_nested).backward()
        optimizer.step()
        scheduler.step()
        out += [loss_att.item(), loss_nested.item(), float(iou)]
    att.eval()
    with T.no_grad():
        _, (att2, att3) = att(input)
    state = {**{"att." + k: v for k, v in numpy_state(att).items()},
             **{"nested." + k: v for k, v in numpy_state(nested).items()}}
    return out + as_list(att2.cpu()) + as_list(att3.cpu()), state


def test_attention_unet_and_unet_plus_plus(device):
    rng = np.random.default_rng(8)
    images = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    yy, xx = np.mgrid[0:12, 0:12]
    masks = np.stack([((yy - c) ** 2 + (xx - c) ** 2 < 12) for c in (4, 7)])[:, None].astype(np.float32)
    torch.manual_seed(0)
    att, nested = attention_unet(torch), nested_unet(torch)
    # Both references put a bias on every conv that feeds a BatchNorm, which cancels it: its gradient is
    # rounding noise (1e-10) that Adam turns into full steps of either sign, so those biases (and the
    # running means they shift) are left out; what reaches the outputs does not depend on them.
    noisy = set()
    for prefix, model in (("att.", att), ("nested.", nested)):
        modules = [(name, m) for name, m in model.named_modules() if not list(m.children())]
        for (name, m), (next_name, next_m) in zip(modules, modules[1:]):
            if isinstance(m, torch.nn.Conv2d) and isinstance(next_m, torch.nn.BatchNorm2d) and m.bias is not None:
                noisy |= {prefix + name + ".bias", prefix + next_name + ".running_mean"}
    assert len(noisy) == 2 * (14 + 12)
    run_both(train_gated_unets, device, numpy_state(att), numpy_state(nested), images, masks,
             state_view=lambda state: {k: v for k, v in state.items() if k not in noisy})


# ---- 9. CBAM and squeeze-excitation: channel / spatial attention from adaptive and global pools -------

def cbam_se_net(T, num_classes=3, planes=8):
    nn = T.nn
    F = T.nn.functional

    # Jongchan/attention-module MODELS/cbam.py
    class BasicConv(nn.Module):
        def __init__(self, in_planes, out_planes, kernel_size, stride=1, padding=0, dilation=1, groups=1, relu=True,
                     bn=True, bias=False):
            super(BasicConv, self).__init__()
            self.out_channels = out_planes
            self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding,
                                  dilation=dilation, groups=groups, bias=bias)
            self.bn = nn.BatchNorm2d(out_planes, eps=1e-5, momentum=0.01, affine=True) if bn else None
            self.relu = nn.ReLU() if relu else None

        def forward(self, x):
            x = self.conv(x)
            if self.bn is not None:
                x = self.bn(x)
            if self.relu is not None:
                x = self.relu(x)
            return x

    class Flatten(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1)

    class ChannelGate(nn.Module):
        def __init__(self, gate_channels, reduction_ratio=16, pool_types=['avg', 'max']):
            super(ChannelGate, self).__init__()
            self.gate_channels = gate_channels
            self.mlp = nn.Sequential(
                Flatten(),
                nn.Linear(gate_channels, gate_channels // reduction_ratio),
                nn.ReLU(),
                nn.Linear(gate_channels // reduction_ratio, gate_channels)
            )
            self.pool_types = pool_types

        def forward(self, x):
            channel_att_sum = None
            for pool_type in self.pool_types:
                if pool_type == 'avg':
                    avg_pool = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
                    channel_att_raw = self.mlp(avg_pool)
                elif pool_type == 'max':
                    max_pool = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
                    channel_att_raw = self.mlp(max_pool)
                elif pool_type == 'lp':
                    lp_pool = F.lp_pool2d(x, 2, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
                    channel_att_raw = self.mlp(lp_pool)
                elif pool_type == 'lse':
                    # LSE pool only
                    lse_pool = logsumexp_2d(x)
                    channel_att_raw = self.mlp(lse_pool)

                if channel_att_sum is None:
                    channel_att_sum = channel_att_raw
                else:
                    channel_att_sum = channel_att_sum + channel_att_raw

            scale = F.sigmoid(channel_att_sum).unsqueeze(2).unsqueeze(3).expand_as(x)
            return x * scale

    def logsumexp_2d(tensor):
        tensor_flatten = tensor.view(tensor.size(0), tensor.size(1), -1)
        s, _ = T.max(tensor_flatten, dim=2, keepdim=True)
        outputs = s + (tensor_flatten - s).exp().sum(dim=2, keepdim=True).log()
        return outputs

    class ChannelPool(nn.Module):
        def forward(self, x):
            return T.cat((T.max(x, 1)[0].unsqueeze(1), T.mean(x, 1).unsqueeze(1)), dim=1)

    class SpatialGate(nn.Module):
        def __init__(self):
            super(SpatialGate, self).__init__()
            kernel_size = 7
            self.compress = ChannelPool()
            self.spatial = BasicConv(2, 1, kernel_size, stride=1, padding=(kernel_size - 1) // 2, relu=False)

        def forward(self, x):
            x_compress = self.compress(x)
            x_out = self.spatial(x_compress)
            scale = F.sigmoid(x_out)  # broadcasting
            return x * scale

    class CBAM(nn.Module):
        def __init__(self, gate_channels, reduction_ratio=16, pool_types=['avg', 'max'], no_spatial=False):
            super(CBAM, self).__init__()
            self.ChannelGate = ChannelGate(gate_channels, reduction_ratio, pool_types)
            self.no_spatial = no_spatial
            if not no_spatial:
                self.SpatialGate = SpatialGate()

        def forward(self, x):
            x_out = self.ChannelGate(x)
            if not self.no_spatial:
                x_out = self.SpatialGate(x_out)
            return x_out

    # moskomule/senet.pytorch senet/se_module.py and se_resnet.py
    class SELayer(nn.Module):
        def __init__(self, channel, reduction=16):
            super(SELayer, self).__init__()
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Sequential(
                nn.Linear(channel, channel // reduction, bias=False),
                nn.ReLU(inplace=True),
                nn.Linear(channel // reduction, channel, bias=False),
                nn.Sigmoid()
            )

        def forward(self, x):
            b, c, _, _ = x.size()
            y = self.avg_pool(x).view(b, c)
            y = self.fc(y).view(b, c, 1, 1)
            return x * y.expand_as(x)

    def conv3x3(in_planes, out_planes, stride=1):
        return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)

    class SEBasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                     norm_layer=None, *, reduction=16):
            super(SEBasicBlock, self).__init__()
            self.conv1 = conv3x3(inplanes, planes, stride)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(planes, planes, 1)
            self.bn2 = nn.BatchNorm2d(planes)
            self.se = SELayer(planes, reduction)
            self.downsample = downsample
            self.stride = stride

        def forward(self, x):
            residual = x
            out = self.conv1(x)
            out = self.bn1(out)
            out = self.relu(out)

            out = self.conv2(out)
            out = self.bn2(out)
            out = self.se(out)

            if self.downsample is not None:
                residual = self.downsample(x)

            out += residual
            out = self.relu(out)

            return out

    class Net(nn.Module):
        # a ResNet stem, an SE block, then a block with CBAM after it as in the CBAM ResNet's BasicBlock
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(conv3x3(3, planes), nn.BatchNorm2d(planes), nn.ReLU(inplace=True))
            self.layer1 = SEBasicBlock(planes, planes, reduction=4)
            self.layer2 = nn.Sequential(BasicConv(planes, planes, 3, stride=2, padding=1),
                                        CBAM(planes, reduction_ratio=4, pool_types=['avg', 'max', 'lp', 'lse']))
            self.cbam_default = CBAM(planes, reduction_ratio=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.maxpool = nn.AdaptiveMaxPool2d((1, 1))
            self.fc = nn.Linear(2 * planes, num_classes)

        def forward(self, x):
            x = self.stem(x)
            x = self.layer1(x)
            x = self.cbam_default(self.layer2(x))
            x = T.cat([self.avgpool(x), self.maxpool(x)], dim=1)
            return self.fc(T.flatten(x, 1))

    return Net()


def train_cbam_se(T, device, init, images, labels, steps=4):
    device = device_of(T, device)
    model = ported_model(T, cbam_se_net, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    scheduler = T.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1)
    criterion = T.nn.CrossEntropyLoss()
    x, y = T.from_numpy(images).to(device), T.from_numpy(labels).to(device)
    losses = []
    for step in range(steps):
        model.train()
        output = model(x)
        loss = criterion(output, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        prec1 = (output.topk(1, 1, True, True)[1].t() == y.view(1, -1)).float().sum() * 100.0 / y.size(0)
        losses += [loss.item(), prec1.item()]
    model.eval()
    with T.no_grad():
        losses += as_list(model(x).cpu())
    return losses, numpy_state(model)


def test_cbam_and_squeeze_excitation(device):
    rng = np.random.default_rng(9)
    images = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 4)
    torch.manual_seed(0)
    run_both(train_cbam_se, device, numpy_state(cbam_se_net(torch)), images, labels)


# ---- 10. Augmentation on tensors: torchvision's functional_tensor ops written out, random params in -----

def tensor_transforms(T):
    # torchvision/transforms/_functional_tensor.py and functional.py, for float images in [0, 1]
    F = T.nn.functional

    def to_tensor(pic):
        # functional.to_tensor for an HWC uint8 ndarray
        img = T.from_numpy(pic.transpose((2, 0, 1))).contiguous()
        return img.to(dtype=T.get_default_dtype()).div(255)

    def crop(img, top, left, height, width):
        return img[..., top:top + height, left:left + width]

    def resize(img, size, interpolation="bilinear", antialias=True):
        # _cast_squeeze_in / _cast_squeeze_out around interpolate
        need_squeeze = False
        if img.ndim < 4:
            img = img.unsqueeze(dim=0)
            need_squeeze = True
        align_corners = False if interpolation in ["bilinear", "bicubic"] else None
        img = F.interpolate(img, size=size, mode=interpolation, align_corners=align_corners, antialias=antialias)
        if need_squeeze:
            img = img.squeeze(dim=0)
        return img

    def resized_crop(img, top, left, height, width, size, interpolation="bilinear", antialias=True):
        img = crop(img, top, left, height, width)
        img = resize(img, size, interpolation=interpolation, antialias=antialias)
        return img

    def hflip(img):
        return img.flip(-1)

    def _blend(img1, img2, ratio):
        ratio = float(ratio)
        bound = 1.0
        return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, bound).to(img1.dtype)

    def rgb_to_grayscale(img, num_output_channels=1):
        r, g, b = img.unbind(dim=-3)
        # This implementation closely follows the TF one:
        # https://github.com/tensorflow/tensorflow/blob/v2.3.0/tensorflow/python/ops/image_ops_impl.py#L2105-L2138
        l_img = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype)
        l_img = l_img.unsqueeze(dim=-3)

        if num_output_channels == 3:
            return l_img.expand(img.shape)

        return l_img

    def adjust_brightness(img, brightness_factor):
        return _blend(img, T.zeros_like(img), brightness_factor)

    def adjust_contrast(img, contrast_factor):
        c = img.shape[-3]
        dtype = img.dtype if T.is_floating_point(img) else T.float32
        if c == 3:
            mean = T.mean(rgb_to_grayscale(img).to(dtype), dim=(-3, -2, -1), keepdim=True)
        else:
            mean = T.mean(img.to(dtype), dim=(-3, -2, -1), keepdim=True)

        return _blend(img, mean, contrast_factor)

    def adjust_saturation(img, saturation_factor):
        return _blend(img, rgb_to_grayscale(img), saturation_factor)

    def _rgb2hsv(img):
        r, g, _ = img.unbind(dim=-3)

        # Implementation is based on Pillow's src/libImaging/Convert.c#L330 (commit 4174d42)
        maxc = T.max(img, dim=-3).values
        minc = T.min(img, dim=-3).values

        # The algorithm erases S and H channel where `maxc = minc`. This avoids NaN
        # from happening in the results, because
        #   + S channel has division by `maxc`, which is zero only if `maxc = minc`
        #   + H channel has division by `(maxc - minc)`.
        #
        # Instead of overwriting NaN afterwards, we just prevent it from occurring, so
        # we don't need to deal with it in case we save the NaN in a buffer in
        # backprop, if it is ever supported, but it doesn't hurt to do so.
        eqc = maxc == minc

        cr = maxc - minc
        # Since `eqc => cr = 0`, replacing denominator with 1 when `eqc` is fine.
        ones = T.ones_like(maxc)
        s = cr / T.where(eqc, ones, maxc)
        # Note that `eqc => maxc = minc = r = g = b`. So the following calculation
        # of `h` would reduce to `bc - gc + 2 + rc - bc + 4 + rc - bc = 6` so it
        # would not matter what values `rc`, `gc`, and `bc` have here, and thus
        # replacing denominator with 1 when `eqc` is fine.
        cr_divisor = T.where(eqc, ones, cr)
        rc, gc, bc = ((maxc.unsqueeze(-3) - img) / cr_divisor.unsqueeze(-3)).unbind(dim=-3)

        hr = (maxc == r) * (bc - gc)
        hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
        hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
        h = hr + hg + hb
        h = T.fmod((h / 6.0 + 1.0), 1.0)
        return T.stack((h, s, maxc), dim=-3)

    def _hsv2rgb(img):
        h, s, v = img.unbind(dim=-3)
        i = T.floor(h * 6.0)
        f = (h * 6.0) - i
        i = i.to(dtype=T.int32)

        p = T.clamp((v * (1.0 - s)), 0.0, 1.0)
        q = T.clamp((v * (1.0 - s * f)), 0.0, 1.0)
        t = T.clamp((v * (1.0 - s * (1.0 - f))), 0.0, 1.0)
        i = i % 6

        mask = i.unsqueeze(dim=-3) == T.arange(6, device=i.device).view(-1, 1, 1)

        a1 = T.stack((v, q, p, p, t, v), dim=-3)
        a2 = T.stack((t, v, v, q, p, p), dim=-3)
        a3 = T.stack((p, p, t, v, v, q), dim=-3)
        a4 = T.stack((a1, a2, a3), dim=-4)

        return T.einsum("...ijk, ...xijk -> ...xjk", mask.to(dtype=img.dtype), a4)

    def adjust_hue(img, hue_factor):
        if not (-0.5 <= hue_factor <= 0.5):
            raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
        img = _rgb2hsv(img)
        h, s, v = img.unbind(dim=-3)
        h = (h + hue_factor) % 1.0
        img = T.stack((h, s, v), dim=-3)
        img_hue_adj = _hsv2rgb(img)
        return img_hue_adj

    def _get_gaussian_kernel1d(kernel_size, sigma, dtype, device):
        ksize_half = (kernel_size - 1) * 0.5

        x = T.linspace(-ksize_half, ksize_half, steps=kernel_size, dtype=dtype, device=device)
        pdf = T.exp(-0.5 * (x / sigma).pow(2))
        kernel1d = pdf / pdf.sum()

        return kernel1d

    def _get_gaussian_kernel2d(kernel_size, sigma, dtype, device):
        kernel1d_x = _get_gaussian_kernel1d(kernel_size[0], sigma[0], dtype, device)
        kernel1d_y = _get_gaussian_kernel1d(kernel_size[1], sigma[1], dtype, device)
        kernel2d = T.mm(kernel1d_y[:, None], kernel1d_x[None, :])
        return kernel2d

    def gaussian_blur(img, kernel_size, sigma):
        dtype = img.dtype if T.is_floating_point(img) else T.float32
        kernel = _get_gaussian_kernel2d(kernel_size, sigma, dtype=dtype, device=img.device)
        kernel = kernel.expand(img.shape[-3], 1, kernel.shape[0], kernel.shape[1])

        need_squeeze = img.ndim < 4
        if need_squeeze:
            img = img.unsqueeze(dim=0)
        # padding = (left, right, top, bottom)
        padding = [kernel_size[0] // 2, kernel_size[0] // 2, kernel_size[1] // 2, kernel_size[1] // 2]
        img = F.pad(img, padding, mode="reflect")
        img = F.conv2d(img, kernel, groups=img.shape[-3])
        if need_squeeze:
            img = img.squeeze(dim=0)
        return img

    def erase(img, i, j, h, w, v, inplace=False):
        if not inplace:
            img = img.clone()

        img[..., i:i + h, j:j + w] = v
        return img

    def normalize(tensor, mean, std, inplace=False):
        if not inplace:
            tensor = tensor.clone()

        dtype = tensor.dtype
        mean = T.as_tensor(mean, dtype=dtype, device=tensor.device)
        std = T.as_tensor(std, dtype=dtype, device=tensor.device)
        if (std == 0).any():
            raise ValueError(f"std evaluated to zero after conversion to {dtype}, leading to division by zero.")
        if mean.ndim == 1:
            mean = mean.view(-1, 1, 1)
        if std.ndim == 1:
            std = std.view(-1, 1, 1)
        return tensor.sub_(mean).div_(std)

    return dict(to_tensor=to_tensor, resized_crop=resized_crop, hflip=hflip, adjust_brightness=adjust_brightness,
                adjust_contrast=adjust_contrast, adjust_saturation=adjust_saturation, adjust_hue=adjust_hue,
                gaussian_blur=gaussian_blur, erase=erase, normalize=normalize, rgb_to_grayscale=rgb_to_grayscale)


def augmented_dataset(T, pics, labels, params):
    """A Dataset whose __getitem__ runs the train transform with this epoch's drawn parameters, in the
    order torchvision's Compose would: RandomResizedCrop, RandomHorizontalFlip, ColorJitter (fn_idx order),
    GaussianBlur, ToTensor/Normalize, RandomErasing."""
    TF = tensor_transforms(T)

    class Augmented(T.utils.data.Dataset):
        epoch = 0

        def __len__(self):
            return len(pics)

        def __getitem__(self, idx):
            p = params[self.epoch][idx]
            img = TF["to_tensor"](pics[idx])
            img = TF["resized_crop"](img, *p["crop"], size=[8, 8], antialias=True)
            if p["flip"]:
                img = TF["hflip"](img)
            b, c, s, h = p["jitter"]
            for fn_id in p["fn_idx"]:
                if fn_id == 0:
                    img = TF["adjust_brightness"](img, b)
                elif fn_id == 1:
                    img = TF["adjust_contrast"](img, c)
                elif fn_id == 2:
                    img = TF["adjust_saturation"](img, s)
                elif fn_id == 3:
                    img = TF["adjust_hue"](img, h)
            img = TF["gaussian_blur"](img, [3, 3], [p["sigma"], p["sigma"]])
            img = TF["normalize"](img, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
            if p["erase"] is not None:
                i, j, eh, ew = p["erase"]
                img = TF["erase"](img, i, j, eh, ew, 0.0)
            return img, int(labels[idx])

    return Augmented()


def aug_cnn(T):
    nn = T.nn
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 3))


def train_augmented(T, device, init, pics, labels, params):
    device = device_of(T, device)
    model = ported_model(T, aug_cnn, init, device)
    data = augmented_dataset(T, pics, labels, params)
    loader = T.utils.data.DataLoader(data, batch_size=3, shuffle=False, drop_last=False)
    optimizer = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = T.nn.CrossEntropyLoss(label_smoothing=0.1)
    out = []
    for epoch in range(len(params)):
        data.epoch = epoch
        model.train()
        for images, target in loader:
            images, target = images.to(device), target.to(device)
            out += as_list(images.cpu())
            loss = criterion(model(images), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            out.append(loss.item())
    # the single ops once more on a grey-heavy image (maxc == minc pixels) and with 3 output channels
    TF = tensor_transforms(T)
    img = TF["to_tensor"](pics[0]).to(device)
    img[:, :2] = img[0, :2]
    for ratio, hue in ((0.3, -0.3), (1.7, 0.45)):
        out += as_list(TF["adjust_hue"](img, hue).cpu())
        out += as_list(TF["adjust_saturation"](img, ratio).cpu()) + as_list(TF["adjust_contrast"](img, ratio).cpu())
    out += as_list(TF["rgb_to_grayscale"](img, num_output_channels=3).cpu())
    return out, numpy_state(model)


def test_tensor_augmentation_pipeline(device):
    rng = np.random.default_rng(10)
    n, epochs = 6, 2
    pics = rng.integers(0, 256, (n, 12, 14, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, n)
    params = []
    for _ in range(epochs):
        epoch = []
        for _ in range(n):
            # RandomResizedCrop.get_params, drawn outside (top, left, height, width); scale (0.3, 1)
            h, w = rng.integers(5, 13), rng.integers(5, 15)
            crop = (int(rng.integers(0, 12 - h + 1)), int(rng.integers(0, 14 - w + 1)), int(h), int(w))
            erase = None
            if rng.random() < 0.5:
                erase = tuple(int(v) for v in (rng.integers(0, 5), rng.integers(0, 5), rng.integers(1, 4),
                                               rng.integers(1, 4)))
            epoch.append(dict(crop=crop, flip=bool(rng.random() < 0.5), fn_idx=rng.permutation(4).tolist(),
                              jitter=(rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4),
                                      rng.uniform(-0.1, 0.1)),
                              sigma=float(rng.uniform(0.1, 2.0)), erase=erase))
        params.append(epoch)
    torch.manual_seed(0)
    run_both(train_augmented, device, numpy_state(aug_cnn(torch)), pics, labels, params)


# ---- 11. RandAugment on uint8 tensors: torchvision's _apply_op, each op written out as torchvision does --

def uint8_ops(T):
    # torchvision/transforms/_functional_tensor.py and functional.py (affine, rotate), for uint8 images
    F = T.nn.functional

    def _max_value(dtype):
        return 255 if dtype == T.uint8 else 1.0

    def _cast_squeeze_in(img, req_dtypes):
        need_squeeze = False
        # make image NCHW
        if img.ndim < 4:
            img = img.unsqueeze(dim=0)
            need_squeeze = True

        out_dtype = img.dtype
        need_cast = False
        if out_dtype not in req_dtypes:
            need_cast = True
            req_dtype = req_dtypes[0]
            img = img.to(req_dtype)
        return img, need_cast, need_squeeze, out_dtype

    def _cast_squeeze_out(img, need_cast, need_squeeze, out_dtype):
        if need_squeeze:
            img = img.squeeze(dim=0)

        if need_cast:
            if out_dtype in (T.uint8, T.int8, T.int16, T.int32, T.int64):
                # it is better to round before cast
                img = T.round(img)
            img = img.to(out_dtype)

        return img

    def _blend(img1, img2, ratio):
        ratio = float(ratio)
        bound = _max_value(img1.dtype)
        return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, bound).to(img1.dtype)

    def rgb_to_grayscale(img, num_output_channels=1):
        r, g, b = img.unbind(dim=-3)
        l_img = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype)
        l_img = l_img.unsqueeze(dim=-3)
        if num_output_channels == 3:
            return l_img.expand(img.shape)
        return l_img

    def adjust_brightness(img, brightness_factor):
        return _blend(img, T.zeros_like(img), brightness_factor)

    def adjust_contrast(img, contrast_factor):
        dtype = img.dtype if T.is_floating_point(img) else T.float32
        mean = T.mean(rgb_to_grayscale(img).to(dtype), dim=(-3, -2, -1), keepdim=True)
        return _blend(img, mean, contrast_factor)

    def adjust_saturation(img, saturation_factor):
        return _blend(img, rgb_to_grayscale(img), saturation_factor)

    def _blurred_degenerate_image(img):
        dtype = img.dtype if T.is_floating_point(img) else T.float32

        kernel = T.ones((3, 3), dtype=dtype, device=img.device)
        kernel[1, 1] = 5.0
        kernel /= kernel.sum()
        kernel = kernel.expand(img.shape[-3], 1, kernel.shape[0], kernel.shape[1])

        result_tmp, need_cast, need_squeeze, out_dtype = _cast_squeeze_in(img, [kernel.dtype])
        result_tmp = F.conv2d(result_tmp, kernel, groups=result_tmp.shape[-3])
        result_tmp = _cast_squeeze_out(result_tmp, need_cast, need_squeeze, out_dtype)

        result = img.clone()
        result[..., 1:-1, 1:-1] = result_tmp

        return result

    def adjust_sharpness(img, sharpness_factor):
        if img.size(-1) <= 2 or img.size(-2) <= 2:
            return img
        return _blend(img, _blurred_degenerate_image(img), sharpness_factor)

    def posterize(img, bits):
        if img.dtype != T.uint8:
            raise TypeError(f"Only torch.uint8 image tensors are supported, but found {img.dtype}")
        mask = -int(2 ** (8 - bits))  # JIT-friendly for: ~(2 ** (8 - bits) - 1)
        return img & mask

    def invert(img):
        return _max_value(img.dtype) - img

    def solarize(img, threshold):
        if threshold > _max_value(img.dtype):
            raise TypeError("Threshold should be less than bound of img.")
        inverted_img = invert(img)
        return T.where(img >= threshold, inverted_img, img)

    def autocontrast(img):
        bound = _max_value(img.dtype)
        dtype = img.dtype if T.is_floating_point(img) else T.float32

        minimum = img.amin(dim=(-2, -1), keepdim=True).to(dtype)
        maximum = img.amax(dim=(-2, -1), keepdim=True).to(dtype)
        scale = bound / (maximum - minimum)
        eq_idxs = T.isfinite(scale).logical_not()
        minimum[eq_idxs] = 0
        scale[eq_idxs] = 1

        return ((img - minimum) * scale).clamp(0, bound).to(img.dtype)

    def _scale_channel(img_chan):
        # TODO: we should expect bincount to always be faster than histc, but this
        # isn't always the case. Once
        # https://github.com/pytorch/pytorch/issues/53194 is fixed, remove the if
        # block and only use bincount.
        if img_chan.is_cuda:
            hist = T.histc(img_chan.to(T.float32), bins=256, min=0, max=255)
        else:
            hist = T.bincount(img_chan.reshape(-1), minlength=256)

        nonzero_hist = hist[hist != 0]
        step = T.div(nonzero_hist[:-1].sum(), 255, rounding_mode="floor")
        if step == 0:
            return img_chan

        lut = T.div(T.cumsum(hist, 0) + T.div(step, 2, rounding_mode="floor"), step, rounding_mode="floor")
        lut = F.pad(lut, [1, 0])[:-1].clamp(0, 255)

        return lut[img_chan.to(T.int64)].to(T.uint8)

    def _equalize_single_image(img):
        return T.stack([_scale_channel(img[c]) for c in range(img.size(0))])

    def equalize(img):
        if img.ndim == 3:
            return _equalize_single_image(img)

        return T.stack([_equalize_single_image(x) for x in img])

    def _apply_grid_transform(img, grid, mode, fill):
        img, need_cast, need_squeeze, out_dtype = _cast_squeeze_in(img, [grid.dtype])

        if img.shape[0] > 1:
            # Apply same grid to a batch of images
            grid = grid.expand(img.shape[0], grid.shape[1], grid.shape[2], grid.shape[3])

        # Append a dummy mask for customized fill colors, should be faster than grid_sample() twice
        if fill is not None:
            mask = T.ones((img.shape[0], 1, img.shape[2], img.shape[3]), dtype=img.dtype, device=img.device)
            img = T.cat((img, mask), dim=1)

        img = F.grid_sample(img, grid, mode=mode, padding_mode="zeros", align_corners=False)

        # Fill with required color
        if fill is not None:
            mask = img[:, -1:, :, :]  # N * 1 * H * W
            img = img[:, :-1, :, :]  # N * C * H * W
            mask = mask.expand_as(img)
            fill_list, len_fill = (fill, len(fill)) if isinstance(fill, (tuple, list)) else ([float(fill)], 1)
            fill_img = T.tensor(fill_list, dtype=img.dtype, device=img.device).view(1, len_fill, 1, 1).expand_as(img)
            if mode == "nearest":
                mask = mask < 0.5
                img[mask] = fill_img[mask]
            else:  # 'bilinear'
                img = img * mask + (1.0 - mask) * fill_img

        img = _cast_squeeze_out(img, need_cast, need_squeeze, out_dtype)
        return img

    def _gen_affine_grid(theta, w, h, ow, oh):
        # https://github.com/pytorch/pytorch/blob/74b65c32be68b15dc7c9e8bb62459efbfbde33d8/aten/src/ATen/native/
        # AffineGridGenerator.cpp#L18
        # Difference with AffineGridGenerator is that:
        # 1) we normalize grid values after applying theta
        # 2) we can normalize by other image size, such that it covers "extend" option like in PIL.Image.rotate

        d = 0.5
        base_grid = T.empty(1, oh, ow, 3, dtype=theta.dtype, device=theta.device)
        x_grid = T.linspace(-ow * 0.5 + d, ow * 0.5 + d - 1, steps=ow, device=theta.device)
        base_grid[..., 0].copy_(x_grid)
        y_grid = T.linspace(-oh * 0.5 + d, oh * 0.5 + d - 1, steps=oh, device=theta.device).unsqueeze_(-1)
        base_grid[..., 1].copy_(y_grid)
        base_grid[..., 2].fill_(1)

        rescaled_theta = theta.transpose(1, 2) / T.tensor([0.5 * w, 0.5 * h], dtype=theta.dtype, device=theta.device)
        output_grid = base_grid.view(1, oh * ow, 3).bmm(rescaled_theta)
        return output_grid.view(1, oh, ow, 2)

    def _affine_tensor(img, matrix, interpolation="nearest", fill=None):
        dtype = img.dtype if T.is_floating_point(img) else T.float32
        theta = T.tensor(matrix, dtype=dtype, device=img.device).reshape(1, 2, 3)
        shape = img.shape
        # grid will be generated on the same device as theta and img
        grid = _gen_affine_grid(theta, w=shape[-1], h=shape[-2], ow=shape[-1], oh=shape[-2])
        return _apply_grid_transform(img, grid, interpolation, fill=fill)

    def _get_inverse_affine_matrix(center, angle, translate, scale, shear, inverted=True):
        rot = math.radians(angle)
        sx = math.radians(shear[0])
        sy = math.radians(shear[1])

        cx, cy = center
        tx, ty = translate

        # RSS without scaling
        a = math.cos(rot - sy) / math.cos(sy)
        b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
        c = math.sin(rot - sy) / math.cos(sy)
        d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)

        # Inverted rotation matrix with scale and shear
        # det([[a, b], [c, d]]) == 1, since det(rotation) = 1 and det(shear) = 1
        matrix = [d, -b, 0.0, -c, a, 0.0]
        matrix = [x / scale for x in matrix]
        # Apply inverse of translation and of center translation: RSS^-1 * C^-1 * T^-1
        matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty)
        matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty)
        # Apply center translation: C * RSS^-1 * C^-1 * T^-1
        matrix[2] += cx
        matrix[5] += cy
        return matrix

    def affine(img, angle, translate, scale, shear, interpolation="nearest", fill=None, center=None):
        center_f = [0.0, 0.0]
        if center is not None:
            height, width = img.shape[-2:]
            # Center values should be in pixel coordinates but translated such that (0, 0) corresponds to image
            # center.
            center_f = [1.0 * (c - s * 0.5) for c, s in zip(center, [width, height])]
        translate_f = [1.0 * t for t in translate]
        matrix = _get_inverse_affine_matrix(center_f, angle, translate_f, scale, shear)
        return _affine_tensor(img, matrix=matrix, interpolation=interpolation, fill=fill)

    def rotate(img, angle, interpolation="nearest", fill=None):
        # due to current incoherence of rotation angle direction between affine and rotate implementations
        # we need to set -angle.
        matrix = _get_inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
        return _affine_tensor(img, matrix=matrix, interpolation=interpolation, fill=fill)

    def _apply_op(img, op_name, magnitude, interpolation, fill):
        # torchvision/transforms/autoaugment.py
        if op_name == "ShearX":
            # magnitude should be arctan(magnitude)
            # official autoaug: (1, level, 0, 0, 1, 0)
            # torchvision:      (1, tan(level), 0, 0, 1, 0)
            img = affine(img, angle=0.0, translate=[0, 0], scale=1.0,
                         shear=[math.degrees(math.atan(magnitude)), 0.0],
                         interpolation=interpolation, fill=fill, center=[0, 0])
        elif op_name == "ShearY":
            img = affine(img, angle=0.0, translate=[0, 0], scale=1.0,
                         shear=[0.0, math.degrees(math.atan(magnitude))],
                         interpolation=interpolation, fill=fill, center=[0, 0])
        elif op_name == "TranslateX":
            img = affine(img, angle=0.0, translate=[int(magnitude), 0], scale=1.0, interpolation=interpolation,
                         shear=[0.0, 0.0], fill=fill)
        elif op_name == "TranslateY":
            img = affine(img, angle=0.0, translate=[0, int(magnitude)], scale=1.0, interpolation=interpolation,
                         shear=[0.0, 0.0], fill=fill)
        elif op_name == "Rotate":
            img = rotate(img, magnitude, interpolation=interpolation, fill=fill)
        elif op_name == "Brightness":
            img = adjust_brightness(img, 1.0 + magnitude)
        elif op_name == "Color":
            img = adjust_saturation(img, 1.0 + magnitude)
        elif op_name == "Contrast":
            img = adjust_contrast(img, 1.0 + magnitude)
        elif op_name == "Sharpness":
            img = adjust_sharpness(img, 1.0 + magnitude)
        elif op_name == "Posterize":
            img = posterize(img, int(magnitude))
        elif op_name == "Solarize":
            img = solarize(img, magnitude)
        elif op_name == "AutoContrast":
            img = autocontrast(img)
        elif op_name == "Equalize":
            img = equalize(img)
        elif op_name == "Invert":
            img = invert(img)
        elif op_name == "Identity":
            pass
        else:
            raise ValueError(f"The provided operator {op_name} is not recognized.")
        return img

    def _augmentation_space(num_bins, image_size):
        # RandAugment._augmentation_space
        return {
            # op_name: (magnitudes, signed)
            "Identity": (T.tensor(0.0), False),
            "ShearX": (T.linspace(0.0, 0.3, num_bins), True),
            "ShearY": (T.linspace(0.0, 0.3, num_bins), True),
            "TranslateX": (T.linspace(0.0, 150.0 / 331.0 * image_size[1], num_bins), True),
            "TranslateY": (T.linspace(0.0, 150.0 / 331.0 * image_size[0], num_bins), True),
            "Rotate": (T.linspace(0.0, 30.0, num_bins), True),
            "Brightness": (T.linspace(0.0, 0.9, num_bins), True),
            "Color": (T.linspace(0.0, 0.9, num_bins), True),
            "Contrast": (T.linspace(0.0, 0.9, num_bins), True),
            "Sharpness": (T.linspace(0.0, 0.9, num_bins), True),
            "Posterize": (8 - (T.arange(num_bins) / ((num_bins - 1) / 4)).round().int(), False),
            "Solarize": (T.linspace(255.0, 0.0, num_bins), False),
            "AutoContrast": (T.tensor(0.0), False),
            "Equalize": (T.tensor(0.0), False),
            "Invert": (T.tensor(0.0), False),  # AutoAugment's and TrivialAugmentWide's spaces add Invert
        }

    return _apply_op, _augmentation_space


def train_randaugment(T, device, init, images, labels, op_name, signs, magnitude_bin=9, num_magnitude_bins=31,
                      fill=(128.0, 96.0, 64.0)):
    device = device_of(T, device)
    _apply_op, _augmentation_space = uint8_ops(T)
    imgs = T.from_numpy(images).to(device)
    height, width = imgs.shape[-2:]
    # RandAugment.forward, with the op chosen and the sign coins drawn outside
    op_meta = _augmentation_space(num_magnitude_bins, (height, width))
    magnitudes, signed = op_meta[op_name]
    out = []
    for i, img in enumerate(imgs):
        magnitude = float(magnitudes[magnitude_bin].item()) if magnitudes.ndim > 0 else 0.0
        if signed and signs[i]:
            magnitude *= -1.0
        out.append(_apply_op(img, op_name, magnitude, interpolation="nearest", fill=list(fill)))
    batch = T.stack(out)
    assert batch.dtype == T.uint8
    pixels = as_list(batch.cpu())
    # convert_image_dtype(uint8 -> float) and Normalize, then a classifier step on the augmented batch
    x = batch.to(T.float32) / 255
    x = (x - T.tensor([0.5, 0.5, 0.5], device=device).view(-1, 1, 1)) / 0.25
    model = ported_model(T, aug_cnn, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    y = T.from_numpy(labels).to(device)
    losses = []
    for step in range(2):
        loss = T.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return pixels + losses, numpy_state(model)


RANDAUGMENT_OPS = [
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Contrast", "Solarize",
    "Equalize", "Invert",
    "Color", "Sharpness", "AutoContrast", "Posterize",
]


@pytest.mark.parametrize("op_name", RANDAUGMENT_OPS)
def test_randaugment_ops_on_uint8(device, op_name):
    rng = np.random.default_rng(12)
    images = rng.integers(0, 256, (4, 3, 10, 12)).astype(np.uint8)
    images[1] = images[1] // 3 + 60  # a low-contrast image for AutoContrast / Equalize
    images[2, :, :4] = 200  # a flat region: the sharpness / blur and equalize paths with ties
    labels = rng.integers(0, 3, 4)
    signs = [True, False, True, False]
    torch.manual_seed(0)
    run_both(train_randaugment, device, numpy_state(aug_cnn(torch)), images, labels, op_name, signs)
