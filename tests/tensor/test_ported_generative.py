"""Generative-model scripts (DDPM, RealNVP, Glow, WGAN-GP, VAE / VQ-VAE) that port from torch by changing imports.

Same protocol as test_ported_scripts.py: each script is a function of the library module `T`, written as
the well-known reference implementations write it (lucidrains' denoising-diffusion-pytorch and the
annotated diffusion blog, the RealNVP notebook, rosinality's glow-pytorch, PyTorch-GAN's WGAN-GP and
caogang's gan_toy.py, pytorch/examples' VAE, the VQ-VAE notebook); the model is built in torch and its state copied into raygrad, both see the same NumPy
data, and the losses and final parameters must agree to float32 accuracy. The random draws (noise,
timesteps, interpolation weights, reparameterisation eps) are made here with NumPy and passed in.
"""
import copy
import math
from functools import partial

import numpy as np
import pytest

import tensor
from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """The oracle on one thread: on a loaded machine torch's spinning OpenMP pool makes these tiny convs
    thirty times slower, and the values do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- 1. DDPM: beta schedules, extract, sinusoidal embeddings, a small UNet, p_losses, p_sample, EMA ----

def exists(x):
    return x is not None


def default(val, d):
    if exists(val):
        return val
    return d() if callable(d) else d


def linear_beta_schedule(T, timesteps):
    scale = 1000 / timesteps
    beta_start = scale * 0.0001
    beta_end = scale * 0.02
    return T.linspace(beta_start, beta_end, timesteps, dtype=T.float64)


def cosine_beta_schedule(T, timesteps, s=0.008):
    steps = timesteps + 1
    t = T.linspace(0, timesteps, steps, dtype=T.float64) / timesteps
    alphas_cumprod = T.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return T.clip(betas, 0, 0.999)


def extract(a, t, x_shape):
    b, *_ = t.shape
    out = a.gather(-1, t)
    return out.reshape(b, *((1,) * (len(x_shape) - 1)))


def unet(T, dim=8, channels=1, dim_mults=(1, 2), groups=4, up="upsample", flash=False):
    nn, F = T.nn, T.nn.functional

    class Residual(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x, *args, **kwargs):
            return self.fn(x, *args, **kwargs) + x

    class PreNorm(nn.Module):
        def __init__(self, dim, fn):
            super().__init__()
            self.fn = fn
            self.norm = nn.GroupNorm(1, dim)

        def forward(self, x):
            return self.fn(self.norm(x))

    def Upsample(dim, dim_out=None):
        if up == "transpose":
            return nn.ConvTranspose2d(dim, default(dim_out, dim), 4, 2, 1)
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             nn.Conv2d(dim, default(dim_out, dim), 3, padding=1))

    def Downsample(dim, dim_out=None):
        return nn.Conv2d(dim, default(dim_out, dim), 4, 2, 1)

    class SinusoidalPosEmb(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim

        def forward(self, x):
            device = x.device
            half_dim = self.dim // 2
            emb = math.log(10000) / (half_dim - 1)
            emb = T.exp(T.arange(half_dim, device=device) * -emb)
            emb = x[:, None] * emb[None, :]
            emb = T.cat((emb.sin(), emb.cos()), dim=-1)
            return emb

    class Block(nn.Module):
        def __init__(self, dim, dim_out, groups=8):
            super().__init__()
            self.proj = nn.Conv2d(dim, dim_out, 3, padding=1)
            self.norm = nn.GroupNorm(groups, dim_out)
            self.act = nn.SiLU()

        def forward(self, x, scale_shift=None):
            x = self.proj(x)
            x = self.norm(x)
            if exists(scale_shift):
                scale, shift = scale_shift
                x = x * (scale + 1) + shift
            return self.act(x)

    class ResnetBlock(nn.Module):
        def __init__(self, dim, dim_out, *, time_emb_dim=None, groups=8):
            super().__init__()
            self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2)) if exists(time_emb_dim) \
                else None
            self.block1 = Block(dim, dim_out, groups=groups)
            self.block2 = Block(dim_out, dim_out, groups=groups)
            self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

        def forward(self, x, time_emb=None):
            scale_shift = None
            if exists(self.mlp) and exists(time_emb):
                time_emb = self.mlp(time_emb)
                time_emb = time_emb[:, :, None, None]          # rearrange(time_emb, 'b c -> b c 1 1')
                scale_shift = time_emb.chunk(2, dim=1)
            h = self.block1(x, scale_shift=scale_shift)
            h = self.block2(h)
            return h + self.res_conv(x)

    class LinearAttention(nn.Module):
        def __init__(self, dim, heads=2, dim_head=4):
            super().__init__()
            self.scale = dim_head ** -0.5
            self.heads = heads
            hidden_dim = dim_head * heads
            self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
            self.to_out = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1), nn.GroupNorm(1, dim))

        def forward(self, x):
            b, c, h, w = x.shape
            qkv = self.to_qkv(x).chunk(3, dim=1)
            # rearrange(t, 'b (h c) x y -> b h c (x y)', h=self.heads)
            q, k, v = map(lambda t: t.reshape(b, self.heads, -1, h * w), qkv)
            q = q.softmax(dim=-2)
            k = k.softmax(dim=-1)
            q = q * self.scale
            context = T.einsum("b h d n, b h e n -> b h d e", k, v)
            out = T.einsum("b h d e, b h d n -> b h e n", context, q)
            out = out.reshape(b, -1, h, w)                      # 'b h c (x y) -> b (h c) x y'
            return self.to_out(out)

    class Attention(nn.Module):
        def __init__(self, dim, heads=2, dim_head=4):
            super().__init__()
            self.scale = dim_head ** -0.5
            self.heads = heads
            hidden_dim = dim_head * heads
            self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
            self.to_out = nn.Conv2d(hidden_dim, dim, 1)

        def forward(self, x):
            b, c, h, w = x.shape
            qkv = self.to_qkv(x).chunk(3, dim=1)
            q, k, v = map(lambda t: t.view(b, self.heads, -1, h * w), qkv)
            if flash:                                           # lucidrains' Attend(flash=True)
                q, k, v = map(lambda t: t.transpose(-1, -2).contiguous(), (q, k, v))
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
                return self.to_out(out.permute(0, 1, 3, 2).reshape(b, -1, h, w))
            q = q * self.scale
            sim = T.einsum("b h d i, b h d j -> b h i j", q, k)
            sim = sim - sim.amax(dim=-1, keepdim=True).detach()
            attn = sim.softmax(dim=-1)
            out = T.einsum("b h i j, b h d j -> b h i d", attn, v)
            out = out.permute(0, 1, 3, 2).reshape(b, -1, h, w)  # 'b h (x y) d -> b (h d) x y'
            return self.to_out(out)

    class Unet(nn.Module):
        def __init__(self):
            super().__init__()
            self.channels = channels
            init_dim = dim
            self.init_conv = nn.Conv2d(channels, init_dim, 7, padding=3)
            dims = [init_dim, *map(lambda m: dim * m, dim_mults)]
            in_out = list(zip(dims[:-1], dims[1:]))
            block_klass = partial(ResnetBlock, groups=groups)
            time_dim = dim * 4
            self.time_mlp = nn.Sequential(SinusoidalPosEmb(dim), nn.Linear(dim, time_dim), nn.GELU(),
                                          nn.Linear(time_dim, time_dim))
            self.downs = nn.ModuleList([])
            self.ups = nn.ModuleList([])
            num_resolutions = len(in_out)
            for ind, (dim_in, dim_out) in enumerate(in_out):
                is_last = ind >= (num_resolutions - 1)
                self.downs.append(nn.ModuleList([
                    block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                    block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                    Residual(PreNorm(dim_in, LinearAttention(dim_in))),
                    Downsample(dim_in, dim_out) if not is_last else nn.Conv2d(dim_in, dim_out, 3, padding=1),
                ]))
            mid_dim = dims[-1]
            self.mid_block1 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)
            self.mid_attn = Residual(PreNorm(mid_dim, Attention(mid_dim)))
            self.mid_block2 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)
            for ind, (dim_in, dim_out) in enumerate(reversed(in_out)):
                is_last = ind == (len(in_out) - 1)
                self.ups.append(nn.ModuleList([
                    block_klass(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                    block_klass(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                    Residual(PreNorm(dim_out, LinearAttention(dim_out))),
                    Upsample(dim_out, dim_in) if not is_last else nn.Conv2d(dim_out, dim_in, 3, padding=1),
                ]))
            self.out_dim = channels
            self.final_res_block = block_klass(dim * 2, dim, time_emb_dim=time_dim)
            self.final_conv = nn.Conv2d(dim, self.out_dim, 1)

        def forward(self, x, time):
            x = self.init_conv(x)
            r = x.clone()
            t = self.time_mlp(time)
            h = []
            for block1, block2, attn, downsample in self.downs:
                x = block1(x, t)
                h.append(x)
                x = block2(x, t)
                x = attn(x)
                h.append(x)
                x = downsample(x)
            x = self.mid_block1(x, t)
            x = self.mid_attn(x)
            x = self.mid_block2(x, t)
            for block1, block2, attn, upsample in self.ups:
                x = T.cat((x, h.pop()), dim=1)
                x = block1(x, t)
                x = T.cat((x, h.pop()), dim=1)
                x = block2(x, t)
                x = attn(x)
                x = upsample(x)
            x = T.cat((x, r), dim=1)
            x = self.final_res_block(x, t)
            return self.final_conv(x)

    return Unet()


def gaussian_diffusion(T, model, timesteps, beta_schedule="cosine", loss_type="l2", min_snr_gamma=None):
    nn, F = T.nn, T.nn.functional

    class GaussianDiffusion(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.channels = model.channels
            if beta_schedule == "linear":
                betas = linear_beta_schedule(T, timesteps)
            else:
                betas = cosine_beta_schedule(T, timesteps)
            alphas = 1. - betas
            alphas_cumprod = T.cumprod(alphas, dim=0)
            alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.)
            timesteps_, = betas.shape
            self.num_timesteps = int(timesteps_)
            self.loss_type = loss_type

            register_buffer = lambda name, val: self.register_buffer(name, val.to(T.float32))  # noqa: E731
            register_buffer("betas", betas)
            register_buffer("alphas_cumprod", alphas_cumprod)
            register_buffer("alphas_cumprod_prev", alphas_cumprod_prev)
            register_buffer("sqrt_alphas_cumprod", T.sqrt(alphas_cumprod))
            register_buffer("sqrt_one_minus_alphas_cumprod", T.sqrt(1. - alphas_cumprod))
            register_buffer("log_one_minus_alphas_cumprod", T.log(1. - alphas_cumprod))
            register_buffer("sqrt_recip_alphas_cumprod", T.sqrt(1. / alphas_cumprod))
            register_buffer("sqrt_recipm1_alphas_cumprod", T.sqrt(1. / alphas_cumprod - 1))
            posterior_variance = betas * (1. - alphas_cumprod_prev) / (1. - alphas_cumprod)
            register_buffer("posterior_variance", posterior_variance)
            register_buffer("posterior_log_variance_clipped", T.log(posterior_variance.clamp(min=1e-20)))
            register_buffer("posterior_mean_coef1", betas * T.sqrt(alphas_cumprod_prev) / (1. - alphas_cumprod))
            register_buffer("posterior_mean_coef2",
                            (1. - alphas_cumprod_prev) * T.sqrt(alphas) / (1. - alphas_cumprod))
            snr = alphas_cumprod / (1 - alphas_cumprod)
            maybe_clipped_snr = snr.clone()
            if exists(min_snr_gamma):
                maybe_clipped_snr.clamp_(max=min_snr_gamma)
            register_buffer("loss_weight", maybe_clipped_snr / snr)

        @property
        def device(self):
            return self.betas.device

        def predict_start_from_noise(self, x_t, t, noise):
            return (extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
                    - extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * noise)

        def q_posterior(self, x_start, x_t, t):
            posterior_mean = (extract(self.posterior_mean_coef1, t, x_t.shape) * x_start
                              + extract(self.posterior_mean_coef2, t, x_t.shape) * x_t)
            posterior_variance = extract(self.posterior_variance, t, x_t.shape)
            posterior_log_variance_clipped = extract(self.posterior_log_variance_clipped, t, x_t.shape)
            return posterior_mean, posterior_variance, posterior_log_variance_clipped

        def p_mean_variance(self, x, t, clip_denoised=True):
            pred_noise = self.model(x, t)
            x_start = self.predict_start_from_noise(x, t, pred_noise)
            if clip_denoised:
                x_start.clamp_(-1., 1.)
            return self.q_posterior(x_start=x_start, x_t=x, t=t) + (x_start,)

        @T.no_grad()
        def p_sample(self, x, t: int, noise):
            b, *_ = x.shape
            batched_times = T.full((b,), t, device=x.device, dtype=T.long)
            model_mean, _, model_log_variance, x_start = self.p_mean_variance(x=x, t=batched_times)
            noise = noise if t > 0 else 0.
            pred_img = model_mean + (0.5 * model_log_variance).exp() * noise
            return pred_img, x_start

        @T.inference_mode()
        def ddim_step(self, x, t: int, t_next: int, eta=0.):
            b = x.shape[0]
            time_cond = T.full((b,), t, device=x.device, dtype=T.long)
            pred_noise = self.model(x, time_cond)
            x_start = self.predict_start_from_noise(x, time_cond, pred_noise)
            alpha = self.alphas_cumprod[t]
            alpha_next = self.alphas_cumprod[t_next]
            sigma = eta * ((1 - alpha / alpha_next) * (1 - alpha_next) / (1 - alpha)).sqrt()
            c = (1 - alpha_next - sigma ** 2).sqrt()
            return x_start * alpha_next.sqrt() + c * pred_noise

        def q_sample(self, x_start, t, noise=None):
            noise = default(noise, lambda: T.randn_like(x_start))
            return (extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
                    + extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise)

        @property
        def loss_fn(self):
            if self.loss_type == "l1":
                return F.l1_loss
            return F.mse_loss

        def p_losses(self, x_start, t, noise=None):
            b, c, h, w = x_start.shape
            noise = default(noise, lambda: T.randn_like(x_start))
            x = self.q_sample(x_start=x_start, t=t, noise=noise)
            model_out = self.model(x, t)
            loss = self.loss_fn(model_out, noise, reduction="none")
            loss = loss.mean(dim=list(range(1, loss.ndim)))     # reduce(loss, 'b ... -> b', 'mean')
            loss = loss * extract(self.loss_weight, t, loss.shape)
            return loss.mean()

        def forward(self, img, t, noise):
            img = img * 2 - 1                                   # normalize_to_neg_one_to_one
            return self.p_losses(img, t, noise)

    return GaussianDiffusion()


def ddpm(T, timesteps=100, beta_schedule="cosine", loss_type="l2", up="upsample", min_snr_gamma=None,
         flash=False):
    return gaussian_diffusion(T, unet(T, up=up, flash=flash), timesteps, beta_schedule, loss_type, min_snr_gamma)


def ema_update(T, ema_model, model, decay, style):
    with T.no_grad():
        if style == "lerp":                                     # ema-pytorch
            for ma_params, current_params in zip(ema_model.parameters(), model.parameters()):
                ma_params.lerp_(current_params, 1. - decay)
            for ma_buffer, current_buffer in zip(ema_model.buffers(), model.buffers()):
                ma_buffer.copy_(current_buffer)
        else:                                                   # timm's ModelEmaV3: mul_/add_ on the state
            msd = model.state_dict()
            for k, ema_v in ema_model.state_dict().items():
                # `ema_v.dtype.is_floating_point` (ModelEmaV2 style) fails: raygrad dtypes are numpy.dtype
                if ema_v.is_floating_point():
                    ema_v.mul_(decay).add_(msd[k].detach(), alpha=1. - decay)


def train_ddpm(T, device, init, images, ts, noises, sample_noise, config, ema_style):
    device = device_of(T, device)
    diffusion = ported_model(T, lambda T: ddpm(T, **config), init, device)
    ema = copy.deepcopy(diffusion)
    ema.eval().requires_grad_(False)
    opt = T.optim.Adam(diffusion.parameters(), lr=1e-3, betas=(0.9, 0.99))
    losses = []
    for img, t, noise in zip(images, ts, noises):
        img, t, noise = T.from_numpy(img).to(device), T.from_numpy(t).to(device), T.from_numpy(noise).to(device)
        loss = diffusion(img, t, noise)
        loss.backward()
        T.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        ema_update(T, ema, diffusion, 0.9, ema_style)
        losses.append(loss.item())
    x = T.from_numpy(sample_noise[0]).to(device)
    img, x_start = ema.p_sample(x, ema.num_timesteps - 1, T.from_numpy(sample_noise[1]).to(device))
    assert not img.requires_grad
    last, _ = ema.p_sample(img, 0, None)
    ddim = ema.ddim_step(x, ema.num_timesteps - 1, ema.num_timesteps // 2)
    out = {f"ema.{k}": v for k, v in numpy_state(ema).items()}
    out.update(numpy_state(diffusion), sample=img.cpu().numpy(), x_start=x_start.cpu().numpy(),
               last=last.cpu().numpy(), ddim=ddim.cpu().numpy())
    return losses, out


@pytest.mark.parametrize("config, ema_style", [
    (dict(beta_schedule="cosine", loss_type="l2"), "lerp"),
    (dict(beta_schedule="linear", loss_type="l1", up="transpose", min_snr_gamma=5., flash=True), "mul_add"),
])
def test_ddpm(device, config, ema_style):
    rng = np.random.default_rng(1)
    steps, b = 2, 2
    images = rng.uniform(0, 1, (steps, b, 1, 8, 8)).astype(np.float32)
    ts = rng.integers(0, 100, (steps, b))
    noises = rng.standard_normal((steps, b, 1, 8, 8)).astype(np.float32)
    sample_noise = rng.standard_normal((2, b, 1, 8, 8)).astype(np.float32)
    torch.manual_seed(0)
    got = run_both(train_ddpm, device, numpy_state(ddpm(torch, **config)), images, ts, noises, sample_noise,
                   config, ema_style)
    assert np.isfinite(got[0]).all() and all(np.isfinite(v).all() for v in got[1].values())


def test_beta_schedules_and_extract(device):
    for T in (torch, tensor):
        assert linear_beta_schedule(T, 10).dtype == T.float64
    for schedule in (linear_beta_schedule, cosine_beta_schedule):
        want, got = schedule(torch, 1000).numpy(), schedule(tensor, 1000).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    a = np.linspace(0.1, 1.0, 10)
    t = np.array([3, 0, 9])
    out = extract(tensor.tensor(a, device=device), tensor.tensor(t, device=device), (3, 1, 4, 4))
    assert out.shape == (3, 1, 1, 1) and np.allclose(out.cpu().numpy().ravel(), a[t])


# ---- 2. RealNVP: affine couplings with mask buffers, MultivariateNormal / Independent(Normal) prior -------

def realnvp(T, style, n_layers=4, hidden=16):
    nn = T.nn

    def nets():
        return nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                             nn.Linear(hidden, 2), nn.Tanh())

    def nett():
        return nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                             nn.Linear(hidden, 2))

    if style == "notebook":                                     # the RealNVP notebook: one module, f and g
        class RealNVP(nn.Module):
            def __init__(self, nets, nett, mask, prior):
                super().__init__()
                self.prior = prior
                self.mask = nn.Parameter(mask, requires_grad=False)
                self.t = T.nn.ModuleList([nett() for _ in range(len(mask))])
                self.s = T.nn.ModuleList([nets() for _ in range(len(mask))])

            def g(self, z):
                x = z
                for i in range(len(self.t)):
                    x_ = x * self.mask[i]
                    s = self.s[i](x_) * (1 - self.mask[i])
                    t = self.t[i](x_) * (1 - self.mask[i])
                    x = x_ + (1 - self.mask[i]) * (x * T.exp(s) + t)
                return x

            def f(self, x):
                log_det_J, z = x.new_zeros(x.shape[0]), x
                for i in reversed(range(len(self.t))):
                    z_ = self.mask[i] * z
                    s = self.s[i](z_) * (1 - self.mask[i])
                    t = self.t[i](z_) * (1 - self.mask[i])
                    z = (1 - self.mask[i]) * (z - t) * T.exp(-s) + z_
                    log_det_J -= s.sum(dim=1)
                return z, log_det_J

            def log_prob(self, x):
                z, logp = self.f(x)
                return self.prior.log_prob(z) + logp

        masks = T.from_numpy(np.array([[0, 1], [1, 0]] * (n_layers // 2)).astype(np.float32))
        prior = T.distributions.MultivariateNormal(T.zeros(2), T.eye(2))
        return RealNVP(nets, nett, masks, prior)

    class AffineCoupling(nn.Module):                            # a coupling layer per module, mask as buffer
        def __init__(self, mask):
            super().__init__()
            self.register_buffer("mask", mask)
            self.scale_net, self.translate_net = nets(), nett()

        def forward(self, x):
            x_masked = x * self.mask
            s = T.tanh(self.scale_net(x_masked)) * (1 - self.mask)
            t = self.translate_net(x_masked) * (1 - self.mask)
            z = x_masked + (1 - self.mask) * (x * T.exp(s) + t)
            log_det = s.sum(dim=1)
            return z, log_det

        def inverse(self, z):
            z_masked = z * self.mask
            s = T.tanh(self.scale_net(z_masked)) * (1 - self.mask)
            t = self.translate_net(z_masked) * (1 - self.mask)
            return z_masked + (1 - self.mask) * ((z - t) * T.exp(-s))

    class Flow(nn.Module):
        def __init__(self):
            super().__init__()
            mask = T.tensor([1.0, 0.0])
            self.layers = nn.ModuleList([AffineCoupling(mask if i % 2 == 0 else 1 - mask)
                                         for i in range(n_layers)])
            self.register_buffer("loc", T.zeros(2))
            self.register_buffer("scale", T.ones(2))

        @property
        def base_dist(self):
            return T.distributions.Independent(T.distributions.Normal(self.loc, self.scale), 1)

        def forward(self, x):
            log_det = T.zeros(x.shape[0], device=x.device)
            for layer in self.layers:
                x, ld = layer(x)
                log_det = log_det + ld
            return x, log_det

        def inverse(self, z):
            for layer in reversed(self.layers):
                z = layer.inverse(z)
            return z

        def log_prob(self, x):
            z, log_det = self(x)
            return self.base_dist.log_prob(z) + log_det

    return Flow()


def train_realnvp(T, device, init, batches, z_sample, style):
    device = device_of(T, device)
    flow = ported_model(T, lambda T: realnvp(T, style), init, device)
    if style == "notebook":   # the prior is a plain attribute: .to(device) does not move it
        flow.prior = T.distributions.MultivariateNormal(T.zeros(2, device=device), T.eye(2, device=device))
    optimizer = T.optim.Adam([p for p in flow.parameters() if p.requires_grad == True], lr=1e-3)  # noqa: E712
    losses = []
    for x in batches:
        x = T.from_numpy(x).to(device)
        loss = -flow.log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward(retain_graph=True)
        optimizer.step()
        losses.append(loss.item())
    z = T.from_numpy(z_sample).to(device)
    with T.no_grad():
        if style == "notebook":
            x = flow.g(z)
            back, _ = flow.f(x)
            log_pz = flow.prior.log_prob(z)
        else:
            x = flow.inverse(z)
            back, _ = flow(x)
            log_pz = flow.base_dist.log_prob(z)
    np.testing.assert_allclose(back.cpu().numpy(), z_sample, rtol=1e-4, atol=1e-5)
    return losses, dict(numpy_state(flow), x=x.cpu().numpy(), log_pz=log_pz.cpu().numpy())


@pytest.mark.parametrize("style", ["notebook", "coupling"])
def test_realnvp(device, style):
    rng = np.random.default_rng(2)
    theta = rng.uniform(0, np.pi, (4, 16))
    moons = np.stack([np.cos(theta), np.sin(theta)], -1) + 0.05 * rng.standard_normal((4, 16, 2))
    torch.manual_seed(0)
    run_both(train_realnvp, device, numpy_state(realnvp(torch, style)), moons.astype(np.float32),
             rng.standard_normal((8, 2)).astype(np.float32), style)


# ---- 2b. Glow (rosinality's glow-pytorch): ActNorm data init, invertible 1x1 conv, LU, squeeze / split --

def glow(T, lu, in_channel=1, n_flow=2, n_block=2, filter_size=8):
    nn, F = T.nn, T.nn.functional
    logabs = lambda x: T.log(T.abs(x))  # noqa: E731

    class ActNorm(nn.Module):
        def __init__(self, in_channel, logdet=True):
            super().__init__()
            self.loc = nn.Parameter(T.zeros(1, in_channel, 1, 1))
            self.scale = nn.Parameter(T.ones(1, in_channel, 1, 1))
            self.register_buffer("initialized", T.tensor(0, dtype=T.uint8))
            self.logdet = logdet

        def initialize(self, input):
            with T.no_grad():
                flatten = input.permute(1, 0, 2, 3).contiguous().view(input.shape[1], -1)
                mean = flatten.mean(1).unsqueeze(1).unsqueeze(2).unsqueeze(3).permute(1, 0, 2, 3)
                std = flatten.std(1).unsqueeze(1).unsqueeze(2).unsqueeze(3).permute(1, 0, 2, 3)
                self.loc.copy_(-mean)                           # `self.loc.data.copy_` there (README)
                self.scale.copy_(1 / (std + 1e-6))

        def forward(self, input):
            _, _, height, width = input.shape
            if self.initialized.item() == 0:
                self.initialize(input)
                self.initialized.fill_(1)
            log_abs = logabs(self.scale)
            logdet = height * width * T.sum(log_abs)
            return self.scale * (input + self.loc), logdet

        def reverse(self, output):
            return output / self.scale - self.loc

    class InvConv2d(nn.Module):
        def __init__(self, in_channel):
            super().__init__()
            weight = T.randn(in_channel, in_channel)
            q, _ = T.qr(weight)
            weight = q.unsqueeze(2).unsqueeze(3)
            self.weight = nn.Parameter(weight)

        def forward(self, input):
            _, _, height, width = input.shape
            out = F.conv2d(input, self.weight)
            logdet = height * width * T.slogdet(self.weight.squeeze().double())[1].float()
            return out, logdet

        def reverse(self, output):
            return F.conv2d(output, self.weight.squeeze().inverse().unsqueeze(2).unsqueeze(3))

    class InvConv2dLU(nn.Module):
        def __init__(self, in_channel):
            super().__init__()
            la = pytest.importorskip("scipy.linalg")
            weight = np.random.randn(in_channel, in_channel)
            q, _ = la.qr(weight)
            w_p, w_l, w_u = la.lu(q.astype(np.float32))
            w_s = np.diag(w_u)
            w_u = np.triu(w_u, 1)
            u_mask = np.triu(np.ones_like(w_u), 1)
            l_mask = u_mask.T
            w_p = T.from_numpy(w_p)
            w_l = T.from_numpy(w_l)
            w_s = T.from_numpy(w_s)
            w_u = T.from_numpy(w_u)
            self.register_buffer("w_p", w_p)
            self.register_buffer("u_mask", T.from_numpy(u_mask))
            self.register_buffer("l_mask", T.from_numpy(l_mask))
            self.register_buffer("s_sign", T.sign(w_s))
            self.register_buffer("l_eye", T.eye(l_mask.shape[0]))
            self.w_l = nn.Parameter(w_l)
            self.w_s = nn.Parameter(logabs(w_s))
            self.w_u = nn.Parameter(w_u)

        def forward(self, input):
            _, _, height, width = input.shape
            weight = self.calc_weight()
            out = F.conv2d(input, weight)
            logdet = height * width * T.sum(self.w_s)
            return out, logdet

        def calc_weight(self):
            weight = (self.w_p @ (self.w_l * self.l_mask + self.l_eye)
                      @ ((self.w_u * self.u_mask) + T.diag(self.s_sign * T.exp(self.w_s))))
            return weight.unsqueeze(2).unsqueeze(3)

        def reverse(self, output):
            weight = self.calc_weight()
            return F.conv2d(output, weight.squeeze().inverse().unsqueeze(2).unsqueeze(3))

    class ZeroConv2d(nn.Module):
        def __init__(self, in_channel, out_channel, padding=1):
            super().__init__()
            self.conv = nn.Conv2d(in_channel, out_channel, 3, padding=0)
            with T.no_grad():                                   # `.weight.data.zero_()` there (README)
                self.conv.weight.zero_()
                self.conv.bias.zero_()
            self.scale = nn.Parameter(T.zeros(1, out_channel, 1, 1))

        def forward(self, input):
            out = F.pad(input, [1, 1, 1, 1], value=1)
            out = self.conv(out)
            out = out * T.exp(self.scale * 3)
            return out

    class AffineCoupling(nn.Module):
        def __init__(self, in_channel, filter_size=512):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(in_channel // 2, filter_size, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(filter_size, filter_size, 1),
                nn.ReLU(inplace=True),
                ZeroConv2d(filter_size, in_channel),
            )
            with T.no_grad():
                self.net[0].weight.normal_(0, 0.05)
                self.net[0].bias.zero_()
                self.net[2].weight.normal_(0, 0.05)
                self.net[2].bias.zero_()

        def forward(self, input):
            in_a, in_b = input.chunk(2, 1)
            log_s, t = self.net(in_a).chunk(2, 1)
            s = F.sigmoid(log_s + 2)
            out_b = (in_b + t) * s
            logdet = T.sum(T.log(s).view(input.shape[0], -1), 1)
            return T.cat([in_a, out_b], 1), logdet

        def reverse(self, output):
            out_a, out_b = output.chunk(2, 1)
            log_s, t = self.net(out_a).chunk(2, 1)
            s = F.sigmoid(log_s + 2)
            in_b = out_b / s - t
            return T.cat([out_a, in_b], 1)

    class Flow(nn.Module):
        def __init__(self, in_channel):
            super().__init__()
            self.actnorm = ActNorm(in_channel)
            self.invconv = InvConv2dLU(in_channel) if lu else InvConv2d(in_channel)
            self.coupling = AffineCoupling(in_channel, filter_size=filter_size)

        def forward(self, input):
            out, logdet = self.actnorm(input)
            out, det1 = self.invconv(out)
            out, det2 = self.coupling(out)
            logdet = logdet + det1
            if det2 is not None:
                logdet = logdet + det2
            return out, logdet

        def reverse(self, output):
            input = self.coupling.reverse(output)
            input = self.invconv.reverse(input)
            return self.actnorm.reverse(input)

    def gaussian_log_p(x, mean, log_sd):
        return -0.5 * math.log(2 * math.pi) - log_sd - 0.5 * (x - mean) ** 2 / T.exp(2 * log_sd)

    class Block(nn.Module):
        def __init__(self, in_channel, n_flow, split=True):
            super().__init__()
            squeeze_dim = in_channel * 4
            self.flows = nn.ModuleList()
            for i in range(n_flow):
                self.flows.append(Flow(squeeze_dim))
            self.split = split
            if split:
                self.prior = ZeroConv2d(in_channel * 2, in_channel * 4)
            else:
                self.prior = ZeroConv2d(in_channel * 4, in_channel * 8)

        def forward(self, input):
            b_size, n_channel, height, width = input.shape
            squeezed = input.view(b_size, n_channel, height // 2, 2, width // 2, 2)
            squeezed = squeezed.permute(0, 1, 3, 5, 2, 4)
            out = squeezed.contiguous().view(b_size, n_channel * 4, height // 2, width // 2)
            logdet = 0
            for flow in self.flows:
                out, det = flow(out)
                logdet = logdet + det
            if self.split:
                out, z_new = out.chunk(2, 1)
                mean, log_sd = self.prior(out).chunk(2, 1)
                log_p = gaussian_log_p(z_new, mean, log_sd)
                log_p = log_p.view(b_size, -1).sum(1)
            else:
                zero = T.zeros_like(out)
                mean, log_sd = self.prior(zero).chunk(2, 1)
                log_p = gaussian_log_p(out, mean, log_sd)
                log_p = log_p.view(b_size, -1).sum(1)
                z_new = out
            return out, logdet, log_p, z_new

    class Glow(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList()
            n_channel = in_channel
            for i in range(n_block - 1):
                self.blocks.append(Block(n_channel, n_flow))
                n_channel *= 2
            self.blocks.append(Block(n_channel, n_flow, split=False))

        def forward(self, input):
            log_p_sum = 0
            logdet = 0
            out = input
            z_outs = []
            for block in self.blocks:
                out, det, log_p, z_new = block(out)
                z_outs.append(z_new)
                logdet = logdet + det
                if log_p is not None:
                    log_p_sum = log_p_sum + log_p
            return log_p_sum, logdet, z_outs

    return Glow()


def calc_loss(log_p, logdet, image_size, n_bins, n_channel=1):
    n_pixel = image_size * image_size * n_channel
    loss = -math.log(n_bins) * n_pixel
    loss = loss + logdet + log_p
    return ((-loss / (math.log(2) * n_pixel)).mean(), (log_p / (math.log(2) * n_pixel)).mean(),
            (logdet / (math.log(2) * n_pixel)).mean())


def train_glow(T, device, init, images, dequant, lu, n_bits=5):
    device = device_of(T, device)
    model = ported_model(T, lambda T: glow(T, lu), init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=1e-3)
    n_bins = 2.0 ** n_bits
    losses = []
    for i, (image, u) in enumerate(zip(images, dequant)):
        image = T.from_numpy(image).to(device)
        image = image * 255
        if n_bits < 8:
            image = T.floor(image / 2 ** (8 - n_bits))
        image = image / n_bins - 0.5
        if i == 0:
            with T.no_grad():
                log_p, logdet, _ = model(image + T.from_numpy(u).to(device) / n_bins)
                continue
        log_p, logdet, _ = model(image + T.from_numpy(u).to(device) / n_bins)
        logdet = logdet.mean()
        loss, log_p, log_det = calc_loss(log_p, logdet, image.shape[-1], n_bins)
        model.zero_grad()
        loss.backward()
        warmup_lr = 1e-3 * min(1, i * 1.0 / 2)
        optimizer.param_groups[0]["lr"] = warmup_lr
        optimizer.step()
        losses += [loss.item(), log_p.item(), log_det.item()]
    with T.no_grad():
        flow = model.blocks[0].flows[0]
        x = T.from_numpy(images[0][:, :1].repeat(4, 1)[:, :, :2, :2] - 0.5).to(device)   # (b, 4, 2, 2)
        back = flow.reverse(flow(x)[0])
    np.testing.assert_allclose(back.cpu().numpy(), x.cpu().numpy(), rtol=1e-3, atol=1e-4)
    return losses, numpy_state(model)


@pytest.mark.filterwarnings("ignore:torch.qr is deprecated", "ignore:The given NumPy array is not writable")
@pytest.mark.parametrize("lu", [False, True])
def test_glow(device, lu):
    rng = np.random.default_rng(7)
    images = rng.uniform(0, 1, (3, 4, 1, 4, 4)).astype(np.float32)
    dequant = rng.uniform(0, 1, (3, 4, 1, 4, 4)).astype(np.float32)
    torch.manual_seed(0)
    np.random.seed(0)
    run_both(train_glow, device, numpy_state(glow(torch, lu)), images, dequant, lu)


# ---- 3. WGAN-GP: gradient penalty through autograd.grad(create_graph=True), n_critic, spectral norm -----

IMG_SHAPE, LATENT = (1, 4, 4), 6


def wgan(T, sn=None):
    nn = T.nn

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()

            def block(in_feat, out_feat, normalize=True):
                layers = [nn.Linear(in_feat, out_feat)]
                if normalize:
                    layers.append(nn.BatchNorm1d(out_feat, 0.8))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                return layers

            self.model = nn.Sequential(
                *block(LATENT, 16, normalize=False),
                *block(16, 32),
                nn.Linear(32, int(np.prod(IMG_SHAPE))),
                nn.Tanh(),
            )

        def forward(self, z):
            img = self.model(z)
            img = img.view(img.shape[0], *IMG_SHAPE)
            return img

    class Discriminator(nn.Module):                            # PyTorch-GAN's MLP critic
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(
                nn.Linear(int(np.prod(IMG_SHAPE)), 32),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(32, 16),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(16, 1),
            )

        def forward(self, img):
            img_flat = img.view(img.shape[0], -1)
            validity = self.model(img_flat)
            return validity

    class SNDiscriminator(nn.Module):                          # SNGAN-style conv critic
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                sn(nn.Conv2d(1, 4, 3, 1, 1)),
                nn.LeakyReLU(0.1),
                sn(nn.Conv2d(4, 8, 4, 2, 1)),
                nn.LeakyReLU(0.1),
            )
            self.linear = sn(nn.Linear(8 * 2 * 2, 1))

        def forward(self, x):
            return self.linear(self.main(x).flatten(1))

    return nn.ModuleDict({"G": Generator(), "D": SNDiscriminator() if sn else Discriminator()})


def compute_gradient_penalty(T, D, real_samples, fake_samples, alpha):
    """PyTorch-GAN's, with alpha (np.random.random((b, 1, 1, 1)) there) passed in."""
    interpolates = (alpha * real_samples + ((1 - alpha) * fake_samples)).requires_grad_(True)
    d_interpolates = D(interpolates)
    fake = T.Tensor(real_samples.shape[0], 1).fill_(1.0).to(real_samples.device)
    gradients = T.autograd.grad(
        outputs=d_interpolates,
        inputs=interpolates,
        grad_outputs=fake,
        create_graph=True,
        retain_graph=True,
        only_inputs=True,
    )[0]
    gradients = gradients.view(gradients.size(0), -1)
    gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean()
    return gradient_penalty


