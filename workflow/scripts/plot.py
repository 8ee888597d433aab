from pathlib import Path

import pandas as pd

from attnscore import plots, stats
from attnscore.io import atomic_path, log_to, write_csv

inp, out = snakemake.input, snakemake.output
with log_to(snakemake.log[0]):
    runs, epochs, best, paired = (pd.read_csv(path) for path in (inp.runs, inp.epochs, inp.best, inp.paired))
    table = plots.throughput_table(inp.bench)
    name = snakemake.params.data_name
    plots.plot_perplexity(epochs, [out.perplexity_png, out.perplexity_svg], f"Perplexity per epoch: {name}")
    plots.plot_paired(
        stats.paired_differences(runs), paired, [out.paired_png, out.paired_svg], f"Paired by seed: {name}"
    )
    plots.plot_throughput(table, [out.throughput_png, out.throughput_svg], "Training throughput")
    write_csv(table, out.throughput_csv)
    summary = plots.summary_markdown(epochs, best, paired, table, name, snakemake.params.train_seq_len)
    with atomic_path(out.summary) as tmp:
        Path(tmp).write_text(summary)
