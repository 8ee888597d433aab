"""The real workflow on a tiny config in a temporary folder: run, no-op rerun, plot-only rerun;
then dry-run and lint of the default config."""

import json
import re

import pandas as pd
import pytest

from helpers import ROOT, copy_workflow, executed_rules, snakemake, tiny_config, write_config

OUTPUTS = [
    "data/train.npy", "data/tokenizer.json", "data/meta.json",
    "train/dot/metrics.csv", "train/euclid/metrics.csv", "train/dot/model.pt", "train/euclid/model.pt",
    "eval/dot.json", "eval/euclid.json", "bench/dot.csv", "bench/euclid.csv", "bench/euclid_naive.csv",
    "figures/perplexity.png", "figures/perplexity.svg", "figures/throughput.png", "figures/throughput.svg",
    "train/dot/provenance.json", "throughput.csv", "summary.md",
]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("workflow"))
    write_config(work, "tiny.yaml", tiny_config())
    return work


@pytest.mark.slow
def test_tiny_workflow_end_to_end(workdir):
    log = snakemake(workdir, "--configfile", "config/tiny.yaml").log
    assert executed_rules(log) == ["all", "benchmark", "demo_corpus", "evaluate", "plot", "tokenize", "train"]
    results = workdir / "results" / "tiny"
    for output in OUTPUTS:
        assert (results / output).stat().st_size > 0, output
    metrics = pd.read_csv(results / "train" / "euclid" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and {"train_ppl", "valid_ppl", "test_ppl", "tokens_per_s"} <= set(metrics)
    table = pd.read_csv(results / "throughput.csv")
    assert sorted(zip(table["variant"], table["seq_len"], strict=True)) == [
        (v, t) for v in ("dot", "euclid", "euclid_naive") for t in (32, 64)
    ]
    assert (table["status"] == "ok").all() and (table.loc[table["variant"] == "dot", "vs_dot_pct"] == 0).all()
    summary = (results / "summary.md").read_text()
    assert "| ours: euclid | 2 |" in summary and "| reference: dot | 20 | 484 | 245 | 233 | 170.7 |" in summary
    assert "| euclid_naive | 64 |" in summary
    assert (results / "figures" / "perplexity.png").read_bytes()[:4] == b"\x89PNG"

    # Nothing changed: nothing runs.
    assert "Nothing to be done" in snakemake(workdir, "--configfile", "config/tiny.yaml").log

    # Forcing the plot step reruns only the plot (and the aggregate target), never training.
    trained = {p: p.stat().st_mtime_ns for p in results.glob("*/*/*") if p.suffix in {".csv", ".pt"}}
    log = snakemake(workdir, "--configfile", "config/tiny.yaml", "--forcerun", "plot").log
    assert executed_rules(log) == ["all", "plot"]
    assert trained == {p: p.stat().st_mtime_ns for p in trained}

    # Editing package code re-runs exactly the rules that run it.
    with open(workdir / "attnscore" / "plots.py", "a") as f:
        f.write("# edited\n")
    assert executed_rules(snakemake(workdir, "--configfile", "config/tiny.yaml", "--dry-run").log) == ["all", "plot"]
    with open(workdir / "attnscore" / "attention.py", "a") as f:
        f.write("# edited\n")
    planned = executed_rules(snakemake(workdir, "--configfile", "config/tiny.yaml", "--dry-run").log)
    assert planned == ["all", "benchmark", "evaluate", "plot", "train"]


def test_default_config_dry_run_plans_the_whole_chain_with_gpu_tags():
    log = snakemake(ROOT, "--dry-run").log
    jobs, rule = {}, None  # rule -> whether each of its planned jobs holds gpu=1
    for line in log.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[-1].rstrip(":")
        elif rule and line.strip().startswith("resources:"):
            jobs.setdefault(rule, set()).add("gpu=1" in line)
            rule = None
    assert set(jobs) == {
        "download_wikitext",
        "download_gpt2_bpe",
        "tokenize",
        "train",
        "evaluate",
        "benchmark",
        "plot",
        "all",
    }
    assert {rule for rule, gpu in jobs.items() if gpu == {True}} == {"train", "evaluate", "benchmark"}
    assert all(gpu == {False} for rule, gpu in jobs.items() if rule not in {"train", "evaluate", "benchmark"})


def test_lint_has_nothing_to_say():
    log = snakemake(ROOT, "--lint").log
    assert "Lints for" not in log, log


TOY_KIND = '''"""A kind defined outside attnscore, the way a user adds one: scaled dot product with a temperature."""

import math

import torch.nn.functional as F

from attnscore.attention import register


@register("dot_temperature")
def dot_temperature(q, k, v, causal, dropout_p, temperature):
    scale = 1 / (temperature * math.sqrt(q.shape[-1]))
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p, scale=scale)
'''


@pytest.mark.slow
def test_a_kind_registered_in_a_plugin_module_trains_through_the_workflow(tmp_path):
    """Adding a kind is one registered function and its name in variants: here in a module beside
    the Snakefile, named in model.attention_plugins, its option in model.attention_options."""
    work = copy_workflow(tmp_path)
    (work / "toy_kinds.py").write_text(TOY_KIND)
    config = tiny_config(
        experiment="toy",
        variants=["dot", "dot_temperature"],
        model={"attention_plugins": ["toy_kinds"], "attention_options": {"dot_temperature": {"temperature": 4.0}}},
        benchmark={"variants": ["dot", "dot_temperature"], "seq_lens": [32]},
    )
    snakemake(work, "--configfile", write_config(work, "toy.yaml", config))
    results = work / "results" / "toy"
    toy, dot = (pd.read_csv(results / "train" / v / "metrics.csv") for v in ("dot_temperature", "dot"))
    assert list(toy["epoch"]) == [1, 2] and toy["valid_ppl"].iloc[-1] < toy["valid_ppl"].iloc[0]
    assert (toy["train_loss"] != dot["train_loss"]).all()  # the temperature reached the kind: not plain dot
    assert json.loads((results / "eval" / "dot_temperature.json").read_text())["attention"] == "dot_temperature"
    bench = pd.read_csv(results / "bench" / "dot_temperature.csv")
    assert list(bench["status"]) == ["ok"]
    assert "| ours: dot_temperature | 2 |" in (results / "summary.md").read_text()

    # Editing the plugin re-runs the jobs of its kind, and only those.
    with open(work / "toy_kinds.py", "a") as f:
        f.write("# edited\n")
    log = snakemake(work, "--configfile", "config/toy.yaml", "--dry-run").log
    assert executed_rules(log) == ["all", "benchmark", "evaluate", "plot", "train"]
    assert set(re.findall(r"wildcards: variant=(\w+)", log)) == {"dot_temperature"}

    # A config naming a kind no module registers fails before any job, naming the known kinds.
    config["model"]["attention_plugins"] = []
    result = snakemake(work, "--configfile", write_config(work, "bad.yaml", config), check=False)
    assert result.returncode != 0 and "unknown attention kind(s) ['dot_temperature']" in result.log
