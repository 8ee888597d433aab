from attnscore import stats
from attnscore.files import log_to, write_csv

out = snakemake.output
with log_to(snakemake.log[0]):
    runs = [tuple(run) for run in snakemake.params.runs]
    epochs, best_runs = stats.load_runs(
        dict(zip(runs, snakemake.input.metrics, strict=True)), dict(zip(runs, snakemake.input.evals, strict=True))
    )
    paired = stats.paired_summary(stats.paired_differences(best_runs, snakemake.params.baseline))
    for table, path in [
        (best_runs, out.runs),
        (stats.per_epoch(epochs), out.epochs),
        (stats.best_checkpoints(best_runs), out.best),
        (paired, out.paired),
    ]:
        write_csv(table, path)
