"""Speech scripts as reference implementations write them (the torchaudio tutorials' M5 and CTC models,
ESPnet/NeMo Conformer blocks, wav2vec 2.0's feature encoder and contrastive loss), ported by imports.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data, and losses and final parameters agree to float32 accuracy. Random draws
(SpecAugment's mask starts and widths, mixup's lambda and permutation, wav2vec's masks and negatives) are
drawn once in NumPy and passed in. raygrad has no complex dtypes (no torch.stft), so the log-mel scripts
take precomputed features as NumPy data.
"""
import math

import numpy as np
import pytest

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


# ---- 1. Keyword spotting on raw waveforms: torchaudio's M5, padded batches, Adam + StepLR ----------

def m5(T, n_input=1, n_output=4, stride=4, n_channel=8):
    nn, F = T.nn, T.nn.functional

    # The tutorial's convs have biases; right before BatchNorm their true gradient is zero and Adam would
    # amplify the float noise, so they are off here (BatchNorm's shift does their job).
    class M5(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv1d(n_input, n_channel, kernel_size=20, stride=stride, bias=False)
            self.bn1 = nn.BatchNorm1d(n_channel)
            self.pool1 = nn.MaxPool1d(4)
            self.conv2 = nn.Conv1d(n_channel, n_channel, kernel_size=3, bias=False)
            self.bn2 = nn.BatchNorm1d(n_channel)
            self.pool2 = nn.MaxPool1d(4)
            self.conv3 = nn.Conv1d(n_channel, 2 * n_channel, kernel_size=3, bias=False)
            self.bn3 = nn.BatchNorm1d(2 * n_channel)
            self.pool3 = nn.MaxPool1d(4)
            self.fc1 = nn.Linear(2 * n_channel, n_output)

        def forward(self, x):
            x = self.pool1(F.relu(self.bn1(self.conv1(x))))
            x = self.pool2(F.relu(self.bn2(self.conv2(x))))
            x = self.pool3(F.relu(self.bn3(self.conv3(x))))
            x = F.avg_pool1d(x, x.shape[-1])
            x = x.permute(0, 2, 1)
            x = self.fc1(x)
            return F.log_softmax(x, dim=2)

    return M5()


def train_m5(T, device, init, waves, labels, words, steps=4):
    device = device_of(T, device)
    model = ported_model(T, m5, init, device)

    def pad_sequence(batch):
        batch = [item.t() for item in batch]
        batch = T.nn.utils.rnn.pad_sequence(batch, batch_first=True, padding_value=0.)
        return batch.permute(0, 2, 1)

    def collate_fn(batch):
        tensors, targets = [], []
        for waveform, label in batch:
            tensors += [waveform]
            targets += [T.tensor(words.index(label))]
        return pad_sequence(tensors), T.stack(targets)

    batch = [(T.from_numpy(w)[None], label) for w, label in zip(waves, labels)]
    data, target = collate_fn(batch)
    data, target = data.to(device), target.to(device)
    opt = T.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.0001)
    scheduler = T.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    losses = []
    model.train()
    for _ in range(steps):
        output = model(data)
        loss = T.nn.functional.nll_loss(output.squeeze(), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        pred = model(data).argmax(dim=-1)
        correct = pred.squeeze().eq(target).sum().item()
    return losses + [correct], numpy_state(model)


def test_m5_keyword_spotting_on_raw_waveforms(device):
    rng = np.random.default_rng(0)
    words = ["yes", "no", "up", "down"]
    waves = [rng.standard_normal(n).astype(np.float32) for n in (800, 760, 800, 700, 790, 800)]
    labels = [words[i] for i in rng.integers(0, 4, len(waves))]
    torch.manual_seed(0)
    run_both(train_m5, device, numpy_state(m5(torch)), waves, labels, words)


# ---- 2. Keyword spotting on log-mel features: 2-D CNN, SpecAugment masks, mixup with soft labels ----

def mel_cnn(T, n_classes=3):
    nn = T.nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))

    return nn.Sequential(block(1, 4), block(4, 8), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Dropout(0.0), nn.Linear(8, n_classes))


