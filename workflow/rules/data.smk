rule download_wikitext:
    output:
        **{split: f"resources/{{release}}/{split}.txt" for split in SPLITS},
    log:
        "resources/logs/download_{release}.log",
    wildcard_constraints:
        release="wikitext-2(-raw)?",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_wikitext.py"


rule download_gpt2_bpe:
    output:
        "resources/gpt2-bpe/vocab.bpe",
        "resources/gpt2-bpe/encoder.json",
    log:
        "resources/logs/download_gpt2_bpe.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_gpt2_bpe.py"


rule demo_corpus:
    output:
        **{split: f"resources/demo-corpus/{split}.txt" for split in SPLITS},
    log:
        "resources/logs/demo_corpus.log",
    conda:
        "../../envs/data.yaml"
    params:
        code=code_version("demo_corpus.py"),
    script:
        "../scripts/demo_corpus.py"


rule tokenize:
    input:
        unpack(corpus_files),
        unpack(bpe_files),
    output:
        train=f"{RESULTS}/data/train.npy",
        valid=f"{RESULTS}/data/valid.npy",
        test=f"{RESULTS}/data/test.npy",
        tokenizer=f"{RESULTS}/data/tokenizer.json",
        meta=f"{RESULTS}/data/meta.json",
    log:
        f"{RESULTS}/logs/tokenize.log",
    conda:
        "../../envs/data.yaml"
    params:
        corpus=config["data"]["corpus"],  # the files themselves are inputs
        tokenizer=config["tokenizer"]["kind"],  # gpt2's files are inputs; bpe's size is a setting
        vocab_size=(
            config["tokenizer"]["vocab_size"]
            if config["tokenizer"]["kind"] == "bpe"
            else None
        ),
        code=code_version("tokenize_corpus.py"),
    script:
        "../scripts/tokenize_corpus.py"
