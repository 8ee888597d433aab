"""The causal mask, for the kinds that build their own (t_q x t_k) score matrix."""

import functools

import torch


def causal_mask(t_q: int, t_k: int, device) -> torch.Tensor:
    """True where query i may not look at key j (j > i, aligned at the end like SDPA)."""
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).triu_(t_k - t_q + 1)


@functools.lru_cache(maxsize=8)
def causal_bias(t_q: int, t_k: int, device, dtype) -> torch.Tensor:
    """0 where query i sees key j, -inf where it may not: added, it masks in one cheap pass (a
    masked_fill_ with a broadcast boolean mask costs several times more on CPUs). Cached per shape."""
    return torch.zeros(t_q, t_k, device=device, dtype=dtype).masked_fill_(causal_mask(t_q, t_k, device), float("-inf"))
