"""Quality at equal cost: how many of the baseline's steps, how much of its training time and of
its FLOPs each kind needs to reach the baseline's best validation loss.

The target is, seed by seed, the lowest point of the baseline's validation curve (curve.csv). A
kind reaches it at the first point of its own curve at or below it, the step interpolated
linearly from the point before (at the curve's first point, that point's step); a kind that
never reaches it within the run is "not reached", with its best loss, never a number made up by
extrapolation. Paired over seeds, the ratio of steps (and of FLOPs) to the baseline's is a
geometric mean with a Student-t interval on the log scale (timings.ratio_interval). The time
ratio is the steps ratio times the benchmark's step-time ratio for that kind (compare_timings,
at the training shape); the two are measured independently, so their log variances add, with
Welch-Satterthwaite degrees of freedom.
"""

import math
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats

from attnscore.stats import CONFIDENCE
from attnscore.timings import MIN_ROUNDS, cost_verdict, percent_change, ratio_interval

# A compare_timings row's columns -> the keys of its step cost (step_costs).
STEP_COST = {"ratio": "center", "ratio_low": "low", "ratio_high": "high", "rounds": "n", "ms": "ms"}
VERDICTS = {"slower": "more", "faster": "less"}  # cost_verdict's words for time to the target
COLUMNS = ["size", "kind", "baseline", "seeds", "reached", "target", "best_loss", "gap",
           "steps_ratio", "steps_low", "steps_high", "step_cost", "step_cost_low", "step_cost_high", "cost_rounds",
           "time_ratio", "time_low", "time_high", "flops_ratio", "flops_low", "flops_high", "verdict"]  # fmt: skip


def crossing(curve: pd.DataFrame, target: float, at: str = "step") -> float:
    """Where (column `at`: step or flops) a curve ordered by step first reaches `target` (see the module), else NaN."""
    losses, where = curve["valid_loss"].to_numpy(float), curve[at].to_numpy(float)
    below = np.flatnonzero(losses <= target)
    if not len(below):
        return math.nan
    i = below[0]
    if i == 0 or losses[i] == target:
        return float(where[i])
    fraction = (losses[i - 1] - target) / (losses[i - 1] - losses[i])
    return float(where[i - 1] + fraction * (where[i] - where[i - 1]))


def combined_interval(first: dict, second: dict) -> tuple[float, float, float]:
    """The product of two independent ratios (dicts of center, low, high, n: a t interval on the log
    scale over n values) with its 95% interval (NaN bounds unless both have one)."""
    center = first["center"] * second["center"]
    parts = []
    for ratio in (first, second):
        if not ratio["n"] >= 2 or math.isnan(ratio["low"]):
            return center, math.nan, math.nan
        half = (math.log(ratio["high"]) - math.log(ratio["low"])) / 2
        parts.append(((half / stats.t.ppf(0.5 + CONFIDENCE / 2, ratio["n"] - 1)) ** 2, ratio["n"] - 1))
    variance = sum(var for var, _ in parts)
    if variance == 0:
        return center, center, center
    dof = variance**2 / sum(var**2 / df for var, df in parts if var > 0)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * math.sqrt(variance)
    return center, center * math.exp(-half), center * math.exp(half)


def step_costs(costs: pd.DataFrame, baseline: str, seq_len: int) -> dict[str, dict]:
    """Per kind the benchmark compared with `baseline` (compare_timings' rows): its training-step
    time ratio at seq_len (center, low, high, n rounds) and step time in ms."""
    timed = (costs["measure"] == "step") & (costs["seq_len"] == seq_len) & (costs["baseline"] == baseline)
    rows = costs[timed & (costs["rounds"] > 0)].set_index("kind")
    return rows[list(STEP_COST)].rename(columns=STEP_COST).to_dict("index")


