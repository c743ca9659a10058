"""A character-level transformer language model, and sampling text from it.

    raygrad train examples/language/charlm.yaml
    raygrad generate runs/charlm --prompt "def " --length 200 --temperature 0.8

The model reads up to `context` characters (ASCII codes, stdlib_text.py) and predicts, at every
position, the next one: token and position embeddings, pre-norm transformer blocks with causal
self-attention (position i sees 0..i only), a final LayerNorm and a linear layer to VOCAB logits.

`CharTransformer.generate(prompt, length, temperature)` is what `raygrad generate` calls: any model
class that defines a method with that signature, returning text, can be sampled from the CLI.
"""
from __future__ import annotations

import numpy as np

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor.nn.transformer import generate_square_subsequent_mask

from stdlib_text import CONTEXT, VOCAB, decode, encode


def split_window(batch: dict) -> dict:
    """Loader transform: windows of CONTEXT + 1 codes -> input (N, CONTEXT) and next-character target, int64."""
    tokens = batch["tokens"].astype(np.int64)
    return {"input": tokens[:, :-1], "target": tokens[:, 1:]}


def lm_loss(logits, target):
    """Mean cross-entropy over every position: logits (N, T, VOCAB), target (N, T). Nats per character."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


class CharTransformer(nn.Module):
    """(N, T) int64 character codes, T <= context -> (N, T, vocab) logits of each next character."""

    def __init__(self, vocab: int = VOCAB, context: int = CONTEXT, d_model: int = 128, heads: int = 4,
                 layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.context = context
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(context, d_model)  # learned: one vector per position 0..context-1
        block = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, activation="relu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, vocab)

    def forward(self, codes):
        length = codes.shape[1]
        if length > self.context:
            raise ValueError(f"CharTransformer: {length} characters exceed its context of {self.context}")
        positions = tensor.arange(length, device=codes.device)
        x = self.tokens(codes) + self.positions(positions)
        causal = generate_square_subsequent_mask(length, device=codes.device)
        return self.head(self.blocks(x, mask=causal, is_causal=True))

    def generate(self, prompt: str, length: int, temperature: float = 1.0) -> str:
        """The prompt followed by `length` sampled characters (see sample)."""
        return sample(self, prompt, length, temperature, self.context)


def sample(model, prompt: str, length: int, temperature: float = 1.0, context: int = CONTEXT) -> str:
    """Extend `prompt` by `length` characters drawn one at a time from model(codes)[:, -1].

    model: (1, T) int64 codes -> (1, T, vocab) logits. temperature scales the logits: below 1
    favours likely characters, 0 always takes the most likely one (greedy). Draws come from NumPy's
    global generator (seed it for a repeatable sample). Each step reruns the model over the last
    `context` characters: simple, and fast enough for a few hundred characters.
    """
    if temperature < 0:
        raise ValueError(f"sample: temperature must be >= 0, got {temperature}")
    codes = list(encode(prompt or "\n"))  # an empty prompt starts a fresh line
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with tensor.no_grad():
            for _ in range(length):
                window = tensor.tensor([codes[-context:]], dtype=tensor.int64, device=device)
                logits = model(window)[0, -1].cpu().numpy().astype(np.float64)
                codes.append(_draw(logits, temperature))
    finally:
        model.train(was_training)
    return decode(codes) if prompt else decode(codes[1:])


def _draw(logits: np.ndarray, temperature: float) -> int:
    if temperature == 0:
        return int(logits.argmax())
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max())
    return int(np.random.choice(len(probs), p=probs / probs.sum()))
