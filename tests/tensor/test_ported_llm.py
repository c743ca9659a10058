"""Modern LLM internals as the reference implementations write them (Meta's llama, HF transformers' LLaMA,
GPT-2, BERT and T5, PEFT's LoRA), ported by imports.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data, and losses and final parameters agree to float32 accuracy. Sampling draws from
each library's own stream, so sampled tokens are checked for validity only and the filtered distributions
they are drawn from are compared instead.
"""
import math
from dataclasses import dataclass

import numpy as np
import pytest

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


# ---- 1. LLaMA: RMSNorm, rotary embeddings, SwiGLU, grouped-query attention, KV cache, sampling --------

@dataclass
class LlamaConfig:
    vocab_size: int = 17
    dim: int = 16
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    hidden_dim: int = 24
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 12
    sdpa: bool = False


def llama(T, config=LlamaConfig()):
    nn, F = T.nn, T.nn.functional

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

    class RotaryEmbedding(nn.Module):
        """HF's LlamaRotaryEmbedding, real form: cos/sin of cat((freqs, freqs)) as non-persistent buffers."""

        def __init__(self, dim, max_position_embeddings, base):
            super().__init__()
            inv_freq = 1.0 / (base ** (T.arange(0, dim, 2).float() / dim))
            self.register_buffer("inv_freq", inv_freq, persistent=False)
            t = T.arange(max_position_embeddings, dtype=self.inv_freq.dtype)
            freqs = T.outer(t, self.inv_freq)
            emb = T.cat((freqs, freqs), dim=-1)
            self.register_buffer("cos_cached", emb.cos(), persistent=False)
            self.register_buffer("sin_cached", emb.sin(), persistent=False)

        def forward(self, x, position_ids):
            cos = self.cos_cached[position_ids].to(dtype=x.dtype)
            sin = self.sin_cached[position_ids].to(dtype=x.dtype)
            return cos, sin

    def rotate_half(x):
        x1 = x[..., : x.shape[-1] // 2]
        x2 = x[..., x.shape[-1] // 2:]
        return T.cat((-x2, x1), dim=-1)

    def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
        cos = cos.unsqueeze(unsqueeze_dim)
        sin = sin.unsqueeze(unsqueeze_dim)
        q_embed = (q * cos) + (rotate_half(q) * sin)
        k_embed = (k * cos) + (rotate_half(k) * sin)
        return q_embed, k_embed

    def repeat_kv(hidden_states, n_rep):
        batch, num_key_value_heads, slen, head_dim = hidden_states.shape
        if n_rep == 1:
            return hidden_states
        hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
        return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)

    class Attention(nn.Module):
        def __init__(self, config, layer_idx):
            super().__init__()
            self.layer_idx = layer_idx
            self.n_heads = config.n_heads
            self.n_kv_heads = config.n_kv_heads
            self.n_rep = self.n_heads // self.n_kv_heads
            self.head_dim = config.dim // config.n_heads
            self.wq = nn.Linear(config.dim, config.n_heads * self.head_dim, bias=False)
            self.wk = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
            self.wv = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
            self.wo = nn.Linear(config.n_heads * self.head_dim, config.dim, bias=False)
            self.sdpa = config.sdpa

        def forward(self, x, cos, sin, mask, cache=None):
            bsz, seqlen, _ = x.shape
            xq = self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim).transpose(1, 2)
            xk = self.wk(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
            xv = self.wv(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
            xq, xk = apply_rotary_pos_emb(xq, xk, cos, sin)
            if cache is not None:
                if self.layer_idx in cache:
                    past_k, past_v = cache[self.layer_idx]
                    xk = T.cat([past_k, xk], dim=2)
                    xv = T.cat([past_v, xv], dim=2)
                cache[self.layer_idx] = (xk, xv)
            if self.layer_idx % 2 == 0:
                keys = repeat_kv(xk, self.n_rep)
                values = repeat_kv(xv, self.n_rep)
            else:  # Meta's later code: repeat_interleave on the head dim
                keys = T.repeat_interleave(xk, dim=1, repeats=self.n_rep)
                values = T.repeat_interleave(xv, dim=1, repeats=self.n_rep)
            if self.sdpa:
                if mask is None and seqlen > 1:
                    output = F.scaled_dot_product_attention(xq, keys, values, is_causal=True)
                else:
                    output = F.scaled_dot_product_attention(xq, keys, values, attn_mask=mask)
            else:
                scores = T.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.head_dim)
                if mask is not None:
                    scores = scores + mask
                scores = F.softmax(scores.float(), dim=-1).type_as(xq)
                output = T.matmul(scores, values)
            output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)
            return self.wo(output)

    class FeedForward(nn.Module):
        def __init__(self, dim, hidden_dim):
            super().__init__()
            self.w1 = nn.Linear(dim, hidden_dim, bias=False)
            self.w2 = nn.Linear(hidden_dim, dim, bias=False)
            self.w3 = nn.Linear(dim, hidden_dim, bias=False)

        def forward(self, x):
            return self.w2(F.silu(self.w1(x)) * self.w3(x))

    class TransformerBlock(nn.Module):
        def __init__(self, layer_id, config):
            super().__init__()
            self.attention = Attention(config, layer_id)
            self.feed_forward = FeedForward(config.dim, config.hidden_dim)
            self.attention_norm = RMSNorm(config.dim, eps=config.norm_eps)
            self.ffn_norm = RMSNorm(config.dim, eps=config.norm_eps)

        def forward(self, x, cos, sin, mask, cache=None):
            h = x + self.attention(self.attention_norm(x), cos, sin, mask, cache)
            return h + self.feed_forward(self.ffn_norm(h))

    class Transformer(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config
            self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
            self.layers = nn.ModuleList([TransformerBlock(i, config) for i in range(config.n_layers)])
            self.norm = RMSNorm(config.dim, eps=config.norm_eps)
            self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
            self.output.weight = self.tok_embeddings.weight  # tied embeddings
            self.rotary_emb = RotaryEmbedding(config.dim // config.n_heads, config.max_seq_len, config.rope_theta)

        def forward(self, tokens, start_pos=0, cache=None, finfo_mask=False):
            _bsz, seqlen = tokens.shape
            h = self.tok_embeddings(tokens)
            position_ids = T.arange(start_pos, start_pos + seqlen, device=tokens.device).unsqueeze(0)
            cos, sin = self.rotary_emb(h, position_ids)
            mask = None
            if seqlen > 1 and not (self.config.sdpa and cache is None):
                if finfo_mask:  # HF: the dtype's most negative value, filled where j > i
                    min_value = T.finfo(h.dtype).min
                    causal = T.ones((seqlen, seqlen), dtype=T.bool, device=tokens.device).tril()
                    mask = T.zeros((seqlen, seqlen), device=tokens.device).masked_fill(~causal, min_value)
                else:  # Meta: -inf above the diagonal
                    mask = T.full((seqlen, seqlen), float("-inf"), device=tokens.device)
                    mask = T.triu(mask, diagonal=1)
                # with a KV cache the new rows see every cached column
                mask = T.hstack([T.zeros((seqlen, start_pos), device=tokens.device), mask]).type_as(h)
            for layer in self.layers:
                h = layer(h, cos, sin, mask, cache)
            h = self.norm(h)
            return self.output(h).float()

    T.manual_seed(0)
    return Transformer(config)


def sample_top_p(T, probs, p):
    """Meta's llama sample_top_p, with the filtered distribution returned for comparison."""
    probs_sort, probs_idx = T.sort(probs, dim=-1, descending=True)
    probs_sum = T.cumsum(probs_sort, dim=-1)
    mask = probs_sum - probs_sort > p
    probs_sort[mask] = 0.0
    probs_sort.div_(probs_sort.sum(dim=-1, keepdim=True))
    next_token = T.multinomial(probs_sort, num_samples=1)
    next_token = T.gather(probs_idx, -1, next_token)
    return next_token, probs_sort


def top_k_top_p_filtering(T, logits, top_k=0, top_p=1.0, filter_value=-float("Inf")):
    """HF's classic top-k / nucleus filter: shift the mask right by one, scatter back to vocabulary order."""
    if top_k > 0:
        indices_to_remove = logits < T.topk(logits, top_k)[0][..., -1, None]
        logits = logits.masked_fill(indices_to_remove, filter_value)
    if top_p < 1.0:
        sorted_logits, sorted_indices = T.sort(logits, descending=True)
        cumulative_probs = T.cumsum(T.nn.functional.softmax(sorted_logits, dim=-1), dim=-1)
        sorted_indices_to_remove = cumulative_probs > top_p
        sorted_indices_to_remove[..., 1:] = sorted_indices_to_remove[..., :-1].clone()
        sorted_indices_to_remove[..., 0] = 0
        indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
        logits = logits.masked_fill(indices_to_remove, filter_value)
    return logits


def repetition_penalty(T, input_ids, scores, penalty):
    """HF's RepetitionPenaltyLogitsProcessor: gather, torch.where, scatter_ back."""
    score = T.gather(scores, 1, input_ids)
    score = T.where(score < 0, score * penalty, score / penalty)
    scores.scatter_(1, input_ids, score)
    return scores


def train_llama(T, device, init, data, config, steps=3, batch_size=2, block=6):
    device = device_of(T, device)
    model = ported_model(T, lambda T: llama(T, config), init, device)
    assert model.output.weight is model.tok_embeddings.weight
    assert "layers.0.attention.wq.weight" in model.state_dict()
    assert not any("cached" in k or "inv_freq" in k for k in model.state_dict())
    optimizer = T.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    data = np.asarray(data, dtype=np.int64)
    losses = []
    for it in range(steps):
        ix = [(it * 7 + j * 5) % (len(data) - block - 1) for j in range(batch_size)]
        x = T.stack([T.from_numpy(data[s:s + block]) for s in ix]).to(device)
        y = T.stack([T.from_numpy(data[s + 1:s + 1 + block]) for s in ix]).to(device)
        logits = model(x, finfo_mask=bool(it % 2))
        loss = T.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())

    model.eval()
    out = []
    with T.inference_mode():
        prompt = T.from_numpy(data[None, :4]).to(device)
        full = model(prompt)
        # KV-cache decoding: the prompt once, then one token at a time, must match the full forward
        cache = {}
        logits = model(prompt, start_pos=0, cache=cache)
        out += (logits - full).abs().max().reshape(1).tolist()
        tokens = prompt
        for step in range(4):
            next_token = T.argmax(logits[:, -1], dim=-1, keepdim=True)
            tokens = T.cat([tokens, next_token], dim=1)
            logits = model(next_token, start_pos=tokens.shape[1] - 1, cache=cache)
            assert cache[0][0].shape == (1, config.n_kv_heads, tokens.shape[1], config.dim // config.n_heads)
        reference = model(tokens)
        out += logits[0, -1].tolist() + reference[0, -1].tolist() + tokens[0].tolist()

        last = reference[:, -1, :]
        scores = repetition_penalty(T, tokens, last.clone(), 1.3)
        out += scores[0].tolist()
        temperature = 0.7
        probs = T.softmax(scores / temperature, dim=-1)
        next_token, filtered = sample_top_p(T, probs, 0.8)
        assert next_token.shape == (1, 1) and next_token.dtype == T.long
        assert 0 <= next_token.item() < config.vocab_size
        out += filtered[0].tolist()
        batch_logits = T.cat([last, last.flip(-1)]) / temperature
        kept = top_k_top_p_filtering(T, batch_logits, top_k=8, top_p=0.9)
        out += T.isinf(kept).float().flatten().tolist()
        probs = T.softmax(kept, dim=-1)
        sampled = T.multinomial(probs, num_samples=1)
        assert bool((probs.gather(1, sampled) > 0).all())
        out += probs.flatten().tolist()
    return losses + out, numpy_state(model)


@pytest.mark.parametrize("sdpa", [False, True])
def test_llama(device, sdpa):
    config = LlamaConfig(sdpa=sdpa)
    data = np.random.default_rng(3).integers(0, config.vocab_size, 40)
    init = numpy_state(llama(torch, config))
    got = run_both(train_llama, device, init, data, config)
    assert got[0][3] < 1e-5  # the cached prefill equals the plain forward


# ---- 2. HF GPT-2: Conv1D through addmm, NewGELU, split heads, padding mask from torch.finfo ------------

def gpt2(T, vocab=15, n_positions=10, n_embd=8, n_head=2, n_layer=2):
    nn = T.nn

    class Conv1D(nn.Module):
        """HF's Conv1D: a linear layer with its weight stored transposed, (in, out)."""

        def __init__(self, nf, nx):
            super().__init__()
            self.nf = nf
            self.weight = nn.Parameter(T.empty(nx, nf))
            self.bias = nn.Parameter(T.zeros(nf))
            nn.init.normal_(self.weight, std=0.02)

        def forward(self, x):
            size_out = x.size()[:-1] + (self.nf,)
            x = T.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
            x = x.view(size_out)
            return x

    class NewGELUActivation(nn.Module):
        def forward(self, input):
            return 0.5 * input * (1.0 + T.tanh(math.sqrt(2.0 / math.pi) * (input + 0.044715 * T.pow(input, 3.0))))

    class GPT2Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("bias", T.tril(T.ones((n_positions, n_positions), dtype=T.bool)).view(
                1, 1, n_positions, n_positions), persistent=False)
            self.register_buffer("masked_bias", T.tensor(-1e4), persistent=False)
            self.num_heads = n_head
            self.head_dim = n_embd // n_head
            self.split_size = n_embd
            self.scale_attn_weights = True
            self.c_attn = Conv1D(3 * n_embd, n_embd)
            self.c_proj = Conv1D(n_embd, n_embd)
            self.attn_dropout = nn.Dropout(0.0)
            self.resid_dropout = nn.Dropout(0.0)

        def _split_heads(self, tensor, num_heads, attn_head_size):
            new_shape = tensor.size()[:-1] + (num_heads, attn_head_size)
            tensor = tensor.view(new_shape)
            return tensor.permute(0, 2, 1, 3)  # (batch, head, seq_length, head_features)

        def _merge_heads(self, tensor, num_heads, attn_head_size):
            tensor = tensor.permute(0, 2, 1, 3).contiguous()
            new_shape = tensor.size()[:-2] + (num_heads * attn_head_size,)
            return tensor.view(new_shape)

        def _attn(self, query, key, value, attention_mask=None):
            attn_weights = T.matmul(query, key.transpose(-1, -2))
            if self.scale_attn_weights:
                attn_weights = attn_weights / T.full(
                    [], value.size(-1) ** 0.5, dtype=attn_weights.dtype, device=attn_weights.device)
            query_length, key_length = query.size(-2), key.size(-2)
            causal_mask = self.bias[:, :, key_length - query_length: key_length, :key_length]
            mask_value = T.finfo(attn_weights.dtype).min
            mask_value = T.full([], mask_value, dtype=attn_weights.dtype, device=attn_weights.device)
            attn_weights = T.where(causal_mask, attn_weights.to(attn_weights.dtype), mask_value)
            if attention_mask is not None:
                attn_weights = attn_weights + attention_mask
            attn_weights = nn.functional.softmax(attn_weights, dim=-1)
            attn_weights = attn_weights.type(value.dtype)
            attn_weights = self.attn_dropout(attn_weights)
            attn_output = T.matmul(attn_weights, value)
            return attn_output, attn_weights

        def forward(self, hidden_states, layer_past=None, attention_mask=None, use_cache=False):
            query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)
            query = self._split_heads(query, self.num_heads, self.head_dim)
            key = self._split_heads(key, self.num_heads, self.head_dim)
            value = self._split_heads(value, self.num_heads, self.head_dim)
            if layer_past is not None:
                past_key, past_value = layer_past
                key = T.cat((past_key, key), dim=-2)
                value = T.cat((past_value, value), dim=-2)
            present = (key, value) if use_cache else None
            attn_output, attn_weights = self._attn(query, key, value, attention_mask)
            attn_output = self._merge_heads(attn_output, self.num_heads, self.head_dim)
            attn_output = self.c_proj(attn_output)
            attn_output = self.resid_dropout(attn_output)
            return attn_output, present

    class GPT2MLP(nn.Module):
        def __init__(self, intermediate_size):
            super().__init__()
            self.c_fc = Conv1D(intermediate_size, n_embd)
            self.c_proj = Conv1D(n_embd, intermediate_size)
            self.act = NewGELUActivation() if n_layer > 2 else nn.GELU(approximate="tanh")
            self.dropout = nn.Dropout(0.0)

        def forward(self, hidden_states):
            return self.dropout(self.c_proj(self.act(self.c_fc(hidden_states))))

    class GPT2Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5)
            self.attn = GPT2Attention()
            self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5)
            self.mlp = GPT2MLP(4 * n_embd)

        def forward(self, hidden_states, layer_past=None, attention_mask=None, use_cache=False):
            attn_output, present = self.attn(self.ln_1(hidden_states), layer_past, attention_mask, use_cache)
            hidden_states = attn_output + hidden_states
            hidden_states = hidden_states + self.mlp(self.ln_2(hidden_states))
            return hidden_states, present

    class GPT2LMHeadModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, n_embd)
            self.wpe = nn.Embedding(n_positions, n_embd)
            self.h = nn.ModuleList([GPT2Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, input_ids, attention_mask=None, labels=None, past_key_values=None, use_cache=False):
            input_shape = input_ids.size()
            past_length = 0 if past_key_values is None else past_key_values[0][0].size(-2)
            position_ids = T.arange(past_length, input_shape[-1] + past_length, dtype=T.long,
                                    device=input_ids.device).unsqueeze(0)
            if attention_mask is not None:
                attention_mask = attention_mask.view(input_shape[0], -1)
                attention_mask = attention_mask[:, None, None, :]
                attention_mask = attention_mask.to(dtype=self.wte.weight.dtype)
                attention_mask = (1.0 - attention_mask) * T.finfo(self.wte.weight.dtype).min
            hidden_states = self.wte(input_ids) + self.wpe(position_ids)
            presents = () if use_cache else None
            for i, block in enumerate(self.h):
                layer_past = None if past_key_values is None else past_key_values[i]
                hidden_states, present = block(hidden_states, layer_past, attention_mask, use_cache)
                if use_cache:
                    presents = presents + (present,)
            hidden_states = self.ln_f(hidden_states)
            lm_logits = self.lm_head(hidden_states)
            loss = None
            if labels is not None:
                shift_logits = lm_logits[..., :-1, :].contiguous()
                shift_labels = labels[..., 1:].contiguous()
                loss_fct = nn.CrossEntropyLoss()
                loss = loss_fct(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1))
            return loss, lm_logits, presents

    T.manual_seed(0)
    return GPT2LMHeadModel()


