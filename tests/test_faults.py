"""Faults through the real workflow: a killed run resumes to the same numbers, and bad input
fails before any job runs, with a message naming the problem, leaving earlier results alone."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from helpers import copy_workflow, snakemake, tiny_config, write_config

# Long enough to be killed mid-training: full epochs of the demo corpus, checkpoints every 50 steps.
RESUMABLE = dict(variants=["dot"], train={"epochs": 2, "max_steps_per_epoch": 0, "checkpoint_every": 50})
TIMING = ["tokens_per_s", "elapsed_s"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A workflow copy with one uninterrupted run ('reference') already done."""
    work = copy_workflow(tmp_path_factory.mktemp("faults"))
    snakemake(
        work, "--configfile", write_config(work, "reference.yaml", tiny_config(experiment="reference", **RESUMABLE))
    )
    return work


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_sigkilled_run_resumes_to_identical_metrics(finished):
    config = write_config(finished, "killed.yaml", tiny_config(experiment="killed", **RESUMABLE))
    checkpoints = finished / "results" / "killed" / "checkpoints" / "dot"  # a folder per run inside
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=1", "--configfile", config]
    run = subprocess.Popen(
        cmd, cwd=finished, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*/last.pt")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # Snakemake and its training job, mid-epoch
    run.wait()
    assert list(checkpoints.glob("*/last.pt")), "training never reached its first checkpoint"
    assert not (finished / "results" / "killed" / "train" / "dot" / "metrics.csv").exists()

    snakemake(finished, "--unlock", "--configfile", config)  # Snakemake's own lock outlives a SIGKILL
    snakemake(finished, "--configfile", config)
    assert "resuming from" in (finished / "results" / "killed" / "logs" / "train_dot.log").read_text()
    resumed, reference = (
        pd.read_csv(finished / "results" / e / "train" / "dot" / "metrics.csv") for e in ("killed", "reference")
    )
    assert resumed.drop(columns=TIMING).to_csv() == reference.drop(columns=TIMING).to_csv()
    assert not list(checkpoints.rglob(".*.tmp"))  # nothing half-written is kept


def test_same_seed_gives_byte_identical_metrics_columns(finished):
    snakemake(
        finished, "--configfile", write_config(finished, "again.yaml", tiny_config(experiment="again", **RESUMABLE))
    )
    again, reference = (
        pd.read_csv(finished / "results" / e / "train" / "dot" / "metrics.csv") for e in ("again", "reference")
    )
    assert again.drop(columns=TIMING).to_csv() == reference.drop(columns=TIMING).to_csv()
    provenance = json.loads((finished / "results" / "again" / "train" / "dot" / "provenance.json").read_text())
    assert provenance["seed"] == 1234 and provenance["config"]["experiment"] == "again"
    assert provenance["packages"]["torch"] and provenance["device"].startswith("cpu") and "commit" in provenance["git"]


BAD_CONFIGS = [
    ({"variants": ["dot", "no_such_kind"]}, "unknown attention kind\\(s\\) \\['no_such_kind'\\]"),
    ({"variants": []}, "should be non-empty"),
    ({"train": {"lr": 0}}, "0 is less than or equal to the minimum of 0"),
    ({"train": {"batch_size": "8"}}, "'8' is not of type 'integer'"),
    ({"model": {"n_heads": 3}}, "model.d_model=32 is not divisible by model.n_heads=3"),
    ({"train": {"seq_len": 64}}, "train.seq_len=64 exceeds model.max_seq_len=32"),
    ({"train": {"learning_rate": 1e-3}}, "'learning_rate' was unexpected"),
    ({"experiment": "../../elsewhere"}, "'../../elsewhere' does not match"),
]


@pytest.mark.parametrize("change, message", BAD_CONFIGS)
def test_bad_config_fails_before_any_job_and_touches_nothing(finished, change, message):
    before = snapshot(finished / "results")
    result = snakemake(finished, "--configfile", write_config(finished, "bad.yaml", tiny_config(**change)), check=False)
    assert result.returncode != 0
    assert re.search(message, result.log), result.log[-3000:]
    assert snapshot(finished / "results") == before


def test_missing_key_is_named_not_inherited(finished):
    config = tiny_config()
    del config["train"]["epochs"]
    result = snakemake(finished, "--configfile", write_config(finished, "bad.yaml", config), check=False)
    assert result.returncode != 0 and "'epochs' is a required property" in result.log


@pytest.mark.parametrize(
    "content, message",
    [(None, "Missing input files for rule tokenize"), (b"", "file is empty"), (b"na\xefve\n", "not UTF-8 text")],
)
def test_bad_corpus_file_fails_at_tokenize_and_touches_nothing(finished, content, message):
    corpus = finished / "corpus"
    corpus.mkdir(exist_ok=True)
    for split in ("train", "valid", "test"):
        (corpus / f"{split}.txt").write_text("some words here\n" * 50)
    if content is None:
        (corpus / "valid.txt").unlink()
    else:
        (corpus / "valid.txt").write_bytes(content)
    data = {
        "name": "broken",
        "corpus": "text",
        "dir": str(corpus),
        "files": {s: f"{s}.txt" for s in ("train", "valid", "test")},
    }
    before = snapshot(finished / "results" / "reference")
    result = snakemake(
        finished,
        "--configfile",
        write_config(finished, "bad.yaml", tiny_config(experiment="broken", data=data)),
        check=False,
    )
    assert result.returncode != 0
    logs = result.log + "".join(p.read_text() for p in (finished / "results" / "broken" / "logs").glob("*.log"))
    assert message in logs and "valid.txt" in logs
    assert not (finished / "results" / "broken" / "data" / "train.npy").exists()
    assert snapshot(finished / "results" / "reference") == before


@pytest.mark.slow
def test_train_rule_runs_ddp_under_torchrun(finished):
    """train.processes: 2 through the workflow: the rule starts torchrun and collects process 0's metrics."""
    config = tiny_config(
        experiment="ddp", variants=["dot"], model={"dropout": 0.0}, train={"processes": 2, "eval_batch_size": 8}
    )
    snakemake(finished, "--configfile", write_config(finished, "ddp.yaml", config))
    metrics = pd.read_csv(finished / "results" / "ddp" / "train" / "dot" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and metrics["valid_ppl"].iloc[-1] < metrics["valid_ppl"].iloc[0]
    (last,) = (finished / "results" / "ddp" / "checkpoints" / "dot").glob("*/last.pt")
    saved = torch.load(last, weights_only=True)
    assert len(saved["rng_cpu"]) == 2  # one RNG state per process
