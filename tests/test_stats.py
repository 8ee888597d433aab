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
    differences = stats.paired_differences(table, "dot").sort_values("seed")
    assert list(differences["seed"]) == [1, 2]
    assert list(differences["test_ppl"]) == pytest.approx([10.0, 20.0])
    assert list(differences["test_loss"]) == pytest.approx([0.1, 0.1])


def test_a_consistent_difference_is_significant_and_a_noisy_one_is_not():
    consistent = runs(
        [("dot", s, 5.0, 100.0 + s) for s in range(4)]
        + [("euclid", s, 5.1 + s / 100, 110.0 + 1.1 * s) for s in range(4)]
    )
    row = (
        stats.with_holm(stats.paired_summary(stats.paired_differences(consistent, "dot")))
        .set_index("metric")
        .loc["test_ppl"]
    )
    assert row["significant"] and row["ci_low"] > 0 and row["p_value"] < 0.05 and row["p_holm"] == row["p_value"]
    assert "euclid is significantly higher (p = " in stats.verdict({**row, "metric": "test_ppl"})

    noisy = runs(
        [("dot", s, 5.0, 100.0) for s in range(3)]
        + [("euclid", s, 5.0 + d, 100.0 + d) for s, d in enumerate([-0.04, 0.01, 0.06])]
    )
    row = {
        **stats.with_holm(stats.paired_summary(stats.paired_differences(noisy, "dot")))
        .set_index("metric")
        .loc["test_ppl"],
        "metric": "test_ppl",
    }
    assert not row["significant"] and row["ci_low"] < 0 < row["ci_high"]
    assert stats.verdict(row) == (
        f"euclid - dot, test perplexity: {row['mean']:+.2f} (95% CI {row['ci_low']:+.2f} to {row['ci_high']:+.2f}, 3 paired seeds): "
        f"no significant difference at this size (p = {row['p_value']:.2g})."  # one test: nothing to adjust
    )


def test_a_mean_that_rounds_to_zero_prints_without_a_minus_sign():
    row = {"variant": "euclid", "baseline": "dot", "metric": "test_loss", "seeds": 3, "mean": -0.00004,
           "ci_low": -0.00009, "ci_high": 0.002, "p_value": 0.8, "tests": 1, "p_holm": 0.8, "significant": False}  # fmt: skip
    assert stats.verdict(row, what="first-token share", digits=3).startswith(
        "euclid - dot, first-token share: +0.000 (95% CI +0.000 to +0.002, 3 paired seeds)"
    )


def test_holm_adjusts_as_by_hand():
    # Four tests (NaN is none). Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, and
    # 0.04 x 1 = 0.04, raised to 0.06: never below an earlier one.
    adjusted = stats.holm([0.01, 0.04, math.nan, 0.03, 0.005])
    assert list(adjusted[[0, 1, 3, 4]]) == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(adjusted[2])
    assert list(stats.holm([0.4, 0.6])) == pytest.approx([0.8, 0.8])  # 0.4 x 2; 0.6 x 1, raised to 0.8
    assert list(stats.holm([0.7, 0.9])) == [1.0, 1.0]  # capped at 1


def test_holm_makes_a_significant_comparison_among_many_not_significant():
    """p = 0.02 alone is significant; one of the five comparisons of a metric (kinds x sizes),
    the rest far from it, it is adjusted to 0.1: not significant. The metrics are families apart."""
    paired = pd.DataFrame(
        [{"size": size, "variant": variant, "baseline": "dot", "metric": metric, "seeds": 3, "mean": 1.0,
          "ci_low": 0.5, "ci_high": 1.5, "p_value": 0.02 if (size, variant) == ("small", "euclid") else 0.5,
          "significant": True}
         for size in ("small", "large") for variant in ("euclid", "cosine", "sigmoid") for metric in ("test_loss", "test_ppl")
         if (size, variant) != ("large", "sigmoid")]
    )  # fmt: skip
    rows = stats.with_holm(paired).set_index(["size", "variant", "metric"])
    assert (rows["tests"] == 5).all()
    assert rows.at[("small", "euclid", "test_loss"), "p_holm"] == pytest.approx(0.1)
    assert stats.verdict({**rows.loc[("small", "euclid", "test_ppl")], "variant": "euclid", "metric": "test_ppl"}) == (
        "euclid - dot, test perplexity: +1.00 (95% CI +0.50 to +1.50, 3 paired seeds): no significant difference at "
        "this size (p = 0.02, Holm-adjusted over 5 tests: 0.1)."
    )
    assert "euclid is significantly higher (p = 0.02)." in stats.verdict({**stats.with_holm(paired.iloc[:1]).iloc[0]})


