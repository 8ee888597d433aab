"""euclid_sq: the negative squared Euclidean distance, as dot-product attention."""

import math

import torch
import torch.nn.functional as F

from attnscore.attention import register


@register("euclid_sq", score_flops=lambda head_dim: 2.0 * head_dim + 2)  # q.k, then - |k|^2 and the scale
def euclid_sq(q, k, v, causal=True, dropout_p=0.0):
    """Negative squared distance -||q - k||^2 / sqrt(d_k), as dot-product attention: ||q||^2 is
    the same along a softmax row, so the logits may be (2 q.k - ||k||^2) / sqrt(d_k), the dot
    product of q' = [2q, -1, -1] and k' = [k, hi, lo], hi + lo = ||k||^2: two columns in k's
    dtype, so that in bf16 the bias keeps about 16 bits, not 8 (in float32 lo is 0). Through SDPA
    on those heads, zero-padded (v too) to one width, a multiple of 8, as the fused kernels want;
    the zeros add exactly 0."""
    d, d_v = q.shape[-1], v.shape[-1]
    width = -(-max(d + 2, d_v) // 8) * 8
    squared = k.to(torch.promote_types(k.dtype, torch.float32)).square().sum(-1, keepdim=True)
    hi = squared.to(k.dtype)
    lo = (squared - hi).to(k.dtype)
    q = F.pad(torch.cat([q * 2, q.new_full((*q.shape[:-1], 2), -1.0)], -1), (0, width - d - 2))
    k = F.pad(torch.cat([k, hi, lo], -1), (0, width - d - 2))
    out = F.scaled_dot_product_attention(
        q, k, F.pad(v, (0, width - d_v)), is_causal=causal, dropout_p=dropout_p, scale=1 / math.sqrt(d)
    )
    return out[..., :d_v]
