"""The benchmark's statistics on synthetic timings: paired log ratios over rounds, their interval,
and the three-way verdict with a margin."""

import math

import numpy as np
import pandas as pd
import pytest

from attnscore import stats, summary, timings


def rounds_of(ratios: dict, rounds: int, noise: float, seed=0) -> pd.DataFrame:
    """Measurements of kinds whose step and attention times are `ratios` times dot's, each with
    lognormal noise of sd `noise`, plus a drift of the machine shared by all kinds of a round."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(1, rounds + 1):
        drift = math.exp(rng.normal(0, 0.3))  # large, and cancelled by the pairing
        for kind, ratio in {"dot": 1.0, **ratios}.items():
            times = {
                column: 50 * ratio * drift * math.exp(rng.normal(0, noise)) for column in ("step_ms", "attention_ms")
            }
            rows.append({"round": r, "kind": kind, "seq_len": 64, "batch_size": 16, "status": "ok",
                         "peak_memory_mib": 100 * ratio, **times})  # fmt: skip
    return pd.DataFrame(rows)


def compared(measurements, margin=0.03) -> pd.DataFrame:
    table = timings.compare_timings(measurements, "dot", margin, {})
    return table[(table["measure"] == "step")].set_index("kind")


def test_a_known_slowdown_is_slower_with_an_interval_covering_it():
    row = compared(rounds_of({"slow": 1.2}, rounds=7, noise=0.03)).loc["slow"]
    assert row["verdict"] == "slower" and row["ratio_low"] < 1.2 < row["ratio_high"] and row["ratio_low"] > 1
    assert row["memory_ratio"] == pytest.approx(1.2)
    assert timings.cost_sentence(row.to_dict() | {"kind": "slow"}).startswith(
        "slow vs dot, training step at seq_len 64: +"
    )


def test_a_known_speedup_is_faster():
    assert compared(rounds_of({"fast": 0.8}, rounds=7, noise=0.03)).at["fast", "verdict"] == "faster"


def test_identical_kinds_show_no_measurable_difference_given_enough_rounds():
    row = compared(rounds_of({"same": 1.0}, rounds=40, noise=0.02)).loc["same"]
    assert row["verdict"] == "no measurable difference"
    assert 0.97 <= row["ratio_low"] <= 1 <= row["ratio_high"] <= 1.03
    assert "no measurable difference (within -3% to +3%)" in timings.cost_sentence(row.to_dict() | {"kind": "same"})


def test_few_noisy_rounds_are_inconclusive_and_say_how_many_more_would_decide():
    row = compared(rounds_of({"same": 1.0}, rounds=3, noise=0.1)).loc["same"]
    assert row["verdict"] == "inconclusive" and row["more_rounds"] > 0
    assert f"about {int(row['more_rounds'])} more rounds would likely decide it" in timings.cost_sentence(
        row.to_dict() | {"kind": "same"}
    )


def test_more_rounds_is_the_fewest_whose_interval_would_decide_at_the_spread_so_far():
    logs = [math.log(r) for r in (1.02, 1.10, 0.99, 1.07)]  # mean log 0.044, sd 0.050: inconclusive
    mean, sd = np.mean(logs), np.std(logs, ddof=1)
    more = timings.more_rounds(logs, 0.03)

    def half_width(rounds):
        return stats.stats.t.ppf(0.975, rounds - 1) * sd / math.sqrt(rounds)

    assert half_width(4) > mean  # undecided now
    assert half_width(4 + more) < mean <= half_width(4 + more - 1)  # the interval then excludes 1, not before
    assert timings.more_rounds([0.0, 0.0], 0.03) is None  # no spread to go by


def test_verdict_cases_and_the_margin():
    assert timings.cost_verdict(1.01, 1.02, 0.03) == "no measurable difference"  # inside the margin wins
    assert timings.cost_verdict(1.01, 1.05, 0.03) == "slower"
    assert timings.cost_verdict(0.90, 0.98, 0.03) == "faster"
    assert timings.cost_verdict(0.98, 1.05, 0.03) == "inconclusive"
    assert timings.cost_verdict(math.nan, math.nan, 0.03) == "inconclusive"


def test_the_margin_judges_a_slowdown_and_the_speedup_of_the_same_factor_alike():
    assert timings.cost_verdict(1.35, 1.45, 0.3) == "slower"
    assert timings.cost_verdict(1 / 1.45, 1 / 1.35, 0.3) == "faster"
    assert timings.cost_verdict(1 / 1.29, 1.29, 0.3) == "no measurable difference"
    assert timings.cost_verdict(1 / 1.31, 1.0, 0.3) == "inconclusive"  # just past the margin on the fast side


@pytest.mark.parametrize("kept", [1, 2])
def test_too_few_rounds_are_not_judged_and_the_advice_names_more_than_were_run(kept):
    measurements = rounds_of({"slow": 1.5}, rounds=8, noise=0.01).assign(cpu_wait=0.0)
    measurements.loc[measurements["round"] > kept, "cpu_wait"] = 0.4  # every later round left out as busy
    row = compared(measurements).loc["slow"]
    assert row["rounds"] == kept and row["verdict"] == "inconclusive" and pd.isna(row["more_rounds"])
    sentence = timings.cost_sentence(row.to_dict() | {"kind": "slow"})
    assert f"({kept} round{'s' if kept > 1 else ''} kept of 8;" in sentence
    assert sentence.endswith(f"too few rounds to tell; set benchmark.rounds to {8 + 3 - kept} or more")


def test_the_advice_on_more_rounds_names_a_total_above_the_rounds_run():
    row = compared(rounds_of({"same": 1.0}, rounds=3, noise=0.1)).loc["same"]
    more = int(row["more_rounds"])
    assert f"would likely decide it (benchmark.rounds: {3 + more})" in timings.cost_sentence(
        row.to_dict() | {"kind": "same"}
    )


def test_ratio_interval_is_the_t_interval_of_the_mean_log():
    values = [1.0, 2.0, 4.0]
    result = timings.ratio_interval(values)
    assert result["center"] == pytest.approx(2.0)
    half = 4.302652729911275 * math.log(2) / math.sqrt(3)  # t(0.975, 2) * sd of (0, log 2, log 4) / sqrt(3)
    assert result["low"] == pytest.approx(2 * math.exp(-half)) and result["high"] == pytest.approx(2 * math.exp(half))
    one = timings.ratio_interval([3.0])
    assert one["rounds"] == 1 and one["center"] == pytest.approx(3.0) and math.isnan(one["low"])


def test_failed_rounds_are_left_out_of_the_pairs_and_named_in_the_status():
    measurements = rounds_of({"big": 1.1}, rounds=4, noise=0.01)
    oom = (measurements["kind"] == "big") & (measurements["round"] == 2)
    measurements.loc[oom, ["step_ms", "attention_ms"]] = math.nan
    measurements.loc[oom, "status"] = "out of memory"
    row = compared(measurements).loc["big"]
    assert row["rounds"] == 3 and row["status"] == "out of memory (1 of 4 rounds)"


def test_a_control_is_compared_where_it_ran():
    measurements = rounds_of({"euclid": 1.3, "dot_triton": 1.2}, rounds=5, noise=0.01)
    table = timings.compare_timings(measurements, "dot", 0.03, {"euclid": "dot_triton"})
    pairs = set(zip(table["kind"], table["baseline"], strict=True))
    assert pairs == {("dot", "dot"), ("euclid", "dot"), ("dot_triton", "dot"), ("euclid", "dot_triton")}
    row = table[(table["kind"] == "euclid") & (table["baseline"] == "dot_triton") & (table["measure"] == "step")]
    assert row["ratio"].iloc[0] == pytest.approx(1.3 / 1.2, rel=0.02)


def test_a_round_the_cpu_was_busy_in_is_left_out_and_said():
    measurements = rounds_of({"slow": 1.2}, rounds=6, noise=0.02).assign(cpu_wait=0.0)
    busy = (measurements["kind"] == "slow") & (measurements["round"] == 3)
    measurements.loc[busy, ["step_ms", "cpu_wait"]] = [measurements.loc[busy, "step_ms"].iloc[0] * 4, 0.4]
    row = compared(measurements).loc["slow"]
    assert row["rounds"] == 5 and row["busy_rounds"] == 1 and row["ratio"] == pytest.approx(1.2, rel=0.05)
    assert row["verdict"] == "slower"
    assert "5 rounds; 1 round left out, the CPU busy with another process" in timings.cost_sentence(
        row.to_dict() | {"kind": "slow"}
    )
    # Kept in, the round would have widened the interval past a decision.
    assert compared(measurements.assign(cpu_wait=None)).at["slow", "verdict"] == "inconclusive"


def test_the_summary_counts_every_round_and_names_the_busy_ones():
    measurements = rounds_of({"slow": 1.2}, rounds=6, noise=0.02).assign(cpu_wait=0.0)
    measurements.loc[measurements["round"] == 2, "cpu_wait"] = 0.4
    text = summary.costs_markdown(timings.compare_timings(measurements, "dot", 0.03, {}))
    assert "Each of 6 rounds timed every kind" in text
    assert "Left out, the CPU busy with another process: 1 of them." in text


def test_a_kind_slow_in_some_rounds_by_its_own_waiting_keeps_them():
    """A kind that waits (a lock, I/O, a device) is slow without its threads waiting for a core:
    no round is left out, and its slow rounds count against it."""
    measurements = rounds_of({"waits": 0.9}, rounds=8, noise=0.02).assign(cpu_wait=0.001)
    waits = (measurements["kind"] == "waits") & (measurements["round"] % 2 == 0)
    measurements.loc[waits, "step_ms"] *= 3.0 / 0.9
    row = compared(measurements).loc["waits"]
    assert row["rounds"] == 8 and row["busy_rounds"] == 0 and row["ratio"] > 1.5 and row["verdict"] != "faster"


def test_two_rounds_with_busy_ones_leave_one_or_none_and_say_so():
    """The workflow's tests run 2 rounds on a shared machine: what their sentences say when the
    rule leaves one round out, or both (each busy for another kind)."""
    measurements = rounds_of({"slow": 1.2}, rounds=2, noise=0.02).assign(cpu_wait=0.0)
    measurements.loc[(measurements["kind"] == "slow") & (measurements["round"] == 2), "cpu_wait"] = 0.4
    row = compared(measurements).loc["slow"]
    assert row["rounds"] == 1 and row["busy_rounds"] == 1 and row["verdict"] == "inconclusive"
    assert timings.cost_sentence(row.to_dict() | {"kind": "slow"}).endswith(
        "time (1 round kept of 2; 1 round left out, the CPU busy with another process): too few rounds to tell;"
        " set benchmark.rounds to 4 or more"
    )
    measurements.loc[(measurements["kind"] == "dot") & (measurements["round"] == 1), "cpu_wait"] = 0.4
    row = compared(measurements).loc["slow"]
    assert row["rounds"] == 0 and row["busy_rounds"] == 2
    assert timings.cost_sentence(row.to_dict() | {"kind": "slow"}) == (
        "slow vs dot, training step at seq_len 64: not measured (no round left; 2 rounds left out, the CPU busy with"
        " another process)"
    )
