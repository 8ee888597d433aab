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
- ``euclid`` elsewhere (CPU, inputs the kernel does not take): ``EuclideanAttention``, an
  autograd Function with a hand-written backward. It computes the squared distance with one
  batched matmul, keeps only 1/logits and the softmax weights before and after dropout, and
  works in float32 (at least) whatever autocast says.
- ``euclid_naive``: torch.cdist, then mask, softmax and dropout as separate autograd ops, the
  way the reference did it. Kept as a benchmark baseline and for norms other than p = 2.
Their speed is measured in README.md (Attention implementations and speed).

The other scores: ``cosine`` (SDPA on unit vectors, with a learnable scale per head: a kind's
parameters, see ``register``), ``euclid_sq`` (SDPA on augmented heads), ``manhattan``
(``ManhattanAttention``, its backward in chunks) and ``sigmoid`` (plain autograd ops); README.md's
table of kinds lists them all.
"""

import functools
import importlib
import inspect
import math
import re
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from attnscore.io import Explained
from attnscore.kinds import FIXED_ARGUMENTS, Kind, options_problem

KINDS: dict[str, Callable] = {}


def register(name: str, options: dict | None = None, parameters: dict[str, float] | None = None):
    """Decorator: make ``fn(q, k, v, causal, dropout_p, **options)`` the attention kind ``name``.

    ``options`` declares the range of the kind's options as JSON-schema bounds, written as a
    literal (the config check reads it from source): e.g. ``{"p": {"exclusiveMinimum": 0}}``. A
    number option (one with a number default, or annotated float or int) also takes only finite
    numbers.

    ``parameters``: learnable per-head parameters of the kind, by name, with their initial value
    (a literal dict, so that the config check can read their names from the source). The model
    makes each an ``nn.Parameter`` of shape (n_heads,) filled with that value and passes it to
    the kind as a keyword argument of that name; they are no config options.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"attention kind name {name!r}: use lower-case letters, digits and _ (a config name)")
    parameters = {key: float(value) for key, value in (parameters or {}).items()}

    def add(fn):
        fn.option_ranges = options or {}
        known = KINDS.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"attention kind {name!r} is already registered by {known.__module__}.{known.__qualname__}"
            )
        takes = inspect.signature(fn).parameters
        untaken = [key for key in parameters if key not in takes]
        if untaken and not any(p.kind is p.VAR_KEYWORD for p in takes.values()):
            raise ValueError(f"attention kind {name!r}: its function takes no argument(s) {untaken} for its parameters")
        fn.head_parameters = parameters
        KINDS[name] = fn
        return fn

    return add


class PluginError(Explained, ImportError):
    """A module of model.attention_plugins that cannot be imported."""


def load_plugins(modules) -> None:
    """Import modules that register kinds of their own (``model.attention_plugins``)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as err:
            raise PluginError(
                f"model.attention_plugins: importing {module!r} failed ({type(err).__name__}: {err}); "
                "fix the module or take it out of the list"
            ) from err


def source_of(kind: str, plugins=()) -> Path:
    """The file of the module that registers a kind (attention.py, or a plugin's)."""
    load_plugins(plugins)
    return Path(inspect.getsourcefile(get(kind)))


def get(kind: str) -> Callable:
    """The function of a registered kind; an unknown kind fails naming the known ones."""
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r}; known kinds: {sorted(KINDS)}")
    return KINDS[kind]


def head_parameters(kind: str) -> dict[str, float]:
    """The learnable per-head parameters of a kind, by name, with their initial value (see register)."""
    return dict(getattr(get(kind), "head_parameters", {}))


def check_options(kind: str, options: dict) -> None:
    """Fail unless the kind's function takes these options and needs no others (its learnable
    parameters are no options)."""
    learned = head_parameters(kind)
    params = [
        p for p in list(inspect.signature(get(kind)).parameters.values())[FIXED_ARGUMENTS:] if p.name not in learned
    ]
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes = Kind(
        options=tuple(p.name for p in named),
        required=tuple(p.name for p in named if p.default is p.empty),
        numeric=tuple(  # bool is no number here
            p.name for p in named if type(p.default) in (int, float) or p.annotation in (int, float, "int", "float")
        ),
        any_option=any(p.kind is p.VAR_KEYWORD for p in params),
        ranges=getattr(get(kind), "option_ranges", {}),
    )
    problem = options_problem(kind, takes, options)
    if problem:
        raise ValueError(problem)


