"""GPU checks and benchmarks in one run: every attention kind against the float64 reference, the
Triton kernel's block sizes tuned, then attention forward + backward and whole training steps of
the reference model at seq_len 512, 2048 and 4096, with attention dropout 0.1 and 0.

    python benchmarks/gpu_check.py --out benchmarks/results/<card>-<torch>-<date>   # on a CUDA machine
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke   # CPU, tiny shapes, Triton's interpreter

Kinds: every registered kind (attnscore.attention.KINDS) plus two registered here for the
benchmark only: ``dot_triton`` (the Triton kernel with the dot-product score: the control that
separates the scoring function from the implementation) and ``euclid_function`` (the
hand-written autograd Function that ``euclid`` runs on CPUs).

1. Tuning: for each of the kernel's three launches (forward, dk/dv, dq), candidate (BLOCK_M,
   BLOCK_N, warps, stages) timed on Euclidean forward + backward at seq_len 4096, batch 8,
   8 heads, head_dim 64, bf16, with and without dropout; the best (least total time) is used for
   the rest of the run and printed for attnscore.triton_attention.CONFIGS.
2. Correctness, at the tuned launch sizes: values and the gradients of q, k, v against
   attnscore.reference, causal, several shapes, float32 (relative error <= 1e-5), bf16 and fp16
   (<= 1e-2); finite gradients at q == k.
3. Attention alone: forward + backward milliseconds (median of timed calls) and the memory it
   allocates above its inputs, per kind, seq_len and dropout, bf16, batch 8, 8 heads, head_dim 64.
4. Training steps: the reference model (d_model 512, 6 layers, 8 heads, vocab 50,257, batch 8,
   precision auto) through attnscore.bench.measure, in this process (peak memory is reset per
   shape), tokens/s and peak memory per kind, seq_len and attention dropout.
"""

import argparse
import datetime
import json
import math
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

from attnscore import attention  # noqa: E402
from attnscore import triton_attention as kernel  # noqa: E402
from attnscore.bench import measure  # noqa: E402
from attnscore.model import ModelConfig  # noqa: E402
from attnscore.reference import reference, rel_err  # noqa: E402
from attnscore.train import TrainConfig  # noqa: E402

TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}
REFERENCE_OF = {"dot_triton": "dot", "euclid_function": "euclid"}
# The first run on an H200 tried six per launch; these are its three best of each.
L = kernel.Launch
CANDIDATES = {
    "forward": [L(64, 32, 4, 4), L(64, 64, 4, 3), L(128, 32, 4, 3)],
    "dkdv": [L(32, 64, 4, 3), L(64, 64, 4, 2), L(32, 128, 8, 2)],
    "dq": [L(64, 64, 4, 2), L(64, 32, 4, 3), L(128, 64, 8, 2)],
}
TIMED_KINDS = ("dot", "euclid", "dot_triton", "euclid_function", "euclid_naive")


@attention.register("dot_triton")
def dot_triton(q, k, v, causal=True, dropout_p=0.0):
    return kernel.triton_attention(q, k, v, causal, dropout_p, "dot")


@attention.register("euclid_function")
def euclid_function(q, k, v, causal=True, dropout_p=0.0):
    return attention.EuclideanAttention.apply(q, k, v, causal, dropout_p)


