"""The Triton attention kernels against the float64 oracle, on the CPU through Triton's interpreter.

TRITON_INTERPRET=1 (set here when no GPU is present, before triton is imported) runs the kernels
with numpy, Philox included, at block sizes the GPU path uses: the autotuned launch, which the
interpreter gives one candidate per kernel (attnscore.triton_attention.CONFIGS), and explicit
launches. A kernel that passes here is the one that compiles there (a slow test compiles it for
sm_90, with and without tensor descriptors). Shapes are small; most T are not multiples of the
block sizes, so tails are masked.

On a CUDA GPU every test runs there, and the cases marked `gpu` (skipped without one) add the
shapes and dtypes training runs: T 256 autotuned as training calls the kernel (bf16, causal), T
300 elsewhere at CONFIGS' launch sizes (one compile per case; tails masked), head_dim 16-128,
fp32/bf16/fp16, and tensor descriptors at head_dim 64. `pytest -m gpu` runs those alone
(benchmarks/gpu_session.sh).
"""

import inspect
import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available() and __name__ != "__main__":  # run as a script, it compiles for a GPU
    os.environ.setdefault("TRITON_INTERPRET", "1")
triton = pytest.importorskip("triton", reason="triton is not installed (pip install -r requirements-dev.txt)")
tl = triton.language

from attnscore import triton_attention as ta  # noqa: E402
from attnscore.oracle import oracle, rel_err  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HOPPER = triton.backends.compiler.GPUTarget("cuda", 90, 32)
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}
F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16


def on_gpu(*values):
    """A case at the shapes training runs: for a CUDA GPU, where the interpreter would take minutes."""
    no_gpu = pytest.mark.skipif(DEVICE != "cuda", reason="needs a CUDA GPU (benchmarks/gpu_session.sh runs it)")
    return pytest.param(*values, marks=[pytest.mark.gpu, no_gpu])


def skip_without_descriptors(tma):
    """Tensor descriptors need compute capability 9 on a GPU; the interpreter runs them anywhere."""
    if tma and DEVICE == "cuda" and torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("tensor descriptors need compute capability 9 or more")


def random_qkv(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).to(DEVICE, dtype).requires_grad_() for _ in range(3)]


def model_views(b, h, t, d, seed=0):
    """q, k, v as the model makes them: permuted views of one (batch, time, 3, heads, head_dim)
    projection, and that projection (the leaf)."""
    qkv = torch.randn(b, t, 3, h, d, generator=torch.Generator().manual_seed(seed)).to(DEVICE).requires_grad_()
    return qkv, qkv.permute(2, 0, 3, 1, 4).unbind(0)


def as_float64(*tensors):
    return [t.detach().double().requires_grad_() for t in tensors]


def assert_matches(out, ref, inputs, inputs64, tolerance):
    """Values, then the gradients of q, k and v under one random output gradient."""
    assert out.shape == ref.shape and out.dtype == inputs[0].dtype
    assert rel_err(out, ref) <= tolerance
    # Its own generator: the same output gradient whatever ran before (bf16 dq at head_dim 128 sits
    # near the bound, 0.0088-0.0098 over output gradients).
    grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(0), dtype=ref.dtype).to(ref.device)
    grads = torch.autograd.grad(out, inputs, grad_out.to(out.dtype))
    for name, g, g_ref in zip("qkv", grads, torch.autograd.grad(ref, inputs64, grad_out), strict=True):
        assert rel_err(g, g_ref) <= tolerance, f"d{name}"


def test_launch_sizes_obey_the_gpu_compilers_rules():
    every = [*ta.CONFIGS.values(), *sum(ta.CANDIDATES.values(), []), *sum(ta.HOPPER_CANDIDATES.values(), [])]
    for block_m, block_n, warps, stages in every:
        for size in (block_m, block_n, warps):
            assert size & (size - 1) == 0, f"{size} is not a power of two"
        assert min(block_m, block_n) >= 16 and stages >= 1
    for name, config in ta.CONFIGS.items():  # the interpreter runs what a GPU tries first
        assert ta.candidates(name, None) == [config] == ta.CANDIDATES[name][:1]


