"""Running the real workflow from tests: a copy of it in a temporary folder, a config made from
.test/config/config.yaml, and Snakemake as a subprocess."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


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
