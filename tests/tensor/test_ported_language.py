"""Language-model scripts as found in tutorials (nanoGPT, the seq2seq and char-RNN tutorials), ported by imports.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data, and losses and final parameters agree to float32 accuracy. Where a script samples
(torch.multinomial) the streams differ, so the sample is checked for shape and validity only.
"""
import copy
import io
import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pytest

import tensor
from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


# ---- 1. nanoGPT: causal self-attention by hand or through SDPA, tied weights, AdamW groups -----------

@dataclass
class GPTConfig:
    block_size: int = 8
    vocab_size: int = 13
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 8
    dropout: float = 0.0
    bias: bool = True
    flash: bool = False


def gpt(T, config=GPTConfig()):
    nn, F = T.nn, T.nn.functional

    class LayerNorm(nn.Module):
        """LayerNorm with an optional bias (nanoGPT's own: PyTorch's has no bias=False before 2.1)."""

        def __init__(self, ndim, bias):
            super().__init__()
            self.weight = nn.Parameter(T.ones(ndim))
            self.bias = nn.Parameter(T.zeros(ndim)) if bias else None

        def forward(self, input):
            return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)

    class CausalSelfAttention(nn.Module):
        def __init__(self, config):
            super().__init__()
            assert config.n_embd % config.n_head == 0
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            self.attn_dropout = nn.Dropout(config.dropout)
            self.resid_dropout = nn.Dropout(config.dropout)
            self.n_head = config.n_head
            self.n_embd = config.n_embd
            self.dropout = config.dropout
            self.flash = config.flash and hasattr(T.nn.functional, 'scaled_dot_product_attention')
            if not self.flash:
                self.register_buffer("bias", T.tril(T.ones(config.block_size, config.block_size))
                                     .view(1, 1, config.block_size, config.block_size))

        def forward(self, x):
            B, T_, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, T_, self.n_head, C // self.n_head).transpose(1, 2)
            q = q.view(B, T_, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T_, self.n_head, C // self.n_head).transpose(1, 2)
            if self.flash:
                y = T.nn.functional.scaled_dot_product_attention(
                    q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :T_, :T_] == 0, float('-inf'))
                att = F.softmax(att, dim=-1)
                att = self.attn_dropout(att)
                y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T_, C)
            return self.resid_dropout(self.c_proj(y))

    class MLP(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
            self.gelu = nn.GELU()
            self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
            self.dropout = nn.Dropout(config.dropout)

        def forward(self, x):
            return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))

    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
            self.attn = CausalSelfAttention(config)
            self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
            self.mlp = MLP(config)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x = x + self.mlp(self.ln_2(x))
            return x

    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            ))
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith('c_proj.weight'):
                    T.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

        def get_num_params(self, non_embedding=True):
            n_params = sum(p.numel() for p in self.parameters())
            if non_embedding:
                n_params -= self.transformer.wpe.weight.numel()
            return n_params

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                T.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    T.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                T.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx, targets=None):
            device = idx.device
            b, t = idx.size()
            assert t <= self.config.block_size, f"Cannot forward sequence of length {t}"
            pos = T.arange(0, t, dtype=T.long, device=device)
            tok_emb = self.transformer.wte(idx)
            pos_emb = self.transformer.wpe(pos)
            x = self.transformer.drop(tok_emb + pos_emb)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            if targets is not None:
                logits = self.lm_head(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            else:
                logits = self.lm_head(x[:, [-1], :])  # note: using list [-1] to preserve the time dim
                loss = None
            return logits, loss

        def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
            param_dict = {pn: p for pn, p in self.named_parameters()}
            param_dict = {pn: p for pn, p in param_dict.items() if p.requires_grad}
            decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
            nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
            optim_groups = [
                {'params': decay_params, 'weight_decay': weight_decay},
                {'params': nodecay_params, 'weight_decay': 0.0},
            ]
            num_decay_params = sum(p.numel() for p in decay_params)
            num_nodecay_params = sum(p.numel() for p in nodecay_params)
            print(f"num decayed parameter tensors: {len(decay_params)}, with {num_decay_params:,} parameters")
            print(f"num non-decayed parameter tensors: {len(nodecay_params)}, with {num_nodecay_params:,} parameters")
            import inspect
            fused_available = 'fused' in inspect.signature(T.optim.AdamW).parameters
            use_fused = fused_available and device_type == 'cuda'
            extra_args = dict(fused=True) if use_fused else dict()
            return T.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)

        @T.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, greedy=False):
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size:]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :] / temperature
                if top_k is not None:
                    v, _ = T.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float('Inf')
                probs = F.softmax(logits, dim=-1)
                if greedy:
                    idx_next = T.argmax(probs, dim=-1, keepdim=True)
                else:
                    idx_next = T.multinomial(probs, num_samples=1)
                idx = T.cat((idx, idx_next), dim=1)
            return idx

    T.manual_seed(0)
    return GPT(config)


