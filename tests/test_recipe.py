"""Training-recipe options: the learning-rate schedule against its formula, AdamW's parameter
groups and its decoupled decay, a resumed run under them, and what enters the run id."""

import math
import signal

import pytest
import torch

from attnscore import checkpoints, train
from attnscore.model import ModelConfig
from attnscore.train import TrainingInterrupted
from attnscore.trainer import TrainConfig, Trainer, lr_factor
from helpers import TINY, tiny_run, tiny_run_folder, train_config, without_timing

MODERN = dict(optimizer="adamw", schedule="cosine", warmup_steps=10, min_lr_ratio=0.1, weight_decay=0.1, grad_clip=1.0)


@pytest.mark.parametrize(
    "schedule, step, expected",
    [
        ("cosine", 0, 1 / 4),  # warm-up: (step + 1) / warmup_steps
        ("cosine", 2, 3 / 4),
        ("cosine", 3, 1.0),  # the last warm-up step reaches the peak
        ("cosine", 4, 1.0),  # the decay starts at the peak
        ("cosine", 12, 0.1 + 0.9 * 0.5),  # half-way through the 16 steps of decay: cos(pi / 2) = 0
        ("cosine", 8, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))),
        ("cosine", 20, 0.1),  # the run's last step: the final fraction
        ("cosine", 25, 0.1),  # beyond the run (none trained): no further change
        ("constant", 0, 1 / 4),
        ("constant", 4, 1.0),
        ("constant", 20, 1.0),
    ],
)
def test_learning_rate_at_chosen_steps_follows_its_formula(schedule, step, expected):
    cfg = train_config(schedule=schedule, warmup_steps=4, min_lr_ratio=0.1)
    assert lr_factor(step, cfg, total_steps=21) == pytest.approx(expected, abs=1e-12)


def test_the_reference_learning_rate_is_exactly_lr_at_every_step():
    assert all(lr_factor(step, train_config(lr=1e-5), 100) == 1.0 for step in range(100))


def stepped_lrs(cfg: TrainConfig, total_steps: int) -> list[float]:
    """The learning rate each optimizer step of a Trainer used."""
    trainer = Trainer(ModelConfig(vocab_size=64, **TINY), cfg, total_steps=total_steps)
    x = torch.randint(64, (2, 8))
    lrs = []
    trainer.optimizer.register_step_pre_hook(lambda optimizer, *_: lrs.append(optimizer.param_groups[0]["lr"]))
    for _ in range(total_steps):
        trainer.step(x, x)
    return lrs


def test_the_optimizer_steps_at_the_scheduled_learning_rates():
    cfg = train_config(lr=1e-3, **{**MODERN, "warmup_steps": 3})
    lrs = stepped_lrs(cfg, total_steps=13)
    expected = [1e-3 * lr_factor(step, cfg, 13) for step in range(13)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[0] == pytest.approx(1e-3 / 3) and lrs[2] == lrs[3] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-4)
    assert stepped_lrs(train_config(lr=1e-3), 5) == [1e-3] * 5


@pytest.mark.parametrize("tie", [False, True])
def test_adamw_decays_linear_weights_only(tie):
    model_cfg = ModelConfig(vocab_size=64, positions="learned", tie_embeddings=tie, **TINY)
    trainer = Trainer(model_cfg, train_config(**MODERN), total_steps=10)
    decayed, kept = trainer.optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and kept["weight_decay"] == 0.0
    names = {id(p): name for name, p in trainer.model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    kept_names = {names[id(p)] for p in kept["params"]}
    linear = {f"blocks.{i}.{layer}.weight" for i in range(2) for layer in ("attn.qkv", "attn.proj", "ff.0", "ff.2")}
    assert decayed_names == linear | (set() if tie else {"head.weight"})
    assert kept_names == set(names.values()) - decayed_names
    assert {"tok_emb.weight", "pos_emb.weight", "ln_f.weight", "ln_f.bias", "blocks.0.ln1.weight"} <= kept_names
    assert all(name.endswith(".bias") or "ln" in name or "emb" in name for name in kept_names)
    assert not tie or "head.weight" not in names.values()  # tied: one matrix, the embedding's, not decayed


def test_adamw_weight_decay_is_decoupled_from_the_gradient():
    """With zero gradients Adam's update is zero, so only the decay moves a weight: by the factor
    1 - lr x weight_decay on the decayed matrices, not at all elsewhere."""
    cfg = train_config(lr=1e-2, **{**MODERN, "warmup_steps": 0})
    trainer = Trainer(ModelConfig(vocab_size=64, **TINY), cfg, total_steps=10)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    for p in trainer.model.parameters():
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()
    for name, p in trainer.model.named_parameters():
        factor = 1 - 1e-2 * 0.1 if name.endswith("weight") and ("attn" in name or "ff" in name or "head" in name) else 1
        torch.testing.assert_close(p.detach(), before[name] * factor, rtol=1e-6, atol=0)


def test_a_run_under_the_modern_recipe_resumes_to_identical_metrics(token_files, tmp_path, monkeypatch):
    reference = tiny_run(token_files, tmp_path / "reference", **MODERN)
    real_step, calls = train.Trainer.step, []

    def step_then_sigterm(self, x, y):
        calls.append(1)
        if len(calls) == 70:  # in epoch 2 (63 steps an epoch), the schedule mid-decay
            signal.raise_signal(signal.SIGTERM)
        return real_step(self, x, y)

    monkeypatch.setattr(train.Trainer, "step", step_then_sigterm)
    with pytest.raises(TrainingInterrupted):
        tiny_run(token_files, tmp_path / "resumed", **MODERN)
    monkeypatch.setattr(train.Trainer, "step", real_step)
    assert without_timing(tiny_run(token_files, tmp_path / "resumed", **MODERN)) == without_timing(reference)
    lrs = [row["lr"] for row in reference]
    assert lrs[0] < 3e-3 and lrs[1] == pytest.approx(3e-3 * 0.1)  # epoch ends: mid-decay, then the final fraction


def test_the_schedule_decides_what_of_the_recipe_is_in_the_run_id(token_files, tmp_path):
    def folder(**settings):
        return tiny_run_folder(token_files, tmp_path, **settings)

    assert folder(min_lr_ratio=0.5) == folder()  # constant: the final fraction changes nothing
    assert folder(epochs=3) == folder()  # constant: more epochs continue the run
    cosine = dict(schedule="cosine")
    assert folder(**cosine, min_lr_ratio=0.5) != folder(**cosine)
    assert folder(**cosine, epochs=3) != folder(**cosine)  # the decay spans the epochs
    assert folder(**cosine, log_every=3) == folder(**cosine)  # logging changes no weight
    for setting in (dict(optimizer="adamw"), dict(warmup_steps=5), cosine):
        assert folder(**setting) != folder()


def test_checkpoints_hold_the_schedule(token_files, tmp_path):
    tiny_run(token_files, tmp_path, epochs=1, **MODERN)
    saved = checkpoints.load(tiny_run_folder(token_files, tmp_path, epochs=1, **MODERN) / "last.pt")
    trainer = saved["trainer"]
    assert trainer["scheduler"]["last_epoch"] == 63 and trainer["optimizer"]["param_groups"][0]["weight_decay"] == 0.1