def train_gpt2(T, device, init, ids, lengths, n_layer, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lambda T: gpt2(T, n_layer=n_layer), init, device)
    input_ids = T.from_numpy(ids).to(device)
    # right padding: mask out the pad positions, and -100 their labels
    attention_mask = (T.arange(ids.shape[1], device=device)[None, :] < T.tensor(lengths, device=device)[:, None]).long()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    no_decay = ["bias", "ln_", "LayerNorm.weight"]
    grouped = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
         "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = T.optim.AdamW(grouped, lr=5e-3)
    scheduler = T.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 2))
    losses = []
    model.train()
    for _ in range(steps):
        loss, _, _ = model(input_ids, attention_mask=attention_mask, labels=labels)
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        prompt = input_ids[:1, :3]
        _, logits, past = model(prompt, use_cache=True)
        generated = prompt
        for _ in range(3):
            next_token = logits[:, -1, :].argmax(-1).unsqueeze(-1)
            generated = T.cat([generated, next_token], dim=-1)
            _, logits, past = model(next_token, past_key_values=past, use_cache=True)
        _, full, _ = model(generated)
        losses += generated[0].tolist() + logits[0, -1].tolist() + full[0, -1].tolist()
    return losses, numpy_state(model)


@pytest.mark.parametrize("n_layer", [2, 3])
def test_gpt2(device, n_layer):
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 15, (3, 7))
    init = numpy_state(gpt2(torch, n_layer=n_layer))
    run_both(train_gpt2, device, init, ids, [7, 5, 4], n_layer)


