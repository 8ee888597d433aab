"""Attention scoring functions behind one dispatch.

Every kind takes q, k, v shaped (batch, heads, time, head_dim) and returns a tensor of v's
shape. Adding a kind means adding one function to ``KINDS``; the config's variant list is
checked against this table, so nothing else has to change.
"""

import math

import torch
import torch.nn.functional as F


def _causal_mask(t_q: int, t_k: int, device) -> torch.Tensor:
    """True where query i may look at key j (j <= i, aligned at the end like SDPA)."""
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def _softmax_attend(logits, v, causal: bool, dropout_p: float):
    """Softmax over explicit (..., t_q, t_k) logits, then the weighted sum of v."""
    if causal:
        mask = _causal_mask(logits.shape[-2], logits.shape[-1], logits.device)
        logits = logits.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(logits.float(), dim=-1).to(v.dtype)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


def dot(q, k, v, causal=True, dropout_p=0.0, p=2.0):
    """Scaled dot product q.k / sqrt(d_k), through PyTorch's fused SDPA kernels."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)


def euclid(q, k, v, causal=True, dropout_p=0.0, p=2.0):
    """Negative distance -||q - k||_p / sqrt(d_k), with an explicit score matrix.

    torch.cdist defines the gradient at distance zero (q == k) as zero, so identical query
    and key vectors never produce NaN gradients.
    """
    logits = -torch.cdist(q, k, p=p) / math.sqrt(q.shape[-1])
    return _softmax_attend(logits, v, causal, dropout_p)


KINDS = {"dot": dot, "euclid": euclid}


def attention(q, k, v, kind="dot", causal=True, dropout_p=0.0, p=2.0):
    """Attention of the given kind for tensors shaped (batch, heads, time, head_dim)."""
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; known kinds: {sorted(KINDS)}")
    return KINDS[kind](q, k, v, causal=causal, dropout_p=dropout_p, p=p)
