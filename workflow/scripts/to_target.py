import pandas as pd

from attnscore import to_target
from attnscore.files import log_to, write_csv

params = snakemake.params
with log_to(snakemake.log[0]):
    curves = pd.concat(
        pd.read_csv(path).assign(size=params.size, variant=variant, seed=seed)
        for (variant, seed), path in zip(params.runs, snakemake.input.curves, strict=True)
    )
    costs = pd.read_csv(snakemake.input.comparisons)
    timed = to_target.step_costs(costs, params.baseline, params.train_seq_len) if params.timed else {}
    table = to_target.to_target(curves, params.baseline, timed, params.margin)
    for _, row in table[table["kind"] != params.baseline].iterrows():
        print(to_target.sentence(row))
    write_csv(table, snakemake.output[0])
