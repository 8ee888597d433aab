"""The per-step log: steps.csv's rows and the TensorBoard events hold the expected steps for a short
run, exactly once each after a crash and a resume, nothing new for a run that trains nothing;
their values are the interval's mean loss, the scheduled learning rate and the unclipped norm."""

import pandas as pd
import pytest

from attnscore import steplog, train
from attnscore.files import write_csv
from attnscore.trainer import lr_factor
from helpers import events, tiny_run_folder, tiny_training, train_config

# 63 steps an epoch: rows every 10 steps and at each epoch's end, counted over the run.
LOGGED = [10, 20, 30, 40, 50, 60, 63, 73, 83, 93, 103, 113, 123, 126]


def board_folder(tmp_path, token_files, **settings):
    """The one run folder under tmp_path/tb, as train() names it (tensorboard_dir/<run id>)."""
    return tmp_path / "tb" / tiny_run_folder(token_files, tmp_path / "ckpt", **settings).name


def test_a_short_run_logs_every_interval_and_epoch_once(token_files, tmp_path):
    state = tiny_training(token_files, tmp_path / "ckpt", tensorboard_dir=tmp_path / "tb", log_every=10)
    assert [row["step"] for row in state.steps] == LOGGED
    assert [row["epoch"] for row in state.steps] == [1] * 7 + [2] * 7
    write_csv(state.steps, tmp_path / "steps.csv", steplog.COLUMNS)
    table = pd.read_csv(tmp_path / "steps.csv")
    assert list(table.columns) == list(steplog.COLUMNS) and list(table["step"]) == LOGGED
    assert (table["train_loss"] > 0).all() and (table["grad_norm"] > 0).all() and (table["tokens_per_s"] > 0).all()
    assert table["train_loss"].iloc[-1] < table["train_loss"].iloc[0]  # it learns
    assert (table["lr"] == 3e-3).all()  # the reference's constant rate

    scalars = events(board_folder(tmp_path, token_files, log_every=10))
    # the tiny config sets train.eval_every
    tags = {*steplog.STEP_TAGS.values(), *steplog.EPOCH_TAGS.values(), *steplog.CURVE_TAGS.values()}
    assert set(scalars) == tags
    for key, tag in steplog.STEP_TAGS.items():
        assert [step for step, _ in scalars[tag]] == LOGGED, tag
        assert [value for _, value in scalars[tag]] == pytest.approx(list(table[key]), rel=1e-6), tag
    for key, tag in steplog.EPOCH_TAGS.items():
        assert scalars[tag] == [
            (63, pytest.approx(state.history[0][key], rel=1e-6)),
            (126, pytest.approx(state.history[1][key], rel=1e-6)),
        ]


def test_one_interval_an_epoch_is_the_epochs_training_loss(token_files, tmp_path):
    state = tiny_training(token_files, tmp_path, log_every=1000)
    assert [row["step"] for row in state.steps] == [63, 126]
    for row, epoch in zip(state.steps, state.history, strict=True):
        assert row["train_loss"] == pytest.approx(epoch["train_loss"], rel=1e-12)


def test_rows_hold_the_scheduled_learning_rate_and_the_norm_before_clipping(token_files, tmp_path):
    settings = dict(schedule="cosine", warmup_steps=20, grad_clip=1e-6, log_every=7)
    state = tiny_training(token_files, tmp_path, **settings)
    cfg = train_config(lr=3e-3, **settings)
    for row in state.steps:  # the rate after the row's step: the next step's
        assert row["lr"] == pytest.approx(3e-3 * lr_factor(row["step"], cfg, 126), rel=1e-12)
    assert state.steps[-1]["lr"] == pytest.approx(3e-4)  # the last step: the final fraction, 0.1
    assert min(row["grad_norm"] for row in state.steps) > 1e-3  # measured before clipping to 1e-6


def test_after_a_crash_and_a_resume_every_step_is_logged_exactly_once(token_files, tmp_path, monkeypatch):
    """A crash at step 100 leaves checkpoints up to step 88 (every 25 steps: mid-interval) and
    events up to step 93; the resumed run logs 93 again, and readers keep only the new one."""
    settings = dict(log_every=10, checkpoint_every=25)
    reference = tiny_training(token_files, tmp_path / "reference", **settings)
    real_step, calls = train.Trainer.step, []

    def crash_at_step_100(self, x, y):
        calls.append(1)
        if len(calls) == 100:
            raise RuntimeError("killed")
        return real_step(self, x, y)

    monkeypatch.setattr(train.Trainer, "step", crash_at_step_100)
    with pytest.raises(RuntimeError, match="killed"):
        tiny_training(token_files, tmp_path / "ckpt", tensorboard_dir=tmp_path / "tb", **settings)
    folder = board_folder(tmp_path, token_files, **settings)
    assert [step for step, _ in events(folder)["loss/train"]] == LOGGED[:10]  # ... 83, 93: one beyond the checkpoint
    monkeypatch.setattr(train.Trainer, "step", real_step)

    messages = []
    resumed = tiny_training(
        token_files, tmp_path / "ckpt", log=messages.append, tensorboard_dir=tmp_path / "tb", **settings
    )
    assert any("(epoch 2, step 25)" in m for m in messages if m.startswith("resuming from"))
    assert [row["step"] for row in resumed.steps] == LOGGED

    def without_speed(rows):
        return [{k: v for k, v in row.items() if k != "tokens_per_s"} for row in rows]

    assert without_speed(resumed.steps) == without_speed(reference.steps)  # mid-interval sums resumed
    scalars = events(folder)
    for tag in steplog.STEP_TAGS.values():
        assert [step for step, _ in scalars[tag]] == LOGGED, tag
    assert [value for _, value in scalars["loss/train"]] == pytest.approx(
        [row["train_loss"] for row in reference.steps], rel=1e-6
    )
    assert [step for step, _ in scalars["loss/valid"]] == [63, 126]


def test_a_run_that_trains_nothing_writes_nothing_and_returns_its_log(token_files, tmp_path):
    first = tiny_training(token_files, tmp_path / "ckpt", tensorboard_dir=tmp_path / "tb")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "tb").rglob("*")}
    again = tiny_training(token_files, tmp_path / "ckpt", tensorboard_dir=tmp_path / "tb")
    assert again.steps == first.steps and again.history == first.history
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "tb").rglob("*")} == before
    shorter = tiny_training(token_files, tmp_path / "ckpt", tensorboard_dir=tmp_path / "tb", epochs=1)
    assert shorter.steps == [row for row in first.steps if row["epoch"] == 1] and shorter.steps[-1]["step"] == 63


def test_a_run_starting_afresh_replaces_the_events_its_folder_held(token_files, tmp_path):
    tiny_training(token_files, tmp_path / "old", tensorboard_dir=tmp_path / "tb", epochs=1)
    folder = board_folder(tmp_path, token_files, epochs=1)
    (old,) = folder.glob("events.out.tfevents.*")
    messages = []
    tiny_training(token_files, tmp_path / "new", log=messages.append, tensorboard_dir=tmp_path / "tb", epochs=1)
    assert not old.exists() and f"removing {old}: this run starts from its first step" in messages
    assert [step for step, _ in events(folder)["loss/train"]] == LOGGED[:7]