# ---- 3. HF BERT: token types, extended attention mask, pooler, MLM head with -100 labels ----------------

def bert(T, vocab=20, hidden=8, heads=2, layers=2, max_pos=12, type_vocab=2):
    nn = T.nn

    class BertEmbeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(vocab, hidden, padding_idx=0)
            self.position_embeddings = nn.Embedding(max_pos, hidden)
            self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
            self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
            self.dropout = nn.Dropout(0.0)
            self.register_buffer("position_ids", T.arange(max_pos).expand((1, -1)), persistent=False)
            self.register_buffer("token_type_ids", T.zeros(self.position_ids.size(), dtype=T.long),
                                 persistent=False)

        def forward(self, input_ids, token_type_ids=None):
            seq_length = input_ids.size()[1]
            position_ids = self.position_ids[:, :seq_length]
            if token_type_ids is None:
                buffered = self.token_type_ids[:, :seq_length]
                token_type_ids = buffered.expand(input_ids.size(0), seq_length)
            embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
            embeddings += self.position_embeddings(position_ids)
            return self.dropout(self.LayerNorm(embeddings))

    class BertSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_attention_heads = heads
            self.attention_head_size = hidden // heads
            self.all_head_size = hidden
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden, bias=False)  # a key bias has an exactly-zero gradient
            self.value = nn.Linear(hidden, hidden)

        def transpose_for_scores(self, x):
            new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
            x = x.view(new_x_shape)
            return x.permute(0, 2, 1, 3)

        def forward(self, hidden_states, attention_mask=None):
            query_layer = self.transpose_for_scores(self.query(hidden_states))
            key_layer = self.transpose_for_scores(self.key(hidden_states))
            value_layer = self.transpose_for_scores(self.value(hidden_states))
            attention_scores = T.matmul(query_layer, key_layer.transpose(-1, -2))
            attention_scores = attention_scores / math.sqrt(self.attention_head_size)
            if attention_mask is not None:
                attention_scores = attention_scores + attention_mask
            attention_probs = nn.functional.softmax(attention_scores, dim=-1)
            context_layer = T.matmul(attention_probs, value_layer)
            context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
            new_context_layer_shape = context_layer.size()[:-2] + (self.all_head_size,)
            return context_layer.view(new_context_layer_shape)

    class BertLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = BertSelfAttention()
            self.attention_output = nn.Linear(hidden, hidden)
            self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
            self.intermediate = nn.Linear(hidden, 4 * hidden)
            self.output = nn.Linear(4 * hidden, hidden)
            self.output_norm = nn.LayerNorm(hidden, eps=1e-12)

        def forward(self, hidden_states, attention_mask):
            attn = self.attention_norm(self.attention_output(self.attention(hidden_states, attention_mask))
                                       + hidden_states)
            inter = nn.functional.gelu(self.intermediate(attn))
            return self.output_norm(self.output(inter) + attn)

    class BertForPreTraining(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = BertEmbeddings()
            self.layer = nn.ModuleList([BertLayer() for _ in range(layers)])
            self.pooler = nn.Linear(hidden, hidden)
            self.transform = nn.Linear(hidden, hidden)
            self.transform_norm = nn.LayerNorm(hidden, eps=1e-12)
            self.decoder = nn.Linear(hidden, vocab, bias=False)
            self.decoder_bias = nn.Parameter(T.zeros(vocab))
            self.decoder.weight = self.embeddings.word_embeddings.weight
            self.seq_relationship = nn.Linear(hidden, 2)

        def get_extended_attention_mask(self, attention_mask, dtype):
            extended_attention_mask = attention_mask[:, None, None, :]
            extended_attention_mask = extended_attention_mask.to(dtype=dtype)
            return (1.0 - extended_attention_mask) * T.finfo(dtype).min

        def forward(self, input_ids, attention_mask, token_type_ids, labels=None, next_sentence_label=None):
            extended = self.get_extended_attention_mask(attention_mask, self.pooler.weight.dtype)
            hidden_states = self.embeddings(input_ids, token_type_ids)
            for layer in self.layer:
                hidden_states = layer(hidden_states, extended)
            pooled = T.tanh(self.pooler(hidden_states[:, 0]))
            h = self.transform_norm(nn.functional.gelu(self.transform(hidden_states)))
            prediction_scores = self.decoder(h) + self.decoder_bias
            seq_relationship_score = self.seq_relationship(pooled)
            loss_fct = nn.CrossEntropyLoss()  # -100 index = padding token
            masked_lm_loss = loss_fct(prediction_scores.view(-1, vocab), labels.view(-1))
            next_sentence_loss = loss_fct(seq_relationship_score.view(-1, 2), next_sentence_label.view(-1))
            return masked_lm_loss + next_sentence_loss, prediction_scores

    T.manual_seed(0)
    return BertForPreTraining()


def train_bert(T, device, init, ids, lengths, mask_draw, steps=3):
    device = device_of(T, device)
    model = ported_model(T, bert, init, device)
    assert model.decoder.weight is model.embeddings.word_embeddings.weight
    input_ids = T.from_numpy(ids).to(device)
    b, t = input_ids.shape
    attention_mask = T.zeros(b, t, dtype=T.long, device=device)
    token_type_ids = T.zeros(b, t, dtype=T.long, device=device)
    for i, n in enumerate(lengths):
        attention_mask[i, :n] = 1
        token_type_ids[i, n // 2:n] = 1
    input_ids = input_ids * attention_mask  # pad id 0
    # DataCollatorForLanguageModeling: mask 15% (drawn in NumPy), label -100 elsewhere
    labels = input_ids.clone()
    probability_matrix = T.from_numpy(mask_draw).to(device)
    special = (input_ids == 0) | (T.arange(t, device=device) == 0)
    probability_matrix.masked_fill_(special, value=0.0)
    masked_indices = probability_matrix > 0.7
    labels[~masked_indices] = -100
    inputs = input_ids.clone()
    inputs[masked_indices] = 3  # [MASK]
    next_sentence_label = T.tensor([0, 1, 1], device=device)
    optimizer = T.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss, scores = model(inputs, attention_mask, token_type_ids, labels, next_sentence_label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    predictions = scores.argmax(-1)[masked_indices]
    return losses + predictions.tolist() + [int(masked_indices.sum())], numpy_state(model)


def test_bert_pretraining(device):
    rng = np.random.default_rng(11)
    ids = rng.integers(4, 20, (3, 8))
    draw = rng.random((3, 8)).astype(np.float32)
    init = numpy_state(bert(torch))
    run_both(train_bert, device, init, ids, [8, 6, 5], draw)


# ---- 4. HF T5: relative position buckets, bias shared across layers ------------------------------------

def t5_relative_position_bucket(T, relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(T.long) * num_buckets
        relative_position = T.abs(relative_position)
    else:
        relative_position = -T.min(relative_position, T.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    relative_position_if_large = max_exact + (
        T.log(relative_position.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(T.long)
    relative_position_if_large = T.min(
        relative_position_if_large, T.full_like(relative_position_if_large, num_buckets - 1)
    )
    relative_buckets += T.where(is_small, relative_position, relative_position_if_large)
    return relative_buckets


def t5_encoder(T, vocab=13, d_model=8, n_heads=2, d_kv=4, num_buckets=8, max_distance=16, is_decoder=False):
    nn = T.nn

    class T5LayerNorm(nn.Module):
        def __init__(self, hidden_size, eps=1e-6):
            super().__init__()
            self.weight = nn.Parameter(T.ones(hidden_size))
            self.variance_epsilon = eps

        def forward(self, hidden_states):
            variance = hidden_states.to(T.float32).pow(2).mean(-1, keepdim=True)
            hidden_states = hidden_states * T.rsqrt(variance + self.variance_epsilon)
            return self.weight * hidden_states

    class T5Attention(nn.Module):
        def __init__(self, has_relative_attention_bias):
            super().__init__()
            self.has_relative_attention_bias = has_relative_attention_bias
            self.q = nn.Linear(d_model, n_heads * d_kv, bias=False)
            self.k = nn.Linear(d_model, n_heads * d_kv, bias=False)
            self.v = nn.Linear(d_model, n_heads * d_kv, bias=False)
            self.o = nn.Linear(n_heads * d_kv, d_model, bias=False)
            if self.has_relative_attention_bias:
                self.relative_attention_bias = nn.Embedding(num_buckets, n_heads)

        def compute_bias(self, query_length, key_length, device=None):
            context_position = T.arange(query_length, dtype=T.long, device=device)[:, None]
            memory_position = T.arange(key_length, dtype=T.long, device=device)[None, :]
            relative_position = memory_position - context_position
            relative_position_bucket = t5_relative_position_bucket(
                T, relative_position, bidirectional=(not is_decoder), num_buckets=num_buckets,
                max_distance=max_distance)
            values = self.relative_attention_bias(relative_position_bucket)
            values = values.permute([2, 0, 1]).unsqueeze(0)
            return values

        def forward(self, hidden_states, mask, position_bias=None):
            batch_size, seq_length = hidden_states.shape[:2]

            def shape(states):
                return states.view(batch_size, -1, n_heads, d_kv).transpose(1, 2)

            query_states = shape(self.q(hidden_states))
            key_states = shape(self.k(hidden_states))
            value_states = shape(self.v(hidden_states))
            scores = T.matmul(query_states, key_states.transpose(3, 2))  # T5: no 1/sqrt(d) scaling
            if position_bias is None:
                position_bias = self.compute_bias(seq_length, seq_length, device=scores.device)
                position_bias = position_bias + mask
            scores += position_bias
            attn_weights = nn.functional.softmax(scores.float(), dim=-1).type_as(scores)
            attn_output = T.matmul(attn_weights, value_states)
            attn_output = attn_output.transpose(1, 2).contiguous().view(batch_size, -1, n_heads * d_kv)
            return self.o(attn_output), position_bias

    class T5Block(nn.Module):
        def __init__(self, has_relative_attention_bias):
            super().__init__()
            self.layer_norm = T5LayerNorm(d_model)
            self.SelfAttention = T5Attention(has_relative_attention_bias)
            self.ff_norm = T5LayerNorm(d_model)
            self.wi = nn.Linear(d_model, 2 * d_model, bias=False)
            self.wo = nn.Linear(2 * d_model, d_model, bias=False)

        def forward(self, hidden_states, mask, position_bias=None):
            attn, position_bias = self.SelfAttention(self.layer_norm(hidden_states), mask, position_bias)
            hidden_states = hidden_states + attn
            ff = self.wo(nn.functional.relu(self.wi(self.ff_norm(hidden_states))))
            return hidden_states + ff, position_bias

    class T5Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(vocab, d_model)
            self.block = nn.ModuleList([T5Block(bool(i == 0)) for i in range(2)])
            self.final_layer_norm = T5LayerNorm(d_model)
            self.head = nn.Linear(d_model, vocab, bias=False)

        def forward(self, input_ids, attention_mask):
            mask = (1.0 - attention_mask[:, None, None, :].to(T.float32)) * T.finfo(T.float32).min
            if is_decoder:
                seq_length = input_ids.shape[1]
                causal = T.tril(T.ones(seq_length, seq_length, device=input_ids.device))
                mask = mask + (1.0 - causal[None, None]) * T.finfo(T.float32).min
            hidden_states = self.embed_tokens(input_ids)
            position_bias = None
            for block in self.block:
                hidden_states, position_bias = block(hidden_states, mask, position_bias)
            return self.head(self.final_layer_norm(hidden_states) * (d_model ** -0.5))

    T.manual_seed(0)
    return T5Encoder()


def train_t5(T, device, init, ids, lengths, is_decoder, steps=3):
    device = device_of(T, device)
    model = ported_model(T, lambda T: t5_encoder(T, is_decoder=is_decoder), init, device)
    input_ids = T.from_numpy(ids).to(device)
    attention_mask = T.ones_like(input_ids)
    for i, n in enumerate(lengths):
        attention_mask[i, n:] = 0
    labels = T.where(attention_mask.bool(), input_ids.roll(-1, dims=1), T.full_like(input_ids, -100))
    optimizer = T.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        logits = model(input_ids, attention_mask)
        loss = T.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    rel = T.arange(-20, 21, device=device)
    buckets = t5_relative_position_bucket(T, rel[None, :], bidirectional=not is_decoder, num_buckets=8,
                                          max_distance=16)
    return losses + buckets.flatten().tolist(), numpy_state(model)


@pytest.mark.parametrize("is_decoder", [False, True])
def test_t5_relative_attention(device, is_decoder):
    ids = np.random.default_rng(2).integers(0, 13, (2, 9))
    init = numpy_state(t5_encoder(torch, is_decoder=is_decoder))
    run_both(train_t5, device, init, ids, [9, 6], is_decoder)



# ---- 5. lit-gpt: fused grouped qkv, rope cache, KV cache written with index_copy_, input_pos decoding ---

def litgpt(T, vocab=13, n_embd=16, n_head=4, n_query_groups=2, n_layer=2, block_size=10):
    nn, F = T.nn, T.nn.functional
    head_size = n_embd // n_head

    def build_rope_cache(seq_len, n_elem, base=10000):
        theta = 1.0 / (base ** (T.arange(0, n_elem, 2).float() / n_elem))
        seq_idx = T.arange(seq_len)
        idx_theta = T.outer(seq_idx, theta).repeat(1, 2)
        return T.cos(idx_theta), T.sin(idx_theta)

    def apply_rope(x, cos, sin):
        head_size = x.size(-1)
        x1 = x[..., : head_size // 2]
        x2 = x[..., head_size // 2:]
        rotated = T.cat((-x2, x1), dim=-1)
        roped = (x * cos) + (rotated * sin)
        return roped.to(dtype=x.dtype)

    class KVCache(nn.Module):
        def __init__(self, k_shape, v_shape, device=None):
            super().__init__()
            self.register_buffer("k", T.zeros(k_shape, device=device), persistent=False)
            self.register_buffer("v", T.zeros(v_shape, device=device), persistent=False)

        def forward(self, input_pos, k, v):
            self.k = self.k.to(k.dtype)
            self.v = self.v.to(v.dtype)
            k = self.k.index_copy_(2, input_pos, k)
            v = self.v.index_copy_(2, input_pos, v)
            return k, v

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            shape = (n_head + 2 * n_query_groups) * head_size
            self.attn = nn.Linear(n_embd, shape, bias=False)
            self.proj = nn.Linear(n_embd, n_embd, bias=False)
            self.kv_cache = None

        def forward(self, x, cos, sin, mask=None, input_pos=None):
            B, T_, C = x.size()
            qkv = self.attn(x)
            q_per_kv = n_head // n_query_groups
            total_qkv = q_per_kv + 2
            qkv = qkv.view(B, T_, n_query_groups, total_qkv, head_size)
            qkv = qkv.permute(0, 2, 3, 1, 4)  # (B, n_query_groups, total_qkv, T, hs)
            q, k, v = qkv.split((q_per_kv, 1, 1), dim=2)
            k = k.expand(B, n_query_groups, q_per_kv, T_, head_size)
            v = v.expand(B, n_query_groups, q_per_kv, T_, head_size)
            q = q.reshape(B, -1, T_, head_size)
            k = k.reshape(B, -1, T_, head_size)
            v = v.reshape(B, -1, T_, head_size)
            q = apply_rope(q, cos, sin)
            k = apply_rope(k, cos, sin)
            if input_pos is not None:
                k, v = self.kv_cache(input_pos, k, v)
            scale = 1.0 / math.sqrt(head_size)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=scale,
                                               is_causal=mask is None)
            y = y.transpose(1, 2).reshape(B, T_, C)
            return self.proj(y)

        def build_kv_cache(self, batch_size, max_seq_length, device=None):
            shape = (batch_size, n_head, max_seq_length, head_size)
            return KVCache(shape, shape, device=device)

    class LLaMAMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_1 = nn.Linear(n_embd, 2 * n_embd, bias=False)
            self.fc_2 = nn.Linear(n_embd, 2 * n_embd, bias=False)
            self.proj = nn.Linear(2 * n_embd, n_embd, bias=False)

        def forward(self, x):
            return self.proj(F.silu(self.fc_1(x)) * self.fc_2(x))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm_1 = nn.RMSNorm(n_embd, eps=1e-5)
            self.attn = CausalSelfAttention()
            self.norm_2 = nn.RMSNorm(n_embd, eps=1e-5)
            self.mlp = LLaMAMLP()

        def forward(self, x, cos, sin, mask=None, input_pos=None):
            x = self.attn(self.norm_1(x), cos, sin, mask, input_pos) + x
            return self.mlp(self.norm_2(x)) + x

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(vocab, n_embd),
                h=nn.ModuleList(Block() for _ in range(n_layer)),
                ln_f=nn.RMSNorm(n_embd, eps=1e-5),
            ))
            self.max_seq_length = block_size
            cos, sin = build_rope_cache(block_size, head_size)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
            self.mask_cache = None

        def set_kv_cache(self, batch_size, device=None):
            for block in self.transformer.h:
                block.attn.kv_cache = block.attn.build_kv_cache(batch_size, self.max_seq_length, device)
            ones = T.ones((self.max_seq_length, self.max_seq_length), device=device, dtype=T.bool)
            self.mask_cache = T.tril(ones).unsqueeze(0).unsqueeze(0)

        def forward(self, idx, input_pos=None):
            T_ = idx.size(1)
            if input_pos is not None:
                cos = self.cos.index_select(0, input_pos)
                sin = self.sin.index_select(0, input_pos)
                mask = self.mask_cache.index_select(2, input_pos)
            else:
                cos = self.cos[:T_]
                sin = self.sin[:T_]
                mask = None
            x = self.transformer.wte(idx)
            for block in self.transformer.h:
                x = block(x, cos, sin, mask, input_pos)
            x = self.transformer.ln_f(x)
            return self.lm_head(x)

    T.manual_seed(0)
    return GPT()


def train_litgpt(T, device, init, data, steps=3):
    device = device_of(T, device)
    model = ported_model(T, litgpt, init, device)
    optimizer = T.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.02, betas=(0.9, 0.95))
    x = T.from_numpy(data[:, :-1]).to(device)
    y = T.from_numpy(data[:, 1:]).to(device)
    losses = []
    for _ in range(steps):
        logits = model(x)
        loss = T.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())

    # litgpt generate: prefill with input_pos = arange(T), then one position at a time
    model.eval()
    with T.no_grad():
        model.set_kv_cache(batch_size=1, device=device)
        prompt = x[:1, :4]
        input_pos = T.arange(0, prompt.size(1), device=device)
        tokens = [prompt[0]]
        logits = model(prompt, input_pos)
        for _ in range(4):
            next_token = T.argmax(logits[0, -1], dim=-1, keepdim=True)
            tokens.append(next_token)
            input_pos = input_pos[-1:] + 1
            logits = model(next_token.view(1, -1), input_pos)
        seq = T.cat(tokens)
        full = model(seq[None, :-1])
        losses += seq.tolist() + logits[0, -1].tolist() + full[0, -1].tolist()
    return losses, numpy_state(model)


def test_litgpt(device):
    data = np.random.default_rng(9).integers(0, 13, (2, 9))
    run_both(train_litgpt, device, numpy_state(litgpt(torch)), data)



# ---- 6. HF Mixtral: sparse MoE block (top-k routing, one_hot expert mask, where, index_add_), aux loss --

def mixtral_moe(T, hidden_dim=8, ffn_dim=12, num_experts=4, top_k=2, vocab=11):
    nn, F = T.nn, T.nn.functional

    class MixtralBlockSparseTop2MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.w1 = nn.Linear(hidden_dim, ffn_dim, bias=False)
            self.w2 = nn.Linear(ffn_dim, hidden_dim, bias=False)
            self.w3 = nn.Linear(hidden_dim, ffn_dim, bias=False)
            self.act_fn = nn.SiLU()

        def forward(self, hidden_states):
            current_hidden_states = self.act_fn(self.w1(hidden_states)) * self.w3(hidden_states)
            return self.w2(current_hidden_states)

    class MixtralSparseMoeBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_experts = num_experts
            self.top_k = top_k
            self.gate = nn.Linear(hidden_dim, num_experts, bias=False)
            self.experts = nn.ModuleList([MixtralBlockSparseTop2MLP() for _ in range(num_experts)])

        def forward(self, hidden_states):
            batch_size, sequence_length, hidden_dim = hidden_states.shape
            hidden_states = hidden_states.view(-1, hidden_dim)
            router_logits = self.gate(hidden_states)
            routing_weights = F.softmax(router_logits, dim=1, dtype=T.float)
            routing_weights, selected_experts = T.topk(routing_weights, self.top_k, dim=-1)
            routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
            routing_weights = routing_weights.to(hidden_states.dtype)
            final_hidden_states = T.zeros(
                (batch_size * sequence_length, hidden_dim), dtype=hidden_states.dtype, device=hidden_states.device)
            expert_mask = T.nn.functional.one_hot(selected_experts, num_classes=self.num_experts).permute(2, 1, 0)
            expert_hit = T.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
            for expert_idx in expert_hit:
                expert_layer = self.experts[expert_idx]
                idx, top_x = T.where(expert_mask[expert_idx].squeeze(0))
                current_state = hidden_states[None, top_x].reshape(-1, hidden_dim)
                current_hidden_states = expert_layer(current_state) * routing_weights[top_x, idx, None]
                final_hidden_states.index_add_(0, top_x, current_hidden_states.to(hidden_states.dtype))
            final_hidden_states = final_hidden_states.reshape(batch_size, sequence_length, hidden_dim)
            return final_hidden_states, router_logits

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(vocab, hidden_dim)
            self.norm = nn.RMSNorm(hidden_dim, eps=1e-6)
            self.block_sparse_moe = MixtralSparseMoeBlock()
            self.lm_head = nn.Linear(hidden_dim, vocab, bias=False)

        def forward(self, input_ids):
            h = self.embed_tokens(input_ids)
            moe_out, router_logits = self.block_sparse_moe(self.norm(h))
            return self.lm_head(h + moe_out), router_logits

    T.manual_seed(0)
    return Model()


def load_balancing_loss_func(T, gate_logits, num_experts, top_k=2):
    """HF's Switch-Transformer auxiliary loss, without an attention mask."""
    concatenated_gate_logits = T.cat([layer_gate for layer_gate in gate_logits], dim=0)
    routing_weights = T.nn.functional.softmax(concatenated_gate_logits, dim=-1)
    _, selected_experts = T.topk(routing_weights, top_k, dim=-1)
    expert_mask = T.nn.functional.one_hot(selected_experts, num_experts)
    tokens_per_expert = T.mean(expert_mask.float(), dim=0)
    router_prob_per_expert = T.mean(routing_weights, dim=0)
    overall_loss = T.sum(tokens_per_expert * router_prob_per_expert.unsqueeze(0))
    return overall_loss * num_experts


def train_moe(T, device, init, ids, steps=3):
    device = device_of(T, device)
    model = ported_model(T, mixtral_moe, init, device)
    optimizer = T.optim.AdamW(model.parameters(), lr=1e-2)
    x = T.from_numpy(ids[:, :-1]).to(device)
    y = T.from_numpy(ids[:, 1:]).to(device)
    losses = []
    for _ in range(steps):
        logits, router_logits = model(x)
        loss = T.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        aux_loss = load_balancing_loss_func(T, (router_logits,), 4)
        total = loss + 0.02 * aux_loss
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses += [loss.item(), aux_loss.item()]
    return losses, numpy_state(model)


def test_mixtral_moe(device):
    ids = np.random.default_rng(12).integers(0, 11, (3, 7))
    run_both(train_moe, device, numpy_state(mixtral_moe(torch)), ids)


# ---- 7. PEFT LoRA: frozen base, lora_A/lora_B, merge/unmerge, adapter-only state_dict, checkpointing ----

def lora_model(T, dim=8, hidden=16, vocab=11, r=4, lora_alpha=8, use_checkpoint=None):
    nn, F = T.nn, T.nn.functional

    class LoRALinear(nn.Module):
        """PEFT's lora.Linear: base_layer(x) + lora_B(lora_A(dropout(x))) * scaling."""

        def __init__(self, base_layer, r, lora_alpha, lora_dropout=0.0):
            super().__init__()
            self.base_layer = base_layer
            self.r = r
            self.scaling = lora_alpha / r
            self.lora_dropout = nn.Dropout(p=lora_dropout) if lora_dropout > 0.0 else nn.Identity()
            self.lora_A = nn.Linear(base_layer.in_features, r, bias=False)
            self.lora_B = nn.Linear(r, base_layer.out_features, bias=False)
            self.merged = False
            self.reset_lora_parameters()

        def reset_lora_parameters(self):
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
            nn.init.zeros_(self.lora_B.weight)

        def get_delta_weight(self):
            return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

        def merge(self):
            if not self.merged:
                with T.no_grad():
                    self.base_layer.weight += self.get_delta_weight()
                self.merged = True

        def unmerge(self):
            if self.merged:
                with T.no_grad():
                    self.base_layer.weight -= self.get_delta_weight()
                self.merged = False

        def forward(self, x):
            result = self.base_layer(x)
            if self.merged:
                return result
            return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(dim)
            self.q_proj = nn.Linear(dim, dim, bias=False)
            self.v_proj = nn.Linear(dim, dim, bias=False)
            self.o_proj = nn.Linear(dim, dim, bias=False)
            self.up = nn.Linear(dim, hidden)
            self.down = nn.Linear(hidden, dim)

        def forward(self, x):
            h = self.norm(x)
            q, v = self.q_proj(h), self.v_proj(h)
            attn = F.scaled_dot_product_attention(q.unsqueeze(1), h.unsqueeze(1), v.unsqueeze(1), is_causal=True)
            x = x + self.o_proj(attn.squeeze(1))
            return x + self.down(F.gelu(self.up(x), approximate="tanh"))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            self.blocks = nn.ModuleList([Block() for _ in range(2)])
            self.head = nn.Linear(dim, vocab)
            self.gradient_checkpointing = use_checkpoint

        def forward(self, idx):
            x = self.embed(idx)
            for block in self.blocks:
                if self.gradient_checkpointing and self.training:
                    use_reentrant = self.gradient_checkpointing == "reentrant"
                    x = T.utils.checkpoint.checkpoint(block, x, use_reentrant=use_reentrant)
                else:
                    x = block(x)
            return self.head(x)

    def inject_adapter(model, target_modules=("q_proj", "v_proj", "up")):
        key_list = [key for key, _ in model.named_modules()]
        for key in key_list:
            if not any(key.endswith(target) for target in target_modules):
                continue
            parent = model.get_submodule(".".join(key.split(".")[:-1]))
            target_name = key.split(".")[-1]
            target = model.get_submodule(key)
            new_module = LoRALinear(target, r, lora_alpha)
            setattr(parent, target_name, new_module)
            new_module.to(target.weight.device)
        return model

    def mark_only_lora_as_trainable(model):
        for n, p in model.named_parameters():
            if "lora_" not in n:
                p.requires_grad = False

    T.manual_seed(0)
    return Model(), inject_adapter, mark_only_lora_as_trainable


def train_lora(T, device, base_init, lora_init, ids, use_checkpoint, steps=3):
    device = device_of(T, device)
    model, inject_adapter, mark_only_lora_as_trainable = lora_model(T, use_checkpoint=use_checkpoint)
    model.load_state_dict({k: T.tensor(v) for k, v in base_init.items()})
    model = inject_adapter(model)
    # the base weights moved under base_layer.*; the adapter's lora_A comes from torch's init
    missing, unexpected = model.load_state_dict({k: T.tensor(v) for k, v in lora_init.items()}, strict=False)
    assert unexpected == [] and all("lora_" not in k for k in missing) and len(missing) > 0
    model = model.to(device)
    mark_only_lora_as_trainable(model)
    model.embed.requires_grad_(False)
    if use_checkpoint == "reentrant":  # HF's enable_input_require_grads: the reentrant variant needs it

        def make_inputs_require_grads(module, input, output):
            output.requires_grad_(True)

        model.embed.register_forward_hook(make_inputs_require_grads)
    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 12 and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    n_trainable = sum(p.numel() for p in trainable)
    n_all = sum(p.numel() for p in model.parameters())
    print(f"trainable params: {n_trainable} || all params: {n_all} || trainable%: {100 * n_trainable / n_all:.4f}")
    frozen_before = model.blocks[0].q_proj.base_layer.weight.detach().clone()
    optimizer = T.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-2)
    x = T.from_numpy(ids[:, :-1]).to(device)
    y = T.from_numpy(ids[:, 1:]).to(device)
    losses = []
    model.train()
    for _ in range(steps):
        logits = model(x)
        loss = T.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        assert model.blocks[0].q_proj.base_layer.weight.grad is None and model.head.weight.grad is None
        optimizer.step()
        losses.append(loss.item())
    assert T.equal(model.blocks[0].q_proj.base_layer.weight, frozen_before)

    model.eval()
    with T.no_grad():
        before = model(x)
        for module in model.modules():
            if hasattr(module, "merge") and hasattr(module, "lora_A"):
                module.merge()
        merged = model(x)
        # a copy: on the CPU .numpy() shares the weight's memory, and unmerge() below subtracts in place
        merged_weight = numpy_state(model)["blocks.1.up.base_layer.weight"].copy()
        for module in model.modules():
            if hasattr(module, "unmerge"):
                module.unmerge()
        after = model(x)
    assert T.allclose(before, merged, atol=1e-5) and T.allclose(before, after, atol=1e-5)

    # save only the adapter, load it into a fresh adapted model
    adapter = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(adapter) == 12
    fresh, inject, _ = lora_model(T)
    fresh = inject(fresh)
    fresh.load_state_dict({k: T.tensor(v) for k, v in base_init.items()} | {}, strict=False)
    result = fresh.to(device).load_state_dict(adapter, strict=False)
    assert len(result.missing_keys) > 0 and result.unexpected_keys == []
    state = numpy_state(model)
    state["merged_up"] = merged_weight
    return losses + merged[0, -1].tolist(), state


@pytest.mark.parametrize("use_checkpoint", [None, "reentrant", "non_reentrant"])
def test_lora(device, use_checkpoint):
    ids = np.random.default_rng(4).integers(0, 11, (2, 7))
    base, inject, _ = lora_model(torch)
    base_init = numpy_state(base)
    lora_init = {k: v for k, v in numpy_state(inject(base)).items() if "lora_" in k}
    run_both(train_lora, device, base_init, lora_init, ids, use_checkpoint)
