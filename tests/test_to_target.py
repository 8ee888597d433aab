"""Quality at equal cost on synthetic curves: where a curve reaches a target, the paired ratios
of steps, FLOPs and time to the baseline's, the combined interval, and the verdicts."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from attnscore.to_target import combined_interval, crossing, sentence, step_costs, to_target

STEPS = np.arange(0, 110, 10)


def curve(losses, steps=STEPS, flops_per_step=1e6) -> pd.DataFrame:
    return pd.DataFrame({"step": steps, "valid_loss": losses, "flops": np.asarray(steps) * flops_per_step})


def test_a_curve_reaches_a_target_at_a_point_between_points_or_never():
    falling = curve(np.linspace(6.0, 5.0, len(STEPS)))  # 0.1 nats every 10 steps
    assert crossing(falling, 5.5) == pytest.approx(50)  # exactly at a point
    assert crossing(falling, 5.55) == pytest.approx(45)  # halfway between two points
    assert crossing(falling, 5.58, "flops") == pytest.approx(42e6)
    assert crossing(falling, 6.5) == 0  # at the first point already
    assert math.isnan(crossing(falling, 4.9))  # never: no extrapolation
    bumpy = curve([6, 5.4, 5.8, 5.2, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    assert crossing(bumpy, 5.5) == pytest.approx(10 * (6 - 5.5) / (6 - 5.4))  # the first crossing counts


def runs(kinds: dict, seeds=(1, 2, 3), size="") -> pd.DataFrame:
    """Curves of every kind and seed: kinds maps a kind to a function seed -> its losses."""
    return pd.concat(
        [
            curve(losses(seed)).assign(size=size, variant=kind, seed=seed)
            for kind, losses in kinds.items()
            for seed in seeds
        ]  # fmt: skip
    )


def dot(seed):
    return 6.0 - 0.01 * STEPS * (1 + 0.01 * seed)  # its best at the last point, a little lower each seed


COST = {"center": 1.1, "low": 1.1 / 1.05, "high": 1.1 * 1.05, "n": 5, "ms": 12.0}  # symmetric on the log scale


def test_a_kind_equal_to_the_baseline_needs_exactly_its_steps_and_the_step_costs_time():
    table = to_target(runs({"dot": dot, "twin": dot}), "dot", {"twin": COST}, margin=0.03).set_index("kind", drop=False)
    twin = table.loc["twin"]
    assert twin["steps_ratio"] == twin["steps_low"] == twin["steps_high"] == 1.0  # zero width
    assert twin["flops_ratio"] == 1.0
    assert (twin["time_ratio"], twin["time_low"], twin["time_high"]) == pytest.approx((1.1, 1.1 / 1.05, 1.1 * 1.05))
    assert twin["verdict"] == "more"
    assert table.loc["dot", "verdict"] == "baseline" and table.loc["dot", "steps_ratio"] == 1.0
    assert table.loc["dot", "target"] == pytest.approx(np.mean([dot(s)[-1] for s in (1, 2, 3)]))


def test_a_kind_that_needs_fewer_steps_than_its_step_costs_more_needs_less_time():
    def fast(seed):  # dot's curve in 0.7x, 0.75x, 0.8x the steps
        return 6.0 - 0.01 * STEPS * (1 + 0.01 * seed) / (0.65 + 0.05 * seed)  # linear: interpolation is exact

    table = to_target(runs({"dot": dot, "fast": fast}), "dot", {"fast": COST}, 0.03).set_index("kind", drop=False)
    row = table.loc["fast"]
    logs = np.log([0.7, 0.75, 0.8])
    assert row["steps_ratio"] == pytest.approx(math.exp(logs.mean()), rel=1e-6)
    half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
    assert row["steps_low"] == pytest.approx(math.exp(logs.mean() - half), rel=1e-6)
    assert row["time_ratio"] == pytest.approx(row["steps_ratio"] * 1.1)
    assert row["time_low"] < row["steps_ratio"] * 1.1 / 1.05 and row["time_high"] > row["steps_ratio"] * 1.1 * 1.05
    assert row["verdict"] == "less"
    assert "in 0.75x dot's steps (95% CI" in sentence(row) and sentence(row).endswith(": less")


def test_not_reached_is_said_with_the_best_loss_and_never_extrapolated():
    def slow(seed):
        return dot(seed) + 0.2

    row = (
        to_target(runs({"dot": dot, "slow": slow}), "dot", {"slow": COST}, 0.03)
        .set_index("kind", drop=False)
        .loc["slow"]
    )
    assert row["verdict"] == "not reached" and row["reached"] == 0 and math.isnan(row["steps_ratio"])
    assert row["gap"] == pytest.approx(0.2)
    assert "does not reach dot's best validation loss" in sentence(row) and "3 of 3 seeds" in sentence(row)


def test_without_a_measured_step_cost_the_kind_is_not_timed():
    row = to_target(runs({"dot": dot, "twin": dot}), "dot", {}, 0.03).set_index("kind", drop=False).loc["twin"]
    assert row["verdict"] == "not timed" and math.isnan(row["time_ratio"])
    assert sentence(row).endswith("not timed")


@pytest.mark.parametrize(
    "cost, verdict",
    [
        ({"center": 1.0, "low": 0.99, "high": 1.01, "n": 5}, "no measurable difference"),
        ({"center": 1.0, "low": 0.8, "high": 1.25, "n": 5}, "inconclusive"),
        ({"center": 1.5, "low": 1.4, "high": 1.6, "n": 2}, "inconclusive"),  # too few rounds
    ],
)
def test_verdicts_follow_the_time_interval_and_the_margin(cost, verdict):
    row = (
        to_target(runs({"dot": dot, "twin": dot}), "dot", {"twin": cost}, 0.03)
        .set_index("kind", drop=False)
        .loc["twin"]
    )
    assert row["verdict"] == verdict


def test_the_combined_interval_adds_log_variances():
    exact = {"center": 1.2, "low": 1.2, "high": 1.2, "n": 3}
    measured = {"center": 1.1, "low": 1.0, "high": 1.21, "n": 6}
    assert combined_interval(exact, measured) == pytest.approx((1.32, 1.2, 1.2 * 1.21))
    # Two with the same spread and rounds: variance doubles, degrees of freedom double.
    t5 = stats.t.ppf(0.975, 5)
    one = {"center": 1.0, "low": math.exp(-t5 * 0.1), "high": math.exp(t5 * 0.1), "n": 6}
    center, low, high = combined_interval(one, one)
    half = stats.t.ppf(0.975, 10) * 0.1 * math.sqrt(2)
    assert (center, low, high) == pytest.approx((1.0, math.exp(-half), math.exp(half)))
    assert math.isnan(combined_interval(one, {**one, "n": 1, "low": math.nan, "high": math.nan})[1])


def test_step_costs_are_the_training_step_rows_against_the_baseline_at_the_training_shape():
    costs = pd.DataFrame(
        [
            {"measure": "step", "kind": "euclid", "baseline": "dot", "seq_len": 64, "rounds": 5, "ratio": 1.1,
             "ratio_low": 1.0, "ratio_high": 1.2, "ms": 10.0},
            {"measure": "attention", "kind": "euclid", "baseline": "dot", "seq_len": 64, "rounds": 5, "ratio": 2.0,
             "ratio_low": 1.9, "ratio_high": 2.1, "ms": 1.0},
            {"measure": "step", "kind": "euclid", "baseline": "dot_triton", "seq_len": 64, "rounds": 5, "ratio": 0.9,
             "ratio_low": 0.8, "ratio_high": 1.0, "ms": 10.0},
            {"measure": "step", "kind": "euclid", "baseline": "dot", "seq_len": 128, "rounds": 5, "ratio": 1.3,
             "ratio_low": 1.2, "ratio_high": 1.4, "ms": 20.0},
        ]
    )  # fmt: skip
    assert step_costs(costs, "dot", 64) == {"euclid": {"center": 1.1, "low": 1.0, "high": 1.2, "n": 5, "ms": 10.0}}
