from pathlib import Path

from attnscore.corpora import SPLITS
from attnscore.files import log_to
from attnscore.tokenizer import tokenize_corpus

corpus, kind = snakemake.params.corpus, snakemake.params.tokenizer
with log_to(snakemake.log[0]):
    meta = tokenize_corpus(
        text_files={split: snakemake.input[split] for split in SPLITS},
        out=dict(snakemake.output.items()),
        kind=kind,
        bpe_dir=Path(snakemake.input.vocab_bpe).parent if kind == "gpt2" else None,
        vocab_size=snakemake.params.vocab_size,
        release=corpus if corpus.startswith("wikitext") else None,
    )
    print(meta)
