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


def verdict(row) -> str:
    """One quotable sentence for a with_holm row, e.g. 'euclid - dot, test perplexity: +3.7
    (95% CI -1.2 to +8.6, 3 paired seeds): no significant difference at this size (p = 0.21,
    Holm-adjusted over 4 tests: 0.63).' Significant as with_holm decides it."""
    what = "test perplexity" if row["metric"] == "test_ppl" else "test loss (nats/token)"
    digits = 2 if row["metric"] == "test_ppl" else 4
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


# Timings: rounds pair them as seeds pair runs. Each measurement is a median over timed calls
# in a fresh process; across rounds, times are compared as ratios, on the log scale (a ratio's
# natural scale: 0.8 and 1.25 are equally far from 1), with a Student-t interval over rounds.
MEASURES = {"step": "step_ms", "attention": "attention_ms"}
MEASURE_NAMES = {"step": "training step", "attention": "attention op (forward + backward)"}
MAX_MORE_ROUNDS = 10_000
MIN_ROUNDS = 3  # kept rounds below which a comparison is not judged: 2 rounds' interval spans orders of magnitude
# The share of a measurement's time its threads waited for a core other processes held above
# which its round is left out (bench.cpu_wait_seconds; benchmarks/README.md has measured values).
BUSY_WAIT = 0.1
# What every comparison row repeats from the measurements: how and where they were taken.
LABELS = ("batch_size", "warmup_steps", "timed_steps", "device", "dtype", "torch", "triton", "memory_kind",
          "attention_shape", "attention_dropout")  # fmt: skip


def ratio_interval(values) -> dict:
    """Geometric mean of positive values, with the 95% t interval of their mean log taken back
    to the ratio scale (NaN bounds for fewer than 2 values)."""
    logs = pd.Series(values, dtype=float).dropna().map(math.log)
    n = len(logs)
    mean, sd = (logs.mean(), logs.std()) if n else (math.nan, math.nan)
    low = high = math.nan
    if n >= 2:
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
        low, high = math.exp(mean - half), math.exp(mean + half)
    return {"rounds": n, "center": math.exp(mean) if n else math.nan, "low": low, "high": high, "log_sd": sd}


def cost_verdict(low: float, high: float, margin: float) -> str:
    """'no measurable difference' when the whole ratio interval lies within [1/(1 + margin),
    1 + margin] (a difference smaller than the margin counts as none, so two runs cannot read
    'faster' and 'slower' for a negligible one; on the log scale, so a slowdown and the speed-up
    of the same factor are judged alike), else 'slower' or 'faster' when it excludes 1, else
    'inconclusive'."""
    if math.isnan(low):
        return "inconclusive"
    if 1 / (1 + margin) <= low and high <= 1 + margin:
        return "no measurable difference"
    if low > 1:
        return "slower"
    if high < 1:
        return "faster"
    return "inconclusive"


def more_rounds(log_ratios, margin: float) -> int | None:
    """For an inconclusive comparison: how many more rounds would likely decide it, were the
    mean and spread of the log ratios so far to hold (None when that cannot be estimated: fewer
    than MIN_ROUNDS rounds, whose spread says too little, or no spread)."""
    logs = pd.Series(log_ratios, dtype=float).dropna()
    n, mean, sd = len(logs), logs.mean(), logs.std()
    if n < MIN_ROUNDS or not sd > 0:
        return None
    # Decided once the half-width is below |mean| (excludes 1) or below the mean's distance to
    # the nearer edge of the margin, +/- log(1 + margin) (fits inside it).
    inside = math.log1p(margin) - abs(mean)
    needed = max(abs(mean), inside)
    for rounds in range(n + 1, n + MAX_MORE_ROUNDS):
        if stats.t.ppf(0.5 + CONFIDENCE / 2, rounds - 1) * sd / math.sqrt(rounds) < needed:
            return rounds - n
    return None


def busy_rounds(measurements: pd.DataFrame) -> set:
    """Rounds in which some measurement's threads waited for a core, held by other processes,
    more than BUSY_WAIT of the time: that round's ratios say more about the other work than about
    the kinds. Measured from outside the kind: a kind that sleeps or waits is not waiting for a
    core, so its slowness stays its own. None where not measured (a GPU, a system that does not say)."""
    if "cpu_wait" not in measurements:
        return set()
    return set(measurements.loc[measurements["cpu_wait"].astype(float) > BUSY_WAIT, "round"])


