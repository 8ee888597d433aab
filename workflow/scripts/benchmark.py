from attnscore.bench import run_round
from attnscore.io import log_to, write_csv
from attnscore.model import ModelConfig
from attnscore.tokens import read_vocab_size
from attnscore.train import TrainConfig

# The measuring processes re-import this file (multiprocessing's forkserver): the guard keeps them
# from running it.
if __name__ == "__main__":
    measurement = snakemake.params.measurement
    with log_to(snakemake.log[0]):
        vocab_size = read_vocab_size(snakemake.input.meta)
        models = {
            kind: ModelConfig(vocab_size=vocab_size, attention=kind, **settings)
            for kind, settings in snakemake.params.models.items()
        }
        rows = run_round(
            models,
            TrainConfig(**snakemake.params.timing),
            measurement["seq_lens"],
            int(snakemake.wildcards.round),
            measurement["warmup_steps"],
            measurement["steps"],
            measurement["peak_tflops"],
        )
        write_csv(rows, snakemake.output[0])
