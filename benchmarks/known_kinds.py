"""Kinds of known relative cost, to see whether the benchmark's verdicts find what they should:
``dot_alias`` is dot's code under another name (no difference), ``dot_double`` computes dot's
attention twice and averages (about twice the op's time), ``dot_waits`` is dot after waiting 10 ms
(slower, yet its waiting is no busy machine). Used by kind_costs.py (--plugins known_kinds)."""

import time

import torch.nn.functional as F

from attnscore.attention import register


@register("dot_alias")
def dot_alias(q, k, v, causal=True, dropout_p=0.0):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)


@register("dot_double")
def dot_double(q, k, v, causal=True, dropout_p=0.0):
    once = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)
    twice = F.scaled_dot_product_attention(q * 1.0, k, v, is_causal=causal, dropout_p=dropout_p)
    return (once + twice) / 2


@register("dot_waits")
def dot_waits(q, k, v, causal=True, dropout_p=0.0):
    time.sleep(0.01)  # as a lock, I/O or a device would: the process waits without using a core
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)
