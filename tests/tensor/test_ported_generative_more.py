"""More generative-model scripts that port from torch by changing imports (DDPM, RealNVP, Glow, WGAN-GP and
VQ-VAE are in test_ported_generative.py).

DDIM sampling (ermongroup/ddim), classifier-free guidance (TeaPearce/Conditional_Diffusion_MNIST), EDM's
preconditioning, loss weighting and Heun sampler (NVlabs/edm), denoising score matching on 2-D data
(ermongroup/ncsn, acids-ircam/diffusion_models), MADE and MAF (karpathy/pytorch-made,
ikostrikov/pytorch-flows), neural spline flows' rational-quadratic spline (bayesiains/nflows), PixelCNN's
masked convolutions (jzbontar/pixelcnn-pytorch, ritheshkumar95/pytorch-vqvae's gated PixelCNN), StyleGAN2's
modulated convolution and equalized learning rate (rosinality/stylegan2-pytorch), the R1 penalty
(LMescheder/GAN_stability), and VAEs with a discretized mixture of logistics likelihood
(pclucas14/pixel-cnn-pp) or a Bernoulli decoder with free bits and KL annealing.

Same protocol as test_ported_scripts.py: each script is a function of the library module `T`, written as
the reference code writes it; the model is built in torch and its state copied into raygrad, both see the
same NumPy data, and the losses and final parameters must agree to float32 accuracy. Every random draw
(noise, timesteps, label-dropout masks, EDM's log-normal sigmas, Langevin noise, sampling uniforms) is made
here with NumPy and passed in. Where a script touches one of README's accepted differences (`p.data` is the
raw array, no typed constructors like `torch.FloatTensor`, no out=) only that spot is adapted, with a comment.
Besides the values, each returned array must have torch's dtype.

Two tests pin how NumPy scalars are typed, as torch types them: a NumPy float64 hyperparameter (nflows' softplus
beta = np.log(2) / (1 - min_derivative), clamp / leaky_relu / elu / hardtanh / normalize bounds) keeps a float32
result float32, tensor() / as_tensor() keep a NumPy scalar's own dtype, and full() treats it as a number.
"""
import copy
import math
import random

import numpy as np
import pytest

