"""euclid_naive: the negative p-norm distance with an explicit score matrix, as the reference
computed it; euclid's path for norms other than 2, and a benchmark baseline."""

import math

import torch
import torch.nn.functional as F

from attnscore.attention import register
from attnscore.scores._masks import causal_bias


def distance_flops(head_dim: int, p: float = 2.0) -> float:
    """p = 2: q.k (2 head_dim), then |q|^2 + |k|^2 - 2 q.k, the root and the scale (5); other
    p: a difference, a power and a sum per dimension, then the root and the scale."""
    return 2.0 * head_dim + 5 if p == 2 else 3.0 * head_dim + 2


@register(
    "euclid_naive", options={"p": {"type": "number", "exclusiveMinimum": 0, "default": 2.0}}, score_flops=distance_flops
)
def euclid_naive(q, k, v, causal=True, dropout_p=0.0, *, p=2.0):
    """Negative distance -||q - k||_p / sqrt(d_k) by separate autograd ops."""
    logits = -torch.cdist(q, k, p=p) / math.sqrt(q.shape[-1])
    if causal:
        logits = logits + causal_bias(q.shape[-2], k.shape[-2], q.device, logits.dtype)
    weights = torch.softmax(logits.float(), dim=-1).to(v.dtype)
    return (F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights) @ v
