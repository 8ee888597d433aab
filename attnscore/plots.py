"""Figures and the Markdown summary, from the compare step's tables and the benchmark files."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402

from attnscore import stats  # noqa: E402
from attnscore.io import atomic_path  # noqa: E402

# The course report this project reproduces (16 GB NVIDIA A4000, fp16 autocast, GPT-2 BPE,
# d_model 512, 6 layers, 8 heads, seq_len 512, batch 8, Adam lr 1e-5, 20 epochs).
REFERENCE = {
    "dot": {"train_ppl_1": 484, "valid_ppl_1": 245, "test_ppl_1": 233, "test_ppl_final": 170.7, "iters_per_s": 7.5},
    "euclid": {"train_ppl_1": 485, "valid_ppl_1": 249, "test_ppl_1": 236, "test_ppl_final": None, "iters_per_s": 6.3},
}
REFERENCE_TOKENS_PER_ITER = 8 * 512
LINESTYLES = ["-", "--", ":", "-."]


def throughput_table(paths) -> pd.DataFrame:
    """Benchmark rows of every variant and seq_len, with tokens/s relative to dot at the same
    seq_len (vs_dot_pct: -16 means 16% slower) and peak memory relative to dot's."""
    table = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    for column in ("tokens_per_s", "peak_memory_mib", "mfu"):
        if column not in table:
            table[column] = float("nan")  # every shape of a variant failed
    dot = table[table["variant"] == "dot"].set_index("seq_len")
    table["vs_dot_pct"] = 100 * (table["tokens_per_s"] / table["seq_len"].map(dot["tokens_per_s"]) - 1)
    table["memory_vs_dot_pct"] = 100 * (table["peak_memory_mib"] / table["seq_len"].map(dot["peak_memory_mib"]) - 1)
    return table


def save(fig, paths) -> None:
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)


def plot_perplexity(epochs: pd.DataFrame, paths, title: str) -> None:
    """Train, valid and test perplexity per epoch, one panel each: per variant the mean over
    seeds with its shaded 95% interval (a plain line for one seed); log scale."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
    for ax, split in zip(axes, ("train", "valid", "test"), strict=True):
        rows = epochs[epochs["split"] == split]
        for i, (variant, line) in enumerate(rows.groupby("variant", sort=False)):
            seeds = line["seeds"].max()
            label = variant if seeds == 1 else f"{variant} (mean of {seeds} seeds, 95% CI)"
            drawn = ax.plot(line["epoch"], line["mean"], LINESTYLES[i % len(LINESTYLES)], marker="o", ms=3, label=label)
            ax.fill_between(line["epoch"], line["ci_low"], line["ci_high"], color=drawn[0].get_color(), alpha=0.2)
        ax.set(title=split, xlabel="epoch", yscale="log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("perplexity")
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    save(fig, paths)


def plot_paired(differences: pd.DataFrame, summary: pd.DataFrame, paths, title: str) -> None:
    """Per variant, each seed's difference from the baseline run of the same seed (dots, labelled
    by seed) and their mean with its 95% interval (bar), in test loss and test perplexity."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    variants = list(dict.fromkeys(differences["variant"]))
    for ax, metric, ylabel in zip(
        axes,
        ("test_loss", "test_ppl"),
        ("test loss difference (nats/token)", "test perplexity difference"),
        strict=True,
    ):
        ax.axhline(0, color="gray", lw=1)
        for x, variant in enumerate(variants):
            points = differences[differences["variant"] == variant]
            ax.scatter([x - 0.15] * len(points), points[metric], s=18, color="C0", zorder=3)
            for point in points.itertuples():
                ax.annotate(f"seed {point.seed}", (x - 0.15, getattr(point, metric)), xytext=(-4, 0),
                            textcoords="offset points", ha="right", va="center", fontsize="x-small")  # fmt: skip
            row = summary[(summary["variant"] == variant) & (summary["metric"] == metric)].iloc[0]
            error = [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]] if row["seeds"] >= 2 else None
            ax.errorbar([x + 0.15], [row["mean"]], yerr=error, fmt="D", color="C3", capsize=6, label="mean, 95% CI")
        baseline = differences["baseline"].iloc[0] if len(differences) else "dot"
        ax.set(xticks=range(len(variants)), xticklabels=[f"{v} - {baseline}" for v in variants], ylabel=ylabel)
        ax.set_xlim(-0.8, max(len(variants), 1) - 0.2)
        if not variants:
            ax.text(0.5, 0.5, "no variant to pair with the baseline", transform=ax.transAxes, ha="center")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles[:1], labels[:1], loc="best", fontsize="small")
    fig.suptitle(title)
    save(fig, paths)


