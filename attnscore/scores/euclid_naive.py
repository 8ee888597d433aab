"""euclid_naive: the negative p-norm distance with an explicit score matrix, as the reference
computed it; euclid's path for norms other than 2, and a benchmark baseline."""

import math

import torch
import torch.nn.functional as F

from attnscore.attention import register
from attnscore.scores._masks import causal_mask


@register("euclid_naive", options={"p": {"type": "number", "exclusiveMinimum": 0, "default": 2.0}})
def euclid_naive(q, k, v, causal=True, dropout_p=0.0, *, p=2.0):
    """Negative distance -||q - k||_p / sqrt(d_k): torch.cdist, then mask, softmax and dropout
    as separate autograd ops."""
    logits = -torch.cdist(q, k, p=p) / math.sqrt(q.shape[-1])
    if causal:
        logits = logits.masked_fill(causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    weights = torch.softmax(logits.float(), dim=-1).to(v.dtype)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v
