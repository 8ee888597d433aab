rule train:
    input:
        train=rules.tokenize.output.train,
        valid=rules.tokenize.output.valid,
        test=rules.tokenize.output.test,
        meta=rules.tokenize.output.meta,
    output:
        metrics=f"{RESULTS}/train/{SIZE}{{variant}}/seed{{seed}}/metrics.csv",
        steps=f"{RESULTS}/train/{SIZE}{{variant}}/seed{{seed}}/steps.csv",
        curve=f"{RESULTS}/train/{SIZE}{{variant}}/seed{{seed}}/curve.csv",
        model=f"{RESULTS}/train/{SIZE}{{variant}}/seed{{seed}}/model.pt",
        provenance=report(
            f"{RESULTS}/train/{SIZE}{{variant}}/seed{{seed}}/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={
                **SIZE_LABEL,
                "variant": "{variant}",
                "seed": "{seed}",
            },
        ),
    log:
        f"{RESULTS}/logs/{SIZE}train_{{variant}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/logs/{SIZE}train_{{variant}}_seed{{seed}}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: TORCH_THREADS
    resources:
        gpu=TRAIN_GPUS,
    params:
        # Only what changes the run's outputs (attnscore.identity; the procedure settings are
        # read by the script from the config), so a label or checkpoint spacing re-runs nothing.
        model=lambda wildcards: identity.model_settings(
            config, wildcards.variant, size_of(wildcards)
        ),
        train=identity.train_settings(config),
        code=lambda wildcards: code_version("train.py", wildcards.variant),
        # Resumable state, deliberately not an output: Snakemake deletes a failed job's outputs.
        checkpoint_dir=job_folder("checkpoints"),
        # Live curves, a folder per run inside (attnscore.steplog); not an output for the same reason.
        tensorboard_dir=job_folder("tensorboard"),
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        model=rules.train.output.model,
        test=rules.tokenize.output.test,
    output:
        f"{RESULTS}/eval/{SIZE}{{variant}}/seed{{seed}}.json",
    log:
        f"{RESULTS}/logs/{SIZE}evaluate_{{variant}}_seed{{seed}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: TORCH_THREADS
    resources:
        gpu=EVAL_GPUS,
    params:
        evaluation=identity.train_keys(config, "evaluation"),
        code=lambda wildcards: code_version("evaluate.py", wildcards.variant),
    script:
        "../scripts/evaluate.py"


# One interleaved round of timings per job: every benchmarked kind at every shape (attnscore.bench).
# Rounds are jobs of their own, so more rounds measure only the new ones, and fewer measure nothing.
rule benchmark:
    input:
        meta=rules.tokenize.output.meta,
    output:
        f"{RESULTS}/bench/rounds/round{{round}}.csv",
    log:
        f"{RESULTS}/logs/benchmark_round{{round}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: TORCH_THREADS
    resources:
        gpu=EVAL_GPUS,
    params:
        models={kind: identity.model_settings(config, kind) for kind in BENCHMARKED},
        timing=identity.train_keys(config, "timing"),
        measurement=identity.measurement_settings(config),
        code=code_version("benchmark.py", *BENCHMARKED, *CONTROLLED),
    script:
        "../scripts/benchmark.py"