def compare_timings(measurements: pd.DataFrame, baseline: str, margin: float, controls: dict) -> pd.DataFrame:
    """Per measure (step, attention), seq_len and kind: its time (geometric mean over the rounds
    that ran it, 95% interval), and its ratio to the baseline's time in the same rounds, with
    interval and verdict. `controls` maps a kind to another it is also compared with (euclid to
    dot_triton: the same kernel with the dot-product score), where both ran. Busy rounds (see
    busy_rounds) are left out and counted."""
    rows = []
    busy = busy_rounds(measurements)
    rounds_run = measurements["round"].nunique()
    ok = measurements[(measurements["status"] == "ok") & ~measurements["round"].isin(busy)]
    for (seq_len, kind), group in measurements.groupby(["seq_len", "kind"], sort=False):
        done = ok[(ok["seq_len"] == seq_len) & (ok["kind"] == kind)].set_index("round")
        failed = group.loc[group["status"] != "ok", "status"]
        status = "ok" if failed.empty else f"{failed.iloc[0]} ({len(failed)} of {len(group)} rounds)"
        for measure, column in MEASURES.items():
            time_ = ratio_interval(done[column]) if len(done) else ratio_interval([])
            control = controls.get(kind)
            against = [baseline] + ([control] if control in set(ok["kind"]) else [])
            for base in against:
                other = ok[(ok["seq_len"] == seq_len) & (ok["kind"] == base)].set_index("round")
                ratios = (done[column] / other[column]).dropna()
                ratio = ratio_interval(ratios)
                memory = (done["peak_memory_mib"] / other["peak_memory_mib"]).dropna()
                row = {
                    "measure": measure, "kind": kind, "baseline": base, "seq_len": seq_len,
                    "rounds": ratio["rounds"], "ms": time_["center"], "ms_low": time_["low"], "ms_high": time_["high"],
                    "ratio": ratio["center"], "ratio_low": ratio["low"], "ratio_high": ratio["high"],
                    "verdict": "baseline" if kind == base else cost_verdict(ratio["low"], ratio["high"], margin)
                    if ratio["rounds"] >= MIN_ROUNDS else "inconclusive",
                    "more_rounds": None, "margin": margin,
                    "peak_memory_mib": done["peak_memory_mib"].median() if len(done) else math.nan,
                    "memory_ratio": memory.median() if len(memory) else math.nan, "status": status,
                    "busy_rounds": len(busy), "rounds_run": rounds_run,
                }  # fmt: skip
                if row["verdict"] == "inconclusive":
                    row["more_rounds"] = more_rounds(ratios.map(math.log), margin)
                if measure == "step":  # tokens/s: the batch's tokens over the step time
                    tokens = group["batch_size"].iloc[0] * seq_len * 1000
                    row.update(tokens_per_s=tokens / row["ms"], tokens_per_s_low=tokens / row["ms_high"],
                               tokens_per_s_high=tokens / row["ms_low"])  # fmt: skip
                first = (done if len(done) else group).iloc[0]
                row.update({key: first.get(key) for key in LABELS})
                rows.append(row)
    return pd.DataFrame(rows)


def cost_baseline(costs: pd.DataFrame) -> str:
    """The kind a compare_timings table compares every other with: the one compared with itself."""
    return costs.loc[costs["kind"] == costs["baseline"], "kind"].iloc[0]


def cost_sentence(row) -> str:
    """One quotable sentence for a compare_timings row, e.g. 'euclid vs dot, training step at
    seq_len 64: +4.1% time (95% CI +2.0% to +6.3%, 7 rounds): slower'."""
    head = f"{row['kind']} vs {row['baseline']}, {MEASURE_NAMES[row['measure']]} at seq_len {row['seq_len']}"
    busy = row.get("busy_rounds", 0)
    left_out = f"; {busy} round{'s' if busy > 1 else ''} left out, the CPU busy with another process" if busy else ""
    if row["rounds"] == 0:
        return f"{head}: not measured ({row['status'] if row['status'] != 'ok' else 'no round left'}{left_out})"
    change = f"{100 * (row['ratio'] - 1):+.1f}% time"
    rounds, run = int(row["rounds"]), int(row.get("rounds_run", row["rounds"]))
    if rounds < MIN_ROUNDS:
        kept = f"{rounds} round{'s' if rounds > 1 else ''}" + (f" kept of {run}" if run != rounds else "")
        return (
            f"{head}: {change} ({kept}{left_out}): too few rounds to tell; "
            f"set benchmark.rounds to {run + MIN_ROUNDS - rounds} or more"
        )
    interval = (
        f"95% CI {100 * (row['ratio_low'] - 1):+.1f}% to {100 * (row['ratio_high'] - 1):+.1f}%, {rounds} rounds"
        f"{left_out}"
    )
    verdict, margin = row["verdict"], row["margin"]
    if verdict == "no measurable difference":
        verdict += f" (within {-100 * margin / (1 + margin):+.0f}% to {100 * margin:+g}%)"
    elif verdict == "inconclusive":
        more = row["more_rounds"]
        verdict += (
            f"; about {int(more)} more round{'s' if more > 1 else ''} would likely decide it"
            f" (benchmark.rounds: {run + int(more)})"
            if pd.notna(more)
            else "; more rounds may decide it"
        )
    return f"{head}: {change} ({interval}): {verdict}"
