from pathlib import Path

from attnscore.corpora import demo_corpus
from attnscore.io import log_to

with log_to(snakemake.log[0]):
    demo_corpus(Path(snakemake.output[0]).parent)
