"""What each kind attends to, through the real workflow: the step added to a finished experiment
trains nothing, and the report, opened in headless Chromium (Debian's `chromium`), loads without
script errors, decodes every figure and leads with the summary's verdict sentences."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from browser import CHROMIUM, Page

from helpers import SEEDS, copy_finished, executed_rules, snakemake

RESULTS = "results/tiny"
# What the step adds (attention, compare_attention, samples) and what plot, which reads it, writes.
ADDED = ["attention", "samples.md", "figures", "summary.md", "verdicts.csv", "config.json", "code.json"]


@pytest.fixture(scope="module")
def work(tiny_experiment, tmp_path_factory):
    """The tiny experiment as it was before this step (its outputs and plot's removed), then the
    whole workflow: (folder, log of that run, modification times of the files kept)."""
    work = copy_finished(tiny_experiment[0], tmp_path_factory.mktemp("attention"))
    for name in ADDED:
        path = work / RESULTS / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    finished = {path: path.stat().st_mtime_ns for path in (work / RESULTS).rglob("*") if path.is_file()}
    return work, snakemake(work, "--configfile", "config/tiny.yaml").log, finished


@pytest.mark.slow
def test_adding_the_step_to_a_finished_experiment_trains_nothing(work):
    folder, log, finished = work
    assert executed_rules(log) == ["all", "attention", "compare_attention", "plot", "samples"]
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items() if "/logs/" not in str(path))
    results = folder / RESULTS
    for variant in ("dot", "euclid"):
        for seed in SEEDS:
            table = pd.read_csv(results / "attention" / variant / f"seed{seed}.csv")
            assert list(table.columns) == ["layer", "head", "entropy", "distance", "first_share", "prev_share"]
            assert len(table) == 1 * 2 and (table["entropy"] > 0).all() and (table["first_share"] <= 1).all()
    paired = pd.read_csv(results / "attention" / "paired.csv")
    assert sorted(paired["metric"]) == ["distance", "entropy", "first_share"] and (paired["seeds"] == 2).all()
    summary = (results / "summary.md").read_text()
    assert re.search(
        r"euclid - dot, attention entropy \(nats\): [+-][\d.]+ \(95% CI [+-][\d.]+ to [+-][\d.]+, 2 paired seeds\)",
        summary,
    )
    samples = (results / "samples.md").read_text()
    assert samples.count("**dot, seed 1234**") == 3 and samples.count("- top-10: ") == 6
    assert "Nothing to be done" in snakemake(folder, "--configfile", "config/tiny.yaml", "--dry-run").log


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: install Debian's chromium (.ci/run does)")
def test_the_report_opens_in_a_browser_with_its_figures_and_verdicts(work):
    folder, _, _ = work
    snakemake(folder, "--configfile", "config/tiny.yaml", "--report", "report.html")
    summary = (folder / RESULTS / "summary.md").read_text()
    verdicts = [line[2:] for line in summary.splitlines() if line.startswith("- euclid - dot")]
    assert len(verdicts) == 2 + 3  # test loss and perplexity; entropy, distance and first-token share
    with Page((folder / "report.html").as_uri()) as page:
        page.evaluate("new Promise(done => setTimeout(done, 1000))")  # React renders the first view
        figures = page.evaluate(DECODE_FIGURES)
        text = page.evaluate("document.body.innerText")
        assert page.errors == []
    assert figures["failed"] == [] and sorted(figures["decoded"]) == sorted(
        f"{RESULTS}/figures/{name}.png"
        for name in ("perplexity", "training", "paired", "throughput", "to_target", "attention_heads",
                     "attention_maps", "attention_layers")
    )  # fmt: skip
    first_view = text[: text.index("How the results are made")]  # the verdicts lead, before the method and config
    assert all(verdict in first_view for verdict in verdicts), first_view
    assert '"max_steps_per_epoch"' in text[text.index("How the results are made") :]


# Every image the report embeds, decoded by the browser as it would show it.
DECODE_FIGURES = """(async () => {
    const decoded = [], failed = [];
    for (const [path, result] of Object.entries(results)) {
        if (!result.mime_type.startsWith("image/")) continue;
        const image = new Image();
        image.src = result.data_uri;
        try {
            await image.decode();
            (image.naturalWidth > 0 ? decoded : failed).push(path);
        } catch (error) {
            failed.push(path + ": " + error);
        }
    }
    return {decoded, failed};
})()"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: install Debian's chromium (.ci/run does)")
def test_the_browser_reports_script_errors_and_images_that_do_not_decode(tmp_path):
    page_file = Path(tmp_path, "broken.html")
    page_file.write_text(
        '<script>var results = {"a.png": {"mime_type": "image/png", "data_uri": "data:image/png;base64,AAAA"}};'
        "</script><script>undefinedFunction();</script>"
    )
    with Page(page_file.as_uri()) as page:
        figures = page.evaluate(DECODE_FIGURES)
    assert figures["decoded"] == [] and len(figures["failed"]) == 1
    assert any("undefinedFunction is not defined" in error for error in page.errors), page.errors
