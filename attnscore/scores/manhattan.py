"""manhattan: the negative Manhattan distance -||q - k||_1 / sqrt(d_k), memory-bounded."""

import math

import torch
import torch.nn.functional as F

from attnscore.attention import register
from attnscore.scores._masks import causal_bias

# Elements of one chunk of ManhattanAttention's backward sign tensor: 64 MiB in float32.
CHUNK_ELEMENTS = 2**24


class ManhattanAttention(torch.autograd.Function):
    """softmax(-||q - k||_1 / sqrt(d)) v with dropout on the weights, in memory O(t_q t_k), not
    O(t_q t_k d) as torch.cdist's own backward (4 GiB a call at the reference shape on CUDA).

    Backward: with G = dL/dlogits (as in EuclideanAttention) and W = -s G the gradient by the
    distance D (s = 1/sqrt(d)), since dD_ij/dq_i = sign(q_i - k_j) = -dD_ij/dk_j:
    dq_i = sum_j W_ij sign(q_i - k_j), dk_j = -sum_i W_ij sign(q_i - k_j), the sign tensor built
    for a chunk of query rows at a time (CHUNK_ELEMENTS), and only for the keys the chunk sees.
    sign(0) = 0: the subgradient torch takes for |x| at 0.
    """

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, dropout_p: float):
        ctx.dtypes = (q.dtype, k.dtype, v.dtype)
        compute = torch.promote_types(q.dtype, torch.float32)
        with torch.autocast(q.device.type, enabled=False):
            q, k, v = q.to(compute), k.to(compute), v.to(compute)
            scale = 1 / math.sqrt(q.shape[-1])
            logits = torch.cdist(q, k, p=1.0).mul_(-scale)
            if causal:
                logits.add_(causal_bias(q.shape[-2], k.shape[-2], q.device, compute))
            weights = torch.softmax(logits, dim=-1)
            dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
            out = dropped @ v
        ctx.scale, ctx.causal = scale, causal
        ctx.save_for_backward(q, k, v, weights, dropped)
        return out.to(ctx.dtypes[2])

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, weights, dropped = ctx.saved_tensors
        with torch.autocast(q.device.type, enabled=False):
            grad_out = grad_out.to(q.dtype)
            grad_v = dropped.transpose(-1, -2) @ grad_out
            # W = -s dL/dlogits; -s applied to grad_out, the small side (all of it is linear in it)
            w = ((grad_out * -ctx.scale) @ v.transpose(-1, -2)).mul_(dropped)
            w.addcmul_(weights, w.sum(-1, keepdim=True), value=-1)
            grad_q, grad_k = torch.empty_like(q), torch.zeros_like(k)
            t_q, t_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
            rows = max(1, CHUNK_ELEMENTS // (q.numel() // (t_q * d) * t_k * d))
            for start in range(0, t_q, rows):
                chunk = slice(start, min(start + rows, t_q))
                seen = max(0, min(t_k, chunk.stop + t_k - t_q)) if ctx.causal else t_k  # later keys: hidden
                sign = (q[..., chunk, None, :] - k[..., None, :seen, :]).sign_()  # (..., rows, seen, d)
                w_chunk = w[..., chunk, :seen]
                grad_q[..., chunk, :] = (w_chunk.unsqueeze(-2) @ sign).squeeze(-2)
                grad_k[..., :seen, :] -= sign.mul_(w_chunk.unsqueeze(-1)).sum(-3)
        grads = (grad.to(dtype) for grad, dtype in zip((grad_q, grad_k, grad_v), ctx.dtypes, strict=True))
        return *grads, None, None


@register("manhattan", score_flops=lambda head_dim: 3.0 * head_dim + 1)  # |q - k| summed, then the scale
def manhattan(q, k, v, causal=True, dropout_p=0.0):
    return ManhattanAttention.apply(q, k, v, causal, dropout_p)
