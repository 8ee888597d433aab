from attnscore.io import log_to, write_json
from attnscore.train import TrainConfig, evaluate_checkpoint

with log_to(snakemake.log[0]):
    cfg = TrainConfig(**{**snakemake.config["train"], **snakemake.params.train})  # as in train.py
    result = evaluate_checkpoint(snakemake.input.model, snakemake.input.test, cfg)
    print(result)
    write_json(result, snakemake.output[0])
