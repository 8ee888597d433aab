"""What the workflow records and hashes about the code: the modules each script runs."""

import subprocess
import sys

from attnscore import provenance
from helpers import ROOT

SCRIPTS = ROOT / "workflow" / "scripts"


def names(script):
    return {path.name for path in provenance.package_modules(SCRIPTS / script)}


def test_each_rule_hashes_the_modules_its_script_runs_and_no_others():
    assert names("plot.py") == {"plots.py", "io.py"}
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


def test_provenance_and_the_config_check_import_no_torch_until_asked():
    code = "import sys, attnscore.provenance, attnscore.config, attnscore.corpora; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"
