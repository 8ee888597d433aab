"""Running the real workflow from tests: a copy of it in a temporary folder, a config made from
.test/config/config.yaml, and Snakemake as a subprocess. Also a small learnable token stream and
a tiny training run on it, for tests of the package."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [1234, 1235]  # the seeds of the tiny experiment that the workflow tests share (conftest.py)


def tiny_config(**sections) -> dict:
    """.test/config/config.yaml (seconds of work); `sections` update its sections (or set top-level keys)."""
    config = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())
    for key, value in sections.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow and package to run in isolation."""
    for name in ["Snakefile", "workflow", "config", "profiles", "envs", "attnscore"]:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, dest / name)
    return dest


def copy_finished(folder: Path, dest: Path) -> Path:
    """A copy of a workflow folder and its results, modification times kept, so Snakemake finds
    the copy as up to date as the original."""
    return shutil.copytree(folder, dest, symlinks=True, dirs_exist_ok=True)


def write_config(workdir: Path, name: str, config: dict) -> str:
    path = workdir / "config" / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # in the order given: sizes are shown in it
    return f"config/{name}"


# As `make demo` runs: one thread per torch job but the benchmark's, so two tiny jobs share the
# two cores instead of queueing (the benchmark still holds every core, to time alone).
SNAKEMAKE = [
    sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=1",
    "--set-threads", "train=1", "evaluate=1", "attention=1", "samples=1",
]  # fmt: skip


def snakemake(cwd, *args, check=True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, *args]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    result.log = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, result.log[-6000:]
    return result


def executed_rules(log: str) -> list[str]:
    return sorted(
        {line.split()[-1].rstrip(":") for line in log.splitlines() if line.startswith(("rule ", "localrule "))}
    )


def train_config(**settings):
    """A TrainConfig of the tiny config's train section and first seed, `settings` changed."""
    from attnscore.trainer import TrainConfig

    config = tiny_config()
    return TrainConfig(**{**config["train"], "seed": config["seeds"][0], **settings})


TINY = dict(d_model=16, n_layers=2, n_heads=2, d_ff=32, max_seq_len=16)
# tiny_run's training: 63 steps an epoch, a row of the per-step log every 10, checkpoints at epoch ends.
SETTINGS = dict(
    seq_len=16, batch_size=4, eval_batch_size=4, epochs=2, lr=3e-3, checkpoint_every=0, log_every=10,
    max_steps_per_epoch=0,
)  # fmt: skip


def write_token_files(folder: Path) -> dict:
    """Token arrays of a small learnable stream (vocabulary 64): 4000 train, 1000 valid, 1000 test."""
    from attnscore.tokens import save_tokens

    rng = np.random.default_rng(0)
    stream = (np.arange(6000) * 7 + rng.integers(0, 3, 6000)) % 64  # learnable structure plus noise
    files = {}
    for split, part in zip(("train", "valid", "test"), (stream[:4000], stream[4000:5000], stream[5000:]), strict=True):
        files[split] = folder / f"{split}.npy"
        save_tokens(part.astype(np.uint16), files[split])
    return files


def tiny_run(token_files, checkpoint_dir, log=lambda *_: None, **settings) -> list[dict]:
    """Train the tiny model (63 steps an epoch, seconds) with SETTINGS changed by `settings`; its
    metrics rows."""
    return tiny_training(token_files, checkpoint_dir, log, **settings).history


def tiny_training(token_files, checkpoint_dir, log=lambda *_: None, tensorboard_dir=None, **settings):
    """tiny_run's whole TrainingState (metrics and per-step log), TensorBoard events optional."""
    from attnscore.model import ModelConfig
    from attnscore.train import train

    return train(
        ModelConfig(vocab_size=64, **TINY),
        train_config(**{**SETTINGS, **settings}),
        token_files=token_files,
        checkpoint_dir=checkpoint_dir,
        tensorboard_dir=tensorboard_dir,
        log=log,
    )


def tiny_run_folder(token_files, checkpoint_dir, **settings) -> Path:
    """The checkpoint folder tiny_run uses for these settings."""
    from attnscore.checkpoints import run_folder
    from attnscore.model import ModelConfig

    return run_folder(
        checkpoint_dir, ModelConfig(vocab_size=64, **TINY), train_config(**{**SETTINGS, **settings}), token_files
    )


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("tokens_per_s", "elapsed_s")} for row in history]


def events(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a TensorBoard run folder, read back as TensorBoard reads it: tag ->
    [(step, value)], without the events a restarted writer purged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
