#!/usr/bin/env bash
# The attention kernels' GPU checks and benchmarks in one call on a lent H100/H200 (no internet
# there; python3 holds CUDA torch and Triton): benchmarks/gpu_check.py, every stage, within a
# budget of 450 s, killed at 560 s so that what it wrote still comes back. Everything lands in
# $OUT (7 files: checks.csv, attention.csv, training.csv, autotune.csv, environment.json,
# summary.md, gpu_check.log). benchmarks/README.md says how to call it and where the files go.
#
#   OUT=benchmarks/results/<card>-<torch>-<date> bash benchmarks/gpu_session.sh   # on any CUDA machine
#
# Arguments go on to gpu_check.py (e.g. --stages tma,head_dim_128 for what a first run skipped);
# BUDGET sets its --budget, PYTHON the interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?set OUT to the folder for the results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
timeout 560 "$python" benchmarks/gpu_check.py --out "$out" --budget "${BUDGET:-450}" "$@" 2>&1 | tee "$out/gpu_check.log"