def spec_augment(T, spec, f0, fw, t0, tw):
    """Frequency and time masking (Park et al. 2019) on (B, 1, F, T) from given starts and widths."""
    _, _, n_freq, n_time = spec.shape
    freqs = T.arange(n_freq, device=spec.device)[None, :]
    times = T.arange(n_time, device=spec.device)[None, :]
    f_mask = (freqs >= f0[:, None]) & (freqs < (f0 + fw)[:, None])
    t_mask = (times >= t0[:, None]) & (times < (t0 + tw)[:, None])
    spec = spec.masked_fill(f_mask[:, None, :, None], 0.0)
    return spec.masked_fill(t_mask[:, None, None, :], spec.mean())


def train_mel_cnn(T, device, init, feats, labels, augment, steps=3):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, mel_cnn, init, device)
    opt = T.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    sched = T.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    x = T.from_numpy(feats).to(device)
    y = T.from_numpy(labels).to(device)
    # per-utterance mean/variance normalisation over (freq, time)
    x = (x - x.mean(dim=(-2, -1), keepdim=True)) / (x.std(dim=(-2, -1), keepdim=True) + 1e-5)
    losses = []
    for step in range(steps):
        f0, fw, t0, tw, lam, perm = (T.as_tensor(a).to(device) if isinstance(a, np.ndarray) else a
                                     for a in augment[step])
        xb = spec_augment(T, x, f0, fw, t0, tw)
        xb = lam * xb + (1 - lam) * xb[perm]
        yb = F.one_hot(y, num_classes=3).float()
        yb = lam * yb + (1 - lam) * yb[perm]
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_logmel_cnn_with_specaugment_and_mixup(device):
    rng = np.random.default_rng(1)
    B, n_mels, n_frames = 6, 16, 20
    feats = rng.standard_normal((B, 1, n_mels, n_frames)).astype(np.float32)
    labels = rng.integers(0, 3, B)
    augment = [(rng.integers(0, n_mels - 4, B), rng.integers(0, 5, B), rng.integers(0, n_frames - 5, B),
                rng.integers(0, 6, B), float(rng.beta(0.4, 0.4)), rng.permutation(B)) for _ in range(3)]
    torch.manual_seed(0)
    run_both(train_mel_cnn, device, numpy_state(mel_cnn(torch)), feats, labels, augment)


# ---- 3. CTC ASR: packed BiLSTM and conv+GRU acoustic models, greedy decoding, CER -------------------

VOCAB = "_ abcdefg"  # index 0 is the CTC blank


