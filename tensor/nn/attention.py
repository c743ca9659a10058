"""MultiheadAttention with PyTorch's arguments, parameter names (in_proj_weight, in_proj_bias,
out_proj; q/k/v_proj_weight when kdim/vdim differ), initialisation and mask conventions, so a
state dict moves between the two unchanged.

Masks follow PyTorch's MultiheadAttention, the opposite of scaled_dot_product_attention's: in a
bool attn_mask or key_padding_mask True means "may NOT attend"; float masks are added to the scores.
A query whose every key is masked gets zero output and weights (PyTorch gives zeros on its fast
path and NaN when it computes the weights).
"""
from __future__ import annotations

from ..creation import empty, zeros
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from . import init
from .functional.attention import attention
from .functional.linear import linear
from .linear import Linear
from .module import Module
from .parameter import Parameter


class NonDynamicallyQuantizableLinear(Linear):
    """PyTorch's name for out_proj's class (a plain Linear), kept so reprs match."""


class MultiheadAttention(Module):
    """Attention over `num_heads` heads of size embed_dim // num_heads.

    Shapes (batch_first=False): query (L, N, E), key (S, N, kdim), value (S, N, vdim) -> output
    (L, N, E) and, with need_weights, weights (N, L, S) averaged over heads or (N, H, L, S).
    batch_first=True puts N first; unbatched inputs drop N.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim {embed_dim} must be positive and divisible by num_heads {num_heads}"
            )
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), batch_first
        factory = dict(device=device, dtype=dtype)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, **factory))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, **factory))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, **factory))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **factory)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    # ------------------------------------------------------------------------------------ forward
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:  # work batch first: (N, L, E) views
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if is_causal and attn_mask is None:
            raise ValueError(
                "MultiheadAttention: is_causal=True is a hint that attn_mask is the causal mask; pass attn_mask too"
            )
        N, L, S = query.shape[0], query.shape[1], key.shape[1]
        self._check_inputs(query, key, value, N, S)
        causal = bool(is_causal) and key_padding_mask is None and not need_weights
        mask = None if causal else self._merge_masks(attn_mask, key_padding_mask, N, L, S, query.dtype, batched)
        q, k, v = self._project(query, key, value)
        heads = [t.reshape(N, t.shape[1], self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v)]
        dropout_p = self.dropout if self.training else 0.0
        out, weights = attention(*heads, attn_mask=mask, dropout_p=dropout_p, is_causal=causal,
                                 need_weights=need_weights)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, self.embed_dim))
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            return out.squeeze(0), (weights.squeeze(0) if weights is not None else None)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _project(self, query, key, value):
        """The q, k, v projections: one product for self-attention, two when key is value."""
        E, w, b = self.embed_dim, self.in_proj_weight, self.in_proj_bias
        bias = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        if not self._qkv_same_embed_dim:
            return tuple(linear(x, w_, b_) for x, w_, b_ in
                         zip((query, key, value), (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight), bias))
        if query is key and key is value:
            return linear(query, w, b).chunk(3, dim=-1)
        if key is value:
            kv_bias = None if b is None else b[E:]
            return (linear(query, w[:E], bias[0]), *linear(key, w[E:], kv_bias).chunk(2, dim=-1))
        return tuple(linear(x, w[i * E : (i + 1) * E], bias[i]) for i, x in enumerate((query, key, value)))

    def _check_inputs(self, query, key, value, N, S):
        if query.shape[-1] != self.embed_dim or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ShapeError(
                f"MultiheadAttention: feature sizes query {query.shape[-1]}, key {key.shape[-1]}, value "
                f"{value.shape[-1]} should be embed_dim {self.embed_dim}, kdim {self.kdim}, vdim {self.vdim}"
            )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != N:
            raise ShapeError(
                f"MultiheadAttention: key {tuple(key.shape)} and value {tuple(value.shape)} must share batch and "
                f"length with each other and the batch of query {tuple(query.shape)}"
            )

    def _merge_masks(self, attn_mask, key_padding_mask, N, L, S, dtype, batched):
        """One mask for scaled_dot_product_attention, broadcasting to (N, H, L, S): bool True = may
        attend when both inputs are bool, else float added to the scores."""
        masks = []
        if attn_mask is not None:
            expected = [(L, S), (N * self.num_heads, L, S)] if batched else [(L, S), (self.num_heads, L, S)]
            if tuple(attn_mask.shape) not in expected:
                raise ShapeError(
                    f"MultiheadAttention: attn_mask shape {tuple(attn_mask.shape)} should be one of {expected}"
                )
            masks.append(attn_mask.reshape(N, self.num_heads, L, S) if attn_mask.dim() == 3 else attn_mask)
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (N, S):
                raise ShapeError(
                    f"MultiheadAttention: key_padding_mask shape {tuple(key_padding_mask.shape)} should be {(N, S)}"
                )
            masks.append(key_padding_mask.reshape(N, 1, 1, S))
        if not masks:
            return None
        for m in masks:
            if not isinstance(m, Tensor) or (m.dtype != bool and m.dtype != dtype):
                raise DTypeError(f"MultiheadAttention: masks must be bool or {dtype} tensors, got {m.dtype}")
        if all(m.dtype == bool for m in masks):
            blocked = masks[0] if len(masks) == 1 else masks[0].logical_or(masks[1])
            return blocked.logical_not()
        total = None
        for m in masks:
            additive = zeros(tuple(m.shape), dtype=dtype, device=m.device).masked_fill(m, float("-inf")) \
                if m.dtype == bool else m
            total = additive if total is None else total + additive
        return total
