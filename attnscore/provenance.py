"""What produced a result: config, code version, package versions, device, seed (standard
library only, so recording it costs nothing)."""

import ast
import functools
import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = Path(__file__).parent
PACKAGES = ["torch", "numpy", "pandas", "scipy", "matplotlib", "tokenizers", "snakemake", "tqdm"]


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


@functools.cache
def _imported_modules(path: Path) -> frozenset[Path]:
    """The attnscore modules one file imports, also inside functions (read, not run; cached:
    every script of the workflow imports the same few modules)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(
            PACKAGE / f"{name.removeprefix('attnscore.')}.py" for name in names if name.startswith("attnscore.")
        )
    return frozenset(path for path in found if path.is_file())


def package_modules(script) -> list[Path]:
    """The attnscore modules a script runs: those it imports, and theirs in turn."""
    found, todo = set(), [Path(script)]
    while todo:
        new = _imported_modules(todo.pop()) - found
        found |= new
        todo.extend(new)
    return sorted(found)


@functools.cache
def code_version(script, extra=()) -> str:
    """A short hash of the package modules a script runs and of `extra` files (cached: the
    workflow asks once per job, and the files do not change while it plans)."""
    digest = hashlib.sha256()
    for path in [*package_modules(script), *extra]:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]
