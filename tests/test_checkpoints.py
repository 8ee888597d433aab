"""Training state on disk: what was trained is never trained again nor lost, a diverged run
stops saying which good checkpoint is kept, unusable files are never used, another job's folder
is refused, and writes are whole, flushed, readable as the umask says, and report a full disk."""

import errno
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from attnscore import checkpoints, files, train
from attnscore.checkpoints import UnreadableCheckpoint
from attnscore.evaluation import evaluate_checkpoint, perplexity
from attnscore.trainer import TrainingDiverged
from helpers import ROOT, tiny_run, tiny_run_folder, without_timing, write_token_files

EVALUATION = dict(seq_len=16, eval_batch_size=4, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 3-epoch run: its token files, checkpoint folder and history."""
    folder = tmp_path_factory.mktemp("trained")
    token_files = write_token_files(folder)
    return token_files, folder / "ckpt", tiny_run(token_files, folder / "ckpt", epochs=3)


@pytest.fixture
def finished(trained, tmp_path):
    """A copy of the finished run's checkpoint folder to change: token files, folder, run folder, history."""
    token_files, checkpoint_dir, history = trained
    shutil.copytree(checkpoint_dir, tmp_path / "ckpt")
    return token_files, tmp_path / "ckpt", tiny_run_folder(token_files, tmp_path / "ckpt"), history


@pytest.fixture
def no_training(monkeypatch):
    def step(*_):
        raise AssertionError("trained a step")

    monkeypatch.setattr(train.Trainer, "step", step)


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in Path(folder).rglob("*") if p.is_file()}


def test_finished_run_returns_its_history_without_training(finished, no_training):
    token_files, checkpoint_dir, _, history = finished
    messages = []
    assert tiny_run(token_files, checkpoint_dir, epochs=3, log=messages.append) == history
    assert any(m.startswith("nothing to train: ") and "has reached train.epochs=3" in m for m in messages)


def test_fewer_epochs_give_the_first_ones_and_their_best_model_without_training(finished, no_training, tmp_path):
    token_files, checkpoint_dir, folder, history = finished
    assert tiny_run(token_files, checkpoint_dir, epochs=2) == history[:2]
    checkpoints.export_best(folder, history[:2], tmp_path / "model.pt")
    assert checkpoints.load(tmp_path / "model.pt", checkpoints.MODEL_KEYS)["epoch"] == 2  # of 3, the best being 3
    assert tiny_run(token_files, checkpoint_dir, epochs=3) == history  # the third epoch is still there


def test_changed_eval_batch_size_evaluates_the_saved_epochs_again_without_training(finished, monkeypatch):
    token_files, checkpoint_dir, _, history = finished
    fresh = tiny_run(token_files, checkpoint_dir.parent / "fresh", epochs=3, eval_batch_size=2)
    monkeypatch.setattr(train.Trainer, "step", lambda *_: pytest.fail("trained a step"))
    messages = []
    again = tiny_run(token_files, checkpoint_dir, epochs=3, eval_batch_size=2, log=messages.append)
    assert without_timing(again) == without_timing(fresh) != without_timing(history)
    assert [row["elapsed_s"] for row in again] == [row["elapsed_s"] for row in history]  # the training's own
    assert "train.eval_batch_size changed from 4 to 2: evaluating each saved epoch again" in messages


def test_other_settings_train_in_their_own_folder_and_leave_the_old_one_alone(finished, monkeypatch):
    token_files, checkpoint_dir, folder, history = finished
    before, messages = snapshot(folder), []
    tiny_run(token_files, checkpoint_dir, epochs=1, lr=1e-3, log=messages.append)
    new = tiny_run_folder(token_files, checkpoint_dir, lr=1e-3)
    assert new != folder and (new / "last.pt").exists() and snapshot(folder) == before
    assert f"training from the start in {new}" in messages
    assert f"the checkpoints of other settings, data or code stay in {folder}" in messages
    monkeypatch.setattr(train.Trainer, "step", lambda *_: pytest.fail("trained a step"))
    assert tiny_run(token_files, checkpoint_dir, epochs=3) == history  # back to the old settings


