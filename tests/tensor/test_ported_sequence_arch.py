"""Modern sequence architectures as their reference implementations write them in plain PyTorch, ported
by imports: Mamba's selective scan (mamba-minimal, mamba_ssm's step) and Mamba-2's SSD (mamba2-minimal),
RWKV-4 time / channel mixing in GPT and RNN form (RWKV-LM, ChatRWKV), RetNet's multi-scale retention in
parallel, recurrent and chunkwise form (torchscale), linear attention (fast-transformers), ALiBi (fairseq,
BLOOM, MPT), rotary embeddings in the real GPT-NeoX / GPT-J forms, Mistral's sliding-window attention with
RMSNorm + SwiGLU, block-local attention (lucidrains/local-attention), and sparse mixtures of experts
(mistral-src, Switch Transformers).

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data, and losses and final parameters agree to float32 accuracy. Every script trains
a few steps with AdamW and clip_grad_norm_. Where an architecture has two equivalent forms (parallel and
recurrent), the script also checks that they agree, on both libraries.
"""
import math
from dataclasses import dataclass

import numpy as np
import pytest

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def train_steps(T, model, step_loss, steps=3, lr=1e-2, max_norm=1.0, weight_decay=0.1, params=None,
                before_step=None):
    """The loop every script shares: AdamW (on `params`, parameter groups, if given), backward,
    clip_grad_norm_, step; returns the losses and gradient norms."""
    params = model.parameters() if params is None else params
    optimizer = T.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    out = []
    for it in range(steps):
        if before_step is not None:
            before_step(optimizer, it)
        loss = step_loss(it)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = T.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        out += [loss.item(), norm.item()]
    return out


# ---- 1. Mamba (johnma2006/mamba-minimal, model.py): in_proj, causal depthwise conv1d, selective scan -----
# mamba-minimal's MambaBlock (split, conv1d(...)[:, :, :l], softplus delta, exp(einsum) discretisation, the
# sequential scan, silu gate) with mamba_ssm's dt / A_log / D initialisation (inverse softplus via expm1,
# _no_weight_decay and _no_reinit marks, honoured by the optimizer's parameter groups) and mamba_simple.py's
# step(): a conv state rolled with torch.roll and copy_, which must reproduce the scan token by token.

@dataclass
class MambaArgs:
    d_model: int = 8
    n_layer: int = 2
    vocab_size: int = 13
    d_state: int = 4
    expand: int = 2
    d_conv: int = 4
    conv_bias: bool = True
    bias: bool = False

    def __post_init__(self):
        self.d_inner = int(self.expand * self.d_model)
        self.dt_rank = math.ceil(self.d_model / 16)


