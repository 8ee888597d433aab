"""The README and the guide say only what is there: the files and folders they name exist, the
make targets they give are in the Makefile, the config keys they name are in the schema, the
package names resolve, and every interval the README quotes is in a committed summary."""

import importlib
import re
from pathlib import Path

import pytest
import yaml

from attnscore.schema import SCHEMA
from attnscore.summary import COURSE_NUMBERS

ROOT = Path(__file__).resolve().parents[1]
README, GUIDE = ROOT / "README.md", ROOT / "docs" / "guide.md"
DOCUMENTS = [README, GUIDE]
# A name starting with one of these is a path in the repository (result paths such as
# `train/<variant>/...` are relative to results/<experiment>/ and are not checked).
TOP_LEVEL = ("attnscore/", "workflow/", "config/", "benchmarks/", "analysis/", "docs/", "tests/", "profiles/", "envs/",
             ".test/", ".ci/", "Snakefile", "Makefile", "requirements")  # fmt: skip
SECTIONS = ("data", "tokenizer", "model", "train", "benchmark", "analysis")


def code_spans(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def links(path: Path) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", path.read_text()) if not t.startswith(("http", "#"))]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_named_files_exist(path):
    named = [s for s in code_spans(path) if s.startswith(TOP_LEVEL) and not re.search(r"[<{ ]", s)]
    missing = [s for s in named if not list(ROOT.glob(s.rstrip("/")))]
    missing += [t for t in links(path) if not (path.parent / t.split("#")[0]).exists()]
    assert named and not missing, missing


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_make_targets_exist(path):
    targets = set(re.findall(r"(?m)^([\w-]+):", (ROOT / "Makefile").read_text()))
    given = set(re.findall(r"\bmake ([a-z][\w-]*)", path.read_text()))
    assert given and given <= targets, given - targets


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_config_keys_exist(path):
    schema = yaml.safe_load(SCHEMA.read_text())
    keys = {m for s in code_spans(path) for m in re.findall(rf"(?<![\w./])((?:{'|'.join(SECTIONS)})\.\w+)(?![\w/])", s)}
    keys -= {"model.pt", "model.py", "tokenizer.json"}  # file names
    unknown = [k for k in keys if k.split(".")[1] not in schema["properties"][k.split(".")[0]]["properties"]]
    assert keys and not unknown, unknown


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_package_names_resolve(path):
    for name in {m for s in code_spans(path) for m in re.findall(r"\battnscore(?:\.\w+)+", s)}:
        module, attribute = name, None
        while True:
            try:
                value = importlib.import_module(module)
                break
            except ModuleNotFoundError:
                module, _, attribute = module.rpartition(".")
        assert attribute is None or hasattr(value, name[len(module) + 1 :].split(".")[0]), name


def test_readme_is_short_and_its_intervals_are_committed():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    summaries = "".join(
        p.read_text() for p in [ROOT / "docs/demo/summary.md", *ROOT.glob("benchmarks/results/*/summary.md")]
    )
    quoted = re.findall(r"[+-]?\d[\d.,]*%?(?: time)? \(95% CI [^)]*\)|[+-]\d+\.\d% \[[^\]]*\]", text)
    assert quoted and not [q for q in quoted if q not in summaries], quoted


def test_readme_quotes_the_course_reports_numbers():
    """README's reference table says what attnscore.summary.COURSE_NUMBERS states (summary.md prints it)."""
    section = README.read_text().split("## Reference numbers beside ours")[1].split("\n## ")[0]
    for kind, numbers in COURSE_NUMBERS.items():
        labels = [(line, line.split("|")[1]) for line in section.splitlines() if line.startswith("|")]
        rows = "\n".join(line for line, label in labels if re.search(rf"\b{kind}\b", label))
        first_epoch = " / ".join(str(numbers[split]) for split in ("train_ppl_1", "valid_ppl_1", "test_ppl_1"))
        quoted = [first_epoch, f"{numbers['iters_per_s']} it/s"]
        quoted += [] if numbers["test_ppl_final"] is None else [f"| {numbers['test_ppl_final']} |"]
        assert all(number in rows for number in quoted), (kind, quoted, rows)
