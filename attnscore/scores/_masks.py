"""The causal mask, for the kinds that build their own (t_q x t_k) score matrix."""

import functools

import torch


@functools.lru_cache(maxsize=8)
def causal_bias(t_q: int, t_k: int, device, dtype) -> torch.Tensor:
    """0 where query i sees key j, -inf where it may not (j > i, aligned at the end like SDPA):
    added, it masks in one cheap pass (a masked_fill_ with a broadcast boolean mask costs several
    times more on CPUs). Cached per shape."""
    return torch.full((t_q, t_k), float("-inf"), device=device, dtype=dtype).triu_(t_k - t_q + 1)
