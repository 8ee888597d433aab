"""Checks on a config before any job runs: its files (no key given twice), the schema (read
strictly: 8.0 is not an integer) and the cross-field rules a schema cannot express. Each problem
is one line naming the key or file and what to do. Also the settings each rule's params carry.
Imports no torch: the Snakefile runs this on every dry run."""

import difflib
import functools
import itertools
import json
import re
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

from attnscore.kinds import known_kinds, options_problem, plugins_of

SCHEMA = Path(__file__).with_name("schemas") / "config.schema.yaml"


class ConfigError(ValueError):
    pass


class _RepeatNotingLoader(yaml.SafeLoader):
    """YAML's safe loader, noting each key given twice in one mapping (PyYAML keeps the last)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.repeated = []

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys on purpose
                continue
            key = self.construct_object(key_node)
            if key in seen:
                self.repeated.append((key_node.start_mark.line + 1, key))
            seen.add(key)
        return super().construct_mapping(node, deep)


def check_unique_keys(paths) -> None:
    """Fail naming the file, line and key wherever a config file gives a key twice: Snakemake
    reads config files with PyYAML, which silently keeps the last value."""
    repeated = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            loader = _RepeatNotingLoader(f)
            try:
                loader.get_single_data()
            finally:
                loader.dispose()
        for line, key in sorted(loader.repeated, key=lambda repeat: repeat[0]):  # nested mappings come last
            repeated.append(f"{path}, line {line}: key {key!r} is given twice; keep one")
    if repeated:
        raise ConfigError("\n".join(repeated))


def typed_overrides(overrides: dict) -> dict:
    """The nested values of `--config` (e.g. train={epochs: 3}) typed as a config file types them.

    Snakemake reads them with YAML's BaseLoader, which leaves every scalar text ('3'), and the
    schema would refuse them; here each is read as an unquoted YAML scalar (3, 1.0e-3, null, cpu).
    Top-level values Snakemake has typed already.
    """
    loader = yaml.SafeLoader("")

    def typed(value):
        if isinstance(value, dict):
            return {key: typed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [typed(item) for item in value]
        tag = loader.resolve(yaml.ScalarNode, value, (True, False))
        return loader.construct_object(yaml.ScalarNode(tag, value))

    for key, value in overrides.items():  # what Snakemake could not read as YAML stays text
        if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
            try:
                yaml.safe_load(value)
            except yaml.YAMLError as err:
                problem = " ".join(str(getattr(err, "problem", None) or err).split())
                raise ConfigError(
                    f"--config {key}={value}: cannot be read as YAML ({problem}); write it as in a config "
                    f"file, e.g. {key}={{epochs: 3, lr: 1.0e-4}}"
                ) from None
    return {key: typed(value) for key, value in overrides.items() if isinstance(value, (dict, list))}


def _strict_validator(schema: dict):
    """A JSON-schema validator whose "integer" is an int: JSON Schema counts 8.0 as one, but
    sizes reach range() and torch, which refuse floats."""
    integers = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return validators.extend(Draft202012Validator, type_checker=integers)(schema)


def _describe(error, prefix=()) -> list[str]:
    """One line per problem of a jsonschema error, naming the key (below `prefix`, where the
    validated value is part of a config)."""
    path = [*prefix, *error.absolute_path]

    def key(*more):
        return ".".join(map(str, [*path, *more])) or "config"

    value = error.instance
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in value]
        return [f"{key(name)}: missing; set it (config/config.yaml shows every key)" for name in missing]
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = list(error.schema.get("properties", {}))
        lines = []
        for name in [name for name in value if name not in known]:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            lines.append(f"{key(name)}: unknown key; remove it or fix its spelling ({hint})")
        return lines
    wanted = error.validator_value if error.validator == "type" else []  # a type name or a list of them
    wanted = [wanted] if isinstance(wanted, str) else wanted
    if "integer" in wanted and isinstance(value, float) and value.is_integer():
        return [f"{key()}: must be an integer, not {value}; write {int(value)}"]
    if {"integer", "number"} & set(wanted) and isinstance(value, str) and _is_number(value):
        fix = "write it unquoted"
        if "e" in value.lower():  # YAML reads 1e-3 as text, 1.0e-3 as a number
            fix += ", with a dot and a signed exponent (1.0e-3, not 1e-3)"
        return [f"{key()}: {value!r} is text, not a number; {fix}"]
    if error.validator == "pattern" and "description" in error.schema:
        return [f"{key()}: {value!r} is not allowed: {error.schema['description']}"]
    return [f"{key()}: {error.message}"]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@functools.cache
def _schema(schema_path) -> dict:
    return yaml.safe_load(Path(schema_path).read_text())


def canonical(config: dict, schema_path=SCHEMA) -> dict:
    """The config with its keys sorted and each number typed as the schema says (1 becomes 1.0
    where a number is asked for): one experiment however its file orders its keys or writes its
    numbers, so that rule params (Snakemake compares their repr) and run ids stay the same."""
    root = _schema(schema_path)

    def walk(value, schema):
        while "$ref" in schema:  # "#/definitions/<name>"
            schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
        if isinstance(value, dict):
            properties = schema.get("properties", {})
            return {key: walk(value[key], properties.get(key, {})) for key in sorted(value)}
        if isinstance(value, list):
            return [walk(item, schema.get("items", {})) for item in value]
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else types
        if "number" in types and "integer" not in types and type(value) is int:
            return float(value)
        return value

    typed = walk(config, root)
    for size, overrides in typed.get("sizes", {}).items():  # model keys, typed as the model section's
        typed["sizes"][size] = walk(overrides, root["properties"]["model"])
    return typed


def schema_problems(config: dict, schema_path=SCHEMA) -> list[str]:
    """The schema's verdict on a config, one line per problem, sorted by key."""
    validator = _strict_validator(_schema(schema_path))
    return sorted({line for error in validator.iter_errors(config) for line in _describe(error)})


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


