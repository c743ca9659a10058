"""AdaptiveLogSoftmaxWithLoss (Grave et al., "Efficient softmax approximation for GPUs"): a softmax over
many classes sorted by frequency, split by `cutoffs` into a head (the frequent classes plus one entry
per tail cluster) and tail clusters that project the input to smaller sizes first.

Parameter names and layout are PyTorch's (head.weight, tail.{i}.0.weight, tail.{i}.1.weight), so the
weights port unchanged and give the same results.
"""
from __future__ import annotations

import itertools
from collections import namedtuple

from ..errors import ShapeError
from ..ops.join import cat
from ..ops.reduce import argmax
from .containers import ModuleList, Sequential
from .functional.activation import log_softmax
from .linear import Linear
from .module import Module

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(Module):
    """forward(input (N, in_features) or (in_features,), target (N,) or ()) -> (output: the target's
    log-probability per example, loss: their mean negated). Cluster i (from 1) projects to
    in_features // div_value ** i features; log_prob gives all n_classes, predict the best class."""

    def __init__(self, in_features, n_classes, cutoffs, div_value=4.0, head_bias=False, device=None, dtype=None):
        super().__init__()
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError(f"cutoffs should be a sequence of unique, positive integers sorted in an increasing "
                             f"order, where each value is between 1 and n_classes-1 ({n_classes - 1}); got {cutoffs}")
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = [int(c) for c in cutoffs] + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        factory = dict(device=device, dtype=dtype)
        self.head = Linear(in_features, self.head_size, bias=head_bias, **factory)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hidden = int(in_features // (div_value ** (i + 1)))
            size = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(Linear(in_features, hidden, bias=False, **factory),
                                        Linear(hidden, size, bias=False, **factory)))

    def reset_parameters(self):
        self.head.reset_parameters()
        for i2h, h2o in self.tail:
            i2h.reset_parameters()
            h2o.reset_parameters()

    def forward(self, input_, target_):
        batched = self._check(input_, target_)
        input = input_ if batched else input_.unsqueeze(0)  # noqa: A001
        target = target_ if batched else target_.unsqueeze(0)
        batch = target.shape[0]
        output = input.new_zeros(batch)
        head_index = target.new_zeros(batch)  # the head entry each example reads: its class, or its cluster
        used = 0
        for i, (low, high) in enumerate(itertools.pairwise([0] + self.cutoffs)):
            mask = (target >= low) & (target < high)
            rows = mask.nonzero().reshape(-1)
            if rows.numel() == 0:
                continue
            if i == 0:
                head_index = head_index.index_copy(0, rows, target[mask])
            else:
                cluster = log_softmax(self.tail[i - 1](input.index_select(0, rows)), dim=1)
                local = cluster.gather(1, (target[mask] - low).unsqueeze(1)).squeeze(1)
                head_index = head_index.index_fill(0, rows, self.shortlist_size + i - 1)
                output = output.index_copy(0, rows, local)
            used += rows.numel()
        if used != batch:
            raise RuntimeError(f"AdaptiveLogSoftmaxWithLoss: target values should be in [0, {self.n_classes - 1}], "
                             f"but values in range [{target.min().item()}, {target.max().item()}] were found")
        head_logprob = log_softmax(self.head(input), dim=1)
        output = output + head_logprob.gather(1, head_index.unsqueeze(1)).squeeze(1)
        loss = (-output).mean()
        return _ASMoutput(output if batched else output.squeeze(0), loss)

    def _check(self, input, target):
        """Is the call batched? (2-d input with 1-d target, or 1-d input with 0-d target.)"""
        if target.dim() == 1:
            if input.dim() != 2:
                raise ShapeError(f"AdaptiveLogSoftmaxWithLoss: a 1-d target expects a 2-d input (N, in_features), "
                                 f"got input shape {tuple(input.shape)}")
            if input.shape[0] != target.shape[0]:
                raise ShapeError(f"AdaptiveLogSoftmaxWithLoss: input and target should have the same size in the "
                                 f"batch dimension, got {input.shape[0]} and {target.shape[0]}")
            return True
        if target.dim() == 0:
            if input.dim() != 1:
                raise ShapeError(f"AdaptiveLogSoftmaxWithLoss: a 0-d target expects a 1-d input (in_features,), "
                                 f"got input shape {tuple(input.shape)}")
            return False
        raise ShapeError(f"AdaptiveLogSoftmaxWithLoss: expected a 0-d or 1-d target (multi-target is not supported), "
                         f"got shape {tuple(target.shape)}")

    def _get_full_log_prob(self, input, head_output):
        head_logprob = log_softmax(head_output, dim=1)
        parts = [head_logprob[:, :self.shortlist_size]]
        for i in range(self.n_clusters):
            cluster = log_softmax(self.tail[i](input), dim=1)
            parts.append(cluster + head_logprob[:, self.shortlist_size + i].unsqueeze(1))
        return cat(parts, dim=1)

    def log_prob(self, input):  # noqa: A002
        """(N, in_features) -> (N, n_classes) log-probabilities of every class."""
        return self._get_full_log_prob(input, self.head(input))

    def predict(self, input):  # noqa: A002
        """(N, in_features) -> (N,) the most likely class, same as log_prob(input).argmax(1); the tail
        clusters run only for the examples whose best head entry is a cluster."""
        head_output = self.head(input)
        output = argmax(head_output, dim=1)
        outside = output >= self.shortlist_size
        if not bool(outside.any()):
            return output
        if bool(outside.all()):
            return argmax(self._get_full_log_prob(input, head_output), dim=1)
        rows = outside.nonzero().reshape(-1)
        best = argmax(self._get_full_log_prob(input[outside], head_output[outside]), dim=1)
        return output.index_copy(0, rows, best)