class KindCheckFailed(Explained, ValueError):
    """A kind whose function lacks a property every kind must have (attnscore.attention.check_kind)."""


def check_kind(
    kind: str, attend: Callable, device="cpu", dtype=torch.float32, dropout_p=0.0, heads=3, head_dim=16
) -> None:
    """Check an attention function before training with it, on a small random input on `device`:
    its output has v's shape and is finite; without dropout it is deterministic; under
    causal=True no output position depends on a later one (the future is perturbed, the past
    compared); with the model's dropout_p > 0 it applies dropout. `attend` is the function as the
    model calls it, ``attend(q, k, v, causal, dropout_p)``, for `heads` heads of `head_dim`.
    Draws from torch's RNG are undone."""
    how = f"to see it, call attnscore.attention.check_kind({kind!r}, <its function with its options>, {str(device)!r})"

    def fail(problem: str):
        raise KindCheckFailed(f"attention kind {kind!r} fails a check before training: {problem}; {how}")

    generator = torch.Generator().manual_seed(0)
    b, h, d = 2, heads, head_dim  # the model's heads and head size (a kind may hold one parameter a head)
    t = max(b, h, d) + 3  # unlike the others, so that a transposed output cannot pass for v's shape

    def inputs():
        return [torch.randn(b, h, t, d, generator=generator).to(device, dtype) for _ in range(3)]

    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    q, k, v = inputs()
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        out = attend(q, k, v, True, 0.0)
        if not isinstance(out, torch.Tensor) or out.shape != v.shape:
            fail(f"its output has shape {tuple(getattr(out, 'shape', ()))} for inputs of shape {(b, h, t, d)}, not v's")
        if not torch.isfinite(out).all():
            fail("its output is not finite (NaN or inf) on random inputs")
        if not torch.equal(attend(q, k, v, True, 0.0), out):
            fail("two calls with dropout_p=0 on the same input differ; without dropout it must be deterministic")
        past = t // 2
        changed = [x.clone() for x in (q, k, v)]
        for x, new in zip(changed, inputs(), strict=True):
            x[..., past + 1 :, :] = new[..., past + 1 :, :]
        later = attend(*changed, True, 0.0)
        if not torch.allclose(later[..., : past + 1, :], out[..., : past + 1, :], rtol=tolerance, atol=tolerance):
            fail(f"under causal=True its outputs at positions 0-{past} change when only later positions change")
        if dropout_p > 0 and torch.equal(attend(q, k, v, True, dropout_p), out):
            fail(f"with dropout_p={dropout_p} (the model's attention dropout) its output equals dropout_p=0's")


def _causal_mask(t_q: int, t_k: int, device) -> torch.Tensor:
    """True where query i may not look at key j (j > i, aligned at the end like SDPA)."""
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).triu_(t_k - t_q + 1)


@functools.lru_cache(maxsize=8)
def _causal_bias(t_q: int, t_k: int, device, dtype) -> torch.Tensor:
    """0 where query i sees key j, -inf where it may not: added, it masks in one cheap pass (a
    masked_fill_ with a broadcast boolean mask costs several times more on CPUs). Cached per shape."""
    return torch.zeros(t_q, t_k, device=device, dtype=dtype).masked_fill_(_causal_mask(t_q, t_k, device), float("-inf"))