def check(config: dict, schema_path=SCHEMA) -> None:
    """Raise ConfigError listing every problem: the schema's, else the cross-field ones (which
    need a config the schema accepts)."""
    problems = schema_problems(config, schema_path) or cross_field_problems(config)
    if problems:  # a size inherits the model section's problems: each is named once
        raise ConfigError("invalid config:\n  " + "\n  ".join(dict.fromkeys(problems)))


def cross_field_problems(config: dict) -> list[str]:
    """Problems of a schema-valid config that involve several keys or the attention kinds."""
    model, train, data = config["model"], config["train"], config["data"]
    kinds_used = [("variants", config["variants"]), ("benchmark.variants", config["benchmark"]["variants"])]
    problems = check_attention(model, kinds_used) + text_option_problems(model["attention_options"])
    problems += model_problems(model, train) + size_problems(config)
    for key in ("batch_size", "eval_batch_size"):
        if train[key] % train["processes"]:
            problems.append(f"train.{key}={train[key]} is not divisible by train.processes={train['processes']}")
    if train["processes"] > 1 and train["device"].startswith("cuda:"):
        problems.append(
            f"train.device={train['device']} puts every process on one GPU; with train.processes="
            f"{train['processes']} set train.device to cuda (each process takes its own GPU)"
        )
    if data["corpus"] == "text" and (data["dir"] is None or data["files"] is None):
        problems.append("data.corpus=text needs data.dir (a folder) and data.files (train/valid/test file names)")
    files = data["files"] or {}
    for first, second in itertools.combinations(files, 2):  # a test split that is the train split measures nothing
        if files[first] == files[second]:
            problems.append(
                f"data.files: {first} and {second} are one file, {files[first]!r}; each split needs its own"
            )
    if data["corpus"] != "text" and data["files"] is not None:
        problems.append(f"data.files is only for data.corpus=text; {data['corpus']} has fixed file names")
    if data["corpus"] == "demo" and data["dir"] is not None:
        problems.append("data.dir must be null for data.corpus=demo (the corpus is generated)")
    if config["tokenizer"]["kind"] == "bpe" and config["tokenizer"]["dir"] is not None:
        problems.append("tokenizer.dir is only for tokenizer.kind=gpt2")
    return problems