def train_gpt(T, device, init, data, config, steps=3, batch_size=3, accum=2):
    device = device_of(T, device)
    model = ported_model(T, lambda T: gpt(T, config), init, device)
    assert model.lm_head.weight is model.transformer.wte.weight
    device_type = 'cuda' if 'cuda' in str(device) else 'cpu'
    optimizer = model.configure_optimizers(0.1, 3e-3, (0.9, 0.95), device_type)
    data = np.asarray(data, dtype=np.int64)
    block = config.block_size
    losses, step = [], 0

    def get_batch(i):
        ix = [(i * 5 + j * 3) % (len(data) - block) for j in range(batch_size)]
        x = T.stack([T.from_numpy(data[s:s + block]) for s in ix])
        y = T.stack([T.from_numpy(data[s + 1:s + 1 + block]) for s in ix])
        y[0, :2] = -1  # ignore_index: e.g. a prompt the loss should not score
        return x.to(device), y.to(device)

    # nanoGPT's train.py: autocast off on the CPU, a GradScaler that is a no-op unless float16
    ptdtype = {'float32': T.float32, 'float16': T.float16}['float32']
    ctx = nullcontext() if device_type == 'cpu' else T.amp.autocast(device_type=device_type, dtype=ptdtype)
    scaler = T.amp.GradScaler(device_type, enabled=(ptdtype == T.float16))
    compile = False  # torch.compile takes a minute on the CPU; raygrad's returns the model unchanged
    raw_model = T.compile(model) if compile else model

    @T.no_grad()
    def estimate_loss(eval_iters=2):
        out = {}
        model.eval()
        for split in ['train', 'val']:
            losses = T.zeros(eval_iters)
            for k in range(eval_iters):
                X, Y = get_batch(k if split == 'train' else k + 7)
                with ctx:
                    logits, loss = model(X, Y)
                losses[k] = loss.item()
            out[split] = losses.mean()
        model.train()
        return out

    model.train()
    for it in range(steps):
        for param_group in optimizer.param_groups:
            param_group['lr'] = 3e-3 * (it + 1) / steps
        for micro_step in range(accum):
            X, Y = get_batch(step)
            step += 1
            with ctx:
                logits, loss = raw_model(X, Y)
                loss = loss / accum
            scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        T.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item() * accum)
    split_losses = estimate_loss()
    losses += [split_losses['train'].item(), float(split_losses['val'])]
    model.eval()
    prompt = T.tensor(data[None, :3], device=device)
    out = model.generate(prompt, max_new_tokens=block, greedy=True)
    assert out.shape == (1, 3 + block)
    sampled = model.generate(prompt.repeat(2, 1), max_new_tokens=4, temperature=0.8, top_k=5)
    assert sampled.shape == (2, 7) and sampled.dtype == T.long
    assert bool(((sampled >= 0) & (sampled < config.vocab_size)).all())
    return losses + out[0].tolist(), numpy_state(model)


@pytest.mark.parametrize("flash", [False, True])
def test_nanogpt(device, flash):
    config = GPTConfig(flash=flash)
    text = np.random.default_rng(7).integers(0, config.vocab_size, 64)
    init = numpy_state(gpt(torch, config))
    run_both(train_gpt, device, init, text, config)


def test_nanogpt_counts_tied_weights_once(device):
    config = GPTConfig()
    want, got = gpt(torch, config), gpt(tensor, config).to(device)
    assert got.get_num_params() == want.get_num_params()
    assert len(list(got.parameters())) == len(list(want.parameters()))
    assert list(got.state_dict()) == list(want.state_dict())
    assert got.transformer.wte.weight is got.lm_head.weight
    # the registered causal mask is a buffer: in the state dict, not a parameter
    assert "transformer.h.0.attn.bias" in got.state_dict()
    assert "transformer.h.0.attn.bias" not in dict(got.named_parameters())
    assert "transformer.h.0.attn.bias" in dict(got.named_buffers())


# ---- 2. seq2seq translation tutorial: GRU encoder, Bahdanau attention decoder, teacher forcing -------

SOS_token, EOS_token, MAX_LENGTH = 0, 1, 5


def translator(T, input_size=9, output_size=8, hidden_size=6, cell="GRU"):
    nn, F = T.nn, T.nn.functional

    class EncoderRNN(nn.Module):
        def __init__(self, input_size, hidden_size, dropout_p=0.0):
            super(EncoderRNN, self).__init__()
            self.hidden_size = hidden_size
            self.embedding = nn.Embedding(input_size, hidden_size)
            self.rnn = getattr(nn, cell)(hidden_size, hidden_size, batch_first=True)
            self.dropout = nn.Dropout(dropout_p)

        def forward(self, input):
            embedded = self.dropout(self.embedding(input))
            output, hidden = self.rnn(embedded)
            return output, hidden

    class BahdanauAttention(nn.Module):
        def __init__(self, hidden_size):
            super(BahdanauAttention, self).__init__()
            self.Wa = nn.Linear(hidden_size, hidden_size)
            self.Ua = nn.Linear(hidden_size, hidden_size)
            self.Va = nn.Linear(hidden_size, 1)

        def forward(self, query, keys):
            scores = self.Va(T.tanh(self.Wa(query) + self.Ua(keys)))
            scores = scores.squeeze(2).unsqueeze(1)
            weights = F.softmax(scores, dim=-1)
            context = T.bmm(weights, keys)
            return context, weights

    class AttnDecoderRNN(nn.Module):
        def __init__(self, hidden_size, output_size, dropout_p=0.0):
            super(AttnDecoderRNN, self).__init__()
            self.embedding = nn.Embedding(output_size, hidden_size)
            self.attention = BahdanauAttention(hidden_size)
            self.rnn = getattr(nn, cell)(2 * hidden_size, hidden_size, batch_first=True)
            self.out = nn.Linear(hidden_size, output_size)
            self.dropout = nn.Dropout(dropout_p)

        def forward(self, encoder_outputs, encoder_hidden, target_tensor=None):
            batch_size = encoder_outputs.size(0)
            device = encoder_outputs.device
            decoder_input = T.empty(batch_size, 1, dtype=T.long, device=device).fill_(SOS_token)
            decoder_hidden = encoder_hidden
            decoder_outputs = []
            attentions = []
            for i in range(MAX_LENGTH):
                decoder_output, decoder_hidden, attn_weights = self.forward_step(
                    decoder_input, decoder_hidden, encoder_outputs)
                decoder_outputs.append(decoder_output)
                attentions.append(attn_weights)
                if target_tensor is not None:
                    decoder_input = target_tensor[:, i].unsqueeze(1)  # Teacher forcing
                else:
                    _, topi = decoder_output.topk(1)
                    decoder_input = topi.squeeze(-1).detach()  # detach from history as input
            decoder_outputs = T.cat(decoder_outputs, dim=1)
            decoder_outputs = F.log_softmax(decoder_outputs, dim=-1)
            attentions = T.cat(attentions, dim=1)
            return decoder_outputs, decoder_hidden, attentions

        def forward_step(self, input, hidden, encoder_outputs):
            embedded = self.dropout(self.embedding(input))
            h = hidden[0] if isinstance(hidden, tuple) else hidden  # an LSTM's state is (h, c)
            query = h.permute(1, 0, 2)
            context, attn_weights = self.attention(query, encoder_outputs)
            input_gru = T.cat((embedded, context), dim=2)
            output, hidden = self.rnn(input_gru, hidden)
            output = self.out(output)
            return output, hidden, attn_weights

    T.manual_seed(0)
    return nn.ModuleDict({"encoder": EncoderRNN(input_size, hidden_size),
                          "decoder": AttnDecoderRNN(hidden_size, output_size)})


