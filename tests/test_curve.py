"""The validation curve inside epochs (train.eval_every, train.eval_batches): where its points
fall, what each evaluates, that recording it changes no weight, and that it is exact across a
crash and a resume, in the state and in TensorBoard."""

import pytest
import torch

from attnscore import checkpoints, train
from attnscore.evaluation import evaluate
from attnscore.model import DecoderLM, ModelConfig
from attnscore.tokens import load_tokens
from helpers import TINY, events, tiny_run_folder, tiny_training, train_config, without_timing

# tiny_training: 63 steps an epoch, 2 epochs. Every 10 steps, the first step and each epoch's end.
CURVE_STEPS = [0, 10, 20, 30, 40, 50, 60, 63, 70, 80, 90, 100, 110, 120, 126]


def weights(token_files, checkpoint_dir, epoch, **settings):
    folder = tiny_run_folder(token_files, checkpoint_dir, **settings)
    return checkpoints.load_epoch(folder, epoch)["model"]


def test_evaluating_inside_epochs_changes_no_weight_and_no_metric(token_files, tmp_path):
    without = tiny_training(token_files, tmp_path / "without", eval_every=0)
    with_curve = tiny_training(token_files, tmp_path / "with", eval_every=7, eval_batches=3)
    assert without_timing(with_curve.history) == without_timing(without.history)
    assert [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in with_curve.steps] == [
        {k: v for k, v in r.items() if k != "tokens_per_s"} for r in without.steps
    ]
    for epoch in (1, 2):
        ours = weights(token_files, tmp_path / "with", epoch, eval_every=7, eval_batches=3)
        theirs = weights(token_files, tmp_path / "without", epoch, eval_every=0)
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[name], theirs[name]) for name in ours), f"epoch {epoch}"


def test_the_curve_has_a_point_every_eval_every_steps_the_first_step_and_each_epochs_end(token_files, tmp_path):
    state = tiny_training(token_files, tmp_path / "ckpt", eval_every=10, eval_batches=2)
    assert [point["step"] for point in state.curve] == CURVE_STEPS
    assert [point["epoch"] for point in state.curve] == [1] * 8 + [2] * 7
    assert state.curve[0]["valid_loss"] > state.curve[-1]["valid_loss"]  # it learns


def test_each_point_evaluates_the_first_eval_batches_windows_of_batch_size_rows(token_files, tmp_path):
    cfg = train_config(seq_len=16, batch_size=4, eval_every=10, eval_batches=2)
    matrix = train.curve_windows(load_tokens(token_files["valid"]), cfg)
    assert matrix.shape == (4, 2 * 16 + 1)  # two windows of 16 predictions, the targets one ahead
    state = tiny_training(token_files, tmp_path / "ckpt", eval_every=10, eval_batches=2, epochs=1)
    model = DecoderLM(ModelConfig(vocab_size=64, **TINY))
    model.load_state_dict(checkpoints.load_epoch(tiny_run_folder(token_files, tmp_path / "ckpt", epochs=1,
                                                                  eval_every=10, eval_batches=2), 1)["model"])  # fmt: skip
    nll, count = evaluate(model, matrix, 16, None)
    assert count == 4 * 2 * 16
    assert state.curve[-1]["valid_loss"] == pytest.approx(nll / count, rel=1e-6)
    everything = train.curve_windows(load_tokens(token_files["valid"]), train_config(batch_size=4, eval_batches=0))
    assert everything.shape == (4, 250)


def test_without_eval_every_the_curve_is_each_epochs_validation_loss(token_files, tmp_path):
    state = tiny_training(token_files, tmp_path / "ckpt", eval_every=0)
    assert [(p["step"], p["epoch"], p["valid_loss"]) for p in state.curve] == [
        (63, 1, state.history[0]["valid_loss"]),
        (126, 2, state.history[1]["valid_loss"]),
    ]
    again = tiny_training(token_files, tmp_path / "ckpt", eval_every=0, eval_batch_size=2)  # evaluated again
    assert [p["valid_loss"] for p in again.curve] == [row["valid_loss"] for row in again.history]
    assert again.curve[0]["valid_loss"] != state.curve[0]["valid_loss"]


def test_after_a_crash_and_a_resume_the_curve_is_exact_and_each_point_shows_once(token_files, tmp_path, monkeypatch):
    settings = dict(eval_every=10, eval_batches=2, checkpoint_every=25)
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
    monkeypatch.setattr(train.Trainer, "step", real_step)
    resumed = tiny_training(token_files, tmp_path / "ckpt", tensorboard_dir=tmp_path / "tb", **settings)
    assert resumed.curve == reference.curve
    folder = tmp_path / "tb" / tiny_run_folder(token_files, tmp_path / "ckpt", **settings).name
    points = events(folder)["loss/valid_curve"]
    assert [step for step, _ in points] == CURVE_STEPS
    assert [value for _, value in points] == pytest.approx([p["valid_loss"] for p in reference.curve], rel=1e-6)


def test_cutting_a_run_cuts_its_curve(token_files, tmp_path):
    tiny_training(token_files, tmp_path / "ckpt", eval_every=10, eval_batches=2, epochs=2)
    cut = tiny_training(token_files, tmp_path / "ckpt", eval_every=10, eval_batches=2, epochs=1)
    assert [p["step"] for p in cut.curve] == CURVE_STEPS[:8]
