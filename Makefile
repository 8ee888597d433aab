# Two entry points that set everything up themselves: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch 2.13.0 on the development machines; on a CUDA machine choose yours,
# e.g. `make demo TORCH=torch` (any torch >= 2.5 works).
TORCH ?= torch==2.13.0
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: install install-slurm demo sweep test run slurm-deps test-slurm config-readme

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# One thread per training and evaluation job: the demo's tiny model gains little from a second
# thread, so two runs side by side finish sooner (benchmarks keep every core).
demo: install
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --configfile config/demo.yaml --set-threads train=1 evaluate=1

# Every kind at three model sizes on the demo corpus (config/sweep.yaml, about 20 minutes on 2
# cores), then the summary's paired verdicts, size by size.
sweep: install
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --configfile config/sweep.yaml --set-threads train=1 evaluate=1
	sed -n '/^## Paired comparison/,/^## What it costs/{/^## What it costs/!p}' results/sweep/summary.md

run: install
	$(BIN)/snakemake --cores 1 --resources gpu=1

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/pytest -ra

# Snakemake's Slurm executor plugin, for submitting jobs to a cluster (profiles/slurm).
install-slurm: install
	$(BIN)/pip install --quiet -r requirements-slurm.txt

# The plugin, and Debian's Slurm and MUNGE for the single-node Slurm test (root, apt).
slurm-deps: install-slurm
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge

test-slurm: install slurm-deps
	$(BIN)/pytest -ra -m slurm

# config/README.md from the schema (every key, its role, its reference value); a test keeps them equal.
config-readme: install
	$(BIN)/python -c "import yaml; from attnscore.config import keys_markdown; print(keys_markdown(yaml.safe_load(open('config/config.yaml'))), end='')" > config/README.md
