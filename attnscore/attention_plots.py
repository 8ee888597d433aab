"""The figures of what each kind attends to, from the attention step's tables and maps: a row of
panels per (size, kind), one colour scale per statistic across them all, so kinds compare by colour."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import PowerNorm

from attnscore import stats
from attnscore.plots import draw_means, plain_title, save  # and the Agg backend, before any figure

HEAD_STATISTICS = {"entropy": "entropy (nats)", "distance": "distance (tokens back)"}


def plot_heads(heads: pd.DataFrame, paths) -> None:
    """Per (size, kind), layer x head maps of entropy and distance, mean over seeds (`heads`: the
    attention step's tables with size, variant and seed columns)."""
    kinds = list(dict.fromkeys(zip(heads["size"], heads["variant"], strict=True)))
    means = heads.groupby(["size", "variant", "layer", "head"], sort=False)[list(HEAD_STATISTICS)].mean()
    fig, axes = plt.subplots(len(kinds), 2, figsize=(9, 1.2 + 1.8 * len(kinds)), squeeze=False, layout="constrained")
    for column, (name, label) in enumerate(HEAD_STATISTICS.items()):
        low, high = means[name].min(), means[name].max()
        for row, (size, variant) in enumerate(kinds):
            grid = means.loc[(size, variant), name].unstack("head")
            ax = axes[row, column]
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
    for row, ((size, variant), array) in enumerate(maps.items()):
        kind = plain_title(stats.size_label(size, variant, "/"))
        for column, title in enumerate(("first layer", "last layer")):
            ax = axes[row, column]
            image = ax.imshow(array[column], norm=PowerNorm(0.5, vmin=0, vmax=high), cmap="magma")
            ax.set(title=f"{kind}: {title}", xlabel="key position j", ylabel="query position i")
    fig.colorbar(image, ax=axes, label="weight w_ij (mean over heads)", shrink=0.6)
    save(fig, paths, "Attention on the first test window (first seed)")


def plot_layers(heads: pd.DataFrame, seq_len: int, paths) -> None:
    """Entropy against layer, a panel per size, per kind the mean over heads then seeds; dotted: uniform."""
    sizes = list(dict.fromkeys(heads["size"]))
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4), squeeze=False)
    per_layer = heads.groupby(["size", "variant", "seed", "layer"], sort=False)["entropy"].mean().reset_index()
    uniform = np.mean(np.log(np.arange(1, seq_len + 1)))
    for ax, size in zip(axes[0], sizes, strict=True):
        of_size = per_layer[per_layer["size"] == size]
        draw_means(ax, stats.over_seeds(of_size, ["variant", "layer"], ["entropy"]), "layer", marker="o")
        ax.axhline(uniform, color="grey", linestyle=":", label="uniform over the past")
        ax.set(title=plain_title(size), xlabel="layer", ylabel="entropy (nats, mean over heads)")
        ax.set_xticks(sorted(of_size["layer"].unique()))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    save(fig, paths, "Attention entropy by layer")