def train_translator(T, device, init, pairs, cell, epochs=3, batch_size=4):
    device = device_of(T, device)
    model = ported_model(T, lambda T: translator(T, cell=cell), init, device)
    encoder, decoder = model["encoder"], model["decoder"]
    input_ids, target_ids = pairs
    train_data = T.utils.data.TensorDataset(T.tensor(input_ids, dtype=T.long).to(device),
                                            T.tensor(target_ids, dtype=T.long).to(device))
    train_sampler = T.utils.data.SequentialSampler(train_data)
    train_dataloader = T.utils.data.DataLoader(train_data, sampler=train_sampler, batch_size=batch_size)
    encoder_optimizer = T.optim.Adam(encoder.parameters(), lr=0.01)
    decoder_optimizer = T.optim.Adam(decoder.parameters(), lr=0.01)
    criterion = T.nn.NLLLoss()
    losses = []
    for epoch in range(1, epochs + 1):
        total_loss = 0
        for data in train_dataloader:
            input_tensor, target_tensor = data
            encoder_optimizer.zero_grad()
            decoder_optimizer.zero_grad()
            encoder_outputs, encoder_hidden = encoder(input_tensor)
            decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, target_tensor)
            loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)), target_tensor.view(-1))
            loss.backward()
            T.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
            encoder_optimizer.step()
            decoder_optimizer.step()
            total_loss += loss.item()
        losses.append(total_loss / len(train_dataloader))
    # evaluate: greedy decoding until EOS
    with T.no_grad():
        input_tensor = T.tensor(input_ids[:2], dtype=T.long, device=device)
        encoder_outputs, encoder_hidden = encoder(input_tensor)
        decoder_outputs, decoder_hidden, decoder_attn = decoder(encoder_outputs, encoder_hidden)
        _, topi = decoder_outputs.topk(1)
        decoded_ids = topi.squeeze()
        assert decoder_attn.shape == (2, MAX_LENGTH, input_tensor.size(1))
        decoded_words = []
        for idx in decoded_ids[0]:
            if idx.item() == EOS_token:
                decoded_words.append('<EOS>')
                break
            decoded_words.append(idx.item())
    return losses + decoded_ids.flatten().tolist() + decoder_attn.sum(-1).flatten().tolist(), numpy_state(model)


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_seq2seq_translation(device, cell):
    rng = np.random.default_rng(8)
    input_ids = rng.integers(2, 9, (8, 6))
    input_ids[:, -1] = EOS_token
    target_ids = rng.integers(2, 8, (8, MAX_LENGTH))
    target_ids[:, -1] = EOS_token
    # Va's bias shifts every score of a query alike and softmax cancels it: its gradient is rounding noise,
    # which Adam scales up to full steps in either library (as the key bias in test_ported_scripts.py)
    run_both(train_translator, device, numpy_state(translator(torch, cell=cell)), (input_ids, target_ids), cell,
             state_view=lambda state: {k: v for k, v in state.items() if k != "decoder.attention.Va.bias"})


# ---- 3. chatbot tutorial: packed bidirectional GRU encoder, Luong attention, masked NLL, greedy search ---

PAD_token, BOS_token, EOS2_token = 0, 1, 2