def model_problems(model: dict, train: dict, size: str = "", overrides=()) -> list[str]:
    """Problems of a model's settings that involve several keys, each key named where the config
    sets it: sizes.<size>.<key> for the `overrides` of a size, else model.<key>."""

    def name(key):
        return f"sizes.{size}.{key}" if key in overrides else f"model.{key}"

    problems = []
    if model["d_model"] % model["n_heads"]:
        problems.append(
            f"{name('d_model')}={model['d_model']} is not divisible by {name('n_heads')}={model['n_heads']}"
        )
    if train["seq_len"] > model["max_seq_len"]:
        problems.append(f"train.seq_len={train['seq_len']} exceeds {name('max_seq_len')}={model['max_seq_len']}")
    if model["positions"] == "sinusoidal" and model["d_model"] % 2:
        problems.append(f"{name('d_model')}={model['d_model']} must be even for sinusoidal positions")
    return problems


# The kinds are the experiment's, compared at every size: a size sets its model's shape only.
NOT_PER_SIZE = ("attention_options", "attention_plugins")


def size_problems(config: dict, schema_path=SCHEMA) -> list[str]:
    """Problems of each size's model (the model section with the size's keys), by the model
    section's own schema and cross-field rules, named sizes.<size>.<key>; and two sizes that are
    one model (they would train the same runs twice)."""
    root = _schema(schema_path)
    validator = _strict_validator({**root["properties"]["model"], "definitions": root["definitions"]})
    problems, seen = [], {}
    for size, overrides in config.get("sizes", {}).items():
        if not isinstance(size, str):  # YAML reads `1:` as a number, which the name pattern never sees
            problems.append(f"sizes.{size}: a size's name is text; quote it ('{size}') or start it with a letter")
            continue
        problems += [
            f"sizes.{size}.{key}: the kinds' settings are the same at every size; set model.{key} instead"
            for key in NOT_PER_SIZE
            if key in overrides
        ]
        model = {**config["model"], **overrides}
        schema = sorted({line for error in validator.iter_errors(model) for line in _describe(error, ("sizes", size))})
        if schema:
            problems += schema
            continue
        problems += model_problems(model, config["train"], size, overrides)
        same = seen.setdefault(json.dumps(model, sort_keys=True), size)
        if same != size:
            problems.append(f"sizes.{same} and sizes.{size} are the same model; keep one")
    return problems


def model_settings(config: dict, kind: str, size: str | None = None) -> dict:
    """config['model'] for one variant (at one size, with the keys the size sets): only that
    kind's own attention options and the plugin modules that register it, so changing one
    kind's options, or adding a plugin, re-runs that kind's jobs and no others."""
    model = {**config["model"], **(config["sizes"][size] if size else {})}
    return {
        **model,
        "attention_options": model["attention_options"].get(kind, {}),
        "attention_plugins": plugins_of(kind, model["attention_plugins"]),
    }


# What changing a key changes: each key's x-role in the schema names one or more of these.
ROLES = {
    "jobs": "which jobs exist (results folder, variants, seeds, sizes, benchmark rounds): new ones run, others stay",
    "data": "the corpus or its tokens: tokenize and everything after it",
    "run": "a run's weights: part of its run id; train, evaluate, compare and plot run again",
    "length": "how many epochs: a trained run is continued or cut, not trained again",
    "evaluation": "how a saved model is evaluated: its saved epochs are evaluated again, nothing is trained",
    "timing": "what the benchmark measures: every round is measured again",
    "statistics": "how measurements are judged: compare_timings and plot run again",
    "presentation": "labels and the figures' contents: plot runs again",
    "procedure": "how a run goes (checkpoint spacing, compilation): no result changes, nothing runs again",
}


def roles(section: str, schema_path=SCHEMA) -> dict[str, tuple[str, ...]]:
    """Each key of a config section (or of the top level, section "") and its roles."""
    schema = _schema(schema_path)
    properties = schema["properties"][section]["properties"] if section else schema["properties"]
    return {key: tuple(spec["x-role"]) for key, spec in properties.items() if "x-role" in spec}


