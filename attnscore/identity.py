"""What each result depends on, from one table: every config key's role in the schema (x-role,
attnscore.schema.ROLES). (config, size, kind) -> each rule's settings, which the rules pass as
params (Snakemake re-runs a job whose params changed), and a run's settings, whose hash with the
token files' names the run's checkpoint folder (its run id). Torch-free: the Snakefile calls it
on every dry run."""

import hashlib
import json
from pathlib import Path

from attnscore import schema
from attnscore.kinds import plugins_of

# A size sets its model's shape only; these model keys belong to the kinds, the same at every size.
NOT_PER_SIZE = ("attention_options", "attention_plugins")


def model_settings(config: dict, kind: str, size: str = "") -> dict:
    """The model section for one kind at one size ("": the model section as it is), with only that
    kind's own options and plugins, so that changing them re-runs that kind's jobs and no others."""
    model = {**config["model"], **(config["sizes"][size] if size else {})}
    return {
        **model,
        "attention_options": model["attention_options"].get(kind, {}),
        "attention_plugins": plugins_of(kind, model["attention_plugins"]),
    }


def train_keys(config: dict, *roles: str) -> dict:
    """The train settings of these roles (e.g. "evaluation": what evaluating a saved model depends on)."""
    return {key: config["train"][key] for key in schema.keys_with("train", *roles)}


def train_settings(config: dict) -> dict:
    """What a training job's outputs depend on (its seed comes from its wildcards)."""
    return train_keys(config, "run", "curve", "length", "evaluation")


def procedure_settings(config: dict) -> dict:
    """The train settings that change no output (role procedure alone): the train job reads them
    from the config, not its params, so editing them re-runs nothing."""
    return {key: value for key, value in config["train"].items() if key not in train_settings(config)}


def measurement_settings(config: dict) -> dict:
    """What the benchmark measures besides the model and train settings (its kinds are in the models)."""
    return {key: config["benchmark"][key] for key in schema.keys_with("benchmark", "timing") if key != "variants"}


def analysis_settings(config: dict, role: str) -> dict:
    """What the attention statistics or the samples (role) depend on besides checkpoints and tokens:
    the analysis keys of the role, with the training length and device it reads the checkpoints at."""
    keys = {key: config["analysis"][key] for key in schema.keys_with("analysis", role)}
    return {**keys, "seq_len": config["train"]["seq_len"], "device": config["train"]["device"]}


def baseline(kinds) -> str:
    """The kind every other kind is compared with, in quality and in cost: dot, else the first."""
    return "dot" if "dot" in kinds else list(kinds)[0]


def run_settings(model: dict, train: dict, code: dict) -> dict:
    """What makes a run's weights and its validation curve, typed canonically: the model, the
    train keys of role "run" or "curve", and the code (attnscore.codeid.run_code). Under a constant
    schedule min_lr_ratio changes nothing and is left out; a cosine decay spans the run's epochs,
    so there train.epochs changes every step's learning rate and is part of the run."""
    kept = {key: train[key] for key in schema.keys_with("train", "run", "curve")} | {"seed": train["seed"]}
    if train["schedule"] == "constant":
        del kept["min_lr_ratio"]
    else:
        kept["epochs"] = train["epochs"]
    return schema.canonical({"model": model, "train": kept}) | {"code": code}


def run_id(settings: dict, token_files: dict) -> str:
    """A short hash of a run's settings and its token files' contents: its checkpoint folder's name."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for split in sorted(token_files):
        digest.update(Path(token_files[split]).read_bytes())
    return digest.hexdigest()[:16]


def differences(made_with: dict, config: dict) -> list[str]:
    """The keys whose values differ between the config results were made with and another, one
    line each; keys that change no result (role procedure alone) are left out."""
    lines = []
    for section in schema.SECTIONS:
        old, new = (made_with.get(section, {}), config.get(section, {})) if section else (made_with, config)
        for key, has in schema.roles(section).items():
            if set(has) != {"procedure"} and old.get(key) != new.get(key):
                name = f"{section}.{key}" if section else key
                lines.append(f"{name}: {old.get(key)!r} in the results, {new.get(key)!r} in this config")
    return lines


def script_safe(value) -> str:
    """A param value as JSON text that stays inert inside an HTML <script> element: Snakemake's
    report embeds rule params there unescaped, so a label holding "</script>" would end it. The
    script reading the param decodes it with json.loads."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
