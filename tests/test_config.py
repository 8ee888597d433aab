"""The config schema and the cross-field checks, on the shipped configs and on broken copies."""

import copy
import inspect
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from attnscore.config import ConfigError, check, check_unique_keys, typed_overrides
from attnscore.identity import model_settings
from attnscore.kinds import known_kinds
from attnscore.model import ModelConfig
from attnscore.schema import SCHEMA, canonical
from attnscore.trainer import TrainConfig
from helpers import ROOT

TEST_CONFIG = ROOT / ".test" / "config" / "config.yaml"


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("path", [*sorted((ROOT / "config").glob("*.yaml")), TEST_CONFIG], ids=lambda path: path.name)
def test_shipped_configs_are_valid(path):
    check(yaml.safe_load(path.read_text()))


def test_every_model_and_train_setting_has_a_required_config_key():
    """A ModelConfig or TrainConfig field that no config names would silently keep its default,
    unrecorded in provenance; a config key the dataclasses lack would fail only when a job runs."""
    model_fields = {f.name for f in fields(ModelConfig)} - {"vocab_size", "attention"}  # from tokenize and the variant
    train_fields = {f.name for f in fields(TrainConfig)} - {"seed"}  # from the job: one per entry of seeds
    schema = yaml.safe_load(Path(SCHEMA).read_text())["properties"]
    assert set(schema["model"]["required"]) == set(schema["model"]["properties"]) == model_fields
    assert set(schema["train"]["required"]) == set(schema["train"]["properties"]) == train_fields
    for config in (load("config.yaml"), load("demo.yaml"), yaml.safe_load(TEST_CONFIG.read_text())):
        for kind in config["variants"]:
            assert (
                vars(ModelConfig(vocab_size=64, attention=kind, **model_settings(config, kind))).keys() >= model_fields
            )
        TrainConfig(**config["train"], seed=config["seeds"][0])


def test_the_model_defaults_are_the_reference_config():
    """ModelConfig's defaults, the model a package user gets, are config/config.yaml's reference
    model (but for attention_options: a kind's options default to its register declaration)."""
    reference = {key: value for key, value in load("config.yaml")["model"].items() if key != "attention_options"}
    defaults = vars(ModelConfig(vocab_size=1))
    assert {key: defaults[key] for key in reference} == reference


def broken(path, value):
    config = load("config.yaml")
    *parents, key = path
    node = config
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[key]
    else:
        node[key] = copy.deepcopy(value)
    return config


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["train", "lr"], -1.0, "train.lr: -1.0 is less than or equal to the minimum of 0"),
        (["train", "batch_size"], "eight", "train.batch_size: 'eight' is not of type 'integer'"),
        (["train", "batch_size"], 8.0, "train.batch_size: must be an integer, not 8.0; write 8"),
        (["model", "d_model"], 32.0, "model.d_model: must be an integer, not 32.0; write 32"),
        (["tokenizer", "vocab_size"], 512.0, "tokenizer.vocab_size: must be an integer, not 512.0; write 512"),
        (["benchmark", "seq_lens"], [512, 2048.0], "benchmark.seq_lens.1: must be an integer, not 2048.0"),
        (["train", "epochs"], True, "train.epochs: True is not of type 'integer'"),
        (["train", "lr"], "1e-5", "train.lr: '1e-5' is text, not a number; write it unquoted, with a dot"),
        (["data", "name"], 3.0, "data.name: 3.0 is not of type 'string'"),
        (["data", "files"], "3", "data.files: '3' is not of type 'object', 'null'"),
        (["model", "n_layers"], 0, "model.n_layers: 0 is less than the minimum of 1"),
        (["train", "epochs"], KeyError, "train.epochs: missing; set it"),
        (
            ["train", "epoch"],
            3,
            "train.epoch: unknown key; remove it or fix its spelling \\(did you mean 'epochs'\\?\\)",
        ),
        (["train", "learning_rate"], 3, "train.learning_rate: unknown key; .*\\(known keys: seq_len, batch_size"),
        (["variants"], [], "variants: \\[\\] should be non-empty"),
        (["experiment"], "../elsewhere", "experiment: '../elsewhere' is not allowed: name of the results folder"),
        (["train", "precision"], "fp8", "train.precision: 'fp8' is not one of"),
        (["benchmark", "rounds"], 100000, "benchmark.rounds: 100000 is greater than the maximum of 100"),
        (["data", "dir"], "data/{x}", "data.dir: 'data/{x}' is not allowed: a path without { } < >"),
        (
            ["data", "files"],
            {"train": "<b>.txt", "valid": "v", "test": "t"},
            "data.files.train: '<b>.txt' is not allowed",
        ),
    ],
)
def test_schema_names_the_bad_key_and_value(path, value, message):
    with pytest.raises(ConfigError, match=message):
        check(broken(path, value))