@register("dot")
def dot(q, k, v, causal=True, dropout_p=0.0):
    """Scaled dot product q.k / sqrt(d_k), through PyTorch's fused SDPA kernels."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)


# Swin Transformer V2 (Liu et al. 2022, "Swin Transformer V2: Scaling Up Capacity and
# Resolution"): the logit scale of cosine attention starts at 10 and is clamped at 1 / 0.01.
COSINE_MAX_LOG_SCALE = math.log(1 / 0.01)


@register("cosine", parameters={"logit_scale": math.log(10.0)})
def cosine(q, k, v, causal=True, dropout_p=0.0, *, logit_scale):
    """Scaled cosine similarity s_h cos(q, k), s_h = exp(min(logit_scale_h, log 100)) learned per
    head from 10, as in Swin Transformer V2 (Liu et al. 2022). Through SDPA on q and k made unit
    vectors, q times s_h and scale 1, so it runs on the fused kernels wherever dot does. The
    heads are made in float32 at least and rounded once to v's dtype (bf16 under autocast)."""
    compute = torch.promote_types(q.dtype, torch.float32)
    scale = logit_scale.clamp(max=COSINE_MAX_LOG_SCALE).exp().to(compute).view(-1, 1, 1)
    q = (F.normalize(q.to(compute), dim=-1) * scale).to(v.dtype)
    k = F.normalize(k.to(compute), dim=-1).to(v.dtype)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p, scale=1.0)