def test_one_paired_seed_says_there_is_no_interval():
    table = runs([("dot", 1, 5.0, 150.0), ("euclid", 1, 5.1, 153.7)])
    row = {
        **stats.with_holm(stats.paired_summary(stats.paired_differences(table, "dot")))
        .set_index("metric")
        .loc["test_ppl"],
        "metric": "test_ppl",
    }
    assert row["significant"] is None and math.isnan(row["p_holm"]) and row["tests"] == 0 and math.isnan(row["ci_low"])
    assert stats.verdict(row) == (
        "euclid - dot, test perplexity: +15.61 (1 paired seed): no interval from one seed; add seeds to tell an effect from noise."
    )


def test_per_epoch_perplexity_is_the_losses_mean_and_interval_taken_to_perplexity():
    epochs = pd.DataFrame(
        [{"variant": "dot", "seed": s, "epoch": e, "train_loss": 1.0 * e + s, "valid_loss": 5.0, "test_loss": 6.0}
         for s in (1, 2, 3) for e in (1, 2)]
    )  # fmt: skip
    table = stats.per_epoch(epochs).set_index(["epoch", "split"])
    train = stats.mean_interval([3.0, 4.0, 5.0])
    assert table.loc[(2, "train"), "mean"] == pytest.approx(math.exp(4.0)) and table.loc[(2, "train"), "seeds"] == 3
    assert table.loc[(2, "train"), "ci_low"] == pytest.approx(math.exp(train["ci_low"]))  # the loss's bound
    assert table.loc[(1, "valid"), "ci_low"] == table.loc[(1, "valid"), "ci_high"] == pytest.approx(math.exp(5.0))


def test_a_perplexity_interval_never_goes_below_zero_and_agrees_with_the_loss():
    spread = stats.perplexity_interval([1.0, 5.0])  # the loss's interval runs far below 0
    assert spread["ci_low"] > 0 and spread["ci_low"] < spread["mean"] < spread["ci_high"]
    table = runs([("dot", s, 5.0, math.exp(5.0)) for s in (1, 2)] + [("euclid", 1, 5.2, 0.0), ("euclid", 2, 5.3, 0.0)])
    summary = stats.with_holm(stats.paired_summary(stats.paired_differences(table, "dot"))).set_index("metric")
    loss, ppl = summary.loc["test_loss"], summary.loc["test_ppl"]
    assert (loss["significant"], loss["p_value"]) == (ppl["significant"], ppl["p_value"])
    assert ppl["mean"] == pytest.approx(math.exp(5.0) * math.expm1(loss["mean"]))


def test_identical_runs_say_so():
    table = runs([(variant, s, 5.0, 150.0) for variant in ("dot", "euclid") for s in (1, 2, 3)])
    row = stats.with_holm(stats.paired_summary(stats.paired_differences(table, "dot"))).iloc[0]
    assert (
        stats.verdict(row)
        == "euclid - dot, test loss (nats/token): +0.0000 (3 paired seeds): identical results in every seed."
    )


def test_per_step_means_pair_the_seeds_that_logged_each_step(tmp_path):
    rows = {
        ("dot", 1): [(5, 1, 3.0), (10, 1, 2.0)],
        ("dot", 2): [(5, 1, 4.0), (10, 1, 2.0)],
        ("euclid", 1): [(5, 1, 9.0)],
    }
    paths = {}
    for (variant, seed), steps in rows.items():
        paths[variant, seed] = tmp_path / f"{variant}{seed}.csv"
        frame = pd.DataFrame(steps, columns=["step", "epoch", "train_loss"]).assign(grad_norm=1.0, lr=1e-3)
        frame.to_csv(paths[variant, seed], index=False)
    table = stats.per_step(stats.load_tables(paths)).set_index(["variant", "step", "measure"])
    first = table.loc[("dot", 5, "train_loss")]
    assert first["seeds"] == 2 and first["mean"] == 3.5 and first["ci_low"] < 3.5 < first["ci_high"]
    assert table.loc[("dot", 10, "train_loss"), "ci_low"] == 2.0  # identical values: the interval is the point
    assert table.loc[("euclid", 5, "lr"), "seeds"] == 1 and math.isnan(table.loc[("euclid", 5, "lr"), "ci_low"])