def test_schema_problems_are_one_line_each():
    config = broken(["train", "batch_size"], 8.0)
    config["model"]["d_model"] = "big"
    del config["benchmark"]["steps"]
    with pytest.raises(ConfigError) as error:
        check(config)
    assert str(error.value).splitlines() == [
        "invalid config:",
        "  benchmark.steps: missing; set it (config/config.yaml shows every key)",
        "  model.d_model: 'big' is not of type 'integer'",
        "  train.batch_size: must be an integer, not 8.0; write 8",
    ]


def test_a_key_given_twice_is_named_with_file_and_line(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "base: &base {lr: 1.0}\ntrain:\n  <<: *base\n  lr: 2.0\n  seed: 1\n  seed: 2\nexperiment: a\nexperiment: b\n"
    )
    with pytest.raises(ConfigError) as error:
        check_unique_keys([path])
    assert str(error.value).splitlines() == [
        f"{path}, line 6: key 'seed' is given twice; keep one",
        f"{path}, line 8: key 'experiment' is given twice; keep one",
    ]  # lr, overriding a merged `<<: *base`, is not a repeat
    check_unique_keys([ROOT / "config" / "config.yaml", ROOT / "config" / "demo.yaml", TEST_CONFIG])


def test_nested_command_line_values_are_typed_like_a_config_file():
    """Snakemake reads `--config 'train={epochs: 3, lr: 1.0e-4}'` with YAML's BaseLoader: all text."""
    given = {"experiment": "x", "train": {"epochs": "3", "lr": "1.0e-4", "device": "cpu"}, "variants": ["dot"]}
    given["data"] = {"dir": "null", "name": "My corpus: v2"}
    assert typed_overrides(given) == {
        "train": {"epochs": 3, "lr": 1e-4, "device": "cpu"},
        "variants": ["dot"],
        "data": {"dir": None, "name": "My corpus: v2"},
    }


@pytest.mark.parametrize("value", ["{epochs: 3", "{epochs: 3, lr: [1", "[dot, euclid"])
def test_a_command_line_value_that_is_no_yaml_says_so_and_where(value):
    with pytest.raises(ConfigError, match=re.escape(f"--config train={value}: cannot be read as YAML (")):
        typed_overrides({"train": value})


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["variants"], ["dot", "no_such_kind"], "unknown attention kind\\(s\\) \\['no_such_kind'\\]; known: \\["),
        (["benchmark", "variants"], ["no_such_kind"], "benchmark.variants: unknown attention kind\\(s\\)"),
        (["model", "attention_options"], {"euclid": {"q": 3}}, "euclid: attention kind 'euclid' takes no option"),
        (["model", "attention_options"], {"no_such_kind": {}}, "attention_options.no_such_kind: no attention kind"),
        (["model", "attention_options"], {"euclid": {"p": 0}}, "option p: 0 is less than or equal to the minimum of 0"),
        (
            ["model", "attention_options"],
            {"euclid": {"p": -1}},
            "option p: -1 is less than or equal to the minimum of 0",
        ),
        (
            ["model", "attention_options"],
            {"euclid": {"p": float("nan")}},
            "takes a finite number for option p, not nan",
        ),
        (
            ["model", "attention_options"],
            {"euclid_naive": {"p": float("inf")}},
            "a finite number for option p, not inf",
        ),
        (
            ["model", "attention_plugins"],
            ["no_such_module"],
            "cannot find 'no_such_module' \\(no Python module by that name",
        ),
        (["model", "n_heads"], 7, "model.d_model=512 is not divisible by model.n_heads=7"),
        (["train", "seq_len"], 1024, "train.seq_len=1024 exceeds model.max_seq_len=512"),
        (["data", "corpus"], "text", "data.corpus=text needs data.dir"),
        (
            ["train"],
            {**load("config.yaml")["train"], "device": "cuda:1", "processes": 2},
            "train.device=cuda:1 puts every process on one GPU; .* set train.device to cuda",
        ),
        (
            ["data"],
            {"name": "mine", "corpus": "text", "dir": "d", "files": {"train": "a", "valid": "b", "test": "a"}},
            "data.files: train and test are one file, 'a'; each split needs its own",
        ),
    ],
)
def test_cross_field_checks_name_the_keys(path, value, message):
    config = broken(path, value)
    with pytest.raises(ConfigError, match=message):
        check(config)


