"""The figures, one function each, from the compare step's tables and the benchmark's
comparisons (summary.py writes the text beside them). The tables carry a size column
(stats.size_label); figures of runs draw one row of panels per size. The attention figures draw
a row of panels per (size, kind), one colour scale per statistic across them all, so kinds
compare by colour."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402

from attnscore import stats, timings  # noqa: E402
from attnscore.files import atomic_path  # noqa: E402

LINESTYLES = ["-", "--", ":", "-."]
HEAD_STATISTICS = {"entropy": "entropy (nats)", "distance": "distance (tokens back)"}


def plain_title(text: str) -> str:
    """Text for a matplotlib title, shown as written: a $ would start mathtext."""
    return text.replace("$", r"\$")


def save(fig, paths, title: str) -> None:
    """The figure under `title` into each of `paths` (the format by suffix)."""
    fig.suptitle(plain_title(title))
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)


def draw_means(ax, points: pd.DataFrame, x: str, spread="95% CI", **style) -> None:
    """Per variant of `points` (columns variant, seeds, mean, ci_low, ci_high), the i-th in the i-th
    colour and line style: its mean over seeds against column x, its spread shaded."""
    for i, (variant, line) in enumerate(points.groupby("variant", sort=False)):
        if line[x].isna().all():  # nothing to draw (plot_to_target's time where the step is not timed)
            continue
        line, seeds = line.sort_values(x), line["seeds"].max()
        label = variant if seeds == 1 else f"{variant} (mean of {seeds} seeds, {spread})"
        ax.plot(line[x], line["mean"], LINESTYLES[i % len(LINESTYLES)], color=f"C{i}", label=label, **style)
        ax.fill_between(line[x], line["ci_low"], line["ci_high"], color=f"C{i}", alpha=0.2)


def size_rows(table: pd.DataFrame, columns: int, width: float, **options):
    """A figure with a row of `columns` panels per size in `table`: (figure, [(size, panels)])."""
    sizes = list(dict.fromkeys(table["size"]))
    fig, axes = plt.subplots(len(sizes), columns, figsize=(width, 4 * len(sizes)), squeeze=False, **options)
    return fig, list(zip(sizes, axes, strict=True))


def plot_perplexity(epochs: pd.DataFrame, paths, title: str) -> None:
    """Train, valid and test perplexity per epoch (stats.per_epoch), a panel each, a row per size; log scale."""
    fig, rows = size_rows(epochs, 3, 12, sharey=True)
    for size, axes in rows:
        for ax, split in zip(axes, ("train", "valid", "test"), strict=True):
            points = epochs[(epochs["size"] == size) & (epochs["split"] == split)]
            draw_means(ax, points, "epoch", marker="o", ms=3)
            ax.set(title=stats.size_label(plain_title(size), split), xlabel="epoch", yscale="log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(ScalarFormatter())
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("perplexity")
    rows[0][1][0].legend(fontsize="small")
    save(fig, paths, title)


def plot_training(steps: pd.DataFrame, paths, title: str) -> None:
    """Each logged measure (stats.per_step) against the optimizer step, a panel each; dotted: epochs' ends."""
    panels = [
        ("train_loss", "training loss (nats/token, interval mean)", "linear"),
        ("grad_norm", "gradient norm before clipping", "log"),
        ("lr", "learning rate", "linear"),
    ]
    fig, rows = size_rows(steps, 3, 15, layout="constrained")
    epoch_ends = steps.groupby("epoch")["step"].max()
    for size, axes in rows:
        for ax, (measure, ylabel, scale) in zip(axes, panels, strict=True):
            points = steps[(steps["size"] == size) & (steps["measure"] == measure)]
            draw_means(ax, points, "step", lw=1.2)
            for end in epoch_ends.iloc[:-1]:
                ax.axvline(end, color="gray", lw=0.8, ls=":")
            ax.set(title=plain_title(size), xlabel="optimizer step", ylabel=ylabel, yscale=scale)
            ax.grid(True, which="both", alpha=0.3)
        axes[2].set_ylim(bottom=0)  # the schedule's shape: warm-up from near 0, a constant or a decay
    rows[0][1][0].legend(fontsize="small")
    save(fig, paths, title)


