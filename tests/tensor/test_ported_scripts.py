"""raygrad's promise that a PyTorch script ports by changing its imports, tested end to end.

Each training script below is written once, as a function of the library module `T` (torch or tensor),
and runs unchanged on both. The model is built in torch, its state_dict copied into raygrad through
NumPy, both see the same NumPy data, and the losses and final parameters must agree to float32
accuracy. The two libraries draw different random streams, so where a script samples (noise, actions)
it takes the sample as an argument, and randomness itself is checked by statistics only.
"""
import numpy as np
import pytest

import tensor

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-4, 1e-5


# ---- helpers: the only places that know which library is which -------------------------------------

def numpy_state(module):
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def device_of(T, device):
    """The script's device: torch, the oracle, always runs on the CPU; raygrad on the test's device."""
    return "cpu" if T is torch else device


def ported_model(T, build, init, device):
    """build(T) given torch's initial state `init` (NumPy arrays), on the script's device."""
    model = build(T)
    model.load_state_dict({k: T.tensor(v) for k, v in init.items()})
    return model.to(device)


def run_both(script, device, *args, state_view=lambda state: state, **kwargs):
    """The same script on torch and raygrad; its (losses, final state_view(state)) must agree."""
    want = script(torch, "cpu", *args, **kwargs)
    got = script(tensor, device, *args, **kwargs)
    np.testing.assert_allclose(got[0], want[0], rtol=RTOL, atol=ATOL, err_msg="losses")
    assert got[1].keys() == want[1].keys()
    want_state, got_state = state_view(want[1]), state_view(got[1])
    for k in want_state:
        np.testing.assert_allclose(got_state[k], want_state[k], rtol=RTOL, atol=ATOL, err_msg=k)
    return got


# ---- 1. CNN classifier: Dataset + DataLoader, SGD(nesterov), OneCycleLR, clip_grad_norm_ ------------

def cnn(T, p_drop=0.0):
    nn = T.nn
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(p_drop), nn.Linear(6 * 2 * 2, 3),
    )


def images_dataset(T, images, labels):
    class Images(T.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return T.from_numpy(images[i]), int(labels[i])

    return Images()


def train_cnn(T, device, init, images, labels, num_workers, epochs=3):
    device = device_of(T, device)
    model = ported_model(T, cnn, init, device)
    data = images_dataset(T, images, labels)
    # One batch per epoch: the two libraries shuffle differently, and a full batch's mean loss does not
    # depend on the order, so the shuffled loader still gives both the same steps.
    loader = T.utils.data.DataLoader(data, batch_size=len(data), shuffle=True, num_workers=num_workers,
                                     generator=T.Generator().manual_seed(0))
    opt = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    sched = T.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=epochs * len(loader))
    loss_fn = T.nn.CrossEntropyLoss(label_smoothing=0.1)
    losses = []
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        print(f"epoch {epoch}: loss {loss:.4f} lr {sched.get_last_lr()[0]:.4f}")
    model.eval()
    correct = 0
    with T.no_grad():
        for x, y in T.utils.data.DataLoader(data, batch_size=5):
            correct += (model(x.to(device)).argmax(dim=1) == y.to(device)).sum().item()
    print(f"accuracy {correct / len(data):.2%}")
    return losses + [correct / len(data)], numpy_state(model)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_cnn_classifier(device, num_workers):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((12, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 12)
    torch.manual_seed(0)
    run_both(train_cnn, device, numpy_state(cnn(torch)), images, labels, num_workers)


def test_seeded_shuffle_is_reproducible_and_dropout_is_off_in_eval(device):
    data = images_dataset(tensor, np.zeros((10, 1, 2, 2), np.float32), np.arange(10))

    def epoch(seed):
        loader = tensor.utils.data.DataLoader(data, batch_size=4, shuffle=True,
                                              generator=tensor.Generator().manual_seed(seed))
        return [int(v) for _, y in loader for v in y]

    assert epoch(3) == epoch(3) and sorted(epoch(3)) == list(range(10)) and epoch(3) != list(range(10))
    model, x = cnn(tensor, p_drop=0.5).to(device), tensor.randn(4, 1, 8, 8, device=device)
    model.eval()
    np.testing.assert_array_equal(model(x).detach().cpu().numpy(), model(x).detach().cpu().numpy())


# ---- 2. LSTM language model: tied weights, packed sequences, AdamW, gradient accumulation -----------

def lstm_lm(T, vocab=11, dim=6):
    nn = T.nn

    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(vocab, dim, padding_idx=0)
            self.rnn = nn.LSTM(dim, dim, num_layers=2, batch_first=True, dropout=0.0)
            self.drop = nn.Dropout(0.0)
            self.decoder = nn.Linear(dim, vocab)
            self.decoder.weight = self.encoder.weight

        def forward(self, tokens, lengths):
            emb = self.drop(self.encoder(tokens))
            packed = nn.utils.rnn.pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
            return self.decoder(self.drop(out))

    return LanguageModel()


def train_lstm_lm(T, device, init, batches, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lstm_lm, init, device)
    assert model.decoder.weight is model.encoder.weight
    opt = T.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    losses = []
    for step in range(steps):
        opt.zero_grad()
        for tokens, lengths in batches[2 * step: 2 * step + 2]:  # two micro-batches per step
            tokens = T.tensor(tokens).to(device)
            logits = model(tokens[:, :-1], T.tensor(lengths - 1))
            loss = T.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                                 ignore_index=0)
            (loss / 2).backward()
            losses.append(loss.item())
        opt.step()
    return losses, numpy_state(model)


