from pathlib import Path

from attnscore.corpora import download_wikitext
from attnscore.files import log_to

with log_to(snakemake.log[0]):
    source = download_wikitext(snakemake.wildcards.release, Path(snakemake.output[0]).parent)
    print(f"downloaded {snakemake.wildcards.release} from {source}")