def plot_paired(runs: pd.DataFrame, summary: pd.DataFrame, baseline: str, paths, title: str) -> None:
    """Per variant (a row per size), each seed's difference from the baseline's run of that seed (dots)
    and their mean with its 95% interval (bar), in test loss and test perplexity."""
    panels = {"test_loss": "test loss difference (nats/token)", "test_ppl": "test perplexity difference"}
    summary = summary.set_index(["size", "variant", "metric"])
    fig, rows = size_rows(runs, 2, 10)
    for size, axes in rows:
        differences = stats.paired_differences(runs[runs["size"] == size], baseline)
        variants = list(dict.fromkeys(differences["variant"]))
        for ax, (metric, ylabel) in zip(axes, panels.items(), strict=True):
            ax.axhline(0, color="gray", lw=1)
            for x, (variant, points) in enumerate(differences.groupby("variant", sort=False)):
                ax.scatter([x - 0.15] * len(points), points[metric], s=18, color="C0", zorder=3)
                for point in points.itertuples():
                    ax.annotate(f"seed {point.seed}", (x - 0.15, getattr(point, metric)), xytext=(-4, 0),
                                textcoords="offset points", ha="right", va="center", fontsize="x-small")  # fmt: skip
                row = summary.loc[(size, variant, metric)]
                error = [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]] if row["seeds"] >= 2 else None
                ax.errorbar([x + 0.15], [row["mean"]], yerr=error, fmt="D", color="C3", capsize=6, label="mean, 95% CI")
            ax.set(xticks=range(len(variants)), xticklabels=[f"{v} - {baseline}" for v in variants], ylabel=ylabel)
            ax.set(title=plain_title(size), xlim=(-0.8, max(len(variants), 1) - 0.2))
            if not variants:
                ax.text(0.5, 0.5, "no variant to pair with the baseline", transform=ax.transAxes, ha="center")
    handles, labels = rows[0][1][0].get_legend_handles_labels()
    if handles:
        rows[0][1][0].legend(handles[:1], labels[:1], loc="best", fontsize="small")
    save(fig, paths, title)