def spectral_norm_of(T, kind):
    if kind == "hook":
        return T.nn.utils.spectral_norm
    return T.nn.utils.parametrizations.spectral_norm


def train_wgan_gp(T, device, init, reals, zs, alphas, sn_kind=None, n_critic=2, lambda_gp=10):
    device = device_of(T, device)
    sn = spectral_norm_of(T, sn_kind) if sn_kind else None
    model = ported_model(T, lambda T: wgan(T, sn), init, device)
    generator, discriminator = model["G"], model["D"]
    optimizer_G = T.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.0, 0.9))
    optimizer_D = T.optim.Adam(discriminator.parameters(), lr=1e-3, betas=(0.0, 0.9))
    losses = []
    for i, (imgs, z, alpha) in enumerate(zip(reals, zs, alphas)):
        real_imgs = T.from_numpy(imgs).to(device)
        z, alpha = T.from_numpy(z).to(device), T.from_numpy(alpha).to(device)
        optimizer_D.zero_grad()
        fake_imgs = generator(z)
        real_validity = discriminator(real_imgs)
        fake_validity = discriminator(fake_imgs)
        # PyTorch-GAN passes real_imgs.data, fake_imgs.data: raygrad's .data is the raw array (README)
        gradient_penalty = compute_gradient_penalty(T, discriminator, real_imgs.detach(), fake_imgs.detach(),
                                                    alpha)
        d_loss = -T.mean(real_validity) + T.mean(fake_validity) + lambda_gp * gradient_penalty
        d_loss.backward()
        optimizer_D.step()
        optimizer_G.zero_grad()
        losses += [d_loss.item(), gradient_penalty.item()]
        if i % n_critic == 0:
            fake_imgs = generator(z)
            fake_validity = discriminator(fake_imgs)
            g_loss = -T.mean(fake_validity)
            g_loss.backward()
            optimizer_G.step()
            losses.append(g_loss.item())
    return losses, numpy_state(model)


