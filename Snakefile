"""tokenize -> train[size, variant, seed] -> evaluate[size, variant, seed] -> compare[size] -> plot; benchmark[round] -> plot;
train -> attention[size, variant, seed] -> compare_attention -> plot; train (first seed) -> samples

Run: snakemake --cores 1 --resources gpu=1             (the reference experiment)
     snakemake --cores 2 --configfile config/demo.yaml  (offline demo)
"""

import json
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, update_config

min_version("9.0")


# Snakemake internals, in one file: the config files and `--config` values, whether this call
# builds a report, the jobs' PYTHONPATH and the jobs onstart checks.
include: "workflow/rules/internals.smk"


report: "workflow/report/workflow.rst"


# The attnscore package beside this file: Snakemake puts the Snakefile's folder first on sys.path
# (public: its FAQ on importing helper modules). None of these imports torch: a dry run costs
# what Snakemake costs.
from attnscore import codeid, identity
from attnscore.config import check, check_unique_keys, typed_overrides
from attnscore.schema import canonical
from attnscore.corpora import SPLITS, release_file
from attnscore.kinds import CONTROLS, known_kinds

check_unique_keys(CONFIG_FILES)
update_config(config, typed_overrides(CONFIG_OVERRIDES))
check(config)


# Sizes, read before the canonical config below sorts them by name.
include: "workflow/rules/sizes.smk"


# Keys sorted, numbers typed by the schema: key order and 0 for 0.0 never re-run a job.
canonical_config = canonical(config)
config.clear()
config.update(canonical_config)

RESULTS = f"results/{config['experiment']}"


# The code behind the results: each file the workflow's scripts run and the code of each kind
# trained or timed (attnscore.codeid). The plot rule records it beside the config, in code.json.
# The module registering each attention kind (a plugin's file for kinds from plugins).
KIND_SOURCES = {
    name: kind.source
    for name, kind in known_kinds(config["model"]["attention_plugins"])[0].items()
}
KINDS_USED = {*config["variants"], *config["benchmark"]["variants"]}
KINDS_USED |= {CONTROLS[kind] for kind in KINDS_USED if kind in CONTROLS}
RESULTS_CODE = codeid.identity(
    sorted(Path(workflow.basedir, "workflow", "scripts").glob("*.py")),
    sorted((name, KIND_SOURCES[name]) for name in KINDS_USED),
)
# A report shows the results on disk beside this config and code: refuse results made with
# another config or other code (Snakemake builds a report without asking whether any job would run).
if REPORTING:
    made_with, made_by = Path(RESULTS, "config.json"), Path(RESULTS, "code.json")
    stale = []
    if made_with.exists():
        stale = identity.differences(json.loads(made_with.read_text()), config)
        stale += (
            codeid.changes(json.loads(made_by.read_text()), RESULTS_CODE)
            if made_by.exists()
            else [f"the code: {made_by} is missing"]
        )
    if stale:
        raise WorkflowError(
            f"the results in {RESULTS} were made with another config or code; run the workflow "
            "with this config first, or build the report with the config and code they were made with:\n  "
            + "\n  ".join(stale)
        )
VARIANTS = config["variants"]
SEEDS = config["seeds"]
BENCHMARKED = config["benchmark"]["variants"]
# Controls the benchmark times beside a kind where they run (dot_triton beside euclid, on CUDA).
CONTROLLED = [
    CONTROLS[kind]
    for kind in BENCHMARKED
    if kind in CONTROLS and CONTROLS[kind] not in BENCHMARKED
]
ROUNDS = range(1, config["benchmark"]["rounds"] + 1)


# Each wildcard takes the config's own values only (a name that repeats itself, e.g. "aaaa",
# would otherwise read to Snakemake as a pattern recursing into itself).
wildcard_constraints:
    size="|".join(map(re.escape, SIZE_NAMES)),
    variant="|".join(map(re.escape, sorted({*VARIANTS, *BENCHMARKED}))),
    seed=r"\d+",
    round=r"\d+",


# Before the first job, not in a dry run (which must not import torch), where jobs run on this
# machine (a cluster's jobs check on theirs): that the plugin modules import, and the GPUs that
# jobs holding one will use.
onstart:
    jobs = jobs_run_here()
    if config["model"]["attention_plugins"] and any(
        job.rule.name in ("train", "evaluate", "benchmark") for job in jobs
    ):
        from attnscore.attention import load_plugins

        load_plugins(config["model"]["attention_plugins"])
    if any(job.resources.get("gpu") for job in jobs):
        from attnscore.runtime import check_device

        check_device(config["train"]["device"], config["train"]["processes"])


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/compare.smk"


rule all:
    default_target: True
    input:
        rules.plot.output,
        rules.samples.output,