def plot_scaling(losses: pd.DataFrame, verdicts: pd.DataFrame, baseline: str, paths, title: str) -> None:
    """Against the parameter count, a line per variant through its sizes: the best checkpoints' test loss
    (stats.per_size) and the paired difference from the baseline's (filled where significant). A
    variant's points move a little sideways, so that intervals at one size do not hide each other."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
    differences = verdicts[verdicts["metric"] == "test_loss"].merge(losses[["size", "variant", "parameters"]])
    variants = list(dict.fromkeys(losses["variant"]))
    for i, variant in enumerate(variants):
        shift = 1.03 ** (i - (len(variants) - 1) / 2)
        style = dict(color=f"C{i}", ls=LINESTYLES[i % len(LINESTYLES)], marker="o", mfc="white", capsize=3)
        for ax, points in zip(axes, (losses, differences), strict=True):
            points = points[points["variant"] == variant].sort_values("parameters")
            if points.empty:  # the baseline, in the differences
                continue
            error = [(points["mean"] - points["ci_low"]).fillna(0), (points["ci_high"] - points["mean"]).fillna(0)]
            ax.errorbar(points["parameters"] * shift, points["mean"], yerr=error, label=variant, **style)
        held = differences[(differences["variant"] == variant) & differences["significant"].eq(True)]  # None: untested
        axes[1].scatter(held["parameters"] * shift, held["mean"], color=f"C{i}", zorder=3)
    axes[1].axhline(0, color="gray", lw=1)
    axes[0].set(ylabel="test loss of the best checkpoint (nats/token)", title="mean over seeds, 95% CI")
    axes[1].set(ylabel=f"test loss minus {baseline}'s of the same seed (nats/token)",
                title="paired difference, 95% CI; filled: significant after Holm's adjustment")  # fmt: skip
    for ax in axes:
        ax.set(xscale="log", xlabel="parameters")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    save(fig, paths, title)


def plot_costs(costs: pd.DataFrame, paths, title: str) -> None:
    """Per kind and seq_len: training tokens/s and the attention op's time (95% interval, the verdict
    against the baseline on each bar), and the step's peak memory; failed shapes marked."""
    costs = costs[costs["baseline"] == timings.cost_baseline(costs)]  # control comparisons are in the summary
    kinds, seq_lens = list(dict.fromkeys(costs["kind"])), sorted(set(costs["seq_len"]))
    first = costs.iloc[0]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    width = 0.8 / len(kinds)
    panels = [
        ("step", "tokens_per_s", "training tokens/s"),
        ("attention", "ms", "attention op, forward + backward (ms)"),
        ("step", "peak_memory_mib", f"peak memory of the step, MiB ({first.get('memory_kind', 'process max RSS')})"),
    ]
    for i, kind in enumerate(kinds):
        positions = [j + (i - (len(kinds) - 1) / 2) * width for j in range(len(seq_lens))]
        for ax, (measure, column, _) in zip(axes, panels, strict=True):
            rows = costs[(costs["kind"] == kind) & (costs["measure"] == measure)].set_index("seq_len").reindex(seq_lens)
            values = rows[column]
            if column == "peak_memory_mib":
                error, labels = None, ["" if pd.isna(m) else f"{m / 1024:.2f} GiB" for m in values]
            else:
                low, high = rows[f"{column}_low"], rows[f"{column}_high"]
                error = [(values - low).fillna(0).clip(lower=0), (high - values).fillna(0).clip(lower=0)]
                labels = [_bar_label(row) for row in rows.itertuples()]
            bars = ax.bar(positions, values.fillna(0), width, yerr=error, capsize=3, label=kind, color=f"C{i}")
            ax.bar_label(bars, labels=labels, fontsize="x-small", padding=2)
    for ax, (*_, ylabel) in zip(axes, panels, strict=True):
        ax.set(xticks=range(len(seq_lens)), xticklabels=[f"seq_len {t}" for t in seq_lens], ylabel=ylabel)
        ax.margins(y=0.35)
    axes[0].legend(loc="upper left", ncol=len(kinds), fontsize="small")
    rounds, busy = int(costs["rounds"].max()), int(first.get("busy_rounds", 0))
    kept = f"{rounds} of {rounds + busy}" if busy else f"{rounds}"
    left_out = f" ({busy} left out: CPU busy)" if busy else ""
    setup = f"{first['device']}, {first['dtype']}, batch {first['batch_size']}"
    verdict = f"time vs {first['baseline']}, verdict at a {100 * first['margin']:g}% margin (log scale)"
    save(fig, paths, f"{title}: {setup}; geometric mean of {kept} interleaved rounds{left_out}, 95% CI; {verdict}")


def _bar_label(row) -> str:
    if pd.isna(row.ms):
        return "not measured:\nCPU busy" if row.status == "ok" else "failed"
    if row.verdict == "baseline":
        return "baseline"
    verdict = row.verdict.replace("no measurable difference", "no difference")
    return f"{timings.percent_change(row.ratio, 0)} time\n{verdict if row.rounds >= timings.MIN_ROUNDS else 'too few rounds'}"


def plot_to_target(curves: pd.DataFrame, targets: pd.DataFrame, step_ms: dict, paths, title: str) -> None:
    """The validation curve against each panel's x, per variant the mean over seeds with their range shaded,
    to_target's target dashed; the time is steps x `step_ms` (variant -> ms), where `targets` has a step cost."""
    panels = [("step", "optimizer step"), ("seconds", "estimated training time (s)"), ("flops", "model FLOPs")]
    fig, rows = size_rows(curves, 3, 15, layout="constrained", sharey="row")
    for size, axes in rows:
        of_size = curves[curves["size"] == size]
        bands = of_size.groupby(["variant", "step"], sort=False, as_index=False).agg(
            seeds=("seed", "nunique"),
            mean=("valid_loss", "mean"),
            ci_low=("valid_loss", "min"),  # the seeds' range
            ci_high=("valid_loss", "max"),
            flops=("flops", "mean"),
        )
        timed = targets[(targets["size"] == size) & targets["step_cost"].notna()]["kind"]
        ms = {kind: step_ms[kind] for kind in timed if kind in step_ms}
        bands["seconds"] = bands["step"] * bands["variant"].map(ms) / 1000  # NaN: not timed
        target = targets[targets["size"] == size].iloc[0]
        for ax, (x, xlabel) in zip(axes, panels, strict=True):
            draw_means(ax, bands, x, "range", lw=1.2)
            ax.axhline(target["target"], color="gray", ls="--", lw=1, label=f"{target['baseline']}'s best (target)")
            ax.set(title=plain_title(size), xlabel=xlabel)
            ax.grid(True, alpha=0.3)
            if x == "seconds" and len(ax.lines) == 1:
                ax.text(0.5, 0.5, "not timed", transform=ax.transAxes, ha="center")
        axes[0].set_ylabel("validation loss (nats/token)")
    rows[0][1][0].legend(fontsize="small")
    save(fig, paths, title)


