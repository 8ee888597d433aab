"""The config's schema: every key, its type and range, and its role (what changing it changes);
and config/README.md, generated from it. Read once per process; torch-free, so the Snakefile
reads it on every dry run."""

import functools
import json
from pathlib import Path

import yaml

SCHEMA = Path(__file__).with_name("schemas") / "config.schema.yaml"  # package data: a wheel has it too
SECTIONS = ("", "data", "tokenizer", "model", "train", "benchmark", "analysis")  # "": the top level

# What changing a key changes: each key's x-role in the schema names one or more of these.
ROLES = {
    "jobs": "which jobs exist (results folder, variants, seeds, sizes, benchmark rounds): new ones run, others stay",
    "data": "the corpus or its tokens: tokenize and everything after it",
    "run": "a run's weights: part of its run id; train, evaluate, compare and plot run again",
    "curve": "the validation curve recorded while training: part of the run id, so the run trains again (to the same weights); everything after it runs again",
    "length": "how many epochs: a trained run is continued or cut, not trained again",
    "evaluation": "how a saved model is evaluated: its saved epochs are evaluated again, nothing is trained",
    "timing": "what the benchmark measures: every round is measured again",
    "statistics": "how measurements are judged: compare_timings and plot run again",
    "presentation": "labels and the figures' contents: plot runs again",
    "attention": "which test windows the attention statistics read: attention, its figures and plot run again",
    "samples": "how the text samples are drawn: samples runs again",
    "procedure": "how a run goes (checkpoint spacing, compilation): no result changes, nothing runs again",
}


@functools.cache
def load() -> dict:
    """The schema, parsed by libyaml where PyYAML has it (every dry run reads it)."""
    return yaml.load(SCHEMA.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def properties(section: str) -> dict:
    """The schema of each key of a section ("" for the top level)."""
    schema = load()
    return schema["properties"][section]["properties"] if section else schema["properties"]


def roles(section: str) -> dict[str, tuple[str, ...]]:
    """Each key of a section and its roles."""
    return {key: tuple(spec["x-role"]) for key, spec in properties(section).items() if "x-role" in spec}


def keys_with(section: str, *wanted: str) -> tuple[str, ...]:
    """The keys of a section that have any of these roles."""
    return tuple(key for key, has in roles(section).items() if set(has) & set(wanted))


def canonical(value, schema: dict | None = None):
    """A config (or a section of one, with its `schema`) with its keys sorted and each number
    typed as the schema says (1 becomes 1.0 where a number is asked for): one experiment however
    its file orders its keys or writes its numbers, so that rule params (Snakemake compares their
    repr) and run ids stay the same. A size's keys are typed as the model section's."""
    root = load()
    schema = root if schema is None else schema
    while "$ref" in schema:  # "#/definitions/<name>"
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    if isinstance(value, dict):
        fields = schema.get("properties", {})
        if schema is root["properties"].get("sizes"):
            fields = dict.fromkeys(value, root["properties"]["model"])
        return {key: canonical(value[key], fields.get(key, {})) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(item, schema.get("items", {})) for item in value]
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "number" in types and "integer" not in types and type(value) is int:
        return float(value)
    return value


def keys_markdown(reference: dict) -> str:
    """The text of config/README.md for the reference config (config/config.yaml)."""
    root = load()
    optional = ", ".join(f"`{key}`" for key in root["properties"] if key not in root["required"])
    lines = [
        "# Configuration keys",
        "",
        "Every key of a config, from `attnscore/schemas/config.schema.yaml` (written by `make config-readme`;",
        f"a test keeps the two equal). Every key but {optional} is required: a config file is complete on its own.",
        "**Changes** is the key's role (`x-role`): what changing it changes, so what re-runs.",
        "**Reference** is its value in `config/config.yaml`, the published experiment.",
        "",
        "| role | what changing it changes |",
        "|---|---|",
        *(f"| `{role}` | {meaning} |" for role, meaning in ROLES.items()),
        "",
        "| key | changes | reference | what it does |",
        "|---|---|---|---|",
    ]
    for section in SECTIONS:
        values = reference.get(section, {}) if section else reference
        for key, spec in properties(section).items():
            if "x-role" not in spec:
                continue
            name = f"{section}.{key}" if section else key
            value = json.dumps(values.get(key), ensure_ascii=False).replace("|", "\\|")
            what = " ".join(str(spec.get("description", "")).split()).replace("|", "\\|")
            lines.append(f"| `{name}` | {', '.join(spec['x-role'])} | `{value}` | {what} |")
    return "\n".join(lines) + "\n"