@pytest.mark.parametrize("sn_kind", [None, "hook", "parametrization"])
def test_wgan_gp(device, sn_kind):
    rng = np.random.default_rng(3)
    # A batch large enough that no first-layer unit of G sits on one side of its LeakyReLU for the whole
    # batch: BatchNorm would cancel that unit's bias exactly, and Adam would blow its rounding-noise
    # gradient (1e-11) up to a full step whose sign neither library can decide.
    steps, b = 4, 16
    reals = rng.uniform(-1, 1, (steps, b, *IMG_SHAPE)).astype(np.float32)
    zs = rng.standard_normal((steps, b, LATENT)).astype(np.float32)
    alphas = rng.random((steps, b, 1, 1, 1)).astype(np.float32)
    torch.manual_seed(0)
    init = numpy_state(wgan(torch, spectral_norm_of(torch, sn_kind) if sn_kind else None))
    # G's second Linear feeds a BatchNorm, which cancels its bias: that bias's gradient is rounding noise
    # (1e-10), which Adam turns into full steps of either sign, so it (and the BatchNorm's running mean,
    # which adds it) are left out; what reaches the output does not depend on it.
    noisy = ("G.model.2.bias", "G.model.3.running_mean")
    got = run_both(train_wgan_gp, device, init, reals, zs, alphas, sn_kind,
                   state_view=lambda state: {k: v for k, v in state.items() if k not in noisy})
    if sn_kind:   # the power-iteration vectors were compared with the rest of the state
        assert any(k.endswith(("weight_u", "_u")) for k in got[1])


