"""The code identity (attnscore.codeid): every edit that can change what a kind computes changes
its identity, comments and layout do not, and one kind's module never changes another's."""

import os
import sys

import pytest

from attnscore import attention, codeid, kinds
from helpers import ROOT

SCRIPTS = ROOT / "workflow" / "scripts"
SOURCES = {name: kind.source.resolve() for name, kind in kinds.known_kinds()[0].items()}  # the kinds' modules

PLUGIN = '''"""A plugin kind, using what a kind may use: constants, a class, a local helper module."""

import torch.nn.functional as F

from attnscore.attention import register
from helper import factor

TEMP = 1.0
TEMP = TEMP * 1
SCALE = 2.0
SCALE += 0.0
if SCALE > 1:
    OFFSET = 0.0


class Scorer:
    def scale(self, q):
        return q * TEMP * factor() + OFFSET


@register("plugged")
def plugged(q, k, v, causal=True, dropout_p=0.0):
    return F.scaled_dot_product_attention(Scorer().scale(q), k, v, is_causal=causal, dropout_p=dropout_p)
'''
HELPER = "def factor():\n    return 1.0\n"


def write(path, text):
    """Write a module, its modification time moved on: an edit within the file system's clock tick
    that keeps the size must still be read again."""
    before = path.stat().st_mtime_ns if path.exists() else None
    path.write_text(text)
    if before is not None:
        os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plugin module and its helper, importable from a fresh folder."""
    monkeypatch.syspath_prepend(str(tmp_path))
    write(tmp_path / "helper.py", HELPER)
    write(tmp_path / "plugin.py", PLUGIN)
    return tmp_path / "plugin.py"


def versions(plugin) -> dict:
    """The train rule's code version for the plugin's kind and for dot."""
    return {
        kind: codeid.code_version(SCRIPTS / "train.py", [(kind, source)])
        for kind, source in (("plugged", plugin), ("dot", SOURCES["dot"]))
    }


EDITS = [
    ("a constant assigned twice, the first line", "plugin.py", "TEMP = 1.0", "TEMP = 2.0"),
    ("an augmented assignment", "plugin.py", "SCALE += 0.0", "SCALE += 1.0"),
    ("a module-level if", "plugin.py", "if SCALE > 1:", "if SCALE > 3:"),
    ("a module-level side effect", "plugin.py", "class Scorer:", "F.dropout = F.relu\n\n\nclass Scorer:"),
    ("a local helper module", "helper.py", "return 1.0", "return 4.0"),
    ("a method of a class the kind uses", "plugin.py", "return q * TEMP", "return 2 * q * TEMP"),
    ("a docstring", "plugin.py", '"""A plugin kind', '"""Some plugin kind'),
]
HARMLESS = [
    ("a comment", "plugin.py", "TEMP = 1.0", "TEMP = 1.0  # the temperature"),
    ("spaces within a line", "plugin.py", "SCALE += 0.0", "SCALE  +=  0.0"),
    ("blank lines", "plugin.py", "class Scorer:", "\n\nclass Scorer:"),
    ("a line broken within brackets", "plugin.py", "(Scorer().scale(q), k, v,", "(\n        Scorer().scale(q), k, v,"),
    ("indentation", "helper.py", "    return 1.0", "        return 1.0"),
]


@pytest.mark.parametrize("edit, name, old, new", EDITS, ids=[edit[0] for edit in EDITS])
def test_an_edit_of_what_a_kind_runs_changes_its_identity_and_not_dots(plugin, edit, name, old, new):
    before = versions(plugin)
    path = plugin.parent / name
    assert old in path.read_text()
    write(path, path.read_text().replace(old, new, 1))
    after = versions(plugin)
    assert after["plugged"] != before["plugged"] and after["dot"] == before["dot"]


@pytest.mark.parametrize("edit, name, old, new", HARMLESS, ids=[edit[0] for edit in HARMLESS])
def test_comments_and_layout_change_no_identity(plugin, edit, name, old, new):
    before = versions(plugin)
    path = plugin.parent / name
    write(path, path.read_text().replace(old, new, 1))
    assert versions(plugin) == before


def test_a_plugin_wrapping_a_built_in_kind_changes_with_the_built_in_module(tmp_path, monkeypatch):
    """A kind's code reaches into other kind modules; the code all kinds share does not."""
    monkeypatch.syspath_prepend(str(tmp_path))
    write(
        tmp_path / "builtins_.py", '@register("base")\ndef base(q, k, v, causal=True, dropout_p=0.0):\n    return q\n'
    )
    wrapper = "from builtins_ import base\n\n\n@register('wrapped')\ndef wrapped(*args):\n    return base(*args)\n"
    write(tmp_path / "wrapper.py", wrapper)
    script = tmp_path / "script.py"
    write(script, "import builtins_\nimport wrapper\n")  # a script importing kind modules: they are the kinds'

    def identity():
        return codeid.identity([script], [("base", tmp_path / "builtins_.py"), ("wrapped", tmp_path / "wrapper.py")])

    before = identity()
    assert set(before) == {"kind base", "kind wrapped", str(script)}
    write(tmp_path / "builtins_.py", (tmp_path / "builtins_.py").read_text().replace("return q", "return k"))
    after = identity()
    assert after["kind wrapped"] != before["kind wrapped"] and after["kind base"] != before["kind base"]
    assert after[str(script)] == before[str(script)]
    # The real built-in euclid, the same way: a plugin importing its module counts it whole.
    module = ".".join(SOURCES["euclid"].relative_to(codeid.PACKAGE.parent).with_suffix("").parts)
    write(tmp_path / "wrapping.py", f"from {module} import *\n")
    assert SOURCES["euclid"] in codeid.reach([tmp_path / "wrapping.py"])


