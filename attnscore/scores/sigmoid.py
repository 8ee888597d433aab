"""sigmoid: elementwise sigmoid weights, not normalised over the keys."""

import math

import torch
import torch.nn.functional as F

from attnscore.attention import register
from attnscore.scores._masks import causal_bias


@register(
    "sigmoid",
    options={"bias": {"type": ["number", "null"], "default": None}},
    score_flops=lambda head_dim, bias=None: 2.0 * head_dim + 1,  # q.k, then the bias
)
def sigmoid(q, k, v, causal=True, dropout_p=0.0, *, bias=None):
    """Sigmoid attention (Ramapuram et al. 2024, "Theory, Analysis, and Best Practices for
    Sigmoid Self-Attention"): weights sigmoid(q.k / sqrt(d_k) + b), b = -log(number of keys)
    unless ``bias`` is given, by autograd ops in float32 at least."""
    b = -math.log(k.shape[-2]) if bias is None else bias
    compute = torch.promote_types(q.dtype, torch.float32)
    logits = (q @ k.transpose(-1, -2)).to(compute) * (1 / math.sqrt(q.shape[-1])) + b
    if causal:
        logits = logits + causal_bias(q.shape[-2], k.shape[-2], q.device, compute)  # sigmoid(-inf) = 0
    weights = torch.sigmoid(logits).to(v.dtype)
    return (F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights) @ v
