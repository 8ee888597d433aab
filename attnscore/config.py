"""Checks on a config that a JSON schema cannot express; each error names the key and the fix."""

from attnscore.attention import KINDS


class ConfigError(ValueError):
    pass


def check(config: dict) -> None:
    """Raise ConfigError listing every cross-field problem of a schema-valid config."""
    model, train, data = config["model"], config["train"], config["data"]
    problems = []
    for key, names in (("variants", config["variants"]), ("benchmark.variants", config["benchmark"]["variants"])):
        unknown = [v for v in names if v not in KINDS]
        if unknown:
            problems.append(f"{key}: unknown attention kind(s) {unknown}; known: {sorted(KINDS)}")
    if model["d_model"] % model["n_heads"]:
        problems.append(f"model.d_model={model['d_model']} is not divisible by model.n_heads={model['n_heads']}")
    if train["seq_len"] > model["max_seq_len"]:
        problems.append(f"train.seq_len={train['seq_len']} exceeds model.max_seq_len={model['max_seq_len']}")
    for key in ("batch_size", "eval_batch_size"):
        if train[key] % train["processes"]:
            problems.append(f"train.{key}={train[key]} is not divisible by train.processes={train['processes']}")
    if model["positions"] == "sinusoidal" and model["d_model"] % 2:
        problems.append(f"model.d_model={model['d_model']} must be even for sinusoidal positions")
    if data["corpus"] == "text" and (data["dir"] is None or data["files"] is None):
        problems.append("data.corpus=text needs data.dir (a folder) and data.files (train/valid/test file names)")
    if data["corpus"] != "text" and data["files"] is not None:
        problems.append(f"data.files is only for data.corpus=text; {data['corpus']} has fixed file names")
    if data["corpus"] == "demo" and data["dir"] is not None:
        problems.append("data.dir must be null for data.corpus=demo (the corpus is generated)")
    if config["tokenizer"]["kind"] == "bpe" and config["tokenizer"]["dir"] is not None:
        problems.append("tokenizer.dir is only for tokenizer.kind=gpt2")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