def mamba(T, args=MambaArgs()):
    nn, F = T.nn, T.nn.functional

    class RMSNorm(nn.Module):
        def __init__(self, d_model, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(T.ones(d_model))

        def forward(self, x):
            return x * T.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    class MambaBlock(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.in_proj = nn.Linear(args.d_model, args.d_inner * 2, bias=args.bias)
            self.conv1d = nn.Conv1d(in_channels=args.d_inner, out_channels=args.d_inner, bias=args.conv_bias,
                                    kernel_size=args.d_conv, groups=args.d_inner, padding=args.d_conv - 1)
            self.x_proj = nn.Linear(args.d_inner, args.dt_rank + args.d_state * 2, bias=False)
            self.dt_proj = nn.Linear(args.dt_rank, args.d_inner, bias=True)
            # mamba_ssm's mamba_simple.py initialisation (mamba-minimal only loads pretrained weights):
            # Initialize special dt projection to preserve variance at initialization
            dt_init_std = args.dt_rank ** -0.5 * 1.0
            nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
            # Initialize dt bias so that F.softplus(dt_bias) is between dt_min and dt_max
            dt_min, dt_max, dt_init_floor = 0.001, 0.1, 1e-4
            dt = T.exp(T.rand(args.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
                       ).clamp(min=dt_init_floor)
            # Inverse of the softplus: https://github.com/pytorch/pytorch/issues/72759
            inv_dt = dt + T.log(-T.expm1(-dt))
            with T.no_grad():
                self.dt_proj.bias.copy_(inv_dt)
            # Our initialization would set all Linear.bias to zero, need to mark this one as _no_reinit
            self.dt_proj.bias._no_reinit = True
            # mamba-minimal: A = repeat(torch.arange(1, d_state + 1), 'n -> d n', d=d_inner) (einops)
            A = T.arange(1, args.d_state + 1).repeat(args.d_inner, 1)
            self.A_log = nn.Parameter(T.log(A))
            self.A_log._no_weight_decay = True
            self.D = nn.Parameter(T.ones(args.d_inner))
            self.D._no_weight_decay = True
            self.out_proj = nn.Linear(args.d_inner, args.d_model, bias=args.bias)

        def forward(self, x):
            (b, l, d) = x.shape
            x_and_res = self.in_proj(x)
            (x, res) = x_and_res.split(split_size=[self.args.d_inner, self.args.d_inner], dim=-1)
            x = x.transpose(1, 2)  # rearrange(x, 'b l d_in -> b d_in l')
            x = self.conv1d(x)[:, :, :l]
            x = x.transpose(1, 2)  # rearrange(x, 'b d_in l -> b l d_in')
            x = F.silu(x)
            y = self.ssm(x)
            y = y * F.silu(res)
            return self.out_proj(y)

        def ssm(self, x):
            (d_in, n) = self.A_log.shape
            A = -T.exp(self.A_log.float())
            D = self.D.float()
            x_dbl = self.x_proj(x)
            (delta, B, C) = x_dbl.split(split_size=[self.args.dt_rank, n, n], dim=-1)
            delta = F.softplus(self.dt_proj(delta))
            return self.selective_scan(x, delta, A, B, C, D)

        def selective_scan(self, u, delta, A, B, C, D):
            (b, l, d_in) = u.shape
            n = A.shape[1]
            # einops.einsum(delta, A, 'b l d_in, d_in n -> b l d_in n') and friends, as torch.einsum
            deltaA = T.exp(T.einsum("bld,dn->bldn", delta, A))
            deltaB_u = T.einsum("bld,bln,bld->bldn", delta, B, u)
            x = T.zeros((b, d_in, n), device=deltaA.device)
            ys = []
            for i in range(l):
                x = deltaA[:, i] * x + deltaB_u[:, i]
                y = T.einsum("bdn,bn->bd", x, C[:, i, :])
                ys.append(y)
            y = T.stack(ys, dim=1)
            return y + u * D

        def allocate_inference_cache(self, batch_size, device):
            conv_state = T.zeros(batch_size, self.args.d_model * self.args.expand, self.args.d_conv, device=device)
            ssm_state = T.zeros(batch_size, self.args.d_model * self.args.expand, self.args.d_state, device=device)
            return conv_state, ssm_state

        def step(self, hidden_states, conv_state, ssm_state):
            """mamba_ssm mamba_simple.py Mamba.step without the fused kernels (einops spelled in torch)."""
            dtype = hidden_states.dtype
            assert hidden_states.shape[1] == 1, "Only support decoding with 1 token at a time for now"
            xz = self.in_proj(hidden_states.squeeze(1))  # (B 2D)
            x, z = xz.chunk(2, dim=-1)  # (B D)
            # Conv step
            conv_state.copy_(T.roll(conv_state, shifts=-1, dims=-1))  # Update state (B D W)
            conv_state[:, :, -1] = x
            x = T.sum(conv_state * self.conv1d.weight[:, 0, :], dim=-1)  # rearrange(w, "d 1 w -> d w")
            if self.conv1d.bias is not None:
                x = x + self.conv1d.bias
            x = F.silu(x).to(dtype=dtype)
            x_db = self.x_proj(x)  # (B dt_rank+2*d_state)
            dt, B, C = T.split(x_db, [self.args.dt_rank, self.args.d_state, self.args.d_state], dim=-1)
            # Don't add dt_bias here
            dt = F.linear(dt, self.dt_proj.weight)  # (B d_inner)
            A = -T.exp(self.A_log.float())  # (d_inner, d_state)
            # SSM step: discretize A and B
            dt = F.softplus(dt + self.dt_proj.bias.to(dtype=dt.dtype))
            dA = T.exp(T.einsum("bd,dn->bdn", dt, A))
            dB = T.einsum("bd,bn->bdn", dt, B)
            ssm_state.copy_(ssm_state * dA + x.unsqueeze(-1) * dB)  # rearrange(x, "b d -> b d 1")
            y = T.einsum("bdn,bn->bd", ssm_state.to(dtype), C)
            y = y + self.D.to(dtype) * x
            y = y * F.silu(z)  # (B D)
            out = self.out_proj(y)
            return out.unsqueeze(1), conv_state, ssm_state

    class ResidualBlock(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.mixer = MambaBlock(args)
            self.norm = RMSNorm(args.d_model)

        def forward(self, x):
            return self.mixer(self.norm(x)) + x

        def step(self, x, conv_state, ssm_state):
            out, conv_state, ssm_state = self.mixer.step(self.norm(x), conv_state, ssm_state)
            return out + x

    class Mamba(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.embedding = nn.Embedding(args.vocab_size, args.d_model)
            self.layers = nn.ModuleList([ResidualBlock(args) for _ in range(args.n_layer)])
            self.norm_f = RMSNorm(args.d_model)
            self.lm_head = nn.Linear(args.d_model, args.vocab_size, bias=False)
            self.lm_head.weight = self.embedding.weight  # Tie output projection to embedding weights.

        def forward(self, input_ids):
            x = self.embedding(input_ids)
            for layer in self.layers:
                x = layer(x)
            x = self.norm_f(x)
            return self.lm_head(x)

        def step(self, input_ids, caches):
            x = self.embedding(input_ids)
            for layer, (conv_state, ssm_state) in zip(self.layers, caches):
                x = layer.step(x, conv_state, ssm_state)
            return self.lm_head(self.norm_f(x))

    return Mamba(args)


def train_mamba(T, device, init, ids):
    device = device_of(T, device)
    model = ported_model(T, mamba, init, device)
    assert model.lm_head.weight is model.embedding.weight
    x, y = T.from_numpy(ids[:, :-1]).to(device), T.from_numpy(ids[:, 1:]).to(device)
    # weight decay on matrices only, never on parameters marked _no_weight_decay (A_log, D)
    no_decay = {n for n, p in model.named_parameters() if p.dim() < 2 or getattr(p, "_no_weight_decay", False)}
    assert {"layers.0.mixer.A_log", "layers.0.mixer.D", "layers.1.mixer.dt_proj.bias"} <= no_decay
    assert getattr(model.layers[1].mixer.dt_proj.bias, "_no_reinit", False)
    groups = [{"params": [p for n, p in model.named_parameters() if n not in no_decay], "weight_decay": 0.1},
              {"params": [p for n, p in model.named_parameters() if n in no_decay], "weight_decay": 0.0}]

    def step_loss(it):
        logits = model(x)
        return F_cross_entropy(T, logits, y)

    out = train_steps(T, model, step_loss, params=groups)
    model.eval()
    with T.no_grad():
        full = model(x)
        prefix = model(x[:, :4])  # causal: a prefix's logits do not see later tokens
        out.append((full[:, :4] - prefix).abs().max().item())
        # greedy generation, mamba-minimal's generate() with top_k=1
        input_ids = x[:1, :3]
        for _ in range(3):
            next_token_logits = model(input_ids)[:, -1]
            probs = F_softmax(T, next_token_logits)
            next_indices = T.argmax(probs, dim=-1, keepdim=True)
            input_ids = T.cat([input_ids, next_indices], dim=1)
        out += input_ids.flatten().tolist() + full.flatten().tolist()
        # recurrent decoding, one token at a time through mamba_simple.py's step(), equals the scan
        caches = [layer.mixer.allocate_inference_cache(x.shape[0], device) for layer in model.layers]
        stepped = T.cat([model.step(x[:, i:i + 1], caches) for i in range(x.shape[1])], dim=1)
        out.append((stepped - full).abs().max().item())
    return out, numpy_state(model)


def F_cross_entropy(T, logits, y):
    return T.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def F_softmax(T, logits):
    return T.nn.functional.softmax(logits, dim=-1)


def test_mamba_minimal(device):
    ids = np.random.default_rng(0).integers(0, 13, (2, 9))
    torch.manual_seed(0)
    got = run_both(train_mamba, device, numpy_state(mamba(torch)), ids)
    assert got[0][6] < 1e-5 and got[0][-1] < 1e-5


# ---- 1b. Mamba-2 (tommyip/mamba2-minimal, mamba2.py): state-space duality, chunked ----------------------
# ssd() is mamba_ssm's ssd_minimal.py: segsum (repeat, tril masks, cumsum, masked_fill with -inf), four
# einsums (one with four operands), F.pad of the chunk states, exp of -inf in the graph. The LM pads token
# ids to a multiple of chunk_size with F.pad on a LongTensor, nests ModuleDicts in a ModuleList, and gates
# its RMSNorm with silu(z). The script checks ssd() against the sequential SSM recurrence it factorises.

@dataclass
class Mamba2Config:
    d_model: int = 8
    n_layer: int = 2
    vocab_size: int = 13
    pad_vocab_size_multiple: int = 16
    d_state: int = 4
    d_conv: int = 4
    expand: int = 2
    headdim: int = 4
    ngroups: int = 1
    chunk_size: int = 4
    bias: bool = False
    conv_bias: bool = True

    def __post_init__(self):
        self.d_inner = self.expand * self.d_model
        assert self.d_inner % self.headdim == 0
        self.nheads = self.d_inner // self.headdim
        if self.vocab_size % self.pad_vocab_size_multiple != 0:
            self.vocab_size += (self.pad_vocab_size_multiple - self.vocab_size % self.pad_vocab_size_multiple)


def mamba2_segsum(T, x, device=None):
    """More stable segment sum calculation."""
    TT = x.size(-1)
    x = x[..., None].expand(*x.shape, TT)  # einops repeat(x, "... d -> ... d e", e=T)
    mask = T.tril(T.ones(TT, TT, dtype=T.bool, device=device), diagonal=-1)
    x = x.masked_fill(~mask, 0)
    x_segsum = T.cumsum(x, dim=-2)
    mask = T.tril(T.ones(TT, TT, dtype=T.bool, device=device), diagonal=0)
    x_segsum = x_segsum.masked_fill(~mask, -T.inf)
    return x_segsum


def mamba2_ssd(T, x, dt, A, B, C, D, chunk_size, initial_states=None, device=None):
    F = T.nn.functional
    assert x.shape[1] % chunk_size == 0
    xD = x * D.unsqueeze(-1)
    A = A * dt
    x = x * dt.unsqueeze(-1)
    # Rearrange into chunks: rearrange(m, "b (c l) ... -> b c l ...", l=chunk_size)
    x, A, B, C = [m.reshape(m.shape[0], -1, chunk_size, *m.shape[2:]) for m in (x, A, B, C)]
    A = A.permute(0, 3, 1, 2)  # rearrange(A, "b c l h -> b h c l")
    A_cumsum = T.cumsum(A, dim=-1)
    # 1. Compute the output for each intra-chunk (diagonal blocks)
    L = T.exp(mamba2_segsum(T, A, device=device))
    Y_diag = T.einsum("bclhn, bcshn, bhcls, bcshp -> bclhp", C, B, L, x)
    # 2. Compute the state for each intra-chunk
    decay_states = T.exp(A_cumsum[:, :, :, -1:] - A_cumsum)
    states = T.einsum("bclhn, bhcl, bclhp -> bchpn", B, decay_states, x)
    # 3. Compute the inter-chunk SSM recurrence; produces correct SSM states at chunk boundaries
    if initial_states is None:
        initial_states = T.zeros_like(states[:, :1])
    states = T.cat([initial_states, states], dim=1)
    decay_chunk = T.exp(mamba2_segsum(T, F.pad(A_cumsum[:, :, :, -1], (1, 0)), device=device))
    new_states = T.einsum("bhzc, bchpn -> bzhpn", decay_chunk, states)
    states, final_state = new_states[:, :-1], new_states[:, -1]
    # 4. Compute state -> output conversion per chunk
    state_decay_out = T.exp(A_cumsum)
    Y_off = T.einsum("bclhn, bchpn, bhcl -> bclhp", C, states, state_decay_out)
    # Add output of intra-chunk and inter-chunk terms (diagonal and off-diagonal blocks)
    Y = Y_diag + Y_off
    Y = Y.reshape(Y.shape[0], -1, *Y.shape[3:])  # rearrange(.., "b c l h p -> b (c l) h p")
    Y = Y + xD
    return Y, final_state


def mamba2(T, args=Mamba2Config(), device=None):
    nn, F = T.nn, T.nn.functional

    def silu(x):
        return x * F.sigmoid(x)

    class RMSNorm(nn.Module):
        def __init__(self, d, eps=1e-5, device=None):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(T.ones(d, device=device))

        def forward(self, x, z=None):
            if z is not None:
                x = x * silu(z)
            return x * T.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    class Mamba2(nn.Module):
        def __init__(self, args, device=None):
            super().__init__()
            self.args = args
            self.device = device
            # Order: (z, x, B, C, dt)
            d_in_proj = 2 * args.d_inner + 2 * args.ngroups * args.d_state + args.nheads
            self.in_proj = nn.Linear(args.d_model, d_in_proj, bias=args.bias, device=device)
            conv_dim = args.d_inner + 2 * args.ngroups * args.d_state
            self.conv1d = nn.Conv1d(in_channels=conv_dim, out_channels=conv_dim, bias=args.conv_bias,
                                    kernel_size=args.d_conv, groups=conv_dim, padding=args.d_conv - 1, device=device)
            self.dt_bias = nn.Parameter(T.empty(args.nheads, device=device))
            self.A_log = nn.Parameter(T.empty(args.nheads, device=device))
            self.D = nn.Parameter(T.empty(args.nheads, device=device))
            self.norm = RMSNorm(args.d_inner, device=device)
            self.out_proj = nn.Linear(args.d_inner, args.d_model, bias=args.bias, device=device)
            # mamba2-minimal loads these from a checkpoint; initialise them as mamba_ssm's Mamba2 does
            with T.no_grad():
                dt = T.exp(T.rand(args.nheads) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
                self.dt_bias.copy_(dt + T.log(-T.expm1(-dt)))
                self.A_log.copy_(T.log(T.empty(args.nheads).uniform_(1, 16)))
                self.D.fill_(1.0)

        def forward(self, u):
            _batch, seqlen, _d_model = u.shape
            A = -T.exp(self.A_log)  # (nheads,) or (d_inner, d_state)
            zxbcdt = self.in_proj(u)  # (batch, seqlen, d_in_proj)
            z, xBC, dt = T.split(zxbcdt, [self.args.d_inner, self.args.d_inner + 2 * self.args.ngroups
                                          * self.args.d_state, self.args.nheads], dim=-1)
            dt = F.softplus(dt + self.dt_bias)  # (batch, seqlen, nheads)
            xBC = silu(self.conv1d(xBC.transpose(1, 2)).transpose(1, 2)[:, :seqlen, :])
            x, B, C = T.split(xBC, [self.args.d_inner, self.args.ngroups * self.args.d_state,
                                    self.args.ngroups * self.args.d_state], dim=-1)
            b, l = x.shape[:2]
            x = x.reshape(b, l, -1, self.args.headdim)  # rearrange(x, "b l (h p) -> b l h p", p=headdim)
            y, _h = mamba2_ssd(T, x, dt, A, B.reshape(b, l, self.args.ngroups, -1),  # "b l (g n) -> b l g n"
                               C.reshape(b, l, self.args.ngroups, -1), self.D, self.args.chunk_size,
                               device=self.device)
            y = y.reshape(b, l, -1)  # rearrange(y, "b l h p -> b l (h p)")
            y = self.norm(y, z)
            return self.out_proj(y)

    class Mamba2LMHeadModel(nn.Module):
        def __init__(self, args, device=None):
            super().__init__()
            self.args = args
            self.backbone = nn.ModuleDict(dict(
                embedding=nn.Embedding(args.vocab_size, args.d_model, device=device),
                layers=nn.ModuleList([nn.ModuleDict(dict(mixer=Mamba2(args, device=device),
                                                         norm=RMSNorm(args.d_model, device=device)))
                                      for _ in range(args.n_layer)]),
                norm_f=RMSNorm(args.d_model, device=device),
            ))
            self.lm_head = nn.Linear(args.d_model, args.vocab_size, bias=False, device=device)
            self.lm_head.weight = self.backbone.embedding.weight

        def forward(self, input_ids):
            _batch, seqlen = input_ids.shape
            # Pad sequence to multiples of `chunk_size`
            chunk_excess = input_ids.shape[1] % self.args.chunk_size
            if chunk_excess != 0:
                input_ids = F.pad(input_ids, (0, self.args.chunk_size - chunk_excess))
            h = self.backbone.embedding(input_ids)
            for layer in self.backbone.layers:
                h = layer.mixer(layer.norm(h)) + h
            h = self.backbone.norm_f(h)
            logits = self.lm_head(h)
            return logits[:, :seqlen]

    return Mamba2LMHeadModel(args, device=device)


def ssm_recurrence(T, x, dt, A, B, C, D):
    """The sequential scan SSD factorises: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t + D x_t."""
    b, l, h, p = x.shape
    state = T.zeros(b, h, p, B.shape[-1], device=x.device)
    ys = []
    for t in range(l):
        dA = T.exp(dt[:, t] * A)  # (b, h)
        state = state * dA[:, :, None, None] + T.einsum("bh,bhp,bgn->bhpn", dt[:, t], x[:, t], B[:, t])
        ys.append(T.einsum("bhpn,bgn->bhp", state, C[:, t]) + D[:, None] * x[:, t])
    return T.stack(ys, dim=1), state


def train_mamba2(T, device, init, ids, ssd_inputs):
    device = device_of(T, device)
    model = ported_model(T, mamba2, init, device)
    assert model.lm_head.weight is model.backbone.embedding.weight
    x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
    out = train_steps(T, model, lambda it: F_cross_entropy(T, model(x), y), lr=2e-2)
    model.eval()
    with T.no_grad():
        out += model(x).flatten().tolist()
    # the chunked SSD against the recurrence, with gradients
    X, dt, A_log, B, C, D = (T.tensor(a, device=device, requires_grad=True) for a in ssd_inputs)
    A = -T.exp(A_log)
    Y, final = mamba2_ssd(T, X, dt, A, B, C, D, chunk_size=4, device=device)
    Y_ref, final_ref = ssm_recurrence(T, X, dt, A, B, C, D)
    grads = T.autograd.grad((Y * Y_ref.detach()).sum(), (X, dt, A_log, B, C, D), retain_graph=True)
    grads_ref = T.autograd.grad((Y_ref * Y_ref.detach()).sum(), (X, dt, A_log, B, C, D))
    for got, want in [(Y, Y_ref), (final, final_ref)] + list(zip(grads, grads_ref)):
        # float32 rounding of two different summation orders, in either library
        assert (got - want).abs().max().item() <= 1e-5 * (1 + want.abs().max().item())
    out += Y.flatten().tolist() + final.flatten().tolist() + [v for g in grads for v in g.flatten().tolist()]
    return out, numpy_state(model)


def test_mamba2_ssd(device):
    rng = np.random.default_rng(12)
    ids = rng.integers(0, 13, (2, 11))  # 10 inputs: padded to 12, three chunks of 4
    b, l, h, p, n = 2, 8, 2, 3, 4
    ssd_inputs = [rng.standard_normal((b, l, h, p)), rng.uniform(0.05, 0.5, (b, l, h)), np.log(rng.uniform(1, 4, h)),
                  rng.standard_normal((b, l, 1, n)), rng.standard_normal((b, l, 1, n)), np.ones(h)]
    ssd_inputs = [a.astype(np.float32) for a in ssd_inputs]
    torch.manual_seed(0)
    run_both(train_mamba2, device, numpy_state(mamba2(torch)), ids, ssd_inputs)


# ---- 2. RWKV-4 (BlinkDL/RWKV-LM, RWKV-v4/src/model.py): time mixing and channel mixing, GPT mode ---------
# Training runs the WKV either as ChatRWKV's sequential loop (att_seq: the CUDA kernel's max-tracking
# recurrence in torch) or in the paper's parallel form (eq. 14, the T x T weights as a masked softmax);
# parameter groups carry RWKV-v4neo's my_lr_scale (2x / 3x for time_decay / time_first) under a warmup
# that sets each group's lr; a custom Function (L2Wrap) adds the logits penalty in backward. Inference
# then runs RWKV_in_150_lines.py's RNN (a state tensor written in place, one token at a time) on the
# trained checkpoint saved with torch.save / loaded with map_location, optionally as a TorchScript
# module (RWKV_JIT_ON: MyModule = torch.jit.ScriptModule), and must reproduce the GPT-mode logits.

@dataclass
class RwkvConfig:
    vocab_size: int = 11
    n_embd: int = 8
    n_layer: int = 2
    ctx_len: int = 8


def rwkv4(T, config=RwkvConfig(), wkv_mode="parallel"):
    nn = T.nn

    def wkv_recurrent(w, u, k, v):
        """ChatRWKV v2 model.py att_seq (the wkv_cuda.cu forward), batched: w = -exp(time_decay)."""
        B, TT, C = k.shape
        aa = T.zeros(B, C, device=k.device)
        bb = T.zeros(B, C, device=k.device)
        pp = T.full((B, C), -1e38, device=k.device)
        ys = []
        for t in range(TT):
            kk = k[:, t]
            vv = v[:, t]
            ww = u + kk
            p = T.maximum(pp, ww)
            e1 = T.exp(pp - p)
            e2 = T.exp(ww - p)
            ys.append((e1 * aa + e2 * vv) / (e1 * bb + e2))
            ww = w + pp
            p = T.maximum(ww, kk)
            e1 = T.exp(ww - p)
            e2 = T.exp(kk - p)
            aa = e1 * aa + e2 * vv
            bb = e1 * bb + e2
            pp = p
        return T.stack(ys, dim=1)

    def wkv_parallel(w, u, k, v):
        """wkv_t = (sum_{i<t} e^{(t-1-i)w + k_i} v_i + e^{u+k_t} v_t) / (the same without v), per channel."""
        B, TT, C = k.shape
        t = T.arange(TT, device=k.device)
        dist = (t[:, None] - 1 - t[None, :]).float()  # t - 1 - i
        logits = dist[None, :, :, None] * w + k[:, None, :, :]  # (B, t, i, C)
        diag = T.eye(TT, dtype=T.bool, device=k.device)[None, :, :, None]
        logits = T.where(diag, (u + k)[:, None, :, :], logits)
        future = T.triu(T.ones(TT, TT, dtype=T.bool, device=k.device), diagonal=1)
        logits = logits.masked_fill(future[None, :, :, None], float("-inf"))
        weights = T.softmax(logits, dim=2)
        return T.einsum("btic,bic->btc", weights, v)

    class RWKV_TimeMix(nn.Module):
        def __init__(self, config, layer_id):
            super().__init__()
            self.layer_id = layer_id
            self.ctx_len = config.ctx_len
            self.n_embd = config.n_embd
            attn_sz = config.n_embd
            with T.no_grad():  # fancy init
                ratio_0_to_1 = (layer_id / (config.n_layer - 1))  # 0 to 1
                ratio_1_to_almost0 = (1.0 - (layer_id / config.n_layer))  # 1 to ~0
                # fancy time_decay
                decay_speed = T.ones(attn_sz)
                for h in range(attn_sz):
                    decay_speed[h] = -5 + 8 * (h / (attn_sz - 1)) ** (0.7 + 1.3 * ratio_0_to_1)
                self.time_decay = nn.Parameter(decay_speed)
                # fancy time_first
                zigzag = (T.tensor([(i + 1) % 3 - 1 for i in range(attn_sz)]) * 0.5)
                self.time_first = nn.Parameter(T.ones(attn_sz) * math.log(0.3) + zigzag)
                # fancy time_mix
                x = T.ones(1, 1, config.n_embd)
                for i in range(config.n_embd):
                    x[0, 0, i] = i / config.n_embd
                self.time_mix_k = nn.Parameter(T.pow(x, ratio_1_to_almost0))
                self.time_mix_v = nn.Parameter(T.pow(x, ratio_1_to_almost0) + 0.3 * ratio_0_to_1)
                self.time_mix_r = nn.Parameter(T.pow(x, 0.5 * ratio_1_to_almost0))
            self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
            self.key = nn.Linear(config.n_embd, attn_sz, bias=False)
            self.value = nn.Linear(config.n_embd, attn_sz, bias=False)
            self.receptance = nn.Linear(config.n_embd, attn_sz, bias=False)
            self.output = nn.Linear(attn_sz, config.n_embd, bias=False)
            self.key.scale_init = 0
            self.receptance.scale_init = 0
            self.output.scale_init = 0

        def jit_func(self, x):
            # Mix x with the previous timestep to produce xk, xv, xr
            xx = self.time_shift(x)
            xk = x * self.time_mix_k + xx * (1 - self.time_mix_k)
            xv = x * self.time_mix_v + xx * (1 - self.time_mix_v)
            xr = x * self.time_mix_r + xx * (1 - self.time_mix_r)
            k = self.key(xk)
            v = self.value(xv)
            r = self.receptance(xr)
            sr = T.sigmoid(r)
            return sr, k, v

        def forward(self, x):
            B, TT, C = x.size()  # x = (Batch,Time,Channel)
            sr, k, v = self.jit_func(x)
            w = -T.exp(self.time_decay.float())
            run = wkv_parallel if wkv_mode == "parallel" else wkv_recurrent
            rwkv = sr * run(w, self.time_first.float(), k.float(), v.float())
            return self.output(rwkv)

    class RWKV_ChannelMix(nn.Module):
        def __init__(self, config, layer_id):
            super().__init__()
            self.layer_id = layer_id
            self.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
            with T.no_grad():  # fancy init of time_mix
                ratio_1_to_almost0 = (1.0 - (layer_id / config.n_layer))  # 1 to ~0
                x = T.ones(1, 1, config.n_embd)
                for i in range(config.n_embd):
                    x[0, 0, i] = i / config.n_embd
                self.time_mix_k = nn.Parameter(T.pow(x, ratio_1_to_almost0))
                self.time_mix_r = nn.Parameter(T.pow(x, ratio_1_to_almost0))
            hidden_sz = 4 * config.n_embd
            self.key = nn.Linear(config.n_embd, hidden_sz, bias=False)
            self.receptance = nn.Linear(config.n_embd, config.n_embd, bias=False)
            self.value = nn.Linear(hidden_sz, config.n_embd, bias=False)

        def forward(self, x):
            xx = self.time_shift(x)
            xk = x * self.time_mix_k + xx * (1 - self.time_mix_k)
            xr = x * self.time_mix_r + xx * (1 - self.time_mix_r)
            k = self.key(xk)
            k = T.square(T.relu(k))
            kv = self.value(k)
            return T.sigmoid(self.receptance(xr)) * kv

    class Block(nn.Module):
        def __init__(self, config, layer_id):
            super().__init__()
            self.config = config
            self.layer_id = layer_id
            self.ln1 = nn.LayerNorm(config.n_embd)
            self.ln2 = nn.LayerNorm(config.n_embd)
            if self.layer_id == 0:
                self.ln0 = nn.LayerNorm(config.n_embd)
            self.att = RWKV_TimeMix(config, layer_id)
            self.ffn = RWKV_ChannelMix(config, layer_id)

        def forward(self, x):
            if self.layer_id == 0:
                x = self.ln0(x)
            x = x + self.att(self.ln1(x))
            x = x + self.ffn(self.ln2(x))
            return x

    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.step = 0
            self.config = config
            self.emb = nn.Embedding(config.vocab_size, config.n_embd)
            self.blocks = nn.Sequential(*[Block(config, i) for i in range(config.n_layer)])
            self.ln_out = nn.LayerNorm(config.n_embd)
            self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.ctx_len = config.ctx_len

        def forward(self, idx, targets=None):
            idx = idx.to(self.emb.weight.device)
            self.step += 1
            B, TT = idx.size()
            assert TT <= self.ctx_len, "Cannot forward, because len(input) > model ctx_len."
            x = self.emb(idx)
            x = self.blocks(x)
            x = self.ln_out(x)
            x = self.head(x)
            if targets is None:
                return x
            loss = T.nn.functional.cross_entropy(x.view(-1, x.size(-1)), targets.to(x.device).view(-1))
            return L2Wrap.apply(loss, x)

    class L2Wrap(T.autograd.Function):
        @staticmethod
        def forward(ctx, loss, y):
            ctx.save_for_backward(y)
            return loss

        @staticmethod
        def backward(ctx, grad_output):
            y = ctx.saved_tensors[0]
            # to encourage the logits to be close to 0
            factor = 1e-4 / (y.shape[0] * y.shape[1])
            # README difference: raygrad's backward sees raw arrays. RWKV-LM writes
            #   maxx, ids = torch.max(y, -1, keepdim=True); gy = torch.zeros_like(y)
            #   gy.scatter_(-1, ids, maxx * factor)
            # and the port puts the factor at each row's maximum with operators arrays share:
            maxx = y.amax(-1, keepdim=True) if hasattr(y, "amax") else y.max(-1, keepdims=True)  # Tensor / array
            gy = (y == maxx) * (maxx * factor)
            return (grad_output, gy)

    return GPT(config)


def rwkv_rnn(T, jit=False):
    """RWKV_in_150_lines.py (BlinkDL/ChatRWKV): the RNN form, on a checkpoint the training script saved.
    With jit, its mixing functions are TorchScript methods (RWKV_JIT_ON=1: MyModule = torch.jit.ScriptModule,
    MyFunction = torch.jit.script_method), as RWKV-LM and ChatRWKV run them."""
    import types
    F = T.nn.functional
    if jit:
        MyModule = T.jit.ScriptModule
        MyFunction = T.jit.script_method
    else:
        MyModule = T.nn.Module

        def __nop(ob):
            return ob

        MyFunction = __nop

    class RWKV_RNN(MyModule):
        def __init__(self, w, args):
            super().__init__()
            self.args = args
            self.eval()  # set torch to inference mode
            for k in w.keys():
                if '.time_' in k:
                    w[k] = w[k].squeeze()
                if '.time_decay' in k:
                    w[k] = -T.exp(w[k].float())  # the real time decay is like e^{-e^x}
                else:
                    w[k] = w[k].float()  # convert to f32 type
            self.w = types.SimpleNamespace()  # set self.w from w
            self.w.blocks = {}
            for k in w.keys():  # example: "blocks.0.att.time_first" => self.w.blocks[0].att.time_first
                parts = k.split('.')
                last = parts.pop()
                here = self.w
                for p in parts:
                    if p.isdigit():
                        p = int(p)
                        if p not in here:
                            here[p] = types.SimpleNamespace()
                        here = here[p]
                    else:
                        if not hasattr(here, p):
                            setattr(here, p, types.SimpleNamespace())
                        here = getattr(here, p)
                setattr(here, last, w[k])

        def layer_norm(self, x, w):
            return F.layer_norm(x, (self.args.n_embd,), weight=w.weight, bias=w.bias)

        @MyFunction
        def channel_mixing(self, x, state, i: int, time_mix_k, time_mix_r, kw, vw, rw):
            xk = x * time_mix_k + state[5 * i + 0] * (1 - time_mix_k)
            xr = x * time_mix_r + state[5 * i + 0] * (1 - time_mix_r)
            state[5 * i + 0] = x
            r = T.sigmoid(rw @ xr)
            k = T.square(T.relu(kw @ xk))  # square relu, primer paper
            return r * (vw @ k)

        @MyFunction
        def time_mixing(self, x, state, i: int, time_mix_k, time_mix_v, time_mix_r, time_first, time_decay, kw, vw,
                        rw, ow):
            xk = x * time_mix_k + state[5 * i + 1] * (1 - time_mix_k)
            xv = x * time_mix_v + state[5 * i + 1] * (1 - time_mix_v)
            xr = x * time_mix_r + state[5 * i + 1] * (1 - time_mix_r)
            state[5 * i + 1] = x
            r = T.sigmoid(rw @ xr)
            k = kw @ xk
            v = vw @ xv

            aa = state[5 * i + 2]
            bb = state[5 * i + 3]
            pp = state[5 * i + 4]
            ww = time_first + k
            qq = T.maximum(pp, ww)
            e1 = T.exp(pp - qq)
            e2 = T.exp(ww - qq)
            a = e1 * aa + e2 * v
            b = e1 * bb + e2
            wkv = a / b
            ww = pp + time_decay
            qq = T.maximum(ww, k)
            e1 = T.exp(ww - qq)
            e2 = T.exp(k - qq)
            state[5 * i + 2] = e1 * aa + e2 * v
            state[5 * i + 3] = e1 * bb + e2
            state[5 * i + 4] = qq
            return ow @ (r * wkv)

        def forward(self, token, state):
            with T.no_grad():
                if state == None:  # noqa: E711 (the reference's spelling)
                    state = T.zeros(self.args.n_layer * 5, self.args.n_embd)
                    for i in range(self.args.n_layer):
                        state[5 * i + 4] = -1e30  # -infinity
                x = self.w.emb.weight[token]
                x = self.layer_norm(x, self.w.blocks[0].ln0)
                for i in range(self.args.n_layer):
                    att = self.w.blocks[i].att
                    x = x + self.time_mixing(self.layer_norm(x, self.w.blocks[i].ln1), state, i,
                                             att.time_mix_k, att.time_mix_v, att.time_mix_r, att.time_first,
                                             att.time_decay, att.key.weight, att.value.weight,
                                             att.receptance.weight, att.output.weight)
                    ffn = self.w.blocks[i].ffn
                    x = x + self.channel_mixing(self.layer_norm(x, self.w.blocks[i].ln2), state, i,
                                                ffn.time_mix_k, ffn.time_mix_r,
                                                ffn.key.weight, ffn.value.weight, ffn.receptance.weight)
                x = self.w.head.weight @ self.layer_norm(x, self.w.ln_out)
                return x.float(), state

    return RWKV_RNN


def train_rwkv(T, device, init, ids, wkv_mode, jit=False):
    import io
    device = device_of(T, device)
    config = RwkvConfig()
    model = ported_model(T, lambda T: rwkv4(T, config, wkv_mode), init, device)
    x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
    # RWKV-v4neo configure_optimizers (layerwise_lr): time_decay at 2x the rate, time_first at 3x
    lr_1x, lr_2x, lr_3x = set(), set(), set()
    for n, p in model.named_parameters():
        if "time_mix" in n:
            lr_1x.add(n)
        elif "time_decay" in n:
            lr_2x.add(n)
        elif "time_first" in n:
            lr_3x.add(n)
        else:
            lr_1x.add(n)
    lr_1x, lr_2x, lr_3x = sorted(list(lr_1x)), sorted(list(lr_2x)), sorted(list(lr_3x))
    param_dict = {n: p for n, p in model.named_parameters()}
    optim_groups = [
        {"params": [param_dict[n] for n in lr_1x], "weight_decay": 0.0, "my_lr_scale": 1.0},
        {"params": [param_dict[n] for n in lr_2x], "weight_decay": 0.0, "my_lr_scale": 2.0},
        {"params": [param_dict[n] for n in lr_3x], "weight_decay": 0.0, "my_lr_scale": 3.0},
    ]

    def warmup(optimizer, step, lr_init=2e-2, w_step=2):  # RWKV-v4neo trainer.py: on_train_batch_start
        lr = lr_init * (0.2 + 0.8 * step / w_step) if step < w_step else lr_init
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr * param_group["my_lr_scale"]

    out = train_steps(T, model, lambda it: model(x, y), params=optim_groups, before_step=warmup)

    model.eval()
    with T.no_grad():
        gpt_logits = model(x[:1])
    buffer = io.BytesIO()
    T.save(model.state_dict(), buffer)
    buffer.seek(0)
    rnn = rwkv_rnn(T, jit)(T.load(buffer, map_location="cpu"), config)
    state, rnn_logits = None, []
    for token in ids[0, :-1].tolist():
        logits, state = rnn.forward(token, state)
        rnn_logits.append(logits)
    rnn_logits = T.stack(rnn_logits)
    out.append((rnn_logits - gpt_logits[0].cpu()).abs().max().item())
    out += gpt_logits.flatten().tolist() + state.flatten().tolist()
    return out, numpy_state(model)


@pytest.mark.parametrize("wkv_mode, jit", [
    ("parallel", False), ("recurrent", False),
    ("parallel", True),
])
@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method. is deprecated:DeprecationWarning")  # torch's
def test_rwkv4(device, wkv_mode, jit):
    ids = np.random.default_rng(1).integers(0, 11, (2, 9))
    torch.manual_seed(0)
    got = run_both(train_rwkv, device, numpy_state(rwkv4(torch)), ids, wkv_mode, jit)
    assert got[0][6] < 1e-4  # the RNN reproduces GPT mode


# ---- 3. RetNet (microsoft/torchscale: architecture/retnet.py, component/multiscale_retention.py) --------
# Parallel retention with the decay mask D (masked_fill with inf, exp, nan_to_num, row normalisation),
# xPos-style theta_shift through rotate_every_two, a per-head RMSNorm without weights, swish gate and a
# GLU feed-forward; trained in parallel form, then decoded token by token in recurrent form.

def retnet(T, vocab=13, embed_dim=8, value_dim=16, heads=2, ffn_dim=16, layers=2, eps=1e-6, recurrent_chunk_size=4,
           chunkwise_recurrent=False):
    nn, F = T.nn, T.nn.functional

    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-6, elementwise_affine=True):
            super().__init__()
            self.eps = eps
            self.elementwise_affine = elementwise_affine
            if self.elementwise_affine:
                self.weight = nn.Parameter(T.ones(dim))
            else:
                self.register_parameter('weight', None)

        def _norm(self, x):
            return x * T.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

        def forward(self, x):
            output = self._norm(x.float()).type_as(x)
            if self.weight is not None:
                output = output * self.weight
            return output

    class RetNetRelPos(nn.Module):
        def __init__(self):
            super().__init__()
            angle = 1.0 / (10000 ** T.linspace(0, 1, embed_dim // heads // 2))
            angle = angle.unsqueeze(-1).repeat(1, 2).flatten()
            decay = T.log(1 - 2 ** (-5 - T.arange(heads, dtype=T.float)))
            self.register_buffer("angle", angle)
            self.register_buffer("decay", decay)
            self.recurrent_chunk_size = recurrent_chunk_size

        def forward(self, slen, activate_recurrent=False, chunkwise_recurrent=False):
            if activate_recurrent:
                sin = T.sin(self.angle * (slen - 1))
                cos = T.cos(self.angle * (slen - 1))
                retention_rel_pos = ((sin, cos), self.decay.exp())
            elif chunkwise_recurrent:
                index = T.arange(slen).to(self.decay)
                sin = T.sin(index[:, None] * self.angle[None, :])
                cos = T.cos(index[:, None] * self.angle[None, :])
                block_index = T.arange(self.recurrent_chunk_size).to(self.decay)
                mask = T.tril(T.ones(self.recurrent_chunk_size, self.recurrent_chunk_size).to(self.decay))
                mask = T.masked_fill(block_index[:, None] - block_index[None, :], ~mask.bool(), float("inf"))
                mask = T.exp(mask * self.decay[:, None, None])
                mask = T.nan_to_num(mask)
                value_inner_decay = mask[:, -1] / mask[:, -1].sum(dim=-1, keepdim=True)
                value_inner_decay = value_inner_decay.unsqueeze(-1)
                scale = mask.sum(dim=-1, keepdim=True).sqrt()
                inner_mask = mask / scale
                cross_decay = T.exp(self.decay * self.recurrent_chunk_size)
                query_inner_decay = T.exp(self.decay[:, None] * (block_index + 1))
                query_inner_decay = query_inner_decay[:, :, None] / (scale / mask[:, -1].sum(dim=-1)[:, None, None])
                cross_decay = cross_decay[:, None, None]
                retention_rel_pos = ((sin, cos), (inner_mask, cross_decay, query_inner_decay, value_inner_decay))
            else:
                index = T.arange(slen).to(self.decay)
                sin = T.sin(index[:, None] * self.angle[None, :])
                cos = T.cos(index[:, None] * self.angle[None, :])
                mask = T.tril(T.ones(slen, slen).to(self.decay))
                mask = T.masked_fill(index[:, None] - index[None, :], ~mask.bool(), float("inf"))
                mask = T.exp(mask * self.decay[:, None, None])
                mask = T.nan_to_num(mask)
                mask = mask / mask.sum(dim=-1, keepdim=True).sqrt()
                retention_rel_pos = ((sin, cos), mask)
            return retention_rel_pos

    def rotate_every_two(x):
        x1 = x[:, :, :, ::2]
        x2 = x[:, :, :, 1::2]
        x = T.stack((-x2, x1), dim=-1)
        return x.flatten(-2)  # in einsum notation: rearrange(x, '... d j -> ... (d j)')

    def theta_shift(x, sin, cos):
        return (x * cos) + (rotate_every_two(x) * sin)

    class MultiScaleRetention(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_dim = embed_dim
            self.value_dim = value_dim
            self.num_heads = heads
            self.head_dim = self.value_dim // heads
            self.key_dim = self.embed_dim // heads
            self.scaling = self.key_dim ** -0.5
            self.gate_fn = F.silu  # get_activation_fn("swish")
            self.q_proj = nn.Linear(embed_dim, embed_dim, bias=False)
            self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
            self.v_proj = nn.Linear(embed_dim, value_dim, bias=False)
            self.g_proj = nn.Linear(embed_dim, value_dim, bias=False)
            self.out_proj = nn.Linear(value_dim, embed_dim, bias=False)
            self.group_norm = RMSNorm(self.head_dim, eps=eps, elementwise_affine=False)

        def parallel_forward(self, qr, kr, v, mask):
            bsz, tgt_len, embed_dim = v.size()
            vr = v.view(bsz, tgt_len, self.num_heads, self.head_dim).transpose(1, 2)
            qk_mat = qr @ kr.transpose(-1, -2)  # bsz * m * tgt_len * tgt_len
            qk_mat = qk_mat * mask
            # invariant after normalization
            qk_mat = qk_mat / qk_mat.detach().abs().sum(dim=-1, keepdim=True).clamp(min=1, max=5e4)
            output = T.matmul(qk_mat, vr)
            output = output.transpose(1, 2)
            return output

        def chunk_recurrent_forward(self, qr, kr, v, inner_mask):
            mask, cross_decay, query_inner_decay, value_inner_decay = inner_mask
            bsz, tgt_len, embed_dim = v.size()
            chunk_len = mask.size(1)
            num_chunks = tgt_len // chunk_len
            assert tgt_len % chunk_len == 0
            qr = qr.view(bsz, self.num_heads, num_chunks, chunk_len, self.key_dim).transpose(1, 2)
            kr = kr.view(bsz, self.num_heads, num_chunks, chunk_len, self.key_dim).transpose(1, 2)
            v = v.view(bsz, num_chunks, chunk_len, self.num_heads, self.head_dim).transpose(2, 3)
            kr_t = kr.transpose(-1, -2)
            qk_mat = qr @ kr_t  # bsz * num_heads * chunk_len * chunk_len
            qk_mat = qk_mat * mask
            inner_scale = qk_mat.detach().abs().sum(dim=-1, keepdim=True).clamp(min=1)
            qk_mat = qk_mat / inner_scale
            inner_output = T.matmul(qk_mat, v)  # bsz * num_heads * num_value_heads * chunk_len * head_dim
            # reduce kv in one chunk
            kv = kr_t @ (v * value_inner_decay)
            kv_recurrent = []
            cross_scale = []
            kv_state = T.zeros(bsz, self.num_heads, self.key_dim, self.head_dim).to(v)
            kv_scale = T.ones(bsz, self.num_heads, 1, 1).to(v)
            # accumulate kv by loop
            for i in range(num_chunks):
                kv_recurrent.append(kv_state / kv_scale)
                cross_scale.append(kv_scale)
                kv_state = kv_state * cross_decay + kv[:, i]
                kv_scale = kv_state.detach().abs().sum(dim=-2, keepdim=True).max(dim=-1, keepdim=True).values.clamp(
                    min=1)
            kv_recurrent = T.stack(kv_recurrent, dim=1)
            cross_scale = T.stack(cross_scale, dim=1)
            all_scale = T.maximum(inner_scale, cross_scale)
            align_inner_scale = all_scale / inner_scale
            align_cross_scale = all_scale / cross_scale
            cross_output = (qr * query_inner_decay) @ kv_recurrent
            output = inner_output / align_inner_scale + cross_output / align_cross_scale
            output = output.transpose(2, 3)
            return output

        def recurrent_forward(self, qr, kr, v, decay, incremental_state):
            bsz = v.size(0)
            v = v.view(bsz, self.num_heads, self.head_dim, 1)
            kv = kr * v
            if "prev_key_value" in incremental_state:
                prev_kv = incremental_state["prev_key_value"]
                prev_scale = incremental_state["scale"]
                scale = prev_scale * decay + 1
                kv = prev_kv * (prev_scale.sqrt() * decay / scale.sqrt()).view(self.num_heads, 1, 1) \
                    + kv / scale.sqrt().view(self.num_heads, 1, 1)
            else:
                scale = T.ones_like(decay)
            incremental_state["prev_key_value"] = kv
            incremental_state["scale"] = scale
            output = T.sum(qr * kv, dim=3)
            return output

        def forward(self, x, rel_pos, chunkwise_recurrent=False, incremental_state=None):
            bsz, tgt_len, _ = x.size()
            (sin, cos), inner_mask = rel_pos
            q = self.q_proj(x)
            k = self.k_proj(x)
            v = self.v_proj(x)
            g = self.g_proj(x)
            k *= self.scaling
            q = q.view(bsz, tgt_len, self.num_heads, self.key_dim).transpose(1, 2)
            k = k.view(bsz, tgt_len, self.num_heads, self.key_dim).transpose(1, 2)
            qr = theta_shift(q, sin, cos)
            kr = theta_shift(k, sin, cos)
            if incremental_state is not None:
                output = self.recurrent_forward(qr, kr, v, inner_mask, incremental_state)
            elif chunkwise_recurrent:
                output = self.chunk_recurrent_forward(qr, kr, v, inner_mask)
            else:
                output = self.parallel_forward(qr, kr, v, inner_mask)
            output = self.group_norm(output).reshape(bsz, tgt_len, self.head_dim * self.num_heads)
            output = self.gate_fn(g) * output
            return self.out_proj(output)

    class GLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.activation_fn = F.silu
            self.fc1 = nn.Linear(embed_dim, ffn_dim, bias=False)
            self.fc2 = nn.Linear(ffn_dim, embed_dim, bias=False)
            self.gate = nn.Linear(embed_dim, ffn_dim, bias=False)

        def forward(self, x):
            x_shape = x.shape
            x = x.reshape(-1, x.size(-1))
            g = self.gate(x)
            x = self.fc1(x)
            x = self.activation_fn(x.float()).type_as(x) * g
            x = self.fc2(x)
            return x.view(x_shape)

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.retention = MultiScaleRetention()
            self.retention_layer_norm = RMSNorm(embed_dim, eps=eps)
            self.ffn = GLU()
            self.final_layer_norm = RMSNorm(embed_dim, eps=eps)

        def forward(self, x, incremental_state=None, chunkwise_recurrent=False, retention_rel_pos=None):
            residual = x
            x = self.retention_layer_norm(x)
            x = self.retention(x, incremental_state=incremental_state, rel_pos=retention_rel_pos,
                               chunkwise_recurrent=chunkwise_recurrent)
            x = residual + x
            residual = x
            x = self.final_layer_norm(x)
            x = self.ffn(x)
            return residual + x

    class RetNetDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(vocab, embed_dim)
            self.embed_scale = 1.0
            self.layers = nn.ModuleList([DecoderLayer() for _ in range(layers)])
            self.layer_norm = RMSNorm(embed_dim, eps=eps)
            self.retnet_rel_pos = RetNetRelPos()
            self.output_projection = nn.Linear(embed_dim, vocab, bias=False)
            self.chunkwise_recurrent = chunkwise_recurrent
            self.recurrent_chunk_size = recurrent_chunk_size

        def is_first_step(self, incremental_state):
            if incremental_state is None:
                return False
            return incremental_state.get("is_first_step", False)

        def forward(self, prev_output_tokens, incremental_state=None):
            if incremental_state is not None and not self.is_first_step(incremental_state):
                prev_output_tokens = prev_output_tokens[:, -1:]
            x = self.embed_scale * self.embed_tokens(prev_output_tokens)
            is_first_step = self.is_first_step(incremental_state)
            slen = prev_output_tokens.size(1)
            if incremental_state is not None and not is_first_step:
                slen = incremental_state["slen"]  # the absolute position of the token
            if self.chunkwise_recurrent and prev_output_tokens.size(1) % self.recurrent_chunk_size != 0:
                raise ValueError("the sequence length must be a multiple of recurrent_chunk_size")
            retention_rel_pos = self.retnet_rel_pos(slen, incremental_state is not None and not is_first_step,
                                                    chunkwise_recurrent=self.chunkwise_recurrent)
            for idx, layer in enumerate(self.layers):
                if incremental_state is None or is_first_step:
                    layer_state = None
                else:
                    if idx not in incremental_state:
                        incremental_state[idx] = {}
                    layer_state = incremental_state[idx]
                x = layer(x, incremental_state=layer_state, retention_rel_pos=retention_rel_pos,
                          chunkwise_recurrent=self.chunkwise_recurrent)
            x = self.layer_norm(x)
            return self.output_projection(x)

    return RetNetDecoder()


def train_retnet(T, device, init, ids, chunkwise_recurrent):
    device = device_of(T, device)
    model = ported_model(T, lambda T: retnet(T, chunkwise_recurrent=chunkwise_recurrent), init, device)
    assert "retnet_rel_pos.decay" in model.state_dict()
    assert model.retnet_rel_pos.angle.device == model.embed_tokens.weight.device
    x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
    out = train_steps(T, model, lambda it: F_cross_entropy(T, model(x), y))
    model.eval()
    with T.no_grad():
        model.chunkwise_recurrent = False
        parallel = model(x)
        model.chunkwise_recurrent = True
        chunkwise = model(x)
        model.chunkwise_recurrent = False
        incremental_state = {}
        recurrent = []
        for t in range(1, x.shape[1] + 1):
            incremental_state["slen"] = t
            recurrent.append(model(x[:, :t], incremental_state=incremental_state)[:, -1])
        recurrent = T.stack(recurrent, dim=1)
        out += [(parallel - recurrent).abs().max().item(), (parallel - chunkwise).abs().max().item()]
        out += parallel.flatten().tolist()
    return out, numpy_state(model)


@pytest.mark.parametrize("chunkwise_recurrent", [False, True])
def test_retnet(device, chunkwise_recurrent):
    ids = np.random.default_rng(4).integers(0, 13, (2, 9))
    torch.manual_seed(0)
    got = run_both(train_retnet, device, numpy_state(retnet(torch)), ids, chunkwise_recurrent)
    assert got[0][6] < 1e-5 and got[0][7] < 1e-4  # the recurrent and chunkwise forms reproduce the parallel one


# ---- 4. linear attention (Katharopoulos et al. 2020, idiap/fast-transformers) ---------------------------
# LinearAttention / CausalLinearAttention / RecurrentLinearAttention with the elu(x) + 1 feature map, in
# AttentionLayer and a post-norm TransformerEncoderLayer. The causal_dot_product kernel is written as its
# definition (the paper's eq. 8-9: cumulative sums of K^T V and K); key_lengths' float_matrix masks padding.

def linear_transformer(T, vocab=12, d_model=8, n_heads=2, d_ff=16, n_layers=2, max_len=10, causal=True,
                       n_classes=3, eps=1e-6):
    nn, F = T.nn, T.nn.functional

    def elu_feature_map(x):
        return F.elu(x) + 1

    def causal_dot_product(Q, K, V):
        """(N, H, L, D), (N, H, L, D), (N, H, L, M) -> sum_{j <= i} (Q_i . K_j) V_j."""
        KV = T.einsum("nhld,nhlm->nhldm", K, V).cumsum(dim=2)
        return T.einsum("nhld,nhldm->nhlm", Q, KV)

    def causal_linear(Q, K, V):
        Q = Q.permute(0, 2, 1, 3).contiguous()
        K = K.permute(0, 2, 1, 3).contiguous()
        V = V.permute(0, 2, 1, 3).contiguous()
        V_new = causal_dot_product(Q, K, V)
        return V_new.permute(0, 2, 1, 3).contiguous()

    class LinearAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_map = elu_feature_map
            self.eps = eps

        def forward(self, queries, keys, values, key_mask):
            Q = self.feature_map(queries)
            K = self.feature_map(keys)
            K = K * key_mask[:, :, None, None]
            KV = T.einsum("nshd,nshm->nhmd", K, values)
            Z = 1 / (T.einsum("nlhd,nhd->nlh", Q, K.sum(dim=1)) + self.eps)
            V = T.einsum("nlhd,nhmd,nlh->nlhm", Q, KV, Z)
            return V.contiguous()

    class CausalLinearAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_map = elu_feature_map
            self.eps = eps

        def forward(self, queries, keys, values, key_mask):
            Q = self.feature_map(queries)
            K = self.feature_map(keys)
            K = K * key_mask[:, :, None, None]
            Z = 1 / (T.einsum("nlhi,nlhi->nlh", Q, K.cumsum(1)) + self.eps)
            V = causal_linear(Q, K, values)
            return V * Z[:, :, :, None]

    class RecurrentLinearAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_map = elu_feature_map
            self.eps = eps

        def forward(self, query, key, value, state=None):
            Q = self.feature_map(query)
            K = self.feature_map(key)
            N, H, D = Q.shape
            _, _, M = value.shape
            if state is None:
                Si = query.new_zeros((N, H, D, M))
                Zi = query.new_zeros((N, H, D))
            else:
                Si, Zi = state
            if len(Si) != N:
                raise ValueError("The batch size changed during iteration")
            if K.grad_fn is not None or value.grad_fn is not None:
                Zi = Zi + K
                Si = Si + T.einsum("nhd,nhm->nhdm", K, value)
            else:
                Zi += K
                Si += T.einsum("nhd,nhm->nhdm", K, value)
            Z = 1. / (T.einsum("nhd,nhd->nh", Q, Zi) + self.eps)
            V = T.einsum("nhd,nhdm,nh->nhm", Q, Si, Z)
            return V, [Si, Zi]

    class AttentionLayer(nn.Module):
        def __init__(self, attention):
            super().__init__()
            d_keys = d_model // n_heads
            self.inner_attention = attention
            self.query_projection = nn.Linear(d_model, d_keys * n_heads)
            self.key_projection = nn.Linear(d_model, d_keys * n_heads)
            self.value_projection = nn.Linear(d_model, d_keys * n_heads)
            self.out_projection = nn.Linear(d_keys * n_heads, d_model)
            self.n_heads = n_heads

        def forward(self, queries, keys, values, key_mask):
            N, L, _ = queries.shape
            _, S, _ = keys.shape
            H = self.n_heads
            queries = self.query_projection(queries).view(N, L, H, -1)
            keys = self.key_projection(keys).view(N, S, H, -1)
            values = self.value_projection(values).view(N, S, H, -1)
            new_values = self.inner_attention(queries, keys, values, key_mask).view(N, L, -1)
            return self.out_projection(new_values)

        def recurrent(self, query, key, value, state=None):
            N, _ = query.shape
            H = self.n_heads
            query = self.query_projection(query).view(N, H, -1)
            key = self.key_projection(key).view(N, H, -1)
            value = self.value_projection(value).view(N, H, -1)
            new_value, state = RecurrentLinearAttention()(query, key, value, state)
            return self.out_projection(new_value.view(N, -1)), state

    class TransformerEncoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = AttentionLayer(CausalLinearAttention() if causal else LinearAttention())
            self.linear1 = nn.Linear(d_model, d_ff)
            self.linear2 = nn.Linear(d_ff, d_model)
            self.norm1 = nn.LayerNorm(d_model)
            self.norm2 = nn.LayerNorm(d_model)
            self.dropout = nn.Dropout(0.0)
            self.activation = F.gelu

        def forward(self, x, key_mask):
            x = x + self.dropout(self.attention(x, x, x, key_mask))
            y = x = self.norm1(x)
            y = self.dropout(self.activation(self.linear1(y)))
            y = self.dropout(self.linear2(y))
            return self.norm2(x + y)

        def recurrent(self, x, state=None):
            x2, state = self.attention.recurrent(x, x, x, state)
            x = x + self.dropout(x2)
            y = x = self.norm1(x)
            y = self.dropout(self.activation(self.linear1(y)))
            y = self.dropout(self.linear2(y))
            return self.norm2(x + y), state

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, d_model)
            self.pos = nn.Embedding(max_len, d_model)
            self.layers = nn.ModuleList([TransformerEncoderLayer() for _ in range(n_layers)])
            self.head = nn.Linear(d_model, vocab if causal else n_classes)

        def forward(self, ids, lengths):
            N, L = ids.shape
            key_mask = (T.arange(L, device=ids.device)[None, :] < lengths[:, None]).float()  # float_matrix
            x = self.tok(ids) + self.pos(T.arange(L, device=ids.device))[None]
            for layer in self.layers:
                x = layer(x, key_mask)
            if causal:
                return self.head(x)
            pooled = (x * key_mask[..., None]).sum(1) / key_mask.sum(1, keepdim=True)
            return self.head(pooled)

        def step(self, token, i, states):
            x = self.tok(token) + self.pos.weight[i]
            for layer_idx, layer in enumerate(self.layers):
                x, states[layer_idx] = layer.recurrent(x, states[layer_idx])
            return self.head(x)

    return Model()


def train_linear_transformer(T, device, init, ids, lengths, labels, causal):
    device = device_of(T, device)
    model = ported_model(T, lambda T: linear_transformer(T, causal=causal), init, device)
    lengths_t = T.tensor(lengths, device=device)
    if causal:
        x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
        y = y.masked_fill(T.arange(y.shape[1], device=device)[None] >= lengths_t[:, None], -100)

        def step_loss(it):
            logits = model(x, lengths_t)
            return F_cross_entropy(T, logits, y)
    else:
        x, y = T.tensor(ids, device=device), T.tensor(labels, device=device)

        def step_loss(it):
            return T.nn.functional.cross_entropy(model(x, lengths_t), y)

    out = train_steps(T, model, step_loss, lr=2e-2)
    model.eval()
    with T.no_grad():
        logits = model(x, lengths_t)
        out += logits.flatten().tolist()
        if causal:
            full = model(x, T.full_like(lengths_t, x.shape[1]))
            states = [None] * len(model.layers)
            recurrent = T.stack([model.step(x[:, i], i, states) for i in range(x.shape[1])], dim=1)
            out.append((recurrent - full).abs().max().item())
    return out, numpy_state(model)


@pytest.mark.parametrize("causal", [True, False])
def test_linear_attention(device, causal):
    rng = np.random.default_rng(5)
    lengths = np.array([9, 6, 4])
    ids = rng.integers(1, 12, (3, 9)) * (np.arange(9) < lengths[:, None])
    labels = rng.integers(0, 3, 3)
    torch.manual_seed(0)
    init = numpy_state(linear_transformer(torch, causal=causal))
    got = run_both(train_linear_transformer, device, init, ids, lengths, labels, causal)
    if causal:
        assert got[0][-1] < 1e-5  # the RNN form reproduces the causal parallel form


# ---- 5. ALiBi (Press et al. 2022): ofirpress/attention_with_linear_biases (fairseq) and HF BLOOM -------
# fairseq: slopes from get_slopes (6 heads: not a power of 2), the bias added to a -inf future mask and
# handed to nn.MultiheadAttention as a 3-D (bsz * heads, tgt, src) float mask; no position embeddings,
# and the model is evaluated past its training length. BLOOM: build_alibi_tensor from a left-padded
# attention mask (cumsum positions), fused qkv, alibi.baddbmm(batch1, batch2, beta, alpha), a boolean
# causal | padding mask through masked_fill with finfo.min, bloom_gelu.

def get_slopes(n):
    def get_slopes_power_of_2(n):
        start = (2 ** (-2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio ** i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    else:
        closest_power_of_2 = 2 ** math.floor(math.log2(n))
        return get_slopes_power_of_2(closest_power_of_2) + get_slopes(2 * closest_power_of_2)[0::2][
            :n - closest_power_of_2]


def build_alibi_tensor(T, attention_mask, num_heads, dtype):
    batch_size, seq_length = attention_mask.shape
    closest_power_of_2 = 2 ** math.floor(math.log2(num_heads))
    base = T.tensor(2 ** (-(2 ** -(math.log2(closest_power_of_2) - 3))), device=attention_mask.device,
                    dtype=T.float32)
    powers = T.arange(1, 1 + closest_power_of_2, device=attention_mask.device, dtype=T.int32)
    slopes = T.pow(base, powers)
    if closest_power_of_2 != num_heads:
        extra_base = T.tensor(2 ** (-(2 ** -(math.log2(2 * closest_power_of_2) - 3))),
                              device=attention_mask.device, dtype=T.float32)
        num_remaining_heads = min(closest_power_of_2, num_heads - closest_power_of_2)
        extra_powers = T.arange(1, 1 + 2 * num_remaining_heads, 2, device=attention_mask.device, dtype=T.int32)
        slopes = T.cat([slopes, T.pow(extra_base, extra_powers)], dim=0)
    # Note: alibi will added to the attention bias that will be applied to the query, key product of attention
    arange_tensor = ((attention_mask.cumsum(dim=-1) - 1) * attention_mask)[:, None, :]
    alibi = slopes[..., None] * arange_tensor
    return alibi.reshape(batch_size * num_heads, 1, seq_length).to(dtype)


def alibi_fairseq(T, vocab=13, embed_dim=12, heads=6, ffn=16, layers=2, maxpos=16, max_batch=4):
    nn, F = T.nn, T.nn.functional

    def fill_with_neg_inf(t):
        """FP16-compatible function that fills a tensor with -inf."""
        return t.float().fill_(float("-inf")).type_as(t)

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = nn.MultiheadAttention(embed_dim, heads, dropout=0.0)
            self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
            self.fc1 = nn.Linear(embed_dim, ffn)
            self.fc2 = nn.Linear(ffn, embed_dim)
            self.final_layer_norm = nn.LayerNorm(embed_dim)

        def forward(self, x, self_attn_mask, self_attn_padding_mask):
            residual = x
            x = self.self_attn_layer_norm(x)  # decoder_normalize_before
            x, _ = self.self_attn(query=x, key=x, value=x, key_padding_mask=self_attn_padding_mask,
                                  need_weights=False, attn_mask=self_attn_mask)
            x = residual + x
            residual = x
            x = self.final_layer_norm(x)
            x = self.fc2(F.relu(self.fc1(x)))
            return residual + x

    class TransformerDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(vocab, embed_dim, padding_idx=0)
            self.embed_scale = math.sqrt(embed_dim)
            self.padding_idx = 0
            self.layers = nn.ModuleList([DecoderLayer() for _ in range(layers)])
            self.layer_norm = nn.LayerNorm(embed_dim)
            self.output_projection = nn.Linear(embed_dim, vocab, bias=False)
            self.output_projection.weight = self.embed_tokens.weight
            self.attn_heads = heads
            self.slopes = T.Tensor(get_slopes(heads))
            # In the next line, the part after the * is what constructs the diagonal matrix and the part
            # before the * changes each diagonal's value.
            self.alibi = self.slopes.unsqueeze(1).unsqueeze(1) * T.arange(maxpos).unsqueeze(0).unsqueeze(0).expand(
                heads, -1, -1)
            self.alibi = self.alibi.view(heads, 1, maxpos)
            self.alibi = self.alibi.repeat(max_batch, 1, 1)  # batch_size, 1, 1
            self._future_mask = T.empty(0)

        def buffered_future_mask(self, tensor):
            dim = tensor.size(0)
            if (self._future_mask.size(0) == 0 or (not self._future_mask.device == tensor.device)
                    or self._future_mask.size(1) < maxpos):
                self._future_mask = T.triu(fill_with_neg_inf(T.zeros([maxpos, maxpos])), 1)
                self._future_mask = self._future_mask.unsqueeze(0) + self.alibi
            self._future_mask = self._future_mask.to(tensor)
            return self._future_mask[:tensor.shape[1] * self.attn_heads, :dim, :dim]

        def forward(self, prev_output_tokens):
            x = self.embed_scale * self.embed_tokens(prev_output_tokens)
            self_attn_padding_mask = prev_output_tokens.eq(self.padding_idx)
            x = x.transpose(0, 1)  # B x T x C -> T x B x C
            for layer in self.layers:
                x = layer(x, self.buffered_future_mask(x), self_attn_padding_mask)
            x = self.layer_norm(x)
            x = x.transpose(0, 1)  # T x B x C -> B x T x C
            return self.output_projection(x)

    return TransformerDecoder()


def bloom(T, vocab=13, hidden_size=12, n_head=6, n_layer=2, layer_norm_epsilon=1e-5):
    nn, F = T.nn, T.nn.functional

    def bloom_gelu_forward(x):
        return x * 0.5 * (1.0 + T.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))

    def _make_causal_mask(input_ids_shape, device, past_key_values_length):
        batch_size, target_length = input_ids_shape
        mask = T.empty((target_length, target_length + past_key_values_length), dtype=T.bool, device=device)
        # ONNX doesn't support `torch.Tensor.triu` properly, thus we use this workaround
        seq_ids = T.arange(target_length, device=device)
        mask[:, past_key_values_length:] = seq_ids[:, None] < seq_ids[None, :]
        if past_key_values_length > 0:
            mask[:, :past_key_values_length] = False
        return mask[None, None, :, :].expand(batch_size, 1, target_length, target_length + past_key_values_length)

    def _expand_mask(mask, tgt_length):
        batch_size, src_length = mask.shape
        tgt_length = tgt_length if tgt_length is not None else src_length
        expanded_mask = ~(mask[:, None, None, :].to(T.bool))
        return expanded_mask.expand(batch_size, 1, tgt_length, src_length)

    class BloomAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden_size = hidden_size
            self.num_heads = n_head
            self.head_dim = self.hidden_size // self.num_heads
            self.inv_norm_factor = 1.0 / math.sqrt(self.head_dim)
            self.beta = 1.0
            self.query_key_value = nn.Linear(self.hidden_size, 3 * self.hidden_size, bias=True)
            self.dense = nn.Linear(self.hidden_size, self.hidden_size)
            self.attention_dropout = nn.Dropout(0.0)

        def _split_heads(self, fused_qkv):
            batch_size, seq_length, three_times_hidden_size = fused_qkv.shape
            fused_qkv = fused_qkv.view(batch_size, seq_length, self.num_heads, 3, self.head_dim)
            return fused_qkv[..., 0, :], fused_qkv[..., 1, :], fused_qkv[..., 2, :]

        def _merge_heads(self, x):
            batch_size_and_num_heads, seq_length, _ = x.shape
            batch_size = batch_size_and_num_heads // self.num_heads
            x = x.view(batch_size, self.num_heads, seq_length, self.head_dim)
            x = x.permute(0, 2, 1, 3)
            return x.reshape(batch_size, seq_length, self.num_heads * self.head_dim)

        def forward(self, hidden_states, residual, alibi, attention_mask):
            fused_qkv = self.query_key_value(hidden_states)  # [batch_size, seq_length, 3 x hidden_size]
            (query_layer, key_layer, value_layer) = self._split_heads(fused_qkv)
            batch_size, q_length, _, _ = query_layer.shape
            query_layer = query_layer.transpose(1, 2).reshape(batch_size * self.num_heads, q_length, self.head_dim)
            key_layer = key_layer.permute(0, 2, 3, 1).reshape(batch_size * self.num_heads, self.head_dim, q_length)
            value_layer = value_layer.transpose(1, 2).reshape(batch_size * self.num_heads, q_length, self.head_dim)
            _, _, kv_length = key_layer.shape
            # [batch_size * num_heads, q_length, kv_length]
            matmul_result = alibi.baddbmm(batch1=query_layer, batch2=key_layer, beta=self.beta,
                                          alpha=self.inv_norm_factor)
            # change view to [batch_size, num_heads, q_length, kv_length]
            attention_scores = matmul_result.view(batch_size, self.num_heads, q_length, kv_length)
            input_dtype = attention_scores.dtype
            attn_weights = T.masked_fill(attention_scores, attention_mask, T.finfo(attention_scores.dtype).min)
            attention_probs = F.softmax(attn_weights, dim=-1, dtype=T.float32).to(input_dtype)
            attention_probs = self.attention_dropout(attention_probs)
            attention_probs_reshaped = attention_probs.view(batch_size * self.num_heads, q_length, kv_length)
            context_layer = T.bmm(attention_probs_reshaped, value_layer)
            context_layer = self._merge_heads(context_layer)
            output_tensor = self.dense(context_layer)
            return residual + output_tensor  # dropout_add with p = 0

    class BloomMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense_h_to_4h = nn.Linear(hidden_size, 4 * hidden_size)
            self.dense_4h_to_h = nn.Linear(4 * hidden_size, hidden_size)

        def forward(self, hidden_states, residual):
            hidden_states = bloom_gelu_forward(self.dense_h_to_4h(hidden_states))
            return self.dense_4h_to_h(hidden_states) + residual

    class BloomBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = nn.LayerNorm(hidden_size, eps=layer_norm_epsilon)
            self.self_attention = BloomAttention()
            self.post_attention_layernorm = nn.LayerNorm(hidden_size, eps=layer_norm_epsilon)
            self.mlp = BloomMLP()

        def forward(self, hidden_states, alibi, attention_mask):
            layernorm_output = self.input_layernorm(hidden_states)
            residual = hidden_states  # apply_residual_connection_post_layernorm = False
            attention_output = self.self_attention(layernorm_output, residual, alibi=alibi,
                                                   attention_mask=attention_mask)
            layernorm_output = self.post_attention_layernorm(attention_output)
            return self.mlp(layernorm_output, attention_output)

    class BloomForCausalLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(vocab, hidden_size)
            self.word_embeddings_layernorm = nn.LayerNorm(hidden_size, eps=layer_norm_epsilon)
            self.h = nn.ModuleList([BloomBlock() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(hidden_size, eps=layer_norm_epsilon)
            self.lm_head = nn.Linear(hidden_size, vocab, bias=False)
            self.lm_head.weight = self.word_embeddings.weight

        def _prepare_attn_mask(self, attention_mask, input_shape, past_key_values_length):
            combined_attention_mask = None
            device = attention_mask.device
            _, src_length = input_shape
            if src_length > 1:
                combined_attention_mask = _make_causal_mask(input_shape, device=device,
                                                            past_key_values_length=past_key_values_length)
            expanded_attn_mask = _expand_mask(attention_mask, tgt_length=src_length)
            combined_attention_mask = (
                expanded_attn_mask if combined_attention_mask is None else expanded_attn_mask | combined_attention_mask)
            return combined_attention_mask

        def forward(self, input_ids, attention_mask, labels=None):
            batch_size, seq_length = input_ids.shape
            inputs_embeds = self.word_embeddings(input_ids)
            hidden_states = self.word_embeddings_layernorm(inputs_embeds)
            alibi = build_alibi_tensor(T, attention_mask, n_head, dtype=hidden_states.dtype)
            causal_mask = self._prepare_attn_mask(attention_mask, input_shape=(batch_size, seq_length),
                                                  past_key_values_length=0)
            for block in self.h:
                hidden_states = block(hidden_states, alibi=alibi, attention_mask=causal_mask)
            hidden_states = self.ln_f(hidden_states)
            lm_logits = self.lm_head(hidden_states)
            loss = None
            if labels is not None:
                shift_logits = lm_logits[..., :-1, :].contiguous()
                shift_labels = labels[..., 1:].contiguous()
                batch_size, seq_length, vocab_size = shift_logits.shape
                loss_fct = nn.CrossEntropyLoss()
                loss = loss_fct(shift_logits.view(batch_size * seq_length, vocab_size),
                                shift_labels.view(batch_size * seq_length))
            return loss, lm_logits

    return BloomForCausalLM()


def gen_slopes(T, n_heads, alibi_bias_max=8, device=None):
    _n_heads = 2 ** math.ceil(math.log2(n_heads))
    m = T.arange(1, _n_heads + 1, dtype=T.float32, device=device)
    m = m.mul(alibi_bias_max / _n_heads)
    slopes = 1.0 / T.pow(2, m)
    if _n_heads != n_heads:
        slopes = T.concat([slopes[1::2], slopes[::2]])[:n_heads]
    return slopes.view(1, n_heads, 1, 1)


def build_alibi_bias(T, n_heads, seq_len, full=False, alibi_bias_max=8, device=None, dtype=None):
    alibi_bias = T.arange(1 - seq_len, 1, dtype=T.int32, device=device).view(1, 1, 1, seq_len)
    if full:
        alibi_bias = alibi_bias - T.arange(1 - seq_len, 1, dtype=T.int32, device=device).view(1, 1, seq_len, 1)
        alibi_bias = alibi_bias.abs().mul(-1)
    slopes = gen_slopes(T, n_heads, alibi_bias_max, device=device)
    alibi_bias = alibi_bias * slopes
    return alibi_bias.to(dtype=dtype)


def mpt(T, vocab=13, d_model=12, n_heads=6, n_layers=2, max_seq_len=16, expansion_ratio=2):
    """MosaicML MPT (llm-foundry attention.py / blocks.py / modeling_mpt.py, attn_impl='torch', alibi=True)."""
    nn, F = T.nn, T.nn.functional

    def scaled_multihead_dot_product_attention(query, key, value, n_heads, softmax_scale=None, attn_bias=None,
                                               key_padding_mask=None, is_causal=False):
        b, s, _ = query.shape
        # einops: rearrange(query, 'b s (h d) -> b h s d'), rearrange(key, 'b s (h d) -> b h d s')
        q = query.view(b, s, n_heads, -1).permute(0, 2, 1, 3)
        k = key.view(b, key.size(1), n_heads, -1).permute(0, 2, 3, 1)
        v = value.view(b, value.size(1), n_heads, -1).permute(0, 2, 1, 3)
        (b, _, s_q, d) = q.shape
        s_k = k.size(-1)
        if softmax_scale is None:
            softmax_scale = 1 / math.sqrt(d)
        attn_weight = q.matmul(k) * softmax_scale
        if attn_bias is not None:
            _s_q = max(0, attn_bias.size(2) - s_q)
            _s_k = max(0, attn_bias.size(3) - s_k)
            attn_bias = attn_bias[:, :, _s_q:, _s_k:]
            attn_weight = attn_weight + attn_bias
        min_val = T.finfo(q.dtype).min
        if key_padding_mask is not None:
            attn_weight = attn_weight.masked_fill(~key_padding_mask.view((b, 1, 1, s_k)), min_val)
        if is_causal and (not q.size(2) == 1):
            s = max(s_q, s_k)
            causal_mask = attn_weight.new_ones(s, s, dtype=T.float32)
            causal_mask = causal_mask.tril()
            causal_mask = causal_mask.to(T.bool)
            causal_mask = ~causal_mask
            causal_mask = causal_mask[-s_q:, -s_k:]
            attn_weight = attn_weight.masked_fill(causal_mask.view(1, 1, s_q, s_k), min_val)
        attn_weight = T.softmax(attn_weight, dim=-1)
        out = attn_weight.to(v.dtype).matmul(v)
        return out.permute(0, 2, 1, 3).reshape(b, s_q, -1)  # rearrange(out, 'b h s d -> b s (h d)')

    class MultiheadAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.n_heads = n_heads
            self.Wqkv = nn.Linear(d_model, 3 * d_model)
            self.out_proj = nn.Linear(d_model, d_model)
            self.out_proj._is_residual = True

        def forward(self, x, attn_bias=None, attention_mask=None, is_causal=True):
            qkv = self.Wqkv(x)
            (query, key, value) = qkv.chunk(3, dim=2)
            context = scaled_multihead_dot_product_attention(query, key, value, self.n_heads, attn_bias=attn_bias,
                                                             key_padding_mask=attention_mask, is_causal=is_causal)
            return self.out_proj(context)

    class MPTMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.up_proj = nn.Linear(d_model, expansion_ratio * d_model)
            self.act = nn.GELU(approximate='none')
            self.down_proj = nn.Linear(expansion_ratio * d_model, d_model)
            self.down_proj._is_residual = True

        def forward(self, x):
            return self.down_proj(self.act(self.up_proj(x)))

    class MPTBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm_1 = nn.LayerNorm(d_model)
            self.attn = MultiheadAttention()
            self.norm_2 = nn.LayerNorm(d_model)
            self.ffn = MPTMLP()

        def forward(self, x, attn_bias=None, attention_mask=None, is_causal=True):
            a = self.norm_1(x)
            b = self.attn(a, attn_bias=attn_bias, attention_mask=attention_mask, is_causal=is_causal)
            x = x + b
            m = self.norm_2(x)
            n = self.ffn(m)
            return x + n

    class MPTForCausalLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, d_model)
            self.blocks = nn.ModuleList([MPTBlock() for _ in range(n_layers)])
            self.norm_f = nn.LayerNorm(d_model)
            self.attn_bias_shape = (1, n_heads, 1, max_seq_len)  # causal alibi
            self._attn_bias_initialized = False
            self.attn_bias = None

        def _attn_bias(self, device, dtype):
            if not self._attn_bias_initialized:
                self.attn_bias = T.zeros(self.attn_bias_shape, device=device, dtype=dtype)
                self.attn_bias = self.attn_bias.add(build_alibi_bias(T, n_heads, max_seq_len, full=False,
                                                                     device=device, dtype=dtype))
                self._attn_bias_initialized = True
            return self.attn_bias

        def forward(self, input_ids, attention_mask=None):
            x = self.wte(input_ids)
            attn_bias = self._attn_bias(device=x.device, dtype=x.dtype)
            if attention_mask is not None:
                attention_mask = attention_mask.bool()
            for block in self.blocks:
                x = block(x, attn_bias=attn_bias, attention_mask=attention_mask, is_causal=True)
            x = self.norm_f(x)
            # tied, as MPT's logits = F.linear(outputs.last_hidden_state, self.transformer.wte.weight)
            return F.linear(x, self.wte.weight)

    return MPTForCausalLM()


def train_alibi(T, device, init, ids, pad, variant):
    device = device_of(T, device)
    out = []
    if variant == "fairseq":
        model = ported_model(T, alibi_fairseq, init, device)
        model.alibi = model.alibi.to(device)
        x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
        loss_fn = T.nn.CrossEntropyLoss(ignore_index=0)
        out += train_steps(T, model, lambda it: loss_fn(model(x[:, :8]).flatten(0, 1), y[:, :8].flatten()))
        model.eval()
        with T.no_grad():
            longer = model(x)  # extrapolate past the training length
            out += longer.flatten().tolist()
            out += model.buffered_future_mask(model.embed_tokens(x).transpose(0, 1))[:, :4, :4].flatten().tolist()
    elif variant == "mpt":
        model = ported_model(T, mpt, init, device)
        input_ids = T.tensor(ids, device=device)
        attention_mask = T.tensor(pad[:, ::-1].copy(), device=device)  # right padding
        labels = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)

        def step_loss(it):
            logits = model(input_ids, attention_mask=attention_mask)[:, :-1]
            return T.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1))

        out += train_steps(T, model, step_loss)
        model.eval()
        with T.no_grad():
            out += model(input_ids, attention_mask=attention_mask)[attention_mask.bool()].flatten().tolist()
            out += model.attn_bias.flatten().tolist()
            out.append((gen_slopes(T, 6).flatten() - T.tensor(get_slopes(6), device=device)).abs().max().item())
            full = build_alibi_bias(T, 6, 4, full=True, device=device, dtype=T.float32)
            out += full.flatten().tolist()
    else:
        model = ported_model(T, bloom, init, device)
        input_ids = T.tensor(ids, device=device)
        attention_mask = T.tensor(pad, device=device)  # left padding
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        out += train_steps(T, model, lambda it: model(input_ids, attention_mask, labels=labels)[0])
        model.eval()
        with T.no_grad():
            _, logits = model(input_ids, attention_mask)
            out += logits[attention_mask.bool()].flatten().tolist()
            alibi = build_alibi_tensor(T, attention_mask, 6, T.float32)
            out += alibi.flatten().tolist()
            fairseq_slopes = T.Tensor(get_slopes(6)).to(device)
            out.append((alibi.view(len(ids), 6, -1)[0, :, -1] / (ids.shape[1] - 1 - (pad[0] == 0).sum())
                        - fairseq_slopes).abs().max().item())
    return out, numpy_state(model)


def without_key_bias(state, d=12, heads=6):
    """The key bias shifts every score of a query alike and softmax cancels it: its gradient is rounding
    noise that AdamW scales up to full steps in either library (test_ported_scripts.without_key_bias)."""
    def drop(k, v):
        if k.endswith("in_proj_bias"):  # nn.MultiheadAttention: [q | k | v]
            return np.concatenate([v[:d], v[2 * d:]])
        if k.endswith("query_key_value.bias"):  # BLOOM: (heads, 3, head_dim)
            return v.reshape(heads, 3, -1)[:, [0, 2]]
        if k.endswith("Wqkv.bias"):  # MPT: [q | k | v]
            return np.concatenate([v[:d], v[2 * d:]])
        return v
    return {k: drop(k, v) for k, v in state.items()}


@pytest.mark.parametrize("variant", ["fairseq", "bloom", "mpt"])
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")  # torch's, on fairseq's masks
def test_alibi(device, variant):
    rng = np.random.default_rng(6)
    ids = rng.integers(1, 13, (3, 12))
    pad = (np.arange(12) >= np.array([0, 3, 5])[:, None]).astype(np.int64)
    ids = ids * pad if variant == "bloom" else ids * pad[:, ::-1]  # BLOOM pads on the left
    torch.manual_seed(0)
    init = numpy_state({"fairseq": alibi_fairseq, "bloom": bloom, "mpt": mpt}[variant](torch))
    got = run_both(train_alibi, device, init, ids, pad, variant, state_view=without_key_bias)
    if variant == "bloom":
        assert got[0][-1] < 1e-6  # BLOOM's slopes are fairseq's


# ---- 6. rotary embeddings in real arithmetic: HF GPT-NeoX (rotate_half, partial rotary_pct) and HF GPT-J -
# (rotate_every_two on interleaved pairs, sin/cos gathered per position_ids, repeat_interleave). NeoX's
# cos/sin cache and causal-mask buffer grow when decoding runs past max_position_embeddings; both models
# decode greedily with a KV cache, which must reproduce the full forward.

def rotary_lm(T, style, vocab=13, hidden_size=16, num_heads=2, n_layer=2, max_position_embeddings=6,
              rotary_pct=0.5, rotary_dim=4, rope_base=10000):
    nn, F = T.nn, T.nn.functional

    class GPTNeoXRotaryEmbedding(nn.Module):
        def __init__(self, dim, max_position_embeddings=2048, base=10000, device=None):
            super().__init__()
            self.dim = dim
            self.max_position_embeddings = max_position_embeddings
            self.base = base
            inv_freq = 1.0 / (self.base ** (T.arange(0, self.dim, 2, dtype=T.int64).float().to(device) / self.dim))
            self.register_buffer("inv_freq", inv_freq, persistent=False)
            self._set_cos_sin_cache(seq_len=max_position_embeddings, device=self.inv_freq.device,
                                    dtype=T.get_default_dtype())

        def _set_cos_sin_cache(self, seq_len, device, dtype):
            self.max_seq_len_cached = seq_len
            t = T.arange(self.max_seq_len_cached, device=device, dtype=T.int64).type_as(self.inv_freq)
            freqs = T.outer(t, self.inv_freq)
            # Different from paper, but it uses a different permutation in order to obtain the same calculation
            emb = T.cat((freqs, freqs), dim=-1)
            self.register_buffer("cos_cached", emb.cos(), persistent=False)
            self.register_buffer("sin_cached", emb.sin(), persistent=False)

        def forward(self, x, seq_len=None):
            # x: [bs, num_attention_heads, seq_len, head_size]
            if seq_len > self.max_seq_len_cached:
                self._set_cos_sin_cache(seq_len=seq_len, device=x.device, dtype=x.dtype)
            return (self.cos_cached[:seq_len].to(dtype=x.dtype), self.sin_cached[:seq_len].to(dtype=x.dtype))

    def rotate_half(x):
        """Rotates half the hidden dims of the input."""
        x1 = x[..., : x.shape[-1] // 2]
        x2 = x[..., x.shape[-1] // 2:]
        return T.cat((-x2, x1), dim=-1)

    def neox_apply_rotary_pos_emb(q, k, cos, sin, position_ids, unsqueeze_dim=1):
        cos = cos[position_ids].unsqueeze(unsqueeze_dim)
        sin = sin[position_ids].unsqueeze(unsqueeze_dim)
        q_embed = (q * cos) + (rotate_half(q) * sin)
        k_embed = (k * cos) + (rotate_half(k) * sin)
        return q_embed, k_embed

    def create_sinusoidal_positions(num_pos, dim):
        inv_freq = 1.0 / (10000 ** (T.arange(0, dim, 2, dtype=T.int64) / dim))
        sinusoid_inp = T.einsum("i , j -> i j", T.arange(num_pos, dtype=T.int64).float(), inv_freq).float()
        return T.cat((T.sin(sinusoid_inp), T.cos(sinusoid_inp)), dim=1)

    def rotate_every_two(x):
        x1 = x[:, :, :, ::2]
        x2 = x[:, :, :, 1::2]
        x = T.stack((-x2, x1), dim=-1)
        return x.flatten(-2)  # in einsum notation: rearrange(x, '... d j -> ... (d j)')

    def gptj_apply_rotary_pos_emb(tensor, sin, cos):
        sin = T.repeat_interleave(sin[:, :, None, :], 2, 3)
        cos = T.repeat_interleave(cos[:, :, None, :], 2, 3)
        return (tensor * cos) + (rotate_every_two(tensor) * sin)

    class GPTNeoXAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_attention_heads = num_heads
            self.hidden_size = hidden_size
            self.head_size = self.hidden_size // self.num_attention_heads
            self.rotary_ndims = int(self.head_size * rotary_pct)
            self._init_bias(max_position_embeddings)
            self.register_buffer("masked_bias", T.tensor(-1e9), persistent=False)
            self.rotary_emb = GPTNeoXRotaryEmbedding(self.rotary_ndims, max_position_embeddings, base=rope_base)
            self.norm_factor = self.head_size ** -0.5
            self.query_key_value = nn.Linear(hidden_size, 3 * hidden_size)
            self.dense = nn.Linear(hidden_size, hidden_size)
            self.attention_dropout = nn.Dropout(0.0)

        def _init_bias(self, max_positions, device=None):
            self.register_buffer(
                "bias",
                T.tril(T.ones((max_positions, max_positions), dtype=T.bool)).view(1, 1, max_positions, max_positions),
                persistent=False,
            )
            if device is not None:
                self.bias = self.bias.to(device)

        def forward(self, hidden_states, position_ids, layer_past=None):
            has_layer_past = layer_past is not None
            qkv = self.query_key_value(hidden_states)
            new_qkv_shape = qkv.size()[:-1] + (self.num_attention_heads, 3 * self.head_size)
            qkv = qkv.view(*new_qkv_shape)
            query = qkv[..., : self.head_size].permute(0, 2, 1, 3)
            key = qkv[..., self.head_size: 2 * self.head_size].permute(0, 2, 1, 3)
            value = qkv[..., 2 * self.head_size:].permute(0, 2, 1, 3)
            query_rot = query[..., : self.rotary_ndims]
            query_pass = query[..., self.rotary_ndims:]
            key_rot = key[..., : self.rotary_ndims]
            key_pass = key[..., self.rotary_ndims:]
            seq_len = key.shape[-2]
            if has_layer_past:
                seq_len += layer_past[0].shape[-2]
            cos, sin = self.rotary_emb(value, seq_len=seq_len)
            query, key = neox_apply_rotary_pos_emb(query_rot, key_rot, cos, sin, position_ids)
            query = T.cat((query, query_pass), dim=-1)
            key = T.cat((key, key_pass), dim=-1)
            if has_layer_past:
                past_key = layer_past[0]
                past_value = layer_past[1]
                key = T.cat((past_key, key), dim=-2)
                value = T.cat((past_value, value), dim=-2)
            present = (key, value)
            attn_output, attn_weights = self._attn(query, key, value)
            attn_output = self._merge_heads(attn_output, self.num_attention_heads, self.head_size)
            return self.dense(attn_output), present

        @classmethod
        def _merge_heads(cls, tensor, num_attention_heads, attn_head_size):
            tensor = tensor.permute(0, 2, 1, 3).contiguous()
            return tensor.view(tensor.size(0), tensor.size(1), num_attention_heads * attn_head_size)

        def _attn(self, query, key, value):
            batch_size, num_attention_heads, query_length, attn_head_size = query.size()
            key_length = key.size(-2)
            # dynamically increase the causal mask with the key length, if needed.
            if key_length > self.bias.shape[-1]:
                self._init_bias(key_length, device=key.device)
            causal_mask = self.bias[:, :, key_length - query_length: key_length, :key_length]
            query = query.view(batch_size * num_attention_heads, query_length, attn_head_size)
            key = key.view(batch_size * num_attention_heads, key_length, attn_head_size)
            attn_scores = T.zeros(batch_size * num_attention_heads, query_length, key_length, dtype=query.dtype,
                                  device=key.device)
            attn_scores = T.baddbmm(attn_scores, query, key.transpose(1, 2), beta=1.0, alpha=self.norm_factor)
            attn_scores = attn_scores.view(batch_size, num_attention_heads, query_length, key_length)
            mask_value = T.finfo(attn_scores.dtype).min
            mask_value = T.tensor(mask_value, dtype=attn_scores.dtype).to(attn_scores.device)
            attn_scores = T.where(causal_mask, attn_scores, mask_value)
            attn_weights = F.softmax(attn_scores, dim=-1)
            attn_weights = attn_weights.to(value.dtype)
            attn_weights = self.attention_dropout(attn_weights)
            return T.matmul(attn_weights, value), attn_weights

    class GPTJAttention(nn.Module):
        def __init__(self):
            super().__init__()
            max_positions = max_position_embeddings
            self.register_buffer("bias", T.tril(T.ones((max_positions, max_positions), dtype=T.bool)).view(
                1, 1, max_positions, max_positions), persistent=False)
            self.embed_dim = hidden_size
            self.num_attention_heads = num_heads
            self.head_dim = self.embed_dim // self.num_attention_heads
            self.scale_attn = T.sqrt(T.tensor(self.head_dim, dtype=T.float32)).to(T.get_default_dtype())
            self.k_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
            self.v_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
            self.q_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
            self.out_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
            self.rotary_dim = rotary_dim
            pos_embd_dim = self.rotary_dim or self.embed_dim
            self.embed_positions = create_sinusoidal_positions(max_positions, pos_embd_dim)

        def _split_heads(self, tensor, num_attention_heads, attn_head_size, rotary):
            new_shape = tensor.size()[:-1] + (num_attention_heads, attn_head_size)
            tensor = tensor.view(new_shape)
            if rotary:
                return tensor
            if len(tensor.shape) == 5:
                return tensor.permute(0, 1, 3, 2, 4)  # (batch, blocks, head, block_length, head_features)
            elif len(tensor.shape) == 4:
                return tensor.permute(0, 2, 1, 3)  # (batch, head, seq_length, head_features)
            else:
                raise ValueError(f"Input tensor rank should be one of [4, 5], but is: {len(tensor.shape)}")

        def _merge_heads(self, tensor, num_attention_heads, attn_head_size):
            if len(tensor.shape) == 5:
                tensor = tensor.permute(0, 1, 3, 2, 4).contiguous()
            elif len(tensor.shape) == 4:
                tensor = tensor.permute(0, 2, 1, 3).contiguous()
            new_shape = tensor.size()[:-2] + (num_attention_heads * attn_head_size,)
            return tensor.view(new_shape)

        def _attn(self, query, key, value):
            query_length, key_length = query.size(-2), key.size(-2)
            causal_mask = self.bias[:, :, key_length - query_length: key_length, :key_length]
            query = query.to(T.float32)
            key = key.to(T.float32)
            attn_weights = T.matmul(query, key.transpose(-1, -2))
            mask_value = T.finfo(attn_weights.dtype).min
            mask_value = T.tensor(mask_value, dtype=attn_weights.dtype).to(attn_weights.device)
            attn_weights = T.where(causal_mask, attn_weights, mask_value)
            attn_weights = attn_weights / self.scale_attn
            attn_weights = F.softmax(attn_weights, dim=-1)
            attn_weights = attn_weights.to(value.dtype)
            return T.matmul(attn_weights, value), attn_weights

        def _get_embed_positions(self, position_ids):
            embed_positions = self.embed_positions
            if embed_positions.device != position_ids.device:
                embed_positions = embed_positions.to(position_ids.device)
                self.embed_positions = embed_positions
            return embed_positions.repeat(position_ids.shape[0], 1, 1)

        def forward(self, hidden_states, position_ids, layer_past=None):
            query = self.q_proj(hidden_states)
            key = self.k_proj(hidden_states)
            value = self.v_proj(hidden_states)
            query = self._split_heads(query, self.num_attention_heads, self.head_dim, True)
            key = self._split_heads(key, self.num_attention_heads, self.head_dim, True)
            value = self._split_heads(value, self.num_attention_heads, self.head_dim, False)
            embed_positions = self._get_embed_positions(position_ids)
            repeated_position_ids = position_ids.unsqueeze(-1).repeat(1, 1, embed_positions.shape[-1])
            sincos = T.gather(embed_positions, 1, repeated_position_ids)
            sin, cos = T.split(sincos, sincos.shape[-1] // 2, dim=-1)
            if self.rotary_dim is not None:
                k_rot = key[:, :, :, : self.rotary_dim]
                k_pass = key[:, :, :, self.rotary_dim:]
                q_rot = query[:, :, :, : self.rotary_dim]
                q_pass = query[:, :, :, self.rotary_dim:]
                k_rot = gptj_apply_rotary_pos_emb(k_rot, sin, cos)
                q_rot = gptj_apply_rotary_pos_emb(q_rot, sin, cos)
                key = T.cat([k_rot, k_pass], dim=-1)
                query = T.cat([q_rot, q_pass], dim=-1)
            else:
                key = gptj_apply_rotary_pos_emb(key, sin, cos)
                query = gptj_apply_rotary_pos_emb(query, sin, cos)
            key = key.permute(0, 2, 1, 3)
            query = query.permute(0, 2, 1, 3)
            if layer_past is not None:
                past_key = layer_past[0]
                past_value = layer_past[1]
                key = T.cat((past_key, key), dim=-2)
                value = T.cat((past_value, value), dim=-2)
            present = (key.to(hidden_states.dtype), value)
            attn_output, attn_weights = self._attn(query, key, value)
            attn_output = self._merge_heads(attn_output, self.num_attention_heads, self.head_dim)
            return self.out_proj(attn_output), present

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in = nn.Linear(hidden_size, 4 * hidden_size)
            self.fc_out = nn.Linear(4 * hidden_size, hidden_size)

        def forward(self, x):
            return self.fc_out(F.gelu(self.fc_in(x), approximate="tanh"))

    class Block(nn.Module):
        """Both models' parallel residual: x + attn(ln_1(x)) + mlp(ln_2(x)) (GPT-J shares one LayerNorm)."""

        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(hidden_size)
            self.attn = GPTNeoXAttention() if style == "neox" else GPTJAttention()
            if style == "neox":
                self.ln_2 = nn.LayerNorm(hidden_size)
            self.mlp = MLP()

        def forward(self, x, position_ids, layer_past=None):
            attn_output, present = self.attn(self.ln_1(x), position_ids, layer_past)
            mlp_output = self.mlp(self.ln_2(x) if style == "neox" else self.ln_1(x))
            return mlp_output + attn_output + x, present

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, hidden_size)
            self.h = nn.ModuleList([Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(hidden_size)
            self.lm_head = nn.Linear(hidden_size, vocab)

        def forward(self, input_ids, past_key_values=None):
            past_length = 0 if past_key_values is None else past_key_values[0][0].size(-2)
            position_ids = T.arange(past_length, input_ids.shape[-1] + past_length, dtype=T.long,
                                    device=input_ids.device)
            position_ids = position_ids.unsqueeze(0).expand(input_ids.shape[0], -1)
            if past_key_values is None:
                past_key_values = tuple([None] * len(self.h))
            hidden_states = self.wte(input_ids)
            presents = ()
            for block, layer_past in zip(self.h, past_key_values):
                hidden_states, present = block(hidden_states, position_ids, layer_past)
                presents = presents + (present,)
            return self.lm_head(self.ln_f(hidden_states)), presents

    return Model()


def train_rotary(T, device, init, ids, style):
    device = device_of(T, device)
    model = ported_model(T, lambda T: rotary_lm(T, style), init, device)
    assert not any("bias" in k and "attn.bias" in k for k in model.state_dict())  # non-persistent buffers
    x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
    out = train_steps(T, model, lambda it: F_cross_entropy(T, model(x)[0], y))
    model.eval()
    with T.no_grad():
        # greedy decoding with the KV cache, past max_position_embeddings (6) for GPT-NeoX
        input_ids = x[:, :3]
        logits, past = model(input_ids)
        steps = []
        for _ in range(6 if style == "neox" else 3):
            next_token = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            input_ids = T.cat([input_ids, next_token], dim=-1)
            logits, past = model(next_token, past_key_values=past)
            steps.append(logits[:, -1])
        full, _ = model(input_ids)
        out.append((T.stack(steps, dim=1) - full[:, 3:]).abs().max().item())
        out += input_ids.flatten().tolist() + full.flatten().tolist()
        if style == "neox":
            assert model.h[0].attn.bias.shape[-1] == 9 and model.h[0].attn.rotary_emb.cos_cached.shape[0] == 9
    return out, numpy_state(model)


def without_unrotated_key_bias(state, heads=2, head_size=8, rotary_ndims=4):
    """GPT-NeoX's key bias on the dimensions rotary leaves alone shifts a query's scores alike: softmax
    cancels it, and its gradient is rounding noise that AdamW scales up (see without_key_bias)."""
    def drop(k, v):
        if k.endswith("query_key_value.bias"):  # (heads, [q | k | v] * head_size)
            v = v.reshape(heads, 3, head_size)
            return np.concatenate([v[:, 0], v[:, 1, :rotary_ndims], v[:, 2]], axis=1)
        return v
    return {k: drop(k, v) for k, v in state.items()}


@pytest.mark.parametrize("style", ["neox", "gptj"])
def test_rotary_embeddings(device, style):
    ids = np.random.default_rng(7).integers(0, 13, (2, 7))
    torch.manual_seed(0)
    got = run_both(train_rotary, device, numpy_state(rotary_lm(torch, style)), ids, style,
                   state_view=without_unrotated_key_bias)
    assert got[0][6] < 1e-5  # KV-cache decoding reproduces the full forward


# ---- 7. Mistral (mistralai/mistral-src one_file_ref.py; HF modeling_mistral): sliding-window attention ----
# RMSNorm, SwiGLU feed-forward, grouped-query attention through repeat_interleave, rotary embeddings in the
# real rotate_half form (mistral-src's torch.polar / view_as_complex need complex dtypes, which raygrad
# lacks: README "Differences"). The banded causal mask is mistral-src's log(triu(tril(ones), -W)) with a
# hand-written softmax, or HF's float mask (full(finfo.min) *= arange > pos | arange <= pos - W) through
# scaled_dot_product_attention; decoding writes mistral-src's rolling-buffer KV cache with scatter_ into
# a slice, positions % W. A forward hook that retains the embeddings' grad checks the receptive field.

@dataclass
class MistralArgs:
    dim: int = 16
    n_layers: int = 2
    head_dim: int = 8
    hidden_dim: int = 24
    n_heads: int = 2
    n_kv_heads: int = 1
    norm_eps: float = 1e-5
    vocab_size: int = 13
    sliding_window: int = 3
    max_batch_size: int = 2
    max_seq_len: int = 16
    rope_theta: float = 10000.0
    mask_style: str = "mistral-src"


def mistral(T, args=MistralArgs()):
    nn, F = T.nn, T.nn.functional

    def rotate_half(x):
        x1 = x[..., : x.shape[-1] // 2]
        x2 = x[..., x.shape[-1] // 2:]
        return T.cat((-x2, x1), dim=-1)

    def apply_rotary_emb(xq, xk, cos, sin):
        # (seqlen, head_dim) tables broadcast over (bsz, seqlen, n_heads, head_dim)
        cos, sin = cos[None, :, None, :], sin[None, :, None, :]
        return (xq * cos) + (rotate_half(xq) * sin), (xk * cos) + (rotate_half(xk) * sin)

    def repeat_kv(keys, values, repeats):
        keys = T.repeat_interleave(keys, repeats=repeats, dim=2)
        values = T.repeat_interleave(values, repeats=repeats, dim=2)
        return keys, values

    class Attention(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.n_heads = args.n_heads
            self.n_kv_heads = args.n_kv_heads
            self.repeats = self.n_heads // self.n_kv_heads
            self.sliding_window = self.args.sliding_window
            self.scale = self.args.head_dim ** -0.5
            self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
            self.wk = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
            self.wv = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
            self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

        def reset_cache(self, device):
            # mistral-src allocates these float16 on .cuda() in __init__; here float32 on the model's device
            shape = (self.args.max_batch_size, self.args.sliding_window, self.n_kv_heads, self.args.head_dim)
            self.cache_k = T.empty(shape, device=device)
            self.cache_v = T.empty(shape, device=device)

        def forward(self, x, cos, sin, positions, mask):
            bsz, seqlen, _ = x.shape
            xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)
            xq = xq.view(bsz, seqlen, self.n_heads, self.args.head_dim)
            xk = xk.view(bsz, seqlen, self.n_kv_heads, self.args.head_dim)
            xv = xv.view(bsz, seqlen, self.n_kv_heads, self.args.head_dim)
            xq, xk = apply_rotary_emb(xq, xk, cos, sin)
            if hasattr(self, "cache_k"):
                # The cache is a rotating buffer
                scatter_pos = (positions[-self.sliding_window:] % self.sliding_window)[None, :, None, None]
                scatter_pos = scatter_pos.repeat(bsz, 1, self.n_kv_heads, self.args.head_dim)
                self.cache_k[:bsz].scatter_(dim=1, index=scatter_pos, src=xk[:, -self.sliding_window:])
                self.cache_v[:bsz].scatter_(dim=1, index=scatter_pos, src=xv[:, -self.sliding_window:])
            if positions.shape[0] > 1:
                # prefill
                key, value = repeat_kv(xk, xv, self.repeats)
            else:
                cur_pos = positions[-1].item() + 1
                key, value = repeat_kv(self.cache_k[:bsz, :cur_pos, ...], self.cache_v[:bsz, :cur_pos, ...],
                                       self.repeats)
            query = xq.transpose(1, 2)
            key = key.transpose(1, 2)
            value = value.transpose(1, 2)
            if self.args.mask_style == "hf":
                output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=self.scale)
            else:
                # scores : [bsz, n_heads, seqlen | 1, seqlen]
                scores = T.matmul(query, key.transpose(2, 3)) * self.scale
                if mask is not None:
                    scores += mask[None, None, ...]
                scores = scores.float()
                scores = nn.functional.softmax(scores, dim=-1).type_as(query)
                output = T.matmul(scores, value)  # (bs, n_local_heads, slen, head_dim)
            output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)
            return self.wo(output)

    class FeedForward(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.w1 = nn.Linear(args.dim, args.hidden_dim, bias=False)
            self.w2 = nn.Linear(args.hidden_dim, args.dim, bias=False)
            self.w3 = nn.Linear(args.dim, args.hidden_dim, bias=False)

        def forward(self, x):
            return self.w2(nn.functional.silu(self.w1(x)) * self.w3(x))

    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-6):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(T.ones(dim))

        def _norm(self, x):
            return x * T.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

        def forward(self, x):
            output = self._norm(x.float()).type_as(x)
            return output * self.weight

    class TransformerBlock(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.n_heads = args.n_heads
            self.dim = args.dim
            self.attention = Attention(args)
            self.feed_forward = FeedForward(args=args)
            self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
            self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)
            self.args = args

        def forward(self, x, cos, sin, positions, mask):
            r = self.attention.forward(self.attention_norm(x), cos, sin, positions, mask)
            h = x + r
            r = self.feed_forward.forward(self.ffn_norm(h))
            return h + r

    class Transformer(nn.Module):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.vocab_size = args.vocab_size
            self.n_layers = args.n_layers
            self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
            self.layers = nn.ModuleList([TransformerBlock(args=args) for _ in range(args.n_layers)])
            self.norm = RMSNorm(args.dim, eps=args.norm_eps)
            self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
            inv_freq = 1.0 / (args.rope_theta ** (T.arange(0, args.head_dim, 2).float() / args.head_dim))
            freqs = T.outer(T.arange(args.max_seq_len).float(), inv_freq)
            emb = T.cat((freqs, freqs), dim=-1)
            self.register_buffer("cos", emb.cos(), persistent=False)
            self.register_buffer("sin", emb.sin(), persistent=False)

        def forward(self, input_ids, positions):
            h = self.tok_embeddings(input_ids)
            cos, sin = self.cos[positions], self.sin[positions]
            mask = None
            if input_ids.shape[1] > 1:
                seqlen = input_ids.shape[1]
                if self.args.mask_style == "hf":
                    min_dtype = T.finfo(h.dtype).min
                    cache_position = positions
                    causal_mask = T.full((seqlen, seqlen), fill_value=min_dtype, dtype=h.dtype, device=h.device)
                    diagonal_attend_mask = T.arange(seqlen, device=h.device) > cache_position.reshape(-1, 1)
                    sliding_attend_mask = T.arange(seqlen, device=h.device) <= (
                        cache_position.reshape(-1, 1) - self.args.sliding_window)
                    diagonal_attend_mask.bitwise_or_(sliding_attend_mask)
                    causal_mask *= diagonal_attend_mask
                    mask = causal_mask[None, None, :, :].expand(input_ids.shape[0], 1, -1, -1)
                else:
                    tensor = T.full((seqlen, seqlen), dtype=h.dtype, fill_value=1, device=h.device)
                    mask = T.tril(tensor, diagonal=0).to(h.dtype)
                    # make the mask banded to account for sliding window
                    mask = T.triu(mask, diagonal=-self.args.sliding_window)
                    mask = T.log(mask)
            for layer in self.layers:
                h = layer(h, cos, sin, positions, mask)
            return self.output(self.norm(h)).float()

    return Transformer(args)


def train_mistral(T, device, init, ids, mask_style):
    device = device_of(T, device)
    args = MistralArgs(mask_style=mask_style)
    model = ported_model(T, lambda T: mistral(T, args), init, device)
    x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
    positions = T.arange(x.shape[1], device=device)
    out = train_steps(T, model, lambda it: F_cross_entropy(T, model(x, positions), y))

    # receptive field: each layer reaches W tokens back (mistral-src's band: W + 1 keys) or W - 1 (HF's: W keys)
    embeddings = []

    def keep_grad(module, inputs, output):
        output.retain_grad()
        embeddings.append(output)

    handle = model.tok_embeddings.register_forward_hook(keep_grad)
    model(x, positions)[:, -1].sum().backward()
    handle.remove()
    grad_norms = embeddings[0].grad.norm(dim=-1)[0]
    reach = args.n_layers * (args.sliding_window - (mask_style == "hf"))
    first = x.shape[1] - 1 - reach
    assert bool((grad_norms[:first] == 0).all()) and bool((grad_norms[first:] > 0).all())
    out += grad_norms.tolist()

    model.eval()
    with T.inference_mode():
        for layer in model.layers:
            layer.attention.reset_cache(device)
        prompt = x[:, :5]
        logits = model(prompt, T.arange(5, device=device))
        tokens, steps = prompt, []
        for pos in range(5, 10):
            next_token = logits[:, -1].argmax(-1, keepdim=True)
            tokens = T.cat([tokens, next_token], dim=1)
            logits = model(next_token, T.tensor([pos], device=device))
            steps.append(logits[:, -1])
        full = model(tokens, T.arange(tokens.shape[1], device=device))
        out += tokens.flatten().tolist() + T.stack(steps, 1).flatten().tolist() + full.flatten().tolist()
        if mask_style == "hf":  # a W-token band: the W-slot rolling cache reproduces the full forward
            out.append((T.stack(steps, 1) - full[:, 5:]).abs().max().item())
    return out, numpy_state(model)


@pytest.mark.parametrize("mask_style", ["mistral-src", "hf"])
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")  # README: NumPy warns
def test_mistral_sliding_window(device, mask_style):
    ids = np.random.default_rng(8).integers(0, 13, (2, 11))
    torch.manual_seed(0)
    got = run_both(train_mistral, device, numpy_state(mistral(torch)), ids, mask_style)
    if mask_style == "hf":
        assert got[0][-1] < 1e-5


# ---- 8. sparse mixture of experts (mistralai/mistral-src moe.py) with Switch Transformer losses ---------
# Top-k routing on the gate logits, softmax over the selected logits only, dispatch through torch.where:
# `results[batch_idx] += ...` (mistral-src) or results.index_add_ (scatter-add form); the load-balancing
# auxiliary loss and router z-loss are HF switch_transformers' load_balancing_loss_func (one_hot, max and
# mean with axis=) and router_z_loss_func (logsumexp).

def load_balancing_loss_func(T, router_probs, expert_indices):
    num_experts = router_probs.shape[-1]
    # cast the expert indices to int64, otherwise one-hot encoding will fail
    if expert_indices.dtype != T.int64:
        expert_indices = expert_indices.to(T.int64)
    if len(expert_indices.shape) == 2:
        expert_indices = expert_indices.unsqueeze(2)
    expert_mask = T.nn.functional.one_hot(expert_indices, num_experts)
    # For a given token, determine if it was routed to a given expert.
    expert_mask = T.max(expert_mask, axis=-2).values
    # cast to float32 otherwise mean will fail
    expert_mask = expert_mask.to(T.float32)
    tokens_per_group_and_expert = T.mean(expert_mask, axis=-2)
    router_prob_per_group_and_expert = T.mean(router_probs, axis=-2)
    return T.mean(tokens_per_group_and_expert * router_prob_per_group_and_expert) * (num_experts ** 2)


def router_z_loss_func(T, router_logits):
    num_groups, tokens_per_group, _ = router_logits.shape
    log_z = T.logsumexp(router_logits, dim=-1)
    z_loss = log_z ** 2
    return T.sum(z_loss) / (num_groups * tokens_per_group)


def mistral_moe(T, dim=8, hidden_dim=12, num_experts=4, num_experts_per_tok=2, vocab=13, dispatch="index_put"):
    nn, F = T.nn, T.nn.functional

    class FeedForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.w1 = nn.Linear(dim, hidden_dim, bias=False)
            self.w2 = nn.Linear(hidden_dim, dim, bias=False)
            self.w3 = nn.Linear(dim, hidden_dim, bias=False)

        def forward(self, x):
            return self.w2(nn.functional.silu(self.w1(x)) * self.w3(x))

    class MoeLayer(nn.Module):
        def __init__(self, experts, gate):
            super().__init__()
            assert len(experts) > 0
            self.experts = nn.ModuleList(experts)
            self.gate = gate
            self.num_experts_per_tok = num_experts_per_tok

        def forward(self, inputs):
            gate_logits = self.gate(inputs)
            weights, selected_experts = T.topk(gate_logits, self.num_experts_per_tok)
            weights = F.softmax(weights, dim=1, dtype=T.float).to(inputs.dtype)
            results = T.zeros_like(inputs)
            for i, expert in enumerate(self.experts):
                batch_idx, nth_expert = T.where(selected_experts == i)
                if dispatch == "index_put":
                    results[batch_idx] += weights[batch_idx, nth_expert, None] * expert(inputs[batch_idx])
                else:
                    results.index_add_(0, batch_idx, weights[batch_idx, nth_expert, None] * expert(inputs[batch_idx]))
            return results, gate_logits, selected_experts

    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(T.ones(dim))

        def forward(self, x):
            return x * T.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_embeddings = nn.Embedding(vocab, dim)
            self.ffn_norm = RMSNorm(dim)
            self.feed_forward = MoeLayer(experts=[FeedForward() for _ in range(num_experts)],
                                         gate=nn.Linear(dim, num_experts, bias=False))
            self.norm = RMSNorm(dim)
            self.output = nn.Linear(dim, vocab, bias=False)

        def forward(self, input_ids):
            bsz, seqlen = input_ids.shape
            h = self.tok_embeddings(input_ids).view(bsz * seqlen, -1)  # mistral-src runs flattened tokens
            r, gate_logits, selected = self.feed_forward(self.ffn_norm(h))
            h = h + r
            logits = self.output(self.norm(h)).view(bsz, seqlen, -1)
            return logits, gate_logits.view(bsz, seqlen, -1), selected.view(bsz, seqlen, -1)

    return Model()


def train_moe(T, device, init, ids, dispatch, z_loss_coef=1e-3, aux_loss_coef=1e-2):
    device = device_of(T, device)
    model = ported_model(T, lambda T: mistral_moe(T, dispatch=dispatch), init, device)
    x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
    parts = []

    def step_loss(it):
        logits, router_logits, selected = model(x)
        loss = F_cross_entropy(T, logits, y)
        z_loss = router_z_loss_func(T, router_logits)
        router_probs = T.nn.Softmax(dim=-1)(router_logits)
        aux_loss = load_balancing_loss_func(T, router_probs, selected)
        parts.extend([z_loss.item(), aux_loss.item()] + selected.flatten().tolist())
        return loss + z_loss_coef * z_loss + aux_loss_coef * aux_loss

    out = train_steps(T, model, step_loss, lr=3e-2) + parts
    model.eval()
    with T.no_grad():
        one_token, _, selected = model(x[:1, :1])  # two experts see one token, the others none
        assert selected.shape == (1, 1, 2)
        out += one_token.flatten().tolist() + model(x)[0].flatten().tolist()
    return out, numpy_state(model)


@pytest.mark.parametrize("dispatch", ["index_put", "index_add"])
def test_mistral_moe_switch_losses(device, dispatch):
    ids = np.random.default_rng(9).integers(0, 13, (3, 7))
    torch.manual_seed(0)
    run_both(train_moe, device, numpy_state(mistral_moe(torch)), ids, dispatch)


# ---- 9. Switch Transformer (HF switch_transformers): top-1 router, expert capacity, jitter noise -------
# SwitchTransformersTop1Router (argmax, one_hot, cumsum token priority, capacity mask, max(...).values)
# and SwitchTransformersSparseMLP (clone, nonzero(as_tuple=True), boolean-mask gather and assignment into
# an nn.ModuleDict's experts; overflowed tokens pass through), T5-style RMS LayerNorm, both losses.

def switch_transformer(T, d_model=8, d_ff=16, num_experts=4, expert_capacity=3, vocab=13, num_layers=2,
                       jitter_noise=0.1, layer_norm_epsilon=1e-6):
    nn = T.nn

    class SwitchTransformersTop1Router(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_experts = num_experts
            self.expert_capacity = expert_capacity
            self.classifier = nn.Linear(d_model, self.num_experts, bias=False)
            self.jitter_noise = jitter_noise
            self.ignore_padding_tokens = False
            self.dtype = T.float32

        def _compute_router_probabilities(self, hidden_states, jitter):
            self.input_dtype = hidden_states.dtype
            hidden_states = hidden_states.to(self.dtype)
            if self.training and self.jitter_noise > 0:
                # Multiply the token inputs by the uniform distribution - adding some noise. HF draws
                #   torch.empty_like(hidden_states).uniform_(1.0 - self.jitter_noise, 1.0 + self.jitter_noise)
                # here; the script passes that draw in (the two libraries' streams differ)
                hidden_states *= jitter
            router_logits = self.classifier(hidden_states)
            router_probabilities = nn.functional.softmax(router_logits, dim=-1, dtype=self.dtype).to(self.input_dtype)
            return router_probabilities, router_logits

        def forward(self, hidden_states, jitter=None):
            router_probs, router_logits = self._compute_router_probabilities(hidden_states, jitter)
            expert_index = T.argmax(router_probs, dim=-1)
            expert_index = T.nn.functional.one_hot(expert_index, num_classes=self.num_experts)
            # Mask tokens outside expert capacity. Sum over each sequence
            token_priority = T.cumsum(expert_index, dim=-2)
            # mask if the token routed to to the expert will overflow
            expert_capacity_mask = token_priority <= self.expert_capacity
            expert_index = expert_index * expert_capacity_mask
            router_probs = T.max(router_probs, dim=-1).values.unsqueeze(-1)
            return expert_index, router_probs, router_logits

    class SwitchTransformersDenseActDense(nn.Module):
        def __init__(self):
            super().__init__()
            self.wi = nn.Linear(d_model, d_ff, bias=False)
            self.wo = nn.Linear(d_ff, d_model, bias=False)
            self.dropout = nn.Dropout(0.0)
            self.act = nn.ReLU()

        def forward(self, hidden_states):
            hidden_states = self.wi(hidden_states)
            hidden_states = self.act(hidden_states)
            hidden_states = self.dropout(hidden_states)
            return self.wo(hidden_states)

    class SwitchTransformersSparseMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.router = SwitchTransformersTop1Router()
            self.experts = nn.ModuleDict()
            for idx in range(num_experts):
                self.experts[f"expert_{idx}"] = SwitchTransformersDenseActDense()

        def forward(self, hidden_states, jitter=None):
            router_mask, router_probs, router_logits = self.router(hidden_states, jitter)
            expert_index = T.argmax(router_mask, dim=-1)
            next_states = hidden_states.clone()
            router_mask = router_mask.bool()
            batch_size, seq_len, num_experts = router_mask.shape
            idx_mask = router_mask.reshape(batch_size * seq_len, num_experts).sum(dim=0)
            idx_mask = T.nonzero(idx_mask, as_tuple=True)[0].tolist()  # activated experts
            for idx in idx_mask:
                next_states[router_mask[:, :, idx]] = getattr(self.experts, f"expert_{idx}")(
                    hidden_states[router_mask[:, :, idx]])
            hidden_states = router_probs * next_states
            return hidden_states, (router_logits, expert_index, router_mask.any(-1))

    class SwitchTransformersLayerNorm(nn.Module):
        def __init__(self, hidden_size, eps=1e-6):
            super().__init__()
            self.weight = nn.Parameter(T.ones(hidden_size))
            self.variance_epsilon = eps

        def forward(self, hidden_states):
            variance = hidden_states.to(T.float32).pow(2).mean(-1, keepdim=True)
            hidden_states = hidden_states * T.rsqrt(variance + self.variance_epsilon)
            # HF: `if self.weight.dtype in [torch.float16, torch.bfloat16]` (README: raygrad has no bfloat16)
            if self.weight.dtype in [T.float16, getattr(T, "bfloat16", T.float16)]:
                hidden_states = hidden_states.to(self.weight.dtype)
            return self.weight * hidden_states

    class SwitchTransformersLayerFF(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = SwitchTransformersSparseMLP()
            self.layer_norm = SwitchTransformersLayerNorm(d_model, eps=layer_norm_epsilon)
            self.dropout = nn.Dropout(0.0)

        def forward(self, hidden_states, jitter=None, output_router_logits=True):
            forwarded_states = self.layer_norm(hidden_states)
            forwarded_states = self.mlp(forwarded_states, jitter)
            if isinstance(forwarded_states, tuple):
                forwarded_states, router_tuple = forwarded_states
            else:
                router_tuple = None
            output = hidden_states + self.dropout(forwarded_states)
            if output_router_logits and router_tuple is not None:
                output = (output, router_tuple)
            return output

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = nn.Embedding(vocab, d_model)
            self.block = nn.ModuleList([SwitchTransformersLayerFF() for _ in range(num_layers)])
            self.final_layer_norm = SwitchTransformersLayerNorm(d_model, eps=layer_norm_epsilon)
            self.lm_head = nn.Linear(d_model, vocab, bias=False)

        def forward(self, input_ids, jitter=None):
            hidden_states = self.shared(input_ids)
            all_router_logits, all_expert_indexes, routed = [], [], []
            for i, layer in enumerate(self.block):
                hidden_states, (router_logits, expert_index, mask) = layer(
                    hidden_states, None if jitter is None else jitter[i])
                all_router_logits.append(router_logits)
                all_expert_indexes.append(expert_index)
                routed.append(mask)
            logits = self.lm_head(self.final_layer_norm(hidden_states))
            return logits, T.cat(all_router_logits, dim=1), T.cat(all_expert_indexes, dim=1), T.stack(routed)

    return Model()


def train_switch(T, device, init, ids, jitter, router_z_loss_coef=1e-3, router_aux_loss_coef=1e-2):
    device = device_of(T, device)
    model = ported_model(T, switch_transformer, init, device)
    x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
    parts = []

    def step_loss(it):
        logits, router_logits, expert_indexes, routed = model(x, T.tensor(jitter[it], device=device))
        loss_fct = T.nn.CrossEntropyLoss(ignore_index=-100)
        loss = loss_fct(logits.view(-1, logits.size(-1)), y.view(-1))
        z_loss = router_z_loss_func(T, router_logits)
        router_probs = T.nn.Softmax(dim=-1)(router_logits)
        aux_loss = load_balancing_loss_func(T, router_probs, expert_indexes)
        dropped = (~routed).sum().item()  # tokens over an expert's capacity skip the layer
        parts.extend([z_loss.item(), aux_loss.item(), dropped] + expert_indexes.flatten().tolist())
        return loss + router_z_loss_coef * z_loss + router_aux_loss_coef * aux_loss

    out = train_steps(T, model, step_loss, lr=3e-2) + parts
    assert max(parts[2::len(parts) // 3]) > 0  # the capacity drops some tokens
    model.eval()
    with T.no_grad():
        out += model(x)[0].flatten().tolist()
    return out, numpy_state(model)


def test_switch_transformer(device):
    rng = np.random.default_rng(10)
    ids = rng.integers(0, 13, (2, 9))
    jitter = rng.uniform(0.9, 1.1, (3, 2, 2, 8, 8)).astype(np.float32)  # (step, layer, batch, seq, d_model)
    torch.manual_seed(0)
    run_both(train_switch, device, numpy_state(switch_transformer(torch)), ids, jitter)


# ---- 10. block-local causal attention (lucidrains/local-attention, local_attention.py) ------------------
# Queries bucketed in windows attend to their own and the previous window (look_around: F.pad with a pad
# value, on the keys and on int64 positions), with exact_windowsize's band mask, max_neg_value masking and
# the positions' pad mask; must equal dense attention under the same band (tril(ones).triu(-W)).

def local_attention_lm(T, vocab=13, dim=12, heads=2, window_size=3, depth=2):
    nn, F = T.nn, T.nn.functional

    def max_neg_value(tensor):
        return -T.finfo(tensor.dtype).max

    def look_around(x, backward=1, forward=0, pad_value=-1, dim=2):
        t = x.shape[1]
        dims = (len(x.shape) - dim) * (0, 0)
        padded_x = F.pad(x, (*dims, backward, forward), value=pad_value)
        tensors = [padded_x[:, ind:(ind + t), ...] for ind in range(forward + backward + 1)]
        return T.cat(tensors, dim=dim)

    class LocalAttention(nn.Module):
        def __init__(self, window_size, causal=True, look_backward=1, look_forward=0, exact_windowsize=True):
            super().__init__()
            self.window_size = window_size
            self.causal = causal
            self.look_backward = look_backward
            self.look_forward = look_forward
            self.exact_windowsize = exact_windowsize
            self.scale = None
            self.dropout = nn.Dropout(0.0)

        def forward(self, q, k, v):
            # einops pack([t], '* n d') of (b, h, n, d): merge the leading dims
            packed_shape = q.shape[:-2]
            q, k, v = (t.reshape(-1, *t.shape[-2:]) for t in (q, k, v))
            pad_value, window_size = -1, self.window_size
            causal, look_backward, look_forward = self.causal, self.look_backward, self.look_forward
            b, n, dim_head, device, dtype = *q.shape, q.device, q.dtype
            scale = self.scale if self.scale is not None else dim_head ** -0.5
            assert (n % window_size) == 0, f'sequence length {n} must be divisible by window size {window_size}'
            windows = n // window_size
            seq = T.arange(n, device=device)
            b_t = seq.reshape(1, windows, window_size)  # rearrange(seq, '(w n) -> 1 w n')
            # bucketing: rearrange(t, 'b (w n) d -> b w n d', w = windows)
            bq, bk, bv = (t.reshape(b, windows, window_size, -1) for t in (q, k, v))
            bq = bq * scale
            look_around_kwargs = dict(backward=look_backward, forward=look_forward, pad_value=pad_value)
            bk = look_around(bk, **look_around_kwargs)
            bv = look_around(bv, **look_around_kwargs)
            # calculate positions for masking
            bq_t = b_t
            bq_k = look_around(b_t, **look_around_kwargs)
            bq_t = bq_t[..., :, None]  # rearrange(bq_t, '... i -> ... i 1')
            bq_k = bq_k[..., None, :]  # rearrange(bq_k, '... j -> ... 1 j')
            pad_mask = bq_k == pad_value
            sim = T.einsum('b h i e, b h j e -> b h i j', bq, bk)
            mask_value = max_neg_value(sim)
            if causal:
                causal_mask = bq_t < bq_k
                if self.exact_windowsize:
                    max_causal_window_size = (self.window_size * self.look_backward)
                    causal_mask = causal_mask | (bq_t > (bq_k + max_causal_window_size))
                sim = sim.masked_fill(causal_mask, mask_value)
                del causal_mask
            sim = sim.masked_fill(pad_mask, mask_value)
            attn = sim.softmax(dim=-1)
            attn = self.dropout(attn)
            out = T.einsum('b h i j, b h j e -> b h i e', attn, bv)
            out = out.reshape(b, n, -1)  # rearrange(out, 'b w n d -> b (w n) d')
            return out.reshape(*packed_shape, n, -1)  # unpack(out, packed_shape, '* n d')

    class Attention(nn.Module):
        def __init__(self, dense=False):
            super().__init__()
            self.heads = heads
            self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
            self.attn_fn = LocalAttention(window_size)
            self.to_out = nn.Linear(dim, dim, bias=False)
            self.dense = dense

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
            q, k, v = (t.view(b, n, self.heads, -1).transpose(1, 2) for t in (q, k, v))
            if self.dense:  # the same band, as a dense mask
                band = T.ones(n, n, dtype=T.bool, device=x.device).tril().triu(-window_size)
                sim = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
                out = sim.masked_fill(~band, -T.finfo(sim.dtype).max).softmax(dim=-1) @ v
            else:
                out = self.attn_fn(q, k, v)
            return self.to_out(out.transpose(1, 2).reshape(b, n, -1))

    class LocalTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_emb = nn.Embedding(vocab, dim)
            self.pos_emb = nn.Embedding(12, dim)
            self.layers = nn.ModuleList([])
            for _ in range(depth):
                self.layers.append(nn.ModuleList([
                    nn.Sequential(nn.LayerNorm(dim), Attention()),
                    nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim)),
                ]))
            self.to_logits = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, vocab, bias=False))

        def forward(self, x):
            n, device = x.shape[1], x.device
            x = self.token_emb(x)
            x = x + self.pos_emb(T.arange(n, device=device))
            for attn, ff in self.layers:
                x = attn(x) + x
                x = ff(x) + x
            return self.to_logits(x)

    return LocalTransformer()


def train_local_attention(T, device, init, ids):
    device = device_of(T, device)
    model = ported_model(T, local_attention_lm, init, device)
    x, y = T.tensor(ids[:, :-1], device=device), T.tensor(ids[:, 1:], device=device)
    out = train_steps(T, model, lambda it: F_cross_entropy(T, model(x), y), lr=2e-2)
    model.eval()
    with T.no_grad():
        local = model(x)
        for attn, _ in model.layers:
            attn[1].dense = True
        dense = model(x)
        out += [(local - dense).abs().max().item()] + local.flatten().tolist()
    return out, numpy_state(model)


def test_local_attention(device):
    ids = np.random.default_rng(11).integers(0, 13, (2, 10))
    torch.manual_seed(0)
    got = run_both(train_local_attention, device, numpy_state(local_attention_lm(torch)), ids)
    assert got[0][6] < 1e-5  # windowed buckets reproduce the dense band
