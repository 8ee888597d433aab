"""The benchmark's verdicts on kinds of known relative cost (benchmarks/known_kinds.py): dot,
dot_alias (the same code: expect no difference, or an undecided interval around it) and
dot_double (the attention op twice: expect "slower", the op near 2x). Interleaved rounds exactly
as the workflow's benchmark rule takes them (attnscore.bench.run_round), at the demo's shape.

    .venv/bin/python benchmarks/known_costs.py --rounds 6 --out benchmarks/results/<cpu>-<date>-known-costs
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # known_kinds, for the measuring processes too

from attnscore import stats  # noqa: E402
from attnscore.bench import run_round  # noqa: E402
from attnscore.io import write_csv  # noqa: E402
from attnscore.model import ModelConfig  # noqa: E402
from attnscore.train import TrainConfig  # noqa: E402

DEMO_MODEL = dict(vocab_size=2048, d_model=64, n_layers=2, n_heads=4, d_ff=256, dropout=0.1, max_seq_len=64)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--margin", type=float, default=0.03)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    models = {
        kind: ModelConfig(attention=kind, attention_plugins=["known_kinds"], **DEMO_MODEL)
        for kind in ("dot", "dot_alias", "dot_double")
    }
    cfg = TrainConfig(seq_len=64, batch_size=16, device="cpu", precision="fp32")
    started = time.perf_counter()
    rows = [row for r in range(1, args.rounds + 1) for row in run_round(models, cfg, [64], r, 2, args.steps)]
    wall = time.perf_counter() - started
    measurements = pd.DataFrame(rows)
    comparisons = stats.compare_timings(measurements, "dot", args.margin, {})
    write_csv(measurements, args.out / "measurements.csv")
    write_csv(comparisons, args.out / "comparisons.csv")
    first = measurements.iloc[0]
    lines = [
        f"# Known costs: {first['device']}, torch {first['torch']}, {datetime.date.today()}",
        "",
        f"{args.rounds} interleaved rounds, {args.steps} timed steps each, the demo's model and batch; {wall:.0f} s.",
        "",
        *(f"- {stats.cost_sentence(row)}" for _, row in comparisons[comparisons["kind"] != "dot"].iterrows()),
    ]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
