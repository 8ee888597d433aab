from attnscore.bench import Timing, run_round
from attnscore.files import log_to, write_csv
from attnscore.model import ModelConfig
from attnscore.tokens import read_vocab_size

# The measuring processes re-import this file (multiprocessing's forkserver): the guard keeps them
# from running it.
if __name__ == "__main__":
    with log_to(snakemake.log[0]):
        vocab_size = read_vocab_size(snakemake.input.meta)
        models = {
            kind: ModelConfig(vocab_size=vocab_size, attention=kind, **settings)
            for kind, settings in snakemake.params.models.items()
        }
        timing = Timing(**snakemake.params.timing, **snakemake.params.measurement)
        rows = run_round(models, timing, round_number=int(snakemake.wildcards.round))
        write_csv(rows, snakemake.output[0])
