"""DistributedDataParallel on CPU (gloo, 2 processes under torchrun): same losses as one
process at the same global batch, one per-step log written by process 0, and an interrupted run
resumes."""

import signal
import subprocess
import time

import numpy as np
import pytest

from attnscore import checkpoints, launch, train
from attnscore.model import ModelConfig
from helpers import SETTINGS, events, train_config

# No dropout: with it, each process draws its own masks, so only the expectation would match.
MODEL = ModelConfig(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_seq_len=16, dropout=0.0)
LOSSES = ["train_loss", "valid_loss", "test_loss"]


def settings(**overrides):
    return train_config(**{**SETTINGS, **overrides})


def losses(state):
    return np.array([[row[k] for k in LOSSES] for row in state.history])


def step_losses(state):
    return np.array([[row["step"], row["train_loss"]] for row in state.steps])


@pytest.mark.slow
def test_two_processes_match_one_at_the_same_global_batch(token_files, tmp_path):
    single = train.train(
        MODEL, settings(), token_files=token_files, checkpoint_dir=tmp_path / "single", log=lambda *_: None
    )
    ddp = launch.train_distributed(
        MODEL, settings(processes=2), token_files=token_files, checkpoint_dir=tmp_path / "ddp",
        tensorboard_dir=tmp_path / "tb",
    )  # fmt: skip
    assert [row["epoch"] for row in ddp.history] == [1, 2]
    np.testing.assert_allclose(losses(ddp), losses(single), rtol=1e-4)
    assert losses(ddp)[-1, 1] < losses(ddp)[0, 1]  # it learns
    np.testing.assert_allclose(step_losses(ddp), step_losses(single), rtol=1e-4)  # over both processes' rows
    (run,) = (tmp_path / "tb").iterdir()
    assert len(list(run.iterdir())) == 1  # one event file: process 0 writes, the other does not
    assert [step for step, _ in events(run)["loss/train"]] == [row["step"] for row in single.steps]


@pytest.mark.slow
def test_sigterm_under_ddp_checkpoints_and_resumes(token_files, tmp_path):
    cfg = settings(processes=2, checkpoint_every=2)  # the first checkpoint comes early: SIGTERM lands mid-epoch
    reference = launch.train_distributed(MODEL, cfg, token_files=token_files, checkpoint_dir=tmp_path / "reference")
    job = tmp_path / "job.json"
    launch.write_job(job, MODEL, cfg, token_files=token_files, checkpoint_dir=tmp_path / "run")
    command = launch.torchrun_command(2, job, tmp_path / "history.json")
    torchrun = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = checkpoints.run_folder(tmp_path / "run", MODEL, cfg, token_files) / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and torchrun.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    torchrun.send_signal(signal.SIGTERM)  # as a scheduler would, mid-epoch
    output = torchrun.communicate(timeout=120)[0]
    assert torchrun.returncode != 0 and "re-run to resume" in output, output[-3000:]
    saved = checkpoints.load(last)
    assert saved["epoch"] == 0 and 0 < saved["step"] < 63 and len(saved["rng_cpu"]) == 2
    resumed = launch.train_distributed(MODEL, cfg, token_files=token_files, checkpoint_dir=tmp_path / "run")
    np.testing.assert_allclose(losses(resumed), losses(reference), rtol=1e-6)
    np.testing.assert_allclose(step_losses(resumed), step_losses(reference), rtol=1e-6)