SCORES = ["euclid", "dot"]
# (causal, shape, launches, tma); launches None: autotuned.
FLOAT32_CASES = [
    *((causal, shape, None, False) for causal in (True, False) for shape in [(2, 2, 45, 32), (1, 3, 150, 64), (1, 1, 37, 128)]),
    *(on_gpu(True, (2, 2, 300, d), ta.CONFIGS, False) for d in ta.HEAD_DIMS),
    on_gpu(False, (2, 2, 300, 64), ta.CONFIGS, False),
    on_gpu(True, (2, 2, 300, 64), ta.CONFIGS, True),
]  # fmt: skip


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("causal, shape, launches, tma", FLOAT32_CASES)
def test_float32_values_and_gradients_match_float64_oracle(score, causal, shape, launches, tma):
    skip_without_descriptors(tma)
    q, k, v = random_qkv(shape)
    out = ta.triton_attention(q, k, v, causal=causal, score=score, launches=launches, tma=tma)
    inputs64 = as_float64(q, k, v)
    assert_matches(out, oracle(*inputs64, score, causal=causal), (q, k, v), inputs64, TOLERANCE[torch.float32])


# (dtype, causal, shape, launches, tma); on a GPU, training's path is bf16, causal, autotuned.
HALF_CASES = [
    *((dtype, True, shape, None, False) for dtype in (BF16, F16) for shape in [(2, 2, 70, 64), (1, 2, 100, 128)]),
    *(on_gpu(BF16, True, (2, 4, 256, d), None, False) for d in (64, 128)),
    *(on_gpu(dtype, True, (2, 2, 300, d), ta.CONFIGS, False) for dtype, d in [(F16, 64), (F16, 128), (BF16, 16), (BF16, 32)]),
    on_gpu(BF16, False, (2, 2, 300, 64), ta.CONFIGS, False),
    on_gpu(BF16, True, (2, 4, 256, 64), None, True),
    on_gpu(F16, True, (2, 2, 300, 64), ta.CONFIGS, True),
]  # fmt: skip


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("dtype, causal, shape, launches, tma", HALF_CASES)
def test_half_precision_inputs_are_within_1e_2(score, dtype, causal, shape, launches, tma):
    skip_without_descriptors(tma)
    q, k, v = random_qkv(shape, seed=1, dtype=dtype)
    out = ta.triton_attention(q, k, v, causal=causal, score=score, launches=launches, tma=tma)
    inputs64 = as_float64(q, k, v)  # the rounded inputs: the error measured is the kernel's alone
    assert_matches(out, oracle(*inputs64, score, causal=causal), (q, k, v), inputs64, TOLERANCE[dtype])


def test_causal_mask_hides_the_future():
    q, k, v = (t.detach() for t in random_qkv((1, 2, 80, 32), seed=2))
    changed = [t.clone() for t in (q, k, v)]
    for t in changed:
        t[:, :, 50:] = torch.randn_like(t[:, :, 50:])
    out, out2 = ta.triton_attention(q, k, v), ta.triton_attention(*changed)
    torch.testing.assert_close(out[:, :, :50], out2[:, :, :50], rtol=0, atol=0)
    assert not torch.allclose(out[:, :, 50:], out2[:, :, 50:])


# Launch sizes unlike CONFIGS: BLOCK_M below, equal to and above BLOCK_N in every launch.
L = ta.Launch
UNEQUAL_LAUNCHES = [
    {"forward": L(16, 64, 4, 1), "dkdv": L(64, 16, 4, 1), "dq": L(16, 32, 4, 1)},
    {"forward": L(32, 16, 4, 1), "dkdv": L(16, 32, 4, 1), "dq": L(32, 16, 4, 1)},
]


@pytest.mark.parametrize("launches", UNEQUAL_LAUNCHES)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("t", [5, 50])
def test_loop_bounds_hold_for_any_block_sizes(launches, causal, t):
    q, k, v = random_qkv((1, 2, t, 16), seed=7)
    out = ta.triton_attention(q, k, v, causal=causal, launches=launches)
    inputs64 = as_float64(q, k, v)
    assert_matches(out, oracle(*inputs64, "euclid", causal=causal), (q, k, v), inputs64, TOLERANCE[torch.float32])