def test_nan_validation_loss_stops_the_run_before_anything_is_saved(token_files, tmp_path):
    message = (
        "the run diverged: the validation loss became NaN/inf in epoch 1, by step 1; there is no earlier checkpoint of "
        "this run. Attention kind 'dot' at train.lr=1e+06, precision fp32: lower train.lr, or check the kind's numerics"
    )
    with pytest.raises(TrainingDiverged, match=re.escape(message)):
        tiny_run(token_files, tmp_path / "ckpt", lr=1e6, max_steps_per_epoch=1)  # the reviewer's case


def test_a_finite_loss_worse_than_a_uniform_guess_is_divergence_and_nothing_is_saved(token_files, tmp_path):
    """lr 3 blows the tiny model up without a NaN: losses of hundreds of nats/token, where a uniform
    guess over its 64 tokens costs log(64) = 4.16."""
    with pytest.raises(
        TrainingDiverged,
        match=r"the run diverged: the \w+ loss is [\d.e+]+ nats/token, worse than a uniform guess \(4.16\) by over 1 .*train.lr=3",
    ):
        tiny_run(token_files, tmp_path / "ckpt", lr=3.0)
    assert not list((tmp_path / "ckpt").rglob("*.pt"))


def test_a_warm_up_no_shorter_than_the_run_is_refused_before_training(token_files, tmp_path):
    with pytest.raises(
        train.SettingCannotAct, match=r"train.warmup_steps=126 is not shorter than this run's 126 optimizer steps"
    ):
        tiny_run(token_files, tmp_path / "ckpt", warmup_steps=126)
    assert not list(tiny_run_folder(token_files, tmp_path / "ckpt", lr=1e6, max_steps_per_epoch=1).glob("*.pt"))


def test_nan_validation_loss_keeps_the_last_good_checkpoint(finished, monkeypatch):
    token_files, checkpoint_dir, folder, history = finished
    good = (folder / "last.pt").read_bytes()
    real_evaluate = train.evaluate
    monkeypatch.setattr(train, "evaluate", lambda *args: (math.nan, real_evaluate(*args)[1]))
    kept = f"the last good checkpoint, {folder / 'last.pt'} (end of epoch 3), is kept"
    with pytest.raises(
        TrainingDiverged, match=re.escape(f"the validation loss became NaN/inf in epoch 4, by step 63; {kept}")
    ):
        tiny_run(token_files, checkpoint_dir, epochs=4)
    assert (folder / "last.pt").read_bytes() == good and not (folder / "epoch4.pt").exists()


def test_nan_training_loss_keeps_the_last_good_checkpoint(finished, monkeypatch):
    token_files, checkpoint_dir, folder, _ = finished
    good = (folder / "last.pt").read_bytes()
    real_step, calls = train.Trainer.step, []

    def nan_on_fifth_step(self, x, y):
        calls.append(1)
        nll, norm = real_step(self, x, y)
        return (nll * float("nan") if len(calls) == 5 else nll), norm

    monkeypatch.setattr(train.Trainer, "step", nan_on_fifth_step)
    kept = f"the last good checkpoint, {folder / 'last.pt'} (end of epoch 3), is kept"
    with pytest.raises(
        TrainingDiverged, match=re.escape(f"the training loss became NaN/inf in epoch 4, by step 20; {kept}")
    ):
        tiny_run(token_files, checkpoint_dir, epochs=4, checkpoint_every=20)
    assert (folder / "last.pt").read_bytes() == good


def test_nan_weight_is_never_saved(token_files, tmp_path, monkeypatch):
    """A step can turn weights NaN while its own loss, computed before the update, is finite."""
    real_step, calls = train.Trainer.step, []

    def nan_weight_on_step_20(self, x, y):
        calls.append(1)
        nll = real_step(self, x, y)
        if len(calls) == 20:
            next(self.model.parameters()).data[0] = math.nan
        return nll

    monkeypatch.setattr(train.Trainer, "step", nan_weight_on_step_20)
    message = "a model weight became NaN/inf in epoch 1, by step 20; there is no earlier checkpoint of this run"
    with pytest.raises(TrainingDiverged, match=message):
        tiny_run(token_files, tmp_path / "ckpt", checkpoint_every=20)
    assert not (tiny_run_folder(token_files, tmp_path / "ckpt") / "last.pt").exists()


