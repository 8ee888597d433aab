"""What kinds cost against dot outside a workflow run: the workflow's interleaved rounds
(attnscore.bench.run_round: each measurement in a fresh process, a rotated order) and its
statistics (attnscore.timings.compare_timings: paired ratios, 95% intervals, verdicts, busy rounds
left out), at the demo's model or at the reference's attention shape.

    # every kind that runs on a CPU, at the reference's attention shape
    .venv/bin/python benchmarks/kind_costs.py --shape reference --out benchmarks/results/<cpu>-<date>-kind-costs
    # the check on kinds of known cost (known_kinds.py): dot_alias (no difference), dot_double (slower)
    .venv/bin/python benchmarks/kind_costs.py --plugins known_kinds --kinds dot dot_alias dot_double --rounds 8 \\
        --out benchmarks/results/<cpu>-<date>-known-costs

"reference" is one layer of the reference model (d_model 512, 8 heads, feed-forward 2048,
seq_len 512, batch 8, dropout 0.1) with a vocabulary of 2,048, so that its step is mostly the
layer and the attention op is timed at exactly the reference's shape (8 x 8 x 512 x 64).
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # known_kinds, for the measuring processes too

from attnscore import summary, timings  # noqa: E402
from attnscore.bench import Timing, run_round  # noqa: E402
from attnscore.files import write_csv  # noqa: E402
from attnscore.model import ModelConfig  # noqa: E402

SHAPES = {  # model, batch
    "demo": (dict(vocab_size=2048, d_model=64, n_layers=2, n_heads=4, d_ff=256, max_seq_len=64), 16),
    "reference": (dict(vocab_size=2048, d_model=512, n_layers=1, n_heads=8, d_ff=2048, max_seq_len=512), 8),
}
CPU_KINDS = ["dot", "cosine", "euclid", "euclid_naive", "euclid_sq", "manhattan", "sigmoid"]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=SHAPES, default="demo")
    parser.add_argument("--kinds", nargs="+", default=CPU_KINDS, help="the first is the baseline")
    parser.add_argument("--plugins", nargs="*", default=[], help="modules registering more kinds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--margin", type=float, default=0.03)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model, batch_size = SHAPES[args.shape]
    seq_len = model["max_seq_len"]
    models = {
        kind: ModelConfig(attention=kind, attention_plugins=args.plugins, dropout=0.1, **model) for kind in args.kinds
    }
    timing = Timing(
        batch_size=batch_size, device="cpu", precision="fp32", compile=False, seq_lens=[seq_len],
        warmup_steps=args.warmup, steps=args.steps, peak_tflops=None,
    )  # fmt: skip
    started = time.perf_counter()
    rows = [row for r in range(1, args.rounds + 1) for row in run_round(models, timing, round_number=r)]
    wall = time.perf_counter() - started
    measurements = pd.DataFrame(rows)
    comparisons = timings.compare_timings(measurements, args.kinds[0], args.margin, {})
    write_csv(measurements, args.out / "measurements.csv")
    write_csv(comparisons, args.out / "comparisons.csv")
    first = measurements.iloc[0]
    lines = [
        f"# Kind costs: {first['device']}, torch {first['torch']}, {datetime.date.today()}",
        "",
        f"`{' '.join(sys.argv[1:])}`: the {args.shape} shape, fp32; {wall:.0f} s.",
        "",
        summary.costs_markdown(comparisons),
    ]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
