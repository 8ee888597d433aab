"""What the workflow records and hashes about the code: the modules each script runs."""

import subprocess
import sys

from attnscore import provenance
from helpers import ROOT

SCRIPTS = ROOT / "workflow" / "scripts"


def names(script):
    return {path.name for path in provenance.package_modules(SCRIPTS / script)}


def test_each_rule_hashes_the_modules_its_script_runs_and_no_others():
    assert names("plot.py") == {"plots.py", "stats.py", "io.py"}
    assert names("compare.py") == {"stats.py", "io.py"}
    training = names("train.py")
    assert {
        "train.py",
        "model.py",
        "attention.py",
        "checkpoints.py",
        "runtime.py",
        "launch.py",
        "tokens.py",
    } <= training
    assert not {"plots.py", "corpora.py", "tokenizer.py", "bench.py"} & training
    assert "bench.py" in names("benchmark.py") and "tokenizer.py" in names("tokenize.py")


def test_what_the_snakefile_runs_imports_no_torch():
    """A dry run plans and checks the config without torch (importing it costs a second)."""
    code = (
        "import sys, yaml, attnscore.provenance, attnscore.corpora, attnscore.io; from attnscore.config import check; "
        "check(yaml.safe_load(open('config/config.yaml'))); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"
