# What each kind attends to, read from the best checkpoints after training: nothing here trains.
# attention[size, variant, seed] -> compare_attention -> plot (its summary); samples -> all


rule attention:
    input:
        model=rules.train.output.model,
        test=rules.tokenize.output.test,
    output:
        statistics=f"{RESULTS}/attention/{SIZE}{{variant}}/seed{{seed}}.csv",
        maps=f"{RESULTS}/attention/{SIZE}{{variant}}/seed{{seed}}.npy",
        probe=f"{RESULTS}/attention/{SIZE}{{variant}}/seed{{seed}}.json",
    log:
        f"{RESULTS}/logs/{SIZE}attention_{{variant}}_seed{{seed}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: TORCH_THREADS
    resources:
        gpu=EVAL_GPUS,
    params:
        attention=identity.analysis_settings(config, "attention"),
        code=lambda wildcards: code_version("attention.py", wildcards.variant),
    script:
        "../scripts/attention.py"


# Every size's runs, in the order of params.runs: size, then variant, then seed.
rule compare_attention:
    input:
        statistics=expand(
            rules.attention.output.statistics,
            size=SIZE_NAMES,
            variant=VARIANTS,
            seed=SEEDS,
        ),
        maps=expand(
            rules.attention.output.maps, size=SIZE_NAMES, variant=VARIANTS, seed=SEEDS
        ),
    output:
        runs=report(
            f"{RESULTS}/attention/runs.csv",
            caption="../report/attention_runs.rst",
            category="Tables",
        ),
        paired=report(
            f"{RESULTS}/attention/paired.csv",
            caption="../report/attention_paired.rst",
            category="Tables",
        ),
        heads_png=report(
            f"{RESULTS}/figures/attention_heads.png",
            caption="../report/attention_heads.rst",
            category="Figures",
        ),
        heads_svg=f"{RESULTS}/figures/attention_heads.svg",
        maps_png=report(
            f"{RESULTS}/figures/attention_maps.png",
            caption="../report/attention_maps.rst",
            category="Figures",
        ),
        maps_svg=f"{RESULTS}/figures/attention_maps.svg",
        layers_png=report(
            f"{RESULTS}/figures/attention_layers.png",
            caption="../report/attention_layers.rst",
            category="Figures",
        ),
        layers_svg=f"{RESULTS}/figures/attention_layers.svg",
    log:
        f"{RESULTS}/logs/compare_attention.log",
    conda:
        "../../envs/plot.yaml"
    params:
        runs=[
            (size, variant, seed)
            for size in SIZE_NAMES
            for variant in VARIANTS
            for seed in SEEDS
        ],
        baseline=identity.baseline(VARIANTS),
        seq_len=config["train"]["seq_len"],
        code=code_version("compare_attention.py"),
    script:
        "../scripts/compare_attention.py"


# Each kind's best checkpoint of the first seed, at every size, continues the same prompts.
rule samples:
    input:
        models=expand(
            rules.train.output.model, size=SIZE_NAMES, variant=VARIANTS, seed=SEEDS[:1]
        ),
        test=rules.tokenize.output.test,
        tokenizer=rules.tokenize.output.tokenizer,
    output:
        report(
            f"{RESULTS}/samples.md",
            caption="../report/samples.rst",
            category="Summary",
        ),
    log:
        f"{RESULTS}/logs/samples.log",
    conda:
        "../../envs/torch.yaml"
    threads: TORCH_THREADS
    resources:
        gpu=EVAL_GPUS,
    params:
        runs=[(size, variant) for size in SIZE_NAMES for variant in VARIANTS],
        seed=SEEDS[0],
        samples=identity.analysis_settings(config, "samples"),
        code=code_version("samples.py", *VARIANTS),
    script:
        "../scripts/samples.py"
