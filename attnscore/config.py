"""Checks on a config that a JSON schema cannot express (each error names the key and the fix),
and the settings each rule passes on. Imports no torch: the Snakefile runs this on every dry run."""

from attnscore.kinds import known_kinds, options_problem


class ConfigError(ValueError):
    pass


def check_attention(model: dict, kinds_used: list) -> list[str]:
    """Problems with the attention kinds a config uses, their options and the plugins providing them."""
    kinds, problems = known_kinds(model["attention_plugins"])
    known = sorted(kinds)
    for key, names in kinds_used:
        unknown = [name for name in names if name not in kinds]
        if unknown:
            problems.append(f"{key}: unknown attention kind(s) {unknown}; known: {known}")
    options = model["attention_options"]
    for kind in sorted(set(options) | {name for _, names in kinds_used for name in names}):
        if kind not in kinds:
            if kind in options:
                problems.append(f"model.attention_options.{kind}: no attention kind {kind!r}; known: {known}")
            continue
        problem = options_problem(kind, kinds[kind], options.get(kind, {}))
        if problem:
            problems.append(f"model.attention_options.{kind}: {problem}")
    return problems


def check(config: dict) -> None:
    """Raise ConfigError listing every cross-field problem of a schema-valid config."""
    model, train, data = config["model"], config["train"], config["data"]
    kinds_used = [("variants", config["variants"]), ("benchmark.variants", config["benchmark"]["variants"])]
    problems = check_attention(model, kinds_used)
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


def model_settings(config: dict, kind: str) -> dict:
    """config['model'] for one variant: only that kind's own attention options, so changing one
    kind's options re-runs that kind's jobs and no others."""
    return {**config["model"], "attention_options": config["model"]["attention_options"].get(kind, {})}


# How a training run proceeds, not what it computes: changing these re-runs nothing finished.
# The train script reads them from the config itself, outside the job's tracked params.
RUN_ONLY = ("checkpoint_every", "compile")
# What evaluating a saved model, or timing a training step, depends on.
EVALUATION = ("seq_len", "eval_batch_size", "device", "precision")
TIMING = ("batch_size", "device", "precision", "compile")


def train_settings(config: dict) -> dict:
    """The train settings that change a run's numbers (its seed comes from the job)."""
    return {key: value for key, value in config["train"].items() if key not in RUN_ONLY}


def subset(section: dict, keys) -> dict:
    return {key: section[key] for key in keys}