def chatbot(T, voc_size=10, hidden_size=6, n_layers=2):
    nn, F = T.nn, T.nn.functional

    class EncoderRNN(nn.Module):
        def __init__(self, hidden_size, embedding, n_layers=1, dropout=0):
            super(EncoderRNN, self).__init__()
            self.n_layers = n_layers
            self.hidden_size = hidden_size
            self.embedding = embedding
            self.gru = nn.GRU(hidden_size, hidden_size, n_layers,
                              dropout=(0 if n_layers == 1 else dropout), bidirectional=True)

        def forward(self, input_seq, input_lengths, hidden=None):
            embedded = self.embedding(input_seq)
            packed = nn.utils.rnn.pack_padded_sequence(embedded, input_lengths, enforce_sorted=False)
            outputs, hidden = self.gru(packed, hidden)
            outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs)
            outputs = outputs[:, :, :self.hidden_size] + outputs[:, :, self.hidden_size:]
            return outputs, hidden

    class Attn(nn.Module):
        def __init__(self, method, hidden_size):
            super(Attn, self).__init__()
            self.method = method
            if self.method not in ['dot', 'general', 'concat']:
                raise ValueError(self.method, "is not an appropriate attention method.")
            self.hidden_size = hidden_size
            if self.method == 'general':
                self.attn = nn.Linear(self.hidden_size, hidden_size)
            elif self.method == 'concat':
                self.attn = nn.Linear(self.hidden_size * 2, hidden_size)
                self.v = nn.Parameter(T.FloatTensor(hidden_size) if hasattr(T, "FloatTensor")
                                      else T.empty(hidden_size))  # README: no legacy FloatTensor

        def dot_score(self, hidden, encoder_output):
            return T.sum(hidden * encoder_output, dim=2)

        def general_score(self, hidden, encoder_output):
            energy = self.attn(encoder_output)
            return T.sum(hidden * energy, dim=2)

        def concat_score(self, hidden, encoder_output):
            energy = self.attn(T.cat((hidden.expand(encoder_output.size(0), -1, -1), encoder_output), 2)).tanh()
            return T.sum(self.v * energy, dim=2)

        def forward(self, hidden, encoder_outputs):
            if self.method == 'general':
                attn_energies = self.general_score(hidden, encoder_outputs)
            elif self.method == 'concat':
                attn_energies = self.concat_score(hidden, encoder_outputs)
            elif self.method == 'dot':
                attn_energies = self.dot_score(hidden, encoder_outputs)
            attn_energies = attn_energies.t()
            return F.softmax(attn_energies, dim=1).unsqueeze(1)

    class LuongAttnDecoderRNN(nn.Module):
        def __init__(self, attn_model, embedding, hidden_size, output_size, n_layers=1, dropout=0.0):
            super(LuongAttnDecoderRNN, self).__init__()
            self.attn_model = attn_model
            self.hidden_size = hidden_size
            self.output_size = output_size
            self.n_layers = n_layers
            self.dropout = dropout
            self.embedding = embedding
            self.embedding_dropout = nn.Dropout(dropout)
            self.gru = nn.GRU(hidden_size, hidden_size, n_layers, dropout=(0 if n_layers == 1 else dropout))
            self.concat = nn.Linear(hidden_size * 2, hidden_size)
            self.out = nn.Linear(hidden_size, output_size)
            self.attn = Attn(attn_model, hidden_size)

        def forward(self, input_step, last_hidden, encoder_outputs):
            embedded = self.embedding(input_step)
            embedded = self.embedding_dropout(embedded)
            rnn_output, hidden = self.gru(embedded, last_hidden)
            attn_weights = self.attn(rnn_output, encoder_outputs)
            context = attn_weights.bmm(encoder_outputs.transpose(0, 1))
            rnn_output = rnn_output.squeeze(0)
            context = context.squeeze(1)
            concat_input = T.cat((rnn_output, context), 1)
            concat_output = T.tanh(self.concat(concat_input))
            output = self.out(concat_output)
            output = F.softmax(output, dim=1)
            return output, hidden

    T.manual_seed(0)
    embedding = nn.Embedding(voc_size, hidden_size, padding_idx=PAD_token)
    model = nn.Module()
    model.encoder = EncoderRNN(hidden_size, embedding, n_layers)
    model.decoder = LuongAttnDecoderRNN("general", embedding, hidden_size, voc_size, n_layers)
    return model


def maskNLLLoss(T, inp, target, mask):
    nTotal = mask.sum()
    crossEntropy = -T.log(T.gather(inp, 1, target.view(-1, 1)).squeeze(1))
    loss = crossEntropy.masked_select(mask).mean()
    return loss, nTotal.item()


def zeroPadding(l, fillvalue=PAD_token):
    import itertools
    return list(itertools.zip_longest(*l, fillvalue=fillvalue))


def binaryMatrix(l):
    return [[0 if token == PAD_token else 1 for token in seq] for seq in l]


def train_chatbot(T, device, init, batches, clip=1.0, teacher_forcing=(True, False, True)):
    device = device_of(T, device)
    model = ported_model(T, chatbot, init, device)
    encoder, decoder = model.encoder, model.decoder
    assert encoder.embedding is decoder.embedding
    encoder_optimizer = T.optim.Adam(encoder.parameters(), lr=0.01)
    decoder_optimizer = T.optim.Adam(decoder.parameters(), lr=0.01 * 5.0)
    encoder.train()
    decoder.train()
    losses = []
    for (input_batch, output_batch), use_teacher_forcing in zip(batches, teacher_forcing):
        lengths = T.tensor([len(indexes) for indexes in input_batch])
        input_variable = T.tensor(zeroPadding(input_batch), dtype=T.long)
        padList = zeroPadding(output_batch)
        mask = T.tensor(binaryMatrix(padList), dtype=T.bool)
        target_variable = T.tensor(padList, dtype=T.long)
        max_target_len = max([len(indexes) for indexes in output_batch])
        batch_size = len(input_batch)

        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()
        input_variable = input_variable.to(device)
        target_variable = target_variable.to(device)
        mask = mask.to(device)
        lengths = lengths.to("cpu")
        loss = 0
        print_losses = []
        n_totals = 0
        encoder_outputs, encoder_hidden = encoder(input_variable, lengths)
        decoder_input = T.tensor([[BOS_token for _ in range(batch_size)]], dtype=T.long)
        decoder_input = decoder_input.to(device)
        decoder_hidden = encoder_hidden[:decoder.n_layers]
        for t in range(max_target_len):
            decoder_output, decoder_hidden = decoder(decoder_input, decoder_hidden, encoder_outputs)
            if use_teacher_forcing:
                decoder_input = target_variable[t].view(1, -1)
            else:
                _, topi = decoder_output.topk(1)
                decoder_input = T.tensor([[topi[i][0] for i in range(batch_size)]], dtype=T.long)
                decoder_input = decoder_input.to(device)
            mask_loss, nTotal = maskNLLLoss(T, decoder_output, target_variable[t], mask[t])
            loss += mask_loss
            print_losses.append(mask_loss.item() * nTotal)
            n_totals += nTotal
        loss.backward()
        _ = T.nn.utils.clip_grad_norm_(encoder.parameters(), clip)
        _ = T.nn.utils.clip_grad_norm_(decoder.parameters(), clip)
        encoder_optimizer.step()
        decoder_optimizer.step()
        losses.append(sum(print_losses) / n_totals)

    class GreedySearchDecoder(T.nn.Module):
        def __init__(self, encoder, decoder):
            super(GreedySearchDecoder, self).__init__()
            self.encoder = encoder
            self.decoder = decoder

        def forward(self, input_seq, input_length, max_length):
            encoder_outputs, encoder_hidden = self.encoder(input_seq, input_length)
            decoder_hidden = encoder_hidden[:decoder.n_layers]
            decoder_input = T.ones(1, 1, device=device, dtype=T.long) * BOS_token
            all_tokens = T.zeros([0], device=device, dtype=T.long)
            all_scores = T.zeros([0], device=device)
            for _ in range(max_length):
                decoder_output, decoder_hidden = self.decoder(decoder_input, decoder_hidden, encoder_outputs)
                decoder_scores, decoder_input = T.max(decoder_output, dim=1)
                all_tokens = T.cat((all_tokens, decoder_input), dim=0)
                all_scores = T.cat((all_scores, decoder_scores), dim=0)
                decoder_input = T.unsqueeze(decoder_input, 0)
            return all_tokens, all_scores

    encoder.eval()
    decoder.eval()
    searcher = GreedySearchDecoder(encoder, decoder)
    with T.no_grad():
        indexes_batch = [batches[0][0][0]]
        lengths = T.tensor([len(indexes) for indexes in indexes_batch])
        input_batch = T.LongTensor(indexes_batch).transpose(0, 1) if hasattr(T, "LongTensor") else \
            T.tensor(indexes_batch, dtype=T.long).transpose(0, 1)  # README: no legacy LongTensor
        tokens, scores = searcher(input_batch.to(device), lengths.to("cpu"), 4)
    return losses + tokens.tolist() + scores.tolist(), numpy_state(model)