def plot_throughput(table: pd.DataFrame, paths, title: str) -> None:
    """Training tokens/s and peak memory per variant, grouped by seq_len; failed shapes marked."""
    variants, seq_lens = list(dict.fromkeys(table["variant"])), sorted(set(table["seq_len"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        rows = table[table["variant"] == variant].set_index("seq_len").reindex(seq_lens)
        positions = [j + (i - (len(variants) - 1) / 2) * width for j in range(len(seq_lens))]
        for ax, column in zip(axes, ("tokens_per_s", "peak_memory_mib"), strict=True):
            bars = ax.bar(positions, rows[column].fillna(0), width, label=variant)
            if column == "tokens_per_s":
                labels = [
                    "failed" if pd.isna(t) else f"{t:,.0f}\n{r:+.0f}%"
                    for t, r in zip(rows[column], rows["vs_dot_pct"], strict=True)
                ]
            else:
                labels = ["" if pd.isna(m) else f"{m / 1024:.1f} GiB" for m in rows[column]]
            ax.bar_label(bars, labels=labels, fontsize="x-small")
    first = table.dropna(subset=["device"]).iloc[0] if table["device"].notna().any() else table.iloc[0]
    for ax, ylabel in zip(
        axes, ("training tokens/s (vs dot)", f"peak memory, MiB ({first.get('memory_kind', '')})"), strict=True
    ):
        ax.set(xticks=range(len(seq_lens)), xticklabels=[f"seq_len {t}" for t in seq_lens], ylabel=ylabel)
        ax.margins(y=0.3)
    axes[0].legend(loc="upper left", ncol=len(variants))
    fig.suptitle(f"{title}: {first.get('device', '')}, {first.get('dtype', '')}, batch {first['batch_size']}")
    save(fig, paths)


def _fmt(value, digits=1, style=""):
    """A number for a table: '-' when missing; style '%' or '%+' appends a percent sign (with sign)."""
    if value is None or pd.isna(value):
        return "–"
    if style:
        return f"{value:{'+' if style == '%+' else ''},.{digits}f}%"
    return f"{value:,.{digits}f}"


def _with_interval(row, digits=1) -> str:
    """'102.0 [99.1, 104.9]' for several seeds, '102.0' for one."""
    if row is None:
        return "–"
    if row["seeds"] < 2:
        return _fmt(row["mean"], digits)
    return f"{_fmt(row['mean'], digits)} [{_fmt(row['ci_low'], digits)}, {_fmt(row['ci_high'], digits)}]"


def summary_markdown(
    epochs: pd.DataFrame,
    best: pd.DataFrame,
    paired: pd.DataFrame,
    table: pd.DataFrame,
    data_name: str,
    train_seq_len: int,
) -> str:
    """Our numbers (mean and 95% interval over seeds) beside the reference report's, the paired
    verdicts against dot, then the full throughput table, as Markdown."""
    at_train_shape = table[table["seq_len"] == train_seq_len].set_index("variant")
    first_epoch = epochs[epochs["epoch"] == 1].set_index(["variant", "split"])
    seeds = int(best["seeds"].max())
    lines = [
        f"# Results: {data_name}",
        "",
        "Perplexities are token-weighted (exp of total NLL over predicted tokens). Epoch-1 columns come",
        "from the per-epoch metrics; 'test (best)' is the checkpoint with the lowest validation loss.",
        f"Ours: mean over {seeds} seed(s)"
        + (", [95% Student-t interval]" if seeds > 1 else "; one seed gives no interval")
        + ".",
        f"Throughput is at the training shape (seq_len {train_seq_len}); 'vs dot' is tokens/s relative to dot's.",
        "",
        "| run | seeds | epochs | train ppl, epoch 1 | valid ppl, epoch 1 | test ppl, epoch 1 | test ppl (best) | it/s | tokens/s | vs dot |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in best.itertuples():
        variant = row.variant
        first = {split: first_epoch.loc[(variant, split)] for split in ("train", "valid", "test")}
        bench = at_train_shape.loc[variant] if variant in at_train_shape.index else pd.Series(dtype=float)
        trained = epochs.loc[epochs["variant"] == variant, "epoch"].max()
        lines.append(
            f"| ours: {variant} | {row.seeds} | {trained} | {_with_interval(first['train'])} | {_with_interval(first['valid'])} "
            f"| {_with_interval(first['test'])} | {_with_interval(row._asdict())} | {_fmt(bench.get('iters_per_s'), 2)} "
            f"| {_fmt(bench.get('tokens_per_s'), 0)} | {_fmt(bench.get('vs_dot_pct'), 1, '%+')} |"
        )
    for variant, ref in REFERENCE.items():
        relative = 100 * (ref["iters_per_s"] / REFERENCE["dot"]["iters_per_s"] - 1)
        lines.append(
            f"| reference: {variant} | 1 | 20 | {ref['train_ppl_1']} | {ref['valid_ppl_1']} | {ref['test_ppl_1']} "
            f"| {_fmt(ref['test_ppl_final'])} | {ref['iters_per_s']} | {ref['iters_per_s'] * REFERENCE_TOKENS_PER_ITER:,.0f} "
            f"| {relative:+.1f}% |"
        )
    lines += ["", "Reference: 16 GB NVIDIA A4000, fp16 autocast, batch 8 x 512, WikiText-2, 20 epochs, one run.", ""]
    lines += ["## Paired comparison", ""]
    if len(paired):
        lines += ["Each variant against the baseline trained from the same seeds (same initial weights, same data",
                  "order); test numbers of the best checkpoints; paired Student-t interval over seeds.", ""]  # fmt: skip
        lines += [f"- {stats.verdict(row)}" for _, row in paired.iterrows()]
    else:
        lines.append("No variant to pair with dot: add dot and another kind to `variants`.")
    return "\n".join(lines) + "\n\n" + throughput_markdown(table)


def throughput_markdown(table: pd.DataFrame) -> str:
    """The throughput table (from throughput_table) as a Markdown section."""
    lines = [
        "## Training throughput",
        "",
        "Mean over the timed steps after the warm-up steps (median, min and max step times in throughput.csv);",
        "MFU uses model FLOPs (attnscore.model.training_flops_per_token) over the device's dense bf16/fp16 peak.",
        "",
        "| variant | seq_len | tokens/s | vs dot | step ms (median) | MFU | peak memory MiB | memory vs dot | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table.sort_values(["seq_len"], kind="stable").itertuples():
        lines.append(
            f"| {row.variant} | {row.seq_len} | {_fmt(row.tokens_per_s, 0)} | {_fmt(row.vs_dot_pct, 1, '%+')} "
            f"| {_fmt(getattr(row, 'step_ms_median', None), 0)} | {_fmt(row.mfu * 100 if pd.notna(row.mfu) else None, 1, '%')} "
            f"| {_fmt(row.peak_memory_mib, 0)} | {_fmt(row.memory_vs_dot_pct, 1, '%+')} | {row.status} |"
        )
    devices = table.dropna(subset=["device"]) if "device" in table else table.iloc[:0]
    if len(devices):
        first = devices.iloc[0]
        lines += ["", f"Device: {first['device']}, {first['dtype']}, batch {first['batch_size']}, torch {first['torch']}; "
                  f"{first['warmup_steps']} warm-up + {first['timed_steps']} timed steps; memory is {first['memory_kind']}."]  # fmt: skip
    return "\n".join(lines) + "\n"
