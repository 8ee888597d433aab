# Snakemake internals, all here: each reads or sets what Snakemake 9 has no public API for.
# Included first by the Snakefile.

import os
import sys

# The reference experiment, unless config files are given: a user's config file is complete on
# its own and never silently inherits keys it lacks from this one (the schema names any missing
# key); `--config` values apply on top of either. `configfile:` merges the given files into its
# own, and `--replace-workflow-config` (which the user would have to pass) drops it for `--config` too.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Every config file read, for check_unique_keys: Snakemake keeps a repeated key's last value and
# lists the files nowhere public.
CONFIG_FILES = workflow.configfiles
# `--config` values alone, for typed_overrides: `config` holds them already merged with the files.
CONFIG_OVERRIDES = workflow.config_settings.config
# Whether this call builds a report: Snakemake reads the Snakefile before it acts on `--report`
# and tells it nothing.
REPORTING = any(arg == "--report" or arg.startswith("--report=") for arg in sys.argv)
# Scripts import the attnscore package of this checkout, in whatever environment runs them (a
# conda env from envs/ does not have it installed): no directive sets a job's environment
# (`envvars:` only requires variables and forwards them), and the script preamble appends the
# workflow's folder to sys.path, behind any attnscore installed in the job's environment.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.getenv("PYTHONPATH")])
    )
)


def jobs_run_here():
    """The jobs this call runs on this machine (none where a cluster runs them), for onstart's
    checks: Snakemake hands onstart only the log."""
    return list(workflow.dag.needrun_jobs()) if workflow.local_exec else []
