import numpy as np

from attnscore.attention_stats import run_statistics
from attnscore.evaluation import load_model
from attnscore.files import atomic_path, log_to, write_csv, write_json
from attnscore.runtime import pick_device
from attnscore.tokens import load_tokens

with log_to(snakemake.log[0]):
    settings, out = snakemake.params.attention, snakemake.output
    model, saved = load_model(snakemake.input.model, pick_device(settings["device"]))
    tokens = load_tokens(snakemake.input.test, model.cfg.vocab_size)
    table, maps, probe = run_statistics(
        model, tokens, seq_len=settings["seq_len"], windows=settings["windows"], kind=model.cfg.attention
    )
    print(table.to_string(index=False))
    write_csv(table, out.statistics)
    with atomic_path(out.maps) as tmp, open(tmp, "wb") as f:
        np.save(f, maps)
    write_json(
        {"kind": model.cfg.attention, "epoch": saved["epoch"], "seq_len": settings["seq_len"], **probe}, out.probe
    )
