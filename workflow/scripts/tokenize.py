from pathlib import Path

from attnscore.corpora import SPLITS
from attnscore.io import log_to
from attnscore.tokenizer import tokenize_corpus

data, tok = snakemake.params.data, snakemake.params.tokenizer
with log_to(snakemake.log[0]):
    meta = tokenize_corpus(
        text_files={split: snakemake.input[split] for split in SPLITS},
        out=dict(snakemake.output.items()),
        kind=tok["kind"],
        bpe_dir=Path(snakemake.input.vocab_bpe).parent if tok["kind"] == "gpt2" else None,
        vocab_size=tok["vocab_size"],
        release=data["corpus"] if data["corpus"].startswith("wikitext") else None,
    )
    print(meta)
