from pathlib import Path

from attnscore.data import download_gpt2_bpe
from attnscore.io import log_to

with log_to(snakemake.log[0]):
    download_gpt2_bpe(Path(snakemake.output[0]).parent)