def bilstm_ctc(T, n_feats=6, hidden=5, n_class=len(VOCAB)):
    nn, F = T.nn, T.nn.functional

    class AcousticModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(n_feats, hidden, num_layers=2, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(2 * hidden, n_class)

        def forward(self, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
            return F.log_softmax(self.fc(out), dim=2)

    return AcousticModel()


def conv_gru_ctc(T, n_feats=6, hidden=6, n_class=len(VOCAB)):
    nn, F = T.nn, T.nn.functional

    class ConvGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(n_feats, hidden, kernel_size=3, stride=2, padding=1)
            self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(2 * hidden, n_class)

        def forward(self, x, lengths):
            x = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
            lengths = T.div(lengths + 2 * 1 - 3, 2, rounding_mode="floor") + 1
            out, _ = self.rnn(x)
            return F.log_softmax(self.fc(out), dim=-1), lengths

    return ConvGRU()


def greedy_decode(T, log_probs, lengths):
    """Best path: argmax per frame, collapse repeats, drop blanks."""
    hyps = []
    for lp, n in zip(log_probs.argmax(dim=-1), lengths.tolist()):
        ids = T.unique_consecutive(lp[:n])
        hyps.append("".join(VOCAB[i] for i in ids.tolist() if i != 0))
    return hyps


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


def cer(hyps, refs):
    return sum(edit_distance(h, r) for h, r in zip(hyps, refs)) / sum(len(r) for r in refs)


def wer(hyps, refs):
    return sum(edit_distance(h.split(), r.split()) for h, r in zip(hyps, refs)) / sum(
        len(r.split()) for r in refs)


def train_bilstm_ctc(T, device, init, feats, lengths, transcripts, steps=3):
    device = device_of(T, device)
    model = ported_model(T, bilstm_ctc, init, device)
    ctc = T.nn.CTCLoss(blank=0, zero_infinity=True, reduction="mean")
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    x = T.from_numpy(feats).to(device)
    input_lengths = T.tensor(lengths, dtype=T.long)
    targets = T.nn.utils.rnn.pad_sequence([T.tensor([VOCAB.index(c) for c in s]) for s in transcripts],
                                          batch_first=True).to(device)
    target_lengths = T.tensor([len(s) for s in transcripts])
    losses = []
    for _ in range(steps):
        log_probs = model(x, input_lengths)
        loss = ctc(log_probs.transpose(0, 1), targets, input_lengths, target_lengths)
        opt.zero_grad()
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        hyps = greedy_decode(T, model(x, input_lengths), input_lengths)
    return losses + [cer(hyps, transcripts), wer(hyps, transcripts)], numpy_state(model)


def train_conv_gru_ctc(T, device, init, feats, lengths, transcripts, steps=3):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, conv_gru_ctc, init, device)
    opt = T.optim.AdamW(model.parameters(), lr=5e-3)
    x = T.from_numpy(feats).to(device)
    lengths = T.tensor(lengths).to(device)
    targets = T.cat([T.tensor([VOCAB.index(c) for c in s]) for s in transcripts]).to(device)
    target_lengths = T.tensor([len(s) for s in transcripts], device=device)
    losses = []
    for _ in range(steps):
        log_probs, out_lengths = model(x, lengths)
        loss = F.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, target_lengths, blank=0,
                          reduction="mean", zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with T.no_grad():
        log_probs, out_lengths = model(x, lengths)
        hyps = greedy_decode(T, log_probs, out_lengths)
    return losses + [cer(hyps, transcripts)], numpy_state(model)


def ctc_data(seed, B=4, T_max=14, n_feats=6):
    rng = np.random.default_rng(seed)
    lengths = [14, 11, 9, 13][:B]
    feats = np.zeros((B, T_max, n_feats), np.float32)
    for b, n in enumerate(lengths):
        feats[b, :n] = rng.standard_normal((n, n_feats))
    # the third (9 frames, 5 after conv+GRU's subsampling) cannot align 6 labels: zero_infinity's case
    transcripts = ["ab c", "bad", "fedcba", "gag ba"]
    return feats, lengths, transcripts[:B]


def test_bilstm_ctc_packed_with_greedy_decoding(device):
    feats, lengths, transcripts = ctc_data(2)
    torch.manual_seed(0)
    run_both(train_bilstm_ctc, device, numpy_state(bilstm_ctc(torch)), feats, lengths, transcripts)


def test_conv_gru_ctc_with_subsampled_lengths(device):
    feats, lengths, transcripts = ctc_data(3)
    torch.manual_seed(0)
    run_both(train_conv_gru_ctc, device, numpy_state(conv_gru_ctc(torch)), feats, lengths, transcripts)


def test_edit_distance_helpers():
    assert edit_distance("kitten", "sitting") == 3
    assert cer(["abc"], ["abd"]) == pytest.approx(1 / 3) and wer(["a b"], ["a c d"]) == pytest.approx(2 / 3)


# ---- 4. Conformer (ESPnet/WeNet): Conv2d subsampling, rel-pos MHSA or nn.MultiheadAttention, conv module

class RelPositionalEncoding:
    """ESPnet's RelPositionalEncoding: x * sqrt(d) and sinusoids for relative positions T-1 .. -(T-1)."""

    def __new__(cls, T, d_model, max_len=64):
        nn = T.nn

        class RelPositionalEncoding(nn.Module):
            def __init__(self):
                super().__init__()
                self.d_model = d_model
                self.xscale = math.sqrt(self.d_model)
                self.dropout = nn.Dropout(p=0.0)
                self.pe = None
                self.extend_pe(T.tensor(0.0).expand(1, max_len))

            def extend_pe(self, x):
                if self.pe is not None:
                    if self.pe.size(1) >= x.size(1) * 2 - 1:
                        if self.pe.dtype != x.dtype or self.pe.device != x.device:
                            self.pe = self.pe.to(dtype=x.dtype, device=x.device)
                        return
                pe_positive = T.zeros(x.size(1), self.d_model)
                pe_negative = T.zeros(x.size(1), self.d_model)
                position = T.arange(0, x.size(1), dtype=T.float32).unsqueeze(1)
                div_term = T.exp(T.arange(0, self.d_model, 2, dtype=T.float32)
                                 * -(math.log(10000.0) / self.d_model))
                pe_positive[:, 0::2] = T.sin(position * div_term)
                pe_positive[:, 1::2] = T.cos(position * div_term)
                pe_negative[:, 0::2] = T.sin(-1 * position * div_term)
                pe_negative[:, 1::2] = T.cos(-1 * position * div_term)
                pe_positive = T.flip(pe_positive, [0]).unsqueeze(0)
                pe_negative = pe_negative[1:].unsqueeze(0)
                pe = T.cat([pe_positive, pe_negative], dim=1)
                self.pe = pe.to(device=x.device, dtype=x.dtype)

            def forward(self, x):
                self.extend_pe(x)
                x = x * self.xscale
                pos_emb = self.pe[:, self.pe.size(1) // 2 - x.size(1) + 1: self.pe.size(1) // 2 + x.size(1)]
                return self.dropout(x), self.dropout(pos_emb)

        return RelPositionalEncoding()


def conformer_ctc(T, idim=12, d=8, heads=2, kernel=3, n_class=len(VOCAB), rel_pos=True):
    nn = T.nn

    class Conv2dSubsampling(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(1, d, 3, 2), nn.ReLU(), nn.Conv2d(d, d, 3, 2), nn.ReLU())
            self.out = nn.Sequential(nn.Linear(d * (((idim - 1) // 2 - 1) // 2), d),
                                     RelPositionalEncoding(T, d))

        def forward(self, x, x_mask):
            x = x.unsqueeze(1)  # (b, c, t, f)
            x = self.conv(x)
            b, c, t, f = x.size()
            x = self.out(x.transpose(1, 2).contiguous().view(b, t, c * f))
            return x, x_mask[:, :, :-2:2][:, :, :-2:2]

    class RelPositionMultiHeadedAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.d_k, self.h = d // heads, heads
            self.linear_q = nn.Linear(d, d)
            self.linear_k = nn.Linear(d, d)
            self.linear_v = nn.Linear(d, d)
            self.linear_out = nn.Linear(d, d)
            self.dropout = nn.Dropout(p=0.0)
            self.linear_pos = nn.Linear(d, d, bias=False)
            self.pos_bias_u = nn.Parameter(T.Tensor(self.h, self.d_k))
            self.pos_bias_v = nn.Parameter(T.Tensor(self.h, self.d_k))
            T.nn.init.xavier_uniform_(self.pos_bias_u)
            T.nn.init.xavier_uniform_(self.pos_bias_v)

        def forward_qkv(self, query, key, value):
            n_batch = query.size(0)
            q = self.linear_q(query).view(n_batch, -1, self.h, self.d_k)
            k = self.linear_k(key).view(n_batch, -1, self.h, self.d_k)
            v = self.linear_v(value).view(n_batch, -1, self.h, self.d_k)
            return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

        def forward_attention(self, value, scores, mask):
            n_batch = value.size(0)
            mask = mask.unsqueeze(1).eq(0)  # (batch, 1, *, time2)
            min_value = T.finfo(scores.dtype).min
            scores = scores.masked_fill(mask, min_value)
            self.attn = T.softmax(scores, dim=-1).masked_fill(mask, 0.0)
            x = T.matmul(self.dropout(self.attn), value)
            x = x.transpose(1, 2).contiguous().view(n_batch, -1, self.h * self.d_k)
            return self.linear_out(x)

        def rel_shift(self, x):
            zero_pad = T.zeros((*x.size()[:3], 1), device=x.device, dtype=x.dtype)
            x_padded = T.cat([zero_pad, x], dim=-1)
            x_padded = x_padded.view(*x.size()[:2], x.size(3) + 1, x.size(2))
            return x_padded[:, :, 1:].view_as(x)[:, :, :, : x.size(-1) // 2 + 1]

        def forward(self, query, key, value, pos_emb, mask):
            q, k, v = self.forward_qkv(query, key, value)
            q = q.transpose(1, 2)  # (batch, time1, head, d_k)
            p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
            q_with_bias_u = (q + self.pos_bias_u).transpose(1, 2)
            q_with_bias_v = (q + self.pos_bias_v).transpose(1, 2)
            matrix_ac = T.matmul(q_with_bias_u, k.transpose(-2, -1))
            matrix_bd = self.rel_shift(T.matmul(q_with_bias_v, p.transpose(-2, -1)))
            scores = (matrix_ac + matrix_bd) / math.sqrt(self.d_k)
            return self.forward_attention(v, scores, mask)

    class ConvolutionModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.pointwise_conv1 = nn.Conv1d(d, 2 * d, kernel_size=1, stride=1, padding=0)
            self.depthwise_conv = nn.Conv1d(d, d, kernel, stride=1, padding=(kernel - 1) // 2, groups=d)
            self.norm = nn.BatchNorm1d(d)
            self.pointwise_conv2 = nn.Conv1d(d, d, kernel_size=1, stride=1, padding=0)
            self.activation = nn.SiLU()

        def forward(self, x, mask_pad):
            x = x.transpose(1, 2)  # (#batch, channels, time)
            x.masked_fill_(~mask_pad, 0.0)
            x = self.pointwise_conv1(x)
            x = nn.functional.glu(x, dim=1)
            x = self.depthwise_conv(x)
            x = self.activation(self.norm(x))
            x = self.pointwise_conv2(x)
            x.masked_fill_(~mask_pad, 0.0)
            return x.transpose(1, 2)

    class Swish(nn.Module):
        def forward(self, x):
            return x * T.sigmoid(x)

    def feed_forward():
        return nn.Sequential(nn.Linear(d, 2 * d), Swish(), nn.Dropout(0.0), nn.Linear(2 * d, d))

    class ConformerEncoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            if rel_pos:
                self.self_attn = RelPositionMultiHeadedAttention()
            else:
                self.self_attn = nn.MultiheadAttention(d, heads, dropout=0.0, batch_first=True)
            self.feed_forward_macaron, self.feed_forward = feed_forward(), feed_forward()
            self.conv_module = ConvolutionModule()
            self.norm_ff_macaron, self.norm_mha = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
            self.norm_conv, self.norm_ff = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
            self.norm_final = nn.LayerNorm(d, eps=1e-12)
            self.dropout = nn.Dropout(0.0)
            self.ff_scale = 0.5

        def forward(self, x, pos_emb, mask):
            residual = x
            x = self.norm_ff_macaron(x)
            x = residual + self.ff_scale * self.dropout(self.feed_forward_macaron(x))
            residual = x
            x = self.norm_mha(x)
            if rel_pos:
                x_att = self.self_attn(x, x, x, pos_emb, mask)
            else:
                lengths = mask.squeeze(1).sum(1)
                key_padding_mask = T.arange(x.size(1), device=x.device)[None, :] >= lengths[:, None]
                x_att, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False)
            x = residual + self.dropout(x_att)
            residual = x
            x = self.norm_conv(x)
            x = residual + self.dropout(self.conv_module(x, mask))
            residual = x
            x = self.norm_ff(x)
            x = residual + self.ff_scale * self.dropout(self.feed_forward(x))
            return self.norm_final(x), mask

    def make_pad_mask(lengths):
        bs, maxlen = int(lengths.size(0)), int(lengths.max())
        seq_range = T.arange(0, maxlen, dtype=T.int64)
        seq_range_expand = seq_range.unsqueeze(0).expand(bs, maxlen)
        seq_length_expand = seq_range_expand.new(lengths).unsqueeze(-1)
        return seq_range_expand >= seq_length_expand

    class ConformerCTC(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = Conv2dSubsampling()
            self.encoders = nn.ModuleList([ConformerEncoderLayer() for _ in range(2)])
            self.ctc_lo = nn.Linear(d, n_class)

        def forward(self, xs, ilens):
            masks = (~make_pad_mask(ilens)[:, None, :]).to(xs.device)
            (xs, pos_emb), masks = self.embed(xs, masks)
            for layer in self.encoders:
                xs, masks = layer(xs, pos_emb, masks)
            return self.ctc_lo(xs), masks.squeeze(1).sum(1)

    return ConformerCTC()


def train_conformer(T, device, init, feats, lengths, transcripts, rel_pos, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lambda T: conformer_ctc(T, rel_pos=rel_pos), init, device)
    ctc = T.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    # Attention's key bias has a zero true gradient (softmax ignores a per-query constant): plain SGD
    # keeps its float noise at noise level where Adam would amplify it.
    opt = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    warmup = 2
    sched = T.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min((step + 1) ** -0.5, (step + 1) * warmup ** -1.5) * warmup ** 0.5)
    xs = T.from_numpy(feats).to(device)
    ilens = T.tensor(lengths)
    ys = [T.tensor([VOCAB.index(c) for c in s]) for s in transcripts]
    ys_pad = T.nn.utils.rnn.pad_sequence(ys, batch_first=True, padding_value=-1).to(device)
    ys_lens = T.tensor([len(y) for y in ys])
    losses = []
    for _ in range(steps):
        logits, hlens = model(xs, ilens)
        ys_hat = logits.transpose(0, 1).log_softmax(2)
        loss = ctc(ys_hat, ys_pad, hlens, ys_lens) / ys_hat.size(1)
        opt.zero_grad()
        loss.backward()
        grad_norm = T.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        if not math.isfinite(grad_norm):
            continue
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        logits, hlens = model(xs, ilens)
        hyps = greedy_decode(T, logits.log_softmax(-1), hlens)
    return losses + [cer(hyps, transcripts)], numpy_state(model)


@pytest.mark.parametrize("rel_pos", [True, False])
def test_conformer_ctc(device, rel_pos):
    rng = np.random.default_rng(4)
    lengths = [27, 22, 17]
    feats = np.zeros((3, 27, 12), np.float32)
    for b, n in enumerate(lengths):
        feats[b, :n] = rng.standard_normal((n, 12))
    transcripts = ["ab", "c a", "d"]
    torch.manual_seed(0)
    init = numpy_state(conformer_ctc(torch, rel_pos=rel_pos))
    run_both(train_conformer, device, init, feats, lengths, transcripts, rel_pos)


# ---- 5. wav2vec 2.0 (fairseq): conv feature encoder, masking, weight-normed pos_conv, contrastive loss --

def wav2vec2(T, conv_layers=((8, 10, 5), (8, 3, 2), (8, 3, 2), (8, 2, 2)), embed=8, final_dim=6,
             conv_pos=4, conv_pos_groups=2, feature_grad_mult=0.1, logit_temp=0.1):
    nn, F = T.nn, T.nn.functional

    class GradMultiply(T.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale):
            ctx.scale = scale
            # fairseq writes `x.new(x)`; raygrad's Function.forward gets raw arrays (README), so `x * 1.0`
            return x * 1.0

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.scale, None

    class Fp32GroupNorm(nn.GroupNorm):
        def forward(self, input):
            output = F.group_norm(input.float(), self.num_groups,
                                  self.weight.float() if self.weight is not None else None,
                                  self.bias.float() if self.bias is not None else None, self.eps)
            return output.type_as(input)

    class ConvFeatureExtractionModel(nn.Module):
        def __init__(self):
            super().__init__()

            def block(n_in, n_out, k, stride, is_group_norm=False, conv_bias=False):
                def make_conv():
                    conv = nn.Conv1d(n_in, n_out, k, stride=stride, bias=conv_bias)
                    nn.init.kaiming_normal_(conv.weight)
                    return conv

                if is_group_norm:
                    return nn.Sequential(make_conv(), nn.Dropout(p=0.0), Fp32GroupNorm(n_out, n_out, affine=True),
                                         nn.GELU())
                return nn.Sequential(make_conv(), nn.Dropout(p=0.0), nn.GELU())

            in_d = 1
            self.conv_layers = nn.ModuleList()
            for i, (dim, k, stride) in enumerate(conv_layers):
                self.conv_layers.append(block(in_d, dim, k, stride, is_group_norm=i == 0))
                in_d = dim

        def forward(self, x):
            x = x.unsqueeze(1)  # BxT -> BxCxT
            for conv in self.conv_layers:
                x = conv(x)
            return x

    class SamePad(nn.Module):
        def __init__(self, kernel_size):
            super().__init__()
            self.remove = 1 if kernel_size % 2 == 0 else 0

        def forward(self, x):
            if self.remove > 0:
                x = x[:, :, : -self.remove]
            return x

    class TransformerEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos_conv = nn.Conv1d(embed, embed, kernel_size=conv_pos, padding=conv_pos // 2,
                                      groups=conv_pos_groups)
            std = math.sqrt(4 / (conv_pos * embed))
            nn.init.normal_(self.pos_conv.weight, mean=0, std=std)
            nn.init.constant_(self.pos_conv.bias, 0)
            self.pos_conv = nn.utils.weight_norm(self.pos_conv, name="weight", dim=2)
            self.pos_conv = nn.Sequential(self.pos_conv, SamePad(conv_pos), nn.GELU())
            self.layer_norm = nn.LayerNorm(embed)
            self.fc1, self.fc2 = nn.Linear(embed, 2 * embed), nn.Linear(2 * embed, embed)
            self.final_layer_norm = nn.LayerNorm(embed)

        def forward(self, x):
            x_conv = self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
            x = x + x_conv
            x = self.layer_norm(x)
            residual = x
            x = self.fc2(F.gelu(self.fc1(x)))
            return self.final_layer_norm(residual + x)

    class Wav2Vec2Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_extractor = ConvFeatureExtractionModel()
            self.embed = conv_layers[-1][0]
            self.post_extract_proj = nn.Linear(self.embed, embed)
            self.mask_emb = nn.Parameter(T.Tensor(embed).uniform_())
            self.encoder = TransformerEncoder()
            self.layer_norm = nn.LayerNorm(self.embed)
            self.project_q = nn.Linear(self.embed, final_dim)
            self.final_proj = nn.Linear(embed, final_dim)

        def sample_negatives(self, y, neg_idxs):
            bsz, tsz, fsz = y.shape
            n_negatives = neg_idxs.size(1) // tsz
            y = y.view(-1, fsz)  # BTC => (BxT)C
            neg_idxs = neg_idxs + (T.arange(bsz, device=y.device).unsqueeze(1) * tsz)
            negs = y[neg_idxs.view(-1)]
            return negs.view(bsz, tsz, n_negatives, fsz).permute(2, 0, 1, 3)  # to NxBxTxC

        def compute_preds(self, x, y, negatives):
            neg_is_pos = (y == negatives).all(-1)
            y = y.unsqueeze(0)
            targets = T.cat([y, negatives], dim=0)
            logits = T.cosine_similarity(x.float(), targets.float(), dim=-1)
            logits = logits / logit_temp
            logits = logits.type_as(x)
            if neg_is_pos.any():
                logits[1:][neg_is_pos] = float("-inf")
            return logits

        def forward(self, source, mask_indices, neg_idxs):
            features = self.feature_extractor(source)
            if feature_grad_mult != 1.0:
                features = GradMultiply.apply(features, feature_grad_mult)
            features_pen = features.float().pow(2).mean()
            features = features.transpose(1, 2)
            features = self.layer_norm(features)
            unmasked_features = features.clone()
            features = self.post_extract_proj(features)
            x = features
            x[mask_indices] = self.mask_emb
            x = self.encoder(x)
            y = unmasked_features[mask_indices].view(unmasked_features.size(0), -1, unmasked_features.size(-1))
            x = x[mask_indices].view(x.size(0), -1, x.size(-1))
            y = self.project_q(y)
            negs = self.sample_negatives(y, neg_idxs)
            x = self.final_proj(x)
            return {"x": self.compute_preds(x, y, negs), "features_pen": features_pen}

    return Wav2Vec2Model()


def train_wav2vec2(T, device, init, source, masks, negs, steps=3):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, wav2vec2, init, device)
    opt = T.optim.Adam(model.parameters(), lr=5e-3, betas=(0.9, 0.98), eps=1e-6)
    source = T.from_numpy(source).to(device)
    losses = []
    for step in range(steps):
        net_output = model(source, T.from_numpy(masks[step]).to(device), T.from_numpy(negs[step]).to(device))
        logits = net_output["x"].transpose(0, 2)
        logits = logits.reshape(-1, logits.size(-1))
        target = logits.new_zeros(logits.size(0), dtype=T.long)
        loss = F.cross_entropy(logits, target, reduction="sum")
        sample_size = target.numel()
        loss = loss + 10 * net_output["features_pen"] * sample_size
        opt.zero_grad()
        (loss / sample_size).backward()
        opt.step()
        with T.no_grad():
            accuracy = (logits.argmax(-1) == 0).float().mean().item()
        losses += [loss.item() / sample_size, accuracy]
    return losses, numpy_state(model)


def test_wav2vec2_contrastive_pretraining(device):
    rng = np.random.default_rng(5)
    B, n_frames, n_masked, n_neg = 2, 9, 3, 4
    source = rng.standard_normal((B, 400)).astype(np.float32)
    masks, negs = [], []
    for _ in range(3):
        m = np.zeros((B, n_frames), bool)
        for b in range(B):
            m[b, rng.choice(n_frames, n_masked, replace=False)] = True
        masks.append(m)
        # negatives index the masked frames of the same utterance; some hit the positive itself
        negs.append(rng.integers(0, n_masked, (B, n_masked * n_neg)))
    torch.manual_seed(0)
    losses, _ = run_both(train_wav2vec2, device, numpy_state(wav2vec2(torch)), source, masks, negs)
    assert np.isfinite(losses).all()  # the -inf logits of negatives equal to their positive stay out
