"""Checks on a config before any job runs: its files (no key given twice), the schema (read
strictly: 8.0 is not an integer) and the cross-field rules a schema cannot express. Each problem
is one line naming the key or file and what to do. Imports no torch: the Snakefile runs this on every dry run."""

import difflib
import itertools
import json
import re

import yaml
from jsonschema import Draft202012Validator, validators

from attnscore import schema
from attnscore.identity import NOT_PER_SIZE
from attnscore.kinds import known_kinds, options_problem


class ConfigError(ValueError):
    pass


class _RepeatNotingLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML's safe loader noting each key given twice in one mapping (PyYAML keeps the last)."""

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
    """Fail naming the file, line and key wherever a config file gives a key twice."""
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
    """The nested values of `--config` (e.g. train={epochs: 3}) typed as a config file types them:
    Snakemake's YAML BaseLoader leaves every nested scalar text ('3'), which the schema refuses."""
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


# A JSON-schema validator whose "integer" is an int: JSON Schema counts 8.0 as one, but sizes
# reach range() and torch, which refuse floats.
_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


def _describe(error, prefix=()) -> list[str]:
    """One line per problem of a jsonschema error, naming the key (below `prefix`)."""
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


def schema_problems(config: dict, spec: dict | None = None, prefix=()) -> list[str]:
    """The problems of a config by the schema (of a part of one by its `spec`, named below `prefix`)."""
    errors = _StrictValidator(spec or schema.load()).iter_errors(config)
    return sorted({line for error in errors for line in _describe(error, prefix)})


def check_attention(model: dict, kinds_used: list) -> list[str]:
    """Problems with the kinds a config uses, their options and the plugins providing them."""
    kinds, problems = known_kinds(model["attention_plugins"])
    known, options = sorted(kinds), model["attention_options"]
    for key, names in kinds_used:
        unknown = [name for name in names if name not in kinds]
        if unknown:
            problems.append(f"{key}: unknown attention kind(s) {unknown}; known: {known}")
    for kind in sorted(options.keys() - kinds.keys()):
        problems.append(f"model.attention_options.{kind}: no attention kind {kind!r}; known: {known}")
    for kind in sorted((options.keys() | {name for _, names in kinds_used for name in names}) & kinds.keys()):
        problem = options_problem(kind, kinds[kind], options.get(kind, {}))
        if problem:
            problems.append(f"model.attention_options.{kind}: {problem}")
    return problems


def check(config: dict) -> None:
    """Raise ConfigError listing every problem: the schema's, else the cross-field ones (which
    need a config the schema accepts)."""
    problems = schema_problems(config) or cross_field_problems(config)
    if problems:  # a size inherits the model section's problems: each is named once
        raise ConfigError("invalid config:\n  " + "\n  ".join(dict.fromkeys(problems)))


def cross_field_problems(config: dict) -> list[str]:
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
    """Problems of a model involving several keys, each named where the config sets it: sizes.<size>.<key>
    for the `overrides` of a size, else model.<key>."""

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


def size_problems(config: dict) -> list[str]:
    """Problems of each size's model (the model section with the size's keys), by the model's
    schema and cross-field rules; and two sizes that are one model (they would train the same runs twice)."""
    root = schema.load()
    model_schema = {**root["properties"]["model"], "definitions": root["definitions"]}
    problems, seen = [], {}
    for size, overrides in config.get("sizes", {}).items():
        if not isinstance(size, str):  # YAML reads `1:` as a number, which the name pattern never sees
            problems.append(f"sizes.{size}: a size's name is text; quote it ('{size}') or start it with a letter")
            continue
        if re.search(r"(.+)\1{19,}$", size):  # Snakemake's test for a wildcard recursing into itself
            problems.append(f"sizes.{size}: a name ending in one part repeated 20 times or more; choose another")
        problems += [
            f"sizes.{size}.{key}: the kinds' settings are the same at every size; set model.{key} instead"
            for key in NOT_PER_SIZE
            if key in overrides
        ]
        model = {**config["model"], **overrides}
        found = schema_problems(model, model_schema, ("sizes", size))
        if found:
            problems += found
            continue
        problems += model_problems(model, config["train"], size, overrides)
        built = schema.canonical(model, root["properties"]["model"])  # the model it builds
        if built["attention_dropout"] is None:  # null is model.dropout
            built["attention_dropout"] = built["dropout"]
        same = seen.setdefault(json.dumps(built, sort_keys=True), size)
        if same != size:
            problems.append(f"sizes.{same} and sizes.{size} are the same model; keep one")
    return problems


def text_option_problems(value, key="model.attention_options") -> list[str]:
    """Text options that are not plain words: they reach job params, logs and the report."""
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return [problem for name, item in items for problem in text_option_problems(item, f"{key}.{name}")]
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_.+-]*", value):
        return [f"{key}: {value!r}: a text option takes letters, digits and . _ + - only"]
    return []
