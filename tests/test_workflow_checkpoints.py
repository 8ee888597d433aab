"""Trained state through the real workflow: outputs rebuilt and evaluation-only or shorter runs
come from the checkpoints without training; a diverged, damaged, busy or full-disk run fails
with one sentence saying so; other settings never overwrite a run's checkpoints.

Each test starts an experiment of its own from a finished one ('base'): its token arrays and
checkpoints copied, its outputs not, so the train job runs and meets those checkpoints.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from helpers import copy_workflow, snakemake, tiny_config, write_config

pytestmark = pytest.mark.slow
BASE = dict(variants=["dot"])  # the tiny config: two epochs of 20 steps
UMASK = 0o002  # a group-shared results folder


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A workflow copy with the 'base' experiment trained and evaluated, under UMASK."""
    work = copy_workflow(tmp_path_factory.mktemp("checkpoints"))
    old = os.umask(UMASK)
    try:
        run(work, "base")
    finally:
        os.umask(old)
    return work


def run(work, experiment, check=True, extra=(), **train):
    """Train and evaluate `experiment` (dot only) with the tiny config's train settings changed by `train`."""
    config = write_config(work, f"{experiment}.yaml", tiny_config(experiment=experiment, train=train, **BASE))
    target = f"results/{experiment}/eval/dot/seed1234.json"
    return snakemake(work, "--configfile", config, *extra, "--", target, check=check)


def fork(work, experiment, checkpoints=True):
    """A new experiment holding base's token arrays (and checkpoints), none of its outputs."""
    results = work / "results"
    shutil.copytree(results / "base" / "data", results / experiment / "data")
    if checkpoints:
        shutil.copytree(results / "base" / "checkpoints", results / experiment / "checkpoints")
    return results / experiment


def base_run_folder(work):
    (folder,) = (work / "results" / "base" / "checkpoints" / "dot" / "seed1234").glob("*/")
    return folder.name


def log_of(folder, job="train_dot_seed1234"):
    return (folder / "logs" / f"{job}.log").read_text()


def test_artifacts_take_their_mode_from_the_umask(work):
    files = [p for p in (work / "results" / "base").rglob("*") if p.is_file()]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o666 & ~UMASK)}
    assert any(p.name == "last.pt" for p in files) and any(p.name == "model.pt" for p in files)


def test_outputs_are_rebuilt_from_the_checkpoints_without_training(work):
    folder = fork(work, "rebuilt")
    run(work, "rebuilt")
    assert "nothing to train: " in log_of(folder) and "epoch 1," not in log_of(folder)
    assert not (folder / "tensorboard").exists()  # a run that trains nothing writes no events
    for output in ("train/dot/seed1234/metrics.csv", "train/dot/seed1234/steps.csv", "eval/dot/seed1234.json"):
        # timing columns included: published from the checkpoints
        assert (folder / output).read_bytes() == (work / "results" / "base" / output).read_bytes()

    (folder / "train" / "dot" / "seed1234" / "model.pt").write_bytes(b"")  # damaged after the run
    result = run(work, "rebuilt", check=False, extra=("--forcerun", "evaluate"))
    assert result.returncode != 0
    message = "model.pt is unreadable (the file is empty); delete it, and the workflow exports it again"
    assert message in log_of(folder, "evaluate_dot_seed1234")

    (folder / "train" / "dot" / "seed1234" / "model.pt").unlink()  # as the message says
    run(work, "rebuilt")
    assert "nothing to train: " in log_of(folder)
    assert (folder / "eval" / "dot" / "seed1234.json").read_bytes() == (
        work / "results" / "base" / "eval" / "dot" / "seed1234.json"
    ).read_bytes()


