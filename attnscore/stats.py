"""Statistics over seeds: per-epoch means with Student-t intervals, and paired differences
between variants trained from the same seeds (same initial weights, same data order).

Every interval is a two-sided 95% Student-t interval over seeds (scipy.stats); with one seed
there is none, and the tables say so with empty bounds rather than printing a made-up one.
"""

import json
import math
from pathlib import Path

import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
SPLITS = ("train", "valid", "test")


def load_runs(metrics: dict, evals: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-epoch metrics of every run, and one row per run with its best checkpoint's test
    numbers; `metrics` and `evals` map (variant, seed) to the run's metrics.csv and eval JSON."""
    epochs = pd.concat(
        [pd.read_csv(path).assign(variant=variant, seed=seed) for (variant, seed), path in metrics.items()],
        ignore_index=True,
    )
    runs = []
    for (variant, seed), path in evals.items():
        result = json.loads(Path(path).read_text())
        runs.append(
            {
                "variant": variant,
                "seed": seed,
                "best_epoch": result["epoch"],
                "test_loss": result["loss"],
                "test_ppl": result["perplexity"],
            }
        )
    return epochs, pd.DataFrame(runs)


def mean_interval(values) -> dict:
    """Mean of the per-seed values with its 95% t interval (NaN bounds for fewer than 2 seeds)."""
    values = pd.Series(values, dtype=float).dropna()
    n, mean = len(values), values.mean()
    low = high = math.nan
    if n >= 2:
        if values.std() > 0:
            low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=stats.sem(values))
        else:
            low = high = mean  # identical runs: no spread, the interval is the point
    return {"seeds": n, "mean": mean, "ci_low": low, "ci_high": high}


def per_epoch(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per variant, epoch and split: perplexity mean and interval over seeds."""
    rows = []
    for (variant, epoch), group in epochs.groupby(["variant", "epoch"], sort=False):
        for split in SPLITS:
            rows.append({"variant": variant, "epoch": epoch, "split": split, **mean_interval(group[f"{split}_ppl"])})
    return pd.DataFrame(rows)


def best_checkpoints(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant: the best checkpoint's test perplexity, mean and interval over seeds."""
    return pd.DataFrame(
        [
            {"variant": variant, **mean_interval(group["test_ppl"])}
            for variant, group in runs.groupby("variant", sort=False)
        ]
    )


def paired_differences(runs: pd.DataFrame, baseline: str = "dot") -> pd.DataFrame:
    """Per variant other than the baseline and per seed both ran: variant minus baseline, in
    test loss and test perplexity of the best checkpoints."""
    base = runs[runs["variant"] == baseline].set_index("seed")
    rows = []
    for variant, group in runs[runs["variant"] != baseline].groupby("variant", sort=False):
        for run in group.itertuples():
            if run.seed in base.index:
                rows.append(
                    {
                        "variant": variant,
                        "baseline": baseline,
                        "seed": run.seed,
                        "test_loss": run.test_loss - base.at[run.seed, "test_loss"],
                        "test_ppl": run.test_ppl - base.at[run.seed, "test_ppl"],
                    }
                )
    return pd.DataFrame(rows, columns=["variant", "baseline", "seed", "test_loss", "test_ppl"])


def paired_summary(differences: pd.DataFrame) -> pd.DataFrame:
    """Per variant and metric: mean paired difference, its interval, the paired t-test's p-value
    and whether the interval excludes zero (undecided, NaN, with one seed)."""
    rows = []
    for (variant, baseline), group in differences.groupby(["variant", "baseline"], sort=False):
        for metric in ("test_loss", "test_ppl"):
            row = {"variant": variant, "baseline": baseline, "metric": metric, **mean_interval(group[metric])}
            test = stats.ttest_1samp(group[metric], 0.0) if row["seeds"] >= 2 else None
            row["p_value"] = test.pvalue if test is not None else math.nan
            row["significant"] = (row["ci_low"] > 0 or row["ci_high"] < 0) if row["seeds"] >= 2 else None
            rows.append(row)
    columns = ["variant", "baseline", "metric", "seeds", "mean", "ci_low", "ci_high", "p_value", "significant"]
    return pd.DataFrame(rows, columns=columns)


def verdict(row) -> str:
    """One quotable sentence for a paired_summary row, e.g. 'euclid - dot, test perplexity: +3.7
    (95% CI -1.2 to +8.6, 3 paired seeds): no significant difference at this size.'"""
    what = "test perplexity" if row["metric"] == "test_ppl" else "test loss (nats/token)"
    digits = 2 if row["metric"] == "test_ppl" else 4
    head = f"{row['variant']} - {row['baseline']}, {what}: {row['mean']:+.{digits}f}"
    if row["seeds"] < 2:
        return (
            f"{head} ({row['seeds']} paired seed): no interval from one seed; add seeds to tell an effect from noise."
        )
    interval = f"95% CI {row['ci_low']:+.{digits}f} to {row['ci_high']:+.{digits}f}, {row['seeds']} paired seeds"
    if not row["significant"]:
        return f"{head} ({interval}): no significant difference at this size."
    direction = "higher" if row["mean"] > 0 else "lower"
    return f"{head} ({interval}): {row['variant']} is significantly {direction} (p = {row['p_value']:.2g})."
