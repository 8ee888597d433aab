"""cosine: Swin Transformer V2's scaled cosine similarity, with a learnable scale per head."""

import math

import torch
import torch.nn.functional as F

from attnscore.attention import register

# Swin Transformer V2 (Liu et al. 2022, "Swin Transformer V2: Scaling Up Capacity and
# Resolution"): the logit scale of cosine attention starts at 10 and is clamped at 1 / 0.01.
MAX_LOG_SCALE = math.log(1 / 0.01)


@register("cosine", parameters={"logit_scale": math.log(10.0)})
def cosine(q, k, v, causal=True, dropout_p=0.0, *, logit_scale):
    """Scaled cosine similarity s_h cos(q, k), s_h = exp(min(logit_scale_h, log 100)) learned per
    head from 10, as in Swin Transformer V2 (Liu et al. 2022). Through SDPA on q and k made unit
    vectors, q times s_h and scale 1, so it runs on the fused kernels wherever dot does. The
    heads are made in float32 at least and rounded once to v's dtype (bf16 under autocast)."""
    compute = torch.promote_types(q.dtype, torch.float32)
    scale = logit_scale.clamp(max=MAX_LOG_SCALE).exp().to(compute).view(-1, 1, 1)
    q = (F.normalize(q.to(compute), dim=-1) * scale).to(v.dtype)
    k = F.normalize(k.to(compute), dim=-1).to(v.dtype)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p, scale=1.0)