def test_chatbot(device):
    rng = np.random.default_rng(9)

    def sentences(n):
        return [list(rng.integers(3, 10, rng.integers(2, 6))) + [EOS2_token] for _ in range(n)]

    batches = [(sentences(4), sentences(4)) for _ in range(3)]
    # "general" attention scores h . (W e + b): h . b is the same for every source step, so softmax cancels
    # b and its gradient is rounding noise (see test_seq2seq_translation)
    run_both(train_chatbot, device, numpy_state(chatbot(torch)), batches,
             state_view=lambda state: {k: v for k, v in state.items() if k != "decoder.attn.attn.bias"})


# ---- 4. char-level LM (minGPT's CharDataset): tokenizer, windows, DataLoader(drop_last), warmup, ppl ----

TEXT = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer"


def char_dataset(T, data, block_size):
    class CharDataset(T.utils.data.Dataset):
        def __init__(self, data, block_size):
            chars = sorted(list(set(data)))
            data_size, vocab_size = len(data), len(chars)
            print('data has %d characters, %d unique.' % (data_size, vocab_size))
            self.stoi = {ch: i for i, ch in enumerate(chars)}
            self.itos = {i: ch for i, ch in enumerate(chars)}
            self.block_size = block_size
            self.vocab_size = vocab_size
            self.data = data

        def encode(self, s):
            return [self.stoi[c] for c in s]

        def decode(self, ids):
            return ''.join([self.itos[i] for i in ids])

        def __len__(self):
            return len(self.data) - self.block_size

        def __getitem__(self, idx):
            chunk = self.data[idx:idx + self.block_size + 1]
            dix = [self.stoi[s] for s in chunk]
            x = T.tensor(dix[:-1], dtype=T.long)
            y = T.tensor(dix[1:], dtype=T.long)
            return x, y

    return CharDataset(data, block_size)


def char_lm(T, vocab_size, rnn_type="LSTM", n_embd=8, n_hidden=8):
    nn = T.nn

    class CharRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn_type = rnn_type
            self.emb = nn.Embedding(vocab_size, n_embd)
            if rnn_type in ['LSTM', 'GRU']:
                self.rnn = getattr(nn, rnn_type)(n_embd, n_hidden, num_layers=2, batch_first=True)
            else:
                nonlinearity = {'RNN_TANH': 'tanh', 'RNN_RELU': 'relu'}[rnn_type]
                self.rnn = nn.RNN(n_embd, n_hidden, num_layers=2, nonlinearity=nonlinearity, batch_first=True)
            self.ln = nn.LayerNorm(n_hidden)
            self.head = nn.Linear(n_hidden, vocab_size)

        def forward(self, idx, targets=None):
            x, _ = self.rnn(self.emb(idx))
            logits = self.head(self.ln(x))
            loss = None
            if targets is not None:
                loss = T.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
            return logits, loss

    T.manual_seed(0)
    return CharRNN()


