"""The real workflow on a tiny config in a temporary folder: two variants x two seeds, the
statistics and report it produces, and which jobs each later edit of config or code re-runs;
then dry-run and lint of the default config."""

import base64
import json
import math
import os
import re

import pandas as pd
import pytest
import yaml

from attnscore import schema
from helpers import (
    ROOT,
    SEEDS,
    copy_finished,
    copy_workflow,
    events,
    executed_rules,
    snakemake,
    tiny_config,
    write_config,
)

RUNS = [f"{variant}/seed{seed}" for variant in ("dot", "euclid") for seed in SEEDS]
OUTPUTS = [
    "data/train.npy", "data/tokenizer.json", "data/meta.json",
    *(f"train/{run}/{name}" for run in RUNS for name in ("metrics.csv", "steps.csv", "curve.csv", "model.pt",
                                                          "provenance.json")),
    *(f"eval/{run}.json" for run in RUNS),
    "bench/rounds/round1.csv", "bench/rounds/round2.csv", "bench/measurements.csv", "bench/comparisons.csv",
    "compare/runs.csv", "compare/epochs.csv", "compare/best.csv", "compare/paired.csv", "compare/to_target.csv",
    *(f"attention/{run}.{ext}" for run in RUNS for ext in ("csv", "npy", "json")),
    "attention/runs.csv", "attention/paired.csv",
    *(f"figures/{name}.{ext}" for name in ("perplexity", "training", "paired", "throughput", "to_target",
                                           "attention_heads", "attention_maps", "attention_layers")
      for ext in ("png", "svg")),
    "summary.md", "verdicts.csv", "config.json", "code.json", "samples.md",
]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tiny_experiment, tmp_path_factory):
    """This module's copy of the finished tiny experiment (config/tiny.yaml, SEEDS), which its tests edit."""
    return copy_finished(tiny_experiment[0], tmp_path_factory.mktemp("workflow"))


@pytest.fixture(scope="module")
def finished(tiny_experiment):
    """The log of the tiny experiment's run."""
    return tiny_experiment[1]


