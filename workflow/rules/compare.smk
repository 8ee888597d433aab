# One job per size: its variants against dot, paired by seed.
rule compare:
    input:
        metrics=expand(
            rules.train.output.metrics,
            variant=VARIANTS,
            seed=SEEDS,
            allow_missing=True,
        ),
        evals=expand(
            rules.evaluate.output[0], variant=VARIANTS, seed=SEEDS, allow_missing=True
        ),
    output:
        runs=report(
            f"{RESULTS}/compare/{SIZE}runs.csv",
            caption="../report/runs.rst",
            category="Tables",
        ),
        epochs=report(
            f"{RESULTS}/compare/{SIZE}epochs.csv",
            caption="../report/epochs.rst",
            category="Tables",
        ),
        best=report(
            f"{RESULTS}/compare/{SIZE}best.csv",
            caption="../report/best.rst",
            category="Tables",
        ),
        paired=report(
            f"{RESULTS}/compare/{SIZE}paired.csv",
            caption="../report/paired_table.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/{SIZE}compare.log",
    conda:
        "../../envs/plot.yaml"
    params:
        runs=[(variant, seed) for variant in VARIANTS for seed in SEEDS],
        baseline=identity.baseline(VARIANTS),
        code=code_version("compare.py"),
    script:
        "../scripts/compare.py"


rule compare_timings:
    input:
        expand(rules.benchmark.output[0], round=ROUNDS),
    output:
        measurements=report(
            f"{RESULTS}/bench/measurements.csv",
            caption="../report/measurements.rst",
            category="Tables",
        ),
        comparisons=report(
            f"{RESULTS}/bench/comparisons.csv",
            caption="../report/comparisons.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/compare_timings.log",
    conda:
        "../../envs/plot.yaml"
    params:
        baseline=identity.baseline(BENCHMARKED),
        margin=config["benchmark"]["margin"],
        code=code_version("compare_timings.py"),
    script:
        "../scripts/compare_timings.py"


# One job per size: the steps, time and FLOPs each variant needs to reach dot's best validation
# loss (attnscore.to_target), from the runs' validation curves and the benchmark's step costs.
rule to_target:
    input:
        curves=expand(
            rules.train.output.curve, variant=VARIANTS, seed=SEEDS, allow_missing=True
        ),
        comparisons=rules.compare_timings.output.comparisons,
    output:
        report(
            f"{RESULTS}/compare/{SIZE}to_target.csv",
            caption="../report/to_target_table.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/{SIZE}to_target.log",
    conda:
        "../../envs/plot.yaml"
    params:
        runs=[(variant, seed) for variant in VARIANTS for seed in SEEDS],
        baseline=identity.baseline(VARIANTS),
        margin=config["benchmark"]["margin"],
        train_seq_len=config["train"]["seq_len"],
        size=size_of,
        # The benchmark times the model section: a size's steps are not timed.
        timed=not SIZED,
        code=code_version("to_target.py"),
    script:
        "../scripts/to_target.py"


rule plot:
    input:
        runs=expand(rules.compare.output.runs, size=SIZE_NAMES),
        epochs=expand(rules.compare.output.epochs, size=SIZE_NAMES),
        best=expand(rules.compare.output.best, size=SIZE_NAMES),
        paired=expand(rules.compare.output.paired, size=SIZE_NAMES),
        comparisons=rules.compare_timings.output.comparisons,
        to_target=expand(rules.to_target.output[0], size=SIZE_NAMES),
        curves=expand(
            rules.train.output.curve, size=SIZE_NAMES, variant=VARIANTS, seed=SEEDS
        ),
        attention_runs=rules.compare_attention.output.runs,
        attention_paired=rules.compare_attention.output.paired,
        steps=expand(
            rules.train.output.steps, size=SIZE_NAMES, variant=VARIANTS, seed=SEEDS
        ),
    output:
        **(
            {
                "scaling_png": report(
                    f"{RESULTS}/figures/scaling.png",
                    caption="../report/scaling.rst",
                    category="Figures",
                ),
                "scaling_svg": f"{RESULTS}/figures/scaling.svg",
            }
            if SIZED
            else {}
        ),
        perplexity_png=report(
            f"{RESULTS}/figures/perplexity.png",
            caption="../report/perplexity.rst",
            category="Figures",
        ),
        perplexity_svg=f"{RESULTS}/figures/perplexity.svg",
        training_png=report(
            f"{RESULTS}/figures/training.png",
            caption="../report/training.rst",
            category="Figures",
        ),
        training_svg=f"{RESULTS}/figures/training.svg",
        paired_png=report(
            f"{RESULTS}/figures/paired.png",
            caption="../report/paired.rst",
            category="Figures",
        ),
        paired_svg=f"{RESULTS}/figures/paired.svg",
        throughput_png=report(
            f"{RESULTS}/figures/throughput.png",
            caption="../report/throughput.rst",
            category="Figures",
        ),
        throughput_svg=f"{RESULTS}/figures/throughput.svg",
        to_target_png=report(
            f"{RESULTS}/figures/to_target.png",
            caption="../report/to_target.rst",
            category="Figures",
        ),
        to_target_svg=f"{RESULTS}/figures/to_target.svg",
        summary=report(
            f"{RESULTS}/summary.md",
            caption="../report/summary.rst",
            category="Summary",
        ),
        verdicts=report(
            f"{RESULTS}/verdicts.csv",
            caption="../report/verdicts.rst",
            category="Tables",
        ),
        made_with=report(
            f"{RESULTS}/config.json",
            caption="../report/config.rst",
            category="Provenance",
        ),
        made_by=report(
            f"{RESULTS}/code.json",
            caption="../report/code.rst",
            category="Provenance",
        ),
    log:
        f"{RESULTS}/logs/plot.log",
    conda:
        "../../envs/plot.yaml"
    params:
        runs=[(variant, seed) for variant in VARIANTS for seed in SEEDS],
        sizes=SIZE_NAMES,
        baseline=identity.baseline(VARIANTS),
        train_seq_len=config["train"]["seq_len"],
        data_name=identity.script_safe(config["data"]["name"]),
        # All the code behind the results, recorded for --report: any edit re-runs the figures.
        code=RESULTS_CODE,
    script:
        "../scripts/plot.py"