def test_fewer_epochs_and_another_eval_batch_size_train_nothing(work):
    folder = fork(work, "short")
    run(work, "short", epochs=1, eval_batch_size=4)
    log = log_of(folder)
    assert "train.eval_batch_size changed from 8 to 4: evaluating each saved epoch again" in log
    assert "has reached train.epochs=1" in log and "epoch 1," not in log
    short, base = (
        pd.read_csv(f / "train" / "dot" / "seed1234" / "metrics.csv") for f in (folder, work / "results" / "base")
    )
    assert list(short["epoch"]) == [1] and short["train_loss"][0] == base["train_loss"][0]
    assert short["valid_loss"][0] != base["valid_loss"][0]  # evaluated on rows of 4, not 8
    result = json.loads((folder / "eval" / "dot" / "seed1234.json").read_text())
    assert result["epoch"] == 1 and result["perplexity"] == pytest.approx(short["test_ppl"][0], rel=1e-9)


def test_nan_validation_loss_fails_the_job_and_publishes_nothing(work):
    folder = fork(work, "nan")  # base's checkpoints, best.pt included, lie in the same folder
    result = run(work, "nan", check=False, lr=1e6, max_steps_per_epoch=1)
    assert result.returncode != 0
    message = "the validation loss became NaN/inf in epoch 1, by step 1; there is no earlier checkpoint of this run"
    assert message in log_of(folder)
    assert (
        not (folder / "train" / "dot" / "seed1234" / "model.pt").exists()
        and not (folder / "eval" / "dot" / "seed1234.json").exists()
    )


def test_other_settings_train_anew_and_keep_the_old_checkpoints(work):
    folder = fork(work, "other")
    old = folder / "checkpoints" / "dot" / "seed1234" / base_run_folder(work)
    before = {p: p.read_bytes() for p in old.iterdir()}
    run(work, "other", lr=2e-3)
    assert (
        f"the checkpoints of other settings, data or code stay in results/other/checkpoints/dot/seed1234/{old.name}"
        in log_of(folder)
    )
    assert "epoch 2," in log_of(folder) and {p: p.read_bytes() for p in old.iterdir()} == before


def test_empty_last_checkpoint_falls_back_to_best_and_stale_temporaries_go(work):
    folder = fork(work, "damaged")
    run_folder = folder / "checkpoints" / "dot" / "seed1234" / base_run_folder(work)
    (run_folder / "last.pt").write_bytes(b"")
    (run_folder / ".last.pt.0a1b2c3d.tmp").write_bytes(b"\0" * 1000)  # left by a save killed midway
    run(work, "damaged", epochs=3)
    log = log_of(folder)
    assert f"{run_folder.relative_to(work)}/last.pt is unreadable (the file is empty)" in log
    assert (
        "resuming from " in log and "best.pt (end of epoch 2)" in log and ".tmp, left by a save that was killed" in log
    )
    damaged, base = (
        pd.read_csv(f / "train" / "dot" / "seed1234" / "metrics.csv") for f in (folder, work / "results" / "base")
    )
    assert list(damaged["epoch"]) == [1, 2, 3] and damaged[:2].equals(base)
    assert not list(run_folder.glob(".*.tmp"))


def test_second_training_job_into_a_busy_folder_fails(work):
    folder = fork(work, "busy")
    with open(folder / "checkpoints" / "dot" / "seed1234" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a training job of this folder holds it
        result = run(work, "busy", check=False)
    assert result.returncode != 0
    message = "results/busy/checkpoints/dot/seed1234 is in use by another training job; wait for it to end (or stop it), then re-run"
    assert message in log_of(folder)


def test_full_disk_is_named_in_one_sentence(work):
    folder = fork(work, "full", checkpoints=False)
    config = write_config(work, "full.yaml", tiny_config(experiment="full", **BASE))
    mount = folder / "checkpoints"
    mount.mkdir()
    snakemake_cmd = f"{sys.executable} -m snakemake --cores 2 --resources gpu=1 --configfile {config} -- results/full/eval/dot/seed1234.json"
    command = f"mount -t tmpfs -o size=256k none {mount} && exec {snakemake_cmd}"  # room for epoch1.pt, not last.pt
    result = subprocess.run(["unshare", "-rm", "sh", "-c", command], cwd=work, capture_output=True, text=True)
    if not (folder / "logs" / "train_dot_seed1234.log").exists():
        pytest.skip(f"no mount namespace here: {result.stderr[-500:]}")
    assert result.returncode != 0
    assert ".pt was not written: the disk is full; free some space and re-run" in log_of(folder)
