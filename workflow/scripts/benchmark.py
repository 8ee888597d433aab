import json

from attnscore.bench import benchmark
from attnscore.io import log_to, write_csv
from attnscore.model import ModelConfig
from attnscore.train import TrainConfig

with log_to(snakemake.log[0]):
    vocab_size = json.loads(open(snakemake.input.meta).read())["vocab_size"]
    model_cfg = ModelConfig(vocab_size=vocab_size, attention=snakemake.wildcards.variant, **snakemake.params.model)
    steps = snakemake.params.benchmark
    row = benchmark(model_cfg, TrainConfig(**snakemake.params.train), steps["warmup_steps"], steps["steps"])
    print(row)
    write_csv([row], snakemake.output[0])