def train_char_lm(T, device, init, rnn_type, epochs=2, warmup_steps=3, block_size=6):
    device = device_of(T, device)
    train_dataset = char_dataset(T, TEXT, block_size)
    assert train_dataset.decode(train_dataset.encode("to be")) == "to be"
    model = ported_model(T, lambda T: char_lm(T, train_dataset.vocab_size, rnn_type), init, device)
    train_loader = T.utils.data.DataLoader(train_dataset, batch_size=16, shuffle=False, drop_last=True,
                                           pin_memory=False, num_workers=0)
    assert len(train_loader) == len(train_dataset) // 16
    optimizer = T.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    scheduler = T.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda step: min(1.0, (step + 1) / warmup_steps))
    losses, best_ppl, best_state, first_state = [], float("inf"), None, None
    for epoch in range(epochs):
        model.train()
        for it, (x, y) in enumerate(train_loader):
            assert x.shape == (16, block_size) and x.dtype == T.long
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits, loss = model(x, y)
            model.zero_grad(set_to_none=True)
            loss.backward()
            T.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            losses.append(scheduler.get_last_lr()[0])
        model.eval()
        with T.no_grad():
            total, count = 0.0, 0
            for x, y in T.utils.data.DataLoader(train_dataset, batch_size=32):
                _, loss = model(x.to(device), y.to(device))
                total += loss.item() * x.size(0)
                count += x.size(0)
        ppl = math.exp(total / count)
        print(f"epoch {epoch} val ppl {ppl:.2f}")
        losses.append(ppl)
        if ppl < best_ppl:  # keep the best weights in memory
            best_ppl, best_state = ppl, io.BytesIO()
            T.save(model.state_dict(), best_state)
            first_state = first_state or copy.deepcopy(model.state_dict())
    best_state.seek(0)
    model.load_state_dict(T.load(best_state, map_location=device, weights_only=True))
    assert all(not T.equal(first_state[k], v) for k, v in model.state_dict().items() if k.endswith("weight"))
    # sample greedily from a prompt
    with T.no_grad():
        context = "to "
        x = T.tensor(train_dataset.encode(context), dtype=T.long)[None, ...].to(device)
        for _ in range(5):
            logits, _ = model(x[:, -block_size:])
            ix = logits[:, -1, :].argmax(-1, keepdim=True)
            x = T.cat((x, ix), dim=1)
        completion = train_dataset.decode(x[0].tolist())
    assert completion.startswith("to ") and len(completion) == 8
    return losses + x[0].tolist(), numpy_state(model)


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN_TANH"])
def test_char_lm(device, rnn_type):
    vocab = len(set(TEXT))
    run_both(train_char_lm, device, numpy_state(char_lm(torch, vocab, rnn_type)), rnn_type)


# ---- 5. PyTorch's word_language_model example: batchify, BPTT with repackaged hidden, Transformer -------

def word_lm(T, ntoken, model_type="LSTM", ninp=8, nhid=8, nlayers=2, nhead=2, dropout=0.0):
    nn, F = T.nn, T.nn.functional

    class RNNModel(nn.Module):
        def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=True):
            super(RNNModel, self).__init__()
            self.ntoken = ntoken
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            if tie_weights:
                if nhid != ninp:
                    raise ValueError('When using the tied flag, nhid must be equal to emsize')
                self.decoder.weight = self.encoder.weight
            self.init_weights()
            self.rnn_type = rnn_type
            self.nhid = nhid
            self.nlayers = nlayers

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.encoder.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -initrange, initrange)

        def forward(self, input, hidden):
            emb = self.drop(self.encoder(input))
            output, hidden = self.rnn(emb, hidden)
            output = self.drop(output)
            decoded = self.decoder(output)
            decoded = decoded.view(-1, self.ntoken)
            return F.log_softmax(decoded, dim=1), hidden

        def init_hidden(self, bsz):
            weight = next(self.parameters())
            if self.rnn_type == 'LSTM':
                return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                        weight.new_zeros(self.nlayers, bsz, self.nhid))
            else:
                return weight.new_zeros(self.nlayers, bsz, self.nhid)

    class PositionalEncoding(nn.Module):
        def __init__(self, d_model, dropout=0.1, max_len=5000):
            super(PositionalEncoding, self).__init__()
            self.dropout = nn.Dropout(p=dropout)
            pe = T.zeros(max_len, d_model)
            position = T.arange(0, max_len, dtype=T.float).unsqueeze(1)
            div_term = T.exp(T.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
            pe[:, 0::2] = T.sin(position * div_term)
            pe[:, 1::2] = T.cos(position * div_term)
            pe = pe.unsqueeze(0).transpose(0, 1)
            self.register_buffer('pe', pe)

        def forward(self, x):
            x = x + self.pe[:x.size(0), :]
            return self.dropout(x)

    class TransformerModel(nn.Transformer):
        def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.5):
            # the example leaves nn.Transformer's dropout at 0.1; pass ours so that training is deterministic
            super(TransformerModel, self).__init__(d_model=ninp, nhead=nhead, dim_feedforward=nhid,
                                                   num_encoder_layers=nlayers, dropout=dropout)
            self.model_type = 'Transformer'
            self.src_mask = None
            self.pos_encoder = PositionalEncoding(ninp, dropout)
            self.input_emb = nn.Embedding(ntoken, ninp)
            self.ninp = ninp
            self.decoder = nn.Linear(ninp, ntoken)
            self.init_weights()

        def _generate_square_subsequent_mask(self, sz):
            return T.log(T.tril(T.ones(sz, sz)))

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.input_emb.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -initrange, initrange)

        def forward(self, src, has_mask=True):
            if has_mask:
                device = src.device
                if self.src_mask is None or self.src_mask.size(0) != len(src):
                    mask = self._generate_square_subsequent_mask(len(src)).to(device)
                    self.src_mask = mask
            else:
                self.src_mask = None
            src = self.input_emb(src) * math.sqrt(self.ninp)
            src = self.pos_encoder(src)
            output = self.encoder(src, mask=self.src_mask)
            output = self.decoder(output)
            return F.log_softmax(output, dim=-1)

    T.manual_seed(0)
    if model_type == 'Transformer':
        return TransformerModel(ntoken, ninp, nhead, nhid, nlayers, dropout)
    return RNNModel(model_type, ntoken, ninp, nhid, nlayers, dropout)


