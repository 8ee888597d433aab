import hashlib


def code_version(*modules):
    """A hash of attnscore modules, passed as a param so that Snakemake re-runs a job when
    their content changes (its own code tracking only sees the script file)."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(workflow.basedir, "attnscore", module).read_bytes())
    return digest.hexdigest()[:16]


# CPU threads of the torch rules: capped at --cores locally, --cpus-per-task on Slurm.
TORCH_THREADS = 8

TRAINING_CODE = code_version("attention.py", "model.py", "train.py", "data.py", "io.py")


WIKITEXT_FILES = {
    "wikitext-2": "wiki.{split}.tokens",
    "wikitext-2-raw": "wiki.{split}.raw",
}


def corpus_files(wildcards):
    """The three split files: the user's folder, a verified download, or the generated demo corpus."""
    data = config["data"]
    if data["corpus"] == "text":
        return {s: os.path.join(data["dir"], data["files"][s]) for s in SPLITS}
    if data["corpus"] == "demo":
        return {s: f"resources/demo-corpus/{s}.txt" for s in SPLITS}
    if data["dir"]:
        pattern = WIKITEXT_FILES[data["corpus"]]
        return {s: os.path.join(data["dir"], pattern.format(split=s)) for s in SPLITS}
    return {s: f"resources/{data['corpus']}/{s}.txt" for s in SPLITS}


def bpe_files(wildcards):
    tok = config["tokenizer"]
    if tok["kind"] != "gpt2":
        return {}
    folder = tok["dir"] or "resources/gpt2-bpe"
    return {
        "vocab_bpe": f"{folder}/vocab.bpe",
        "encoder_json": f"{folder}/encoder.json",
    }


# GPUs a training job holds: one per process, none when the config pins training to the CPU.
TRAIN_GPUS = 0 if config["train"]["device"] == "cpu" else config["train"]["processes"]
EVAL_GPUS = 0 if config["train"]["device"] == "cpu" else 1
