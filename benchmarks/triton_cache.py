"""Triton kernels compiled ahead, in parallel, into Triton's on-disk cache, which a run then reads
(Triton compiles one kernel at a time, each slowly)."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import torch

from attnscore import triton_attention as kernel


def compile_case(case: tuple) -> str | None:
    """In a worker process: run the kernels once at these launch sizes, so that Triton compiles them
    into its on-disk cache; a failure is returned, not raised."""
    score, tma, head_dim, dropout, t, launches = case
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        shape = (1, 2, t, head_dim)
        q, k, v = (torch.randn(shape, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        out = kernel.triton_attention(
            q, k, v, causal=True, dropout_p=dropout, score=score, launches=dict(launches), tma=tma
        )
        out.backward(torch.randn_like(out))
    except Exception as err:  # reported; the run compiles it again, or reports the same failure itself
        return f"{case}: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    return None


def compile_ahead(cases: list[tuple], workers: int) -> list[str]:
    """Every case compiled in `workers` processes; the failures, one line each."""
    context = multiprocessing.get_context("spawn")  # a fresh CUDA context per worker
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        failures = [f for f in pool.map(compile_case, cases) if f]
    return failures
