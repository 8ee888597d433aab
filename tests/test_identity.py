"""attnscore.identity: each rule's settings and a run's identity, derived from the schema's roles."""

import pytest

from attnscore import identity, schema
from helpers import tiny_config

CODE = {"kind dot": "0123"}


def run_of(config: dict, seed: int = 1) -> dict:
    model = identity.model_settings(config, "dot") | {"vocab_size": 64, "attention": "dot"}
    return identity.run_settings(model, config["train"] | {"seed": seed}, CODE)


def test_every_train_key_is_a_rule_setting_or_procedure_never_both():
    config = tiny_config()
    settings, procedure = identity.train_settings(config), identity.procedure_settings(config)
    assert settings.keys() | procedure.keys() == config["train"].keys() and not settings.keys() & procedure.keys()
    assert identity.train_keys(config, "evaluation").keys() <= settings.keys()
    assert set(procedure) == {key for key, has in schema.roles("train").items() if set(has) <= {"procedure", "timing"}}


def test_run_ids_ignore_key_order_and_how_a_number_was_written(tmp_path):
    tokens = {"train": tmp_path / "train.npy"}
    tokens["train"].write_bytes(b"tokens")
    config = tiny_config()
    written = tiny_config(train={"weight_decay": 0, "betas": [0.9, 1]}, model={"dropout": 0})
    config["train"] |= {"weight_decay": 0.0, "betas": [0.9, 1.0]}
    config["model"]["dropout"] = 0.0
    reversed_train = dict(reversed(list(written["train"].items())))
    run = identity.run_id(run_of(config), tokens)
    assert run == identity.run_id(run_of(written | {"train": reversed_train}), tokens)
    tokens["train"].write_bytes(b"other tokens")  # the same settings on other data: another run
    assert identity.run_id(run_of(config), tokens) != run


@pytest.mark.parametrize(
    "change, same",
    [
        ({"epochs": 9}, True),  # a constant schedule's run is continued or cut, not a new run
        ({"eval_batch_size": 2}, True),
        ({"checkpoint_every": 3, "log_every": 1, "compile": True}, True),
        ({"min_lr_ratio": 0.5}, True),  # changes nothing under a constant schedule
        ({"lr": 1.0e-2}, False),
        ({"max_steps_per_epoch": 3}, False),
        ({"precision": "bf16"}, False),
    ],
)
def test_a_run_is_what_makes_its_weights(change, same):
    config = tiny_config(train={"schedule": "constant"})
    assert (run_of(config) == run_of(tiny_config(train={"schedule": "constant", **change}))) is same


def test_a_cosine_schedule_spans_the_run_so_its_epochs_and_floor_are_part_of_it():
    cosine = tiny_config(train={"schedule": "cosine"})
    assert run_of(cosine) != run_of(tiny_config(train={"schedule": "cosine", "epochs": 9}))
    assert run_of(cosine) != run_of(tiny_config(train={"schedule": "cosine", "min_lr_ratio": 0.5}))


def test_the_seed_and_the_code_are_part_of_a_run():
    config = tiny_config()
    assert run_of(config, seed=1) != run_of(config, seed=2)
    model = identity.model_settings(config, "dot") | {"vocab_size": 64, "attention": "dot"}
    train = config["train"] | {"seed": 1}
    assert identity.run_settings(model, train, CODE) != identity.run_settings(model, train, {"kind dot": "4567"})


def test_one_baseline_for_quality_and_cost():
    assert identity.baseline(["euclid", "dot"]) == "dot"
    assert identity.baseline(["euclid", "cosine"]) == "euclid"


def test_text_for_the_report_cannot_end_its_script_element():
    assert "<" not in identity.script_safe("</script><b>") and "&" not in identity.script_safe("a & b")


def test_the_empty_size_is_the_model_section():
    assert identity.model_settings(tiny_config(), "dot", "") == identity.model_settings(tiny_config(), "dot")
