from pathlib import Path

from attnscore import plots
from attnscore.io import atomic_path, log_to

out = snakemake.output
with log_to(snakemake.log[0]):
    variants = snakemake.params.variants
    metrics = plots.load_metrics(dict(zip(variants, snakemake.input.metrics, strict=True)))
    tests = plots.read_test_results(dict(zip(variants, snakemake.input.tests, strict=True)))
    table = plots.throughput_table(snakemake.input.bench)
    name = snakemake.params.data_name
    plots.plot_perplexity(metrics, [out.perplexity_png, out.perplexity_svg], f"Perplexity per epoch: {name}")
    plots.plot_throughput(table, [out.throughput_png, out.throughput_svg], "Training throughput")
    with atomic_path(out.throughput_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out.summary) as tmp:
        Path(tmp).write_text(plots.summary_markdown(metrics, tests, table, name, snakemake.params.train_seq_len))
