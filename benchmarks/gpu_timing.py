"""GPU timings of the attention implementations, in one run within a time budget.

    python benchmarks/gpu_timing.py --out DIR [--budget 450]   # on a CUDA GPU (benchmarks/gpu_session.sh)
    python benchmarks/gpu_timing.py --smoke --out DIR          # CPU, tiny shapes, Triton's interpreter

Their correctness is tests/test_triton_attention.py's (`pytest -m gpu` on a GPU). Implementations,
by name (none is registered as an attention kind, and nothing of the library is changed): ``dot``,
PyTorch's SDPA; ``dot_triton``, the Triton kernel with the dot-product score (the control that
separates the scoring function from the implementation); ``euclid`` (on CUDA the Triton kernel,
autotuned, as training calls it); ``euclid_naive``; ``dot_triton_tma`` and ``euclid_tma``, the
kernel reading through tensor descriptors (compute capability 9+ only).

Stages, in this order (``--stages`` picks some); each writes its CSV when it ends, and the rows
the budget leaves no time for are written as skipped:
0. compile: every Triton kernel the chosen stages launch, each autotuning candidate, compiled in
   ``--compile-workers`` processes ahead (triton_cache.py).
1. attention (attention.csv): forward + backward, bf16, batch 8, 8 heads, causal, head_dim 64, seq_len
   512, 2048, 4096, 8192, attention dropout 0.1 and 0: milliseconds (the median of
   attnscore.bench.time_calls, the workflow's timer: CUDA events), TFLOPS by the Triton
   tutorial's count (forward 4 B H T^2 D, halved for causal; backward 2.5x forward) and the
   memory allocated above the inputs.
2. training (training.csv): the reference model's training step (d_model 512, 6 layers, 8 heads,
   vocab 50,257, batch 8, precision auto), dot and euclid, seq_len 512, 2048, 4096, attention
   dropout 0.1 and 0: tokens/s and peak memory (attnscore.bench.measure, in this process).
3. tma (attention.csv): the kernel through tensor descriptors beside plain loads, head_dim 64, dropout 0.
4. head_dim_128 (attention.csv): stage 1 at head_dim 128.
autotune.csv (the autotuner's choices), environment.json and summary.md (gpu_report.py) end the run.
"""

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

if "--smoke" in sys.argv:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpu_report import SKIPPED, environment, summary  # noqa: E402
from triton_cache import compile_ahead  # noqa: E402

from attnscore import attention  # noqa: E402
from attnscore import triton_attention as kernel  # noqa: E402
from attnscore.bench import Timing, measure, time_calls  # noqa: E402
from attnscore.model import ModelConfig  # noqa: E402

STAGES = ("attention", "training", "tma", "head_dim_128")
KERNEL_KINDS = {"dot_triton": ("dot", False), "euclid": ("euclid", False)}  # kind: (score, tma)
TMA_KINDS = {"dot_triton_tma": ("dot", True), "euclid_tma": ("euclid", True)}
OTHER_KINDS = {
    kind: attention.get(kind) for kind in ("dot", "euclid", "euclid_naive")
}  # euclid off CUDA: the autograd Function
TIMED_KINDS = ("dot", "dot_triton", "euclid", "euclid_naive")
TRAINED_KINDS = ("dot", "euclid")


class Run:
    """What this run measures, where, and until when."""

    def __init__(self, smoke: bool, budget_s: float):
        self.smoke, self.started = smoke, time.monotonic()
        self.deadline = self.started + budget_s
        self.device = "cpu" if smoke else "cuda"
        capability = None if smoke else torch.cuda.get_device_capability()
        self.tma = smoke or capability >= (9, 0)  # the interpreter runs the descriptor path too
        self.kernel_kinds = {**KERNEL_KINDS, **(TMA_KINDS if self.tma else {})}
        self.capability = capability
        self.batch, self.heads = (1, 2) if smoke else (8, 8)
        self.seq_lens = [32] if smoke else [512, 2048, 4096, 8192]
        self.train_seq_lens = [32] if smoke else [512, 2048, 4096]
        self.head_dim = 16 if smoke else 64
        self.train_batch = 2 if smoke else 8
        self.warmup, self.repeats = (0, 1) if smoke else (3, 20)  # smoke timings check the script, nothing more

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def out_of_time(self, row: dict) -> bool:
        """Marks the row skipped once the budget is spent."""
        if time.monotonic() > self.deadline:
            row["status"] = SKIPPED
            return True
        return False

    def is_kernel(self, kind: str) -> bool:
        return kind in self.kernel_kinds and (kind != "euclid" or not self.smoke)  # euclid runs the kernel on CUDA

    def attend(self, kind: str):
        """The implementation as fn(q, k, v, causal=, dropout_p=); the kernel's autotuned."""
        if self.is_kernel(kind):
            score, tma = self.kernel_kinds[kind]
            return functools.partial(kernel.triton_attention, score=score, tma=tma)
        return OTHER_KINDS[kind]


