"""Faults through the real workflow: a killed run resumes to the same numbers, and bad input
fails before any job runs, with a message naming the problem, leaving earlier results alone."""

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import SNAKEMAKE, copy_workflow, events, executed_rules, snakemake, tiny_config, write_config

# Long enough to be killed mid-training: full epochs of the demo corpus, checkpoints every 50 steps.
RESUMABLE = dict(variants=["dot"], train={"epochs": 2, "max_steps_per_epoch": 0, "checkpoint_every": 50})
TIMING = ["tokens_per_s", "elapsed_s"]


def trained(experiment) -> list[str]:
    """The target of a training run of `experiment`'s dot, seed 1234: its tokenize and train jobs,
    all these tests look at, without the evaluation, benchmark and figures after them."""
    return ["--", f"results/{experiment}/train/dot/seed1234/metrics.csv"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A workflow copy with one uninterrupted run ('reference') already trained."""
    work = copy_workflow(tmp_path_factory.mktemp("faults"))
    config = write_config(work, "reference.yaml", tiny_config(experiment="reference", **RESUMABLE))
    snakemake(work, "--configfile", config, *trained("reference"))
    return work


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_sigkilled_run_resumes_to_identical_metrics(finished):
    config = write_config(finished, "killed.yaml", tiny_config(experiment="killed", **RESUMABLE))
    checkpoints = finished / "results" / "killed" / "checkpoints" / "dot" / "seed1234"  # a folder per run inside
    run = subprocess.Popen(
        [*SNAKEMAKE, "--configfile", config, *trained("killed")],
        cwd=finished,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*/last.pt")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # Snakemake and its training job, mid-epoch
    run.wait()
    assert list(checkpoints.glob("*/last.pt")), "training never reached its first checkpoint"
    assert not (finished / "results" / "killed" / "train" / "dot" / "seed1234" / "metrics.csv").exists()

    snakemake(finished, "--unlock", "--configfile", config)  # Snakemake's own lock outlives a SIGKILL
    snakemake(finished, "--configfile", config, *trained("killed"))
    assert "resuming from" in (finished / "results" / "killed" / "logs" / "train_dot_seed1234.log").read_text()
    resumed, reference = (
        pd.read_csv(finished / "results" / e / "train" / "dot" / "seed1234" / "metrics.csv")
        for e in ("killed", "reference")
    )
    assert resumed.drop(columns=TIMING).to_csv() == reference.drop(columns=TIMING).to_csv()
    assert not list(checkpoints.rglob(".*.tmp"))  # nothing half-written is kept

    # One continuous per-step log: no step twice, none missing, in steps.csv and in TensorBoard.
    resumed, reference = (
        pd.read_csv(finished / "results" / e / "train" / "dot" / "seed1234" / "steps.csv")
        for e in ("killed", "reference")
    )
    assert resumed.drop(columns="tokens_per_s").to_csv() == reference.drop(columns="tokens_per_s").to_csv()
    (board,) = (finished / "results" / "killed" / "tensorboard" / "dot" / "seed1234").iterdir()
    scalars = events(board)
    assert [step for step, _ in scalars["loss/train"]] == list(reference["step"])
    assert [value for _, value in scalars["loss/train"]] == pytest.approx(list(reference["train_loss"]), rel=1e-6)


def test_same_seed_gives_byte_identical_metrics_columns(finished):
    config = write_config(finished, "again.yaml", tiny_config(experiment="again", **RESUMABLE))
    snakemake(finished, "--configfile", config, *trained("again"))
    again, reference = (
        pd.read_csv(finished / "results" / e / "train" / "dot" / "seed1234" / "metrics.csv")
        for e in ("again", "reference")
    )
    assert again.drop(columns=TIMING).to_csv() == reference.drop(columns=TIMING).to_csv()
    provenance = json.loads(
        (finished / "results" / "again" / "train" / "dot" / "seed1234" / "provenance.json").read_text()
    )
    assert provenance["seed"] == 1234 and provenance["config"]["experiment"] == "again"
    assert provenance["packages"]["torch"] and provenance["device"].startswith("cpu") and "commit" in provenance["git"]


BAD_CONFIGS = [
    ({"variants": ["dot", "no_such_kind"]}, "unknown attention kind\\(s\\) \\['no_such_kind'\\]"),
    ({"variants": []}, "variants: \\[\\] should be non-empty"),
    ({"train": {"lr": 0}}, "train.lr: 0 is less than or equal to the minimum of 0"),
    ({"train": {"lr": "1e-3"}}, "train.lr: '1e-3' is text, not a number; write it unquoted, with a dot"),
    ({"train": {"batch_size": "8"}}, "train.batch_size: '8' is text, not a number; write it unquoted"),
    ({"train": {"batch_size": 8.0}}, "train.batch_size: must be an integer, not 8.0; write 8"),
    ({"model": {"d_model": 32.0}}, "model.d_model: must be an integer, not 32.0; write 32"),
    ({"tokenizer": {"vocab_size": 512.0}}, "tokenizer.vocab_size: must be an integer, not 512.0; write 512"),
    ({"model": {"n_heads": 3}}, "model.d_model=32 is not divisible by model.n_heads=3"),
    ({"train": {"seq_len": 64}}, "train.seq_len=64 exceeds model.max_seq_len=32"),
    ({"train": {"learning_rate": 1e-3}}, "train.learning_rate: unknown key; remove it or fix its spelling"),
    ({"experiment": "../../elsewhere"}, "experiment: '../../elsewhere' is not allowed: name of the results folder"),
    ({"train": {"device": "cuda:1", "processes": 2}}, "train.device=cuda:1 puts every process on one GPU"),
    ({"model": {"attention_options": {"euclid": {"p": "2"}}}}, "euclid: attention kind 'euclid' takes a number"),
]


def fails_before_any_job(result, message):
    """Failed with the message, in a few lines: no schema dump, no traceback, no job started."""
    assert result.returncode != 0
    assert re.search(message, result.log), result.log[-3000:]
    assert "Failed validating" not in result.log and "Traceback" not in result.log, result.log[-3000:]
    assert executed_rules(result.log) == [], result.log[-3000:]


@pytest.mark.parametrize("change, message", BAD_CONFIGS)
def test_bad_config_fails_before_any_job_and_touches_nothing(finished, change, message):
    before = snapshot(finished / "results")
    result = snakemake(finished, "--configfile", write_config(finished, "bad.yaml", tiny_config(**change)), check=False)
    fails_before_any_job(result, message)
    assert snapshot(finished / "results") == before


def test_missing_key_is_named_not_inherited(finished):
    config = tiny_config()
    del config["train"]["epochs"]
    result = snakemake(finished, "--configfile", write_config(finished, "bad.yaml", config), check=False)
    fails_before_any_job(result, "train.epochs: missing; set it")


def test_a_key_given_twice_names_file_line_and_key(finished):
    path = finished / write_config(finished, "twice.yaml", tiny_config())
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, "experiment: elsewhere"]) + "\n")
    result = snakemake(finished, "--configfile", "config/twice.yaml", check=False)
    fails_before_any_job(result, f"twice.yaml, line {len(lines) + 1}: key 'experiment' is given twice; keep one")


def test_command_line_values_apply_on_top_of_the_reference_config(finished):
    """`--config` alone changes config/config.yaml's values; nested values are typed as in a file."""
    planned = snakemake(finished, "--dry-run", "--config", "experiment=override", "train={epochs: 3, lr: 1.0e-4}")
    assert "results/override/train/dot/seed1234/metrics.csv" in planned.log
    result = snakemake(finished, "--dry-run", "--config", "train={batch_size: 8.0, epoch: 3}", check=False)
    fails_before_any_job(result, "train.batch_size: must be an integer, not 8.0; write 8")
    assert "train.epoch: unknown key; remove it or fix its spelling (did you mean 'epochs'?)" in result.log
    assert len(result.log.splitlines()) < 10, result.log


def test_a_gpu_the_machine_lacks_fails_before_any_job(finished):
    config = write_config(finished, "gpu.yaml", tiny_config(experiment="gpu", train={"device": "cuda:99"}))
    snakemake(finished, "--dry-run", "--configfile", config)  # a dry run does not look for GPUs
    result = snakemake(finished, "--configfile", config, check=False)
    assert result.returncode != 0 and "train.device is 'cuda:99' but this machine has" in result.log, result.log
    assert executed_rules(result.log) == [] and not (finished / "results" / "gpu").exists()


def text_corpus(folder, texts: dict) -> dict:
    """A data section for a text corpus in folder: split name to file content (bytes, or None for a folder)."""
    folder.mkdir(exist_ok=True)
    for split, content in texts.items():
        if content is None:
            (folder / f"{split}.txt").mkdir()
        else:
            (folder / f"{split}.txt").write_bytes(content)
    return {"name": folder.name, "corpus": "text", "dir": str(folder), "files": {s: f"{s}.txt" for s in texts}}


@pytest.mark.parametrize(
    "content, message",
    [
        ("missing", "Missing input files for rule tokenize"),
        (None, "valid.txt: is a directory, not a file"),
        (b"", "valid.txt: file is empty"),
        (b"na\xefve\n", "valid.txt: not UTF-8 text"),
        (b"some words here\n", "tokenizer.vocab_size is 512, but the train split yields only 2.. tokens"),
    ],
)
def test_bad_corpus_file_fails_at_tokenize_and_touches_nothing(finished, tmp_path, content, message):
    texts = {split: b"some words here\n" * 50 for split in ("train", "valid", "test")}
    texts["valid"] = content
    if content == "missing":
        del texts["valid"]
    data = text_corpus(tmp_path / "corpus", texts)
    data["files"]["valid"] = "valid.txt"
    before = snapshot(finished / "results" / "reference")
    result = snakemake(
        finished,
        "--configfile",
        write_config(finished, "bad.yaml", tiny_config(experiment="broken", data=data)),
        check=False,
    )
    assert result.returncode != 0
    logs = result.log + "".join(p.read_text() for p in (finished / "results" / "broken" / "logs").glob("*.log"))
    assert re.search(message, logs), logs[-3000:]
    assert not (finished / "results" / "broken" / "data" / "train.npy").exists()
    assert snapshot(finished / "results" / "reference") == before


def test_byte_order_marks_are_dropped_and_a_too_big_eval_batch_is_named(finished, tmp_path):
    """A corpus saved with BOMs tokenizes as without them; then training stops before its first step,
    naming train.eval_batch_size (the valid split is shorter than 2 tokens a row)."""
    from tokenizers import Tokenizer

    text = (finished / "resources" / "demo-corpus" / "train.txt").read_text()[:20_000]
    data = text_corpus(
        tmp_path / "bom-corpus", {s: "\ufeff".encode() + text.encode() for s in ("train", "valid", "test")}
    )
    config = tiny_config(experiment="bom", data=data, variants=["dot"], train={"eval_batch_size": 100_000})
    result = snakemake(
        finished, "--configfile", write_config(finished, "bom.yaml", config), *trained("bom"), check=False
    )
    assert result.returncode != 0
    data_dir = finished / "results" / "bom" / "data"
    first_line = text.splitlines(keepends=True)[0]
    expected = Tokenizer.from_file(str(data_dir / "tokenizer.json")).encode(first_line).ids
    assert np.load(data_dir / "train.npy")[: len(expected)].tolist() == expected
    assert "valid split has" in result.log and "too few for train.eval_batch_size=100000" in result.log
    assert "set train.eval_batch_size to" in result.log
    assert not (finished / "results" / "bom" / "checkpoints").exists()


@pytest.mark.slow
def test_train_rule_runs_ddp_under_torchrun(finished):
    """train.processes: 2 through the workflow: the rule starts torchrun and collects process 0's metrics."""
    config = tiny_config(
        experiment="ddp", variants=["dot"], model={"dropout": 0.0}, train={"processes": 2, "eval_batch_size": 8}
    )
    snakemake(finished, "--configfile", write_config(finished, "ddp.yaml", config), *trained("ddp"))
    metrics = pd.read_csv(finished / "results" / "ddp" / "train" / "dot" / "seed1234" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and metrics["valid_ppl"].iloc[-1] < metrics["valid_ppl"].iloc[0]
    (last,) = (finished / "results" / "ddp" / "checkpoints" / "dot" / "seed1234").glob("*/last.pt")
    saved = torch.load(last, weights_only=True)
    assert len(saved["rng_cpu"]) == 2  # one RNG state per process
