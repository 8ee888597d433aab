"""dot: the scaled dot product, the baseline every other kind is compared with."""

import torch.nn.functional as F

from attnscore.attention import register


@register("dot")
def dot(q, k, v, causal=True, dropout_p=0.0):
    """Scaled dot product q.k / sqrt(d_k), through PyTorch's fused SDPA kernels."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)
