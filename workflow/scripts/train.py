from attnscore.checkpoints import export_best, run_folder
from attnscore.files import log_to, write_csv, write_json
from attnscore.identity import procedure_settings
from attnscore.launch import train_distributed
from attnscore.model import ModelConfig, training_flops_per_token
from attnscore.provenance import collect
from attnscore.runtime import device_name, pick_device
from attnscore.steplog import COLUMNS, CURVE_COLUMNS
from attnscore.tokens import check_batch_sizes, read_vocab_size
from attnscore.train import train
from attnscore.trainer import TrainConfig

with log_to(snakemake.log[0]):
    model_cfg = ModelConfig(
        vocab_size=read_vocab_size(snakemake.input.meta),
        attention=snakemake.wildcards.variant,
        **snakemake.params.model,
    )
    # The rule's params carry the settings that change results; those that only change how the
    # run goes (checkpoint spacing, compile) come from the config, so editing them re-runs nothing.
    procedure = procedure_settings(snakemake.config)
    cfg = TrainConfig(**snakemake.params.train, **procedure, seed=int(snakemake.wildcards.seed))
    token_files = {split: path for split, path in snakemake.input.items() if split != "meta"}  # the rule's splits
    check_batch_sizes(token_files, snakemake.params.train)
    checkpoint_dir = snakemake.params.checkpoint_dir
    run = train_distributed if cfg.processes > 1 else train
    state = run(
        model_cfg,
        cfg,
        token_files=token_files,
        checkpoint_dir=checkpoint_dir,
        tensorboard_dir=snakemake.params.tensorboard_dir,
    )
    export_best(run_folder(checkpoint_dir, model_cfg, cfg, token_files), state.history, snakemake.output.model)
    write_csv(state.history, snakemake.output.metrics)
    write_csv(state.steps, snakemake.output.steps, COLUMNS)
    flops_per_step = training_flops_per_token(model_cfg, cfg.seq_len) * cfg.batch_size * cfg.seq_len
    curve = [{**point, "flops": point["step"] * flops_per_step} for point in state.curve]
    write_csv(curve, snakemake.output.curve, CURVE_COLUMNS)
    device = pick_device(cfg.device)
    write_json(collect(snakemake.config, f"{device} ({device_name(device)})", cfg.seed), snakemake.output.provenance)
