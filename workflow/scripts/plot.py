import json
from pathlib import Path

import pandas as pd

from attnscore import plots, stats
from attnscore.io import atomic_path, log_to, write_json

inp, out = snakemake.input, snakemake.output
with log_to(snakemake.log[0]):
    runs, epochs, best, paired, comparisons = (
        pd.read_csv(path) for path in (inp.runs, inp.epochs, inp.best, inp.paired, inp.comparisons)
    )
    name = json.loads(snakemake.params.data_name)  # JSON made safe for the report's <script> (config.script_safe)
    plots.plot_perplexity(epochs, [out.perplexity_png, out.perplexity_svg], f"Perplexity per epoch: {name}")
    steps = stats.load_steps(dict(zip(map(tuple, snakemake.params.runs), inp.steps, strict=True)))
    plots.plot_training(stats.per_step(steps), [out.training_png, out.training_svg], f"Training per step: {name}")
    plots.plot_paired(
        stats.paired_differences(runs), paired, [out.paired_png, out.paired_svg], f"Paired by seed: {name}"
    )
    plots.plot_costs(comparisons, [out.throughput_png, out.throughput_svg], "What it costs")
    write_json(snakemake.config, out.made_with)  # what --report compares its config with
    summary = plots.summary_markdown(epochs, best, paired, comparisons, name, snakemake.params.train_seq_len)
    with atomic_path(out.summary) as tmp:
        Path(tmp).write_text(summary)
