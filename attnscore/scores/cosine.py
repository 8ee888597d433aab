"""cosine: Swin Transformer V2's scaled cosine similarity, with a learnable scale per head."""

import math

import torch
import torch.nn.functional as F

from attnscore.attention import register

MAX_LOG_SCALE = math.log(1 / 0.01)


@register("cosine", parameters={"logit_scale": math.log(10.0)})
def cosine(q, k, v, causal=True, dropout_p=0.0, *, logit_scale):
    """Scaled cosine similarity s_h cos(q, k), s_h = exp(min(logit_scale_h, log 100)) learned per
    head from 10, as in Swin Transformer V2 (Liu et al. 2022, "Scaling Up Capacity and
    Resolution"). Through SDPA on unit q and k, q times s_h, so it runs on the fused kernels
    wherever dot does; the heads are made in float32 at least and rounded once to v's dtype."""
    compute = torch.promote_types(q.dtype, torch.float32)
    scale = logit_scale.clamp(max=MAX_LOG_SCALE).exp().to(compute).view(-1, 1, 1)
    q = (F.normalize(q.to(compute), dim=-1) * scale).to(v.dtype)
    k = F.normalize(k.to(compute), dim=-1).to(v.dtype)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p, scale=1.0)
