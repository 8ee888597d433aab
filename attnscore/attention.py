"""Attention kinds: scoring functions registered by name, all called the same way.

A kind is a function ``fn(q, k, v, causal, dropout_p, **options)``: q, k, v shaped
(batch, heads, time, head_dim) in, a tensor of v's shape out. ``options`` are the kind's own
settings, given per kind in the config (``model.attention_options: {euclid: {p: 2}}``), so no
kind sees another's. ``@register("name")`` puts a kind in ``KINDS``, against which the
config's variants are checked; a kind defined outside this package registers itself when its
module is imported, which ``model.attention_plugins`` asks for (see ``load_plugins``).

Euclidean attention, logits -||q - k||_2 / sqrt(d_k), has three implementations:
- ``euclid`` on CUDA (head_dim 16 to 128, Triton installed): one Triton kernel in the
  FlashAttention-2 style, dropout included (attnscore.triton_attention); no (time x time)
  matrix is ever stored. FlexAttention was measured too and lost at every shape
  (benchmarks/results/), besides having no dropout on the weights.
- ``euclid`` elsewhere (CPU, other head sizes): ``EuclideanAttention``, an autograd Function
  with a hand-written backward. It computes the squared distance with one batched matmul, keeps
  only the distance and the softmax weights before and after dropout, and works in float32 (at
  least) whatever autocast says.
- ``euclid_naive``: torch.cdist, then mask, softmax and dropout as separate autograd ops, the
  way the reference did it. Kept as a benchmark baseline and for norms other than p = 2.
Their speed is measured in README.md (Attention implementations and speed).
"""

import functools
import importlib
import inspect
import math
import re
from collections.abc import Callable

import torch
import torch.nn.functional as F

# Below this distance its gradient is taken as zero (q == k gives a subgradient of 0, like
# torch.cdist), so identical vectors never produce inf or NaN.
MIN_DISTANCE = 1e-6

KINDS: dict[str, Callable] = {}


def register(name: str):
    """Decorator: make ``fn(q, k, v, causal, dropout_p, **options)`` the attention kind ``name``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"attention kind name {name!r}: use lower-case letters, digits and _ (a config name)")

    def add(fn):
        known = KINDS.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"attention kind {name!r} is already registered by {known.__module__}.{known.__qualname__}"
            )
        KINDS[name] = fn
        return fn

    return add


def load_plugins(modules) -> None:
    """Import modules that register kinds of their own (``model.attention_plugins``)."""
    for module in modules:
        importlib.import_module(module)


def get(kind: str) -> Callable:
    """The function of a registered kind; an unknown kind fails naming the known ones."""
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; known kinds: {sorted(KINDS)}")
    return KINDS[kind]


def check_options(kind: str, options: dict) -> None:
    """Fail unless the kind's function takes these options and needs no others."""
    params = list(inspect.signature(get(kind)).parameters.values())[5:]  # after q, k, v, causal, dropout_p
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    any_name = any(p.kind is p.VAR_KEYWORD for p in params)
    unknown = [name for name in options if name not in named and not any_name]
    missing = [p.name for p in params if p.name in named and p.default is p.empty and p.name not in options]
    if unknown or missing:
        problem = f"takes no option(s) {unknown}" if unknown else f"needs option(s) {missing}"
        raise ValueError(f"attention kind {kind!r} {problem}; its options: {named}")


def _causal_mask(t_q: int, t_k: int, device) -> torch.Tensor:
    """True where query i may not look at key j (j > i, aligned at the end like SDPA)."""
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).triu_(t_k - t_q + 1)


