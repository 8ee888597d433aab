"""Attention as one Triton kernel in the FlashAttention-2 style, Euclidean or dot-product score.

softmax(logits) V with logits = -||q - k||_2 / sqrt(d) (``score="euclid"``) or q.k / sqrt(d)
(``score="dot"``, the control that separates the scoring function from the implementation),
causal or not, with dropout on the attention weights. Tiles of queries and keys stream through
on-chip memory with an online softmax, so no (T x T) matrix is ever stored: the forward keeps
the output and one log-sum-exp per row, and the backward recomputes the weights tile by tile.

- The distance comes from q.k accumulated in float32 plus ||q||^2 and ||k||^2 in float32
  (computed once per row, O(T)), clamped at 0 before the square root. At distance 0 the
  gradient is taken as 0, the subgradient, like the other Euclidean paths (q == k stays finite).
- Logits are kept in base 2: log2(e) / sqrt(d) is one compile-time constant, and the softmax
  runs on exp2. Key tiles that every query of a block sees in full run without masks; only the
  diagonal (causal) and tail tiles are masked.
- Dropout masks come from Triton's Philox generator, keyed by a seed drawn from torch's CPU
  generator (so runs are reproducible and resumable with torch's RNG state) and the (batch,
  head, query, key) position; the backward regenerates them, nothing is stored.
- Gradients, with W = dL/dlogits * scale / distance (Euclid):
  dq = W k - q rowsum(W), dk = W^T q - k colsum(W); for dot, W = dL/dlogits * scale,
  dq = W k, dk = W^T q. dv = (dropped weights)^T dO.
- The backward is two launches, dk and dv per block of keys and dq per block of queries, each
  tuned on its own. The Triton tutorial's one launch for both (which also evens out the causal
  work per program) would force one block size on both halves, for a gain no GPU measurement shows.
- q, k, v, dO are read through their strides (the model's q, k, v are permuted views of one
  projection: no copies), and the output is written in (batch, time, heads, head_dim) order, so
  the model's merge of the heads after attention is a view, not a copy.

The kernels take few, named arguments: each (batch, heads, T, head_dim) tensor as one ``Rows``
(storage and strides), the per-row float32 vectors as one ``RowStats``, and everything that
selects the computation as one compile-time ``Spec``; the launches pass them by keyword.

Launch sizes (BLOCK_M, BLOCK_N, warps, stages) are autotuned per kernel from a few candidates
(``CANDIDATES``, pruned to those that fit the GPU's shared memory and the sequence length),
once per GPU architecture, sequence-length bucket (T rounded up to a power of two), dtype and
``Spec`` (score, causal, dropout, head_dim, TMA), and cached for the process. Under Triton's
CPU interpreter (TRITON_INTERPRET=1) there is one candidate per kernel, ``CONFIGS``, so nothing
is timed there. ``tma=True`` reads q, k, v and dO through tensor descriptors (TMA, compute
capability 9+; the kernels make them, in global memory that Triton asks of the allocator this
module sets, ``triton.set_allocator``); it is off by default, since no GPU measurement shows it
faster than the plain loads (``benchmarks/gpu_timing.py`` times the two). The interpreter runs
the descriptor path too, so the tests cover its indexing.

Block sizes follow the rules of the GPU compiler (powers of two, ``tl.dot`` tiles of at least
16), so the kernels that pass the interpreter tests (TRITON_INTERPRET=1) compile on a GPU.
"""

import functools
import math
import os
from typing import NamedTuple

import torch
import triton
import triton.language as tl

HEAD_DIMS = (16, 32, 64, 128)
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_LOG2E = tl.constexpr(math.log2(math.e))
# Triton's CPU interpreter runs tl.dot through numpy, which has no bfloat16 and misreads such
# tiles; there, and only there, bf16 operands are widened to float32 first (exactly). On a GPU
# they go to the tensor cores as they are.
_WIDEN_BF16 = tl.constexpr(INTERPRET)


class Launch(NamedTuple):
    """One kernel's launch sizes: BLOCK_M queries by BLOCK_N keys a tile, warps, pipeline stages."""

    block_m: int
    block_n: int
    warps: int
    stages: int


