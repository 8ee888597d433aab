def code_version(script, *variants):
    """A digest of the code a script runs with the variants' kinds (attnscore.codeid: the files
    it reaches, and each kind's module with what it reaches), passed as a param so that Snakemake
    re-runs a job when that code changes (its own code tracking sees only the script file):
    editing one kind's module re-runs the jobs of the kinds it registers, and of kinds wrapping them.
    """
    script = Path(workflow.basedir, "workflow", "scripts", script)
    return codeid.code_version(
        script, [(variant, KIND_SOURCES[variant]) for variant in sorted(variants)]
    )


def job_folder(folder):
    """A train job's folder under results/<experiment>/<folder>/ (the size's, the variant's and
    the seed's), as a param: not an output."""
    return lambda wildcards: (
        f"{RESULTS}/{folder}/{SIZE}{wildcards.variant}/seed{wildcards.seed}".format(
            size=size_of(wildcards)
        )
    )


# CPU threads of the torch rules: capped at --cores locally, --cpus-per-task on Slurm.
TORCH_THREADS = 8


def corpus_files(wildcards):
    """The three split files: the user's folder, a verified download, or the generated demo corpus."""
    data = config["data"]
    if data["corpus"] == "text":
        return {s: os.path.join(data["dir"], data["files"][s]) for s in SPLITS}
    if data["corpus"] == "demo":
        return dict(rules.demo_corpus.output.items())
    if data["dir"]:
        return {
            s: os.path.join(data["dir"], release_file(data["corpus"], s))
            for s in SPLITS
        }
    return {
        s: path.format(release=data["corpus"])
        for s, path in rules.download_wikitext.output.items()
    }


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