def test_a_kind_registered_by_another_module_than_its_functions_has_the_registering_ones_code(tmp_path, monkeypatch):
    """register("x", ...)(f) with f imported: the train job's run id covers the registering module,
    which reaches f's, as the workflow's code version does; an edit of either changes it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(attention, "KINDS", dict(attention.KINDS))
    write(tmp_path / "scores_lib.py", "def scaled(q, k, v, causal=True, dropout_p=0.0, **options):\n    return v\n")
    registers = (
        'from attnscore.attention import register\nfrom scores_lib import scaled\n\nregister("elsewhere")(scaled)\n'
    )
    write(tmp_path / "registers.py", registers)
    try:
        source = attention.source_of("elsewhere", ["registers"])
        assert source == kinds.known_kinds(["registers"])[0]["elsewhere"].source == tmp_path / "registers.py"
        before = codeid.run_code("elsewhere", source)
        write(tmp_path / "registers.py", registers + "scaled.__defaults__ = (True, 0.5)\n")
        assert codeid.run_code("elsewhere", source) != before
    finally:
        for module in ("registers", "scores_lib"):
            sys.modules.pop(module, None)


def test_imports_anywhere_in_a_file_count_and_nothing_is_imported(tmp_path, monkeypatch):
    """Imports inside functions, submodules named by `from`, relative imports, and the packages
    they run first: all count; the standard library and installed packages do not."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from . import deep\n",
        "pkg/sub/deep.py": "from ..sibling import VALUE\n",
        "pkg/sibling.py": "import json\n\nVALUE = 1\n",
        "pkg/unused.py": "VALUE = 2\n",
        "entry.py": "import numpy\n\n\ndef f():\n    from pkg import sub\n    return sub\n",
    }
    for name, text in files.items():
        write(tmp_path / name, text)
    reached = {path.relative_to(tmp_path).as_posix() for path in codeid.reach([tmp_path / "entry.py"])}
    assert reached == set(files) - {"pkg/unused.py"}
    assert "pkg" not in sys.modules and "entry" not in sys.modules


def test_each_rule_hashes_the_files_its_script_runs_and_no_others():
    def names(script):
        return {path.name for path in codeid.reach([SCRIPTS / script], set(SOURCES.values()))}

    statistics = {"__init__.py", "stats.py", "corpora.py", "files.py"}
    figures = {"plots.py", "summary.py", "timings.py", "to_target.py"}
    assert names("plot.py") == {"plot.py"} | statistics | figures
    assert names("compare.py") == {"compare.py"} | statistics
    assert names("to_target.py") == {"to_target.py", "timings.py"} | statistics
    training = names("train.py")
    assert {"train.py", "model.py", "checkpoints.py", "runtime.py", "launch.py", "tokens.py", "codeid.py"} <= training
    assert not {"plots.py", "stats.py", "corpora.py", "tokenizer.py", "bench.py"} & training
    assert "bench.py" in names("benchmark.py") and "tokenizer.py" in names("tokenize_corpus.py")


def test_a_runs_code_covers_training_and_its_kind_but_not_plots_or_statistics():
    euclid = codeid.run_code("euclid", SOURCES["euclid"])
    assert {"kind euclid", "attnscore/model.py", "attnscore/train.py", "attnscore/checkpoints.py"} <= set(euclid)
    module = SOURCES["euclid"].relative_to(codeid.PACKAGE.parent).as_posix()  # in "kind euclid" alone
    assert not {module, "attnscore/plots.py", "attnscore/stats.py"} & set(euclid)
    assert list(euclid) == sorted(euclid)  # one order in every process: Snakemake compares params as text
    dot = codeid.run_code("dot", SOURCES["dot"])
    assert dot.keys() == euclid.keys() - {"kind euclid"} | {"kind dot"}
    assert codeid.changes(dot, euclid) == ["the code of kind 'dot'", "the code of kind 'euclid'"]
    assert codeid.changes(euclid, {**euclid, "attnscore/model.py": "0"}) == ["the code of attnscore/model.py"]


def test_digests_kept_across_processes_serve_only_the_same_bytes(plugin, tmp_path, monkeypatch):
    monkeypatch.setattr(codeid, "STORE", codeid._Store(tmp_path / "store" / "codeid.json"))
    monkeypatch.setattr(codeid, "_sources", {})
    before = versions(plugin)
    read = codeid._read

    def tokenized(path, data):
        seen.append(path.name)
        return read(path, data)

    seen = []
    monkeypatch.setattr(codeid, "_read", tokenized)
    monkeypatch.setattr(codeid, "_sources", {})  # as in a new process
    assert versions(plugin) == before and seen == []
    write(plugin, plugin.read_text().replace("TEMP = 1.0", "TEMP = 2.0"))
    monkeypatch.setattr(codeid, "_sources", {})
    assert versions(plugin)["plugged"] != before["plugged"] and seen == ["plugin.py"]