def train_word_lm(T, device, init, ids, model_type, bptt=5, batch_size=3, lr=2.0, clip=0.25):
    device = device_of(T, device)
    ntokens = int(ids.max()) + 1
    model = ported_model(T, lambda T: word_lm(T, ntokens, model_type), init, device)
    criterion = T.nn.NLLLoss()

    def batchify(data, bsz):
        nbatch = data.size(0) // bsz
        data = data.narrow(0, 0, nbatch * bsz)
        data = data.view(bsz, -1).t().contiguous()
        return data.to(device)

    def repackage_hidden(h):
        if isinstance(h, T.Tensor):
            return h.detach()
        else:
            return tuple(repackage_hidden(v) for v in h)

    def get_batch(source, i):
        seq_len = min(bptt, len(source) - 1 - i)
        data = source[i:i + seq_len]
        target = source[i + 1:i + 1 + seq_len].view(-1)
        return data, target

    def evaluate(data_source):
        model.eval()
        total_loss = 0.
        if model_type != 'Transformer':
            hidden = model.init_hidden(batch_size)
        with T.no_grad():
            for i in range(0, data_source.size(0) - 1, bptt):
                data, targets = get_batch(data_source, i)
                if model_type == 'Transformer':
                    output = model(data)
                    output = output.view(-1, ntokens)
                else:
                    output, hidden = model(data, hidden)
                    hidden = repackage_hidden(hidden)
                total_loss += len(data) * criterion(output, targets).item()
        return total_loss / (len(data_source) - 1)

    idss = [T.tensor(line).type(T.int64) for line in np.array_split(ids, 3)]
    train_data = batchify(T.cat(idss), batch_size)
    losses = []
    model.train()
    if model_type != 'Transformer':
        hidden = model.init_hidden(batch_size)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
        data, targets = get_batch(train_data, i)
        model.zero_grad()
        if model_type == 'Transformer':
            output = model(data)
            output = output.view(-1, ntokens)
        else:
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            if T is torch:
                p.data.add_(p.grad, alpha=-lr)
            else:  # README: Tensor.data is the raw array; update in place under no_grad instead
                with T.no_grad():
                    p.add_(p.grad, alpha=-lr)
        losses.append(loss.item())
    val_loss = evaluate(train_data)
    losses += [val_loss, math.exp(val_loss)]
    return losses, numpy_state(model)


@pytest.mark.parametrize("model_type", ["LSTM", "GRU", "Transformer"])
def test_word_language_model(device, model_type):
    ids = np.random.default_rng(10).integers(0, 11, 50)
    init = numpy_state(word_lm(torch, 11, model_type))
    run_both(train_word_lm, device, init, ids, model_type)


def nanogpt_get_batch(T, device, data, block_size=8, batch_size=4):
    """nanoGPT's train.py get_batch: random windows of a uint16 token memmap (here an array)."""
    device_type = 'cuda' if 'cuda' in str(device) else 'cpu'
    ix = T.randint(len(data) - block_size, (batch_size,))
    x = T.stack([T.from_numpy((data[i:i + block_size]).astype(np.int64)) for i in ix])
    y = T.stack([T.from_numpy((data[i + 1:i + 1 + block_size]).astype(np.int64)) for i in ix])
    if device_type == 'cuda':
        x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    else:
        x, y = x.to(device), y.to(device)
    return x, y


@pytest.mark.parametrize("T", [torch, tensor], ids=["torch", "tensor"])
def test_nanogpt_get_batch(T, device):
    data = np.arange(40, dtype=np.uint16)
    x, y = nanogpt_get_batch(T, device_of(T, device), data)
    x, y = x.cpu().numpy(), y.cpu().numpy()
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)  # targets are the inputs shifted by one
    assert x.min() >= 0 and x.max() < 40 - 1


# ---- 6. char-RNN name tutorials: a hand-written RNN cell (generation), a padded LSTM classifier --------

ALL_LETTERS = "abcdefgh"
N_LETTERS = len(ALL_LETTERS) + 1  # plus EOS
CATEGORIES = ["x", "y", "z"]


def name_rnn(T, input_size=N_LETTERS, hidden_size=6, output_size=N_LETTERS, n_categories=len(CATEGORIES)):
    nn = T.nn

    class RNN(nn.Module):
        def __init__(self, input_size, hidden_size, output_size):
            super(RNN, self).__init__()
            self.hidden_size = hidden_size
            self.i2h = nn.Linear(n_categories + input_size + hidden_size, hidden_size)
            self.i2o = nn.Linear(n_categories + input_size + hidden_size, output_size)
            self.o2o = nn.Linear(hidden_size + output_size, output_size)
            self.dropout = nn.Dropout(0.0)
            self.softmax = nn.LogSoftmax(dim=1)

        def forward(self, category, input, hidden):
            input_combined = T.cat((category, input, hidden), 1)
            hidden = self.i2h(input_combined)
            output = self.i2o(input_combined)
            output_combined = T.cat((hidden, output), 1)
            output = self.o2o(output_combined)
            output = self.dropout(output)
            output = self.softmax(output)
            return output, hidden

        def initHidden(self):
            return T.zeros(1, self.hidden_size)

    T.manual_seed(0)
    return RNN(input_size, hidden_size, output_size)