def failure(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"


# ---- the rows of each stage ----


def attention_rows(run: Run, stage: str) -> list[dict]:
    if stage == "tma":  # beside the same kernels' plain loads
        kinds, dropouts, head_dim = ["dot_triton", "euclid", *TMA_KINDS] if run.tma else [], (0.0,), run.head_dim
    else:
        kinds, dropouts = TIMED_KINDS, (0.1, 0.0)
        head_dim = run.head_dim if stage == "attention" else (32 if run.smoke else 128)
    return [
        dict(stage=stage, kind=kind, head_dim=head_dim, seq_len=t, dropout=p)
        for p in dropouts
        for t in run.seq_lens
        for kind in kinds
    ]


def training_rows(run: Run) -> list[dict]:
    return [
        dict(kind=kind, seq_len=t, attention_dropout=p)
        for p in (0.1, 0.0)
        for t in run.train_seq_lens
        for kind in TRAINED_KINDS
    ]


# ---- stage 0: what to compile ahead ----


def kernel_cases(run: Run, plan: dict[str, list[dict]]) -> list[tuple]:
    """Every Triton compile the planned rows need (all autotuned, bf16, causal), as (score, tma,
    head_dim, dropout_p, T, launches): one per candidate the autotuner keeps for that T (Triton
    specialises on T % 16, so a short T of the same class stands in for it)."""
    wanted = {
        (row["kind"], row["head_dim"], row["dropout"], row["seq_len"])
        for stage in ("attention", "tma", "head_dim_128")
        for row in plan.get(stage, [])
        if run.is_kernel(row["kind"])
    }
    wanted |= {  # the model's heads: d_model 512 / 8
        (row["kind"], 64, row["attention_dropout"], row["seq_len"])
        for row in plan.get("training", [])
        if run.is_kernel(row["kind"])
    }
    limit = None if run.smoke else kernel.shared_memory_limit(torch.device("cuda"))
    cases = set()
    for kind, head_dim, dropout, t in wanted:
        score, tma = run.kernel_kinds[kind]
        kept = {
            name: kernel.candidates(name, run.capability)
            if run.smoke
            else kernel.fitting(
                name, kernel.candidates(name, run.capability), head_dim=head_dim, element_size=2, t=t, limit=limit
            )  # bf16: 2 bytes
            for name in kernel.KERNELS
        }
        for i in range(max(map(len, kept.values()))):
            launches = tuple((name, options[min(i, len(options) - 1)]) for name, options in kept.items())
            cases.add((score, tma, head_dim, dropout, 64 if t % 16 == 0 else 50, launches))
    return sorted(cases, key=str)


# ---- stages 1, 3, 4: attention alone ----


def attention_tflops(batch, heads, t, head_dim, causal=True) -> float:
    """Forward + backward FLOPs in TFLOP, by the Triton tutorial's count."""
    forward = 4 * batch * heads * t * t * head_dim * (0.5 if causal else 1.0)
    return 3.5 * forward / 1e12


def run_attention(run: Run, row: dict) -> dict:
    result = dict(row)
    if run.out_of_time(result):
        return result
    shape = (run.batch, run.heads, row["seq_len"], row["head_dim"])
    q, k, v = (torch.randn(shape, device=run.device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad_out = torch.randn(shape, device=run.device, dtype=torch.bfloat16)
    fn = run.attend(row["kind"])

    def forward_backward():
        fn(q, k, v, causal=True, dropout_p=row["dropout"]).backward(grad_out)
        q.grad = k.grad = v.grad = None

    try:
        forward_backward()  # compiles, tunes
        if run.device == "cuda":  # one call alone, before the timed ones
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            forward_backward()
            torch.cuda.synchronize()
            result["extra_memory_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        times = time_calls(forward_backward, run.warmup, run.repeats, torch.device(run.device))
        result["fwd_bwd_ms"] = 1000 * statistics.median(times)
        result["tflops"] = attention_tflops(*shape) / (result["fwd_bwd_ms"] / 1000)
    except torch.OutOfMemoryError:
        result["status"] = "out of memory"
    except Exception as err:
        result["status"] = failure(err)
    return result


# ---- stage 2: training steps ----


def run_training(run: Run, row: dict, steps: int) -> dict:
    result = dict(row)
    if run.out_of_time(result):
        return result
    shape = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64) if run.smoke else {}
    model_cfg = ModelConfig(
        vocab_size=512 if run.smoke else 50257,
        attention=row["kind"],
        attention_dropout=row["attention_dropout"],
        max_seq_len=row["seq_len"],
        **shape,
    )
    timing = Timing(
        batch_size=run.train_batch, device=run.device, precision="auto", compile=False, seq_lens=[row["seq_len"]],
        warmup_steps=1 if run.smoke else 3, steps=steps, peak_tflops=None,
    )  # fmt: skip
    try:
        result.update(measure(model_cfg, timing, row["seq_len"]))
    except torch.OutOfMemoryError:
        result["status"] = "out of memory"
    except Exception as err:  # a kind that cannot train here is reported, not a crash
        result["status"] = failure(err)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the CSV files, environment.json and summary.md")
    parser.add_argument(
        "--smoke", action="store_true", help="CPU, tiny shapes, Triton's interpreter: checks the script"
    )
    parser.add_argument("--budget", type=float, default=450, help="seconds; rows after that are skipped (default 450)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per shape")
    parser.add_argument(
        "--compile-workers", type=int, default=min(8, os.cpu_count() or 1), help="0: compile as the run goes"
    )
    args = parser.parse_args()
    stages = [stage for stage in args.stages.split(",") if stage]
    if unknown := set(stages) - set(STAGES):
        sys.exit(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --smoke to check the script on the CPU")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(args.smoke, args.budget)
    env = environment(run.smoke, run.capability)
    env.update(
        batch_heads=f"{run.batch} x {run.heads}", train_batch=run.train_batch, budget_s=args.budget, stages=stages
    )
    print(env, flush=True)

    plan = {"training": training_rows(run)}
    plan.update({stage: attention_rows(run, stage) for stage in ("attention", "tma", "head_dim_128")})
    plan = {stage: rows for stage, rows in plan.items() if stage in stages}
    if args.compile_workers > 0:
        print(f"--- compile at {run.elapsed():.0f} s", flush=True)
        cases = kernel_cases(run, plan)
        failures = compile_ahead(cases, args.compile_workers)
        for line in failures:
            print("compile failed:", line, flush=True)
        env.update(compile_cases=len(cases), compile_failures=len(failures), compile_s=round(run.elapsed()))

    results = {name: [] for name in ("attention", "training")}
    for stage in stages:
        print(f"--- {stage} at {run.elapsed():.0f} s", flush=True)
        name = "training" if stage == "training" else "attention"
        for row in plan[stage]:
            result = run_training(run, row, args.steps) if stage == "training" else run_attention(run, row)
            results[name].append(result)
            print(result, flush=True)
            if run.device == "cuda":
                torch.cuda.empty_cache()
        pd.DataFrame(results[name]).to_csv(out / f"{name}.csv", index=False)
    print(f"--- done at {run.elapsed():.0f} s", flush=True)

    attn, steps = pd.DataFrame(results["attention"]), pd.DataFrame(results["training"])
    tuned = pd.DataFrame(kernel.tuned_launches())
    tuned.to_csv(out / "autotune.csv", index=False)
    env["seconds"] = round(run.elapsed())
    (out / "environment.json").write_text(json.dumps(env, indent=2, default=str) + "\n")
    text = summary(env, run.elapsed(), attn, steps, tuned)
    (out / "summary.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