def gan_toy(T, dim=16):
    nn = T.nn

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            main = nn.Sequential(
                nn.Linear(2, dim), nn.ReLU(True),
                nn.Linear(dim, dim), nn.ReLU(True),
                nn.Linear(dim, 2),
            )
            self.main = main

        def forward(self, noise):
            return self.main(noise)

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            main = nn.Sequential(
                nn.Linear(2, dim), nn.ReLU(True),
                nn.Linear(dim, dim), nn.ReLU(True),
                nn.Linear(dim, 1),
            )
            self.main = main

        def forward(self, inputs):
            output = self.main(inputs)
            return output.view(-1)

    return nn.ModuleDict({"G": Generator(), "D": Discriminator()})


def train_gan_toy(T, device, init, reals, noises, alphas, critic_iters=3, LAMBDA=0.1):
    """wgan-gp's gan_toy.py (caogang): requires_grad toggling, backward(mone), Variable, alpha.expand."""
    device = device_of(T, device)
    autograd = T.autograd
    model = ported_model(T, gan_toy, init, device)
    netG, netD = model["G"], model["D"]

    def calc_gradient_penalty(netD, real_data, fake_data, alpha):
        alpha = alpha.expand(real_data.size())
        interpolates = alpha * real_data + ((1 - alpha) * fake_data)
        interpolates = autograd.Variable(interpolates, requires_grad=True)
        disc_interpolates = netD(interpolates)
        gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                                  grad_outputs=T.ones(disc_interpolates.size(), device=device),
                                  create_graph=True, retain_graph=True, only_inputs=True)[0]
        gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * LAMBDA
        return gradient_penalty

    optimizerD = T.optim.Adam(netD.parameters(), lr=1e-3, betas=(0.5, 0.9))
    optimizerG = T.optim.Adam(netG.parameters(), lr=1e-3, betas=(0.5, 0.9))
    one = T.tensor(1, dtype=T.float, device=device)   # gan_toy.py's FloatTensor([1]): a 0-dim grad now
    mone = one * -1
    losses = []
    for iteration, (real_batches, noise_batches, alpha_batches) in enumerate(zip(reals, noises, alphas)):
        for p in netD.parameters():   # reset requires_grad
            p.requires_grad = True    # they are set to False below in netG update
        for iter_d in range(critic_iters):
            real_data = T.Tensor(real_batches[iter_d]).to(device)
            real_data_v = autograd.Variable(real_data)
            netD.zero_grad()
            D_real = netD(real_data_v)
            D_real = D_real.mean()
            D_real.backward(mone)
            noise = T.from_numpy(noise_batches[iter_d]).to(device)
            noisev = autograd.Variable(noise)
            fake = autograd.Variable(netG(noisev).detach())   # `netG(noisev).data` there (README: .data)
            inputv = fake
            D_fake = netD(inputv)
            D_fake = D_fake.mean()
            D_fake.backward(one)
            gradient_penalty = calc_gradient_penalty(netD, real_data_v.detach(), fake.detach(),
                                                     T.from_numpy(alpha_batches[iter_d]).to(device))
            gradient_penalty.backward()
            D_cost = D_fake - D_real + gradient_penalty
            Wasserstein_D = D_real - D_fake
            optimizerD.step()
            losses += [D_cost.item(), Wasserstein_D.item()]
        for p in netD.parameters():
            p.requires_grad = False   # to avoid computation
        netG.zero_grad()
        noisev = autograd.Variable(T.from_numpy(noise_batches[-1]).to(device))
        fake = netG(noisev)
        G = netD(fake)
        G = G.mean()
        d_grads = [p.grad.clone() for p in netD.parameters()]
        G.backward(mone)
        G_cost = -G
        optimizerG.step()
        assert all(T.equal(p.grad, g) for p, g in zip(netD.parameters(), d_grads))   # D was frozen
        losses.append(G_cost.item())
    return losses, numpy_state(model)


