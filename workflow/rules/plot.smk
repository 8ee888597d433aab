rule plot:
    input:
        metrics=expand(rules.train.output.metrics, variant=VARIANTS),
        tests=expand(rules.evaluate.output[0], variant=VARIANTS),
        bench=expand(rules.benchmark.output[0], variant=config["benchmark"]["variants"]),
    output:
        perplexity_png=report(f"{RESULTS}/figures/perplexity.png", category="Figures"),
        perplexity_svg=f"{RESULTS}/figures/perplexity.svg",
        throughput_png=report(f"{RESULTS}/figures/throughput.png", category="Figures"),
        throughput_svg=f"{RESULTS}/figures/throughput.svg",
        throughput_csv=f"{RESULTS}/throughput.csv",
        summary=report(f"{RESULTS}/summary.md", category="Summary"),
    log:
        f"{RESULTS}/logs/plot.log",
    conda:
        "../../envs/plot.yaml"
    params:
        variants=VARIANTS,
        train_seq_len=config["train"]["seq_len"],
        data_name=config["data"]["name"],
        code=code_version("plot.py"),
    script:
        "../scripts/plot.py"
