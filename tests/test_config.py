"""The config schema and the cross-field checks, on the shipped configs and on broken copies."""

import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from attnscore.config import ConfigError, check
from helpers import ROOT

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_shipped_configs_are_valid(name):
    config = load(name)
    validate(config, SCHEMA)
    check(config)


def test_default_config_is_the_reference_experiment():
    config = load("config.yaml")
    assert config["data"]["corpus"] == "wikitext-2" and config["tokenizer"]["kind"] == "gpt2"
    assert {k: config["model"][k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "dropout")} == {
        "d_model": 512, "n_layers": 6, "n_heads": 8, "d_ff": 2048, "dropout": 0.1,
    }  # fmt: skip
    t = config["train"]
    assert (t["seq_len"], t["batch_size"], t["epochs"], t["lr"], t["betas"], t["eps"]) == (
        512,
        8,
        20,
        1e-5,
        [0.9, 0.98],
        1e-9,
    )
    assert config["variants"] == ["dot", "euclid"]


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
        (["train", "lr"], -1.0, "-1.0 is less than or equal to the minimum of 0"),
        (["train", "batch_size"], "eight", "'eight' is not of type 'integer'"),
        (["model", "n_layers"], 0, "0 is less than the minimum of 1"),
        (["train", "epochs"], KeyError, "'epochs' is a required property"),
        (["train", "epoch"], 3, "Additional properties are not allowed \\('epoch' was unexpected\\)"),
        (["variants"], [], "should be non-empty"),
        (["experiment"], "../elsewhere", "does not match"),
        (["train", "precision"], "fp8", "'fp8' is not one of"),
    ],
)
def test_schema_names_the_bad_key_and_value(path, value, message):
    with pytest.raises(WorkflowError, match=message):
        validate(broken(path, value), SCHEMA)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["variants"], ["dot", "no_such_kind"], "unknown attention kind\\(s\\) \\['no_such_kind'\\]; known: \\["),
        (["benchmark", "variants"], ["no_such_kind"], "benchmark.variants: unknown attention kind\\(s\\)"),
        (["model", "attention_options"], {"euclid": {"q": 3}}, "euclid: attention kind 'euclid' takes no option"),
        (["model", "attention_options"], {"no_such_kind": {}}, "attention_options.no_such_kind: no attention kind"),
        (["model", "attention_plugins"], ["no_such_module"], "cannot import 'no_such_module' \\(ModuleNotFoundError"),
        (["model", "n_heads"], 7, "model.d_model=512 is not divisible by model.n_heads=7"),
        (["train", "seq_len"], 1024, "train.seq_len=1024 exceeds model.max_seq_len=512"),
        (["data", "corpus"], "text", "data.corpus=text needs data.dir"),
    ],
)
def test_cross_field_checks_name_the_keys(path, value, message):
    config = broken(path, value)
    validate(config, SCHEMA)
    with pytest.raises(ConfigError, match=message):
        check(config)


def test_conda_envs_pin_the_same_versions_as_requirements():
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().split() if "==" in line)
    makefile_torch = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("TORCH ?="))
    pins["torch"] = makefile_torch.split("==")[1].strip()
    for env in (ROOT / "envs").glob("*.yaml"):
        pip = next(d["pip"] for d in yaml.safe_load(env.read_text())["dependencies"] if isinstance(d, dict))
        for requirement in pip:
            name, version = requirement.split("==")
            assert pins[name] == version, f"{env.name}: {name}=={version}, requirements pin {pins[name]}"