@register("euclid_sq")
def euclid_sq(q, k, v, causal=True, dropout_p=0.0):
    """Negative squared distance -||q - k||^2 / sqrt(d_k), as dot-product attention: ||q||^2 is
    the same along a softmax row, so the logits may be (2 q.k - ||k||^2) / sqrt(d_k), the dot
    product of q' = [2q, -1, -1] and k' = [k, hi, lo], hi + lo = ||k||^2: two columns in k's
    dtype, so that in bf16 the bias keeps about 16 bits, not 8 (in float32 lo is 0). Through SDPA
    on those heads, zero-padded (v too) to one width, a multiple of 8, as the fused kernels want;
    the zeros add exactly 0."""
    d, d_v = q.shape[-1], v.shape[-1]
    width = -(-max(d + 2, d_v) // 8) * 8
    squared = k.to(torch.promote_types(k.dtype, torch.float32)).square().sum(-1, keepdim=True)
    hi = squared.to(k.dtype)
    lo = (squared - hi).to(k.dtype)
    q = F.pad(torch.cat([q * 2, q.new_full((*q.shape[:-1], 2), -1.0)], -1), (0, width - d - 2))
    k = F.pad(torch.cat([k, hi, lo], -1), (0, width - d - 2))
    out = F.scaled_dot_product_attention(
        q, k, F.pad(v, (0, width - d_v)), is_causal=causal, dropout_p=dropout_p, scale=1 / math.sqrt(d)
    )
    return out[..., :d_v]


@register("sigmoid", options={"bias": {"type": ["number", "null"]}})
def sigmoid(q, k, v, causal=True, dropout_p=0.0, bias=None):
    """Sigmoid attention (Ramapuram et al. 2024, "Theory, Analysis, and Best Practices for
    Sigmoid Self-Attention"): weights sigmoid(q.k / sqrt(d_k) + b), not normalised over the keys,
    b = -log(number of keys) unless ``bias`` is given. Hidden keys get weight exactly 0. Plain
    autograd ops on the (t_q x t_k) matrix, in float32 at least, like euclid_naive."""
    b = -math.log(k.shape[-2]) if bias is None else bias
    compute = torch.promote_types(q.dtype, torch.float32)
    logits = (q @ k.transpose(-1, -2)).to(compute) * (1 / math.sqrt(q.shape[-1])) + b
    if causal:
        logits = logits + _causal_bias(q.shape[-2], k.shape[-2], q.device, compute)  # sigmoid(-inf) = 0
    weights = torch.sigmoid(logits).to(v.dtype)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


class Unsupported(ValueError):
    """A kind that cannot run on these inputs here (e.g. a CUDA kernel on a CPU)."""


@register("dot_triton")
def dot_triton(q, k, v, causal=True, dropout_p=0.0):
    """Scaled dot product through our Triton kernel, the one euclid runs on CUDA: the benchmark's
    control for euclid (attnscore.kinds.CONTROLS). CUDA only."""
    kernel = _triton_kernel() if q.is_cuda else None
    if not (kernel and kernel.supports(q, k, v)):
        raise Unsupported(
            "dot_triton runs our Triton kernel: it needs a CUDA GPU with Triton and a shape the kernel takes"
        )
    return kernel.triton_attention(q, k, v, causal, dropout_p, "dot")


@register("euclid_naive", options={"p": {"exclusiveMinimum": 0}})
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
                logits.add_(_causal_bias(q.shape[-2], k.shape[-2], q.device, compute))
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


@register("euclid", options={"p": {"exclusiveMinimum": 0}})
def euclid(q, k, v, causal=True, dropout_p=0.0, p=2.0):
    """Negative Euclidean distance -||q - k||_2 / sqrt(d_k) by the fastest exact path available."""
    if p != 2:
        return euclid_naive(q, k, v, causal, dropout_p, p)
    kernel = _triton_kernel() if q.is_cuda else None
    if kernel and kernel.supports(q, k, v):
        return kernel.triton_attention(q, k, v, causal, dropout_p, "euclid")
    return EuclideanAttention.apply(q, k, v, causal, dropout_p)


# Elements of one chunk of ManhattanAttention's backward, a (rows x t_k x head_dim) sign tensor
# per batch element and head: 2**24 is 64 MiB in float32 (8 query rows at the reference shape,
# batch 8, 8 heads, 512 keys, head_dim 64).
MANHATTAN_CHUNK_ELEMENTS = 2**24


class ManhattanAttention(torch.autograd.Function):
    """softmax(-||q - k||_1 / sqrt(d)) v with dropout on the weights, in memory O(t_q t_k), not
    O(t_q t_k d).

    Forward: torch.cdist(p=1) sums |q - k| into the (t_q x t_k) distances directly. Backward:
    with G = dL/dlogits (softmax and dropout backward folded as in EuclideanAttention) and
    W = -s G the gradient by the distance D (s = 1/sqrt(d)), since dD_ij/dq_i = sign(q_i - k_j)
    = -dD_ij/dk_j: dq_i = sum_j W_ij sign(q_i - k_j), dk_j = -sum_i W_ij sign(q_i - k_j). The
    sign tensor is built for a chunk of query rows at a time, at most MANHATTAN_CHUNK_ELEMENTS
    elements, and under the causal mask only for the keys the chunk sees. sign(0) = 0: the
    subgradient torch takes for |x| at 0. (torch.cdist's own backward on CUDA allocates a
    (batch x t_k x t_q x d) buffer: 4 GiB per call at the reference shape.)
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
                logits.add_(_causal_bias(q.shape[-2], k.shape[-2], q.device, compute))
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
            rows = max(1, MANHATTAN_CHUNK_ELEMENTS // (q.numel() // (t_q * d) * t_k * d))
            for start in range(0, t_q, rows):
                chunk = slice(start, min(start + rows, t_q))
                seen = max(0, min(t_k, chunk.stop + t_k - t_q)) if ctx.causal else t_k  # later keys: hidden
                sign = (q[..., chunk, None, :] - k[..., None, :seen, :]).sign_()  # (..., rows, seen, d)
                w_chunk = w[..., chunk, :seen]
                grad_q[..., chunk, :] = (w_chunk.unsqueeze(-2) @ sign).squeeze(-2)
                grad_k[..., :seen, :] -= sign.mul_(w_chunk.unsqueeze(-1)).sum(-3)
        grads = (grad.to(dtype) for grad, dtype in zip((grad_q, grad_k, grad_v), ctx.dtypes, strict=True))
        return *grads, None, None


@register("manhattan")
def manhattan(q, k, v, causal=True, dropout_p=0.0):
    """Negative Manhattan distance -||q - k||_1 / sqrt(d_k), memory-bounded (ManhattanAttention)."""
    return ManhattanAttention.apply(q, k, v, causal, dropout_p)


@functools.cache
def _triton_kernel():
    """attnscore.triton_attention, or None where Triton is not installed (it comes with CUDA torch)."""
    try:
        from attnscore import triton_attention
    except ImportError:
        return None
    return triton_attention


def attention(q, k, v, kind="dot", causal=True, dropout_p=0.0, **options):
    """Attention of a registered kind for tensors shaped (batch, heads, time, head_dim). A
    learnable parameter of the kind that is not given takes its initial value in every head."""
    for name, initial in head_parameters(kind).items():
        if name not in options:
            options[name] = torch.full((q.shape[1],), initial, dtype=torch.float32, device=q.device)
    return get(kind)(q, k, v, causal, dropout_p, **options)
