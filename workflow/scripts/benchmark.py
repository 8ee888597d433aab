from attnscore.bench import benchmark
from attnscore.io import log_to, write_csv
from attnscore.model import ModelConfig
from attnscore.tokens import read_vocab_size
from attnscore.train import TrainConfig

settings = snakemake.params.benchmark
with log_to(snakemake.log[0]):
    model_cfg = ModelConfig(
        vocab_size=read_vocab_size(snakemake.input.meta),
        attention=snakemake.wildcards.variant,
        **snakemake.params.model,
    )
    rows = benchmark(
        model_cfg,
        TrainConfig(**snakemake.params.timing),
        settings["seq_lens"],
        settings["warmup_steps"],
        settings["steps"],
        settings["peak_tflops"],
    )
    write_csv(rows, snakemake.output[0])
