"""euclid: the negative Euclidean distance -||q - k||_2 / sqrt(d_k), by the fastest exact path.

- on CUDA (head_dim 16 to 128, Triton installed): a FlashAttention-2 style Triton kernel with
  dropout (attnscore.triton_attention). Not FlexAttention: it has no dropout on the weights and
  is slower at every shape benchmarks/README.md lists.
- elsewhere: ``EuclideanAttention``, an autograd Function with a hand-written backward, in
  float32 at least whatever autocast says.
- for norms other than p = 2: euclid_naive.
"""

import math

import torch
import torch.nn.functional as F

from attnscore.attention import register
from attnscore.scores import euclid_naive as naive  # the module: it may be importing this one
from attnscore.scores._masks import causal_bias
from attnscore.scores._triton import kernel


class EuclideanAttention(torch.autograd.Function):
    """softmax(-||q - k||_2 / sqrt(d)) v with dropout on the weights, backward by hand.

    With P the softmax, L = -s D the logits (D the distance, s = 1/sqrt(d)), G = P * (dP -
    rowsum(P * dP)) the loss's gradient by L, and W = G * s / D (0 where D = 0, the
    subgradient, as torch.cdist takes it): since
    D^2 = |q|^2 + |k|^2 - 2 q.k:  dq = W k - q rowsum(W),  dk = W^T q - k colsum(W).
    Few passes over the (time x time) matrices, in place where possible: at small sizes the
    number of operations, at large ones memory bandwidth, sets the cost.
    """

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, dropout_p: float):
        ctx.dtypes = (q.dtype, k.dtype, v.dtype)
        compute = torch.promote_types(q.dtype, torch.float32)  # float32, or float64 for gradcheck
        with torch.autocast(q.device.type, enabled=False):
            q, k, v = q.to(compute), k.to(compute), v.to(compute)
            scale = 1 / math.sqrt(q.shape[-1])
            squared = (q * -2) @ k.transpose(-1, -2)  # |q|^2 + |k|^2 - 2 q.k, the -2 on the small side
            squared.add_(q.square().sum(-1, keepdim=True)).add_(k.square().sum(-1).unsqueeze(-2))
            logits = squared.clamp_(min=0).sqrt_().mul_(-scale)
            if causal:
                logits.add_(causal_bias(q.shape[-2], k.shape[-2], q.device, compute))
            weights = torch.softmax(logits, dim=-1)
            dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
            out = dropped @ v
            # 1/L for the backward; 0 where L = 0 (zero distance: the subgradient) or -inf (hidden)
            inverse_logits = logits.reciprocal_().nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        ctx.scale = scale
        ctx.save_for_backward(q, k, v, inverse_logits, weights, dropped)
        return out.to(ctx.dtypes[2])

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, inverse_logits, weights, dropped = ctx.saved_tensors
        with torch.autocast(q.device.type, enabled=False):
            grad_out = grad_out.to(q.dtype)
            grad_v = dropped.transpose(-1, -2) @ grad_out
            # Softmax and dropout backward in one: with W' = weights * keep (dropped),
            # dL/dlogits = dL/dW' * W' - weights * rowsum(dL/dW' * W'); the mask itself is not
            # needed. All of it is linear in grad_out, so the factor -s^2 of W = -s^2 dL/dlogits / L
            # is applied to grad_out, the small side.
            w = ((grad_out * -(ctx.scale**2)) @ v.transpose(-1, -2)).mul_(dropped)
            w.addcmul_(weights, w.sum(-1, keepdim=True), value=-1).mul_(inverse_logits)
            grad_q = torch.addcmul(w @ k, q, w.sum(-1, keepdim=True), value=-1)
            grad_k = torch.addcmul(w.transpose(-1, -2) @ q, k, w.sum(-2).unsqueeze(-1), value=-1)
        grads = (grad.to(dtype) for grad, dtype in zip((grad_q, grad_k, grad_v), ctx.dtypes, strict=True))
        return *grads, None, None


@register(
    "euclid", options={"p": {"type": "number", "exclusiveMinimum": 0, "default": 2.0}}, score_flops=naive.distance_flops
)
def euclid(q, k, v, causal=True, dropout_p=0.0, *, p=2.0):
    if p != 2:
        return naive.euclid_naive(q, k, v, causal, dropout_p, p=p)
    triton = kernel() if q.is_cuda else None
    if triton and triton.supports(q, k, v):
        return triton.triton_attention(q, k, v, causal=causal, dropout_p=dropout_p, score="euclid")
    return EuclideanAttention.apply(q, k, v, causal, dropout_p)