# The interpreter's launch sizes, and the first candidate of each kernel on a GPU: the best of
# the H200 tuning sweep in benchmarks/results/h200-2.11.0-2026-11-28-*.
CONFIGS = {
    "forward": Launch(64, 32, 4, 4),
    "dkdv": Launch(32, 64, 4, 3),
    "dq": Launch(64, 64, 4, 2),
}
# What the autotuner tries on a GPU: CONFIGS first, a runner-up of that sweep and a larger tile
# in the tutorial's style; on compute capability 9+ also that tile deeper pipelined. Few, since
# each candidate is compiled for each Spec and dtype, and compiling is slow.
CANDIDATES = {
    "forward": [CONFIGS["forward"], Launch(64, 64, 4, 3), Launch(128, 64, 8, 3)],
    "dkdv": [CONFIGS["dkdv"], Launch(64, 64, 4, 2), Launch(64, 128, 8, 2)],
    "dq": [CONFIGS["dq"], Launch(64, 32, 4, 3), Launch(128, 64, 8, 2)],
}
HOPPER_CANDIDATES = {
    "forward": [Launch(128, 64, 8, 5)],
    "dkdv": [Launch(64, 128, 8, 4)],
    "dq": [Launch(128, 64, 8, 4)],
}


class Rows(NamedTuple):
    """A (batch, heads, T, head_dim) tensor as the kernels read or write it: its storage and its
    strides, in elements, along batch, heads and time (along head_dim it is 1)."""

    data: torch.Tensor
    batch: int
    head: int
    time: int

    @classmethod
    def of(cls, x: torch.Tensor) -> "Rows":
        return cls(x, *x.stride()[:3])


class RowStats(NamedTuple):
    """Float32 vectors of one value per (batch, head, row), contiguous: the squared norms of q and
    k, each query's log-sum-exp of its base-2 logits (written by the forward) and delta =
    rowsum(dO * O) (the backward's; None in the forward)."""

    q_norm: torch.Tensor
    k_norm: torch.Tensor
    lse: torch.Tensor
    delta: torch.Tensor | None


class Spec(NamedTuple):
    """What a launch computes, as compile-time constants: each combination is its own kernel."""

    EUCLID: bool  # the score: -||q - k|| (True) or q.k (False), over sqrt(HEAD_DIM)
    CAUSAL: bool
    DROPOUT_P: float  # 0.0: no dropout
    HEAD_DIM: int
    TMA: bool  # read q, k, v and dO through tensor descriptors (compute capability 9+)


class Head(NamedTuple):
    """In a kernel: the (batch, head) a program works on, its index (batch * heads + head: the
    Philox key's offset), the offset of its rows in RowStats, its length T and the dropout seed."""

    batch: tl.tensor
    head: tl.tensor
    index: tl.tensor
    first: tl.tensor
    T: tl.tensor
    seed: tl.tensor


class _Keys(NamedTuple):
    """In a kernel: a block of keys from `start`: k, v and their squared norms (zero beyond T)."""

    start: tl.tensor
    k: tl.tensor
    v: tl.tensor
    norm: tl.tensor


class _Queries(NamedTuple):
    """In the backward: a block of queries from `start`: q, dO, squared norms, log-sum-exp (+inf
    beyond T, so padding rows weigh 0) and delta."""

    start: tl.tensor
    q: tl.tensor
    do: tl.tensor
    norm: tl.tensor
    lse: tl.tensor
    delta: tl.tensor


@triton.jit
def _head(T, seed):
    """The (batch, head) of this program: the grid is (row blocks, heads, batch)."""
    h = tl.program_id(1)
    b = tl.program_id(2)
    index = b * tl.num_programs(1) + h
    return Head(b.to(tl.int64), h.to(tl.int64), index, index.to(tl.int64) * T, T, seed)


@triton.jit
def _reader(x: Rows, head: Head, BLOCK: tl.constexpr, S: tl.constexpr):
    """What `_read` reads this head's (T x HEAD_DIM) rows of x through, BLOCK rows at a time: a
    tensor descriptor (S.TMA; rows beyond T read as zeros), else the first row and its stride."""
    base = x.data + head.batch * x.batch + head.head * x.head
    HEAD_DIM: tl.constexpr = S.HEAD_DIM  # shapes take constexprs, not a Spec's plain ints (Triton 3.6)
    if S.TMA:  # one return statement: the compiler checks every return of a function, taken or not
        reader = tl.make_tensor_descriptor(
            base, shape=[head.T, HEAD_DIM], strides=[x.time, 1], block_shape=[BLOCK, HEAD_DIM]
        )
    else:
        reader = base, x.time
    return reader


