import json
from pathlib import Path

import pandas as pd

from attnscore import plots, stats, summary, to_target
from attnscore.files import atomic_path, log_to, write_csv, write_json

inp, out = snakemake.input, snakemake.output
with log_to(snakemake.log[0]):
    sizes, runs_of_a_size = snakemake.params.sizes, [tuple(run) for run in snakemake.params.runs]

    def of_every_size(paths) -> pd.DataFrame:
        """One compare table of each size (in the order of sizes; "": no sizes) as one, with a size column."""
        tables = [pd.read_csv(path).assign(size=size) for size, path in zip(sizes, paths, strict=True)]
        return pd.concat(tables, ignore_index=True)

    runs, epochs, best, paired = (of_every_size(inp[name]) for name in ("runs", "epochs", "best", "paired"))
    comparisons = pd.read_csv(inp.comparisons)
    name = json.loads(snakemake.params.data_name)  # JSON made safe for the report's <script> (identity.script_safe)
    plots.plot_perplexity(epochs, [out.perplexity_png, out.perplexity_svg], f"Perplexity per epoch: {name}")
    n = len(runs_of_a_size)  # the steps files: every size's runs in turn
    steps = pd.concat(
        stats.per_step(
            stats.load_tables(dict(zip(runs_of_a_size, inp.steps[i * n : (i + 1) * n], strict=True)))
        ).assign(size=size)
        for i, size in enumerate(sizes)
    )
    plots.plot_training(steps, [out.training_png, out.training_svg], f"Training per step: {name}")
    verdicts = stats.with_holm(paired)
    plots.plot_paired(
        runs, verdicts, snakemake.params.baseline, [out.paired_png, out.paired_svg], f"Paired by seed: {name}"
    )
    losses = stats.per_size(runs)
    if "scaling_png" in out.keys():
        plots.plot_scaling(
            losses, verdicts, snakemake.params.baseline, [out.scaling_png, out.scaling_svg], f"Across sizes: {name}"
        )
    else:  # a scaling figure of sizes this config no longer has would read as today's
        for stale in Path(out.perplexity_png).parent.glob("scaling.*"):
            stale.unlink()
    plots.plot_costs(comparisons, [out.throughput_png, out.throughput_svg], "What it costs")
    targets = of_every_size(inp.to_target)
    curves = pd.concat(
        pd.read_csv(path).assign(size=size, variant=variant, seed=seed)
        for (size, (variant, seed)), path in zip(
            [(size, run) for size in sizes for run in runs_of_a_size], inp.curves, strict=True
        )
    )
    step_ms = {kind: cost["ms"] for kind, cost in to_target.step_costs(
        comparisons, snakemake.params.baseline, snakemake.params.train_seq_len).items()}  # fmt: skip
    plots.plot_to_target(curves, targets, step_ms, [out.to_target_png, out.to_target_svg], f"At equal cost: {name}")
    write_json(snakemake.config, out.made_with)  # what --report compares its config with
    write_json(snakemake.params.code, out.made_by)  # and the code, which --report compares too
    write_csv(verdicts[["size", *paired.columns.drop("size"), "p_holm", "tests"]], out.verdicts)
    for _, row in verdicts.iterrows():
        print(stats.size_label(row["size"], stats.verdict(row)))
    text = summary.summary_markdown(
        epochs,
        best,
        verdicts,
        losses,
        comparisons,
        targets,
        data_name=name,
        train_seq_len=snakemake.params.train_seq_len,
    )
    text += "\n" + summary.attention_markdown(
        *(
            pd.read_csv(inp[table], dtype={"size": str}).fillna({"size": ""})
            for table in ("attention_runs", "attention_paired")
        )
    )
    with atomic_path(out.summary) as tmp:
        Path(tmp).write_text(text)
