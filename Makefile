# Two entry points that set everything up themselves: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# torch from PyPI: on Linux x86-64 its CUDA build, on macOS and Windows its CPU build (the
# development machines serve 2.13.0's CPU build from a local mirror). TORCH_INDEX picks another
# build from PyTorch's index, e.g. https://download.pytorch.org/whl/cpu; any torch >= 2.5 works.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: install install-slurm browser-deps demo demo-docs sweep recipe-compare test run slurm-deps test-slurm config-readme

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# One thread per training and evaluation job: the demo's tiny model gains little from a second
# thread, so two runs side by side finish sooner (benchmarks keep every core).
demo: install
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --configfile config/demo.yaml --set-threads train=1 evaluate=1 attention=1

# README's figures and quoted sentences: the demo's, with its summary (machine, versions) and raw tables.
DEMO_DOCS := figures/perplexity.png figures/paired.png figures/throughput.png figures/training.png \
	figures/to_target.png figures/attention_heads.png figures/attention_maps.png figures/attention_layers.png \
	summary.md samples.md compare/paired.csv compare/runs.csv compare/to_target.csv \
	bench/comparisons.csv bench/measurements.csv
demo-docs: demo
	mkdir -p docs/demo
	cp $(addprefix results/demo/,$(DEMO_DOCS)) docs/demo/
	printf '# The demo as README shows it\n\nWritten by `make demo-docs` on %s (UTC) at commit %s; the machine and versions are in summary.md.\n' \
		"$$(date -u +%F)" "$$(git rev-parse --short HEAD)" > docs/demo/README.md

# Every kind at three model sizes on the demo corpus (config/sweep.yaml, about 20 minutes on 2
# cores), then the summary's paired verdicts, size by size.
sweep: install
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --configfile config/sweep.yaml --set-threads train=1 evaluate=1 attention=1
	sed -n '/^## Paired comparison/,/^## What it costs/{/^## What it costs/!p;}' results/sweep/summary.md

# The demo under today's recipe (config/demo-modern.yaml) against the demo's, paired by variant
# and seed; both experiments must have run (make demo, then the same with demo-modern.yaml).
recipe-compare: install
	$(BIN)/python analysis/recipe_compare.py results/demo results/demo-modern

run: install
	$(BIN)/snakemake --cores 1 --resources gpu=1

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/pytest -ra --durations=15

# Snakemake's Slurm executor plugin, for submitting jobs to a cluster (profiles/slurm).
install-slurm: install
	$(BIN)/pip install --quiet -r requirements-slurm.txt

# The plugin, and Debian's Slurm and MUNGE for the single-node Slurm test (root, apt).
slurm-deps: install-slurm
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge

# Debian's Chromium, for the test that opens the HTML report in a headless browser (root, apt).
browser-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test-slurm: install slurm-deps
	$(BIN)/pytest -ra -m slurm

# config/README.md from the schema (every key, its role, its reference value); a test keeps them equal.
config-readme: install
	$(BIN)/python -c "import yaml; from attnscore.schema import keys_markdown; print(keys_markdown(yaml.safe_load(open('config/config.yaml'))), end='')" > config/README.md
