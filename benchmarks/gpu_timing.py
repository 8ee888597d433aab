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
   ``--compile-workers`` processes into Triton's on-disk cache, which the run then reads
   (Triton compiles one kernel at a time, about 2-4 s apiece on the H200's host).
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
autotune.csv (what the autotuner chose), environment.json (card, driver, torch, triton, CUDA,
date, seconds) and summary.md (the tables and the issue's targets) end the run.
"""

import argparse
import datetime
import functools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if "--smoke" in sys.argv:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import pandas as pd
import torch
import triton

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attnscore import attention  # noqa: E402
from attnscore import triton_attention as kernel  # noqa: E402
from attnscore.bench import measure, time_calls  # noqa: E402
from attnscore.model import ModelConfig  # noqa: E402
from attnscore.train import TrainConfig  # noqa: E402

STAGES = ("attention", "training", "tma", "head_dim_128")
KERNEL_KINDS = {"dot_triton": ("dot", False), "euclid": ("euclid", False)}  # kind: (score, tma)
TMA_KINDS = {"dot_triton_tma": ("dot", True), "euclid_tma": ("euclid", True)}
OTHER_KINDS = {
    "dot": attention.dot,
    "euclid": attention.euclid,  # off CUDA: the autograd Function
    "euclid_naive": attention.euclid_naive,
}
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
        """The implementation as fn(q, k, v, causal, dropout_p); the kernel's autotuned."""
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


# ---- stage 0: compile ahead, in parallel ----


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
            else kernel.fitting(name, kernel.candidates(name, run.capability), head_dim, 2, t, limit)  # bf16: 2 bytes
            for name in kernel.KERNELS
        }
        for i in range(max(map(len, kept.values()))):
            launches = tuple((name, options[min(i, len(options) - 1)]) for name, options in kept.items())
            cases.add((score, tma, head_dim, dropout, 64 if t % 16 == 0 else 50, launches))
    return sorted(cases, key=str)


def compile_case(case: tuple) -> str | None:
    """In a worker process: run the kernels once at these launch sizes, so that Triton compiles them
    into its on-disk cache; a failure is returned, not raised."""
    score, tma, head_dim, dropout, t, launches = case
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        shape = (1, 2, t, head_dim)
        q, k, v = (torch.randn(shape, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        out = kernel.triton_attention(q, k, v, True, dropout, score, dict(launches), tma)
        out.backward(torch.randn_like(out))
    except Exception as err:  # reported; the run compiles it again, or reports the same failure itself
        return f"{case}: {failure(err)}"
    return None


def compile_ahead(run: Run, plan: dict[str, list[dict]], workers: int) -> dict:
    cases = kernel_cases(run, plan)
    context = multiprocessing.get_context("spawn")  # a fresh CUDA context per worker
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        failures = [f for f in pool.map(compile_case, cases) if f]
    for line in failures:
        print("compile failed:", line, flush=True)
    return dict(compile_cases=len(cases), compile_failures=len(failures), compile_s=round(run.elapsed()))


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
        fn(q, k, v, True, row["dropout"]).backward(grad_out)
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
    cfg = TrainConfig(batch_size=run.train_batch, seq_len=row["seq_len"], device=run.device, precision="auto")
    try:
        result.update(measure(model_cfg, cfg, 1 if run.smoke else 3, steps))
    except torch.OutOfMemoryError:
        result["status"] = "out of memory"
    except Exception as err:  # a kind that cannot train here is reported, not a crash
        result["status"] = failure(err)
    return result


# ---- results ----


def environment(run: Run) -> dict:
    if run.smoke:
        card, driver = "CPU smoke run (Triton interpreter)", None
    else:
        card = torch.cuda.get_device_name()
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            driver = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            driver = None
    return dict(
        card=card, driver=driver, torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
        capability=run.capability, python=sys.version.split()[0], date=str(datetime.date.today()),
    )  # fmt: skip


SKIPPED = "skipped: time budget"


def measured(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows with a value in `column` (neither skipped nor failed)."""
    if column not in rows:
        return rows.iloc[0:0].reindex(columns=[*rows.columns, column])
    return rows[rows[column].notna()]


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".3g") + "\n"


def attention_table(attn: pd.DataFrame, stage: str) -> pd.DataFrame | None:
    """ms and TFLOPS per kind, with dot_triton against SDPA's dot, euclid against dot_triton and the
    tensor-descriptor kernels against the plain ones."""
    rows = measured(attn, "fwd_bwd_ms")
    rows = rows[rows["stage"] == stage]
    if rows.empty:
        return None
    index = ["head_dim", "dropout", "seq_len"]
    ms = rows.pivot_table(index=index, columns="kind", values="fwd_bwd_ms", sort=False)
    tflops = rows.pivot_table(index=index, columns="kind", values="tflops", sort=False)
    table = ms.add_suffix(" ms").join(tflops.add_suffix(" TFLOPS"))
    if {"dot", "dot_triton"} <= set(ms.columns):
        table["dot_triton speed / SDPA's"] = ms["dot"] / ms["dot_triton"]
    for kind, base in (("euclid", "dot_triton"), ("dot_triton_tma", "dot_triton"), ("euclid_tma", "euclid")):
        if {kind, base} <= set(ms.columns):
            table[f"{kind} time / {base}'s"] = ms[kind] / ms[base]
    return table.reset_index()


def targets(attn, steps) -> pd.DataFrame:
    """The issue's targets against this run's numbers."""
    rows = []

    def add(target: str, value: str, met) -> None:
        rows.append(dict(target=target, measured=value, met=bool(met)))

    timed, ms = measured(attn, "fwd_bwd_ms"), pd.DataFrame()
    if len(timed):
        timed = timed[timed["stage"] != "tma"]
        ms = timed.pivot_table(index=["head_dim", "dropout", "seq_len"], columns="kind", values="fwd_bwd_ms")
    if {"dot", "dot_triton"} <= set(ms.columns):
        for t in (2048, 4096):
            if (64, 0.0, t) in ms.index:
                speed = ms.loc[(64, 0.0, t), "dot"] / ms.loc[(64, 0.0, t), "dot_triton"]
                add(f"dot_triton >= 0.8x SDPA's speed, T {t}, head_dim 64, no dropout", f"{speed:.2f}x", speed >= 0.8)
    if {"euclid", "dot_triton"} <= set(ms.columns) and len(ratio := (ms["euclid"] / ms["dot_triton"]).dropna()):
        span = f"{ratio.min():.2f}-{ratio.max():.2f}x at {len(ratio)} shapes"
        add("euclid <= 1.15x dot_triton's time at every shape", span, (ratio <= 1.15).all())
    done = measured(steps, "tokens_per_s")
    if len(done) and set(TRAINED_KINDS) <= set(done["kind"]):
        index = ["attention_dropout", "seq_len"]
        speed = done.pivot_table(index=index, columns="kind", values="tokens_per_s")
        memory = done.pivot_table(index=index, columns="kind", values="peak_memory_mib")
        slower = (1 - speed["euclid"] / speed["dot"]).dropna()
        more = (memory["euclid"] / memory["dot"] - 1).dropna()
        if len(slower):
            span = f"{100 * slower.min():+.1f}% to {100 * slower.max():+.1f}% slower"
            add("training step with euclid within 5% of dot's tokens/s", span, (slower <= 0.05).all())
            add("peak memory within 10% of dot's", f"{100 * more.max():+.1f}% at most", (more <= 0.10).all())
    return pd.DataFrame(rows, columns=["target", "measured", "met"])


def summary(env: dict, seconds: float, attn, steps, tuned) -> str:
    skipped = sum(int(df["status"].eq(SKIPPED).sum()) for df in (attn, steps) if "status" in df)
    parts = [
        f"# GPU timings: {env['card']}, driver {env['driver']}, torch {env['torch']}, triton {env['triton']}, {env['date']}\n",
        f"{seconds:.0f} s; rows skipped for the time budget: {skipped}.\n",
        "## Targets (issue 17)\n",
        markdown(targets(attn, steps)),
    ]
    titles = {
        "attention": "Attention forward + backward, bf16, causal, batch x heads = {}",
        "tma": "Tensor descriptors (TMA) against plain loads, bf16, causal, dropout 0",
        "head_dim_128": "Attention forward + backward at head_dim 128",
    }
    for stage, title in titles.items():
        table = attention_table(attn, stage) if len(attn) else None
        if table is not None:
            parts += [f"## {title.format(env.get('batch_heads'))}\n", markdown(table)]
    done = measured(steps, "tokens_per_s")
    if len(done):
        index = ["attention_dropout", "seq_len"]
        table = done.pivot_table(index=index, columns="kind", values=["tokens_per_s", "peak_memory_mib"], sort=False)
        table.columns = [f"{kind} {value}" for value, kind in table.columns]
        title = f"## Training step, reference model, batch {env['train_batch']}, precision auto\n"
        parts += [title, markdown(table.reset_index())]
    if len(tuned):
        parts += ["## Launch sizes the autotuner chose\n", markdown(tuned)]
    return "\n".join(parts)


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
    env = environment(run)
    env.update(
        batch_heads=f"{run.batch} x {run.heads}", train_batch=run.train_batch, budget_s=args.budget, stages=stages
    )
    print(env, flush=True)

    plan = {"training": training_rows(run)}
    plan.update({stage: attention_rows(run, stage) for stage in ("attention", "tma", "head_dim_128")})
    plan = {stage: rows for stage, rows in plan.items() if stage in stages}
    if args.compile_workers > 0:
        print(f"--- compile at {run.elapsed():.0f} s", flush=True)
        env.update(compile_ahead(run, plan, args.compile_workers))

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
