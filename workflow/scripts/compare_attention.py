import numpy as np
import pandas as pd

from attnscore import plots, stats
from attnscore.files import log_to, write_csv
from attnscore.summary import ATTENTION_COMPARED

inp, out = snakemake.input, snakemake.output
with log_to(snakemake.log[0]):
    runs = [tuple(run) for run in snakemake.params.runs]
    heads = pd.concat(
        [
            pd.read_csv(path).assign(size=size, variant=variant, seed=seed)
            for (size, variant, seed), path in zip(runs, inp.statistics, strict=True)
        ],
        ignore_index=True,
    )
    statistics = heads.columns.drop(["layer", "head", "size", "variant", "seed"])
    means = heads.groupby(["size", "variant", "seed"], sort=False)[list(statistics)].mean().reset_index()
    paired = stats.paired_means(means, snakemake.params.baseline, ATTENTION_COMPARED)
    for _, row in paired.iterrows():
        print(stats.verdict(row, what=ATTENTION_COMPARED[row["metric"]], digits=3))
    write_csv(means, out.runs)
    write_csv(paired, out.paired)
    plots.plot_heads(heads, [out.heads_png, out.heads_svg])
    first_seed = {(size, variant): np.load(path) for (size, variant, seed), path in zip(runs, inp.maps, strict=True)
                  if seed == runs[0][2]}  # fmt: skip
    plots.plot_maps(first_seed, [out.maps_png, out.maps_svg])
    plots.plot_layers(heads, snakemake.params.seq_len, [out.layers_png, out.layers_svg])
