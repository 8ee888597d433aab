"""Float64 definitions by formula, independent of the implementations: the ground truth for the
tests, on the CPU and (marked gpu) on CUDA (tests/test_triton_attention.py).

Each kind is its textbook formula on an explicit (t_q x t_k) score matrix, sharing no code with
attnscore.scores, so that a bug there cannot hide here too. A kind not defined here is refused.
"""

import functools
import math

import torch


def _dot_logits(q, k):
    return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])


def _distance_logits(q, k, p=2.0):
    diff = q.unsqueeze(-2) - k.unsqueeze(-3)  # (..., t_q, t_k, d)
    return -diff.abs().pow(p).sum(-1).pow(1 / p) / math.sqrt(q.shape[-1])


def _cosine_logits(q, k, logit_scale=None):
    """Swin Transformer V2 (Liu et al. 2022): exp(min(logit_scale, log(1/0.01))) cos(q, k), the
    log-scale one per head (a tensor of n_heads) or one for all; None: its initial value, log 10."""
    log_scale = torch.as_tensor(math.log(10) if logit_scale is None else logit_scale).to(q.dtype)
    scale = log_scale.clamp(max=math.log(1 / 0.01)).exp().reshape(-1, 1, 1)
    cos = (q / q.norm(dim=-1, keepdim=True)) @ (k / k.norm(dim=-1, keepdim=True)).transpose(-1, -2)
    return scale * cos


def _squared_distance_logits(q, k):
    diff = q.unsqueeze(-2) - k.unsqueeze(-3)  # (..., t_q, t_k, d)
    return -diff.square().sum(-1) / math.sqrt(q.shape[-1])


def _sigmoid_logits(q, k, bias=None):
    """Ramapuram et al. 2024: q.k / sqrt(d) + b, b = -log(n) for n keys unless given."""
    return _dot_logits(q, k) + (-math.log(k.shape[-2]) if bias is None else bias)


# The logits of each kind, and the options (and learnable parameters) each takes. euclid and
# euclid_naive are two implementations of one definition.
LOGITS = {
    "dot": _dot_logits,
    "euclid": _distance_logits,
    "euclid_naive": _distance_logits,
    "cosine": _cosine_logits,
    "euclid_sq": _squared_distance_logits,
    "manhattan": functools.partial(_distance_logits, p=1.0),  # the L1 distance
    "sigmoid": _sigmoid_logits,
}
# The kinds whose weights are no softmax of their logits: elementwise, each weight alone.
WEIGHTS = {"sigmoid": torch.sigmoid}


def oracle(q, k, v, kind, *, causal=True, dropout_mask=None, **options):
    """weights v in float64, the weights softmax(logits) or the kind's own function of them
    (WEIGHTS). The causal mask is aligned at the end, as SDPA's. dropout_mask (..., t_q, t_k): the
    factor dropout multiplied each weight by (0 or 1 / (1 - p)) as an implementation drew it."""
    if kind not in LOGITS:
        raise ValueError(f"no float64 oracle for attention kind {kind!r}; defined: {sorted(LOGITS)}")
    q, k, v = q.double(), k.double(), v.double()
    logits = LOGITS[kind](q, k, **options)
    if causal:
        t_q, t_k = q.shape[-2], k.shape[-2]
        future = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).triu(t_k - t_q + 1)
        logits = logits.masked_fill(future, float("-inf"))
    weights = WEIGHTS[kind](logits) if kind in WEIGHTS else torch.softmax(logits, -1)
    if dropout_mask is not None:
        weights = weights * dropout_mask.double()
    return weights @ v


def rel_err(a, b) -> float:
    """||a - b|| / ||b|| in float64 (b the oracle)."""
    return ((a.double() - b.double()).norm() / b.double().norm()).item()
