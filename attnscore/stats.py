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
# An eval JSON's keys -> the columns of a run's row.
EVAL_COLUMNS = {"epoch": "best_epoch", "loss": "test_loss", "perplexity": "test_ppl", "parameters": "parameters"}


def load_runs(metrics: dict, evals: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-epoch metrics of every run, and one row per run with its best checkpoint's test
    numbers; `metrics` and `evals` map (variant, seed) to the run's metrics.csv and eval JSON."""
    results = pd.DataFrame([json.loads(Path(path).read_text()) for path in evals.values()])
    best = results[list(EVAL_COLUMNS)].rename(columns=EVAL_COLUMNS)
    return load_tables(metrics), pd.DataFrame(list(evals), columns=["variant", "seed"]).join(best)


def load_tables(paths: dict) -> pd.DataFrame:
    """Every run's CSV file (metrics.csv, steps.csv) in one table; `paths` maps (variant, seed) to the file."""
    return pd.concat(
        [pd.read_csv(path).assign(variant=variant, seed=seed) for (variant, seed), path in paths.items()],
        ignore_index=True,
    )


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


def over_seeds(table: pd.DataFrame, by: list, columns, name=None, interval=mean_interval) -> pd.DataFrame:
    """Per group of rows alike in `by` (a run's seeds) and column of `columns`: its interval over the
    group; `name`, where given, is a column holding columns[column]."""
    rows = []
    for keys, group in table.groupby(by, sort=False):
        for column in columns:
            named = {name: columns[column]} if name else {}
            rows.append({**dict(zip(by, keys, strict=True)), **named, **interval(group[column])})
    return pd.DataFrame(rows, columns=[*by, *([name] if name else []), "seeds", "mean", "ci_low", "ci_high"])


def per_epoch(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per variant, epoch and split: perplexity over seeds (perplexity_interval)."""
    splits = {f"{split}_loss": split for split in SPLITS}
    return over_seeds(epochs, ["variant", "epoch"], splits, "split", perplexity_interval)


def per_step(steps: pd.DataFrame) -> pd.DataFrame:
    """Per variant, logged step (and its epoch) and column of steps.csv: over the seeds that logged it."""
    measures = {measure: measure for measure in ("train_loss", "grad_norm", "lr")}
    return over_seeds(steps, ["variant", "step", "epoch"], measures, "measure")


def best_checkpoints(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant: the best checkpoint's test perplexity over seeds (perplexity_interval)."""
    return over_seeds(runs, ["variant"], ["test_loss"], interval=perplexity_interval)


def size_label(size: str, text: str, joint: str = ": ") -> str:
    """`text` as shown for one size (a figure's title, a table's row, a log line): after the
    size's name, or alone for size "", the model section of a config without sizes."""
    return f"{size}{joint}{text}" if size else text


def per_size(runs: pd.DataFrame) -> pd.DataFrame:
    """Per size and variant: the parameter count and the best checkpoints' test loss over seeds."""
    return over_seeds(runs, ["size", "variant", "parameters"], ["test_loss"])


PAIRED_COLUMNS = ["variant", "baseline", "seed", "test_loss", "test_ppl", "baseline_loss"]


def _paired(runs: pd.DataFrame, base: pd.DataFrame, on: list, metrics) -> pd.DataFrame:
    """Each row of `runs` that has a row of `base` alike in `on` (the same seed; its columns
    suffixed _base), with each metric's difference: runs minus base."""
    both = runs.merge(base, on=on, suffixes=("", "_base"))
    return both.assign(**{metric: both[metric] - both[f"{metric}_base"] for metric in metrics})


def _against_baseline(runs: pd.DataFrame, baseline: str, on: list, metrics) -> pd.DataFrame:
    """_paired: each variant's runs other than the baseline's against the baseline's."""
    is_baseline = runs["variant"] == baseline
    return _paired(runs[~is_baseline], runs[is_baseline], on, metrics).assign(baseline=baseline)


def paired_differences(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per variant but the baseline and seed both ran: variant minus baseline in the best checkpoints'
    test loss and perplexity (and the baseline's loss)."""
    differences = _against_baseline(runs, baseline, ["seed"], ["test_loss", "test_ppl"])
    return differences.rename(columns={"test_loss_base": "baseline_loss"})[PAIRED_COLUMNS]


def paired_between(runs: pd.DataFrame, baseline_runs: pd.DataFrame, name: str, baseline: str) -> pd.DataFrame:
    """Two experiments' runs (compare/runs.csv: two recipes, same seeds and data order) paired by variant
    and seed, `runs` minus `baseline_runs`, as paired_differences' table (variants '<name>: <variant>')."""
    differences = _paired(runs, baseline_runs, ["variant", "seed"], ["test_loss", "test_ppl"])
    return differences.assign(
        variant=f"{name}: " + differences["variant"],
        baseline=f"{baseline}: " + differences["variant"],
        baseline_loss=differences["test_loss_base"],
    )[PAIRED_COLUMNS]


def paired_test(differences: pd.Series) -> dict:
    """mean_interval of paired differences with the paired t-test's p-value (NaN with one seed;
    without spread, 1 where every difference is 0 and 0 where all are one nonzero value)."""
    if len(differences) < 2:
        p_value = math.nan
    elif not differences.std() > 0:
        p_value = 1.0 if (differences == 0).all() else 0.0
    else:
        p_value = stats.ttest_1samp(differences, 0.0).pvalue
    return {**mean_interval(differences), "p_value": p_value}


def paired_summary(differences: pd.DataFrame) -> pd.DataFrame:
    """Per variant: paired_test of the differences in test loss, significant if its interval excludes 0
    (None with one seed); and the same in test perplexity, derived from the loss's so that the two never
    disagree: at each bound d, exp(L) (exp(d) - 1), L the baseline's mean loss."""
    rows = []
    for (variant, baseline), group in differences.groupby(["variant", "baseline"], sort=False):
        loss = {"variant": variant, "baseline": baseline, "metric": "test_loss", **paired_test(group["test_loss"])}
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
    """Per size, variant but the baseline and metric (a column of `runs`, a row per size, variant and
    seed): paired_test of its differences from the baseline, as with_holm's rows."""
    differences = _against_baseline(runs, baseline, ["size", "seed"], metrics)
    rows = [
        {"size": size, "variant": variant, "baseline": baseline, "metric": metric, **paired_test(group[metric])}
        for (size, variant), group in differences.groupby(["size", "variant"], sort=False)
        for metric in metrics
    ]
    columns = ["size", "variant", "baseline", "metric", "seeds", "mean", "ci_low", "ci_high", "p_value"]
    return with_holm(pd.DataFrame(rows, columns=columns))


def holm(p_values) -> pd.Series:
    """Holm's step-down adjustment (Holm 1979): the i-th smallest of m p-values times m - i + 1
    (i from 1), made non-decreasing in that order, at most 1. Calling significant each test whose
    adjusted p-value is below ALPHA keeps the chance of any false "significant" among the m
    below ALPHA, whatever their dependence. NaN (no test: one seed) stays NaN and is not counted."""
    p_values = pd.Series(p_values, dtype=float)
    tested = p_values.dropna().sort_values(kind="stable")
    return (tested * list(range(len(tested), 0, -1))).cummax().clip(upper=1).reindex(p_values.index)


def with_holm(paired: pd.DataFrame) -> pd.DataFrame:
    """paired_summary rows of every size and kind with p_holm, the p-value adjusted over the `tests`
    of the same metric (the family: every kind against the baseline at every size, asked once in test
    loss and once in perplexity), and significant as p_holm below ALPHA."""
    tests = paired.groupby("metric", sort=False)["p_value"]
    adjusted = tests.transform(holm)
    significant = (adjusted < ALPHA).astype(object).where(adjusted.notna(), None)  # after the adjustment
    return paired.assign(p_holm=adjusted, tests=tests.transform("count"), significant=significant)


def verdict(row, *, what: str | None = None, digits: int | None = None) -> str:
    """A with_holm row as 'euclid - dot, test perplexity: +3.7 (95% CI -1.2 to +8.6, 3 paired seeds): no
    significant difference at this size (p = 0.21, Holm-adjusted over 4 tests: 0.63).'; `what` names
    the metric and `digits` its decimals (by default those of test perplexity or test loss)."""
    what = what or ("test perplexity" if row["metric"] == "test_ppl" else "test loss (nats/token)")
    digits = digits if digits is not None else 2 if row["metric"] == "test_ppl" else 4
    head = f"{row['variant']} - {row['baseline']}, {what}: {row['mean']:+z.{digits}f}"
    if row["seeds"] < 2:
        return (
            f"{head} ({row['seeds']} paired seed): no interval from one seed; add seeds to tell an effect from noise."
        )
    if row["mean"] == 0 and row["ci_low"] == row["ci_high"] == 0:
        return f"{head} ({row['seeds']} paired seeds): identical results in every seed."
    interval = f"95% CI {row['ci_low']:+z.{digits}f} to {row['ci_high']:+z.{digits}f}, {row['seeds']} paired seeds"
    test = f"p = {row['p_value']:.2g}"
    if row["tests"] > 1:
        test += f", Holm-adjusted over {row['tests']} tests: {row['p_holm']:.2g}"
    if not row["significant"]:  # None too: identical runs test nothing
        return f"{head} ({interval}): no significant difference at this size ({test})."
    direction = "higher" if row["mean"] > 0 else "lower"
    return f"{head} ({interval}): {row['variant']} is significantly {direction} ({test})."
