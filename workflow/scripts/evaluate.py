from attnscore.evaluation import evaluate_checkpoint
from attnscore.files import log_to, write_json
from attnscore.tokens import check_batch_sizes

with log_to(snakemake.log[0]):
    check_batch_sizes({"test": snakemake.input.test}, snakemake.params.evaluation)
    result = evaluate_checkpoint(snakemake.input.model, snakemake.input.test, **snakemake.params.evaluation)
    print(result)
    write_json(result, snakemake.output[0])