def test_wgan_gp_gan_toy(device):
    rng = np.random.default_rng(6)
    iters, critic_iters, b = 2, 3, 16
    reals = (rng.standard_normal((iters, critic_iters, b, 2)) * 0.2 + 1.0).astype(np.float32)
    noises = rng.standard_normal((iters, critic_iters, b, 2)).astype(np.float32)
    alphas = rng.random((iters, critic_iters, b, 1)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_gan_toy, device, numpy_state(gan_toy(torch)), reals, noises, alphas)


# ---- 4. Conv VAE (BCE + KLD) and a VQ-VAE codebook step ------------------------------------------------

def conv_vae(T, latent=3):
    nn, F = T.nn, T.nn.functional

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Conv2d(1, 4, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(4, 8, 4, 2, 1), nn.ReLU(),
                nn.Flatten(),
            )
            self.fc_mu = nn.Linear(8 * 2 * 2, latent)
            self.fc_logvar = nn.Linear(8 * 2 * 2, latent)
            self.decoder_input = nn.Linear(latent, 8 * 2 * 2)
            self.decoder = nn.Sequential(
                nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(4, 1, 4, 2, 1), nn.Sigmoid(),
            )

        def encode(self, x):
            h = self.encoder(x)
            return self.fc_mu(h), self.fc_logvar(h)

        def reparameterize(self, mu, logvar, eps):
            std = T.exp(0.5 * logvar)
            return mu + eps * std

        def decode(self, z):
            h = self.decoder_input(z).view(-1, 8, 2, 2)
            return self.decoder(h)

        def forward(self, x, eps):
            mu, logvar = self.encode(x)
            z = self.reparameterize(mu, logvar, eps)
            return self.decode(z), mu, logvar

    def loss_function(recon_x, x, mu, logvar):
        BCE = F.binary_cross_entropy(recon_x.view(-1, 64), x.view(-1, 64), reduction="sum")
        KLD = -0.5 * T.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return BCE + KLD

    return VAE(), loss_function