# (dtype, causal, shape, p, launches, tma); on a GPU, dropout as training runs it (bf16, autotuned).
DROPOUT_CASES = [
    *((F32, causal, (2, 2, 70, 32), 0.3, None, False) for causal in (True, False)),
    *(on_gpu(F32, True, (1, 2, 300, 64), 0.1, ta.CONFIGS, tma) for tma in (False, True)),
    *(on_gpu(BF16, True, (2, 4, 256, 64), 0.1, None, tma) for tma in (False, True)),
]


@pytest.mark.parametrize("score", SCORES)
@pytest.mark.parametrize("dtype, causal, shape, p, launches, tma", DROPOUT_CASES)
def test_dropout_forward_and_backward_use_the_kernels_own_mask(score, dtype, causal, shape, p, launches, tma):
    """Forward and backward against the oracle's weights times the mask drawn from the same
    stream: the backward regenerates the forward's mask."""
    skip_without_descriptors(tma)
    q, k, v = random_qkv(shape, seed=3, dtype=dtype)
    torch.manual_seed(11)
    out = ta.triton_attention(q, k, v, causal=causal, dropout_p=p, score=score, launches=launches, tma=tma)
    torch.manual_seed(11)  # the seed the call drew
    keep = ta.dropout_mask(ta.dropout_seed(), batch=shape[0], heads=shape[1], t=shape[2], dropout_p=p, device=DEVICE)
    inputs64 = as_float64(q, k, v)
    ref = oracle(*inputs64, score, causal=causal, dropout_mask=keep / (1 - p))
    assert_matches(out, ref, (q, k, v), inputs64, TOLERANCE[dtype])


def test_dropout_keeps_the_expected_fraction_and_seeds_differ():
    b_h, t, p = 4, 96, 0.1
    first, second = (
        ta.dropout_mask(seed, batch=1, heads=b_h, t=t, dropout_p=p, device=DEVICE) for seed in (1234, 5678)
    )
    n = first.numel()
    sigma = (p * (1 - p) / n) ** 0.5
    for mask in (first, second):
        assert abs(mask.float().mean().item() - (1 - p)) <= 5 * sigma
    assert (first != second).float().mean().item() > 0.1  # independent masks differ in ~2p(1-p) = 18%
    assert torch.equal(first, ta.dropout_mask(1234, batch=1, heads=b_h, t=t, dropout_p=p, device=DEVICE))
    heads = first.view(b_h, -1)
    assert not torch.equal(heads[0], heads[1])  # each (batch, head) has its own stream