def test_perplexity_of_a_diverged_loss_is_inf_not_an_error():
    assert perplexity(1e6, 10) == math.inf and math.isnan(perplexity(math.nan, 1))


def foreign(folder, name="last.pt"):
    """The run's file `name` as if of another run."""
    saved = torch.load(folder / name, weights_only=True)
    path = folder.parent / "foreign.pt"
    torch.save({**saved, "run_id": "0123456789abcdef"}, path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: b"", "last.pt is unreadable (the file is empty)"),
        (lambda folder: b"\0" * 100, "last.pt is unreadable (damaged or not a PyTorch file: UnpicklingError)"),
        (lambda folder: (folder / "last.pt").read_bytes()[:5000], "last.pt is unreadable (damaged or not a"),
        (lambda folder: pickled({"epoch": 3}), "last.pt is not a checkpoint of this workflow (it lacks run_id, "),
        (foreign, "last.pt belongs to another run (0123456789abcdef) than its folder's"),
    ],
    ids=["empty", "zeros", "truncated", "no run_id", "other run"],
)
def test_unusable_last_checkpoint_falls_back_to_best(finished, no_training, damage, message):
    token_files, checkpoint_dir, folder, history = finished
    (folder / "last.pt").write_bytes(damage(folder))
    messages = []
    assert tiny_run(token_files, checkpoint_dir, epochs=3, log=messages.append) == history  # best.pt is epoch 3
    assert messages[0].startswith(str(folder)) and message in messages[0]
    assert messages[1] == f"nothing to train: {folder / 'best.pt'} (end of epoch 3) has reached train.epochs=3"


def pickled(obj) -> bytes:
    import io as bytes_io

    buffer = bytes_io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_only_this_runs_model_is_published(finished, tmp_path):
    token_files, _, folder, history = finished
    (folder / "epoch3.pt").write_bytes(foreign(folder, "epoch3.pt"))
    with pytest.raises(UnreadableCheckpoint, match="epoch3.pt belongs to another run"):
        checkpoints.export_best(folder, history, tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()


def test_missing_epoch_model_says_what_to_do(finished, tmp_path):
    token_files, _, folder, history = finished
    (folder / "epoch3.pt").unlink()
    message = f"{folder}/epoch3.pt is missing, and epoch 3 is needed: put it back or delete {folder} to train again"
    with pytest.raises(UnreadableCheckpoint, match=re.escape(message)):
        checkpoints.export_best(folder, history, tmp_path / "model.pt")


def test_empty_model_file_says_what_to_do(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"")
    message = "model.pt is unreadable (the file is empty); delete it, and the workflow exports it again"
    with pytest.raises(UnreadableCheckpoint, match=re.escape(message)):
        evaluate_checkpoint(tmp_path / "model.pt", tmp_path / "test.npy", **EVALUATION)


def test_second_job_cannot_train_into_a_claimed_folder(token_files, tmp_path):
    with checkpoints.claim(tmp_path / "ckpt", print):
        with pytest.raises(checkpoints.CheckpointsInUse, match="ckpt is in use by another training job; wait"):
            tiny_run(token_files, tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("*/"))  # it touched nothing


def test_stale_temporary_files_are_removed(finished, no_training):
    token_files, checkpoint_dir, folder, history = finished
    stale = folder / ".last.pt.0a1b2c3d.tmp"
    stale.write_bytes(b"\0" * 1000)  # what a save killed midway leaves
    messages = []
    assert tiny_run(token_files, checkpoint_dir, epochs=3, log=messages.append) == history
    assert not stale.exists() and f"removing {stale}, left by a save that was killed midway" in messages


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o077])
def test_written_files_take_their_mode_from_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        files.write_json({"a": 1}, tmp_path / "out.json")
    finally:
        os.umask(old)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_written_file_and_its_folder_entry_are_flushed_before_and_after_the_rename(tmp_path, monkeypatch):
    flushed = []
    monkeypatch.setattr(files, "fsync", lambda path: flushed.append((Path(path), (tmp_path / "out.json").exists())))
    files.write_json({"a": 1}, tmp_path / "out.json")
    (tmp_file, renamed_yet), (folder, renamed) = flushed
    assert tmp_file.name.startswith(".out.json.") and not renamed_yet and folder == tmp_path and renamed
    assert list(tmp_path.iterdir()) == [tmp_path / "out.json"]