def failure(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"


def check_kinds(device, shapes, dtypes) -> list[dict]:
    """Max relative error of output and gradients per kind, dtype and shape, then q == k."""
    rows = []
    for kind in sorted(attention.KINDS):
        ref_kind = REFERENCE_OF.get(kind, kind)
        for dtype in dtypes:
            for shape in shapes:
                g = torch.Generator().manual_seed(0)
                q, k, v = (torch.randn(shape, generator=g).to(device, dtype).requires_grad_() for _ in range(3))
                q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
                row = {"kind": kind, "dtype": str(dtype).removeprefix("torch."), "shape": "x".join(map(str, shape))}
                try:
                    ref = reference(q64, k64, v64, ref_kind)
                    out = attention.attention(q, k, v, kind)
                    grad_out = torch.randn_like(ref)
                    grads = torch.autograd.grad(out, (q, k, v), grad_out.to(dtype))
                    grads_ref = torch.autograd.grad(ref, (q64, k64, v64), grad_out)
                    errors = [rel_err(out, ref)] + [rel_err(a, b) for a, b in zip(grads, grads_ref, strict=True)]
                    row.update(zip(("out_err", "dq_err", "dk_err", "dv_err"), errors, strict=True))
                    passed = all(error <= TOLERANCE[dtype] for error in errors)  # False for a NaN too
                    row.update(max_rel_err=max(errors) if passed else math.nan, passed=passed)
                except Exception as err:  # a kind that cannot run here is a failure to report, not a crash
                    row.update(max_rel_err=math.nan, passed=False, error=failure(err))
                rows.append(row)
                print(row, flush=True)
        if ref_kind == "euclid":  # q == k: every diagonal distance is exactly zero
            q = torch.randn(1, 2, 256, 64, device=device, requires_grad=True)
            k, v = q.detach().clone().requires_grad_(), torch.randn_like(q, requires_grad=True)
            row = {"kind": kind, "dtype": "float32", "shape": "1x2x256x64, q == k"}
            try:
                out = attention.attention(q, k, v, kind)
                grads = torch.autograd.grad(out.square().sum(), (q, k, v))
                row["passed"] = all(torch.isfinite(t).all().item() for t in (out, *grads))
            except Exception as err:
                row.update(passed=False, error=failure(err))
            rows.append(row)
            print(row, flush=True)
    return rows


def median_ms(fn, device, reps, warmup=3) -> float:
    """Median wall time of fn() in milliseconds, synchronised around each call."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def forward_backward(fn, shape, dtype, device, dropout_p):
    """A closure running fn forward and backward on fixed random inputs."""
    q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    grad_out = torch.randn(shape, device=device, dtype=dtype)

    def run():
        fn(q, k, v, True, dropout_p).backward(grad_out)
        q.grad = k.grad = v.grad = None

    return run


def tune(device, seq_lens, shape_of, reps) -> tuple[dict, list[dict]]:
    """Each launch's candidates in turn, the others held at the best so far; least total time wins."""
    best, rows = dict(kernel.CONFIGS), []
    for launch, candidates in CANDIDATES.items():
        totals = {}
        for candidate in candidates:
            configs = {**best, launch: candidate}
            total = 0.0
            for seq_len in seq_lens:
                for dropout_p in (0.1, 0.0):

                    def euclid_kernel(q, k, v, causal, p, configs=configs):
                        return kernel.triton_attention(q, k, v, causal, p, "euclid", configs)

                    try:
                        run = forward_backward(euclid_kernel, shape_of(seq_len), torch.bfloat16, device, dropout_p)
                        ms = median_ms(run, device, reps=reps)
                    except Exception as err:  # e.g. out of shared memory for this tile size
                        ms = math.inf
                        print(f"{launch} {candidate}: {failure(err)}", flush=True)
                    total += ms
                    rows.append(dict(launch=launch, config=str(candidate), seq_len=seq_len, dropout=dropout_p, ms=ms))
            totals[candidate] = total
            print(f"tune {launch} {candidate}: {total:.3f} ms in all", flush=True)
        best[launch] = min(totals, key=totals.get)
    return best, rows


def time_attention(device, kinds, seq_lens, shape_of, reps) -> list[dict]:
    rows = []
    for dropout_p in (0.1, 0.0):
        for seq_len in seq_lens:
            for kind in kinds:
                row, run = dict(kind=kind, seq_len=seq_len, dropout=dropout_p), None
                try:
                    run = forward_backward(attention.get(kind), shape_of(seq_len), torch.bfloat16, device, dropout_p)
                    if device == "cuda":
                        torch.cuda.synchronize()
                        base = torch.cuda.memory_allocated()
                        torch.cuda.reset_peak_memory_stats()
                    row["fwd_bwd_ms"] = median_ms(run, device, reps=reps)
                    if device == "cuda":
                        row["extra_memory_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                except torch.OutOfMemoryError:
                    row["status"] = "out of memory"
                except Exception as err:
                    row["status"] = failure(err)
                del run
                if device == "cuda":
                    torch.cuda.empty_cache()
                rows.append(row)
                print(row, flush=True)
    return rows


def time_training(device, kinds, seq_lens, steps, smoke) -> list[dict]:
    rows = []
    for dropout_p in (0.1, 0.0):
        for seq_len in seq_lens:
            for kind in kinds:
                shape = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64) if smoke else {}
                options = {"p": 2.0} if kind in ("euclid", "euclid_naive") else {}
                model_cfg = ModelConfig(
                    vocab_size=512 if smoke else 50257,
                    attention=kind,
                    attention_options=options,
                    attention_dropout=dropout_p,
                    max_seq_len=seq_len,
                    **shape,
                )
                cfg = TrainConfig(batch_size=2 if smoke else 8, seq_len=seq_len, device=device, precision="auto")
                row = dict(kind=kind, seq_len=seq_len, attention_dropout=dropout_p)
                try:
                    row.update(measure(model_cfg, cfg, 1 if smoke else 3, steps))
                except torch.OutOfMemoryError:
                    row["status"] = "out of memory"
                except Exception as err:  # a kind that cannot train here is reported, not a crash
                    row["status"] = failure(err)
                if device == "cuda":
                    torch.cuda.empty_cache()
                rows.append(row)
                print(row, flush=True)
    return rows


def versus(rows: pd.DataFrame, value: str, by: list[str]) -> pd.DataFrame:
    """A pivot of `value` by kind, with each kind's change against dot in percent (for times and
    memory, + is more; for tokens/s, + is faster)."""
    table = rows.pivot_table(index=by, columns="kind", values=value, sort=False)
    for kind in table.columns.drop("dot"):
        table[f"{kind} vs dot %"] = 100 * (table[kind] / table["dot"] - 1)
    return table.round(2).reset_index()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the CSV files and summary.md")
    parser.add_argument(
        "--smoke", action="store_true", help="CPU, tiny shapes, Triton's interpreter: checks the script"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per shape")
    parser.add_argument("--kinds", default=",".join(TIMED_KINDS), help="kinds to time, comma-separated")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if args.smoke:
        device, dtypes, seq_lens, reps = "cpu", [torch.float32], [32], 1
        shapes = [(1, 2, 40, 16)]
        shape_of = lambda t: (1, 2, t, 16)  # noqa: E731
        CANDIDATES.update({name: options[:2] for name, options in CANDIDATES.items()})
        tune_lens = [32]
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --smoke to check the script on CPU")
        device, dtypes, seq_lens, reps = "cuda", list(TOLERANCE), [512, 2048, 4096], 20
        shapes = [(2, 4, 128, 64), (1, 8, 512, 64), (2, 2, 1000, 32), (1, 2, 300, 128)]
        shape_of = lambda t: (8, 8, t, 64)  # noqa: E731
        tune_lens = [4096]

    kinds = args.kinds.split(",")

    def stage(name):
        print(f"--- {name} at {time.time() - started:.0f} s", flush=True)

    stage("tuning")
    best, tuning = tune(device, tune_lens, shape_of, reps)
    pd.DataFrame(tuning).to_csv(out / "tuning.csv", index=False)
    kernel.CONFIGS.update(best)
    print(f"tuned CONFIGS = {best}", flush=True)
    stage("correctness")  # of the launch sizes that are then timed
    checks = pd.DataFrame(check_kinds(device, shapes, dtypes))
    checks.to_csv(out / "checks.csv", index=False)
    stage("attention")
    attn = pd.DataFrame(time_attention(device, kinds, seq_lens, shape_of, reps))
    attn.to_csv(out / "attention.csv", index=False)
    stage("training")
    steps = pd.DataFrame(
        time_training(device, [k for k in kinds if k != "euclid_function"], seq_lens, args.steps, args.smoke)
    )
    steps.to_csv(out / "training.csv", index=False)
    stage("done")

    card = torch.cuda.get_device_name() if device == "cuda" else "CPU smoke run (Triton interpreter)"
    import triton

    environment = {"card": card, "torch": torch.__version__, "triton": triton.__version__}
    environment.update(date=str(datetime.date.today()), seconds=round(time.time() - started), configs=best)
    failed = checks[~checks["passed"]]
    sections = [
        f"# GPU check: {card}, torch {torch.__version__}, triton {triton.__version__}, {environment['date']}\n",
        f"Correctness: {len(checks) - len(failed)} of {len(checks)} checks passed.\n",
        *([failed.to_markdown(index=False) + "\n"] if len(failed) else []),
        f"Tuned kernel launches (BLOCK_M, BLOCK_N, warps, stages): {best}\n",
        "## Attention forward + backward, bf16, batch 8 x 8 heads x head_dim 64: milliseconds\n",
        versus(attn, "fwd_bwd_ms", ["dropout", "seq_len"]).to_markdown(index=False) + "\n",
        "## ... memory allocated above the inputs (MiB)\n",
        versus(attn, "extra_memory_mib", ["dropout", "seq_len"]).to_markdown(index=False) + "\n"
        if "extra_memory_mib" in attn
        else "(not measured on CPU)\n",
        "## Training step, reference model, batch 8, precision auto: tokens/s\n",
        versus(steps, "tokens_per_s", ["attention_dropout", "seq_len"]).to_markdown(index=False) + "\n",
        "## ... peak memory (MiB)\n",
        versus(steps, "peak_memory_mib", ["attention_dropout", "seq_len"]).to_markdown(index=False) + "\n",
    ]
    summary = "\n".join(sections)
    (out / "summary.md").write_text(summary)
    (out / "environment.json").write_text(json.dumps(environment, indent=2) + "\n")
    print("\n" + summary)
    sys.exit(1 if len(failed) else 0)


if __name__ == "__main__":
    main()
