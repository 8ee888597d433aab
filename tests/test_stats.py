"""Statistics over seeds: intervals against textbook values, pairing by seed, the verdicts."""

import math

import pandas as pd
import pytest

from attnscore import stats


def runs(rows):
    return pd.DataFrame(rows, columns=["variant", "seed", "test_loss", "test_ppl"])


def test_interval_is_students_t():
    # mean 2, standard error 1/sqrt(3), t(0.975, 2 degrees of freedom) = 4.302653
    result = stats.mean_interval([1.0, 2.0, 3.0])
    assert result["seeds"] == 3 and result["mean"] == 2.0
    half = 4.302653 / math.sqrt(3)
    assert result["ci_low"] == pytest.approx(2 - half, abs=1e-6) and result["ci_high"] == pytest.approx(
        2 + half, abs=1e-6
    )


def test_one_seed_has_no_interval():
    result = stats.mean_interval([5.0])
    assert result["mean"] == 5.0 and math.isnan(result["ci_low"]) and math.isnan(result["ci_high"])


def test_differences_are_paired_by_seed_and_unpaired_seeds_are_left_out():
    table = runs(
        [("dot", 1, 5.0, 150.0), ("dot", 2, 5.2, 180.0), ("euclid", 2, 5.3, 200.0), ("euclid", 1, 5.1, 160.0),
         ("euclid", 3, 9.9, 999.0)]
    )  # fmt: skip
    differences = stats.paired_differences(table).sort_values("seed")
    assert list(differences["seed"]) == [1, 2]
    assert list(differences["test_ppl"]) == pytest.approx([10.0, 20.0])
    assert list(differences["test_loss"]) == pytest.approx([0.1, 0.1])


def test_a_consistent_difference_is_significant_and_a_noisy_one_is_not():
    consistent = runs(
        [("dot", s, 5.0, 100.0 + s) for s in range(4)]
        + [("euclid", s, 5.1 + s / 100, 110.0 + 1.1 * s) for s in range(4)]
    )
    row = stats.paired_summary(stats.paired_differences(consistent)).set_index("metric").loc["test_ppl"]
    assert row["significant"] and row["ci_low"] > 0 and row["p_value"] < 0.05
    assert "euclid is significantly higher" in stats.verdict(
        row.reset_index().iloc[0] if False else {**row, "metric": "test_ppl"}
    )

    noisy = runs(
        [("dot", s, 5.0, 100.0) for s in range(3)] + [("euclid", s, 5.0, 100.0 + d) for s, d in enumerate([-4, 1, 6])]
    )
    row = {
        **stats.paired_summary(stats.paired_differences(noisy)).set_index("metric").loc["test_ppl"],
        "metric": "test_ppl",
    }
    assert not row["significant"] and row["ci_low"] < 0 < row["ci_high"]
    assert stats.verdict(row) == (
        f"euclid - dot, test perplexity: +1.00 (95% CI {row['ci_low']:+.2f} to {row['ci_high']:+.2f}, 3 paired seeds): "
        "no significant difference at this size."
    )


def test_one_paired_seed_says_there_is_no_interval():
    table = runs([("dot", 1, 5.0, 150.0), ("euclid", 1, 5.1, 153.7)])
    row = {
        **stats.paired_summary(stats.paired_differences(table)).set_index("metric").loc["test_ppl"],
        "metric": "test_ppl",
    }
    assert row["significant"] is None and math.isnan(row["ci_low"])
    assert stats.verdict(row) == (
        "euclid - dot, test perplexity: +3.70 (1 paired seed): no interval from one seed; add seeds to tell an effect from noise."
    )


def test_per_epoch_aggregates_each_split_over_seeds():
    epochs = pd.DataFrame(
        [{"variant": "dot", "seed": s, "epoch": e, "train_ppl": 10.0 * e + s, "valid_ppl": 5.0, "test_ppl": 6.0}
         for s in (1, 2, 3) for e in (1, 2)]
    )  # fmt: skip
    table = stats.per_epoch(epochs).set_index(["epoch", "split"])
    assert table.loc[(2, "train"), "mean"] == 22.0 and table.loc[(2, "train"), "seeds"] == 3
    assert table.loc[(1, "valid"), "ci_low"] == table.loc[(1, "valid"), "ci_high"] == 5.0  # no spread