def test_dropout_is_reproducible_from_torchs_generator():
    q, k, v = (t.detach() for t in random_qkv((1, 2, 40, 16), seed=4))
    torch.manual_seed(5)
    first = ta.triton_attention(q, k, v, dropout_p=0.2)
    torch.manual_seed(5)
    again = ta.triton_attention(q, k, v, dropout_p=0.2)
    other = ta.triton_attention(q, k, v, dropout_p=0.2)
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("tma", [False, True])
@pytest.mark.parametrize("score", ["euclid", "dot"])
def test_permuted_views_are_read_through_their_strides(score, tma, monkeypatch):
    """The model's q, k, v and its gradient of the output reach the kernels as they are (no copy),
    the output is laid out so that merging the heads is a view, and values and gradients match
    the oracle; with tensor descriptors too (tma)."""
    b, h, t, d = 2, 3, 45, 32
    qkv, (q, k, v) = model_views(b, h, t, d, seed=8)
    seen = {}

    def spy(name, shape, spec, launches, **args):
        seen[name] = args
        return launch(name, shape, spec, launches, **args)

    launch = ta._launch
    monkeypatch.setattr(ta, "_launch", spy)
    out = ta.triton_attention(q, k, v, score=score, tma=tma)
    merged = out.transpose(1, 2).reshape(b, t, h * d)  # the model's merge of the heads
    assert merged.data_ptr() == out.data_ptr() and out.transpose(1, 2).is_contiguous()
    qkv64 = qkv.detach().double().requires_grad_()
    ref = oracle(*qkv64.permute(2, 0, 3, 1, 4).unbind(0), score)
    assert rel_err(out, ref) <= TOLERANCE[torch.float32]
    grad = torch.randn(merged.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (grad_qkv,) = torch.autograd.grad(merged, qkv, grad.float())
    (grad_ref,) = torch.autograd.grad(ref.transpose(1, 2).reshape(b, t, h * d), qkv64, grad)
    assert rel_err(grad_qkv, grad_ref) <= TOLERANCE[torch.float32]
    for name, args in seen.items():
        for rows, view in zip((args["q"], args["k"], args["v"]), (q, k, v), strict=True):
            assert rows.data.data_ptr() == view.data_ptr() and (rows.batch, rows.head, rows.time) == view.stride()[:3]
        if name != "forward":  # dO: the gradient of the merged heads, seen through the output's layout
            assert args["do"].data.stride() == out.stride() and not args["do"].data.is_contiguous()
    assert set(seen) == {"forward", "dkdv", "dq"}


def test_tensor_descriptors_need_alignment_and_a_hopper(monkeypatch):
    """tma=True reads what tensor descriptors can (16-byte aligned start and strides) as it is,
    copies the rest, and is refused below compute capability 9."""
    _, (q, _, _) = model_views(1, 2, 8, 16)
    shifted = torch.randn(1 * 2 * 8 * 16 + 1, device=DEVICE)[1:].view(1, 2, 8, 16)  # starts 4 bytes in
    assert ta._readable(q, True) is q and ta._readable(shifted, False) is shifted
    assert ta._readable(shifted, True).is_contiguous() and ta._readable(shifted, True).data_ptr() % 16 == 0
    monkeypatch.setattr(ta, "_capability", lambda device: (8, 0))
    with pytest.raises(ValueError, match="compute capability 9"):
        ta.triton_attention(*random_qkv((1, 1, 8, 16)), tma=True)


def test_kernels_take_few_named_arguments():
    """Tensors as Rows (storage and strides), the per-row vectors as one RowStats, the computation
    as one compile-time Spec (the scale comes from its HEAD_DIM, the keep probability from its
    DROPOUT_P); launches pass them by keyword, so a misspelt or stale argument fails."""
    expected = {
        "forward": ["q", "k", "v", "out", "stats", "seed", "T"],
        "dkdv": ["q", "k", "v", "do", "dk", "dv", "stats", "seed", "T"],
        "dq": ["q", "k", "v", "do", "dq", "stats", "seed", "T"],
    }
    for name, kernel in ta.KERNELS.items():
        params = inspect.signature(kernel.fn).parameters
        assert list(params) == expected[name] + ["S", "BLOCK_M", "BLOCK_N"]
        assert [params[p].annotation for p in ("S", "BLOCK_M", "BLOCK_N")] == [tl.constexpr] * 3
        assert {params[p].annotation for p in expected[name][:-3]} == {ta.Rows}
    q, k, v = random_qkv((1, 1, 16, 16))
    stats = ta.RowStats(*(torch.zeros(1, 1, 16, device=DEVICE) for _ in range(3)), delta=None)
    launch = ta.CONFIGS["forward"]
    args = dict(q=ta.Rows.of(q), k=ta.Rows.of(k), v=ta.Rows.of(v), out=ta.Rows.of(q.detach().clone()), stats=stats)
    spec = ta.Spec(EUCLID=True, CAUSAL=True, DROPOUT_P=0.0, HEAD_DIM=16, TMA=False)
    sizes = dict(BLOCK_M=launch.block_m, BLOCK_N=launch.block_n)
    bind_for_hopper(ta._forward, dict(args, seed=0, T=16, S=spec, **sizes))  # what a GPU launch binds
    with pytest.raises(KeyError, match="scale"):  # the old separate scale is no argument any more
        bind_for_hopper(ta._forward, dict(args, seed=0, T=16, S=spec, **sizes, scale=0.25))
    with pytest.raises(TypeError, match="seed"):
        bind_for_hopper(ta._forward, dict(args, T=16, S=spec, **sizes))
    with pytest.raises(Exception, match="q_norm"):  # Rows where RowStats belongs
        ta._forward[(1, 1, 1)](**{**args, "stats": args["k"]}, seed=0, T=16, S=spec, **sizes)


def test_autotuning_candidates_are_pruned_to_what_fits():
    h200 = 232_448  # bytes of shared memory one block may use on an H200 (and H100)
    hopper = ta.candidates("forward", (9, 0))
    assert ta.candidates("forward", (8, 0)) == ta.CANDIDATES["forward"] == hopper[:-1]
    assert (
        ta.fitting("forward", hopper, head_dim=64, element_size=2, t=4096, limit=h200) == hopper
    )  # bf16, head_dim 64: all fit
    fp32 = ta.fitting(
        "forward", hopper, head_dim=128, element_size=4, t=4096, limit=h200
    )  # fp32, head_dim 128: the largest do not
    assert fp32 == [L(64, 32, 4, 4), L(64, 64, 4, 3)]
    assert ta.fitting("dq", ta.CANDIDATES["dq"], head_dim=64, element_size=2, t=40, limit=h200) == [
        L(64, 64, 4, 2),
        L(64, 32, 4, 3),
    ]
    assert ta.fitting("dq", ta.CANDIDATES["dq"], head_dim=64, element_size=2, t=20, limit=h200) == [
        L(64, 32, 4, 3)
    ]  # none shorter: the smallest


def test_tuned_launches_time_the_candidates_once_per_spec(monkeypatch):
    """The GPU's autotuned path on the interpreter: a Hopper's candidates, pruned, timed by a
    stand-in for do_bench (the last candidate "fastest"); the winner runs, right, and is kept for
    the next call of the same Spec."""
    from triton.runtime.autotuner import Autotuner

    timed = []

    def bench(kernel_call, quantiles):
        timed.append(kernel_call)
        return [1000.0 - len(timed)] * len(quantiles)

    monkeypatch.setattr(ta, "_capability", lambda device: (9, 0))
    monkeypatch.setattr(ta, "shared_memory_limit", lambda device: 232_448)
    monkeypatch.setattr(Autotuner, "do_bench", property(lambda self: bench))
    monkeypatch.setattr(ta, "TUNERS", {})
    q, k, v = random_qkv((1, 2, 100, 16), seed=9)
    out = ta.triton_attention(q, k, v)
    inputs64 = as_float64(q, k, v)
    assert_matches(out, oracle(*inputs64, "euclid"), (q, k, v), inputs64, TOLERANCE[torch.float32])
    assert len(timed) == sum(len(ta.candidates(name, (9, 0))) for name in ta.KERNELS)  # 100 rows: none pruned
    chosen = {
        row["kernel"]: ta.Launch(row["block_m"], row["block_n"], row["warps"], row["stages"])
        for row in ta.tuned_launches()
    }
    assert chosen == {name: ta.HOPPER_CANDIDATES[name][-1] for name in ta.KERNELS}
    assert {row["t_bucket"] for row in ta.tuned_launches()} == {128}
    everything = len(timed)
    ta.triton_attention(q, k, v).sum().backward()
    assert len(timed) == everything  # the same Spec: cached
    ta.triton_attention(q, k, v, causal=False)
    assert len(timed) == everything + len(ta.candidates("forward", (9, 0)))  # another Spec: the forward re-tuned
    assert len(ta.tuned_launches()) == 4


@pytest.mark.parametrize(
    "shape, launches, tma",
    [((1, 2, 40, 32), None, False), *(on_gpu((1, 2, 300, 64), ta.CONFIGS, tma) for tma in (False, True))],
)
def test_zero_distance_gives_finite_gradients(shape, launches, tma):
    skip_without_descriptors(tma)
    q, _, v = random_qkv(shape, seed=6)
    k = q.detach().clone().requires_grad_()  # q == k: every diagonal distance is zero
    out = ta.triton_attention(q, k, v, launches=launches, tma=tma)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
    assert rel_err(out, oracle(*as_float64(q, q, v), "euclid")) <= 1e-3  # float32 cancellation near 0


def test_unsupported_inputs_are_refused():
    q, k, v = random_qkv((1, 1, 8, 24))
    with pytest.raises(ValueError, match="head_dim"):
        ta.triton_attention(q, k, v)
    q, k, v = random_qkv((1, 1, 8, 16))
    assert not ta.supports(q, k[:, :, :4], v[:, :, :4])  # cross-attention shapes: not this kernel's
    assert not ta.supports(q.double(), k.double(), v.double())
    with pytest.raises(ValueError, match="unknown score"):
        ta.triton_attention(q, k, v, score="cosine-ish")
    with pytest.raises(ValueError, match="dropout_p"):
        ta.triton_attention(q, k, v, dropout_p=1.0)


def bind_for_hopper(kernel, kwargs):
    """A launch's arguments bound and specialised for an sm_90 GPU as Triton's launcher does it (its
    options, signature, constants and attributes), without a GPU: unknown or missing arguments
    fail here as they would there."""
    from triton.compiler import make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    kernel = kernel if isinstance(kernel, JITFunction) else JITFunction(kernel.fn)  # the interpreter's too
    backend = make_backend(HOPPER)
    bound, specialization, options = create_function_from_signature(kernel.signature, kernel.params, backend)(**kwargs)
    return kernel._pack_args(backend, kwargs, bound, specialization, options)


def compile_for_hopper():
    """Compile the training path's kernels (Euclid, causal, dropout, bf16, head_dim 64, the model's
    permuted views, CONFIGS' launch sizes) through Triton's GPU compiler and ptxas for sm_90, with
    plain loads and with tensor descriptors; no GPU needed. The arguments are bound and
    specialised as a launch would (Triton's binder), then compiled for the target."""
    from triton.compiler import ASTSource

    b, h, t, d = 2, 4, 256, 64
    q, k, v = (ta.Rows.of(x) for x in torch.empty(b, t, 3, h, d, dtype=torch.bfloat16).permute(2, 0, 3, 1, 4))
    rows = ta.Rows.of(torch.empty(b, t, h, d, dtype=torch.bfloat16).transpose(1, 2))
    vector = torch.empty(b, h, t)
    stats = ta.RowStats(vector, vector, vector, vector)
    common = dict(q=q, k=k, v=v, stats=stats, seed=2**40, T=t)
    args = {
        "forward": dict(common, out=rows, stats=stats._replace(delta=None)),
        "dkdv": dict(common, do=rows, dk=rows, dv=rows),
        "dq": dict(common, do=rows, dq=rows),
    }
    for tma in (False, True):
        spec = ta.Spec(EUCLID=True, CAUSAL=True, DROPOUT_P=0.1, HEAD_DIM=d, TMA=tma)
        for name, kernel in ta.KERNELS.items():
            launch = ta.CONFIGS[name]
            kwargs = dict(args[name], S=spec, BLOCK_M=launch.block_m, BLOCK_N=launch.block_n)
            kwargs.update(num_warps=launch.warps, num_stages=launch.stages)
            options, signature, constexprs, attrs = bind_for_hopper(kernel, kwargs)
            source = ASTSource(kernel, signature, constexprs, attrs)
            compiled = triton.compile(source, target=HOPPER, options=options.__dict__)
            loads = "tensor descriptors" if tma else "plain loads"
            print(name, f"({loads}) compiled,", compiled.metadata.shared, "bytes of shared memory")


@pytest.mark.slow
def test_kernels_compile_for_a_hopper_gpu():
    """What the interpreter accepts but the GPU compiler refuses (a non-constexpr global, a tile it
    cannot lower) fails here, in a process without the interpreter."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("compiled") == 6


if __name__ == "__main__":
    compile_for_hopper()
