"""Attention as one Triton kernel in the FlashAttention-2 style, Euclidean or dot-product score.

softmax(logits) V with logits = -||q - k||_2 / sqrt(d) (``score="euclid"``) or q.k / sqrt(d)
(``score="dot"``, the control that separates the scoring function from the implementation),
causal or not, with dropout on the attention weights. Tiles of queries and keys stream through
on-chip memory with an online softmax, so no (T x T) matrix is ever stored: the forward keeps
the output and one log-sum-exp per row, and the backward recomputes the weights tile by tile.

- The distance comes from q.k accumulated in float32 plus ||q||^2 and ||k||^2 in float32
  (computed once per row, O(T)), clamped at 0 before the square root. At distance 0 the
  gradient is taken as 0, the subgradient, like the other Euclidean paths (q == k stays finite).
- Dropout masks come from Triton's Philox generator, keyed by a seed drawn from torch's CPU
  generator (so runs are reproducible and resumable with torch's RNG state) and the (batch,
  head, query, key) position; the backward regenerates them, nothing is stored.
- Gradients, with W = dL/dlogits * scale / distance (Euclid):
  dq = W k - q rowsum(W), dk = W^T q - k colsum(W); for dot, W = dL/dlogits * scale,
  dq = W k, dk = W^T q. dv = (dropped weights)^T dO.

Block sizes follow the rules of the GPU compiler (powers of two, ``tl.dot`` tiles of at least
16), so the kernels that pass the interpreter tests (TRITON_INTERPRET=1) compile on a GPU.
"""

import math
import os

import torch
import triton
import triton.language as tl

HEAD_DIMS = (16, 32, 64, 128)
LOG2E = math.log2(math.e)
# Triton's CPU interpreter runs tl.dot through numpy, which has no bfloat16 and misreads such
# tiles; there, and only there, bf16 operands are widened to float32 first (exactly). On a GPU
# they go to the tensor cores as they are.
_WIDEN_BF16 = tl.constexpr(os.environ.get("TRITON_INTERPRET") == "1")

# Block sizes and launch settings per kernel: (BLOCK_M queries, BLOCK_N keys, warps, stages).
# Chosen by benchmarks/gpu_check.py's sweep on an H200 (benchmarks/results/); the interpreter
# tests run these.
CONFIGS = {
    "forward": (64, 32, 4, 4),
    "dkdv": (32, 64, 4, 3),
    "dq": (64, 64, 4, 2),
}


