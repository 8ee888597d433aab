"""Figures and the Markdown summary, from the metrics, test and benchmark files."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402

from attnscore.io import atomic_path  # noqa: E402

# The course report this project reproduces (16 GB NVIDIA A4000, fp16 autocast, GPT-2 BPE,
# d_model 512, 6 layers, 8 heads, seq_len 512, batch 8, Adam lr 1e-5, 20 epochs).
REFERENCE = {
    "dot": {"train_ppl_1": 484, "valid_ppl_1": 245, "test_ppl_1": 233, "test_ppl_final": 170.7, "iters_per_s": 7.5},
    "euclid": {"train_ppl_1": 485, "valid_ppl_1": 249, "test_ppl_1": 236, "test_ppl_final": None, "iters_per_s": 6.3},
}
REFERENCE_TOKENS_PER_ITER = 8 * 512
LINESTYLES = ["-", "--", ":", "-."]


def load_metrics(paths: dict) -> pd.DataFrame:
    """Per-epoch metrics of each variant, stacked with a variant column."""
    return pd.concat([pd.read_csv(path).assign(variant=variant) for variant, path in paths.items()], ignore_index=True)


def throughput_table(paths: dict) -> pd.DataFrame:
    """Benchmark rows of every variant, with each one's tokens/s relative to dot (-16 = 16% slower)."""
    table = pd.concat([pd.read_csv(path) for path in paths.values()], ignore_index=True)
    if "dot" in set(table["variant"]):
        dot = table.loc[table["variant"] == "dot", "tokens_per_s"].iloc[0]
        table["vs_dot_pct"] = 100 * (table["tokens_per_s"] / dot - 1)
    return table


def save(fig, paths) -> None:
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)


def plot_perplexity(metrics: pd.DataFrame, paths, title: str) -> None:
    """Train, valid and test perplexity per epoch, one panel each, one line per variant (log scale)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
    for ax, split in zip(axes, ("train", "valid", "test"), strict=True):
        for i, (variant, rows) in enumerate(metrics.groupby("variant", sort=False)):
            ax.plot(
                rows["epoch"], rows[f"{split}_ppl"], LINESTYLES[i % len(LINESTYLES)], marker="o", ms=3, label=variant
            )
        ax.set(title=split, xlabel="epoch", yscale="log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("perplexity")
    axes[0].legend()
    fig.suptitle(title)
    save(fig, paths)


def plot_throughput(table: pd.DataFrame, paths, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(table["variant"], table["tokens_per_s"], color="tab:purple")
    relative = table["vs_dot_pct"] if "vs_dot_pct" in table else [None] * len(table)
    labels = [
        f"{t:,.0f}" + ("" if r is None else f"\n{r:+.1f}% vs dot")
        for t, r in zip(table["tokens_per_s"], relative, strict=True)
    ]
    ax.bar_label(bars, labels=labels, fontsize="small")
    first = table.iloc[0]
    shape = f"batch {first['batch_size']} x seq_len {first['seq_len']}"
    ax.set(ylabel="training tokens/s", title=f"{title}\n{first['device']}, {first['dtype']}, {shape}")
    ax.margins(y=0.25)
    save(fig, paths)


def _fmt(value, digits=1):
    return "–" if value is None or pd.isna(value) else f"{value:,.{digits}f}"


def summary_markdown(metrics: pd.DataFrame, tests: dict, table: pd.DataFrame, data_name: str) -> str:
    """Our numbers beside the reference report's, as a Markdown document."""
    lines = [
        f"# Results: {data_name}",
        "",
        "Perplexities are token-weighted (exp of total NLL over predicted tokens). Epoch-1 columns come",
        "from the per-epoch metrics; 'test (best)' is the checkpoint with the lowest validation loss.",
        "",
        "| run | epochs | train ppl, epoch 1 | valid ppl, epoch 1 | test ppl, epoch 1 | test ppl (best) | it/s | tokens/s | vs dot |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, rows in metrics.groupby("variant", sort=False):
        first = rows.iloc[0]
        bench = table[table["variant"] == variant].iloc[0]
        lines.append(
            f"| ours: {variant} | {len(rows)} | {_fmt(first.train_ppl)} | {_fmt(first.valid_ppl)} | {_fmt(first.test_ppl)} "
            f"| {_fmt(tests[variant]['perplexity'])} | {_fmt(bench.iters_per_s, 2)} | {_fmt(bench.tokens_per_s, 0)} "
            f"| {bench.get('vs_dot_pct', float('nan')):+.1f}% |"
        )
    for variant, ref in REFERENCE.items():
        relative = 100 * (ref["iters_per_s"] / REFERENCE["dot"]["iters_per_s"] - 1)
        lines.append(
            f"| reference: {variant} | 20 | {ref['train_ppl_1']} | {ref['valid_ppl_1']} | {ref['test_ppl_1']} "
            f"| {_fmt(ref['test_ppl_final'])} | {ref['iters_per_s']} | {ref['iters_per_s'] * REFERENCE_TOKENS_PER_ITER:,.0f} "
            f"| {relative:+.1f}% |"
        )
    bench = table.iloc[0]
    lines += [
        "",
        f"Our throughput: {bench['device']}, {bench['dtype']}, batch {bench['batch_size']} x seq_len {bench['seq_len']}, "
        f"mean over {bench['timed_steps']} timed training steps after {bench['warmup_steps']} warm-up steps. "
        "Reference: 16 GB NVIDIA A4000, fp16 autocast, batch 8 x 512, WikiText-2, 20 epochs.",
        "'vs dot' is the variant's training tokens/s relative to dot's: -16% means 16% slower.",
        "",
    ]
    return "\n".join(lines)


def read_tests(paths: dict) -> dict:
    return {variant: json.loads(open(path).read()) for variant, path in paths.items()}