def train_name_generator(T, device, init, examples, learning_rate=0.05, max_length=6):
    model = ported_model(T, name_rnn, init, "cpu")  # the tutorial runs on the CPU
    criterion = T.nn.NLLLoss()

    def categoryTensor(category):
        li = CATEGORIES.index(category)
        tensor = T.zeros(1, len(CATEGORIES))
        tensor[0][li] = 1
        return tensor

    def inputTensor(line):
        tensor = T.zeros(len(line), 1, N_LETTERS)
        for li in range(len(line)):
            letter = line[li]
            tensor[li][0][ALL_LETTERS.find(letter)] = 1
        return tensor

    def targetTensor(line):
        letter_indexes = [ALL_LETTERS.find(line[li]) for li in range(1, len(line))]
        letter_indexes.append(N_LETTERS - 1)  # EOS
        return T.tensor(letter_indexes, dtype=T.long)  # the tutorial's torch.LongTensor: README, no legacy types

    def train(category_tensor, input_line_tensor, target_line_tensor):
        target_line_tensor.unsqueeze_(-1)
        hidden = model.initHidden()
        model.zero_grad()
        loss = 0  # the tutorial's torch.Tensor([0]): "you can also just simply use loss = 0"
        for i in range(input_line_tensor.size(0)):
            output, hidden = model(category_tensor, input_line_tensor[i], hidden)
            l = criterion(output, target_line_tensor[i])  # noqa: E741 - the tutorial's name
            loss += l
        loss.backward()
        for p in model.parameters():
            if T is torch:
                p.data.add_(p.grad.data, alpha=-learning_rate)
            else:  # README: Tensor.data is the raw array
                with T.no_grad():
                    p.add_(p.grad, alpha=-learning_rate)
        return output, loss.item() / input_line_tensor.size(0)

    losses = []
    for category, line in examples:
        output, loss = train(categoryTensor(category), inputTensor(line), targetTensor(line))
        losses.append(loss)

    def sample(category, start_letter='a'):
        with T.no_grad():
            category_tensor = categoryTensor(category)
            input = inputTensor(start_letter)
            hidden = model.initHidden()
            output_name = start_letter
            for i in range(max_length):
                output, hidden = model(category_tensor, input[0], hidden)
                topv, topi = output.topk(1)
                topi = topi[0][0]
                if topi == N_LETTERS - 1:
                    break
                else:
                    letter = ALL_LETTERS[topi]
                    output_name += letter
                input = inputTensor(letter)
            return output_name

    names = [sample(c, s) for c in CATEGORIES for s in "abc"]
    return losses + [len(n) for n in names] + [ALL_LETTERS.find(ch) for n in names for ch in n], numpy_state(model)


def test_name_generator(device):
    rng = np.random.default_rng(11)
    examples = [(CATEGORIES[rng.integers(3)], "".join(rng.choice(list(ALL_LETTERS), rng.integers(2, 6))))
                for _ in range(8)]
    run_both(train_name_generator, device, numpy_state(name_rnn(torch)), examples)


def name_classifier(T, n_hidden=6):
    nn = T.nn

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(N_LETTERS + 1, 5, padding_idx=0)
            self.lstm = nn.LSTM(5, n_hidden, batch_first=True, bidirectional=True)
            self.h2o = nn.Linear(2 * n_hidden, len(CATEGORIES))

        def forward(self, padded, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.embedding(padded), lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            _, (h_n, c_n) = self.lstm(packed)
            hidden = T.cat((h_n[-2, :, :], h_n[-1, :, :]), dim=1)
            return T.nn.functional.log_softmax(self.h2o(hidden), dim=1)

    T.manual_seed(0)
    return CharLSTM()


def train_name_classifier(T, device, init, names, labels, epochs=3):
    device = device_of(T, device)
    model = ported_model(T, name_classifier, init, device)

    class NamesDataset(T.utils.data.Dataset):
        def __init__(self, names, labels):
            self.data = [T.tensor([ALL_LETTERS.index(c) + 1 for c in name]) for name in names]
            self.labels = [T.tensor([label], dtype=T.long) for label in labels]

        def __len__(self):
            return len(self.data)

        def __getitem__(self, idx):
            return self.labels[idx], self.data[idx]

    def collate_fn(batch):
        labels, seqs = zip(*batch)
        lengths = T.tensor([len(s) for s in seqs])
        return T.cat(labels), T.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True, padding_value=0), lengths

    alldata = NamesDataset(names, labels)
    train_set, test_set = T.utils.data.random_split(alldata, [.75, .25],
                                                    generator=T.Generator(device="cpu").manual_seed(2024))
    assert (len(train_set), len(test_set)) == (9, 3)
    loader = T.utils.data.DataLoader(alldata, batch_size=4, shuffle=False, collate_fn=collate_fn)
    optimizer = T.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    criterion = T.nn.NLLLoss()
    losses = []
    for epoch in range(epochs):
        model.train()
        current_loss = 0
        for label_tensor, text_tensor, lengths in loader:
            output = model(text_tensor.to(device), lengths)
            loss = criterion(output, label_tensor.to(device))
            loss.backward()
            T.nn.utils.clip_grad_norm_(model.parameters(), 3)
            optimizer.step()
            optimizer.zero_grad()
            current_loss += loss.item() / len(loader)
        losses.append(current_loss)
    confusion = T.zeros(len(CATEGORIES), len(CATEGORIES))
    model.eval()
    with T.no_grad():
        for label_tensor, text_tensor, lengths in loader:
            output = model(text_tensor.to(device), lengths)
            guess = output.topk(1)[1].squeeze(1).cpu()
            for label_i, guess_i in zip(label_tensor.tolist(), guess.tolist()):
                confusion[label_i][guess_i] += 1
    for i in range(len(CATEGORIES)):
        denom = confusion[i].sum()
        if denom > 0:
            confusion[i] = confusion[i] / denom
    return losses + confusion.flatten().tolist(), numpy_state(model)


def test_name_classifier(device):
    rng = np.random.default_rng(12)
    names = ["".join(rng.choice(list(ALL_LETTERS), rng.integers(1, 7))) for _ in range(12)]
    labels = rng.integers(0, 3, 12)
    run_both(train_name_classifier, device, numpy_state(name_classifier(torch)), names, labels)
