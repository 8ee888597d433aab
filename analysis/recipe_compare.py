"""Two training recipes on one corpus, compared by seed: each experiment's best checkpoints
(compare/runs.csv) paired by variant and seed, the difference in test loss and perplexity with
its 95% Student-t interval and paired t-test, Holm-adjusted over the variants
(attnscore.stats.paired_between, paired_summary, with_holm).

    .venv/bin/python analysis/recipe_compare.py results/demo results/demo-modern \\
        --out analysis/results/<machine>-<date>-recipe

Prints one sentence per variant and metric. With --out, writes paired.csv (the summary),
differences.csv (per seed), summary.md and environment.json, and copies each experiment's raw
results (compare/, eval/, train/*/*/metrics.csv and steps.csv, logs/*.benchmark.tsv) and its
config (the resolved one, from a run's provenance.json) into a folder per experiment.
"""

import argparse
import datetime
import json
import platform
import shutil
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from attnscore import stats  # noqa: E402
from attnscore.runtime import device_name  # noqa: E402

RAW = ["compare/*.csv", "eval/*/*.json", "train/*/*/metrics.csv", "train/*/*/steps.csv", "logs/*.benchmark.tsv"]


def compare(baseline: Path, recipe: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-seed differences (recipe minus baseline) and their summary."""
    runs = {folder: pd.read_csv(folder / "compare" / "runs.csv") for folder in (baseline, recipe)}
    differences = stats.paired_between(runs[recipe], runs[baseline], recipe.name, baseline.name)
    return differences, stats.with_holm(stats.paired_summary(differences))  # Holm over the variants


def keep_raw(folder: Path, out: Path) -> None:
    """An experiment's raw result files and resolved config, copied under out/<experiment>/."""
    for pattern in RAW:
        for path in sorted(folder.glob(pattern)):
            target = out / folder.name / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    provenance = json.loads(next(folder.glob("train/*/*/provenance.json")).read_text())
    (out / folder.name / "config.json").write_text(json.dumps(provenance["config"], indent=2) + "\n")
    (out / folder.name / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path, help="results folder of the baseline recipe (e.g. results/demo)")
    parser.add_argument("recipe", type=Path, help="results folder of the recipe compared (e.g. results/demo-modern)")
    parser.add_argument("--out", type=Path, help="folder for the tables, the environment and the raw results")
    args = parser.parse_args()
    differences, summary = compare(args.baseline, args.recipe)
    sentences = [stats.verdict(row) for _, row in summary.iterrows()]
    print("\n".join(sentences))
    if args.out is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    differences.to_csv(args.out / "differences.csv", index=False)
    summary.to_csv(args.out / "paired.csv", index=False)
    for folder in (args.baseline, args.recipe):
        keep_raw(folder, args.out)
    environment = {
        "cpu": device_name(torch.device("cpu")),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "baseline": str(args.baseline),
        "recipe": str(args.recipe),
    }
    (args.out / "environment.json").write_text(json.dumps(environment, indent=2) + "\n")
    lines = [
        f"# {args.recipe.name} against {args.baseline.name}, paired by variant and seed",
        "",
        "Test loss and perplexity of each run's best checkpoint (lowest validation loss); the difference",
        f"{args.recipe.name} minus {args.baseline.name} per seed, its mean, 95% Student-t interval and paired t-test.",
        "",
        *(f"- {sentence}" for sentence in sentences),
        "",
        "| variant | seed | test loss difference | test perplexity difference |",
        "|---|---|---|---|",
        *(
            f"| {row.baseline.split(': ', 1)[1]} | {row.seed} | {row.test_loss:+.4f} | {row.test_ppl:+.2f} |"
            for row in differences.itertuples()
        ),
        "",
        f"Machine: {environment['cpu']}, torch {environment['torch']}, Python {environment['python']}, "
        f"{environment['date']}.",
    ]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
