"""summary.md: our numbers (mean and 95% interval over seeds) beside the course report's, the
paired verdicts against the baseline, then what each kind costs, as Markdown, from the compare
step's tables and the benchmark's comparisons. The tables carry a size column (stats.size_label)."""

import html
import re

import pandas as pd

from attnscore import stats, timings, to_target

# The course report this project reproduces (config/config.yaml holds its model and training
# settings): its setup and its published numbers, one run per kind; README.md quotes them
# (tests/test_readme.py keeps the two equal). Perplexity after the first epoch (train, valid,
# test), test perplexity after the last (None: not published), training iterations per second.
COURSE_BATCH_SIZE, COURSE_SEQ_LEN, COURSE_EPOCHS = 8, 512, 20
COURSE_SETUP = (
    f"16 GB NVIDIA A4000, fp16 autocast, batch {COURSE_BATCH_SIZE} x {COURSE_SEQ_LEN}, WikiText-2, {COURSE_EPOCHS} "
    "epochs, one run."
)
COURSE_NUMBERS = {
    "dot": {"train_ppl_1": 484, "valid_ppl_1": 245, "test_ppl_1": 233, "test_ppl_final": 170.7, "iters_per_s": 7.5},
    "euclid": {"train_ppl_1": 485, "valid_ppl_1": 249, "test_ppl_1": 236, "test_ppl_final": None, "iters_per_s": 6.3},
}
TOKENS_PER_S = ("tokens_per_s", "tokens_per_s_low", "tokens_per_s_high")


def markdown_text(text: str) -> str:
    """Text for Markdown (and the HTML a viewer makes of it), shown as written: no tags, entities,
    emphasis, links or table cells of its own."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", escaped)


def _fmt(value, digits=1) -> str:
    """A number for a table: '–' when missing."""
    return "–" if value is None or pd.isna(value) else f"{value:,.{digits}f}"


def _with_interval(row, digits=1, keys=("mean", "ci_low", "ci_high"), show=_fmt) -> str:
    """'102.0 [99.1, 104.9]', or '102.0' where the row has no interval (one seed); keys name the
    row's mean and bounds, show(value, digits) writes each."""
    mean, low, high = (row[key] for key in keys)
    if pd.isna(low):
        return show(mean, digits)
    return f"{show(mean, digits)} [{show(low, digits)}, {show(high, digits)}]"