@triton.jit
def _read(reader, start, head: Head, BLOCK: tl.constexpr, S: tl.constexpr):
    """BLOCK rows from `start` (zeros beyond T)."""
    if S.TMA:
        block = reader.load([start, 0])
    else:
        base, stride = reader
        rows = start + tl.arange(0, BLOCK)
        offsets = rows[:, None] * stride + tl.arange(0, S.HEAD_DIM)[None, :]
        block = tl.load(base + offsets, mask=rows[:, None] < head.T, other=0.0)
    return block


@triton.jit
def _write(x: Rows, start, value, head: Head, BLOCK: tl.constexpr, HEAD_DIM: tl.constexpr):
    """value, BLOCK rows of float32, into x's rows from `start` (those before T) in x's dtype."""
    rows = start + tl.arange(0, BLOCK)
    offsets = head.batch * x.batch + head.head * x.head + rows[:, None] * x.time + tl.arange(0, HEAD_DIM)[None, :]
    tl.store(x.data + offsets, value.to(x.data.dtype.element_ty), mask=rows[:, None] < head.T)


@triton.jit
def _per_row(vector, rows, head: Head, other):
    """A RowStats vector's values at `rows` of this head; `other` beyond T."""
    return tl.load(vector + head.first + rows, mask=rows < head.T, other=other)


@triton.jit
def _load_keys(keys, values, stats: RowStats, start, head: Head, BLOCK_N: tl.constexpr, S: tl.constexpr):
    k = _read(keys, start, head, BLOCK_N, S)
    v = _read(values, start, head, BLOCK_N, S)
    return _Keys(start, k, v, _per_row(stats.k_norm, start + tl.arange(0, BLOCK_N), head, 0.0))


@triton.jit
def _load_queries(queries, grads, stats: RowStats, start, head: Head, BLOCK_M: tl.constexpr, S: tl.constexpr):
    rows = start + tl.arange(0, BLOCK_M)
    q = _read(queries, start, head, BLOCK_M, S)
    do = _read(grads, start, head, BLOCK_M, S)
    norm = _per_row(stats.q_norm, rows, head, 0.0)
    lse = _per_row(stats.lse, rows, head, float("inf"))
    return _Queries(start, q, do, norm, lse, _per_row(stats.delta, rows, head, 0.0))


