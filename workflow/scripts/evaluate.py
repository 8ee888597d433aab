from attnscore.io import log_to, write_json
from attnscore.train import TrainConfig, evaluate_checkpoint

with log_to(snakemake.log[0]):
    result = evaluate_checkpoint(
        snakemake.input.model, snakemake.input.test, TrainConfig(**snakemake.params.evaluation)
    )
    print(result)
    write_json(result, snakemake.output[0])
