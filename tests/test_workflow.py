"""The real workflow on a tiny config in a temporary folder: run, no-op rerun, plot-only rerun;
then dry-run and lint of the default config."""

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