@triton.jit
def _keep(head: Head, rows, start_n, DROPOUT_P: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """The dropout mask of a (BLOCK_M x BLOCK_N) tile: True where a weight is kept.

    One Philox call gives four numbers, for four neighbouring keys of a row; the counter is the
    (row, group of four keys) position within the head, the key is seed + batch-head index.
    """
    groups = start_n // 4 + tl.arange(0, BLOCK_N // 4)
    counter = rows[:, None] * ((head.T + 3) // 4) + groups[None, :]
    u0, u1, u2, u3 = tl.rand4x(head.seed + head.index, counter)
    u = tl.reshape(tl.join(tl.join(u0, u1), tl.join(u2, u3)), (BLOCK_M, BLOCK_N))
    return u >= DROPOUT_P


@triton.jit
def _dot(a, b):
    """a @ b accumulated in float32; float32 operands in full precision (not TF32)."""
    if _WIDEN_BF16 and a.dtype == tl.bfloat16:
        a, b = a.to(tl.float32), b.to(tl.float32)
    if a.dtype == tl.float32:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _scores(q, q_norm, keys: _Keys, S: tl.constexpr):
    """A tile's logits in base 2 (times log2 e) from q.k accumulated in float32, and for Euclid
    the squared distances they came from."""
    scale_log2: tl.constexpr = S.HEAD_DIM**-0.5 * _LOG2E
    qk = _dot(q, tl.trans(keys.k))
    if S.EUCLID:
        squared = tl.maximum(q_norm[:, None] + keys.norm[None, :] - 2.0 * qk, 0.0)
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
    state, q, q_norm, rows, keys, values, stats: RowStats, head: Head, lo, hi,
    S: tl.constexpr, MASKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Online softmax over the keys [lo, hi); MASKED tiles apply the causal and tail masks.
    state: the output accumulator, the running max of the base-2 logits and the running sum of
    exp2(logits - max)."""
    acc, m, total = state
    for start_n in range(lo, hi, BLOCK_N):
        key_block = _load_keys(keys, values, stats, start_n, head, BLOCK_N, S)
        z, _ = _scores(q, q_norm, key_block, S)
        if MASKED:
            z = tl.where(_visible(rows, start_n + tl.arange(0, BLOCK_N), head.T, S.CAUSAL), z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, 1))
        alpha = tl.exp2(m - m_new)
        p = tl.exp2(z - m_new[:, None])
        total = total * alpha + tl.sum(p, 1)
        if S.DROPOUT_P > 0:  # normalised later by `total`, which counts every weight, kept or not
            keep = _keep(head, rows, start_n, S.DROPOUT_P, BLOCK_M, BLOCK_N)
            p = tl.where(keep, p * (1.0 / (1.0 - S.DROPOUT_P)), 0.0)
        acc = acc * alpha[:, None] + _dot(p.to(key_block.v.dtype), key_block.v)
        m = m_new
    return acc, m, total


@triton.jit(do_not_specialize=["seed"])  # a random seed: not one compile per seed % 16
def _forward(
    q: Rows, k: Rows, v: Rows, out: Rows, stats: RowStats, seed, T,
    S: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """The output and log-sum-exp of one block of queries, streaming over the keys they see."""
    HEAD_DIM: tl.constexpr = S.HEAD_DIM
    head = _head(T, seed)
    start_m = tl.program_id(0) * BLOCK_M
    rows = start_m + tl.arange(0, BLOCK_M)
    q_tile = _read(_reader(q, head, BLOCK_M, S), start_m, head, BLOCK_M, S)
    q_norm = _per_row(stats.q_norm, rows, head, 0.0)
    keys, values = _reader(k, head, BLOCK_N, S), _reader(v, head, BLOCK_N, S)
    state = (
        tl.zeros([BLOCK_M, HEAD_DIM], tl.float32),
        tl.full([BLOCK_M], float("-inf"), tl.float32),
        tl.zeros([BLOCK_M], tl.float32),
    )
    full_end, end = _key_bounds(start_m, T, S.CAUSAL, BLOCK_M, BLOCK_N)
    state = _forward_tiles(
        state, q_tile, q_norm, rows, keys, values, stats, head, lo=0, hi=full_end,
        S=S, MASKED=False, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
    )  # fmt: skip
    acc, m, total = _forward_tiles(
        state, q_tile, q_norm, rows, keys, values, stats, head, lo=full_end, hi=end,
        S=S, MASKED=True, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
    )  # fmt: skip
    _write(out, start_m, acc / total[:, None], head, BLOCK_M, HEAD_DIM)
    tl.store(stats.lse + head.first + rows, m + tl.log2(total), mask=rows < T)


@triton.jit
def _weights_grad(
    queries: _Queries, keys: _Keys, head: Head,
    S: tl.constexpr, MASKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Recompute a tile's weights; return the dropped weights and W (see the module docstring)."""
    rows = queries.start + tl.arange(0, BLOCK_M)
    z, squared = _scores(queries.q, queries.norm, keys, S)
    p = tl.exp2(z - queries.lse[:, None])  # padding rows have lse = inf, so weight 0
    if MASKED:
        p = tl.where(_visible(rows, keys.start + tl.arange(0, BLOCK_N), head.T, S.CAUSAL), p, 0.0)
    grad_dropped = _dot(queries.do, tl.trans(keys.v))  # dL/d(dropped weights)
    if S.DROPOUT_P > 0:
        keep = _keep(head, rows, keys.start, S.DROPOUT_P, BLOCK_M, BLOCK_N)
        inv_keep: tl.constexpr = 1.0 / (1.0 - S.DROPOUT_P)
        dropped = tl.where(keep, p * inv_keep, 0.0)
        grad_p = tl.where(keep, grad_dropped * inv_keep, 0.0)
    else:
        dropped = p
        grad_p = grad_dropped
    grad_logits = p * (grad_p - queries.delta[:, None])
    scale: tl.constexpr = S.HEAD_DIM**-0.5
    if S.EUCLID:  # W = dL/dlogits * scale / distance, 0 at distance 0 (the subgradient)
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
    state, keys: _Keys, queries, grads, stats: RowStats, head: Head, lo, hi,
    S: tl.constexpr, MASKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """state (dk, dv, colsum(W)) accumulated over the query blocks [lo, hi)."""
    dk, dv, w_colsum = state
    for start_m in range(lo, hi, BLOCK_M):
        query_block = _load_queries(queries, grads, stats, start_m, head, BLOCK_M, S)
        dropped, w = _weights_grad(query_block, keys, head, S, MASKED, BLOCK_M, BLOCK_N)
        dv += _dot(tl.trans(dropped.to(query_block.do.dtype)), query_block.do)
        w = _to_input_dtype(w, query_block.q.dtype)  # rounded once: the colsum below cancels what the product holds
        dk += _dot(tl.trans(w), query_block.q)
        if S.EUCLID:
            w_colsum += tl.sum(w.to(tl.float32), 0)
    return dk, dv, w_colsum


@triton.jit(do_not_specialize=["seed"])  # a random seed: not one compile per seed % 16
def _backward_dkdv(
    q: Rows, k: Rows, v: Rows, do: Rows, dk: Rows, dv: Rows, stats: RowStats, seed, T,
    S: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """dk and dv of one block of keys, streaming over the queries that see them."""
    HEAD_DIM: tl.constexpr = S.HEAD_DIM
    head = _head(T, seed)
    start_n = tl.program_id(0) * BLOCK_N
    key_block = _load_keys(_reader(k, head, BLOCK_N, S), _reader(v, head, BLOCK_N, S), stats, start_n, head, BLOCK_N, S)
    queries, grads = _reader(q, head, BLOCK_M, S), _reader(do, head, BLOCK_M, S)
    state = (
        tl.zeros([BLOCK_N, HEAD_DIM], tl.float32),
        tl.zeros([BLOCK_N, HEAD_DIM], tl.float32),
        tl.zeros([BLOCK_N], tl.float32),
    )
    if S.CAUSAL:  # query tiles on the diagonal need the mask; those below it see every key here
        begin = (start_n // BLOCK_M) * BLOCK_M
        diagonal_end = tl.minimum(tl.cdiv(start_n + BLOCK_N, BLOCK_M) * BLOCK_M, T)
    else:  # only the tail block of keys needs the mask, in every query tile
        begin = 0
        diagonal_end = T if start_n + BLOCK_N > T else 0
    state = _dkdv_tiles(
        state, key_block, queries, grads, stats, head, lo=begin, hi=diagonal_end,
        S=S, MASKED=True, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
    )  # fmt: skip
    dk_acc, dv_acc, w_colsum = _dkdv_tiles(
        state, key_block, queries, grads, stats, head, lo=diagonal_end, hi=T,
        S=S, MASKED=False, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
    )  # fmt: skip
    if S.EUCLID:
        dk_acc -= key_block.k.to(tl.float32) * w_colsum[:, None]
    _write(dk, start_n, dk_acc, head, BLOCK_N, HEAD_DIM)
    _write(dv, start_n, dv_acc, head, BLOCK_N, HEAD_DIM)


@triton.jit
def _dq_tiles(
    state, query_block: _Queries, keys, values, stats: RowStats, head: Head, lo, hi,
    S: tl.constexpr, MASKED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """state (dq, rowsum(W)) accumulated over the key blocks [lo, hi)."""
    dq, w_rowsum = state
    for start_n in range(lo, hi, BLOCK_N):
        key_block = _load_keys(keys, values, stats, start_n, head, BLOCK_N, S)
        _, w = _weights_grad(query_block, key_block, head, S, MASKED, BLOCK_M, BLOCK_N)
        w = _to_input_dtype(w, key_block.k.dtype)  # rounded once: the rowsum below cancels what the product holds
        dq += _dot(w, key_block.k)
        if S.EUCLID:
            w_rowsum += tl.sum(w.to(tl.float32), 1)
    return dq, w_rowsum


@triton.jit(do_not_specialize=["seed"])  # a random seed: not one compile per seed % 16
def _backward_dq(
    q: Rows, k: Rows, v: Rows, do: Rows, dq: Rows, stats: RowStats, seed, T,
    S: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """dq of one block of queries, streaming over the keys they see."""
    HEAD_DIM: tl.constexpr = S.HEAD_DIM
    head = _head(T, seed)
    start_m = tl.program_id(0) * BLOCK_M
    query_block = _load_queries(
        _reader(q, head, BLOCK_M, S), _reader(do, head, BLOCK_M, S), stats, start_m, head, BLOCK_M, S
    )
    keys, values = _reader(k, head, BLOCK_N, S), _reader(v, head, BLOCK_N, S)
    state = (tl.zeros([BLOCK_M, HEAD_DIM], tl.float32), tl.zeros([BLOCK_M], tl.float32))
    full_end, end = _key_bounds(start_m, T, S.CAUSAL, BLOCK_M, BLOCK_N)
    state = _dq_tiles(
        state, query_block, keys, values, stats, head, lo=0, hi=full_end,
        S=S, MASKED=False, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
    )  # fmt: skip
    dq_acc, w_rowsum = _dq_tiles(
        state, query_block, keys, values, stats, head, lo=full_end, hi=end,
        S=S, MASKED=True, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
    )  # fmt: skip
    if S.EUCLID:
        dq_acc -= query_block.q.to(tl.float32) * w_rowsum[:, None]
    _write(dq, start_m, dq_acc, head, BLOCK_M, HEAD_DIM)


KERNELS = {"forward": _forward, "dkdv": _backward_dkdv, "dq": _backward_dq}
MAX_T = 92_000  # the Philox counter, row * ceil(T / 4) + key group, stays below 2^31
MAX_GRID = 65_535  # the launch grid's second and third axes: heads and batch


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
        and max(b, h) <= MAX_GRID
    )


def dropout_seed() -> int:
    """A fresh Philox seed from torch's CPU generator: no GPU synchronisation, and a run replays
    exactly from a checkpoint's RNG state."""
    return int(torch.randint(2**62, (), dtype=torch.int64))


@triton.jit
def _mask_kernel(M, seed, T, DROPOUT_P: tl.constexpr, BLOCK: tl.constexpr):
    """The dropout mask of one (batch, head), BLOCK x BLOCK at a time, from the kernels' Philox stream."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    start_n = tl.program_id(1) * BLOCK
    cols = start_n + tl.arange(0, BLOCK)
    bh = tl.program_id(2)
    keep = _keep(Head(0, 0, bh, 0, T, seed), rows, start_n, DROPOUT_P, BLOCK, BLOCK)
    tl.store(M + bh * T * T + rows[:, None] * T + cols[None, :], keep, mask=(rows[:, None] < T) & (cols[None, :] < T))


def dropout_mask(seed: int, *, batch: int, heads: int, t: int, dropout_p: float, device) -> torch.Tensor:
    """The weights the kernels keep under dropout with this seed: (batch, heads, t, t), True where
    kept. For checks: with the seed a call draws (`dropout_seed` after the same torch.manual_seed),
    the forward's output and the backward's gradients follow from it, if both regenerate it."""
    mask = torch.zeros(batch * heads, t, t, dtype=torch.bool, device=device)
    block = 16
    grid = (triton.cdiv(t, block), triton.cdiv(t, block), batch * heads)
    _mask_kernel[grid](mask, seed, t, DROPOUT_P=dropout_p, BLOCK=block)
    return mask.view(batch, heads, t, t)


def _tma_ready(x: torch.Tensor) -> bool:
    """Whether tensor descriptors can read x's rows: 16-byte aligned start and strides, rows apart."""
    size = x.element_size()
    return x.data_ptr() % 16 == 0 and x.stride(2) > 0 and all(s * size % 16 == 0 for s in x.stride()[:3])


def _readable(x: torch.Tensor, tma: bool) -> torch.Tensor:
    """x itself where the kernels can read it through its strides, else a contiguous copy."""
    if x.stride(-1) == 1 and (not tma or _tma_ready(x)):
        return x
    return x.clone(memory_format=torch.contiguous_format)  # a new allocation: aligned even where x was contiguous


def _shared_memory(name: str, launch: Launch, head_dim: int, element_size: int) -> int:
    """A rough upper bound of a launch's shared memory in bytes: the tiles that stay (a block of
    queries, or of keys and values) plus, per pipeline stage, the two tiles that stream."""
    if name == "forward":  # q stays; k and v stream
        resident, streamed = launch.block_m, 2 * launch.block_n
    elif name == "dkdv":  # k and v stay; q and dO stream
        resident, streamed = 2 * launch.block_n, 2 * launch.block_m
    else:  # dq: q and dO stay; k and v stream
        resident, streamed = 2 * launch.block_m, 2 * launch.block_n
    return (resident + launch.stages * streamed) * head_dim * element_size


def fitting(name: str, launches: list[Launch], *, head_dim: int, element_size: int, t: int, limit: int) -> list[Launch]:
    """The launches worth timing: those whose tiles fit `limit` bytes of shared memory and are no
    longer than the sequence-length bucket; at least the smallest."""
    bucket = max(triton.next_power_of_2(t), 16)
    kept = [
        launch
        for launch in launches
        if _shared_memory(name, launch, head_dim, element_size) <= limit
        and max(launch.block_m, launch.block_n) <= bucket
    ]
    return kept or [min(launches, key=lambda launch: _shared_memory(name, launch, head_dim, element_size))]


def _as_launch(config: triton.Config) -> Launch:
    return Launch(config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.num_warps, config.num_stages)


def shared_memory_limit(device: torch.device) -> int:
    """Bytes of shared memory one block may use on the GPU."""
    return torch.cuda.get_device_properties(device).shared_memory_per_block_optin


def _prune(name: str, configs, named_args, **kwargs):
    """The autotuner's early pruning (`fitting`) of a launch's candidates."""
    by_launch = {_as_launch(config): config for config in configs}
    x = kwargs["q"].data
    kept = fitting(
        name,
        list(by_launch),
        head_dim=kwargs["S"].HEAD_DIM,
        element_size=x.element_size(),
        t=kwargs["T"],
        limit=shared_memory_limit(x.device),
    )
    return [by_launch[launch] for launch in kept]


def _capability(device: torch.device) -> tuple[int, int] | None:
    """The GPU's compute capability; None under Triton's CPU interpreter."""
    return None if INTERPRET else torch.cuda.get_device_capability(device)


def candidates(name: str, capability: tuple[int, int] | None) -> list[Launch]:
    """The launch sizes the autotuner tries for a kernel on a GPU of this compute capability (None:
    Triton's CPU interpreter, which runs CONFIGS alone)."""
    if capability is None:
        return [CONFIGS[name]]
    return CANDIDATES[name] + (HOPPER_CANDIDATES[name] if capability >= (9, 0) else [])


TUNERS: dict[tuple, triton.runtime.Autotuner] = {}  # the autotuned kernels made so far, by `tuner`'s arguments


def tuner(name: str, capability: tuple[int, int] | None, bucket: int, dtype: torch.dtype):
    """The autotuned kernel for one GPU architecture, sequence-length bucket and dtype; within it,
    Triton tunes once per Spec (its key) and caches the choice for the process."""
    key = (name, capability, bucket, dtype)
    if key not in TUNERS:
        configs = [
            triton.Config({"BLOCK_M": c.block_m, "BLOCK_N": c.block_n}, num_warps=c.warps, num_stages=c.stages)
            for c in candidates(name, capability)
        ]
        prune = {"early_config_prune": functools.partial(_prune, name)}
        TUNERS[key] = triton.autotune(configs, key=["S"], prune_configs_by=prune)(KERNELS[name])
    return TUNERS[key]


def tuned_launches() -> list[dict]:
    """What the autotuner chose so far: one row per kernel, capability, bucket, dtype and Spec."""
    rows = []
    for (name, capability, bucket, dtype), kernel in TUNERS.items():
        for key, config in kernel.cache.items():  # key: the Spec, then whatever else Triton adds
            spec = key[0]
            where = dict(kernel=name, capability=capability, t_bucket=bucket, dtype=str(dtype).removeprefix("torch."))
            rows.append({**where, **spec._asdict(), **_as_launch(config)._asdict()})
    return rows


def _scratch(size: int, alignment: int, stream):
    """Global memory for the tensor descriptors a kernel makes (Triton asks for it at launch)."""
    return torch.empty(size, dtype=torch.int8, device="cuda")


def _launch(name: str, shape, spec: Spec, launches: dict | None, **args):
    """Launch a kernel over (row blocks, heads, batch): autotuned, or at `launches[name]`."""
    b, h, t, _ = shape
    block = "BLOCK_N" if name == "dkdv" else "BLOCK_M"  # the rows one program owns
    if spec.TMA and not INTERPRET:
        triton.set_allocator(_scratch)
    if launches is None:
        x = args["q"].data
        kernel = tuner(name, _capability(x.device), triton.next_power_of_2(t), x.dtype)
        kernel[lambda meta: (triton.cdiv(t, meta[block]), h, b)](**args, S=spec)
    else:
        launch = launches[name]
        sizes = dict(BLOCK_M=launch.block_m, BLOCK_N=launch.block_n)
        grid = (triton.cdiv(t, sizes[block]), h, b)
        KERNELS[name][grid](**args, S=spec, **sizes, num_warps=launch.warps, num_stages=launch.stages)


class TritonAttention(torch.autograd.Function):
    """Autograd wrapper: the forward keeps q, k, v, the output and the log-sum-exp, nothing (T x T)."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, dropout_p: float, score: str, launches: dict | None, tma: bool):
        b, h, t, d = q.shape
        if not supports(q, k, v):
            raise ValueError(
                f"the Triton attention kernel takes q, k, v of one shape and dtype (fp16, bf16, fp32), head_dim in"
                f" {HEAD_DIMS}, T <= {MAX_T} and batch, heads <= {MAX_GRID}; got {q.shape}, {k.shape},"
                f" {v.shape} in {q.dtype}"
            )
        if not 0 <= dropout_p < 1:
            raise ValueError(f"dropout_p must be in [0, 1), not {dropout_p}")
        capability = _capability(q.device)
        if tma and capability is not None and capability < (9, 0):
            raise ValueError("tma=True needs a GPU of compute capability 9 or more (tensor descriptors)")
        q, k, v = (_readable(x, tma) for x in (q, k, v))
        seed = dropout_seed() if dropout_p > 0 else 0
        out = q.new_empty(b, t, h, d).transpose(1, 2)  # (batch, time, heads): merging the heads is a view
        lse = q.new_empty(b, h, t, dtype=torch.float32)
        q_norm, k_norm = (x.float().square().sum(-1) for x in (q, k))  # O(T) each, kept for the backward
        spec = Spec(EUCLID=score == "euclid", CAUSAL=causal, DROPOUT_P=float(dropout_p), HEAD_DIM=d, TMA=tma)
        stats = RowStats(q_norm=q_norm, k_norm=k_norm, lse=lse, delta=None)
        _launch(
            "forward", q.shape, spec, launches,
            q=Rows.of(q), k=Rows.of(k), v=Rows.of(v), out=Rows.of(out), stats=stats, seed=seed, T=t,
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, q_norm, k_norm, out, lse)
        ctx.args = (seed, spec, launches)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, q_norm, k_norm, out, lse = ctx.saved_tensors
        seed, spec, launches = ctx.args
        grad_out = _readable(grad_out.to(q.dtype), spec.TMA)
        delta = (out.float() * grad_out.float()).sum(-1)  # rowsum(dO * O) = rowsum(dropped * dL/d(dropped))
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        stats = RowStats(q_norm=q_norm, k_norm=k_norm, lse=lse, delta=delta)
        inputs = dict(
            q=Rows.of(q), k=Rows.of(k), v=Rows.of(v), do=Rows.of(grad_out), stats=stats, seed=seed, T=q.shape[2]
        )
        _launch("dkdv", q.shape, spec, launches, **inputs, dk=Rows.of(dk), dv=Rows.of(dv))
        _launch("dq", q.shape, spec, launches, **inputs, dq=Rows.of(dq))
        return dq, dk, dv, None, None, None, None, None


def triton_attention(q, k, v, *, causal=True, dropout_p=0.0, score="euclid", launches=None, tma=False):
    """Attention of (batch, heads, time, head_dim) tensors through the Triton kernels.

    launches: {"forward", "dkdv", "dq"} -> Launch to run those sizes instead of the autotuned ones;
    tma: read the inputs through tensor descriptors (compute capability 9+; off by default).
    """
    if score not in ("euclid", "dot"):
        raise ValueError(f"unknown score {score!r} for the Triton kernel; choose 'euclid' or 'dot'")
    return TritonAttention.apply(q, k, v, causal, dropout_p, score, launches, tma)
