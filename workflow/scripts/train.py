from attnscore.data import vocab_size, write_json
from attnscore.io import log_to, write_csv
from attnscore.model import ModelConfig
from attnscore.provenance import collect
from attnscore.train import TrainConfig, export_best, pick_device, train, train_distributed

with log_to(snakemake.log[0]):
    model_cfg = ModelConfig(
        vocab_size=vocab_size(snakemake.input.meta), attention=snakemake.wildcards.variant, **snakemake.params.model
    )
    cfg = TrainConfig(**snakemake.params.train)
    token_files = {split: snakemake.input[split] for split in ("train", "valid", "test")}
    run = train_distributed if cfg.processes > 1 else train
    history = run(model_cfg, cfg, token_files, snakemake.params.checkpoint_dir)
    export_best(snakemake.params.checkpoint_dir, snakemake.output.model)
    write_csv(history, snakemake.output.metrics)
    write_json(collect(snakemake.config, pick_device(cfg.device), cfg.seed), snakemake.output.provenance)
