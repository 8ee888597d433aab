"""How long `snakemake --dry-run` of the default config takes, against Snakemake's own floor.

Three commands, each run --repeats times in interleaved rounds, wall time of the whole process:
- `import snakemake.cli` alone (Python's start and Snakemake's imports);
- a dry run of a one-rule workflow in a temporary folder (Snakemake's floor on this machine);
- a dry run of this repository's default config (config/config.yaml), from the repository root;
- with --baseline, the same in another checkout (e.g. of the main branch), for a before/after.
The installed executor plugins are listed: Snakemake imports each one on every start.

    python benchmarks/dry_run.py [--repeats 5] [--baseline ../main] [--out benchmarks/results/<cpu>-<date>/dry_run.csv]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ONE_RULE = 'rule all:\n    output: "done"\n    shell: "touch {output}"\n'


def seconds(command, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout whose default config to time alike")
    parser.add_argument("--out", help="CSV of every timing")
    args = parser.parse_args()
    snakemake = [sys.executable, "-m", "snakemake", "--dry-run", "--quiet", "--cores", "1"]
    with tempfile.TemporaryDirectory() as floor:
        (Path(floor) / "Snakefile").write_text(ONE_RULE)
        commands = {
            "import snakemake.cli": ([sys.executable, "-c", "import snakemake.cli"], ROOT),
            "dry run, one-rule workflow": (snakemake, floor),
            "dry run, default config": (snakemake, ROOT),
        }
        if args.baseline:
            commands[f"dry run, default config, {args.baseline}"] = (snakemake, args.baseline)
        rows = [
            {"command": name, "round": round_, "seconds": seconds(command, cwd)}
            for round_ in range(1, args.repeats + 1)
            for name, (command, cwd) in commands.items()
        ]
    table = pd.DataFrame(rows)
    plugins = sorted(
        d.metadata["Name"]
        for d in metadata.distributions()
        if d.metadata["Name"].startswith("snakemake-executor-plugin-")
    )
    print(f"snakemake {metadata.version('snakemake')}; executor plugins installed: {plugins or 'none'}")
    print(table.groupby("command", sort=False)["seconds"].agg(["median", "min", "max"]).round(2).to_markdown())
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