def test_lstm_language_model(device):
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(6):
        lengths = rng.integers(3, 8, 4)
        tokens = rng.integers(1, 11, (4, 7)) * (np.arange(7) < lengths[:, None])
        batches.append((tokens, lengths))
    torch.manual_seed(0)
    run_both(train_lstm_lm, device, numpy_state(lstm_lm(torch)), batches)


# ---- 3. VAE: reparameterisation, BCE-with-logits + KL, Adam ----------------------------------------

def vae(T):
    nn = T.nn

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.mu, self.logvar = nn.Linear(16, 8), nn.Linear(8, 2), nn.Linear(8, 2)
            self.dec = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 16))

        def forward(self, x, eps=None):
            h = T.relu(self.enc(x))
            mu, logvar = self.mu(h), self.logvar(h)
            std = T.exp(0.5 * logvar)
            eps = T.randn_like(std) if eps is None else eps
            return self.dec(mu + eps * std), mu, logvar

    return VAE()


def train_vae(T, device, init, xs, noise):
    device = device_of(T, device)
    model = ported_model(T, vae, init, device)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for x, eps in zip(xs, noise):
        x, eps = T.tensor(x).to(device), T.tensor(eps).to(device)
        recon, mu, logvar = model(x, eps)
        bce = T.nn.functional.binary_cross_entropy_with_logits(recon, x, reduction="sum")
        kl = -0.5 * T.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (bce + kl) / x.shape[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_vae(device):
    rng = np.random.default_rng(2)
    xs = (rng.random((4, 5, 16)) > 0.5).astype(np.float32)
    noise = rng.standard_normal((4, 5, 2)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_vae, device, numpy_state(vae(torch)), xs, noise)
    # without given noise the script draws its own: a sample per latent, varying between calls
    model = vae(tensor).to(device)
    x = tensor.tensor(xs[0], device=device)
    assert model(x)[0].shape == (5, 16) and not np.array_equal(model(x)[0].detach().cpu().numpy(),
                                                          model(x)[0].detach().cpu().numpy())


# ---- 4. GAN step: spectral_norm discriminator, two optimizers, detach, BCEWithLogitsLoss -------------

def gan(T):
    nn, sn = T.nn, T.nn.utils.spectral_norm
    generator = nn.Sequential(nn.Linear(4, 16), nn.LeakyReLU(0.2), nn.Linear(16, 8), nn.Tanh())
    discriminator = nn.Sequential(sn(nn.Linear(8, 16)), nn.LeakyReLU(0.2), sn(nn.Linear(16, 1)))
    return nn.ModuleDict({"G": generator, "D": discriminator})


def train_gan(T, device, init, reals, zs):
    device = device_of(T, device)
    model = ported_model(T, gan, init, device)
    G, D = model["G"], model["D"]
    opt_g = T.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = T.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    criterion = T.nn.BCEWithLogitsLoss()
    losses = []
    for real, z in zip(reals, zs):
        real, z = T.tensor(real).to(device), T.tensor(z).to(device)
        ones, zeros = T.ones(len(real), 1, device=device), T.zeros(len(real), 1, device=device)
        fake = G(z)
        d_loss = criterion(D(real), ones) + criterion(D(fake.detach()), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = criterion(D(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        losses += [d_loss.item(), g_loss.item()]
    return losses, numpy_state(model)


def test_gan_step(device):
    rng = np.random.default_rng(3)
    reals = rng.uniform(-1, 1, (3, 6, 8)).astype(np.float32)
    zs = rng.standard_normal((3, 6, 4)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_gan, device, numpy_state(gan(torch)), reals, zs)


# ---- 5. REINFORCE: Categorical policy, discounted returns, normalised advantages ---------------------

def policy(T):
    return T.nn.Sequential(T.nn.Linear(4, 16), T.nn.Tanh(), T.nn.Linear(16, 3))


def train_reinforce(T, device, init, episodes, gamma=0.9):
    """Each episode gives states and the actions to replay: the libraries sample differently."""
    device = device_of(T, device)
    model = ported_model(T, policy, init, device)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for states, actions in episodes:
        dist = T.distributions.Categorical(logits=model(T.tensor(states).to(device)))
        assert dist.sample().shape == (len(states),)
        actions = T.tensor(actions).to(device)
        logp = dist.log_prob(actions)
        rewards = [1.0 if a == 2 else -0.5 for a in actions.tolist()]
        returns, running = [], 0.0
        for r in reversed(rewards):
            running = r + gamma * running
            returns.insert(0, running)
        returns = T.tensor(returns, device=device)
        adv = (returns - returns.mean()) / (returns.std() + 1e-8)
        loss = -(logp * adv).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_reinforce(device):
    rng = np.random.default_rng(4)
    episodes = [(rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8)) for _ in range(3)]
    torch.manual_seed(0)
    run_both(train_reinforce, device, numpy_state(policy(torch)), episodes)


def test_categorical_sampling_follows_the_logits(device):
    tensor.manual_seed(0)
    logits = tensor.tensor([[0.0, 1.0, -1.0]], device=device).expand(4000, 3)
    counts = np.bincount(tensor.distributions.Categorical(logits=logits).sample().cpu().numpy(), minlength=3)
    probs = np.exp([0.0, 1.0, -1.0]) / np.exp([0.0, 1.0, -1.0]).sum()
    np.testing.assert_allclose(counts / 4000, probs, atol=0.03)


# ---- 6. Transformer encoder classifier: padding mask, masked mean pooling, AdamW + LambdaLR ----------

def transformer_classifier(T, vocab=10, d=8, length=6):
    nn = T.nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, d, padding_idx=0)
            self.pos = nn.Parameter(T.randn(1, length, d) * 0.02)
            layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.head = nn.Linear(d, 3)

        def forward(self, tokens):
            pad = tokens == 0
            h = self.encoder(self.embed(tokens) + self.pos[:, :tokens.shape[1]], src_key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).float()
            return self.head((h * keep).sum(dim=1) / keep.sum(dim=1))

    T.manual_seed(0)
    return Classifier()


def without_key_bias(state, d=8):
    """The attention key bias shifts every score of a query alike, so softmax cancels it: its gradient is
    rounding noise, which Adam scales up to full steps in either library. Compare the rest."""
    return {k: np.concatenate([v[:d], v[2 * d:]]) if k.endswith("in_proj_bias") else v for k, v in state.items()}


def train_transformer(T, device, init, tokens, labels, warmup=3):
    device = device_of(T, device)
    model = ported_model(T, transformer_classifier, init, device)
    opt = T.optim.AdamW(model.parameters(), lr=5e-3)
    sched = T.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    losses = []
    for x, y in zip(tokens, labels):
        x, y = T.tensor(x).to(device), T.tensor(y).to(device)
        loss = T.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        losses.append(T.nn.functional.cross_entropy(model(x), y).item())
    return losses, numpy_state(model)


def test_transformer_classifier(device):
    rng = np.random.default_rng(5)
    lengths = rng.integers(2, 7, (4, 5))
    tokens = rng.integers(1, 10, (4, 5, 6)) * (np.arange(6) < lengths[..., None])
    labels = rng.integers(0, 3, (4, 5))
    run_both(train_transformer, device, numpy_state(transformer_classifier(torch)), tokens, labels,
             state_view=without_key_bias)
    # manual_seed makes raygrad's own initialisation reproducible too
    first, second = numpy_state(transformer_classifier(tensor)), numpy_state(transformer_classifier(tensor))
    assert all(np.array_equal(first[k], second[k]) for k in first)


# ---- 7. Checkpointing: save / load model + optimizer + scheduler, then carry on identically ----------

def mlp(T):
    return T.nn.Sequential(T.nn.Linear(5, 8), T.nn.ReLU(), T.nn.Linear(8, 2))


def train_with_checkpoint(T, device, init, xs, ys, path=None, resume_at=None):
    """Train on all batches; with `path`, stop after `resume_at` steps, save, and resume in fresh objects."""
    device = device_of(T, device)

    def fresh():
        model = ported_model(T, mlp, init, device)
        opt = T.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, opt, T.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    model, opt, sched = fresh()
    losses = []
    for step, (x, y) in enumerate(zip(xs, ys)):
        if step == resume_at:
            T.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, path)
            model, opt, sched = fresh()
            checkpoint = T.load(path)
            model.load_state_dict(checkpoint["model"])
            opt.load_state_dict(checkpoint["opt"])
            sched.load_state_dict(checkpoint["sched"])
        loss = T.nn.functional.mse_loss(model(T.tensor(x).to(device)), T.tensor(y).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_checkpoint_resume(device, tmp_path):
    rng = np.random.default_rng(6)
    xs, ys = rng.standard_normal((5, 4, 5)).astype(np.float32), rng.standard_normal((5, 4, 2)).astype(np.float32)
    torch.manual_seed(0)
    init = numpy_state(mlp(torch))
    straight = run_both(train_with_checkpoint, device, init, xs, ys)
    resumed = run_both(train_with_checkpoint, device, init, xs, ys, path=str(tmp_path / "ckpt.pt"), resume_at=3)
    np.testing.assert_array_equal(resumed[0], straight[0])
    for k in straight[1]:
        np.testing.assert_array_equal(resumed[1][k], straight[1][k])