@triton.jit
def _keep(seed, bh, rows, start_n, T, keep_p, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """The dropout mask of a (BLOCK_M x BLOCK_N) tile: True where a weight is kept.

    One Philox call gives four numbers, for four neighbouring keys of a row; the counter is the
    (row, group of four keys) position within the head, the key is seed + batch-head index.
    """
    groups = start_n // 4 + tl.arange(0, BLOCK_N // 4)
    counter = rows[:, None] * ((T + 3) // 4) + groups[None, :]
    u0, u1, u2, u3 = tl.rand4x(seed + bh, counter)
    u = tl.reshape(tl.join(tl.join(u0, u1), tl.join(u2, u3)), (BLOCK_M, BLOCK_N))
    return u < keep_p


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr):
    """a @ b accumulated in float32."""
    if _WIDEN_BF16 and a.dtype == tl.bfloat16:
        a, b = a.to(tl.float32), b.to(tl.float32)
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _scores(q, k, q_norm, k_norm, scale_log2, EUCLID: tl.constexpr, PRECISION: tl.constexpr):
    """A tile's logits in base 2 (times log2 e) from q.k accumulated in float32, and for Euclid
    the squared distances they came from."""
    qk = _dot(q, tl.trans(k), PRECISION)
    if EUCLID:
        squared = tl.maximum(q_norm[:, None] + k_norm[None, :] - 2.0 * qk, 0.0)
        return -tl.sqrt(squared) * scale_log2, squared
    return qk * scale_log2, qk


@triton.jit
def _visible(rows, cols, T, CAUSAL: tl.constexpr):
    """Keys a query sees: real ones (not the tail padding), and with CAUSAL none after it."""
    visible = cols[None, :] < T
    if CAUSAL:
        visible &= cols[None, :] <= rows[:, None]
    return visible


@triton.jit
def _load_keys(K, V, KN, head, cols, T, HEAD_DIM: tl.constexpr):
    """A block of keys: their offsets, k, v and squared norms (zero beyond T)."""
    offsets = (head + cols[:, None]) * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    k = tl.load(K + offsets, mask=cols[:, None] < T, other=0.0)
    v = tl.load(V + offsets, mask=cols[:, None] < T, other=0.0)
    return offsets, k, v, tl.load(KN + head + cols, mask=cols < T, other=0.0)


@triton.jit
def _load_queries(Q, DO, QN, LSE, DELTA, head, rows, T, HEAD_DIM: tl.constexpr):
    """A block of queries for the backward: offsets, q, dO, squared norms, log-sum-exp (+inf beyond
    T, so padding rows weigh 0) and delta."""
    offsets = (head + rows[:, None]) * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    q = tl.load(Q + offsets, mask=rows[:, None] < T, other=0.0)
    do = tl.load(DO + offsets, mask=rows[:, None] < T, other=0.0)
    q_norm = tl.load(QN + head + rows, mask=rows < T, other=0.0)
    lse = tl.load(LSE + head + rows, mask=rows < T, other=float("inf"))
    return offsets, q, do, q_norm, lse, tl.load(DELTA + head + rows, mask=rows < T, other=0.0)


@triton.jit
def _key_bounds(start_m, T, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """For the query block at start_m: the keys before `full_end` come in tiles that every row sees
    in full (no mask); those in [full_end, end) need the causal or tail mask."""
    if CAUSAL:
        full_end = (start_m // BLOCK_N) * BLOCK_N
        end = tl.minimum(start_m + BLOCK_M, T)
    else:
        full_end = (T // BLOCK_N) * BLOCK_N
        end = T
    return full_end, end


@triton.jit
def _forward_tiles(
    acc, m, total, q, q_norm, K, V, KN, head, bh, rows, lo, hi, seed, T, scale_log2, keep_p, inv_keep_p,
    EUCLID: tl.constexpr, CAUSAL: tl.constexpr, MASKED: tl.constexpr, DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """Online softmax over the keys [lo, hi); MASKED tiles apply the causal and tail masks."""
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)
        _, k, v, k_norm = _load_keys(K, V, KN, head, cols, T, HEAD_DIM)
        z, _ = _scores(q, k, q_norm, k_norm, scale_log2, EUCLID, PRECISION)
        if MASKED:
            z = tl.where(_visible(rows, cols, T, CAUSAL), z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, 1))
        alpha = tl.exp2(m - m_new)
        p = tl.exp2(z - m_new[:, None])
        total = total * alpha + tl.sum(p, 1)
        if DROPOUT:  # normalised later by `total`, which counts every weight, kept or not
            p = tl.where(_keep(seed, bh, rows, start_n, T, keep_p, BLOCK_M, BLOCK_N), p * inv_keep_p, 0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, PRECISION)
        m = m_new
    return acc, m, total


@triton.jit
def _forward(
    Q, K, V, QN, KN, OUT, LSE, seed, T, scale_log2, keep_p, inv_keep_p,
    EUCLID: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    head = bh.to(tl.int64) * T  # first row of this (batch, head)
    rows = start_m + tl.arange(0, BLOCK_M)
    q_offsets = (head + rows[:, None]) * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    q = tl.load(Q + q_offsets, mask=rows[:, None] < T, other=0.0)
    q_norm = tl.load(QN + head + rows, mask=rows < T, other=0.0)
    m = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running max of the base-2 logits
    total = tl.zeros([BLOCK_M], tl.float32)  # running sum of exp2(logits - m)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full_end, end = _key_bounds(start_m, T, CAUSAL, BLOCK_M, BLOCK_N)
    acc, m, total = _forward_tiles(
        acc, m, total, q, q_norm, K, V, KN, head, bh, rows, 0, full_end, seed, T, scale_log2, keep_p, inv_keep_p,
        EUCLID, CAUSAL, False, DROPOUT, HEAD_DIM, BLOCK_M, BLOCK_N, PRECISION,
    )  # fmt: skip
    acc, m, total = _forward_tiles(
        acc, m, total, q, q_norm, K, V, KN, head, bh, rows, full_end, end, seed, T, scale_log2, keep_p, inv_keep_p,
        EUCLID, CAUSAL, True, DROPOUT, HEAD_DIM, BLOCK_M, BLOCK_N, PRECISION,
    )  # fmt: skip
    acc = acc / total[:, None]
    tl.store(OUT + q_offsets, acc.to(OUT.dtype.element_ty), mask=rows[:, None] < T)
    tl.store(LSE + head + rows, m + tl.log2(total), mask=rows < T)


@triton.jit
def _weights_grad(
    q, k, v, do, q_norm, k_norm, lse, delta, rows, start_n, seed, bh, T, scale, scale_log2, keep_p, inv_keep_p,
    EUCLID: tl.constexpr, CAUSAL: tl.constexpr, MASKED: tl.constexpr, DROPOUT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """Recompute a tile's weights; return the dropped weights and W (see the module docstring)."""
    cols = start_n + tl.arange(0, BLOCK_N)
    z, squared = _scores(q, k, q_norm, k_norm, scale_log2, EUCLID, PRECISION)
    p = tl.exp2(z - lse[:, None])  # padding rows have lse = inf, so weight 0
    if MASKED:
        p = tl.where(_visible(rows, cols, T, CAUSAL), p, 0.0)
    grad_dropped = _dot(do, tl.trans(v), PRECISION)  # dL/d(dropped weights)
    if DROPOUT:
        keep = _keep(seed, bh, rows, start_n, T, keep_p, BLOCK_M, BLOCK_N)
        dropped = tl.where(keep, p * inv_keep_p, 0.0)
        grad_p = tl.where(keep, grad_dropped * inv_keep_p, 0.0)
    else:
        dropped = p
        grad_p = grad_dropped
    grad_logits = p * (grad_p - delta[:, None])
    if EUCLID:  # W = dL/dlogits * scale / distance, 0 at distance 0 (the subgradient)
        inv_distance = tl.where(squared > 0.0, tl.rsqrt(tl.maximum(squared, 1e-30)), 0.0)
        w = grad_logits * (inv_distance * scale)
    else:
        w = grad_logits * scale
    return dropped, w


@triton.jit
def _to_input_dtype(w, dtype: tl.constexpr):
    """W in the inputs' dtype for the tensor cores; fp16 saturates at its largest value instead of
    overflowing to inf (1/distance is huge near zero distance, and the loss may be scaled)."""
    if dtype == tl.float16:
        w = tl.minimum(tl.maximum(w, -65504.0), 65504.0)
    return w.to(dtype)


@triton.jit
def _dkdv_tiles(
    dk, dv, w_colsum, k, v, k_norm, Q, DO, QN, LSE, DELTA, head, bh, start_n, lo, hi,
    seed, T, scale, scale_log2, keep_p, inv_keep_p,
    EUCLID: tl.constexpr, CAUSAL: tl.constexpr, MASKED: tl.constexpr, DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    for start_m in range(lo, hi, BLOCK_M):
        rows = start_m + tl.arange(0, BLOCK_M)
        _, q, do, q_norm, lse, delta = _load_queries(Q, DO, QN, LSE, DELTA, head, rows, T, HEAD_DIM)
        dropped, w = _weights_grad(
            q, k, v, do, q_norm, k_norm, lse, delta, rows, start_n, seed, bh, T, scale, scale_log2, keep_p,
            inv_keep_p, EUCLID, CAUSAL, MASKED, DROPOUT, BLOCK_M, BLOCK_N, PRECISION,
        )  # fmt: skip
        dv += _dot(tl.trans(dropped.to(do.dtype)), do, PRECISION)
        w = _to_input_dtype(w, q.dtype)  # rounded once: the colsum below cancels what the product holds
        dk += _dot(tl.trans(w), q, PRECISION)
        if EUCLID:
            w_colsum += tl.sum(w.to(tl.float32), 0)
    return dk, dv, w_colsum


@triton.jit
def _backward_dkdv(
    Q, K, V, QN, KN, DO, LSE, DELTA, DK, DV, seed, T, scale, scale_log2, keep_p, inv_keep_p,
    EUCLID: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """dk and dv of one block of keys, streaming over the queries that see them."""
    start_n = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1)
    head = bh.to(tl.int64) * T
    cols = start_n + tl.arange(0, BLOCK_N)
    kv_offsets, k, v, k_norm = _load_keys(K, V, KN, head, cols, T, HEAD_DIM)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    w_colsum = tl.zeros([BLOCK_N], tl.float32)
    if CAUSAL:  # query tiles on the diagonal need the mask; those below it see every key here
        begin = (start_n // BLOCK_M) * BLOCK_M
        diagonal_end = tl.minimum(tl.cdiv(start_n + BLOCK_N, BLOCK_M) * BLOCK_M, T)
    else:  # only the tail block of keys needs the mask, in every query tile
        begin = 0
        diagonal_end = T if start_n + BLOCK_N > T else 0
    dk, dv, w_colsum = _dkdv_tiles(
        dk, dv, w_colsum, k, v, k_norm, Q, DO, QN, LSE, DELTA, head, bh, start_n, begin, diagonal_end,
        seed, T, scale, scale_log2, keep_p, inv_keep_p,
        EUCLID, CAUSAL, True, DROPOUT, HEAD_DIM, BLOCK_M, BLOCK_N, PRECISION,
    )  # fmt: skip
    dk, dv, w_colsum = _dkdv_tiles(
        dk, dv, w_colsum, k, v, k_norm, Q, DO, QN, LSE, DELTA, head, bh, start_n, diagonal_end, T,
        seed, T, scale, scale_log2, keep_p, inv_keep_p,
        EUCLID, CAUSAL, False, DROPOUT, HEAD_DIM, BLOCK_M, BLOCK_N, PRECISION,
    )  # fmt: skip
    if EUCLID:
        dk -= k.to(tl.float32) * w_colsum[:, None]
    tl.store(DK + kv_offsets, dk.to(DK.dtype.element_ty), mask=cols[:, None] < T)
    tl.store(DV + kv_offsets, dv.to(DV.dtype.element_ty), mask=cols[:, None] < T)


@triton.jit
def _dq_tiles(
    dq, w_rowsum, q, do, q_norm, lse, delta, K, V, KN, head, bh, rows, lo, hi,
    seed, T, scale, scale_log2, keep_p, inv_keep_p,
    EUCLID: tl.constexpr, CAUSAL: tl.constexpr, MASKED: tl.constexpr, DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    for start_n in range(lo, hi, BLOCK_N):
        _, k, v, k_norm = _load_keys(K, V, KN, head, start_n + tl.arange(0, BLOCK_N), T, HEAD_DIM)
        _, w = _weights_grad(
            q, k, v, do, q_norm, k_norm, lse, delta, rows, start_n, seed, bh, T, scale, scale_log2, keep_p,
            inv_keep_p, EUCLID, CAUSAL, MASKED, DROPOUT, BLOCK_M, BLOCK_N, PRECISION,
        )  # fmt: skip
        w = _to_input_dtype(w, k.dtype)  # rounded once: the rowsum below cancels what the product holds
        dq += _dot(w, k, PRECISION)
        if EUCLID:
            w_rowsum += tl.sum(w.to(tl.float32), 1)
    return dq, w_rowsum


@triton.jit
def _backward_dq(
    Q, K, V, QN, KN, DO, LSE, DELTA, DQ, seed, T, scale, scale_log2, keep_p, inv_keep_p,
    EUCLID: tl.constexpr, CAUSAL: tl.constexpr, DROPOUT: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """dq of one block of queries, streaming over the keys they see."""
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    head = bh.to(tl.int64) * T
    rows = start_m + tl.arange(0, BLOCK_M)
    q_offsets, q, do, q_norm, lse, delta = _load_queries(Q, DO, QN, LSE, DELTA, head, rows, T, HEAD_DIM)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    w_rowsum = tl.zeros([BLOCK_M], tl.float32)
    full_end, end = _key_bounds(start_m, T, CAUSAL, BLOCK_M, BLOCK_N)
    dq, w_rowsum = _dq_tiles(
        dq, w_rowsum, q, do, q_norm, lse, delta, K, V, KN, head, bh, rows, 0, full_end,
        seed, T, scale, scale_log2, keep_p, inv_keep_p,
        EUCLID, CAUSAL, False, DROPOUT, HEAD_DIM, BLOCK_M, BLOCK_N, PRECISION,
    )  # fmt: skip
    dq, w_rowsum = _dq_tiles(
        dq, w_rowsum, q, do, q_norm, lse, delta, K, V, KN, head, bh, rows, full_end, end,
        seed, T, scale, scale_log2, keep_p, inv_keep_p,
        EUCLID, CAUSAL, True, DROPOUT, HEAD_DIM, BLOCK_M, BLOCK_N, PRECISION,
    )  # fmt: skip
    if EUCLID:
        dq -= q.to(tl.float32) * w_rowsum[:, None]
    tl.store(DQ + q_offsets, dq.to(DQ.dtype.element_ty), mask=rows[:, None] < T)


MAX_T = 92_000  # the Philox counter, row * ceil(T / 4) + key group, stays below 2^31
MAX_BATCH_HEADS = 65_535  # the launch grid's second axis


def supports(q, k, v) -> bool:
    """Whether the kernel takes these inputs: self-attention shapes, one supported dtype, sizes
    within the kernel's counters and grid."""
    b, h, t, d = q.shape
    return (
        q.shape == k.shape == v.shape
        and q.dtype == k.dtype == v.dtype
        and q.dtype in (torch.float16, torch.bfloat16, torch.float32)
        and d in HEAD_DIMS
        and t <= MAX_T
        and b * h <= MAX_BATCH_HEADS
    )


def dropout_seed() -> int:
    """A fresh Philox seed from torch's CPU generator: no GPU synchronisation, and a run replays
    exactly from a checkpoint's RNG state."""
    return int(torch.randint(2**62, (), dtype=torch.int64))


def _launch(kernel, name, grid_size, t, *args, configs, **constexprs):
    block_m, block_n, warps, stages = configs[name]
    grid = (triton.cdiv(t, block_n if name == "dkdv" else block_m), grid_size)
    kernel[grid](*args, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=warps, num_stages=stages, **constexprs)


class TritonAttention(torch.autograd.Function):
    """Autograd wrapper: the forward keeps q, k, v, the output and the log-sum-exp, nothing (T x T)."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, dropout_p: float, score: str, configs: dict):
        b, h, t, d = q.shape
        if not supports(q, k, v):
            raise ValueError(
                f"the Triton attention kernel takes q, k, v of one shape and dtype (fp16, bf16, fp32), head_dim in"
                f" {HEAD_DIMS}, T <= {MAX_T} and batch x heads <= {MAX_BATCH_HEADS}; got {q.shape}, {k.shape},"
                f" {v.shape} in {q.dtype}"
            )
        if not 0 <= dropout_p < 1:
            raise ValueError(f"dropout_p must be in [0, 1), not {dropout_p}")
        q, k, v = (x.contiguous() for x in (q, k, v))
        seed = dropout_seed() if dropout_p > 0 else 0
        out = torch.empty_like(q)
        lse = torch.empty(b, h, t, device=q.device, dtype=torch.float32)
        q_norm, k_norm = (x.float().square().sum(-1) for x in (q, k))  # O(T) each, kept for the backward
        scale = 1 / math.sqrt(d)
        constexprs = dict(
            EUCLID=score == "euclid",
            CAUSAL=causal,
            DROPOUT=dropout_p > 0,
            HEAD_DIM=d,
            PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        )
        _launch(
            _forward, "forward", b * h, t, q, k, v, q_norm, k_norm, out, lse, seed, t, scale * LOG2E, 1 - dropout_p,
            1 / (1 - dropout_p),
            configs=configs, **constexprs,
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, q_norm, k_norm, out, lse)
        ctx.args = (seed, scale, 1 - dropout_p, configs, constexprs)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, q_norm, k_norm, out, lse = ctx.saved_tensors
        seed, scale, keep_p, configs, constexprs = ctx.args
        b, h, t, _ = q.shape
        grad_out = grad_out.to(q.dtype).contiguous()
        delta = (out.float() * grad_out.float()).sum(-1)  # rowsum(dO * O) = rowsum(dropped * dL/d(dropped))
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        common = (seed, t, scale, scale * LOG2E, keep_p, 1 / keep_p)
        _launch(
            _backward_dkdv, "dkdv", b * h, t, q, k, v, q_norm, k_norm, grad_out, lse, delta, dk, dv, *common,
            configs=configs, **constexprs,
        )  # fmt: skip
        _launch(
            _backward_dq, "dq", b * h, t, q, k, v, q_norm, k_norm, grad_out, lse, delta, dq, *common,
            configs=configs, **constexprs,
        )  # fmt: skip
        return dq, dk, dv, None, None, None, None


def triton_attention(q, k, v, causal=True, dropout_p=0.0, score="euclid", configs=None):
    """Attention of (batch, heads, time, head_dim) tensors through the Triton kernels."""
    if score not in ("euclid", "dot"):
        raise ValueError(f"unknown score {score!r} for the Triton kernel; choose 'euclid' or 'dot'")
    return TritonAttention.apply(q, k, v, causal, dropout_p, score, configs or CONFIGS)
