"""A small transformer text classifier: which standard-library package a 128-character snippet comes from.

    raygrad train examples/language/classify.yaml

The snippets and labels come from stdlib_text.py (asyncio, email, importlib, multiprocessing,
unittest, xml: six balanced classes, chance 1/6). The model embeds the characters and their
positions, runs bidirectional (non-causal) transformer blocks, averages the positions and maps the
average to one logit per package. What it can learn: each package's vocabulary (`await`,
`MIMEText`, `loader`, `Process`, `assertEqual`, `Element`...) and its code style.
"""
from __future__ import annotations

import tensor
import tensor.nn as nn

from stdlib_text import PACKAGES, SNIPPET, VOCAB, encode


class SnippetClassifier(nn.Module):
    """(N, T) int64 character codes, T <= length -> (N, classes) logits."""

    def __init__(self, vocab: int = VOCAB, length: int = SNIPPET, classes: int = len(PACKAGES), d_model: int = 64,
                 heads: int = 4, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(length, d_model)
        block = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, activation="relu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, classes)

    def forward(self, codes):
        positions = tensor.arange(codes.shape[1], device=codes.device)
        x = self.blocks(self.tokens(codes) + self.positions(positions))
        return self.head(x.mean(dim=1))  # every position votes: snippets carry clues anywhere

    def predict(self, text: str) -> str:
        """The package name this model gives to `text` (its first `length` characters)."""
        codes = tensor.tensor([encode(text)[:self.positions.num_embeddings].tolist()], dtype=tensor.int64)
        self.eval()
        with tensor.no_grad():
            return PACKAGES[int(self(codes.to(self.head.weight.device)).argmax(dim=1).item())]