def keys_with(section: str, *wanted: str) -> tuple[str, ...]:
    """The keys of a section that have any of these roles."""
    return tuple(key for key, has in roles(section).items() if set(has) & set(wanted))


# The train settings a training job's params carry: those that change its outputs. The others
# (procedure only) the train script reads from the config itself, so editing them re-runs nothing.
RUN_ONLY = tuple(key for key, has in roles("train").items() if not set(has) & {"run", "length", "evaluation"})
# What evaluating a saved model, or timing a training step (with the benchmark's own settings), depends on.
EVALUATION = keys_with("train", "evaluation")
TIMING = keys_with("train", "timing")
MEASUREMENT = tuple(key for key in keys_with("benchmark", "timing") if key != "variants")  # kinds: in `models`


def script_safe(value) -> str:
    """A param value as JSON text that stays inert inside an HTML <script> element: Snakemake's
    report embeds rule params there unescaped, so a label holding "</script>" would end it. The
    script reading the param decodes it with json.loads."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def text_option_problems(options: dict) -> list[str]:
    """Text values among the attention options that are not plain words: they reach job params,
    logs and the report, so they take letters, digits and . _ + - only."""
    problems = []

    def walk(value, key):
        if isinstance(value, dict):
            for name, item in value.items():
                walk(item, f"{key}.{name}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{key}.{i}")
        elif isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_.+-]*", value):
            problems.append(f"{key}: {value!r}: a text option takes letters, digits and . _ + - only")

    walk(options, "model.attention_options")
    return problems


def differences(made_with: dict, config: dict) -> list[str]:
    """The keys whose values differ between the config results were made with and another, one
    line each; keys that change no result (role procedure alone) are left out."""
    lines = []
    for section in ("", "data", "tokenizer", "model", "train", "benchmark"):
        old, new = (made_with.get(section, {}), config.get(section, {})) if section else (made_with, config)
        for key, has in roles(section).items():
            if set(has) != {"procedure"} and old.get(key) != new.get(key):
                name = f"{section}.{key}" if section else key
                lines.append(f"{name}: {old.get(key)!r} in the results, {new.get(key)!r} in this config")
    return lines


def benchmark_baseline(config: dict) -> str:
    """The kind every benchmarked kind is compared with: dot, else the first benchmarked."""
    kinds = config["benchmark"]["variants"]
    return "dot" if "dot" in kinds else kinds[0]


def train_settings(config: dict) -> dict:
    """The train settings that change a run's numbers (its seed comes from the job)."""
    return {key: value for key, value in config["train"].items() if key not in RUN_ONLY}


def subset(section: dict, keys) -> dict:
    return {key: section[key] for key in keys}


SECTIONS = ("", "data", "tokenizer", "model", "train", "benchmark")
ROLE_TITLES = {
    "jobs": "which jobs exist", "data": "the data", "run": "the run (weights)", "length": "the run's length",
    "evaluation": "evaluation", "timing": "timing", "statistics": "the verdicts", "presentation": "presentation",
    "procedure": "how the run goes",
}  # fmt: skip


def keys_markdown(reference: dict, schema_path=SCHEMA) -> str:
    """config/README.md: every key of the config with its role, its value in the reference
    config and what it does, from the schema (tests/test_config.py keeps the file equal to this;
    `make config-readme` writes it)."""
    schema = _schema(schema_path)
    optional = ", ".join(f"`{key}`" for key in schema["properties"] if key not in schema["required"])
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
        properties = schema["properties"][section]["properties"] if section else schema["properties"]
        values = reference.get(section, {}) if section else reference
        for key, spec in properties.items():
            if "x-role" not in spec:
                continue
            name = f"{section}.{key}" if section else key
            value = json.dumps(values.get(key), ensure_ascii=False).replace("|", "\\|")
            what = " ".join(str(spec.get("description", "")).split()).replace("|", "\\|")
            lines.append(f"| `{name}` | {', '.join(spec['x-role'])} | `{value}` | {what} |")
    return "\n".join(lines) + "\n"
