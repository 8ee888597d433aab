"""GPU checks and benchmarks in one run: every attention path against a float64 reference, then
training throughput of dot / euclid / euclid_naive at seq_len 512, 2048 and 4096.

    python benchmarks/gpu_check.py --out benchmarks/results/<card>-<date>   # on a CUDA machine
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke                 # CPU, tiny: checks the script

Correctness: values and gradients of each path (dot through SDPA, euclid through FlexAttention,
euclid through the hand-written autograd Function, euclid_naive) with the causal mask, random
inputs and several shapes, in float32 (relative error <= 1e-5) and bf16/fp16 (<= 1e-2), plus
finite gradients at zero distance (q == k).

Throughput: the reference model (d_model 512, 6 layers, 8 heads, vocab 50,257, batch 8) under
bf16 autocast, each shape in its own process (attnscore.bench), twice: with the reference's
attention dropout 0.1 (euclid then runs the autograd Function, as FlexAttention has no dropout)
and with attention dropout 0 (euclid runs FlexAttention). The table comes last.
"""

import argparse
import datetime
import json
import math
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_attention import reference, rel_err  # noqa: E402  (the unit tests' float64 reference and error)

from attnscore.attention import EuclideanAttention, attention, euclid_flex  # noqa: E402
from attnscore.bench import benchmark  # noqa: E402
from attnscore.model import ModelConfig  # noqa: E402
from attnscore.plots import throughput_markdown, throughput_table  # noqa: E402
from attnscore.train import TrainConfig  # noqa: E402

PATHS = {
    "dot (SDPA)": ("dot", lambda q, k, v: attention(q, k, v, "dot")),
    "euclid (FlexAttention)": ("euclid", lambda q, k, v: euclid_flex(q, k, v)),
    "euclid (autograd Function)": ("euclid", lambda q, k, v: EuclideanAttention.apply(q, k, v, True, 0.0)),
    "euclid_naive (cdist)": ("euclid", lambda q, k, v: attention(q, k, v, "euclid_naive")),
}
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}


def check_paths(device, shapes, dtypes, flex_backward=True) -> list[dict]:
    """Max relative error of outputs and gradients per path, dtype and shape, then q == k."""
    rows = []
    for name, (kind, run) in PATHS.items():
        backward = flex_backward or "Flex" not in name  # FlexAttention has no backward on CPU
        for dtype in dtypes:
            for shape in shapes:
                g = torch.Generator().manual_seed(0)
                q, k, v = (torch.randn(shape, generator=g).to(device, dtype).requires_grad_(backward) for _ in range(3))
                q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
                ref = reference(q64, k64, v64, kind)
                row = {"path": name, "dtype": str(dtype).removeprefix("torch."), "shape": "x".join(map(str, shape))}
                try:
                    out = run(q, k, v)
                    errors = [rel_err(out, ref)]
                    if backward:
                        grad_out = torch.randn_like(ref)
                        grads = torch.autograd.grad(out, (q, k, v), grad_out.to(dtype))
                        errors += [
                            rel_err(a, b)
                            for a, b in zip(grads, torch.autograd.grad(ref, (q64, k64, v64), grad_out), strict=True)
                        ]
                    row.update(max_rel_err=max(errors), passed=max(errors) <= TOLERANCE[dtype])
                except Exception as err:  # a path that cannot run here is a failure to report, not a crash
                    row.update(max_rel_err=math.nan, passed=False, error=f"{type(err).__name__}: {str(err)[:200]}")
                rows.append(row)
                print(row, flush=True)
        if kind == "euclid":  # q == k: every diagonal distance is exactly zero
            q = torch.randn(1, 2, 256, 64, device=device, requires_grad=backward)
            k, v = q.detach().clone().requires_grad_(backward), torch.randn_like(q, requires_grad=backward)
            row = {"path": name, "dtype": "float32", "shape": "1x2x256x64, q == k"}
            try:
                out = run(q, k, v)
                results = torch.autograd.grad(out.square().sum(), (q, k, v)) if backward else (out,)
                row["passed"] = all(torch.isfinite(t).all().item() for t in results)
            except Exception as err:
                row.update(passed=False, error=f"{type(err).__name__}: {str(err)[:200]}")
            rows.append(row)
            print(row, flush=True)
    return rows


def run_benchmarks(device, out: Path, seq_lens, steps, smoke) -> pd.DataFrame:
    tables = []
    for setting, attention_dropout in (("attention dropout 0.1 (reference)", None), ("attention dropout 0", 0.0)):
        paths = []
        for variant in ("dot", "euclid", "euclid_naive"):
            shape = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64) if smoke else {}
            model_cfg = ModelConfig(
                vocab_size=512 if smoke else 50257, attention=variant, attention_dropout=attention_dropout, **shape
            )
            rows = benchmark(
                model_cfg,
                TrainConfig(batch_size=2 if smoke else 8, device=device, precision="auto"),
                seq_lens,
                1 if smoke else 3,
                steps,
            )
            path = out / f"bench-{variant}-{'ref' if attention_dropout is None else 'nodrop'}.csv"
            pd.DataFrame(rows).to_csv(path, index=False)
            paths.append(path)
        tables.append(throughput_table(paths).assign(setting=setting))
    return pd.concat(tables, ignore_index=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for checks.csv, throughput.csv and summary.md")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shapes: exercise the script without a GPU")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per shape")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        device, shapes, dtypes, seq_lens = "cpu", [(2, 2, 64, 16)], [torch.float32, torch.bfloat16], [32, 64]
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --smoke to check the script on CPU")
        device, shapes, dtypes, seq_lens = (
            "cuda",
            [(2, 4, 128, 64), (1, 8, 512, 64), (2, 2, 1000, 32)],
            list(TOLERANCE),
            [512, 2048, 4096],
        )
    checks = pd.DataFrame(check_paths(device, shapes, dtypes, flex_backward=device == "cuda"))
    checks.to_csv(out / "checks.csv", index=False)
    table = run_benchmarks(device, out, seq_lens, args.steps, args.smoke)
    table.to_csv(out / "throughput.csv", index=False)

    card = torch.cuda.get_device_name() if device == "cuda" else "CPU smoke run"
    header = f"# GPU check: {card}, torch {torch.__version__}, {datetime.date.today()}\n\n"
    failed = checks[~checks["passed"]]
    sections = [f"Correctness: {len(checks) - len(failed)} of {len(checks)} checks passed.\n"]
    if len(failed):
        sections.append(failed.to_markdown(index=False) + "\n")
    for setting, rows in table.groupby("setting", sort=False):
        sections.append(f"### {setting}\n\n" + throughput_markdown(rows))
    summary = header + "\n".join(sections)
    (out / "summary.md").write_text(summary)
    (out / "environment.json").write_text(
        json.dumps({"card": card, "torch": torch.__version__, "date": str(datetime.date.today())}, indent=2)
    )
    print("\n" + summary)
    sys.exit(1 if len(failed) else 0)


if __name__ == "__main__":
    main()
