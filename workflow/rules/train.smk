rule train:
    input:
        train=rules.tokenize.output.train,
        valid=rules.tokenize.output.valid,
        test=rules.tokenize.output.test,
        meta=rules.tokenize.output.meta,
    output:
        metrics=f"{RESULTS}/train/{{variant}}/metrics.csv",
        model=f"{RESULTS}/train/{{variant}}/model.pt",
        provenance=f"{RESULTS}/train/{{variant}}/provenance.json",
    log:
        f"{RESULTS}/logs/train_{{variant}}.log",
    benchmark:
        f"{RESULTS}/logs/train_{{variant}}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: TORCH_THREADS
    resources:
        gpu=TRAIN_GPUS,
    params:
        model=lambda wildcards: model_settings(config, wildcards.variant),
        train=config["train"],
        code=lambda wildcards: code_version("train.py", wildcards.variant),
        # Resumable state, deliberately not an output: Snakemake deletes a failed job's outputs.
        checkpoint_dir=lambda wildcards: f"{RESULTS}/checkpoints/{wildcards.variant}",
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        model=rules.train.output.model,
        test=rules.tokenize.output.test,
    output:
        f"{RESULTS}/eval/{{variant}}.json",
    log:
        f"{RESULTS}/logs/evaluate_{{variant}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: TORCH_THREADS
    resources:
        gpu=EVAL_GPUS,
    params:
        train=config["train"],
        code=lambda wildcards: code_version("evaluate.py", wildcards.variant),
    script:
        "../scripts/evaluate.py"


rule benchmark:
    input:
        meta=rules.tokenize.output.meta,
    output:
        f"{RESULTS}/bench/{{variant}}.csv",
    log:
        f"{RESULTS}/logs/benchmark_{{variant}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: TORCH_THREADS
    resources:
        gpu=EVAL_GPUS,
    params:
        model=lambda wildcards: model_settings(config, wildcards.variant),
        train=config["train"],
        benchmark=config["benchmark"],
        code=lambda wildcards: code_version("benchmark.py", wildcards.variant),
    script:
        "../scripts/benchmark.py"
