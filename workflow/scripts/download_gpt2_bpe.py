from pathlib import Path

from attnscore.files import log_to
from attnscore.tokenizer import download_gpt2_bpe

with log_to(snakemake.log[0]):
    download_gpt2_bpe(Path(snakemake.output[0]).parent)