@pytest.mark.parametrize(
    "sizes, message",
    [
        ({}, "sizes: {} should be non-empty"),
        ({"../up": {}}, "sizes: '../up' is not allowed: a size's name is a folder name"),
        ({1: {"d_model": 1024}}, "sizes.1: a size's name is text; quote it"),
        ({"big": {"d_modl": 1024}}, "sizes.big.d_modl: unknown key; .*did you mean 'd_model'"),
        ({"big": {"d_model": 1024.0}}, "sizes.big.d_model: must be an integer, not 1024.0; write 1024"),
        ({"big": {"n_layers": 0}}, "sizes.big.n_layers: 0 is less than the minimum of 1"),
        ({"big": {"d_model": 1020}}, "sizes.big.d_model=1020 is not divisible by model.n_heads=8"),
        ({"big": {"n_heads": 7}}, "model.d_model=512 is not divisible by sizes.big.n_heads=7"),
        ({"big": {"max_seq_len": 256}}, "train.seq_len=512 exceeds sizes.big.max_seq_len=256"),
        ({"big": {"attention_options": {}}}, "sizes.big.attention_options: the kinds' settings are the same at every"),
        ({"same": {}, "again": {"d_model": 512}}, "sizes.same and sizes.again are the same model; keep one"),
        ({"same": {}, "again": {"attention_dropout": 0.1}}, "sizes.same and sizes.again are the same model; keep one"),
        ({"same": {}, "again": {"dropout": 0.1, "d_ff": 2048}}, "sizes.same and sizes.again are the same model"),
        ({"a" * 20: {}}, "sizes.a{20}: a name ending in one part repeated 20 times or more"),
        ({"x" * 41: {}}, "is not allowed: a size's name is a folder name .*at most 40 characters"),
    ],
)
def test_each_size_is_checked_by_the_model_sections_rules(sizes, message):
    with pytest.raises(ConfigError, match=message):
        check(broken(["sizes"], sizes))


def test_a_sizes_model_is_the_model_section_with_its_keys_typed_as_there():
    config = broken(["sizes"], {"reference": {}, "wide": {"d_model": 1024, "d_ff": 4096, "dropout": 0}})
    check(config)
    config = canonical(config)
    assert config["sizes"]["wide"] == {"d_ff": 4096, "d_model": 1024, "dropout": 0.0}  # 0.0: dropout is a number
    wide = model_settings(config, "euclid", "wide")
    assert (wide["d_model"], wide["d_ff"], wide["n_layers"], wide["attention_options"]) == (1024, 4096, 6, {"p": 2})
    assert model_settings(config, "euclid", "reference") == model_settings(config, "euclid")


def test_conda_envs_pin_the_same_versions_as_requirements():
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().split() if "==" in line)
    makefile_torch = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("TORCH ?="))
    pins["torch"] = makefile_torch.split("==")[1].strip()
    for env in (ROOT / "envs").glob("*.yaml"):
        pip = next(d["pip"] for d in yaml.safe_load(env.read_text())["dependencies"] if isinstance(d, dict))
        for requirement in pip:
            name, version = requirement.split("==")
            assert pins[name] == version, f"{env.name}: {name}=={version}, requirements pin {pins[name]}"


def test_the_config_check_reads_the_registered_kinds_each_from_its_own_module():
    """The Snakefile learns kinds and their options by reading the declarations register is given
    (no torch): every registered kind, with the declaration the registry holds, from its own file."""
    from attnscore import attention

    declared, problems = known_kinds()
    assert not problems and set(declared) == set(attention.KINDS)
    for name, kind in declared.items():
        assert kind.source == Path(inspect.getsourcefile(attention.KINDS[name])) == ROOT / f"attnscore/scores/{name}.py"
        assert kind.options == attention.KINDS[name].declaration.options


PLUGIN = """
from attnscore.attention import register


@register("scaled", options={"temperature": {"type": "number", "exclusiveMinimum": 0}})
def scaled(q, k, v, causal, dropout_p, temperature):
    return q
"""


@pytest.mark.parametrize(
    "source, options, message",
    [
        (
            PLUGIN,
            {"scaled": {"temperature": "2"}},
            "attention kind 'scaled' takes a number for option temperature, not '2'",
        ),
        (PLUGIN, {"scaled": {"temperature": 0.0}}, "option temperature: 0.0 is less than or equal to the minimum of 0"),
        (PLUGIN, {"scaled": {"temperature": 2.0}}, None),
        (
            PLUGIN.replace('"scaled"', '"dot"'),
            {},
            "'{module}' registers 'dot', a kind attnscore.scores.dot \\(built in\\) registers already",
        ),
    ],
)
def test_a_plugins_options_and_name_are_checked_before_any_job(tmp_path, monkeypatch, source, options, message):
    module = f"plugin_{abs(hash((source, str(options))))}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(tmp_path)
    config = load("config.yaml")
    config["model"].update(attention_plugins=[module], attention_options=options)
    if message is None:
        check(config)
    else:
        with pytest.raises(ConfigError, match=message.format(module=module)):
            check(config)


def test_config_readme_lists_every_key_as_the_schema_declares_it():
    from attnscore.schema import keys_markdown

    assert (ROOT / "config" / "README.md").read_text() == keys_markdown(load("config.yaml")), "run make config-readme"