def summary_markdown(
    epochs: pd.DataFrame,
    best: pd.DataFrame,
    verdicts: pd.DataFrame,
    losses: pd.DataFrame,
    costs: pd.DataFrame,
    targets: pd.DataFrame,
    *,
    data_name: str,
    train_seq_len: int,
) -> str:
    """summary.md but the attention section: `verdicts` are stats.with_holm's rows, `losses` per_size's
    (parameter counts), `costs` compare_timings' and `targets` to_target's."""
    baseline = timings.cost_baseline(costs)
    steps = costs[(costs["measure"] == "step") & (costs["baseline"] == baseline)]
    sized = any(best["size"])  # else the one size is the model section, which the benchmark times
    at_train_shape = steps[(steps["seq_len"] == train_seq_len) & (not sized)].set_index("kind")
    first_epoch = epochs[epochs["epoch"] == 1].set_index(["size", "variant", "split"])
    seeds = int(best["seeds"].max())
    lines = [
        f"# Results: {markdown_text(data_name)}",
        "",
        "Perplexities are token-weighted (exp of total NLL over predicted tokens). Epoch-1 columns come",
        "from the per-epoch metrics; 'test (best)' is the checkpoint with the lowest validation loss.",
        f"Ours: mean over {seeds} seed(s)"
        + (", [95% Student-t interval]" if seeds > 1 else "; one seed gives no interval")
        + ".",
        f"Throughput is at the training shape (seq_len {train_seq_len}): geometric mean over the benchmark's rounds",
        f"[95% interval]; 'step time vs {baseline}' is the paired ratio of step times (see What it costs).",
        "",
        f"| run | seeds | epochs | train ppl, epoch 1 | valid ppl, epoch 1 | test ppl, epoch 1 | test ppl (best) | tokens/s | step time vs {baseline} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in best.itertuples():
        size, variant = row.size, row.variant
        first = [_with_interval(first_epoch.loc[(size, variant, split)]) for split in ("train", "valid", "test")]
        cost = at_train_shape.reindex([variant]).iloc[0]  # NaN where not timed: '–'
        trained = epochs.loc[(epochs["size"] == size) & (epochs["variant"] == variant), "epoch"].max()
        lines.append(
            f"| ours: {stats.size_label(size, variant, '/')} | {row.seeds} | {trained} | {' | '.join(first)} "
            f"| {_with_interval(row._asdict())} | {_with_interval(cost, 0, TOKENS_PER_S)} | {_time_change(cost)} |"
        )
    for variant, ref in COURSE_NUMBERS.items():
        relative = timings.percent_change(COURSE_NUMBERS["dot"]["iters_per_s"] / ref["iters_per_s"])
        lines.append(
            f"| reference: {variant} | 1 | {COURSE_EPOCHS} | {ref['train_ppl_1']} | {ref['valid_ppl_1']} "
            f"| {ref['test_ppl_1']} | {_fmt(ref['test_ppl_final'])} | {_fmt(ref['iters_per_s'] * COURSE_BATCH_SIZE * COURSE_SEQ_LEN, 0)} "
            f"| {relative} (one run, no interval) |"
        )
    lines += ["", f"Reference: {COURSE_SETUP}", ""]
    if sized:
        lines += ["Sizes are trained, evaluated and compared each on its own; the benchmark's throughput is the",
                  "model section's, so it is left out of the sizes' rows.", ""]  # fmt: skip
    lines += ["## Paired comparison", ""]
    if len(verdicts):
        lines += [
            "Each variant against the baseline trained from the same seeds (same initial weights, same data",
            "order); test numbers of the best checkpoints; paired Student-t interval over seeds.",
        ]
        if verdicts["tests"].max() > 1:
            lines += [
                f"'Significant' is by Holm's method (Holm 1979) over the {verdicts['tests'].max()} paired t-tests below in test",
                "loss, and again over those in test perplexity (every kind against the baseline at every size): in",
                f"each metric, the chance of any false 'significant' stays under {stats.ALPHA:.0%}. Each interval is its own.",
            ]
        lines += [""]  # fmt: skip
        for size, rows in verdicts.groupby("size", sort=False):
            if sized:
                parameters = losses.loc[losses["size"] == size, "parameters"]
                lines += [f"### {markdown_text(size)}: {parameters.min():,} parameters", ""]
            lines += [f"- {stats.verdict(row)}" for _, row in rows.iterrows()] + [""]
        lines.pop()
    else:
        lines.append("No variant to pair with dot: add dot and another kind to `variants`.")
    return "\n".join(lines) + "\n\n" + costs_markdown(costs) + "\n" + targets_markdown(targets)


def _time_change(cost) -> str:
    """'+4.1% [+2.0%, +6.3%]: slower' from a compare_timings row."""
    if pd.isna(cost["ratio"]):
        return "–"
    if cost["verdict"] == "baseline":
        return "baseline"
    verdict = "" if pd.isna(cost["ratio_low"]) else f": {cost['verdict']}"
    return _with_interval(cost, keys=("ratio", "ratio_low", "ratio_high"), show=timings.percent_change) + verdict


def costs_markdown(costs: pd.DataFrame) -> str:
    """What it costs (compare_timings' rows): the method, the verdict sentences, then the table."""
    first = costs.iloc[0]
    busy = int(first.get("busy_rounds", 0))
    rounds = int(first.get("rounds_run", costs["rounds"].max() + busy))
    left_out = f" Left out, the CPU busy with another process: {busy} of them." if busy else ""
    lines = [
        "## What it costs",
        "",
        f"Each of {rounds} rounds timed every kind once per shape, in a rotated order, each in a fresh process",
        f"({first['warmup_steps']} warm-up and {first['timed_steps']} timed calls; the median of the timed ones); rounds pair the kinds.{left_out}",
        "Times are geometric means over rounds; a ratio's 95% interval is the Student-t interval of the mean log",
        "ratio. Verdicts: 'slower'/'faster' when the interval excludes 1; 'no measurable difference' when it lies",
        f"within [1/(1 + m), 1 + m] for m = {100 * first['margin']:g}% (benchmark.margin; a log-scale margin); else",
        f"'inconclusive'. Fewer than {timings.MIN_ROUNDS} kept rounds are too few to tell.",
        "",
    ]
    costs = costs.sort_values(["measure", "seq_len"], ascending=[False, True], kind="stable")
    lines += [f"- {timings.cost_sentence(row)}" for _, row in costs[costs["kind"] != costs["baseline"]].iterrows()]
    lines += [
        "",
        "| kind | vs | seq_len | measure | ms [95% CI] | tokens/s | time vs [95% CI] | peak memory MiB | memory vs | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in costs.iterrows():
        ms = _with_interval(row, 2, ("ms", "ms_low", "ms_high")) if row["rounds"] >= 2 else _fmt(row["ms"], 2)
        memory = timings.percent_change(row["memory_ratio"]) if row["measure"] == "step" else "–"
        lines.append(
            f"| {row['kind']} | {row['baseline']} | {row['seq_len']} | {row['measure']} | {ms} "
            f"| {_fmt(row.get('tokens_per_s'), 0)} | {_time_change(row)} "
            f"| {_fmt(row['peak_memory_mib'] if row['measure'] == 'step' else None, 0)} | {memory} | {row['status']} |"
        )
    lines += ["", f"Device: {', '.join(map(str, costs['device'].dropna().unique()))}, {first['dtype']}, batch {first['batch_size']}, "
              f"torch {first['torch']}, triton {first['triton']}; attention op at {first['attention_shape']} (batch x heads x "
              f"seq_len x head_dim at seq_len {first['seq_len']}), attention dropout {first['attention_dropout']}; "
              f"memory is {first['memory_kind']}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def targets_markdown(targets: pd.DataFrame) -> str:
    """At equal cost (to_target's rows): the method, then a sentence per variant (a list per size)."""
    baseline = targets["baseline"].iloc[0]
    lines = [
        "## At equal cost",
        "",
        f"The target is, seed by seed, {baseline}'s best validation loss on its validation curve (train.eval_every;",
        "each epoch's end without it). A variant's steps to reach it are interpolated linearly between evaluations;",
        "one that does not reach it within the run is 'not reached', never extrapolated. Ratios to",
        f"{baseline}'s steps and model FLOPs are geometric means over paired seeds with 95% Student-t intervals on",
        "the log scale; the training time multiplies the steps ratio by the benchmark's step-time ratio at the",
        "training shape (independent measurements: their log variances add). Verdicts as for the costs: 'more' /",
        "'less' time when the interval excludes 1, 'no measurable difference' within the benchmark's margin,",
        "else 'inconclusive'; 'not timed' where the benchmark did not time the variant at this shape.",
        "",
    ]
    for size, rows in targets[targets["kind"] != baseline].groupby("size", sort=False):
        if size:
            lines += [f"### {markdown_text(size)}", ""]
        lines += [f"- {to_target.sentence(row)}" for _, row in rows.iterrows()] + [""]
    return "\n".join(lines)


# The attention statistics summary.md compares with the baseline's, and how its sentences name them.
ATTENTION_COMPARED = {
    "entropy": "attention entropy (nats)",
    "distance": "attention distance (tokens)",
    "first_share": "first-token share",
}


def attention_markdown(means: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """What each kind attends to: per size, each kind's means over seeds (`means`: attention_stats'
    statistics per size, variant and seed), then stats.paired_means' verdicts (`comparisons`)."""
    statistics = [column for column in means.columns if column not in ("size", "variant", "seed")]
    lines = [
        "## What each kind attends to",
        "",
        "Attention weights read from each best checkpoint on fixed test windows at the training length (dropout",
        "off), averaged over every query position of every window, then over layers and heads: entropy in nats,",
        "distance sum_j w_ij (i - j) in tokens, the first token's share w_i0 and the previous token's w_i,i-1.",
        "Mean over seeds [95% interval]; each kind paired with the baseline by seed as in the losses, 'significant'",
        "by Holm's method over the kinds and sizes of each statistic.",
        "",
    ]
    for size, runs in means.groupby("size", sort=False):
        if size:
            lines += [f"### {markdown_text(size)}", ""]
        lines += [f"| kind | seeds | {' | '.join(statistics)} |", "|---|---|" + "---|" * len(statistics)]
        for variant, group in runs.groupby("variant", sort=False):
            cells = [_with_interval(stats.mean_interval(group[name]), 3) for name in statistics]
            lines.append(f"| {markdown_text(variant)} | {len(group)} | {' | '.join(cells)} |")
        lines.append("")
        compared = comparisons[comparisons["size"] == size]
        lines += [
            f"- {stats.verdict(row, what=ATTENTION_COMPARED[row['metric']], digits=3)}"
            for _, row in compared.iterrows()
        ]
        lines += [""] if len(compared) else []
    return "\n".join(lines)
