"""What the workflow records about a result, and what the Snakefile imports to plan the jobs."""

import subprocess
import sys

from helpers import ROOT


def test_what_the_snakefile_runs_imports_no_torch():
    """A dry run plans, checks the config and hashes the code without torch (importing it costs a second)."""
    code = (
        "import sys, yaml, attnscore.codeid, attnscore.kinds, attnscore.provenance, attnscore.corpora, attnscore.files; "
        "from attnscore.config import check; "
        "check(yaml.safe_load(open('config/config.yaml'))); "
        "euclid = attnscore.kinds.known_kinds()[0]['euclid'].source; "
        "attnscore.codeid.code_version('workflow/scripts/train.py', [('euclid', euclid)]); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"
