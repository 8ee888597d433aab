"""tokenize -> train[variant, seed] -> evaluate[variant, seed] -> compare -> plot; benchmark[variant] -> plot

Run: snakemake --cores 1 --resources gpu=1             (the reference experiment)
     snakemake --cores 2 --configfile config/demo.yaml  (offline demo)
"""

import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# The reference experiment, unless a config is given: a user's config is complete on its own
# and never silently inherits keys it lacks from this one (the schema names any missing key).
if not config:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


# Scripts import the attnscore package of this checkout, in whatever environment runs them
# (a conda env from envs/ does not have it installed). This sets a variable for the jobs; the
# workflow requires none, so there is nothing for `envvars:` to assert.
sys.path.insert(0, workflow.basedir)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.getenv("PYTHONPATH")])
    )
)
# None of these imports torch: a dry run costs what Snakemake costs.
from attnscore import provenance
from attnscore.config import (
    EVALUATION,
    TIMING,
    check,
    model_settings,
    subset,
    train_settings,
)
from attnscore.corpora import SPLITS
from attnscore.kinds import known_kinds

check(config)

RESULTS = f"results/{config['experiment']}"
VARIANTS = config["variants"]
SEEDS = config["seeds"]


wildcard_constraints:
    variant=r"[a-z][a-z0-9_]*",
    seed=r"\d+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/compare.smk"


rule all:
    default_target: True
    input:
        rules.plot.output,
