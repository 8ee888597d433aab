import pandas as pd

from attnscore import timings
from attnscore.files import log_to, write_csv
from attnscore.kinds import CONTROLS

out = snakemake.output
with log_to(snakemake.log[0]):
    measurements = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
    comparisons = timings.compare_timings(measurements, snakemake.params.baseline, snakemake.params.margin, CONTROLS)
    write_csv(measurements, out.measurements)
    write_csv(comparisons, out.comparisons)
    for _, row in comparisons[comparisons["kind"] != comparisons["baseline"]].iterrows():
        print(timings.cost_sentence(row))