def plot_heads(heads: pd.DataFrame, paths) -> None:
    """Per (size, kind), layer x head maps of entropy and distance, mean over seeds (`heads`: the
    attention step's tables with size, variant and seed columns)."""
    kinds = list(dict.fromkeys(zip(heads["size"], heads["variant"], strict=True)))
    means = heads.groupby(["size", "variant", "layer", "head"], sort=False)[list(HEAD_STATISTICS)].mean()
    fig, axes = plt.subplots(len(kinds), 2, figsize=(9, 1.2 + 1.8 * len(kinds)), squeeze=False, layout="constrained")
    for column, (name, label) in enumerate(HEAD_STATISTICS.items()):
        low, high = means[name].min(), means[name].max()
        for ax, (size, variant) in zip(axes[:, column], kinds, strict=True):
            grid = means.loc[(size, variant), name].unstack("head")
            image = ax.imshow(grid.to_numpy(), vmin=low, vmax=high, cmap="viridis", aspect="auto")
            ax.set(title=f"{plain_title(stats.size_label(size, variant, '/'))}: {label}", xlabel="head", ylabel="layer")
            ax.set(xticks=range(grid.shape[1]), yticks=range(grid.shape[0]))
        fig.colorbar(image, ax=axes[:, column], label=label)
    seeds = heads.groupby(["size", "variant"])["seed"].nunique().max()
    save(fig, paths, f"Attention per layer and head (mean over {seeds} seed(s))")


def plot_maps(maps: dict, paths) -> None:
    """One test window's weights (mean over heads) in the first and last layer, a row per (size, kind)
    (`maps`: (size, kind) -> (2, queries, keys)); a square-root colour scale, so that small weights show."""
    high = max(float(array.max()) for array in maps.values())
    fig, axes = plt.subplots(len(maps), 2, figsize=(8, 0.6 + 3.6 * len(maps)), squeeze=False, layout="constrained")
    for row, ((size, variant), array) in zip(axes, maps.items(), strict=True):
        kind = plain_title(stats.size_label(size, variant, "/"))
        for ax, layer, title in zip(row, array, ("first layer", "last layer"), strict=True):
            image = ax.imshow(layer, norm=PowerNorm(0.5, vmin=0, vmax=high), cmap="magma")
            ax.set(title=f"{kind}: {title}", xlabel="key position j", ylabel="query position i")
    fig.colorbar(image, ax=axes, label="weight w_ij (mean over heads)", shrink=0.6)
    save(fig, paths, "Attention on the first test window (first seed)")


def plot_layers(heads: pd.DataFrame, seq_len: int, paths) -> None:
    """Entropy against layer, a panel per size, per kind the mean over heads then seeds; dotted: uniform."""
    sizes = heads["size"].nunique()
    fig, axes = plt.subplots(1, sizes, figsize=(5.5 * sizes, 4), squeeze=False)
    per_layer = heads.groupby(["size", "variant", "seed", "layer"], sort=False)["entropy"].mean().reset_index()
    uniform = np.mean(np.log(np.arange(1, seq_len + 1)))
    for ax, (size, of_size) in zip(axes[0], per_layer.groupby("size", sort=False), strict=True):
        draw_means(ax, stats.over_seeds(of_size, ["variant", "layer"], ["entropy"]), "layer", marker="o")
        ax.axhline(uniform, color="grey", linestyle=":", label="uniform over the past")
        ax.set(title=plain_title(size), xlabel="layer", ylabel="entropy (nats, mean over heads)")
        ax.set_xticks(sorted(of_size["layer"].unique()))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    save(fig, paths, "Attention entropy by layer")