import tensor
from test_ported_scripts import device_of, numpy_state, ported_model
from test_ported_scripts import run_both as run_both_values

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """The oracle on one thread: tiny convs on a loaded machine run far slower with torch's OpenMP pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_both(script, device, *args, **kwargs):
    """test_ported_scripts.run_both, and each returned array must also have torch's dtype (a float64 that leaks
    out of a float32 computation agrees in value, and would go unseen)."""
    results = {}

    def recorded(T, *a, **k):
        results[T] = script(T, *a, **k)
        return results[T]

    got = run_both_values(recorded, device, *args, **kwargs)
    want_state, got_state = results[torch][1], results[tensor][1]
    assert {k: str(got_state[k].dtype) for k in want_state} == {k: str(v.dtype) for k, v in want_state.items()}
    return got


def prefixed(prefix, state):
    return {f"{prefix}.{k}": v for k, v in state.items()}


# ---- 1. DDIM (ermongroup/ddim): a tiny trained eps-model, generalized_steps with eta = 0 and eta > 0 -------

def get_timestep_embedding(T, timesteps, embedding_dim):
    # ddim/models/diffusion.py
    assert len(timesteps.shape) == 1
    half_dim = embedding_dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = T.exp(T.arange(half_dim, dtype=T.float32) * -emb)
    emb = emb.to(device=timesteps.device)
    emb = timesteps.float()[:, None] * emb[None, :]
    emb = T.cat([T.sin(emb), T.cos(emb)], dim=1)
    if embedding_dim % 2 == 1:  # zero pad
        emb = T.nn.functional.pad(emb, (0, 1, 0, 0))
    return emb


def ddim_model(T, ch=8, in_channels=1, groups=4):
    nn = T.nn

    def nonlinearity(x):
        # swish
        return x * T.sigmoid(x)

    def Normalize(in_channels):
        return nn.GroupNorm(num_groups=groups, num_channels=in_channels, eps=1e-6, affine=True)

    class ResnetBlock(nn.Module):
        def __init__(self, *, in_channels, out_channels=None, dropout, temb_channels=512):
            super().__init__()
            self.in_channels = in_channels
            out_channels = in_channels if out_channels is None else out_channels
            self.out_channels = out_channels
            self.norm1 = Normalize(in_channels)
            self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
            self.temb_proj = nn.Linear(temb_channels, out_channels)
            self.norm2 = Normalize(out_channels)
            self.dropout = nn.Dropout(dropout)
            self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
            if self.in_channels != self.out_channels:
                self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

        def forward(self, x, temb):
            h = x
            h = self.norm1(h)
            h = nonlinearity(h)
            h = self.conv1(h)
            h = h + self.temb_proj(nonlinearity(temb))[:, :, None, None]
            h = self.norm2(h)
            h = nonlinearity(h)
            h = self.dropout(h)
            h = self.conv2(h)
            if self.in_channels != self.out_channels:
                x = self.nin_shortcut(x)
            return x + h

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.ch = ch
            self.temb_ch = self.ch * 4
            # timestep embedding
            self.temb = nn.Module()
            self.temb.dense = nn.ModuleList([nn.Linear(self.ch, self.temb_ch), nn.Linear(self.temb_ch, self.temb_ch)])
            self.conv_in = nn.Conv2d(in_channels, self.ch, kernel_size=3, stride=1, padding=1)
            self.block = ResnetBlock(in_channels=self.ch, out_channels=2 * self.ch, temb_channels=self.temb_ch,
                                     dropout=0.0)
            self.norm_out = Normalize(2 * self.ch)
            self.conv_out = nn.Conv2d(2 * self.ch, in_channels, kernel_size=3, stride=1, padding=1)

        def forward(self, x, t):
            temb = get_timestep_embedding(T, t, self.ch)
            temb = self.temb.dense[0](temb)
            temb = nonlinearity(temb)
            temb = self.temb.dense[1](temb)
            h = self.conv_in(x)
            h = self.block(h, temb)
            h = self.norm_out(h)
            h = nonlinearity(h)
            return self.conv_out(h)

    return Model()


def get_beta_schedule(beta_schedule, *, beta_start, beta_end, num_diffusion_timesteps):
    # ddim/runners/diffusion.py (NumPy, float64)
    if beta_schedule == "quad":
        betas = np.linspace(beta_start ** 0.5, beta_end ** 0.5, num_diffusion_timesteps, dtype=np.float64) ** 2
    elif beta_schedule == "linear":
        betas = np.linspace(beta_start, beta_end, num_diffusion_timesteps, dtype=np.float64)
    else:
        raise NotImplementedError(beta_schedule)
    assert betas.shape == (num_diffusion_timesteps,)
    return betas


def noise_estimation_loss(model, x0, t, e, b, keepdim=False):
    # ddim/functions/losses.py
    a = (1 - b).cumprod(dim=0).index_select(0, t).view(-1, 1, 1, 1)
    x = x0 * a.sqrt() + e * (1.0 - a).sqrt()
    output = model(x, t.float())
    if keepdim:
        return (e - output).square().sum(dim=(1, 2, 3))
    else:
        return (e - output).square().sum(dim=(1, 2, 3)).mean(dim=0)


def compute_alpha(T, beta, t):
    # ddim/functions/denoising.py
    beta = T.cat([T.zeros(1).to(beta.device), beta], dim=0)
    a = (1 - beta).cumprod(dim=0).index_select(0, t + 1).view(-1, 1, 1, 1)
    return a


def generalized_steps(T, x, seq, model, b, randn_like, **kwargs):
    # ddim/functions/denoising.py; `torch.randn_like(x)` is the passed-in randn_like (the draws are NumPy's)
    with T.no_grad():
        n = x.size(0)
        seq_next = [-1] + list(seq[:-1])
        x0_preds = []
        xs = [x]
        for i, j in zip(reversed(seq), reversed(seq_next)):
            t = (T.ones(n) * i).to(x.device)
            next_t = (T.ones(n) * j).to(x.device)
            at = compute_alpha(T, b, t.long())
            at_next = compute_alpha(T, b, next_t.long())
            xt = xs[-1].to(x.device)                            # .to('cuda') in the reference
            et = model(xt, t)
            x0_t = (xt - et * (1 - at).sqrt()) / at.sqrt()
            x0_preds.append(x0_t.to('cpu'))
            c1 = (
                kwargs.get("eta", 0) * ((1 - at / at_next) * (1 - at_next) / (1 - at)).sqrt()
            )
            c2 = ((1 - at_next) - c1 ** 2).sqrt()
            xt_next = at_next.sqrt() * x0_t + c1 * randn_like(x) + c2 * et
            xs.append(xt_next.to('cpu'))
    return xs, x0_preds


def train_ddim(T, device, init, images, ts, noises, latent, sample_noises, eta, skip_type, num_timesteps=100,
               timesteps=5):
    device = device_of(T, device)
    model = ported_model(T, ddim_model, init, device)
    betas = get_beta_schedule("linear", beta_start=0.0001, beta_end=0.02, num_diffusion_timesteps=num_timesteps)
    betas = T.from_numpy(betas).float().to(device)
    optimizer = T.optim.Adam(model.parameters(), lr=2e-3, weight_decay=0.0, betas=(0.9, 0.999), amsgrad=False,
                             eps=1e-8)
    losses = []
    for x, t_half, e in zip(images, ts, noises):
        n = x.shape[0]
        model.train()
        x = T.from_numpy(x).to(device)
        x = 2 * x - 1.0                                         # data_transform
        e = T.from_numpy(e).to(device)
        b = betas
        # antithetic sampling
        t = T.from_numpy(t_half).to(device)
        t = T.cat([t, num_timesteps - t - 1], dim=0)[:n]
        loss = noise_estimation_loss(model, x, t, e, b)
        optimizer.zero_grad()
        loss.backward()
        try:
            T.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        except Exception:
            pass
        optimizer.step()
        losses.append(loss.item())

    model.eval()
    if skip_type == "uniform":
        skip = num_timesteps // timesteps
        seq = range(0, num_timesteps, skip)
    else:
        seq = (np.linspace(0, np.sqrt(num_timesteps * 0.8), timesteps) ** 2)
        seq = [int(s) for s in list(seq)]
    draws = iter(sample_noises)
    x = T.from_numpy(latent).to(device)
    xs, x0_preds = generalized_steps(T, x, seq, model, betas, lambda x: T.from_numpy(next(draws)).to(x.device),
                                     eta=eta)
    assert len(xs) == len(seq) + 1 and not xs[-1].requires_grad
    sample = T.clamp((xs[-1] + 1.0) / 2.0, 0.0, 1.0)          # inverse_data_transform
    return losses, dict(numpy_state(model), sample=sample.numpy(), x0=T.stack(x0_preds).numpy())


@pytest.mark.parametrize("eta, skip_type", [(0.0, "uniform"), (0.5, "uniform"), (1.0, "quad")])
def test_ddim(device, eta, skip_type):
    rng = np.random.default_rng(1)  # seed 0 gives conv2.bias[10] a gradient of 2e-6, which Adam blows up to a step
    steps, n = 3, 4
    images = rng.uniform(0, 1, (steps, n, 1, 4, 4)).astype(np.float32)
    ts = rng.integers(0, 100, (steps, n // 2 + 1))
    noises = rng.standard_normal((steps, n, 1, 4, 4)).astype(np.float32)
    latent = rng.standard_normal((n, 1, 4, 4)).astype(np.float32)
    sample_noises = rng.standard_normal((5, n, 1, 4, 4)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_ddim, device, numpy_state(ddim_model(torch)), images, ts, noises, latent, sample_noises, eta,
             skip_type)


# ---- 2. Classifier-free guidance (TeaPearce/Conditional_Diffusion_MNIST): label dropout, guided sampling ----

def ddpm_schedules(T, beta1, beta2, n_T):
    """Returns pre-computed schedules for DDPM sampling, training process."""
    assert beta1 < beta2 < 1.0, "beta1 and beta2 must be in (0, 1)"
    beta_t = (beta2 - beta1) * T.arange(0, n_T + 1, dtype=T.float32) / n_T + beta1
    sqrt_beta_t = T.sqrt(beta_t)
    alpha_t = 1 - beta_t
    log_alpha_t = T.log(alpha_t)
    alphabar_t = T.cumsum(log_alpha_t, dim=0).exp()
    sqrtab = T.sqrt(alphabar_t)
    oneover_sqrta = 1 / T.sqrt(alpha_t)
    sqrtmab = T.sqrt(1 - alphabar_t)
    mab_over_sqrtmab_inv = (1 - alpha_t) / sqrtmab
    return {
        "alpha_t": alpha_t,  # \alpha_t
        "oneover_sqrta": oneover_sqrta,  # 1/\sqrt{\alpha_t}
        "sqrt_beta_t": sqrt_beta_t,  # \sqrt{\beta_t}
        "alphabar_t": alphabar_t,  # \bar{\alpha_t}
        "sqrtab": sqrtab,  # \sqrt{\bar{\alpha_t}}
        "sqrtmab": sqrtmab,  # \sqrt{1-\bar{\alpha_t}}
        "mab_over_sqrtmab": mab_over_sqrtmab_inv,  # (1-\bar{\alpha_t})/\sqrt{1-\bar{\alpha_t}}
    }


def cfg_ddpm(T, n_feat=16, n_classes=3, n_T=8, betas=(1e-4, 0.02), drop_prob=0.1, size=8):
    # n_feat=16, not 8: GroupNorm(8, n_feat) with one channel a group would zero the preceding conv bias's gradient
    nn = T.nn

    class ResidualConvBlock(nn.Module):
        def __init__(self, in_channels, out_channels, is_res=False):
            super().__init__()
            self.same_channels = in_channels == out_channels
            self.is_res = is_res
            # bias=False here: the reference's conv biases sit right before BatchNorm, where their true gradient is
            # zero and Adam would blow its float noise up into +-lr steps (BatchNorm's shift does their job)
            self.conv1 = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
                                       nn.BatchNorm2d(out_channels), nn.GELU())
            self.conv2 = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
                                       nn.BatchNorm2d(out_channels), nn.GELU())

        def forward(self, x):
            if self.is_res:
                x1 = self.conv1(x)
                x2 = self.conv2(x1)
                # this adds on correct residual in case channels have increased
                if self.same_channels:
                    out = x + x2
                else:
                    out = x1 + x2
                return out / 1.414
            else:
                x1 = self.conv1(x)
                x2 = self.conv2(x1)
                return x2

    class UnetDown(nn.Module):
        def __init__(self, in_channels, out_channels):
            super(UnetDown, self).__init__()
            layers = [ResidualConvBlock(in_channels, out_channels), nn.MaxPool2d(2)]
            self.model = nn.Sequential(*layers)

        def forward(self, x):
            return self.model(x)

    class UnetUp(nn.Module):
        def __init__(self, in_channels, out_channels):
            super(UnetUp, self).__init__()
            layers = [
                nn.ConvTranspose2d(in_channels, out_channels, 2, 2),
                ResidualConvBlock(out_channels, out_channels),
                ResidualConvBlock(out_channels, out_channels),
            ]
            self.model = nn.Sequential(*layers)

        def forward(self, x, skip):
            x = T.cat((x, skip), 1)
            x = self.model(x)
            return x

    class EmbedFC(nn.Module):
        def __init__(self, input_dim, emb_dim):
            super(EmbedFC, self).__init__()
            self.input_dim = input_dim
            layers = [nn.Linear(input_dim, emb_dim), nn.GELU(), nn.Linear(emb_dim, emb_dim)]
            self.model = nn.Sequential(*layers)

        def forward(self, x):
            x = x.view(-1, self.input_dim)
            return self.model(x)

    class ContextUnet(nn.Module):
        def __init__(self, in_channels, n_feat=256, n_classes=10):
            super(ContextUnet, self).__init__()
            self.in_channels = in_channels
            self.n_feat = n_feat
            self.n_classes = n_classes
            self.init_conv = ResidualConvBlock(in_channels, n_feat, is_res=True)
            self.down1 = UnetDown(n_feat, n_feat)
            self.down2 = UnetDown(n_feat, 2 * n_feat)
            self.to_vec = nn.Sequential(nn.AvgPool2d(size // 4), nn.GELU())
            self.timeembed1 = EmbedFC(1, 2 * n_feat)
            self.timeembed2 = EmbedFC(1, 1 * n_feat)
            self.contextembed1 = EmbedFC(n_classes, 2 * n_feat)
            self.contextembed2 = EmbedFC(n_classes, 1 * n_feat)
            self.up0 = nn.Sequential(
                nn.ConvTranspose2d(2 * n_feat, 2 * n_feat, size // 4, size // 4),  # otherwise just have 2*n_feat
                nn.GroupNorm(8, 2 * n_feat),
                nn.ReLU(),
            )
            self.up1 = UnetUp(4 * n_feat, n_feat)
            self.up2 = UnetUp(2 * n_feat, n_feat)
            self.out = nn.Sequential(
                nn.Conv2d(2 * n_feat, n_feat, 3, 1, 1),
                nn.GroupNorm(8, n_feat),
                nn.ReLU(),
                nn.Conv2d(n_feat, self.in_channels, 3, 1, 1),
            )

        def forward(self, x, c, t, context_mask):
            # x is (noisy) image, c is context label, t is timestep,
            # context_mask says which samples to block the context on
            x = self.init_conv(x)
            down1 = self.down1(x)
            down2 = self.down2(down1)
            hiddenvec = self.to_vec(down2)
            # convert context to one hot embedding
            c = nn.functional.one_hot(c, num_classes=self.n_classes).type(T.float)
            # mask out context if context_mask == 1
            context_mask = context_mask[:, None]
            context_mask = context_mask.repeat(1, self.n_classes)
            context_mask = (-1 * (1 - context_mask))  # need to flip 0 <-> 1
            c = c * context_mask
            # embed context, time step
            cemb1 = self.contextembed1(c).view(-1, self.n_feat * 2, 1, 1)
            temb1 = self.timeembed1(t).view(-1, self.n_feat * 2, 1, 1)
            cemb2 = self.contextembed2(c).view(-1, self.n_feat, 1, 1)
            temb2 = self.timeembed2(t).view(-1, self.n_feat, 1, 1)
            up1 = self.up0(hiddenvec)
            up2 = self.up1(cemb1 * up1 + temb1, down2)  # add and multiply embeddings
            up3 = self.up2(cemb2 * up2 + temb2, down1)
            out = self.out(T.cat((up3, x), 1))
            return out

    class DDPM(nn.Module):
        def __init__(self, nn_model, betas, n_T, drop_prob=0.1):
            super(DDPM, self).__init__()
            self.nn_model = nn_model
            # register_buffer allows accessing dictionary produced by ddpm_schedules
            # e.g. can access self.sqrtab later
            for k, v in ddpm_schedules(T, betas[0], betas[1], n_T).items():
                self.register_buffer(k, v)
            self.n_T = n_T
            self.drop_prob = drop_prob
            self.loss_mse = nn.MSELoss()

        def forward(self, x, c, _ts, noise, context_mask):
            """this method is used in training, so samples t and noise randomly"""
            # _ts = torch.randint(1, self.n_T + 1, (x.shape[0],)).to(self.device)  t ~ Uniform(0, n_T): passed in
            # noise = torch.randn_like(x)  # eps ~ N(0, 1): passed in
            x_t = (self.sqrtab[_ts, None, None, None] * x + self.sqrtmab[_ts, None, None, None] * noise)
            # dropout context with some probability:
            # context_mask = torch.bernoulli(torch.zeros_like(c) + self.drop_prob).to(self.device): passed in
            # return MSE between added noise, and our predicted noise
            return self.loss_mse(noise, self.nn_model(x_t, c, _ts / self.n_T, context_mask))

        def sample(self, n_sample, size, device, x_i, zs, guide_w=0.0):
            # we follow the guidance sampling scheme described in 'Classifier-Free Diffusion Guidance'
            # to make the fwd passes efficient, we concat two versions of the dataset,
            # one with context_mask=0 and the other context_mask=1
            # we then mix the outputs with the guidance scale, w
            # where w>0 means more guidance
            # x_i = torch.randn(n_sample, *size).to(device)  # x_T ~ N(0, 1), sample initial noise: passed in
            c_i = T.arange(0, self.nn_model.n_classes).to(device)  # context for us just cycles throught the labels
            c_i = c_i.repeat(int(n_sample / c_i.shape[0]))
            # don't drop context at test time
            context_mask = T.zeros_like(c_i).to(device)
            # double the batch
            c_i = c_i.repeat(2)
            context_mask = context_mask.repeat(2)
            context_mask[n_sample:] = 1.  # makes second half of batch context free
            x_i_store = []  # keep track of generated steps in case want to plot something
            for i in range(self.n_T, 0, -1):
                t_is = T.tensor([i / self.n_T]).to(device)
                t_is = t_is.repeat(n_sample, 1, 1, 1)
                # double batch
                x_i = x_i.repeat(2, 1, 1, 1)
                t_is = t_is.repeat(2, 1, 1, 1)
                z = T.from_numpy(zs[i - 1]).to(device) if i > 1 else 0  # torch.randn(n_sample, *size): passed in
                # split predictions and compute weighting
                eps = self.nn_model(x_i, c_i, t_is, context_mask)
                eps1 = eps[:n_sample]
                eps2 = eps[n_sample:]
                eps = (1 + guide_w) * eps1 - guide_w * eps2
                x_i = x_i[:n_sample]
                x_i = (self.oneover_sqrta[i] * (x_i - eps * self.mab_over_sqrtmab[i]) + self.sqrt_beta_t[i] * z)
                if i % 20 == 0 or i == self.n_T or i < 8:
                    x_i_store.append(x_i.detach().cpu().numpy())
            x_i_store = np.array(x_i_store)
            return x_i, x_i_store

    return DDPM(ContextUnet(in_channels=1, n_feat=n_feat, n_classes=n_classes), betas=betas, n_T=n_T,
                drop_prob=drop_prob)


def train_cfg(T, device, init, xs, cs, ts, noises, masks, x_T, zs, ws, lrate=1e-3):
    device = device_of(T, device)
    ddpm = ported_model(T, cfg_ddpm, init, device)
    optim = T.optim.Adam(ddpm.parameters(), lr=lrate)
    n_epoch, losses, loss_ema = len(xs), [], None
    for ep in range(n_epoch):
        ddpm.train()
        # linear lrate decay
        optim.param_groups[0]['lr'] = lrate * (1 - ep / n_epoch)
        x, c = T.from_numpy(xs[ep]).to(device), T.from_numpy(cs[ep]).to(device)
        optim.zero_grad()
        loss = ddpm(x, c, T.from_numpy(ts[ep]).to(device), T.from_numpy(noises[ep]).to(device),
                    T.from_numpy(masks[ep]).to(device))
        loss.backward()
        if loss_ema is None:
            loss_ema = loss.item()
        else:
            loss_ema = 0.95 * loss_ema + 0.05 * loss.item()
        optim.step()
        losses += [loss.item(), loss_ema]
    # for eval, save an image of currently generated samples (top rows)
    # followed by real images (bottom rows)
    ddpm.eval()
    out = numpy_state(ddpm)
    with T.no_grad():
        n_sample = x_T.shape[0]
        for w_i, w in enumerate(ws):
            x_gen, x_gen_store = ddpm.sample(n_sample, (1, 8, 8), device, T.from_numpy(x_T).to(device), zs,
                                             guide_w=w)
            out[f"x_gen_{w}"], out[f"x_gen_store_{w}"] = x_gen.cpu().numpy(), x_gen_store
    return losses, out


def test_classifier_free_guidance(device):
    rng = np.random.default_rng(2)
    epochs, b, n_T, n_classes = 3, 6, 8, 3
    xs = rng.uniform(0, 1, (epochs, b, 1, 8, 8)).astype(np.float32)
    cs = rng.integers(0, n_classes, (epochs, b))
    ts = rng.integers(1, n_T + 1, (epochs, b))
    noises = rng.standard_normal((epochs, b, 1, 8, 8)).astype(np.float32)
    masks = (rng.random((epochs, b)) < 0.3).astype(np.float32)  # torch.bernoulli(zeros_like(c) + drop_prob)
    masks[:, 0] = 1.0
    x_T = rng.standard_normal((n_classes, 1, 8, 8)).astype(np.float32)
    zs = rng.standard_normal((n_T, n_classes, 1, 8, 8)).astype(np.float32)
    torch.manual_seed(0)
    ddpm = cfg_ddpm(torch)
    # He-normal convs: at PyTorch's default init the four conv+BatchNorm+GELU blocks of the up path shrink the
    # context's effect on eps to 1e-5, and guidance would change nothing worth comparing
    for module in ddpm.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    got = run_both(train_cfg, device, numpy_state(ddpm), xs, cs, ts, noises, masks, x_T, zs, [0.0, 0.5, 2.0])
    assert np.abs(got[1]["x_gen_2.0"] - got[1]["x_gen_0.0"]).max() > 1e-2   # the guidance weight matters


# ---- 3. EDM (NVlabs/edm): EDMPrecond, EDMLoss with log-normal sigmas, lr ramp-up, EMA, the Heun sampler -----

def weight_init(T, shape, mode, fan_in, fan_out):
    # edm/training/networks.py
    if mode == 'xavier_uniform':
        return np.sqrt(6 / (fan_in + fan_out)) * (T.rand(*shape) * 2 - 1)
    if mode == 'xavier_normal':
        return np.sqrt(2 / (fan_in + fan_out)) * T.randn(*shape)
    if mode == 'kaiming_uniform':
        return np.sqrt(3 / fan_in) * (T.rand(*shape) * 2 - 1)
    if mode == 'kaiming_normal':
        return np.sqrt(1 / fan_in) * T.randn(*shape)
    raise ValueError(f'Invalid init mode "{mode}"')


def edm_net(T, img_resolution=8, img_channels=1, label_dim=3, model_channels=8, sigma_data=0.5,
            embedding_type='positional'):
    nn = T.nn
    silu = T.nn.functional.silu

    class Linear(nn.Module):
        def __init__(self, in_features, out_features, bias=True, init_mode='kaiming_normal', init_weight=1,
                     init_bias=0):
            super().__init__()
            self.in_features = in_features
            self.out_features = out_features
            init_kwargs = dict(mode=init_mode, fan_in=in_features, fan_out=out_features)
            self.weight = nn.Parameter(weight_init(T, [out_features, in_features], **init_kwargs) * init_weight)
            self.bias = nn.Parameter(weight_init(T, [out_features], **init_kwargs) * init_bias) if bias else None

        def forward(self, x):
            x = x @ self.weight.to(x.dtype).t()
            if self.bias is not None:
                x = x.add_(self.bias.to(x.dtype))
            return x

    class Conv2d(nn.Module):
        def __init__(self, in_channels, out_channels, kernel, bias=True, up=False, down=False, resample_filter=[1, 1],
                     init_mode='kaiming_normal', init_weight=1, init_bias=0):
            assert not (up and down)
            super().__init__()
            self.in_channels = in_channels
            self.out_channels = out_channels
            self.up = up
            self.down = down
            init_kwargs = dict(mode=init_mode, fan_in=in_channels * kernel * kernel,
                               fan_out=out_channels * kernel * kernel)
            self.weight = nn.Parameter(
                weight_init(T, [out_channels, in_channels, kernel, kernel], **init_kwargs) * init_weight) \
                if kernel else None
            self.bias = nn.Parameter(weight_init(T, [out_channels], **init_kwargs) * init_bias) \
                if kernel and bias else None
            f = T.as_tensor(resample_filter, dtype=T.float32)
            f = f.ger(f).unsqueeze(0).unsqueeze(1) / f.sum().square()
            self.register_buffer('resample_filter', f if up or down else None)

        def forward(self, x):
            w = self.weight.to(x.dtype) if self.weight is not None else None
            b = self.bias.to(x.dtype) if self.bias is not None else None
            f = self.resample_filter.to(x.dtype) if self.resample_filter is not None else None
            w_pad = w.shape[-1] // 2 if w is not None else 0
            f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0
            if self.up:
                x = T.nn.functional.conv_transpose2d(x, f.mul(4).tile([self.in_channels, 1, 1, 1]),
                                                     groups=self.in_channels, stride=2, padding=f_pad)
            if self.down:
                x = T.nn.functional.conv2d(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2,
                                           padding=f_pad)
            if w is not None:
                x = T.nn.functional.conv2d(x, w, padding=w_pad)
            if b is not None:
                x = x.add_(b.reshape(1, -1, 1, 1))
            return x

    class GroupNorm(nn.Module):
        def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
            super().__init__()
            self.num_groups = min(num_groups, num_channels // min_channels_per_group)
            self.eps = eps
            self.weight = nn.Parameter(T.ones(num_channels))
            self.bias = nn.Parameter(T.zeros(num_channels))

        def forward(self, x):
            x = T.nn.functional.group_norm(x, num_groups=self.num_groups, weight=self.weight.to(x.dtype),
                                           bias=self.bias.to(x.dtype), eps=self.eps)
            return x

    class UNetBlock(nn.Module):
        def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False, dropout=0, skip_scale=1,
                     eps=1e-5, resample_filter=[1, 1], resample_proj=False, adaptive_scale=True, init=dict(),
                     init_zero=dict(init_weight=0)):
            super().__init__()
            self.in_channels = in_channels
            self.out_channels = out_channels
            self.emb_channels = emb_channels
            self.dropout = dropout
            self.skip_scale = skip_scale
            self.adaptive_scale = adaptive_scale
            self.norm0 = GroupNorm(num_channels=in_channels, eps=eps)
            self.conv0 = Conv2d(in_channels=in_channels, out_channels=out_channels, kernel=3, up=up, down=down,
                                resample_filter=resample_filter, **init)
            self.affine = Linear(in_features=emb_channels, out_features=out_channels * (2 if adaptive_scale else 1),
                                 **init)
            self.norm1 = GroupNorm(num_channels=out_channels, eps=eps)
            self.conv1 = Conv2d(in_channels=out_channels, out_channels=out_channels, kernel=3, **init_zero)
            self.skip = None
            if out_channels != in_channels or up or down:
                kernel = 1 if resample_proj or out_channels != in_channels else 0
                self.skip = Conv2d(in_channels=in_channels, out_channels=out_channels, kernel=kernel, up=up, down=down,
                                   resample_filter=resample_filter, **init)

        def forward(self, x, emb):
            orig = x
            x = self.conv0(silu(self.norm0(x)))
            params = self.affine(emb).unsqueeze(2).unsqueeze(3).to(x.dtype)
            if self.adaptive_scale:
                scale, shift = params.chunk(chunks=2, dim=1)
                x = silu(T.addcmul(shift, self.norm1(x), scale + 1))
            else:
                x = silu(self.norm1(x.add_(params)))
            x = self.conv1(T.nn.functional.dropout(x, p=self.dropout, training=self.training))
            x = x.add_(self.skip(orig) if self.skip is not None else orig)
            x = x * self.skip_scale
            return x

    class PositionalEmbedding(nn.Module):
        def __init__(self, num_channels, max_positions=10000, endpoint=False):
            super().__init__()
            self.num_channels = num_channels
            self.max_positions = max_positions
            self.endpoint = endpoint

        def forward(self, x):
            freqs = T.arange(start=0, end=self.num_channels // 2, dtype=T.float32, device=x.device)
            freqs = freqs / (self.num_channels // 2 - (1 if self.endpoint else 0))
            freqs = (1 / self.max_positions) ** freqs
            x = x.ger(freqs.to(x.dtype))
            x = T.cat([x.cos(), x.sin()], dim=1)
            return x

    class FourierEmbedding(nn.Module):
        def __init__(self, num_channels, scale=16):
            super().__init__()
            self.register_buffer('freqs', T.randn(num_channels // 2) * scale)

        def forward(self, x):
            x = x.ger((2 * np.pi * self.freqs).to(x.dtype))
            x = T.cat([x.cos(), x.sin()], dim=1)
            return x

    class TinySongUNet(nn.Module):
        # SongUNet's mapping network and one down / one up UNetBlock (no attention)
        def __init__(self, in_channels, out_channels, label_dim=0, channel_mult_emb=2):
            super().__init__()
            emb_channels = model_channels * channel_mult_emb
            noise_channels = model_channels
            init = dict(init_mode='xavier_uniform')
            init_zero = dict(init_mode='xavier_uniform', init_weight=1e-5)
            block_kwargs = dict(emb_channels=emb_channels, init=init, init_zero=init_zero, skip_scale=np.sqrt(0.5))
            self.map_noise = PositionalEmbedding(num_channels=noise_channels, endpoint=True) \
                if embedding_type == 'positional' else FourierEmbedding(num_channels=noise_channels)
            self.map_label = Linear(in_features=label_dim, out_features=noise_channels, **init) if label_dim else None
            self.map_layer0 = Linear(in_features=noise_channels, out_features=emb_channels, **init)
            self.map_layer1 = Linear(in_features=emb_channels, out_features=emb_channels, **init)
            self.enc_conv = Conv2d(in_channels=in_channels, out_channels=model_channels, kernel=3, **init)
            self.enc_down = UNetBlock(in_channels=model_channels, out_channels=model_channels, down=True,
                                      **block_kwargs)
            self.dec_up = UNetBlock(in_channels=model_channels, out_channels=model_channels, up=True,
                                    adaptive_scale=False, **block_kwargs)
            self.out_norm = GroupNorm(num_channels=model_channels, eps=1e-6)
            self.out_conv = Conv2d(in_channels=model_channels, out_channels=out_channels, kernel=3, **init_zero)

        def forward(self, x, noise_labels, class_labels, augment_labels=None):
            # Mapping.
            emb = self.map_noise(noise_labels)
            emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # swap sin/cos
            if self.map_label is not None:
                tmp = class_labels
                emb = emb + self.map_label(tmp * np.sqrt(self.map_label.in_features))
            emb = silu(self.map_layer0(emb))
            emb = silu(self.map_layer1(emb))
            x = self.enc_conv(x)
            x = self.enc_down(x, emb)
            x = self.dec_up(x, emb)
            return self.out_conv(silu(self.out_norm(x)))

    class EDMPrecond(nn.Module):
        def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, sigma_min=0,
                     sigma_max=float('inf'), sigma_data=0.5):
            super().__init__()
            self.img_resolution = img_resolution
            self.img_channels = img_channels
            self.label_dim = label_dim
            self.use_fp16 = use_fp16
            self.sigma_min = sigma_min
            self.sigma_max = sigma_max
            self.sigma_data = sigma_data
            self.model = TinySongUNet(in_channels=img_channels, out_channels=img_channels, label_dim=label_dim)

        def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
            x = x.to(T.float32)
            sigma = sigma.to(T.float32).reshape(-1, 1, 1, 1)
            class_labels = None if self.label_dim == 0 else T.zeros([1, self.label_dim], device=x.device) \
                if class_labels is None else class_labels.to(T.float32).reshape(-1, self.label_dim)
            dtype = T.float16 if (self.use_fp16 and not force_fp32 and x.device.type == 'cuda') else T.float32

            c_skip = self.sigma_data ** 2 / (sigma ** 2 + self.sigma_data ** 2)
            c_out = sigma * self.sigma_data / (sigma ** 2 + self.sigma_data ** 2).sqrt()
            c_in = 1 / (self.sigma_data ** 2 + sigma ** 2).sqrt()
            c_noise = sigma.log() / 4

            F_x = self.model((c_in * x).to(dtype), c_noise.flatten(), class_labels=class_labels, **model_kwargs)
            assert F_x.dtype == dtype
            D_x = c_skip * x + c_out * F_x.to(T.float32)
            return D_x

        def round_sigma(self, sigma):
            return T.as_tensor(sigma)

    return EDMPrecond(img_resolution, img_channels, label_dim=label_dim, sigma_data=sigma_data)


class EDMLoss:
    # edm/training/loss.py; the two torch.randn draws are passed in
    def __init__(self, P_mean=-1.2, P_std=1.2, sigma_data=0.5):
        self.P_mean = P_mean
        self.P_std = P_std
        self.sigma_data = sigma_data

    def __call__(self, net, images, rnd_normal, randn_like, labels=None, augment_pipe=None):
        # rnd_normal = torch.randn([images.shape[0], 1, 1, 1], device=images.device)
        sigma = (rnd_normal * self.P_std + self.P_mean).exp()
        weight = (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2
        y, augment_labels = augment_pipe(images) if augment_pipe is not None else (images, None)
        n = randn_like(y) * sigma
        D_yn = net(y + n, sigma, labels)
        loss = weight * ((D_yn - y) ** 2)
        return loss


def edm_sampler(T, net, latents, class_labels=None, randn_like=None, num_steps=18, sigma_min=0.002, sigma_max=80,
                rho=7, S_churn=0, S_min=0, S_max=float('inf'), S_noise=1):
    # edm/generate.py (whose default is randn_like=torch.randn_like)
    randn_like = T.randn_like if randn_like is None else randn_like
    # Adjust noise levels based on what's supported by the network.
    sigma_min = max(sigma_min, net.sigma_min)
    sigma_max = min(sigma_max, net.sigma_max)

    # Time step discretization.
    step_indices = T.arange(num_steps, dtype=T.float64, device=latents.device)
    t_steps = (sigma_max ** (1 / rho) + step_indices / (num_steps - 1) * (
        sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    t_steps = T.cat([net.round_sigma(t_steps), T.zeros_like(t_steps[:1])])  # t_N = 0

    # Main sampling loop.
    x_next = latents.to(T.float64) * t_steps[0]
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):  # 0, ..., N-1
        x_cur = x_next

        # Increase noise temporarily.
        gamma = min(S_churn / num_steps, np.sqrt(2) - 1) if S_min <= t_cur <= S_max else 0
        t_hat = net.round_sigma(t_cur + gamma * t_cur)
        x_hat = x_cur + (t_hat ** 2 - t_cur ** 2).sqrt() * S_noise * randn_like(x_cur)

        # Euler step.
        denoised = net(x_hat, t_hat, class_labels).to(T.float64)
        d_cur = (x_hat - denoised) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur

        # Apply 2nd order correction.
        if i < num_steps - 1:
            denoised = net(x_next, t_next, class_labels).to(T.float64)
            d_prime = (x_next - denoised) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)

    return x_next


def train_edm(T, device, init, images, labels, rnd_normals, noises, latents, class_idx, churn_noises,
              embedding_type, lr=1e-3, lr_rampup_kimg=0.008, ema_halflife_kimg=0.5, ema_rampup_ratio=0.05):
    device = device_of(T, device)
    net = ported_model(T, lambda T: edm_net(T, embedding_type=embedding_type), init, device)
    net.train().requires_grad_(True)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    optimizer = T.optim.Adam(params=net.parameters(), lr=lr, betas=[0.9, 0.999], eps=1e-8)
    loss_fn = EDMLoss()
    batch_size, loss_scaling, cur_nimg, losses = images.shape[1], 1, 0, []
    for images_np, labels_np, rnd_normal, noise in zip(images, labels, rnd_normals, noises):
        # Accumulate gradients.
        optimizer.zero_grad(set_to_none=True)
        images_t = T.from_numpy(images_np).to(device).to(T.float32) / 127.5 - 1
        labels_t = T.from_numpy(labels_np).to(device)
        loss = loss_fn(net=net, images=images_t, labels=labels_t, rnd_normal=T.from_numpy(rnd_normal).to(device),
                       randn_like=lambda y: T.from_numpy(noise).to(y.device))
        loss.sum().mul(loss_scaling / batch_size).backward()
        losses.append(loss.mean().item())

        # Update weights.
        for g in optimizer.param_groups:
            g['lr'] = lr * min(cur_nimg / max(lr_rampup_kimg * 1000, 1e-8), 1)
        for param in net.parameters():
            if param.grad is not None:
                # torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad): no out= (README)
                param.grad.nan_to_num_(nan=0, posinf=1e5, neginf=-1e5)
        optimizer.step()

        # Update EMA.
        ema_halflife_nimg = ema_halflife_kimg * 1000
        if ema_rampup_ratio is not None:
            ema_halflife_nimg = min(ema_halflife_nimg, cur_nimg * ema_rampup_ratio)
        ema_beta = 0.5 ** (batch_size / max(ema_halflife_nimg, 1e-8))
        for p_ema, p_net in zip(ema.parameters(), net.parameters()):
            p_ema.copy_(p_net.detach().lerp(p_ema, ema_beta))
        cur_nimg += batch_size

    # generate.py: one-hot class labels, the deterministic and the stochastic (S_churn) sampler
    class_labels = T.eye(ema.label_dim, device=device)[T.from_numpy(class_idx).to(device)]
    draws = iter(churn_noises)
    x_det = edm_sampler(T, ema, T.from_numpy(latents).to(device), class_labels, num_steps=5)
    x_sto = edm_sampler(T, ema, T.from_numpy(latents).to(device), class_labels, num_steps=5, S_churn=2.0,
                        S_min=0.01, S_max=50, randn_like=lambda x: T.from_numpy(next(draws)).to(x.device))
    assert x_det.dtype == T.float64
    images_out = (x_sto * 127.5 + 128).clip(0, 255).to(T.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return losses, dict(prefixed("ema", numpy_state(ema)), **numpy_state(net), x_det=x_det.cpu().numpy(),
                        x_sto=x_sto.cpu().numpy(), images=images_out)


@pytest.mark.parametrize("embedding_type", ["positional", "fourier"])
def test_edm(device, embedding_type):
    rng = np.random.default_rng(3)
    steps, b = 3, 4
    images = rng.integers(0, 256, (steps, b, 1, 8, 8)).astype(np.uint8)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (steps, b))]
    rnd_normals = rng.standard_normal((steps, b, 1, 1, 1)).astype(np.float32)
    noises = rng.standard_normal((steps, b, 1, 8, 8)).astype(np.float32)
    latents = rng.standard_normal((b, 1, 8, 8)).astype(np.float32)
    class_idx = rng.integers(0, 3, b)
    churn_noises = rng.standard_normal((5, b, 1, 8, 8))
    torch.manual_seed(0)
    run_both(train_edm, device, numpy_state(edm_net(torch, embedding_type=embedding_type)), images, labels,
             rnd_normals, noises, latents, class_idx, churn_noises, embedding_type)


# ---- 4. Score matching on 2-D data (acids-ircam/diffusion_models, ermongroup/ncsn): DSM, sliced, exact, NCSN ----

def score_net(T, conditional, hidden=16, num_classes=4):
    nn, F = T.nn, T.nn.functional
    if not conditional:
        return nn.Sequential(nn.Linear(2, hidden), nn.Softplus(), nn.Linear(hidden, hidden), nn.Softplus(),
                             nn.Linear(hidden, 2))

    class ConditionalLinear(nn.Module):
        def __init__(self, num_in, num_out, num_classes):
            super().__init__()
            self.num_out = num_out
            self.lin = nn.Linear(num_in, num_out)
            self.embed = nn.Embedding(num_classes, num_out)
            with T.no_grad():                                   # self.embed.weight.data.uniform_(): .data is
                self.embed.weight.uniform_()                    # the raw array in raygrad (README)

        def forward(self, x, y):
            out = self.lin(x)
            gamma = self.embed(y)
            out = gamma.view(-1, self.num_out) * out
            return out

    class ConditionalModel(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.lin1 = ConditionalLinear(2, hidden, num_classes)
            self.lin2 = ConditionalLinear(hidden, hidden, num_classes)
            self.lin3 = nn.Linear(hidden, 2)

        def forward(self, x, y):
            x = F.softplus(self.lin1(x, y))
            x = F.softplus(self.lin2(x, y))
            return self.lin3(x)

    return ConditionalModel(num_classes)


def denoising_score_matching(T, scorenet, samples, noise, sigma=0.01):
    perturbed_samples = samples + noise * sigma                 # torch.randn_like(samples) passed in
    target = - 1 / (sigma ** 2) * (perturbed_samples - samples)
    scores = scorenet(perturbed_samples)
    target = target.view(target.shape[0], -1)
    scores = scores.view(scores.shape[0], -1)
    loss = 1 / 2. * ((scores - target) ** 2).sum(dim=-1).mean(dim=0)
    return loss


def sliced_score_matching(T, model, samples, vectors):
    samples.requires_grad_(True)
    # Construct random vectors (torch.randn_like(samples), passed in)
    vectors = vectors / T.norm(vectors, dim=-1, keepdim=True)
    # Compute the optimized vector-product jacobian
    logp, jvp = T.autograd.functional.jvp(model, samples, vectors, create_graph=True)
    # Compute the norm loss
    norm_loss = (logp * vectors) ** 2 / 2.
    # Compute the Jacobian-vector product loss
    v_jvp = jvp * vectors
    jacob_loss = v_jvp
    loss = jacob_loss + norm_loss
    return loss.mean(-1).mean(-1)


def jacobian(T, f, x):
    """Computes the Jacobian of f w.r.t x: [B, N] -> [B, N, N]."""
    B, N = x.shape
    y = f(x)
    jacobian = list()
    for i in range(N):
        v = T.zeros_like(y)
        v[:, i] = 1.
        dy_i_dx = T.autograd.grad(y, x, grad_outputs=v, retain_graph=True, create_graph=True, allow_unused=True)[0]
        jacobian.append(dy_i_dx)
    jacobian = T.stack(jacobian, dim=2).requires_grad_()
    return jacobian


def score_matching(T, model, samples, train=False):
    samples.requires_grad_(True)
    logp = model(samples)
    # Compute the norm loss
    norm_loss = T.norm(logp, dim=-1) ** 2 / 2.
    # Compute the Jacobian loss
    jacob_mat = jacobian(T, model, samples)
    tr_jacobian_loss = T.diagonal(jacob_mat, dim1=-2, dim2=-1).sum(-1)
    return (tr_jacobian_loss + norm_loss).mean(-1)


def anneal_dsm_score_estimation(T, scorenet, samples, labels, sigmas, noise, anneal_power=2.):
    # ncsn/losses/dsm.py
    used_sigmas = sigmas[labels].view(samples.shape[0], *([1] * len(samples.shape[1:])))
    perturbed_samples = samples + noise * used_sigmas           # torch.randn_like(samples) passed in
    target = - 1 / (used_sigmas ** 2) * (perturbed_samples - samples)
    scores = scorenet(perturbed_samples, labels)
    target = target.view(target.shape[0], -1)
    scores = scores.view(scores.shape[0], -1)
    loss = 1 / 2. * ((scores - target) ** 2).sum(dim=-1) * used_sigmas.squeeze() ** anneal_power
    return loss.mean(dim=0)


def sample_langevin(T, model, x, zs, n_steps=10, eps=1e-2, decay=.9, temperature=1.0):
    x_sequence = [x.unsqueeze(0)]
    for s in range(n_steps):
        z_t = T.from_numpy(zs[s]).to(x.device)                 # torch.rand(x.size()) in the notebook
        x = x + (eps / 2) * model(x) + (np.sqrt(eps) * temperature * z_t)
        x_sequence.append(x.unsqueeze(0))
        eps *= decay
    return T.cat(x_sequence)


def anneal_Langevin_dynamics(T, x_mod, scorenet, sigmas, noises, n_steps_each=100, step_lr=0.00002):
    # ncsn/runners/anneal_runner.py
    images = []
    with T.no_grad():
        for c, sigma in enumerate(sigmas):
            labels = T.ones(x_mod.shape[0], device=x_mod.device) * c
            labels = labels.long()
            step_size = step_lr * (sigma / sigmas[-1]) ** 2
            for s in range(n_steps_each):
                images.append(T.clamp(x_mod, 0.0, 1.0).to('cpu'))
                noise = T.from_numpy(noises[c, s]).to(x_mod.device) * np.sqrt(step_size * 2)  # torch.randn_like
                grad = scorenet(x_mod, labels)
                x_mod = x_mod + step_size * grad + noise
        return images


def train_score(T, device, init, data, draws, x0, sample_draws, mode, sigma_begin=1, sigma_end=0.01,
                num_classes=4):
    device = device_of(T, device)
    model = ported_model(T, lambda T: score_net(T, mode == "anneal"), init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=1e-3)
    dataset = T.tensor(data.T).float().to(device)
    sigmas = T.tensor(np.exp(np.linspace(np.log(sigma_begin), np.log(sigma_end), num_classes))).float().to(device)
    losses = []
    for draw in draws:
        samples = dataset                                      # the notebook passes its one dataset tensor
        if mode == "dsm":
            loss = denoising_score_matching(T, model, samples, T.from_numpy(draw["noise"]).to(device))
        elif mode == "sliced":
            loss = sliced_score_matching(T, model, samples, T.from_numpy(draw["noise"]).to(device))
        elif mode == "exact":
            loss = score_matching(T, model, samples)
        else:
            labels = T.from_numpy(draw["labels"]).to(device)   # torch.randint(0, len(sigmas), (n,))
            noise = T.from_numpy(draw["noise"]).to(device)
            loss = anneal_dsm_score_estimation(T, model, samples, labels, sigmas, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    x = T.from_numpy(x0).to(device)
    if mode == "anneal":
        images = anneal_Langevin_dynamics(T, x, model, sigmas, sample_draws, n_steps_each=sample_draws.shape[1],
                                          step_lr=0.00002)
        samples = T.stack(images)
    else:
        samples = sample_langevin(T, model, x, sample_draws[0]).detach()
    return losses, dict(numpy_state(model), samples=samples.cpu().numpy())


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # torch's, on np.sqrt(0-d tensor)
@pytest.mark.parametrize("mode", ["dsm", "sliced", "exact", "anneal"])
def test_score_matching_2d(device, mode):
    rng = np.random.default_rng(4)
    n, steps = 32, 4
    theta = rng.uniform(0, 4 * np.pi, n)                       # a 2-D swiss roll, as in the notebook (2, n)
    data = (np.stack([theta * np.cos(theta), theta * np.sin(theta)]) / 10 + 0.05 * rng.standard_normal((2, n)))
    draws = [dict(noise=rng.standard_normal((n, 2)).astype(np.float32), labels=rng.integers(0, 4, n))
             for _ in range(steps)]
    x0 = rng.uniform(0, 1, (8, 2)).astype(np.float32)
    sample_draws = rng.standard_normal((4, 5 if mode == "anneal" else 10, 8, 2)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_score, device, numpy_state(score_net(torch, mode == "anneal")), data, draws, x0, sample_draws,
             mode)


# ---- 5. MADE (karpathy/pytorch-made) and MAF (ikostrikov/pytorch-flows): masked Linear, orderings, log-lik ----

def karpathy_made(T, nin=6, hidden_sizes=(12, 12), nout=6, num_masks=2, natural_ordering=False):
    nn, F = T.nn, T.nn.functional

    class MaskedLinear(nn.Linear):
        """ same as Linear except has a configurable mask on the weights """

        def __init__(self, in_features, out_features, bias=True):
            super().__init__(in_features, out_features, bias)
            self.register_buffer('mask', T.ones(out_features, in_features))

        def set_mask(self, mask):
            # self.mask.data.copy_(torch.from_numpy(mask.astype(np.uint8).T)): .data is the raw array (README)
            with T.no_grad():
                self.mask.copy_(T.from_numpy(mask.astype(np.uint8).T))

        def forward(self, input):
            return F.linear(input, self.mask * self.weight, self.bias)

    class MADE(nn.Module):
        def __init__(self, nin, hidden_sizes, nout, num_masks=1, natural_ordering=False):
            super().__init__()
            self.nin = nin
            self.nout = nout
            self.hidden_sizes = hidden_sizes
            assert self.nout % self.nin == 0, "nout must be integer multiple of nin"
            # define a simple MLP neural net
            self.net = []
            hs = [nin] + hidden_sizes + [nout]
            for h0, h1 in zip(hs, hs[1:]):
                self.net.extend([
                    MaskedLinear(h0, h1),
                    nn.ReLU(),
                ])
            self.net.pop()  # pop the last ReLU for the output layer
            self.net = nn.Sequential(*self.net)
            # seeds for orders/connectivities of the model ensemble
            self.natural_ordering = natural_ordering
            self.num_masks = num_masks
            self.seed = 0  # for cycling through num_masks orderings
            self.m = {}
            self.update_masks()  # builds the initial self.m connectivity
            # note, we could also precompute the masks and cache them, but this
            # could get memory expensive for large number of masks.

        def update_masks(self):
            if self.m and self.num_masks == 1:
                return  # only a single seed, skip for efficiency
            L = len(self.hidden_sizes)
            # fetch the next seed and construct a random stream
            rng = np.random.RandomState(self.seed)
            self.seed = (self.seed + 1) % self.num_masks
            # sample the order of the inputs and the connectivity of all neurons
            self.m[-1] = np.arange(self.nin) if self.natural_ordering else rng.permutation(self.nin)
            for l in range(L):
                self.m[l] = rng.randint(self.m[l - 1].min(), self.nin - 1, size=self.hidden_sizes[l])
            # construct the mask matrices
            masks = [self.m[l - 1][:, None] <= self.m[l][None, :] for l in range(L)]
            masks.append(self.m[L - 1][:, None] < self.m[-1][None, :])
            # handle the case where nout = nin * k, for integer k > 1
            if self.nout > self.nin:
                k = int(self.nout / self.nin)
                # replicate the mask across the other outputs
                masks[-1] = np.concatenate([masks[-1]] * k, axis=1)
            # set the masks in all MaskedLinear layers
            layers = [l for l in self.net.modules() if isinstance(l, MaskedLinear)]
            for l, m in zip(layers, masks):
                l.set_mask(m)

        def forward(self, x):
            return self.net(x)

    return MADE(nin, list(hidden_sizes), nout, num_masks=num_masks, natural_ordering=natural_ordering)


def train_karpathy_made(T, device, init, xtr, xte, epochs=2, resample_every=1, samples=2):
    device = device_of(T, device)
    model = ported_model(T, karpathy_made, init, device)
    assert model.seed == 1 and (model.net[0].mask == T.tensor(init["net.0.mask"]).to(device)).all()
    xtr, xte = T.from_numpy(xtr).to(device), T.from_numpy(xte).to(device)
    opt = T.optim.Adam(model.parameters(), 1e-2, weight_decay=1e-4)
    scheduler = T.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    Variable, F = T.autograd.Variable, T.nn.functional

    def run_epoch(split, upto=None):
        T.set_grad_enabled(split == 'train')  # enable/disable grad for efficiency of forwarding test batches
        model.train() if split == 'train' else model.eval()
        nsamples = 1 if split == 'train' else samples
        x = xtr if split == 'train' else xte
        N, D = x.size()
        B = 8  # batch size
        nsteps = N // B if upto is None else min(N // B, upto)
        lossfs = []
        for step in range(nsteps):
            # fetch the next batch of data
            xb = Variable(x[step * B:step * B + B])
            # get the logits, potentially run the same batch a number of times, resampling each time
            xbhat = T.zeros_like(xb)
            for s in range(nsamples):
                # perform order/connectivity-agnostic training by resampling the masks
                if step % resample_every == 0 or split == 'test':  # if in test, cycle masks every time
                    model.update_masks()
                # forward the model
                xbhat += model(xb)
            xbhat /= nsamples
            # evaluate the binary cross entropy loss
            loss = F.binary_cross_entropy_with_logits(xbhat, xb, size_average=False) / B
            lossf = loss.data.item()
            lossfs.append(lossf)
            # backward/update
            if split == 'train':
                opt.zero_grad()
                loss.backward()
                opt.step()
        return lossfs

    losses = []
    try:
        for epoch in range(epochs):
            scheduler.step(epoch)
            losses += run_epoch('test', upto=1)  # run only a few batches for approximate test accuracy
            losses += run_epoch('train')
        losses += run_epoch('test')
    finally:
        T.set_grad_enabled(True)
    return losses, dict(numpy_state(model), seed=np.array(model.seed))  # the state holds the last masks


def pytorch_flows_maf(T, num_inputs=3, num_hidden=8, num_cond_inputs=1, num_blocks=2, act='relu'):
    nn, F = T.nn, T.nn.functional

    def get_mask(in_features, out_features, in_flow_features, mask_type=None):
        """
        mask_type: input | None | output
        See Figure 1 for a better illustration:
        https://arxiv.org/pdf/1502.03509.pdf
        """
        if mask_type == 'input':
            in_degrees = T.arange(in_features) % in_flow_features
        else:
            in_degrees = T.arange(in_features) % (in_flow_features - 1)
        if mask_type == 'output':
            out_degrees = T.arange(out_features) % in_flow_features - 1
        else:
            out_degrees = T.arange(out_features) % (in_flow_features - 1)
        return (out_degrees.unsqueeze(-1) >= in_degrees.unsqueeze(0)).float()

    class MaskedLinear(nn.Module):
        def __init__(self, in_features, out_features, mask, cond_in_features=None, bias=True):
            super(MaskedLinear, self).__init__()
            self.linear = nn.Linear(in_features, out_features)
            if cond_in_features is not None:
                self.cond_linear = nn.Linear(cond_in_features, out_features, bias=False)
            self.register_buffer('mask', mask)

        def forward(self, inputs, cond_inputs=None):
            output = F.linear(inputs, self.linear.weight * self.mask, self.linear.bias)
            if cond_inputs is not None:
                output += self.cond_linear(cond_inputs)
            return output

    class MADE(nn.Module):
        """ An implementation of MADE
        (https://arxiv.org/abs/1502.03509).
        """

        def __init__(self, num_inputs, num_hidden, num_cond_inputs=None, act='relu', pre_exp_tanh=False):
            super(MADE, self).__init__()
            activations = {'relu': nn.ReLU, 'sigmoid': nn.Sigmoid, 'tanh': nn.Tanh}
            act_func = activations[act]
            input_mask = get_mask(num_inputs, num_hidden, num_inputs, mask_type='input')
            hidden_mask = get_mask(num_hidden, num_hidden, num_inputs)
            output_mask = get_mask(num_hidden, num_inputs * 2, num_inputs, mask_type='output')
            self.joiner = MaskedLinear(num_inputs, num_hidden, input_mask, num_cond_inputs)
            self.trunk = nn.Sequential(act_func(), MaskedLinear(num_hidden, num_hidden, hidden_mask), act_func(),
                                       MaskedLinear(num_hidden, num_inputs * 2, output_mask))

        def forward(self, inputs, cond_inputs=None, mode='direct'):
            if mode == 'direct':
                h = self.joiner(inputs, cond_inputs)
                m, a = self.trunk(h).chunk(2, 1)
                u = (inputs - m) * T.exp(-a)
                return u, -a.sum(-1, keepdim=True)
            else:
                x = T.zeros_like(inputs)
                for i_col in range(inputs.shape[1]):
                    h = self.joiner(x, cond_inputs)
                    m, a = self.trunk(h).chunk(2, 1)
                    x[:, i_col] = inputs[:, i_col] * T.exp(a[:, i_col]) + m[:, i_col]
                return x, -a.sum(-1, keepdim=True)

    class BatchNormFlow(nn.Module):
        """ An implementation of a batch normalization layer from
        Density estimation using Real NVP
        (https://arxiv.org/abs/1605.08803).
        """

        def __init__(self, num_inputs, momentum=0.0, eps=1e-5):
            super(BatchNormFlow, self).__init__()
            self.log_gamma = nn.Parameter(T.zeros(num_inputs))
            self.beta = nn.Parameter(T.zeros(num_inputs))
            self.momentum = momentum
            self.eps = eps
            self.register_buffer('running_mean', T.zeros(num_inputs))
            self.register_buffer('running_var', T.ones(num_inputs))

        def forward(self, inputs, cond_inputs=None, mode='direct'):
            if mode == 'direct':
                if self.training:
                    self.batch_mean = inputs.mean(0)
                    self.batch_var = (inputs - self.batch_mean).pow(2).mean(0) + self.eps
                    self.running_mean.mul_(self.momentum)
                    self.running_var.mul_(self.momentum)
                    self.running_mean.add_(self.batch_mean.data * (1 - self.momentum))
                    self.running_var.add_(self.batch_var.data * (1 - self.momentum))
                    mean = self.batch_mean
                    var = self.batch_var
                else:
                    mean = self.running_mean
                    var = self.running_var
                x_hat = (inputs - mean) / var.sqrt()
                y = T.exp(self.log_gamma) * x_hat + self.beta
                return y, (self.log_gamma - 0.5 * T.log(var)).sum(-1, keepdim=True)
            else:
                if self.training:
                    mean = self.batch_mean
                    var = self.batch_var
                else:
                    mean = self.running_mean
                    var = self.running_var
                x_hat = (inputs - self.beta) / T.exp(self.log_gamma)
                y = x_hat * var.sqrt() + mean
                return y, (-self.log_gamma + 0.5 * T.log(var)).sum(-1, keepdim=True)

    class Reverse(nn.Module):
        """ An implementation of a reversing layer from
        Density estimation using Real NVP
        (https://arxiv.org/abs/1605.08803).
        """

        def __init__(self, num_inputs):
            super(Reverse, self).__init__()
            self.perm = np.array(np.arange(0, num_inputs)[::-1])
            self.inv_perm = np.argsort(self.perm)

        def forward(self, inputs, cond_inputs=None, mode='direct'):
            if mode == 'direct':
                return inputs[:, self.perm], T.zeros(inputs.size(0), 1, device=inputs.device)
            else:
                return inputs[:, self.inv_perm], T.zeros(inputs.size(0), 1, device=inputs.device)

    class FlowSequential(nn.Sequential):
        """ A sequential container for flows.
        In addition to a forward pass it implements a backward pass and
        computes log jacobians.
        """

        def forward(self, inputs, cond_inputs=None, mode='direct', logdets=None):
            """ Performs a forward or backward pass for flow modules.
            Args:
                inputs: a tuple of inputs and logdets
                mode: to run direct computation or inverse
            """
            self.num_inputs = inputs.size(-1)
            if logdets is None:
                logdets = T.zeros(inputs.size(0), 1, device=inputs.device)
            assert mode in ['direct', 'inverse']
            if mode == 'direct':
                for module in self._modules.values():
                    inputs, logdet = module(inputs, cond_inputs, mode)
                    logdets += logdet
            else:
                for module in reversed(self._modules.values()):
                    inputs, logdet = module(inputs, cond_inputs, mode)
                    logdets += logdet
            return inputs, logdets

        def log_probs(self, inputs, cond_inputs=None):
            u, log_jacob = self(inputs, cond_inputs)
            log_probs = (-0.5 * u.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
            return (log_probs + log_jacob).sum(-1, keepdim=True)

        def sample(self, num_samples=None, noise=None, cond_inputs=None):
            if noise is None:
                noise = T.Tensor(num_samples, self.num_inputs).normal_()
            device = next(self.parameters()).device
            noise = noise.to(device)
            if cond_inputs is not None:
                cond_inputs = cond_inputs.to(device)
            samples = self.forward(noise, cond_inputs, mode='inverse')[0]
            return samples

    modules = []
    for _ in range(num_blocks):
        modules += [MADE(num_inputs, num_hidden, num_cond_inputs, act=act), BatchNormFlow(num_inputs),
                    Reverse(num_inputs)]
    model = FlowSequential(*modules)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.orthogonal_(module.weight)
            if hasattr(module, 'bias') and module.bias is not None:
                with T.no_grad():                           # module.bias.data.fill_(0): .data is the raw array
                    module.bias.fill_(0)
    model.BatchNormFlow = BatchNormFlow  # the training loop's isinstance(module, fnn.BatchNormFlow)
    return model


def train_maf(T, device, init, data, cond, noise, noise_cond, epochs=3):
    device = device_of(T, device)
    model = ported_model(T, pytorch_flows_maf, init, device)
    # SGD where the reference has Adam(lr=1e-4, weight_decay=1e-6): BatchNormFlow makes the loss invariant to the
    # MADE's scale biases (and to m_0's), so their true gradient is zero and Adam would blow its float noise up
    optimizer = T.optim.SGD(model.parameters(), lr=1e-1, momentum=0.9, weight_decay=1e-6)
    train_dataset = T.utils.data.TensorDataset(T.from_numpy(data), T.from_numpy(cond))
    # the reference shuffles; one full batch an epoch keeps the two libraries' steps the same
    train_loader = T.utils.data.DataLoader(train_dataset, batch_size=len(data), shuffle=True)
    losses = []
    for epoch in range(epochs):
        model.train()
        train_loss = 0
        for batch_idx, data_b in enumerate(train_loader):
            if isinstance(data_b, list):
                if len(data_b) > 1:
                    cond_data = data_b[1].float()
                    cond_data = cond_data.to(device)
                else:
                    cond_data = None
                data_b = data_b[0]
            data_b = data_b.to(device)
            optimizer.zero_grad()
            loss = -model.log_probs(data_b, cond_data).mean()
            train_loss += loss.item()
            loss.backward()
            optimizer.step()
        losses.append(train_loss)
        for module in model.modules():
            if isinstance(module, model.BatchNormFlow):
                module.momentum = 0
        with T.no_grad():
            model(train_loader.dataset.tensors[0].to(data_b.device),
                  train_loader.dataset.tensors[1].to(data_b.device).float())
        for module in model.modules():
            if isinstance(module, model.BatchNormFlow):
                module.momentum = 1
    model.eval()
    with T.no_grad():
        test_loss = -model.log_probs(T.from_numpy(data).to(device), T.from_numpy(cond).to(device)).mean().item()
        samples = model.sample(noise=T.from_numpy(noise), cond_inputs=T.from_numpy(noise_cond))
        u, _ = model(samples, T.from_numpy(noise_cond).to(device))   # inverse then direct: back to the noise
    np.testing.assert_allclose(u.cpu().numpy(), noise, rtol=1e-3, atol=1e-4)
    return losses + [test_loss], dict(numpy_state(model), samples=samples.cpu().numpy())


@pytest.mark.filterwarnings("ignore:.*size_average:UserWarning", "ignore:.*scheduler.*step:UserWarning",
                            "ignore:The epoch parameter:UserWarning")  # the reference's 2017 APIs, as torch warns
@pytest.mark.parametrize("flow", ["karpathy_made", "maf"])
def test_made_maf(device, flow):
    rng = np.random.default_rng(5)
    torch.manual_seed(0)
    if flow == "karpathy_made":
        xtr = (rng.random((24, 6)) < 0.3).astype(np.float32)
        xte = (rng.random((16, 6)) < 0.3).astype(np.float32)
        run_both(train_karpathy_made, device, numpy_state(karpathy_made(torch)), xtr, xte)
    else:
        cond = rng.standard_normal((32, 1)).astype(np.float32)
        data = (rng.standard_normal((32, 3)) @ np.array([[1, .5, 0], [0, 1, .3], [0, 0, .5]]) + cond).astype(np.float32)
        noise = rng.standard_normal((6, 3)).astype(np.float32)
        noise_cond = rng.standard_normal((6, 1)).astype(np.float32)
        run_both(train_maf, device, numpy_state(pytorch_flows_maf(torch)), data, cond, noise, noise_cond)


# ---- 6. Neural spline flows (bayesiains/nflows): the rational-quadratic spline, coupling and autoregressive ----

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


class InputOutsideDomain(Exception):
    pass


def searchsorted(T, bin_locations, inputs, eps=1e-6):
    # nflows/utils/torchutils.py
    bin_locations[..., -1] += eps
    return T.sum(inputs[..., None] >= bin_locations, dim=-1) - 1


def unconstrained_rational_quadratic_spline(T, inputs, unnormalized_widths, unnormalized_heights,
                                            unnormalized_derivatives, inverse=False, tails="linear", tail_bound=1.0,
                                            min_bin_width=DEFAULT_MIN_BIN_WIDTH,
                                            min_bin_height=DEFAULT_MIN_BIN_HEIGHT,
                                            min_derivative=DEFAULT_MIN_DERIVATIVE, enable_identity_init=False):
    # nflows/transforms/splines/rational_quadratic.py
    F = T.nn.functional
    inside_interval_mask = (inputs >= -tail_bound) & (inputs <= tail_bound)
    outside_interval_mask = ~inside_interval_mask

    outputs = T.zeros_like(inputs)
    logabsdet = T.zeros_like(inputs)

    if tails == "linear":
        unnormalized_derivatives = F.pad(unnormalized_derivatives, pad=(1, 1))
        constant = np.log(np.exp(1 - min_derivative) - 1)
        unnormalized_derivatives[..., 0] = constant
        unnormalized_derivatives[..., -1] = constant

        outputs[outside_interval_mask] = inputs[outside_interval_mask]
        logabsdet[outside_interval_mask] = 0
    else:
        raise RuntimeError("{} tails are not implemented.".format(tails))

    if T.any(inside_interval_mask):
        (
            outputs[inside_interval_mask],
            logabsdet[inside_interval_mask],
        ) = rational_quadratic_spline(
            T,
            inputs=inputs[inside_interval_mask],
            unnormalized_widths=unnormalized_widths[inside_interval_mask, :],
            unnormalized_heights=unnormalized_heights[inside_interval_mask, :],
            unnormalized_derivatives=unnormalized_derivatives[inside_interval_mask, :],
            inverse=inverse,
            left=-tail_bound, right=tail_bound, bottom=-tail_bound, top=tail_bound,
            min_bin_width=min_bin_width,
            min_bin_height=min_bin_height,
            min_derivative=min_derivative,
            enable_identity_init=enable_identity_init,
        )

    return outputs, logabsdet


def rational_quadratic_spline(T, inputs, unnormalized_widths, unnormalized_heights, unnormalized_derivatives,
                              inverse=False, left=0.0, right=1.0, bottom=0.0, top=1.0,
                              min_bin_width=DEFAULT_MIN_BIN_WIDTH, min_bin_height=DEFAULT_MIN_BIN_HEIGHT,
                              min_derivative=DEFAULT_MIN_DERIVATIVE, enable_identity_init=False):
    F = T.nn.functional
    if T.min(inputs) < left or T.max(inputs) > right:
        raise InputOutsideDomain()

    num_bins = unnormalized_widths.shape[-1]

    if min_bin_width * num_bins > 1.0:
        raise ValueError("Minimal bin width too large for the number of bins")
    if min_bin_height * num_bins > 1.0:
        raise ValueError("Minimal bin height too large for the number of bins")

    widths = F.softmax(unnormalized_widths, dim=-1)
    widths = min_bin_width + (1 - min_bin_width * num_bins) * widths
    cumwidths = T.cumsum(widths, dim=-1)
    cumwidths = F.pad(cumwidths, pad=(1, 0), mode="constant", value=0.0)
    cumwidths = (right - left) * cumwidths + left
    cumwidths[..., 0] = left
    cumwidths[..., -1] = right
    widths = cumwidths[..., 1:] - cumwidths[..., :-1]

    if enable_identity_init:  # flow is the identity if initialized with parameters equal to zero
        beta = np.log(2) / (1 - min_derivative)
    else:  # backward compatibility
        beta = 1
    derivatives = min_derivative + F.softplus(unnormalized_derivatives, beta=beta)

    heights = F.softmax(unnormalized_heights, dim=-1)
    heights = min_bin_height + (1 - min_bin_height * num_bins) * heights
    cumheights = T.cumsum(heights, dim=-1)
    cumheights = F.pad(cumheights, pad=(1, 0), mode="constant", value=0.0)
    cumheights = (top - bottom) * cumheights + bottom
    cumheights[..., 0] = bottom
    cumheights[..., -1] = top
    heights = cumheights[..., 1:] - cumheights[..., :-1]

    if inverse:
        bin_idx = searchsorted(T, cumheights, inputs)[..., None]
    else:
        bin_idx = searchsorted(T, cumwidths, inputs)[..., None]

    input_cumwidths = cumwidths.gather(-1, bin_idx)[..., 0]
    input_bin_widths = widths.gather(-1, bin_idx)[..., 0]

    input_cumheights = cumheights.gather(-1, bin_idx)[..., 0]
    delta = heights / widths
    input_delta = delta.gather(-1, bin_idx)[..., 0]

    input_derivatives = derivatives.gather(-1, bin_idx)[..., 0]
    input_derivatives_plus_one = derivatives[..., 1:].gather(-1, bin_idx)[..., 0]

    input_heights = heights.gather(-1, bin_idx)[..., 0]

    if inverse:
        a = (inputs - input_cumheights) * (
            input_derivatives + input_derivatives_plus_one - 2 * input_delta
        ) + input_heights * (input_delta - input_derivatives)
        b = input_heights * input_derivatives - (inputs - input_cumheights) * (
            input_derivatives + input_derivatives_plus_one - 2 * input_delta
        )
        c = -input_delta * (inputs - input_cumheights)

        discriminant = b.pow(2) - 4 * a * c
        assert (discriminant >= 0).all()

        root = (2 * c) / (-b - T.sqrt(discriminant))
        # root = (- b + torch.sqrt(discriminant)) / (2 * a)
        outputs = root * input_bin_widths + input_cumwidths

        theta_one_minus_theta = root * (1 - root)
        denominator = input_delta + (
            (input_derivatives + input_derivatives_plus_one - 2 * input_delta)
            * theta_one_minus_theta
        )
        derivative_numerator = input_delta.pow(2) * (
            input_derivatives_plus_one * root.pow(2)
            + 2 * input_delta * theta_one_minus_theta
            + input_derivatives * (1 - root).pow(2)
        )
        logabsdet = T.log(derivative_numerator) - 2 * T.log(denominator)

        return outputs, -logabsdet
    else:
        theta = (inputs - input_cumwidths) / input_bin_widths
        theta_one_minus_theta = theta * (1 - theta)

        numerator = input_heights * (
            input_delta * theta.pow(2) + input_derivatives * theta_one_minus_theta
        )
        denominator = input_delta + (
            (input_derivatives + input_derivatives_plus_one - 2 * input_delta)
            * theta_one_minus_theta
        )
        outputs = input_cumheights + numerator / denominator

        derivative_numerator = input_delta.pow(2) * (
            input_derivatives_plus_one * theta.pow(2)
            + 2 * input_delta * theta_one_minus_theta
            + input_derivatives * (1 - theta).pow(2)
        )
        logabsdet = T.log(derivative_numerator) - 2 * T.log(denominator)

        return outputs, logabsdet


def sum_except_batch(T, x, num_batch_dims=1):
    reduce_dims = list(range(num_batch_dims, x.ndimension()))
    return T.sum(x, dim=reduce_dims)


def nsf_flow(T, features=2, context_features=1, hidden_features=8, num_bins=4, tail_bound=2.0, num_layers=2,
             kind="coupling"):
    nn, F = T.nn, T.nn.functional

    class ResidualBlock(nn.Module):
        # nflows/nn/nets/resnet.py
        def __init__(self, features, context_features, activation=F.relu, dropout_probability=0.0,
                     zero_initialization=True):
            super().__init__()
            self.activation = activation
            if context_features is not None:
                self.context_layer = nn.Linear(context_features, features)
            self.linear_layers = nn.ModuleList([nn.Linear(features, features) for _ in range(2)])
            self.dropout = nn.Dropout(p=dropout_probability)
            if zero_initialization:
                nn.init.uniform_(self.linear_layers[-1].weight, -1e-3, 1e-3)
                nn.init.uniform_(self.linear_layers[-1].bias, -1e-3, 1e-3)

        def forward(self, inputs, context=None):
            temps = inputs
            temps = self.activation(temps)
            temps = self.linear_layers[0](temps)
            temps = self.activation(temps)
            temps = self.dropout(temps)
            temps = self.linear_layers[1](temps)
            if context is not None:
                temps = F.glu(T.cat((temps, self.context_layer(context)), dim=1), dim=1)
            return inputs + temps

    class ResidualNet(nn.Module):
        def __init__(self, in_features, out_features, hidden_features, context_features=None, num_blocks=2):
            super().__init__()
            self.hidden_features = hidden_features
            self.context_features = context_features
            if context_features is not None:
                self.initial_layer = nn.Linear(in_features + context_features, hidden_features)
            else:
                self.initial_layer = nn.Linear(in_features, hidden_features)
            self.blocks = nn.ModuleList([ResidualBlock(features=hidden_features, context_features=context_features)
                                         for _ in range(num_blocks)])
            self.final_layer = nn.Linear(hidden_features, out_features)

        def forward(self, inputs, context=None):
            if context is None:
                temps = self.initial_layer(inputs)
            else:
                temps = self.initial_layer(T.cat((inputs, context), dim=1))
            for block in self.blocks:
                temps = block(temps, context=context)
            outputs = self.final_layer(temps)
            return outputs

    class PiecewiseRationalQuadraticCouplingTransform(nn.Module):
        # nflows/transforms/coupling.py (CouplingTransform + PiecewiseCouplingTransform, 2-D inputs)
        def __init__(self, mask, transform_net_create_fn, num_bins=10, tails=None, tail_bound=1.0):
            super().__init__()
            mask = T.as_tensor(mask)
            if mask.dim() != 1:
                raise ValueError("Mask must be a 1-dim tensor.")
            self.features = len(mask)
            features_vector = T.arange(self.features)
            self.register_buffer("identity_features", features_vector.masked_select(mask <= 0))
            self.register_buffer("transform_features", features_vector.masked_select(mask > 0))
            assert self.num_identity_features + self.num_transform_features == self.features
            self.num_bins = num_bins
            self.tails = tails
            self.tail_bound = tail_bound
            self.transform_net = transform_net_create_fn(self.num_identity_features,
                                                         self.num_transform_features * self._transform_dim_multiplier())

        @property
        def num_identity_features(self):
            return len(self.identity_features)

        @property
        def num_transform_features(self):
            return len(self.transform_features)

        def _transform_dim_multiplier(self):
            if self.tails == "linear":
                return self.num_bins * 3 - 1
            else:
                return self.num_bins * 3 + 1

        def forward(self, inputs, context=None):
            identity_split = inputs[:, self.identity_features, ...]
            transform_split = inputs[:, self.transform_features, ...]
            transform_params = self.transform_net(identity_split, context)
            transform_split, logabsdet = self._coupling_transform(inputs=transform_split,
                                                                  transform_params=transform_params)
            outputs = T.empty_like(inputs)
            outputs[:, self.identity_features, ...] = identity_split
            outputs[:, self.transform_features, ...] = transform_split
            return outputs, logabsdet

        def inverse(self, inputs, context=None):
            identity_split = inputs[:, self.identity_features, ...]
            transform_split = inputs[:, self.transform_features, ...]
            logabsdet = 0.0
            transform_params = self.transform_net(identity_split, context)
            transform_split, logabsdet_split = self._coupling_transform(inputs=transform_split,
                                                                        transform_params=transform_params,
                                                                        inverse=True)
            logabsdet += logabsdet_split
            outputs = T.empty_like(inputs)
            outputs[:, self.identity_features] = identity_split
            outputs[:, self.transform_features] = transform_split
            return outputs, logabsdet

        def _coupling_transform(self, inputs, transform_params, inverse=False):
            b, d = inputs.shape
            transform_params = transform_params.reshape(b, d, -1)
            outputs, logabsdet = self._piecewise_cdf(inputs, transform_params, inverse)
            return outputs, sum_except_batch(T, logabsdet)

        def _piecewise_cdf(self, inputs, transform_params, inverse=False):
            unnormalized_widths = transform_params[..., : self.num_bins]
            unnormalized_heights = transform_params[..., self.num_bins: 2 * self.num_bins]
            unnormalized_derivatives = transform_params[..., 2 * self.num_bins:]

            if hasattr(self.transform_net, "hidden_features"):
                unnormalized_widths /= np.sqrt(self.transform_net.hidden_features)
                unnormalized_heights /= np.sqrt(self.transform_net.hidden_features)

            if self.tails is None:
                spline_fn = rational_quadratic_spline
                spline_kwargs = {}
            else:
                spline_fn = unconstrained_rational_quadratic_spline
                spline_kwargs = {"tails": self.tails, "tail_bound": self.tail_bound}

            return spline_fn(T, inputs=inputs, unnormalized_widths=unnormalized_widths,
                             unnormalized_heights=unnormalized_heights,
                             unnormalized_derivatives=unnormalized_derivatives, inverse=inverse, **spline_kwargs)

    class ReversePermutation(nn.Module):
        # nflows/transforms/permutations.py
        def __init__(self, features, dim=1):
            super().__init__()
            self._dim = dim
            self.register_buffer("_permutation", T.arange(features - 1, -1, -1))

        @property
        def _inverse_permutation(self):
            return T.argsort(self._permutation)

        @staticmethod
        def _permute(inputs, permutation, dim):
            batch_size = inputs.shape[0]
            outputs = T.index_select(inputs, dim, permutation)
            logabsdet = inputs.new_zeros(batch_size)
            return outputs, logabsdet

        def forward(self, inputs, context=None):
            return self._permute(inputs, self._permutation, self._dim)

        def inverse(self, inputs, context=None):
            return self._permute(inputs, self._inverse_permutation, self._dim)

    class CompositeTransform(nn.Module):
        def __init__(self, transforms):
            super().__init__()
            self._transforms = nn.ModuleList(transforms)

        @staticmethod
        def _cascade(inputs, funcs, context):
            batch_size = inputs.shape[0]
            outputs = inputs
            total_logabsdet = inputs.new_zeros(batch_size)
            for func in funcs:
                outputs, logabsdet = func(outputs, context)
                total_logabsdet += logabsdet
            return outputs, total_logabsdet

        def forward(self, inputs, context=None):
            funcs = self._transforms
            return self._cascade(inputs, funcs, context)

        def inverse(self, inputs, context=None):
            funcs = (transform.inverse for transform in self._transforms[::-1])
            return self._cascade(inputs, funcs, context)

    class StandardNormal(nn.Module):
        # nflows/distributions/normal.py
        def __init__(self, shape):
            super().__init__()
            self._shape = tuple(shape)
            self.register_buffer("_log_z", T.tensor(0.5 * np.prod(shape) * np.log(2 * np.pi), dtype=T.float64),
                                 persistent=False)

        def log_prob(self, inputs, context=None):
            neg_energy = -0.5 * sum_except_batch(T, inputs ** 2, num_batch_dims=1)
            return neg_energy - self._log_z

    class Flow(nn.Module):
        # nflows/flows/base.py
        def __init__(self, transform, distribution):
            super().__init__()
            self._transform = transform
            self._distribution = distribution

        def log_prob(self, inputs, context=None):
            noise, logabsdet = self._transform(inputs, context=context)
            log_prob = self._distribution.log_prob(noise, context=context)
            return log_prob + logabsdet

        def sample_from_noise(self, noise, context=None):
            # Flow._sample with the base distribution's draw (self._distribution.sample) passed in
            samples, _ = self._transform.inverse(noise, context=context)
            return samples

    def create_alternating_binary_mask(features, even=True):
        mask = T.zeros(features).byte()
        start = 0 if even else 1
        mask[start::2] += 1
        return mask

    # nflows/transforms/made.py
    def _get_input_degrees(in_features):
        """Returns the degrees an input to MADE should have."""
        return T.arange(1, in_features + 1)

    def tile(x, n):
        # nflows/utils/torchutils.py
        x_ = x.reshape(-1)
        x_ = x_.repeat(n)
        x_ = x_.reshape(n, -1)
        x_ = x_.transpose(1, 0)
        x_ = x_.reshape(-1)
        return x_

    class MaskedLinear(nn.Linear):
        """A linear module with a masked weight matrix."""

        def __init__(self, in_degrees, out_features, autoregressive_features, random_mask, is_output, bias=True):
            super().__init__(in_features=len(in_degrees), out_features=out_features, bias=bias)
            mask, degrees = self._get_mask_and_degrees(in_degrees=in_degrees, out_features=out_features,
                                                       autoregressive_features=autoregressive_features,
                                                       random_mask=random_mask, is_output=is_output)
            self.register_buffer("mask", mask)
            self.register_buffer("degrees", degrees)

        @classmethod
        def _get_mask_and_degrees(cls, in_degrees, out_features, autoregressive_features, random_mask, is_output):
            if is_output:
                out_degrees = tile(_get_input_degrees(autoregressive_features),
                                   out_features // autoregressive_features)
                mask = (out_degrees[..., None] > in_degrees).float()
            else:
                assert not random_mask
                max_ = max(1, autoregressive_features - 1)
                min_ = min(1, autoregressive_features - 1)
                out_degrees = T.arange(out_features) % max_ + min_
                mask = (out_degrees[..., None] >= in_degrees).float()
            return mask, out_degrees

        def forward(self, x):
            return F.linear(x, self.weight * self.mask, self.bias)

    class MaskedResidualBlock(nn.Module):
        def __init__(self, in_degrees, autoregressive_features, context_features=None, activation=F.relu,
                     dropout_probability=0.0, zero_initialization=True):
            super().__init__()
            features = len(in_degrees)
            if context_features is not None:
                self.context_layer = nn.Linear(context_features, features)
            linear_0 = MaskedLinear(in_degrees=in_degrees, out_features=features,
                                    autoregressive_features=autoregressive_features, random_mask=False,
                                    is_output=False)
            linear_1 = MaskedLinear(in_degrees=linear_0.degrees, out_features=features,
                                    autoregressive_features=autoregressive_features, random_mask=False,
                                    is_output=False)
            self.linear_layers = nn.ModuleList([linear_0, linear_1])
            self.degrees = linear_1.degrees
            if T.all(self.degrees >= in_degrees).item() != 1:
                raise RuntimeError("In a masked residual block, the output degrees can't be less than the "
                                   "corresponding input degrees.")
            self.activation = activation
            self.dropout = nn.Dropout(p=dropout_probability)
            if zero_initialization:
                nn.init.uniform_(self.linear_layers[-1].weight, a=-1e-3, b=1e-3)
                nn.init.uniform_(self.linear_layers[-1].bias, a=-1e-3, b=1e-3)

        def forward(self, inputs, context=None):
            temps = inputs
            temps = self.activation(temps)
            temps = self.linear_layers[0](temps)
            temps = self.activation(temps)
            temps = self.dropout(temps)
            temps = self.linear_layers[1](temps)
            if context is not None:
                temps = F.glu(T.cat((temps, self.context_layer(context)), dim=1), dim=1)
            return inputs + temps

    class MADE(nn.Module):
        def __init__(self, features, hidden_features, context_features=None, num_blocks=2, output_multiplier=1):
            super().__init__()
            self.initial_layer = MaskedLinear(in_degrees=_get_input_degrees(features), out_features=hidden_features,
                                              autoregressive_features=features, random_mask=False, is_output=False)
            if context_features is not None:
                self.context_layer = nn.Linear(context_features, hidden_features)
            blocks = []
            prev_out_degrees = self.initial_layer.degrees
            for _ in range(num_blocks):
                blocks.append(MaskedResidualBlock(in_degrees=prev_out_degrees, autoregressive_features=features,
                                                  context_features=context_features, zero_initialization=True))
                prev_out_degrees = blocks[-1].degrees
            self.blocks = nn.ModuleList(blocks)
            self.final_layer = MaskedLinear(in_degrees=prev_out_degrees, out_features=features * output_multiplier,
                                            autoregressive_features=features, random_mask=False, is_output=True)

        def forward(self, inputs, context=None):
            temps = self.initial_layer(inputs)
            if context is not None:
                temps += self.context_layer(context)
            for block in self.blocks:
                temps = block(temps, context)
            outputs = self.final_layer(temps)
            return outputs

    class MaskedPiecewiseRationalQuadraticAutoregressiveTransform(nn.Module):
        # nflows/transforms/autoregressive.py (with AutoregressiveTransform's forward / inverse)
        def __init__(self, features, hidden_features, context_features=None, num_bins=10, tails=None,
                     tail_bound=1.0, num_blocks=2, min_bin_width=DEFAULT_MIN_BIN_WIDTH,
                     min_bin_height=DEFAULT_MIN_BIN_HEIGHT, min_derivative=DEFAULT_MIN_DERIVATIVE):
            self.num_bins = num_bins
            self.min_bin_width = min_bin_width
            self.min_bin_height = min_bin_height
            self.min_derivative = min_derivative
            self.tails = tails
            self.tail_bound = tail_bound
            super().__init__()
            self.autoregressive_net = MADE(features=features, hidden_features=hidden_features,
                                           context_features=context_features, num_blocks=num_blocks,
                                           output_multiplier=self._output_dim_multiplier())

        def forward(self, inputs, context=None):
            autoregressive_params = self.autoregressive_net(inputs, context)
            outputs, logabsdet = self._elementwise(inputs, autoregressive_params)
            return outputs, logabsdet

        def inverse(self, inputs, context=None):
            num_inputs = np.prod(inputs.shape[1:])
            outputs = T.zeros_like(inputs)
            logabsdet = None
            for _ in range(num_inputs):
                autoregressive_params = self.autoregressive_net(outputs, context)
                outputs, logabsdet = self._elementwise(inputs, autoregressive_params, inverse=True)
            return outputs, logabsdet

        def _output_dim_multiplier(self):
            if self.tails == "linear":
                return self.num_bins * 3 - 1
            elif self.tails is None:
                return self.num_bins * 3 + 1
            else:
                raise ValueError

        def _elementwise(self, inputs, autoregressive_params, inverse=False):
            batch_size, features = inputs.shape[0], inputs.shape[1]
            transform_params = autoregressive_params.view(batch_size, features, self._output_dim_multiplier())
            unnormalized_widths = transform_params[..., : self.num_bins]
            unnormalized_heights = transform_params[..., self.num_bins: 2 * self.num_bins]
            unnormalized_derivatives = transform_params[..., 2 * self.num_bins:]
            if hasattr(self.autoregressive_net, "hidden_features"):
                unnormalized_widths /= np.sqrt(self.autoregressive_net.hidden_features)
                unnormalized_heights /= np.sqrt(self.autoregressive_net.hidden_features)
            if self.tails is None:
                spline_fn = rational_quadratic_spline
                spline_kwargs = {}
            elif self.tails == "linear":
                spline_fn = unconstrained_rational_quadratic_spline
                spline_kwargs = {"tails": self.tails, "tail_bound": self.tail_bound}
            else:
                raise ValueError
            outputs, logabsdet = spline_fn(
                T,
                inputs=inputs,
                unnormalized_widths=unnormalized_widths,
                unnormalized_heights=unnormalized_heights,
                unnormalized_derivatives=unnormalized_derivatives,
                inverse=inverse,
                min_bin_width=self.min_bin_width,
                min_bin_height=self.min_bin_height,
                min_derivative=self.min_derivative,
                enable_identity_init=True,
                **spline_kwargs
            )
            return outputs, sum_except_batch(T, logabsdet)

    transforms = []
    for i in range(num_layers):
        transforms.append(ReversePermutation(features=features))
        if kind == "coupling":
            transforms.append(PiecewiseRationalQuadraticCouplingTransform(
                mask=create_alternating_binary_mask(features, even=(i % 2 == 0)),
                transform_net_create_fn=lambda in_features, out_features: ResidualNet(
                    in_features, out_features, hidden_features=hidden_features, context_features=context_features),
                num_bins=num_bins, tails="linear", tail_bound=tail_bound))
        else:
            transforms.append(MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                features=features, hidden_features=hidden_features, context_features=context_features,
                num_bins=num_bins, tails="linear", tail_bound=tail_bound))
    return Flow(CompositeTransform(transforms), StandardNormal([features]))


def train_nsf(T, device, init, xs, contexts, noise, noise_context, kind):
    device = device_of(T, device)
    flow = ported_model(T, lambda T: nsf_flow(T, kind=kind), init, device)
    optimizer = T.optim.Adam(flow.parameters(), lr=3e-3)
    losses = []
    for x, context in zip(xs, contexts):
        x = T.tensor(x, dtype=T.float32).to(device)
        optimizer.zero_grad()
        loss = -flow.log_prob(inputs=x, context=T.from_numpy(context).to(device)).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        noise_t, noise_context_t = T.from_numpy(noise).to(device), T.from_numpy(noise_context).to(device)
        samples = flow.sample_from_noise(noise_t, context=noise_context_t)
        z, logabsdet = flow._transform(samples, context=noise_context_t)
        _, inv_logabsdet = flow._transform.inverse(noise_t, context=noise_context_t)
        log_prob = flow.log_prob(samples, context=noise_context_t)
    np.testing.assert_allclose(z.cpu().numpy(), noise, rtol=1e-4, atol=1e-4)            # inverse, then forward
    np.testing.assert_allclose(logabsdet.cpu().numpy(), -inv_logabsdet.cpu().numpy(), rtol=1e-4, atol=1e-4)
    return losses, dict(numpy_state(flow), samples=samples.cpu().numpy(), log_prob=log_prob.cpu().numpy())


@pytest.mark.parametrize("kind", ["coupling", "autoregressive"])
def test_neural_spline_flow(device, kind):
    rng = np.random.default_rng(6)
    steps, n = 4, 32
    xs = []
    for _ in range(steps):                                      # sklearn's make_moons(n, noise=.1), by hand
        t = rng.uniform(0, np.pi, n)
        upper = rng.random(n) < 0.5
        x = np.where(upper[:, None], np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
        xs.append(1.5 * x + 0.1 * rng.standard_normal((n, 2)))  # some points beyond tail_bound=2: the linear tails
    contexts = rng.standard_normal((steps, n, 1)).astype(np.float32)
    noise = rng.standard_normal((10, 2)).astype(np.float32)
    noise[0] = [2.5, -0.3]                                       # a tail and an inside point
    noise_context = rng.standard_normal((10, 1)).astype(np.float32)
    assert (np.abs(np.concatenate(xs)) > 2).any()
    torch.manual_seed(0)
    run_both(train_nsf, device, numpy_state(nsf_flow(torch, kind=kind)), xs, contexts, noise, noise_context, kind)



def rq_spline_identity_init(T, device, inputs, inverse):
    # nflows' tests/transforms/splines/rational_quadratic_test.py, test_identity_init: all-zero parameters with
    # enable_identity_init=True (beta = np.log(2) / (1 - min_derivative) in the softplus) give the identity
    num_bins = 4
    x = T.from_numpy(inputs).to(device_of(T, device))
    zeros = T.zeros(*x.shape, num_bins, device=x.device)
    outputs, logabsdet = rational_quadratic_spline(
        T, inputs=x, unnormalized_widths=zeros, unnormalized_heights=zeros,
        unnormalized_derivatives=T.zeros(*x.shape, num_bins + 1, device=x.device), inverse=inverse,
        enable_identity_init=True)
    return outputs, logabsdet


@pytest.mark.parametrize("inverse", [False, True])
def test_rq_spline_identity_init_keeps_float32(device, inverse):
    inputs = np.random.default_rng(11).random((5, 3)).astype(np.float32)
    want = rq_spline_identity_init(torch, device, inputs, inverse)
    got = rq_spline_identity_init(tensor, device, inputs, inverse)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.cpu().numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[0].cpu().numpy(), inputs, rtol=1e-5, atol=1e-6)
    assert [str(t.dtype) for t in got] == ["float32", "float32"] == [str(t.dtype).split(".")[1] for t in want]


NUMPY_SCALAR_CASES = {
    # reference code hands NumPy float64 scalars (np.log, np.sqrt, np.pi arithmetic) to these as hyperparameters
    "softplus(beta=np.log(2)/(1-1e-3))": lambda T, x: T.nn.functional.softplus(x, beta=np.log(2) / (1 - 1e-3)),
    "clamp(min=np.log(1e-5))": lambda T, x: x.clamp(min=np.log(1e-5)),
    "clip(np.f64, np.f64)": lambda T, x: T.clip(x, -np.sqrt(2.), np.sqrt(2.)),
    "clamp_min(np.f64)": lambda T, x: x.clamp_min(np.float64(0.5)),
    "leaky_relu(x, np.f64)": lambda T, x: T.nn.functional.leaky_relu(x, np.float64(0.2)),
    "elu(alpha=np.f64)": lambda T, x: T.nn.functional.elu(x, alpha=np.float64(1.0)),
    "hardtanh(np.f64, np.f64)": lambda T, x: T.nn.functional.hardtanh(x, np.float64(-1), np.float64(1)),
    "normalize(eps=np.f64)": lambda T, x: T.nn.functional.normalize(x, dim=0, eps=np.float64(1e-12)),
    "full(size, np.f64)": lambda T, x: T.full((2,), np.float64(2.), device=x.device),
    "tensor(np.f64)": lambda T, x: T.tensor(2 * (np.log(50.) - np.log(0.01)), device=x.device),  # score_sde VESDE
    "as_tensor(np.f64)": lambda T, x: T.as_tensor(np.float64(0.5), device=x.device),
    "tensor([np.f64, np.f64])": lambda T, x: T.tensor([np.float64(1.), np.float64(2.)], device=x.device),
    "tensor(np.int32)": lambda T, x: T.tensor(np.int32(3), device=x.device),
}


@pytest.mark.parametrize("case", list(NUMPY_SCALAR_CASES))
def test_numpy_scalar_arguments_give_torchs_dtype(device, case):
    x0 = np.random.default_rng(12).standard_normal(5).astype(np.float32)
    want = NUMPY_SCALAR_CASES[case](torch, torch.from_numpy(x0))
    got = NUMPY_SCALAR_CASES[case](tensor, tensor.from_numpy(x0).to(device))
    assert str(got.dtype) == str(want.dtype).split(".")[1]
    np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-6)

# ---- 7. PixelCNN: type A/B masked convolutions (jzbontar/pixelcnn-pytorch), gated PixelCNN (pytorch-vqvae) ----

def jzbontar_pixelcnn(T, fm=8, levels=5):
    nn = T.nn

    class MaskedConv2d(nn.Conv2d):
        def __init__(self, mask_type, *args, **kwargs):
            super(MaskedConv2d, self).__init__(*args, **kwargs)
            assert mask_type in {'A', 'B'}
            self.register_buffer('mask', self.weight.detach().clone())   # self.weight.data.clone(): see below
            _, _, kH, kW = self.weight.size()
            self.mask.fill_(1)
            self.mask[:, :, kH // 2, kW // 2 + (mask_type == 'B'):] = 0
            self.mask[:, :, kH // 2 + 1:] = 0

        def forward(self, x):
            with T.no_grad():                                 # self.weight.data *= self.mask: .data is the raw
                self.weight *= self.mask                      # array in raygrad (README)
            return super(MaskedConv2d, self).forward(x)

    return nn.Sequential(
        MaskedConv2d('A', 1, fm, 5, 1, 2, bias=False), nn.BatchNorm2d(fm), nn.ReLU(True),
        MaskedConv2d('B', fm, fm, 3, 1, 1, bias=False), nn.BatchNorm2d(fm), nn.ReLU(True),
        MaskedConv2d('B', fm, fm, 3, 1, 1, bias=False), nn.BatchNorm2d(fm), nn.ReLU(True),
        nn.Conv2d(fm, levels, 1))


def train_jzbontar_pixelcnn(T, device, init, xs, us, levels=5):
    F, Variable = T.nn.functional, T.autograd.Variable
    device = device_of(T, device)
    net = ported_model(T, jzbontar_pixelcnn, init, device)
    optimizer = T.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for input in xs:
        net.train(True)
        input = T.from_numpy(input).to(device)
        target = (input[:, 0] * (levels - 1)).long()       # (input.data[:,0] * 255).long() with 256 levels
        loss = F.cross_entropy(net(input), target)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    sample = T.zeros(us.shape[0], 1, us.shape[1], us.shape[2]).to(device)  # torch.Tensor(144, 1, 28, 28).cuda()
    sample.fill_(0)
    net.train(False)
    for i in range(us.shape[1]):
        for j in range(us.shape[2]):
            out = net(Variable(sample, volatile=True))
            probs = F.softmax(out[:, :, i, j])                 # .data dropped: the raw array in raygrad (README)
            # torch.multinomial(probs, 1), as an inverse CDF of the passed-in uniforms
            u = T.from_numpy(us[:, i, j]).to(device)
            idx = (probs.cumsum(dim=1) < u[:, None]).sum(dim=1, keepdim=True).clamp(max=levels - 1)
            sample[:, :, i, j] = idx.float() / (levels - 1)
    return losses, dict(numpy_state(net), sample=sample.cpu().numpy())


def gated_pixelcnn(T, input_dim=5, dim=8, n_layers=3, n_classes=3, hidden=16):
    nn, F = T.nn, T.nn.functional

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find('Conv') != -1:
            try:
                with T.no_grad():                             # nn.init.xavier_uniform_(m.weight.data);
                    nn.init.xavier_uniform_(m.weight)         # m.bias.data.fill_(0): .data is the raw array
                    m.bias.fill_(0)
            except AttributeError:
                print("Skipping initialization of ", classname)

    class GatedActivation(nn.Module):
        def __init__(self):
            super().__init__()

        def forward(self, x):
            x, y = x.chunk(2, dim=1)
            return F.tanh(x) * F.sigmoid(y)

    class GatedMaskedConv2d(nn.Module):
        def __init__(self, mask_type, dim, kernel, residual=True, n_classes=10):
            super().__init__()
            assert kernel % 2 == 1, print("Kernel size must be odd")
            self.mask_type = mask_type
            self.residual = residual
            self.class_cond_embedding = nn.Embedding(n_classes, 2 * dim)
            kernel_shp = (kernel // 2 + 1, kernel)  # (ceil(n/2), n)
            padding_shp = (kernel // 2, kernel // 2)
            self.vert_stack = nn.Conv2d(dim, dim * 2, kernel_shp, 1, padding_shp)
            self.vert_to_horiz = nn.Conv2d(2 * dim, 2 * dim, 1)
            kernel_shp = (1, kernel // 2 + 1)
            padding_shp = (0, kernel // 2)
            self.horiz_stack = nn.Conv2d(dim, dim * 2, kernel_shp, 1, padding_shp)
            self.horiz_resid = nn.Conv2d(dim, dim, 1)
            self.gate = GatedActivation()

        def make_causal(self):
            with T.no_grad():                                 # self.vert_stack.weight.data[:, :, -1].zero_()
                self.vert_stack.weight[:, :, -1].zero_()  # Mask final row
                self.horiz_stack.weight[:, :, :, -1].zero_()  # Mask final column

        def forward(self, x_v, x_h, h):
            if self.mask_type == 'A':
                self.make_causal()
            h = self.class_cond_embedding(h)
            h_vert = self.vert_stack(x_v)
            h_vert = h_vert[:, :, :x_v.size(-1), :]
            out_v = self.gate(h_vert + h[:, :, None, None])
            h_horiz = self.horiz_stack(x_h)
            h_horiz = h_horiz[:, :, :, :x_h.size(-2)]
            v2h = self.vert_to_horiz(h_vert)
            out = self.gate(v2h + h_horiz + h[:, :, None, None])
            if self.residual:
                out_h = self.horiz_resid(out) + x_h
            else:
                out_h = self.horiz_resid(out)
            return out_v, out_h

    class GatedPixelCNN(nn.Module):
        def __init__(self, input_dim=256, dim=64, n_layers=15, n_classes=10):
            super().__init__()
            self.dim = dim
            # Create embedding layer to embed input
            self.embedding = nn.Embedding(input_dim, dim)
            # Building the PixelCNN layer by layer
            self.layers = nn.ModuleList()
            # Initial block with Mask-A convolution
            # Rest with Mask-B convolutions
            for i in range(n_layers):
                mask_type = 'A' if i == 0 else 'B'
                kernel = 7 if i == 0 else 3
                residual = False if i == 0 else True
                self.layers.append(GatedMaskedConv2d(mask_type, dim, kernel, residual, n_classes))
            # Add the output layer
            self.output_conv = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(True), nn.Conv2d(hidden, input_dim, 1))
            self.apply(weights_init)

        def forward(self, x, label):
            shp = x.size() + (-1,)
            x = self.embedding(x.view(-1)).view(shp)  # (B, H, W, C)
            x = x.permute(0, 3, 1, 2)  # (B, C, W, W)
            x_v, x_h = (x, x)
            for i, layer in enumerate(self.layers):
                x_v, x_h = layer(x_v, x_h, label)
            return self.output_conv(x_h)

        def generate(self, label, us, shape=(8, 8), batch_size=64):
            param = next(self.parameters())
            x = T.zeros((batch_size, *shape), dtype=T.int64, device=param.device)
            for i in range(shape[0]):
                for j in range(shape[1]):
                    logits = self.forward(x, label)
                    probs = F.softmax(logits[:, :, i, j], -1)
                    # x.data[:, i, j].copy_(probs.multinomial(1).squeeze().data), inverse CDF of passed uniforms
                    u = T.from_numpy(us[:, i, j]).to(param.device)
                    x[:, i, j].copy_((probs.cumsum(-1) < u[:, None]).sum(-1).clamp(max=probs.size(-1) - 1))
            return x

    return GatedPixelCNN(input_dim, dim, n_layers, n_classes)


def train_gated_pixelcnn(T, device, init, latents_all, labels_all, gen_labels, us, K=5):
    device = device_of(T, device)
    prior = ported_model(T, gated_pixelcnn, init, device)
    criterion = T.nn.CrossEntropyLoss().to(device)
    opt = T.optim.Adam(prior.parameters(), lr=1e-2)
    losses = []
    for latents, label in zip(latents_all, labels_all):
        latents, label = T.from_numpy(latents).to(device), T.from_numpy(label).to(device)
        logits = prior(latents, label)
        logits = logits.permute(0, 2, 3, 1).contiguous()
        opt.zero_grad()
        loss = criterion(logits.view(-1, K), latents.view(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    prior.eval()
    with T.no_grad():
        x = prior.generate(T.from_numpy(gen_labels).to(device), us, shape=us.shape[1:], batch_size=us.shape[0])
    return losses, dict(numpy_state(prior), generated=x.cpu().numpy())


@pytest.mark.filterwarnings("ignore:.*volatile:UserWarning", "ignore:.*mplicit dim:UserWarning")  # 2017 APIs
@pytest.mark.parametrize("style", ["masked", "gated"])
def test_pixelcnn(device, style):
    rng = np.random.default_rng(7)
    torch.manual_seed(0)
    if style == "masked":
        xs = (rng.integers(0, 5, (3, 4, 1, 6, 6)) / 4).astype(np.float32)
        us = rng.random((3, 6, 6)).astype(np.float32)
        run_both(train_jzbontar_pixelcnn, device, numpy_state(jzbontar_pixelcnn(torch)), xs, us)
    else:
        latents = rng.integers(0, 5, (3, 4, 4, 4))
        labels = rng.integers(0, 3, (3, 4))
        us = rng.random((3, 4, 4)).astype(np.float32)
        run_both(train_gated_pixelcnn, device, numpy_state(gated_pixelcnn(torch)), latents, labels,
                 np.arange(3), us)


# ---- 8. StyleGAN2 (rosinality/stylegan2-pytorch): modulated conv + demodulation, equalized lr, upfirdn2d, -------
#         minibatch stddev, logistic loss, R1 every d_reg_every, path-length regularization, mixing, EMA

def upfirdn2d_native(T, input, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
    # op/upfirdn2d.py: the native path the reference takes off CUDA
    F = T.nn.functional
    _, channel, in_h, in_w = input.shape
    input = input.reshape(-1, in_h, in_w, 1)
    _, in_h, in_w, minor = input.shape
    kernel_h, kernel_w = kernel.shape
    out = input.view(-1, in_h, 1, in_w, 1, minor)
    out = F.pad(out, [0, 0, 0, up_x - 1, 0, 0, 0, up_y - 1])
    out = out.view(-1, in_h * up_y, in_w * up_x, minor)
    out = F.pad(out, [0, 0, max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    out = out[:, max(-pad_y0, 0): out.shape[1] - max(-pad_y1, 0), max(-pad_x0, 0): out.shape[2] - max(-pad_x1, 0), :]
    out = out.permute(0, 3, 1, 2)
    out = out.reshape([-1, 1, in_h * up_y + pad_y0 + pad_y1, in_w * up_x + pad_x0 + pad_x1])
    w = T.flip(kernel, [0, 1]).view(1, 1, kernel_h, kernel_w)
    out = F.conv2d(out, w)
    out = out.reshape(-1, minor, in_h * up_y + pad_y0 + pad_y1 - kernel_h + 1,
                      in_w * up_x + pad_x0 + pad_x1 - kernel_w + 1)
    out = out.permute(0, 2, 3, 1)
    out = out[:, ::down_y, ::down_x, :]
    out_h = (in_h * up_y + pad_y0 + pad_y1 - kernel_h + down_y) // down_y
    out_w = (in_w * up_x + pad_x0 + pad_x1 - kernel_w + down_x) // down_x
    return out.view(-1, channel, out_h, out_w)


def upfirdn2d(T, input, kernel, up=1, down=1, pad=(0, 0)):
    if not isinstance(up, (tuple, list)):
        up = (up, up)
    if not isinstance(down, (tuple, list)):
        down = (down, down)
    if len(pad) == 2:
        pad = (pad[0], pad[1], pad[0], pad[1])
    return upfirdn2d_native(T, input, kernel, *up, *down, *pad)


def fused_leaky_relu(T, input, bias=None, negative_slope=0.2, scale=2 ** 0.5):
    # op/fused_act.py, its CPU branch
    F = T.nn.functional
    if bias is not None:
        rest_dim = [1] * (input.ndim - bias.ndim - 1)
        return F.leaky_relu(input + bias.view(1, bias.shape[0], *rest_dim), negative_slope=0.2) * scale
    else:
        return F.leaky_relu(input, negative_slope=0.2) * scale


def stylegan2(T, size=8, style_dim=8, n_mlp=2, fused=True, lr_mlp=0.01, blur_kernel=(1, 3, 3, 1)):
    nn, F = T.nn, T.nn.functional
    blur_kernel = list(blur_kernel)
    g_channels = {4: 8, 8: 4}
    d_channels = {4: 8, 8: 4}

    class PixelNorm(nn.Module):
        def __init__(self):
            super().__init__()

        def forward(self, input):
            return input * T.rsqrt(T.mean(input ** 2, dim=1, keepdim=True) + 1e-8)

    def make_kernel(k):
        k = T.tensor(k, dtype=T.float32)
        if k.ndim == 1:
            k = k[None, :] * k[:, None]
        k /= k.sum()
        return k

    class Upsample(nn.Module):
        def __init__(self, kernel, factor=2):
            super().__init__()
            self.factor = factor
            kernel = make_kernel(kernel) * (factor ** 2)
            self.register_buffer("kernel", kernel)
            p = kernel.shape[0] - factor
            pad0 = (p + 1) // 2 + factor - 1
            pad1 = p // 2
            self.pad = (pad0, pad1)

        def forward(self, input):
            out = upfirdn2d(T, input, self.kernel, up=self.factor, down=1, pad=self.pad)
            return out

    class Blur(nn.Module):
        def __init__(self, kernel, pad, upsample_factor=1):
            super().__init__()
            kernel = make_kernel(kernel)
            if upsample_factor > 1:
                kernel = kernel * (upsample_factor ** 2)
            self.register_buffer("kernel", kernel)
            self.pad = pad

        def forward(self, input):
            out = upfirdn2d(T, input, self.kernel, pad=self.pad)
            return out

    class EqualConv2d(nn.Module):
        def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, bias=True):
            super().__init__()
            self.weight = nn.Parameter(T.randn(out_channel, in_channel, kernel_size, kernel_size))
            self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
            self.stride = stride
            self.padding = padding
            if bias:
                self.bias = nn.Parameter(T.zeros(out_channel))
            else:
                self.bias = None

        def forward(self, input):
            out = F.conv2d(input, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding)
            return out

    class EqualLinear(nn.Module):
        def __init__(self, in_dim, out_dim, bias=True, bias_init=0, lr_mul=1, activation=None):
            super().__init__()
            self.weight = nn.Parameter(T.randn(out_dim, in_dim).div_(lr_mul))
            if bias:
                self.bias = nn.Parameter(T.zeros(out_dim).fill_(bias_init))
            else:
                self.bias = None
            self.activation = activation
            self.scale = (1 / math.sqrt(in_dim)) * lr_mul
            self.lr_mul = lr_mul

        def forward(self, input):
            if self.activation:
                out = F.linear(input, self.weight * self.scale)
                out = fused_leaky_relu(T, out, self.bias * self.lr_mul)
            else:
                out = F.linear(input, self.weight * self.scale, bias=self.bias * self.lr_mul)
            return out

    class ModulatedConv2d(nn.Module):
        def __init__(self, in_channel, out_channel, kernel_size, style_dim, demodulate=True, upsample=False,
                     downsample=False, blur_kernel=[1, 3, 3, 1], fused=True):
            super().__init__()
            self.eps = 1e-8
            self.kernel_size = kernel_size
            self.in_channel = in_channel
            self.out_channel = out_channel
            self.upsample = upsample
            self.downsample = downsample
            if upsample:
                factor = 2
                p = (len(blur_kernel) - factor) - (kernel_size - 1)
                pad0 = (p + 1) // 2 + factor - 1
                pad1 = p // 2 + 1
                self.blur = Blur(blur_kernel, pad=(pad0, pad1), upsample_factor=factor)
            fan_in = in_channel * kernel_size ** 2
            self.scale = 1 / math.sqrt(fan_in)
            self.padding = kernel_size // 2
            self.weight = nn.Parameter(T.randn(1, out_channel, in_channel, kernel_size, kernel_size))
            self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
            self.demodulate = demodulate
            self.fused = fused

        def forward(self, input, style):
            batch, in_channel, height, width = input.shape
            if not self.fused:
                weight = self.scale * self.weight.squeeze(0)
                style = self.modulation(style)
                if self.demodulate:
                    w = weight.unsqueeze(0) * style.view(batch, 1, in_channel, 1, 1)
                    dcoefs = (w.square().sum((2, 3, 4)) + 1e-8).rsqrt()
                input = input * style.reshape(batch, in_channel, 1, 1)
                if self.upsample:
                    weight = weight.transpose(0, 1)
                    out = F.conv_transpose2d(input, weight, padding=0, stride=2)
                    out = self.blur(out)
                else:
                    out = F.conv2d(input, weight, padding=self.padding)
                if self.demodulate:
                    out = out * dcoefs.view(batch, -1, 1, 1)
                return out

            style = self.modulation(style).view(batch, 1, in_channel, 1, 1)
            weight = self.scale * self.weight * style
            if self.demodulate:
                demod = T.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
                weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
            weight = weight.view(batch * self.out_channel, in_channel, self.kernel_size, self.kernel_size)
            if self.upsample:
                input = input.view(1, batch * in_channel, height, width)
                weight = weight.view(batch, self.out_channel, in_channel, self.kernel_size, self.kernel_size)
                weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, self.kernel_size,
                                                        self.kernel_size)
                out = F.conv_transpose2d(input, weight, padding=0, stride=2, groups=batch)
                _, _, height, width = out.shape
                out = out.view(batch, self.out_channel, height, width)
                out = self.blur(out)
            else:
                input = input.view(1, batch * in_channel, height, width)
                out = F.conv2d(input, weight, padding=self.padding, groups=batch)
                _, _, height, width = out.shape
                out = out.view(batch, self.out_channel, height, width)
            return out

    class NoiseInjection(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(T.zeros(1))

        def forward(self, image, noise=None):
            if noise is None:
                batch, _, height, width = image.shape
                noise = image.new_empty(batch, 1, height, width).normal_()
            return image + self.weight * noise

    class ConstantInput(nn.Module):
        def __init__(self, channel, size=4):
            super().__init__()
            self.input = nn.Parameter(T.randn(1, channel, size, size))

        def forward(self, input):
            batch = input.shape[0]
            out = self.input.repeat(batch, 1, 1, 1)
            return out

    class FusedLeakyReLU(nn.Module):
        def __init__(self, channel, bias=True, negative_slope=0.2, scale=2 ** 0.5):
            super().__init__()
            if bias:
                self.bias = nn.Parameter(T.zeros(channel))
            else:
                self.bias = None
            self.negative_slope = negative_slope
            self.scale = scale

        def forward(self, input):
            return fused_leaky_relu(T, input, self.bias, self.negative_slope, self.scale)

    class StyledConv(nn.Module):
        def __init__(self, in_channel, out_channel, kernel_size, style_dim, upsample=False, blur_kernel=[1, 3, 3, 1],
                     demodulate=True):
            super().__init__()
            self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample,
                                        blur_kernel=blur_kernel, demodulate=demodulate, fused=fused)
            self.noise = NoiseInjection()
            self.activate = FusedLeakyReLU(out_channel)

        def forward(self, input, style, noise=None):
            out = self.conv(input, style)
            out = self.noise(out, noise=noise)
            out = self.activate(out)
            return out

    class ToRGB(nn.Module):
        def __init__(self, in_channel, style_dim, upsample=True, blur_kernel=[1, 3, 3, 1]):
            super().__init__()
            if upsample:
                self.upsample = Upsample(blur_kernel)
            self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False, fused=fused)
            self.bias = nn.Parameter(T.zeros(1, 3, 1, 1))

        def forward(self, input, style, skip=None):
            out = self.conv(input, style)
            out = out + self.bias
            if skip is not None:
                skip = self.upsample(skip)
                out = out + skip
            return out

    class Generator(nn.Module):
        def __init__(self, size, style_dim, n_mlp, blur_kernel=[1, 3, 3, 1], lr_mlp=0.01):
            super().__init__()
            self.size = size
            self.style_dim = style_dim
            layers = [PixelNorm()]
            for i in range(n_mlp):
                layers.append(EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu"))
            self.style = nn.Sequential(*layers)
            self.channels = g_channels
            self.input = ConstantInput(self.channels[4])
            self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim, blur_kernel=blur_kernel)
            self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)
            self.log_size = int(math.log(size, 2))
            self.num_layers = (self.log_size - 2) * 2 + 1
            self.convs = nn.ModuleList()
            self.upsamples = nn.ModuleList()
            self.to_rgbs = nn.ModuleList()
            self.noises = nn.Module()
            in_channel = self.channels[4]
            for layer_idx in range(self.num_layers):
                res = (layer_idx + 5) // 2
                shape = [1, 1, 2 ** res, 2 ** res]
                self.noises.register_buffer(f"noise_{layer_idx}", T.randn(*shape))
            for i in range(3, self.log_size + 1):
                out_channel = self.channels[2 ** i]
                self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True,
                                             blur_kernel=blur_kernel))
                self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
                self.to_rgbs.append(ToRGB(out_channel, style_dim))
                in_channel = out_channel
            self.n_latent = self.log_size * 2 - 2

        def mean_latent(self, latent_in):
            # latent_in = torch.randn(n_latent, self.style_dim, device=self.input.input.device): passed in
            latent = self.style(latent_in).mean(0, keepdim=True)
            return latent

        def forward(self, styles, return_latents=False, inject_index=None, truncation=1, truncation_latent=None,
                    input_is_latent=False, noise=None, randomize_noise=True):
            if not input_is_latent:
                styles = [self.style(s) for s in styles]
            if noise is None:
                if randomize_noise:
                    noise = [None] * self.num_layers
                else:
                    noise = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
            if truncation < 1:
                style_t = []
                for style in styles:
                    style_t.append(truncation_latent + truncation * (style - truncation_latent))
                styles = style_t
            if len(styles) < 2:
                inject_index = self.n_latent
                if styles[0].ndim < 3:
                    latent = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
                else:
                    latent = styles[0]
            else:
                if inject_index is None:
                    inject_index = random.randint(1, self.n_latent - 1)
                latent = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
                latent2 = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
                latent = T.cat([latent, latent2], 1)

            out = self.input(latent)
            out = self.conv1(out, latent[:, 0], noise=noise[0])
            skip = self.to_rgb1(out, latent[:, 1])
            i = 1
            for conv1, conv2, noise1, noise2, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2],
                                                            noise[2::2], self.to_rgbs):
                out = conv1(out, latent[:, i], noise=noise1)
                out = conv2(out, latent[:, i + 1], noise=noise2)
                skip = to_rgb(out, latent[:, i + 2], skip)
                i += 2
            image = skip
            if return_latents:
                return image, latent
            else:
                return image, None

    class ConvLayer(nn.Sequential):
        def __init__(self, in_channel, out_channel, kernel_size, downsample=False, blur_kernel=[1, 3, 3, 1],
                     bias=True, activate=True):
            layers = []
            if downsample:
                factor = 2
                p = (len(blur_kernel) - factor) + (kernel_size - 1)
                pad0 = (p + 1) // 2
                pad1 = p // 2
                layers.append(Blur(blur_kernel, pad=(pad0, pad1)))
                stride = 2
                self.padding = 0
            else:
                stride = 1
                self.padding = kernel_size // 2
            layers.append(EqualConv2d(in_channel, out_channel, kernel_size, padding=self.padding, stride=stride,
                                      bias=bias and not activate))
            if activate:
                layers.append(FusedLeakyReLU(out_channel, bias=bias))
            super().__init__(*layers)

    class ResBlock(nn.Module):
        def __init__(self, in_channel, out_channel, blur_kernel=[1, 3, 3, 1]):
            super().__init__()
            self.conv1 = ConvLayer(in_channel, in_channel, 3)
            self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True)
            self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, activate=False, bias=False)

        def forward(self, input):
            out = self.conv1(input)
            out = self.conv2(out)
            skip = self.skip(input)
            out = (out + skip) / math.sqrt(2)
            return out

    class Discriminator(nn.Module):
        def __init__(self, size, blur_kernel=[1, 3, 3, 1]):
            super().__init__()
            channels = d_channels
            convs = [ConvLayer(3, channels[size], 1)]
            log_size = int(math.log(size, 2))
            in_channel = channels[size]
            for i in range(log_size, 2, -1):
                out_channel = channels[2 ** (i - 1)]
                convs.append(ResBlock(in_channel, out_channel, blur_kernel))
                in_channel = out_channel
            self.convs = nn.Sequential(*convs)
            self.stddev_group = 4
            self.stddev_feat = 1
            self.final_conv = ConvLayer(in_channel + 1, channels[4], 3)
            self.final_linear = nn.Sequential(
                EqualLinear(channels[4] * 4 * 4, channels[4], activation="fused_lrelu"),
                EqualLinear(channels[4], 1),
            )

        def forward(self, input):
            out = self.convs(input)
            batch, channel, height, width = out.shape
            group = min(batch, self.stddev_group)
            stddev = out.view(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
            stddev = T.sqrt(stddev.var(0, unbiased=False) + 1e-8)
            stddev = stddev.mean([2, 3, 4], keepdims=True).squeeze(2)
            stddev = stddev.repeat(group, 1, height, width)
            out = T.cat([out, stddev], 1)
            out = self.final_conv(out)
            out = out.view(batch, -1)
            out = self.final_linear(out)
            return out

    class GAN(nn.Module):  # one module so that one state_dict carries G, D and g_ema
        def __init__(self):
            super().__init__()
            self.generator = Generator(size, style_dim, n_mlp, blur_kernel=blur_kernel, lr_mlp=lr_mlp)
            self.discriminator = Discriminator(size, blur_kernel=blur_kernel)
            self.g_ema = Generator(size, style_dim, n_mlp, blur_kernel=blur_kernel, lr_mlp=lr_mlp)
            self.g_ema.eval()

    return GAN()


def requires_grad(model, flag=True):
    for p in model.parameters():
        p.requires_grad = flag


def accumulate(T, model1, model2, decay=0.999):
    par1 = dict(model1.named_parameters())
    par2 = dict(model2.named_parameters())
    for k in par1.keys():
        with T.no_grad():  # par1[k].data.mul_(decay).add_(par2[k].data, alpha=1 - decay): .data is the raw array
            par1[k].mul_(decay).add_(par2[k], alpha=1 - decay)


def make_noise(T, draws, batch, latent_dim, n_noise, device):
    # torch.randn(batch, latent_dim) / torch.randn(n_noise, batch, latent_dim).unbind(0), drawn by NumPy
    noises = T.from_numpy(next(draws)[:, :batch, :latent_dim]).to(device)
    if n_noise == 1:
        return noises[0]
    return noises.unbind(0)


def mixing_noise(T, draws, batch, latent_dim, prob, device):
    if prob > 0 and random.random() < prob:
        return make_noise(T, draws, batch, latent_dim, 2, device)
    else:
        return [make_noise(T, draws, batch, latent_dim, 1, device)]


def d_logistic_loss(T, real_pred, fake_pred):
    F = T.nn.functional
    real_loss = F.softplus(-real_pred)
    fake_loss = F.softplus(fake_pred)
    return real_loss.mean() + fake_loss.mean()


def d_r1_loss(T, real_pred, real_img):
    grad_real, = T.autograd.grad(outputs=real_pred.sum(), inputs=real_img, create_graph=True)
    grad_penalty = grad_real.pow(2).reshape(grad_real.shape[0], -1).sum(1).mean()
    return grad_penalty


def g_nonsaturating_loss(T, fake_pred):
    loss = T.nn.functional.softplus(-fake_pred).mean()
    return loss


def g_path_regularize(T, fake_img, latents, mean_path_length, noise, decay=0.01):
    noise = noise / math.sqrt(fake_img.shape[2] * fake_img.shape[3])  # torch.randn_like(fake_img): passed in
    grad, = T.autograd.grad(outputs=(fake_img * noise).sum(), inputs=latents, create_graph=True)
    path_lengths = T.sqrt(grad.pow(2).sum(2).mean(1))
    path_mean = mean_path_length + decay * (path_lengths.mean() - mean_path_length)
    path_penalty = (path_lengths - path_mean).pow(2).mean()
    return path_penalty, path_mean.detach(), path_lengths


def train_stylegan2(T, device, init, reals, noise_draws, path_noises, mean_latent_in, fused, iters=2, batch=4,
                    latent=8, mixing=0.9, r1=10, d_reg_every=2, g_reg_every=2, path_regularize=2,
                    path_batch_shrink=2, lr=2e-3):
    device = device_of(T, device)
    random.seed(0)                                              # mixing_noise's coin and inject_index: Python's
    gan = ported_model(T, lambda T: stylegan2(T, fused=fused), init, device)
    generator, discriminator, g_ema = gan.generator, gan.discriminator, gan.g_ema
    g_ema.eval()
    accumulate(T, g_ema, generator, 0)
    g_reg_ratio = g_reg_every / (g_reg_every + 1)
    d_reg_ratio = d_reg_every / (d_reg_every + 1)
    g_optim = T.optim.Adam(generator.parameters(), lr=lr * g_reg_ratio, betas=(0 ** g_reg_ratio, 0.99 ** g_reg_ratio))
    d_optim = T.optim.Adam(discriminator.parameters(), lr=lr * d_reg_ratio,
                           betas=(0 ** d_reg_ratio, 0.99 ** d_reg_ratio))
    draws, path_draws = iter(noise_draws), iter(path_noises)
    mean_path_length = 0
    accum = 0.5 ** (32 / (10 * 1000))
    losses = []
    for i in range(iters):
        real_img = T.from_numpy(reals[i]).to(device)

        requires_grad(generator, False)
        requires_grad(discriminator, True)
        noise = mixing_noise(T, draws, batch, latent, mixing, device)
        # randomize_noise=False: the per-layer noise buffers stand in for NoiseInjection's normal_() draw
        fake_img, _ = generator(noise, randomize_noise=False)
        fake_pred = discriminator(fake_img)
        real_pred = discriminator(real_img)
        d_loss = d_logistic_loss(T, real_pred, fake_pred)
        losses += [d_loss.item(), real_pred.mean().item(), fake_pred.mean().item()]
        discriminator.zero_grad()
        d_loss.backward()
        d_optim.step()

        d_regularize = i % d_reg_every == 0
        if d_regularize:
            real_img.requires_grad = True
            real_img_aug = real_img
            real_pred = discriminator(real_img_aug)
            r1_loss = d_r1_loss(T, real_pred, real_img)
            discriminator.zero_grad()
            (r1 / 2 * r1_loss * d_reg_every + 0 * real_pred[0]).backward()
            d_optim.step()
            losses.append(r1_loss.item())

        requires_grad(generator, True)
        requires_grad(discriminator, False)
        noise = mixing_noise(T, draws, batch, latent, mixing, device)
        fake_img, _ = generator(noise, randomize_noise=False)
        fake_pred = discriminator(fake_img)
        g_loss = g_nonsaturating_loss(T, fake_pred)
        generator.zero_grad()
        g_loss.backward()
        g_optim.step()
        losses.append(g_loss.item())

        g_regularize = i % g_reg_every == 0
        if g_regularize:
            path_batch_size = max(1, batch // path_batch_shrink)
            noise = mixing_noise(T, draws, path_batch_size, latent, mixing, device)
            fake_img, latents = generator(noise, return_latents=True, randomize_noise=False)
            path_loss, mean_path_length, path_lengths = g_path_regularize(
                T, fake_img, latents, mean_path_length, T.from_numpy(next(path_draws)[:path_batch_size]).to(device))
            generator.zero_grad()
            weighted_path_loss = path_regularize * g_reg_every * path_loss
            if path_batch_shrink:
                weighted_path_loss += 0 * fake_img[0, 0, 0, 0]
            weighted_path_loss.backward()
            g_optim.step()
            losses += [path_loss.item(), mean_path_length.item(), path_lengths.mean().item()]
        accumulate(T, g_ema, generator, accum)

    with T.no_grad():
        g_ema.eval()
        mean_latent = g_ema.mean_latent(T.from_numpy(mean_latent_in).to(device))
        sample_z = T.from_numpy(noise_draws[-1][0]).to(device)
        sample, _ = g_ema([sample_z], truncation=0.7, truncation_latent=mean_latent, randomize_noise=False)
    return losses, dict(numpy_state(gan), sample=sample.cpu().numpy())


@pytest.mark.parametrize("fused", [True, False])
def test_stylegan2(device, fused):
    rng = np.random.default_rng(8)
    reals = rng.uniform(-1, 1, (2, 4, 3, 8, 8)).astype(np.float32)
    noise_draws = rng.standard_normal((8, 2, 4, 8)).astype(np.float32)
    path_noises = rng.standard_normal((2, 4, 3, 8, 8)).astype(np.float32)
    mean_latent_in = rng.standard_normal((16, 8)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_stylegan2, device, numpy_state(stylegan2(torch, fused=fused)), reals, noise_draws, path_noises,
             mean_latent_in, fused)


# ---- 9. R1 on real data (LMescheder/GAN_stability): conditional ResNet G/D, compute_grad2, RMSprop, averaging ----

def gan_stability(T, z_dim=4, nlabels=3, size=8, embed_size=6, nfilter=4):
    nn, F = T.nn, T.nn.functional

    def actvn(x):
        out = F.leaky_relu(x, 2e-1)
        return out

    class ResnetBlock(nn.Module):
        def __init__(self, fin, fout, fhidden=None, is_bias=True):
            super().__init__()
            # Attributes
            self.is_bias = is_bias
            self.learned_shortcut = (fin != fout)
            self.fin = fin
            self.fout = fout
            if fhidden is None:
                self.fhidden = min(fin, fout)
            else:
                self.fhidden = fhidden
            # Submodules
            self.conv_0 = nn.Conv2d(self.fin, self.fhidden, 3, stride=1, padding=1)
            self.conv_1 = nn.Conv2d(self.fhidden, self.fout, 3, stride=1, padding=1, bias=is_bias)
            if self.learned_shortcut:
                self.conv_s = nn.Conv2d(self.fin, self.fout, 1, stride=1, padding=0, bias=False)

        def forward(self, x):
            x_s = self._shortcut(x)
            dx = self.conv_0(actvn(x))
            dx = self.conv_1(actvn(dx))
            out = x_s + 0.1 * dx
            return out

        def _shortcut(self, x):
            if self.learned_shortcut:
                x_s = self.conv_s(x)
            else:
                x_s = x
            return x_s

    class Generator(nn.Module):
        # gan_training/models/resnet.py with two resolution stages instead of six
        def __init__(self, z_dim, nlabels, size, embed_size=256, nfilter=64, **kwargs):
            super().__init__()
            s0 = self.s0 = size // 4
            nf = self.nf = nfilter
            self.z_dim = z_dim
            # Submodules
            self.embedding = nn.Embedding(nlabels, embed_size)
            self.fc = nn.Linear(z_dim + embed_size, 2 * nf * s0 * s0)
            self.resnet_0_0 = ResnetBlock(2 * nf, 2 * nf)
            self.resnet_1_0 = ResnetBlock(2 * nf, nf)
            self.resnet_2_0 = ResnetBlock(nf, nf)
            self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)

        def forward(self, z, y):
            assert (z.size(0) == y.size(0))
            batch_size = z.size(0)
            if y.dtype is T.int64:
                yembed = self.embedding(y)
            else:
                yembed = y
            yembed = yembed / T.norm(yembed, p=2, dim=1, keepdim=True)
            yz = T.cat([z, yembed], dim=1)
            out = self.fc(yz)
            out = out.view(batch_size, 2 * self.nf, self.s0, self.s0)
            out = self.resnet_0_0(out)
            out = F.interpolate(out, scale_factor=2)
            out = self.resnet_1_0(out)
            out = F.interpolate(out, scale_factor=2)
            out = self.resnet_2_0(out)
            out = self.conv_img(actvn(out))
            out = T.tanh(out)
            return out

    class Discriminator(nn.Module):
        def __init__(self, z_dim, nlabels, size, embed_size=256, nfilter=64, **kwargs):
            super().__init__()
            self.embed_size = embed_size
            s0 = self.s0 = size // 4
            nf = self.nf = nfilter
            # Submodules
            self.conv_img = nn.Conv2d(3, 1 * nf, 3, padding=1)
            self.resnet_0_0 = ResnetBlock(1 * nf, 1 * nf)
            self.resnet_1_0 = ResnetBlock(1 * nf, 2 * nf)
            self.resnet_2_0 = ResnetBlock(2 * nf, 2 * nf)
            self.fc = nn.Linear(2 * nf * s0 * s0, nlabels)

        def forward(self, x, y):
            assert (x.size(0) == y.size(0))
            batch_size = x.size(0)
            out = self.conv_img(x)
            out = self.resnet_0_0(out)
            out = F.avg_pool2d(out, 3, stride=2, padding=1)
            out = self.resnet_1_0(out)
            out = F.avg_pool2d(out, 3, stride=2, padding=1)
            out = self.resnet_2_0(out)
            out = out.view(batch_size, 2 * self.nf * self.s0 * self.s0)
            out = self.fc(actvn(out))
            # index = Variable(torch.LongTensor(range(out.size(0)))): no typed constructors in raygrad (README)
            index = T.autograd.Variable(T.tensor(range(out.size(0))))
            if y.is_cuda:
                index = index.cuda()
            out = out[index, y]
            return out

    class GAN(nn.Module):
        def __init__(self):
            super().__init__()
            self.generator = Generator(z_dim, nlabels, size, embed_size, nfilter)
            self.discriminator = Discriminator(z_dim, nlabels, size, embed_size, nfilter)

    return GAN()


def toggle_grad(model, requires_grad):
    for p in model.parameters():
        p.requires_grad_(requires_grad)


def compute_grad2(T, d_out, x_in):
    batch_size = x_in.size(0)
    grad_dout = T.autograd.grad(outputs=d_out.sum(), inputs=x_in, create_graph=True, retain_graph=True,
                                only_inputs=True)[0]
    grad_dout2 = grad_dout.pow(2)
    assert (grad_dout2.size() == x_in.size())
    reg = grad_dout2.view(batch_size, -1).sum(1)
    return reg


def update_average(T, model_tgt, model_src, beta):
    toggle_grad(model_src, False)
    toggle_grad(model_tgt, False)
    param_dict_src = dict(model_src.named_parameters())
    for p_name, p_tgt in model_tgt.named_parameters():
        p_src = param_dict_src[p_name]
        assert (p_src is not p_tgt)
        p_tgt.copy_(beta * p_tgt + (1. - beta) * p_src)


class Trainer(object):
    # gan_training/train.py
    def __init__(self, T, generator, discriminator, g_optimizer, d_optimizer, gan_type, reg_type, reg_param):
        self.T = T
        self.generator = generator
        self.discriminator = discriminator
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.gan_type = gan_type
        self.reg_type = reg_type
        self.reg_param = reg_param

    def generator_trainstep(self, y, z):
        assert (y.size(0) == z.size(0))
        toggle_grad(self.generator, True)
        toggle_grad(self.discriminator, False)
        self.generator.train()
        self.discriminator.train()
        self.g_optimizer.zero_grad()
        x_fake = self.generator(z, y)
        d_fake = self.discriminator(x_fake, y)
        gloss = self.compute_loss(d_fake, 1)
        gloss.backward()
        self.g_optimizer.step()
        return gloss.item()

    def discriminator_trainstep(self, x_real, y, z):
        toggle_grad(self.generator, False)
        toggle_grad(self.discriminator, True)
        self.generator.train()
        self.discriminator.train()
        self.d_optimizer.zero_grad()

        # On real data
        x_real.requires_grad_()
        d_real = self.discriminator(x_real, y)
        dloss_real = self.compute_loss(d_real, 1)
        if self.reg_type == 'real' or self.reg_type == 'real_fake':
            dloss_real.backward(retain_graph=True)
            reg = self.reg_param * compute_grad2(self.T, d_real, x_real).mean()
            reg.backward()
        else:
            dloss_real.backward()

        # On fake data
        with self.T.no_grad():
            x_fake = self.generator(z, y)
        x_fake.requires_grad_()
        d_fake = self.discriminator(x_fake, y)
        dloss_fake = self.compute_loss(d_fake, 0)
        if self.reg_type == 'fake' or self.reg_type == 'real_fake':
            dloss_fake.backward(retain_graph=True)
            reg = self.reg_param * compute_grad2(self.T, d_fake, x_fake).mean()
            reg.backward()
        else:
            dloss_fake.backward()

        self.d_optimizer.step()
        toggle_grad(self.discriminator, False)
        # Output
        dloss = (dloss_real + dloss_fake)
        if self.reg_type == 'none':
            reg = self.T.tensor(0.)
        return dloss.item(), reg.item()

    def compute_loss(self, d_out, target):
        targets = d_out.new_full(size=d_out.size(), fill_value=target)
        if self.gan_type == 'standard':
            loss = self.T.nn.functional.binary_cross_entropy_with_logits(d_out, targets)
        elif self.gan_type == 'wgan':
            loss = (2 * target - 1) * d_out.mean()
        else:
            raise NotImplementedError
        return loss


def train_gan_stability(T, device, init, reals, ys, zs, reg_type, gan_type, nlabels=3, d_steps=1):
    device = device_of(T, device)
    gan = ported_model(T, gan_stability, init, device)
    generator, discriminator = gan.generator, gan.discriminator
    generator_test = copy.deepcopy(generator)
    g_optimizer = T.optim.RMSprop(generator.parameters(), lr=1e-3, alpha=0.99, eps=1e-8)
    d_optimizer = T.optim.RMSprop(discriminator.parameters(), lr=1e-3, alpha=0.99, eps=1e-8)
    trainer = Trainer(T, generator, discriminator, g_optimizer, d_optimizer, gan_type=gan_type, reg_type=reg_type,
                      reg_param=10.)
    it, losses = -1, []
    for x_real, y, z_pair in zip(reals, ys, zs):
        it += 1
        x_real, y = T.from_numpy(x_real).to(device), T.from_numpy(y).to(device)
        y.clamp_(None, nlabels - 1)
        # Discriminator updates
        z = T.from_numpy(z_pair[0]).to(device)                 # zdist.sample((batch_size,))
        dloss, reg = trainer.discriminator_trainstep(x_real, y, z)
        losses += [dloss, reg]
        # Generators updates
        if ((it + 1) % d_steps) == 0:
            z = T.from_numpy(z_pair[1]).to(device)
            gloss = trainer.generator_trainstep(y, z)
            losses.append(gloss)
            update_average(T, generator_test, generator, beta=0.9)
    with T.no_grad():
        x = generator_test(T.from_numpy(zs[0][0]).to(device), T.from_numpy(ys[0]).to(device))
    return losses, dict(numpy_state(gan), **prefixed("generator_test", numpy_state(generator_test)),
                        sample=x.cpu().numpy())


@pytest.mark.parametrize("reg_type, gan_type", [("real", "standard"), ("real_fake", "wgan")])
def test_r1_gan_stability(device, reg_type, gan_type):
    rng = np.random.default_rng(9)
    steps, b = 3, 4
    reals = rng.uniform(-1, 1, (steps, b, 3, 8, 8)).astype(np.float32)
    ys = rng.integers(0, 4, (steps, b))                        # clamp_(None, nlabels - 1) folds label 3 into 2
    zs = rng.standard_normal((steps, 2, b, 4)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_gan_stability, device, numpy_state(gan_stability(torch)), reals, ys, zs, reg_type, gan_type)


# ---- 10. VAEs: discretized mixture of logistics likelihood (pclucas14/pixel-cnn-pp utils), Bernoulli decoder ----
#          with free bits (addtt/ladder-vae-pytorch's free_bits_kl) and linear KL annealing

def log_sum_exp(T, x):
    """ numerically stable log_sum_exp implementation that prevents overflow """
    # TF ordering
    axis = len(x.size()) - 1
    m, _ = T.max(x, dim=axis)
    m2, _ = T.max(x, dim=axis, keepdim=True)
    return m + T.log(T.sum(T.exp(x - m2), dim=axis))


def log_prob_from_logits(T, x):
    """ numerically stable log_softmax implementation that prevents overflow """
    # TF ordering
    axis = len(x.size()) - 1
    m, _ = T.max(x, dim=axis, keepdim=True)
    return x - m - T.log(T.sum(T.exp(x - m), dim=axis, keepdim=True))


def discretized_mix_logistic_loss(T, x, l):
    """ log-likelihood for mixture of discretized logistics, assumes the data has been rescaled to [-1,1] interval """
    F = T.nn.functional
    Variable = T.autograd.Variable
    # Pytorch ordering
    x = x.permute(0, 2, 3, 1)
    l = l.permute(0, 2, 3, 1)
    xs = [int(y) for y in x.size()]
    ls = [int(y) for y in l.size()]

    # here and below: unpacking the params of the mixture of logistics
    nr_mix = int(ls[-1] / 10)
    logit_probs = l[:, :, :, :nr_mix]
    l = l[:, :, :, nr_mix:].contiguous().view(xs + [nr_mix * 3])  # 3 for mean, scale, coef
    means = l[:, :, :, :, :nr_mix]
    # log_scales = torch.max(l[:, :, :, :, nr_mix:2 * nr_mix], -7.)
    log_scales = T.clamp(l[:, :, :, :, nr_mix:2 * nr_mix], min=-7.)

    coeffs = F.tanh(l[:, :, :, :, 2 * nr_mix:3 * nr_mix])
    # here and below: getting the means and adjusting them based on preceding
    # sub-pixels
    x = x.contiguous()
    # Variable(torch.zeros(xs + [nr_mix]).cuda(), requires_grad=False): .cuda() becomes .to(x.device)
    x = x.unsqueeze(-1) + Variable(T.zeros(xs + [nr_mix]).to(x.device), requires_grad=False)
    m2 = (means[:, :, :, 1, :] + coeffs[:, :, :, 0, :]
          * x[:, :, :, 0, :]).view(xs[0], xs[1], xs[2], 1, nr_mix)

    m3 = (means[:, :, :, 2, :] + coeffs[:, :, :, 1, :] * x[:, :, :, 0, :] +
          coeffs[:, :, :, 2, :] * x[:, :, :, 1, :]).view(xs[0], xs[1], xs[2], 1, nr_mix)

    means = T.cat((means[:, :, :, 0, :].unsqueeze(3), m2, m3), dim=3)
    centered_x = x - means
    inv_stdv = T.exp(-log_scales)
    plus_in = inv_stdv * (centered_x + 1. / 255.)
    cdf_plus = F.sigmoid(plus_in)
    min_in = inv_stdv * (centered_x - 1. / 255.)
    cdf_min = F.sigmoid(min_in)
    # log probability for edge case of 0 (before scaling)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    # log probability for edge case of 255 (before scaling)
    log_one_minus_cdf_min = -F.softplus(min_in)
    cdf_delta = cdf_plus - cdf_min  # probability for all other cases
    mid_in = inv_stdv * centered_x
    # log probability in the center of the bin, to be used in extreme cases
    # (not actually used in our code)
    log_pdf_mid = mid_in - log_scales - 2. * F.softplus(mid_in)

    # now select the right output: left edge case, right edge case, normal
    # case, extremely low prob case (doesn't actually happen for us)

    # this is what we are really doing, but using the robust version below for extreme cases in other applications
    # and to avoid NaN issue with tf.select()
    # log_probs = tf.select(x < -0.999, log_cdf_plus, tf.select(x > 0.999, log_one_minus_cdf_min, tf.log(cdf_delta)))

    # robust version, that still works if probabilities are below 1e-5 (which never happens in our code)
    # tensorflow backpropagates through tf.select() by multiplying with zero instead of selecting: this requires
    # us to use some ugly tricks to avoid potential NaNs
    # the 1e-12 in tf.maximum(cdf_delta, 1e-12) is never actually used as output, it's purely there to get around
    # the tf.select() gradient issue
    # if the probability on a sub-pixel is below 1e-5, we use an approximation
    # based on the assumption that the log-density is constant in the bin of
    # the observed sub-pixel value

    inner_inner_cond = (cdf_delta > 1e-5).float()
    inner_inner_out = inner_inner_cond * T.log(T.clamp(cdf_delta, min=1e-12)) + (1. - inner_inner_cond) * (
        log_pdf_mid - np.log(127.5))
    inner_cond = (x > 0.999).float()
    inner_out = inner_cond * log_one_minus_cdf_min + (1. - inner_cond) * inner_inner_out
    cond = (x < -0.999).float()
    log_probs = cond * log_cdf_plus + (1. - cond) * inner_out
    log_probs = T.sum(log_probs, dim=3) + log_prob_from_logits(T, logit_probs)

    return -T.sum(log_sum_exp(T, log_probs))


def to_one_hot(T, tensor, n, fill_with=1.):
    # we perform one hot encore with respect to the last axis
    # torch.FloatTensor(tensor.size() + (n,)).zero_(): no typed constructors in raygrad (README)
    one_hot = T.zeros(tensor.size() + (n,))
    if tensor.is_cuda:
        one_hot = one_hot.cuda()
    one_hot.scatter_(len(tensor.size()), tensor.unsqueeze(-1), fill_with)
    return T.autograd.Variable(one_hot)


def sample_from_discretized_mix_logistic(T, l, nr_mix, temp_u, u_u):
    F = T.nn.functional
    # Pytorch ordering
    l = l.permute(0, 2, 3, 1)
    ls = [int(y) for y in l.size()]
    xs = ls[:-1] + [3]

    # unpack parameters
    logit_probs = l[:, :, :, :nr_mix]
    l = l[:, :, :, nr_mix:].contiguous().view(xs + [nr_mix * 3])
    # sample mixture indicator from softmax
    # temp = torch.FloatTensor(logit_probs.size()); temp.uniform_(1e-5, 1. - 1e-5): the uniforms are passed in
    temp = T.from_numpy(temp_u).to(l.device)
    temp = logit_probs.detach() - T.log(- T.log(temp))        # logit_probs.data: the raw array in raygrad
    _, argmax = temp.max(dim=3)

    one_hot = to_one_hot(T, argmax.cpu(), nr_mix).to(l.device)
    sel = one_hot.view(xs[:-1] + [1, nr_mix])
    # select logistic parameters
    means = T.sum(l[:, :, :, :, :nr_mix] * sel, dim=4)
    log_scales = T.clamp(T.sum(l[:, :, :, :, nr_mix:2 * nr_mix] * sel, dim=4), min=-7.)
    coeffs = T.sum(F.tanh(l[:, :, :, :, 2 * nr_mix:3 * nr_mix]) * sel, dim=4)
    # sample from logistic & clip to interval
    # we don't actually round to the nearest 8bit value when sampling
    u = T.autograd.Variable(T.from_numpy(u_u).to(l.device))   # torch.FloatTensor(means.size()).uniform_(...)
    x = means + T.exp(log_scales) * (T.log(u) - T.log(1. - u))
    x0 = T.clamp(T.clamp(x[:, :, :, 0], min=-1.), max=1.)
    x1 = T.clamp(T.clamp(x[:, :, :, 1] + coeffs[:, :, :, 0] * x0, min=-1.), max=1.)
    x2 = T.clamp(T.clamp(x[:, :, :, 2] + coeffs[:, :, :, 1] * x0 + coeffs[:, :, :, 2] * x1, min=-1.), max=1.)

    out = T.cat([x0.view(xs[:-1] + [1]), x1.view(xs[:-1] + [1]), x2.view(xs[:-1] + [1])], dim=3)
    # put back in Pytorch ordering
    out = out.permute(0, 3, 1, 2)
    return out


def dmol_vae(T, latent=2, nr_mix=2, ch=8):
    nn = T.nn

    class VAE(nn.Module):
        # a small conv VAE whose decoder outputs pixel-cnn-pp's 10 * nr_mix logistic-mixture parameters per pixel
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Conv2d(3, ch, 3, 2, 1), nn.ELU(), nn.Flatten(),
                                         nn.Linear(ch * 2 * 2, 2 * latent))
            self.decoder = nn.Sequential(nn.Linear(latent, ch * 2 * 2), nn.ELU(), nn.Unflatten(1, (ch, 2, 2)),
                                         nn.ConvTranspose2d(ch, ch, 4, 2, 1), nn.ELU(), nn.Conv2d(ch, 10 * nr_mix, 1))

        def forward(self, x, eps):
            mu, logvar = self.encoder(x).chunk(2, dim=1)
            z = mu + eps * T.exp(0.5 * logvar)
            return self.decoder(z), mu, logvar

    return VAE()


def train_dmol_vae(T, device, init, xs, eps, temp_u, u_u, nr_mix=2):
    device = device_of(T, device)
    model = ported_model(T, dmol_vae, init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = T.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.999995)
    losses = []
    for x, e in zip(xs, eps):
        x = T.from_numpy(x).to(device) / 127.5 - 1.            # rescale uint8 pixels to [-1, 1]
        l, mu, logvar = model(x, T.from_numpy(e).to(device))
        nll = discretized_mix_logistic_loss(T, x, l)
        kl = -0.5 * T.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = nll + kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        deno = x.shape[0] * np.prod(x.shape[1:]) * np.log(2.)  # bits per dim, as pixel-cnn-pp reports it
        losses += [loss.item() / deno, nll.item(), kl.item()]
    model.eval()
    with T.no_grad():
        l = model.decoder(T.from_numpy(eps[0]).to(device))
        sample = sample_from_discretized_mix_logistic(T, l, nr_mix, temp_u, u_u)
    return losses, dict(numpy_state(model), sample=sample.cpu().numpy())


def bernoulli_vae(T, latent=3):
    nn = T.nn

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 2 * latent))
            self.dec = nn.Sequential(nn.Linear(latent, 12), nn.Tanh(), nn.Linear(12, 16))

        def forward(self, x, eps):
            mu, lv = self.enc(x).chunk(2, dim=-1)
            std = T.exp(0.5 * lv)
            q = T.distributions.Normal(mu, std)
            z = mu + std * eps                                   # q.rsample(), with its draw passed in
            logits = self.dec(z)
            p_x = T.distributions.Independent(T.distributions.Bernoulli(logits=logits), 1)
            prior = T.distributions.Normal(T.zeros_like(mu), T.ones_like(std))
            kl = T.distributions.kl_divergence(q, prior)        # (batch, latent): free bits per latent unit
            return p_x, kl

    return VAE()


def free_bits_kl(kl, free_bits, batch_average=False, eps=1e-6):
    """Computes free-bits version of KL divergence (addtt/ladder-vae-pytorch)."""
    assert kl.dim() == 2
    if free_bits < eps:
        return kl.mean(0)
    if batch_average:
        return kl.mean(0).clamp(min=free_bits)
    return kl.clamp(min=free_bits).mean(0)


def train_bernoulli_vae(T, device, init, xs, us, eps, free_bits, batch_average, kl_warmup=4):
    device = device_of(T, device)
    model = ported_model(T, bernoulli_vae, init, device)
    optimizer = T.optim.Adamax(model.parameters(), lr=1e-2)
    losses = []
    for step, (x, u, e) in enumerate(zip(xs, us, eps)):
        x = T.from_numpy(x).to(device)
        x = (T.from_numpy(u).to(device) < x).float()            # dynamic binarization: torch.bernoulli(x)
        p_x, kl = model(x, T.from_numpy(e).to(device))
        nll = -p_x.log_prob(x).mean()
        kl_loss = free_bits_kl(kl, free_bits, batch_average=batch_average).sum()
        beta = min(1.0, step / kl_warmup)                       # linear KL annealing
        loss = nll + beta * kl_loss
        elbo = -(nll + kl.sum(1).mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [loss.item(), elbo.item(), kl_loss.item()]
    return losses, numpy_state(model)


@pytest.mark.parametrize("likelihood", ["dmol", "bernoulli_free_bits", "bernoulli_free_bits_batch_average"])
def test_vae_likelihoods(device, likelihood):
    rng = np.random.default_rng(10)
    torch.manual_seed(0)
    if likelihood == "dmol":
        xs = rng.integers(0, 256, (3, 4, 3, 4, 4)).astype(np.float32)
        xs[:, 0, :, 0, 0], xs[:, 0, :, 0, 1] = 0, 255           # the edge cases: x < -0.999 and x > 0.999
        eps = rng.standard_normal((3, 4, 2)).astype(np.float32)
        temp_u = rng.uniform(1e-5, 1 - 1e-5, (4, 4, 4, 2)).astype(np.float32)
        u_u = rng.uniform(1e-5, 1 - 1e-5, (4, 4, 4, 3)).astype(np.float32)
        run_both(train_dmol_vae, device, numpy_state(dmol_vae(torch)), xs, eps, temp_u, u_u)
    else:
        xs = rng.uniform(0, 1, (6, 8, 16)).astype(np.float32)
        us = rng.uniform(0, 1, (6, 8, 16)).astype(np.float32)
        eps = rng.standard_normal((6, 8, 3)).astype(np.float32)
        run_both(train_bernoulli_vae, device, numpy_state(bernoulli_vae(torch)), xs, us, eps, 0.25,
                 likelihood.endswith("average"))