@register("dot")
def dot(q, k, v, causal=True, dropout_p=0.0):
    """Scaled dot product q.k / sqrt(d_k), through PyTorch's fused SDPA kernels."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)


@register("euclid_naive")
def euclid_naive(q, k, v, causal=True, dropout_p=0.0, p=2.0):
    """Negative distance -||q - k||_p / sqrt(d_k) with an explicit score matrix (torch.cdist)."""
    logits = -torch.cdist(q, k, p=p) / math.sqrt(q.shape[-1])
    if causal:
        logits = logits.masked_fill(_causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    weights = torch.softmax(logits.float(), dim=-1).to(v.dtype)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


class EuclideanAttention(torch.autograd.Function):
    """softmax(-||q - k||_2 / sqrt(d)) v with dropout on the weights, backward by hand.

    With P the softmax, D the distance, s = 1/sqrt(d) and G = dL/d(D^2):
    dL/dlogits = P * (dP - rowsum(P * dP)),  G = -s/(2D) * dL/dlogits (0 where D = 0),
    and since D^2 = |q|^2 + |k|^2 - 2 q.k:  dq = 2 (q rowsum(G) - G k),  dk = 2 (k colsum(G) - G^T q).
    """

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, dropout_p: float):
        ctx.dtypes = (q.dtype, k.dtype, v.dtype)
        compute = torch.promote_types(q.dtype, torch.float32)  # float32, or float64 for gradcheck
        with torch.autocast(q.device.type, enabled=False):
            q, k, v = q.to(compute), k.to(compute), v.to(compute)
            t_q, d = q.shape[-2:]
            # In place wherever possible: each (time x time) pass costs memory bandwidth.
            squared = (q @ k.transpose(-1, -2)).mul_(-2)
            squared.add_(q.square().sum(-1, keepdim=True)).add_(k.square().sum(-1).unsqueeze(-2))
            distance = squared.clamp_(min=0).sqrt_()
            logits = distance.mul(-1 / math.sqrt(d))
            if causal:
                logits.masked_fill_(_causal_mask(t_q, k.shape[-2], q.device), float("-inf"))
            weights = torch.softmax(logits, dim=-1)
            del logits
            dropped = weights
            if dropout_p > 0:  # keep holds 0 or 1/(1 - p), so one multiply applies dropout
                keep = torch.empty_like(weights).bernoulli_(1 - dropout_p).div_(1 - dropout_p)
                dropped = weights * keep
                del keep
            out = dropped @ v
        ctx.save_for_backward(q, k, v, distance, weights, dropped)
        return out.to(ctx.dtypes[2])

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, distance, weights, dropped = ctx.saved_tensors
        with torch.autocast(q.device.type, enabled=False):
            grad_out = grad_out.to(q.dtype)
            grad_v = dropped.transpose(-1, -2) @ grad_out
            grad_dropped = grad_out @ v.transpose(-1, -2)
            # Softmax and dropout backward in one: with W the weights and W' = W * keep (dropped),
            # dL/dlogits = dL/dW' * W' - W * rowsum(dL/dW' * W'); the mask itself is not needed.
            g = grad_dropped.mul_(dropped)
            g.addcmul_(weights, g.sum(-1, keepdim=True), value=-1)
            g.mul_(-0.5 / math.sqrt(q.shape[-1])).div_(distance)  # dL/d(D^2)
            g.masked_fill_(distance <= MIN_DISTANCE, 0.0)  # the subgradient at q == k, not inf or NaN
            grad_q = (q * g.sum(-1, keepdim=True)).sub_(g @ k).mul_(2)
            grad_k = (k * g.sum(-2).unsqueeze(-1)).sub_(g.transpose(-1, -2) @ q).mul_(2)
        grads = (grad.to(dtype) for grad, dtype in zip((grad_q, grad_k, grad_v), ctx.dtypes, strict=True))
        return *grads, None, None


@register("euclid")
def euclid(q, k, v, causal=True, dropout_p=0.0, p=2.0):
    """Negative Euclidean distance -||q - k||_2 / sqrt(d_k) by the fastest exact path available."""
    if p != 2:
        return euclid_naive(q, k, v, causal, dropout_p, p)
    if q.is_cuda and _triton_kernel() and q.shape[-1] in _triton_kernel().HEAD_DIMS:
        return _triton_kernel().triton_attention(q, k, v, causal, dropout_p, "euclid")
    return EuclideanAttention.apply(q, k, v, causal, dropout_p)


@functools.cache
def _triton_kernel():
    """attnscore.triton_attention, or None where Triton is not installed (it comes with CUDA torch)."""
    try:
        from attnscore import triton_attention
    except ImportError:
        return None
    return triton_attention


def attention(q, k, v, kind="dot", causal=True, dropout_p=0.0, **options):
    """Attention of a registered kind for tensors shaped (batch, heads, time, head_dim)."""
    return get(kind)(q, k, v, causal, dropout_p, **options)
