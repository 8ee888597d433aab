import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The offline WikiText-2 valid/test splits and GPT-2 BPE files laid beside the project."""
    if not (SHARED_DATA / "gpt2-bpe" / "vocab.bpe").exists():
        pytest.skip(f"{SHARED_DATA} is not there (it sits beside the project on dev machines and CI)")
    return SHARED_DATA


@pytest.fixture
def token_files(tmp_path):
    """Token arrays of a small learnable stream (vocabulary 64): 4000 train, 1000 valid, 1000 test."""
    from attnscore.corpora import SPLITS
    from attnscore.tokens import save_tokens

    rng = np.random.default_rng(0)
    stream = (np.arange(6000) * 7 + rng.integers(0, 3, 6000)) % 64  # learnable structure plus noise
    files = {}
    for split, part in zip(SPLITS, (stream[:4000], stream[4000:5000], stream[5000:]), strict=True):
        files[split] = tmp_path / f"{split}.npy"
        save_tokens(part.astype(np.uint16), files[split])
    return files


def tiny_config(**sections) -> dict:
    """The demo config shrunk to seconds of work; `sections` update its sections (or set top-level keys)."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["experiment"] = "tiny"
    config["tokenizer"]["vocab_size"] = 512
    config["model"].update(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=32)
    config["train"].update(seq_len=32, batch_size=8, eval_batch_size=8, epochs=2, max_steps_per_epoch=20)
    config["benchmark"].update(warmup_steps=1, steps=2)
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


def write_config(workdir: Path, name: str, config: dict) -> str:
    path = workdir / "config" / name
    path.write_text(yaml.safe_dump(config))
    return f"config/{name}"


def snakemake(cwd, *args, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=1", *args]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    result.log = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, result.log[-6000:]
    return result


def executed_rules(log: str) -> list[str]:
    return sorted(
        {line.split()[-1].rstrip(":") for line in log.splitlines() if line.startswith(("rule ", "localrule "))}
    )