def test_the_training_figure_draws_every_variant(tmp_path):
    from attnscore import plots

    steps = pd.DataFrame(
        [(v, s, step, 1 + step // 10, 5.0 - step / 10 + s / 100, 1.0, 1e-3) for v in ("dot", "euclid") for s in (1, 2)
         for step in range(5, 35, 5)],
        columns=["variant", "seed", "step", "epoch", "train_loss", "grad_norm", "lr"],
    )  # fmt: skip
    table = stats.per_step(steps).assign(size="")  # no sizes
    plots.plot_training(table, [tmp_path / "t.png", tmp_path / "t.svg"], "Training per step")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG" and "euclid (mean of 2 seeds" in (
        tmp_path / "t.svg"
    ).read_text()


def test_two_experiments_pair_by_variant_and_seed():
    demo = runs([("dot", 1, 5.0, 150.0), ("dot", 2, 5.2, 180.0), ("euclid", 1, 5.4, 220.0)])
    modern = runs([("dot", 2, 4.9, 125.0), ("dot", 1, 4.6, 100.0), ("euclid", 1, 5.0, 150.0), ("dot", 3, 1.0, 2.0)])
    differences = stats.paired_between(modern, demo, "modern", "demo").sort_values(["variant", "seed"])
    assert list(zip(differences["variant"], differences["baseline"], differences["seed"], strict=True)) == [
        ("modern: dot", "demo: dot", 1), ("modern: dot", "demo: dot", 2), ("modern: euclid", "demo: euclid", 1),
    ]  # fmt: skip
    assert list(differences["test_ppl"]) == pytest.approx([-50.0, -55.0, -70.0])
    summary = stats.paired_summary(differences).set_index(["variant", "metric"])
    assert summary.loc[("modern: dot", "test_loss"), "mean"] == pytest.approx(-0.35)
    assert summary.loc[("modern: dot", "test_loss"), "seeds"] == 2


def test_paired_means_pair_each_statistic_by_seed_with_holm_over_kinds_and_sizes():
    rows = [("", "dot", s, 1.0 + s, 5.0) for s in (1, 2, 3)] + [
        ("", "euclid", s, 1.5 + s + 0.1 * s, 5.0) for s in (1, 2, 3)
    ]
    rows += [("", "cosine", s, 1.0 + s, 5.0) for s in (1, 2)] + [("", "cosine", 9, 7.0, 7.0)]  # seed 9: no dot run
    means = pd.DataFrame(rows, columns=["size", "variant", "seed", "entropy", "distance"])
    paired = stats.paired_means(means, "dot", ["entropy", "distance"]).set_index(["variant", "metric"])
    expected = stats.mean_interval([0.6, 0.7, 0.8])
    assert paired.loc[("euclid", "entropy"), ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [expected["mean"], expected["ci_low"], expected["ci_high"]]
    )
    assert paired.loc[("cosine", "entropy"), "seeds"] == 2 and (paired["tests"] == 2).all()
    assert (
        paired.loc[("euclid", "distance"), "p_value"] == 1.0 and not paired.loc[("euclid", "distance"), "significant"]
    )
    sentence = stats.verdict(
        paired.loc[("euclid", "entropy")].to_dict() | {"variant": "euclid"}, what="entropy", digits=3
    )
    assert sentence.startswith("euclid - dot, entropy: +0.700 (95% CI ") and "3 paired seeds" in sentence


def test_a_size_heads_its_text_and_the_model_section_of_a_config_without_sizes_shows_none():
    assert stats.size_label("wide", "dot", "/") == "wide/dot"
    assert stats.size_label("wide", "valid") == "wide: valid"
    assert stats.size_label("", "valid") == "valid"