def to_target(curves: pd.DataFrame, baseline: str, costs: dict[str, dict], margin: float) -> pd.DataFrame:
    """Per size and kind of `curves` (columns size, variant, seed, step, valid_loss, flops): COLUMNS (see
    the module). `costs`: step_costs, empty where the benchmark timed no size; `margin`: the benchmark's."""
    rows = []
    for size, at_size in curves.groupby("size", sort=False):
        runs = {key: run.sort_values("step") for key, run in at_size.groupby(["variant", "seed"], sort=False)}
        seeds = sorted(at_size.loc[at_size["variant"] == baseline, "seed"].unique())
        targets = {seed: runs[baseline, seed]["valid_loss"].min() for seed in seeds}
        for kind in at_size["variant"].unique():
            steps, flops, best = [], [], []
            for seed in seeds:
                run, base = runs[kind, seed], runs[baseline, seed]
                for ratios, at in ((steps, "step"), (flops, "flops")):
                    # A baseline best at its first point (it never improved) is no target to reach.
                    ratios.append(crossing(run, targets[seed], at) / (crossing(base, targets[seed], at) or math.nan))
                best.append(run["valid_loss"].min())
            rows.append(_row(size, kind, baseline, targets, steps, flops, best, costs.get(kind), margin))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(size, kind, baseline, targets, steps, flops, best, cost, margin) -> dict:
    reached = sum(not math.isnan(s) for s in steps)
    target, best_loss = float(np.mean(list(targets.values()))), float(np.mean(best))
    row = dict.fromkeys(COLUMNS, math.nan) | {
        "size": size, "kind": kind, "baseline": baseline, "seeds": len(steps), "reached": reached,
        "target": target, "best_loss": best_loss, "gap": best_loss - target,
    }  # fmt: skip
    if cost:
        row.update(step_cost=cost["center"], step_cost_low=cost["low"], step_cost_high=cost["high"],
                   cost_rounds=cost["n"])  # fmt: skip
    if reached < len(steps):
        return row | {"verdict": "not reached"}
    ratios = {"steps": ratio_interval(steps), "flops": ratio_interval(flops)}
    for name, ratio in ratios.items():
        row.update({f"{name}_ratio": ratio["center"], f"{name}_low": ratio["low"], f"{name}_high": ratio["high"]})
    if kind == baseline:
        return row | {"time_ratio": 1.0, "time_low": 1.0, "time_high": 1.0, "verdict": "baseline"}
    if not cost:
        return row | {"verdict": "not timed"}
    center, low, high = combined_interval({**ratios["steps"], "n": len(steps)}, cost)
    row.update(time_ratio=center, time_low=low, time_high=high)
    verdict = cost_verdict(low, high, margin) if cost["n"] >= MIN_ROUNDS else "inconclusive"  # NaN: inconclusive
    return row | {"verdict": VERDICTS.get(verdict, verdict)}


def sentence(row) -> str:
    """A to_target row as "euclid reaches dot's best validation loss (5.31 nats) in 1.03x dot's steps (95%
    CI 0.98 to 1.08, 3 paired seeds) and, at its measured step cost (+9%, 95% CI +2% to +16%), in 1.12x
    dot's training time (95% CI 1.04 to 1.21): more"."""
    kind, base, seeds = row["kind"], row["baseline"], int(row["seeds"])
    target = f"{base}'s best validation loss ({row['target']:.3f} nats)"
    head = f"{kind} reaches {target}"
    if row["verdict"] == "not reached":
        return (
            f"{kind} does not reach {target} within the run in {seeds - int(row['reached'])} of {seeds} seeds: "
            f"its best is {row['best_loss']:.3f} nats ({row['gap']:+z.3f}): not reached"
        )
    paired = f"{seeds} paired seed{'s' if seeds > 1 else ''}"
    steps = f"in {row['steps_ratio']:.2f}x {base}'s steps ({_ci(row, 'steps')}{paired})"
    flops = f"{row['flops_ratio']:.2f}x its FLOPs"
    if row["verdict"] == "not timed":
        return (
            f"{head} {steps} and {flops}; its step cost is not measured at this shape (not benchmarked there, or "
            "no round kept: see What it costs): not timed"
        )
    percent = partial(percent_change, digits=0)
    cost = f"{percent(row['step_cost'])}, {_ci(row, 'step_cost', percent)}{int(row['cost_rounds'])} rounds"
    time = f"{row['time_ratio']:.2f}x {base}'s training time ({_ci(row, 'time').rstrip(', ') or 'no interval'})"
    return f"{head} {steps} and, at its measured step cost ({cost}), in {time} and {flops}: {row['verdict']}"


def _ci(row, name: str, show=lambda value: f"{value:.2f}") -> str:
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    return "" if math.isnan(low) else f"95% CI {show(low)} to {show(high)}, "
