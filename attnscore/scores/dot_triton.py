"""dot_triton: the scaled dot product through euclid's Triton kernel, the benchmark's control."""

from attnscore.attention import Unsupported, register
from attnscore.scores._triton import kernel


@register("dot_triton")
def dot_triton(q, k, v, causal=True, dropout_p=0.0):
    triton = kernel() if q.is_cuda else None
    if not (triton and triton.supports(q, k, v)):
        raise Unsupported(
            "dot_triton runs our Triton kernel: it needs a CUDA GPU with Triton and a shape the kernel takes"
        )
    return triton.triton_attention(q, k, v, causal=causal, dropout_p=dropout_p, score="dot")
