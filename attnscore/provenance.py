"""What produced a result: config, git commit, package versions, device, seed (standard library
only, so recording it costs nothing; the code's identity is attnscore.codeid's)."""

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ["torch", "numpy", "pandas", "scipy", "matplotlib", "tokenizers", "snakemake", "tqdm", "tensorboard"]


def git_state(folder) -> dict:
    """The commit of the checkout holding `folder` and whether its tracked files were edited."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}  # not a git checkout (e.g. an unpacked release)


def collect(config: dict, device: str, seed: int) -> dict:
    """The provenance record; `device` describes where it ran (e.g. "cuda:0 (NVIDIA H100 80GB HBM3)")."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "config": config,
        "git": git_state(Path(__file__).parent),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "seed": seed,
    }