@pytest.mark.slow
def test_tiny_workflow_end_to_end(workdir, finished):
    assert executed_rules(finished) == [
        "all", "attention", "benchmark", "compare", "compare_attention", "compare_timings", "demo_corpus", "evaluate",
        "plot", "samples", "to_target", "tokenize", "train",
    ]  # fmt: skip
    results = workdir / "results" / "tiny"
    for output in OUTPUTS:
        assert (results / output).stat().st_size > 0, output
    metrics = pd.read_csv(results / "train" / "euclid" / "seed1235" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and {"train_ppl", "valid_ppl", "test_ppl", "tokens_per_s"} <= set(metrics)
    steps = pd.read_csv(results / "train" / "euclid" / "seed1235" / "steps.csv")  # 20 steps an epoch, log_every 5
    assert list(steps["step"]) == [5, 10, 15, 20, 25, 30, 35, 40] and list(steps["epoch"]) == [1] * 4 + [2] * 4
    curve = pd.read_csv(results / "train" / "euclid" / "seed1235" / "curve.csv")  # eval_every 10
    assert list(curve["step"]) == [0, 10, 20, 30, 40] and list(curve["epoch"]) == [1, 1, 1, 2, 2]
    assert curve["flops"].tolist() == pytest.approx((curve["step"] * curve["flops"].iloc[1] / 10).tolist())
    for run in RUNS:  # one TensorBoard run per (variant, seed), in its run id's folder
        (board,) = (results / "tensorboard" / run).iterdir()
        assert [step for step, _ in events(board)["loss/train"]] == list(steps["step"])
        assert [step for step, _ in events(board)["loss/valid_curve"]] == list(curve["step"])
    to_target = pd.read_csv(results / "compare" / "to_target.csv").set_index("kind")
    assert {"size", "baseline", "seeds", "reached", "target", "steps_ratio", "steps_low", "steps_high", "time_ratio",
            "time_low", "time_high", "verdict", "flops_ratio"} <= set(to_target.columns) | {"kind"}  # fmt: skip
    assert to_target.at["dot", "verdict"] == "baseline" and to_target.at["dot", "steps_ratio"] == 1
    assert to_target.at["euclid", "verdict"] in {
        "more", "less", "no measurable difference", "inconclusive", "not reached", "not timed"
    }  # fmt: skip
    # Two interleaved rounds, each timing every kind at every shape in its own order; the
    # comparisons pair them by round, each kind against dot.
    timings = pd.read_csv(results / "bench" / "measurements.csv")
    assert sorted(zip(timings["round"], timings["kind"], timings["seq_len"], strict=True)) == [
        (r, v, t) for r in (1, 2) for v in ("dot", "euclid", "euclid_naive") for t in (32, 64)
    ]
    assert (timings["status"] == "ok").all() and (timings[["step_ms", "attention_ms"]] > 0).all().all()
    first_kind = timings[timings["position"] == 0].groupby("round")["kind"].unique()
    assert list(first_kind[1]) == ["dot"] and list(first_kind[2]) == ["euclid"]
    comparisons = pd.read_csv(results / "bench" / "comparisons.csv")
    assert len(comparisons) == 3 * 2 * 2 and set(comparisons["baseline"]) == {"dot"}  # kinds x shapes x measures
    # A round the CPU was busy in (another process on the cores) is left out and counted, so the
    # rounds kept depend on the machine; every round is counted one way or the other.
    assert (comparisons["rounds"] + comparisons["busy_rounds"] == 2).all()
    both = comparisons[comparisons["rounds"] == 2]
    assert (both["ratio_low"] <= both["ratio_high"]).all()
    assert set(comparisons.loc[comparisons["kind"] == "dot", "verdict"]) == {"baseline"}
    assert set(comparisons["verdict"]) <= {"baseline", "slower", "faster", "no measurable difference", "inconclusive"}

    # The statistics are those of the runs: two seeds per variant, paired by seed.
    runs = pd.read_csv(results / "compare" / "runs.csv")
    assert sorted(zip(runs["variant"], runs["seed"], strict=True)) == [(v, s) for v in ("dot", "euclid") for s in SEEDS]
    for run in runs.itertuples():
        saved = json.loads((results / "eval" / run.variant / f"seed{run.seed}.json").read_text())
        assert run.test_ppl == pytest.approx(saved["perplexity"])
    paired = pd.read_csv(results / "compare" / "paired.csv").set_index("metric")
    losses = runs.pivot(index="seed", columns="variant", values="test_loss")
    # The perplexity difference is the loss's taken to perplexity: exp(dot's mean loss) (exp(d) - 1).
    derived = math.exp(losses["dot"].mean()) * math.expm1(losses.eval("euclid - dot").mean())
    assert paired.at["test_ppl", "mean"] == pytest.approx(derived)
    assert paired.at["test_ppl", "seeds"] == 2
    assert paired.at["test_ppl", "ci_low"] < paired.at["test_ppl", "mean"] < paired.at["test_ppl", "ci_high"]
    epochs = pd.read_csv(results / "compare" / "epochs.csv")
    assert len(epochs) == 2 * 2 * 3 and (epochs["seeds"] == 2).all()  # variants x epochs x splits

    summary = (results / "summary.md").read_text()
    assert re.search(r"\| ours: euclid \| 2 \| 2 \| [\d.]+ \[[\d.]+, [\d.]+\] \|", summary), summary
    assert "| reference: dot | 1 | 20 | 484 | 245 | 233 | 170.7 |" in summary
    assert re.search(
        r"euclid - dot, test perplexity: [+-][\d.]+ \(95% CI [+-][\d.]+ to [+-][\d.]+, 2 paired seeds\)", summary
    )
    left_out = r"round(s)? left out, the CPU busy with another process"
    kept = (  # two rounds are too few to judge
        rf"[+-][\d.]+% time \((2 rounds|1 round kept of 2; 1 {left_out})\): too few rounds to tell; "
        r"set benchmark.rounds to [34] or more"
    )
    assert re.search(
        rf"euclid_naive vs dot, training step at seq_len 64: ({kept}|not measured \(no round left; 2 {left_out}\))",
        summary,
    )
    assert "| euclid_naive | dot | 64 | attention |" in summary
    assert "## At equal cost" in summary
    assert re.search(r"- euclid (reaches|does not reach) dot's best validation loss \([\d.]+ nats\)", summary)
    assert (results / "figures" / "perplexity.png").read_bytes()[:4] == b"\x89PNG"

    # Nothing changed: nothing runs.
    assert "Nothing to be done" in snakemake(workdir, "--configfile", "config/tiny.yaml").log

    # Forcing the plot step reruns only the plot (and the aggregate target), never training.
    computed = ("data", "checkpoints", "train", "eval", "bench", "compare")
    trained = {p: p.stat().st_mtime_ns for folder in computed for p in (results / folder).rglob("*")}
    log = snakemake(workdir, "--configfile", "config/tiny.yaml", "--forcerun", "plot").log
    assert executed_rules(log) == ["all", "plot"]
    assert trained == {p: p.stat().st_mtime_ns for p in trained}


def report_entries(html: str) -> dict:
    """The files a Snakemake HTML report embeds: path -> (caption, decoded content)."""
    entries = {}
    for match in re.finditer(r'"(results/[^"]+)": \{"name".*?"caption": "(.*?)", "mime_type".*?;base64,([^"]*)"', html):
        entries[match[1]] = (match[2], base64.b64decode(match[3]))
    return entries


@pytest.mark.slow
def test_report_embeds_the_figures_tables_and_summary_with_captions(workdir, finished):
    snakemake(workdir, "--configfile", "config/tiny.yaml", "--report", "report.html")
    html = (workdir / "report.html").read_text()
    assert "Does this attention scoring function work as well as dot product" in html  # workflow.rst
    assert "max_steps_per_epoch" in html  # the resolved config, shown in the description
    entries = report_entries(html)
    captions = {
        "figures/perplexity.png": "shaded band is its 95% Student-t",
        "figures/training.png": "Training as it went, against the optimizer step",
        "figures/paired.png": "Paired differences against",
        "figures/throughput.png": "What each kind costs",
        "figures/to_target.png": "Validation loss on the validation curve",
        "compare/to_target.csv": "Quality at equal cost",
        "bench/comparisons.csv": "paired ratio of times",
        "compare/paired.csv": "paired t-test",
        "summary.md": "one quotable sentence",
        "train/euclid/seed1235/provenance.json": "What produced this run",
    }
    for path, caption in captions.items():
        assert f"results/tiny/{path}" in entries, (path, sorted(entries))
        assert caption in entries[f"results/tiny/{path}"][0], path
    assert entries["results/tiny/figures/paired.png"][1][:4] == b"\x89PNG"
    summary = entries["results/tiny/summary.md"][1].decode()
    assert summary == (workdir / "results" / "tiny" / "summary.md").read_text() and "2 paired seeds" in summary


HOSTILE = "Docs </script><img src=x onerror=alert(1)> *x* $\\alpha$ [l](javascript:alert(2))"


@pytest.mark.slow
def test_a_hostile_label_reaches_the_report_escaped_everywhere(workdir, finished):
    """data.name is user text: in the report's HTML, its scripts' data, the summary and the
    figures' titles it is shown as written, never as a tag, link or directive."""
    hostile = write_config(workdir, "hostile.yaml", {**TINY, "data": {**TINY["data"], "name": HOSTILE}})
    try:
        assert executed_rules(snakemake(workdir, "--configfile", hostile).log) == ["all", "plot"]
        snakemake(workdir, "--configfile", hostile, "--report", "hostile.html")
        html = (workdir / "hostile.html").read_text()
        assert "<img src=x" not in html and "</script><img" not in html and 'href="javascript' not in html
        summary = report_entries(html)["results/tiny/summary.md"][1].decode()
        assert "# Results: Docs &lt;/script&gt;&lt;img src=x onerror=alert\\(1\\)&gt; \\*x\\*" in summary
        assert "<img" not in summary and "](javascript" not in summary
    finally:
        snakemake(workdir, "--configfile", "config/tiny.yaml")  # the figures with the label again
    two_lines = write_config(workdir, "two_lines.yaml", {**TINY, "data": {**TINY["data"], "name": "a\n.. raw:: html"}})
    refused = snakemake(workdir, "--configfile", two_lines, "--dry-run", check=False)
    assert (
        refused.returncode != 0 and "data.name: 'a\\n.. raw:: html' is not allowed: label of the corpus" in refused.log
    )


@pytest.mark.slow
def test_a_scaling_figure_of_sizes_no_longer_configured_is_removed(workdir, finished):
    figures = workdir / "results" / "tiny" / "figures"
    for stale in ("scaling.png", "scaling.svg"):
        (figures / stale).write_text("of sizes an earlier config had")
    snakemake(workdir, "--configfile", "config/tiny.yaml", "--forcerun", "plot")
    assert not list(figures.glob("scaling.*")) and (figures / "paired.png").exists()


@pytest.mark.slow
def test_a_report_is_refused_for_a_config_the_results_were_not_made_with(workdir, finished):
    edited = write_config(workdir, "stale.yaml", {**TINY, "train": {**TINY["train"], "lr": 5e-4, "epochs": 4}})
    refused = snakemake(workdir, "--configfile", edited, "--report", "stale.html", check=False)
    assert refused.returncode != 0 and not (workdir / "stale.html").exists()
    assert "the results in results/tiny were made with another config" in refused.log
    assert "train.epochs: 2 in the results, 4 in this config" in refused.log
    assert "train.lr: 0.001 in the results, 0.0005 in this config" in refused.log
    ordered = write_config(workdir, "same.yaml", {**TINY, "train": {**TINY["train"], "checkpoint_every": 3}})
    snakemake(workdir, "--configfile", ordered, "--report", "same.html")  # a procedure setting changes no result


@pytest.mark.slow
def test_a_report_is_refused_for_code_the_results_were_not_made_with(workdir, finished):
    path = workdir / "attnscore" / "stats.py"
    original, stat = path.read_text(), path.stat()
    try:
        path.write_text(original + CODE)
        refused = snakemake(workdir, "--configfile", "config/tiny.yaml", "--report", "stale.html", check=False)
        assert refused.returncode != 0 and not (workdir / "stale.html").exists()
        assert "the results in results/tiny were made with another config or code" in refused.log
        assert "the code of attnscore/stats.py" in refused.log
        path.write_text(original + "\n# a comment computes nothing\n")
        snakemake(workdir, "--configfile", "config/tiny.yaml", "--report", "same.html")
    finally:  # as it was, time included
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# Edits of config or code on a finished workflow, and the rules a dry run then plans ("all"
# is left out). A label re-runs only the figures; how a run proceeds re-runs nothing. A code
# edit is (file, text replaced or None to append, new text).
TINY = tiny_config(seeds=SEEDS)
CODE = "\n_EDITED = True\n"  # a statement: comments and docstrings are not code
KEY_ORDER = "the same config, keys in reverse order, train.weight_decay written 0"
# What each role of a config key (attnscore.schema.ROLES, declared per key in the schema) re-runs.
# Whatever changes the checkpoints re-reads them (READS).
READS = {"attention", "compare_attention", "samples"}
RERUNS = {
    "data": {"tokenize", "train", "evaluate", "compare", "benchmark", "compare_timings", "to_target", "plot", *READS},
    "run": {"train", "evaluate", "compare", "to_target", "plot", *READS},
    "curve": {"train", "evaluate", "compare", "to_target", "plot", *READS},
    "length": {"train", "evaluate", "compare", "to_target", "plot", *READS},
    "evaluation": {"train", "evaluate", "compare", "to_target", "plot", *READS},
    "timing": {"benchmark", "compare_timings", "to_target", "plot"},
    "statistics": {"compare_timings", "to_target", "plot"},
    "presentation": {"plot"},
    "procedure": set(),
    "attention": {"attention", "compare_attention", "plot"},
    "samples": {"samples"},
}


def rerun_by_roles(key: str) -> list[str]:
    """The rules an edit of one config key re-runs, by its roles."""
    section, name = key.split(".")
    return sorted(set().union(*(RERUNS[role] for role in schema.roles(section)[name])))


CACHING_TABLE = [
    ("data.name", {"data": {**TINY["data"], "name": "renamed"}}, None, rerun_by_roles("data.name")),
    ("train.checkpoint_every", {"train": {**TINY["train"], "checkpoint_every": 7}}, None,
     rerun_by_roles("train.checkpoint_every")),
    ("train.compile", {"train": {**TINY["train"], "compile": True}}, None, rerun_by_roles("train.compile")),
    ("benchmark.steps", {"benchmark": {**TINY["benchmark"], "steps": 3}}, None, rerun_by_roles("benchmark.steps")),
    ("benchmark.rounds + 1", {"benchmark": {**TINY["benchmark"], "rounds": 3}}, None,
     ["benchmark", "compare_timings", "plot", "to_target"]),
    ("benchmark.rounds - 1", {"benchmark": {**TINY["benchmark"], "rounds": 1}}, None,
     ["compare_timings", "plot", "to_target"]),
    ("benchmark.margin", {"benchmark": {**TINY["benchmark"], "margin": 0.05}}, None, rerun_by_roles("benchmark.margin")),
    ("benchmark.variants", {"benchmark": {**TINY["benchmark"], "variants": ["dot", "euclid"]}}, None,
     rerun_by_roles("benchmark.variants")),
    ("train.eval_batch_size", {"train": {**TINY["train"], "eval_batch_size": 4}}, None,
     rerun_by_roles("train.eval_batch_size")),
    ("train.epochs", {"train": {**TINY["train"], "epochs": 3}}, None, rerun_by_roles("train.epochs")),
    ("train.lr", {"train": {**TINY["train"], "lr": 2e-3}}, None, rerun_by_roles("train.lr")),
    ("train.optimizer", {"train": {**TINY["train"], "optimizer": "adamw"}}, None, rerun_by_roles("train.optimizer")),
    ("train.schedule", {"train": {**TINY["train"], "schedule": "cosine"}}, None, rerun_by_roles("train.schedule")),
    ("train.warmup_steps", {"train": {**TINY["train"], "warmup_steps": 5}}, None,
     rerun_by_roles("train.warmup_steps")),
    ("train.min_lr_ratio", {"train": {**TINY["train"], "min_lr_ratio": 0.2}}, None,
     rerun_by_roles("train.min_lr_ratio")),
    ("train.log_every", {"train": {**TINY["train"], "log_every": 3}}, None, rerun_by_roles("train.log_every")),
    ("train.eval_every", {"train": {**TINY["train"], "eval_every": 5}}, None, rerun_by_roles("train.eval_every")),
    ("train.eval_batches", {"train": {**TINY["train"], "eval_batches": 1}}, None,
     rerun_by_roles("train.eval_batches")),
    ("seeds + 1", {"seeds": [*SEEDS, 7]}, None,
     ["attention", "compare", "compare_attention", "evaluate", "plot", "to_target", "train"]),
    ("variants + 1", {"variants": ["dot", "euclid", "euclid_sq"]}, None,
     ["attention", "compare", "compare_attention", "evaluate", "plot", "samples", "to_target", "train"]),
    ("attention_options.euclid", {"model": {**TINY["model"], "attention_options": {"euclid": {"p": 3}}}}, None,
     rerun_by_roles("model.attention_options")),
    ("tokenizer.vocab_size", {"tokenizer": {**TINY["tokenizer"], "vocab_size": 300}}, None,
     rerun_by_roles("tokenizer.vocab_size")),
    ("attnscore/plots.py", {}, ("attnscore/plots.py", None, CODE), ["compare_attention", "plot"]),
    ("attnscore/stats.py", {}, ("attnscore/stats.py", None, CODE),
     ["compare", "compare_attention", "compare_timings", "plot", "samples", "to_target"]),
    ("attnscore/model.py", {}, ("attnscore/model.py", None, CODE),
     ["attention", "benchmark", "compare", "compare_attention", "compare_timings", "evaluate", "plot", "samples",
      "to_target", "train"]),
    ("kind euclid's function", {}, ("attnscore/scores/euclid.py", "    if p != 2:\n", "    if p != 2.0:\n"),
     ["attention", "benchmark", "compare", "compare_attention", "compare_timings", "evaluate", "plot", "samples",
      "to_target", "train"]),
    ("analysis.windows", {"analysis": {**TINY["analysis"], "windows": 3}}, None, rerun_by_roles("analysis.windows")),
    ("analysis.top_k", {"analysis": {**TINY["analysis"], "top_k": 5}}, None, rerun_by_roles("analysis.top_k")),
    ("attnscore/attention_probe.py", {}, ("attnscore/attention_probe.py", None, CODE),
     ["attention", "compare_attention", "plot", "samples"]),
    ("a comment in a kind's module", {}, ("attnscore/scores/euclid.py", None, "\n# a comment computes nothing\n"), []),
    ("workflow/scripts/compare.py", {}, ("workflow/scripts/compare.py", None, "\n# edited\n"), ["compare", "plot"]),
    ("key order, 0 for 0.0", KEY_ORDER, None, []),
]  # fmt: skip


def test_every_config_key_declares_known_roles():
    for section in schema.SECTIONS:
        declared = schema.roles(section)
        keys = {key: spec for key, spec in schema.properties(section).items() if section or "x-role" in spec}
        assert set(declared) == set(keys) and all(set(has) <= set(schema.ROLES) for has in declared.values()), section


# Which (variant, seed) jobs of train each edit plans, where not all of them.
TRAIN_JOBS = {
    "seeds + 1": {("dot", "7"), ("euclid", "7")},
    "variants + 1": {("euclid_sq", "1234"), ("euclid_sq", "1235")},
    "attention_options.euclid": {("euclid", "1234"), ("euclid", "1235")},
    "kind euclid's function": {("euclid", "1234"), ("euclid", "1235")},
}
# Which rounds of the benchmark each edit plans, where not all of them: a new round only.
BENCHMARK_ROUNDS = {"benchmark.rounds + 1": {"3"}}


@pytest.mark.slow
@pytest.mark.parametrize("edit, change, source, planned", CACHING_TABLE, ids=[row[0] for row in CACHING_TABLE])
def test_an_edit_reruns_exactly_what_it_changes(workdir, finished, edit, change, source, planned):
    if change == KEY_ORDER:
        config = "config/edited.yaml"

        def reversed_keys(value):
            return {key: reversed_keys(value[key]) for key in reversed(value)} if isinstance(value, dict) else value

        edited = reversed_keys(TINY)
        edited["train"]["weight_decay"] = 0
        (workdir / config).write_text(yaml.safe_dump(edited, sort_keys=False))
        assert list(edited) != sorted(edited) and list(edited["train"]) != sorted(edited["train"])
    else:
        config = write_config(workdir, "edited.yaml", {**TINY, **change})
    path, old, new = source or (None, None, None)
    original, stat = ((workdir / path).read_text(), (workdir / path).stat()) if path else (None, None)
    try:
        if path:
            assert old is None or old in original, old
            (workdir / path).write_text(original.replace(old, new, 1) if old else original + new)
        log = snakemake(workdir, "--configfile", config, "--dry-run").log
    finally:
        if path:  # as it was, time included: Snakemake takes a rewritten script for changed code
            (workdir / path).write_text(original)
            os.utime(workdir / path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert [rule for rule in executed_rules(log) if rule != "all"] == planned, log[-3000:]
    jobs = set(re.findall(r"rule train:.*?wildcards: variant=(\w+), seed=(\d+)", log, flags=re.S))
    assert jobs == TRAIN_JOBS.get(
        edit, {(v, str(s)) for v in ("dot", "euclid") for s in SEEDS} if "train" in planned else set()
    )
    rounds = set(re.findall(r"rule benchmark:.*?wildcards: round=(\d+)", log, flags=re.S))
    assert rounds == BENCHMARK_ROUNDS.get(edit, {"1", "2"} if "benchmark" in planned else set())


# Two sizes of three kinds, two seeds each: the tiny model and a wider one, listed so that
# their names' order is not the config's.
SIZED = {
    **tiny_config(experiment="sized", variants=["dot", "euclid", "cosine"], seeds=SEEDS,
                  benchmark={"variants": ["dot"], "seq_lens": [32], "rounds": 1}),
    "sizes": {"small": {}, "large": {"d_model": 48, "d_ff": 96}},
}  # fmt: skip


@pytest.fixture(scope="module")
def sized(tmp_path_factory):
    """The workflow of SIZED run once: its folder."""
    work = copy_workflow(tmp_path_factory.mktemp("sized"))
    snakemake(work, "--configfile", write_config(work, "sized.yaml", SIZED))
    return work


@pytest.mark.slow
def test_every_size_trains_every_kind_and_seed_and_is_compared_on_its_own(sized):
    results = sized / "results" / "sized"
    parameters = {}
    for size in SIZED["sizes"]:
        for variant in SIZED["variants"]:
            for seed in SEEDS:
                for name in ("metrics.csv", "steps.csv", "model.pt", "provenance.json"):
                    assert (results / "train" / size / variant / f"seed{seed}" / name).stat().st_size > 0
                (board,) = (results / "tensorboard" / size / variant / f"seed{seed}").iterdir()
                assert (results / "checkpoints" / size / variant / f"seed{seed}" / board.name / "best.pt").exists()
                evaluation = json.loads((results / "eval" / size / variant / f"seed{seed}.json").read_text())
                parameters[size, variant] = evaluation["parameters"]
        paired = pd.read_csv(results / "compare" / size / "paired.csv")
        assert sorted(zip(paired["variant"], paired["metric"], strict=True)) == [
            (v, m) for v in ("cosine", "euclid") for m in ("test_loss", "test_ppl")
        ]
    assert parameters["small", "dot"] == parameters["small", "euclid"] < parameters["small", "cosine"]  # its scales
    assert parameters["large", "dot"] > parameters["small", "dot"]
    assert not (results / "train" / "dot").exists() and not (results / "compare" / "paired.csv").exists()

    # One family of tests over both sizes: Holm's adjustment counts all four comparisons of a metric.
    verdicts = pd.read_csv(results / "verdicts.csv")
    assert sorted(zip(verdicts["size"], verdicts["variant"], verdicts["metric"], strict=True)) == [
        (s, v, m) for s in ("large", "small") for v in ("cosine", "euclid") for m in ("test_loss", "test_ppl")
    ]
    assert (verdicts["tests"] == 4).all() and (verdicts["p_holm"] >= verdicts["p_value"]).all()
    summary = (results / "summary.md").read_text()
    assert "Holm's method (Holm 1979) over the 4 paired t-tests" in summary
    assert f"### large: {parameters['large', 'dot']:,} parameters" in summary
    assert summary.index("### small") < summary.index("### large")  # as the config lists them, not by name
    assert re.search(r"\| ours: large/cosine \| 2 \| 2 \| [\d.]+ \[[\d.]+, [\d.]+\] \|", summary), summary
    for name in ("scaling", "perplexity", "training", "paired"):
        assert (results / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "paired difference, 95% CI" in (results / "figures" / "scaling.svg").read_text()
    assert "Nothing to be done" in snakemake(sized, "--configfile", "config/sized.yaml", "--dry-run").log


# Edits of the sized workflow, as CACHING_TABLE's: a new size or kind plans its own jobs only,
# with each size's compare it touches and plot; another size's settings that size's.
SIZED_CACHING_TABLE = [
    ("sizes + 1", {"sizes": {**SIZED["sizes"], "deep": {"n_layers": 2}}},
     {("deep", v, str(s)) for v in SIZED["variants"] for s in SEEDS}, {"deep"}),
    ("variants + 1", {"variants": [*SIZED["variants"], "euclid_sq"]},
     {(size, "euclid_sq", str(s)) for size in SIZED["sizes"] for s in SEEDS}, set(SIZED["sizes"])),
    ("sizes.large.d_ff", {"sizes": {**SIZED["sizes"], "large": {"d_model": 48, "d_ff": 128}}},
     {("large", v, str(s)) for v in SIZED["variants"] for s in SEEDS}, {"large"}),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit, change, trained, compared", SIZED_CACHING_TABLE, ids=[r[0] for r in SIZED_CACHING_TABLE]
)
def test_a_size_or_kind_added_plans_its_own_jobs(sized, edit, change, trained, compared):
    log = snakemake(sized, "--configfile", write_config(sized, "edited.yaml", {**SIZED, **change}), "--dry-run").log
    assert [rule for rule in executed_rules(log) if rule != "all"] == [
        "attention", "compare", "compare_attention", "evaluate", "plot", "samples", "to_target", "train",
    ], log  # fmt: skip
    wildcards = r"wildcards: size=([\w.-]+), variant=(\w+), seed=(\d+)"
    assert set(re.findall(r"rule train:.*?" + wildcards, log, flags=re.S)) == trained
    assert set(re.findall(r"rule evaluate:.*?" + wildcards, log, flags=re.S)) == trained
    assert set(re.findall(r"rule compare:.*?wildcards: size=([\w.-]+)", log, flags=re.S)) == compared


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
        "compare",
        "compare_timings",
        "to_target",
        "plot",
        "all",
        "attention",
        "compare_attention",
        "samples",
    }
    on_gpu = {"train", "evaluate", "benchmark", "attention", "samples"}
    assert {rule for rule, gpu in jobs.items() if gpu == {True}} == on_gpu
    assert all(gpu == {False} for rule, gpu in jobs.items() if rule not in on_gpu)


def test_lint_has_nothing_to_say():
    log = snakemake(ROOT, "--lint").log
    assert "Lints for" not in log, log


TOY_KIND = '''"""A kind defined outside attnscore, the way a user adds one: scaled dot product with a temperature."""

import math

import torch.nn.functional as F

from attnscore.attention import register


@register("dot_temperature", options={"temperature": {"type": "number", "exclusiveMinimum": 0}})
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
    toy, dot = (pd.read_csv(results / "train" / v / "seed1234" / "metrics.csv") for v in ("dot_temperature", "dot"))
    assert list(toy["epoch"]) == [1, 2] and toy["valid_ppl"].iloc[-1] < toy["valid_ppl"].iloc[0]
    assert (toy["train_loss"] != dot["train_loss"]).all()  # the temperature reached the kind: not plain dot
    assert (
        json.loads((results / "eval" / "dot_temperature" / "seed1234.json").read_text())["attention"]
        == "dot_temperature"
    )
    timings = pd.read_csv(results / "bench" / "measurements.csv")
    assert list(timings.loc[timings["kind"] == "dot_temperature", "status"]) == ["ok", "ok"]  # two rounds
    assert "| ours: dot_temperature | 1 | 2 |" in (results / "summary.md").read_text()
    # The probe reads a kind it has never seen: its weights are exact, so its statistics are there.
    statistics = pd.read_csv(results / "attention" / "dot_temperature" / "seed1234.csv")
    assert list(statistics.columns) == ["layer", "head", "entropy", "distance", "first_share", "prev_share"]
    assert (
        len(statistics) == 2
        and json.loads((results / "attention" / "dot_temperature" / "seed1234.json").read_text())["normalised"]
    )

    # Another plugin, registering another kind, re-runs nothing.
    (work / "more_kinds.py").write_text(TOY_KIND.replace("dot_temperature", "dot_other"))
    more = write_config(
        work, "more.yaml", {**config, "model": {**config["model"], "attention_plugins": ["toy_kinds", "more_kinds"]}}
    )
    assert "Nothing to be done" in snakemake(work, "--configfile", more, "--dry-run").log

    # Editing the plugin's kind re-runs the jobs of its kind, and only those: a new run, saying
    # why; going back to the old code finds the old run. A comment is no edit.
    original = (work / "toy_kinds.py").read_text()
    (work / "toy_kinds.py").write_text(original + "# a comment\n")
    assert "Nothing to be done" in snakemake(work, "--configfile", "config/toy.yaml", "--dry-run").log
    (work / "toy_kinds.py").write_text(original.replace("temperature * math.sqrt", "temperature * 1.0 * math.sqrt"))
    log = snakemake(work, "--configfile", "config/toy.yaml", "--dry-run").log
    assert executed_rules(log) == [
        "all", "attention", "benchmark", "compare", "compare_attention", "compare_timings", "evaluate", "plot",
        "samples", "to_target", "train",
    ]  # fmt: skip
    assert set(re.findall(r"wildcards: variant=(\w+)", log)) == {"dot_temperature"}  # the benchmark times all kinds
    train_job = ["--", "results/toy/train/dot_temperature/seed1234/metrics.csv"]  # what the logs below come from
    snakemake(work, "--configfile", "config/toy.yaml", *train_job)
    train_log = (results / "logs" / "train_dot_temperature_seed1234.log").read_text()
    assert re.search(r"the code of kind 'dot_temperature' changed since \S+ was trained; training a new run", train_log)
    (work / "toy_kinds.py").write_text(original)
    snakemake(work, "--configfile", "config/toy.yaml", *train_job)
    assert "nothing to train: " in (results / "logs" / "train_dot_temperature_seed1234.log").read_text()

    # A plugin that fails to import stops the run before any job, naming it.
    (work / "broken_kinds.py").write_text("raise ZeroDivisionError('a bug at import')\n")
    config["model"]["attention_plugins"] = ["toy_kinds", "broken_kinds"]
    config["train"] = {**config["train"], "lr": 7e-4}  # something to run
    broken = snakemake(work, "--configfile", write_config(work, "broken.yaml", config), check=False)
    assert broken.returncode != 0 and "rule train" not in broken.log
    assert "model.attention_plugins: importing 'broken_kinds' failed (ZeroDivisionError: a bug at import)" in broken.log

    # A config naming a kind no module registers fails before any job, naming the known kinds.
    config["model"]["attention_plugins"] = []
    result = snakemake(work, "--configfile", write_config(work, "bad.yaml", config), check=False)
    assert result.returncode != 0 and "unknown attention kind(s) ['dot_temperature']" in result.log