def test_a_write_removes_what_a_killed_write_of_the_same_file_left(tmp_path):
    stale, other = tmp_path / ".model.pt.0badf00d.tmp", tmp_path / ".model.pt.json.0badf00d.tmp"
    stale.write_text("half a model")
    other.write_text("another file's write")
    with files.atomic_path(tmp_path / "model.pt") as target:
        Path(target).write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "model.pt"]


@pytest.mark.parametrize(
    "error, free",
    [(OSError(errno.ENOSPC, "No space left on device"), 10**9), (RuntimeError("basic_ios::clear: iostream error"), 0)],
)
def test_full_disk_is_named_as_such(tmp_path, monkeypatch, error, free):
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: SimpleNamespace(free=free))
    with pytest.raises(
        files.DiskFull, match=re.escape(f"{tmp_path / 'out.pt'} was not written: the disk is full; free some space")
    ):
        with files.atomic_path(tmp_path / "out.pt"):
            raise error
    assert not list(tmp_path.iterdir())


def test_other_write_errors_pass_unchanged(tmp_path):
    with pytest.raises(ValueError, match="not about space"):
        with files.atomic_path(tmp_path / "out.pt"):
            raise ValueError("not about space")


def test_full_disk_for_real_on_a_small_filesystem(tmp_path):
    """torch.save onto a full 256 KiB tmpfs (in a mount namespace of its own)."""
    mount = tmp_path / "small"
    mount.mkdir()
    script = (
        "import torch; from attnscore.files import atomic_path\n"
        f"with atomic_path('{mount}/big.pt') as tmp: torch.save(torch.zeros(200_000), tmp)\n"
    )
    command = f'mount -t tmpfs -o size=256k none {mount} && exec {sys.executable} -c "{script}"'
    result = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, cwd=ROOT)
    if "unshare" in result.stderr and "Traceback" not in result.stderr:
        pytest.skip(f"no mount namespace here: {result.stderr.strip()}")
    assert result.stderr.strip().endswith(
        f"DiskFull: {mount}/big.pt was not written: the disk is full; free some space and re-run"
    )


def test_a_model_trained_by_other_code_is_not_evaluated(finished, tmp_path):
    token_files, _, folder, _ = finished
    saved = torch.load(folder / "epoch1.pt", weights_only=True)
    saved["code"] = {**saved["code"], "kind dot": "0123456789abcdef"}  # as if dot's function changed since
    torch.save(saved, tmp_path / "model.pt")
    with pytest.raises(
        UnreadableCheckpoint, match=r"was trained by other code \(the code of kind 'dot' changed since\)"
    ):
        evaluate_checkpoint(tmp_path / "model.pt", token_files["test"], **EVALUATION)
    assert evaluate_checkpoint(folder / "epoch1.pt", token_files["test"], **EVALUATION)["tokens"] > 0


def test_a_new_run_says_which_code_changed_since_the_run_of_the_same_settings(finished):
    _, checkpoint_dir, folder, _ = finished
    settings = json.loads((folder / "settings.json").read_text())
    edited = {**settings, "code": {**settings["code"], "attnscore/model.py": "changed", "kind dot": "changed"}}
    messages = []
    assert checkpoints.find_resumable(checkpoint_dir / "new", messages.append, edited) == (None, None)
    assert (
        f"the code of kind 'dot' and the code of attnscore/model.py changed since {folder} was trained; training a new run"
        in messages
    )
    other = {**edited, "train": {**settings["train"], "lr": 1.0}}  # other settings too: not a code change alone
    messages.clear()
    checkpoints.find_resumable(checkpoint_dir / "new", messages.append, other)
    assert not any("changed since" in m for m in messages)
