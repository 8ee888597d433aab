"""Our Triton kernel (attnscore.triton_attention), for the kinds that run it on CUDA."""

import functools


@functools.cache
def kernel():
    """attnscore.triton_attention, or None where Triton is not installed."""
    try:
        from attnscore import triton_attention
    except ImportError:
        return None
    return triton_attention
