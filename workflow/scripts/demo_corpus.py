from pathlib import Path

from attnscore.corpora import demo_corpus
from attnscore.files import log_to

with log_to(snakemake.log[0]):
    demo_corpus(Path(snakemake.output[0]).parent)