def train_conv_vae(T, device, init, xs, eps):
    device = device_of(T, device)
    model = ported_model(T, lambda T: conv_vae(T)[0], init, device)
    loss_function = conv_vae(T)[1]
    optimizer = T.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for data, e in zip(xs, eps):
        data, e = T.from_numpy(data).to(device), T.from_numpy(e).to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data, e)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        optimizer.step()
        losses.append(loss.item() / len(data))
    model.eval()
    with T.no_grad():
        sample = model.decode(T.from_numpy(eps[0]).to(device)).cpu()
    return losses, dict(numpy_state(model), sample=sample.numpy())


def test_conv_vae(device):
    rng = np.random.default_rng(4)
    xs = rng.uniform(0, 1, (3, 4, 1, 8, 8)).astype(np.float32)
    eps = rng.standard_normal((3, 4, 3)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_conv_vae, device, numpy_state(conv_vae(torch)[0]), xs, eps)


def vqvae(T, style, num_embeddings=6, embedding_dim=3, commitment_cost=0.25):
    nn, F = T.nn, T.nn.functional

    class VectorQuantizer(nn.Module):                          # the VQ-VAE notebook (zalandoresearch)
        def __init__(self):
            super().__init__()
            self._embedding_dim = embedding_dim
            self._num_embeddings = num_embeddings
            self._embedding = nn.Embedding(self._num_embeddings, self._embedding_dim)
            # `self._embedding.weight.data.uniform_(...)` there: raygrad's .data is the raw array (README)
            with T.no_grad():
                self._embedding.weight.uniform_(-1 / self._num_embeddings, 1 / self._num_embeddings)
            self._commitment_cost = commitment_cost

        def forward(self, inputs):
            inputs = inputs.permute(0, 2, 3, 1).contiguous()
            input_shape = inputs.shape
            flat_input = inputs.view(-1, self._embedding_dim)
            distances = (T.sum(flat_input ** 2, dim=1, keepdim=True)
                         + T.sum(self._embedding.weight ** 2, dim=1)
                         - 2 * T.matmul(flat_input, self._embedding.weight.t()))
            encoding_indices = T.argmin(distances, dim=1).unsqueeze(1)
            encodings = T.zeros(encoding_indices.shape[0], self._num_embeddings, device=inputs.device)
            encodings.scatter_(1, encoding_indices, 1)
            quantized = T.matmul(encodings, self._embedding.weight).view(input_shape)
            e_latent_loss = F.mse_loss(quantized.detach(), inputs)
            q_latent_loss = F.mse_loss(quantized, inputs.detach())
            loss = q_latent_loss + self._commitment_cost * e_latent_loss
            quantized = inputs + (quantized - inputs).detach()
            avg_probs = T.mean(encodings, dim=0)
            perplexity = T.exp(-T.sum(avg_probs * T.log(avg_probs + 1e-10)))
            return loss, quantized.permute(0, 3, 1, 2).contiguous(), perplexity, encodings

    class VectorQuantizerCdist(nn.Module):                     # cdist + one_hot + F.embedding, codebook as Parameter
        def __init__(self):
            super().__init__()
            self.codebook = nn.Parameter(T.randn(num_embeddings, embedding_dim))

        def forward(self, z):
            b, c, h, w = z.shape
            z_flat = z.permute(0, 2, 3, 1).reshape(-1, c)
            dist = T.cdist(z_flat, self.codebook)
            indices = dist.argmin(dim=-1)
            one_hot = F.one_hot(indices, num_embeddings).float()
            z_q = F.embedding(indices, self.codebook).view(b, h, w, c).permute(0, 3, 1, 2)
            codebook_loss = F.mse_loss(z_q, z.detach())
            commitment_loss = F.mse_loss(z, z_q.detach())
            loss = codebook_loss + commitment_cost * commitment_loss
            z_q = z + (z_q - z).detach()
            perplexity = T.exp(-(one_hot.mean(0) * T.log(one_hot.mean(0) + 1e-10)).sum())
            return loss, z_q, perplexity, one_hot

    class VectorQuantizerEMA(nn.Module):                       # the notebook's EMA codebook
        def __init__(self, decay=0.9, epsilon=1e-5):
            super().__init__()
            self._embedding_dim = embedding_dim
            self._num_embeddings = num_embeddings
            self._embedding = nn.Embedding(self._num_embeddings, self._embedding_dim)
            with T.no_grad():                                   # `.weight.data.normal_()` there (README)
                self._embedding.weight.normal_()
            self._commitment_cost = commitment_cost
            self.register_buffer("_ema_cluster_size", T.zeros(num_embeddings))
            self._ema_w = nn.Parameter(T.Tensor(num_embeddings, self._embedding_dim))
            with T.no_grad():                                   # `self._ema_w.data.normal_()` there
                self._ema_w.normal_()
            self._decay = decay
            self._epsilon = epsilon

        def forward(self, inputs):
            inputs = inputs.permute(0, 2, 3, 1).contiguous()
            input_shape = inputs.shape
            flat_input = inputs.view(-1, self._embedding_dim)
            distances = (T.sum(flat_input ** 2, dim=1, keepdim=True)
                         + T.sum(self._embedding.weight ** 2, dim=1)
                         - 2 * T.matmul(flat_input, self._embedding.weight.t()))
            encoding_indices = T.argmin(distances, dim=1).unsqueeze(1)
            encodings = T.zeros(encoding_indices.shape[0], self._num_embeddings, device=inputs.device)
            encodings.scatter_(1, encoding_indices, 1)
            quantized = T.matmul(encodings, self._embedding.weight).view(input_shape)
            if self.training:
                self._ema_cluster_size = self._ema_cluster_size * self._decay + \
                    (1 - self._decay) * T.sum(encodings, 0)
                # Laplace smoothing of the cluster size (`.data` there)
                n = T.sum(self._ema_cluster_size.detach())
                self._ema_cluster_size = (
                    (self._ema_cluster_size + self._epsilon)
                    / (n + self._num_embeddings * self._epsilon) * n)
                dw = T.matmul(encodings.t(), flat_input)
                self._ema_w = nn.Parameter(self._ema_w * self._decay + (1 - self._decay) * dw)
                self._embedding.weight = nn.Parameter(self._ema_w / self._ema_cluster_size.unsqueeze(1))
            e_latent_loss = F.mse_loss(quantized.detach(), inputs)
            loss = self._commitment_cost * e_latent_loss
            quantized = inputs + (quantized - inputs).detach()
            avg_probs = T.mean(encodings, dim=0)
            perplexity = T.exp(-T.sum(avg_probs * T.log(avg_probs + 1e-10)))
            return loss, quantized.permute(0, 3, 1, 2).contiguous(), perplexity, encodings

    quantizers = {"notebook": VectorQuantizer, "cdist": VectorQuantizerCdist, "ema": VectorQuantizerEMA}

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self._encoder = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.ReLU(), nn.Conv2d(4, embedding_dim, 1))
            self._vq_vae = quantizers[style]()
            self._decoder = nn.Sequential(nn.ConvTranspose2d(embedding_dim, 4, 4, 2, 1), nn.ReLU(),
                                          nn.Conv2d(4, 1, 3, padding=1))

        def forward(self, x):
            z = self._encoder(x)
            loss, quantized, perplexity, encodings = self._vq_vae(z)
            x_recon = self._decoder(quantized)
            return loss, x_recon, perplexity, encodings

    return Model()


def train_vqvae(T, device, init, xs, style):
    device = device_of(T, device)
    model = ported_model(T, lambda T: vqvae(T, style), init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=1e-2, amsgrad=False)
    data_variance = float(np.var(xs))
    losses = []
    for data in xs:
        data = T.from_numpy(data).to(device)
        optimizer.zero_grad()
        vq_loss, data_recon, perplexity, encodings = model(data)
        recon_error = T.nn.functional.mse_loss(data_recon, data) / data_variance
        loss = recon_error + vq_loss
        loss.backward()
        optimizer.step()
        losses += [recon_error.item(), vq_loss.item(), perplexity.item()]
    return losses, dict(numpy_state(model), encodings=encodings.cpu().numpy())


@pytest.mark.parametrize("style", ["notebook", "cdist", "ema"])
def test_vqvae(device, style):
    rng = np.random.default_rng(5)
    xs = rng.uniform(-0.5, 0.5, (3, 4, 1, 8, 8)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_vqvae, device, numpy_state(vqvae(torch, style)), xs, style)
