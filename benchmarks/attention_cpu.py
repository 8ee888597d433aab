"""Attention alone on the CPU: forward + backward time of dot (SDPA), euclid (the autograd Function)
and euclid_naive (cdist), at the demo's shapes and the reference's, dropout 0.1 and 0.

    .venv/bin/python benchmarks/attention_cpu.py --out benchmarks/results/<cpu>-<torch>-<date>/attention.csv

Each kind is timed in interleaved rounds (every kind once per round, so a slow spell of a shared
machine hits all of them), the median of each round's calls kept, and the best round reported.
"""

import argparse
import datetime
import sys

import pandas as pd
import torch
from gpu_check import forward_backward, median_ms  # the GPU check's timing, run here on the CPU

from attnscore import attention
from attnscore.runtime import device_name

SHAPES = {  # (batch, heads, time, head_dim) and calls per round
    "demo, seq_len 32": ((16, 4, 32, 16), 100),
    "demo, seq_len 64": ((16, 4, 64, 16), 100),
    "reference, seq_len 512": ((8, 8, 512, 64), 3),
}
KINDS = ("dot", "euclid", "euclid_naive")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for label, (shape, reps) in SHAPES.items():
        for dropout_p in (0.1, 0.0):
            runs = {
                kind: forward_backward(attention.get(kind), shape, torch.float32, "cpu", dropout_p) for kind in KINDS
            }
            best = dict.fromkeys(KINDS, float("inf"))
            for _ in range(args.rounds):
                for kind, run in runs.items():
                    best[kind] = min(best[kind], median_ms(run, "cpu", reps))
            for kind, ms in best.items():
                rows.append(dict(shape=label, dropout=dropout_p, kind=kind, fwd_bwd_ms=ms))
            print(label, dropout_p, {kind: round(ms, 3) for kind, ms in best.items()}, flush=True)
    table = pd.DataFrame(rows).assign(
        device=device_name(torch.device("cpu")), torch=torch.__version__, date=str(datetime.date.today())
    )
    table.to_csv(args.out, index=False)
    wide = table.pivot_table(index=["shape", "dropout"], columns="kind", values="fwd_bwd_ms", sort=False)
    for kind in KINDS[1:]:
        wide[f"{kind} vs dot %"] = 100 * (wide[kind] / wide["dot"] - 1)
    print(wide.round(3).reset_index().to_markdown(index=False))


if __name__ == "__main__":
    sys.exit(main())
