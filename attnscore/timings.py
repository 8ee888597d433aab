"""What a kind costs, over interleaved rounds: rounds pair timings as seeds pair runs. Each
measurement is a median over timed calls in a fresh process (attnscore.bench); across rounds,
times are compared as ratios on the log scale (a ratio's natural scale: 0.8 and 1.25 are equally
far from 1), with a Student-t interval over rounds, a verdict with a margin, and rounds in which
other processes held the cores left out and counted."""

import math

import pandas as pd
from scipy import stats

from attnscore.stats import CONFIDENCE

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


def percent_change(ratio, digits: int = 1) -> str:
    """A ratio as a change in percent: 1.041 -> '+4.1%' ('–' when missing)."""
    return "–" if pd.isna(ratio) else f"{100 * (ratio - 1):+z,.{digits}f}%"


def ratio_interval(values) -> dict:
    """Geometric mean of positive values, with the 95% t interval of their mean log (NaN bounds for one value)."""
    logs = pd.Series(values, dtype=float).dropna().map(math.log)
    n, mean, sd = len(logs), logs.mean(), logs.std()  # NaN where too few
    low = high = math.nan
    if n >= 2:
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
        low, high = math.exp(mean - half), math.exp(mean + half)
    return {"rounds": n, "center": math.exp(mean), "low": low, "high": high}


def cost_verdict(low: float, high: float, margin: float) -> str:
    """'no measurable difference' when the ratio interval lies within [1/(1 + margin), 1 + margin] (so
    two runs cannot read 'faster' and 'slower' for a negligible difference; a slowdown and the speed-up
    of the same factor alike), else 'slower' or 'faster' when it excludes 1, else 'inconclusive'."""
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
    """How many more rounds would likely decide an inconclusive comparison, were the mean and spread of
    its log ratios to hold (None with fewer than MIN_ROUNDS rounds, whose spread says too little, or none)."""
    logs = pd.Series(log_ratios, dtype=float).dropna()
    n, mean, sd = len(logs), logs.mean(), logs.std()
    if n < MIN_ROUNDS or not sd > 0:
        return None
    # Decided once the half-width is below |mean| (excludes 1) or below the mean's distance to
    # the nearer edge of the margin, +/- log(1 + margin) (fits inside it).
    needed = max(abs(mean), math.log1p(margin) - abs(mean))
    for rounds in range(n + 1, n + MAX_MORE_ROUNDS):
        if stats.t.ppf(0.5 + CONFIDENCE / 2, rounds - 1) * sd / math.sqrt(rounds) < needed:
            return rounds - n
    return None


def compare_timings(measurements: pd.DataFrame, baseline: str, margin: float, controls: dict) -> pd.DataFrame:
    """Per measure, seq_len and kind: its time over rounds and its ratio to the baseline's in the same
    rounds, also to its control (`controls`: kind -> control) where both ran; busy rounds left out, counted."""
    rows, busy = [], set()  # busy rounds: their ratios say more about the other work than about the kinds
    if "cpu_wait" in measurements:
        busy = set(measurements.loc[measurements["cpu_wait"].astype(float) > BUSY_WAIT, "round"])
    rounds_run = measurements["round"].nunique()
    ok = measurements[(measurements["status"] == "ok") & ~measurements["round"].isin(busy)]
    for (seq_len, kind), group in measurements.groupby(["seq_len", "kind"], sort=False):
        done = ok[(ok["seq_len"] == seq_len) & (ok["kind"] == kind)].set_index("round")
        failed = group.loc[group["status"] != "ok", "status"]
        status = "ok" if failed.empty else f"{failed.iloc[0]} ({len(failed)} of {len(group)} rounds)"
        for measure, column in MEASURES.items():
            time_ = ratio_interval(done[column])
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
                    "peak_memory_mib": done["peak_memory_mib"].median(), "memory_ratio": memory.median(),
                    "status": status,
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
    """A compare_timings row as 'euclid vs dot, training step at seq_len 64: +4.1% time (95% CI +2.0% to
    +6.3%, 7 rounds): slower'."""
    head = f"{row['kind']} vs {row['baseline']}, {MEASURE_NAMES[row['measure']]} at seq_len {row['seq_len']}"
    busy = row.get("busy_rounds", 0)
    left_out = f"; {busy} round{'s' if busy > 1 else ''} left out, the CPU busy with another process" if busy else ""
    if row["rounds"] == 0:
        return f"{head}: not measured ({row['status'] if row['status'] != 'ok' else 'no round left'}{left_out})"
    change = f"{percent_change(row['ratio'])} time"
    rounds, run = int(row["rounds"]), int(row.get("rounds_run", row["rounds"]))
    if rounds < MIN_ROUNDS:
        kept = f"{rounds} round{'s' if rounds > 1 else ''}" + (f" kept of {run}" if run != rounds else "")
        return (
            f"{head}: {change} ({kept}{left_out}): too few rounds to tell; "
            f"set benchmark.rounds to {run + MIN_ROUNDS - rounds} or more"
        )
    interval = (
        f"95% CI {percent_change(row['ratio_low'])} to {percent_change(row['ratio_high'])}, {rounds} rounds{left_out}"
    )
    verdict, margin = row["verdict"], row["margin"]
    if verdict == "no measurable difference":
        verdict += f" (within {-100 * margin / (1 + margin):+z.0f}% to {100 * margin:+g}%)"
    elif verdict == "inconclusive":
        more = row["more_rounds"]
        verdict += (
            f"; about {int(more)} more round{'s' if more > 1 else ''} would likely decide it"
            f" (benchmark.rounds: {run + int(more)})"
            if pd.notna(more)
            else "; more rounds may decide it"
        )
    return f"{head}: {change} ({interval}): {verdict}"
