"""What the workflow records and hashes about the code: the modules each script runs."""

import subprocess
import sys

from attnscore import provenance
from helpers import ROOT

SCRIPTS = ROOT / "workflow" / "scripts"


def names(script):
    return {path.name for path in provenance.package_modules(SCRIPTS / script)}


def test_each_rule_hashes_the_modules_its_script_runs_and_no_others():
    figures = {"plots.py", "summary.py", "course_report.py", "identity.py", "schema.py", "kinds.py"}
    assert names("plot.py") == figures | {"stats.py", "corpora.py", "io.py"}
    assert names("compare.py") == {"stats.py", "corpora.py", "io.py"}
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
    assert "bench.py" in names("benchmark.py") and "tokenizer.py" in names("tokenize_corpus.py")


def test_what_the_snakefile_runs_imports_no_torch():
    """A dry run plans and checks the config without torch (importing it costs a second)."""
    code = (
        "import sys, yaml, attnscore.provenance, attnscore.corpora, attnscore.io; from attnscore.config import check; "
        "check(yaml.safe_load(open('config/config.yaml'))); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"


KIND_MODULE = '''"""Two kinds in one module."""

import torch.nn.functional as F

from attnscore.attention import register

SCALE = 1.0


def helper(x):
    return x * SCALE


@register("first")
def first(q, k, v, causal=True, dropout_p=0.0):
    """The first kind."""
    return F.scaled_dot_product_attention(helper(q), k, v, is_causal=causal, dropout_p=dropout_p)


@register("second", options={"a": {"minimum": 0}})
def second(q, k, v, causal=True, dropout_p=0.0, a=1.0):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p) * a
'''


def kind_hashes(tmp_path, text):
    path = tmp_path / f"kinds{len(list(tmp_path.iterdir()))}.py"
    path.write_text(text)
    return {kind: provenance.code_parts((), ((kind, str(path)),))[f"kind {kind}"] for kind in ("first", "second")}


def test_a_kinds_code_is_its_function_and_what_it_uses_and_nothing_else(tmp_path):
    before = kind_hashes(tmp_path, KIND_MODULE)
    assert before["first"] != before["second"]
    # What `first` uses (a helper, a constant) is its code; `second` does not use them.
    for edit in ("SCALE = 2.0", "return x * SCALE + 0"):
        after = kind_hashes(tmp_path, KIND_MODULE.replace("SCALE = 1.0" if "=" in edit else "return x * SCALE", edit))
        assert after["first"] != before["first"] and after["second"] == before["second"], edit
    # Docstrings, comments, formatting and the declared option ranges compute nothing.
    cosmetic = KIND_MODULE.replace('"""The first kind."""', '"""Reworded."""  # and a comment')
    cosmetic = cosmetic.replace('{"a": {"minimum": 0}}', '{"a": {"minimum": 1}}').replace("* a\n", "*  a  # scaled\n")
    assert kind_hashes(tmp_path, cosmetic) == before


def test_a_runs_code_covers_training_and_its_kind_but_not_plots_or_statistics():
    parts = provenance.run_code("euclid", provenance.kinds.BUILT_IN)
    assert {"kind euclid", "model.py", "train.py", "checkpoints.py", "triton_attention.py"} <= set(parts)
    assert not {"attention.py", "plots.py", "stats.py", "io.py", "provenance.py", "steplog.py"} & set(parts)
    dot = provenance.run_code("dot", provenance.kinds.BUILT_IN)
    assert "kind euclid" not in dot and "triton_attention.py" not in dot and dot["model.py"] == parts["model.py"]
