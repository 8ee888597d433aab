"""Statistics over seeds: per-epoch means with Student-t intervals, and paired differences
between variants trained from the same seeds (same initial weights, same data order).

Every interval is a two-sided 95% Student-t interval over seeds (scipy.stats); with one seed
there is none, and the tables say so with empty bounds rather than printing a made-up one. A
verdict of "significant" is Holm-adjusted over all the paired tests reported together.
"""

import json
import math
from pathlib import Path

import pandas as pd
from scipy import stats

from attnscore.corpora import SPLITS

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
MAX_LOSS = 700.0  # nats: exp of more overflows a float; a loss that high is a diverged run


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
                "parameters": result["parameters"],
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


def perplexity_interval(losses) -> dict:
    """Perplexity over seeds from their losses: exp of the mean loss (the perplexities' geometric
    mean) and exp of its interval's bounds, so a perplexity's interval is the loss's, never below 0."""
    interval = mean_interval(losses)
    return {**interval, **{key: math.exp(min(interval[key], MAX_LOSS)) for key in ("mean", "ci_low", "ci_high")}}


def per_epoch(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per variant, epoch and split: perplexity over seeds (perplexity_interval)."""
    rows = []
    for (variant, epoch), group in epochs.groupby(["variant", "epoch"], sort=False):
        for split in SPLITS:
            rows.append(
                {"variant": variant, "epoch": epoch, "split": split, **perplexity_interval(group[f"{split}_loss"])}
            )
    return pd.DataFrame(rows)


def load_steps(steps: dict) -> pd.DataFrame:
    """Every run's per-step log (steps.csv) in one table; `steps` maps (variant, seed) to the file."""
    return pd.concat(
        [pd.read_csv(path).assign(variant=variant, seed=seed) for (variant, seed), path in steps.items()],
        ignore_index=True,
    )


def per_step(steps: pd.DataFrame, columns=("train_loss", "grad_norm", "lr")) -> pd.DataFrame:
    """Per variant, logged step and measure (a column of steps.csv): mean and interval over the
    seeds that logged that step."""
    rows = []
    for (variant, step), group in steps.groupby(["variant", "step"], sort=False):
        epoch = group["epoch"].iloc[0]
        for column in columns:
            rows.append({"variant": variant, "step": step, "epoch": epoch, "measure": column,
                         **mean_interval(group[column])})  # fmt: skip
    return pd.DataFrame(rows, columns=["variant", "step", "epoch", "measure", "seeds", "mean", "ci_low", "ci_high"])


def best_checkpoints(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant: the best checkpoint's test perplexity over seeds (perplexity_interval)."""
    return pd.DataFrame(
        [
            {"variant": variant, **perplexity_interval(group["test_loss"])}
            for variant, group in runs.groupby("variant", sort=False)
        ]
    )


def size_label(size: str, text: str, joint: str = ": ") -> str:
    """`text` as shown for one size (a figure's title, a table's row, a log line): after the
    size's name, or alone for size "", the model section of a config without sizes."""
    return f"{size}{joint}{text}" if size else text


def per_size(runs: pd.DataFrame) -> pd.DataFrame:
    """Per size and variant (runs of every size, with a size column): the parameter count and the
    best checkpoints' test loss, mean and interval over seeds."""
    return pd.DataFrame(
        [
            {
                "size": size,
                "variant": variant,
                "parameters": group["parameters"].iloc[0],
                **mean_interval(group["test_loss"]),
            }
            for (size, variant), group in runs.groupby(["size", "variant"], sort=False)
        ]
    )


PAIRED_COLUMNS = ["variant", "baseline", "seed", "test_loss", "test_ppl", "baseline_loss"]


def paired_differences(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per variant other than the baseline and per seed both ran: variant minus baseline, in
    test loss and test perplexity of the best checkpoints (and the baseline's loss)."""
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
                        "baseline_loss": base.at[run.seed, "test_loss"],
                    }
                )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def paired_between(runs: pd.DataFrame, baseline_runs: pd.DataFrame, name: str, baseline: str) -> pd.DataFrame:
    """Two experiments' runs (compare/runs.csv) paired by variant and seed: per variant and seed
    both ran, `runs` minus `baseline_runs` in test loss and test perplexity of the best
    checkpoints, as paired_differences' table (variants named '<name>: <variant>'), for
    paired_summary. Two training recipes are not kinds of one experiment, so their comparison
    pairs two experiments: the same seed and data order, each run under its own recipe."""
    base = baseline_runs.set_index(["variant", "seed"])
    rows = []
    for run in runs.itertuples():
        if (run.variant, run.seed) in base.index:
            other = base.loc[(run.variant, run.seed)]
            rows.append(
                {
                    "variant": f"{name}: {run.variant}",
                    "baseline": f"{baseline}: {run.variant}",
                    "seed": run.seed,
                    "test_loss": run.test_loss - other["test_loss"],
                    "test_ppl": run.test_ppl - other["test_ppl"],
                    "baseline_loss": other["test_loss"],
                }
            )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def paired_summary(differences: pd.DataFrame) -> pd.DataFrame:
    """Per variant: the mean paired difference in test loss, its interval, the paired t-test's
    p-value and whether the interval excludes zero (undecided, None, with one seed); and the same
    in test perplexity, derived from the loss's so that the two never disagree: the difference
    from the baseline's perplexity exp(L) (L its mean loss) at each bound, exp(L) (exp(d) - 1)."""
    rows = []
    for (variant, baseline), group in differences.groupby(["variant", "baseline"], sort=False):
        loss = {"variant": variant, "baseline": baseline, "metric": "test_loss", **mean_interval(group["test_loss"])}
        loss["p_value"] = _paired_p(group["test_loss"])
        loss["significant"] = (loss["ci_low"] > 0 or loss["ci_high"] < 0) if loss["seeds"] >= 2 else None
        base = math.exp(min(group["baseline_loss"].mean(), MAX_LOSS))
        ppl = {
            **loss, "metric": "test_ppl",
            **{key: base * math.expm1(min(loss[key], MAX_LOSS)) for key in ("mean", "ci_low", "ci_high")},
        }  # fmt: skip
        rows += [loss, ppl]
    columns = ["variant", "baseline", "metric", "seeds", "mean", "ci_low", "ci_high", "p_value", "significant"]
    return pd.DataFrame(rows, columns=columns)


def paired_means(runs: pd.DataFrame, baseline: str, metrics) -> pd.DataFrame:
    """Per size, variant other than the baseline and metric (a column of `runs`, which has one
    row per size, variant and seed): the mean paired difference from the baseline over the seeds
    both ran, its interval and p-value, as with_holm's rows (Holm over the kinds and sizes of
    each metric)."""
    rows = []
    for size, of_size in runs.groupby("size", sort=False):
        base = of_size[of_size["variant"] == baseline].set_index("seed")
        for variant, group in of_size[of_size["variant"] != baseline].groupby("variant", sort=False):
            group = group[group["seed"].isin(base.index)].set_index("seed")
            for metric in metrics:
                differences = group[metric] - base.loc[group.index, metric]
                rows.append({"size": size, "variant": variant, "baseline": baseline, "metric": metric,
                             **mean_interval(differences), "p_value": _paired_p(differences)})  # fmt: skip
    columns = ["size", "variant", "baseline", "metric", "seeds", "mean", "ci_low", "ci_high", "p_value"]
    return with_holm(pd.DataFrame(rows, columns=columns))


def _paired_p(values: pd.Series) -> float:
    """The paired t-test's p-value (NaN with one seed); without spread, 1 where every difference
    is 0 (identical results) and 0 where all are one nonzero value."""
    if len(values) < 2:
        return math.nan
    if not values.std() > 0:
        return 1.0 if (values == 0).all() else 0.0
    return stats.ttest_1samp(values, 0.0).pvalue


def holm(p_values) -> pd.Series:
    """Holm's step-down adjustment (Holm 1979): the i-th smallest of m p-values times m - i + 1
    (i from 1), made non-decreasing in that order, at most 1. Calling significant each test whose
    adjusted p-value is below ALPHA keeps the chance of any false "significant" among the m
    below ALPHA, whatever their dependence. NaN (no test: one seed) stays NaN and is not counted."""
    p_values = pd.Series(p_values, dtype=float)
    tested = p_values.dropna().sort_values(kind="stable")
    factors = range(len(tested), 0, -1)
    return (tested * list(factors)).cummax().clip(upper=1).reindex(p_values.index)


def with_holm(paired: pd.DataFrame) -> pd.DataFrame:
    """paired_summary rows (of every size and kind reported together) with p_holm, the p-value
    adjusted over the tests of the same metric, and tests, their number: the family is each
    question asked of the data (every kind against the baseline at every size), asked once in
    test loss and once in perplexity. Its significant is the adjusted one: p_holm below ALPHA."""
    tests = paired.groupby("metric", sort=False)["p_value"]
    adjusted = tests.transform(holm)
    significant = (adjusted < ALPHA).astype(object).where(adjusted.notna(), None)  # after the adjustment
    return paired.assign(p_holm=adjusted, tests=tests.transform("count"), significant=significant)


def verdict(row, *, what: str | None = None, digits: int | None = None) -> str:
    """One quotable sentence for a with_holm row, e.g. 'euclid - dot, test perplexity: +3.7
    (95% CI -1.2 to +8.6, 3 paired seeds): no significant difference at this size (p = 0.21,
    Holm-adjusted over 4 tests: 0.63).' Significant as with_holm decides it. `what` names the
    metric and `digits` its decimals; by default those of test perplexity or test loss."""
    what = what or ("test perplexity" if row["metric"] == "test_ppl" else "test loss (nats/token)")
    digits = digits if digits is not None else 2 if row["metric"] == "test_ppl" else 4
    head = f"{row['variant']} - {row['baseline']}, {what}: {row['mean']:+.{digits}f}"
    if row["seeds"] < 2:
        return (
            f"{head} ({row['seeds']} paired seed): no interval from one seed; add seeds to tell an effect from noise."
        )
    if row["mean"] == 0 and row["ci_low"] == row["ci_high"] == 0:
        return f"{head} ({row['seeds']} paired seeds): identical results in every seed."
    interval = f"95% CI {row['ci_low']:+.{digits}f} to {row['ci_high']:+.{digits}f}, {row['seeds']} paired seeds"
    test = f"p = {row['p_value']:.2g}"
    if row["tests"] > 1:
        test += f", Holm-adjusted over {row['tests']} tests: {row['p_holm']:.2g}"
    if not row["significant"]:  # None too: identical runs test nothing
        return f"{head} ({interval}): no significant difference at this size ({test})."
    direction = "higher" if row["mean"] > 0 else "lower"
    return f"{head} ({interval}): {row['variant']} is significantly {direction} ({test})."
